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

import contextlib
import errno
import fcntl
import logging
import os
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog import files
from catalog.disk import disk_full, free_bytes, free_space
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


def spare_path(copy: Path) -> Path:
    """The replaced copy kept to be updated in place by the next publish (what a user sees beside the
    catalogue as its third file: bench.nights measures it)."""
    return copy.with_name(f".{copy.name}.spare")


def _spare_next_path(copy: Path) -> Path:
    return copy.with_name(f".{copy.name}.spare.next")


@dataclass(frozen=True)
class Published:
    path: Path
    bytes: int
    seconds: float
    written: int = 0   # bytes written to make it: all of them for a copy made anew, the changed blocks for the spare's update


def publish(db_path: str | Path, progressed: Callable[[], None] | None = None,
            no_room: Callable[[str], None] | None = None, checked: os.stat_result | None = None) -> Published | None:
    """Publish the read copy of the closed catalogue at `db_path`. The caller holds the writer
    lock and has closed its connection. Never raises for the copy's sake: a copy that cannot
    be made (the disk full, a WAL left by a failed checkpoint) is a warning, the previous copy
    kept, and the writer's own work stands; returns None then. `progressed()` after each 64 MiB
    copied (or compared) and flushed (a brief holder's sign of life: catalog.lock.BRIEF_HOLD_SECONDS).

    The copy before the current one is kept, hidden (`.<copy>.spare`), and brought up to the
    catalogue in place, only its blocks that differ written (a night that changed little writes
    megabytes, not the catalogue: docs/benchmarks.md, Read copy), when no reader has it open
    (`_spare_to_update`); else the copy is made anew. Either way it is published by a rename, and
    the copy it replaces becomes the spare. On a file system that makes reflinks (btrfs, XFS) the
    copy is one (`_reflinked`: no block written, so no room asked of it, and no spare kept). Not
    begun when its file system has no room for it
    (`_short_of_room`: the previous copy stays published); the spare removed when less than a
    catalogue's size stays free beside it (`_drop_spare_if_short`). `no_room(why)` when the copy was
    not made for want of room (not begun, or a write that found none), `why` as the warning says it.

    `checked`: the catalogue file the writer checked (or wrote), by its stat: the file is opened first
    and copied from that handle, made and timed as that handle's, so that a file put at the path
    since (another program's, a backup restored) is never published as the catalogue's copy: a
    warning, the previous copy kept (until session 45 the path was read, whatever file it held)."""
    db_path = Path(db_path)
    copy = read_copy_path(db_path)
    if has_wal(db_path):   # (a copy without its commits would say it is later than it is)
        log.warning("the read copy %s was not refreshed: %s has a write-ahead log not checkpointed; "
                    "it is refreshed when the next writer ends", copy, db_path)
        return None
    try:
        src = open(db_path, "rb", buffering=0)
    except OSError as exc:
        return _not_refreshed(exc, db_path, copy, no_room)
    with src:
        if checked is not None and not os.path.samestat(os.fstat(src.fileno()), checked):
            log.warning("the read copy %s was not refreshed: %s was replaced by another file after this run checked "
                        "it was the catalogue (that file is not copied); the previous copy is kept", copy, db_path)
            return None
        return _publish_from(src, db_path, copy, progressed, no_room)


def _publish_from(src, db_path: Path, copy: Path, progressed: Callable[[], None] | None,
                  no_room: Callable[[str], None] | None) -> Published | None:
    """publish's work, the catalogue read from `src` (its file open, checked: publish)."""
    started = time.perf_counter()
    unopened = _unopened(db_path)
    if unopened is not None:   # (damaged: the copy may be the last good catalogue there is)
        why = "is open for writing in another process" if file_locked(unopened) else "does not open"
        log.warning("the read copy %s was not refreshed: %s %s (%s); the previous copy is kept",
                    copy, db_path, why, unopened)
        return None
    spare_next = _spare_next_path(copy)
    spare_next.unlink(missing_ok=True)   # (a publish killed between its renames)
    unfinished = _unfinished_path(copy)
    try:
        with writing(unfinished):
            reflinked = _reflinked(src, unfinished)
    except BaseException as exc:   # (a stop too: nothing left)
        unfinished.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        return _not_refreshed(exc, db_path, copy, no_room)
    spare = None if reflinked else _spare_to_update(copy)
    short = None if reflinked else _short_of_room(src, db_path, copy, spare)
    if short:
        log.warning("%s", short)
        if no_room:
            no_room(short)
        return None
    made = spare if spare is not None else unfinished
    try:
        with writing(made):
            if reflinked:   # (a spare would be updated by writing blocks where a reflink writes none: it only holds room)
                spare_path(copy).unlink(missing_ok=True)
                size, written = os.stat(made).st_size, 0
                if progressed:
                    progressed()
            elif spare is not None:
                size, written = _update_spare(src, spare, progressed)
            else:
                spare_path(copy).unlink(missing_ok=True)   # (a reader has it open: its inode lives until it closes it)
                size = written = _copy_file(src, made, progressed)
            catalogue = os.fstat(src.fileno())   # (the file copied, whatever is at the path now)
            os.chmod(made, stat.S_IMODE(catalogue.st_mode))   # (readable by whom the catalogue is)
            os.utime(made, ns=(time.time_ns(), catalogue.st_mtime_ns))
            sync(made)
        kept = not reflinked and _link_previous(copy, spare_next)
        os.rename(made, copy)
        if kept:
            os.rename(spare_next, spare_path(copy))   # (the copy it replaced, the next publish's to update)
        sync(copy.parent)
    except BaseException as exc:
        if spare is None:
            made.unlink(missing_ok=True)   # (a stop mid-copy too; a spare cut short stays hidden, updated next time)
        spare_next.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        return _not_refreshed(exc, db_path, copy, no_room)
    if kept:
        _drop_spare_if_short(copy, size)
    return Published(copy, size, time.perf_counter() - started, written)


def _not_refreshed(exc: OSError, db_path: Path, copy: Path, no_room: Callable[[str], None] | None) -> None:
    """The copy that failed (`exc`) said as a warning, and to `no_room` when it found no room."""
    full = disk_full(exc, db_path)
    why = (f"the read copy {copy} was not refreshed ({full or exc}): readers while a writer holds the catalogue "
           "read the previous copy")
    log.warning("%s", why)
    if full and no_room:
        no_room(why)


def _short_of_room(src, db_path: Path, copy: Path, spare: Path | None) -> str | None:
    """Why the copy is not started (its file system has no room for it), or None: made anew it
    writes the whole catalogue; the spare updated in place, what the catalogue holds beyond it (a
    reflink, which writes none, is not asked: _reflinked, tried first).
    Begun without that room it would fail part-way on a full disk, every write of the night's
    last minutes (the lock file's, the HTTP cache's, the next portal's) failing with it."""
    size = os.fstat(src.fileno()).st_size
    needed = size if spare is None else max(0, size - os.stat(spare).st_blocks * 512)
    free = free_bytes(copy.parent)
    if free is None or free >= needed:
        return None
    kept = (f"readers while a writer holds the catalogue read the previous copy, the catalogue as of {as_of(db_path)}"
            if copy.exists() else "readers wait for the writer (there is no copy yet)")
    return (f"the read copy {copy} was not refreshed: {'its update' if spare else 'a copy'} would write "
            f"{needed / 1e6:,.1f} MB: no room ({free_space(copy.parent)}); {kept}")


def _drop_spare_if_short(copy: Path, catalogue_bytes: int) -> None:
    """The spare removed when its file system keeps less than a catalogue's size free beside it:
    the spare saves the next publish its writes, but the catalogue's own writes come first, and a
    night may need that much (a `--full` harvest or a reclaim rewrites most of the file, and DuckDB
    writes a checkpoint's new blocks before it frees the old; then a copy made anew, should the
    spare not be usable, writes the whole catalogue). The next publish makes the copy anew, and
    keeps a spare again once there is room."""
    free = free_bytes(copy.parent)
    if free is None or free >= catalogue_bytes:
        return
    spare = spare_path(copy)
    try:
        spare_bytes = os.stat(spare).st_size
        spare.unlink()
    except OSError as exc:   # (its folder not ours to write: the spare stays, as it did)
        log.warning("the read copy's spare %s could not be removed to leave room (%s)", spare, exc)
        return
    log.warning("the read copy's spare %s (%s MB) was removed: %s MB free on its file system, less than the "
                "catalogue's size (%s MB), kept free for the catalogue's own writes; the next publish makes the "
                "copy anew (the whole catalogue written, not only the blocks that changed)", spare,
                f"{spare_bytes / 1e6:,.1f}", f"{free / 1e6:,.1f}", f"{catalogue_bytes / 1e6:,.1f}")


def _spare_to_update(copy: Path) -> Path | None:
    """The spare, when it may be written in place: a file of this name alone (one link: no other
    name, no published copy), that no reader has open. DuckDB's readers (read-only connections,
    ATTACH ... READ_ONLY) hold a shared `fcntl` lock on the file while they have it open: a
    reader of the copy before the current one (a notebook open for two writers' ends) keeps the
    spare, and the copy is made anew. The test is an open-file-description lock taken and let go:
    it conflicts with a reader's lock in this process too (a traditional lock would not), and a
    reader's open, once the lock is let go, finds the spare unpublished (its open a writer ago
    or more: readers open the published name). None: make the copy anew."""
    spare = spare_path(copy)
    try:
        held = os.stat(spare)
        if not stat.S_ISREG(held.st_mode) or held.st_nlink != 1 or (copy.exists() and os.path.samestat(
                held, os.stat(copy))):
            return None
        handle = os.open(spare, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.fcntl(handle, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    except (OSError, AttributeError):   # (a reader has it open; AttributeError: no such locks, not Linux)
        return None
    finally:
        os.close(handle)   # (the lock let go: the update's writes must not keep a reader of the published copy out)
    return spare


_COMPARED = 256 << 10   # bytes compared at a time: a DuckDB block


def _update_spare(source, spare: Path, progressed: Callable[[], None] | None = None) -> tuple[int, int]:
    """The spare made the catalogue's bytes in place, writing only the blocks that differ;
    returns (the catalogue's size, the bytes written). Under the catalogue's shared lock (as
    `_copy_file`); the spare readable by its owner alone until it is whole; flushed to the disk
    each 64 MiB written, `progressed()` then and each 64 MiB compared."""
    with _reading(source) as src:
        source = Path(src.name)
        _shared_lock(src, source)
        os.chmod(spare, 0o600)
        with open(spare, "r+b", buffering=0) as dst:
            size = os.fstat(src.fileno()).st_size
            dst.truncate(size)
            ours, theirs = bytearray(_COMPARED), bytearray(_COMPARED)
            ours_view, theirs_view = memoryview(ours), memoryview(theirs)
            written = unflushed = compared = 0
            for offset in range(0, size, _COMPARED):
                length = _read_all(src.fileno(), theirs_view[:min(_COMPARED, size - offset)], offset)
                if length < min(_COMPARED, size - offset):   # (under the shared lock no writer shortens it)
                    raise OSError(errno.EIO, f"{source} ended at {offset + length:,} of its {size:,} bytes as it "
                                             "was copied")
                # (whole buffers compared as they are: a slice of a bytearray is a copy, which tripled the CPU)
                same = os.preadv(dst.fileno(), [ours], offset) == length and (
                    ours == theirs if length == _COMPARED else ours_view[:length] == theirs_view[:length])
                if not same:
                    _write_all(dst.fileno(), theirs_view[:length], offset)
                    written += length
                    unflushed += length
                compared += length
                if unflushed >= files._COPY_CHUNK or compared >= files._COPY_CHUNK:   # (read at the call: tests make it small)
                    if unflushed:
                        os.fdatasync(dst.fileno())
                    unflushed = compared = 0
                    if progressed:
                        progressed()
    return size, written


def _read_all(handle: int, into: memoryview, offset: int) -> int:
    """`into` filled from `offset` of the file, or up to its end; the bytes read. A read may return
    fewer bytes than asked before the end (a network or FUSE file system; a signal): one such read
    taken for the block left the rest of it unread, and unwritten, in the copy published."""
    done = 0
    while done < len(into):
        got = os.preadv(handle, [into[done:]], offset + done)
        if got == 0:
            break
        done += got
    return done


def _write_all(handle: int, data: memoryview, offset: int) -> None:
    while data:
        done = os.pwrite(handle, data, offset)
        data, offset = data[done:], offset + done


def _link_previous(copy: Path, spare_next: Path) -> bool:
    """The published copy given a second, hidden name before the new one replaces it (the spare
    to come); False when there is none, or the file system has no hard links (each copy made
    anew then)."""
    try:
        os.link(copy, spare_next)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.info("the read copy %s keeps no spare (%s): each copy is made anew", copy, exc)
        return False
    return True


def put_right(db_path: str | Path, progressed: Callable[[], None] = lambda: None,
              checked: os.stat_result | None = None) -> None:
    """What a writer killed at the wrong moment left, put right before a read copy is made of the
    catalogue; the caller holds the writer lock. Commits in a WAL alone are written into the file
    (a copy of the file without them went back to the writer before); records pulls killed after
    their publish and before their record in record_pulls are recorded (their folders and the
    catalogue disagreed: exports refused the folders, queries gave the pull before's rows).
    `progressed()` after each step. `checked`: the catalogue file the writer checked (its stat): another
    put at the path since is not written (catalog.store.CatalogueReplaced; until session 45 its log was
    replayed into it, its pulls recorded there)."""
    from catalog.lock import checkpoint_wal
    from catalog.records import RecordsLayout, record_unrecorded
    from catalog.store import CatalogueReplaced, how_replaced

    why = how_replaced(Path(db_path), checked)
    if why:
        raise CatalogueReplaced(f"{db_path} was {why} after this run checked it was the catalogue")
    if has_wal(db_path):
        checkpoint_wal(db_path, checked=checked)
        progressed()
    if RecordsLayout.beside(db_path).unrecorded():
        from catalog.folder import catalogue_id
        from catalog.store import connect

        with connect(db_path, checked=checked) as con:
            progressed()   # (migrated)
            for done in record_unrecorded(con, RecordsLayout.beside(db_path, catalogue_id(con))):
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


# FICLONE (linux/fs.h; fcntl has it from Python 3.12): the target made a reflink of the whole source
_FICLONE = getattr(fcntl, "FICLONE", 0x40049409)
# the file system makes no reflinks (ext4, tmpfs: EOPNOTSUPP; not Linux: ENOTTY) or not of these files
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS, errno.EPERM}


def _reflinked(source, target: Path) -> bool:
    """`target` made a reflink of the whole catalogue (its blocks shared, none written: btrfs, XFS
    made with reflink=1, bcachefs ...), under its shared lock (as _copy_file), readable by its owner
    alone; True. False, no `target` left, where its file system makes none: the copy is then
    written (_copy_file, _update_spare), and its room asked first. What a copy really writes decides
    the room it needs: on a nearly full btrfs a copy refused for want of the catalogue's size
    (copy_file_range reflinks there too) would have taken none."""
    with _reading(source) as src:
        _shared_lock(src, Path(src.name))
        target.unlink(missing_ok=True)
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.ioctl(handle, _FICLONE, src.fileno())
        except OSError as exc:
            os.close(handle)
            target.unlink(missing_ok=True)
            if exc.errno in _NO_REFLINK:
                return False
            raise
        os.close(handle)
    return True


def _copy_file(source, target: Path, progressed: Callable[[], None] | None = None) -> int:
    """Copy in the kernel (copy_file_range: a reflink, no data written, on btrfs or XFS), under
    a shared lock on the catalogue, DuckDB's own (fcntl): refused while another process has it
    open for writing (a notebook's writable connection takes no writer lock, and may be writing
    it: a torn copy), and keeping one from opening it until the copy is made. The copy is
    readable by its owner alone until it is whole (then the catalogue's permissions). Flushed to
    the disk 64 MiB at a time, then `progressed()`: the flush at its end, which its caller makes,
    is of 64 MiB at most, not of GBs (no step of a brief holder is long without a sign)."""
    with _reading(source) as src:
        _shared_lock(src, Path(src.name))
        target.unlink(missing_ok=True)   # (a copy killed half-way: its permissions are not ours to keep)
        os.lseek(src.fileno(), 0, os.SEEK_SET)   # (copy_bytes copies from the offset)
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
            def flushed() -> None:
                os.fdatasync(dst.fileno())
                if progressed:
                    progressed()
            return copy_bytes(src.fileno(), dst.fileno(), flushed)


@contextlib.contextmanager
def _reading(source):
    """`source` open for reading: the file publish opened (the catalogue checked: left open), or a path opened here.
    (The shared lock taken on publish's holds until it closes it: POSIX locks are the process's, let go at
    the close of any handle of the file; no other is closed meanwhile.)"""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb", buffering=0) as src:
            yield src
    else:
        yield source


def _shared_lock(src, source: Path) -> None:
    """DuckDB's own shared lock on the catalogue, for as long as `src` is open: refused while
    another process has it open for writing, and keeping one from opening it meanwhile."""
    try:
        fcntl.lockf(src.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        held = OSError(exc.errno, f"{source} is open for writing in another process")
        held.names_its_file = True   # (catalog.files.writing: not the copy's write that failed)
        raise held from None


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
