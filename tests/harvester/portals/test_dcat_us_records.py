"""DCAT-US records: the first CSV distribution, downloaded whole and typed by DuckDB's
sniffer, over HTTP against the local data.json portal."""
import json

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
