"""bench.nights: the catalogue's file over many nights, measured as it says."""
import os
import subprocess
import sys

import duckdb

from bench.nightly import ROOT
from bench.nights import blocks


def test_the_nights_find_what_the_server_changed_and_say_the_file_s_blocks_and_the_publish_s_bytes():
    out = subprocess.run([sys.executable, "-m", "bench.nights", "--portals", "6", "--datasets", "1200",
                          "--nights", "2", "--workers", "2"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert all("as made" in " ".join(row) for row in rows)
    # night 3's publish updated the spare (night 1's copy): some blocks written, fewer than the file
    night3 = " ".join(rows[2])
    written = float(night3.split(" MiB ")[0].split()[-1])
    catalogue = float(rows[2][5])
    assert 0 < written < catalogue
    assert "the tables' data blocks, night by night: " in out.stdout and "datasets " in out.stdout


def test_the_blocks_are_duckdb_s_own_count_and_each_table_s_data(tmp_path):
    db = tmp_path / "t.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE a AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(300000)")
        con.execute('CREATE TABLE "b.c d" AS SELECT range AS i FROM range(10)')
        con.execute("CHECKPOINT")
    counted = blocks(db)
    assert counted["block"] == 256 << 10
    assert counted["used_blocks"] + counted["free_blocks"] == counted["total_blocks"]
    assert counted["tables"]["a"] >= 10 and counted["tables"]["b.c d"] == 1
    assert sum(counted["tables"].values()) < counted["used_blocks"]   # (and the metadata's)
