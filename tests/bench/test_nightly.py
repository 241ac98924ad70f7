"""bench.nightly: how it measures a night's harvest process."""
import json
import sys

from bench.nightly import ROOT, ask, harvest_night, run_measured, write_config
from bench.serve import serving


def test_the_largest_process_is_the_harvests_own_peak_not_the_benchs():
    """wait4's ru_maxrss of a process Python starts keeps the starting process's high-water mark
    (vfork, then exec): night 2's "largest process" (~540 MB) was the bench's own peak, the harvest's
    ~260 MB. A child of 30 MB started by a process that held 300 MB measures as the child."""
    held = bytearray(300 * 2**20)
    held[::4096] = b"\1" * len(held[::4096])   # (touched: resident)
    child, out, usage, figures = run_measured(
        [sys.executable, "-c", "import sys; x = bytearray(30 * 2**20); x[::4096] = b'1' * len(x[::4096]); "
                               "print(len(x)); sys.exit(3)"])
    del held
    assert child.returncode == 3 and out.strip() == str(30 * 2**20).encode()
    assert usage.ru_maxrss / 1024 > 300   # (what the bench printed)
    assert 30 < figures["own_peak_mb"] < 100
    assert figures["max_rss_mb"] == figures["own_peak_mb"]   # (no descendant)


def test_a_lower_reclaim_share_makes_the_changing_night_reclaim_datasets(tmp_path):
    """bench.nightly's three nights never reclaimed `datasets` (3% changed a night: 20% dead only
    after ~11 nights), so that night's own peak went unmeasured. With --reclaim-share the changing
    night's harvest reclaims the dead rows its merges left, and the bench says how many are held."""
    portals = None
    with serving("nightly", "6x1200") as server:
        portals = json.loads(server.stdout.readline())
        config, db = tmp_path / "nightly.toml", tmp_path / "catalog.duckdb"
        write_config(portals, config)
        (tmp_path / "stderr.log").write_text("")
        first = harvest_night(config, db, 2, ROOT)
        assert first["exit"] == 0 and first["dead"] == 0
        ask(server, "change")
        kept = harvest_night(config, db, 2, ROOT)   # (the default share: kept)
        assert kept["changed"] > 0 and kept["dead"] > 0
        ask(server, "change")
        reclaimed = harvest_night(config, db, 2, ROOT, reclaim_share=0.001)
        assert reclaimed["changed"] > 0 and reclaimed["dead"] == 0


def test_the_publish_is_read_from_the_line_civicat_logs(tmp_path, caplog):
    """bench.nights and bench.read_copy read a writer's own publish from `civicat -v`'s line: the
    line as harvester.cli writes it, its path holding a parenthesis and " in " too."""
    import logging

    import duckdb

    from bench.nightly import published
    from harvester.cli import publish_read_copy

    folder = tmp_path / "a (b) in c"
    folder.mkdir()
    db = folder / "catalog.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(100000)")
    with caplog.at_level(logging.INFO, logger="civicat.read_copy"):
        publish_read_copy(db)
    lines = [f"2026-12-07 03:00:00 INFO civicat.read_copy: {record.getMessage()}" for record in caplog.records]
    found = published(lines)
    assert found is not None and found["bytes"] == db.stat().st_size == found["written"]   # (made anew: all of it)
    assert 0 <= found["seconds"] < 60
    assert published(["2026-12-07 03:00:00 WARNING civicat.read_copy: the read copy was not refreshed"]) is None
