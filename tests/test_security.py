"""Security: `civicat sql` cannot write or read files, the app token goes nowhere but the
portal's request headers, a response past the size cap is refused, and names that come from
portals never leave the folder they are written under."""
import json
import logging
import sqlite3

import pytest
from click.testing import CliRunner

from catalog.query import QueryRefused, run_query
from catalog.records import RecordsLayout, safe_segment
from catalog.store import Store
from harvester.cli import cli
from harvester.http import ResponseTooLarge, ValidatorCache
from harvester.pipeline import harvest
from tests.conftest import fast_client, harvest_with_records, new_store, portal_config
from tests.portals.base import RawBody
from tests.portals.dcat import DataJsonPortal
from tests.portals.socrata import SocrataPortal, SodaTable
from tests.portals.synth import make_data_json, make_socrata_entries

DOMAIN = "data.example.org"
TOKEN = "tok-SECRET-1234567890"


# -- civicat sql ----------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path, migrated_catalogue):
    store = new_store(tmp_path / "c.duckdb", migrated_catalogue)
    store.con.execute("CREATE TABLE t AS SELECT 1 AS a")
    store.close()
    return tmp_path / "c.duckdb"


@pytest.mark.parametrize("sql", [
    "DELETE FROM t", "INSERT INTO t VALUES (2)", "UPDATE t SET a = 2", "DROP TABLE t", "CREATE TABLE x (a INT)",
    "ATTACH 'other.duckdb'", "COPY t TO 'out.csv'", "INSTALL fts", "LOAD fts", "SET enable_external_access = true",
    "EXPORT DATABASE 'dump'", "CHECKPOINT", "SELECT 1; DELETE FROM t", "CALL pragma_version()",
    "PRAGMA enable_external_access", "DETACH memory", "USE memory",
])
def test_writes_and_file_access_are_refused(db, sql):
    with pytest.raises(QueryRefused):
        run_query(db, sql)
    assert run_query(db, "SELECT count(*) FROM t")[1] == [(1,)]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('x.parquet')", "SELECT * FROM read_json('x.json')",
    "SELECT * FROM read_csv_auto('/etc/passwd')", "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')", "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM parquet_metadata('x.parquet')", "SELECT * FROM read_json_objects('x.json')",
    "SELECT * FROM 'https://example.org/data.csv'", "FROM duckdb_secrets()",
])
def test_file_reading_table_functions_are_refused(db, sql):
    with pytest.raises(Exception, match="(?i)permission|disabled"):
        run_query(db, sql)


@pytest.mark.parametrize("sql", ["SELECT * FROM query('DELETE FROM t')", "SELECT * FROM query('ATTACH ''x.db''')",
                                 "SELECT * FROM query('COPY t TO ''out.csv''')"])
def test_a_statement_smuggled_into_query_cannot_write(db, sql):
    with pytest.raises(Exception):
        run_query(db, sql)
    assert run_query(db, "SELECT count(*) FROM t")[1] == [(1,)]
    assert not (db.parent / "out.csv").exists() and not (db.parent / "x.db").exists()


def test_the_sql_command_refuses_with_a_message_and_exit_code(db):
    refused = CliRunner().invoke(cli, ["sql", "--db", str(db), "DELETE FROM t"])
    assert refused.exit_code == 2 and "only read-only queries" in refused.output
    denied = CliRunner().invoke(cli, ["sql", "--db", str(db), "SELECT * FROM read_text('/etc/hostname')"])
    assert denied.exit_code == 2 and "disabled" in denied.output   # refused by the policy: bad usage
    assert CliRunner().invoke(cli, ["sql", "--db", str(db), "SELECT getenv('HOME')"]).exit_code == 2  # no env reads


# -- the app token ----------------------------------------------------------------------------

def test_the_app_token_is_sent_as_a_header_and_never_stored_logged_or_printed(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CIVICAT_TEST_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    entries = make_socrata_entries(5, domain=DOMAIN)
    record_id = next(e["resource"]["id"] for e in entries if e["resource"]["type"] == "dataset")
    table = SodaTable.from_rows([{"a": str(i), "b": f"row {i}"} for i in range(30)])
    with SocrataPortal(entries, domain=DOMAIN, records={record_id: table}) as portal:
        portal.inject("/api/catalog/v1", ("status", 503), times=1)   # a retry is logged: with no token in it
        db, result = harvest_with_records(tmp_path, "city", "socrata", portal.url, [record_id],
                                          extra=f'domain = "{DOMAIN}"\napp_token_env = "CIVICAT_TEST_TOKEN"\n')
        assert result.exit_code == 0, result.output
        assert portal.requests and all(headers.get("X-App-Token") == TOKEN for _, _, headers in portal.requests)
        assert not any(TOKEN in json.dumps(query) or TOKEN in path for path, query, _ in portal.requests)
    report = json.loads(result.stdout)
    assert report["portals"][0]["records_pulled"] == 1 and report["portals"][0]["retries"] == 1
    assert TOKEN not in result.output and TOKEN not in caplog.text and "retrying" in caplog.text
    runs = CliRunner().invoke(cli, ["runs", "--db", str(db), "--errors", "--json"])
    assert runs.exit_code == 0 and TOKEN not in runs.output
    with sqlite3.connect(tmp_path / "http_cache" / ValidatorCache.CACHE_FILE) as cache:
        assert cache.execute("SELECT count(*) FROM entries").fetchone()[0] > 0
    assert any((tmp_path / "records").rglob("*.parquet"))
    for path in tmp_path.rglob("*"):   # the catalogue, its WAL, the HTTP cache, the records Parquet
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


# -- the response-size cap --------------------------------------------------------------------

def test_a_response_past_the_size_cap_is_refused_and_not_retried():
    with DataJsonPortal(make_data_json(5)) as portal:
        with pytest.raises(ResponseTooLarge, match="cap"):
            fast_client(max_bytes=1000).get_json(portal.url + "/data.json")
        assert portal.hits["/data.json"] == 1


def test_a_listing_past_the_size_cap_fails_its_portal_and_loses_nothing(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    try:
        with DataJsonPortal(make_data_json(5)) as portal:
            config = portal_config("city", "dcat-us", portal.url + "/data.json")
            assert harvest([config], store, fast_client()).ok
            portal.document = make_data_json(400)            # the portal's answer grows past the cap
            report = harvest([config], store, fast_client(max_bytes=200_000)).portals[0]
            url = portal.url
        assert report.status == "failed" and report.error_type == "ResponseTooLarge"
        # one document cannot be asked for in parts: the message says what raises the cap
        assert report.error_message == ("response is over the 200000-byte cap, and this listing cannot ask for its "
                                         "one document in smaller parts nor skip an entry by its position "
                                         f"(CIVICAT_HTTP_MAX_BYTES raises the cap) ({url}/data.json)")
        assert store.con.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NULL").fetchone() == (5,)
    finally:
        store.close()


# -- names from portals -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../etc", "..", ".", "a/b", "a\\b", "x\x00y", "/abs", "ünï cödé", "%2F", "a" * 500])
def test_names_from_portals_stay_inside_the_records_folder(tmp_path, name):
    layout = RecordsLayout(tmp_path / "records")
    segment = safe_segment(name)
    assert "/" not in segment and "\\" not in segment and "\x00" not in segment
    assert not segment.startswith(".") and len(segment) <= 120
    for folder in (layout.folder("p", name), layout.staging("p", name), layout.folder(name, name)):
        assert layout.root in folder.parents or layout.staging_root in folder.parents
        assert folder.parent.parent in (layout.root, layout.staging_root)
    folder = layout.folder("p", name)
    folder.mkdir(parents=True)
    assert folder.is_dir() and folder.resolve().parent == (layout.root / "portal=p").resolve()


def test_a_dataset_id_that_climbs_out_lands_inside_records(tmp_path):
    document = make_data_json(2)
    evil = "../../../escaped"
    document["dataset"][0].update(identifier=evil, distribution=[
        {"@type": "dcat:Distribution", "mediaType": "text/csv", "format": "CSV", "downloadURL": "PORTAL/rows.csv"}])
    with DataJsonPortal(document) as portal:
        document["dataset"][0]["distribution"][0]["downloadURL"] = portal.url + "/rows.csv"
        portal.static["/rows.csv"] = RawBody(b"a,b\n1,x\n2,y\n")
        db, result = harvest_with_records(tmp_path, "city", "dcat-us", portal.url + "/data.json", [evil])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["portals"][0]["records_pulled"] == 1
    written = [p for p in tmp_path.rglob("*.parquet")]
    assert written and all((tmp_path / "records") in p.parents for p in written)
    assert not (tmp_path.parent / "escaped").exists() and not any(tmp_path.parent.glob("escaped*"))
