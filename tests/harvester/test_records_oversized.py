"""Records pages over the response cap (CIVICAT_HTTP_MAX_BYTES), over HTTP against the local
portals of every kind whose records page size is a request parameter (SODA's `$limit`, the
DataStore's `limit`, ArcGIS's `resultRecordCount` and its `objectIds` batches, OpenDataSoft's
`limit`): such a page is asked again in smaller pages and every row is read once; a row over
the cap alone fails the pull, the previous records kept, as does a page of Open311's, whose
size is the server's."""
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Callable

import duckdb
import pyarrow.parquet as pq
import pytest

from catalog.records import RecordsLayout
from harvester.http import ResponseTooLarge
from harvester.paging import OVERSIZED_ANSWERS_MAX
from harvester.portals import adapter_for
from harvester.portals.arcgis_hub import FeatureServerRecords
from harvester.portals.open311 import RequestsRecords
from harvester.portals.opendatasoft import PAGE_LIMIT
from harvester.portals.socrata import SodaRecords
from harvester.records import pull_dataset, stored_datasets
from tests.conftest import fail_pull_after, fast_client, harvest_with_records, portal_config
from tests.harvester.portals.test_arcgis_records import COOK, ESRI, ESRI_ITEM, hub_entry
from tests.harvester.portals.test_ckan_records import FIELDS, STORE_ID, boston_rows
from tests.harvester.portals.test_open311 import JSON_SERVICES
from tests.harvester.portals.test_open311_records import BOSTON
from tests.harvester.portals.test_opendatasoft_records import counter_rows
from tests.portals.arcgis import FeatureServerPortal
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.open311 import Open311Portal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry
from tests.shared_fixtures import load_json

SODA_ID = "3k2p-39jp"


@dataclass
class Case:
    """One kind's dataset served by its local portal: `rows` (in the portal's order) whose
    `text` value may be made huge, the column of their key in the Parquet (`key`, its
    values `keys` in order), and the records pages the portal was asked (offset, size)."""
    kind: str
    rows: list[dict]
    text: str
    key: str
    keys: list
    serve: Callable[[list[dict]], object]            # rows → a started portal
    asked: Callable[[object], list[tuple[int, int]]]
    dataset: Callable[[object], str]
    serve_again: Callable[[object, list[dict]], None]   # the portal serves these rows from now on
    extra: str = ""


def socrata_case() -> Case:
    view = load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")
    rows = load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json")
    return Case("socrata", rows, "hundred_block_location", ":id", [f"row-{i:08d}" for i in range(len(rows))],
                lambda rows: SocrataPortal([discovery_entry(view)], records={SODA_ID: SodaTable.from_rows(rows)}).start(),
                lambda portal: [(int(q["$offset"]), int(q["$limit"])) for path, q, _ in portal.requests
                                if path == f"/resource/{SODA_ID}.csv"],
                lambda portal: SODA_ID,
                lambda portal, rows: portal.records.update({SODA_ID: SodaTable.from_rows(rows)}),
                extra='domain = "data.example.org"\n')


def ckan_case() -> Case:
    def serve(rows):
        portal = CkanPortal([], datastore={"res-store": FIELDS}, records={"res-store": rows})
        portal.start()
        portal.packages = [{"id": STORE_ID, "name": "abandoned-vehicles", "title": "Abandoned vehicles", "resources": [
            {"id": "res-store", "name": "requests", "format": "CSV", "datastore_active": True,
             "url": f"{portal.url}/datastore/dump/res-store"}]}]
        return portal

    rows = boston_rows()
    return Case("ckan", rows, "status", "_id", [r["_id"] for r in rows], serve,
                lambda portal: [(int(q["offset"]), int(q["limit"])) for path, q, _ in portal.requests
                                if path == "/api/3/action/datastore_search" and q.get("limit") != "0"],
                lambda portal: STORE_ID, lambda portal, rows: portal.records.update({"res-store": rows}))


class Hub:
    """A FeatureServer layer (at `path`) and the ArcGIS Hub feed that names it, started and
    stopped as one."""

    def __init__(self, path: str, meta: dict, features: list[dict]):
        self.path = path
        self.services = FeatureServerPortal({path: (meta, [{"attributes": a} for a in features])}).start()
        self.hub = DataJsonPortal({"dataset": [hub_entry(ESRI_ITEM, "Facilities", self.services.url + path)]},
                                  path=HUB_FEED_PATH).start()
        self.url, self.requests = self.hub.url, self.services.requests

    def serve_again(self, features: list[dict]) -> None:
        meta = self.services.layers[self.path][0]
        self.services.layers[self.path] = (meta, [{"attributes": a} for a in features])

    def queries(self) -> list[dict]:
        return [q for path, q, _ in self.requests if path == f"{self.path}/query"]

    def clear_log(self):
        self.services.clear_log()

    def stop(self):
        self.hub.stop()
        self.services.stop()


def arcgis_case() -> Case:
    """A layer that pages by `resultOffset`/`resultRecordCount` (its maxRecordCount 300)."""
    meta = {**load_json("arcgis-featureserver/esri-test-layer-metadata.json"), "maxRecordCount": 300}
    features = [f["attributes"] for f in load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]]
    return Case("arcgis-hub", features, "description", "objectid", sorted(a["objectid"] for a in features),
                lambda features: Hub(ESRI, meta, features),
                lambda hub: [(int(q["resultOffset"]), int(q["resultRecordCount"])) for q in hub.queries()
                             if "resultOffset" in q],
                lambda hub: f"{ESRI_ITEM}_0", Hub.serve_again)


def arcgis_ids_case() -> Case:
    """A layer that does not page: batches of `objectIds` (its maxRecordCount 200), asked by
    their position in its sorted ids."""
    meta = {**load_json("arcgis-featureserver/cook-county-poi-layer-metadata.json"), "maxRecordCount": 200}
    features = [f["attributes"] for f in load_json("arcgis-featureserver/cook-county-poi-query-page500.json")["features"]]
    ids = sorted(a["OBJECTID"] for a in features)

    def asked(hub):
        batches = [[int(i) for i in q["objectIds"].split(",")] for q in hub.queries() if "objectIds" in q]
        return [(ids.index(batch[0]), len(batch)) for batch in batches]

    return Case("arcgis-hub", features, "NAME", "OBJECTID", ids, lambda features: Hub(COOK, meta, features), asked,
                lambda hub: f"{ESRI_ITEM}_0", Hub.serve_again)


def opendatasoft_case() -> Case:
    datasets = make_ods_datasets(1)
    name = datasets[0]["dataset_id"]
    rows = counter_rows(250)
    # (its one text field is its id: a huge value keeps the id, and the rows their order)
    return Case("opendatasoft", rows, "id", "id", None,
                lambda rows: OpenDataSoftPortal(datasets, records={name: rows}).start(),
                lambda portal: [(int(q["offset"]), int(q["limit"])) for path, q, _ in portal.requests
                                if path.endswith(f"{name}/records") and q.get("limit") != "0"],
                lambda portal: name, lambda portal, rows: portal.records.update({name: rows}))


CASES = {"socrata": socrata_case, "ckan": ckan_case, "arcgis-hub": arcgis_case, "arcgis-hub-object-ids": arcgis_ids_case,
         "opendatasoft": opendatasoft_case}


@contextmanager
def served(case: Case, rows: list[dict]):
    portal = case.serve(rows)
    try:
        yield portal
    finally:
        portal.stop()


def make_huge(case: Case, positions: list[int], size: int) -> list[dict]:
    rows = [dict(r) for r in case.rows]
    for n in positions:
        rows[n][case.text] = f"{rows[n][case.text]}-" + "x" * size
    return rows


def pull(tmp_path, case: Case, portal, *options):
    return harvest_with_records(tmp_path, "city", case.kind, portal.url, [case.dataset(portal)], *options,
                                extra=case.extra)


def pulled_whole(tmp_path, monkeypatch, case: Case, rows: list[dict], cap: int):
    """`rows` pulled under the response cap `cap`, whole: the table published, the pages asked
    and the dataset's source id."""
    monkeypatch.setenv("CIVICAT_HTTP_MAX_BYTES", str(cap))
    with served(case, rows) as portal:
        _, result = pull(tmp_path, case, portal)
        asked = case.asked(portal)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["records_failed"], report["record_rows"]) == (1, 0, len(rows)), report
    dataset = case.dataset(portal)
    return pq.read_table(tmp_path / "records" / "portal=city" / f"dataset={dataset}"), asked, dataset


def catalogue_rows(tmp_path, sql: str) -> list[tuple]:
    """`sql`'s rows from the pulls' catalogue, its connection closed. A connection left in a local
    outlives the test: CliRunner.invoke's frame and the traceback of the SystemExit it caught hold each
    other, and with them its callers' frames, the test's, until a garbage collection. The next test
    given the same tmp_path (pytest < 9.2 numbers it after the highest directory left, a passing test's
    removed) then could not attach its catalogue ("Unique file handle conflict")."""
    with duckdb.connect(str(tmp_path / "c.duckdb")) as con:
        return con.execute(sql).fetchall()


def cap_for(case: Case) -> int:
    """A response cap three times the whole dataset's JSON and more: any page of ordinary rows fits, with
    a row of 0.6 the cap too."""
    return 3 * len(json.dumps(case.rows)) + 50_000


@pytest.mark.parametrize("kind", CASES)
def test_a_records_page_over_the_cap_is_read_in_smaller_pages_every_row_once(tmp_path, monkeypatch, kind):
    """Two neighbouring rows of 0.6 the cap each: no page holding both fits, each fits with
    the others. The page is halved down to them, paging goes on past them, and the Parquet
    holds the portal's rows, each once, in order."""
    case = CASES[kind]()
    cap = cap_for(case)
    rows = make_huge(case, [130, 131], int(0.6 * cap))
    keys = case.keys or [r["id"] for r in rows]
    table, asked, _ = pulled_whole(tmp_path, monkeypatch, case, rows, cap)
    read = table[case.key].to_pylist()
    assert len(read) == len(keys) and sorted(read) == sorted(keys)  # every row, once
    texts = dict(zip(table[case.key].to_pylist(), table[case.text].to_pylist()))
    assert [len(texts[keys[n]]) > cap // 2 for n in (129, 130, 131, 132)] == [False, True, True, False]
    assert 131 in [offset for offset, _ in asked]                   # halved down to a page that parts them
    assert len(set(asked)) == len(asked)                            # no page asked twice
    page = asked[0][1]
    # a few requests per halving; past the two rows, the pull reads on in a quarter of its page size
    assert len(asked) <= len(rows) / (page / 4) + 2 * page.bit_length() + 2


@pytest.mark.parametrize("kind", CASES)
def test_a_row_over_the_cap_alone_fails_the_pull_and_keeps_the_previous_records(tmp_path, monkeypatch, kind):
    """A records pull never skips a row (a listing skips an entry): the pull fails naming the
    dataset, the request of that one row and CIVICAT_HTTP_MAX_BYTES; the records published by
    the pull before stay as they were."""
    case = CASES[kind]()
    cap = cap_for(case)
    rows = [dict(r) for r in case.rows]
    with served(case, rows) as portal:
        _, result = pull(tmp_path, case, portal)
        assert result.exit_code == 0, result.output
        folder = tmp_path / "records" / "portal=city" / f"dataset={case.dataset(portal)}"
        before = sorted(p.read_bytes() for p in folder.iterdir())
        pulled = catalogue_rows(tmp_path, "SELECT * FROM record_pulls")

        rows[77][case.text] = "x" * int(1.2 * cap)
        case.serve_again(portal, rows)
        portal.clear_log()
        monkeypatch.setenv("CIVICAT_HTTP_MAX_BYTES", str(cap))
        _, result = pull(tmp_path, case, portal, "--full")
        asked = case.asked(portal)
    assert result.exit_code == 0, result.output                    # the dataset failed, not its portal
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["records_failed"]) == (0, 1)
    assert sorted(p.read_bytes() for p in folder.iterdir()) == before
    assert catalogue_rows(tmp_path, "SELECT * FROM record_pulls") == pulled
    (source_id, error_type, message), = catalogue_rows(
        tmp_path, "SELECT source_id, error_type, message FROM harvest_errors WHERE stage = 'records' "
        "AND severity = 'error'")
    assert (source_id, error_type) == (case.dataset(portal), "ResponseTooLarge")
    assert f"over the {cap}-byte cap: the row asked for alone (" in message, message
    assert "=77, " in message and "=1" in message.split("alone (")[1].split(")")[0]
    assert "a records pull never skips a row" in message and "CIVICAT_HTTP_MAX_BYTES raises the cap" in message
    assert "=None" not in message                                        # (SODA's $where of a full pull)
    assert message.startswith(f"records pull failed (city:{case.dataset(portal)}): ")
    assert (77, 1) in asked and len(set(asked)) == len(asked)


def test_a_pull_gives_up_after_so_many_answers_over_the_cap(tmp_path, monkeypatch):
    """Every row 0.6 the cap: each page costs answers over the cap, and the pull stops at
    OVERSIZED_ANSWERS_MAX of them, each a read of up to the cap. (The first 100 of the 1,000
    rows made so: the pull gives up before its pages reach row 90, and the portal's first
    pages, of all the rows, were 330 MB of JSON each to serialize.)"""
    case = ckan_case()
    cap = cap_for(case)
    rows = make_huge(case, range(100), int(0.6 * cap))
    monkeypatch.setenv("CIVICAT_HTTP_MAX_BYTES", str(cap))
    with served(case, rows) as portal:
        _, result = pull(tmp_path, case, portal)
        asked = case.asked(portal)
    assert result.exit_code == 0, result.output
    (message,), = catalogue_rows(tmp_path, "SELECT message FROM harvest_errors WHERE stage = 'records'")
    assert f"the pull gave up after {OVERSIZED_ANSWERS_MAX} answers over the cap" in message
    assert not (tmp_path / "records" / "portal=city" / f"dataset={STORE_ID}").exists()
    assert sum(size > 1 for _, size in asked) == OVERSIZED_ANSWERS_MAX + 1   # (any two rows are over the cap)


# the pull's page size of the kinds whose page is smaller than the local dataset (the layers'
# maxRecordCount, OpenDataSoft's PAGE_LIMIT)
PAGE = {"arcgis-hub": 300, "arcgis-hub-object-ids": 200, "opendatasoft": PAGE_LIMIT}


def wide_rows(case: Case, page: int) -> tuple[list[dict], int]:
    """Every row made about 3 KB wide, alike (a layer of polygons), and a cap three quarters
    of a `page` of them: every page of that size is over it, every half page fits."""
    rows = make_huge(case, range(len(case.rows)), 3000)
    return rows, int(0.75 * page * len(json.dumps(rows)) / len(rows))


@pytest.mark.parametrize("kind", PAGE)
def test_a_dataset_whose_every_page_is_over_the_cap_costs_one_answer_over_it_not_one_a_page(tmp_path, monkeypatch,
                                                                                           kind):
    """Rows alike and wide: every page of the pull's size is over the cap, every half page
    fits. The first page is asked again in halves and the pull reads on in half pages: one
    answer over the cap in all (each may be the whole cap read for nothing: 256 MiB), where
    going back to the full size after each cost one a page and failed the pull after 50.
    What it cost is a warning of the dataset: how many answers, the page size read, the
    setting that raises the cap."""
    case = CASES[kind]()
    rows, cap = wide_rows(case, PAGE[kind])
    keys = case.keys or [r["id"] for r in rows]
    table, asked, dataset = pulled_whole(tmp_path, monkeypatch, case, rows, cap)
    assert sorted(table[case.key].to_pylist()) == sorted(keys)       # every row, once
    page, half = PAGE[kind], PAGE[kind] // 2
    if kind == "opendatasoft":   # (its pages after the first asked from the row before each: one row more, read again)
        assert asked == [(0, page), (0, half)] + [(n - 1, half + 1) for n in range(half, len(rows), half)]
        page -= 1   # (the pull's own page: the rows a page reads new)
    else:
        assert asked == [(0, page)] + [(n, half) for n in range(0, len(rows), half)]
    (source_id, message), = catalogue_rows(
        tmp_path, "SELECT source_id, message FROM harvest_errors WHERE stage = 'records' AND severity = 'warning' "
        "AND error_type = 'SmallerPages'")
    assert source_id == dataset
    assert re.fullmatch(rf"1 answer over the response cap \(the last: response (of \d+ bytes )?is over the {cap}-byte "
                        rf"cap\): the pull read on in pages of up to {half} rows, not {page}; each such answer may be a "
                        r"read of the whole cap \(CIVICAT_HTTP_MAX_BYTES raises the cap\)", message), message


class Killed(Exception):
    pass


def test_a_pull_cut_short_after_a_page_asked_smaller_resumes_exactly(tmp_path):
    """The state of a part closed inside a page asked in halves is the smaller request after
    it: the pull resumed there reads every row once. That request is over the cap too: it is
    halved, and the pull reads on in the size its rows were last asked in (7), as a pull keeps
    a smaller page size to its end."""
    case = socrata_case()
    cap = cap_for(case)
    rows = make_huge(case, [130, 131], int(0.6 * cap))
    with served(case, rows) as portal:
        _, result = harvest_with_records(tmp_path, "city", "socrata", portal.url, [SODA_ID], extra=case.extra,
                                         with_records=False)   # (the catalogue: its records pulled below)
        assert result.exit_code == 0, result.output
        con = duckdb.connect(str(tmp_path / "c.duckdb"))
        adapter = adapter_for(portal_config("sea", "socrata", portal.url, domain="data.example.org"),
                              fast_client(max_bytes=cap))
        dataset = stored_datasets(con, [f"city:{SODA_ID}"])[f"city:{SODA_ID}"]
        layout = RecordsLayout(tmp_path / "pulled")
        source = SodaRecords(adapter, dataset, None, page=100)
        fail_pull_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", SODA_ID, con, uid=f"city:{SODA_ID}", run_id="r", part_rows=125)
        progress = json.loads((layout.staging("city", SODA_ID) / "progress.json").read_text())
        assert (progress["rows"], progress["state"]["$offset"], progress["state"]["$limit"]) == (125, 125, 25)

        portal.clear_log()
        result = pull_dataset(SodaRecords(adapter, dataset, None, page=100), layout, "city", SODA_ID, con,
                              uid=f"city:{SODA_ID}", run_id="r", part_rows=125)
        asked = case.asked(portal)
    assert result.resumed and result.rows == len(rows)
    assert pq.read_table(layout.folder("city", SODA_ID), columns=[":id"])[":id"].to_pylist() == case.keys
    # (in any order: two requests in flight. No page is guessed before the first is read: pages are
    # sized by its bytes (PAGE_BYTES). (124, 1): the last row staged, asked again to see the rows did not move)
    assert sorted(asked) == sorted([(124, 1), (125, 25), (125, 13), (125, 7), (125, 4), (129, 3), (129, 2),
                                    (131, 1), (132, 4), (136, 2), (138, 7), (145, 5)] + [(n, 7) for n in range(150, 1000, 7)])


def test_a_pull_of_wide_rows_cut_short_resumes_at_the_same_row_and_reads_on_in_half_pages(tmp_path, store):
    """A pull whose every page is over the cap, cut short after its first part (two half
    pages): the state is the half page after them; the pull resumed there reads every row
    once, asks its own page size once more (the cap may have been raised meanwhile), and
    reads on in half pages."""
    case = arcgis_case()
    rows, cap = wide_rows(case, PAGE["arcgis-hub"])
    with served(case, rows) as hub:
        layout = RecordsLayout(tmp_path / "records")
        source = FeatureServerRecords(fast_client(max_bytes=cap), hub.services.url + ESRI)
        fail_pull_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "layer", store.con, uid="city:layer", run_id="r", part_rows=300)
        state = json.loads((layout.staging("city", "layer") / "progress.json").read_text())["state"]
        assert (state["resultOffset"], state["resultRecordCount"]) == (300, 150)
        assert case.asked(hub)[:3] == [(0, 300), (0, 150), (150, 150)]

        hub.clear_log()
        result = pull_dataset(FeatureServerRecords(fast_client(max_bytes=cap), hub.services.url + ESRI), layout, "city",
                              "layer", store.con, uid="city:layer", run_id="r", part_rows=300)
        asked = case.asked(hub)
    assert result.resumed and result.rows == len(rows)
    assert sorted(pq.read_table(layout.folder("city", "layer"), columns=["objectid"])["objectid"].to_pylist()) == case.keys
    assert asked == [(299, 1), (300, 150),   # (299, 1): the last row staged, asked again
                     (450, 300), (450, 150), (600, 150), (750, 150), (900, 150)]
    assert result.smaller_pages.startswith("1 answer over the response cap (the last: ")


def test_a_pull_cut_short_while_object_id_batches_were_numbered_resumes_at_the_same_row(tmp_path, store):
    """The state of such a pull (`{"batch": n}`, batches of maxRecordCount) is taken as the
    position of that batch's first id: the pull goes on where it stopped."""
    case = arcgis_ids_case()
    with served(case, case.rows) as hub:
        layout = RecordsLayout(tmp_path / "records")
        source = FeatureServerRecords(fast_client(), hub.services.url + COOK)
        fail_pull_after(source, 1, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "poi", store.con, uid="city:poi", run_id="r", part_rows=200)
        progress_path = layout.staging("city", "poi") / "progress.json"
        progress = json.loads(progress_path.read_text())
        assert (progress["rows"], progress["state"]) == (200, {"ids_from": 200, "ids": 200})
        progress_path.write_text(json.dumps({**progress, "state": {"batch": 1}}))   # as the version before wrote it

        hub.clear_log()
        result = pull_dataset(FeatureServerRecords(fast_client(), hub.services.url + COOK), layout, "city", "poi",
                              store.con, uid="city:poi", run_id="r", part_rows=200)
        asked = case.asked(hub)
    assert result.resumed and result.rows == len(case.rows)
    assert sorted(pq.read_table(layout.folder("city", "poi"), columns=["OBJECTID"])["OBJECTID"].to_pylist()) == case.keys
    assert asked == [(199, 1), (200, 200), (400, 100)]   # (the row before, asked again: the last staged)


def test_a_one_second_window_over_the_cap_fails_the_pull_naming_it_and_the_cap():
    """Open311's `requests.json` pages by number (its page size is the server's): an answer
    over the cap is asked again in narrower windows, down to the one second of the request
    over the cap alone, which cannot be narrowed: its rows are never skipped."""
    requests = load_json(BOSTON)
    requests[10]["description"] = "x" * 300_000
    with Open311Portal(services=JSON_SERVICES, requests=requests) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client(max_bytes=200_000))
        source = RequestsRecords(adapter, None, now=datetime(2020, 3, 1, tzinfo=UTC), since=datetime(2019, 12, 1, tzinfo=UTC))
        with pytest.raises(ResponseTooLarge) as failed:
            list(source.batches(None))
    message = str(failed.value)
    second = requests[10]["requested_datetime"]   # (its instant, in UTC)
    second = datetime.fromisoformat(second).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert re.match(rf"response is over the 200000-byte cap: the window at start_date={second}Z, end_date=\S+Z, "
                    r"page=1 is one second, which cannot be narrowed, and a records pull never skips a row: the pull "
                    r"fails, its previous records kept \(CIVICAT_HTTP_MAX_BYTES raises the cap\) "
                    r"\(http://127.0.0.1:\d+/open311/v2/requests.json\?", message), message
