"""The harvest, end to end: config → adapter (list → fetch → map) → validate → stage →
one transaction per portal. A failing portal leaves its stored catalogue untouched; a
failing record or dataset is stored in `harvest_errors` and the rest goes on.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from catalog import events, uncut
from catalog.disk import disk_full
from catalog.lazy import pandas_kept_out
from catalog.links import redacted, secret_links
from catalog.record import DATED_AHEAD_SLACK, days_after, format_timestamp
from catalog.store import MergeOutcomeUnknown, Store, StoppedAfterStoring, bound_the_c_heap, page_identity
from catalog.transactions import rollback
from harvester.config import PortalConfig
from harvester.http import HttpClient, OverBudget, error_type
from harvester.mapping import (LOOKUP_ASKED_AGAIN_DAYS, SETTLED_LOOKUP_FAILURES, Mapper, WorkerPool, mapping_namespace,
                               relaxed_gc, secret_in_link)
from harvester.paging import RAISE_THE_CAP
from harvester.portals import adapter_for, say_once_a_run
from harvester.records import harvest_records, server_began
from harvester.stopping import cancelled_on_stop, stopped_by

log = logging.getLogger("civicat.harvest")

Progress = Callable[[str, int, int | None], None]   # (portal id, entries done, total if known)


@dataclass
class PortalReport:
    portal_id: str
    status: str = "running"
    seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: int = 0
    warnings: int = 0
    duplicates: int = 0
    listing_complete: bool | None = None
    seconds: float = 0.0
    requests: int = 0
    retries: int = 0
    not_modified: int = 0
    bytes: int = 0
    records_pulled: int = 0
    records_failed: int = 0
    record_rows: int = 0
    error_type: str | None = None
    error_message: str | None = None
    # the portal's live datasets that publish a secret (a key in a link: warn_secrets_published), and the
    # uids of the first SECRETS_NAMED of them; in the run's report, not in harvest_runs (REPORT_ONLY)
    secrets_published: int = 0
    secrets_named: list[str] = field(default_factory=list)

    def stored(self) -> dict:
        """What harvest_runs keeps of the report (its columns)."""
        return {key: value for key, value in asdict(self).items() if key not in REPORT_ONLY}


REPORT_ONLY = ("secrets_published", "secrets_named")


@dataclass
class RunReport:
    run_id: str
    started_at: datetime
    portals: list[PortalReport] = field(default_factory=list)
    # portals of the catalogue that the config no longer names: their live datasets
    not_in_config: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(p.status == "ok" for p in self.portals)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "started_at": self.started_at.isoformat(), "ok": self.ok,
                "portals": [asdict(p) for p in self.portals],
                "not_in_config": [{"portal_id": portal_id, "live_datasets": live}
                                  for portal_id, live in self.not_in_config.items()]}


def portals_not_in_config(con, config_ids: list[str]) -> dict[str, int]:
    """The portals whose datasets the catalogue keeps live though the config names them no
    more, with how many: nothing removes them (another config, or --portal, must not drop a
    portal), so they stay in search, overlap and exports until `civicat retire`."""
    return dict(con.execute("""SELECT portal_id, count(*) FROM datasets
                               WHERE deleted_at IS NULL AND NOT list_contains(?, portal_id)
                               GROUP BY portal_id ORDER BY portal_id""", [config_ids]).fetchall())


RETIREMENT = "-retire-"   # in a retirement's run id: `civicat retire` run twice says the portal is retired already


def is_retirement(run_id: str) -> bool:
    """Whether the harvest run `run_id` was a portal's retirement (`retire_portal`'s run)."""
    return RETIREMENT in run_id


def retire_portal(store: Store, portal_id: str, now: datetime) -> tuple[str, PortalReport]:
    """`civicat retire`: a portal gone for good leaves the catalogue as a listing that no longer
    holds its datasets would take them out: each marked `deleted_at`, its history kept, and
    the run recorded (harvest_runs: `removed`). Its listing's memory (listing_pages,
    portal_listings) goes, so that a portal put back in the config is listed afresh. The
    search index follows; the overlap groups at the next `civicat overlap`."""
    run_id = f"{now:%Y%m%dT%H%M%SZ}{RETIREMENT}{uuid.uuid4().hex[:8]}"
    report = PortalReport(portal_id)
    store.start_run(run_id, portal_id, now)
    store.con.execute("BEGIN TRANSACTION")
    try:
        report.removed = store.con.execute("UPDATE datasets SET deleted_at = ? WHERE portal_id = ? AND deleted_at IS NULL",
                                           [now, portal_id]).fetchone()[0]
        events.record_retired(store.con, run_id, portal_id, now)
        for table in ("listing_pages", "portal_listings"):
            store.con.execute(f"DELETE FROM {table} WHERE portal_id = ?", [portal_id])
        store.con.execute("COMMIT")
        report.status = "ok"
    except BaseException as exc:
        rollback(store.con)
        exc = disk_full(exc, store.db_path) or exc
        report.status, report.error_type, report.error_message = "failed", error_type(exc), str(exc)
        raise
    finally:
        store.finish_run(run_id, portal_id, {**report.stored(), "finished_at": datetime.now(UTC)})
    store.refresh_search()
    return run_id, report


def interrupted_message(step: str) -> str:
    """Why a portal the harvest was stopped in failed (Ctrl-C or SIGTERM: harvester.stopping)."""
    if step == "records":
        return (f"the harvest was interrupted ({stopped_by()}) while it pulled records: the catalogue was stored, "
                "the records keep their previous Parquet (the pull resumes next time)")
    return f"the harvest was interrupted ({stopped_by()}) before this portal was stored; its previous catalogue is kept"


def unknown_if_stored_message(why: str) -> str:
    """What a portal stopped as it was stored says when the catalogue could not tell whether its
    merge committed (Store.merged_in_run): neither stored nor kept, which either may be false."""
    return (f"stored or not, unknown: the harvest was interrupted ({stopped_by()}) while this portal was being "
            f"stored, and whether its merge committed could not be read ({why}); either way the portal is as one "
            "transaction left it, and the next harvest brings it up to date")


def stored_then_stopped_message(left: str) -> str:
    """What a portal stored before the harvest was stopped in the upkeep after its merge says."""
    return f"stored; the harvest was interrupted ({stopped_by()}) just after: {left}"


class HarvestInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the harvest: `run` holds the report of every portal it had started
    (those stored before it, and those it stopped, failed with error type Interrupted)."""

    def __init__(self, run: RunReport):
        super().__init__(interrupted_message("list"))
        self.run = run


class ErrorLog:
    """harvest_errors rows of one portal in one run, written in batches."""

    def __init__(self, store: Store, run_id: str, portal_id: str, report: PortalReport):
        self.store, self.run_id, self.portal_id, self.report = store, run_id, portal_id, report
        self.rows: list[dict] = []

    def add(self, source_id: str | None, stage: str, error_type: str, message: str, severity: str = "error") -> None:
        if severity == "error":
            self.report.errors += 1
        else:
            self.report.warnings += 1
        self.rows.append({"run_id": self.run_id, "portal_id": self.portal_id, "source_id": source_id,
                          "stage": stage, "error_type": error_type, "severity": severity,
                          "message": message[:4000], "occurred_at": datetime.now(UTC)})
        if len(self.rows) >= 5000:
            self.flush()

    def flush(self) -> None:
        self.store.add_errors(self.rows)
        self.rows = []


def record_keys_held_back(client: HttpClient, errors: ErrorLog, stage: str) -> None:
    """A warning (KeyHeldBack) for each host whose key the portal's requests held back since the last
    call (plain http to another machine: HttpClient.send_key): said in the log alone until session 43,
    where a nightly run's user never looked, its secured layers answered as to anyone."""
    for said in client.keys_held_back_said():
        errors.add(None, stage, "KeyHeldBack", said, severity="warning")


@pandas_kept_out()   # (~42 MB the harvest's process never needs)
def harvest(portals: list[PortalConfig], store: Store, http: HttpClient, *,
            on_progress: Progress | None = None, full: bool = False, records: bool = False,
            pool: WorkerPool | None = None, workers: int = 1) -> RunReport:
    """Harvest `portals`, `workers` of them at a time. `full`: every dataset is re-mapped
    and those whose mapped record changed are rewritten, as after a change of civicat's
    mapping (pair it with a client without a validator cache), and records are pulled whole.
    `records`: then pull the records of each portal's chosen datasets (config `records`).

    Portals harvested together fetch and map side by side; their writes to the catalogue
    are serialised by the store (one DuckDB writer), each portal merged in its own
    transaction. Each gets a share of the mapping processes, so their number stays that of
    the cores; per-host request limits are shared by the whole run.

    Ctrl-C (KeyboardInterrupt, in the main thread) stops every portal at its next request:
    none is stored after it, the portals not started are not, and HarvestInterrupted is
    raised with the run's report; the search index is refreshed by the next harvest."""
    run = RunReport(run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}", started_at=datetime.now(UTC))
    say_once_a_run(portals)   # (what the portals' kinds say once a run: an app token unset)
    bound_the_c_heap()   # (before the portal threads start)
    shared = pool or WorkerPool()

    def one(portal: PortalConfig, portal_pool: WorkerPool) -> PortalReport:
        return harvest_portal(portal, store, http, run.run_id, on_progress, full=full, records=records,
                              pool=portal_pool)

    free = threading.Semaphore(shared.workers)   # mapping processes, one fewer than the cores in all

    def alone(portal: PortalConfig) -> PortalReport:
        share = max(1, shared.workers // workers) if shared.workers else 0
        taken = sum(free.acquire(blocking=False) for _ in range(share))   # none free: maps in-process
        portal_pool = WorkerPool(taken)
        try:
            return one(portal, portal_pool)
        finally:
            portal_pool.close()
            for _ in range(taken):
                free.release()

    previous_handler = _cancel_on_ctrl_c(http, store)
    try:
        # (relaxed_gc: process-wide, so around every portal thread; what each portal reads first, read at once;
        # the store's waits too: a portal thread's wait for the catalogue's file, see Store._reattach)
        with cancelled_on_stop(http.cancel), cancelled_on_stop(store.stop_waiting), relaxed_gc(), \
                store.remembered([p.id for p in portals]):
            if workers <= 1 or len(portals) <= 1:
                for portal in portals:
                    if http.cancelled:   # Ctrl-C in the portal before
                        break
                    run.portals.append(one(portal, shared))
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix="portal") as threads:
                    futures = [threads.submit(alone, portal) for portal in portals]
                    try:
                        wait(futures)
                    except KeyboardInterrupt:   # (only the main thread gets it): the portal threads stop
                        http.cancel()
                        for future in futures:
                            future.cancel()
                    run.portals.extend(future.result() for future in futures   # in config order
                                       if not future.cancelled())
        if http.cancelled:
            raise HarvestInterrupted(run)
        try:
            store.refresh_search()
            store.reclaim_datasets()   # (after the search build: its count reads the deletes of every row group, then held)
        except KeyboardInterrupt:   # (every portal stored; the next harvest builds the index)
            raise HarvestInterrupted(run) from None
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        if pool is None:  # the caller's pool stays the caller's
            shared.close()
        if http.cache is not None:
            http.cache.flush()  # the validators of this run, on disk for the next
    return run


def _cancel_on_ctrl_c(http: HttpClient, store: Store):
    """Ctrl-C cancels the run's requests, and ends a portal thread's wait for the catalogue's
    file (Store.stop_waiting), before KeyboardInterrupt unwinds the main thread: the main
    thread waits on a page read ahead in another thread, and unwinding joins that thread,
    which would otherwise go on with its retries and Retry-After waits (minutes) before the
    portal's handler could cancel them. Where Python's own handler would stop it (a harvest
    run from Python); the command's (harvester.stopping, SIGTERM too) cancels through
    cancelled_on_stop. Returns the handler it replaced (None: not replaced)."""
    if threading.current_thread() is not threading.main_thread() or \
            not uncut.pythons_own(signal.getsignal(signal.SIGINT)):
        return None

    def on_sigint(signum, frame):
        http.cancel()
        store.stop_waiting()
        uncut.raise_or_hold(KeyboardInterrupt())   # (as Python's would, but never inside a DuckDB statement)

    return signal.signal(signal.SIGINT, on_sigint)


def _stored_then_stopped(report: PortalReport, errors: ErrorLog, counts: dict[str, int], left: str) -> None:
    """A portal whose merge committed before a stop that its COMMIT's return did not note (the stop
    came just after it): reported stored, as a StoppedAfterStoring would have it."""
    for key, value in counts.items():
        setattr(report, key, value)
    report.status, report.error_type = "ok", None
    report.error_message = stored_then_stopped_message(left)
    errors.add(None, "store", "Interrupted", report.error_message, severity="warning")
    log.warning("%s: %s", report.portal_id, report.error_message)


def _listed_over_the_cap(entry, reason: str, adapter, portal: PortalConfig, stage, mapper: Mapper,
                        errors: ErrorLog) -> None:
    """An entry listed by its id only, over the response cap alone (Page.ids_only, `reason`
    its page's): it is listed, so neither missing nor deleted, and the catalogue keeps its
    stored version; an error names it, and says when it was never stored."""
    source_id = adapter.source_id(entry)   # (an entry without one is not handed out: Listing.skipped)
    stage.mark_seen(f"{portal.id}:{source_id}")
    stored = f"{portal.id}:{source_id}" in mapper.known
    if stored:
        mapper.unchanged += 1
    errors.add(source_id, "list", "ResponseTooLarge",
               f"{portal.id}: {reason}: listed by its id only, "
               f"{'its stored version kept' if stored else 'never stored'} ({RAISE_THE_CAP})")


# datasets dated ahead named one by one in a portal's night; any more are counted in one warning (a
# portal dating its whole catalogue ahead, a year's typo in its template, would add a row a dataset a night)
FUTURE_MODIFIED_NAMED = 100


def warn_future_modified(store: Store, portal_id: str, began: datetime, errors: "ErrorLog",
                         server_ahead: timedelta | None = None) -> None:
    """A warning (FutureModified) for each of the portal's stored datasets whose `modified` is more
    than a day after the harvest began, on every night it is, mapped that night or not. The value is
    kept as the portal gives it: a date of a change planned (Stadt Zürich's dateLastUpdated
    "01.10.2026", recorded on 7 August 2026) and a typo look alike, and a dataset is mapped again only
    when its entry changes (one stored null would stay null once its day had come). Until session 37
    the mapping warned, so only on the night its entry was mapped: an unchanged dataset dated ahead
    went unsaid every night after. "Began" is by the portal's clock, which dates its datasets, where
    it is `server_ahead` of ours and believed (its answers' Date header: records.server_began, as a
    records pull judges its rows): by ours, a portal 3 days ahead had each dataset it changed warned
    of, nightly, for 2 days."""
    began, by_clock, _ = server_began(began, server_ahead)   # (a clock not believed: ours, as the records say)
    after = began + DATED_AHEAD_SLACK
    count, named = store.modified_after(portal_id, after, FUTURE_MODIFIED_NAMED)
    for source_id, modified in named:
        errors.add(source_id, "store", "FutureModified", future_modified(modified, after, by_clock),
                   severity="warning")
    if (more := count - len(named)) > 0:
        listed = f"`modified > '{format_timestamp(after)}'`" if by_clock else "`modified > now() + INTERVAL 1 DAY`"
        errors.add(None, "store", "FutureModified",
                   f"{more} more dataset{'s have' if more != 1 else ' has'} a modified more than a day after this "
                   f"harvest began{by_clock} (the {len(named)} latest are named; {listed} in the datasets table lists "
                   "them all)", severity="warning")


# datasets publishing a secret named by uid in a portal's report (the rest counted)
SECRETS_NAMED = 100


def warn_secrets_published(store: Store, portal_id: str, errors: "ErrorLog", report: PortalReport) -> None:
    """Every night, in the portal's report (secrets_published, secrets_named), its live datasets whose
    links an export publishes hold a secret (a key in a link, in a description's; catalog.links), mapped
    that night or not; and a SecretInLink warning, once, for each of them never warned of. The mapping
    warns as it stores a version, so a dataset stored before civicat knew the secret (session 41's rule,
    42's identifiers and texts) went unsaid until its portal changed it or `--full`, though its export
    redacted it at once: now warned of by the first harvest that sees it, and counted in every report
    after, with no row a night for the same thing."""
    found = [(record["uid"], record["source_id"], links) for record in store.maybe_publishing_secrets(portal_id)
             if (links := secret_links(record))]   # (in uid order)
    report.secrets_published = len(found)
    # (named as the exports name them: a source id may hold the secret itself, a data.json's identifier; two
    # that redact alike numbered `#2`, where both were named alike until session 43)
    exported = store.exported_uids() if found else {}
    report.secrets_named = [exported.get(uid, f"{portal_id}:{redacted(source_id)}")
                            for uid, source_id, _ in found[:SECRETS_NAMED]]
    warned = store.warned_of(portal_id, "SecretInLink", [source_id for _, source_id, _ in found])
    warned |= {row["source_id"] for row in errors.rows if row["error_type"] == "SecretInLink"}   # (tonight's, unwritten)
    for _, source_id, links in found:
        if source_id not in warned:
            for field_name, secrets in links:
                errors.add(source_id, "store", "SecretInLink", secret_in_link(field_name, secrets), severity="warning")


def future_modified(modified: datetime, after: datetime, by_clock: str = "") -> str:
    """The warning of a `modified` past the harvest's clock (`after`: its start and a day; `by_clock`:
    the words naming the portal's clock it was judged by, server_began's)."""
    return (f"modified: {format_timestamp(modified)} is {days_after(modified, after - DATED_AHEAD_SLACK)} after this "
            f"harvest began{by_clock} (a change planned, or a typo); stored as the portal gives it")


def run_began() -> datetime:
    """When a portal's run begins: its harvest_runs.started_at, the night its kept lookups are
    asked by (harvester.mapping.lookup_due)."""
    return datetime.now(UTC)


def harvest_portal(portal: PortalConfig, store: Store, http: HttpClient, run_id: str,
                   on_progress: Progress | None = None, *, full: bool = False, records: bool = False,
                   pool: WorkerPool | None = None) -> PortalReport:
    report = PortalReport(portal.id)
    errors = ErrorLog(store, run_id, portal.id, report)
    client = http.for_portal(portal)
    client.limit_to(portal.max_minutes)   # the catalogue's harvest; a records pull has its own (records_max_minutes)
    started = time.monotonic()
    stage = mapper = None
    step = "list"
    log.info("%s: harvest started (%s, %s)", portal.id, portal.kind, portal.url)
    try:
        began = run_began()
        store.start_run(run_id, portal.id, began)
        store.prune_raw(portal.id, unless_after=run_id)  # what a run that failed and could not clean up left
        stage = store.new_stage(portal.id)
        adapter = adapter_for(portal, client)
        # unchanged entries are recognised by their raw hash (or their page's) before mapping;
        # --full rewrites all
        mapper = Mapper(adapter, portal, stage, errors.add, pool, known=lambda: store.raw_hashes(portal.id), rewrite=full,
                        settled_pages=set() if full else store.settled_pages(portal.id),
                        stored_details=store.stored_details,
                        failed_lookups=None if full or not adapter.looked_up else lambda: store.failed_lookups(
                            portal.id, datetime.now(UTC) - timedelta(days=LOOKUP_ASKED_AGAIN_DAYS),
                            SETTLED_LOOKUP_FAILURES),
                        # (the lookups kept while their entries are as stored: asked on their day)
                        lookups_since=None if full or not adapter.lookup_kept_days
                        else lambda: store.lookups_kept_since(portal.id),
                        refused_lookups=lambda: store.refused_lookups(portal.id, SETTLED_LOOKUP_FAILURES),
                        # (a known page's entries whose kept lookups are due: from their stored versions)
                        page_lookups=lambda key, ref: store.page_lookups(portal.id, page_identity(key, ref)),
                        stored_entries=store.stored_entries, now=began)
        listing = adapter.listing()
        if not full:  # last night's pages: asked along their chain, and those answered the same, not read
            listing.remember(mapper.known_pages(store.known_pages(portal.id, mapping_namespace(adapter))),
                             ahead=portal.max_concurrency, speculative=client.speculative,
                             overlap=lambda ids, pages: store.listed_on(
                                 portal.id, [page_identity(mapper.page_key(p.digest), p.ref) for p in pages], ids))
        for page in listing.read():
            if page.known is not None:
                mapper.add_known(page.known)
                report.seen += page.known.size
            elif page.ids_only:
                for entry in page.items:
                    _listed_over_the_cap(entry, page.reason, adapter, portal, stage, mapper, errors)
                report.seen += len(page.items)
            else:
                for entry in page.items:
                    mapper.add(entry, page.digest)
                if listing.pages == 1 and not report.seen:   # (once: a large data.json's comes in batches)
                    mapper.expect(listing.total)
                report.seen += len(page.items)
            if on_progress:
                on_progress(portal.id, report.seen, listing.total)
        mapper.finish()
        record_keys_held_back(client, errors, "fetch")   # (another host's requests here: its datasets' lookups)
        report.seen = listing.unique   # (less an id found at the end on a page read and on one unread)
        report.duplicates = len(listing.duplicates)
        for source_id in sorted(set(listing.duplicates)):
            errors.add(source_id, "list", "DuplicateId", "listed more than once in one listing; kept once",
                       severity="warning")
        for reason in listing.skipped:   # (their datasets, stored or not, are left as they are)
            log.warning("%s: %s", portal.id, reason)
            errors.add(None, "list", "ResponseTooLarge", f"{portal.id}: {reason}")
        if cost := listing.answers.cost():   # what the cap cost, so that a user may raise it
            errors.add(None, "list", "SmallerPages", f"{portal.id}: {cost}", severity="warning")
        report.listing_complete = listing.complete
        if not listing.complete:
            skipped = f", {len(listing.skipped)} skipped (over the response cap)" if listing.skipped else ""
            errors.add(None, "list", "PartialListing",
                       f"listing gave {listing.unique} unique entries of the {listing.total} it reported{skipped}"
                       f"{' (the total changed while it was read)' if listing.total_changed else ''}; "
                       "no dataset is marked deleted this run", severity="warning")
        elif listing.unique == 0 and store.active_count(portal.id) > 0:
            # an empty answer from a portal that had datasets is a search index being
            # rebuilt far more often than a city deleting its whole catalogue
            report.listing_complete = False
            errors.add(None, "list", "EmptyListing", "the portal listed no datasets; the "
                       f"{store.active_count(portal.id)} stored ones are kept, none marked deleted", severity="warning")
        step = "store"
        try:
            counts = store.commit_portal(stage, portal.id, datetime.now(UTC), mark_deleted=report.listing_complete,
                                         rewrite=full, grace=timedelta(days=portal.deletion_grace_days), run_id=run_id,
                                         restamped=mapper.restamped,
                                         # an id listed twice: which copy was stored depends on the order
                                         pages=[] if listing.duplicates else mapper.page_rows(listing.pages_read))
        except StoppedAfterStoring as stop:   # stored: the run says so, and the harvest stops all the same
            http.cancel()
            counts, records = stop.counts, False
            report.error_message = stored_then_stopped_message(stop.left)
            errors.add(None, "store", "Interrupted", report.error_message, severity="warning")
        else:
            try:
                warn_future_modified(store, portal.id, began, errors, client.server_clock(portal.url))
            except Exception as exc:   # (the portal is stored: a warning's query must not fail it)
                log.warning("%s: datasets dated ahead not looked for: %s", portal.id, exc)
            try:
                warn_secrets_published(store, portal.id, errors, report)
            except Exception as exc:   # (as above)
                log.warning("%s: secrets in published links not looked for: %s", portal.id, exc)
        for key, value in counts.items():
            setattr(report, key, value)
        report.unchanged += mapper.unchanged   # recognised before mapping, never staged
        if records:  # a dataset's failed pull is an error of that dataset, not of the portal
            step = "records"
            client.limit_to(None)
            harvest_records(adapter, store, run_id, errors, report, full=full)
        report.status = "ok"
        log.info("%s: ok: %d seen, %d new, %d changed, %d unchanged, %d removed, %d errors", portal.id,
                 report.seen, report.new, report.changed, report.unchanged, report.removed, report.errors)
    except (Exception, KeyboardInterrupt) as exc:  # the portal fails; what earlier runs stored is untouched
        # Ctrl-C here, or Interrupted from a request; not the portal's own time budget, which ends it alone.
        # (Ctrl-C in a DuckDB query is DuckDB's "Query interrupted" error: the requests were cancelled.)
        interrupted = (isinstance(exc, KeyboardInterrupt) and not isinstance(exc, OverBudget)) or http.cancelled
        if interrupted:
            http.cancel()   # (in the main thread: the requests of the threads listing ahead stop too)
        # a stop just after the merge's COMMIT returned, before civicat noted it: what the catalogue holds says
        unknown = None
        try:
            stored = store.merged_in_run(run_id, portal.id) if interrupted and step == "store" else None
        except MergeOutcomeUnknown as why:
            stored, unknown = None, why
        if stored is not None:
            _stored_then_stopped(report, errors, {**stored, "unchanged": stored["unchanged"] + mapper.unchanged},
                                 store.left_by_stop([]))
            return report   # (its run recorded by the finally below)
        report.status = "failed"
        try:
            if mapper is not None:
                mapper.abandon()        # first: no part may be written, no raw part loaded, after the prune
            if stage is not None:
                Store.discard(stage)
            store.prune_raw(portal.id)  # raw versions this run wrote, that no dataset points at
        except Exception as prune_error:  # the failure above may be the database itself
            log.error("%s: could not prune raw records: %s", portal.id, prune_error)
        finally:
            # (which file, which file system, how much free: measured once the staging is discarded, the
            # room the user will find)
            exc = disk_full(exc, store.db_path) or exc
            report.error_type = "Interrupted" if interrupted else error_type(exc)
            report.error_message = (unknown_if_stored_message(str(unknown)) if unknown is not None else
                                    interrupted_message(step) if interrupted else str(exc))
            errors.add(None, step, report.error_type, report.error_message)
            log.error("%s: harvest failed: %s", portal.id, str(exc) or report.error_message)
    finally:
        if stage is not None:
            Store.discard(stage)
        record_keys_held_back(client, errors, step)
        errors.flush()
        report.seconds = round(time.monotonic() - started, 3)
        for key, value in client.stats.snapshot().items():
            setattr(report, key, value)
        if on_progress:
            on_progress(portal.id, report.seen, report.seen)
        store.finish_run(run_id, portal.id, {**report.stored(), "finished_at": datetime.now(UTC)})
    return report
