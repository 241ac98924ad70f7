"""The pipeline's promises: deletions come only from complete listings (after the grace
period), an unchanged catalogue is not rewritten, portals run side by side. What a harvest
does under faults is in test_faults.py."""
import copy
import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog.search import search
from harvester import mapping
from harvester.pipeline import harvest
from tests.catalog.test_store import _glibc
from tests.conftest import fast_client, portal_config
from tests.portals.dcat import DataJsonPortal
from tests.portals.socrata import SocrataPortal, discovery_entry
from tests.portals.synth import make_data_json, make_socrata_entries

DOMAIN = "data.example.org"


def snapshot(store):
    return store.con.execute("SELECT * FROM datasets ORDER BY uid").fetchall()


def count(store, sql="SELECT count(*) FROM datasets"):
    return store.con.execute(sql).fetchone()[0]


@pytest.fixture
def socrata():
    with SocrataPortal(make_socrata_entries(350, domain=DOMAIN), domain=DOMAIN) as portal:
        portal.config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        yield portal


def test_deletions_only_from_complete_listings_and_restored_on_return(store, http, socrata):
    assert harvest([socrata.config], store, http).ok
    gone = socrata.entries.pop(5)
    uid = f"city:{gone['resource']['id']}"
    report = harvest([socrata.config], store, http).portals[0]
    assert report.removed == 1 and report.unchanged == 349
    assert count(store, f"SELECT count(*) FROM datasets WHERE uid = '{uid}' AND deleted_at IS NOT NULL") == 1
    socrata.entries.insert(5, gone)
    report = harvest([socrata.config], store, http).portals[0]
    assert report.changed == 1 and count(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NOT NULL") == 0


def test_unchanged_second_run_rewrites_nothing(store, http, socrata):
    harvest([socrata.config], store, http)
    before = snapshot(store), store.con.execute("SELECT * FROM raw_records ORDER BY uid").fetchall()
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.new, report.changed, report.unchanged, report.removed) == (0, 0, 350, 0)
    assert report.not_modified == report.requests > 0                # every page answered 304
    assert (snapshot(store), store.con.execute("SELECT * FROM raw_records ORDER BY uid").fetchall()) == before
    # the listing's time is kept once for the portal, later than every dataset's own last_seen
    assert store.con.execute("SELECT datasets, listed_at > (SELECT max(last_seen) FROM datasets) "
                             "FROM portal_listings").fetchall() == [(350, True)]

    for entry in socrata.entries[:50]:
        entry["resource"]["page_views"]["page_views_total"] += 10   # counters move every night
    socrata.entries = list(socrata.entries)                           # serve the new version
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.new, report.changed, report.unchanged) == (0, 0, 350) and report.not_modified < report.requests
    assert snapshot(store) == before[0]


def test_an_unchanged_night_stages_no_file_and_writes_nothing_but_its_run(store, http, socrata, monkeypatch):
    """Nothing new or changed: the stage holds no records part (no empty Parquet written),
    the merge skips the staged records' statements, and every stored table but the runs and
    the portal's listing time is as the night before left it."""
    tables = ("datasets", "distributions", "columns", "raw_records", "listing_pages")

    def stored():
        return {table: store.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in tables}

    harvest([socrata.config], store, http)
    before, staged = stored(), []
    merge = store._merge

    def merged(stage, *args, **kwargs):   # the stage as the merge finds it, closed
        staged.append(sorted(path.name for path in stage.directory.iterdir()))
        return merge(stage, *args, **kwargs)

    monkeypatch.setattr(store, "_merge", merged)
    listed_before = store.con.execute("SELECT listed_at FROM portal_listings").fetchone()[0]
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.new, report.changed, report.unchanged, report.removed) == (0, 0, 350, 0)
    assert report.not_modified == report.requests > 0
    assert staged == [["seen.jsonl"]]
    assert stored() == before
    assert store.con.execute("SELECT datasets, listed_at > ? FROM portal_listings", [listed_before]).fetchall() == [
        (350, True)]
    assert store.con.execute("SELECT status, new, changed, unchanged FROM harvest_runs ORDER BY started_at").fetchall(
        ) == [("ok", 350, 0, 0), ("ok", 0, 0, 350)]



def test_an_unchanged_portal_costs_the_catalogue_few_statements(store, http, socrata, monkeypatch):
    """What an unchanged portal pays the catalogue for (a night of 300 portals, docs/benchmarks.md,
    session 28): the last listing's pages (listing_pages, whose list of ids DuckDB reads whole for
    any of its rows, every portal's: 3 ms a query at 100 portals, O(portals) each) read once for
    the run, not once a portal, and not read by the merge (session 29: 3 ms a portal at 100
    portals, 6 at 300); no dataset_events statement when nothing happened to a dataset; the
    listing's time an UPDATE of its row. Recorded as before: the runs, the listing's time."""
    from catalog import uncut
    with SocrataPortal(make_socrata_entries(120, domain=DOMAIN, seed=7), domain=DOMAIN) as other:
        portals = [socrata.config, portal_config("town", "socrata", other.url, domain=DOMAIN)]
        assert harvest(portals, store, http).ok
        listed_before = dict(store.con.execute("SELECT portal_id, listed_at FROM portal_listings").fetchall())
        statements, call = [], uncut.Connection._call

        def recorded(self, method, args, kwargs):
            if method.__name__ == "execute":
                statements.append(" ".join(str(args[0]).split()))
            return call(self, method, args, kwargs)

        monkeypatch.setattr(uncut.Connection, "_call", recorded)
        run = harvest(portals, store, http, workers=2)
    assert [(p.new, p.changed, p.unchanged, p.removed) for p in run.portals] == [(0, 0, 350, 0), (0, 0, 120, 0)]
    assert sum("len(ids)" in sql for sql in statements) == 1   # (was one a portal)
    # (nor are the pages' ids read by the merges: the listing is the stored one, and the datasets as it left them)
    assert [sql for sql in statements if "_seen" in sql] == []
    assert sum("FROM harvest_runs" in sql and "ORDER BY started_at DESC LIMIT 1" in sql for sql in statements) == 0
    assert not [sql for sql in statements if "dataset_events" in sql]
    assert not [sql for sql in statements if "INSERT OR REPLACE INTO portal_listings" in sql]
    listed = dict(store.con.execute("SELECT portal_id, listed_at FROM portal_listings").fetchall())
    assert listed.keys() == {"city", "town"} and all(listed[p] > listed_before[p] for p in listed)
    assert store.con.execute("SELECT portal_id, count(*) FROM harvest_runs WHERE status = 'ok' GROUP BY ALL ORDER BY 1"
                             ).fetchall() == [("city", 2), ("town", 2)]
    assert store.con.execute("SELECT count(*) FROM dataset_events").fetchone()[0] == 470   # (night 1's: new)



def test_a_listing_answered_as_stored_still_marks_missing_a_dataset_no_stored_page_names(store, http, socrata):
    """Every page answered as last night, and no entry read: the merge reads no listed ids only
    when the portal's live datasets are exactly those the stored pages name. One they do not
    name (left by an earlier listing that was not complete, here put by hand) goes missing."""
    assert harvest([socrata.config], store, http).ok
    store.con.execute("""INSERT INTO datasets SELECT * REPLACE ('city:extr-a001' AS uid, 'extr-a001' AS source_id)
                         FROM datasets WHERE portal_id = 'city' LIMIT 1""")
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.status, report.new, report.changed, report.unchanged) == ("ok", 0, 0, 350)
    assert store.con.execute("SELECT uid FROM datasets WHERE missing_since IS NOT NULL").fetchall() == [("city:extr-a001",)]
    assert store.con.execute("SELECT datasets FROM portal_listings WHERE portal_id = 'city'").fetchone()[0] == 350
    report = harvest([socrata.config], store, http).portals[0]   # (and the night after, as stored: nothing to do)
    assert (report.unchanged, store.con.execute("SELECT count(*) FROM datasets WHERE missing_since IS NOT NULL")
            .fetchone()[0]) == (350, 1)


def test_what_a_failed_run_left_unpointed_is_pruned_as_the_next_harvest_begins(store, http, socrata):
    """The portals' last runs are read once for the harvest: a portal whose last run failed
    (and could not clean up) has its raw versions no dataset points at pruned; one whose last
    run ended ok is not scanned for them."""
    with SocrataPortal(make_socrata_entries(120, domain=DOMAIN, seed=7), domain=DOMAIN) as other:
        portals = [socrata.config, portal_config("town", "socrata", other.url, domain=DOMAIN)]
        assert harvest(portals, store, http).ok
        for portal_id in ("city", "town"):   # a raw version no dataset points at (put by hand)
            store.con.execute("INSERT INTO raw_records VALUES (?, 'h', ?, 'gone', '{}', NULL, now())",
                              [f"{portal_id}:gone", portal_id])
        store.con.execute("""INSERT INTO harvest_runs (run_id, portal_id, started_at, status)
                             VALUES ('failed-run', 'city', now(), 'failed')""")
        assert harvest(portals, store, http).ok
    assert store.con.execute("SELECT uid FROM raw_records WHERE source_id = 'gone'").fetchall() == [("town:gone",)]


def test_entries_of_a_page_the_catalogue_holds_are_not_even_hashed(store, http, socrata, monkeypatch):
    """A listing page answered as last night (a 304, or the same body) holds entries the
    catalogue stores as they are on it: they are unchanged without hashing each one. A
    page that changed is hashed entry by entry, so its changed entry is still found."""
    hashed = []
    real_hash = mapping.raw_hash
    monkeypatch.setattr(mapping, "raw_hash", lambda *args: hashed.append(1) or real_hash(*args))
    harvest([socrata.config], store, http)
    pages = store.settled_pages("city")
    assert len(pages) == 4 and all(key.startswith("socrata/") for key in pages)   # 350 entries, 100 a page

    hashed.clear()
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.new, report.changed, report.unchanged) == (0, 0, 350) and hashed == []

    socrata.entries[120]["resource"]["name"] = "Renamed dataset"   # on the second page
    socrata.entries = list(socrata.entries)
    hashed.clear()
    report = harvest([socrata.config], store, http).portals[0]
    # the second page's 100 entries checked, and the changed one hashed again as it is mapped
    assert (report.new, report.changed, report.unchanged) == (0, 1, 349) and len(hashed) == 101
    uid = f"city:{socrata.entries[120]['resource']['id']}"
    assert store.con.execute("SELECT title FROM datasets WHERE uid = ?", [uid]).fetchone() == ("Renamed dataset",)
    assert store.settled_pages("city") != pages and len(store.settled_pages("city")) == 4


def test_a_city_renamed_in_the_config_remaps_every_dataset_once(store, http, socrata):
    harvest([socrata.config], store, http)
    renamed = portal_config("city", "socrata", socrata.url, domain=DOMAIN, city="Renamed City")
    report = harvest([renamed], store, http).portals[0]
    assert report.changed == 350 and count(store, "SELECT count(DISTINCT city) FROM datasets") == 1
    assert store.con.execute("SELECT DISTINCT city FROM datasets").fetchone() == ("Renamed City",)
    assert harvest([renamed], store, http).portals[0].unchanged == 350


def test_a_full_harvest_changes_only_the_datasets_whose_mapping_changed(store, http, socrata, monkeypatch):
    """--full re-maps every dataset, but last_changed (what "what changed this week" and
    the search index go by) moves only for one the mapping now gives another record."""
    from harvester.portals.socrata import SocrataAdapter

    assert harvest([socrata.config], store, http).ok
    state = "SELECT built_at, documents, updated FROM search_state"
    before, index = snapshot(store), store.con.execute(state).fetchall()
    report = harvest([socrata.config], store, fast_client(), full=True).portals[0]
    assert (report.new, report.changed, report.unchanged, report.removed) == (0, 0, 350, 0)
    assert snapshot(store) == before and store.con.execute(state).fetchall() == index   # the index not rebuilt

    ids = [entry["resource"]["id"] for entry in socrata.entries if entry["resource"].get("columns_name")]
    retitled, recolumned = set(ids[:3]), set(ids[3:5])
    real_map = SocrataAdapter.map

    def new_mapping(self, entry, details, notes):   # civicat's mapping changed, its version not bumped
        out = real_map(self, entry, details, notes)
        if out["source_id"] in retitled:
            out["title"] = f"Remapped {out['title']}"
        if out["source_id"] in recolumned:
            out["columns"][0]["name"] = "Zeppelin mooring"
        return out

    monkeypatch.setattr(SocrataAdapter, "map", new_mapping)
    started = datetime.now(UTC)
    report = harvest([socrata.config], store, fast_client(), full=True).portals[0]
    assert (report.new, report.changed, report.unchanged, report.removed) == (0, 5, 345, 0)
    assert {uid for uid, in store.con.execute("SELECT uid FROM datasets WHERE last_changed >= ?", [started]).fetchall()
            } == {f"city:{i}" for i in retitled | recolumned}
    # the search index: those five indexed again in place (their old documents out, new ones in), not rebuilt
    assert store.con.execute("SELECT documents, updated FROM search_state").fetchall() == [(index[0][1], 5 + 5)]
    assert {hit["uid"] for hit in search(store.con, "zeppelin mooring")} == {f"city:{i}" for i in recolumned}
    assert {hit["uid"] for hit in search(store.con, "remapped")} == {f"city:{i}" for i in retitled}


def rejections(store, run_id):
    return store.con.execute("SELECT source_id, error_type FROM harvest_errors WHERE run_id = ? "
                             "AND severity = 'error'", [run_id]).fetchall()


def test_a_page_holding_a_rejected_entry_is_not_settled(store, http, socrata):
    """The catalogue keeps the old version of an entry it now rejects: the page is not
    settled, so the rejection is found and reported again every night it lasts."""
    harvest([socrata.config], store, http)
    rejected = socrata.entries[120]["resource"]
    rejected["name"] = None   # no title
    socrata.entries = list(socrata.entries)
    second = harvest([socrata.config], store, http)
    assert rejections(store, second.run_id) == [(rejected["id"], "RecordRejected")]
    assert len(store.settled_pages("city")) == 3   # of 4: not the second page
    third = harvest([socrata.config], store, http)   # every page a 304
    assert third.portals[0].not_modified == third.portals[0].requests
    assert rejections(store, third.run_id) == [(rejected["id"], "RecordRejected")]


def table_columns_only_in_views() -> tuple[dict, dict]:
    """A table whose Discovery entry lists no columns: they come from /api/views."""
    view = {"id": "abcd-1234", "name": "Crimes", "columns": [
        {"fieldName": "id", "name": "ID", "dataTypeName": "number"},
        {"fieldName": "kind", "name": "Kind", "dataTypeName": "text"}]}
    entry = discovery_entry(view, DOMAIN)
    for key in ("columns_field_name", "columns_name", "columns_datatype", "columns_description"):
        del entry["resource"][key]
    return view, entry


def test_a_failed_details_lookup_keeps_the_stored_version(store, http):
    """A table whose columns come from /api/views: when that lookup fails one night, the
    stored dataset keeps its columns (half the metadata never replaces the whole), with a
    warning; its entry as listed unchanged, it is not rewritten, and its page is read again."""
    view, entry = table_columns_only_in_views()
    with SocrataPortal(make_socrata_entries(20, domain=DOMAIN) + [entry], views={"abcd-1234": view},
                       domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        harvest([config], store, http)
        columns = "SELECT count(*) FROM columns WHERE dataset_uid = 'city:abcd-1234'"
        assert count(store, columns) == 2
        portal.views = {}                                                   # the lookup now fails
        portal.entries[0]["resource"]["page_views"]["page_views_total"] += 1  # and the page changed
        portal.entries = list(portal.entries)
        report = harvest([config], store, http)
        assert report.portals[0].status == "ok" and report.portals[0].changed == 0
        assert rejections(store, report.run_id) == [] and report.portals[0].warnings == 1
        assert store.con.execute("SELECT source_id, stage FROM harvest_errors WHERE run_id = ? "
                                 "AND severity = 'warning'", [report.run_id]).fetchall() == [("abcd-1234", "fetch")]
        assert count(store, columns) == 2 and store.settled_pages("city") == set()


def test_the_stored_details_of_failed_lookups_are_asked_for_many_parts_at_once(store, http, monkeypatch):
    """Each ask reads every stored details document of the portal, so the entries whose
    lookup failed wait for more than one part's worth (30 here, parts of 10: one ask, not
    three), and each keeps the columns its lookup gave before."""
    monkeypatch.setattr(mapping, "BATCH", 10)
    views = [{"id": f"t{i:03d}-{i:04d}", "name": f"Table {i}", "columns": [
        {"fieldName": "id", "name": "ID", "dataTypeName": "number"},
        {"fieldName": "kind", "name": "Kind", "dataTypeName": "text"}]} for i in range(30)]
    entries = [discovery_entry(view, DOMAIN) for view in views]
    for entry in entries:   # columns only in /api/views
        for key in ("columns_field_name", "columns_name", "columns_datatype", "columns_description"):
            del entry["resource"][key]
    with SocrataPortal(entries, views={v["id"]: v for v in views}, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        harvest([config], store, http)
        portal.views = {}                                                   # every lookup now fails
        for entry in portal.entries:
            entry["resource"]["updatedAt"] = "2024-02-01T12:00:00.000Z"      # and every entry changed
        portal.entries = list(portal.entries)
        asked = []
        stored_details = store.stored_details
        monkeypatch.setattr(store, "stored_details", lambda uids: asked.append(len(uids)) or stored_details(uids))
        report = harvest([config], store, http).portals[0]
    assert report.status == "ok" and report.warnings == 30 and report.errors == 0
    assert asked == [30]
    assert count(store, "SELECT count(*) FROM columns WHERE dataset_uid LIKE 'city:%'") == 60


def test_a_new_dataset_whose_details_lookup_failed_is_looked_up_again_next_night(store, http):
    """Its page is not settled: the next night reads it (even answered 304) and makes the
    lookup again, so the dataset gets its columns once the portal answers (a fault of the
    moment, here a 503; a 404 is asked again later: tests/harvester/portals)."""
    view, entry = table_columns_only_in_views()
    with SocrataPortal(make_socrata_entries(20, domain=DOMAIN) + [entry], views={"abcd-1234": view},
                       domain=DOMAIN) as portal:
        portal.inject("/api/views/", ("status", 503), times=100)
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        first = harvest([config], store, http)
        columns = "SELECT count(*) FROM columns WHERE dataset_uid = 'city:abcd-1234'"
        assert first.portals[0].new == 21 and count(store, columns) == 0
        portal.clear_faults()                                              # the lookup works again
        second = harvest([config], store, http).portals[0]
        assert second.changed == 1 and count(store, columns) == 2


def test_no_page_is_settled_after_a_listing_with_duplicates_or_under_another_mapping(store, http, socrata,
                                                                                      monkeypatch):
    socrata.entries.insert(150, copy.deepcopy(socrata.entries[20]))   # an id listed twice
    harvest([socrata.config], store, http)
    assert store.settled_pages("city") == set()
    del socrata.entries[150]
    harvest([socrata.config], store, http)
    assert len(store.settled_pages("city")) == 4

    from harvester.portals.socrata import SocrataAdapter
    monkeypatch.setattr(SocrataAdapter, "mapping_version", SocrataAdapter.mapping_version + 1)  # a new mapping
    hashed = []
    real_hash = mapping.raw_hash
    monkeypatch.setattr(mapping, "raw_hash", lambda *args: hashed.append(1) or real_hash(*args))
    report = harvest([socrata.config], store, http).portals[0]
    # every entry checked by its hash, then hashed again as it is mapped: each is new under the new mapping
    assert report.changed == 350 and len(hashed) == 2 * 350


def test_a_missing_dataset_waits_out_the_grace_period(store, http, socrata):
    config = portal_config("city", "socrata", socrata.url, domain=DOMAIN, deletion_grace_days=1)
    assert harvest([config], store, http).ok
    gone = socrata.entries.pop(5)
    uid = f"city:{gone['resource']['id']}"
    report = harvest([config], store, http).portals[0]
    assert report.removed == 0 and count(store, f"SELECT count(*) FROM datasets WHERE uid = '{uid}' "
                                                "AND missing_since IS NOT NULL AND deleted_at IS NULL") == 1
    store.con.execute("UPDATE datasets SET missing_since = missing_since - INTERVAL 25 HOUR")   # a day later
    assert harvest([config], store, http).portals[0].removed == 1
    assert count(store, f"SELECT count(*) FROM datasets WHERE uid = '{uid}' AND deleted_at IS NOT NULL") == 1


def test_portals_are_harvested_side_by_side_and_stored_as_one_by_one(store, http):
    portals = [DataJsonPortal(make_data_json(20, seed=seed)) for seed in range(3)]
    # each portal answers its first request only once all three have been asked: harvested one
    # after the other, the barrier breaks (its timeout only ends a failing test; nothing is timed)
    import threading
    all_asked, met = threading.Barrier(3, timeout=60), []

    def answering_once_all_asked():
        first = [True]

        def on_request(path, query):
            if first and first.pop():
                try:
                    all_asked.wait()
                    met.append(True)
                except threading.BrokenBarrierError:
                    met.append(False)
        return on_request

    for portal in portals:
        portal.start()
        portal.on_request = answering_once_all_asked()
    try:
        configs = [portal_config(f"p{i}", "dcat-us", p.url + "/data.json") for i, p in enumerate(portals)]
        report = harvest(configs, store, http, workers=3)
    finally:
        for portal in portals:
            portal.stop()
    assert report.ok and [p.portal_id for p in report.portals] == ["p0", "p1", "p2"]   # in config order
    assert [p.new for p in report.portals] == [20, 20, 20] and count(store) == 60
    assert met == [True, True, True]                                       # asked side by side
    assert count(store, "SELECT count(DISTINCT run_id) FROM harvest_runs WHERE status = 'ok'") == 1


def test_unsupported_kind_fails_that_portal_only(store, http):
    with DataJsonPortal(make_data_json(2)) as portal:
        report = harvest([portal_config("b", "made-up-kind", "http://127.0.0.1:9"),
                          portal_config("a", "dcat-us", portal.url + "/data.json")], store, http)
    assert [p.status for p in report.portals] == ["failed", "ok"]
    assert "no adapter" in report.portals[0].error_message


def test_values_that_do_not_fit_never_stop_the_portal(store, http):
    document = make_data_json(3)
    odd = {**copy.deepcopy(document["dataset"][0]), "identifier": "odd", "title": "Odd \ud83d values",
           "issued": "0001-01-01T00:00:00+05:00", "publisher": ["x"], "theme": {"a": 1}}
    document["dataset"].append(odd)
    with DataJsonPortal(document) as portal:
        report = harvest([portal_config("city", "dcat-us", portal.url + "/data.json")], store, http).portals[0]
    assert report.status == "ok" and count(store) == 4 and report.errors == 0
    assert store.con.execute("SELECT title, issued FROM datasets WHERE source_id = 'odd'").fetchone() == (
        "Odd \ufffd values", None)


# -- the unchanged night: known pages unread, asked along last night's chain -------------------

LISTING = "/api/catalog/v1"


def test_a_known_page_answered_304_is_neither_read_nor_parsed_and_its_datasets_are_seen(store, http, socrata,
                                                                                           monkeypatch):
    from harvester.http import ValidatorCache
    from harvester.http import json_parsing   # (where the listing's parse, capped_json, reads parse_json_body)
    harvest([socrata.config], store, http)
    bodies, parsed = [], []
    real_body, real_parse = ValidatorCache.body, json_parsing.parse_json_body
    monkeypatch.setattr(ValidatorCache, "body", lambda self, *a: bodies.append(1) or real_body(self, *a))
    monkeypatch.setattr(json_parsing, "parse_json_body", lambda *a: parsed.append(1) or real_parse(*a))
    socrata.requests.clear()
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.new, report.changed, report.unchanged, report.removed) == (0, 0, 350, 0)
    assert report.seen == 350 and report.listing_complete and report.requests == report.not_modified == 5
    assert len(bodies) == len(parsed) == 1   # the probe's (limit=1), which is not a listing page
    # every dataset of the unread pages counted seen by the merge: none missing, all listed
    assert count(store, "SELECT count(*) FROM datasets WHERE missing_since IS NOT NULL") == 0
    assert count(store, "SELECT datasets FROM portal_listings WHERE portal_id = 'city'") == 350

    # one dataset gone from the last page, another added after it: the total (on every page)
    # holds, so the three pages before it come back the same and stay unread
    gone = socrata.entries.pop(340)
    socrata.entries = socrata.entries + make_socrata_entries(1, domain=DOMAIN, seed=99)
    bodies.clear()
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.new, report.unchanged, report.removed, report.seen) == (1, 349, 1, 350)
    assert report.not_modified == 4 and len(bodies) == 1   # the probe and the three unread pages
    assert store.con.execute("SELECT uid FROM datasets WHERE deleted_at IS NOT NULL").fetchall() == [
        (f"city:{gone['resource']['id']}",)]


def test_listing_requests_go_several_at_a_time_along_last_nights_chain_within_the_host_limit(store, http,
                                                                                              socrata):
    import threading
    config = portal_config("city", "socrata", socrata.url, domain=DOMAIN, max_concurrency=3)
    harvest([config], store, http)
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow_listing(path, query):
        if path == LISTING:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.3)
            with lock:
                in_flight[0] -= 1

    socrata.on_request = slow_listing
    socrata.requests.clear()
    report = harvest([config], store, http).portals[0]
    assert report.unchanged == 350 and report.requests == report.not_modified == 5
    assert peak[0] == 3                                              # concurrent, and never past the limit
    sent = [(query.get("offset"), "If-None-Match" in headers) for path, query, headers in socrata.requests]
    assert sorted(sent) == [("0", True), ("0", True), ("100", True), ("200", True), ("300", True)]  # probe, chain


def test_a_listing_holding_an_id_also_on_a_page_left_unread_is_a_listing_with_duplicates(store, http, socrata):
    harvest([socrata.config], store, http)
    twice = copy.deepcopy(socrata.entries[20])                      # on the first page, which stays the same
    socrata.entries[250] = twice                                    # and on the third, in another's place
    socrata.entries = list(socrata.entries)
    report = harvest([socrata.config], store, http).portals[0]
    assert report.not_modified == 4 and report.duplicates == 1 and report.seen == 349
    assert report.listing_complete is False and report.removed == 0  # 349 of 350: nothing is marked missing
    assert store.con.execute("SELECT source_id FROM harvest_errors WHERE error_type = 'DuplicateId'").fetchall() == [
        (twice["resource"]["id"],)]
    assert store.settled_pages("city") == set()                     # which copy was stored depends on the order


def test_a_page_that_repeats_the_one_before_is_not_replayed_the_next_night(store, http, socrata):
    """A portal sending Last-Modified alone (its catalogue's last change) answers 304 to any
    page asked since then. A page refused for repeating the page before must not stay
    remembered as that URL's body: the nights after, paging fixed and nothing changed, the
    304 handed it out again: a listing short of that page's datasets (each of the page
    before counted twice), then, its pages no longer known, the portal failed again."""
    socrata.etags = False
    assert harvest([socrata.config], store, http).ok
    socrata.last_modified += timedelta(days=1)   # the catalogue changed: every page is answered anew
    paging_on = socrata.route

    def third_page_repeats_the_second(path, query):
        return paging_on(path, {**query, "offset": "100"} if query.get("offset") == "200" else query)

    socrata.route = third_page_repeats_the_second
    failed = harvest([socrata.config], store, http).portals[0]
    assert failed.status == "failed" and "repeats a page" in failed.error_message
    socrata.route = paging_on   # paged right again, and nothing changed since: 304s
    for _night in range(2):
        report = harvest([socrata.config], store, http).portals[0]
        assert report.status == "ok" and report.listing_complete and report.seen == 350
        assert report.duplicates == 0 and report.not_modified >= 3


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "other-bytes"])
def test_a_page_read_that_repeats_a_page_answered_as_last_nights_fails_the_listing(store, http, socrata, same_bytes):
    """The page at offset 100 is answered 304 (its entries not read), and the page at 200 gives
    that page's entries again (a portal ignoring the paging parameters from there on): every
    entry it gives is listed already, on the page left unread. It is a repeat, as it would be
    after a page read (PagingError), not 100 duplicates of a listing left incomplete; its body
    is not kept for its address."""
    assert harvest([socrata.config], store, http).ok
    paging_on = socrata.route

    def third_page_repeats_the_second(path, query):
        if query.get("offset") != "200":
            return paging_on(path, query)
        status, body = paging_on(path, {**query, "offset": "100"})
        return status, body if same_bytes else {**body, "timings": {"serviceMillis": 7}}

    socrata.route = third_page_repeats_the_second
    failed = harvest([socrata.config], store, http).portals[0]
    assert failed.status == "failed" and failed.error_type == "PagingError", failed
    assert "offset=200" in failed.error_message and "repeats a page" in failed.error_message
    assert failed.not_modified >= 2 and failed.removed == 0
    socrata.route = paging_on   # paged right again: the page at 200 is asked plainly, and read
    report = harvest([socrata.config], store, http).portals[0]
    assert report.status == "ok" and report.listing_complete and report.seen == 350 and report.duplicates == 0


def printed_by(probe: str) -> list[str]:
    """The words `probe` (Python) prints, run in a fresh process from the repository's root."""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_harvests_process_never_imports_pandas_and_can_use_it_afterwards(tmp_path, socrata):
    """DuckDB imports pandas on a statement's first bound parameter, pyarrow on the first
    pa.array (~42 MB of RSS for the life of the process): a fresh process that opens a
    catalogue, harvests, maps in-process and builds the search index has not imported it,
    and DuckDB and pyarrow use it when it is imported afterwards."""
    probe = (
        "import sys\n"
        "from catalog.store import Store\n"
        "from harvester.http import HttpClient, ValidatorCache\n"
        "from harvester.pipeline import harvest\n"
        "from harvester.config import PortalConfig\n"
        f"store = Store({str(tmp_path / 'c.duckdb')!r})\n"
        f"portal = PortalConfig(id='city', city='City', kind='socrata', url={socrata.url!r}, domain={DOMAIN!r})\n"
        f"report = harvest([portal], store, HttpClient(cache=ValidatorCache({str(tmp_path / 'cache')!r})))\n"
        "assert report.ok and report.portals[0].new == 350, report\n"
        "print('pandas' in sys.modules)\n"
        "import pandas, pyarrow as pa\n"
        "frame = pandas.DataFrame({'n': [1, 2]})\n"
        "store.con.register('frame', frame)\n"   # (named: a replacement scan sees catalog.uncut's frame, not this one)
        "assert store.con.execute('SELECT sum(n) FROM frame').fetchone()[0] == 3\n"
        "assert store.con.execute('SELECT count(*) FROM datasets WHERE ? IS NULL', [pandas.NA]).fetchone()[0] == 350\n"
        "assert pa.table({'n': [1]}).to_pandas().shape == (1, 1)\n"
        "print(pa.types.is_dictionary(pa.array(pandas.Series(['a', 'a'], dtype='category')).type))\n"
    )
    assert printed_by(probe) == ["False", "True"]


@pytest.mark.skipif(not _glibc(), reason="the arenas and the mmap threshold are glibc's malloc's")
def test_a_harvest_bounds_the_c_heaps_arenas_and_maps_large_blocks_on_their_own(tmp_path, socrata):
    """glibc gives every thread that allocates an arena of its own (up to 8 a core) and keeps what
    a thread freed in that thread's arena; its mmap threshold rises to the largest block freed, so
    that later answer bodies of some MB came out of the arenas and stayed there: the harvest's own
    peak rose with the large listings its threads had passed through (444 MB at 100 portals,
    509-529 at 300). After a harvest has begun, six threads holding a block at once add at most
    one arena (they added six), and a block of 4 MB freed and asked for again is mapped on its own
    (it came from an arena). In a fresh process: the settings are the process's."""
    probe = (
        "import ctypes, os, re, tempfile, threading\n"
        "from catalog.store import Store\n"
        "from harvester.config import PortalConfig\n"
        "from harvester.http import HttpClient\n"
        "from harvester.pipeline import harvest\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.fopen.restype = ctypes.c_void_p\n"
        "def arenas():\n"
        "    path = tempfile.mktemp()\n"
        "    out = libc.fopen(path.encode(), b'w')\n"
        "    libc.malloc_info(0, ctypes.c_void_p(out))\n"
        "    libc.fclose(ctypes.c_void_p(out))\n"
        "    with open(path) as info:\n"
        "        return len(re.findall(r'<heap nr=', info.read()))\n"
        "class Info(ctypes.Structure):\n"
        "    _fields_ = [(n, ctypes.c_size_t) for n in 'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks "
        "fordblks keepcost'.split()]\n"
        "libc.mallinfo2.restype = Info\n"
        f"store = Store({str(tmp_path / 'c.duckdb')!r})\n"
        f"portal = PortalConfig(id='city', city='City', kind='socrata', url={socrata.url!r}, domain={DOMAIN!r})\n"
        "before = arenas()\n"
        "assert harvest([portal], store, HttpClient(), workers=2).ok\n"
        "together = threading.Barrier(7)\n"
        "def hold():\n"
        "    block = bytes(100_000)\n"   # (past obmalloc's small objects: malloc, in this thread)
        "    together.wait(timeout=60)\n"
        "    together.wait(timeout=60)\n"
        "threads = [threading.Thread(target=hold) for _ in range(6)]\n"
        "for thread in threads: thread.start()\n"
        "together.wait(timeout=60)\n"
        "print(arenas() - before)\n"
        "together.wait(timeout=60)\n"
        "for thread in threads: thread.join()\n"
        "block = bytes(4 << 20)\n"
        "del block\n"
        "mapped = libc.mallinfo2().hblks\n"
        "block = bytes(4 << 20)\n"
        "print(libc.mallinfo2().hblks - mapped)\n"
        "store.close()\n"
    )
    new_arenas, mapped = map(int, printed_by(probe))
    assert new_arenas <= 1 and mapped == 1, (new_arenas, mapped)


def test_a_stop_during_the_rebuild_after_a_merge_reports_the_portal_stored(store, http, socrata, monkeypatch):
    """A stop (Ctrl-C, SIGTERM) as the tables a merge left holding deletes are rebuilt, after the
    portal's merge committed: the portal was reported failed, Interrupted, 'before this portal was
    stored; its previous catalogue is kept', though its changes were stored. It is reported
    stored (ok, its counts), saying what was not done and when it will be; the harvest stops."""
    import catalog.store as store_module
    from harvester.pipeline import HarvestInterrupted

    assert harvest([socrata.config], store, http).ok
    for entry in socrata.entries[:20]:
        entry["resource"]["name"] += " (v2)"
        entry["resource"]["updatedAt"] = "2026-02-01T00:00:00.000Z"
    rebuild = store_module._rebuild_table

    def stopped_after_the_copy(cur, table, rows, params):
        rebuild(cur, table, rows, params)
        if table in store_module.VACUUMED_TABLES:   # (a held stop is raised as its statement returns)
            raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "_rebuild_table", stopped_after_the_copy)
    monkeypatch.setattr(store_module, "VACUUM_BYTES", 1)
    with pytest.raises(HarvestInterrupted) as stopped:
        harvest([socrata.config], store, http)
    city = stopped.value.run.portals[0]
    assert (city.status, city.error_type, city.changed) == ("ok", None, 20), city
    assert city.error_message.startswith("stored; the harvest was interrupted") and "rebuild" in city.error_message
    assert count(store, "SELECT count(*) FROM datasets WHERE title LIKE '% (v2)'") == 20
    assert store.con.execute("SELECT status, changed, error_message FROM harvest_runs ORDER BY started_at DESC "
                             "LIMIT 1").fetchone() == ("ok", 20, city.error_message)
    assert store.deletes_held() > 0   # (the rebuild rolled back: left for later)


@pytest.mark.parametrize("when", ["as the COMMIT returned", "as commit_portal returned"])
def test_a_stop_just_after_the_merge_committed_reports_the_portal_stored(store, http, socrata, monkeypatch, when):
    """A stop (Ctrl-C, SIGTERM) that came just after the merge's COMMIT returned, before civicat
    noted it (not held through the COMMIT: no StoppedAfterStoring), reported the portal failed,
    'before this portal was stored; its previous catalogue is kept', though the catalogue held its
    changes. What is said follows what the catalogue holds: stored (ok, its counts), the harvest
    stopped all the same; and a stop before the COMMIT still says it was not stored."""
    from contextlib import contextmanager

    import catalog.store as store_module
    from harvester.pipeline import HarvestInterrupted

    assert harvest([socrata.config], store, http).ok
    for entry in socrata.entries[:20]:
        entry["resource"]["name"] += " (v2)"
        entry["resource"]["updatedAt"] = "2026-02-01T00:00:00.000Z"
    committed = store_module.stoppable_transaction
    commit_portal = store.commit_portal

    @contextmanager
    def stopped_as_the_commit_returned(cur):
        with committed(cur):
            yield
        raise KeyboardInterrupt   # (the stop's handler, run at the first step of Python after the COMMIT)

    def stopped_as_commit_portal_returned(*args, **kwargs):
        commit_portal(*args, **kwargs)
        raise KeyboardInterrupt

    if when == "as the COMMIT returned":
        monkeypatch.setattr(store_module, "stoppable_transaction", stopped_as_the_commit_returned)
    else:
        monkeypatch.setattr(store, "commit_portal", stopped_as_commit_portal_returned)
    with pytest.raises(HarvestInterrupted) as stopped:
        harvest([socrata.config], store, http)
    city = stopped.value.run.portals[0]
    assert (city.status, city.error_type, city.changed, city.new) == ("ok", None, 20, 0), city
    assert city.unchanged == 330 and city.seen == 350, city
    assert city.error_message.startswith("stored; the harvest was interrupted") and "just after" in city.error_message
    assert count(store, "SELECT count(*) FROM datasets WHERE title LIKE '% (v2)'") == 20
    assert store.con.execute("SELECT status, changed, unchanged, error_message FROM harvest_runs ORDER BY started_at "
                             "DESC LIMIT 1").fetchone() == ("ok", 20, 330, city.error_message)
    monkeypatch.undo()

    @contextmanager
    def stopped_before_the_commit(cur):   # (the merge rolled back: not stored, as it says)
        with committed(cur):
            yield
            raise KeyboardInterrupt

    for entry in socrata.entries[:10]:
        entry["resource"]["name"] += " (v3)"
        entry["resource"]["updatedAt"] = "2026-03-01T00:00:00.000Z"
    monkeypatch.setattr(store_module, "stoppable_transaction", stopped_before_the_commit)
    with pytest.raises(HarvestInterrupted) as stopped:
        harvest([socrata.config], store, fast_client())   # (the first client's run was stopped)
    city = stopped.value.run.portals[0]
    assert (city.status, city.error_type) == ("failed", "Interrupted"), city
    assert "before this portal was stored; its previous catalogue is kept" in city.error_message
    assert count(store, "SELECT count(*) FROM datasets WHERE title LIKE '% (v3)'") == 0


@pytest.mark.parametrize("gate", ["free", "held by a checkpoint"])
def test_a_stopped_portal_reads_whether_its_merge_committed_while_another_portal_holds_the_write_lock(
        store, http, socrata, monkeypatch, gate):
    """With --workers above 1, a portal stopped just after its merge committed asked the catalogue
    whether it had, under the store's write lock, which another portal's merge (run to its end in its
    thread after a stop) held as long as it ran: the stop's cleanup waited for it. The answer is read
    beside that merge, without the write lock; and where the catalogue is held for longer than the
    read may wait (a checkpoint, a re-attach), the portal says so ("stored or not, unknown"),
    neither "stored" nor "its previous catalogue is kept"."""
    import threading
    from contextlib import nullcontext

    import catalog.store as store_module
    from harvester.pipeline import HarvestInterrupted

    monkeypatch.setattr(store_module, "MERGED_READ_WAIT_SECONDS", 0.5, raising=False)
    merged, holding, answered, released = (threading.Event() for _ in range(4))
    answers: list = []
    commit_portal, merged_in_run = store.commit_portal, store.merged_in_run

    def merged_then_stopped(stage, portal_id, *args, **kwargs):
        if portal_id == "town":   # (another portal's merge, holding the write lock)
            assert merged.wait(60), "city never merged"
            held = store._gate.exclusive(None, "held by the test") if gate == "held by a checkpoint" else nullcontext()
            with store._write_lock, held:
                holding.set()
                answered.wait(60)   # (until city has its answer, or 60 s: main's code waited for this lock)
            released.set()
            return commit_portal(stage, portal_id, *args, **kwargs)
        commit_portal(stage, portal_id, *args, **kwargs)
        merged.set()
        assert holding.wait(60), "town never took the write lock"
        http.cancel()
        raise KeyboardInterrupt   # (a stop just after the COMMIT returned, before civicat noted it)

    def answered_while_held(run_id, portal_id):
        try:
            answers.append(merged_in_run(run_id, portal_id))
        except Exception as exc:
            answers.append(exc)
        finally:
            answers.append(released.is_set())
            answered.set()
        if isinstance(answers[0], Exception):
            raise answers[0]
        return answers[0]

    monkeypatch.setattr(store, "commit_portal", merged_then_stopped)
    monkeypatch.setattr(store, "merged_in_run", answered_while_held)
    with SocrataPortal(make_socrata_entries(120, domain=DOMAIN, seed=7), domain=DOMAIN) as other:
        portals = [socrata.config, portal_config("town", "socrata", other.url, domain=DOMAIN)]
        with pytest.raises(HarvestInterrupted) as stopped:
            harvest(portals, store, http, workers=2)
    city = stopped.value.run.portals[0]
    assert answers[1] is False, "city's answer waited for town's hold of the write lock to end"
    assert count(store, "SELECT count(*) FROM datasets WHERE portal_id = 'city'") == 350   # (it did commit)
    if gate == "free":
        assert answers[0] == {"new": 350, "changed": 0, "unchanged": 0, "removed": 0}, answers
        assert (city.status, city.error_type, city.new) == ("ok", None, 350), city
        assert city.error_message.startswith("stored; the harvest was interrupted"), city.error_message
    else:
        assert type(answers[0]).__name__ == "MergeOutcomeUnknown", answers
        assert (city.status, city.error_type) == ("failed", "Interrupted"), city
        assert city.error_message.startswith("stored or not, unknown: the harvest was interrupted (Ctrl-C) while this "
                                             "portal was being stored"), city.error_message
        assert "0.5 s" in city.error_message and "its previous catalogue is kept" not in city.error_message
    assert store.con.execute("SELECT status, error_message FROM harvest_runs WHERE portal_id = 'city'").fetchall() \
        == [(city.status, city.error_message)]


def test_a_library_caller_s_ctrl_c_as_a_merge_s_statement_takes_the_gate_leaves_no_hold(store, socrata, monkeypatch):
    """A harvest run from Python (Python's own SIGINT handler) and stopped by Ctrl-C as a statement of
    the merge had taken its hold of the store's gate, before the `try` that gives it back: the hold
    was kept for good, and every later checkpoint of the catalogue (each portal's after its merge,
    the close's) waited REATTACH_WAIT_SECONDS (600 s) and failed. The stop leaves the gate free."""
    import catalog.store as store_module
    from catalog.store import _Gate
    from harvester.pipeline import HarvestInterrupted
    from tests.catalog.test_store import sigint_in_main_thread_when

    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 5.0)   # (a hold kept: the checkpoint fails after it)
    merging = []
    commit_portal = store.commit_portal

    def noted(*args, **kwargs):
        merging.append(True)
        return commit_portal(*args, **kwargs)

    monkeypatch.setattr(store, "commit_portal", noted)
    with sigint_in_main_thread_when(_Gate.hold_shared, lambda frame: merging and frame.f_locals["self"]._shared) \
            as sent, pytest.raises(HarvestInterrupted) as stopped:
        harvest([socrata.config], store, fast_client())
    assert sent == [True]
    city = stopped.value.run.portals[0]
    assert (city.status, city.error_type) == ("failed", "Interrupted"), city
    assert store._gate._shared == 0
    assert harvest([socrata.config], store, fast_client()).ok
    assert count(store) == 350 and store.checkpoint("the test's checkpoint") is True


def test_a_portal_out_of_room_measures_the_free_space_once_its_staging_is_discarded(store, http, socrata, monkeypatch):
    """A portal that found no room (ENOSPC) said its file system's free space as it was before its
    staging (the listing's batches, what it had mapped) was discarded: less than the user then
    finds. It is measured after."""
    import errno

    import catalog.disk as disk

    staging = store.db_path.parent / f".{store.db_path.name}.staging"
    staged_when_measured: list[list[str]] = []
    measure = disk.free_space

    def measured(path):
        staged_when_measured.append(sorted(p.name for p in staging.rglob("*") if p.is_file()))
        return measure(path)

    def no_room(stage, portal_id, *args, **kwargs):
        assert [p for p in staging.rglob("*") if p.is_file()], "nothing staged to discard"
        raise OSError(errno.ENOSPC, "No space left on device", str(store.db_path) + ".wal")

    monkeypatch.setattr(disk, "free_space", measured)
    monkeypatch.setattr(store, "commit_portal", no_room)
    city = harvest([socrata.config], store, http).portals[0]
    assert (city.status, city.error_type) == ("failed", "DiskFull"), city
    assert city.error_message.startswith(f"no room to write the catalogue's write-ahead log ({store.db_path}.wal): "
                                         "its file system is full; ") and " MB free of " in city.error_message
    assert staged_when_measured == [[]], staged_when_measured


def paged_portal(kind: str, monkeypatch):
    """A local portal of a paged kind, of several pages, and its config."""
    from harvester.portals import ckan as ckan_adapter
    from tests.harvester.portals.test_ckan import packages
    from tests.portals.ckan import CkanPortal
    from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets

    if kind == "socrata":
        portal = SocrataPortal(make_socrata_entries(350, domain=DOMAIN), domain=DOMAIN)
        return portal, {"domain": DOMAIN}
    if kind == "ckan":
        monkeypatch.setattr(ckan_adapter, "ROWS", 40)
        return CkanPortal(packages(130)), {}
    return OpenDataSoftPortal(make_ods_datasets(250)), {}


def entries_checked(monkeypatch) -> list:
    """The entries the listing hands the mapper one by one (a page read), appended as they come."""
    checked, add = [], mapping.Mapper.add

    def counted(self, entry, page_digest=None):
        checked.append(entry)
        return add(self, entry, page_digest)

    monkeypatch.setattr(mapping.Mapper, "add", counted)
    return checked


@pytest.mark.parametrize("validators", ["none", "changing"])
@pytest.mark.parametrize("kind", ["socrata", "ckan", "opendatasoft"])
def test_a_paged_listings_page_answered_200_with_its_known_bytes_is_not_read(store, http, monkeypatch, kind,
                                                                             validators):
    """A portal that sends no validators (or a new ETag for the same bytes) answers every page
    200 every night: a page whose body is the one its request gave last night (its digest) is
    known, its entries not parsed nor handed out; the listing is complete and counts them all.
    A page that changed is read, the pages after it shifted too; `--full` reads every page."""
    portal, options = paged_portal(kind, monkeypatch)
    with portal:
        portal.validators = validators
        config = portal_config("city", kind, portal.url, **options)
        assert harvest([config], store, http).ok
        total = count(store)
        checked = entries_checked(monkeypatch)
        report = harvest([config], store, http).portals[0]
        assert (report.status, report.listing_complete, report.seen, report.unchanged) == ("ok", True, total, total)
        assert report.not_modified == 0 and checked == []
        assert store.settled_pages("city")   # (kept for the next night)

        report = harvest([config], store, http, full=True).portals[0]
        assert report.status == "ok" and len(checked) == total and report.seen == total


def test_a_new_etag_for_the_same_bytes_writes_the_validators_not_the_body(store, http, tmp_path):
    """A portal whose every answer carries an ETag of its own (servers behind a balancer) sends
    the same data.json each night: the validator cache keeps the body it holds (its gzip: 16 MB
    at 50,000 datasets) and writes the new validators alone. Counted in the bytes SQLite logs:
    the write-ahead log, emptied before the second night and held by a connection of the
    test's own (the cache's connections do not delete it), holds that night's writes."""
    with DataJsonPortal(make_data_json(2000)) as portal:
        portal.validators = "changing"
        config = portal_config("city", "dcat-us", portal.url + "/data.json")
        assert harvest([config], store, http).ok
        http.cache.flush()
        cache_file = tmp_path / "http_cache" / http.cache.CACHE_FILE
        watcher = sqlite3.connect(cache_file, isolation_level=None)
        try:
            assert watcher.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0   # (not busy)
            (meta, body), = watcher.execute("SELECT meta, body FROM entries JOIN bodies USING (url_key)").fetchall()
            report = harvest([config], store, http).portals[0]
            http.cache.flush()
            assert report.status == "ok" and report.unchanged == 2000 and report.bytes > len(body)
            logged = Path(f"{cache_file}-wal").stat().st_size
            (meta_after, body_after), = watcher.execute(
                "SELECT meta, body FROM entries JOIN bodies USING (url_key)").fetchall()
        finally:
            watcher.close()
    assert json.loads(meta_after)["etag"] != json.loads(meta)["etag"]    # the validators the portal sent last
    assert json.loads(meta_after)["sha256"] == json.loads(meta)["sha256"] and body_after == body
    assert len(body) > 100_000 and logged < len(body) / 4, (logged, len(body))


def test_a_page_holding_a_rejected_entry_is_read_every_night_whatever_its_bytes(store, http, socrata, monkeypatch):
    """Sent without validators, a page of the same bytes is known unread only when the catalogue
    holds every entry on it as it is: the page holding an entry rejected (no title) is read again
    each night, and the rejection reported each night it lasts; the other pages are not read."""
    socrata.validators = "none"
    rejected = socrata.entries[150]
    rejected["resource"]["name"] = None
    socrata.entries = list(socrata.entries)
    first = harvest([socrata.config], store, http).portals[0]
    assert first.status == "ok" and first.errors == 1
    checked = entries_checked(monkeypatch)
    report = harvest([socrata.config], store, http).portals[0]
    assert report.status == "ok" and report.errors == 1 and report.unchanged == 349 and report.seen == 350
    assert len(checked) == 100 and rejected in checked   # its page alone
    assert store.con.execute("SELECT count(DISTINCT run_id) FROM harvest_errors WHERE error_type = 'RecordRejected' "
                             "AND source_id = ?", [rejected["resource"]["id"]]).fetchone()[0] == 2


def test_the_uids_a_harvest_names_its_secrets_by_are_read_under_the_stores_lock(store, http, monkeypatch):
    """Portals are harvested side by side (`--workers`, 4 by default), their threads sharing the store's one
    connection, each use of it under the store's write lock: a connection's statements from two threads at
    once each fetch the result of whichever ran last. The exported uids a portal's report names its secrets
    by (u43: numbered as the exports number them) were read from a portal's thread without it."""
    import catalog.links as links
    import harvester.pipeline as pipeline

    held = []
    real = links.exported_uids

    def exported_uids(con):
        held.append(store._write_lock._is_owned())
        return real(con)

    monkeypatch.setattr(links, "exported_uids", exported_uids)
    monkeypatch.setattr(pipeline, "exported_uids", exported_uids, raising=False)
    documents = []
    for n in range(2):
        document = make_data_json(2)
        document["dataset"][0].update(identifier=f"https://data.city{n}.example/trees?id=9&token=k{n}",
                                      landingPage=f"https://data.city{n}.example/trees")   # (its source id)
        documents.append(document)
    with DataJsonPortal(documents[0]) as one, DataJsonPortal(documents[1]) as two:
        run = harvest([portal_config("one", "dcat-us", one.url + "/data.json"),
                       portal_config("two", "dcat-us", two.url + "/data.json")], store, http, workers=2)
    assert run.ok and [p.secrets_named for p in run.portals] == [
        ["one:https://data.city0.example/trees?id=9&token=REDACTED"],
        ["two:https://data.city1.example/trees?id=9&token=REDACTED"]]
    assert held == [True, True]
