"""A small file system of its own for a test (tmpfs, mounted under tmp_path): its free space is
what the kernel says it is, and a write past it fails with ENOSPC, "No space left on device", as
on a full disk. Mounting one takes root (CAP_SYS_ADMIN): elsewhere the test skips, saying so."""
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(where: Path, size: int) -> Iterator[Path]:
    """`where`, a tmpfs of `size` bytes mounted there, unmounted (and what it held gone) after."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                                 capture_output=True, text=True)
    except OSError as exc:   # (no `mount` program: a slim container)
        pytest.skip(f"a small file system to fill could not be mounted (no mount program: {exc})")
    if mounted.returncode != 0:
        pytest.skip(f"a small file system to fill could not be mounted (it takes root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        # (lazy: a process of the test's that still holds a file there does not keep it mounted)
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def free(where: Path) -> int:
    stats = os.statvfs(where)
    return stats.f_bavail * stats.f_frsize


def fill(where: Path, leaving: int, name: str = "ballast") -> Path:
    """Another program's file filling `where`'s file system until `leaving` bytes stay free."""
    ballast = where / name
    with open(ballast, "ab") as file:
        file.write(bytes(max(0, free(where) - leaving)))
    assert free(where) <= leaving + (64 << 10), (free(where), leaving)
    return ballast
