"""The fault suite: what a nightly `civicat harvest` does when a portal misbehaves.

Every test runs the real command (click's CliRunner, or a subprocess for kill -9) against
local portals on 127.0.0.1 and asserts three things: nothing stored is lost, the fault is
recorded (harvest_runs, harvest_errors), and the exit code (0: every portal ok; 1: a
portal failed, the others stored). The HTTP client's own behaviour per fault (attempt
counts, caps, Retry-After parsing) is unit-tested in http/ (test_client.py and its neighbours).
"""
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.lock import connect_read_only
from catalog.read_copy import is_current
from harvester.cli import cli
from harvester.portals import opendatasoft
from tests.children import ended, line_of, output_of
from tests.conftest import left_beside
from tests.harvester.portals.test_ckan import packages
from tests.portals.base import RawBody
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import DataJsonPortal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_data_json, make_socrata_entries

DOMAIN = "data.example.org"
LISTING = "/api/catalog/v1"
REPO = Path(__file__).resolve().parents[2]


class Nightly:
    """A config and a catalogue in tmp_path, harvested with `civicat harvest --json`."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.db = tmp_path / "catalog.duckdb"
        self.config = tmp_path / "portals.toml"
        self.portals: list[str] = []

    def add(self, portal_id: str, kind: str, url: str, **options) -> "Nightly":
        extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
        self.portals.append(f'[[portals]]\nid = "{portal_id}"\ncity = "{portal_id.title()}"\nkind = "{kind}"\n'
                            f'url = "{url}"\n{extra}')
        self.config.write_text("\n".join(self.portals))
        return self

    def harvest(self, *args: str, attempts: int = 3, env: dict | None = None) -> tuple[int, dict]:
        """(exit code, the --json report) of one run; retries are test-sized."""
        result = CliRunner(env={"CIVICAT_HTTP_MAX_ATTEMPTS": str(attempts), "CIVICAT_HTTP_BACKOFF": "0.01",
                                **(env or {})}).invoke(
            cli, ["harvest", "--json", "--config", str(self.config), "--db", str(self.db), *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, json.loads(result.stdout)

    def query(self, sql: str, params=()) -> list[tuple]:
        with connect_read_only(self.db) as con:  # as `civicat sql` opens it, after a crash too
            return con.execute(sql, list(params)).fetchall()

    def catalogue(self) -> list[tuple]:
        """Every stored dataset, distribution and column (last_seen aside: it only says when)."""
        return (self.query("SELECT * EXCLUDE (last_seen) FROM datasets ORDER BY uid")
                + self.query("SELECT * FROM distributions ORDER BY ALL")
                + self.query("SELECT * FROM columns ORDER BY ALL")
                + self.query("SELECT uid, raw_hash FROM raw_records ORDER BY ALL"))

    def run_row(self, run_id: str, portal_id: str) -> dict:
        cursor = connect_read_only(self.db)
        try:
            cursor.execute("SELECT * FROM harvest_runs WHERE run_id = ? AND portal_id = ?", [run_id, portal_id])
            return dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
        finally:
            cursor.close()

    def errors(self, run_id: str, severity: str = "error") -> list[tuple]:
        return self.query("SELECT source_id, stage, error_type FROM harvest_errors WHERE run_id = ? AND severity = ? "
                          "ORDER BY ALL", [run_id, severity])


@pytest.fixture
def nightly(tmp_path):
    return Nightly(tmp_path)


@pytest.fixture
def socrata():
    with SocrataPortal(make_socrata_entries(350, domain=DOMAIN), domain=DOMAIN) as portal:
        yield portal


def harvested(nightly, portal, **options) -> list[tuple]:
    """A first, clean run of a Socrata portal; returns the catalogue it stored."""
    nightly.add("city", "socrata", portal.url, domain=DOMAIN, **options)
    code, report = nightly.harvest()
    city = next(p for p in report["portals"] if p["portal_id"] == "city")
    assert code == 0 and city["new"] == len(portal.entries)
    return nightly.catalogue()


def pass_probe_and_first_page(portal):
    portal.inject(LISTING, ("slow", 0), times=2)


# -- transient faults: retried, the run completes -------------------------------------------

@pytest.mark.parametrize("fault", [("status", 500), ("status", 503), "reset", "truncated", "truncated_json", "html",
                                   "html_as_json", "invalid_json"])
def test_a_burst_of_transient_faults_is_retried_and_nothing_is_missed(nightly, socrata, fault):
    pass_probe_and_first_page(socrata)
    socrata.inject(LISTING, fault, times=2)
    code, report = nightly.add("city", "socrata", socrata.url, domain=DOMAIN).harvest()
    city = report["portals"][0]
    assert code == 0 and city["status"] == "ok" and (city["new"], city["retries"]) == (350, 2)
    assert nightly.run_row(report["run_id"], "city")["retries"] == 2         # recorded in the run's row
    assert nightly.query("SELECT count(*) FROM datasets") == [(350,)]


def test_429_with_retry_after_is_waited_out(nightly, socrata):
    pass_probe_and_first_page(socrata)
    socrata.inject(LISTING, ("retry_after", 429, 1), times=2)
    started = time.monotonic()
    code, report = nightly.add("city", "socrata", socrata.url, domain=DOMAIN).harvest()
    assert code == 0 and report["portals"][0]["retries"] == 2 and report["portals"][0]["new"] == 350
    assert time.monotonic() - started >= 2.0                                 # the portal's wait, honoured twice
    assert nightly.run_row(report["run_id"], "city")["retries"] == 2


def test_a_response_slower_than_the_timeout_is_retried(nightly, socrata):
    pass_probe_and_first_page(socrata)
    socrata.inject(LISTING, ("slow", 3), times=1)
    code, report = nightly.add("city", "socrata", socrata.url, domain=DOMAIN, timeout=0.5).harvest()
    assert code == 0 and report["portals"][0]["retries"] == 1 and report["portals"][0]["new"] == 350


# -- faults that outlast the retries: the portal fails, its catalogue untouched ---------------

# each fault's error type: what `harvest_runs` and `harvest_errors` store, for a reader to filter on
# (docs/harvesting.md, "Error types"); the retried ones
@pytest.mark.parametrize("fault, error_type", [
    (("status", 500), "ServerError"), (("status", 503), "ServerError"), ("reset", "ConnectionFailed"),
    ("truncated", "ConnectionFailed"), ("html", "HtmlInsteadOfData"), ("html_as_json", "HtmlInsteadOfData"),
    ("invalid_json", "InvalidBody"), ("truncated_json", "InvalidBody"),
    (("retry_after", 429, 0), "RateLimited"), (("slow", 3), "TimedOut"), (("status", 408), "TimedOut"),
])
def test_a_fault_that_persists_fails_the_portal_and_loses_nothing(nightly, socrata, fault, error_type):
    fails_the_portal_and_loses_nothing(nightly, socrata, fault, error_type, retries=2)


# and those not asked again: the portal's answer says asking again would not help
@pytest.mark.parametrize("fault, error_type", [
    (("status", 404), "NotFound"), (("status", 410), "NotFound"), (("status", 403), "AccessDenied"),
    (("status", 401), "AccessDenied"), (("status", 400), "ClientError"),
])
def test_a_refusal_fails_the_portal_at_once_typed_by_its_status(nightly, socrata, fault, error_type):
    fails_the_portal_and_loses_nothing(nightly, socrata, fault, error_type, retries=0)


def fails_the_portal_and_loses_nothing(nightly, socrata, fault, error_type: str, retries: int):
    before = harvested(nightly, socrata, timeout=0.5)
    socrata.entries.pop(0)                     # a complete listing would mark it deleted
    for entry in socrata.entries[:20]:
        entry["resource"]["name"] += " (renamed)"   # and rewrite these
    socrata.entries = list(socrata.entries)
    pass_probe_and_first_page(socrata)
    socrata.inject(LISTING, fault, times=10)
    code, report = nightly.harvest()
    city = report["portals"][0]
    assert code == 1 and city["status"] == "failed" and city["retries"] == retries
    assert city["error_type"] == error_type
    assert nightly.catalogue() == before                                     # nothing lost, nothing half-written
    row = nightly.run_row(report["run_id"], "city")
    assert (row["status"], row["error_type"]) == ("failed", error_type) and row["error_message"]
    assert nightly.errors(report["run_id"]) == [(None, "list", error_type)]
    socrata.clear_faults()
    code, report = nightly.harvest()                                         # the next night catches up
    assert code == 0 and (report["portals"][0]["changed"], report["portals"][0]["removed"]) == (20, 1)


def test_a_portal_down_for_the_whole_run_fails_alone(nightly, socrata):
    with DataJsonPortal(make_data_json(5)) as other:
        nightly.add("other", "dcat-us", other.url + "/data.json")
        before = harvested(nightly, socrata)
        endpoint = socrata.url.split("/")[2]
        socrata.stop()                                                       # nothing listens there any more
        code, report = nightly.harvest(attempts=2)
    statuses = {p["portal_id"]: p["status"] for p in report["portals"]}
    assert code == 1 and statuses == {"city": "failed", "other": "ok"}
    assert nightly.catalogue() == before                                     # both catalogues as they were
    assert nightly.errors(report["run_id"]) == [(None, "list", "ConnectionRefused")]
    assert nightly.run_row(report["run_id"], "city")["error_message"].startswith(   # says which host and port
        f"connection refused by {endpoint} (")



def test_a_portal_whose_name_no_longer_resolves_fails_at_once_alone_and_loses_nothing(nightly, socrata, resolver):
    """A city's portal moved to another domain: its old name is NXDOMAIN. Asked twice (five
    attempts were ~17 s with the default backoff), it fails saying so plainly, keeps its
    catalogue, and the other portal is stored."""
    resolver.answers["data.city.test"] = ["127.0.0.1"]
    with DataJsonPortal(make_data_json(5)) as other:
        nightly.add("other", "dcat-us", other.url + "/data.json")
        nightly.add("city", "socrata", socrata.url.replace("127.0.0.1", "data.city.test"), domain=DOMAIN)
        assert nightly.harvest()[0] == 0
        before = nightly.catalogue()
        resolver.answers["data.city.test"] = [socket.gaierror(socket.EAI_NONAME, "Name or service not known")]
        code, report = nightly.harvest(attempts=5)
    city = next(p for p in report["portals"] if p["portal_id"] == "city")
    assert code == 1 and {p["portal_id"]: p["status"] for p in report["portals"]} == {"city": "failed", "other": "ok"}
    assert (city["requests"], city["retries"], city["error_type"]) == (2, 1, "HostNotFound")
    assert city["error_message"].startswith("host name data.city.test does not resolve (Name or service not known) (")
    assert nightly.run_row(report["run_id"], "city")["error_message"] == city["error_message"]
    assert nightly.catalogue() == before
    assert nightly.errors(report["run_id"]) == [(None, "list", "HostNotFound")]

def test_a_portal_slower_than_its_time_budget_fails_alone_and_loses_nothing(nightly, socrata):
    # every listing request answered 429 'Retry-After: 2': each one is bounded (attempts, retry time), but 50
    # attempts of 2 s for each page of the listing would hold the night for hours; max_minutes ends the portal
    with DataJsonPortal(make_data_json(5)) as other:
        nightly.add("other", "dcat-us", other.url + "/data.json")
        before = harvested(nightly, socrata, max_minutes=0.1)
        pass_probe_and_first_page(socrata)
        socrata.inject(LISTING, ("retry_after", 429, 2), times=10_000)
        asked = Counter()   # the listing's pages asked this night, by (offset, limit)
        socrata.on_request = lambda path, query: asked.update(
            [(query.get("offset"), query.get("limit"))]) if path == LISTING else None
        started = time.monotonic()
        code, report = nightly.harvest(attempts=50)
        elapsed = time.monotonic() - started
    statuses = {p["portal_id"]: p["status"] for p in report["portals"]}
    assert code == 1 and statuses == {"city": "failed", "other": "ok"}   # the others harvested: no Ctrl-C
    assert elapsed >= 6                                                     # the budget was given
    # the page retried is asked every 2 s (Retry-After): 3 times at most in 6 s of budget (fewer
    # under load), once more if it was asked ahead, then no more; not 50 attempts
    assert 1 <= max(asked.values()) <= 4, asked
    assert nightly.catalogue() == before
    row = nightly.run_row(report["run_id"], "city")
    assert row["error_type"] == "OverBudget" and "over 0.1 minutes (its max_minutes)" in row["error_message"]


# -- listings that move or repeat themselves -------------------------------------------------

@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_listing_that_gains_a_new_first_item_between_two_pages(nightly, socrata, concurrency):
    harvested(nightly, socrata, max_concurrency=concurrency)
    newcomer = copy.deepcopy(socrata.entries[10])
    newcomer["resource"]["id"] = "zzzz-0001"
    shifted = []

    def shift(path, query):
        if path == LISTING and query.get("offset") == "100" and not shifted:
            shifted.append(1)
            socrata.entries.insert(0, newcomer)   # every later page starts one item later

    socrata.on_request = shift
    code, report = nightly.harvest()
    city = report["portals"][0]
    assert code == 0 and city["removed"] == 0
    assert nightly.query("SELECT count(*), count(DISTINCT uid) FROM datasets") in ([(350, 350)], [(351, 351)])
    if concurrency == 1:   # one request at a time: the shift falls between two pages
        assert city["duplicates"] == 1 and city["listing_complete"] is False
        assert {("list", "DuplicateId"), ("list", "PartialListing")} <= {
            e[1:] for e in nightly.errors(report["run_id"], "warning")}
    else:   # last night's pages asked together: whichever pages the shift fell between, nothing lost
        assert city["listing_complete"] is False or city["new"] == 1
    socrata.on_request = None
    code, report = nightly.harvest()
    assert code == 0 and nightly.query("SELECT count(*) FROM datasets") == [(351,)]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_item_removed_between_pages_marks_nothing_deleted(nightly, socrata, concurrency):
    harvested(nightly, socrata, max_concurrency=concurrency)
    removed = []

    def shrink(path, query):
        if path == LISTING and query.get("offset") == "200" and not removed:
            removed.append(socrata.entries.pop(5))   # page 3 starts one item later: one goes unseen

    socrata.on_request = shrink
    code, report = nightly.harvest()
    city = report["portals"][0]
    if concurrency == 1 or city["listing_complete"] is False:   # the removal fell between two pages
        assert code == 0 and city["listing_complete"] is False and city["removed"] == 0
        assert nightly.query("SELECT count(*) FROM datasets WHERE deleted_at IS NULL") == [(350,)]
    else:   # last night's pages asked together, all answered after the removal: a true listing of 349
        assert code == 0 and city["seen"] == 349 and city["removed"] == 1
        assert nightly.query("SELECT source_id FROM datasets WHERE deleted_at IS NOT NULL") == [
            (removed[0]["resource"]["id"],)]


def test_duplicate_ids_inside_one_listing_are_kept_once_and_reported(nightly):
    document = make_data_json(6)
    twin = copy.deepcopy(document["dataset"][2])
    twin["title"] = "The same id, listed again"
    document["dataset"].insert(4, twin)
    with DataJsonPortal(document) as portal:
        code, report = nightly.add("city", "dcat-us", portal.url + "/data.json").harvest()
    city = report["portals"][0]
    assert code == 0 and city["status"] == "ok" and city["duplicates"] == 1 and city["new"] == 6
    assert nightly.query("SELECT count(*), count(DISTINCT uid) FROM datasets") == [(6, 6)]
    warnings = nightly.errors(report["run_id"], "warning")
    assert [(stage, kind) for _, stage, kind in warnings if kind == "DuplicateId"] == [("list", "DuplicateId")]


def test_an_empty_listing_does_not_delete_the_catalogue(nightly):
    with DataJsonPortal(make_data_json(4)) as portal:
        nightly.add("city", "dcat-us", portal.url + "/data.json")
        assert nightly.harvest()[0] == 0
        portal.document = {"dataset": []}
        code, report = nightly.harvest()
    assert code == 0 and report["portals"][0]["removed"] == 0 and report["portals"][0]["listing_complete"] is False
    assert nightly.query("SELECT count(*) FROM datasets WHERE deleted_at IS NULL") == [(4,)]
    assert ("list", "EmptyListing") in {e[1:] for e in nightly.errors(report["run_id"], "warning")}


def test_a_listing_page_over_the_size_cap_is_read_in_smaller_pages_and_an_entry_over_it_alone_listed_by_id(nightly):
    """CKAN's package_search pages of 1,000: one package grows past the response cap on its
    own. Its page is asked again in halves (down to the package alone, which is then asked
    for by its id only, `fl`), every other package is listed once, and the listing is
    complete: the package over the cap keeps its stored version, and one deleted meanwhile is
    marked deleted. The next night asks the pages that worked, and no answer over the cap;
    the night after the package changed, it is asked whole again, and read."""
    catalogue = sorted(packages(40), key=lambda package: package["id"])   # (in the listing's order)
    cap = {"CIVICAT_HTTP_MAX_BYTES": "50000"}

    def asked(portal) -> list[tuple]:
        return [(int(q["start"]), int(q["rows"]), q.get("fl")) for path, q, _ in portal.requests
                if path.endswith("package_search")]

    with CkanPortal(catalogue) as portal:
        nightly.add("city", "ckan", portal.url)
        assert nightly.harvest(env=cap)[0] == 0
        huge, gone = catalogue[25], catalogue.pop(3)
        huge["notes"] = "A very long description. " * 4000   # 100 KB: over the cap alone
        portal.packages = catalogue
        portal.clear_log()
        code, report = nightly.harvest(env=cap)
        first = asked(portal)
        city = report["portals"][0]
        assert code == 0 and city["status"] == "ok" and city["listing_complete"] is True
        assert (city["seen"], city["unchanged"], city["duplicates"], city["removed"]) == (39, 39, 0, 1)
        assert (24, 1, None) in first and (24, 1, "id,name,metadata_modified") in first
        assert len(first) <= 2 + 2 * 10                          # 1,000 → 1 in ten halvings, their other halves
        assert len(set(first)) == len(first)                     # no request made twice
        errors = nightly.query("SELECT source_id, stage, error_type, message FROM harvest_errors WHERE run_id = ? "
                               "AND severity = 'error'", [report["run_id"]])
        assert errors == [(huge["id"], "list", "ResponseTooLarge", "city: the entry asked for alone (sort=id asc, "
                           "start=24, rows=1) is over the response cap alone (response is over the 50000-byte cap): "
                           "listed by its id only, its stored version kept (CIVICAT_HTTP_MAX_BYTES raises the cap)")]
        assert ("list", "PartialListing") not in {e[1:] for e in nightly.errors(report["run_id"], "warning")}
        # what the cap cost the listing, once: 1,000 → 1 in ten halvings, and the package alone
        assert nightly.query("SELECT source_id, stage, severity, message FROM harvest_errors WHERE run_id = ? AND "
                             "error_type = 'SmallerPages'", [report["run_id"]]) == [(
            None, "list", "warning", "city: 11 answers over the response cap (the last: response is over the 50000-byte "
            "cap): the entries of its pages over the cap were asked in pages of down to 1, the rest in pages of 1,000; "
            "each such answer may be a read of the whole cap (CIVICAT_HTTP_MAX_BYTES raises the cap)")]
        assert nightly.query("SELECT source_id FROM datasets WHERE deleted_at IS NOT NULL") == [(gone["id"],)]
        assert nightly.query("SELECT description FROM datasets WHERE source_id = ?", [huge["id"]]) == [(None,)]

        portal.clear_log()                                       # the same again: the pages that worked, 304s
        code, report = nightly.harvest(env=cap)
        again = asked(portal)
        city = report["portals"][0]
        assert code == 0 and (city["seen"], city["errors"], city["listing_complete"]) == (39, 1, True)
        whole = [(start, rows) for start, rows, fl in again if fl is None and start <= 24 < start + rows]
        assert whole == [] and (24, 1, "id,name,metadata_modified") in again   # no answer over the cap
        # last night's pages up to the package and its ids-only request (304s), past it the rest in one page of the
        # listing's size (read, then known the nights after: what was learnt is kept around the package only)
        assert set(again) - set(first) == {(25, 1000, None)} and city["not_modified"] == len(again) - 1
        assert nightly.query("SELECT count(*) FROM harvest_errors WHERE run_id = ? AND error_type = 'SmallerPages'",
                             [report["run_id"]]) == [(0,)]

        huge["notes"], huge["metadata_modified"] = "Short again.", "2030-01-01T00:00:00"   # edited: asked whole
        code, report = nightly.harvest(env=cap)
    city = report["portals"][0]
    assert code == 0 and city["listing_complete"] is True and (city["changed"], city["errors"]) == (1, 0)
    assert nightly.query("SELECT description FROM datasets WHERE source_id = ?", [huge["id"]]) == [("Short again.",)]


@pytest.mark.parametrize("kind", ["socrata", "opendatasoft"])
@pytest.mark.parametrize("position", [130, 0])
def test_an_entry_over_the_size_cap_alone_is_skipped_by_every_offset_listing(nightly, kind, position):
    """The same toolkit under Socrata's Discovery pages and OpenDataSoft's catalog pages (100
    a page): past the failed page, paging goes back to pages of 100. The first entry too:
    Socrata's probe of one entry that asks for the catalogue's size asks for the second
    instead (OpenDataSoft's asks for ids only). The entry is listed by its id: OpenDataSoft asks
    for it with its dates only, Socrata's is read from the start of its answer over the cap."""
    if kind == "socrata":
        portal = SocrataPortal(make_socrata_entries(250, domain=DOMAIN), domain=DOMAIN)
        entries, options = portal.entries, {"domain": DOMAIN}
        huge = entries[position]["resource"]
    else:
        portal = OpenDataSoftPortal(sorted(make_ods_datasets(250), key=lambda d: d["dataset_id"]))
        entries, options = portal.datasets, {}
        huge = entries[position]["metas"]["default"]
    cap = 2 * len(json.dumps(entries[:100]))                   # a page of 100 fits, twice over
    huge["description"] = "A very long description. " * (cap // 25)
    with portal:
        code, report = nightly.add("city", kind, portal.url, **options).harvest(env={"CIVICAT_HTTP_MAX_BYTES": str(cap)})
        asked = [(int(q["offset"]), int(q["limit"]), q.get("select")) for path, q, _ in portal.requests
                 if path in (LISTING, "/api/explore/v2.1/catalog/datasets")]
    city = report["portals"][0]
    assert code == 0 and (city["new"], city["errors"], city["listing_complete"]) == (249, 1, True), city
    listed = asked[asked.index((0, 100, None)):]                # (after the probe)
    assert (position, 1, None) in listed and listed[-1] == (200, 100, None) and len(set(listed)) == len(listed)
    ids_only = opendatasoft.ID_AND_DATES["select"]
    assert ((position, 1, ids_only) in listed) == (kind == "opendatasoft")
    source_id, message = nightly.query("SELECT source_id, message FROM harvest_errors "
                                       "WHERE error_type = 'ResponseTooLarge'")[0]
    assert f"offset={position}, limit=1) is over the response cap alone (response is over the {cap}-byte cap)" \
        in message
    assert source_id == (entries[position]["dataset_id"] if kind == "opendatasoft" else huge["id"])


# -- bad records: reported, the rest stored ---------------------------------------------------

def test_records_with_wrong_types_or_a_10_mb_description_are_stored_or_reported(nightly):
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
        code, report = nightly.add("city", "dcat-us", portal.url + "/data.json").harvest()
    city = report["portals"][0]
    assert code == 0 and city["seen"] == 11 and city["errors"] == 3 and city["new"] == 8
    assert nightly.query("SELECT message FROM harvest_errors WHERE severity = 'error' ORDER BY message") == [
        ("entry has no source id",), ("entry is a str, not an object",), ("record has no title",)]
    assert nightly.query("SELECT modified, landing_page, keywords, contact_email, length(description) "
                         "FROM datasets WHERE source_id = 'wrong-types'") == [(None, None, [], None, 10_000_000)]
    warnings = {r[0] for r in nightly.query("SELECT split_part(message, ':', 1) FROM harvest_errors "
                                            "WHERE severity = 'warning' AND source_id = 'wrong-types'")}
    assert {"modified", "landing_page", "keywords", "contact_email", "contact_name"} <= warnings
    assert nightly.query("SELECT description FROM datasets WHERE source_id = 'html'") == [("Issued building permits",)]
    assert nightly.query("SELECT r.raw->>'modified' FROM raw_records r JOIN datasets d USING (uid, raw_hash) "
                         "WHERE d.source_id = 'wrong-types'") == [("R/P1D",)]    # the raw record keeps the original


def test_a_failed_portal_leaves_raw_records_as_they_were(nightly):
    with SocrataPortal(make_socrata_entries(2_300, domain=DOMAIN), domain=DOMAIN) as portal:
        before = harvested(nightly, portal)
        for entry in portal.entries:
            entry["resource"]["name"] += " (renamed)"       # every raw record changes...
        portal.entries = list(portal.entries)
        portal.inject(LISTING, ("slow", 0), times=23)
        portal.inject(LISTING, ("status", 503), times=10)   # ...and the listing fails after 2,200
        code, report = nightly.harvest(attempts=2)
        assert code == 1 and report["portals"][0]["seen"] >= 2_000
        assert nightly.catalogue() == before
        portal.clear_faults()
        code, report = nightly.harvest()
        assert code == 0 and report["portals"][0]["changed"] == 2_300
    # one raw row per dataset, the version it carries
    assert nightly.query("SELECT count(*), count(DISTINCT uid) FROM raw_records") == [(2_300, 2_300)]
    assert nightly.query("SELECT count(*) FROM datasets d JOIN raw_records r USING (uid, raw_hash)") == [(2_300,)]


# -- kill -9 ---------------------------------------------------------------------------------

def civicat(*args: str) -> list[str]:
    return [sys.executable, "-m", "harvester", *args]


def test_kill_9_at_any_point_keeps_earlier_data_and_the_next_run_completes(nightly):
    """A `civicat harvest` subprocess is SIGKILLed while it lists, maps and merges a portal
    whose every dataset changed; each time the catalogue opens with the earlier version of
    that portal whole (a merge is one transaction), and the next run completes."""
    entries = make_socrata_entries(2_000, domain=DOMAIN)
    env = {**os.environ, "CIVICAT_MAP_WORKERS": "0", "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    with SocrataPortal(entries, domain=DOMAIN) as portal, DataJsonPortal(make_data_json(5)) as small:
        nightly.add("small", "dcat-us", small.url + "/data.json").add("city", "socrata", portal.url, domain=DOMAIN)
        base = ["harvest", "--workers", "1", "--config", str(nightly.config), "--db", str(nightly.db)]
        first = subprocess.run(civicat(*base), env=env, capture_output=True, timeout=120)
        assert first.returncode == 0, first.stderr.decode()[-2000:]
        titles = lambda: {t for (t,) in nightly.query(  # noqa: E731
            "SELECT DISTINCT regexp_extract(title, '\\(v\\d+\\)$') FROM datasets WHERE portal_id = 'city'")}
        assert titles() == {""}
        small_before = nightly.query("SELECT * FROM datasets WHERE portal_id = 'small' ORDER BY uid")

        last_page = f"{(len(entries) // 100 - 1) * 100}"
        served = []
        portal.on_request = lambda path, query: served.append(time.monotonic()) if (
            path == LISTING and query.get("offset") == last_page) else None
        # kill points: mid-listing, then from the last page on through mapping and the merge
        killed, wal_at_kill, wal = 0, [], nightly.db.with_name(nightly.db.name + ".wal")
        for version, point in enumerate([("page", "1000"), *[("after", d) for d in (0.0, 0.5, 1.5)]], 1):
            for entry in portal.entries:
                entry["resource"]["name"] = entry["resource"]["name"].split(" (v")[0] + f" (v{version})"
            portal.entries = list(portal.entries)
            served.clear()
            process = subprocess.Popen(civicat(*base), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            kind, value = point
            while process.poll() is None and time.monotonic() < deadline:
                hit = any(q.get("offset") == value for p, q, _ in portal.requests[-5:]) if kind == "page" else (
                    served and time.monotonic() >= served[0] + value)
                if hit:
                    break
                time.sleep(0.005)
            wal_at_kill.append(wal.stat().st_size if wal.exists() else 0)
            process.send_signal(signal.SIGKILL)
            killed += process.wait(timeout=10) == -signal.SIGKILL   # not when it had already finished
            portal.clear_log()
            # the catalogue opens; the portal is at one version, whole; the other portal untouched
            stored = titles()
            assert len(stored) == 1 and nightly.query(
                "SELECT count(*) FROM datasets d JOIN raw_records r USING (uid, raw_hash) "
                "WHERE d.portal_id = 'city' AND d.deleted_at IS NULL") == [(2_000,)], (point, stored)
            assert nightly.query("SELECT * FROM datasets WHERE portal_id = 'small' ORDER BY uid") == small_before

        portal.on_request = None
        final = subprocess.run(civicat(*base, "--json"), env=env, capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr.decode()[-2000:]           # the lock died with its holder
    assert titles() == {f"(v{version})"}
    assert nightly.query("SELECT count(*) FROM datasets WHERE portal_id = 'city'") == [(2_000,)]
    interrupted = nightly.query("SELECT count(DISTINCT run_id) FROM harvest_runs WHERE error_type = 'Interrupted'")
    assert any(wal_at_kill), wal_at_kill      # at least one kill left writes in the WAL to recover
    assert 1 <= interrupted[0][0] <= killed    # each run killed before its last commit, closed as failed by the next
    assert nightly.query("SELECT count(*) FROM harvest_runs WHERE status = 'running'") == [(0,)]
    assert not list(nightly.tmp_path.glob(".catalog.duckdb.staging/*"))   # what the killed runs staged is gone


# -- Ctrl-C ----------------------------------------------------------------------------------

def listing_requests(portal) -> int:
    return sum(path == LISTING for path, _, _ in list(portal.requests))


def ctrl_c_during_listing(portal, base: list[str], env: dict, settle: float = 0.0, sig: int = signal.SIGINT,
                          sigint_ignored: bool = False):
    """`civicat *base` in a process group of its own, sent SIGINT (or `sig`) once the portal has had three
    listing requests (and `settle` seconds more): (the process, its stdout, stderr, the listing requests
    the portal had after the signal). `sigint_ignored`: started as a shell script's background job is,
    SIGINT ignored."""
    process = subprocess.Popen(civicat(*base), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True,
                               preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None)
    deadline = time.monotonic() + 60
    while listing_requests(portal) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(settle)
    asked_before = listing_requests(portal)
    os.killpg(process.pid, sig)
    out, err = process.communicate(timeout=120)
    return process, out, err, listing_requests(portal) - asked_before


@pytest.mark.parametrize(("workers", "sig"), [("1", signal.SIGINT), ("4", signal.SIGINT), ("4", signal.SIGTERM)])
def test_ctrl_c_stops_the_harvest_at_once_and_keeps_what_was_not_stored(nightly, workers, sig):
    """SIGINT to the process group (Ctrl-C on a terminal) while a portal is listed: the
    harvest stops within seconds (not once every portal is done), the portal being listed
    keeps its previous catalogue and is recorded failed (Interrupted) at once, the report is
    printed, the exit code is 130, and the next run takes the lock and completes. SIGTERM
    (cron's `timeout`, systemd) the same, exit code 143: it ended the process on the spot, no
    report printed, the portal `running` in harvest_runs until the next harvest, its staged
    listing left behind."""
    entries = make_socrata_entries(2_000, domain=DOMAIN)
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    with SocrataPortal(entries, domain=DOMAIN) as portal, DataJsonPortal(make_data_json(5)) as small:
        nightly.add("small", "dcat-us", small.url + "/data.json").add("city", "socrata", portal.url, domain=DOMAIN)
        base = ["harvest", "--json", "--workers", workers, "--config", str(nightly.config), "--db", str(nightly.db)]
        assert subprocess.run(civicat(*base), env=env, capture_output=True, timeout=120).returncode == 0
        before = nightly.query("SELECT uid, title FROM datasets WHERE portal_id = 'city' ORDER BY uid")
        for entry in portal.entries:
            entry["resource"]["name"] += " (v2)"
        portal.entries = list(portal.entries)
        portal.clear_log()
        portal.inject(LISTING, ("slow", 1), times=10_000)   # 20 pages of a second each
        process, out, err, asked_after = ctrl_c_during_listing(portal, base, env, sig=sig)
        portal.clear_faults()
        assert process.returncode == 128 + sig, err.decode()[-2000:]
        # at most the pages already asked for (max_concurrency 4 at a time), not the listing's other 17
        assert asked_after <= 4, asked_after
        said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
        assert f"stored before {said}" in err.decode()
        city = next(p for p in json.loads(out)["portals"] if p["portal_id"] == "city")
        assert city["status"] == "failed" and city["error_type"] == "Interrupted"
        assert f"interrupted ({said})" in city["error_message"]
        assert not list(nightly.tmp_path.glob(".catalog.duckdb.staging/*"))   # what it staged is gone
        assert nightly.query("SELECT uid, title FROM datasets WHERE portal_id = 'city' ORDER BY uid") == before
        assert nightly.query("SELECT status, error_type FROM harvest_runs WHERE portal_id = 'city' "
                             "ORDER BY started_at DESC LIMIT 1") == [("failed", "Interrupted")]
        final = subprocess.run(civicat(*base), env=env, capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert nightly.query("SELECT count(*) FROM datasets WHERE portal_id = 'city' AND title LIKE '% (v2)'") == [(2_000,)]
    assert nightly.query("SELECT count(*) FROM harvest_runs WHERE status = 'running'") == [(0,)]


@pytest.mark.parametrize(("workers", "sig", "sigint_ignored"), [("1", signal.SIGINT, False), ("4", signal.SIGINT, False),
                                                             ("1", signal.SIGTERM, True), ("4", signal.SIGTERM, True)])
def test_ctrl_c_during_a_retry_wait_of_the_page_read_ahead_stops_at_once(nightly, workers, sig, sigint_ignored):
    """The listing's pages are fetched in a read-ahead thread: Ctrl-C reaches the main thread
    while that thread waits out a Retry-After; the harvest must not wait for it to end. So does
    SIGTERM to a harvest started in the background by a shell script, SIGINT ignored (its
    requests were not cancelled: the harvest waited out the Retry-After)."""
    entries = make_socrata_entries(500, domain=DOMAIN)
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    with SocrataPortal(entries, domain=DOMAIN) as portal, DataJsonPortal(make_data_json(5)) as small:
        nightly.add("small", "dcat-us", small.url + "/data.json").add("city", "socrata", portal.url, domain=DOMAIN)
        base = ["harvest", "--json", "--workers", workers, "--config", str(nightly.config), "--db", str(nightly.db)]
        pass_probe_and_first_page(portal)
        portal.inject(LISTING, ("retry_after", 429, 30), times=10_000)
        process, out, err, asked_after = ctrl_c_during_listing(portal, base, env, settle=0.5, sig=sig,
                                                               sigint_ignored=sigint_ignored)
        portal.clear_faults()
    assert process.returncode == 128 + sig, err.decode()[-2000:]
    assert asked_after == 0, asked_after   # the 30 s wait was cut, not waited out and the page asked again


# -- kill -9 inside a publish -----------------------------------------------------------------

# `civicat` whose process SIGKILLs itself right after the rename ("rename:…") or hard link
# ("link:…") whose target contains argv[1]'s "…", or (argv[1] "exchange") right after a records
# publish swapped its folders
# (records, on a system without renameat2 (NO_EXCHANGE): the published folder set aside, or
# the new one moved in; else a part linked into the copy swapped in, or the swap; export: the
# same two renames without renameat2, else the previous export set aside once exchanged)
KILLED_AFTER_RENAME = """
import os, signal, sys
point = sys.argv.pop(1)
import catalog.export, catalog.records
if os.environ.get("NO_EXCHANGE"):
    catalog.export.exchange = catalog.records.exchange = lambda a, b: False
kind, _, name = point.partition(":")
def killing(step, called):
    def step_then_kill(source, target):
        done = step(source, target)
        if kind == called and name in str(target):
            os.kill(os.getpid(), signal.SIGKILL)
        return done
    return step_then_kill
os.rename, os.link = killing(os.rename, "rename"), killing(os.link, "link")
catalog.records.exchange = killing(catalog.records.exchange, "exchange")
from harvester.command import main
sys.argv[0] = "civicat"
main()
"""


def killed_after_rename(point: str, *args: str, exchange: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO), **({} if exchange else {"NO_EXCHANGE": "1"})}
    return subprocess.run([sys.executable, "-c", KILLED_AFTER_RENAME, point, *args], env=env, capture_output=True,
                          timeout=120)


@pytest.fixture
def records_portal(nightly):
    from tests.portals.socrata import SodaTable, discovery_entry
    view = {"id": "abcd-1234", "name": "Calls", "category": "Public Safety",
            "columns": [{"fieldName": "n", "dataTypeName": "number"}, {"fieldName": "t", "dataTypeName": "text"}]}
    with SocrataPortal([discovery_entry(view)], domain=DOMAIN,
                       records={"abcd-1234": SodaTable.from_rows([{"n": str(i)} for i in range(50)])}) as portal:
        nightly.add("sea", "socrata", portal.url, domain=DOMAIN, records=["abcd-1234"], contact_email="open@example.org")
        yield portal


def read_records(nightly) -> int:
    import pyarrow.parquet as pq
    return pq.read_table(nightly.tmp_path / "records" / "portal=sea" / "dataset=abcd-1234").num_rows


@pytest.mark.parametrize(("point", "exchange"), [("rename:retired-", False), ("rename:/records/portal=", False),
                                               ("link:swapping-", True), ("exchange", True)])
def test_a_records_publish_killed_at_any_step_is_repaired_by_the_next_pull(nightly, records_portal, caplog, point,
                                                                           exchange):
    """kill -9 right after the published folder was set aside: the dataset had no folder (the
    records gone for every reader) until the next pull of that very dataset, and the folder set
    aside stayed in `.records-staging/` forever. Killed after the new one moved in, the old
    copy stayed there too. The next pull of the portal, even one that fails, puts it right.
    Where the folders are swapped in one step (renameat2), killed as the copy to swap in is
    linked or right after the swap, the dataset's folder is never missing, and the previous
    records never lie where the next pull would resume from."""
    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 50
    killed = killed_after_rename(point, "harvest", "--records", "--full", "--config", str(nightly.config),
                                 "--db", str(nightly.db), exchange=exchange)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    staging = nightly.tmp_path / ".records-staging"
    left = "swapping-" if exchange else "retired-"   # (the copy swapped in, or the folder set aside)
    assert [p.name[:len(left)] for p in staging.iterdir() if p.name.startswith(("retired-", "swapping-"))] == [left]
    published = nightly.tmp_path / "records" / "portal=sea" / "dataset=abcd-1234"
    assert published.exists() == (point != "rename:retired-")
    if exchange:   # the staged pull is the new one whole (its part linked once more: the copy swapped in)
        import pyarrow.parquet as pq
        [staged] = list((staging / "portal=sea" / "dataset=abcd-1234").glob("*/part-*.parquet"))
        assert pq.read_metadata(staged).num_rows == 50 and staged.stat().st_nlink == 2

    records_portal.inject("/resource/", ("status", 500), times=100)   # this pull fails: the repair is not it
    code, report = nightly.harvest("--records", "--full", attempts=1)
    assert report["portals"][0]["records_failed"] == 1
    assert read_records(nightly) == 50     # the only good copy was put back, not deleted
    assert not any(p.name.startswith(("retired-", "swapping-")) for p in staging.iterdir())
    said = [r.getMessage() for r in caplog.records if "a publish" in r.getMessage() and "cut short" in r.getMessage()]
    assert len(said) == 1 and ("restored portal=sea/dataset=abcd-1234" if point == "rename:retired-"
                               else "removed") in said[0]


# `civicat` whose process SIGKILLs itself as a records pull publishes a dataset's folder: right
# before (argv[1] "before") or right after it (argv[1] "after"), before record_pulls holds it
KILLED_AT_PUBLISH = """
import os, signal, sys
when = sys.argv.pop(1)
from catalog.records import RecordsLayout
publish = RecordsLayout.publish
def publish_and_kill(self, *args):
    if when == "after":
        publish(self, *args)
    os.kill(os.getpid(), signal.SIGKILL)
RecordsLayout.publish = publish_and_kill
from harvester.command import main
sys.argv[0] = "civicat"
main()
"""


@pytest.mark.parametrize("when", ["after", "before"])
@pytest.mark.parametrize("next_writer", ["harvest", "export"])
def test_a_records_pull_killed_as_it_publishes_is_recorded_by_the_next_start(nightly, records_portal, caplog, when,
                                                                             next_writer):
    """`civicat records` killed right after it swapped a dataset's new folder in, before
    record_pulls held it: the folder had the new pull's rows, the catalogue the previous pull's
    rows, bytes and profiles, until the next pull of that very dataset; every export exited 1
    (the folder is not the pull the read copy describes). The next start of a writer (a harvest
    without --records), or an export when none runs, records it from what the pull wrote before
    its swap; killed before the swap, the previous pull stands and the staged one is published
    by the next pull."""
    from tests.portals.socrata import SodaTable

    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 50
    records_portal.records["abcd-1234"] = SodaTable.from_rows([{"n": str(i)} for i in range(60)])
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_PUBLISH, when, "records", "sea:abcd-1234", "--full",
                             "--config", str(nightly.config), "--db", str(nightly.db)],
                            env={**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)},
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    rows = 60 if when == "after" else 50
    assert read_records(nightly) == rows

    out = nightly.tmp_path / "export"
    export = ["export", "--json", "--out", str(out), "--db", str(nightly.db), "--config", str(nightly.config)]
    if next_writer == "harvest":
        assert nightly.harvest()[0] == 0
    result = CliRunner().invoke(cli, export)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parquet"]["records"] == {"datasets": 1, "rows": rows}
    assert nightly.query("SELECT row_count FROM record_pulls") == [(rows,)]
    assert nightly.query("SELECT row_count FROM column_profiles WHERE column_name = 'n'") == [(rows,)]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("records: ")]
    assert len(said) == 1 and ("recorded the pull of sea:abcd-1234" if when == "after" else "removed") in said[0]
    assert not list((nightly.tmp_path / ".records-staging").glob("recording-*"))
    assert nightly.harvest("--records", "--full")[0] == 0 and read_records(nightly) == 60   # the next pull goes on
    assert nightly.query("SELECT row_count FROM record_pulls") == [(60,)]


@pytest.mark.parametrize(("point", "legacy", "exchange"), [
    ("version", False, True), ("link", False, True), ("retired", True, False), ("retired", True, True)])
def test_an_export_killed_at_any_step_of_its_publish_is_put_right_by_the_next_export(
        nightly, records_portal, caplog, point, legacy, exchange):
    """kill -9 right after a step of `civicat export`'s publish. Each export is a folder of its
    own beside OUT, OUT a link to it: killed after the export became its folder and before the
    link names it, the folder stays beside OUT, and the next export (even a data.json one)
    removes it; killed after the link, OUT is the new export. OUT a folder of its own (an
    export before versions; `legacy`) is set aside: without renameat2 (`exchange` False) OUT
    was gone, the previous export its only copy, and the next export puts it back; with it, the
    previous one is left beside OUT and removed."""
    assert nightly.harvest("--records")[0] == 0
    out = nightly.tmp_path / "export"
    export = ["export", "--out", str(out), "--db", str(nightly.db), "--config", str(nightly.config)]
    assert CliRunner().invoke(cli, export).exit_code == 0
    first = json.loads((out / "manifest.json").read_text())
    if legacy:   # OUT as an export before versions left it: a folder of its own
        folder = out.resolve()
        out.unlink()
        folder.rename(out)
    target = {"version": ".export.v-", "link": str(out), "retired": ".export.retired-"}[point]
    killed = killed_after_rename("rename:" + target, *export, exchange=exchange)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    between = legacy and not exchange
    assert out.exists() != between
    assert len(left_beside(out)) == (3 if between else 0 if point == "link" else 1)   # (between: the link and
    # the new export's folder too)

    result = CliRunner().invoke(cli, [*export, "--format", "data.json"])
    assert result.exit_code == 0, result.output
    assert left_beside(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["created_at"] == first["created_at"]) == (between or point == "version")   # the previous one
    assert (out / "data.json").is_file() and (out / "records" / "portal=sea" / "dataset=abcd-1234").is_dir()
    said = [r.getMessage() for r in caplog.records if "an export cut short" in r.getMessage()]
    assert len(said) == {"version": 1, "link": 0, "retired": 3 if between else 1}[point], said
    if said:
        assert said[0].startswith(f"export: restored {out}" if between else "export: removed")
    assert CliRunner().invoke(cli, export).exit_code == 0   # and the next Parquet export is whole
    assert json.loads((out / "manifest.json").read_text())["row_counts"]["datasets"] == 1
    assert out.is_symlink() and left_beside(out) == []


# `civicat` whose process sends itself the signal argv[2] as the function argv[1] (module:name) is
# first called: a Ctrl-C or cron's `timeout` at that point of the command
SIGNALLED_AT = """
import importlib, os, signal, sys
target, name = sys.argv.pop(1), sys.argv.pop(1)
module, _, function = target.partition(":")
module = importlib.import_module(module)
original = getattr(module, function)
def signalled(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, name))
    return original(*args, **kwargs)
setattr(module, function, signalled)
from harvester.command import main
sys.argv[0] = "civicat"
main()
"""


def signalled_at(target: str, sig: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", SIGNALLED_AT, target, signal.Signals(sig).name, *args], env=env,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_records_stopped_by_ctrl_c_or_sigterm_say_so_and_keep_the_published_records(nightly, records_portal, sig):
    """`civicat records` stopped as it writes its parts: Ctrl-C ended in click's "Aborted!" and
    exit 1 (a failed pull, to cron), the run recorded RecordsFailed with no message; SIGTERM
    ended the process on the spot, its run `running`. Now: exit 130 or 143, the message names
    the signal, the run is failed Interrupted, the published Parquet and record_pulls stay, and
    the next pull completes."""
    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 50
    stopped = signalled_at("harvester.records:_write_parts", sig, "records", "sea:abcd-1234", "--full",
                           "--config", str(nightly.config), "--db", str(nightly.db))
    said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert stopped.returncode == 128 + sig, stopped.stderr.decode()[-2000:]
    assert stopped.stderr.decode().startswith(f"Interrupted ({said}): "), stopped.stderr.decode()[-2000:]
    [(status, error_type, message)] = nightly.query(
        "SELECT status, error_type, error_message FROM harvest_runs WHERE run_id LIKE '%-records-%'")
    assert (status, error_type) == ("failed", "Interrupted") and f"interrupted ({said})" in message
    assert read_records(nightly) == 50 and nightly.query("SELECT row_count FROM record_pulls") == [(50,)]
    assert nightly.harvest("--records", "--full")[0] == 0 and read_records(nightly) == 50


# `civicat` whose records pull is stopped by the signal argv[1] in a DuckDB query of its profile
# (a large dataset's scan takes minutes): DuckDB takes the KeyboardInterrupt raised in the query
# and raises its own error instead, as done here (a real query noticed the signal only now and
# then, so a test of it could not fail reliably)
SIGNALLED_IN_A_QUERY = """
import os, signal, sys
import harvester.records
sig = getattr(signal, sys.argv.pop(1))
measure = harvester.records.measure_folder
def stopped_in_a_query(folder):
    try:
        os.kill(os.getpid(), sig)
    except KeyboardInterrupt:
        raise RuntimeError("Query interrupted") from None
    return measure(folder)
harvester.records.measure_folder = stopped_in_a_query
from harvester.command import main
sys.argv[0] = "civicat"
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_records_stopped_during_a_duckdb_query_are_interrupted_not_failed(nightly, records_portal, sig):
    """DuckDB turns a signal that comes during a query into its own error ("Query interrupted"):
    the handler of one dataset's failures took it for one, so a stop during a profile's scan or
    an incremental pull's merge ended as a failed pull (exit 1, the run RecordsFailed, an error
    "records pull failed: Query interrupted"), not as the stop it was."""
    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 50
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    stopped = subprocess.run([sys.executable, "-c", SIGNALLED_IN_A_QUERY, signal.Signals(sig).name, "records",
                              "sea:abcd-1234", "--full", "--config", str(nightly.config), "--db", str(nightly.db)],
                             env=env, capture_output=True, timeout=120)
    said, err = ("SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"), stopped.stderr.decode()
    assert stopped.returncode == 128 + sig, err[-2000:]
    assert err.startswith(f"Interrupted ({said}): "), err[-2000:]
    [(status, error_type, message)] = nightly.query(
        "SELECT status, error_type, error_message FROM harvest_runs WHERE run_id LIKE '%-records-%'")
    assert (status, error_type) == ("failed", "Interrupted") and f"interrupted ({said})" in message
    assert nightly.query("SELECT count(*) FROM harvest_errors WHERE message LIKE '%Query interrupted%'") == [(0,)]
    assert read_records(nightly) == 50 and nightly.query("SELECT row_count FROM record_pulls") == [(50,)]


# `civicat` that sends itself the signal argv[2] argv[3] seconds after the function argv[1]
# (module:Class.method) is first entered, from a thread of its own: the main thread is then in
# that function's DuckDB statements, as when Ctrl-C or cron's `timeout` comes during a merge
SIGNALLED_DURING = """
import importlib, os, signal, sys, threading
if __name__ == "__main__":   # (not in the mapping workers, which import this script as __mp_main__)
    target, name, delay = sys.argv.pop(1), sys.argv.pop(1), float(sys.argv.pop(1))
    module, _, qualname = target.partition(":")
    owner, _, function = qualname.rpartition(".")
    owner = getattr(importlib.import_module(module), owner)
    original = getattr(owner, function)
    def signalled(*args, **kwargs):
        threading.Timer(delay, os.kill, [os.getpid(), getattr(signal, name)]).start()
        setattr(owner, function, original)
        return original(*args, **kwargs)
    setattr(owner, function, signalled)
    from harvester.command import main
    sys.argv[0] = "civicat"
    main()
"""


def test_stops_during_duckdb_statements_each_end_interrupted_and_recorded(nightly):
    """Ctrl-C or SIGTERM while the main thread is in the catalogue's DuckDB statements (a raw
    load, the merge, the search index), many times: each stop exits 130/143 with the report,
    its portal's run recorded (Interrupted, or ok when stored before the stop), none left
    `running`. The handler's KeyboardInterrupt raised inside a statement made DuckDB drop it
    ("Query interrupted"): in the search index's build that was taken for a failure of the
    index, logged, and the harvest went on to exit 0, the stop lost; and DuckDB 1.5.5 now and
    then hung in the statement after one it dropped, the stop's bookkeeping (catalog.uncut)."""
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    stops = [(target, sig, delay) for target in ("Store._load_raw", "Store._merge", "Store.refresh_search")
             for sig, delay in ((signal.SIGINT, 0.0), (signal.SIGTERM, 0.05))]   # (each lasts 0.1 s or more)
    with DataJsonPortal(make_data_json(2_000)) as portal:
        nightly.add("city", "dcat-us", portal.url + "/data.json")
        base = ["harvest", "--json", "--config", str(nightly.config), "--db", str(nightly.db)]
        assert subprocess.run(civicat(*base), env=env, capture_output=True, timeout=120).returncode == 0
        for version, (target, sig, delay) in enumerate(stops):
            for dataset in portal.document["dataset"]:   # (every dataset changed: a merge of them all)
                dataset["title"] = dataset["title"].split(" (v")[0] + f" (v{version})"
            portal.document = dict(portal.document)
            stopped = subprocess.run([sys.executable, "-c", SIGNALLED_DURING, f"catalog.store:{target}",
                                      signal.Signals(sig).name, str(delay), *base],
                                     env=env, capture_output=True, timeout=120)
            said, err = ("SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"), stopped.stderr.decode()
            assert stopped.returncode == 128 + sig, (target, err[-2000:])
            assert "Query interrupted" not in err and f"stored before {said}" in err, (target, err[-2000:])
            [city] = json.loads(stopped.stdout)["portals"]
            [run] = nightly.query("SELECT status, error_type FROM harvest_runs ORDER BY started_at DESC LIMIT 1")
            assert run == (city["status"], city["error_type"]), target
            # (a stop that comes after the merge: the portal stored before it)
            assert run in {("failed", "Interrupted"), ("ok", None)}, target
            assert run == ("ok", None) or target != "Store.refresh_search"
            assert nightly.query("SELECT count(*) FROM harvest_runs WHERE status = 'running'") == [(0,)], target
        assert subprocess.run(civicat(*base), env=env, capture_output=True, timeout=120).returncode == 0


# `civicat` that sends itself the signal argv[1] as its records pull writes its parts, then
# argv[2] times more as the stop's cleanup writes the run's errors (before its harvest_runs row)
SIGNALLED_AGAIN_IN_CLEANUP = """
import os, signal, sys
sig, again = getattr(signal, sys.argv.pop(1)), int(sys.argv.pop(1))
import harvester.pipeline, harvester.records
from harvester.stopping import stop_requested
write_parts, flush = harvester.records._write_parts, harvester.pipeline.ErrorLog.flush
def signalled(*args, **kwargs):
    os.kill(os.getpid(), sig)
    return write_parts(*args, **kwargs)
def signalled_again(self):
    if stop_requested():
        for _ in range(again):
            os.kill(os.getpid(), sig)
    return flush(self)
harvester.records._write_parts, harvester.pipeline.ErrorLog.flush = signalled, signalled_again
from harvester.command import main
sys.argv[0] = "civicat"
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("again", [1, 2])
def test_a_second_signal_lets_the_stop_finish_its_bookkeeping_and_a_third_quits_at_once(
        nightly, records_portal, sig, again):
    """Ctrl-C pressed twice (or a second SIGTERM) raised again in the stop's cleanup: the run
    was left `running` in harvest_runs until the next harvest closed it. The second now lets
    the cleanup finish (the run failed, Interrupted), saying so in the log; a third quits at
    once, as the log said it would, and the next harvest closes the run it left."""
    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 50
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    stopped = subprocess.run([sys.executable, "-c", SIGNALLED_AGAIN_IN_CLEANUP, signal.Signals(sig).name, str(again),
                              "harvest", "--records", "--full", "--json", "--config", str(nightly.config),
                              "--db", str(nightly.db)], env=env, capture_output=True, timeout=120)
    said, err = ("SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"), stopped.stderr.decode()
    assert stopped.returncode == 128 + sig, err[-2000:]
    [(status, error_type)] = nightly.query("SELECT status, error_type FROM harvest_runs "
                                           "ORDER BY started_at DESC LIMIT 1")   # (run ids of one second: random)
    if again == 1:
        assert (status, error_type) == ("failed", "Interrupted"), err[-2000:]
        assert json.loads(stopped.stdout)["portals"][0]["error_type"] == "Interrupted"
        assert f"stored before {said}" in err
    else:
        assert status == "running" and stopped.stdout == b"", err[-2000:]
        assert f"{said} a third time: quitting at once" in err
    assert f"{said} again: the stop is finishing its bookkeeping" in err and "a third Ctrl-C or SIGTERM quits" in err
    assert read_records(nightly) == 50 and nightly.query("SELECT row_count FROM record_pulls") == [(50,)]
    assert nightly.harvest("--records", "--full")[0] == 0 and read_records(nightly) == 50
    assert nightly.query("SELECT count(*) FROM harvest_runs WHERE status = 'running'") == [(0,)]


# `civicat` reading SODA's records in pages of 10 rows (not 50,000): a pull of several pages
SMALL_RECORD_PAGES = """
import sys
from harvester.portals import socrata
socrata.SodaRecords.__init__.__kwdefaults__["page"] = 10
from harvester.command import main
sys.argv[0] = "civicat"
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_records_stopped_while_a_page_read_ahead_waits_out_a_retry_ask_nothing_more(nightly, records_portal, sig):
    """`civicat records` reads a dataset's pages ahead in other threads: stopped while they
    wait out a Retry-After, its requests are cancelled at once. They were not (only the
    harvest cancelled its requests): the pull went on asking until its retries ran out."""
    assert nightly.harvest()[0] == 0
    resource = "/resource/abcd-1234.csv"
    records_portal.clear_log()
    records_portal.inject(resource, ("slow", 0), times=1)   # the first page; the others wait
    records_portal.inject(resource, ("retry_after", 429, 2), times=10_000)
    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", SMALL_RECORD_PAGES, "records", "sea:abcd-1234", "--full",
                                "--config", str(nightly.config), "--db", str(nightly.db)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def pages_asked() -> int:
        return sum(path == resource for path, _, _ in list(records_portal.requests))
    deadline = time.monotonic() + 60
    while pages_asked() < 3 and time.monotonic() < deadline:   # the first page, and one refused
        time.sleep(0.01)
    os.killpg(process.pid, sig)
    asked_before = pages_asked()
    _, err = process.communicate(timeout=120)
    records_portal.clear_faults()
    assert process.returncode == 128 + sig, err.decode()[-2000:]
    assert pages_asked() - asked_before <= 1, err.decode()[-2000:]   # (one in flight as it was stopped)
    [(status, error_type)] = nightly.query(
        "SELECT status, error_type FROM harvest_runs WHERE run_id LIKE '%-records-%'")
    assert (status, error_type) == ("failed", "Interrupted")


def test_an_export_stopped_by_sigterm_keeps_the_previous_export_and_leaves_nothing_beside_it(nightly, records_portal):
    """cron's `timeout` (SIGTERM) mid-export ended the process on the spot: exit -15, the
    unfinished export left beside OUT until the next export. Now it stops as on Ctrl-C:
    exit 143 naming the signal, the unfinished export removed, the previous one as it was."""
    assert nightly.harvest("--records")[0] == 0
    out = nightly.tmp_path / "export"
    export = ["export", "--out", str(out), "--db", str(nightly.db), "--config", str(nightly.config)]
    assert CliRunner().invoke(cli, export).exit_code == 0
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    stopped = signalled_at("catalog.export:_copy_records", signal.SIGTERM, *export)
    assert stopped.returncode == 143, stopped.stderr.decode()[-2000:]
    assert stopped.stderr.decode().startswith("Interrupted (SIGTERM): "), stopped.stderr.decode()[-2000:]
    assert left_beside(out) == []
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


LONG_QUERY = "SELECT count(*) AS n FROM range(20000000000) r(i) WHERE i % 7 = 3"   # (minutes)

# `civicat` whose statement of argv[1] reads $LONG_QUERY too, as one of a large catalogue or dataset
# would take minutes ("sql": its query, given; "export": the COPYs and data.json's SELECT;
# "merge": a statement of a harvest's merge, read alone),
# touching the file $IN_STATEMENT as that statement (or the one before it) begins
IN_A_LONG_STATEMENT = """
import os, sys
from pathlib import Path
if __name__ == "__main__":   # (not in the mapping workers, which import this script as __mp_main__)
    which = sys.argv.pop(1)
    import catalog.datajson, catalog.export, catalog.query, catalog.store
    def announced(function):
        def announcing(*args, **kwargs):
            Path(os.environ["IN_STATEMENT"]).touch()
            return function(*args, **kwargs)
        return announcing
    def long(source):
        return f"(SELECT s.* FROM {source} s, ({os.environ['LONG_QUERY']}) long)"
    if which == "sql":
        opened = catalog.query.read_only_connection
        class Announcing:   # the connection, saying when the query's statement begins
            def __init__(self, con):
                self.con, self.execute = con, announced(con.execute)
            def __getattr__(self, name):
                return getattr(self.con, name)
        catalog.query.read_only_connection = lambda *args, **kwargs: Announcing(opened(*args, **kwargs))
    elif which == "export":
        source = catalog.export._source
        catalog.export._source = announced(lambda *args: long(source(*args)))
        catalog.datajson.catalogue_entries = announced(catalog.datajson.catalogue_entries)
        catalog.datajson.DATASETS = "SELECT * FROM " + long(f"({catalog.datajson.DATASETS})")
    else:
        track_missing = catalog.store._track_missing
        def long_merge(cur, *args):
            cur.execute(os.environ["LONG_QUERY"])
            return track_missing(cur, *args)
        catalog.store._track_missing = announced(long_merge)
    from harvester.command import main
    sys.argv[0] = "civicat"
    main()
"""


def stopped_in_a_long_statement(which: str, sig: int, tmp_path: Path, *args: str) -> tuple[int | None, str]:
    """`civicat *args` with IN_A_LONG_STATEMENT, sent `sig` (to its process group, as Ctrl-C is)
    a second into the long statement: (its exit code, None if it had not ended 30 s on; stderr)."""
    began = tmp_path / "in-statement"
    env = {**os.environ, "PYTHONPATH": str(REPO), "IN_STATEMENT": str(began), "LONG_QUERY": LONG_QUERY}
    process = subprocess.Popen([sys.executable, "-c", IN_A_LONG_STATEMENT, which, *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while not began.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1)
    os.killpg(process.pid, sig)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:   # (the statement's minutes waited for, or DuckDB hung)
        process.kill()
        _, err = output_of(process, 30)
        return None, err.decode()
    return process.returncode, err.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_long_query_stopped_ends_at_once(nightly, sig):
    """`civicat sql` stopped in a query of minutes: DuckDB dropped the statement ("Query
    interrupted") and hung in the connection's next call (its close), for good: no exit, no
    message, until a third signal. Now DuckDB interrupts the query itself: exit 130/143 within
    seconds, the message naming the signal."""
    from catalog.store import connect
    connect(nightly.db).close()
    code, err = stopped_in_a_long_statement("sql", sig, nightly.tmp_path, "sql", LONG_QUERY, "--db", str(nightly.db))
    said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert code == 128 + sig, err[-2000:]
    assert err.startswith(f"Interrupted ({said}): ") and "Query interrupted" not in err, err[-2000:]


def test_a_long_query_of_the_read_copy_stopped_ends_at_once(nightly):
    """`civicat sql` while a writer holds the catalogue reads the read copy (catalog.query): that
    connection, opened by duckdb.connect itself, had its statement dropped by a stop and hung in
    its close as the catalogue's did (r23: o23's copy beside u23's uncut connections)."""
    from catalog.read_copy import publish
    from catalog.store import connect
    connect(nightly.db).close()
    assert publish(nightly.db) is not None
    writer = subprocess.Popen([sys.executable, "-c", "import duckdb, sys\n"
                               f"con = duckdb.connect({str(nightly.db)!r})\nprint('open', flush=True)\nsys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert line_of(writer) == "open\n"
        code, err = stopped_in_a_long_statement("sql", signal.SIGINT, nightly.tmp_path, "sql", LONG_QUERY, "--db",
                                                str(nightly.db))
    finally:
        writer.stdin.close()
        ended(writer)
    # (the copy holds the catalogue's last write, the writer having written nothing: it is read
    # without a word, as the catalogue itself would be; the catalogue is the writer's)
    assert code == 130 and "Interrupted (Ctrl-C): " in err and "Query interrupted" not in err, err[-2000:]


@pytest.mark.parametrize(("fmt", "sig"), [("parquet", signal.SIGTERM), ("data.json", signal.SIGINT)])
def test_an_export_stopped_in_a_long_statement_ends_at_once_and_keeps_the_previous_export(
        nightly, records_portal, fmt, sig):
    """`civicat export` stopped in a statement of minutes (a large catalogue's COPY, data.json's
    SELECT): DuckDB dropped the statement ("Query interrupted"), and after data.json's hung in
    the connection's next call (its close), for good. Now DuckDB interrupts the statement
    itself: exit 130/143 within seconds naming the signal, what the export had written removed,
    the previous export as it was."""
    assert nightly.harvest("--records")[0] == 0
    out = nightly.tmp_path / "export"
    export = ["export", "--out", str(out), "--db", str(nightly.db), "--config", str(nightly.config)]
    assert CliRunner().invoke(cli, [*export, "--format", "parquet", "--format", "data.json"]).exit_code == 0
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = stopped_in_a_long_statement("export", sig, nightly.tmp_path, *export, "--format", fmt)
    said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert code == 128 + sig, err[-2000:]
    assert err.startswith(f"Interrupted ({said}): ") and "Query interrupted" not in err, err[-2000:]
    assert left_beside(out) == []
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files   # (no data.json's .tmp either)


def test_records_stopped_in_their_merge_end_at_once_and_keep_the_published_records(nightly, records_portal):
    """An incremental pull stopped in its merge of the published rows with the new ones (minutes at
    millions of rows): the merge, Arrow's since session 26 (DuckDB's COPY, interrupted by DuckDB,
    before), ends at its next row group: exit 143, the run Interrupted, the published records as
    they were, and the next pull merges."""
    from tests.portals.socrata import SodaTable
    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 50
    records_portal.records["abcd-1234"] = SodaTable.from_rows(
        [{"n": str(i)} for i in range(50)] + [{"n": "50", ":updated_at": "2024-02-01T00:00:00.000Z"}])
    stopped = signalled_at("harvester.records_merge:_kept", signal.SIGTERM, "records", "sea:abcd-1234",
                           "--config", str(nightly.config), "--db", str(nightly.db))
    err = stopped.stderr.decode()
    assert stopped.returncode == 143 and err.startswith("Interrupted (SIGTERM): "), err[-2000:]
    [(status, error_type, mode)] = nightly.query("SELECT h.status, h.error_type, p.mode FROM harvest_runs h, "
                                                 "record_pulls p WHERE h.run_id LIKE '%-records-%'")
    assert (status, error_type, mode) == ("failed", "Interrupted", "full")
    assert read_records(nightly) == 50 and nightly.query("SELECT row_count FROM record_pulls") == [(50,)]
    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 51
    assert nightly.query("SELECT mode, row_count FROM record_pulls") == [("incremental", 51)]


def test_a_harvest_stopped_in_a_long_merge_ends_at_once_and_keeps_the_previous_catalogue(nightly):
    """A harvest stopped in its merge of a portal (the UPDATE of every dataset of a large portal
    that all changed took 20 s and more): the stop waited for the statement's end. Now DuckDB
    interrupts it, the merge's transaction rolled back: exit 130 within seconds, the portal's
    previous catalogue whole (never a merge half-applied), its run Interrupted."""
    with DataJsonPortal(make_data_json(20)) as portal:
        nightly.add("city", "dcat-us", portal.url + "/data.json")
        assert nightly.harvest()[0] == 0
        before = nightly.catalogue()
        for dataset in portal.document["dataset"]:
            dataset["title"] += " (v2)"
        portal.document = dict(portal.document)
        code, err = stopped_in_a_long_statement("merge", signal.SIGINT, nightly.tmp_path, "harvest", "--config",
                                                str(nightly.config), "--db", str(nightly.db))
    assert code == 130 and "stored before Ctrl-C" in err and "Query interrupted" not in err, err[-2000:]
    assert nightly.catalogue() == before
    assert nightly.query("SELECT status, error_type FROM harvest_runs ORDER BY started_at DESC LIMIT 1") == [
        ("failed", "Interrupted")]
    assert nightly.query("SELECT count(*) FROM harvest_runs WHERE status = 'running'") == [(0,)]


# -- a write that fails partway (the disk full) -----------------------------------------------

def civicat_limited(max_file_bytes: int, *args: str) -> subprocess.CompletedProcess:
    """`civicat` in a process that may write no file past `max_file_bytes` (RLIMIT_FSIZE, with
    SIGXFSZ ignored: a write past it fails with EFBIG, as one on a full disk fails with ENOSPC)."""
    import resource

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    env = {**os.environ, "CIVICAT_HTTP_BACKOFF": "0.01", "CIVICAT_HTTP_MAX_ATTEMPTS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(civicat(*args), env=env, capture_output=True, timeout=300, preexec_fn=limited)


def test_a_catalogue_write_that_fails_names_its_file_keeps_the_catalogue_and_the_next_run_completes(nightly):
    """Staging a portal's listing on a full disk failed it with "[Errno 27] File too large" (or
    28, "No space left on device"): which file, on which disk, it did not say."""
    entries = make_socrata_entries(3_000, domain=DOMAIN)
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        nightly.add("city", "socrata", portal.url, domain=DOMAIN)
        assert nightly.harvest()[0] == 0
        before = nightly.catalogue()
        for entry in portal.entries:
            entry["resource"]["name"] += " (v2)"
        portal.entries = list(portal.entries)
        failed = civicat_limited(1 << 20, "harvest", "--json", "--config", str(nightly.config), "--db", str(nightly.db))
        assert failed.returncode == 1, failed.stderr.decode()[-2000:]
        [report] = json.loads(failed.stdout)["portals"]
        assert report["status"] == "failed" and str(nightly.tmp_path) in report["error_message"], report
        assert "File too large" in report["error_message"]
        assert nightly.catalogue() == before                     # the previous catalogue, whole and readable
        assert nightly.harvest()[0] == 0                         # and the next run, with room, completes
    assert nightly.query("SELECT count(*) FROM datasets WHERE title LIKE '% (v2)'") == [(len(entries),)]


def test_a_records_part_that_cannot_be_written_names_it_keeps_the_dataset_and_the_next_pull_completes(
        nightly, records_portal):
    """A records pull on a full disk failed with "[Errno 27] Error writing bytes to file. Detail:
    [errno 27] File too large": no file named. The published Parquet and its record_pulls row stay."""
    from tests.portals.socrata import SodaTable
    assert nightly.harvest("--records")[0] == 0 and read_records(nightly) == 50
    records_portal.records["abcd-1234"] = SodaTable.from_rows(
        [{"n": str(i), "t": os.urandom(32).hex()} for i in range(60_000)])   # ~4 MB of Parquet, incompressible
    failed = civicat_limited(3 << 19, "records", "sea:abcd-1234", "--full", "--json", "--config", str(nightly.config),
                             "--db", str(nightly.db))
    assert failed.returncode == 1, failed.stderr.decode()[-2000:]
    [pull] = json.loads(failed.stdout)
    message = pull["error_message"]
    assert f"could not write {nightly.tmp_path}/.records-staging/portal=sea/dataset=abcd-1234/parts/part-" in message
    assert "File too large" in message
    assert read_records(nightly) == 50 and nightly.query("SELECT row_count FROM record_pulls") == [(50,)]
    assert not list((nightly.tmp_path / ".records-staging").rglob("*.tmp"))   # the part cut short is gone
    assert nightly.harvest("--records", "--full")[0] == 0 and read_records(nightly) == 60_000


def test_an_export_that_cannot_be_written_names_its_file_and_keeps_the_previous_export(nightly, records_portal):
    """`civicat export --format data.json` on a full disk ended in a Python traceback; the
    previous data.json and the Parquet export stay as they were, the next export completes."""
    assert nightly.harvest("--records")[0] == 0
    out = nightly.tmp_path / "export"
    export = ["export", "--out", str(out), "--db", str(nightly.db), "--config", str(nightly.config)]
    assert CliRunner().invoke(cli, [*export, "--format", "parquet", "--format", "data.json"]).exit_code == 0
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for fmt, limit in (("data.json", 200), ("parquet", 1 << 10)):
        failed = civicat_limited(limit, *export, "--format", fmt)
        assert failed.returncode == 1, failed.stderr.decode()[-2000:]
        error = failed.stderr.decode()
        assert "Traceback" not in error and error.startswith(f"Error: cannot export {nightly.db}"), error
        assert f"{out}/data.json" in error if fmt == "data.json" else f"{nightly.tmp_path}/.export.export-" in error
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert CliRunner().invoke(cli, [*export, "--format", "parquet", "--format", "data.json"]).exit_code == 0
    assert json.loads((out / "data.json").read_text())["dataset"]


# a harvest under a file size limit (`ulimit -f`): its writes past it fail with EFBIG, "File too
# large", as on a full disk (SIGXFSZ is ignored by Python); no tmpfs needed (mounting one takes root)
UNDER_A_FILE_SIZE_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from harvester.cli import cli
cli(sys.argv[2:])
"""


@pytest.mark.parametrize("limit, where", [(3_000_000, "the harvest's staging"),
                                          (6_000_000, "the catalogue's write-ahead log")])
def test_a_harvest_out_of_room_says_which_file_and_loses_nothing(tmp_path, limit, where):
    """A portal whose harvest found no room recorded `OSError` ("[Errno 27] could not write
    .../raw-batch-000000.tsv: File too large") or DuckDB's `TransactionException` ("Failed to
    commit: Could not write file \\".../c.duckdb.wal\\""): words a data team reads as a bug. It
    records `DiskFull`, naming the file as what it is (the staging, the catalogue's log) and what
    to do; the catalogue stays as it was, and the next harvest with room stores everything."""
    with DataJsonPortal(make_data_json(50)) as small, DataJsonPortal(make_data_json(3000)) as big:
        config = tmp_path / "c.toml"
        config.write_text(f'[[portals]]\nid = "small"\ncity = "S"\nkind = "dcat-us"\nurl = "{small.url}/data.json"\n\n'
                          f'[[portals]]\nid = "big"\ncity = "B"\nkind = "dcat-us"\nurl = "{big.url}/data.json"\n')
        db = tmp_path / "c.duckdb"
        args = ["harvest", "--config", str(config), "--db", str(db), "--json"]
        assert CliRunner().invoke(cli, [*args, "--portal", "small"]).exit_code == 0
        limited = subprocess.run([sys.executable, "-c", UNDER_A_FILE_SIZE_LIMIT, str(limit), *args, "--portal", "big"],
                                 capture_output=True, text=True, timeout=300,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        assert limited.returncode == 1, limited.stderr[-3000:]
        [failed] = json.loads(limited.stdout)["portals"]
        assert (failed["status"], failed["error_type"]) == ("failed", "DiskFull"), failed
        assert failed["error_message"].startswith(f"no room to write {where} ({tmp_path}/"), failed["error_message"]
        assert ("it would grow past the process's file size limit (`ulimit -f`) or the largest file its file system "
                "takes. Nothing is lost") in failed["error_message"]
        assert "Traceback" not in limited.stderr
        con = connect_read_only(db)
        try:
            assert con.execute("SELECT portal_id, count(*) FROM datasets GROUP BY ALL").fetchall() == [("small", 50)]
            assert con.execute("SELECT error_type, message FROM harvest_errors WHERE portal_id = 'big'").fetchall() == [
                ("DiskFull", failed["error_message"])]
        finally:
            con.close()
        again = CliRunner().invoke(cli, [*args, "--portal", "big"])
        assert again.exit_code == 0, again.output
    con = connect_read_only(db)
    try:
        assert con.execute("SELECT portal_id, count(*) FROM datasets GROUP BY ALL ORDER BY 1").fetchall() == [
            ("big", 3000), ("small", 50)]
    finally:
        con.close()


def test_an_export_and_a_records_pull_out_of_room_say_which_file(tmp_path):
    """An export past `ulimit -f` said DuckDB's "IO Error: Could not write file ..." or Python's
    "[Errno 27] ...", and a records pull's download "OSError": each says `no room to write` the
    export or a temporary file (TMPDIR), what to do, and keeps what was there."""
    rows = "n,name\n" + "".join(f"{i},row {i}\n" for i in range(20_000))
    with DataJsonPortal({"dataset": []}) as portal:
        document = make_data_json(300)
        document["dataset"][0]["distribution"] = [{"mediaType": "text/csv", "downloadURL": f"{portal.url}/rows.csv"}]
        document["dataset"][0]["identifier"] = "rows"
        portal.document = document
        portal.serve_json("/rows.csv", RawBody(rows.encode()))
        config = tmp_path / "c.toml"
        config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
        db, out = tmp_path / "c.duckdb", tmp_path / "out"
        assert CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", str(db)]).exit_code == 0
        assert CliRunner().invoke(cli, ["export", "--db", str(db), "--out", str(out), "--config", str(config),
                                        "--format", "parquet", "--format", "data.json"]).exit_code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        temporary = tmp_path / "tmp"
        temporary.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(temporary)}

        def limited(*args):
            return subprocess.run([sys.executable, "-c", UNDER_A_FILE_SIZE_LIMIT, "20000", *args, "--db", str(db),
                                   "--config", str(config)], capture_output=True, text=True, timeout=300, env=env)
        for fmt in ("parquet", "data.json"):
            failed = limited("export", "--out", str(out), "--format", fmt)
            assert failed.returncode == 1, failed.stderr[-2000:]
            assert failed.stderr.startswith(f"Error: cannot export {db}{' as data.json' if fmt == 'data.json' else ''}"
                                            f" to {out}: no room to write the export ({tmp_path}/"), failed.stderr
            assert "file size limit (`ulimit -f`)" in failed.stderr and "Traceback" not in failed.stderr
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # the previous export, whole
        pulled = limited("records", "city:rows", "--json")
        assert pulled.returncode == 1, pulled.stderr[-2000:]
    [result] = json.loads(pulled.stdout)
    assert result["error_type"] == "DiskFull", result
    assert result["error_message"].startswith(f"no room to write a temporary file (TMPDIR) ({temporary}/civicat-download-"), \
        result["error_message"]
    assert list(temporary.iterdir()) == []


# -- a full disk of its own (tmpfs: ENOSPC where the disk ends, whichever file meets it) ----------

def two_portal_config(folder: Path, small, big) -> Path:
    config = folder / "c.toml"
    config.write_text(f'[[portals]]\nid = "small"\ncity = "S"\nkind = "dcat-us"\nurl = "{small.url}/data.json"\n\n'
                      f'[[portals]]\nid = "big"\ncity = "B"\nkind = "dcat-us"\nurl = "{big.url}/data.json"\n')
    return config


def rows_of(db: Path) -> list[tuple]:
    con = connect_read_only(db)
    try:
        return con.execute("SELECT * EXCLUDE (last_seen) FROM datasets ORDER BY uid").fetchall()
    finally:
        con.close()


def portals_in(db: Path) -> dict[str, int]:
    con = connect_read_only(db)
    try:
        return dict(con.execute("SELECT portal_id, count(*) FROM datasets GROUP BY ALL").fetchall())
    finally:
        con.close()


def civicat_on(folder: Path, *args: str, script: str | None = None, room: int = 0) -> subprocess.CompletedProcess:
    """`civicat harvest --json` of the catalogue in `folder` (a process of its own, as cron runs it);
    `script`: run through it instead, given `room` first."""
    command = [sys.executable, "-m", "harvester"] if script is None else [sys.executable, "-c", script, str(room)]
    return subprocess.run([*command, "harvest", "--json", "--config", str(folder / "c.toml"), "--db",
                           str(folder / "c.duckdb"), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "CIVICAT_HTTP_MAX_ATTEMPTS": "1"})


def test_a_disk_that_fills_as_a_portal_is_staged_or_merged_keeps_the_catalogue_and_the_copy_whole(tmp_path):
    """A real full disk (not a file size limit: every file meets it, the catalogue's own checkpoint
    too) as a portal's listing is staged, and as its rows merge (the write-ahead log's commit): the
    portal fails `DiskFull` naming the file and the disk, exit 1; every portal's rows are as they were,
    the published copy the previous one, whole; nothing is left beside them; the next night, with
    room, stores everything and publishes it."""
    from tests.small_disk import fill, small_disk

    met = set()
    with DataJsonPortal(make_data_json(50)) as small, DataJsonPortal(make_data_json(3000)) as big, \
            small_disk(tmp_path / "disk", 64 << 20) as disk:
        for room in (1 << 20, 12 << 20):   # (the staging's parts first; then the log, the staging written)
            folder = disk / f"room-{room}"
            folder.mkdir()
            two_portal_config(folder, small, big)
            db, copy = folder / "c.duckdb", folder / "c.read.duckdb"
            assert civicat_on(folder, "--portal", "small").returncode == 0
            before, published = rows_of(db), copy.read_bytes()
            ballast = fill(disk, room)
            failed = civicat_on(folder, "--portal", "big")
            assert failed.returncode == 1, failed.stderr[-3000:]
            [report] = json.loads(failed.stdout)["portals"]
            assert (report["status"], report["error_type"]) == ("failed", "DiskFull"), report
            where = report["error_message"].split(f" ({folder}/")[0]
            assert where in ("no room to write the harvest's staging", "no room to write the catalogue's write-ahead log")
            met.add(where)
            assert "its file system is full; " in report["error_message"]
            assert f"MB free of 67.1 MB on {disk}: free space there. Nothing is lost" in report["error_message"]
            assert "Traceback" not in failed.stderr
            assert rows_of(db) == before and rows_of(copy) == before                 # the catalogue, the copy: whole
            assert copy.read_bytes() in (published, db.read_bytes())   # (the previous copy, or the run's failure's)
            hidden = {p.name for p in folder.iterdir() if p.name.startswith(".")}   # (no copy cut short beside it)
            assert hidden <= {".c.duckdb.staging", ".c.read.duckdb.spare"}, hidden
            assert not list((folder / ".c.duckdb.staging").glob("*"))
            ballast.unlink()
            again = civicat_on(folder)
            assert again.returncode == 0, again.stderr[-3000:]
            assert is_current(db) and portals_in(copy) == {"small": 50, "big": 3000}
            shutil.rmtree(folder)
    assert met == {"no room to write the harvest's staging", "no room to write the catalogue's write-ahead log"}


# the disk filled by another program as the night's read copy is published; "made anew" and "the
# spare updated": filled after the publish read its free space (the copy begun, as on main whatever
# the room, and meeting the disk's end as it is written)
FILLED_AS_THE_COPY_IS_PUBLISHED = """
import sys
from catalog import read_copy
from tests.small_disk import fill
room, publish = int(sys.argv[1]), read_copy.publish
def filled_as_it_starts(db_path, *args, **kwargs):
    fill(read_copy.Path(db_path).parent.parent, room)
    if HOW != "not begun" and hasattr(read_copy, "free_bytes"):
        read_copy.free_bytes = lambda folder: 1 << 50
    return publish(db_path, *args, **kwargs)
read_copy.publish = filled_as_it_starts
from harvester.cli import cli
cli(sys.argv[2:])
"""


@pytest.mark.parametrize("how", ["not begun", "made anew", "the spare updated"])
def test_a_disk_that_fills_as_the_read_copy_is_written_keeps_the_previous_copy_published(tmp_path, how):
    """The disk full by the night's publish (the portals stored): a copy made anew, or the spare's
    update, that met the disk's end was a warning, exit 0, and a copy that would not fit was begun
    anyway. Now: not begun when it would not fit; either way the previous copy stays published,
    whole, nothing left beside it but the spare (a spare cut short is no copy any reader opens);
    stderr's last line says every portal was stored and why the copy was not (the disk, its free
    space), exit 74; the next night with room publishes the catalogue's bytes."""
    from tests.small_disk import small_disk

    with DataJsonPortal(make_data_json(50)) as small, DataJsonPortal(make_data_json(3000)) as big, \
            small_disk(tmp_path / "disk", 64 << 20) as disk:
        folder = disk / "data"
        folder.mkdir()
        two_portal_config(folder, small, big)
        db, copy, spare = folder / "c.duckdb", folder / "c.read.duckdb", folder / ".c.read.duckdb.spare"
        for _ in range(2 if how == "the spare updated" else 1):
            assert civicat_on(folder, "--portal", "small").returncode == 0
        assert spare.exists() == (how == "the spare updated")
        published, beside = copy.read_bytes(), sorted(p.name for p in folder.iterdir())
        script = FILLED_AS_THE_COPY_IS_PUBLISHED.replace("HOW", repr(how))
        stored = civicat_on(folder, script=script, room=300_000)
        assert stored.returncode == 74, stored.stderr[-3000:]
        report = json.loads(stored.stdout)
        assert report["ok"] and [p["status"] for p in report["portals"]] == ["ok", "ok"]
        last = stored.stderr.strip().splitlines()[-1]
        assert last.startswith(f"every portal was stored, but the read copy {copy} was not refreshed"), last
        if how == "not begun":
            assert " would write " in last and f" MB: no room (0.3 MB free of 67.1 MB on {disk}: free space there)" in last
        else:
            made = spare if how == "the spare updated" else folder / ".c.read.duckdb.publishing"
            assert f"no room to write the catalogue's read copy ({made}): its file system is full; " in last
            assert f"MB free of 67.1 MB on {disk}: free space there" in last
        assert "readers while a writer holds the catalogue read the previous copy" in last and "Traceback" not in last
        assert copy.read_bytes() == published and portals_in(copy) == {"small": 50}
        assert sorted(p.name for p in folder.iterdir()) == beside   # (no .publishing, no .spare.next)
        assert portals_in(db) == {"small": 50, "big": 3000}   # the night's work stands
        (disk / "ballast").unlink()
        again = civicat_on(folder)
        assert again.returncode == 0, again.stderr[-3000:]
        assert copy.read_bytes() == db.read_bytes() and portals_in(copy) == {"small": 50, "big": 3000}


@pytest.mark.parametrize("command", ["overlap", "retire"])
def test_a_writer_but_harvest_whose_read_copy_found_no_room_exits_74_its_work_stored(tmp_path, command):
    """`overlap` and `retire` (and `records`, by the same code) stored their work, then found no room
    for the read copy: a warning and exit 0, cron told nothing while readers kept yesterday's copy.
    Now they exit 74 as `harvest` does, stderr's last line saying what stood and why the copy was
    not refreshed; the previous copy stays published, whole; the catalogue holds the work."""
    from tests.small_disk import small_disk

    with DataJsonPortal(make_data_json(50)) as small, DataJsonPortal(make_data_json(60)) as big, \
            small_disk(tmp_path / "disk", 64 << 20) as disk:
        folder = disk / "data"
        folder.mkdir()
        config = two_portal_config(folder, small, big)
        db, copy = folder / "c.duckdb", folder / "c.read.duckdb"
        assert civicat_on(folder).returncode == 0
        published = copy.read_bytes()
        if command == "retire":
            config.write_text(config.read_text().split("\n\n[[portals]]")[0] + "\n")   # (big taken out)
            args, stood = ["retire", "big", "--json", "--config", str(config)], "big was retired"
        else:
            args, stood = ["overlap", "--json"], "the groups were stored"
        script = FILLED_AS_THE_COPY_IS_PUBLISHED.replace("HOW", repr("not begun"))
        ended = subprocess.run([sys.executable, "-c", script, "300000", *args, "--db", str(db)], capture_output=True,
                               text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert ended.returncode == 74, ended.stderr[-3000:]
        report = json.loads(ended.stdout)   # (the command's report, whole)
        last = ended.stderr.strip().splitlines()[-1]
        assert last.startswith(f"{stood}, but the read copy {copy} was not refreshed"), last
        assert " MB: no room (" in last and "Traceback" not in ended.stderr
        assert copy.read_bytes() == published
        kept = connect_read_only(copy)
        try:   # (yesterday's copy: no retirement, no pairs)
            assert kept.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NOT NULL").fetchone()[0] == 0
            assert kept.execute("SELECT count(*) FROM overlap_pairs").fetchone()[0] == 0
        finally:
            kept.close()
        con = connect_read_only(db)
        try:
            if command == "retire":
                assert con.execute("SELECT count(*) FROM datasets WHERE portal_id = 'big' AND deleted_at IS NOT NULL"
                                   ).fetchone()[0] == 60
            else:   # (the two portals' datasets alike: the pairs found are stored, the copy has none of them)
                assert report["strong_pairs"] > 0
                assert con.execute("SELECT count(*) FROM overlap_pairs").fetchone()[0] == report["strong_pairs"]
        finally:
            con.close()


def test_a_disk_with_no_room_for_the_catalogue_s_checkpoint_keeps_the_log_and_says_so(tmp_path):
    """A night that stored every portal and then found no room for the catalogue's checkpoint (the
    file grows as the log is written into it) exited 0, two warnings in the log, and the read copy
    stayed the night before's without a word to cron. The commits stay in the write-ahead log (read
    by every reader, replayed by the next open); the harvest exits 74, its last line naming the
    catalogue, the disk and its free space; the next night with room checkpoints and publishes."""
    from tests.small_disk import fill, small_disk

    with DataJsonPortal(make_data_json(50)) as small, DataJsonPortal(make_data_json(20)) as other, \
            small_disk(tmp_path / "disk", 64 << 20) as disk:
        folder = disk / "data"
        folder.mkdir()
        two_portal_config(folder, small, other)
        db, copy = folder / "c.duckdb", folder / "c.read.duckdb"
        assert civicat_on(folder, "--portal", "small").returncode == 0
        published = copy.read_bytes()
        ballast = fill(disk, 100_000)   # (the log's commits fit; the checkpoint's new blocks do not)
        stored = civicat_on(folder, "--portal", "small")
        assert stored.returncode == 74, stored.stderr[-3000:]
        assert json.loads(stored.stdout)["ok"]
        last = stored.stderr.strip().splitlines()[-1]
        assert last.startswith(f"every portal was stored, but the catalogue could not be checkpointed as it closed: no "
                               f"room to write the catalogue ({db}): its file system is full; "), last
        assert f" MB free of 67.1 MB on {disk}: free space there" in last and "write-ahead log" in last
        assert (folder / "c.duckdb.wal").stat().st_size > 0 and copy.read_bytes() == published
        con = connect_read_only(db)   # (as `civicat sql` reads it: the log's commits with the file's)
        try:
            assert con.execute("SELECT count(*) FROM harvest_runs WHERE status = 'ok'").fetchone() == (2,)
        finally:
            con.close()
        ballast.unlink()
        again = civicat_on(folder)
        assert again.returncode == 0, again.stderr[-3000:]
        assert not (folder / "c.duckdb.wal").exists() and copy.read_bytes() == db.read_bytes()
        assert portals_in(copy) == {"small": 50, "big": 20}
