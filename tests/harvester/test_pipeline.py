"""The pipeline's promises: a failing portal loses nothing, a bad record is reported and
the rest stored, deletions come only from complete listings."""
import copy

import pytest

from harvester.pipeline import harvest
from tests.conftest import fast_client, portal_config
from tests.portals.dcat import DataJsonPortal
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_data_json, make_socrata_entries

DOMAIN = "data.example.org"


def snapshot(store):
    return store.con.execute("SELECT * EXCLUDE (last_seen) FROM datasets ORDER BY uid").fetchall()


def count(store, sql="SELECT count(*) FROM datasets"):
    return store.con.execute(sql).fetchone()[0]


@pytest.fixture
def socrata():
    with SocrataPortal(make_socrata_entries(350, domain=DOMAIN), domain=DOMAIN) as portal:
        portal.config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        yield portal


@pytest.mark.parametrize("fault", [("status", 503), "html", "truncated", "invalid_json", "reset"])
def test_a_portal_failing_mid_listing_leaves_its_catalogue_untouched(store, socrata, fault):
    assert harvest([socrata.config], store, fast_client(max_attempts=3)).ok
    before = snapshot(store)
    socrata.entries.pop(0)                  # would be marked deleted by a complete listing
    socrata.inject("/api/catalog/v1", ("slow", 0), times=2)   # probe and first page pass
    socrata.inject("/api/catalog/v1", fault, times=10)
    report = harvest([socrata.config], store, fast_client(max_attempts=3))
    failed = report.portals[0]
    assert not report.ok and failed.status == "failed" and failed.retries == 2
    assert snapshot(store) == before
    run = store.con.execute("SELECT status, error_type, error_message FROM harvest_runs "
                            "WHERE run_id = ?", [report.run_id]).fetchone()
    assert run[0] == "failed" and run[1] in ("TransientError", "PagingError") and run[2]
    assert count(store, f"SELECT count(*) FROM harvest_errors WHERE run_id = '{report.run_id}' AND stage = 'list'") == 1


@pytest.mark.parametrize("fault", [("retry_after", 429, 1), ("status", 503), "reset", "html", "truncated"])
def test_transient_faults_mid_listing_are_retried_and_the_harvest_completes(store, socrata, fault):
    socrata.inject("/api/catalog/v1", ("slow", 0), times=2)
    socrata.inject("/api/catalog/v1", fault, times=2)
    report = harvest([socrata.config], store, fast_client())
    assert report.ok and report.portals[0].retries == 2 and count(store) == 350


def test_one_portal_down_the_others_stored(store, tmp_path):
    with DataJsonPortal(make_data_json(5)) as up:
        down = portal_config("down", "dcat-us", "http://127.0.0.1:9/data.json")   # nothing listens there
        report = harvest([down, portal_config("up", "dcat-us", up.url + "/data.json")], store,
                         fast_client(max_attempts=2))
    statuses = {p.portal_id: p.status for p in report.portals}
    assert statuses == {"down": "failed", "up": "ok"} and count(store) == 5


def test_bad_records_are_reported_and_the_rest_harvested(store, http):
    document = make_data_json(6)
    good = document["dataset"]
    bad = [
        "not an object",
        {**copy.deepcopy(good[0]), "identifier": "no-title", "title": None},
        {**copy.deepcopy(good[0]), "identifier": None},
        {**copy.deepcopy(good[0]), "identifier": "wrong-types", "title": "Wrong types", "keyword": 7,
         "modified": "R/P1D", "landingPage": "javascript:alert(1)", "distribution": "csv",
         "contactPoint": {"fn": ["x"], "hasEmail": "not-an-address"}, "description": "x" * 10_000_000},
        {**copy.deepcopy(good[0]), "identifier": "html", "title": "<b>Permits</b>",
         "description": "<p>Issued <script>alert(1)</script>building permits</p>"},
    ]
    document["dataset"] = good + bad
    with DataJsonPortal(document) as portal:
        report = harvest([portal_config("city", "dcat-us", portal.url + "/data.json")], store, http)
    p = report.portals[0]
    assert report.ok and p.seen == 11 and count(store) == 8 and p.errors == 3
    errors = store.con.execute("SELECT source_id, stage, message FROM harvest_errors WHERE severity = 'error' "
                               "ORDER BY message").fetchall()
    assert [e[2] for e in errors] == ["entry has no source id", "entry is a str, not an object", "record has no title"]
    wrong = store.con.execute("SELECT modified, landing_page, keywords, contact_email, length(description) "
                              "FROM datasets WHERE source_id = 'wrong-types'").fetchone()
    assert wrong == (None, None, [], None, 10_000_000)
    warnings = {r[0] for r in store.con.execute("SELECT split_part(message, ':', 1) FROM harvest_errors "
                                                "WHERE severity = 'warning' AND source_id = 'wrong-types'").fetchall()}
    assert {"modified", "landing_page", "keywords", "contact_email", "contact_name"} <= warnings
    assert store.con.execute("SELECT description FROM datasets WHERE source_id = 'html'").fetchone() == (
        "Issued building permits",)
    # the raw record keeps the originals
    assert store.con.execute("SELECT r.raw->>'modified' FROM raw_records r JOIN datasets d USING (uid, raw_hash) "
                             "WHERE d.source_id = 'wrong-types'").fetchone() == ("R/P1D",)


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


def test_a_listing_that_shifts_between_pages(store, http, socrata):
    assert harvest([socrata.config], store, http).ok
    newcomer = copy.deepcopy(socrata.entries[10])
    newcomer["resource"]["id"] = "zzzz-0001"
    pages = []

    def shift(path, query):
        if path == "/api/catalog/v1" and query.get("offset") == "100" and not pages:
            pages.append(1)
            socrata.entries.insert(0, newcomer)     # a new first item between two pages

    socrata.on_request = shift
    report = harvest([socrata.config], store, http).portals[0]
    assert report.status == "ok" and report.duplicates == 1 and report.listing_complete is False
    assert report.removed == 0 and count(store) == 350           # nothing doubled, nothing deleted
    warnings = store.con.execute("SELECT error_type FROM harvest_errors WHERE severity = 'warning'").fetchall()
    assert {("DuplicateId",), ("PartialListing",)} <= set(warnings)
    socrata.on_request = None
    report = harvest([socrata.config], store, http).portals[0]
    assert report.new == 1 and count(store) == 351


def test_unchanged_second_run_rewrites_nothing(store, http, socrata):
    harvest([socrata.config], store, http)
    for entry in socrata.entries[:50]:
        entry["resource"]["page_views"]["page_views_total"] += 10   # counters move every night
    socrata.entries = list(socrata.entries)                           # serve the new version
    report = harvest([socrata.config], store, http).portals[0]
    assert (report.new, report.changed, report.unchanged) == (0, 0, 350)


def test_unsupported_kind_fails_that_portal_only(store, http):
    with DataJsonPortal(make_data_json(2)) as portal:
        report = harvest([portal_config("b", "made-up-kind", "http://127.0.0.1:9"),
                          portal_config("a", "dcat-us", portal.url + "/data.json")], store, http)
    assert [p.status for p in report.portals] == ["failed", "ok"]
    assert "no adapter" in report.portals[0].error_message


def test_an_item_removed_between_pages_marks_nothing_deleted(store, http, socrata):
    assert harvest([socrata.config], store, http).ok
    removed = []

    def shrink(path, query):
        if path == "/api/catalog/v1" and query.get("offset") == "200" and not removed:
            removed.append(socrata.entries.pop(5))   # page 3 now starts one item later: one goes unseen

    socrata.on_request = shrink
    report = harvest([socrata.config], store, http).portals[0]
    assert report.status == "ok" and report.listing_complete is False and report.removed == 0
    assert count(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NOT NULL") == 0


def test_an_empty_listing_does_not_delete_the_catalogue(store, http):
    document = make_data_json(4)
    with DataJsonPortal(document) as portal:
        config = portal_config("city", "dcat-us", portal.url + "/data.json")
        assert harvest([config], store, http).ok
        portal.document = {"dataset": []}
        report = harvest([config], store, http).portals[0]
    assert report.status == "ok" and report.removed == 0 and report.listing_complete is False
    assert count(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NULL") == 4
    assert count(store, "SELECT count(*) FROM harvest_errors WHERE error_type = 'EmptyListing'") == 1


def test_a_failed_portal_leaves_raw_records_as_they_were(store):
    entries = make_socrata_entries(2_300, domain=DOMAIN)
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        assert harvest([config], store, fast_client()).ok
        before = store.con.execute("SELECT uid, raw_hash FROM raw_records ORDER BY ALL").fetchall()
        for entry in portal.entries:
            entry["resource"]["name"] += " (renamed)"       # every raw record changes...
        portal.entries = list(portal.entries)
        portal.inject("/api/catalog/v1", ("slow", 0), times=23)
        portal.inject("/api/catalog/v1", ("status", 503), times=10)   # ...and the listing fails after 2,200
        report = harvest([config], store, fast_client(max_attempts=2)).portals[0]
        assert report.status == "failed" and report.seen >= 2_000
        assert store.con.execute("SELECT uid, raw_hash FROM raw_records ORDER BY ALL").fetchall() == before
        portal.clear_faults()
        assert harvest([config], store, fast_client()).portals[0].changed == 2_300
    # one raw row per dataset, the version it carries
    assert store.con.execute("SELECT count(*), count(DISTINCT uid) FROM raw_records").fetchone() == (2_300, 2_300)
    assert count(store, "SELECT count(*) FROM datasets d JOIN raw_records r USING (uid, raw_hash)") == 2_300


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
