"""A write that failed for want of space, said so that a data team can act on it: which file
(the catalogue, its write-ahead log, the harvest's staging, the records, the HTTP cache, the
temporary directory ...), on which file system, and how much of it is free.

Python says "[Errno 28] No space left on device", DuckDB "TransactionContext Error: Failed to
commit: Could not write file ...": a run recorded `OSError` or `TransactionException` and a
message in their words. `disk_full(exc, db_path)` gives a DiskFull (error_type "DiskFull",
an OSError with the errno) in their place, or None when `exc` is no such failure."""
from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
from pathlib import Path

# errno → what it says of the file system, and the words Python, Arrow and DuckDB write for it
NO_ROOM = {
    errno.ENOSPC: ("its file system is full", ("No space left on device",)),
    errno.EDQUOT: ("the user's disk quota on its file system is spent", ("Disk quota exceeded",)),
    errno.EFBIG: ("it would grow past the process's file size limit (`ulimit -f`) or the largest file its file "
                  "system takes", ("File too large",)),
}
# a path in an error's words: Python's `writing` ("could not write PATH: ..."), DuckDB's ("... file \"PATH\": ...")
_PATH_IN_WORDS = (re.compile(r'"(/[^"]+)"'), re.compile(r"could not write (/\S+?):? "), re.compile(r"'(/[^']+)'"))


class DiskFull(OSError):
    """A write refused for want of space (or over a file size limit), naming its file."""

    error_type = "DiskFull"

    def __str__(self) -> str:   # (its message, without OSError's "[Errno 28] ")
        return self.strerror


def disk_full(exc: BaseException, db_path: str | Path | None = None, records: str | Path | None = None,
              export: str | Path | None = None) -> DiskFull | None:
    """`exc` (or an error it was raised from) as a DiskFull when it is a write refused for want of
    space; the file named as what it is to a catalogue at `db_path` (records at `records`, else
    beside it; an export into `export`). None otherwise."""
    for error in _chain(exc):
        if isinstance(error, DiskFull):
            return error
        code = _no_room(error)
        if code is None:
            continue
        path = _path_of(error)
        where = f"{what_is(path, db_path, records, export)} ({path})" if path else "a file civicat writes (not named)"
        message = f"{no_room_to_write(where, code, path)}. Nothing is lost: what was written before stays whole " \
                  f"({type(error).__name__}: {error})"
        found = DiskFull(code, message)
        found.filename = None
        found.path = path
        return found
    return None


def no_room_to_write(where: str, code: int, path: Path | None) -> str:
    """`no room to write WHERE: why` (NO_ROOM[code]), and the free space of `path`'s file system
    when it is full (not a file size limit's)."""
    said = f"no room to write {where}: {NO_ROOM[code][0]}"
    return f"{said}; {free_space(path)}" if path and code != errno.EFBIG else said


def _chain(exc: BaseException):
    """`exc` and the errors it was raised from or during, as Python's traceback shows them: not the
    context an error raised `from None` hides (its author said it was not that error's)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ if exc.__cause__ is not None else None if exc.__suppress_context__ else exc.__context__


def _no_room(error: BaseException) -> int | None:
    if isinstance(error, OSError) and error.errno in NO_ROOM:
        return error.errno
    if not _of_a_write_here(error):   # (a portal's answer may quote its own disk full: its failure, not ours)
        return None
    text = str(error)
    for code, (_, words) in NO_ROOM.items():
        if any(w.lower() in text.lower() for w in words) or f"errno {code}]" in text:
            return code
    return None


def _of_a_write_here(error: BaseException) -> bool:
    """Whether `error` is one of those a write of this process raises (Python's, Arrow's: OSError;
    DuckDB's), whose words may say its file system is full: not an HTTP error, whose words may be
    a portal's own (CKAN's success=false naming Solr's full disk, a 4xx page)."""
    duckdb = sys.modules.get("duckdb")   # (not imported: no DuckDB error can have been raised)
    return isinstance(error, OSError) or (duckdb is not None and isinstance(error, duckdb.Error))


def _path_of(error: BaseException) -> Path | None:
    if isinstance(error, OSError) and error.filename:
        return Path(os.fsdecode(error.filename))
    text = str(error)
    for pattern in _PATH_IN_WORDS:
        found = pattern.search(text)
        if found:
            return Path(found.group(1))
    return None


def what_is(path: Path, db_path: str | Path | None, records: str | Path | None = None,
            export: str | Path | None = None) -> str:
    """What `path` is to a catalogue at `db_path`: its file, its WAL, its staging, its records ..."""
    path = Path(os.path.abspath(path))
    places: list[tuple[Path, str, bool]] = []   # (path, what, whether what is under it counts)
    if export is not None:   # (OUT, and its version and unfinished folders beside it: `.OUT.…`)
        out = Path(os.path.abspath(export))
        if path == out or out in path.parents or path.parent == out.parent and path.name.startswith(f".{out.name}."):
            return "the export"
        if any(p.parent == out.parent and p.name.startswith(f".{out.name}.") for p in path.parents):
            return "the export"
    if records is not None:
        root = Path(os.path.abspath(records))
        places += [(root, "the records", True), (root.parent / f".{root.name}-staging", "the records pull's staging", True)]
    if db_path is not None:
        db = Path(os.path.abspath(db_path))
        read_copy = db.with_name(f"{db.stem}.read{db.suffix}")
        places += [(db, "the catalogue", False), (Path(f"{db}.wal"), "the catalogue's write-ahead log", False),
                   (read_copy, "the catalogue's read copy", False),
                   (Path(f"{read_copy}.wal"), "the catalogue's read copy", False),
                   (read_copy.with_name(f".{read_copy.name}.publishing"), "the catalogue's read copy", False),
                   (read_copy.with_name(f".{read_copy.name}.spare"), "the catalogue's read copy", False),
                   (db.parent / f".{db.name}.staging", "the harvest's staging", True),
                   (db.parent / "records", "the records", True),
                   (db.parent / ".records-staging", "the records pull's staging", True),
                   (db.parent / "http_cache", "the HTTP cache", True)]
    places.append((Path(tempfile.gettempdir()).resolve(), "a temporary file (TMPDIR)", True))
    for place, what, under in places:
        if path == place or (under and place in path.parents):
            return what
        if under and place.resolve() != place and (path == place.resolve() or place.resolve() in path.parents):
            return what
    if db_path is not None and Path(os.path.abspath(db_path)).parent in path.parents:
        return "a file beside the catalogue"
    return "a file civicat writes"


def free_bytes(folder: str | Path) -> int | None:
    """The bytes an unprivileged writer may still write on the file system that holds `folder`
    (statvfs: blocks available, not those kept for root), or None when it cannot be read."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def free_space(path: Path) -> str:
    """`N MB free of M MB on MOUNT`, of the file system that holds `path` (or its nearest folder)."""
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return "its free space could not be read"
    free, size = stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
    return f"{free / 1e6:.1f} MB free of {size / 1e6:.1f} MB on {_mount_of(folder)}: free space there"


def _mount_of(path: Path) -> Path:
    path = path.resolve()
    device = os.stat(path).st_dev
    while path != path.parent and os.stat(path.parent).st_dev == device:
        path = path.parent
    return path
