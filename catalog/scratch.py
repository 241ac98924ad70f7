"""Scratch folders in the temporary directory (a records download, a scan's spill), and what a
process killed (kill -9, the OOM killer, a power cut) left of them, removed by the next pull.

A folder is named `civicat-<what>-<pid>-<random>` and holds `.held`, a file its process keeps
locked (flock) while the folder is in use: the kernel lets go of the lock when the process ends,
however it ends. A folder is left over when its pid is not alive and its lock can be taken; its
pid alone could be another process's now (or one of another pid namespace sharing /tmp)."""
from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger("civicat.scratch")

PREFIX = "civicat-"
KINDS = ("download", "scan")   # the scratch folders civicat makes (harvester.records, catalog.records)
HELD = ".held"
_NAME = re.compile(rf"^{PREFIX}(?:{'|'.join(KINDS)})-(\d+)-")


class ScratchFolder:
    """A temporary folder of this process (`path`), held until remove(); a context manager too."""

    def __init__(self, kind: str) -> None:
        assert kind in KINDS, kind
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-"))
        self._held: int | None = None
        try:
            self._held = os.open(self.path / HELD, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        """The folder and all in it removed (never raises), its lock let go after."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        self.remove()


def remove_left_over(folder: str | Path | None = None) -> list[str]:
    """Remove the scratch folders in `folder` (the temporary directory) that a process ended
    without removing; returns what was removed, said for a log line."""
    folder = Path(folder or tempfile.gettempdir())
    done = []
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.name.startswith(PREFIX))
    except OSError:
        return done
    for name in names:
        matched = _NAME.match(name)
        if not matched or process_alive(int(matched.group(1))):
            continue
        path = folder / name
        size = _size(path)
        if _remove_if_let_go(path):
            done.append(f"removed {path} ({size / 1e6:.1f} MB): left by process {matched.group(1)}, which ended "
                        "without removing it (killed?)")
    return done


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):   # (another user's: alive; a number no pid can be: not)
        return pid <= 0x7FFFFFFF
    return True


def process_started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch, to a clock tick: 10 ms), from its
    /proc/PID/stat (field 22: clock ticks since the boot); None where that cannot be read (no such
    process, not Linux). What tells a process from one that had its PID before: a file that names a
    PID made before the process with it now started is not that process's."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read(4096)
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])   # (after the name, which may hold spaces and ')')
        booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)   # (the kernel counts from it)
        return booted + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _remove_if_let_go(path: Path) -> bool:
    """Remove `path` if no process holds its lock (taken meanwhile, so that none can begin to)."""
    try:
        held = os.open(path / HELD, os.O_RDWR)
    except FileNotFoundError:   # (killed between making the folder and its lock: no one holds it)
        held = None
    except OSError:   # (not ours: another user's folder, or no folder)
        return False
    try:
        if held is not None:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    finally:
        if held is not None:
            os.close(held)


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
