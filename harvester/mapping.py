"""Map listed entries to validated, staged records, a batch at a time.

The harvest itself lists entries and fetches their details (the requests); mapping,
validation, hashing and writing the Parquet parts are pure CPU work on the entries, so a
large portal's batches go to worker processes, using every core while the next pages
are fetched. Entries cross to a worker as compact JSON, which is also the raw record
stored (keys in the portal's order), so nothing is serialised twice. Small portals are mapped in-process: they
never pay for starting workers.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from catalog.links import REDACTED, is_text, secret_links
from catalog.record import Notes, RecordRejected, validate
from catalog.stage import (RecordBatch, Stage, canonical_json_bytes, compact_json_bytes, content_hash,
                           import_arrow_without_numpy)
from harvester.config import PortalConfig
from harvester.http import HttpError, dropped
from harvester.paging import KnownPage, PageRead
from harvester.portals import adapter_for
from harvester.portals.base import PortalAdapter

log = logging.getLogger("civicat.harvest")

BATCH = 1000            # entries per part
# entries whose detail lookup failed, asked for their stored versions' details at once: each
# ask reads every stored details document of the portal (they are compressed together and a
# batch's uids are spread over all of them), so 50,000 failed lookups in asks of 1,000 read
# the portal's details 50 times (about 12 s). The entries wait as their JSON (held_entry:
# 5,000 of Socrata's 2.5 KB entries take 13 MB so, 53 MB parsed), an ask's stored details then
# held with them
LOOKUPS_FAILED_BATCH = 5 * BATCH
POOL_AFTER = 3 * BATCH  # entries a portal must have listed before its batches go to workers
# a detail lookup that answered one of these is settled until its entry changes: the address does
# not exist (404, 410), the portal answers an error of its own (an ArcGIS layer that cannot be
# read) or an answer that is no layer (a JSON list: UnexpectedResult), the entry's link is no URL.
# Its dataset, left without what the lookup gives (one keeping
# what an earlier lookup gave is asked every night), has details recording it (`lookup_failed`);
# while its entry is listed as stored, it is not asked, nor reported, again for
# LOOKUP_ASKED_AGAIN_DAYS after the night it was (a portal may mend a DataStore or a layer without
# touching the entry that names it: a week bounds how long that goes unseen); a changed entry and
# `harvest --full` ask at once. Faults of the moment (5xx, timeouts, a host down) are asked every night.
SETTLED_LOOKUP_FAILURES = ("NotFound", "PortalError", "UnexpectedResult", "InvalidUrl")
LOOKUP_ASKED_AGAIN_DAYS = 7


def lookup_due(uid: str, since: datetime | None, now: datetime, days: int) -> bool:
    """Whether a stored dataset's details lookup, kept while its entry is listed as stored
    (PortalAdapter.lookup_kept_days), is asked in a run that began at `now`, the portal's last
    run that listed it whole having begun at `since` (None: none did). Each uid has a day of its
    own in every `days` (UTC days, by a hash of the uid), so a nightly harvest asks a `days`-th of
    them each night, not all of them on one night; a lookup is due when its day came after
    `since`'s day and by `now`'s: on any schedule of runs, asked at least once in `days` days."""
    if since is None:
        return True
    first, last = since.astimezone(UTC).toordinal(), now.astimezone(UTC).toordinal()
    if last - first >= days:
        return True
    own = zlib.crc32(uid.encode("utf-8", "surrogatepass")) % days
    return any(day % days == own for day in range(first + 1, last + 1))

ErrorRow = tuple[str | None, str, str, str, str]   # source id, stage, error type, message, severity


def held_entry(entry: dict) -> dict | bytes:
    """An entry as it waits for a while: its compact JSON (a fifth of the parsed entry's
    memory) when that gives the very entry back, else the entry itself (one an adapter built,
    with dates, tuples or non-string keys, whose hash must not change). `entry_back` undoes it."""
    try:   # (copied: orjson's own bytes keep its larger buffer, 7.8 KB for a 2.5 KB entry)
        held = bytes(memoryview(orjson.dumps(entry)))
    except TypeError:
        return entry
    return held if orjson.loads(held) == entry else entry


def entry_back(held: dict | bytes) -> dict:
    return orjson.loads(held) if isinstance(held, bytes) else held


@dataclass
class Batch:
    portal: PortalConfig
    directory: str
    number: int
    entries: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # compact JSON: entry, details


@dataclass
class BatchResult:
    number: int
    staged: int
    errors: list[ErrorRow]
    longest: int


def map_batch(batch: Batch) -> BatchResult:
    """Map, validate and hash a batch, and write it as one stage part (runs in a worker)."""
    adapter = _adapter(batch.portal)
    rows, errors = RecordBatch(), []
    for entry_json, details_json in batch.entries:
        map_entry(adapter, batch.portal, entry_json, details_json, rows, errors)
    rows.write(Path(batch.directory), batch.number)
    return BatchResult(batch.number, len(rows), errors, rows.longest)


def map_entry(adapter: PortalAdapter, portal: PortalConfig, entry_json: bytes, details_json: bytes | None,
              rows: RecordBatch, errors: list[ErrorRow]) -> None:
    """One entry: a validated record added to `rows`, or the reason it was not, in `errors`."""
    entry = orjson.loads(entry_json)
    details = orjson.loads(details_json) if details_json is not None else None
    source_id = adapter.source_id(entry)
    notes = Notes()
    try:
        record = adapter.map(entry, details, notes)
        parent = record.pop("parent_uid", None)
        record.update(uid=f"{portal.id}:{source_id}", portal_id=portal.id, city=portal.city, portal_kind=portal.kind,
                      parent_uid=parent)
        validate(record, notes)
    except RecordRejected as exc:
        errors.append((source_id, "validate", "RecordRejected", str(exc), "error"))
        return
    except Exception as exc:  # a payload the mapping did not foresee must not stop the portal
        # (typed as what happened, not by Python's name for it: the message keeps that)
        errors.append((source_id, "map", "MappingFailed", f"mapping failed: {type(exc).__name__}: {exc}", "error"))
        return
    for field_name, message in notes.items:
        errors.append((source_id, "map", "InvalidValue", f"{field_name}: {message}", "warning"))
    for field_name, secrets in secret_links(record):
        errors.append((source_id, "map", "SecretInLink", secret_in_link(field_name, secrets), "warning"))
    # (the record is made: the entry and details are needed no more, the hash view may cut them)
    rows.add(record, entry_json, details_json, raw_hash(adapter, entry, details, True))


def secret_in_link(field_name: str, secrets: list[str]) -> str:
    """The SecretInLink warning of a field (catalog.links.secret_links) whose link, or a link in whose
    text, holds `secrets` (their names, never their values)."""
    holds = "a link in the text holds" if is_text(field_name) else "the link holds"
    return (f"{field_name}: {holds} a secret ({', '.join(secrets)}): kept in the catalogue as the portal published "
            f"it; exports give it as {REDACTED} (the portal's publisher should take it out and change the key)")


def raw_hash(adapter: PortalAdapter, entry: dict, details: dict | None, owned: bool = False) -> str:
    """The version of a dataset as the portal gave it, under this mapping (see hash_view);
    `owned`: the caller gives up `entry` and `details` (see hash_view).

    content_hash(mapping_namespace(adapter), view), in one call of sha256 (hot: once per entry)."""
    view = canonical_json_bytes(adapter.hash_view(entry, details, owned))
    return hashlib.sha256(_hash_prefix(mapping_namespace(adapter)) + view + b"\x00").hexdigest()


@functools.lru_cache(maxsize=64)
def _hash_prefix(namespace: str) -> bytes:
    return namespace.encode("utf-8", "surrogatepass") + b"\x00"   # as content_hash encodes its parts


def mapping_namespace(adapter: PortalAdapter) -> str:
    """What a stored version depends on besides the entry: civicat's mapping of the kind,
    and the portal settings a record is mapped with (its city; the URLs built from the
    portal's), so a city renamed or a portal moved re-maps each dataset once."""
    portal = adapter.portal
    return _namespace(adapter.kind, adapter.mapping_version, portal.city, portal.url, portal.domain or "")


@functools.lru_cache(maxsize=64)
def _namespace(kind: str, version: int, city: str, url: str, domain: str) -> str:
    return f"{kind}/{version}/{_settings_digest(city, url, domain)}"   # once per portal, not per entry


def _settings_digest(city: str, url: str, domain: str) -> str:
    return content_hash(city, url, domain)[:16]


def settings_digest(portal: PortalConfig) -> str:
    """The digest of the portal settings in a stored listing page's key (listing_pages.page_key:
    `kind/version/<this>:<page digest>`): whether the catalogue's datasets of a portal id were
    listed with this config entry (its city, url, domain), whatever the mapping's version."""
    return _settings_digest(portal.city, portal.url, portal.domain or "")


def kept_settings_digest(city: str, url: str, domain: str) -> str:
    """settings_digest of the settings a kind kept of its listing (PortalAdapter.settings_kept)."""
    return _settings_digest(city, url, domain)


def listed_settings(page_key: str) -> str:
    """The settings digest a stored listing page's key holds (see settings_digest)."""
    return page_key.partition(":")[0].rpartition("/")[2]


_adapters: dict[PortalConfig, PortalAdapter] = {}


def _adapter(portal: PortalConfig) -> PortalAdapter:
    """This process's adapter for mapping (it makes no requests, so it has no client)."""
    if portal not in _adapters:
        _adapters[portal] = adapter_for(portal, None)
    return _adapters[portal]


GC_THRESHOLDS = (100_000, 50, 100)


def _worker_started() -> None:
    # Ctrl-C reaches the whole process group, and so does cron's `timeout` (SIGTERM): the
    # harvest stops its portals and then its workers, which would otherwise die mid-batch,
    # each printing a traceback (and the harvest's mapping failing, not Interrupted)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # ...so a worker whose harvest was killed outright (SIGKILL, the OOM killer) would wait for
    # work for ever, which `kill` no longer ends: it leaves when its parent is gone
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()
    import_arrow_without_numpy()   # it writes the parts' Parquet
    # A batch's records live until its part is written and hold no reference cycles: the
    # cyclic collector, triggered every 700 allocations, would only re-scan them (7% of
    # the mapping time).
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _exit_with(parent) -> None:
    parent.join()   # (its sentinel: a pipe the parent's death closes)
    os._exit(1)


_relaxed = {"users": 0, "thresholds": None}
_relaxed_lock = threading.Lock()


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """The harvest's own process, the same way: parsed pages and entries are acyclic, and
    collecting every 700 allocations took a third of the time spent parsing and
    re-serialising them. What existed before is frozen (never re-scanned). The settings
    are the process's: harvests running side by side share them, and the last to end
    puts back what was there before the first."""
    with _relaxed_lock:
        if not _relaxed["users"]:
            _relaxed["thresholds"], _relaxed["frozen"] = gc.get_threshold(), gc.get_freeze_count()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
        _relaxed["users"] += 1
    try:
        yield
    finally:
        with _relaxed_lock:
            _relaxed["users"] -= 1
            if not _relaxed["users"]:
                gc.set_threshold(*_relaxed["thresholds"])
                if not _relaxed["frozen"]:  # a caller's own freeze stays
                    gc.unfreeze()


def workers_from_env() -> int:
    """`CIVICAT_MAP_WORKERS`, else one fewer than the cores. Anything but a whole number of at least 0
    is a ValueError naming it (the CLI asks before the harvest starts: a typo is bad usage, exit 2)."""
    text = os.environ.get("CIVICAT_MAP_WORKERS", "").strip()
    if not text:
        return max(0, (os.cpu_count() or 1) - 1)
    if not text.isdecimal():
        raise ValueError(f"environment variable CIVICAT_MAP_WORKERS={os.environ['CIVICAT_MAP_WORKERS']!r} must be "
                         f"a whole number of at least 0 (0: map in the harvest's own process)")
    return int(text)


class WorkerPool:
    """Worker processes shared by a run's portals, started on first use.

    `CIVICAT_MAP_WORKERS` sets their number (default: one fewer than the cores, as the
    harvest's own process maps a batch itself whenever they are all busy; 0 maps
    everything in the harvest's own process)."""

    def __init__(self, workers: int | None = None):
        self.workers = max(0, workers_from_env() if workers is None else workers)
        self._executor: ProcessPoolExecutor | None = None
        self.submitted = 0

    def start(self) -> None:
        """Start the workers now (spawned, they take ~0.5 s to import what they map with),
        rather than on the first batch."""
        self._executor_started().submit(int)

    def submit(self, batch: Batch) -> Future:
        future = self._executor_started().submit(map_batch, batch)
        self.submitted += 1
        return future

    def _executor_started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the harvest holds threads and a DuckDB connection
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_worker_started)
        return self._executor

    def broken(self, reason: BaseException) -> None:
        """A worker died (killed, out of memory, or a script that cannot be re-imported by
        spawn): map in-process from now on; the lost batches are mapped again by the caller."""
        log.warning("mapping worker processes failed (%s: %s); mapping in the harvest's process instead",
                    type(reason).__name__, reason)
        # the others are killed, not left to concurrent.futures' SIGTERM, which they ignore
        # (_worker_started): one mid-batch would block writing its answer, which nobody reads
        # now, and close() would wait on it for ever
        for process in list((getattr(self._executor, "_processes", None) or {}).values()):
            process.kill()
        self.close()
        self.workers = 0

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    @property
    def started(self) -> bool:
        return self._executor is not None


class Mapper:
    """The harvest's side of mapping one portal: checks each listed entry, fetches its
    details, and sends full batches to the workers (or maps them here), at most a few
    batches in flight, so memory stays bounded; results are collected as they are done,
    in any order."""

    def __init__(self, adapter: PortalAdapter, portal: PortalConfig, stage: Stage, on_error, pool: WorkerPool | None,
                 known: dict[str, str] | Callable[[], dict[str, str]] | None = None,
                 settled_pages: set[str] | frozenset[str] = frozenset(),
                 stored_details: Callable[[list[str]], dict[str, str | None]] | None = None,
                 failed_lookups: Callable[[], dict[str, str]] | None = None,
                 lookups_since: Callable[[], tuple[datetime | None, set[str]]] | None = None,
                 refused_lookups: Callable[[], set[str]] | None = None,
                 page_lookups: Callable[[str, str | None], list[str]] | None = None,
                 stored_entries: Callable[[list[str]], dict[str, str]] | None = None,
                 now: datetime | None = None, rewrite: bool = False):
        self.adapter, self.portal, self.stage, self.on_error = adapter, portal, stage, on_error
        # `harvest --full`: every entry is mapped and staged again, `known` read only to tell a
        # dataset restamped (_stage): its only difference civicat's own record of a refused lookup
        self.rewrite = rewrite
        # the kept lookups (adapter.lookup_kept_days): the start of the portal's last run that
        # listed it whole and the source ids whose lookups failed since (Store.lookups_kept_since,
        # asked on the first entry whose lookup may be kept), and this run's start; without them
        # every lookup is asked
        self._lookups_since, self._since_read, self.now = lookups_since, False, now
        # source ids whose stored details may record a lookup refused for good (Store.refused_lookups),
        # asked for on the first entry whose kept lookup is taken as stored (_kept_as_stored)
        self._refused_lookups = refused_lookups
        # the source ids of a known page whose lookups are kept (Store.page_lookups: by the page's
        # key and request), and uids -> the raw entries of their stored versions (Store.stored_entries):
        # a known page's entries whose lookups are due tonight, read in place of the page (add_known)
        self._page_lookups, self._stored_entries = page_lookups, stored_entries
        # uid -> the stored details of datasets whose stored version's lookup failed for good
        # within LOOKUP_ASKED_AGAIN_DAYS (Store.failed_lookups), asked for on the first entry
        # read: such an entry listed as stored is not looked up again
        self._failed_lookups = failed_lookups or {}
        # uids -> the details of their stored versions (Store.stored_details), for entries
        # whose lookup failed where the adapter keeps what it looked up before (`looked_up`);
        # such entries wait in `lookups_failed` to be asked for a batch at a time
        self.stored_details = stored_details
        # (held_entry; the error as its type and message: the exception's traceback would keep the
        # frames of the lookup alive, and the parsed entry in them)
        self.lookups_failed: list[tuple[dict | bytes, str, str | None, str, str]] = []
        # stored entries whose lookups are not due (_lookup_may_be_kept), with their page digest and
        # stored hash: whether each is as stored is asked of their stored details a batch at a time
        self.lookups_kept: list[tuple[dict | bytes, str, str | None, str]] = []
        # uid -> raw hash of the stored datasets: an entry that hashes the same is unchanged,
        # so it is neither mapped nor staged (the listing still counts it as seen). A
        # callable is asked on the first entry read: a night whose pages are all known
        # unread never loads them.
        self._known = known or {}
        # listing pages (page_key) whose every entry the catalogue holds as it is on the page:
        # their known entries are unchanged without hashing them (most of an unchanged night)
        self.settled_pages = settled_pages
        # digests of this listing's pages that hold an entry not stored as it is on the page
        # (rejected, or kept at its stored version): they must not be settled
        self.unsettled: set[str] = set()
        # digests of this listing's pages holding an entry that needed a details lookup: such
        # a page is read every night (the lookups may have changed), never known unread
        self.detailed: set[str] = set()
        # page digest -> the source ids on it whose lookups are kept while their entries are as
        # stored (adapter.lookup_kept_days): such a page is kept with its ids and these, and not
        # read when it comes back the same; its entries due a lookup are read from the catalogue
        self.lookups: dict[str, list[str]] = {}
        self._batch_pages: dict[str, str] = {}   # source id -> page digest, of the batch being filled
        self.unchanged = 0
        # uids staged whose stored version differs from the listed one only in not recording a
        # lookup refused for good (stored before session 27): written, but not changed (_stage)
        self.restamped: set[str] = set()
        self.pool = pool if pool is not None and pool.workers > 0 else None
        self.max_in_flight = 2 * (self.pool.workers if self.pool else 1)
        self.batch = self._new_batch()
        self.in_flight: deque[tuple[Batch, Future, dict[str, str]]] = deque()
        self.listed = 0
        self.pool_after = POOL_AFTER

    def _new_batch(self) -> Batch:
        return Batch(self.portal, str(self.stage.directory), -1)

    @property
    def known(self) -> dict[str, str]:
        if callable(self._known):
            self._known = self._known()
        return self._known

    @property
    def failed_lookups(self) -> dict[str, str]:
        if callable(self._failed_lookups):
            self._failed_lookups = self._failed_lookups()
        return self._failed_lookups

    def expect(self, total: int | None) -> None:
        """The size the listing reports, once its first page is read: when every entry of
        that page was to be mapped (a portal harvested afresh) and the portal is large
        enough for the workers, they start now, their start overlapping the first pages,
        not once 3,000 entries are listed. A night that finds entries unchanged keeps the
        rule: it may have only a few to map."""
        if self.pool is not None and self.pool.workers > 0 and total and total > self.pool_after and self.listed \
                and not self.unchanged:
            self.pool_after = 0
            try:
                self.pool.start()
            except BrokenProcessPool as exc:
                self.pool.broken(exc)

    def page_key(self, digest: str) -> str:
        """A listing page as stored in the catalogue: its body's digest, under this mapping."""
        return f"{mapping_namespace(self.adapter)}:{digest}"

    def known_pages(self, rows: list[tuple]) -> list[KnownPage]:
        """The stored pages of the last listing (Store.known_pages) as the listing knows them."""
        return [KnownPage(digest, orjson.loads(params), orjson.loads(next_params) if next_params else None, total,
                          size or 0, skippable=size is not None, ref=params)
                for digest, params, next_params, total, size in rows]

    def add_known(self, page: KnownPage) -> None:
        """A known page answered with its very body: every entry on it is unchanged (and
        counted seen by the merge, from the page's stored ids), but those whose kept lookups
        are due tonight (a Hub feed's layers, `lookups`): each is checked as a listed entry is
        (`add`: looked up, staged if its details changed), its entry read from its stored
        version, which is the one on the page (every entry of a kept page is stored as it is on
        it), so the page is not parsed. An entry the catalogue no longer holds has the page read
        the next night (it is forgotten)."""
        due = self._lookups_due(page)
        self.unchanged += page.size - len(due)
        for start in range(0, len(due), LOOKUPS_FAILED_BATCH):
            uids = [f"{self.portal.id}:{source_id}" for source_id in due[start:start + LOOKUPS_FAILED_BATCH]]
            entries = self._stored_entries(uids)
            for uid in uids:
                if uid in entries:
                    self.add(orjson.loads(entries.pop(uid)), page.digest)
                    continue
                log.warning("%s: the stored entry of %s, on a listing page kept unread, is gone; the page is read "
                            "the next night", self.portal.id, uid)
                self.unchanged += 1
                self._unsettle(page.digest)

    def _lookups_due(self, page: KnownPage) -> list[str]:
        """The source ids on a known page whose kept lookups are not kept tonight: due
        (lookup_due), failed since the last complete run, or refused for good once (those are
        asked once their week is over: `add` tells)."""
        if not self.adapter.lookup_kept_days or self._page_lookups is None or self._stored_entries is None:
            return []
        ids = self._page_lookups(self.page_key(page.digest), page.ref)
        if ids and self._refused_lookups is None:
            return ids
        return [source_id for source_id in ids
                if not self._lookup_may_be_kept(source_id) or source_id in self.refused_lookups]

    @property
    def refused_lookups(self) -> set[str]:
        if callable(self._refused_lookups):
            self._refused_lookups = self._refused_lookups()
        return self._refused_lookups

    def page_rows(self, pages: list[PageRead]) -> list[dict]:
        """The listing's pages whose every entry the merge leaves stored as it is on the
        page, for Store.commit_portal: a known page stays as stored, a page read is stored
        with its request, the next one and its ids."""
        rows = []
        for page in pages:
            key = self.page_key(page.digest)
            if page.known is not None:   # (its ids listed; forgotten when an entry of it was not stored as it is)
                rows.append({"page_key": key, "params": page.known.ref, "kept": True,
                             "forget": page.digest in self.unsettled})
            elif page.digest not in self.unsettled:
                nightly = page.digest in self.detailed
                rows.append({"page_key": key, "params": orjson.dumps(page.params, default=str).decode(),
                             "next_params": orjson.dumps(page.next_params, default=str).decode()
                             if page.next_params is not None else None,
                             "total": page.total, "ids": None if nightly else page.ids,
                             "lookups": None if nightly else self.lookups.get(page.digest)})
        return rows

    def add(self, entry, page_digest: str | None = None) -> None:
        """One listed entry; `page_digest`: the digest of the page it was listed on."""
        source_id = self.adapter.source_id(entry)
        if source_id:
            self.stage.mark_seen(f"{self.portal.id}:{source_id}")
        if not isinstance(entry, dict) or not source_id:
            reason = (f"entry is a {type(entry).__name__}, not an object" if not isinstance(entry, dict)
                      else "entry has no source id")
            self._unsettle(page_digest)
            self.on_error(source_id, "validate", "RecordRejected", reason)
            return
        stored = None if self.rewrite else self.known.get(f"{self.portal.id}:{source_id}")
        if stored is not None and self._lookup_failed_as_stored(entry, source_id, stored):
            self._unchanged_unasked(entry, source_id, page_digest)
            return
        if stored is not None and self._lookup_may_be_kept(source_id):
            if self._kept_as_stored(source_id, page_digest):
                self._unchanged_unasked(entry, source_id, page_digest)
                return
            # (as stored? its stored details say, asked for a batch of such entries at once)
            self.lookups_kept.append((held_entry(entry), source_id, page_digest, stored))
            if len(self.lookups_kept) >= LOOKUPS_FAILED_BATCH:
                self._add_lookups_kept()
            return
        self._look_up(entry, source_id, stored, page_digest)

    def _unchanged_unasked(self, entry: dict, source_id: str, page_digest: str | None) -> None:
        self.unchanged += 1
        self._detailed(entry, source_id, page_digest)   # (the lookup is asked again in a while)

    def _detailed(self, entry: dict, source_id: str, page_digest: str | None) -> None:
        """The entry's details needed a lookup (asked, or kept): its page is read every night,
        or, where lookups are kept while entries are as stored (adapter.lookup_kept_days), its
        id is kept with the page's (`lookups`), its stored entry read the nights its lookup is
        due (add_known). An entry whose lists were cut as its page was read (its details say
        how many items each lost, which its stored entry cannot tell) has its page read."""
        if page_digest is None:
            return
        if not self.adapter.lookup_kept_days or dropped(entry):
            self.detailed.add(page_digest)
        elif self.adapter.needs_lookup(entry):
            self.lookups.setdefault(page_digest, []).append(source_id)

    def _look_up(self, entry: dict, source_id: str, stored: str | None, page_digest: str | None) -> None:
        """The entry's details asked (adapter.fetch_details), and the entry staged with them."""
        details = None
        try:
            details = self.adapter.fetch_details(entry)
            if details is not None:
                self._detailed(entry, source_id, page_digest)
        except HttpError as exc:  # one dataset's lookup: recorded; a stored dataset keeps what it looked up
            # the page is read again next night, so the lookup is made again (a new dataset
            # stored without its details must not look settled)
            self._unsettle(page_digest)
            if self.adapter.looked_up and self.stored_details is not None:
                self.lookups_failed.append((held_entry(entry), source_id, page_digest, exc.error_type, str(exc)))
                if len(self.lookups_failed) >= LOOKUPS_FAILED_BATCH:
                    self._add_lookups_failed()
                return
            self.on_error(source_id, "fetch", exc.error_type, str(exc))
            if stored is not None:  # (half the metadata must not replace the whole: its columns)
                self.unchanged += 1
                return
        self._stage(entry, source_id, details, stored, page_digest)

    def _lookup_failed_as_stored(self, entry: dict, source_id: str, stored: str) -> bool:
        """The entry is its stored version's, whose lookup failed for good lately
        (SETTLED_LOOKUP_FAILURES): that version's details, recording the failure, hash with it
        to the stored hash."""
        details = self.failed_lookups.get(f"{self.portal.id}:{source_id}")
        return details is not None and stored == raw_hash(self.adapter, entry, orjson.loads(details))

    def _lookup_may_be_kept(self, source_id: str) -> bool:
        """The stored dataset's lookup is not due tonight (adapter.lookup_kept_days, lookup_due),
        nor failed since the last run that listed the portal whole (what it keeps may be stale):
        its entry, if as stored, keeps what the lookup gave before."""
        days = self.adapter.lookup_kept_days
        if not days or self.now is None or self._lookups_since is None or self.stored_details is None:
            return False
        if not self._since_read:
            (self._since, self._failed_since), self._since_read = self._lookups_since(), True
        return source_id not in self._failed_since and \
            not lookup_due(f"{self.portal.id}:{source_id}", self._since, self.now, days)

    def _kept_as_stored(self, source_id: str, page_digest: str | None) -> bool:
        """An entry whose lookup is kept tonight, listed on a page the catalogue holds as it is
        (settled_pages: its body's digest, under this mapping; every entry on it is stored with
        it, with what its lookup gave or kept), is its stored version, its stored details unread
        and nothing hashed: an unchanged Hub feed (a 304, or the same bytes) costs its parse and
        the lookups due tonight. Not one whose stored details may record a lookup refused for
        good (refused_lookups): once its week is over, it is asked (_add_lookups_kept)."""
        if page_digest is None or self._refused_lookups is None or self.page_key(page_digest) not in self.settled_pages:
            return False
        return source_id not in self.refused_lookups

    def _add_lookups_kept(self) -> None:
        """The entries whose lookups are not due: one that hashes with its stored version's
        details to the stored version is that version (unchanged, not asked); any other (its
        entry changed, or its lookup refused when last asked: asked again in its own time,
        SETTLED_LOOKUP_FAILURES) has its lookup asked now."""
        waiting, self.lookups_kept = self.lookups_kept, []
        stored_details = self.stored_details([f"{self.portal.id}:{source_id}" for _, source_id, *_ in waiting])
        for held, source_id, page_digest, stored in waiting:
            entry, details = entry_back(held), stored_details.get(f"{self.portal.id}:{source_id}")
            previous = orjson.loads(details) if details else None
            if previous is not None and "lookup_failed" not in previous \
                    and stored == raw_hash(self.adapter, entry, previous):
                self._unchanged_unasked(entry, source_id, page_digest)
            else:
                self._look_up(entry, source_id, stored, page_digest)

    def _add_lookups_failed(self) -> None:
        """The entries whose lookup failed, each with the looked-up parts of its stored
        version's details (a warning: the dataset keeps what its lookup gave before, and
        takes the entry's metadata as listed), else with none (an error: it has none)."""
        failed, self.lookups_failed = self.lookups_failed, []
        stored = self.stored_details([f"{self.portal.id}:{source_id}" for _, source_id, *_ in failed])
        for held, source_id, page_digest, error_type, message in failed:
            entry, uid = entry_back(held), f"{self.portal.id}:{source_id}"
            previous = orjson.loads(stored[uid]) if stored.get(uid) else None
            details = self.adapter.details_without_lookup(entry, previous)
            if any(key in (details or {}) for key in self.adapter.looked_up):
                # (asked every night: the columns it keeps may be stale, and the warning says so)
                self.on_error(source_id, "fetch", error_type,
                              f"{message}; the dataset keeps what this address gave before (its columns) and "
                              "takes the rest of its metadata as listed", "warning")
            else:
                self.on_error(source_id, "fetch", error_type, message)
                if error_type in SETTLED_LOOKUP_FAILURES:   # (not asked again while the entry stays: see there)
                    details = {**(details or {}), "lookup_failed": {"error_type": error_type}}
                elif "lookup_failed" in (previous or {}):
                    details = self._still_refused(entry, details, previous["lookup_failed"], self.known.get(uid))
            self._stage(entry, source_id, details, None if self.rewrite else self.known.get(uid), page_digest)

    def _still_refused(self, entry: dict, details: dict | None, refused: dict, stored: str | None) -> dict | None:
        """The details of a dataset whose lookup, refused for good when last answered (`refused`,
        its stored record), meets a fault of the moment (a 5xx, a timeout): that says nothing new
        of the lookup, so, the entry as stored, the record stays and the dataset is unchanged
        (dropping it counted the dataset changed that night, and again on the next refusal)."""
        marked = {**(details or {}), "lookup_failed": refused}
        return marked if stored == raw_hash(self.adapter, entry, marked) else details

    def _stage(self, entry: dict, source_id: str, details: dict | None, stored: str | None,
               page_digest: str | None) -> None:
        """An entry and its details to the batch, unless they are the stored version."""
        try:
            if stored is not None and (
                    (details is None and page_digest is not None and self.page_key(page_digest) in self.settled_pages)
                    or stored == raw_hash(self.adapter, entry, details)):
                self.unchanged += 1
                return
            marked_against = self.known.get(f"{self.portal.id}:{source_id}") if self.rewrite else stored
            if marked_against is not None and self._only_marked(entry, details, marked_against):
                self.restamped.add(f"{self.portal.id}:{source_id}")
            entry_json = compact_json_bytes(entry)
            details_json = compact_json_bytes(details) if details is not None else None
        except orjson.JSONEncodeError as exc:   # orjson reads 1,024 levels of nesting, but writes 254
            self._unsettle(page_digest)
            self.on_error(source_id, "validate", "RecordRejected",
                          f"entry cannot be stored as JSON: {exc} (nested deeper than 254 levels)")
            return
        if page_digest is not None:
            self._batch_pages[source_id] = page_digest
        self.batch.entries.append((entry_json, details_json))
        self.listed += 1
        if len(self.batch.entries) >= BATCH:
            self._dispatch()

    def _only_marked(self, entry: dict, details: dict | None, stored: str) -> bool:
        """`details` record a lookup refused for good (`lookup_failed`), and without that record
        they and the entry hash to the stored version: a dataset stored before session 27 (which
        recorded none), whose only difference is civicat's own note, not the portal's change."""
        if not details or "lookup_failed" not in details:
            return False
        unmarked = {key: value for key, value in details.items() if key != "lookup_failed"} or None
        return stored == raw_hash(self.adapter, entry, unmarked)

    def _unsettle(self, page_digest: str | None) -> None:
        if page_digest is not None:
            self.unsettled.add(page_digest)

    def _dispatch(self) -> None:
        batch, self.batch = self.batch, self._new_batch()
        pages, self._batch_pages = self._batch_pages, {}
        batch.number = self.stage.new_part()
        future = None
        if self.pool is not None and self.pool.workers > 0 and self.listed > self.pool_after and not self._pool_busy():
            try:
                future = self.pool.submit(batch)
            except BrokenProcessPool as exc:
                self.pool.broken(exc)
        if future is None:
            future = Future()
            future.set_result(map_batch(batch))
        self.in_flight.append((batch, future, pages))
        # whatever is done, in any order (a batch mapped here is done before the workers'
        # before it: waiting for them would idle this process); the oldest when too many
        for item in [item for item in self.in_flight if item[1].done()]:
            self.in_flight.remove(item)
            self._collect(*item)
        while len(self.in_flight) > self.max_in_flight:
            self._collect(*self.in_flight.popleft())

    def _pool_busy(self) -> bool:
        """Every worker has a batch and one more waits: this batch is mapped here, by the
        harvest's own process, rather than waited for (that process fetches and parses the
        pages, which leaves it part of a core to spare; the workers never wait for work)."""
        return sum(not future.done() for _, future, _ in self.in_flight) > self.pool.workers

    def _collect(self, batch: Batch, future: Future, pages: dict[str, str]) -> None:
        try:
            result: BatchResult = future.result()
        except BrokenProcessPool as exc:
            if self.pool is not None and self.pool.workers > 0:
                self.pool.broken(exc)
            result = map_batch(batch)
        for source_id, stage, error_type, message, severity in result.errors:
            self.on_error(source_id, stage, error_type, message, severity)
            if severity == "error":  # rejected: the catalogue keeps another version, or none
                self._unsettle(pages.get(source_id))
        self.stage.part_written(result.number, result.longest, result.staged)

    def finish(self) -> None:
        """Map what is left and wait for every batch: the stage is then complete. The
        workers are stopped, so they hold no memory during the portal's merge (the next
        large portal starts them again, in about a second)."""
        if self.lookups_kept:   # (first: an entry of theirs that changed is looked up, and may fail)
            self._add_lookups_kept()
        if self.lookups_failed:
            self._add_lookups_failed()
        if self.batch.entries:
            self._dispatch()
        while self.in_flight:
            self._collect(*self.in_flight.popleft())
        if self.pool is not None:
            self.pool.close()

    def abandon(self) -> None:
        """The portal failed: cancel what has not started, wait for what has (so no part
        is written into a stage being removed), and ignore their results."""
        self.lookups_failed.clear()
        self.lookups_kept.clear()
        for _, future, _ in self.in_flight:
            future.cancel()
        for _, future, _ in self.in_flight:
            if not future.cancelled():
                try:
                    future.result()
                except Exception:
                    pass
        self.in_flight.clear()
