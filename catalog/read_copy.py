"""The read copy: the last committed catalogue, for readers while a writer holds the file.

DuckDB lets no other process open a database file that one process has open for writing,
so a harvest of hours kept `civicat runs`, `sql`, `search`, `similar` and analysts' notebooks
out of the catalogue. Each writing command, once it has closed the catalogue (DuckDB
checkpoints it on close: the file then holds every commit and there is no WAL), publishes a
byte copy of the file beside it, `<stem>.read<suffix>` (`civicat.read.duckdb`), while it
still holds the writer lock (no other writer can change the file meanwhile). The copy is
written to a hidden temporary name, flushed to the disk, and renamed over the previous
copy: a reader opening it finds the previous copy or the new one, never half of one; a
reader that has the previous one open keeps reading it (its inode lives while it is open);
a crash or a full disk mid-copy leaves the previous copy, and so does a catalogue that does
not open (damaged) or that another process has open for writing. The copy's modification time is
set to the catalogue's at the copy, the time of the last write it holds; its permissions are
the catalogue's.

Why a copy rather than readers beside the writer: DuckDB has no such mode across processes
(a read-only open, `ATTACH ... (READ_ONLY)` included, is refused while another process writes
the file); and a writer that opened the file only for its merges would be stalled by any
notebook left open on it. docs/harvesting.md ("The read copy") says what readers see.
"""
from __future__ import annotations

import fcntl
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog.files import copy_bytes, sync, writing
from catalog.lock import CatalogueBeingWritten, current_writer, file_locked, file_writer

log = logging.getLogger("civicat.read_copy")
read_log = logging.getLogger("civicat.read")   # (the readers' words)

def read_copy_path(db_path: str | Path) -> Path:
    """`data/civicat.duckdb` → `data/civicat.read.duckdb`."""
    db_path = Path(db_path)
    return db_path.with_name(f"{db_path.stem}.read{db_path.suffix}")


def catalogue_of(path: str | Path) -> Path | None:
    """The catalogue whose read copy `path` is (`data/civicat.read.duckdb` beside
    `data/civicat.duckdb`), or None: a reader given the copy itself reads it as it is."""
    path = Path(path)
    if not path.stem.endswith(".read"):
        return None
    catalogue = path.with_name(path.stem.removesuffix(".read") + path.suffix)
    return catalogue if catalogue.exists() else None


def _unfinished_path(copy: Path) -> Path:
    return copy.with_name(f".{copy.name}.publishing")


@dataclass(frozen=True)
class Published:
    path: Path
    bytes: int
    seconds: float


def publish(db_path: str | Path, progressed: Callable[[], None] | None = None) -> Published | None:
    """Publish the read copy of the closed catalogue at `db_path`. The caller holds the writer
    lock and has closed its connection. Never raises for the copy's sake: a copy that cannot
    be made (the disk full, a WAL left by a failed checkpoint) is a warning, the previous copy
    kept, and the writer's own work stands; returns None then. `progressed()` after each 64 MiB
    copied and flushed (a brief holder's sign of life: catalog.lock.BRIEF_HOLD_SECONDS)."""
    db_path = Path(db_path)
    copy = read_copy_path(db_path)
    if has_wal(db_path):   # (a copy without its commits would say it is later than it is)
        log.warning("the read copy %s was not refreshed: %s has a write-ahead log not checkpointed; "
                    "it is refreshed when the next writer ends", copy, db_path)
        return None
    started = time.perf_counter()
    unopened = _unopened(db_path)
    if unopened is not None:   # (damaged: the copy may be the last good catalogue there is)
        why = "is open for writing in another process" if file_locked(unopened) else "does not open"
        log.warning("the read copy %s was not refreshed: %s %s (%s); the previous copy is kept",
                    copy, db_path, why, unopened)
        return None
    unfinished = _unfinished_path(copy)
    try:
        with writing(unfinished):
            size = _copy_file(db_path, unfinished, progressed)
            catalogue = os.stat(db_path)
            os.chmod(unfinished, stat.S_IMODE(catalogue.st_mode))   # (readable by whom the catalogue is)
            os.utime(unfinished, ns=(time.time_ns(), catalogue.st_mtime_ns))
            sync(unfinished)
        os.rename(unfinished, copy)
        sync(copy.parent)
    except BaseException as exc:
        unfinished.unlink(missing_ok=True)   # (a stop mid-copy too)
        if not isinstance(exc, OSError):
            raise
        log.warning("the read copy %s was not refreshed (%s): readers while a writer holds the catalogue "
                    "read the previous copy", copy, exc)
        return None
    return Published(copy, size, time.perf_counter() - started)


def put_right(db_path: str | Path, progressed: Callable[[], None] = lambda: None) -> None:
    """What a writer killed at the wrong moment left, put right before a read copy is made of the
    catalogue; the caller holds the writer lock. Commits in a WAL alone are written into the file
    (a copy of the file without them went back to the writer before); records pulls killed after
    their publish and before their record in record_pulls are recorded (their folders and the
    catalogue disagreed: exports refused the folders, queries gave the pull before's rows).
    `progressed()` after each step."""
    from catalog.lock import checkpoint_wal
    from catalog.records import RecordsLayout, record_unrecorded

    if has_wal(db_path):
        checkpoint_wal(db_path)
        progressed()
    layout = RecordsLayout.beside(db_path)
    if layout.unrecorded():
        from catalog.store import connect

        with connect(db_path) as con:
            progressed()   # (migrated)
            for done in record_unrecorded(con, layout):
                log.warning("records: %s", done)
                progressed()


def _unopened(db_path: Path) -> Exception | None:
    """Why DuckDB cannot open the catalogue (its header and metadata read, their checksums
    checked), or None."""
    import duckdb

    from catalog import uncut

    try:
        uncut.connect(str(db_path), read_only=True).close()
    except duckdb.Error as exc:
        return exc
    return None


def _copy_file(source: Path, target: Path, progressed: Callable[[], None] | None = None) -> int:
    """Copy in the kernel (copy_file_range: a reflink, no data written, on btrfs or XFS), under
    a shared lock on the catalogue, DuckDB's own (fcntl): refused while another process has it
    open for writing (a notebook's writable connection takes no writer lock, and may be writing
    it: a torn copy), and keeping one from opening it until the copy is made. The copy is
    readable by its owner alone until it is whole (then the catalogue's permissions). Flushed to
    the disk 64 MiB at a time, then `progressed()`: the flush at its end, which its caller makes,
    is of 64 MiB at most, not of GBs (no step of a brief holder is long without a sign)."""
    with open(source, "rb") as src:
        try:
            fcntl.lockf(src.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            held = OSError(exc.errno, f"{source} is open for writing in another process")
            held.names_its_file = True   # (catalog.files.writing: not the copy's write that failed)
            raise held from None
        target.unlink(missing_ok=True)   # (a copy killed half-way: its permissions are not ours to keep)
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
            def flushed() -> None:
                os.fdatasync(dst.fileno())
                if progressed:
                    progressed()
            return copy_bytes(src.fileno(), dst.fileno(), flushed)


def has_wal(db_path: str | Path) -> bool:
    """Whether the catalogue has commits its file does not hold yet (a write-ahead log)."""
    wal = Path(db_path).with_name(Path(db_path).name + ".wal")
    return wal.exists() and wal.stat().st_size > 0


def is_current(db_path: str | Path) -> bool:
    """Whether the read copy holds the catalogue's last write: its time and size the catalogue's
    (a writer stopped, killed or whose copy failed ended without publishing it)."""
    try:
        copy, catalogue = os.stat(read_copy_path(db_path)), os.stat(db_path)
    except FileNotFoundError:
        return False
    return (copy.st_mtime_ns, copy.st_size) == (catalogue.st_mtime_ns, catalogue.st_size)


def as_of(db_path: str | Path) -> str:
    """The time of the last write the read copy holds (UTC, ISO 8601, to the second)."""
    return iso_utc(os.stat(read_copy_path(db_path)).st_mtime_ns)


def iso_utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def catalogue_or_read_copy(db_path: Path, open_db: Callable[[Path], Any], *,
                           reading: str = "reading", refuse: Callable[[dict | None], str | None] | None = None
                           ) -> tuple[Any, int | None]:
    """`open_db(db_path)`, the catalogue; while a writer holds it, `open_db` of its read copy,
    saying so on stderr with the time it is from (`reading`: what the reader does with it); and,
    when it is the copy, that time (its modification time, ns; None: the catalogue). Without a copy, the catalogue's own error. `refuse`, given the holder record of the
    civicat writer (None: no civicat writer's), says why the copy may not stand in for the
    catalogue while that one writes, raised as CatalogueBeingWritten; None: it may."""
    import duckdb

    copy = read_copy_path(db_path)
    try:
        return open_db(db_path), None
    except duckdb.IOException as exc:
        if not file_locked(exc) or not copy.exists():
            raise
        writer = f"is being written by {file_writer(exc, db_path)}"
    except CatalogueBeingWritten:   # (its WAL to replay, and a writer holding the lock)
        if not copy.exists():
            raise
        writer = "is being recovered by a writer"
    why_not = refuse(current_writer(db_path)) if refuse else None
    if why_not:
        raise CatalogueBeingWritten(f"{db_path} {writer}: {why_not}")
    written = os.stat(copy).st_mtime_ns   # (before the open: a copy published meanwhile is newer, never older)
    con = open_db(copy)
    read_log.warning("%s %s: %s its read copy %s, the catalogue as of %s (when the last writer ended)",
                     db_path, writer, reading, copy, iso_utc(written))
    return con, written
