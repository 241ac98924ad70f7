"""Scratch folders in the temporary directory, and those a process killed left (catalog.scratch)."""
import subprocess
import sys

from catalog.scratch import ScratchFolder, remove_left_over
from tests.children import ended


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ended(child)
    return child.pid


def test_only_folders_of_processes_gone_and_not_held_are_removed(tmp_path, monkeypatch):
    """A folder whose pid is gone and whose lock no process holds goes (one killed before it made
    its lock too); one of a live pid stays, and so does one whose pid is gone but whose lock is
    held (another pid namespace sharing /tmp, or a pid reused: the lock is what says)."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = dead_pid()
    (tmp_path / f"civicat-download-{gone}-abc").mkdir()
    (tmp_path / f"civicat-download-{gone}-abc" / "data.csv").write_bytes(b"x" * 2_000_000)
    (tmp_path / f"civicat-scan-{gone}-nolock").mkdir()
    held = ScratchFolder("download")   # held by this process, renamed as if its pid were gone
    held.path = held.path.rename(tmp_path / f"civicat-download-{gone}-held")
    live = ScratchFolder("scan")
    others = [tmp_path / f"civicat-body-{gone}-x", tmp_path / "civicat-download-notapid-x", tmp_path / "other"]
    for other in others:
        other.mkdir()
    try:
        done = remove_left_over()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [held.path.name, live.path.name, *(o.name for o in others)])
        assert done == [f"removed {tmp_path}/civicat-download-{gone}-abc (2.0 MB): left by process {gone}, which "
                        "ended without removing it (killed?)",
                        f"removed {tmp_path}/civicat-scan-{gone}-nolock (0.0 MB): left by process {gone}, which "
                        "ended without removing it (killed?)"]
    finally:
        held.remove()
        live.remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(o.name for o in others)
    assert remove_left_over() == []
