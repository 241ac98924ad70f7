"""The DuckDB catalogue: migrations, staging and the per-portal write.

A portal's records are first staged in files beside the database (memory stays
flat however large the portal), then merged in ONE transaction once its listing has
completed: a portal that fails mid-way never touches what earlier runs stored.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from catalog.lazy import pandas_kept_out
from catalog.links import (COLUMN_TEXTS, DISTRIBUTION_LINKS, DISTRIBUTION_TEXTS, RECORD_LINKS, RECORD_TEXT_LISTS,
                           RECORD_TEXTS, maybe_secret_sql)
from catalog.lock import NO_ARROW_LAMBDAS, STORAGE_VERSION, CatalogueReplaced, connect_read_only
from catalog.versions import CatalogueTooNew, newer_migrations, shipped_migrations
from catalog.stage import (
    COLUMN_FIELDS,
    DATASET_FIELDS,
    DISTRIBUTION_FIELDS,
    SEEN_COLUMNS,
    TIMESTAMP_FIELDS,
    Stage,
    canonical_json,
    content_hash,
)
from catalog.transactions import StoppedAfterCommit, rollback, stoppable_transaction
from catalog import events, uncut

__all__ = ["Stage", "Store", "canonical_json", "connect", "content_hash", "migrate"]

log = logging.getLogger("civicat.store")
T = TypeVar("T")

MEMORY_LIMIT = "128MB"
# Rows of a row group (DuckDB's default: 122,880, more than most portals). An insert of at
# least a row group's rows is compressed and written to the file as it runs (DuckDB's
# optimistic writes), not logged in the WAL and compressed again by the checkpoint when the
# harvest closes: the raw entries are loaded in inserts this large during the listing
# (catalog.stage), which left the close no raw JSON to compress (2.3 s of one core at
# 100,000 datasets). Larger groups did not fit the loader's insert in MEMORY_LIMIT.
ROW_GROUP_ROWS = 16_384
# ... unless their raw JSON is larger than this: an insert keeps a row group in memory, and
# a smaller one goes through the WAL as before (entries of more than 4 KB on average)
RAW_INSERT_BYTES = 64 << 20
# The raw loads' CSV read buffer, in longest lines (at least 2 MiB each): DuckDB's default, 16,
# kept two buffers of 32 MiB in memory beside the row group being inserted (43 MB of Socrata
# entries needed 80 MB; the large portals' loads of a 300-portal night 1 were retried with
# MERGE_MEMORY_LIMIT); with 2 the load fits 48 MB (docs/benchmarks.md, Nightly)
RAW_READ_BUFFER_LINES = 2
MERGE_MEMORY_LIMIT = "1GB"  # a merge that does not fit is tried once more with this
# A portal's merge that leaves the write-ahead log past this checkpoints the catalogue: what
# the log holds stays in DuckDB's memory too until a checkpoint (DuckDB's own comes at 1 GB,
# see connect), and a night of 300 portals that kept it all (676 MB of log) left no room for
# the merges past the 120th (each retried with MERGE_MEMORY_LIMIT), the search index nor the
# close's checkpoint (docs/benchmarks.md, Nightly). Between portals, never during a listing's loads.
CHECKPOINT_WAL_BYTES = 64 << 20
# A row group with deleted rows costs DuckDB 1.5 memory it never evicts nor frees, checkpointed
# or not, until the catalogue is detached: its vectors' version info (16 KiB a vector of 2,048
# rows, in blocks of 256 KiB: one block a row group of ROW_GROUP_ROWS), and a scan of a row
# group whose deletes were checkpointed reads it back. A night that changes a few percent of
# every portal deletes rows in nearly every row group of distributions and columns (a changed
# dataset's are deleted and inserted again), which the merges scan whole: at 300 portals the
# memory held grew through night 3 until no merge fitted (52 retried with MERGE_MEMORY_LIMIT;
# docs/benchmarks.md, Nightly). So once the row groups of those tables that the merges since
# their last rebuild deleted rows from would hold this much, they are rebuilt (VACUUMED_TABLES):
# a table written anew has no deletes, and dropping the old one frees what it held.
VACUUM_BYTES = 16 << 20
ROW_GROUP_DELETES_BYTES = 256 << 10   # what one row group with deletes holds, at least
VACUUMED_TABLES = ("distributions", "columns")   # (datasets' and raw_records' are a row each per dataset: far fewer)
# The rows of `datasets` that merges delete (a changed dataset's old version, deleted and inserted
# again) stay in its row groups, in the file and in every scan: DuckDB's checkpoint vacuums no
# table with an index (uid's PRIMARY KEY), so that 3% of a catalogue changed a night left 3% more of
# the table dead, without bound (21% after 10 nights; docs/benchmarks.md, Nightly). Past this share
# of the rows it holds, dead, the table is written anew at the harvest's end (Store.reclaim_datasets).
# One INSERT copies it, not ranges of row ids each committed: a scan of a table whose row groups hold
# deletes loads every row group's version info whatever range it reads (a range of 16,384 rows at the
# end of 400,000 held did not fit 32 MB alone, the same at their start fitted 28), and a copy of
# `datasets` needs ~28 MB without a delete, so ranges fitted no smaller limit than the one statement
# (36 MB, not 32, at 280,000 live rows of 400,000; docs/benchmarks.md, Nightly); the night's raw
# loads need 48, its search build 64.
RECLAIM_SHARE = 0.2
# The columns whose compression a migration declares (USING COMPRESSION): DuckDB keeps it with the
# table but leaves it out of the definition duckdb_tables() gives, so that a table rebuilt from that
# definition (_rebuild_table) would compress them as it chooses (raw_records' raw JSON: FSST, not
# migration 0013's zstd). A migration that declares one names it here too (a test reads them).
DECLARED_COMPRESSION = {"raw_records": {"raw": "zstd", "details": "zstd"}}
_string = pa.string()


def _read_jsonl(parameter: str, columns: dict[str, str], longest_line: int) -> str:
    """A read_json() call over the staged JSON-lines files in `$parameter`, typed by `columns`
    (constants of catalog.stage, never portal data), ready for lines of `longest_line` bytes."""
    struct = ", ".join(f"{name!r}: {sql_type!r}" for name, sql_type in columns.items())
    return (f"read_json(${parameter}, format = 'newline_delimited', columns = {{{struct}}}, "
            f"maximum_object_size = {max(int(longest_line) + 1, 1 << 20)})")


PRUNE_RAW = """DELETE FROM raw_records r WHERE r.portal_id = $portal AND NOT EXISTS
               (SELECT 1 FROM datasets d WHERE d.uid = r.uid AND d.raw_hash = r.raw_hash)"""
ERROR_SCHEMA = pa.schema([("run_id", _string), ("portal_id", _string), ("source_id", _string),
                          ("stage", _string), ("error_type", _string), ("severity", _string),
                          ("message", _string), ("occurred_at", pa.timestamp("us", tz="UTC"))])


def connect(db_path: str | Path, *, read_only: bool = False, checked: os.stat_result | None = None
            ) -> uncut.Connection:
    """Open the catalogue; a writable open brings the schema up to date first. A
    catalog.uncut.Connection (DuckDB's): writable, its calls never cut short by a stop;
    read-only, its statements interrupted by one (a reader has nothing to finish). `checked`: the
    file the writer checked to be a catalogue (its stat, before the check read it; or the one it
    made): a writable open of another file at the path (put there since) is closed before its
    migrations, CatalogueReplaced."""
    db_path = Path(db_path)
    if read_only:
        if not db_path.exists():
            raise FileNotFoundError(f"no catalogue at {db_path}: run `civicat harvest` first")
        con = connect_read_only(db_path)
    else:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        # attached rather than opened: the row group size is an option of ATTACH only. It
        # spills beside the catalogue, as DuckDB does for a database it opens itself (for an
        # in-memory connection its default is '.tmp' in the working directory, which cron
        # may not let us write), from the start: ATTACH replays a WAL a killed run left.
        # The storage version is this DuckDB's (an older catalogue is brought up to it, and
        # only DuckDB >= 1.5 reads it then): its compression (DICT_FSST; zstd for the raw
        # JSON, migration 0013) cost a merge a quarter less CPU than FSST (docs/benchmarks.md)
        # (every statement run to its end by a stop, never dropped half-way: catalog.uncut)
        con = uncut.connect(config={"temp_directory": str(spill_directory(db_path))})
        _replaced_since(db_path, checked, con)   # (before the ATTACH too: it would make a file taken away)
        _attach(con, db_path)
        # (DuckDB opens the file by its path: the path's file after the ATTACH is the one attached, unless
        # it was replaced and put back within it: then this process holds the file checked nowhere)
        _replaced_since(db_path, checked, con)
        if checked is not None and open_here(checked) is False:
            con.close()
            raise CatalogueReplaced(f"{db_path} was replaced by another file as this run opened it, and put back "
                                    "(the file opened is not the one this run checked was the catalogue)")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(NO_ARROW_LAMBDAS)
    if not read_only:
        # bounded memory whatever the portal's size: DuckDB spills to disk past this
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET allocator_background_threads = true")  # hand freed memory back to the OS
        # a checkpoint per 16 MB of WAL made batched raw inserts 2.5x slower and kept more
        # memory; the WAL is checkpointed when the harvest closes the database instead
        con.execute("SET checkpoint_threshold = '1GB'")
        # dictionary compression's analysis of the raw JSON doubled the checkpoint's memory
        # (680 MB against 430 MB at 100,000 datasets); FSST compresses those strings as well
        con.execute("SET disabled_compression_methods = 'dictionary'")
        # a large insert writes each row group as it fills, not five at a time (the default:
        # five row groups of raw JSON did not fit MEMORY_LIMIT)
        con.execute("SET write_buffer_row_group_count = 1")
        try:
            with pandas_kept_out():   # (bound parameters: DuckDB would import it, see there)
                _migrate_with_room(con)
        except CatalogueTooNew:
            con.close()   # (the file let go: the caller exits, or a reader opens it)
            raise
    return con


def _replaced_since(db_path: Path, checked: os.stat_result | None, con) -> None:
    """CatalogueReplaced (`con` closed) where the file at `db_path` is not the one `checked` (connect's)."""
    why = how_replaced(db_path, checked)
    if why:
        con.close()
        raise CatalogueReplaced(f"{db_path} was {why} after this run checked it was the catalogue")


def open_here(file: os.stat_result) -> bool | None:
    """Whether this process has the file `file` (a stat of it) open, by some descriptor (/proc/self/fd);
    None where that cannot be read (not Linux). After an ATTACH, False says DuckDB opened another file
    at the path, which was then put back (a path's file alone cannot tell)."""
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for descriptor in descriptors:
        try:
            held = os.stat(f"/proc/self/fd/{descriptor}")   # (the file itself, even taken away since)
        except OSError:
            continue
        if (held.st_dev, held.st_ino) == (file.st_dev, file.st_ino):
            return True
    return False


def how_replaced(db_path: Path, checked: os.stat_result | None) -> str | None:
    """How the file at `db_path` is no longer the one `checked` ("taken away", "replaced by another
    file"; by device and inode), or None: it is (or nothing was checked)."""
    if checked is None:
        return None
    try:
        now = os.stat(db_path)
    except FileNotFoundError:
        return "taken away"
    return None if (now.st_dev, now.st_ino) == (checked.st_dev, checked.st_ino) else "replaced by another file"


def log_path_of(db_path: Path) -> Path:
    """The catalogue's write-ahead log, as DuckDB names it: by the catalogue's path alone."""
    return db_path.with_name(db_path.name + ".wal")


def log_held_here(db_path: Path) -> os.stat_result | None:
    """The catalogue's write-ahead log (a stat of it) while this process holds it open, DuckDB's of the file it
    attached (a checkpoint that fails closes it, and closing or detaching the catalogue does), else None."""
    try:
        log_file = os.stat(log_path_of(db_path))
    except OSError:
        return None
    return log_file if open_here(log_file) else None


def set_aside_this_runs_log(db_path: Path, held: os.stat_result | None) -> str:
    """The write-ahead log at the catalogue's path, when it is `held` (a stat of the log this run wrote, as
    it held it open; None: none), renamed `<name>.wal.of-a-replaced-file-<UTC time>-<pid>`, where no open of
    that path replays it and no write there overwrites it; for the writer's message, "; this run's log … was
    moved to …" (or why it could not be), "" where there was none of this run's there."""
    log_path = log_path_of(db_path)
    try:
        if held is None or not os.path.samestat(os.stat(log_path), held):
            return ""   # (none, or another program's, put there with its file: that file's own)
        aside = rename_log_aside(log_path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            return ""
        return (f"; this run's log {log_path} could not be set aside ({exc.strerror or exc}): take it away before "
                "the next run, or its open replays it into the file there")
    return (f"; this run's log (what it wrote since its last checkpoint) was moved to {aside}, where no open of "
            "that path replays it into the file there")


def rename_log_aside(log_path: Path) -> Path:
    """`log_path` renamed `<name>.of-a-replaced-file-<UTC time>-<pid>`; the new path."""
    aside = log_path.with_name(f"{log_path.name}.of-a-replaced-file-"
                               f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}")
    os.rename(log_path, aside)
    return aside


def _attach(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    """The catalogue attached to a writable connection, and made its current database."""
    con.execute(f"ATTACH '{_sql_literal(db_path)}' AS {CATALOGUE} "
                f"(ROW_GROUP_SIZE {ROW_GROUP_ROWS}, STORAGE_VERSION '{STORAGE_VERSION}')")
    con.execute(f"USE {CATALOGUE}")


# how long attaching the catalogue again (Store._reattach) waits for the statements of other
# cursors that still hold its file: a records pull's (its profile reads Parquet for minutes on
# a large dataset), in another portal's thread; DuckDB lets the DETACH pass beside them and
# refuses the ATTACH until they end ("Unique file handle conflict")
REATTACH_WAIT_SECONDS = 600.0
# how long a stopped portal waits to read whether its merge committed (Store.merged_in_run) while a
# checkpoint or a re-attach holds the catalogue (seconds; minutes at a large catalogue: then unknown)
MERGED_READ_WAIT_SECONDS = 30.0


class CatalogueDetached(duckdb.Error):
    """The catalogue was detached to be attached again (Store._reattach) and could not be: every
    use of the store says so, rather than fail on a missing catalogue. What was committed is
    whole in its file and log (the next open replays the log)."""


class CatalogueInvalidated(duckdb.Error):
    """A checkpoint that failed invalidated the catalogue (DuckDB refuses every statement on it until
    it is detached and attached again), and it could not be attached again (the store's other
    cursors kept it, a stop, the ATTACH refused): every use of the store tries again, or says so,
    naming that checkpoint's error. What was committed is whole in its file and log (the next open
    replays the log)."""


class StoppedAfterStoring(KeyboardInterrupt):
    """A stop (Ctrl-C, SIGTERM) came after a portal's merge had committed, in the upkeep that
    follows it (Store.commit_portal): the portal is stored, `counts` as its merge gave them;
    `left` says what was not done, and when it will be."""

    def __init__(self, counts: dict[str, int], left: str):
        super().__init__(f"stopped after the portal was stored: {left}")
        self.counts, self.left = counts, left


class AttachStopped(KeyboardInterrupt):
    """A stop (Ctrl-C, SIGTERM: Store.stop_waiting) ended a wait to attach the catalogue again."""


def _attach_when_let_go(con: duckdb.DuckDBPyConnection, db_path: Path, stop: threading.Event | None = None) -> None:
    """_attach, tried again while another cursor's statement still holds the detached
    catalogue's file, for REATTACH_WAIT_SECONDS at most, or until `stop` is set."""
    deadline = time.monotonic() + REATTACH_WAIT_SECONDS
    while True:
        try:
            return _attach(con, db_path)
        except duckdb.Error as exc:
            if "Unique file handle conflict" not in str(exc) or time.monotonic() >= deadline:
                raise
            if stop is not None and stop.is_set():
                raise AttachStopped(f"stopped while another statement held the catalogue ({exc})") from exc
        if stop is not None:
            stop.wait(0.05)
        else:
            time.sleep(0.05)


class OtherCursorsKeptTheCatalogue(duckdb.Error):
    """Statements or transactions of the store's other cursors (a records pull's, in another
    portal's thread) used the catalogue for REATTACH_WAIT_SECONDS: what waited for them (a
    checkpoint, or attaching the catalogue again for a retry) was not done, nothing of it begun.
    (Not catalog.lock.CatalogueBeingWritten: another process writing the catalogue.)"""


class CatalogueHeldExclusive(duckdb.Error):
    """A read that waits a bounded time (Store.merged_in_run's) found the catalogue held by a
    checkpoint or a re-attach (the store's _Gate held exclusive) for the whole of it: not read."""


class MergeOutcomeUnknown(Exception):
    """Whether a portal's merge committed could not be read (Store.merged_in_run): the reason, to be
    said as it is, neither "stored" nor "not stored"."""


class StoreCursorMisuse(RuntimeError):
    """A store cursor (Store.cursor) used in a way its _Gate cannot serve, refused at once: its result
    read other than whole, a relation (its query run when it is read, outside the gate), a checkpoint
    (Store.checkpoint holds the gate exclusive, and attaches the catalogue again if it fails), or a second
    store cursor, or a checkpoint, in a thread inside a store cursor's transaction (either waited
    for a checkpoint or re-attach that waits for that transaction: REATTACH_WAIT_SECONDS)."""


class _Gate:
    """What the statements of the store's cursors (Store.cursor) pass through, so that none meets
    the catalogue detached, or invalidated by a failed CHECKPOINT, while it is attached again: a
    statement holds the gate shared while it runs, a transaction from its BEGIN to its COMMIT or
    ROLLBACK; detaching and attaching the catalogue again, and a CHECKPOINT (which may make that
    needed), hold it exclusive: that waits for the statements and transactions running, and holds
    new ones until it is done. Before it, such statements (a records pull's, in another portal's
    thread) failed in the window ('Catalog "catalogue" does not exist!').

    The exclusive hold is taken with the store's write lock held, and only by its holder, so a
    statement run under the write lock never waits on it; a transaction of a store cursor must
    therefore not wait for the write lock before it ends (none does: record_pull's).

    A hold is taken inside the `try` whose `finally` gives it back, that `finally`'s first call
    (a dict's `pop`, in C) giving back a shared one, and the gate's own lock is a plain Lock, entered
    and left in C: Python's own SIGINT handler (civicat used as a library) raises KeyboardInterrupt
    at the next step of Python, and one raised between a hold taken and its `try` kept it for good
    (a shared one: every later checkpoint or re-attach waited REATTACH_WAIT_SECONDS and failed; an
    exclusive one: every other thread's statement waited for good)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # the shared holds running, by their token (any object, the caller's): a statement's None, a
        # transaction's the thread it was begun in. Given back by `holds.pop(hold, None)` (see above)
        self.holds: dict[object, int | None] = {}
        # the shared holds an exclusive one waited REATTACH_WAIT_SECONDS for in vain: while one of them
        # runs on, the next exclusive hold fails at once (each use of an invalidated catalogue, each
        # portal's checkpoint, waited the whole REATTACH_WAIT_SECONDS again for the same transaction)
        self._outlasted: set[object] = set()
        self._waited = 0.0   # (that wait's seconds)
        self._owner: int | None = None   # the thread holding it exclusive (it may nest)
        self._depth = 0
        self._wanted = 0   # exclusive holds waiting: new shared ones wait behind them

    @contextmanager
    def exclusive(self, stop: threading.Event | None, done: str) -> Iterator[None]:
        """Held once every statement and transaction running has ended, REATTACH_WAIT_SECONDS at
        most (OtherCursorsKeptTheCatalogue), or until `stop` is set (AttachStopped): either way nothing was done."""
        me = threading.get_ident()
        if self._owner != me and self.in_transaction(me):
            raise StoreCursorMisuse("a checkpoint or a re-attach of the catalogue asked in a thread inside a store "
                                    "cursor's transaction: it waits for every transaction to end, that one too; end "
                                    "the transaction first")
        taken = False
        try:
            with self._lock:
                if self._owner != me:
                    self._outlasted = {hold for hold in self._outlasted if hold in self.holds}   # (those still held)
                    if self._outlasted:   # (waited for once already, in vain: not again)
                        raise OtherCursorsKeptTheCatalogue(
                            f"a statement or transaction of the store's other cursors (a records pull's, say) that "
                            f"kept the catalogue past an earlier wait of {self._waited:.0f} s still uses it: it was "
                            f"not {done} (not waited for again)")
                    deadline = time.monotonic() + REATTACH_WAIT_SECONDS
                    self._wanted += 1
                    try:
                        while self._owner is not None or self.holds:
                            if stop is not None and stop.is_set():
                                raise AttachStopped("stopped while another cursor's statement used the catalogue")
                            left = deadline - time.monotonic()
                            if left <= 0:
                                self._outlasted, self._waited = set(self.holds), REATTACH_WAIT_SECONDS
                                raise OtherCursorsKeptTheCatalogue(
                                    f"statements of the store's other cursors (a records pull's, say) used the "
                                    f"catalogue for {REATTACH_WAIT_SECONDS:.0f} s: it was not {done}")
                            self._changed.wait(min(left, 0.05))   # (polled: a shared hold is given back unsaid)
                    finally:
                        self._wanted -= 1
                        self._changed.notify_all()   # (given up: the shared holds waiting go on)
                # (one statement, no call in it: no KeyboardInterrupt between the hold and `taken`)
                self._owner, self._depth, taken = me, self._depth + 1, True
            yield
        finally:
            if taken:   # (this thread's own fields, changed before any call; the others read them under the lock)
                self._depth -= 1
                if not self._depth:
                    self._owner = None
                    with self._lock:
                        self._changed.notify_all()

    @property
    def _shared(self) -> int:   # (how many shared holds run)
        return len(self.holds)

    def hold_shared(self, hold: object, wait: float | None = None) -> bool:
        """`hold` (the caller's token, given back by `holds.pop(hold, None)`) held shared, once no
        exclusive hold is held or waiting, `wait` seconds at most (CatalogueHeldExclusive); False,
        nothing held: this thread holds it exclusive (its own statements go on)."""
        me = threading.get_ident()
        deadline = None if wait is None else time.monotonic() + wait
        with self._lock:
            if self._owner == me:
                return False
            while self._owner is not None or self._wanted:
                left = 1.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise CatalogueHeldExclusive(f"a checkpoint or a re-attach of the catalogue held it for the "
                                                 f"{wait:g} s the read could wait")
                self._changed.wait(min(left, 1.0))
            self.holds[hold] = None
            return True

    def in_transaction(self, thread: int) -> bool:
        """Whether a store cursor's transaction begun in `thread` is open: that thread's other uses of
        the gate would wait for an exclusive hold that waits for it."""
        with self._lock:
            return thread in self.holds.values()


_TRANSACTION_BEGINS = ("BEGIN", "START")
_TRANSACTION_ENDS = ("COMMIT", "ROLLBACK", "ABORT", "END")   # (a COMMIT that fails ends it too: catalog.transactions)


# DuckDB's calls that read a statement's result other than as rows (the rows are read whole as it runs)
_RESULT_READERS = frozenset({"arrow", "df", "fetch_arrow_table", "fetch_df", "fetch_df_chunk", "fetch_record_batch",
                             "fetchdf", "fetchnumpy", "pl", "tf", "torch", "to_arrow_reader", "to_arrow_table"})
_METHOD_WORDS = {"begin": "BEGIN", "commit": "COMMIT", "rollback": "ROLLBACK"}   # (a transaction's, as calls)


class _GatedCursor(uncut.Connection):
    """A cursor of the store (Store.cursor) whose every call passes its _Gate: a call holds it
    shared while it runs, a transaction from its BEGIN to its end (or the cursor's close). A
    catalogue found detached meanwhile (attaching it again failed) is attached first, or
    CatalogueDetached, as Store.con does. A statement's rows are read whole as it runs, under the
    same hold, and handed out from here (fetchone, fetchmany, fetchall): a result left half-read
    holds the file of the catalogue it was read from, which the re-attach then waited for while
    its cursor waited for the gate. What cannot be served so is refused at once (StoreCursorMisuse):
    .df(), .fetch_arrow_table() and DuckDB's other readers of a result (it was read: they met "no
    open result set"), a relation, and a statement of a second store cursor in a thread inside this
    one's transaction."""

    __slots__ = ("_store", "_transaction", "_rows")

    def __init__(self, con, store: Store, *, interruptible: bool = False):
        super().__init__(con, interruptible=interruptible)
        self._store, self._rows = store, None
        self._transaction: object | None = None   # the hold of the gate its BEGIN took, until its end

    def fetchone(self):
        if self._rows is None:   # (no statement ran: DuckDB's own error)
            return self.__getattr__("fetchone")()
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int = 1):
        if self._rows is None:
            return self.__getattr__("fetchmany")(size)
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    def fetchall(self):
        if self._rows is None:
            return self.__getattr__("fetchall")()
        rows, self._rows = list(self._rows), collections.deque()
        return rows

    def __getattr__(self, name: str):
        attribute = getattr(self._con, name)
        if not callable(attribute):
            return attribute
        if name in _RESULT_READERS:
            raise StoreCursorMisuse(f"{name}() on a store cursor: its statements' rows are read whole as each runs, "
                                    "so that no result left open holds the catalogue's file; read them with "
                                    "fetchone(), fetchmany() or fetchall(), or query through a connection of your own")
        return lambda *args, **kwargs: self._gated(name, attribute, args, kwargs)

    def _read_whole(self, name: str, result):
        if name in ("execute", "executemany") and result is self:
            self._rows = collections.deque(self._call(self._con.fetchall, (), {})
                                           if self._con.description is not None else ())
        elif isinstance(result, duckdb.DuckDBPyRelation):
            raise StoreCursorMisuse(f"{name}() on a store cursor gave a relation, whose query would run when it is "
                                    "read, outside the store's gate (and could meet the catalogue detached): run it "
                                    "with execute() and fetch its rows")
        return result

    def _gated(self, name: str, method, args, kwargs):
        self._rows = None   # (a new statement's, or a call that ends the result)
        words = [word.rstrip(";").upper() for word in args[0].split(None, 2)[:2]] \
            if name in ("execute", "sql", "query") and args and isinstance(args[0], str) else [_METHOD_WORDS.get(name, "")]
        first_word = (words or [""])[0]
        # (FORCE CHECKPOINT, not FORCE INSTALL)
        if name == "checkpoint" or words[:1] == ["CHECKPOINT"] or words == ["FORCE", "CHECKPOINT"] or (
                first_word in ("CALL", "PRAGMA") and "checkpoint" in args[0].lower()):
            raise StoreCursorMisuse(
                "a checkpoint on a store cursor: it would run beside the other cursors' statements and transactions "
                "(a statement's shared hold of the gate), and one that fails invalidates the catalogue under them; "
                "use Store.checkpoint(what), which waits for them and attaches the catalogue again if it fails")
        gate = self._store._gate
        if self._transaction is not None:   # (held since its BEGIN)
            try:
                return self._read_whole(name, self._call(method, args, kwargs))
            finally:
                if first_word in _TRANSACTION_ENDS or name == "close":   # (given back first: see _Gate)
                    hold, self._transaction = self._transaction, None
                    gate.holds.pop(hold, None)
        me = threading.get_ident()
        if name != "close" and gate.in_transaction(me):
            raise StoreCursorMisuse(
                "a statement on a store cursor in a thread inside another store cursor's transaction (begun in this "
                "thread and not yet ended): a checkpoint or a re-attach of the catalogue waits for that transaction, "
                f"and would hold this statement, and so the transaction, for {REATTACH_WAIT_SECONDS:.0f} s; run it on "
                "the transaction's own cursor, or after its end")
        if self._store._invalidated and self._store._detached is None and name != "close":
            self._store._attach_invalidated()   # (before its hold: the re-attach waits for every hold)
        hold, begun = object(), False
        try:   # (the hold taken inside the `try` that gives it back: see _Gate)
            held = gate.hold_shared(hold)
            if self._store._detached is not None and name != "close":
                self._store._attach_again()
            result = self._read_whole(name, self._call(method, args, kwargs))
            begun = held and first_word in _TRANSACTION_BEGINS
            return result
        finally:
            if begun:   # (held on to its end, as this thread's transaction's)
                gate.holds[hold], self._transaction = me, hold
            else:
                gate.holds.pop(hold, None)


def _migrate_with_room(con: duckdb.DuckDBPyConnection) -> None:
    """The migrations, under the harvest's memory limit like any write (under DuckDB's
    default, 80% of the machine, migration 0013's copy of raw_records peaked at 947 MB
    for 200,000 entries, 293 MB at the limit); one that does not fit it runs once more
    with MERGE_MEMORY_LIMIT (an existing catalogue's migrations each a transaction, a new
    one's all one: a failed one left nothing)."""
    try:
        migrate(con)
    except duckdb.Error as exc:
        if not _out_of_memory(exc):
            raise
        log.warning("a migration did not fit in %s (%s); trying again with %s", MEMORY_LIMIT, exc, MERGE_MEMORY_LIMIT)
        con.execute(f"SET memory_limit = '{MERGE_MEMORY_LIMIT}'")
        try:
            migrate(con)
        finally:
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")


CATALOGUE = "catalogue"  # the attached database a writable connection uses


def spill_directory(db_path: Path) -> Path:
    """Where a writable connection spills what does not fit MEMORY_LIMIT."""
    return db_path.with_name(db_path.name + ".tmp")


def _out_of_memory(exc: duckdb.Error) -> bool:
    """DuckDB ran out of memory, in a statement or in the commit that followed it (an
    autocommitted insert of strings too large to spill: DuckDB keeps those of the last
    checkpoint's rows in memory)."""
    return isinstance(exc, duckdb.OutOfMemoryException) or (
        ("Failed to commit" in str(exc) or _invalidated_by_checkpoint(exc)) and any(
            why in str(exc) for why in ("failed to pin block", "could not allocate block", "Out of Memory")))


def _invalidated_by_checkpoint(exc: duckdb.Error) -> bool:
    """A CHECKPOINT failed (out of memory as it wrote, an IO Error): DuckDB then refuses every
    statement on the database until it is detached and attached again (which replays the log:
    nothing committed is lost)."""
    return "has been invalidated" in str(exc) and "heckpoint" in str(exc)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS: nothing to hand back that way)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> None:
    """Hand the pages of the C heap that are free back to the OS. What Python freed as the
    listing went by (pages, their entries, batches: ~50 MB at 100,000 datasets) stays in
    glibc's heap below chunks still in use, counted in the process's memory while the
    merge and then the search build fill DuckDB's (10-25 MB of its peak at 100,000 datasets)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8
# The C heap's arenas: glibc gives each thread that allocates one of its own (up to 8 a core), and
# what a thread frees stays in its arena for it. The harvest's threads (portals, pages read ahead,
# DuckDB's) each left their own high-water mark of freed memory, so the more arenas a night's large
# listings had passed through, the higher the process stood (docs/benchmarks.md, Nightly)
MALLOC_ARENAS = 2
# Blocks this large and larger are mapped on their own and unmapped as they are freed. glibc's
# default threshold rises to the largest block freed (up to 32 MB): after the first large answer
# body, every later one came out of the arenas and was kept there once freed
MALLOC_MMAP_BYTES = 1 << 20


@functools.cache
def bound_the_c_heap() -> bool:
    """At most MALLOC_ARENAS arenas from now on (those already made stay), and blocks of
    MALLOC_MMAP_BYTES mapped on their own: settings of the process, made once (before the
    harvest's threads start). False where malloc is not glibc's."""
    try:   # (another malloc's mallopt, if any, numbers its parameters otherwise)
        glibc = "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "")
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, ValueError, OSError):
        return False
    return glibc and bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS)) & bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES))


def _sql_literal(path: Path) -> str:
    return str(path).replace("'", "''")


def _current_path(con: duckdb.DuckDBPyConnection) -> str | None:
    """The file of the connection's current database (None: in memory)."""
    return con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply, in order, the migrations not yet applied: a new catalogue's all in one transaction
    (nothing to copy, so no memory to bound; 20 commits were ~25 fsyncs, 0.2-0.5 s of every first
    run, and a first run killed half-way left half a schema), an existing catalogue's each in its
    own (a migration that copies a large table must not hold the others' undo with it).
    CatalogueTooNew, nothing applied, when the catalogue holds one this civicat does not know:
    it would write a schema whose meaning it does not know (a newer civicat's)."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    applied = dict(con.execute("SELECT version, name FROM schema_migrations").fetchall())
    newer = newer_migrations(applied)
    if newer:
        raise CatalogueTooNew(f"{_current_path(con) or 'the catalogue'} was migrated by a newer civicat ({newer}): "
                              "run that civicat, or upgrade this one; nothing was written")
    pending = [(version, script, name) for version, (script, name) in sorted(shipped_migrations().items())
               if version not in applied]
    batches = [pending] if not applied else [[one] for one in pending]
    done = []
    for batch in batches:
        con.execute("BEGIN TRANSACTION")
        try:
            for version, script, name in batch:
                con.execute(script.read_text())
                con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            rollback(con)
            raise
        done.extend(version for version, _, _ in batch)
    return done


# a rewrite (`harvest --full`): a stored dataset, its raw entry unchanged, whose re-mapped
# fields differ from those stored (`d`: the row, `s`: the staged record); the timestamps
# are staged as text
REMAPPED_FIELDS = " OR ".join(
    f"d.{f} IS DISTINCT FROM " + (f"CAST(s.{f} AS TIMESTAMPTZ)" if f in TIMESTAMP_FIELDS else f"s.{f}")
    for f in DATASET_FIELDS if f != "uid")


def _mark_remapped_rows(cur: duckdb.DuckDBPyConnection, staged: str, params: dict) -> None:
    """A rewrite's datasets still unchanged whose re-mapped distributions or columns differ
    from those stored become changed. The rows of a dataset are compared as a multiset: their
    number and the sum of their hashes (each row holds its position: an order that changed
    changes them). A multiset difference of the rows themselves (EXCEPT ALL both ways) took
    9.8 s of a merge of 20,000 datasets of 50 columns, these sums 0.4-0.6 s."""
    for table, fields in (("distributions", DISTRIBUTION_FIELDS), ("columns", COLUMN_FIELDS)):
        row_hash = f"hash({', '.join(fields)})::HUGEINT"
        item_hash = f"hash({', '.join(f'item.{f}' for f in fields)})::HUGEINT"
        cur.execute(f"""
            UPDATE _status SET status = 'changed'
            FROM (SELECT st.uid FROM _status st JOIN {staged} s ON s.uid = st.uid
                  LEFT JOIN (SELECT dataset_uid, count(*) AS n, sum({row_hash}) AS hashes FROM {table}
                             JOIN _status ON _status.uid = dataset_uid WHERE _status.status IN ('unchanged', 'restamped')
                             GROUP BY dataset_uid) t ON t.dataset_uid = st.uid
                  WHERE st.status IN ('unchanged', 'restamped')
                    AND (coalesce(t.n, 0) <> coalesce(len(s.{table}), 0)
                         OR coalesce(t.hashes, 0) <> coalesce(list_sum(list_transform(s.{table}, lambda item: {item_hash})), 0))
                 ) remapped
            WHERE _status.uid = remapped.uid""", params)


# A merge that rewrites at least this share of the catalogue's datasets builds the table
# anew rather than deleting and inserting them again: each rewritten row costs uid's
# PRIMARY KEY (its ART index) a delete and an insert, most of it paid in the COMMIT. At
# 100,000 datasets all rewritten (a `--full` night) the rebuild's datasets step and COMMIT
# took 4.8 s (COMMIT 0.8 s), the delete and insert 15.5 s (COMMIT 8.1 s); at 30% of them
# both ~4.8 s, at 10% the delete and insert half the rebuild's (docs/benchmarks.md)
REBUILD_SHARE = 0.25


def _merge_staged(cur: duckdb.DuckDBPyConnection, staged_files: list[str], now: datetime,
                  rewrite: bool, restamped: set[str] = frozenset(),
                  deleted_groups: dict[str, set[int]] | None = None) -> dict[str, int]:
    """The staged records parts (`staged_files`, at least one) into the catalogue, in the
    merge's transaction: new ones inserted, changed ones written again (first_seen kept)
    with their distributions and columns; returns how many were new, changed and unchanged.
    `deleted_groups`: the row groups of distributions and columns it deletes rows from are
    added to it, by table (see VACUUM_BYTES).

    A changed dataset is deleted and inserted again, never UPDATEd: DuckDB runs an UPDATE
    of its list columns (keywords, themes) as a delete and an insert anyway, and that
    UPDATE of 100,000 datasets took 30 s and its COMMIT 6 s with 1 GB, and did not fit the
    harvest's 128 MB (docs/benchmarks.md). A uid staged twice is refused by the key, new or
    changed (an UPDATE took either copy, and both copies' distributions and columns).

    `restamped`: uids whose staged version differs from the stored one only in civicat's own
    record of a lookup refused for good (harvester.mapping.Mapper._only_marked): unless marked
    deleted or re-mapped otherwise, each is counted unchanged, its stored row points at the
    staged raw version (its raw_hash), and nothing else of it is written, nor any event."""
    staged = "read_parquet($staged)"
    merged = {"staged": staged_files}
    cur.execute(f"""
        CREATE OR REPLACE TEMP TABLE _status AS
        SELECT s.uid, d.first_seen,
               CASE WHEN d.uid IS NULL THEN 'new'
                    WHEN d.deleted_at IS NOT NULL THEN 'changed'
                    WHEN d.raw_hash <> s.raw_hash AND NOT list_contains({RESTAMPED}, s.uid) THEN 'changed'
                    WHEN $rewrite AND ({REMAPPED_FIELDS}) THEN 'changed'
                    WHEN d.raw_hash <> s.raw_hash THEN 'restamped'
                    ELSE 'unchanged' END AS status
        FROM {staged} s LEFT JOIN datasets d ON d.uid = s.uid""",
                {**merged, "rewrite": rewrite, "restamped": json.dumps(sorted(restamped))})
    if rewrite:
        _mark_remapped_rows(cur, staged, merged)
    counts = dict(cur.execute("SELECT status, count(*) FROM _status GROUP BY status").fetchall())
    events.compare(cur, staged, merged, counts.get("changed", 0))   # (the stored rows, before they are written)
    if counts.get("new") or counts.get("changed"):
        _write_datasets(cur, staged, {**merged, "now": now}, counts.get("changed", 0))
    if counts.get("restamped"):
        cur.execute(f"""UPDATE datasets SET raw_hash = r.raw_hash
                        FROM (SELECT s.uid, s.raw_hash FROM {staged} s JOIN _status st ON st.uid = s.uid
                              WHERE st.status = 'restamped') r WHERE datasets.uid = r.uid""", merged)
    touched = "(SELECT uid FROM _status WHERE status IN ('new', 'changed'))"
    for table in ("distributions", "columns"):
        if counts.get("changed") and deleted_groups is not None:   # (new datasets have no rows to delete)
            deleted_groups.setdefault(table, set()).update(row[0] for row in cur.execute(
                f"SELECT DISTINCT rowid // {ROW_GROUP_ROWS} FROM {table} WHERE dataset_uid IN {touched}").fetchall())
        cur.execute(f"DELETE FROM {table} WHERE dataset_uid IN {touched}")
        # a join, not `uid IN (...)`: DuckDB ran the insert behind that semi-join
        # on one thread (1.6 s for 1.15 million columns, against 0.8 s on two)
        cur.execute(f"""
            INSERT INTO {table} BY NAME
            SELECT dataset_uid, unnest(item, recursive := true) FROM (
                SELECT s.uid AS dataset_uid, unnest(s.{table}) AS item FROM {staged} s
                JOIN _status st ON st.uid = s.uid WHERE st.status IN ('new', 'changed'))""", merged)
    cur.execute("DROP TABLE _status")
    return counts


def _row_groups_with_deletes(cur: duckdb.DuckDBPyConnection, table: str) -> set[int]:
    """The row groups of `table` (a constant of this module) with deleted rows, as the merges count
    them (rowid // ROW_GROUP_ROWS), read from DuckDB's storage: those a row group holds (its
    table's rows, deleted ones included: duckdb_tables' estimated_size) and those a scan sees. What
    earlier harvests left: a stop after a merge, or a harvest whose merges deleted less than
    VACUUM_BYTES, left them unrebuilt, and counted by the process alone a catalogue stopped or
    harvested often was never rebuilt. The rows this transaction inserted (rowids past the table's
    rows) are left out. Read once a harvest, by its first merge that deletes: the scan reads every
    row group's version info, which DuckDB then holds (a merge's own scans read its portal's row
    groups only): 0.27-0.30 s of CPU and 27 MiB for 110 row groups with deletes in 1.8 million
    columns, freed by the rebuild that follows; below VACUUM_BYTES, at most that is held for the
    rest of the harvest (docs/benchmarks.md, session 30)."""
    total = cur.execute("""SELECT estimated_size FROM duckdb_tables() WHERE database_name = current_database()
                           AND schema_name = 'main' AND table_name = $table""", {"table": table}).fetchone()[0]
    return {row[0] for row in cur.execute(f"""
        SELECT g.range FROM range(({total} + {ROW_GROUP_ROWS} - 1) // {ROW_GROUP_ROWS}) g
        LEFT JOIN (SELECT rowid // {ROW_GROUP_ROWS} AS g, count(*) AS seen FROM {table} WHERE rowid < {total}
                   GROUP BY ALL) s ON s.g = g.range
        WHERE coalesce(s.seen, 0) < least({ROW_GROUP_ROWS}, {total} - g.range * {ROW_GROUP_ROWS})""").fetchall()}


def _write_datasets(cur: duckdb.DuckDBPyConnection, staged: str, params: dict, rewritten: int) -> None:
    """The new and changed datasets of `_status` (`rewritten` changed) written from `staged`:
    every column as the staged record and this merge give it, but a changed one's first_seen,
    kept. Deleted and inserted again, or the table rebuilt when they are many (REBUILD_SHARE)."""
    select_fields = ", ".join(
        f"CAST(s.{f} AS TIMESTAMPTZ) AS {f}" if f in TIMESTAMP_FIELDS else f"s.{f}" for f in DATASET_FIELDS
    )
    written = f"""
        SELECT {select_fields}, coalesce(st.first_seen, $now) AS first_seen, $now AS last_seen,
               $now AS last_changed, NULL::TIMESTAMPTZ AS deleted_at, s.raw_hash, NULL::TIMESTAMPTZ AS missing_since
        FROM {staged} s JOIN _status st ON st.uid = s.uid WHERE st.status IN ('new', 'changed')"""
    changed = "(SELECT uid FROM _status WHERE status = 'changed')"
    if rewritten and rewritten >= REBUILD_SHARE * cur.execute("SELECT count(*) FROM datasets").fetchone()[0]:
        _rebuild_datasets(cur, f"SELECT * FROM datasets WHERE uid NOT IN {changed} UNION ALL BY NAME {written}",
                          params)
        return
    if rewritten:
        cur.execute(f"DELETE FROM datasets WHERE uid IN {changed}")
    # An insert on several DuckDB threads gathers each thread's rows apart, and appends those of a
    # thread with fewer than a row group to the transaction's rows a second time, the first copy
    # held until the statement ends: a description of 32 MiB was held twice (64 MiB of DuckDB's
    # OVERFLOW_STRINGS beside the staged Parquet's read, ~70 MiB), and the merge of its portal
    # retried with MERGE_MEMORY_LIMIT. On one thread the rows are appended once, as they come; an
    # insert of fewer rows than a row group a thread gains little from the others anyway. The bound
    # grows with the threads because what the copies hold does: on 16 DuckDB threads, the merge of
    # 16,384 or 50,000 new datasets did not fit MEMORY_LIMIT on all of them (peaks of 142 and 245 MiB
    # when let to run with 1 GB) and fits on one (45 and 102 MiB); a fixed count of rows would send a
    # many-core host's merges of a row group or more to the retry (docs/benchmarks.md, Nightly)
    threads = int(cur.execute("SELECT current_setting('threads')").fetchone()[0])
    written_rows = cur.execute("SELECT count(*) FROM _status WHERE status IN ('new', 'changed')").fetchone()[0]
    with uncut.one_thread(cur) if written_rows < threads * ROW_GROUP_ROWS else contextlib.nullcontext():
        cur.execute(f"INSERT INTO datasets BY NAME {written}", params)


def _rebuild_datasets(cur: duckdb.DuckDBPyConnection, rows: str, params: dict, *, key_after: bool = False) -> None:
    """`datasets` replaced, in the merge's transaction, by a table of the same definition
    holding `rows`: the key's index built once over them (see _rebuild_table)."""
    _rebuild_table(cur, "datasets", rows, params, key_after=key_after)


def _rebuild_table(cur: duckdb.DuckDBPyConnection, table: str, rows: str | list[tuple[str, dict]],
                   params: dict, *, key_after: bool = False) -> None:
    """`table` (a constant of this module) replaced, in the caller's transaction, by a table of
    the same definition (its key, NOT NULLs, column order and DECLARED_COMPRESSION) holding
    `rows` (a SELECT with `params`, or several SELECTs with parameters of their own, inserted one
    after the other). A view reads a table by name (open311_services). With `key_after`, the key's
    index is built once the rows are in, not grown row by row as they come: at 300 portals the
    reclaim of 284,799 datasets grew it past 48 MB (main needed 64; docs/benchmarks.md, Nightly);
    built after, and the copy on one DuckDB thread (Store.reclaim_datasets), it fits 40 MB. Only for
    rows that cannot repeat a key: DuckDB's refusal of a duplicate then names no value, where the
    key refuses a merge's uid staged twice by name."""
    ddl = cur.execute("""SELECT sql FROM duckdb_tables() WHERE database_name = current_database()
                         AND schema_name = 'main' AND table_name = $table""", {"table": table}).fetchone()[0]
    prefix = next((p for p in (f"CREATE TABLE {table}(", f'CREATE TABLE "{table}"(') if ddl.startswith(p)), None)
    if prefix is None:
        raise RuntimeError(f"the {table} table's definition is not as expected: {ddl[:80]!r}")
    columns = ddl[len(prefix):]
    for column, method in DECLARED_COMPRESSION.get(table, {}).items():   # (after the column's type)
        columns, found = re.subn(rf'(^|, )("?{column}"? \w+)', rf"\1\2 USING COMPRESSION {method}", columns, count=1)
        if not found:
            raise RuntimeError(f"the {table} table's definition has no column {column!r}: {ddl[:200]!r}")
    key = cur.execute("""SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = current_database()
                         AND schema_name = 'main' AND table_name = $table AND constraint_type = 'PRIMARY KEY'""",
                      {"table": table}).fetchone() if key_after else None
    if key:   # (made once the rows are in: see the docstring)
        columns, found = re.subn(r" PRIMARY KEY(?=[,)])|, PRIMARY KEY\([^)]*\)", "", columns)
        if found != 1:
            raise RuntimeError(f"the {table} table's definition does not name its key once: {ddl[:200]!r}")
    cur.execute(f"CREATE TABLE {table}_next(" + columns)
    for select, select_params in [(rows, params)] if isinstance(rows, str) else rows:
        cur.execute(f"INSERT INTO {table}_next BY NAME {select}", select_params)
    if key:
        names = ", ".join(f'"{name}"' for name in key[0])   # (the catalogue's own column names)
        cur.execute(f"ALTER TABLE {table}_next ADD PRIMARY KEY ({names})")
    cur.execute(f"DROP TABLE {table}")
    cur.execute(f"ALTER TABLE {table}_next RENAME TO {table}")


# The most rows of a table that the rebuild of VACUUMED_TABLES sorts at once (Store.vacuum): a
# portal's rows together needs no sort of the whole table (one of 576,636 distributions did not
# fit MEMORY_LIMIT at 300 portals, night 3's rebuild retried with MERGE_MEMORY_LIMIT). The batches
# are inserted on one DuckDB thread: an insert on several writes row groups of its own and leaves
# its last one part-filled, one per batch (200,000 rows in 10 batches made 15 row groups, not 13:
# the file ~10 MB larger at 10 portals), where one thread's inserts fill the last row group first
REBUILD_BATCH_ROWS = 2 * ROW_GROUP_ROWS


def _in_portal_batches(cur: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, dict]]:
    """`table`'s rows (a table of VACUUMED_TABLES, keyed by dataset_uid) as SELECTs (with their
    parameters) of about REBUILD_BATCH_ROWS rows each, each a range of dataset_uid, one after the
    other in the order of dataset_uid: a portal's rows together, as a sort of the whole table
    gives them, but sorted a batch at a time. A batch is whole portals, cut at the uid prefix
    `portal_id:` that starts its range (the ranges between the cuts cover every string: every
    row is in exactly one batch, whatever its uid holds); a portal larger than a batch is one
    alone, not sorted (its rows are together whatever their order)."""
    portals = cur.execute(f"""SELECT split_part(dataset_uid, ':', 1) || ':' AS prefix, count(*) FROM {table}
                              GROUP BY prefix ORDER BY prefix""").fetchall()
    starts, rows = [], 0   # each batch's first portal (its index)
    for number, (_, count) in enumerate(portals):
        if not starts or rows and rows + count > REBUILD_BATCH_ROWS:
            starts.append(number)
            rows = 0
        rows += count
    selects = []
    for first, end in zip(starts, [*starts[1:], len(portals)]):
        conditions, params = [], {}
        if first:
            conditions.append("dataset_uid >= $low")
            params["low"] = portals[first][0]
        if end < len(portals):
            conditions.append("dataset_uid < $high")
            params["high"] = portals[end][0]
        selects.append((f"SELECT * FROM {table}" + "".join(f" {word} {condition}" for word, condition
                                                          in zip(("WHERE", "AND"), conditions))
                        + (" ORDER BY dataset_uid" if end - first > 1 else ""), params))
    return selects or [(f"SELECT * FROM {table}", {})]


def _fresh_pages(pages: list[dict]) -> bool:
    return any(not page.get("kept") for page in pages)


def _listed_as_stored(stage: Stage, kept: list[str], stored_pages: list[tuple] | None) -> int | None:
    """How many ids a listing named that is the stored one, page for page (every stored page
    kept unread, and no entry read besides): their count (stored pages hold no id twice: a
    listing that named one twice stores none); None if it is not (or the stored pages are not
    known: Store.remembered)."""
    if stored_pages is None or os.path.getsize(stage.path("seen")) \
            or sorted(kept) != sorted(page_identity(key, params) for key, params, *_ in stored_pages) \
            or any(size is None for *_, size in stored_pages):
        return None
    return sum(size for *_, size in stored_pages)


def _track_missing(cur: duckdb.DuckDBPyConnection, stage: Stage, portal_id: str, now: datetime,
                   grace: timedelta | None, kept: list[str], listed_as_stored: int | None = None) -> tuple[int, bool]:
    """Missing and deleted datasets of a portal's merge; returns how many got deleted_at, and
    whether any dataset's row was written (missing, listed again or deleted: what
    dataset_events records).

    Listed are the ids the stage saw and those of the listing pages `kept` unread (known
    from the last listing: their ids are in listing_pages). A listed dataset is no longer
    missing. With `grace` (the listing was complete), a stored dataset it did not name
    becomes missing (its last_seen brought up to the portal's previous complete listing,
    the last one that named it) and is marked deleted once missing for `grace`; the
    listing's time is kept in portal_listings. An unchanged portal's night runs no statement
    that would write nothing (each a millisecond or more, in every portal of every night).

    `listed_as_stored`: the listing is the stored one, of that many ids (_listed_as_stored). Its
    ids are then every live dataset of the portal's that is not missing, when there are as
    many of those and none missing (each id on a stored page was seen by every merge since the
    page was stored: stored, not missing, not deleted): nothing to mark, and the ids are not
    read. Reading them cost 3 ms a portal at 100 portals and 6 ms at 300 (DuckDB reads
    listing_pages' list of ids whole, every portal's, for any row it returns)."""
    params = {"now": now, "portal": portal_id}
    cutoff = now - (grace or timedelta(0))
    if listed_as_stored is not None:
        missing, due, live = cur.execute(
            """SELECT count(*) FILTER (WHERE missing_since IS NOT NULL),
                      count(*) FILTER (WHERE deleted_at IS NULL AND missing_since <= $cutoff),
                      count(*) FILTER (WHERE deleted_at IS NULL AND missing_since IS NULL)
               FROM datasets WHERE portal_id = $portal""", {"portal": portal_id, "cutoff": cutoff}).fetchone()
        if not missing and live == listed_as_stored:
            if grace is not None:
                _listed(cur, portal_id, now, str(listed_as_stored))
            return 0, False
    # UNION ALL: an id twice changes no IN, and the count is of distinct ids (a UNION hashed
    # every listed id once more: 100,000 on an unchanged night, the largest part of its merge)
    cur.execute(f"""CREATE OR REPLACE TEMP TABLE _seen AS
                    SELECT unnest(uids) AS uid FROM {_read_jsonl('seen', SEEN_COLUMNS, stage.longest)}
                    UNION ALL SELECT $portal || ':' || unnest(ids) FROM listing_pages
                          WHERE portal_id = $portal AND list_contains({KEPT_PAGES}, {PAGE_IDENTITY})""",
                {"portal": portal_id, "seen": stage.path("seen"), "kept": json.dumps(kept)})
    seen = "(SELECT uid FROM _seen)"
    # missing ones, and those whose grace ends by now (most nights none: their statements are skipped)
    missing, due = cur.execute("""SELECT count(*) FILTER (WHERE missing_since IS NOT NULL),
                                         count(*) FILTER (WHERE deleted_at IS NULL AND missing_since <= $cutoff)
                                  FROM datasets WHERE portal_id = $portal""",
                               {"portal": portal_id, "cutoff": cutoff}).fetchone()
    written = 0
    if missing:
        written += cur.execute(f"""UPDATE datasets SET missing_since = NULL, last_seen = $now
                                   WHERE portal_id = $portal AND missing_since IS NOT NULL AND uid IN {seen}""",
                               params).fetchone()[0]
    removed = 0
    if grace is not None:
        gone = cur.execute(f"""
            UPDATE datasets SET missing_since = $now, last_seen = greatest(last_seen, coalesce(
                    (SELECT listed_at FROM portal_listings WHERE portal_id = $portal), last_seen))
            WHERE portal_id = $portal AND deleted_at IS NULL AND missing_since IS NULL AND uid NOT IN {seen}""",
                           params).fetchone()[0]
        written += gone
        if gone or due:   # (a dataset missing before, or missing from now on with no grace)
            removed = cur.execute("""UPDATE datasets SET deleted_at = $now WHERE portal_id = $portal
                                     AND deleted_at IS NULL AND missing_since <= $cutoff""",
                                  {"now": now, "portal": portal_id, "cutoff": cutoff}).fetchone()[0]
        _listed(cur, portal_id, now, "(SELECT count(DISTINCT uid) FROM _seen)")
    cur.execute("DROP TABLE _seen")
    return removed, bool(written or removed)


def _listed(cur: duckdb.DuckDBPyConnection, portal_id: str, now: datetime, datasets: str) -> None:
    """The portal's complete listing, of `datasets` (SQL), kept in portal_listings: an UPDATE of
    the portal's row (a third of INSERT OR REPLACE's CPU); its first listing inserts it."""
    params = {"now": now, "portal": portal_id}
    if not cur.execute(f"UPDATE portal_listings SET listed_at = $now, datasets = {datasets} WHERE portal_id = $portal",
                       params).fetchone()[0]:
        cur.execute(f"INSERT INTO portal_listings SELECT $portal, $now, {datasets}", params)


# a listing page as the merge names it: its key and the request that gave it
PAGE_IDENTITY = "page_key || chr(10) || coalesce(params, '')"
# the identities of the pages a merge keeps, given as one JSON text: DuckDB converts a list
# parameter a value at a time, trying each against pandas (an import tried and refused per
# value in a harvest, catalog.lazy): 13-30 ms a statement for an unchanged night's 1,001 pages
KEPT_PAGES = "from_json($kept, '[\"VARCHAR\"]')"
# the uids a merge restamps (see _merge_staged), given as one JSON text, for the same reason
RESTAMPED = "from_json($restamped, '[\"VARCHAR\"]')"
PAGE_SCHEMA = pa.schema([("portal_id", _string), ("page_key", _string), ("params", _string),
                         ("next_params", _string), ("total", pa.int64()), ("ids", pa.list_(_string)),
                         ("lookups", pa.list_(_string))])


# a portal's merge notes in its run's row, in its own transaction, that it committed (what the
# catalogue holds then says so, whenever a stop comes: Store.merged_in_run); listing_complete,
# NULL from the run's start, is set, and the counts (the run's end writes them again, with its own)
MERGE_OF_THE_RUN = """UPDATE harvest_runs SET listing_complete = $complete, new = $new, changed = $changed,
                             unchanged = $unchanged + $restamped, removed = $removed
                      WHERE run_id = $run AND portal_id = $portal"""


def page_identity(page_key: str, params: str | None) -> str:
    return f"{page_key}\n{params or ''}"


class Store:
    """The catalogue database. Writes are serialised: one portal merge at a time."""

    def __init__(self, db_path: str | Path, *, checked: os.stat_result | None = None):
        self.db_path = Path(db_path)
        self._con = connect(self.db_path, checked=checked)   # (`checked`: connect's)
        # the file attached (the one checked, or found at the open): attached again (_reattach) only while it
        # is the file at the path; until session 45 the path was attached, whatever file it held by then
        self.attached_file = checked or os.stat(self.db_path)
        # (reentrant: a checkpoint holds it from its CHECKPOINT to the re-attach its failure needs)
        self._write_lock = threading.RLock()
        self._gate = _Gate()   # the statements of its cursors, against a re-attach (see _Gate)
        # taken to detach and attach the catalogue again, and by a use that finds it detached
        self._attach_lock = threading.Lock()
        self._detached: str | None = None   # why, while it is (see _reattach)
        self._stop = threading.Event()   # a stop: no wait for the catalogue's file goes on (stop_waiting)
        self._large_writes = 0   # writes retried with MERGE_MEMORY_LIMIT, running now
        self._invalidated = False   # by a checkpoint that failed: attached again before any use
        self._invalidated_by = ""   # that checkpoint's error
        # the catalogue's write-ahead log as this process last held it open (_note_log): where the catalogue is
        # found replaced, the log at the path is this run's only when it is that file (_set_aside_log)
        self._log_held: os.stat_result | None = None
        self._log_set_aside: str | None = None   # (what _set_aside_log said, once it has)
        # the last checkpoint's failure for want of room (a DiskFull naming the file and the disk), None
        # once one is written: the writer says it, what it committed being in the log alone till then
        self.checkpoint_found_no_room: OSError | None = None
        # portal -> its listing_pages rows (page_key, params, next_params, total, number of ids), and
        # portal -> the status of its last run (None: none), read for a whole harvest at once
        # (remembered); a portal's listing until its merge, its last run's until its own begins
        self._listings: dict[str, list[tuple]] = {}
        self._last_runs: dict[str, str | None] = {}
        # VACUUMED_TABLES' row groups that merges deleted rows from since the table was last
        # rebuilt (by rowid // ROW_GROUP_ROWS: an estimate, as a checkpoint may merge groups), those
        # earlier harvests left among them once read (_merge: the first merge that deletes reads them)
        self._deleted_groups: dict[str, set[int]] = {}
        self._earlier_deletes_read = False

    @property
    def con(self) -> uncut.Connection:
        """The writable connection, the catalogue its current database. Found detached (attaching
        it again failed, or a stop ended the wait for it), it is attached first; CatalogueDetached
        if it cannot be. Found invalidated by a failed checkpoint, it is detached and attached again
        first; CatalogueInvalidated if it cannot be."""
        if self._detached is not None:
            self._attach_again()
        elif self._invalidated:   # (detached, it is no longer: attaching replays its log)
            self._attach_invalidated()
        return self._con

    @con.setter
    def con(self, con: uncut.Connection) -> None:
        self._con = con

    def stop_waiting(self) -> None:
        """A stop: a wait for another statement to let the catalogue's file go ends (AttachStopped)."""
        self._stop.set()

    def close(self) -> None:
        """Checkpoint, then close: DuckDB's own checkpoint as it closes fails in silence when it
        does not fit the memory limit (the log left for the next open to replay, and no read
        copy published); this one is retried with MERGE_MEMORY_LIMIT, or logged."""
        try:
            if self._detached is not None and how_replaced(self.db_path, self.attached_file):
                pass   # (its file replaced, never attached again: CatalogueReplaced, said by the use that found it)
            elif self.wal_bytes():
                self.checkpoint("the checkpoint as the catalogue closes")
            else:   # (a checkpoint that found no room earlier, its log since checkpointed by DuckDB: nothing kept)
                self.checkpoint_found_no_room = None
        finally:
            self._con.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the catalogue, its statements never meeting it detached (see _Gate)."""
        cur = _GatedCursor(self.con.cursor()._con, self)
        try:
            cur.execute(f"USE {CATALOGUE}")  # a cursor starts in the connection's in-memory database
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute(NO_ARROW_LAMBDAS)   # (a cursor has settings of its own)
        except BaseException:   # (StoreCursorMisuse, say: not left open)
            cur.close()
            raise
        return cur

    # -- staging --------------------------------------------------------------------

    def new_stage(self, portal_id: str | None = None) -> Stage:
        """A stage for one portal's records; with `portal_id` (the portal whose entries it
        holds, all of them), its raw loads compare them with that portal's datasets alone."""
        root = self.db_path.parent / f".{self.db_path.name}.staging"
        root.mkdir(parents=True, exist_ok=True)
        load = self.load_raw if portal_id is None else functools.partial(self.load_raw, portal_id=portal_id)
        return Stage(Path(tempfile.mkdtemp(dir=root)), load, ROW_GROUP_ROWS, RAW_INSERT_BYTES)

    @staticmethod
    def discard(stage: Stage) -> None:
        """Remove a stage, whatever state a failure left it in (never raises). Rows still
        buffered are dropped, not flushed: nothing more reaches raw_records."""
        try:
            stage.abandon()
        except Exception:
            pass
        finally:
            shutil.rmtree(stage.directory, ignore_errors=True)

    def active_count(self, portal_id: str) -> int:
        with self._write_lock:
            return self.con.execute("SELECT count(*) FROM datasets WHERE portal_id = ? AND deleted_at IS NULL",
                                    [portal_id]).fetchone()[0]

    def modified_after(self, portal_id: str, after: datetime, limit: int) -> tuple[int, list[tuple[str, datetime]]]:
        """The portal's datasets not deleted whose `modified` is later than `after`: how many, and
        the source id and `modified` of the first `limit` of them, latest first. (Few datasets are
        dated ahead: the row groups' `modified` ranges skip nearly all of them unread.)"""
        with self._write_lock:
            rows = self.con.execute(
                """SELECT source_id, modified, count(*) OVER () FROM datasets
                   WHERE portal_id = ? AND deleted_at IS NULL AND modified > ?
                   ORDER BY modified DESC, source_id LIMIT ?""", [portal_id, after, limit]).fetchall()
        return (rows[0][2] if rows else 0), [(source_id, modified) for source_id, modified, _ in rows]

    def maybe_publishing_secrets(self, portal_id: str) -> list[dict]:
        """The portal's datasets not deleted of which a link or a text an export publishes may hold a
        secret (catalog.links.maybe_secret_sql: most are passed by in SQL), by uid, each as a record of
        those fields (its uid, source id, links, texts, keywords and themes, its distributions' links and texts
        and its columns' texts, by position) that catalog.links.secret_links reads."""
        def any_of(columns, text=False, texts=False) -> str:
            return " OR ".join(maybe_secret_sql(c, text, texts) for c in columns)

        # the portal's rows of distributions and columns, by their uids' range (`portal:` up to `portal;`, ';'
        # following ':'), which DuckDB skips the other portals' row groups by, where starts_with read them all
        its_own = "dataset_uid >= $low AND dataset_uid < $high"
        bounds = {"low": f"{portal_id}:", "high": f"{portal_id};"}
        with self._write_lock:
            maybe = [uid for (uid,) in self.con.execute(f"""
                SELECT uid FROM datasets WHERE portal_id = $portal AND deleted_at IS NULL
                    AND ({any_of(RECORD_LINKS)} OR {any_of(RECORD_TEXTS, text=True)}
                         OR {any_of(RECORD_TEXT_LISTS, texts=True)})
                UNION SELECT dataset_uid FROM distributions WHERE {its_own}
                    AND ({any_of(DISTRIBUTION_LINKS)} OR {any_of(DISTRIBUTION_TEXTS, text=True)})
                UNION SELECT dataset_uid FROM columns WHERE {its_own} AND ({any_of(COLUMN_TEXTS, text=True)})""",
                {"portal": portal_id, **bounds}).fetchall()]
            if not maybe:   # (a portal's usual night)
                return []
            # (their distributions and columns gathered apart from the datasets: a list of each dataset's in a
            # subquery gathered every column of the catalogue, 1.5 million at 100,000 datasets, for a few)
            found = self.con.execute(f"""
                WITH x AS (SELECT dataset_uid AS uid, list(struct_pack({
                               ", ".join(f'"{c}" := "{c}"' for c in DISTRIBUTION_LINKS + DISTRIBUTION_TEXTS)})
                               ORDER BY position) AS links
                           FROM distributions WHERE {its_own} AND dataset_uid IN (SELECT unnest($maybe))
                           GROUP BY dataset_uid),
                     c AS (SELECT dataset_uid AS uid, list(struct_pack({
                               ", ".join(f'"{c}" := "{c}"' for c in COLUMN_TEXTS)}) ORDER BY position) AS texts
                           FROM columns WHERE {its_own} AND dataset_uid IN (SELECT unnest($maybe))
                           GROUP BY dataset_uid)
                SELECT d.uid, d.source_id, {", ".join(f'd."{c}"' for c in RECORD_LINKS + RECORD_TEXTS + RECORD_TEXT_LISTS)},
                       x.links, c.texts
                FROM datasets d LEFT JOIN x USING (uid) LEFT JOIN c USING (uid)
                WHERE d.portal_id = $portal AND d.deleted_at IS NULL AND d.uid IN (SELECT unnest($maybe))
                ORDER BY d.uid""", {"portal": portal_id, "maybe": maybe, **bounds}).fetchall()
        names = ("uid", "source_id") + RECORD_LINKS + RECORD_TEXTS + RECORD_TEXT_LISTS + ("distributions", "columns")
        return [dict(zip(names, row)) for row in found]

    def exported_uids(self) -> dict[str, str]:
        """catalog.links.exported_uids of the catalogue, under the write lock: a portal's thread asks it
        as another's merge uses the connection (a connection's statements from two threads at once
        each fetch the result of whichever ran last)."""
        from catalog import links

        with self._write_lock:
            return links.exported_uids(self.con)

    def warned_of(self, portal_id: str, error_type: str, source_ids: list[str]) -> set[str]:
        """Those of `source_ids` of which a harvest_errors row of `error_type` has been written, in any run."""
        if not source_ids:
            return set()
        with self._write_lock:
            return {source_id for (source_id,) in self.con.execute(
                "SELECT DISTINCT source_id FROM harvest_errors WHERE portal_id = ? AND error_type = ? "
                "AND source_id IN (SELECT unnest(?))", [portal_id, error_type, source_ids]).fetchall()}

    def raw_hashes(self, portal_id: str) -> dict[str, str]:
        """uid -> raw hash of the portal's datasets not deleted (what an unchanged entry matches)."""
        with self._write_lock:
            return dict(self.con.execute("SELECT uid, raw_hash FROM datasets WHERE portal_id = ? AND deleted_at IS NULL",
                                         [portal_id]).fetchall())

    def stored_details(self, uids: list[str]) -> dict[str, str | None]:
        """uid -> the details (compact JSON, or None) of the stored version of each of `uids`
        the catalogue holds: one query for a batch of them. raw_records has no index (see
        migration 0005), so a batch scans the rows of raw_records within its uids' range (one
        portal's, their uids sharing its prefix): at 100,000 rows, 1,000 uids spread over all of
        them took 0.1-0.3 s warm, 1.4-1.8 s cold. Finding the rows is cheap (a batch's 1,000 of
        50,000: 0.05 s); reading their `details` is not: a vector of them is decompressed whole,
        and a batch whose uids are spread over the portal needs nearly every vector, so a batch
        costs about what reading all the portal's details does, whatever its size (hence the
        harvest's large batches, harvester.mapping.LOOKUPS_FAILED_BATCH). An ART index on uid
        would not serve it: DuckDB 1.5 scans rather than look up 1,000 values (1% of the rows),
        nor does selecting by rowid (the same scan)."""
        with self._write_lock:
            return dict(self.con.execute(
                """SELECT d.uid, r.details FROM datasets d JOIN raw_records r ON r.uid = d.uid AND r.raw_hash = d.raw_hash
                   WHERE d.uid IN (SELECT unnest($uids::VARCHAR[]))""", {"uids": uids}).fetchall())

    def failed_lookups(self, portal_id: str, since: datetime, error_types: tuple[str, ...]) -> dict[str, str]:
        """uid -> the details (compact JSON) of the stored version of each of the portal's live
        datasets whose details record a failed lookup (`lookup_failed`) of `error_types` that a
        `fetch` error of harvest_errors reported since `since`: the lookups not asked again
        (harvester.mapping.SETTLED_LOOKUP_FAILURES). The error rows are found first (a scan of
        the week's rows: a few ms in 2,000,000), and only their datasets' details are read, a
        portal with none reading none (filtering the join of every stored details document
        by its `lookup_failed` parsed them all: 0.2 s of CPU at 100,000 datasets)."""
        with self._write_lock:
            ids = [row[0] for row in self.con.execute(
                """SELECT DISTINCT source_id FROM harvest_errors
                   WHERE portal_id = $portal AND stage = 'fetch' AND occurred_at >= $since
                     AND list_contains($types, error_type) AND source_id IS NOT NULL""",
                {"portal": portal_id, "since": since, "types": list(error_types)}).fetchall()]
        if not ids:
            return {}
        stored = self.stored_details([f"{portal_id}:{source_id}" for source_id in ids])
        return {uid: details for uid, details in stored.items()
                if details and json.loads(details).get("lookup_failed", {}).get("error_type") in error_types}

    def refused_lookups(self, portal_id: str, error_types: tuple[str, ...]) -> set[str]:
        """The source ids a `fetch` error of `error_types` was ever reported for in the portal: every
        dataset whose stored details record a lookup refused for good (`lookup_failed`, added only
        on the night such an error is reported) is among them. One scan of the error rows, no
        details read (harvester.mapping.Mapper: a Hub entry on a page held as it is, its lookup not
        due, is its stored version unless it is one of these)."""
        with self._write_lock:
            return {row[0] for row in self.con.execute(
                """SELECT DISTINCT source_id FROM harvest_errors WHERE portal_id = $portal AND stage = 'fetch'
                   AND list_contains($types, error_type) AND source_id IS NOT NULL""",
                {"portal": portal_id, "types": list(error_types)}).fetchall()}

    @contextmanager
    def remembered(self, portal_ids: list[str]) -> Iterator[None]:
        """What each portal's harvest reads before it starts, read for all of `portal_ids` in two
        statements while the block runs (a harvest of those portals): their latest listing pages
        (settled_pages, known_pages) and their last runs' status (prune_raw). A statement a portal
        cost each unchanged portal 3 ms for its pages at 100 portals (DuckDB reads the whole of
        listing_pages' list of ids, every portal's, for any of its rows: 87,547 ids), and 1-2 ms
        for its last run (harvest_runs grows every night), in every night. A portal's pages are
        forgotten at its merge, which replaces them."""
        portals = {"portals": json.dumps(portal_ids)}
        with self._write_lock:
            pages = self.con.execute(
                """SELECT portal_id, page_key, params, next_params, total, len(ids) FROM listing_pages
                   WHERE list_contains(from_json($portals, '["VARCHAR"]'), portal_id)""", portals).fetchall()
            last_runs = self.con.execute(
                """SELECT portal_id, arg_max(status, started_at) FROM harvest_runs
                   WHERE list_contains(from_json($portals, '["VARCHAR"]'), portal_id) GROUP BY portal_id""",
                portals).fetchall()
        self._listings = {portal_id: [] for portal_id in portal_ids}
        for portal_id, *row in pages:
            self._listings[portal_id].append(tuple(row))
        self._last_runs = {portal_id: None for portal_id in portal_ids} | dict(last_runs)
        try:
            yield
        finally:
            self._listings, self._last_runs = {}, {}

    def _listing(self, portal_id: str) -> list[tuple]:
        """The portal's listing_pages rows: page_key, params, next_params, total, number of ids."""
        remembered = self._listings.get(portal_id)
        if remembered is not None:
            return remembered
        with self._write_lock:
            return self.con.execute("""SELECT page_key, params, next_params, total, len(ids) FROM listing_pages
                                       WHERE portal_id = $portal""", {"portal": portal_id}).fetchall()

    def settled_pages(self, portal_id: str) -> set[str]:
        """The pages of the portal's latest committed listing (see migration 0009)."""
        return {page_key for page_key, *_ in self._listing(portal_id)}

    def known_pages(self, portal_id: str, namespace: str) -> list[tuple]:
        """The pages of the portal's latest committed listing read under `namespace` (the
        mapping), with what the next listing needs to know them unread: (digest, params,
        next params, total, number of ids or None)."""
        prefix = f"{namespace}:"
        return [(key[len(prefix):], params, *rest) for key, params, *rest in self._listing(portal_id)
                if key.startswith(prefix) and params is not None]

    def page_lookups(self, portal_id: str, page: str) -> list[str]:
        """The source ids on a stored listing page (page_identity) whose entries need a details
        lookup kept while they are listed as stored (listing_pages.lookups, migration 0018)."""
        with self._write_lock:
            row = self.con.execute(f"""SELECT lookups FROM listing_pages WHERE portal_id = $portal
                                       AND {PAGE_IDENTITY} = $page""", {"portal": portal_id, "page": page}).fetchone()
        return list(row[0] or []) if row else []

    def stored_entries(self, uids: list[str]) -> dict[str, str]:
        """uid -> the raw entry (compact JSON) of the stored version of each of `uids` the
        catalogue holds: one query for a batch of them, which costs what `stored_details` does
        (a scan of the portal's raw versions within the uids' range)."""
        with self._write_lock:
            return dict(self.con.execute(
                """SELECT d.uid, r.raw FROM datasets d JOIN raw_records r ON r.uid = d.uid AND r.raw_hash = d.raw_hash
                   WHERE d.uid IN (SELECT unnest($uids::VARCHAR[]))""", {"uids": uids}).fetchall())

    def listed_on(self, portal_id: str, pages: list[str], ids: set[str]) -> set[str]:
        """Which of `ids` the stored listing pages `pages` (page_identity) list."""
        with self._write_lock:
            return {row[0] for row in self.con.execute(
                f"""SELECT id FROM (SELECT unnest(ids) AS id FROM listing_pages
                                    WHERE portal_id = $portal AND list_contains($pages, {PAGE_IDENTITY}))
                    WHERE id IN (SELECT unnest($ids::VARCHAR[]))""",
                {"portal": portal_id, "pages": pages, "ids": sorted(ids)}).fetchall()}

    def prune_raw(self, portal_id: str, *, unless_after: str | None = None) -> None:
        """Drop raw versions no dataset points at (superseded, or written by a failed run).
        `unless_after`: a run id; nothing to do when the portal's run before it ended ok (a
        run that fails prunes what it wrote, and one that ends ok leaves nothing unpointed)."""
        if unless_after is not None and portal_id in self._last_runs:   # (read before this run began: remembered)
            if self._last_runs.pop(portal_id) in (None, "ok"):
                return
            unless_after = None
        with self._write_lock:
            if unless_after is not None and self.con.execute(
                    """SELECT status FROM harvest_runs WHERE portal_id = $portal AND run_id <> $run
                       ORDER BY started_at DESC LIMIT 1""", {"portal": portal_id, "run": unless_after}
            ).fetchall() in ([], [("ok",)]):
                return
            self.con.execute(PRUNE_RAW, {"portal": portal_id})

    # -- the per-portal merge -------------------------------------------------------

    def commit_portal(self, stage: Stage, portal_id: str, now: datetime, *, mark_deleted: bool,
                      rewrite: bool = False, grace: timedelta = timedelta(0),
                      pages: list[dict] | None = None, run_id: str | None = None,
                      restamped: set[str] = frozenset()) -> dict[str, int]:
        """Merge a closed stage into the catalogue in one transaction.

        new: never stored; changed: raw hash differs, or it was marked deleted and is back
        (with `rewrite`, `harvest --full`: or its re-mapped fields, distributions or columns
        differ from those stored); unchanged: not written at all, last_changed kept (see
        `portal_listings`). With `mark_deleted` (a
        complete listing), the portal's stored datasets that were not listed become
        missing, and get deleted_at once missing for `grace`; none is purged. `pages`: the
        listing's pages whose every entry this merge leaves stored as it is on the page;
        they replace the portal's previous ones (a page `kept` unread that has `forget`: its
        ids listed all the same, its row dropped). What it did to each dataset goes into
        dataset_events under `run_id` (catalog.events). `restamped`: uids whose staged
        version differs only in civicat's record of a refused lookup (see _merge_staged).
        """
        stage.close()
        return_freed_memory()
        stored_pages = self._listings.pop(portal_id, None)   # (replaced by this merge's pages)
        try:
            counts = self._with_room(f"{portal_id}: the merge",
                                     lambda: self._merge(stage, portal_id, now, mark_deleted=mark_deleted, rewrite=rewrite,
                                                         grace=grace, pages=pages or [], run_id=run_id,
                                                         restamped=restamped, stored_pages=stored_pages))
        except StoppedAfterStoring as stop:   # (as its COMMIT ran: stored, and no upkeep begun)
            raise StoppedAfterStoring(stop.counts, self.left_by_stop(["its merge's COMMIT"])) from stop
        done: list[str] = []   # the upkeep's steps finished (a stop held through their last statement)
        try:   # (the portal is stored: a stop from here on leaves only this upkeep undone)
            if self.deletes_held() >= VACUUM_BYTES:
                pending = [table for table in VACUUMED_TABLES if self._deleted_groups.get(table)]
                try:
                    self.vacuum(f"{portal_id}: the rebuild of the tables its merge left holding deletes")
                finally:
                    done += [f"the rebuild of {table}" for table in pending if not self._deleted_groups.get(table)]
            logged = self.wal_bytes()
            if logged >= CHECKPOINT_WAL_BYTES:
                try:
                    self.checkpoint(f"{portal_id}: the checkpoint after its merge")
                finally:
                    if self.wal_bytes() < logged:   # (written into the file, whatever came after)
                        done.append("the checkpoint after its merge")
        except KeyboardInterrupt as stop:
            raise StoppedAfterStoring(counts, self.left_by_stop(done)) from stop
        return counts

    def merged_in_run(self, run_id: str, portal_id: str) -> dict[str, int] | None:
        """The counts of the portal's merge in run `run_id` if it committed (as commit_portal gave them),
        read from the catalogue: a stop that came just after its COMMIT returned, before civicat noted it
        (no StoppedAfterStoring), left it so. None: the merge did not commit. MergeOutcomeUnknown: the
        catalogue could not say (the read failed, or waited MERGED_READ_WAIT_SECONDS in vain).

        Read on a cursor of its own, not under the write lock: with --workers above 1 another portal's
        merge holds that lock as long as it runs (a portal thread's merge runs to its end after a stop),
        and the stop's cleanup waited for it; DuckDB shows the cursor what has committed. The cursor
        passes the store's gate, whose exclusive holder (a checkpoint, a re-attach) it waits for a
        bounded time."""
        hold = object()
        try:
            try:   # (the catalogue cannot be detached nor invalidated while the hold lasts; taken inside: _Gate)
                self._gate.hold_shared(hold, MERGED_READ_WAIT_SECONDS)
                if self._detached is not None:
                    raise CatalogueDetached(f"the catalogue was detached {self._detached} and is not attached yet")
                if self._invalidated:
                    raise CatalogueInvalidated(f"the catalogue was invalidated by a checkpoint that failed "
                                               f"({self._invalidated_by}) and is not attached again yet")
                side = self._con.cursor()   # (created, used and closed within the hold)
                try:
                    side.execute(f"USE {CATALOGUE}")
                    row = side.execute("""SELECT new, changed, unchanged, removed FROM harvest_runs
                                          WHERE run_id = $run AND portal_id = $portal AND listing_complete IS NOT NULL""",
                                       {"run": run_id, "portal": portal_id}).fetchone()
                finally:
                    side.close()
            finally:
                self._gate.holds.pop(hold, None)
        except duckdb.Error as exc:
            raise MergeOutcomeUnknown(str(exc)) from exc
        return None if row is None else dict(zip(("new", "changed", "unchanged", "removed"), row))

    def left_by_stop(self, done: list[str]) -> str:
        """What a stop after a portal's merge committed left of the upkeep that follows it
        (commit_portal), said for the portal's run; `done`: the steps that finished all the same."""
        left = []
        pending = [table for table in VACUUMED_TABLES if self._deleted_groups.get(table)]
        if pending and self.deletes_held() >= VACUUM_BYTES:
            left.append(f"the rebuild of {' and '.join(pending)} that frees the memory DuckDB holds for the rows "
                        "merges deleted was not done (nothing of the catalogue is missing); a later harvest rebuilds "
                        "them after its first merge that deletes rows")
        if self.wal_bytes() >= CHECKPOINT_WAL_BYTES:
            left.append("the checkpoint after its merge was not done (nothing is lost: the catalogue's close, or its "
                        "next open, writes the log into the file)")
        said = "; ".join(left) or "nothing was left undone"
        return f"{said} ({' and '.join(done)} finished before the stop took effect)" if done else said

    def deletes_held(self) -> int:
        """About how much memory DuckDB holds for VACUUMED_TABLES' row groups with deletes (see
        VACUUM_BYTES): those the merges of this store deleted rows from since their last rebuild."""
        # (read without the write lock, while another portal's thread may take a rebuilt table out
        # under it: the values listed at once, not iterated as the dict changes)
        return ROW_GROUP_DELETES_BYTES * sum(map(len, list(self._deleted_groups.values())))

    def vacuum(self, what: str) -> None:
        """VACUUMED_TABLES that merges deleted rows from written anew, each in a transaction of its
        own (with the MERGE_MEMORY_LIMIT retry), freeing what DuckDB held for their deletes. A
        failure is logged, not raised: the table is as it was, and rebuilt after a later merge."""
        for table in VACUUMED_TABLES:
            def rebuild(table: str = table) -> None:
                with self._write_lock:   # (the groups, read and reset under it: portals merge in threads)
                    if not self._deleted_groups.get(table):   # (none, or rebuilt by another portal's thread)
                        return
                    cur = self.cursor()
                    try:
                        # (a stop ends the copy: the table as it was; on one DuckDB thread, see REBUILD_BATCH_ROWS)
                        with self._one_thread(), stoppable_transaction(cur):
                            # in the order of their dataset: a portal's rows together, in as few row groups as
                            # its share (in DuckDB's threads' order, each rebuild spread them over more, until
                            # every merge deleted rows from nearly all and each was followed by a rebuild)
                            _rebuild_table(cur, table, _in_portal_batches(cur, table), {})
                    except StoppedAfterCommit:   # (rebuilt all the same)
                        del self._deleted_groups[table]
                        raise
                    finally:
                        cur.close()
                    del self._deleted_groups[table]
            try:
                self._with_room(f"{what} ({table})", rebuild)
            except duckdb.Error as exc:
                log.warning("%s (%s) failed (%s): the table is kept as it was", what, table, exc)

    def reclaim_datasets(self) -> bool:
        """`datasets` written anew if more than RECLAIM_SHARE of the rows it holds are deleted ones
        (in a transaction of its own, with the MERGE_MEMORY_LIMIT retry); returns whether it was. A
        failure is logged, not raised: the table is as it was, and reclaimed by a later harvest."""
        def rebuild() -> bool:
            with self._write_lock:
                cur = self.cursor()
                try:
                    held = cur.execute("""SELECT estimated_size FROM duckdb_tables() WHERE database_name =
                                          current_database() AND schema_name = 'main' AND table_name = 'datasets'""").fetchone()[0]
                    if held - cur.execute("SELECT count(*) FROM datasets").fetchone()[0] <= RECLAIM_SHARE * held:
                        return False
                    # (a stop ends the copy: the table as it was; on one DuckDB thread: on two, each with a
                    # row group of its own in memory, the copy did not fit 48 MB at 300 portals)
                    with self._one_thread(), stoppable_transaction(cur):
                        _rebuild_datasets(cur, "SELECT * FROM datasets", {}, key_after=True)   # (in the order they lie)
                    return True
                finally:
                    cur.close()
        try:
            return self._with_room("the rebuild of datasets' deleted rows", rebuild)
        except duckdb.Error as exc:
            log.warning("the rebuild of datasets' deleted rows failed (%s): the table is kept as it was", exc)
            return False

    def wal_bytes(self) -> int:
        """The size of the catalogue's write-ahead log (what is committed and not checkpointed)."""
        try:
            return self.db_path.with_name(self.db_path.name + ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    def checkpoint(self, what: str) -> bool:
        """Write what the log holds into the file, and free the memory it held (with the
        MERGE_MEMORY_LIMIT retry). A failure is logged, not raised: what it would have written
        is committed, in the log; returns whether it was written. The store's cursors wait from
        the CHECKPOINT to the re-attach a failed one needs (_Gate)."""
        def checkpoint() -> None:
            with self._write_lock:
                if self._invalidated:   # (the retry: attached again with MERGE_MEMORY_LIMIT's room)
                    self._reattach()
                try:
                    self._note_log()   # (a failed CHECKPOINT closes the log: known as this run's before it)
                    self.con.execute("CHECKPOINT")
                except duckdb.Error as exc:
                    self._note_invalidated(exc)
                    raise
        with self._write_lock:
            try:
                with self._gate.exclusive(self._stop, "checkpointed"):
                    try:
                        self._with_room(what, checkpoint)
                    finally:
                        if self._invalidated:   # (the catalogue usable again, its log replayed)
                            try:
                                self._reattach()
                            except duckdb.Error as exc:   # (the next use tries again, or says so: see con)
                                log.error("the catalogue could not be attached again after %s: %s", what, exc)
                self.checkpoint_found_no_room = None
                return True
            except duckdb.Error as exc:
                from catalog.disk import disk_full

                self.checkpoint_found_no_room = disk_full(exc, self.db_path)
                log.warning("%s failed (%s): the log is kept, and checkpointed later", what,
                            self.checkpoint_found_no_room or exc)
                return False

    def _reattach(self) -> None:
        """The catalogue detached and attached again (the write lock held; see _with_room and
        checkpoint); the connection and its settings stay. Should the attach fail, or a stop end
        its wait, the store knows it detached: its next use attaches it or fails (see con). The
        statements of the store's cursors wait meanwhile, and it waits for theirs (_Gate)."""
        with self._gate.exclusive(self._stop, "detached and attached again"), self._attach_lock:
            self._note_log()
            side = self._con.cursor()   # (in the in-memory database: the connection's USE fails on it)
            try:
                side.execute(f"DETACH DATABASE IF EXISTS {CATALOGUE}")   # (already, by a failed attempt)
            finally:
                side.close()
            self._detached = "to be attached again after a checkpoint or a write that did not fit"
            self._attach_with_room()

    def _note_invalidated(self, exc: duckdb.Error) -> None:
        """A failed checkpoint's error (`exc`, any DuckDB error a use met) invalidated the catalogue:
        the store's next use attaches it again first (con, Store.cursor's cursors). A CHECKPOINT not
        run by checkpoint() (_restore_memory_limit's, DuckDB's own after a COMMIT) left it so unseen:
        every statement after it failed, the harvest's and the store's other cursors' alike."""
        if _invalidated_by_checkpoint(exc):
            self._invalidated, self._invalidated_by = True, str(exc)

    def _attach_invalidated(self) -> None:
        """The catalogue a failed checkpoint invalidated, detached and attached again (once the store's
        other cursors' statements and transactions have ended: _Gate), or CatalogueInvalidated."""
        with self._write_lock:
            if not self._invalidated:   # (by another thread meanwhile)
                return
            try:
                self._reattach()
            except (duckdb.Error, AttachStopped) as exc:
                why = f"was invalidated by a checkpoint that failed ({self._invalidated_by})"
                raise self._not_attached(CatalogueInvalidated, why, exc) from exc

    def _not_attached(self, error: type[duckdb.Error], why: str, exc: BaseException) -> duckdb.Error:
        return error(f"the catalogue {self.db_path} {why} and could not be attached again ({exc}); nothing it "
                     "committed is lost: its next open replays its log")

    def _attach_again(self) -> None:
        """The catalogue, found detached, attached (waiting for another statement to let its file
        go, unless the harvest was stopped), or CatalogueDetached."""
        with self._attach_lock:
            if self._detached is None:   # (by another thread meanwhile)
                return
            try:
                self._attach_with_room()
            except (duckdb.Error, AttachStopped) as exc:
                raise self._not_attached(CatalogueDetached, f"was detached {self._detached}", exc) from exc

    def _attach_with_room(self) -> None:
        """The detached catalogue attached (the attach lock held) with MERGE_MEMORY_LIMIT: the ATTACH
        replays its log (up to CHECKPOINT_WAL_BYTES, or what a failed checkpoint left), which did not
        fit the small limit (the attach after a checkpoint's retry, with that limit back). Only the
        file it had attached (attached_file): another put at the path since (a backup restored, a
        program's own file renamed over it) is CatalogueReplaced, left detached (every later use says
        so), that file not attached, nor, where it came within the ATTACH, used once attached."""
        self._refuse_a_replacement("was to be attached again")
        self._con.execute(f"SET memory_limit = '{MERGE_MEMORY_LIMIT}'")
        try:
            _attach_when_let_go(self._con, self.db_path, self._stop)
        finally:
            if not self._large_writes:   # (a write retried with room still runs: it puts the limit back)
                self._restore_memory_limit()
        try:
            self._refuse_a_replacement("was attached again")
            if open_here(self.attached_file) is False:   # (replaced within the ATTACH and put back)
                raise CatalogueReplaced(f"{self.db_path} was replaced by another file as it was attached again, "
                                        "and put back: the file attached was let go unused")
        except CatalogueReplaced:
            side = self._con.cursor()
            try:
                side.execute(f"DETACH DATABASE IF EXISTS {CATALOGUE}")
            finally:
                side.close()
            raise
        self._detached = None
        self._invalidated = False

    def _refuse_a_replacement(self, when: str) -> None:
        """CatalogueReplaced where the file at the path is no longer the one attached (attached_file); this
        run's log, left at the path, set aside first (_set_aside_log)."""
        why = how_replaced(self.db_path, self.attached_file)
        if why:
            raise CatalogueReplaced(f"{self.db_path} was {why} after this run opened it as the catalogue (found as "
                                    f"it {when}): that file was not written" + self._set_aside_log())

    def _note_log(self) -> None:
        """The catalogue's log remembered (_log_held) while this process holds it open: DuckDB's, of the file
        attached (a checkpoint that fails closes it, and detaching the catalogue does)."""
        self._log_held = log_held_here(self.db_path) or self._log_held

    def _set_aside_log(self) -> str:
        """This run's write-ahead log (what it committed since its last checkpoint), left at the path beside
        the file that replaced the catalogue there (DuckDB names a database's log by its path alone), renamed
        `<name>.wal.of-a-replaced-file-<UTC time>-<pid>`; what to say of it ("" where there was none of this run's).
        Left there, the next open of the path (a read-only one too) replayed it into that file: a backup put
        back got the night's writes it was put back to undo, and a backup older than the run's last
        checkpoint did not open ("Failure while replaying WAL", an internal error) until it was taken away."""
        if self._log_set_aside is not None:   # (said again by every later use, the first's message lost to them)
            return self._log_set_aside
        said = set_aside_this_runs_log(self.db_path, self._log_held)
        if " was moved to " in said:
            self._log_set_aside = said
        return said

    def _with_room(self, what: str, write: Callable[[], T], *, afresh: bool = False) -> T:
        """Run a write; if it does not fit in the memory limit (uncommitted rows cannot
        spill to disk, a long staged line needs a large read buffer), run it once more
        with MERGE_MEMORY_LIMIT rather than fail the portal every night. A failed write is
        rolled back, so nothing is half-written. `afresh` (the search index's update): the
        catalogue is attached again before the retry: a DELETE that ran out of memory half-way
        leaves the rows it had reached marked by its transaction, rolled back, and DuckDB 1.5.5
        then refuses to delete them again ("Conflict on tuple deletion!", the search index's
        retry at 300 portals) until the database is attached again (replaying the log: at most
        about CHECKPOINT_WAL_BYTES)."""
        try:
            return write()
        except duckdb.Error as exc:
            self._note_invalidated(exc)   # (the retry, or the next use, attaches it again first)
            if not _out_of_memory(exc):
                raise
            log.warning("%s did not fit in %s (%s); trying again with %s", what, MEMORY_LIMIT, exc, MERGE_MEMORY_LIMIT)
        with self._write_lock:  # the limit is the database's: parallel portals count their retries
            self._large_writes += 1
            self._con.execute(f"SET memory_limit = '{MERGE_MEMORY_LIMIT}'")   # (a setting: attached or not)
        try:
            if afresh:
                with self._write_lock:
                    self._reattach()
            return write()
        finally:
            with self._write_lock:
                self._large_writes -= 1
                if not self._large_writes:  # the last retry running restores it
                    self._restore_memory_limit()

    def _restore_memory_limit(self) -> None:
        """Back to the small limit (the write lock held). DuckDB 1.5.5 evicts what it can
        and does not refuse, even when large strings it cannot evict stay above the limit
        (the next write that needs room then fails and is retried); should a version refuse,
        checkpoint and try once more (a failure here is only a warning)."""
        for attempt in range(2):
            try:
                self._con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
                return
            except duckdb.OutOfMemoryException as exc:
                if attempt:
                    log.warning("memory limit left at %s: %s", MERGE_MEMORY_LIMIT, exc)
                    return
                try:
                    self._con.execute("CHECKPOINT")
                except duckdb.Error as failed:
                    self._note_invalidated(failed)
                    log.warning("memory limit left at %s: %s (and the checkpoint after: %s)", MERGE_MEMORY_LIMIT, exc,
                                failed)
                    return

    def _merge(self, stage: Stage, portal_id: str, now: datetime, *, mark_deleted: bool,
               rewrite: bool, grace: timedelta, pages: list[dict], run_id: str | None,
               restamped: set[str], stored_pages: list[tuple] | None = None) -> dict[str, int]:
        with self._write_lock:
            cur = self.cursor()
            staged_files = stage.records_files()
            stopped = None
            try:
                # a stop ends the merge's statements at once (a large portal's, every dataset written
                # again, take 15 s and more): rolled back, the portal keeps its previous catalogue
                try:
                    with stoppable_transaction(cur):
                        # no part: nothing new, changed or re-mapped was staged (an unchanged night)
                        deleted_groups: dict[str, set[int]] = {}
                        counts = _merge_staged(cur, staged_files, now, rewrite, restamped, deleted_groups) if staged_files else {}
                        earlier = not self._earlier_deletes_read and any(deleted_groups.values())
                        if earlier:   # (once a harvest: see _row_groups_with_deletes for what it costs)
                            for table in VACUUMED_TABLES:
                                deleted_groups.setdefault(table, set()).update(_row_groups_with_deletes(cur, table))
                        kept = [page_identity(p["page_key"], p["params"]) for p in pages if p.get("kept")]
                        listed = None if staged_files or _fresh_pages(pages) else _listed_as_stored(stage, kept, stored_pages)
                        removed, touched = _track_missing(cur, stage, portal_id, now, grace if mark_deleted else None, kept,
                                                          listed)
                        if staged_files or touched:   # (else no dataset has an event: nothing staged, none missing or back)
                            events.record(cur, run_id, portal_id, now, compared=bool(staged_files))
                        # the versions this merge superseded: a changed dataset's previous one. A new
                        # dataset supersedes none (its uid had no row, and a failed run's raw versions
                        # were pruned as this run began): a portal's first harvest skips the scan of
                        # every raw version it loaded (0.14-0.24 s of CPU at 100,000 datasets)
                        if counts.get("changed") or counts.get("restamped"):
                            cur.execute(PRUNE_RAW, {"portal": portal_id})
                        # (a page kept unread but `forget`: its ids listed tonight, its body read the next night)
                        retained = [page_identity(p["page_key"], p["params"]) for p in pages
                                    if p.get("kept") and not p.get("forget")]
                        cur.execute(f"DELETE FROM listing_pages WHERE portal_id = $portal AND NOT list_contains({KEPT_PAGES}, "
                                    f"{PAGE_IDENTITY})", {"portal": portal_id, "kept": json.dumps(retained)})
                        fresh = [{**{k: p.get(k) for k in PAGE_SCHEMA.names}, "portal_id": portal_id}
                                 for p in pages if not p.get("kept")]
                        if fresh:
                            cur.register("_pages", pa.Table.from_pylist(fresh, PAGE_SCHEMA))
                            cur.execute("INSERT INTO listing_pages BY NAME SELECT * FROM _pages")
                            cur.unregister("_pages")
                        if run_id is not None:   # (the run's row says the merge committed: merged_in_run)
                            cur.execute(MERGE_OF_THE_RUN, {"run": run_id, "portal": portal_id, "complete": mark_deleted,
                                                           "removed": removed, **{key: counts.get(key, 0) for key in
                                                                                  ("new", "changed", "unchanged", "restamped")}})
                except StoppedAfterCommit as stop:   # (as its COMMIT ran: committed, the stop goes on after)
                    stopped = stop
                for table, groups in deleted_groups.items():
                    self._deleted_groups.setdefault(table, set()).update(groups)
                self._earlier_deletes_read |= earlier
            finally:
                cur.close()
        counts = {"new": counts.get("new", 0), "changed": counts.get("changed", 0),
                  "unchanged": counts.get("unchanged", 0) + counts.get("restamped", 0), "removed": removed}
        if stopped is not None:
            raise StoppedAfterStoring(counts, "") from stopped   # (commit_portal says what it left)
        return counts

    # -- search ---------------------------------------------------------------------

    def refresh_search(self) -> bool:
        """Rebuild the search index if the catalogue changed (the end of every harvest).
        A failure is logged, not raised: the portals are stored, search keeps the previous
        index, and the next harvest tries again.

        Whatever the log holds is checkpointed first, however little: the memory DuckDB holds
        for committed rows until a checkpoint is not their log's bytes but a 256 KiB block for
        each column segment they were appended to (a night's changed datasets, spread over the
        catalogue: 0.5 MiB of log held 31-48 MiB), which the refresh then evicted under the limit
        beside its own work. Checkpointed first, the update fitted 32 MB where it needed 36, its
        peak 45 MiB lower; the checkpoint is the close's, done earlier (docs/benchmarks.md, Search)."""
        from catalog import search

        if self.wal_bytes():
            self.checkpoint("the checkpoint before the search index's refresh")

        def rebuild() -> bool:
            with self._write_lock:
                return_freed_memory()   # (what the merges freed)
                return search.refresh(self.con)
        try:
            return self._with_room("the search index", rebuild, afresh=True)
        except Exception as exc:
            log.error("the search index was not rebuilt (search answers from the previous one): %s", exc)
            return False

    # -- runs and errors ------------------------------------------------------------

    def close_interrupted_runs(self, now: datetime, crash: dict | None = None) -> dict[str, int]:
        """Runs left 'running' by a process that ended before it recorded their end become
        failed, and their staging folders go; returns how many, by error type. `crash`: the
        note a harvest that ended on an error left (catalog.lock.WriterLock.note_crash): its
        runs (started since it did) are `Crashed`, naming the error; others `Interrupted`, the
        process having ended without a word (SIGKILL, the machine stopped). Call only as the
        catalogue's single writer (a catalog.lock.WriterLock), never beside a live harvest."""
        shutil.rmtree(self.db_path.parent / f".{self.db_path.name}.staging", ignore_errors=True)
        crashed_since = datetime.fromisoformat(crash["since"]) if crash and crash.get("since") else None
        closed = {}
        with self._write_lock:
            if crashed_since is not None:
                closed["Crashed"] = self.con.execute(
                    """UPDATE harvest_runs SET status = 'failed', finished_at = $now, error_type = 'Crashed',
                              error_message = 'the run did not finish: its harvest (process ' || $pid || ') ended on '
                                              || 'an error it could not record in the catalogue: ' || $error
                                              || '; nothing it had not committed was kept'
                       WHERE status = 'running' AND started_at >= $since""",
                    {"now": now, "since": crashed_since, "pid": str(crash.get("pid")),
                     "error": str(crash.get("error"))}).fetchone()[0]
            closed["Interrupted"] = self.con.execute(
                """UPDATE harvest_runs SET status = 'failed', finished_at = $now, error_type = 'Interrupted',
                          error_message = 'the run did not finish: its process ended without recording why '
                                          || '(killed, or the machine stopped); nothing it had not committed was kept'
                   WHERE status = 'running'""", {"now": now}).fetchone()[0]
        return {kind: count for kind, count in closed.items() if count}

    def start_run(self, run_id: str, portal_id: str, started_at: datetime) -> None:
        with self._write_lock:
            self.con.execute("INSERT INTO harvest_runs (run_id, portal_id, started_at, status) VALUES (?, ?, ?, 'running')",
                             [run_id, portal_id, started_at])

    def lookups_kept_since(self, portal_id: str) -> tuple[datetime | None, set[str]]:
        """When the portal's last run that succeeded with its listing complete began (None: none
        did), and the source ids whose details lookup failed since (a `fetch` error or warning:
        their stored details may be stale): what harvester.mapping's kept lookups go by."""
        with self._write_lock:
            since = self.con.execute("""SELECT max(started_at) FROM harvest_runs WHERE portal_id = $portal
                                        AND status = 'ok' AND listing_complete""", {"portal": portal_id}).fetchone()[0]
            if since is None:
                return None, set()
            return since, {row[0] for row in self.con.execute(
                """SELECT DISTINCT source_id FROM harvest_errors WHERE portal_id = $portal AND stage = 'fetch'
                   AND occurred_at >= $since AND source_id IS NOT NULL""",
                {"portal": portal_id, "since": since}).fetchall()}

    def finish_run(self, run_id: str, portal_id: str, report: dict) -> None:
        columns = [k for k in report if k not in ("run_id", "portal_id")]
        assignments = ", ".join(f"{c} = ?" for c in columns)
        with self._write_lock:
            self.con.execute(f"UPDATE harvest_runs SET {assignments} WHERE run_id = ? AND portal_id = ?",
                             [report[c] for c in columns] + [run_id, portal_id])

    def load_raw(self, files: list[Path], longest_line: int, portal_id: str | None = None) -> None:
        """Staged raw entries into `raw_records`, in one insert: a row group's worth during
        the listing (see ROW_GROUP_ROWS); the whole portal at once took 5x longer at 128 MB.
        `portal_id`: the portal whose entries they all are (see _load_raw)."""
        self._with_room(f"loading {', '.join(f.name for f in files)}",
                        lambda: self._load_raw(files, longest_line, portal_id))

    def _load_raw(self, files: list[Path], longest_line: int, portal_id: str | None) -> None:
        """A version a dataset already carries is not written again; the catalogue only
        points at a raw version once its merge has committed; with `portal_id`, only that
        portal's datasets are looked at (DuckDB reads the whole table for the anti-join
        otherwise: a night of 300 portals read the catalogue once per load). The raw and details fields
        are compact JSON written by orjson, stored as they are (migration 0012). A file is
        read by one thread (`parallel = false`): a row group of raw JSON in memory per
        DuckDB thread did not fit MEMORY_LIMIT, and the listing keeps the cores busy anyway;
        the insert runs on one DuckDB thread for the same reason (_one_thread). An ANTI JOIN, not
        NOT EXISTS: given the portal's filter, DuckDB ran NOT EXISTS as a delim join, which held the
        staged rows, raw JSON and all, in memory (+41 MB at a load of 16,384 Socrata entries, the
        harvest's peak: docs/benchmarks.md, session 27)."""
        line = max(int(longest_line) + 2, 1 << 21)
        known = "datasets" if portal_id is None else "(SELECT uid, raw_hash FROM datasets WHERE portal_id = $portal)"
        with self._write_lock, self._one_thread():
            self.con.execute(f"""
                INSERT INTO raw_records BY NAME
                SELECT p.*, now() AS fetched_at FROM (
                    SELECT json_extract_string(key, 0) AS uid, json_extract_string(key, 1) AS raw_hash,
                           json_extract_string(key, 2) AS portal_id, json_extract_string(key, 3) AS source_id,
                           raw, details
                    FROM read_csv($parts, delim = '\t', quote = '', escape = '', header = false, auto_detect = false,
                                  columns = {{'key': 'VARCHAR', 'raw': 'VARCHAR', 'details': 'VARCHAR'}},
                                  max_line_size = {line}, buffer_size = {RAW_READ_BUFFER_LINES * line}, parallel = false)) p
                ANTI JOIN {known} d ON d.uid = p.uid AND d.raw_hash = p.raw_hash""",
                             {"parts": [str(file) for file in files],
                              **({"portal": portal_id} if portal_id is not None else {})})

    def _one_thread(self) -> contextlib.AbstractContextManager[None]:
        """DuckDB on one thread (the write lock held): for the raw loads, which run beside the
        listing while its page threads and mapping workers keep every core busy, a second DuckDB
        thread only added CPU (~0.4 s of the loads' 2.0 s at 100,000 entries, docs/benchmarks.md); and for
        the rebuild of VACUUMED_TABLES, whose inserts fill each row group only on one (REBUILD_BATCH_ROWS)."""
        return uncut.one_thread(self.con)

    def add_errors(self, rows: list[dict]) -> None:
        if not rows:
            return
        table = pa.Table.from_pylist(rows, ERROR_SCHEMA)
        with self._write_lock:
            cur = self.cursor()
            try:
                cur.register("_errors", table)
                cur.execute("INSERT INTO harvest_errors BY NAME SELECT * FROM _errors")
                cur.unregister("_errors")
            finally:
                cur.close()
