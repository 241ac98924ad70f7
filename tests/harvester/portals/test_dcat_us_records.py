"""DCAT-US records: the first CSV distribution, downloaded whole and typed by DuckDB's
sniffer, over HTTP against the local data.json portal."""
import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import harvest_with_records
from tests.portals.base import RawBody
from tests.portals.dcat import DataJsonPortal


def test_csv_distribution_becomes_typed_parquet(tmp_path):
    rows = "permit_id,issued,valuation,address\n" + "".join(
        f"P{i:05d},2023-0{1 + i % 9}-1{i % 10} 10:00:00,{1000 + i * 2.5},\"{i} Main St, Apt {i % 7}\"\n"
        for i in range(3000))
    with DataJsonPortal({"dataset": []}) as portal:
        portal.document = {"dataset": [
            {"identifier": "permits-2023", "title": "Building permits", "description": "Permits",
             "distribution": [{"title": "Page", "mediaType": "text/html", "accessURL": f"{portal.url}/p"},
                              {"title": "CSV", "mediaType": "text/csv", "downloadURL": f"{portal.url}/permits.csv"}]},
            {"identifier": "no-csv", "title": "A map", "description": "Only a page",
             "distribution": [{"mediaType": "text/html", "accessURL": f"{portal.url}/map"}]}]}
        portal.serve_json("/permits.csv", RawBody(rows.encode()))
        _, result = harvest_with_records(tmp_path, "dj", "dcat-us", f"{portal.url}/data.json",
                                         ["permits-2023", "no-csv"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["records_failed"], report["record_rows"]) == (1, 1, 3000)
    table = pq.read_table(tmp_path / "records" / "portal=dj" / "dataset=permits-2023")
    assert table.num_rows == 3000
    assert table.schema.field("issued").type == pa.timestamp("us")
    assert table.schema.field("valuation").type == pa.float64()
    assert table.sort_by("permit_id").slice(7, 1).to_pylist()[0]["address"] == "7 Main St, Apt 0"


def test_a_failed_download_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    with DataJsonPortal({"dataset": []}) as portal:
        portal.document = {"dataset": [
            {"identifier": "binary", "title": "Not text", "description": "x",
             "distribution": [{"mediaType": "text/csv", "downloadURL": f"{portal.url}/binary.csv"}]},
            {"identifier": "gone", "title": "Gone", "description": "x",
             "distribution": [{"mediaType": "text/csv", "downloadURL": f"{portal.url}/gone.csv"}]}]}
        # not UTF-8: DuckDB's sniffer refuses it after the download; the other answers 404
        portal.serve_json("/binary.csv", RawBody(b"a,b\n\xff\xfe\x00\x81,2\n" * 1000))
        _, result = harvest_with_records(tmp_path, "dj", "dcat-us", f"{portal.url}/data.json", ["binary", "gone"])
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["records_failed"]) == (0, 2)
    assert list(temporary.iterdir()) == []  # each downloaded into a folder of its own, removed


def test_a_csv_of_thousands_of_columns_is_pulled(tmp_path):
    """5,000 columns of three rows: DuckDB's sniffer failed in the CSV's 256 MB (Out of Memory
    Error), and the pull with it; it is read again with 1 GB."""
    header = ",".join(f"c{i}" for i in range(5000))
    rows = "".join(",".join(str(i * n) for i in range(5000)) + "\n" for n in range(3))
    with DataJsonPortal({"dataset": []}) as portal:
        portal.document = {"dataset": [
            {"identifier": "wide", "title": "Census table", "description": "x",
             "distribution": [{"mediaType": "text/csv", "downloadURL": f"{portal.url}/wide.csv"}]}]}
        portal.serve_json("/wide.csv", RawBody(f"{header}\n{rows}".encode()))
        _, result = harvest_with_records(tmp_path, "dj", "dcat-us", f"{portal.url}/data.json", ["wide"])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    table = pq.read_table(tmp_path / "records" / "portal=dj" / "dataset=wide")
    assert table.num_columns == 5000 and table["c4999"].to_pylist() == [0, 4999, 9998]


def test_a_csv_labelled_html_is_read_and_an_html_page_still_fails(tmp_path):
    """File servers do label CSV downloads `text/html` (the body decides, as for JSON); a page
    that is HTML by its body (a BOM and a comment before its tags) still fails its pull."""
    page = b"\xef\xbb\xbf<!-- maintenance -->\n<head><title>Down</title></head><body>Back soon</body>\n"
    with DataJsonPortal({"dataset": []}) as portal:
        portal.document = {"dataset": [
            {"identifier": identifier, "title": identifier, "description": "x",
             "distribution": [{"mediaType": "text/csv", "downloadURL": f"{portal.url}/{identifier}.csv"}]}
            for identifier in ("permits", "down")]}
        portal.serve_json("/permits.csv", RawBody(b"permit_id,valuation\n" + b"".join(
            b"P%05d,%d.5\n" % (i, i) for i in range(300)), "text/html; charset=utf-8"))
        portal.serve_json("/down.csv", RawBody(page, "text/html"))
        db, result = harvest_with_records(tmp_path, "dj", "dcat-us", f"{portal.url}/data.json", ["permits", "down"])
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["records_failed"], report["record_rows"]) == (1, 1, 300), result.output
    table = pq.read_table(tmp_path / "records" / "portal=dj" / "dataset=permits")
    assert table.num_rows == 300 and table.schema.field("valuation").type == pa.float64()
    assert not (tmp_path / "records" / "portal=dj" / "dataset=down").exists()
    import duckdb
    [message] = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE stage = 'records'").fetchone()
    assert "HTML page instead of data (Content-Type text/html)" in message


class HangingDownload(DataJsonPortal):
    """Serves /big.csv a megabyte at a time; while `hang` is set, the first megabyte only, then
    holds the download open (`sent` set) until `release`."""

    def __init__(self, document):
        super().__init__(document)
        self.hang, self.sent, self.release = threading.Event(), threading.Event(), threading.Event()

    def _wsgi(self, environ, start_response):
        if environ["PATH_INFO"] != "/big.csv":
            return super()._wsgi(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/csv")])
        hang = self.hang.is_set()

        def body():
            yield b"n,name\n"
            for chunk in range(4):
                yield "".join(f"{chunk * 40_000 + i},row {i}\n" for i in range(40_000)).encode()
                if hang:
                    self.sent.set()
                    self.release.wait(60)
                    return
        return body()


def downloaded(temporary) -> int:
    """The bytes in the scratch folders of `temporary`."""
    return sum(f.stat().st_size for f in temporary.glob("civicat-download-*/*") if f.is_file())


KILLED_CHILD = "import sys\nfrom harvester.cli import cli\ncli(sys.argv[1:])\n"


def test_a_download_left_by_a_pull_killed_outright_is_removed_by_the_next_pull(tmp_path, monkeypatch, caplog):
    """`civicat records` SIGKILLed while it downloads a CSV (the OOM killer, `timeout -s KILL`):
    its folder in the temporary directory, the part downloaded in it, stayed there until the OS
    cleaned /tmp (a reboot, or days). The next pull removes it, saying so; a folder of a process
    still alive (this one's) is kept."""
    import logging
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from click.testing import CliRunner

    from catalog.scratch import ScratchFolder
    from harvester.cli import cli

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with HangingDownload({"dataset": []}) as portal:
        portal.document = {"dataset": [
            {"identifier": "big", "title": "Big", "description": "x",
             "distribution": [{"mediaType": "text/csv", "downloadURL": f"{portal.url}/big.csv"}]}]}
        db, result = harvest_with_records(tmp_path, "dj", "dcat-us", f"{portal.url}/data.json", ["big"],
                                          with_records=False)
        assert result.exit_code == 0, result.output
        config = str(tmp_path / "c.toml")
        env = {**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
        portal.hang.set()
        child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, "records", "dj:big", "--config", config,
                                  "--db", str(db)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert portal.sent.wait(120), "the download never began" + (
                f": {child.stderr.read().decode()[-2000:]}" if child.poll() is not None else "")
            deadline = time.monotonic() + 120   # (what was sent, written by the child: a loaded machine may be late)
            while not downloaded(temporary) and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            assert child.wait(60) == -signal.SIGKILL
        finally:
            child.kill()
            portal.release.set()
        [left] = temporary.iterdir()
        assert left.name.startswith(f"civicat-download-{child.pid}-")
        assert downloaded(temporary) > 0   # (the part downloaded: the kill left it)
        portal.hang.clear()
        monkeypatch.setattr(tempfile, "tempdir", str(temporary))
        alive = ScratchFolder("scan")   # (this process's, in use: kept)
        try:
            with caplog.at_level(logging.WARNING, logger="civicat.records"):
                result = CliRunner().invoke(cli, ["records", "dj:big", "--config", config, "--db", str(db), "--json"])
            assert result.exit_code == 0, result.output
            assert [p.name for p in temporary.iterdir()] == [alive.path.name]
        finally:
            alive.remove()
    assert json.loads(result.stdout)[0]["rows"] == 160_000
    assert any(f"removed {left} (" in r.getMessage() and f"left by process {child.pid}, which ended without "
               "removing it" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
