"""The catalogue's writer lock: who holds it, as readers' messages name it."""
import os
from pathlib import Path

import pytest

from catalog.lock import WriterLock, lock_path, writer_holding


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
