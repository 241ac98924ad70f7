"""Socrata records through SODA, over HTTP against the local portal serving the recorded
Seattle SPD 911 page (1,000 rows, 19 catalogue columns of which 4 never appear in rows)."""
import json
import re
import threading
from datetime import UTC, datetime, timedelta

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from catalog.records import RecordsLayout, previous_pull
from harvester.pipeline import ErrorLog, PortalReport
from harvester.portals import adapter_for
from harvester.portals.socrata import SodaRecords
from harvester.records import RecordsError, pull_dataset, stored_datasets
from tests.conftest import fail_pull_after, fast_client, harvest_with_records, portal_config
from tests.portals.base import RawBody
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry
from tests.shared_fixtures import load_json

ID = "3k2p-39jp"


@pytest.fixture
def seattle():
    view = load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")
    rows = load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json")
    with SocrataPortal([discovery_entry(view)], records={ID: SodaTable.from_rows(rows)}) as portal:
        yield portal


def harvest(tmp_path, url, *options, records=True):
    return harvest_with_records(tmp_path, "sea", "socrata", url, [ID], *options, extra='domain = "data.example.org"\n',
                                with_records=records)


def test_harvest_records_writes_typed_parquet_and_profiles(tmp_path, seattle):
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    portal = json.loads(result.output)["portals"][0]
    assert (portal["records_pulled"], portal["records_failed"], portal["record_rows"]) == (1, 0, 1000)

    folder = tmp_path / "records" / "portal=sea" / f"dataset={ID}"
    table = pq.read_table(folder)
    assert table.num_rows == 1000
    schema = table.schema
    assert schema.field("event_clearance_date").type == pa.timestamp("us")
    assert schema.field(":updated_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("longitude").type == pa.float64() and schema.field("latitude").type == pa.float64()
    assert schema.field("cad_cdw_id").type == pa.string()
    assert schema.field("at_scene_time").type == pa.timestamp("us")     # listed, never in a row: all null
    assert table["at_scene_time"].null_count == 1000
    first = table.sort_by(":id").slice(0, 1).to_pylist()[0]
    assert first["incident_location"] == "POINT (-122.404612874 47.658324899)"
    assert first["event_clearance_date"].isoformat() == "2010-07-17T20:50:00"
    assert first["longitude"] == pytest.approx(-122.404612874)
    # nothing left in staging
    assert not any((tmp_path / ".records-staging").rglob("*.parquet"))

    con = duckdb.connect(str(db))
    profiles = {r[0]: r[1:] for r in con.execute(
        "SELECT column_name, type, row_count, null_count, distinct_count, min_value, max_value, top_values "
        "FROM column_profiles WHERE dataset_uid = 'sea:3k2p-39jp'").fetchall()}
    assert len(profiles) == 21
    kind, rows, nulls, distinct, low, high, top = profiles["district_sector"]
    assert (kind, rows) == ("text", 1000) and 5 <= distinct <= 30 and top and len(top) == distinct
    expected_nulls = sum(1 for r in load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json")
                         if not r.get("district_sector"))
    assert nulls == expected_nulls
    kind, _, _, _, low, high, _ = profiles["event_clearance_date"]
    assert kind == "datetime" and low < high and profiles["incident_location"][0] == "point"
    assert profiles["latitude"][0] == "number" and 47 < float(profiles["latitude"][4]) < 48
    # the analyst's way in: a macro over the dataset's folder
    assert con.execute(f"SELECT count(*) FROM records('sea', '{ID}')").fetchone()[0] == 1000
    assert con.execute("SELECT row_count, mode FROM record_pulls").fetchall() == [(1000, "full")]


def test_soda_pages_of_50000_in_id_order(tmp_path, seattle):
    _, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    pages = [q for p, q, _ in seattle.requests if p == f"/resource/{ID}.csv"]
    assert pages == [{"$select": ":id,:updated_at,*", "$order": ":id", "$limit": "50000", "$offset": "0"}]
    assert SodaTable.MAX_LIMIT == 50_000 and seattle.records[ID].answer("csv", {"$limit": "50001"})[0] == 400


def pull_alone(tmp_path, url, **source_options):
    """Harvest the catalogue only, then pull with a custom SodaRecords (small pages)."""
    db, result = harvest(tmp_path, url, records=False)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db))
    portal = portal_config("sea", "socrata", url, domain="data.example.org")
    adapter = adapter_for(portal, fast_client())
    dataset = stored_datasets(con, [f"sea:{ID}"])[f"sea:{ID}"]
    return con, adapter, dataset


def test_small_pages_give_exact_rows_in_order(tmp_path, seattle):
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    source = SodaRecords(adapter, dataset, None, page=300)
    layout = RecordsLayout(tmp_path / "other-records")
    result = pull_dataset(source, layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r")
    assert result.rows == 1000
    ids = pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"].to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == 1000


def test_pages_are_sized_by_the_bytes_of_the_rows_read_and_a_resumed_pull_keeps_to_it(tmp_path, seattle, monkeypatch):
    """A page asked 50,000 rows whatever their width: 1,000 text columns made a page of ~1 GB,
    cut only by the response cap (read on in pages of up to 256 MiB). From the first page
    read, a page asks as many rows as fit about PAGE_BYTES at the width of the rows read (the
    first, as many as fit at FIRST_PAGE_COLUMN_BYTES a column); a pull cut short resumes at
    the request it had next, then sizes its pages the same way."""
    import harvester.records

    monkeypatch.setattr(harvester.records, "PAGE_BYTES", 64 * 1024)   # (the 1,000 rows' pages: ~240 rows)
    monkeypatch.setattr(harvester.records, "FIRST_PAGE_COLUMN_BYTES", 16)
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    layout = RecordsLayout(tmp_path / "records")
    seattle.clear_log()
    source = SodaRecords(adapter, dataset, None, page=300)
    first = 64 * 1024 // (len(source.fields) * 16)   # (21 columns: 195 rows)
    result = pull_dataset(source, layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r", part_rows=200)
    assert result.rows == 1000
    table = pq.read_table(layout.folder("sea", ID))
    fitted = 64 * 1024 * 1000 // table.nbytes   # rows of 64 KiB at the dataset's width
    limits = [int(q["$limit"]) for p, q, _ in seattle.requests if p.endswith(".csv")]
    assert limits[0] == first < 300 and len(set(limits[1:])) == 1, limits   # the first page, then one fitted size
    assert 0.75 * fitted <= limits[1] <= 1.25 * fitted < 300, (limits, fitted)
    rest = 1000 - first
    assert len(limits) == 1 + -(-rest // limits[1]) + (rest % limits[1] == 0)   # up to an empty page if the last is full

    layout = RecordsLayout(tmp_path / "again")
    source = SodaRecords(adapter, dataset, None, page=300)
    fail_pull_after(source, 3, Interrupted("killed"))
    with pytest.raises(Interrupted):
        pull_dataset(source, layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r", part_rows=200)
    seattle.clear_log()
    result = pull_dataset(SodaRecords(adapter, dataset, None, page=300), layout, "sea", ID, con,
                          uid=f"sea:{ID}", run_id="r", part_rows=200)
    assert result.resumed and result.rows == 1000
    asked = [(int(q["$offset"]), int(q["$limit"])) for p, q, _ in seattle.requests if p.endswith(".csv")]
    resumed_at = asked[1][0]   # (after the row before it, asked alone)
    assert asked[0] == (resumed_at - 1, 1) and resumed_at == first + 2 * limits[1], asked
    assert {limit for _, limit in asked[1:]} == {limits[1]}, asked   # the state's size, and the fit again
    assert pq.read_table(layout.folder("sea", ID)).sort_by(":id").equals(table.sort_by(":id"))


def test_json_format_gives_the_same_table(tmp_path, seattle):
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    tables = {}
    for fmt in ("csv", "json"):
        layout = RecordsLayout(tmp_path / f"records-{fmt}")
        pull_dataset(SodaRecords(adapter, dataset, None, format=fmt, page=400), layout, "sea", ID, con,
                     uid=f"sea:{ID}", run_id="r")
        tables[fmt] = pq.read_table(layout.folder("sea", ID)).sort_by(":id")
    assert tables["csv"].schema == tables["json"].schema
    assert tables["csv"].equals(tables["json"])


def with_nan_longitudes(table: pa.Table, rows) -> pa.Table:
    """`table` with the longitude of `rows` (positions in `:id` order) 'NaN': a number column's
    text the pull reads as a float NaN."""
    rows, at = set(rows), table.column_names.index("longitude")
    values = ["NaN" if i in rows else v for i, v in enumerate(table["longitude"].to_pylist())]
    return table.set_column(at, "longitude", pa.array(values, pa.string()))


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("nan", [False, True], ids=["numbers", "nan"])
def test_an_interrupted_pull_resumes_and_never_shows_partial_data(tmp_path, seattle, nan):
    """`nan`: the row before the resume point (row 499, the last staged) holds a float NaN, which
    Arrow's `equals` has unequal to itself: until session 43 that row asked again was never the
    row staged, and the pull started over (every page asked again)."""
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    if nan:
        seattle.records[ID] = SodaTable(with_nan_longitudes(seattle.records[ID].table, [499]))
    layout = RecordsLayout(tmp_path / "records")
    source = SodaRecords(adapter, dataset, None, page=100)
    fail_pull_after(source, 5, Interrupted("killed"))
    with pytest.raises(Interrupted):
        pull_dataset(source, layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r", part_rows=200)
    assert not layout.folder("sea", ID).exists()          # nothing visible
    staged = sorted(p.name for p in (layout.staging("sea", ID) / "parts").iterdir())
    # 5 pages done: two parts of two, and the part being written kept at its one page read whole
    assert staged == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]

    seattle.clear_log()
    result = pull_dataset(SodaRecords(adapter, dataset, None, page=100), layout, "sea", ID, con,
                          uid=f"sea:{ID}", run_id="r", part_rows=200)
    assert result.resumed and result.rows == 1000
    offsets = [int(q["$offset"]) for p, q, _ in seattle.requests if p.endswith(".csv")]
    # the row before them asked again (it is the last staged: the rows up to there did not move), then
    # on from the parts it had, to an empty page
    assert sorted(offsets) == [499, 500, 600, 700, 800, 900, 1000]
    ids = pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"].to_pylist()
    assert len(ids) == len(set(ids)) == 1000


def test_reset_and_truncated_pages_are_retried(tmp_path, seattle):
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    seattle.inject(f"/resource/{ID}.csv", "reset")
    seattle.inject(f"/resource/{ID}.csv", "truncated")
    seattle.inject(f"/resource/{ID}.csv", "truncated_json")   # a CSV cut mid-row
    layout = RecordsLayout(tmp_path / "records")
    result = pull_dataset(SodaRecords(adapter, dataset, None, page=250), layout, "sea", ID, con,
                          uid=f"sea:{ID}", run_id="r")
    assert result.rows == 1000 and not seattle.pending_faults


def test_a_failing_pull_keeps_the_previous_parquet_and_records_the_error(tmp_path, seattle):
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0
    folder = tmp_path / "records" / "portal=sea" / f"dataset={ID}"
    before = sorted(p.read_bytes() for p in folder.iterdir())
    seattle.inject(f"/resource/{ID}.csv", ("status", 503), times=50)
    _, result = harvest(tmp_path, seattle.url, "--full")
    assert result.exit_code == 0, result.output          # one dataset's failure does not fail the portal
    portal = json.loads(result.output)["portals"][0]
    assert (portal["status"], portal["records_failed"], portal["errors"]) == ("ok", 1, 1)
    assert sorted(p.read_bytes() for p in folder.iterdir()) == before
    con = duckdb.connect(str(db))
    stage, kind, message = con.execute("SELECT stage, error_type, message FROM harvest_errors").fetchone()
    assert (stage, kind) == ("records", "ServerError") and "503" in message


class ServesFewerThanItCounts(SodaTable):
    """Counts its 1,000 rows and serves the first 700: pages cut short without an error."""

    def answer(self, fmt, query):
        if query.get("$select", "").startswith("count(*)"):
            return super().answer(fmt, query)
        return SodaTable(self.table.slice(0, 700)).answer(fmt, query)


def test_a_short_read_is_an_error_not_a_short_dataset(tmp_path, seattle):
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    seattle.records[ID] = ServesFewerThanItCounts(seattle.records[ID].table)
    source = SodaRecords(adapter, dataset, None, page=300)
    errors = ErrorLog(_NoStore(), "r", "sea", PortalReport("sea"))
    layout = RecordsLayout(tmp_path / "records")
    with pytest.raises(Exception, match="reported 1000 rows but the pull gave 700"):
        pull_dataset(source, layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r")
    assert not layout.folder("sea", ID).exists()
    assert errors.rows == []


class _NoStore:
    def add_errors(self, rows):
        pass


def test_second_pull_is_incremental_by_updated_at(tmp_path, seattle):
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0
    table = seattle.records[ID].table
    rows = table.to_pylist()
    rows[3]["district_sector"] = "CHANGED"
    rows[3][":updated_at"] = "2024-02-01T00:00:00.000Z"
    rows.append({**rows[10], ":id": "row-99999999", ":updated_at": "2024-02-02T00:00:00.000Z"})
    seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
    seattle.clear_log()
    _, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    pages = [q for p, q, _ in seattle.requests if p.endswith(".csv")]
    assert [q.get("$where") for q in pages] == [":updated_at > '2024-01-15T12:00:00.000'"]
    merged = pq.read_table(tmp_path / "records" / "portal=sea" / f"dataset={ID}").sort_by(":id")
    assert merged.num_rows == 1001 and merged.num_columns == 21   # no partition columns (portal, dataset) added
    assert merged.slice(3, 1).to_pylist()[0]["district_sector"] == "CHANGED"
    con = duckdb.connect(str(db))
    assert con.execute("SELECT row_count, mode, watermark FROM record_pulls").fetchall() == [
        (1001, "incremental", "2024-02-02T00:00:00.000")]
    con.close()
    _, result = harvest(tmp_path, seattle.url)     # over the Parquet DuckDB merged: still incremental
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db))
    assert con.execute("SELECT row_count, mode FROM record_pulls").fetchall() == [(1001, "incremental")]


class NullRowTable(SodaTable):
    """A SODA whose JSON pages of changed rows carry a `null` among them."""

    def answer(self, fmt, query):
        status, body = super().answer(fmt, query)
        if fmt == "json" and query.get("$where") and isinstance(body, RawBody):
            body = RawBody(orjson.dumps([None, *orjson.loads(body.body)]), body.content_type)
        return status, body


def test_a_record_of_nulls_among_the_changed_rows_keeps_every_row_of_the_previous_pull(tmp_path, seattle):
    # a record that is no object is a row of nulls, its :id null: merged by `:id NOT IN (...)`, that null
    # made the test unknown for every previous row, and the dataset was the changed rows alone, the pull ok
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    layout = RecordsLayout(tmp_path / "records-json")
    pull_dataset(SodaRecords(adapter, dataset, None, format="json", page=400), layout, "sea", ID, con,
                 uid=f"sea:{ID}", run_id="r1")
    rows = seattle.records[ID].table.to_pylist()
    rows[3][":updated_at"] = "2024-02-01T00:00:00.000Z"
    seattle.records[ID] = NullRowTable(pa.Table.from_pylist(rows, schema=seattle.records[ID].table.schema))
    result = pull_dataset(SodaRecords(adapter, dataset, previous_pull(con, f"sea:{ID}"), format="json", page=400),
                          layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r2")
    assert result.status == "ok" and result.mode == "incremental" and result.not_objects == 1
    merged = pq.read_table(layout.folder("sea", ID))
    assert merged.num_rows == 1001   # the 1,000 rows, the changed one once, and the row of nulls
    assert pc.count(merged[":id"]).as_py() == 1000


def test_a_record_of_nulls_read_again_by_the_next_delta_is_kept_once(tmp_path, seattle):
    # the previous rows of nulls were all kept and the delta's added: a delta that gave the same
    # non-object again (here every page of changed rows has one) added a row of nulls every pull.
    # Open311's rule: the previous rows without a key the delta does not hold again (EXCEPT ALL)
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    layout = RecordsLayout(tmp_path / "records-json")
    pull_dataset(SodaRecords(adapter, dataset, None, format="json", page=400), layout, "sea", ID, con,
                 uid=f"sea:{ID}", run_id="r1")
    schema = seattle.records[ID].table.schema
    rows = seattle.records[ID].table.to_pylist()
    for run, changed in (("r2", 3), ("r3", 7)):
        rows[changed][":updated_at"] = f"2024-02-0{changed // 3}T00:00:00.000Z"
        seattle.records[ID] = NullRowTable(pa.Table.from_pylist(rows, schema=schema))
        result = pull_dataset(SodaRecords(adapter, dataset, previous_pull(con, f"sea:{ID}"), format="json",
                                          page=400), layout, "sea", ID, con, uid=f"sea:{ID}", run_id=run)
        assert (result.status, result.mode, result.not_objects) == ("ok", "incremental", 1)
        ids = pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"]
        assert (len(ids), ids.null_count) == (1001, 1)   # the 1,000 rows and the row of nulls, once


class NullRecordsFirstTable(SodaTable):
    """A SODA whose first JSON page of a full pull gives two `null` records in place of its first two."""

    def answer(self, fmt, query):
        status, body = super().answer(fmt, query)
        if fmt == "json" and str(query.get("$offset", "0")) == "0" and isinstance(body, RawBody):
            body = RawBody(orjson.dumps([None, None, *orjson.loads(body.body)[2:]]), body.content_type)
        return status, body


def test_records_of_nulls_are_no_row_read_twice(tmp_path, seattle):
    # rows of nulls have no :id: DuckDB's hash(NULL) is a value, and two of them were one
    # `:id` (None) "read twice": the pull was read again, then failed, every night
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    seattle.records[ID] = NullRecordsFirstTable(seattle.records[ID].table)
    layout = RecordsLayout(tmp_path / "records-json")
    result = pull_dataset(SodaRecords(adapter, dataset, None, format="json", page=400), layout, "sea", ID, con,
                          uid=f"sea:{ID}", run_id="r1")
    assert (result.status, result.not_objects, result.changed) == ("ok", 2, None)
    ids = pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"]
    assert (len(ids), ids.null_count) == (1000, 2)


def test_rows_of_nulls_kept_from_an_earlier_pull_survive_an_incremental_merge(tmp_path, seattle):
    # merged by `:id NOT IN (...)` alone, a previous row whose :id is null tested unknown and was
    # dropped by every merge with changed rows: the rows of nulls vanished, the pull ok
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    table = seattle.records[ID].table
    seattle.records[ID] = NullRecordsFirstTable(table)
    layout = RecordsLayout(tmp_path / "records-json")
    pull_dataset(SodaRecords(adapter, dataset, None, format="json", page=400), layout, "sea", ID, con,
                 uid=f"sea:{ID}", run_id="r1")
    rows = table.to_pylist()
    rows[500][":updated_at"] = "2024-02-01T00:00:00.000Z"
    seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
    result = pull_dataset(SodaRecords(adapter, dataset, previous_pull(con, f"sea:{ID}"), format="json", page=400),
                          layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r2")
    assert (result.status, result.mode) == ("ok", "incremental")
    ids = pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"]
    assert (len(ids), ids.null_count) == (1000, 2)   # the two rows of nulls still in place


def test_rows_of_nulls_are_kept_once_by_an_incremental_pull_that_reads_nothing_new(tmp_path, seattle):
    # merged by DuckDB, `:id NOT IN (<no rows>)` held for a null :id too: a pull with nothing
    # updated since (an empty delta) kept each row of nulls twice, and doubled them every night
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    seattle.records[ID] = NullRecordsFirstTable(seattle.records[ID].table)
    layout = RecordsLayout(tmp_path / "records-json")
    pull_dataset(SodaRecords(adapter, dataset, None, format="json", page=400), layout, "sea", ID, con,
                 uid=f"sea:{ID}", run_id="r1")
    for run in ("r2", "r3"):
        result = pull_dataset(SodaRecords(adapter, dataset, previous_pull(con, f"sea:{ID}"), format="json", page=400),
                              layout, "sea", ID, con, uid=f"sea:{ID}", run_id=run)
        assert (result.status, result.mode) == ("ok", "incremental")
        ids = pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"]
        assert (len(ids), ids.null_count) == (1000, 2)


class OffsetIgnoringTable(SodaTable):
    """A SODA behind a broken cache: every page is the first, whatever `$offset` asks."""

    def answer(self, fmt, query):
        return super().answer(fmt, {**query, "$offset": "0"})


@pytest.mark.parametrize("nan", [False, True], ids=["numbers", "nan"])
def test_a_portal_that_repeats_a_page_fails_the_pull_instead_of_filling_the_disk(tmp_path, seattle, nan):
    """Full pages ever again would be read and written for as long as the night lasts: the
    first page that repeats the one before, row for row, fails the pull. Rows holding a float
    NaN too: Arrow's `equals` has no NaN equal to itself, so until session 43 such pages were
    read on past a million rows (3,342 requests) to PagesWithoutEnd."""
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    table = seattle.records[ID].table
    seattle.records[ID] = OffsetIgnoringTable(with_nan_longitudes(table, range(0, 1000, 10)) if nan else table)
    source = SodaRecords(adapter, dataset, None, page=300)
    layout = RecordsLayout(tmp_path / "records")
    with pytest.raises(RecordsError, match=r"\$offset=300.* the same 300 rows as the page before"):
        pull_dataset(source, layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r")
    assert not layout.folder("sea", ID).exists()
    assert len([q for path, q, _ in seattle.requests if path == f"/resource/{ID}.csv"]) <= 4   # (2 pages ahead)


def test_ctrl_c_during_the_records_pull_says_the_catalogue_was_stored(tmp_path, seattle, store):
    """Interrupted while it pulls records, a portal is failed (Interrupted), but its catalogue
    was committed before the pull: the report says so, and keeps the stored datasets."""
    from harvester.pipeline import HarvestInterrupted
    from harvester.pipeline import harvest as run_harvest

    client = fast_client()
    seattle.on_request = lambda path, query: client.cancel() if path.startswith("/resource/") else None
    portal = portal_config("sea", "socrata", seattle.url, domain="data.example.org", records=(ID,))
    with pytest.raises(HarvestInterrupted) as interrupted:
        run_harvest([portal], store, client, records=True)
    report = interrupted.value.run.portals[0]
    assert (report.status, report.error_type) == ("failed", "Interrupted")
    assert "catalogue was stored" in report.error_message and report.new == 1
    assert store.con.execute("SELECT count(*) FROM datasets").fetchone() == (1,)


class RenamedMidway(SodaTable):
    """A dataset whose `district_sector` column is renamed `sector` while it is read."""

    def answer(self, fmt, query):
        status, body = super().answer(fmt, query)
        if int(query.get("$offset", 0)) >= 300 and isinstance(getattr(body, "body", None), bytes):
            body.body = body.body.replace(b"district_sector", b"sector", 1)
        return status, body


def test_columns_that_change_while_the_dataset_is_read_fail_the_pull(tmp_path, seattle):
    """The pages after the rename gave nulls in `district_sector` and lost `sector`'s values,
    and the pull said it was complete."""
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    seattle.records[ID] = RenamedMidway(seattle.records[ID].table)
    layout = RecordsLayout(tmp_path / "records")
    # (two pages are read at once: the first to arrive, renamed or not, sets the columns)
    with pytest.raises(RecordsError, match=r"columns changed while the dataset was read: the page at .*\$offset=\d+"
                                           r".*(new: \['sector'\], gone: \['district_sector'\]"
                                           r"|new: \['district_sector'\], gone: \['sector'\])"):
        pull_dataset(SodaRecords(adapter, dataset, None, page=300), layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r")
    assert not layout.folder("sea", ID).exists()


# -- the dataset changed while it was read ---------------------------------------------------

def a_row_after(table: SodaTable, row_id: str, n: int = 0) -> dict:
    """A new row whose :id sorts right after `row_id` (SODA's ids are not in the order rows are added)."""
    row = table.table.filter(pc.equal(table.table[":id"], row_id)).to_pylist()[0]
    return {**row, ":id": f"{row_id}-{n}", ":updated_at": "2024-02-01T00:00:00.000Z"}


def pull_in_pages_of_300(tmp_path, seattle):
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    layout = RecordsLayout(tmp_path / "other-records")
    result = pull_dataset(SodaRecords(adapter, dataset, None, page=300), layout, "sea", ID, con, uid=f"sea:{ID}",
                          run_id="r")
    return result, pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"].to_pylist()


def test_a_row_added_before_the_page_being_read_is_read_again_not_published_twice(tmp_path, seattle):
    """A row added before the page being read moves the rows after it on: the row at that page's
    edge was read twice and the row added never; the count asked first was met (more rows, not
    fewer), and the pull published 1,000 rows and one of them twice. It is read again, once."""
    table = seattle.records[ID]
    table.before_page[600] = lambda t: t.add([a_row_after(t, "row-00000050")])
    result, ids = pull_in_pages_of_300(tmp_path, seattle)
    assert sorted(ids) == table.table[":id"].to_pylist() and len(ids) == result.rows == 1001   # each once
    assert "row-00000050-0" in ids
    # (two pages in flight: the page at 300 may be asked after the row was added, too)
    assert re.match(r"1 row read twice \(:id 'row-00000[25]99'\): rows moved between the pages "
                    r"as they were read \(the count went from 1000 to 1001\)$", result.changed), result.changed


def test_a_row_removed_before_the_page_being_read_is_read_again_not_a_failed_pull(tmp_path, seattle):
    """A row removed before the page being read moves the rows after it back: one is never read,
    the row removed was. The pull failed (1,000 rows counted, 999 read); read again, it is the
    dataset as it now is."""
    table = seattle.records[ID]
    table.before_page[600] = lambda t: t.remove(["row-00000050"])
    result, ids = pull_in_pages_of_300(tmp_path, seattle)
    assert sorted(ids) == table.table[":id"].to_pylist() and len(ids) == 999 and "row-00000050" not in ids
    # (pages are read two at a time: one asked after the row was removed may come before the one
    # asked before it, and a row is then read twice)
    assert "the count went from 1000 to 999" in result.changed or \
        result.changed.startswith("the row count went from 1000 to 999 while it was read, 999 rows read"), \
        result.changed


def test_rows_added_past_the_page_being_read_are_read_once_without_a_second_read(tmp_path, seattle):
    table = seattle.records[ID]
    # (asked with the page at 300 in flight, before the page at 900 is)
    table.before_page[300] = lambda t: t.add([a_row_after(t, "row-00000950")])
    seattle.clear_log()
    result, ids = pull_in_pages_of_300(tmp_path, seattle)
    assert sorted(ids) == table.table[":id"].to_pylist() and len(ids) == 1001 and result.changed is None
    assert sum(p.endswith(".csv") for p, _, _ in seattle.requests) == 4   # 0, 300, 600, 900 (101 rows): once


def test_a_row_added_to_the_last_page_after_it_was_read_is_read_again(tmp_path, seattle):
    """Rows added where the pull has read already, past the last page (no page after it
    moves): the dataset read is the one before they were added, and an incremental pull after
    it takes the rows updated since the latest :updated_at read: they would not be read
    until a full pull. Read again, they are."""
    counts = []

    def add_a_row_before_the_second_count(path, query):
        if query.get("$select", "").startswith("count(*)"):
            counts.append(query)
            if len(counts) == 2:
                seattle.records[ID].add([a_row_after(seattle.records[ID], "row-00000998")])

    seattle.on_request = add_a_row_before_the_second_count
    result, ids = pull_in_pages_of_300(tmp_path, seattle)
    assert sorted(ids) == seattle.records[ID].table[":id"].to_pylist() and len(ids) == 1001
    assert result.changed == ("the row count went from 1000 to 1001 while it was read, 1000 rows read: rows were "
                              "added to pages read already")


def test_a_dataset_that_loses_rows_as_often_as_it_is_read_fails_the_pull_after_one_more_read(tmp_path, seattle):
    """Rows removed before the page being read in every read: read twice, then the pull fails,
    naming the dataset and what it saw both times (a row never read, both times); the previous
    records are kept."""
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "records" / "portal=sea" / f"dataset={ID}"
    before = sorted(p.read_bytes() for p in folder.iterdir())
    table = seattle.records[ID]
    removed = iter(["row-00000050", "row-00000051"])

    def remove_a_row(t):
        t.remove([next(removed)])
        t.before_page[600] = remove_a_row   # and in the next read too

    table.before_page[600] = remove_a_row
    con = duckdb.connect(str(db))
    adapter = adapter_for(portal_config("sea", "socrata", seattle.url, domain="data.example.org"), fast_client())
    dataset = stored_datasets(con, [f"sea:{ID}"])[f"sea:{ID}"]
    seattle.clear_log()
    layout = RecordsLayout(tmp_path / "records")
    with pytest.raises(RecordsError) as failed:
        pull_dataset(SodaRecords(adapter, dataset, None, page=300), layout, "sea", ID, con, uid=f"sea:{ID}",
                     run_id="r")
    assert re.fullmatch(r"the dataset changed while it was read, twice: first .*count went from 1000 to 999.*"
                        r"; read again, .*count went from 999 to 998.*; the previous records are kept and the "
                        r"next pull reads it again", str(failed.value)), str(failed.value)
    assert sorted(p.read_bytes() for p in folder.iterdir()) == before
    assert sum(p.endswith(".csv") for p, _, _ in seattle.requests) == 8   # four pages, read twice
    assert not layout.staging("sea", ID).exists()   # (rows that moved are not resumed from)


def test_a_dataset_that_takes_rows_as_often_as_it_is_read_is_published_as_read_the_second_time(tmp_path, seattle):
    """Rows added before the page being read in every read (a 911 log read for minutes takes
    new rows at random :id places): failing it would leave it without records every night.
    Read twice, the second read is published as read (no row lost; the row read twice kept
    once), and the warning of the dataset says so."""
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    table = seattle.records[ID]

    def add_a_row(t):
        t.add([a_row_after(t, "row-00000050", t.table.num_rows)])

    counts = []

    def add_one_in_the_next_read_too(path, query):
        if path.startswith("/resource/") and query.get("$select", "").startswith("count(*)"):
            counts.append(query)
            if len(counts) == 2:   # the first read's check: the second read takes a row before its last page
                table.before_page[900] = add_a_row   # (pages served after it move on, none back)

    table.before_page[600] = add_a_row
    con = duckdb.connect(str(db))
    adapter = adapter_for(portal_config("sea", "socrata", seattle.url, domain="data.example.org"), fast_client())
    dataset = stored_datasets(con, [f"sea:{ID}"])[f"sea:{ID}"]
    seattle.clear_log()
    seattle.on_request = add_one_in_the_next_read_too
    layout = RecordsLayout(tmp_path / "records")
    result = pull_dataset(SodaRecords(adapter, dataset, None, page=300), layout, "sea", ID, con, uid=f"sea:{ID}",
                          run_id="r")
    assert result.published_as_read
    assert re.fullmatch(r"1 row read twice \(:id 'row-00000[25]99'\): rows moved between the pages as they were read "
                        r"\(the count went from 1000 to 1001\); read again, 1 row read twice \(:id 'row-00000[58]98'\): "
                        r"rows moved between the pages as they were read \(the count went from 1001 to 1002\)",
                        result.changed), result.changed
    ids = pq.read_table(layout.folder("sea", ID), columns=[":id"])[":id"].to_pylist()
    assert len(ids) == result.rows == len(set(ids)) == 1001   # the row read twice kept once; the one added not read
    assert set(ids) <= set(table.table[":id"].to_pylist())
    assert sum(p.endswith(".csv") for p, _, _ in seattle.requests) == 8   # four pages, read twice


def test_a_pull_read_again_is_a_warning_of_the_dataset(tmp_path, seattle):
    """A row removed after the count, before the page: the page gives fewer rows than
    counted, the count asked again fell: read again, the dataset as it now is, and a warning
    of the dataset says why."""
    counts = []

    def remove_a_row_once_counted(path, query):
        if path.startswith("/resource/") and query.get("$select", "").startswith("count(*)"):
            counts.append(query)
        elif path.endswith(".csv") and seattle.records[ID].table.num_rows == 1000:
            seattle.records[ID].remove(["row-00000050"])

    seattle.on_request = remove_a_row_once_counted
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    portal = json.loads(result.output)["portals"][0]
    assert (portal["records_pulled"], portal["record_rows"], portal["warnings"]) == (1, 999, 1), portal
    assert len(counts) == 2   # first, and at the end (the pull read again is one page of the rows counted)
    warning = duckdb.connect(str(db)).execute("SELECT error_type, message FROM harvest_errors").fetchall()
    assert warning == [("ChangedWhileRead", "the row count went from 1000 to 999 while it was read, 999 rows read: "
                        "a row removed before the page being read moves an unread row back past it: the pull read "
                        "it again")]
    ids = pq.read_table(tmp_path / "records" / "portal=sea" / f"dataset={ID}", columns=[":id"])[":id"].to_pylist()
    assert sorted(ids) == seattle.records[ID].table[":id"].to_pylist() and len(ids) == 999


def soda_requests(portal) -> list[str]:
    """The records requests a pull made, in order: `count` or `page`."""
    return ["count" if q.get("$select", "").startswith("count(*)") else "page"
            for path, q, _ in portal.requests if path.startswith(f"/resource/{ID}")]


def test_a_pull_read_in_one_short_page_asks_no_second_count(tmp_path, seattle):
    """One page from the first row, short of its limit, with the rows counted: one answer
    holds every row at once, none can move between pages, so the count is not asked again
    (an empty incremental pull: 2 requests, not 3)."""
    _, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    assert soda_requests(seattle) == ["count", "page"]
    seattle.clear_log()
    _, result = harvest(tmp_path, seattle.url)   # incremental: nothing updated since
    assert result.exit_code == 0, result.output
    assert soda_requests(seattle) == ["count", "page"]
    assert json.loads(result.output)["portals"][0]["record_rows"] == 1000


def test_a_short_page_that_is_not_the_count_asks_the_count_again(tmp_path, seattle):
    """A row added between the count and the page: the page has a row the count did not, and
    the count asked again says which the dataset now is (1,001 rows, all read)."""
    def add_a_row_once_counted(path, query):
        if path.endswith(".csv") and seattle.records[ID].table.num_rows == 1000:
            seattle.records[ID].add([a_row_after(seattle.records[ID], "row-00000998")])

    seattle.on_request = add_a_row_once_counted
    _, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    assert soda_requests(seattle) == ["count", "page", "count"]
    assert json.loads(result.output)["portals"][0]["record_rows"] == 1001


def test_a_date_column_of_instants_keeps_its_zone(tmp_path):
    """The views API's `date` (Discovery's "Date") is a fixed timestamp, sent as UTC ('…Z'): its rows
    are instants, stored with their zone as `:updated_at` is, not as wall-clock times without one."""
    view = load_json("socrata-views/chicago-zidz-sdfj-landmark-districts.json")
    rows = load_json("socrata-records/chicago-zidz-sdfj-landmark-districts-limit10.json")
    assert [c["dataTypeName"] for c in view["columns"]] == ["text", "date"]
    assert rows[0]["designation_date"] == "1977-09-28T07:00:00.000Z"
    with SocrataPortal([discovery_entry(view)], records={"zidz-sdfj": SodaTable.from_rows(rows)}) as portal:
        db, result = harvest_with_records(tmp_path, "chi", "socrata", portal.url, ["zidz-sdfj"],
                                          extra='domain = "data.example.org"\n')
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "records" / "portal=chi" / "dataset=zidz-sdfj").sort_by(":id")
    assert table.schema.field("designation_date").type == pa.timestamp("us", tz="UTC")
    assert table["designation_date"][0].as_py().isoformat() == "1977-09-28T07:00:00+00:00"
    assert table.column("district_name").to_pylist() == [row["district_name"] for row in rows]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_url_cell_keeps_its_description_beside_its_address(tmp_path, fmt):
    """SODA's JSON gives a URL column's cell as {"url": …, "description": …} (the recorded
    all-datatypes dataset: "Socrata", http://www.socrata.com): it was stored as the URL alone, its
    description dropped. It is "description (url)", as a link is kept in a description's text.
    SODA's CSV writes the cell so already (soda-fountain's CsvColumnRep.UrlRep: "description (url)",
    else the URL, else the description), but for a description that is its own URL, written twice
    ("u (u)", where the JSON path stores "u"): the two pulls store the same cells."""
    view = load_json("socrata-views/soda-demo-2asz-g9qq-all-datatypes.json")
    rows = load_json("socrata-records/soda-demo-2asz-g9qq-all-datatypes.json")
    assert rows[0]["website_url_column"] == {"url": "http://www.socrata.com", "description": "Socrata"}
    cells = [{"url": "http://www.socrata.com"},   # a URL without a description
             {"url": "https://x.org/a", "description": "https://x.org/a"},   # a description that is its URL
             {"description": "a link to come"}, None]
    table = SodaTable.from_rows([rows[0]] + [{**rows[0], "website_url_column": cell} for cell in cells])
    with SocrataPortal([discovery_entry(view)], records={"2asz-g9qq": table}) as portal:
        db, result = harvest_with_records(tmp_path, "demo", "socrata", portal.url, [], extra='domain = "data.example.org"\n',
                                          with_records=False)
        assert result.exit_code == 0, result.output
        con = duckdb.connect(str(db))
        adapter = adapter_for(portal_config("demo", "socrata", portal.url, domain="data.example.org"), fast_client())
        dataset = stored_datasets(con, ["demo:2asz-g9qq"])["demo:2asz-g9qq"]
        layout = RecordsLayout(tmp_path / "records")
        pull_dataset(SodaRecords(adapter, dataset, None, format=fmt), layout, "demo", "2asz-g9qq", con,
                     uid="demo:2asz-g9qq", run_id="r")
    table = pq.read_table(layout.folder("demo", "2asz-g9qq")).sort_by(":id")
    assert table["website_url_column"].to_pylist() == [
        "Socrata (http://www.socrata.com)", "http://www.socrata.com", "https://x.org/a", "a link to come", None]


DEMO = "2asz-g9qq"   # soda.demo.socrata.com's dataset of every column type (recorded: its views document, one row)


def pulled_as_csv_and_json(tmp_path, view, rows):
    """The demo dataset of `rows` served under `view`, harvested, then pulled once as CSV and once
    as JSON: the two tables stored (by `:id`), SODA's CSV of its first 3 rows, the CSV pages asked."""
    with SocrataPortal([discovery_entry(view)], records={DEMO: SodaTable.from_rows(rows)}) as portal:
        db, result = harvest_with_records(tmp_path, "demo", "socrata", portal.url, [DEMO],
                                          extra='domain = "data.example.org"\n', with_records=False)
        assert result.exit_code == 0, result.output
        con = duckdb.connect(str(db))
        # (a page of ~6 MB built by the local server on a loaded machine can take longer than the
        # usual 5 s test timeout: a retried page is no fault of the pull but fails the pages' count)
        client = fast_client(timeout=60.0)
        adapter = adapter_for(portal_config("demo", "socrata", portal.url, domain="data.example.org"), client)
        dataset = stored_datasets(con, [f"demo:{DEMO}"])[f"demo:{DEMO}"]
        tables = {}
        for fmt in ("csv", "json"):
            layout = RecordsLayout(tmp_path / f"records-{fmt}")
            outcome = pull_dataset(SodaRecords(adapter, dataset, None, format=fmt), layout, "demo", DEMO, con,
                                   uid=f"demo:{DEMO}", run_id=fmt)
            assert (outcome.status, outcome.rows) == ("ok", len(rows)), outcome
            tables[fmt] = pq.read_table(layout.folder("demo", DEMO)).sort_by(":id")
        csv_pages = [q for p, q, _ in portal.requests if p == f"/resource/{DEMO}.csv" and "$offset" in q]
        first_page = portal.records[DEMO].answer("csv", {"$limit": "3"})[1].body.decode()
    return tables, first_page, csv_pages


def test_location_and_point_cells_are_stored_alike_from_csv_and_json(tmp_path):
    """SODA's CSV writes a legacy `location` as its address lines, then "(lat, lng)" on a line of
    its own (soda-fountain's CsvColumnRep.LocationRep), a `point` as WKT with "-87" for -87.0,
    where the JSON gives objects: the CSV's cells were stored as written ("(41.0, -87)", the
    address lines with them), the JSON's as WKT `POINT (lon lat)`; and a page of over a block
    (1 MB) with a line break in a value failed to parse ("CSV parser got out of sync"), the pull
    with it. Each cell is now stored alike from either: a point as the JSON's WKT, a location
    without coordinates as its address lines, one with neither as null."""
    view = load_json("socrata-views/soda-demo-2asz-g9qq-all-datatypes.json")
    view["columns"].append({"fieldName": "spot", "name": "Spot", "dataTypeName": "point", "position": 99})
    recorded = load_json("socrata-records/soda-demo-2asz-g9qq-all-datatypes.json")[0]
    located = recorded["location_column"]   # (address, city, state, zip "" as recorded; the coordinates as text)
    locations = [located, {"human_address": located["human_address"]}, {"latitude": "41.0", "longitude": "-87"},
                 {"human_address": '{"address": "", "city": "", "state": "", "zip": ""}'}, None]
    spots = [{"type": "Point", "coordinates": [-87.0, 41.881944]}, {"type": "Point", "coordinates": [0.00001, -0.5]},
             None]
    rows = [{**recorded, "plain_text_column": f"row {i}", "location_column": locations[i % 5], "spot": spots[i % 3]}
            for i in range(15_000)]   # (CSV pages of ~6 MB)
    tables, first_page, csv_pages = pulled_as_csv_and_json(tmp_path, view, rows)
    assert csv_pages == [{"$select": ":id,:updated_at,*", "$order": ":id", "$limit": "50000", "$offset": "0"}]
    assert '"83 South King Street\nSeattle, WA \n(47.5982815480005, -122.33477954499972)"' in first_page
    assert '"POINT (-87 41.881944)"' in first_page and ',"(41.0, -87)",' in first_page
    stored = {fmt: (table["location_column"].to_pylist(), table["spot"].to_pylist()) for fmt, table in tables.items()}
    assert stored["csv"] == stored["json"]
    assert stored["csv"][0][:5] == ["POINT (-122.33477954499972 47.5982815480005)", "83 South King Street\nSeattle, WA",
                                    "POINT (-87.0 41.0)", None, None]
    assert stored["csv"][1][:3] == ["POINT (-87.0 41.881944)", "POINT (1e-05 -0.5)", None]


def test_geometry_cells_are_stored_alike_from_csv_and_json(tmp_path):
    """Socrata's line, polygon and multi-* columns: the JSON gives GeoJSON, stored as its JSON text,
    where SODA's CSV writes WKT (JTS's, "-87" for -87.0: soda-fountain's GeometryLikeRep), stored as
    written: one column, two forms, by the pull's format. Both are now WKT as the point columns' and
    ArcGIS's shapes are stored (each number as Python writes a float), alike from either."""
    view = load_json("socrata-views/soda-demo-2asz-g9qq-all-datatypes.json")
    view["columns"] += [{"fieldName": "route", "name": "Route", "dataTypeName": "line", "position": 98},
                        {"fieldName": "ward", "name": "Ward", "dataTypeName": "multipolygon", "position": 99},
                        {"fieldName": "stops", "name": "Stops", "dataTypeName": "multipoint", "position": 100}]
    recorded = load_json("socrata-records/soda-demo-2asz-g9qq-all-datatypes.json")[0]
    routes = [{"type": "LineString", "coordinates": [[-87, 41.881944], [-87.5, 42]]}, None]
    wards = [{"type": "MultiPolygon", "coordinates": [[[[-87.6, 41.8], [-87, 41.8], [-87, 42], [-87.6, 41.8]]],
                                                      [[[1e-05, 0], [0.5, 0], [0.5, 0.5], [1e-05, 0]]]]}, None, None]
    stops = [{"type": "MultiPoint", "coordinates": [[-87, 41], [-87.25, 41.5]]}]
    rows = [{**recorded, "plain_text_column": f"row {i}", "route": routes[i % 2], "ward": wards[i % 3],
             "stops": stops[0]} for i in range(30)]
    tables, first_page, _ = pulled_as_csv_and_json(tmp_path, view, rows)
    stored = {fmt: {name: table[name].to_pylist() for name in ("route", "ward", "stops")}
              for fmt, table in tables.items()}
    assert '"LINESTRING (-87 41.881944, -87.5 42)"' in first_page   # (as SODA's CSV writes it)
    assert '"MULTIPOINT ((-87 41), (-87.25 41.5))"' in first_page
    assert stored["csv"] == stored["json"]
    assert stored["csv"]["route"][:2] == ["LINESTRING (-87.0 41.881944, -87.5 42.0)", None]
    assert stored["csv"]["ward"][:3] == [
        "MULTIPOLYGON (((-87.6 41.8, -87.0 41.8, -87.0 42.0, -87.6 41.8)), ((1e-05 0.0, 0.5 0.0, 0.5 0.5, 1e-05 0.0)))",
        None, None]
    assert stored["csv"]["stops"][0] == "MULTIPOINT ((-87.0 41.0), (-87.25 41.5))"


def records_warnings(db) -> list[tuple]:
    con = duckdb.connect(str(db))
    try:
        return con.execute("""SELECT r.run_id LIKE '%-records-%', e.source_id, e.error_type, e.message
                              FROM harvest_errors e JOIN harvest_runs r USING (run_id, portal_id)
                              WHERE e.stage = 'records' ORDER BY r.started_at""").fetchall()
    finally:
        con.close()


def harvest_a_row_updated_ahead(tmp_path, seattle):
    """Harvest (with records) the dataset, one row's `:updated_at` in 2062; gives the catalogue and
    what changes another row (on 1 February 2024, the other rows' 15 January), the log cleared."""
    table = seattle.records[ID].table
    rows = table.to_pylist()
    rows[5][":updated_at"] = "2062-01-10T09:00:00.000Z"
    seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output

    def change_a_row():
        rows[3]["district_sector"] = "CHANGED"
        rows[3][":updated_at"] = "2024-02-01T00:00:00.000Z"
        seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
        seattle.clear_log()

    return db, change_a_row


def test_a_row_updated_ahead_of_the_pull_is_warned_of_and_does_not_hold_the_watermark(tmp_path, seattle):
    """A row whose `:updated_at` is years ahead of the pull (a server's clock, or a typo: nothing a
    pull can change) was the watermark: every later incremental pull asked for rows updated after
    2062 and read none, the rows changed meanwhile never read (their stamps stay before it), and
    nothing said so. Now each pull, the harvest's and `civicat records` alone, warns of it
    (FutureModified, stage `records`, the dataset named, its rows counted), and the watermark is
    the latest `:updated_at` not ahead: the row ahead is read again each time, merged by `:id`."""
    from click.testing import CliRunner

    from harvester.cli import cli

    db, change_a_row = harvest_a_row_updated_ahead(tmp_path, seattle)
    con = duckdb.connect(str(db))
    assert con.execute("SELECT watermark FROM record_pulls").fetchall() == [("2024-01-15T12:00:00.000",)]
    con.close()
    change_a_row()
    alone = CliRunner().invoke(cli, ["records", f"sea:{ID}", "--json", "--config", str(tmp_path / "c.toml"),
                                     "--db", str(db)])
    assert alone.exit_code == 0, alone.output
    assert [q.get("$where") for p, q, _ in seattle.requests if p.endswith(".csv")] == [
        ":updated_at > '2024-01-15T12:00:00.000'"]
    merged = pq.read_table(tmp_path / "records" / "portal=sea" / f"dataset={ID}").sort_by(":id")
    assert merged.num_rows == 1000 and merged.slice(3, 1).to_pylist()[0]["district_sector"] == "CHANGED"
    con = duckdb.connect(str(db))
    assert con.execute("SELECT mode, watermark FROM record_pulls").fetchall() == [
        ("incremental", "2024-02-01T00:00:00.000")]
    con.close()
    said = ("1 row's :updated_at more than a day after this pull began (the latest 2062-01-10T09:00:00Z, N days "
            "after): kept as the portal gives them (a server's clock, or a typo); the next incremental pull reads on "
            "from {latest} (the latest not ahead, at most a minute before this pull began), and reads those rows "
            "again each time until their day")
    warnings = records_warnings(db)
    days = [int(d) for _, _, _, message in warnings for d in re.findall(r"Z, (\d+) days after", message)]
    assert len(days) == 2 and all(12_000 < d < 13_000 for d in days)   # (2062 from 2026)
    assert [(alone_, source_id, kind, re.sub(r"Z, \d+ days after", "Z, N days after", message))
            for alone_, source_id, kind, message in warnings] == [
        (False, ID, "FutureModified", said.format(latest="2024-01-15T12:00:00Z")),
        (True, ID, "FutureModified", said.format(latest="2024-02-01T00:00:00Z"))]


def test_a_watermark_stored_ahead_before_session_38_heals_in_two_pulls(tmp_path, seattle):
    """A catalogue whose record_pulls kept a watermark of 2062 (session 37's code took the latest
    `:updated_at`, ahead or not): the next pull still asks after it and reads nothing, but keeps
    the latest not ahead, so the one after reads the rows changed meanwhile. On the code before,
    every pull asked after 2062: the change was never read."""
    db, change_a_row = harvest_a_row_updated_ahead(tmp_path, seattle)
    con = duckdb.connect(str(db))
    con.execute("UPDATE record_pulls SET watermark = '2062-01-10T09:00:00.000'")   # (as session 37 stored it)
    con.close()
    change_a_row()
    for _ in range(2):
        _, result = harvest(tmp_path, seattle.url)
        assert result.exit_code == 0, result.output
    assert [q.get("$where") for p, q, _ in seattle.requests if p.endswith(".csv")] == [
        ":updated_at > '2062-01-10T09:00:00.000'", ":updated_at > '2024-01-15T12:00:00.000'"]
    merged = pq.read_table(tmp_path / "records" / "portal=sea" / f"dataset={ID}").sort_by(":id")
    assert merged.num_rows == 1000 and merged.slice(3, 1).to_pylist()[0]["district_sector"] == "CHANGED"


def stamped(moment) -> str:
    """A SODA `:updated_at` (UTC, to the millisecond)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def pulls_from_a_server_ahead(tmp_path, seattle, date_header, stamp_ahead=timedelta(days=3)):
    """Two harvests (with records) of the dataset, each row stamped `stamp_ahead` of our clock, less
    5 minutes (a server's recent changes, when its clock is that far ahead: one changed in the minute
    before a pull began is read again by the next, WATERMARK_BEFORE_START), its answers' Date header
    `date_header`, and one row changed between them, stamped a minute later; gives the catalogue and
    the `$where` of the second pull's CSV pages, the rows it read, and the records warnings."""
    table = seattle.records[ID].table
    rows = table.to_pylist()
    server_now = datetime.now(UTC) + stamp_ahead - timedelta(minutes=5)
    for row in rows:
        row[":updated_at"] = stamped(server_now)
    seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
    seattle.date_header = date_header
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    rows[3]["district_sector"] = "CHANGED"
    rows[3][":updated_at"] = stamped(server_now + timedelta(minutes=1))
    seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
    seattle.clear_log()
    _, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["portals"][0]
    merged = pq.read_table(tmp_path / "records" / "portal=sea" / f"dataset={ID}").sort_by(":id")
    assert merged.num_rows == 1000 and merged.slice(3, 1).to_pylist()[0]["district_sector"] == "CHANGED"
    wheres = [q.get("$where") for p, q, _ in seattle.requests if p.endswith(".csv")]
    return db, wheres, report["record_rows"], records_warnings(db), server_now


def test_a_server_whose_clock_is_ahead_stamping_its_rows_with_its_own_now_is_read_incrementally(tmp_path, seattle):
    """A server whose clock runs 3 days ahead stamps each row it changes 3 days ahead of ours: judged
    by our clock every row was ahead, none was the watermark, and every pull read the dataset whole,
    for ever (1,000 rows a night here, 5M on a large dataset), with a warning each night. The server
    says its own time in each answer's Date header: the rows are judged by it, the watermark is their
    latest, and the next pull reads only the rows changed since (1 of 1,000), warning of nothing."""
    db, wheres, _, warnings, server_now = pulls_from_a_server_ahead(tmp_path, seattle, timedelta(days=3))
    first = stamped(server_now).rstrip("Z")
    assert wheres == [f":updated_at > '{first}'"]
    con = duckdb.connect(str(db))
    try:
        assert con.execute("SELECT mode, row_count, watermark FROM record_pulls").fetchall() == [
            ("incremental", 1000, stamped(server_now + timedelta(minutes=1)).rstrip("Z"))]
    finally:
        con.close()
    assert warnings == []


@pytest.mark.parametrize("date_header", ["", "not a date", "Mon, 32 Dec 2026 02:09:00 GMT"])
def test_rows_ahead_of_a_server_that_gives_no_date_are_judged_by_our_clock(tmp_path, seattle, date_header):
    """No Date header, or one that is no date: the rows 3 days ahead are judged by our clock, as
    before (kept out of the watermark, warned of, the dataset read whole again)."""
    _, wheres, _, warnings, _ = pulls_from_a_server_ahead(tmp_path, seattle, date_header)
    assert wheres == [None]
    assert [(source_id, kind) for _, source_id, kind, _ in warnings] == [(ID, "FutureModified")] * 2
    assert all(message.startswith("1000 rows' :updated_at more than a day after this pull began (the latest ")
               for *_, message in warnings), warnings


def test_a_row_years_ahead_of_a_server_ahead_by_days_is_still_kept_out_of_the_watermark(tmp_path, seattle):
    """Judged by the server's clock (3 days ahead), a row stamped 2062 is still ahead of it: warned
    of (the server's clock named) and never the watermark; the rest, stamped the server's now, are."""
    table = seattle.records[ID].table
    rows = table.to_pylist()
    server_now = datetime.now(UTC) + timedelta(days=3) - timedelta(minutes=5)   # (its changes of minutes before)
    for row in rows:
        row[":updated_at"] = stamped(server_now)
    rows[5][":updated_at"] = "2062-01-10T09:00:00.000Z"
    seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
    seattle.date_header = timedelta(days=3)
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db))
    try:
        assert con.execute("SELECT watermark FROM record_pulls").fetchall() == [(stamped(server_now).rstrip("Z"),)]
    finally:
        con.close()
    [(_, source_id, kind, message)] = records_warnings(db)
    assert (source_id, kind) == (ID, "FutureModified")
    assert message.startswith("1 row's :updated_at more than a day after this pull began by the server's clock "
                              "(3 days ahead of ours, by its Date header) (the latest 2062-01-10T09:00:00Z, "), message


def test_a_server_clock_years_off_is_warned_of_and_not_believed(tmp_path, seattle):
    """A Date header 36 years ahead (a server's clock set wrong, or a header made up) is not believed:
    were it, a row stamped 2062 would be the watermark again, and every later pull would miss the
    changes made until then. The pull warns of the clock (ServerClock) and judges by ours."""
    table = seattle.records[ID].table
    rows = table.to_pylist()
    rows[5][":updated_at"] = "2062-01-10T09:00:00.000Z"
    seattle.records[ID] = SodaTable(pa.Table.from_pylist(rows, schema=table.schema))
    seattle.date_header = datetime(2062, 1, 11, tzinfo=UTC) - datetime.now(UTC)
    db, result = harvest(tmp_path, seattle.url)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db))
    try:
        assert con.execute("SELECT watermark FROM record_pulls").fetchall() == [("2024-01-15T12:00:00.000",)]
    finally:
        con.close()
    warnings = records_warnings(db)
    assert [(source_id, kind) for _, source_id, kind, _ in warnings] == [(ID, "ServerClock"), (ID, "FutureModified")]
    assert re.fullmatch(r"the server's answers \(their Date header\) put its clock 1\d{4} days ahead of ours: not "
                        r"believed, its rows' stamps are judged by ours", warnings[0][3]), warnings[0][3]
    assert warnings[1][3].startswith("1 row's :updated_at more than a day after this pull began (the latest 2062-")


class _CountedScans:
    """A DuckDB connection whose statements are kept (`scans`), as the pull asked them."""

    def __init__(self, duck, scans: list) -> None:
        self._duck, self._scans = duck, scans

    def execute(self, sql, *args):
        self._scans.append(sql)
        return self._duck.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._duck, name)


def test_a_pull_with_a_row_ahead_scans_its_stamps_once(tmp_path, seattle, monkeypatch):
    """A row dated ahead takes a scan of the published `:updated_at` (the files' statistics cannot
    say how many rows are ahead, nor the latest not ahead): the warning's and the watermark's were
    two scans of the same column (over 5M rows, each a read of the whole column), now one gives both."""
    from contextlib import contextmanager

    from harvester import records

    scans, scratch = [], records.scratch_duckdb

    @contextmanager
    def counted(*args, **kwargs):
        with scratch(*args, **kwargs) as duck:
            yield _CountedScans(duck, scans)

    monkeypatch.setattr(records, "scratch_duckdb", counted)
    db, _ = harvest_a_row_updated_ahead(tmp_path, seattle)
    stamp_scans = [sql for sql in scans if '":updated_at"' in sql]
    assert len(stamp_scans) == 1 and stamp_scans[0].startswith('SELECT count(*) FILTER (WHERE ":updated_at" > '), scans
    assert [kind for _, _, kind, _ in records_warnings(db)] == ["FutureModified"]
    con = duckdb.connect(str(db))
    try:
        assert con.execute("SELECT watermark FROM record_pulls").fetchall() == [("2024-01-15T12:00:00.000",)]
    finally:
        con.close()


def edited(table: SodaTable, index: int, stamp: datetime) -> None:
    """Row `index` (in `:id` order) edited, Socrata stamping its `:updated_at` with `stamp`."""
    rows = table.table.to_pylist()
    rows[index] = {**rows[index], "district_sector": f"EDITED {index}", ":updated_at": stamped(stamp)}
    table.table = pa.Table.from_pylist(rows, schema=table.table.schema)


def pulled_twice(tmp_path, seattle, edit_in_the_first, edit_between) -> tuple[pa.Table, list]:
    """Two pulls of the dataset in pages of 300 rows, `edit_in_the_first(table)` run as the first
    asks its page at offset 600 and `edit_between(table)` between them; gives the records then
    published (by `:id`) and the second pull's `$where`."""
    con, adapter, dataset = pull_alone(tmp_path, seattle.url)
    layout = RecordsLayout(tmp_path / "records-pulled")
    table = seattle.records[ID]
    table.before_page[600] = edit_in_the_first
    pull_dataset(SodaRecords(adapter, dataset, None, page=300), layout, "sea", ID, con, uid=f"sea:{ID}", run_id="r1")
    edit_between(table)
    seattle.clear_log()
    result = pull_dataset(SodaRecords(adapter, dataset, previous_pull(con, f"sea:{ID}"), page=300), layout, "sea", ID,
                          con, uid=f"sea:{ID}", run_id="r2")
    assert result.status == "ok" and result.mode == "incremental"
    wheres = [q.get("$where") for p, q, _ in seattle.requests if p.endswith(".csv")]
    return pq.read_table(layout.folder("sea", ID)).sort_by(":id"), wheres


@pytest.mark.parametrize("front_ahead", [None, timedelta(hours=2), timedelta(days=3)])
def test_a_row_edited_during_a_pull_in_a_page_read_before_is_read_by_the_next_pull(tmp_path, seattle, front_ahead):
    """A row edited while the pull reads (Socrata stamping it with its now) in a page read already is
    staged as it was, and a row edited a moment later in a page not yet read is staged edited: the
    watermark was the latest `:updated_at` read, the second's, and the next pull asked for rows
    changed after it; the first row's edit, stamped before it, was read by no incremental pull (until
    `--full`). The watermark is at most the pull's start by the server's clock (less a minute, the
    clocks taken as agreeing): every row changed after the pull began is read by the next pull.
    `front_ahead` (session 41, r41's probe): the server's answers' Date runs ahead while its database
    stamps rows by a clock like ours; the bound by the server's clock alone was past every row changed
    during the pull, and the edit was lost again: bounded by ours too where no stamp is past our now."""
    seattle.date_header = front_ahead
    first_edited, stamps = threading.Event(), {}

    def edits_one(table: SodaTable) -> None:   # (the page at 0 read; two pages in flight: 300 and 600)
        stamps["now"] = datetime.now(UTC)
        edited(table, 5, stamps["now"])
        first_edited.set()

    def edits_the_other(table: SodaTable) -> None:
        # (the page at 900 is asked once the one at 300 is read, while the server may still be answering the
        # one at 600: set by edits_one as it ran, this edit was lost when 900's answer came first (a loaded
        # machine, session 44's run of the whole suite at the lowest versions))
        assert first_edited.wait(120), "the page at 600 was not asked"
        edited(table, 950, stamps["now"] + timedelta(milliseconds=5))

    seattle.records[ID].before_page[900] = edits_the_other
    merged, wheres = pulled_twice(tmp_path, seattle, edits_one, lambda table: None)
    rows = {row[":id"]: row["district_sector"] for row in merged.select([":id", "district_sector"]).to_pylist()}
    assert merged.num_rows == 1000 and rows["row-00000950"] == "EDITED 950"
    assert rows["row-00000005"] == "EDITED 5", f"the edit of a row read before it was lost ({wheres})"


def test_a_server_truly_ahead_is_not_read_again_from_our_clock_s_start(tmp_path, seattle, monkeypatch):
    """A server whose clock (and stamps) run 3 days ahead of ours keeps its own bound: the rows it stamped
    within its lead are past our now, and the next pull asks from the latest of them, not from our start,
    where they are more than READ_AGAIN_AT_MOST (made none here: its one row stamped within its lead, an
    hour before its now, is more; fewer are read again by each pull, the test above)."""
    from harvester import records

    monkeypatch.setattr(records, "READ_AGAIN_AT_MOST", 0)
    seattle.date_header = timedelta(days=3)
    now = datetime.now(UTC)
    merged, wheres = pulled_twice(tmp_path, seattle, lambda table: edited(table, 650, now + timedelta(days=3, hours=-1)),
                                  lambda table: edited(table, 5, now + timedelta(days=3, minutes=1)))
    rows = {row[":id"]: row["district_sector"] for row in merged.select([":id", "district_sector"]).to_pylist()}
    assert rows["row-00000650"] == "EDITED 650" and rows["row-00000005"] == "EDITED 5"
    asked_from = [w for w in wheres if w]
    assert asked_from and all(str((now + timedelta(days=2)).date()) in w or str((now + timedelta(days=3)).date()) in w
                              for w in asked_from), wheres


@pytest.mark.parametrize("front_ahead, row_ahead, during", [
    (timedelta(hours=2), timedelta(hours=1), True), (timedelta(days=1), timedelta(hours=12), False),
    (timedelta(days=3), timedelta(days=3), False)],
    ids=["front-2h-row-1h-edit-during", "front-1d-row-12h-edit-after", "truly-ahead-one-row"])
def test_a_row_stamped_past_our_now_under_a_front_ahead_holds_no_edit_back(tmp_path, seattle, front_ahead, row_ahead,
                                                                           during):
    """Two clocks wrong at once (docs/records.md: left in session 41): the server's answers' Date runs ahead
    of ours, and one row is stamped past our now, within the front's lead (a database's clock that ran
    ahead and was put back, a stamp typed): taken as a server truly ahead, the watermark was that row's
    stamp, and a row edited during the pull in a page read already (stamped by the database's clock, like
    ours), or after the pull, was read by no incremental pull. A server truly ahead stamps every row it
    changes within its lead; one row past our now is read again by each pull until our clock passes it
    (READ_AGAIN_AT_MOST), its watermark by our clock: no edit lost. A server truly ahead with one row
    changed within its lead reads that row again (the third case: before, the next pull asked from it)."""
    seattle.date_header = front_ahead
    now = datetime.now(UTC)

    def first(table: SodaTable) -> None:   # (the page at 0 read; two pages in flight: 300 and 600)
        edited(table, 650, now + row_ahead)
        if during:
            edited(table, 5, datetime.now(UTC))

    def between(table: SodaTable) -> None:
        if not during:
            edited(table, 5, (now + row_ahead if row_ahead == front_ahead else datetime.now(UTC)) + timedelta(minutes=1))

    merged, wheres = pulled_twice(tmp_path, seattle, first, between)
    rows = {row[":id"]: row["district_sector"] for row in merged.select([":id", "district_sector"]).to_pylist()}
    assert merged.num_rows == 1000 and rows["row-00000650"] == "EDITED 650"
    assert rows["row-00000005"] == "EDITED 5", f"an edit made during or after the pull was lost ({wheres})"
    asked_from = [w for w in wheres if w]
    assert asked_from and all(str(now.date()) in w for w in asked_from), wheres   # (from our clock's start)


def test_a_row_stamped_hours_ahead_of_the_servers_clock_holds_no_later_edit_back(tmp_path, seattle):
    """A row stamped 12 hours ahead of the server's clock (its database's clock ran ahead, and was put
    right; within the day a stamp may be ahead and still be the watermark) was the watermark: the
    rows edited in those 12 hours, stamped before it, were read by no incremental pull. Capped at the
    pull's start by the server's clock, the next pull reads them, and that row again (merged by `:id`)."""
    now = datetime.now(UTC)
    merged, wheres = pulled_twice(tmp_path, seattle, lambda table: edited(table, 650, now + timedelta(hours=12)),
                                  lambda table: edited(table, 5, now + timedelta(minutes=1)))
    rows = {row[":id"]: row["district_sector"] for row in merged.select([":id", "district_sector"]).to_pylist()}
    assert merged.num_rows == 1000 and rows["row-00000650"] == "EDITED 650"
    assert rows["row-00000005"] == "EDITED 5", f"an edit made after the pull was lost ({wheres})"
