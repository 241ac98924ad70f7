"""The catalogue's writer lock: who holds it, as readers' messages name it."""
import os
from pathlib import Path

import pytest

from catalog.lock import WriterLock, lock_path, pulls_records, writer_holding


def test_the_writer_is_named_where_stat_gives_another_device_than_the_kernel_s_lock_list(tmp_path, monkeypatch):
    """/proc/locks names a lock's file by the device of its file system's superblock; stat()
    gives another on overlayfs over two file systems (a container's layers: 00:2a in
    /proc/locks, 00:2b from stat) and on btrfs subvolumes. Matched on the device too, the
    writer holding the lock went unnamed there (DuckDB's wording instead); its PID and the
    file's inode number name it."""
    if not Path("/proc/locks").is_file():
        pytest.skip("no /proc/locks on this system: the holder record's PID alone names the writer")
    db = tmp_path / "c.duckdb"
    real_stat = os.stat

    def stat_on_overlay(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if Path(path) != lock_path(db):
            return result
        fields = list(result)
        fields[2] = result.st_dev + 1   # (st_dev; the inode number as it is)
        return os.stat_result(fields)

    with WriterLock(db):
        assert writer_holding(db, os.getpid())["pid"] == os.getpid()   # (as stat reports it here)
        monkeypatch.setattr(os, "stat", stat_on_overlay)
        holder = writer_holding(db, os.getpid())
    assert holder is not None and holder["pid"] == os.getpid() and holder["command"]
    monkeypatch.undo()
    assert writer_holding(db, os.getpid()) is None   # (released: the record no lock backs)


@pytest.mark.parametrize("command, pulls", [
    ("civicat records sea:3k2p-39jp", True),
    ("civicat --log-format json harvest --records --wait", True),
    ("civicat harvest --portal records --db /data/records/civicat.duckdb", True),   # (a portal so named: taken for one)
    ("civicat harvest --db /data/records.duckdb", False),
    ("civicat retire sea", False),
    ("civicat overlap", False),
    (None, True),   # (a record that names no command: taken for one)
])
def test_a_records_pull_is_told_from_the_other_writers_by_its_command(command, pulls):
    """A records pull replaces records folders as it runs, the one writer that does: an export
    beside it is refused (catalog.export.open_for_export); beside any other, it is of the copy."""
    assert pulls_records({"pid": 4242, "command": command}) is pulls


def test_an_export_holding_the_lock_briefly_is_no_records_pull_whatever_its_folder_is_named():
    assert pulls_records({"pid": 4242, "command": "civicat export --out records", "brief": True}) is False


@pytest.mark.parametrize("brief", [True, False])
def test_a_writer_waits_unasked_for_a_brief_holder_only(tmp_path, brief):
    """An export whose read copy is stale makes it current under the writer lock (seconds):
    a harvest started then exited 2 at once, naming the export. A holder that took the lock
    `brief` is waited for (up to BRIEF_HOLD_SECONDS) by a writer that asked no wait; any other
    holder is not."""
    import threading

    from catalog.lock import CatalogueBusy

    db = tmp_path / "c.duckdb"
    holder = WriterLock(db, brief=brief, poll_seconds=0.01)
    holder.acquire()
    assert writer_holding(db, os.getpid()).get("brief", False) is brief   # (its record says so)
    releasing = threading.Timer(1.0, holder.release)
    releasing.start()
    try:
        if brief:   # (held when asked: taken only by waiting for it)
            with WriterLock(db, poll_seconds=0.05):
                assert writer_holding(db, os.getpid()).get("brief") is None
        else:
            with pytest.raises(CatalogueBusy, match="is being written by process"):
                WriterLock(db).acquire()
    finally:
        releasing.join()
