"""The HTTP layer's memory between runs: ETag / Last-Modified per URL, with the body they
validate, for conditional requests (see ValidatorCache)."""
from __future__ import annotations

import errno
import gzip
import hashlib
import json
import logging
import re
import resource
import sqlite3
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from pathlib import Path

from catalog.disk import NO_ROOM, no_room_to_write

log = logging.getLogger("civicat.http")


class ValidatorCache:
    """ETag / Last-Modified per URL, with the body they validate, for conditional requests.

    One SQLite file in `directory` (CACHE_FILE): per URL, keyed by a hash of the URL (nothing
    from a portal reaches a path or an SQL string), a row of its validators (`entries`) and
    one of the body gzip-encoded (`bodies`), written together or not at all. Apart, so that new
    validators for the same bytes (a new ETag, a portal's balancer) are written without the body
    (`revalidate`): SQLite rewrites a whole row, its body too, when a value in it changes length
    (16 MB a night for a 50,000-dataset data.json). One file, not two per URL: creating a
    file cost 0.5-0.7 ms of CPU on this machine's ext4 (it drifts with the machine), 1-3 s
    a night for a 1,000-page catalogue; a row costs ~0.3 ms. The cache is disposable: a damaged
    file is started afresh, and a lost entry costs one full request the next night.
    """

    CACHE_FILE = "validators.sqlite3"
    # How long the writer thread waits for another process's write (two harvests of two
    # catalogues in one data/ folder), and how long a page thread waits for the file at all:
    # in WAL mode reads never wait, but opening a new file that another process is creating does.
    BUSY_TIMEOUT = 30.0
    READ_BUSY_TIMEOUT = 1.0
    STORED_PIECE_BYTES = 1 << 20   # of a stored body, read at a time when it is decoded as it is read
    _OLD_ENTRY = re.compile(r"[0-9a-f]{64}\.(meta\.json|body\.gz)(\.\d+\.\d+\.tmp)?")

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / self.CACHE_FILE
        # Writes (a row and its commit, and a gzip of the body when the portal did not send
        # one: ~8 ms a catalogue page, more than fetching it) happen in a thread of their
        # own, off the listing's critical path; until written, an entry is answered from
        # memory. Executor threads are joined at exit.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicat-cache")
        self._pending: dict[str, tuple[dict, bytes]] = {}
        # URLs forgotten whose removal is not written yet (how many removals): the row on disk
        # may be the entry forgotten, its write finished after forget() took it out of memory
        self._forgotten: dict[str, int] = {}
        self._lock = threading.Lock()
        # Each connection with the generation of the file it opened: a file started afresh
        # (found damaged by either connection) is a new generation, and the other reopens.
        self._generation = 0
        self._reader: sqlite3.Connection | None = None       # the page threads', under _read_lock
        self._reader_generation = 0
        self._read_lock = threading.Lock()
        self._writer_connection: sqlite3.Connection | None = None   # the writer thread's own
        self._writer_generation = 0
        # another process held the file past the timeout: no more waits this run
        self._reads_stopped = self._writes_stopped = False
        self._warned: set[str] = set()
        self._open_lock = threading.Lock()   # one thread repairs a damaged file, not two at once
        self._writer.submit(self._remove_old_layout)

    @staticmethod
    def _key(url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()

    @staticmethod
    def _error_is(exc: Exception, *names: str) -> bool:
        """Whether SQLite's (possibly extended) error name is one of `names`."""
        return (getattr(exc, "sqlite_errorname", None) or "").startswith(names)

    def _damaged(self, exc: Exception) -> bool:
        return self._error_is(exc, "SQLITE_NOTADB", "SQLITE_CORRUPT")

    def _connect(self, busy_timeout: float) -> tuple[sqlite3.Connection, int]:
        """The cache file opened (created when missing), with its generation; a file that is
        no SQLite database is started afresh. No lock is held while SQLite waits: a page thread
        never waits behind the writer thread's longer wait."""
        self.directory.mkdir(parents=True, exist_ok=True)
        generation = self._generation
        try:
            return self._open(busy_timeout), generation
        except sqlite3.DatabaseError as exc:
            if not self._damaged(exc):
                raise   # locked, unreadable, a full disk: not ours to remove
            self._start_afresh(exc, generation)
            return self._open(busy_timeout), self._generation

    def _current(self, connection: sqlite3.Connection | None, generation: int,
                 busy_timeout: float) -> tuple[sqlite3.Connection, int]:
        """`connection` if it reads the current file, else one opened on it (the old one
        closed: its file was started afresh). On failure the old one is closed all the same."""
        if connection is not None and generation == self._generation:
            return connection, generation
        if connection is not None:
            connection.close()
        return self._connect(busy_timeout)

    def _start_afresh(self, exc: Exception, generation: int) -> None:
        """The damaged file of `generation` removed (its -wal and -shm too), unless the other
        connection has already replaced it."""
        with self._open_lock:
            if generation != self._generation:
                return
            log.warning("the HTTP cache %s is damaged (%s): it is started afresh", self.path, exc)
            for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                path.unlink(missing_ok=True)
            self._generation += 1

    def _open(self, busy_timeout: float) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._switch_to_wal(connection, busy_timeout)   # readers never wait for the writer
            connection.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last entries: a request each
            connection.execute("CREATE TABLE IF NOT EXISTS entries (url_key TEXT PRIMARY KEY, meta TEXT NOT NULL)")
            connection.execute("CREATE TABLE IF NOT EXISTS bodies (url_key TEXT PRIMARY KEY, body BLOB NOT NULL)")
            self._carry_over(connection)
            return connection
        except BaseException:
            connection.close()
            raise

    @staticmethod
    def _carry_over(connection: sqlite3.Connection) -> None:
        """The entries of the layout before session 31 (one table, `validators`, each row its meta
        and body) moved to this one once, in one transaction (dropped, they cost a full request
        each the next night: a whole catalogue's)."""
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'validators'").fetchone() \
                is None:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'validators'").fetchone() is not None:
                connection.execute("INSERT OR IGNORE INTO entries SELECT url_key, meta FROM validators")
                connection.execute("INSERT OR IGNORE INTO bodies SELECT url_key, body FROM validators")
                connection.execute("DROP TABLE validators")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _switch_to_wal(self, connection: sqlite3.Connection, busy_timeout: float) -> None:
        """PRAGMA journal_mode=WAL, waiting up to `busy_timeout` like any statement: on a new file
        that another connection is switching or creating at the same moment (harvests starting
        together), SQLite refuses it at once with SQLITE_BUSY, without its busy timeout."""
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not self._error_is(exc, "SQLITE_BUSY") or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _warn_once(self, what: str, exc: Exception, written: int = 0) -> None:
        """One warning a run for each of reading and writing: a full disk must not log every page.
        A write of `written` bytes refused for want of room says so in civicat's words (_no_room)."""
        if what not in self._warned:
            self._warned.add(what)
            code = self._no_room(exc, written) if what == "write" else None
            if code is not None:
                log.warning("could not write the HTTP cache: %s (%s: %s); its entries cost a full request",
                            no_room_to_write(f"the HTTP cache ({self.path})", code, self.path), type(exc).__name__, exc)
                return
            log.warning("could not %s the HTTP cache %s (%s): its entries cost a full request", what, self.path, exc)

    def _no_room(self, exc: Exception, written: int) -> int | None:
        """The errno of a write of `written` bytes refused for want of room, else None. SQLite says
        ENOSPC as SQLITE_FULL ("database or disk is full"), but EFBIG (past `ulimit -f`) and EDQUOT
        as SQLITE_IOERR_WRITE ("disk I/O error"), as it says a failing disk: that is taken for the
        file size limit only when the cache's files, with the write, reach it."""
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:
            return exc.errno
        if self._error_is(exc, "SQLITE_FULL"):
            return errno.ENOSPC
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if self._error_is(exc, "SQLITE_IOERR_WRITE") and limit != resource.RLIM_INFINITY:
            files = (self.path, self.path.with_name(self.path.name + "-wal"))
            largest = max((path.stat().st_size for path in files if path.exists()), default=0)
            if largest + written + (1 << 20) >= limit:   # (and a few pages of SQLite's own)
                return errno.EFBIG
        return None

    def _read(self, sql: str, url: str):
        with self._read_lock:
            if self._reads_stopped:
                return None
            try:
                self._reader, self._reader_generation = self._current(
                    self._reader, self._reader_generation, self.READ_BUSY_TIMEOUT)
                return self._reader.execute(sql, (self._key(url),)).fetchone()
            except (sqlite3.Error, OSError) as exc:   # no cache to read: the request is made plainly
                if self._reader is not None and self._damaged(exc):
                    self._start_afresh(exc, self._reader_generation)
                else:
                    # a file another process holds: a page waits for it once a run, not each time
                    self._reads_stopped = self._error_is(exc, "SQLITE_BUSY", "SQLITE_LOCKED")
                    self._warn_once("read", exc)
                return None

    def get(self, url: str) -> tuple[dict, bytes] | None:
        meta = self.validators(url)
        body = self.body(url, meta) if meta is not None else None
        return (meta, body) if body is not None else None

    def validators(self, url: str) -> dict | None:
        """What a conditional request needs (ETag, Last-Modified, the body's sha256), without
        reading the body: a 304 for a page the caller already holds never needs it."""
        with self._lock:
            pending, forgotten = self._pending.get(url), url in self._forgotten
        if pending is not None:
            return pending[0]
        if forgotten:
            return None
        row = self._read("SELECT meta FROM entries WHERE url_key = ?", url)
        try:
            meta = json.loads(row[0]) if row else None
        except ValueError:
            return None
        return meta if isinstance(meta, dict) and meta.get("url") == url else None

    def body(self, url: str, meta: dict, decode: Callable[[Iterator[bytes], str], object] | None = None):
        """The body `meta` validates, checked against its sha256 (None when missing or not it).
        `decode(pieces, sha256)`: in place of the stored gzip read whole and decompressed whole, it
        is given in pieces as they are read from the file, with the digest to check, and gives the
        body or None (harvester.http decodes a large one into a temporary file: a 33 MB data.json
        answered 304 peaked at 2.6 times its size)."""
        with self._lock:
            pending, forgotten = self._pending.get(url), url in self._forgotten
        if pending is not None and pending[0] is meta:
            if pending[1] is not None:
                return pending[1]
            # a body that came spooled is held gzip-encoded by its write alone: wait for it and
            # read it from the file (asked plainly, it cost a full request more)
            self.flush()
            with self._lock:
                forgotten = url in self._forgotten
        if forgotten:
            return None
        if decode is not None:
            with closing(self._stored_pieces(url)) as pieces:
                return decode(pieces, meta.get("sha256"))
        row = self._read("SELECT body FROM bodies WHERE url_key = ?", url)
        try:
            body = gzip.decompress(row[0]) if row else None
        except (OSError, ValueError, EOFError, zlib.error, TypeError):  # damaged: asked plainly instead
            return None
        return body if body is not None and hashlib.sha256(body).hexdigest() == meta.get("sha256") else None

    def _stored_pieces(self, url: str) -> Iterator[bytes]:
        """The stored gzip body of `url`, STORED_PIECE_BYTES at a time (a blob handle), read on a
        connection of its own: the page threads' one is not held while a large body is decoded.
        Nothing more once reading fails: what was read is then refused by its digest."""
        if self._reads_stopped or not self.path.exists():
            return
        try:
            connection = sqlite3.connect(self.path, timeout=self.READ_BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error as exc:
            self._warn_once("read", exc)
            return
        try:
            row = connection.execute("SELECT rowid FROM bodies WHERE url_key = ?", (self._key(url),)).fetchone()
            if row is not None:
                # (the blob handle reads one snapshot: a write of the entry meanwhile is not seen)
                with connection.blobopen("bodies", "body", row[0], readonly=True) as blob:
                    while piece := blob.read(self.STORED_PIECE_BYTES):
                        yield piece
        except (sqlite3.Error, OSError) as exc:
            self._warn_once("read", exc)
        finally:
            connection.close()

    def put(self, url: str, etag: str | None, last_modified: str | None, body: bytes | None,
            digest: str | None = None, gzipped: bytes | None = None) -> None:
        """`gzipped`: `body` as the portal sent it, gzip-encoded, stored as it is (compressing
        a catalogue page again cost more than fetching it); its sha256 is checked on every read
        all the same. `body` None: a body not held in memory (spooled), given as `gzipped` only."""
        meta = {"url": url, "etag": etag, "last_modified": last_modified,
                "sha256": digest or hashlib.sha256(body).hexdigest()}
        with self._lock:
            self._pending[url] = (meta, body)
        self._writer.submit(self._write, url, meta, body, gzipped)

    def revalidate(self, url: str, etag: str | None, last_modified: str | None, digest: str) -> None:
        """New validators for the body already held for `url` (its digest `digest`): only they are
        written, the stored body kept as it is."""
        meta = {"url": url, "etag": etag, "last_modified": last_modified, "sha256": digest}
        with self._lock:
            self._pending[url] = (meta, None)   # (its body read from the file: see body())
        self._writer.submit(self._write, url, meta, None, None, True)

    def forget(self, url: str) -> None:
        """The entry of `url` removed (after any write of it already asked: one writer thread)."""
        with self._lock:
            self._pending.pop(url, None)
            self._forgotten[url] = self._forgotten.get(url, 0) + 1
        self._writer.submit(self._write, url, None, b"")

    def flush(self) -> None:
        """Wait until every entry put so far is on disk."""
        self._writer.submit(lambda: None).result()

    def _write(self, url: str, meta: dict | None, body: bytes | None, gzipped: bytes | None = None,
               meta_only: bool = False) -> None:
        """The entry of `url` written (`meta` None: removed; `meta_only`: its validators alone)."""
        try:
            if self._writes_stopped:
                return
            key = self._key(url)
            if meta is None:
                statements = [("DELETE FROM bodies WHERE url_key = ?", (key,)),
                              ("DELETE FROM entries WHERE url_key = ?", (key,))]
            else:
                statements = [] if meta_only else [
                    ("INSERT OR REPLACE INTO bodies (url_key, body) VALUES (?, ?)",
                     (key, gzipped if gzipped is not None else gzip.compress(body, compresslevel=1)))]
                statements.append(("INSERT OR REPLACE INTO entries (url_key, meta) VALUES (?, ?)",
                                   (key, json.dumps(meta))))
            for attempt in (1, 2):   # a second time only on a file started afresh
                try:
                    self._writer_connection, self._writer_generation = self._current(
                        self._writer_connection, self._writer_generation, self.BUSY_TIMEOUT)
                    self._in_one_transaction(self._writer_connection, statements)
                    return
                except (sqlite3.Error, OSError) as exc:  # a cache that cannot be written costs a full request next run
                    if attempt == 1 and self._writer_connection is not None and self._damaged(exc):
                        self._start_afresh(exc, self._writer_generation)
                        continue
                    if self._error_is(exc, "SQLITE_BUSY", "SQLITE_LOCKED"):
                        # another process holds the file (stopped mid-write?): waiting again
                        # for every entry would hold the harvest's end for hours
                        self._writes_stopped = True
                    written = sum(len(value) for _, values in statements for value in values if isinstance(value, bytes))
                    self._warn_once("write", exc, written)
                    return
        finally:
            with self._lock:
                # by its meta, made for each put: a spooled body is put as None, so two of one
                # URL (or one forgotten since) would look alike by their bodies
                if meta is not None and self._pending.get(url, (None, None))[0] is meta:
                    del self._pending[url]
                elif meta is None:   # (a removal written, or failed: the disk answers again)
                    self._forgotten[url] -= 1
                    if not self._forgotten[url]:
                        del self._forgotten[url]

    @staticmethod
    def _in_one_transaction(connection: sqlite3.Connection, statements: list[tuple[str, tuple]]) -> None:
        if len(statements) == 1:
            connection.execute(*statements[0])
            return
        connection.execute("BEGIN")   # (deferred: the first write waits for the file, as a lone statement does)
        try:
            for statement in statements:
                connection.execute(*statement)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _remove_old_layout(self) -> None:
        """The files of civicat's earlier cache layout (two per URL, in folders named by the
        first two hex digits of the URL's hash), removed once: this file replaces them."""
        try:
            folders = [p for p in self.directory.iterdir() if p.is_dir() and not p.is_symlink() and re.fullmatch(r"[0-9a-f]{2}", p.name)]
            for folder in folders:
                for path in folder.iterdir():
                    if self._OLD_ENTRY.fullmatch(path.name):
                        path.unlink(missing_ok=True)
                with suppress(OSError):
                    folder.rmdir()   # (only when nothing else is in it)
        except OSError:
            pass   # no cache directory yet, or one we may not tidy: nothing lost
