"""CKAN records: a DataStore table paged by datastore_search, and a CSV resource downloaded
whole, over HTTP against the local CKAN portal (rows from the recorded Boston Open311 page)."""
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.records import RecordsLayout
from harvester.portals import adapter_for
from harvester.portals.ckan import DatastoreRecords
from harvester.records import RecordsError, pull_dataset
from tests.conftest import fail_pull_after, fast_client, harvest_with_records, portal_config
from tests.portals.base import RawBody
from tests.portals.ckan import CkanPortal
from tests.shared_fixtures import load_json

STORE_ID, FILE_ID = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000b2"
FIELDS = [{"id": "_id", "type": "int"}, {"id": "service_request_id", "type": "text"},
          {"id": "status", "type": "text"}, {"id": "requested_datetime", "type": "timestamp"},
          {"id": "lat", "type": "numeric"}, {"id": "long", "type": "float8"}]


def boston_rows():
    requests = load_json("open311/boston-mayors24-requests-abandoned-vehicle-merged-pages.json")
    return [{"_id": n + 1, "service_request_id": r.get("service_request_id"), "status": r.get("status"),
             "requested_datetime": (r.get("requested_datetime") or "")[:19] or None,
             "lat": r.get("lat"), "long": r.get("long")} for n, r in enumerate(requests)]


@pytest.fixture
def ckan():
    rows = boston_rows()
    csv = "id,amount,paid_on,approved\n" + "".join(f"{i},{i * 1.5},2021-03-{1 + i % 28:02d},{'true' if i % 2 else 'false'}\n"
                                                     for i in range(2500))
    portal = CkanPortal([], prefix="/ckan", datastore={"res-store": FIELDS}, records={"res-store": rows})
    with portal:
        portal.packages = [
            {"id": STORE_ID, "name": "abandoned-vehicles", "title": "Abandoned vehicles", "resources": [
                {"id": "res-store", "name": "requests", "format": "CSV", "datastore_active": True,
                 "url": f"{portal.url}/datastore/dump/res-store"}]},
            {"id": FILE_ID, "name": "payments", "title": "Payments", "resources": [
                {"id": "res-file", "name": "payments.csv", "format": "CSV", "url": f"{portal.url}/files/payments.csv"}]},
        ]
        portal.serve_json("/files/payments.csv", RawBody(csv.encode()))
        yield portal, rows


def test_datastore_and_downloaded_resource(tmp_path, ckan):
    portal, rows = ckan
    _, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [STORE_ID, FILE_ID])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["portals"][0]["record_rows"] == len(rows) + 2500

    store = pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={STORE_ID}").sort_by("_id")
    assert store.num_rows == len(rows) == 1000
    assert store.schema.field("_id").type == pa.int64()
    assert store.schema.field("requested_datetime").type == pa.timestamp("us")
    assert store.schema.field("lat").type == pa.float64()
    assert store["service_request_id"].to_pylist() == [r["service_request_id"] for r in rows]
    pages = [q for p, q, _ in portal.requests if p == "/api/3/action/datastore_search" and q.get("limit") != "0"]
    assert pages and all(q["limit"] == "32000" and q["sort"] == "_id asc" for q in pages)

    paid = pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={FILE_ID}")
    assert paid.num_rows == 2500
    assert paid.schema.field("id").type == pa.int64() and paid.schema.field("amount").type == pa.float64()
    assert paid.schema.field("paid_on").type == pa.date32() and paid.schema.field("approved").type == pa.bool_()
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    types = dict(con.execute("SELECT column_name, type FROM column_profiles WHERE dataset_uid = ?",
                             [f"bos:{FILE_ID}"]).fetchall())
    assert types == {"id": "integer", "amount": "number", "paid_on": "date", "approved": "boolean"}


def test_html_instead_of_the_file_is_an_error_and_nothing_is_published(tmp_path, ckan):
    portal, _ = ckan
    portal.inject("/files/payments.csv", "html", times=20)
    _, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [FILE_ID])
    assert result.exit_code == 0
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1
    assert not (tmp_path / "records" / "portal=bos").exists()
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    assert "HTML page instead of data" in con.execute("SELECT message FROM harvest_errors").fetchone()[0]


def test_an_error_text_in_place_of_the_file_keeps_the_dataset_and_full_takes_a_new_file(tmp_path, ckan):
    # a file server's "Service Unavailable" behind a 200, as text/plain: read as a CSV, it was a dataset of
    # one column of that name and no rows, published in place of the 2,500 rows, the pull reported ok
    portal, _ = ckan
    db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [FILE_ID])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 0
    portal.serve_json("/files/payments.csv", RawBody(b"Service Unavailable", "text/plain"))
    db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [FILE_ID])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1
    assert pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={FILE_ID}").num_rows == 2500
    message = duckdb.connect(str(db)).execute(
        "SELECT message FROM harvest_errors WHERE stage = 'records' ORDER BY message").fetchall()[-1][0]
    assert "none of its columns ('Service Unavailable') is one of the" in message, message
    # a file that is another table now (its publisher replaced it) is taken by a full pull
    portal.serve_json("/files/payments.csv", RawBody(b"code,label\n1,a\n2,b\n"))
    db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [FILE_ID], "--full")
    assert json.loads(result.output)["portals"][0]["records_failed"] == 0, result.output
    assert pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={FILE_ID}").column_names == ["code", "label"]


def test_a_download_over_its_cap_is_refused_and_nothing_is_published(tmp_path, ckan, monkeypatch):
    portal, _ = ckan
    monkeypatch.setenv("CIVICAT_HTTP_MAX_DOWNLOAD_BYTES", "1000")   # the file is ~60 KB
    db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [FILE_ID])
    assert result.exit_code == 0 and json.loads(result.output)["portals"][0]["records_failed"] == 1
    assert not (tmp_path / "records" / "portal=bos").exists()
    con = duckdb.connect(str(db))
    assert con.execute("SELECT error_type FROM harvest_errors").fetchone()[0] == "ResponseTooLarge"


def test_field_names_alike_but_for_case_or_control_characters_become_distinct_columns(tmp_path):
    """A DataStore (Postgres: names are case-sensitive) with `ID` and `id`, `a`, `a` + a line
    break and `a_2`, a CSV resource with `a` + NUL beside `a`: each pull failed (`Field "a_2"
    exists 2 times`), or wrote Parquet columns that DuckDB reads as `id_1`, which the
    profiles then named apart from the files."""
    fields = [{"id": "_id", "type": "int"}, {"id": "ID", "type": "text"}, {"id": "id", "type": "int"},
              {"id": "a", "type": "text"}, {"id": "a\n", "type": "text"}, {"id": "a_2", "type": "text"}]
    rows = [{"_id": i + 1, "ID": f"X{i}", "id": i, "a": "one", "a\n": "two", "a_2": "three"} for i in range(5)]
    with CkanPortal([], datastore={"res-names": fields}, records={"res-names": rows}) as portal:
        portal.packages = [
            {"id": STORE_ID, "name": "names", "title": "Names", "resources": [
                {"id": "res-names", "name": "r", "format": "CSV", "datastore_active": True, "url": f"{portal.url}/x"}]},
            {"id": FILE_ID, "name": "file", "title": "File", "resources": [
                {"id": "res-file", "name": "f.csv", "format": "CSV", "url": f"{portal.url}/f.csv"}]}]
        portal.serve_json("/f.csv", RawBody(b"a\x00,a,a_2\n1,2,3\n4,5,6\n"))
        db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [STORE_ID, FILE_ID])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 2, result.output
    store = pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={STORE_ID}")
    assert store.column_names == ["_id", "ID", "id_2", "a", "a_3", "a_2"]
    assert store.slice(0, 1).to_pylist() == [{"_id": 1, "ID": "X0", "id_2": 0, "a": "one", "a_3": "two", "a_2": "three"}]
    downloaded = pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={FILE_ID}")
    assert downloaded.num_rows == 2 and len({name.lower() for name in downloaded.column_names}) == 3
    assert sorted(downloaded.slice(0, 1).to_pylist()[0].values()) == [1, 2, 3]
    con = duckdb.connect(str(db))
    for uid, table in ((STORE_ID, store), (FILE_ID, downloaded)):
        profiled = [r[0] for r in con.execute("SELECT column_name FROM column_profiles WHERE dataset_uid = ?",
                                              [f"bos:{uid}"]).fetchall()]
        assert sorted(profiled) == sorted(table.column_names)


def test_datastore_fields_that_change_while_the_table_is_read_fail_the_pull(tmp_path, ckan):
    """`status` renamed `state` after the pull listed the fields: its rows' status was null,
    `state` was lost, and the pull reported complete."""
    portal, rows = ckan
    renamed = [dict(f, id="state") if f["id"] == "status" else f for f in FIELDS]

    def rename_once_read(path, query):
        if path == "/api/3/action/datastore_search" and query.get("limit") != "0":
            portal.datastore["res-store"] = renamed
            portal.records["res-store"] = [{("state" if k == "status" else k): v for k, v in r.items()} for r in rows]

    portal.on_request = rename_once_read
    db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [STORE_ID])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    assert not (tmp_path / "records" / "portal=bos").exists()
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors").fetchone()[0]
    assert "columns changed while the dataset was read" in message and "new: ['state'], gone: ['status']" in message


def test_an_integer_past_64_bits_in_a_numeric_field_is_a_number_and_in_an_int_field_a_value_counted_bad(tmp_path):
    """JSON's integers past 64 bits are read exactly since orjson is not trusted with them (it
    made them floats): Arrow then refused the column ('Python int too large to convert to C
    long', an OverflowError) and the dataset's whole pull failed."""
    fields = [{"id": "_id", "type": "int"}, {"id": "account", "type": "numeric"}, {"id": "count", "type": "int"}]
    rows = [{"_id": 1, "account": 12345678901234567890123, "count": 18446744073709551616},
            {"_id": 2, "account": 1.5, "count": 3}]
    with CkanPortal([], datastore={"res-long": fields}, records={"res-long": rows}) as portal:
        portal.packages = [{"id": STORE_ID, "name": "long", "title": "Long", "resources": [
            {"id": "res-long", "name": "r", "format": "CSV", "datastore_active": True, "url": f"{portal.url}/x"}]}]
        _, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [STORE_ID])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    table = pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={STORE_ID}").sort_by("_id")
    assert table.to_pylist() == [{"_id": 1, "account": 1.2345678901234568e22, "count": None},
                                 {"_id": 2, "account": 1.5, "count": 3}]


class Killed(Exception):
    pass


class RowsOfAnEarlierOffset(CkanPortal):
    """Answers `datastore_search` at offset `at`, the first time, with the rows 20 before
    (a stale or misrouted page: neither the page before nor the one asked)."""

    def __init__(self, at: int, **kwargs):
        super().__init__([], **kwargs)
        self.at, self.done = at, False

    def route(self, path, query):
        if path == "/api/3/action/datastore_search" and query.get("offset") == str(self.at) and not self.done:
            self.done = True
            query = {**query, "offset": str(self.at - 20)}
        return super().route(path, query)


def test_a_page_of_rows_already_read_fails_the_pull_instead_of_doubling_them(tmp_path, monkeypatch):
    """Rows come sorted by `_id`: a page that starts at or before the last `_id` read holds
    rows read already. Only a page equal to the one before was refused: the pull published
    20 rows twice, its count met (it reads on to an empty page), and reported ok."""
    monkeypatch.setattr("harvester.portals.ckan.RECORD_ROWS", 100)
    rows = boston_rows()
    with RowsOfAnEarlierOffset(300, prefix="/ckan", datastore={"res-store": FIELDS},
                               records={"res-store": rows}) as portal:
        portal.packages = [{"id": STORE_ID, "name": "abandoned-vehicles", "title": "Abandoned vehicles", "resources": [
            {"id": "res-store", "name": "requests", "format": "CSV", "datastore_active": True}]}]
        db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [STORE_ID])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    assert not (tmp_path / "records" / "portal=bos").exists()
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors").fetchone()[0]
    assert "offset=300, limit=100 starts at _id 281, not past the last row read (_id 300)" in message, message


def test_a_resumed_pull_refuses_a_page_of_rows_read_before_it_stopped(tmp_path, store, monkeypatch):
    """A pull cut short after 300 rows, resumed: its first page is answered with rows from 280
    on. Nothing read since the resume to compare it with, it was written: 20 rows twice."""
    monkeypatch.setattr("harvester.portals.ckan.RECORD_ROWS", 100)
    with RowsOfAnEarlierOffset(300, prefix="/ckan", datastore={"res-store": FIELDS},
                               records={"res-store": boston_rows()}) as portal:
        portal.done = True   # (answered right until the pull is resumed)
        adapter = adapter_for(portal_config("bos", "ckan", portal.url), fast_client())
        layout = RecordsLayout(tmp_path / "records")
        source = DatastoreRecords(adapter, "res-store")
        fail_pull_after(source, 3, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "bos", STORE_ID, store.con, uid=f"bos:{STORE_ID}", run_id="r", part_rows=100)
        portal.done = False
        with pytest.raises(RecordsError, match=r"offset=300, limit=100 starts at _id 281, not past the last row read "
                                               r"\(_id 300\)"):
            pull_dataset(DatastoreRecords(adapter, "res-store"), layout, "bos", STORE_ID, store.con,
                         uid=f"bos:{STORE_ID}", run_id="r", part_rows=100)
    assert json.loads((layout.staging("bos", STORE_ID) / "progress.json").read_text())["rows"] == 300


def test_a_row_removed_while_the_datastore_is_read_is_read_again_not_a_failed_pull(tmp_path, monkeypatch):
    """A row removed before the page being read moves the rows after it back: one is never
    read. The pull failed (1,000 rows counted, 999 read); the page that counts 999 says so at
    once, and read again the pull is the table as it now is, with a warning that says why."""
    monkeypatch.setattr("harvester.portals.ckan.RECORD_ROWS", 100)
    rows = boston_rows()
    with CkanPortal([], prefix="/ckan", datastore={"res-store": FIELDS}, records={"res-store": rows}) as portal:
        portal.packages = [{"id": STORE_ID, "name": "abandoned-vehicles", "title": "Abandoned vehicles", "resources": [
            {"id": "res-store", "name": "requests", "format": "CSV", "datastore_active": True}]}]

        def remove_row_50(path, query):
            if query.get("offset") == "300" and rows[49]["_id"] == 50:
                del rows[49]

        portal.on_request = remove_row_50
        db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [STORE_ID])
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"], report["warnings"]) == (1, 999, 1), result.output
    ids = pq.read_table(tmp_path / "records" / "portal=bos" / f"dataset={STORE_ID}")["_id"].to_pylist()
    assert sorted(ids) == [r["_id"] for r in rows] and 50 not in ids
    kind, message = duckdb.connect(str(db)).execute("SELECT error_type, message FROM harvest_errors").fetchone()
    assert kind == "ChangedWhileRead" and message.endswith(
        "offset=300, limit=100 counts 999 rows where the pull began with 1000: rows were removed as it read them: "
        "the pull read it again"), message


def test_each_failed_pull_is_stored_under_the_type_that_says_what_happened(tmp_path, ckan):
    """A records pull that failed for its dataset's own reason was stored as `RecordsError`
    (Python's name), whatever the reason: a DataStore answering no fields (the portal's API
    changed), a package with nothing to pull, a source id the catalogue does not hold, a file
    that is not the dataset (an error text behind a 200) all looked alike to a filter."""
    portal, _ = ckan
    nothing_id, typo_id = "00000000-0000-0000-0000-0000000000c3", "00000000-0000-0000-0000-0000000000ff"
    portal.packages.append({"id": nothing_id, "name": "a-report", "title": "A report", "resources": [
        {"id": "res-pdf", "name": "report.pdf", "format": "PDF", "url": f"{portal.url}/files/report.pdf"}]})
    portal.datastore["res-store"] = []   # a DataStore table always has fields (_id at least)
    pulled = [STORE_ID, FILE_ID, nothing_id, typo_id]
    db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, pulled)
    assert json.loads(result.output)["portals"][0]["records_failed"] == 3, result.output
    first_run = json.loads(result.output)["run_id"]
    portal.serve_json("/files/payments.csv", RawBody(b"Service Unavailable", "text/plain"))
    db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [FILE_ID])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    # (the first run's first: run ids name their second, two runs of one second sort by chance)
    stored = duckdb.connect(str(db)).execute(
        "SELECT source_id, error_type, message FROM harvest_errors WHERE stage = 'records' "
        "ORDER BY run_id <> ?, source_id", [first_run]).fetchall()
    assert [(source_id, kind) for source_id, kind, _ in stored] == [
        (STORE_ID, "UnexpectedResult"), (nothing_id, "NotPullable"), (typo_id, "NotPullable"),
        (FILE_ID, "NotTheDataset")], stored
    assert "lists no fields" in stored[0][2] and "no DataStore resource and no CSV resource" in stored[1][2]
    assert "is not in the catalogue" in stored[2][2] and "none of its columns" in stored[3][2]
