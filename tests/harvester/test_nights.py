"""One catalogue's life over six nights, as a data team runs it and its analysts read it.

A local portal of every kind serves real recorded payloads (../shared/fixtures; the
OpenDataSoft portal's catalogue is synthetic: no ODS payload was recorded), and `civicat
harvest` runs through the CLI night after night while the portals change between nights:
datasets edited, removed and back, added; portals failing past every retry and recovering;
a CKAN listing whose pages shift while read; a Hub identifier URL that changes; a dataset
whose `modified` stays while its content changes; a `--portal` night and a `--full` night.
After each night every promise of SPEC's Store section is checked on the catalogue, the read
copy, `civicat runs`, and (the last night) the Parquet export and data.json.
"""
from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from harvester.cli import cli
from harvester.portals import ckan as ckan_adapter
from tests.portals.base import LocalPortal
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.open311 import Open311Portal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal
from tests.shared_fixtures import FIXTURES, load_json, require_fixtures

CHICAGO = "data.cityofchicago.org"
LAYERS = ["cook-county-poi-layer-metadata.json", "chicago-census-places-layer-metadata.json",
          "esri-test-layer-metadata.json", "columbia-mo-layer-metadata.json", "polk-fl-addresses-layer-metadata.json"]
# each request tried twice, a millisecond apart: a portal failing "past every retry" fails fast
FAST_RETRIES = {"CIVICAT_HTTP_MAX_ATTEMPTS": "2", "CIVICAT_HTTP_BACKOFF": "0.001", "CIVICAT_MAP_WORKERS": "0"}
# the tables whose rows belong to one portal, and how to pick them out
PORTAL_ROWS = {
    "datasets": "SELECT * FROM datasets WHERE portal_id = ? ORDER BY uid",
    "distributions": "SELECT d.* FROM distributions d WHERE split_part(dataset_uid, ':', 1) = ? ORDER BY ALL",
    "columns": "SELECT c.* FROM columns c WHERE split_part(dataset_uid, ':', 1) = ? ORDER BY ALL",
    "raw_records": "SELECT uid, raw_hash, raw, details, fetched_at FROM raw_records WHERE portal_id = ? ORDER BY ALL",
    "portal_listings": "SELECT * FROM portal_listings WHERE portal_id = ?",
    "listing_pages": "SELECT * FROM listing_pages WHERE portal_id = ? ORDER BY ALL",
}


def now() -> datetime:
    return datetime.now(timezone.utc)


class Nights:
    """The portals, the config and the catalogue's paths; `run(...)` is one night's `civicat`."""

    def __init__(self, tmp_path: Path, urls: dict[str, tuple[str, str, str]]):
        self.db = tmp_path / "civicat.duckdb"
        self.read_copy = tmp_path / "civicat.read.duckdb"
        self.config = tmp_path / "nights.toml"
        self.config.write_text("".join(f'[[portals]]\nid = "{pid}"\ncity = "City {pid}"\nkind = "{kind}"\n'
                                       f'url = "{url}"\ncontact_email = "opendata@{pid}.example.org"\n{extra}\n\n' for pid, (kind, url, extra) in urls.items()))
        self.portal_ids = list(urls)

    def cli(self, *args: str):
        result = CliRunner().invoke(cli, [*args], env=FAST_RETRIES, catch_exceptions=False)
        return result

    def harvest(self, *args: str) -> tuple[int, dict, datetime, datetime]:
        # each portal's latest complete listing before the night: the last_seen of a dataset gone missing
        self.listed_before = dict(self.query("SELECT portal_id, listed_at FROM portal_listings")) \
            if self.db.exists() else {}
        started = now()
        result = self.cli("harvest", "--config", str(self.config), "--db", str(self.db), "--json", *args)
        finished = now()
        return result.exit_code, json.loads(result.stdout), started, finished

    def query(self, sql: str, params=(), db: Path | None = None) -> list[tuple]:
        with duckdb.connect(str(db or self.db), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()

    def rows_of(self, portal_id: str, db: Path | None = None) -> dict[str, list[tuple]]:
        # one connection for the lot: opening the catalogue costs more than these queries
        with duckdb.connect(str(db or self.db), read_only=True) as con:
            return {table: con.execute(sql, [portal_id]).fetchall() for table, sql in PORTAL_ROWS.items()}

    def datasets(self) -> dict[str, dict]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            cursor = con.execute("SELECT * FROM datasets")
            names = [d[0] for d in cursor.description]
            return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}


def socrata_entries() -> list[dict]:
    return load_json("socrata-catalog/chicago-discovery-transportation-p1.json")["results"]


def ckan_packages() -> list[dict]:
    return load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"]


def hub_feed(services_url: str) -> dict:
    text = json.dumps(load_json("dcat-us/evian-fr-arcgis-hub-data.json"))
    return json.loads(text.replace("https://services.arcgis.com", services_url))


def serve_layers(services: LocalPortal, feed: dict) -> None:
    from harvester.portals.arcgis_hub import layer_url
    for number, url in enumerate(u for u in map(layer_url, feed["dataset"]) if u):
        services.serve_json(url.split(services.url, 1)[1], load_json(f"arcgis-featureserver/{LAYERS[number % 5]}"))


def services_url(hub, entry) -> str:
    return hub.services.url


def hub_source_id(entry: dict) -> str:
    from harvester.portals.dcat_us import arcgis_item_id
    return arcgis_item_id(entry["identifier"], entry.get("landingPage"))


def check_timestamps(nights: Nights, before: dict[str, dict], after: dict[str, dict], started: datetime,
                     finished: datetime, changed: set[str], new: set[str], gone: set[str], back: set[str],
                     untouched_portals: set[str], missing: frozenset[str] = frozenset()) -> None:
    """Each dataset's timestamp columns say what this night did to it, and nothing is purged."""
    assert set(before) <= set(after), f"purged: {set(before) - set(after)}"
    assert new <= set(after), f"not stored: {new - set(after)}"
    during = lambda t: t is not None and started <= t <= finished   # noqa: E731
    for uid, row in after.items():
        old = before.get(uid)
        if uid in new:
            assert old is None and during(row["first_seen"]) and during(row["last_changed"]), uid
            assert row["deleted_at"] is None and during(row["last_seen"]), uid
            continue
        assert old is not None, f"{uid} appeared unannounced"
        assert row["first_seen"] == old["first_seen"], f"{uid}: first_seen moved"
        if uid in gone:
            assert old["deleted_at"] is None and during(row["deleted_at"]), uid
            assert row["raw_hash"] == old["raw_hash"] and row["last_changed"] == old["last_changed"], uid
            assert row["last_seen"] == nights.listed_before[row["portal_id"]], f"{uid}: last_seen not its last listing"
        elif uid in missing:   # gone from a complete listing, within its portal's grace: still live
            assert old["missing_since"] is None and during(row["missing_since"]) and row["deleted_at"] is None, uid
            assert row["last_seen"] == nights.listed_before[row["portal_id"]], f"{uid}: last_seen not its last listing"
        elif uid in back:
            assert old["deleted_at"] is not None and row["deleted_at"] is None, uid
            assert row["missing_since"] is None and during(row["last_seen"]), uid
        elif uid in changed:
            assert row["raw_hash"] != old["raw_hash"], f"{uid}: raw_hash kept on a change"
            assert during(row["last_changed"]) and during(row["last_seen"]), f"{uid}: last_changed not moved"
            assert row["deleted_at"] is None
        else:
            assert row == old or row["portal_id"] not in untouched_portals and {
                k: v for k, v in row.items() if k != "last_seen"} == {
                k: v for k, v in old.items() if k != "last_seen"}, f"{uid} changed unannounced"


def check_runs(nights: Nights, report: dict, exit_code: int, expected: dict[str, tuple]) -> None:
    """The report, harvest_runs and `civicat runs` agree on each portal's outcome;
    `expected`: portal → (status, error_type or None)."""
    run_id = report["run_id"]
    got = {p["portal_id"]: (p["status"], p["error_type"]) for p in report["portals"]}
    assert got == expected, got
    assert exit_code == (0 if all(s == "ok" for s, _ in expected.values()) else 1)
    stored = {pid: (status, etype, message) for pid, status, etype, message in nights.query(
        "SELECT portal_id, status, error_type, error_message FROM harvest_runs WHERE run_id = ?", [run_id])}
    assert {pid: v[:2] for pid, v in stored.items()} == expected
    for pid, (status, etype, message) in stored.items():
        assert (status == "ok") == (message is None), (pid, message)
        # a failure is also an error of the list stage, saying the same
        assert nights.query("SELECT error_type, message FROM harvest_errors WHERE run_id = ? AND portal_id = ? "
                            "AND stage = 'list' AND severity = 'error'", [run_id, pid]) == (
            [(etype, message)] if status == "failed" else [])
    listed = json.loads(nights.cli("runs", "--db", str(nights.db), "--json", "--limit", "1").stdout)
    assert {r["portal_id"]: (r["status"], r["error_type"]) for r in listed if r["run_id"] == run_id} == expected
    errors = json.loads(nights.cli("runs", "--db", str(nights.db), "--json", "--errors", "--limit", "1").stdout)
    failed = {pid for pid, (status, _) in expected.items() if status == "failed"}
    assert {e["portal_id"] for e in errors["errors"] if e["stage"] == "list" and e["severity"] == "error"} == failed


def datastore_ids(ck: CkanPortal) -> set[str]:
    """The CKAN packages naming a DataStore resource (the local portal has none: each answers 404)."""
    return {p["id"] for p in ck.packages if any(r.get("datastore_active") is True for r in p.get("resources") or [])}


def lookups_refused(nights: Nights, report: dict) -> set[str]:
    """The source ids of the night's CKAN errors of the fetch stage, each checked a NotFound."""
    rows = nights.query("SELECT source_id, error_type, severity FROM harvest_errors WHERE run_id = ? "
                        "AND portal_id = 'ck' AND stage = 'fetch'", [report["run_id"]])
    assert all((error_type, severity) == ("NotFound", "error") for _, error_type, severity in rows), rows
    return {source_id for source_id, _, _ in rows}


def check_counts(report: dict, expected: dict[str, dict]) -> None:
    """The report's counts of the portals named: {portal: {"new": 1, ...}} (unnamed counts: 0)."""
    keys = ("new", "changed", "removed")
    for pid, counts in expected.items():
        got = next(p for p in report["portals"] if p["portal_id"] == pid)
        assert {k: got[k] for k in keys} == {k: counts.get(k, 0) for k in keys}, (pid, got)


WRITTEN = ("new", "changed", "back", "listed_again")   # events of a dataset the merge wrote (or listed again)


def check_events(nights: Nights, report: dict, before: dict[str, dict], after: dict[str, dict],
                 expected: dict[str, tuple[str, list[str] | None]]) -> None:
    """The night's dataset_events are `expected` (uid -> (event, changed fields)), no more: each
    with the raw hashes the dataset had before and after the night, at the time its row says, and
    as many as the report counts (changed: a dataset written again, back or listed again changed)."""
    got = as_dicts(nights, f"SELECT * FROM dataset_events WHERE run_id = '{report['run_id']}'")
    assert len({e["uid"] for e in got}) == len(got), "a dataset twice in one night"
    assert {e["uid"]: (e["event"], e["changed_fields"]) for e in got} == expected
    for e in got:
        row, old = after[e["uid"]], before.get(e["uid"])
        assert e["portal_id"] == row["portal_id"]
        assert (e["raw_hash_before"], e["raw_hash_after"]) == (old and old["raw_hash"], row["raw_hash"]), e
        written = row["last_changed"] if e["raw_hash_before"] != e["raw_hash_after"] else row["last_seen"]
        assert e["occurred_at"] == {"removed": row["deleted_at"], "missing": row["missing_since"]}.get(
            e["event"], written), e
    for portal in report["portals"]:
        mine = [e for e in got if e["portal_id"] == portal["portal_id"]]
        count = lambda *kinds: sum(1 for e in mine if e["event"] in kinds)   # noqa: E731
        assert (portal["new"], portal["removed"]) == (count("new"), count("removed")), portal["portal_id"]
        assert portal["changed"] == count("changed", "back") + sum(
            1 for e in mine if e["event"] == "listed_again" and e["raw_hash_before"] != e["raw_hash_after"])


def search_uids(nights: Nights, text: str) -> set[str]:
    result = nights.cli("search", "--db", str(nights.db), "--json", "--limit", "50", text)
    assert result.exit_code == 0, result.output
    return {hit["uid"] for hit in json.loads(result.stdout)}


def as_dicts(nights: Nights, sql: str) -> list[dict]:
    with duckdb.connect(str(nights.db), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def readme_questions() -> list[str]:
    """The README's five questions an analyst asks, as its SQL block gives them."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("Five questions an analyst asks", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    queries: list[list[str]] = []
    for line in block.splitlines():
        if line.startswith("--"):
            if not queries or queries[-1]:
                queries.append([])   # a comment after a query begins the next one
        else:
            queries[-1].append(line)
    queries = ["\n".join(lines) for lines in queries]
    assert len(queries) == 5, block
    return queries


def ask(nights: Nights, sql: str) -> list[dict]:
    result = nights.cli("sql", "--db", str(nights.db), "--format", "json", sql)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_read_copy(nights: Nights) -> None:
    tables = [(table, sql, [pid]) for pid in nights.portal_ids for table, sql in PORTAL_ROWS.items()]
    tables += [(table, f"SELECT * FROM {table} ORDER BY ALL", []) for table in
               ("harvest_runs", "harvest_errors", "search_documents")]
    with duckdb.connect(str(nights.db), read_only=True) as catalogue, \
            duckdb.connect(str(nights.read_copy), read_only=True) as read_copy:
        for table, sql, params in tables:
            assert read_copy.execute(sql, params).fetchall() == catalogue.execute(sql, params).fetchall(), \
                f"the read copy's {table} {params} differs"


@pytest.fixture
def small_ckan_pages(monkeypatch):
    """CKAN listing pages of 4 packages (the real one holds 10): pages that can shift."""
    monkeypatch.setattr(ckan_adapter, "ROWS", 4)


def test_six_nights_of_one_catalogue(tmp_path, small_ckan_pages):
    require_fixtures()
    soc_entries, packages = socrata_entries(), ckan_packages()
    legacy = load_json("dcat-us/socrata-pod-2013-08-28/data.nola.gov.json")
    ods = make_ods_datasets(6)
    sf311 = (FIXTURES / "open311" / "sf-sf311v2-services.xml").read_bytes()
    with LocalPortal() as services:
        feed = hub_feed(services.url)
        serve_layers(services, feed)
        with SocrataPortal(copy.deepcopy(soc_entries), domain=CHICAGO) as soc, \
                CkanPortal(copy.deepcopy(packages)) as ck, DataJsonPortal(copy.deepcopy(legacy)) as dj, \
                DataJsonPortal(copy.deepcopy(feed), path=HUB_FEED_PATH) as hub, \
                OpenDataSoftPortal(copy.deepcopy(ods)) as ods_portal, Open311Portal(services_xml=sf311) as o311:
            nights = Nights(tmp_path, {"soc": ("socrata", soc.url, f'domain = "{CHICAGO}"'), "ck": ("ckan", ck.url, ""),
                                       "dj": ("dcat-us", dj.url + "/data.json", ""), "hub": ("arcgis-hub", hub.url, ""),
                                       "ods": ("opendatasoft", ods_portal.url, "deletion_grace_days = 3"), "o311": ("open311", o311.url, "")})
            hub.services = services
            run_the_nights(nights, soc, ck, dj, hub, ods_portal, o311, soc_entries, legacy)


def run_the_nights(nights, soc, ck, dj, hub, ods_portal, o311, soc_entries, legacy):
    hub_services = hub.services
    all_ok = {pid: ("ok", None) for pid in nights.portal_ids}
    uid = lambda pid, sid: f"{pid}:{sid}"   # noqa: E731
    soc_ids = [e["resource"]["id"] for e in soc_entries]

    # Night 1: the first harvest of every portal
    code, report, started, finished = nights.harvest()
    check_runs(nights, report, code, all_ok)
    first = nights.datasets()
    per_portal = {pid: sum(1 for r in first.values() if r["portal_id"] == pid) for pid in nights.portal_ids}
    assert per_portal == {"soc": 10, "ck": 10, "dj": len([e for e in legacy if e.get("identifier")]), "hub": 8,
                          "ods": 6, "o311": 1}, per_portal
    check_timestamps(nights, {}, first, started, finished, set(), set(first), set(), set(), set())
    # Birmingham's packages whose DataStore resource answers 404: an error each, typed NotFound
    assert lookups_refused(nights, report) == datastore_ids(ck) != set()
    check_events(nights, report, {}, first, {u: ("new", None) for u in first})
    check_read_copy(nights)

    # Night 2: Socrata edits one dataset (title, columns, updatedAt), drops one, adds one; CKAN answers
    # 500 past every retry, the data.json HTML behind a 200, ODS truncated JSON; the Hub's item URL changes
    edited = soc.entries[0]["resource"]
    edited.update(name=edited["name"] + " (revised)", updatedAt="2026-12-01T00:00:00.000Z",
                  columns_field_name=edited["columns_field_name"] + ["ward"],
                  columns_name=edited["columns_name"] + ["Ward"], columns_datatype=edited["columns_datatype"] + ["number"],
                  columns_description=edited["columns_description"] + [""])
    removed = soc.entries.pop(1)
    added = copy.deepcopy(soc.entries[-1])
    added["resource"].update(id="zzzz-2026", name="Bike lanes 2026")
    soc.entries = [*soc.entries, added]
    ck.inject("/api/3/action/package_search", ("status", 500), times=100)
    dj.inject("/data.json", "html", times=100)
    ods_portal.inject("/api/explore", "truncated_json", times=100)
    moved = hub.document["dataset"][0]
    moved_sid = "f6565516d1354383b25793e630cf3f2b_5"
    # the Hub's newer identifier: the dataset's page by its slug (no item id); the landing page keeps it
    moved["identifier"] = "https://ville-d-evian-opendata-ville-evian.hub.arcgis.com/datasets/sigevian::stationnement-velos"
    hub.document = copy.deepcopy(hub.document)
    kept = {pid: nights.rows_of(pid) for pid in ("ck", "dj", "ods")}
    code, report, started, finished = nights.harvest()
    nights.night_2_began = started
    check_runs(nights, report, code, {**all_ok, "ck": ("failed", "ServerError"), "dj": ("failed", "HtmlInsteadOfData"),
                                      "ods": ("failed", "InvalidBody")})
    why = {p["portal_id"]: p["error_message"] for p in report["portals"]}
    assert why["ck"].startswith("HTTP 500") and why["dj"].startswith("HTML page instead of JSON")
    assert why["ods"].startswith("invalid or truncated JSON")
    second = nights.datasets()
    check_timestamps(nights, first, second, started, finished,
                     changed={uid("soc", soc_ids[0]), uid("hub", moved_sid)}, new={uid("soc", "zzzz-2026")},
                     gone={uid("soc", removed["resource"]["id"])}, back=set(), untouched_portals={"ck", "dj", "ods"})
    assert second[uid("hub", moved_sid)]["identifier"] == moved["identifier"]
    # what changed, and what: the failed portals and the unchanged one wrote no event
    check_events(nights, report, first, second, {
        uid("soc", soc_ids[0]): ("changed", ["title", "modified", "columns"]), uid("soc", "zzzz-2026"): ("new", None),
        uid("soc", removed["resource"]["id"]): ("removed", None), uid("hub", moved_sid): ("changed", ["identifier"])})
    check_counts(report, {"soc": {"new": 1, "changed": 1, "removed": 1}, "hub": {"changed": 1}, "o311": {}})
    table = nights.cli("runs", "--db", str(nights.db), "--limit", "1").stdout
    assert any(line.split()[1:2] == ["ck"] and "failed" in line and "HTTP 500" in line for line in table.splitlines()), table
    assert uid("soc", soc_ids[0]) in search_uids(nights, "revised")
    assert uid("soc", "zzzz-2026") in search_uids(nights, "Bike lanes 2026")
    assert uid("soc", removed["resource"]["id"]) not in search_uids(nights, removed["resource"]["name"])
    for pid, rows in kept.items():
        assert nights.rows_of(pid) == rows, f"{pid} failed and its rows changed"
    assert nights.query("SELECT list(field_name ORDER BY position) FROM columns WHERE dataset_uid = ?",
                        [uid("soc", soc_ids[0])])[0][0][-1] == "ward"
    assert second[uid("soc", soc_ids[0])]["modified"] == datetime(2026, 12, 1, tzinfo=timezone.utc)
    check_read_copy(nights)

    # Night 3: everyone recovers; the removed Socrata dataset is back; the CKAN listing shifts while read
    # (a package sorting first appears after the first page: the last of page 1 is asked again on page 2);
    # one data.json dataset's description changes while its `modified` stays; Open311 fails (HTML)
    for portal in (ck, dj, ods_portal):
        portal.clear_faults()
    soc.entries = [*soc.entries[:1], removed, *soc.entries[1:]]
    newcomer = copy.deepcopy(ck.packages[0])
    newcomer.update(id="00000000-0000-4000-8000-000000000000", name="purchase-card-transactions-2026",
                    title="Purchase Card Transactions 2026")

    # ... and a package of a later page is withdrawn at the same moment: the listing cannot tell it
    # from the shift, so it is not marked deleted tonight
    withdrawn = sorted(ck.packages, key=lambda p: p["id"])[8]

    def shift(path, query):
        if path == "/api/3/action/package_search" and query.get("start") == "4" and newcomer not in ck.packages:
            ck.packages.append(newcomer)
            ck.packages.remove(withdrawn)
    ck.on_request = shift
    quiet = next(e for e in dj.document if e.get("identifier") and e.get("modified"))
    quiet["description"] = (quiet.get("description") or "") + " Now with 2026 data."
    dj.document = copy.deepcopy(dj.document)
    o311.inject("/services", "html", times=100)
    # the Hub: a layer gains a field while its feed entry stays as it was, and the Hub's last runs
    # are a week old (an entry listed as stored keeps its layer until the layer's night of the week)
    with duckdb.connect(str(nights.db)) as con:
        con.execute("UPDATE harvest_runs SET started_at = started_at - INTERVAL 7 DAY WHERE portal_id = 'hub'")
    from harvester.portals.arcgis_hub import layer_url
    layered = hub.document["dataset"][1]
    layer_path = layer_url(layered).split(services_url(hub, layered), 1)[1]
    layer = copy.deepcopy(hub_services.static[layer_path])
    layer["fields"] = [*layer["fields"], {"name": "capacity", "alias": "Capacity", "type": "esriFieldTypeInteger"}]
    hub_services.serve_json(layer_path, layer)
    # ODS: one dataset retitled, one gone
    ods_portal.datasets[0]["metas"]["default"]["title"] += " (corrected)"
    ods_gone = ods_portal.datasets.pop(3)
    kept = {"o311": nights.rows_of("o311")}
    code, report, started, finished = nights.harvest()
    check_runs(nights, report, code, {**all_ok, "o311": ("failed", "HtmlInsteadOfData")})
    third = nights.datasets()
    ck_report = next(p for p in report["portals"] if p["portal_id"] == "ck")
    assert (ck_report["duplicates"], ck_report["listing_complete"]) == (1, False)
    # the packages listed as stored whose DataStore answered 404 on night 1: not asked, not reported again
    assert lookups_refused(nights, report) == set() and ck_report["errors"] == 0
    assert nights.query("SELECT stage, error_type, severity FROM harvest_errors WHERE run_id = ? AND portal_id = 'ck'"
                        " AND stage <> 'fetch'",
                        [report["run_id"]]) == [("list", "DuplicateId", "warning"),
                                                ("list", "PartialListing", "warning")]
    check_counts(report, {"soc": {"changed": 1}, "ck": {}, "dj": {"changed": 1}, "ods": {"changed": 1},
                          "hub": {"changed": 1}})
    assert nights.query("SELECT list(field_name ORDER BY position) FROM columns WHERE dataset_uid = ?",
                        [uid("hub", hub_source_id(layered))])[0][0][-1] == "capacity"
    assert uid("soc", removed["resource"]["id"]) in search_uids(nights, removed["resource"]["name"])
    # the package added after the first page was read is not in this night's listing (it comes next night)
    check_timestamps(nights, second, third, started, finished,
                     changed={uid("dj", quiet["identifier"]), uid("hub", hub_source_id(layered)),
                              uid("ods", ods_portal.datasets[0]["dataset_id"])},
                     new=set(), gone=set(), missing={uid("ods", ods_gone["dataset_id"])}, back={uid("soc", removed["resource"]["id"])},
                     untouched_portals={"o311"})
    assert third[uid("dj", quiet["identifier"])]["modified"] == second[uid("dj", quiet["identifier"])]["modified"]
    check_events(nights, report, second, third, {
        uid("soc", removed["resource"]["id"]): ("back", []), uid("dj", quiet["identifier"]): ("changed", ["description"]),
        uid("hub", hub_source_id(layered)): ("changed", ["columns"]),
        uid("ods", ods_portal.datasets[0]["dataset_id"]): ("changed", ["title"]),
        uid("ods", ods_gone["dataset_id"]): ("missing", None)})   # (CKAN's partial listing: nothing)
    assert nights.rows_of("o311") == kept["o311"]
    assert third[uid("ck", withdrawn["id"])]["deleted_at"] is None
    check_read_copy(nights)

    # Night 4: `--portal soc` only: Socrata drops another dataset; the others are not asked
    ck.on_request = None
    o311.clear_faults()
    gone_again = soc.entries.pop(2)
    asked = {p: len(p.requests) for p in (ck, dj, hub, ods_portal, o311)}
    kept = {pid: nights.rows_of(pid) for pid in nights.portal_ids if pid != "soc"}
    code, report, started, finished = nights.harvest("--portal", "soc")
    check_runs(nights, report, code, {"soc": ("ok", None)})
    assert {p: len(p.requests) for p in asked} == asked
    check_counts(report, {"soc": {"removed": 1}})
    assert {pid: nights.rows_of(pid) for pid in kept} == kept
    # "which portal failed last night, and why": each portal's last harvest, tonight's only Socrata's
    last_harvests = ask(nights, readme_questions()[3])
    assert {r["portal_id"]: (r["status"], (r["error_message"] or "")[:25]) for r in last_harvests} == {
        **{pid: ("ok", "") for pid in nights.portal_ids}, "o311": ("failed", "HTML page instead of JSON")}
    assert uid("soc", gone_again["resource"]["id"]) not in search_uids(nights, gone_again["resource"]["name"])
    fourth = nights.datasets()
    check_timestamps(nights, third, fourth, started, finished, changed=set(), new=set(),
                     gone={uid("soc", gone_again["resource"]["id"])}, back=set(),
                     untouched_portals=set(nights.portal_ids) - {"soc"})
    check_events(nights, report, third, fourth, {uid("soc", gone_again["resource"]["id"]): ("removed", None)})
    check_read_copy(nights)

    night_2_began = nights.night_2_began
    # Night 5: `--full`: every dataset re-mapped, none rewritten; CKAN's newcomer of night 3 listed now
    code, report, started, finished = nights.harvest("--full")
    check_runs(nights, report, code, all_ok)
    assert {p["portal_id"]: p["changed"] for p in report["portals"]} == dict.fromkeys(nights.portal_ids, 0)
    assert {p["portal_id"]: p["not_modified"] for p in report["portals"]} == dict.fromkeys(nights.portal_ids, 0)
    fifth = nights.datasets()
    check_counts(report, {"ck": {"new": 1, "removed": 1}})
    # --full asks every DataStore again: each package naming one reports its 404 again
    assert lookups_refused(nights, report) == datastore_ids(ck) != set()
    check_timestamps(nights, fourth, fifth, started, finished, set(), {uid("ck", newcomer["id"])},
                     {uid("ck", withdrawn["id"])}, set(), set())
    # every dataset re-mapped, none changed: only the night's real news
    check_events(nights, report, fourth, fifth, {uid("ck", newcomer["id"]): ("new", None),
                                                 uid("ck", withdrawn["id"]): ("removed", None)})
    check_read_copy(nights)

    # Night 6: Open311 renames a service; then the export: Parquet follows the catalogue (deleted rows
    # too, marked), data.json holds the live datasets only
    o311.services_xml = o311.services_xml.replace(b"Cans_Left_Out_24x7", b"Cans left out (24x7)")
    ck.clear_log()
    code, report, started, finished = nights.harvest()
    check_runs(nights, report, code, all_ok)
    check_counts(report, {pid: {"changed": 1} if pid == "o311" else {} for pid in nights.portal_ids})
    assert lookups_refused(nights, report) == set() and not ck.hits["/api/3/action/datastore_search"]
    assert {p["portal_id"]: p["errors"] for p in report["portals"]} == dict.fromkeys(nights.portal_ids, 0)
    # an unchanged listing is answered 304, page by page
    assert all(p["not_modified"] == p["requests"] for p in report["portals"] if p["portal_id"] in ("soc", "dj", "ods"))
    sixth = nights.datasets()
    check_timestamps(nights, fifth, sixth, started, finished, {uid("o311", "service-requests")}, set(), set(), set(),
                     set())
    assert ("Cans left out (24x7)",) in nights.query("SELECT service_name FROM open311_services")
    check_events(nights, report, fifth, sixth, {uid("o311", "service-requests"): ("changed", ["description", "keywords"])})
    # the cron's second line: overlap, then the export
    overlap = nights.cli("overlap", "--db", str(nights.db))
    assert overlap.exit_code == 0, overlap.output
    assert not nights.query("SELECT uid FROM overlap_groups JOIN datasets USING (uid) WHERE deleted_at IS NOT NULL")
    out = nights.db.parent / "export"
    exported = nights.cli("export", "--db", str(nights.db), "--config", str(nights.config), "--out", str(out),
                          "--format", "parquet", "--format", "data.json")
    assert exported.exit_code == 0, exported.output
    table = pq.read_table(out / "datasets.parquet").to_pylist()
    # last_seen as the README's query gives it (a listed dataset: its portal's latest complete listing)
    seen = dict(nights.query("""SELECT d.uid, CASE WHEN d.deleted_at IS NULL AND d.missing_since IS NULL
                                THEN greatest(d.last_seen, l.listed_at) ELSE d.last_seen END
                                FROM datasets d LEFT JOIN portal_listings l USING (portal_id)"""))
    assert {r["uid"]: r for r in table} == {u: {**r, "last_seen": seen[u]} for u, r in sixth.items()}
    for name in ("distributions", "columns"):
        assert sorted(map(str, pq.read_table(out / f"{name}.parquet").to_pylist())) == sorted(
            map(str, as_dicts(nights, f"SELECT * FROM {name}"))), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["row_counts"] == {name: nights.query(f"SELECT count(*) FROM {name}")[0][0]
                                      for name in manifest["row_counts"]}
    for file in manifest["files"]:
        assert hashlib.sha256((out / file["path"]).read_bytes()).hexdigest() == file["sha256"], file["path"]
    catalog = json.loads((out / "data.json").read_text())
    live = {u: r for u, r in sixth.items() if r["deleted_at"] is None}
    gone_uid = uid("soc", gone_again["resource"]["id"])
    assert gone_uid not in live and sixth[gone_uid]["deleted_at"] is not None
    listed = json.loads(nights.cli("export", "--db", str(nights.db), "--config", str(nights.config), "--out",
                                   str(out), "--format", "data.json", "--json").stdout)
    left_out = {item["uid"] for item in listed["data.json"]["left_out_datasets"]}
    assert listed["data.json"]["datasets"] == len(catalog["dataset"]) == len(live) - len(left_out)

    assert sorted(d["identifier"] for d in catalog["dataset"]) == sorted(
        r["identifier"] for u, r in live.items() if u not in left_out)

    # the analyst's week: what changed since night 2 began and what, what is removed, what was removed and
    # is back, by the README's queries through `civicat sql`, then from the export with polars and pandas
    since_night_2 = [query.replace("TIMESTAMPTZ '2026-11-30 00:00:00+00'", f"TIMESTAMPTZ '{night_2_began.isoformat()}'")
                     for query in readme_questions()]
    week = {r["uid"]: (r["events"], r["fields"]) for r in ask(nights, since_night_2[0])}
    assert week == {uid("soc", soc_ids[0]): (["changed"], ["columns", "modified", "title"]),
                    uid("soc", "zzzz-2026"): (["new"], []), uid("hub", moved_sid): (["changed"], ["identifier"]),
                    uid("soc", removed["resource"]["id"]): (["removed", "back"], []),
                    uid("dj", quiet["identifier"]): (["changed"], ["description"]),
                    uid("hub", hub_source_id(layered)): (["changed"], ["columns"]),
                    uid("ods", ods_portal.datasets[0]["dataset_id"]): (["changed"], ["title"]),
                    uid("ods", ods_gone["dataset_id"]): (["missing"], []), gone_uid: (["removed"], []),
                    uid("ck", newcomer["id"]): (["new"], []), uid("ck", withdrawn["id"]): (["removed"], []),
                    uid("o311", "service-requests"): (["changed"], ["description", "keywords"])}
    assert [r["uid"] for r in ask(nights, since_night_2[2])] == [uid("soc", removed["resource"]["id"])]
    changed = {u for u, (events, _) in week.items() if {"new", "changed", "back"} & set(events) and u in live}
    removals = {r["uid"] for r in ask(nights, readme_questions()[1])}
    assert removals == {gone_uid, uid("ck", withdrawn["id"])}
    # ODS's dataset gone since night 3 is missing, not removed: its portal's grace is 3 days
    assert ask(nights, "SELECT uid FROM datasets WHERE missing_since IS NOT NULL AND deleted_at IS NULL") == [
        {"uid": uid("ods", ods_gone["dataset_id"])}]
    assert sixth[uid("ods", ods_gone["dataset_id"])]["missing_since"] == third[uid("ods", ods_gone["dataset_id"])][
        "missing_since"] is not None
    exported = pl.read_parquet(out / "datasets.parquet")
    assert set(exported.filter(pl.col("deleted_at").is_null() & (pl.col("last_changed") >= night_2_began))["uid"]) \
        == set(changed)
    frame = pd.read_parquet(out / "datasets.parquet")
    assert set(frame.loc[frame["deleted_at"].notna(), "uid"]) == removals


def test_an_id_listed_twice_every_night_keeps_a_paged_listing_incomplete(tmp_path):
    """docs/harvesting.md (Reading the report): a paged listing cannot tell an id listed twice
    every night from a shift, so nothing of it is marked missing; one data.json document can."""
    require_fixtures()
    entries = socrata_entries()
    legacy = load_json("dcat-us/socrata-pod-2013-08-28/data.nola.gov.json")
    with SocrataPortal([*entries, copy.deepcopy(entries[3])], domain=CHICAGO) as soc, \
            DataJsonPortal([*legacy, copy.deepcopy(legacy[5])]) as dj:
        nights = Nights(tmp_path, {"soc": ("socrata", soc.url, f'domain = "{CHICAGO}"'),
                                   "dj": ("dcat-us", dj.url + "/data.json", "")})
        nights.harvest()
        soc.entries.pop(0)
        dj.document = legacy[1:] + [copy.deepcopy(legacy[5])]
        code, report, _, _ = nights.harvest()
    got = {p["portal_id"]: (p["duplicates"], p["listing_complete"], p["removed"]) for p in report["portals"]}
    assert code == 0 and got == {"soc": (1, False, 0), "dj": (1, True, 1)}


def test_the_readme_s_fifth_question_lists_the_datasets_dated_ahead(tmp_path):
    """README, the fifth question: which datasets say they were modified more than a day from now. Stadt
    Zürich's six packages (recorded), one of them dated a year ahead of today ("01.10.2026" in the city's
    recorded catalogue, 54 days after the day it was recorded, moved a year past this test's day), harvested
    through `civicat harvest` and asked through `civicat sql`: that one alone, with its day; a package of
    today's date (within the day's slack) is not listed."""
    zurich = load_json("ckan/zurich-stadt-package_search-verkehr.json")["results"] + \
        load_json("ckan/zurich-stadt-group_show-mobilitat.json")["packages"]
    ahead = next(p for p in zurich if p["name"] == "geo_abstimmungsgeraete_taz")
    today = next(p for p in zurich if p is not ahead)
    year_ahead, day = now().date().replace(day=1).replace(year=now().year + 1), now().date()
    ahead["dateLastUpdated"] = f"{year_ahead:%d.%m.%Y}"
    today["dateLastUpdated"] = f"{day:%d.%m.%Y}"
    with CkanPortal(zurich) as portal:
        nights = Nights(tmp_path, {"zh": ("ckan", portal.url, "")})
        code, report, _, _ = nights.harvest()
    assert code == 0 and report["portals"][0]["warnings"] == 1, report
    assert ask(nights, readme_questions()[4]) == [
        {"uid": f"zh:{ahead['id']}", "title": ahead["title"], "modified": f"{year_ahead:%Y-%m-%d}T00:00:00+00:00"}]
