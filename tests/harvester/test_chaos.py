"""Seeded chaos nights: one local portal of every kind, harvested night after night while
their catalogues change (entries added, edited, removed) and any request may meet a fault.

After every night the store is checked against a model of what each portal served:
- a portal that failed keeps exactly its previous catalogue, and its failure is recorded;
- a portal listed completely holds exactly the live entries (current titles), every
  removed entry marked deleted, nothing else;
- a partial listing marks nothing deleted;
- the night ends within a bound;
and after the last night the export (Parquet and data.json) equals the catalogue and
data.json validates against DCAT-US 1.1.

Everything random is drawn from `random.Random` seeded by the test's seed (a fault by the
request's own URL and how often it was asked that night, so threads asking pages in any
order meet the same faults). `CIVICAT_CHAOS_SEEDS=0-299` runs many seeds (not in CI).
"""
from __future__ import annotations

import copy
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow.parquet as pq
import pytest
from werkzeug.wrappers import Request

from catalog.datajson import PortalDefaults, write_data_json
from catalog.export import export_parquet, open_catalogue
from catalog.store import Store
from harvester.pipeline import harvest
from tests.catalog.test_datajson import errors_of, validators
from tests.conftest import fast_client, portal_config
from tests.harvester.portals.test_ckan import packages
from tests.harvester.test_every_kind import FeatureServers
from tests.portals.base import LocalPortal
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.open311 import Open311Portal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_data_json, make_socrata_entries

DOMAIN = "data.example.org"
TIMEOUT = 0.3           # each portal's read timeout (config `timeout`) on the nights with faults
# on the fault-free first and last nights, which must succeed: no answer is slow by design there,
# but the local servers share this process (and its GIL) with the harvest, so on a loaded machine
# (load 40-60 on 2 cores) CKAN's first page of 1,000 packages, ~10 ms of the server's CPU, went
# past 0.3 s three times in a row (ReadTimeout: the night failed). A hang still ends the night at
# bounded_night's ten minutes; the faults' own timeouts are the faulted nights'
FAULT_FREE_TIMEOUT = 30.0
SLOW = 2.5 * TIMEOUT    # how long a slow answer (or the rest of a slow body) keeps the client waiting
MAX_RETRY_AFTER = 0.2   # the client's cap on a Retry-After wait
ATTEMPTS = 3

# Base LocalPortal faults, plus three of this module's own: an empty body behind a 200, a body whose
# second half comes after the timeout, and a listing page that repeats the page before.
FAULTS: list[Any] = [("status", 500), ("status", 502), ("status", 503), ("retry_after", 429, 0),
                     ("retry_after", 429, 1), "reset", "truncated", "truncated_json", "html", "html_as_json",
                     "invalid_json", ("slow", SLOW), "empty", "slow_body", "repeat"]
FAULT_RATES = (0.0, 0.05, 0.15, 0.4, 0.7)   # per portal and night
OWN_FAULTS = {"empty", "slow_body", "repeat"}


def previous_page(query: dict[str, str]) -> dict[str, str] | None:
    """The query of the page before this one, for offset (Socrata, ODS), start (CKAN) and
    page-number (Open311) paging; None on a first page."""
    for offset, size in (("offset", "limit"), ("start", "rows")):
        if int(query.get(offset) or 0) > 0 and query.get(size):
            return {**query, offset: str(max(0, int(query[offset]) - int(query[size])))}
    if int(query.get("page") or 1) > 1:
        return {**query, "page": str(int(query["page"]) - 1)}
    return None


class Chaos:
    """Which request meets which fault, decided by (seed, night, portal, URL, how often that URL
    was asked this night) so the schedule does not depend on the order threads ask."""

    def __init__(self, seed: int, name: str):
        self.seed, self.name = seed, name
        self.night, self.rate = 0, 0.0
        self.asked: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()

    def new_night(self, night: int, rate: float) -> None:
        with self.lock:
            self.night, self.rate = night, rate
            self.asked.clear()

    def decide(self, path: str, query: dict[str, str]) -> Any:
        url = path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))
        with self.lock:
            self.asked[url] += 1
            draw = random.Random(f"{self.seed}/{self.night}/{self.name}/{url}/{self.asked[url]}")
            if self.rate == 0 or draw.random() >= self.rate:
                return None
            fault = draw.choice(FAULTS)
            if fault == "repeat" and previous_page(query) is None:
                return None
            self.injected[fault if isinstance(fault, str) else fault[0]] += 1
            return fault


def chaotic(portal_class: type[LocalPortal]) -> type[LocalPortal]:
    """`portal_class` whose every request may meet the fault its Chaos decides."""

    class Chaotic(portal_class):
        def __init__(self, *args, chaos: Chaos, **kwargs):
            super().__init__(*args, **kwargs)
            self.chaos = chaos
            self.local = threading.local()

        def _take_fault(self, path):
            fault = getattr(self.local, "fault", None)
            if fault is None or fault in OWN_FAULTS:
                return None
            kind, *args = (fault,) if isinstance(fault, str) else fault
            return kind, tuple(args)

        def route(self, path, query):
            if getattr(self.local, "fault", None) == "repeat":
                query = previous_page(query)
            return super().route(path, query)

        def _wsgi(self, environ, start_response):
            request = Request(environ)
            path = request.path[len(self.prefix):] if self.prefix else request.path
            self.local.fault = fault = self.chaos.decide(path, request.args.to_dict())
            if fault == "empty":
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "0")])
                return [b""]
            body = super()._wsgi(environ, start_response)
            if fault != "slow_body":
                return body
            data = b"".join(body)

            def trickle():
                yield data[: len(data) // 2]
                time.sleep(SLOW)
                yield data[len(data) // 2:]
            return trickle()

    Chaotic.__name__ = f"Chaotic{portal_class.__name__}"
    return Chaotic


# -- the catalogue of each kind: entries keyed by a model key, titled by it ---------------------

@dataclass
class Kind:
    """One portal kind's catalogue as the model sees it: `live` model keys → version; the
    served entries carry the title `title(key, version)`."""
    name: str
    kind: str
    pool: list[dict]                           # every entry this portal may ever serve, in order
    set_title: Callable[[dict, str], None]
    serve: Callable[[list[dict]], None]        # puts the live entries in the portal
    live: dict[int, int] = field(default_factory=dict)
    removed: dict[int, int] = field(default_factory=dict)
    next_key: int = 0

    def title(self, key: int, version: int) -> str:
        return f"Chaos {self.name} item {key} version {version}"

    def entries(self) -> list[dict]:
        out = []
        for key, version in self.live.items():
            entry = copy.deepcopy(self.pool[key])
            self.set_title(entry, self.title(key, version))
            out.append(entry)
        return out

    def change(self, rng, adds: int, edits: int, removals: int) -> None:
        for key in rng.sample(sorted(self.live), max(0, min(removals, len(self.live) - 1))):
            self.removed[key] = self.live.pop(key)
        for key in rng.sample(sorted(self.live), min(edits, len(self.live))):
            self.live[key] += 1
        for _ in range(min(adds, len(self.pool) - self.next_key)):
            self.live[self.next_key] = 0
            self.next_key += 1

    def expected(self) -> tuple[set[str], set[str]]:
        """(titles of live entries, titles of removed entries)."""
        return ({self.title(k, v) for k, v in self.live.items()},
                {self.title(k, v) for k, v in self.removed.items()})


def _set(path: tuple[str, ...]) -> Callable[[dict, str], None]:
    def set_title(entry: dict, title: str) -> None:
        for key in path[:-1]:
            entry = entry[key]
        entry[path[-1]] = title
    return set_title


def ckan_pool(n: int) -> list[dict]:
    pool = packages(n)
    for index, package in enumerate(pool):   # ids in no particular order: new ones land on every page
        package["id"] = str(uuid.UUID(int=(index * 2654435761) % (1 << 64) + (1 << 100)))
    return pool


def snapshot(store: Store, portal_id: str) -> list[tuple]:
    """Everything stored for one portal (last_seen aside: it only says when)."""
    def rows(sql: str) -> list[tuple]:
        return store.con.execute(sql, [portal_id + ":%"]).fetchall()
    return (rows("SELECT * EXCLUDE (last_seen) FROM datasets WHERE uid LIKE ? ORDER BY uid")
            + rows("SELECT * FROM distributions WHERE dataset_uid LIKE ? ORDER BY ALL")
            + rows("SELECT * FROM columns WHERE dataset_uid LIKE ? ORDER BY ALL")
            + rows("SELECT uid, raw_hash FROM raw_records WHERE uid LIKE ? ORDER BY ALL"))


def live_content(store: Store, portal_id: str) -> list[tuple]:
    """The live datasets of a portal with their distributions and columns, without the dates
    that say when they were harvested."""
    def rows(sql: str) -> list[tuple]:
        return store.con.execute(sql, [portal_id]).fetchall()
    live = "(SELECT uid FROM datasets WHERE portal_id = ? AND deleted_at IS NULL)"
    return (rows("SELECT * EXCLUDE (first_seen, last_seen, last_changed) FROM datasets "
                 "WHERE portal_id = ? AND deleted_at IS NULL ORDER BY uid")
            + rows(f"SELECT * FROM distributions WHERE dataset_uid IN {live} ORDER BY ALL")
            + rows(f"SELECT * FROM columns WHERE dataset_uid IN {live} ORDER BY ALL"))


def services_pool(n: int) -> list[dict]:
    return [{"service_code": f"svc-{i:04d}", "service_name": "", "description": "A request", "metadata": False,
             "type": "realtime", "keywords": "", "group": "Streets"} for i in range(n)]


def stored_keys(store: Store, portal_id: str, deleted: bool) -> dict[int, str]:
    """model key → stored title of the portal's datasets, deleted or live."""
    rows = store.con.execute(f"SELECT title FROM datasets WHERE portal_id = ? AND deleted_at IS "
                             f"{'NOT ' if deleted else ''}NULL", [portal_id]).fetchall()
    return {int(title.split(" item ")[1].split()[0]): title for (title,) in rows}


def check_night(store: Store, run, kinds: list[Kind], before: dict[str, list], deleted_before: dict[str, set],
                previous_titles: dict[str, set]):
    """The invariants of one night, for every portal; returns their statuses."""
    reports = {p.portal_id: p for p in run.portals}
    assert dict(store.con.execute("SELECT portal_id, status FROM harvest_runs WHERE run_id = ?",
                                  [run.run_id]).fetchall()) == {name: r.status for name, r in reports.items()}
    for kind in kinds:
        report = reports[kind.name]
        if report.status != "ok":   # failed: exactly the previous catalogue, the failure recorded with its reason
            assert snapshot(store, kind.name) == before[kind.name], (kind.name, report.error_message)
            row = store.con.execute("SELECT status, error_type, error_message FROM harvest_runs "
                                    "WHERE run_id = ? AND portal_id = ?", [run.run_id, kind.name]).fetchone()
            assert row[0] == "failed" and row[1] and row[2], (kind.name, row)
            assert store.con.execute("SELECT count(*) FROM harvest_errors WHERE run_id = ? AND portal_id = ? AND "
                                     "severity = 'error' AND error_type = ?",
                                     [run.run_id, kind.name, row[1]]).fetchone()[0] >= 1
            continue
        live_titles, _ = kind.expected()
        if kind.kind == "open311":   # the endpoint is one dataset; its services are its keywords
            [(keywords, deleted_at)] = store.con.execute(
                "SELECT keywords, deleted_at FROM datasets WHERE portal_id = ?", [kind.name]).fetchall()
            assert set(keywords) - {"311", "service requests"} == live_titles and deleted_at is None
            continue
        deleted = set(stored_keys(store, kind.name, deleted=True))
        if report.listing_complete:   # exactly what the portal served
            live = stored_keys(store, kind.name, deleted=False)
            assert set(live) == set(kind.live), (kind.name, sorted(set(live) ^ set(kind.live)))
            # a dataset whose details lookup failed keeps what that lookup gave before (half the
            # metadata must not replace the whole) and takes the listing's metadata, or, of a kind
            # that does not tell the two apart, keeps its stored version; every other one is as served
            looked_up = {title for (title,) in store.con.execute(
                "SELECT d.title FROM datasets d JOIN harvest_errors e ON e.source_id = d.source_id AND "
                "e.portal_id = d.portal_id WHERE e.run_id = ? AND d.portal_id = ? AND e.stage = 'fetch'",
                [run.run_id, kind.name]).fetchall()}
            stale = {title for title in set(live.values()) - live_titles if title not in looked_up
                     or title not in previous_titles[kind.name]}
            assert not stale, (kind.name, sorted(stale)[:6])
            # (every removed entry that was stored is deleted: it is not live, above)
            assert deleted <= set(kind.removed), (kind.name, sorted(deleted - set(kind.removed)))
        else:   # a partial listing marks nothing deleted
            assert deleted <= deleted_before[kind.name], (kind.name, sorted(deleted - deleted_before[kind.name]))
    return {name: (r.status, r.listing_complete) for name, r in reports.items()}


def check_export(db, tmp_path, kinds: list[Kind]) -> None:
    """The Parquet export holds the catalogue; every data.json dataset validates, and the
    datasets written plus those left out (with reasons) are the live catalogue."""
    out = tmp_path / "export"
    export_parquet(db, out)
    con = open_catalogue(db)
    try:
        stored = con.execute("SELECT uid, title, deleted_at IS NULL FROM datasets ORDER BY uid").fetchall()
        exported = con.execute("SELECT uid, title, deleted_at IS NULL FROM read_parquet(?) ORDER BY uid",
                               [str(out / "datasets.parquet")]).fetchall()
        assert exported == stored
        assert pq.read_metadata(out / "datasets.parquet").num_rows == len(stored)
        defaults = {k.name: PortalDefaults(contact_name="Open Data Team", contact_email="opendata@example.org")
                    for k in kinds}
        report = write_data_json(con, tmp_path / "dcat", defaults)
    finally:
        con.close()
    document = json.loads((tmp_path / "dcat" / "data.json").read_text())
    dataset_validator, catalog_validator = validators()
    assert errors_of(catalog_validator, document) == []
    for dataset in document["dataset"]:
        assert errors_of(dataset_validator, dataset) == [], dataset["identifier"]
    live = {title for _, title, alive in stored if alive}
    assert {d["title"] for d in document["dataset"]} <= live
    assert report.written == len(document["dataset"]) and report.written + len(report.left_out) == len(live)


def chaos_client(tmp_path, **options):
    """A client per night, as each `civicat harvest` builds its own (the validator cache on disk)."""
    return fast_client(tmp_path, **{"max_attempts": ATTEMPTS, "max_retry_after": MAX_RETRY_AFTER, "timeout": TIMEOUT,
                                    **options})


class RetryWaits(logging.Handler):
    """The waits between attempts the client logs ("retrying in 0.2s after attempt 1: ..."), from
    every thread of the harvest."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seconds: list[float] = []

    def emit(self, record):
        found = re.match(r"retrying in (\d+(?:\.\d+)?)s ", record.getMessage())
        if found:
            self.seconds.append(float(found.group(1)))


def bounded_night(harvest_night: Callable[[], Any], night: int, nights: int) -> Any:
    """One night's harvest (`harvest_night()`, its run returned), with no hang and no wait past
    its cap: every wait between attempts the client chose is within MAX_RETRY_AFTER (its log;
    the portals' Retry-After goes up to 1 s), a fault costs at most the client's timeouts
    (test_http proves them), and the night ends (a hang takes minutes: ten are waited for, where
    a night takes ~3 s; no elapsed-time bound, which a loaded machine could pass). The fault-free
    first and last nights succeed."""
    waits = RetryWaits()
    logger = logging.getLogger("civicat.http")
    logger.addHandler(waits)
    ended: list = []

    def run_night():
        try:
            ended.append(harvest_night())
        except BaseException as exc:   # raised below, in the test's thread
            ended.append(exc)
    harvesting = threading.Thread(target=run_night, name=f"night-{night}")
    try:
        harvesting.start()
        harvesting.join(600)
    finally:
        logger.removeHandler(waits)
    assert not harvesting.is_alive(), f"night {night} has not ended in 10 minutes"
    if isinstance(ended[0], BaseException):
        raise ended[0]
    run = ended[0]
    assert all(seconds <= MAX_RETRY_AFTER for seconds in waits.seconds), (night, waits.seconds)
    if night in (0, nights):
        assert run.ok, [(p.portal_id, p.error_message) for p in run.portals if p.status != "ok"]
    return run


def chaos_nights(seed: int, nights: int, tmp_path) -> dict:
    """Harvest `nights` nights (the first fault-free, the faults drawn on the others), then one fault-free
    night that must catch up with everything; returns what was exercised."""
    rng = random.Random(seed)
    chaos = {name: Chaos(seed, name) for name in ("soc", "ck", "dj", "hub", "fs", "ods", "o311")}
    db = tmp_path / f"chaos-{seed}.duckdb"
    store = Store(db)
    outcomes: Counter = Counter()
    with chaotic(FeatureServers)(chaos=chaos["fs"]) as services, \
            chaotic(SocrataPortal)([], domain=DOMAIN, chaos=chaos["soc"]) as soc, \
            chaotic(CkanPortal)([], prefix="/ckan", chaos=chaos["ck"]) as ckan, \
            chaotic(DataJsonPortal)({}, chaos=chaos["dj"]) as dj, \
            chaotic(DataJsonPortal)({}, path=HUB_FEED_PATH, chaos=chaos["hub"]) as hub, \
            chaotic(OpenDataSoftPortal)([], chaos=chaos["ods"]) as ods, \
            chaotic(Open311Portal)(services=[], chaos=chaos["o311"]) as o311:
        def data_json(portal, document):
            return lambda entries: setattr(portal, "document", {**document, "dataset": entries})

        dj_doc, hub_doc = make_data_json(80, seed=seed), make_data_json(60, seed=seed + 1, services_url=services.url)
        kinds = [
            Kind("soc", "socrata", make_socrata_entries(330, domain=DOMAIN, seed=seed), _set(("resource", "name")),
                 lambda entries: setattr(soc, "entries", entries)),
            Kind("ck", "ckan", ckan_pool(1_130), _set(("title",)), lambda entries: setattr(ckan, "packages", entries)),
            Kind("dj", "dcat-us", dj_doc["dataset"], _set(("title",)), data_json(dj, dj_doc)),
            Kind("hub", "arcgis-hub", hub_doc["dataset"], _set(("title",)), data_json(hub, hub_doc)),
            Kind("ods", "opendatasoft", make_ods_datasets(330, seed=seed), _set(("metas", "default", "title")),
                 lambda entries: setattr(ods, "datasets", entries)),
            Kind("o311", "open311", services_pool(40), _set(("service_name",)),
                 lambda entries: setattr(o311, "services", entries)),
        ]
        first = {"soc": 230, "ck": 1_020, "dj": 50, "hub": 35, "ods": 230, "o311": 12}
        urls = {"soc": soc.url, "ck": ckan.url, "dj": dj.url + "/data.json", "hub": hub.url, "ods": ods.url,
                "o311": o311.url}
        def configs(timeout: float) -> list:
            return [portal_config(k.name, k.kind, urls[k.name], timeout=timeout,
                                  **({"domain": DOMAIN} if k.kind == "socrata" else {})) for k in kinds]
        for night in range(nights + 1):   # the last night fault-free: it must catch up with everything
            for kind in kinds:
                if night == 0:
                    kind.change(rng, first[kind.name], 0, 0)
                else:
                    kind.change(rng, rng.choice((0, 0, 1, 3, 12)), rng.choice((0, 1, 4, 30)), rng.choice((0, 0, 1, 5)))
                kind.serve(kind.entries())
            for name, portal_chaos in chaos.items():
                portal_chaos.new_night(night, 0.0 if night in (0, nights) else rng.choice(FAULT_RATES))
            before = {k.name: snapshot(store, k.name) for k in kinds}
            previous_titles = {k.name: {t for (t,) in store.con.execute(
                "SELECT title FROM datasets WHERE portal_id = ?", [k.name]).fetchall()} for k in kinds}
            deleted_before = {k.name: set(stored_keys(store, k.name, deleted=True)) for k in kinds if k.kind != "open311"}
            timeout = FAULT_FREE_TIMEOUT if night in (0, nights) else TIMEOUT
            run = bounded_night(lambda: harvest(configs(timeout), store, chaos_client(tmp_path, timeout=timeout),
                                                workers=3), night, nights)
            statuses = check_night(store, run, kinds, before, deleted_before, previous_titles)
            outcomes.update("failed" if s != "ok" else "partial" if complete is False else "ok"
                            for s, complete in statuses.values())
        # after the chaos, the catalogue is the one a first harvest of what the portals now serve stores
        reference = Store(tmp_path / f"reference-{seed}.duckdb")
        assert harvest(configs(FAULT_FREE_TIMEOUT), reference, fast_client(), workers=3).ok
        for kind in kinds:
            assert live_content(store, kind.name) == live_content(reference, kind.name), kind.name
        reference.close()
    store.close()
    check_export(db, tmp_path, kinds)
    faults = Counter()
    for c in chaos.values():
        faults.update(c.injected)
    return {"nights": nights + 1, "nights_with_faults": nights - 1, "outcomes": outcomes, "faults": faults}


def seeds() -> list[int]:
    """CIVICAT_CHAOS_SEEDS: `A-B` or a comma list (a long local run); CI runs two."""
    text = os.environ.get("CIVICAT_CHAOS_SEEDS", "").strip()
    if not text:
        return [1, 2]
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


@pytest.mark.parametrize("seed", seeds())
def test_chaos_nights_lose_nothing_and_never_hang(tmp_path, seed):
    exercised = chaos_nights(seed, int(os.environ.get("CIVICAT_CHAOS_NIGHTS", "6")), tmp_path)
    print(f"seed {seed}: {json.dumps(exercised)}")
    assert sum(exercised["faults"].values()) > 0
