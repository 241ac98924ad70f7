"""A write refused for want of space, said with its file, what it is, and its file system's free space
(catalog.disk)."""
import errno
import os

import duckdb
import pytest

from catalog.disk import DiskFull, disk_full
from catalog.files import writing


def test_python_s_and_duckdb_s_words_become_a_disk_full_naming_the_file_and_what_it_is(tmp_path):
    db = tmp_path / "c.duckdb"
    staged = tmp_path / ".c.duckdb.staging" / "tmp1" / "seen.jsonl"
    with pytest.raises(OSError) as python_s:
        with writing(staged):
            raise OSError(errno.ENOSPC, "No space left on device")
    duckdb_s = duckdb.TransactionException(f'TransactionContext Error: Failed to commit: Could not write file "{db}.wal": '
                                           "No space left on device")
    cases = [(python_s.value, "the harvest's staging", staged, errno.ENOSPC),
             (duckdb_s, "the catalogue's write-ahead log", f"{db}.wal", errno.ENOSPC),
             (OSError(errno.EFBIG, "File too large", str(tmp_path / "records" / "portal=a" / "x.parquet")),
              "the records", tmp_path / "records" / "portal=a" / "x.parquet", errno.EFBIG),
             (OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "http_cache" / "cache.sqlite")),
              "the HTTP cache", tmp_path / "http_cache" / "cache.sqlite", errno.EDQUOT)]
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize / 1e6
    for error, what, path, code in cases:
        full = disk_full(error, db)
        assert isinstance(full, DiskFull) and full.errno == code and full.error_type == "DiskFull", error
        assert str(full).startswith(f"no room to write {what} ({path}): "), str(full)
        assert f"({type(error).__name__}: {error})" in str(full)   # (their words kept, at the end)
        if code == errno.EFBIG:
            assert "file size limit (`ulimit -f`)" in str(full) and "MB free" not in str(full)
        else:
            said_free = float(str(full).split("; ")[1].split(" MB free")[0])
            assert abs(said_free - free) < 50 and " on /" in str(full), str(full)
    assert disk_full(RuntimeError("wrapped"), db) is None
    try:
        try:
            raise duckdb_s
        except duckdb.Error as exc:
            raise RuntimeError("a step failed") from exc
    except RuntimeError as wrapped:
        assert str(disk_full(wrapped, db)).startswith("no room to write the catalogue's write-ahead log")
    assert disk_full(OSError(errno.EACCES, "Permission denied", str(db)), db) is None
    assert disk_full(duckdb.IOException("Could not write file: Bad file descriptor"), db) is None


def test_a_portals_own_words_of_a_full_disk_are_not_civicats_disk_full(tmp_path):
    """A portal whose own disk is full says so in its answer (CKAN's `"success": false` naming Solr's
    IOException, a 4xx page reading "File too large"): that is the portal's failure, kept in its words,
    not a DiskFull sending the data team to free space on a file system of theirs that has room. The
    words count only in an error of a write of this process (Python's, DuckDB's)."""
    from harvester.http.errors import PermanentError, PortalError, TransientError

    db = tmp_path / "c.duckdb"
    portal_s = [PortalError("the portal answered success=false: Solr: java.io.IOException: No space left on device",
                            "https://data.example.org/api/3/action/package_search", 200),
                PermanentError("HTTP 413: File too large", "https://data.example.org/api/explore/v2.1/exports/jsonl",
                               413),
                PermanentError("HTTP 507: database or disk is full", "https://data.example.org/data.json", 507)]
    for error in portal_s:
        assert disk_full(error, db) is None, error
        try:
            try:
                raise error
            except PermanentError as exc:
                raise TransientError("the listing failed", "https://data.example.org/", None) from exc
        except TransientError as wrapped:
            assert disk_full(wrapped, db) is None, error
    # a write of ours failing under a portal's error is still ours
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "tmp" / "civicat-body-1"))
        except OSError as exc:
            raise PermanentError("the body could not be kept", "https://data.example.org/data.json", 200) from exc
    except PermanentError as wrapped:
        assert str(disk_full(wrapped, db)).startswith("no room to write ")
    assert disk_full(duckdb.IOException(f'Could not write file "{db}.wal": No space left on device'), db).errno \
        == errno.ENOSPC


def test_an_error_raised_from_none_hides_the_full_disk_it_was_raised_in(tmp_path):
    """`raise X from None` hides the error being handled (Python's traceback does not show it):
    disk_full followed it all the same (`__context__`), and an error whose author said it was not
    the disk's (a body refused, raised while the disk-full error was handled) became a DiskFull.
    The chain is followed as Python shows it; one raised `from` the disk-full error still is one."""
    db = tmp_path / "c.duckdb"
    no_room = OSError(errno.ENOSPC, "No space left on device", f"{db}.wal")
    for hidden in (True, False):
        try:
            try:
                raise no_room
            except OSError:
                if hidden:
                    raise ValueError("the body is not what its Content-Type says") from None
                raise ValueError("the body could not be stored")
        except ValueError as exc:
            assert (disk_full(exc, db) is None) == hidden, (hidden, disk_full(exc, db))
    try:
        try:
            raise no_room
        except OSError as cause:
            raise ValueError("stored in part") from cause
    except ValueError as exc:
        assert str(disk_full(exc, db)).startswith("no room to write the catalogue's write-ahead log")
