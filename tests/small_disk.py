"""A small file system of its own for a test (tmpfs, mounted under tmp_path): its free space is
what the kernel says it is, and a write past it fails with ENOSPC, "No space left on device", as
on a full disk. Mounting one takes root (CAP_SYS_ADMIN): run by another user (a CI's), a test that
uses small_disk runs in a pytest of its own in a user namespace with a mount namespace of its own
(`unshare --user --map-root-user --mount`: root there, and a tmpfs mounts: in_user_namespace, called
by conftest); where the kernel allows none, it skips, saying so."""
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
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
        how = "" if os.geteuid() == 0 or IN_USER_NAMESPACE in os.environ else f" ({user_namespace_refused()})"
        pytest.skip(f"a small file system to fill could not be mounted (it takes root{how}): "
                    f"{mounted.stderr.strip()}")
    try:
        yield where
    finally:
        # (lazy: a process of the test's that still holds a file there does not keep it mounted)
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def free(where: Path) -> int:
    stats = os.statvfs(where)
    return stats.f_bavail * stats.f_frsize


def fill(where: Path, leaving: int, name: str = "ballast") -> Path:
    """Another program's file filling `where`'s file system until `leaving` bytes stay free. The free
    space read once the file system has committed what it was given: btrfs counts blocks freed or
    taken by its last writes only then (a catalogue's checkpoint just before: 266 KB more than there
    was), and the ballast sized from it left less than asked, or met the disk's end itself."""
    ballast = where / name
    os.sync()
    with open(ballast, "ab") as file:
        file.write(bytes(max(0, free(where) - leaving)))
        file.flush()
        os.fsync(file.fileno())   # (btrfs counts a write's blocks taken once it is on the disk)
    assert free(where) <= leaving + (64 << 10), (free(where), leaving)
    return ballast


# what each reflink file system needs: its mkfs (Debian: xfsprogs, btrfs-progs) and its options, and the
# least size it makes (XFS: 300 MB; the image is a sparse file: what it holds, not its size, is written)
REFLINK_FILE_SYSTEMS = {"xfs": (["mkfs.xfs", "-q", "-m", "reflink=1"], 320 << 20),
                        "btrfs": (["mkfs.btrfs", "-q"], 256 << 20)}


@contextmanager
def reflink_disk(where: Path, kind: str) -> Iterator[Path]:
    """`where`, a small file system that makes reflinks (`kind`: "xfs", "btrfs"), in an image file
    beside it mounted there through a loop device; unmounted after. Skips, saying why, without its
    mkfs or where a loop device cannot be mounted (it takes root)."""
    mkfs, size = REFLINK_FILE_SYSTEMS[kind]
    if shutil.which(mkfs[0]) is None:
        pytest.skip(f"no {mkfs[0]} to make a {kind} file system (Debian: "
                    f"{'xfsprogs' if kind == 'xfs' else 'btrfs-progs'})")
    image = where.with_name(where.name + f".{kind}.img")
    with open(image, "wb") as file:
        file.truncate(size)
    made = subprocess.run([*mkfs, str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"a {kind} file system could not be made: {made.stderr.strip()}")
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        image.unlink()
        pytest.skip(f"a {kind} file system could not be mounted on a loop device (it takes root): "
                    f"{mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)   # (its loop device let go with it)
        image.unlink()


IN_USER_NAMESPACE = "CIVICAT_TEST_IN_USER_NAMESPACE"   # (set in the pytest run in one: never nested)
UNSHARE = ("unshare", "--user", "--map-root-user", "--mount")
USER_NAMESPACE_RUN_SECONDS = 1800   # (a test's own pytest: a hung one a failure, not a TimeoutExpired traceback)


def uses_small_disk(function) -> bool:
    """Whether a test function mounts a small disk (names small_disk: imported in it, or at its module's top)."""
    code = function.__code__
    return "small_disk" in code.co_names or "small_disk" in code.co_varnames


@cache
def user_namespace_refused() -> str | None:
    """Why a user namespace with a mount namespace of its own cannot be made here (no `unshare`; a
    kernel or container that allows unprivileged ones none: user.max_user_namespaces 0, seccomp,
    AppArmor), or None when it can."""
    try:
        made = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no user namespace: {exc}"
    return None if made.returncode == 0 else f"no user namespace: {made.stderr.strip() or made.returncode}"


def needs_user_namespace(item) -> bool:
    """Whether the test `item` runs in a user namespace (in_user_namespace): it mounts a small disk,
    it is not root, and this is not the run in one already."""
    function = getattr(item, "function", None)
    return (function is not None and uses_small_disk(function) and os.geteuid() != 0
            and IN_USER_NAMESPACE not in os.environ and user_namespace_refused() is None)


def in_user_namespace(item) -> None:
    """The test `item` run by a pytest of its own in a user namespace (root there: its small disk
    mounts), its outcome made this one's: returns when it passed, skips or fails as it did (its
    report's words). Its tmp_path is under one of this user's (owned by root there)."""
    with tempfile.TemporaryDirectory(prefix="civicat-userns-") as scratch:
        report = Path(scratch) / "report.xml"
        try:
            ran = subprocess.run([*UNSHARE, "--", sys.executable, "-m", "pytest",
                                  "-q", "-p", "no:cacheprovider", f"--basetemp={scratch}/tmp", f"--junitxml={report}",
                                  item.nodeid], cwd=item.config.rootpath, capture_output=True, text=True,
                                 timeout=USER_NAMESPACE_RUN_SECONDS, env={**os.environ, IN_USER_NAMESPACE: "1"})
        except subprocess.TimeoutExpired as exc:   # (killed by run(): what it said is the failure's)
            said = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                           for part in (exc.stdout, exc.stderr))
            pytest.fail(f"the test's run in a user namespace took over {USER_NAMESPACE_RUN_SECONDS} s:\n"
                        f"{said[-4000:]}", pytrace=False)
        try:
            [case] = ElementTree.parse(report).getroot().iter("testcase")
        except (OSError, ElementTree.ParseError, ValueError):
            pytest.fail(f"the test's run in a user namespace reported nothing (exit {ran.returncode}):\n"
                        f"{ran.stdout[-4000:]}{ran.stderr[-4000:]}", pytrace=False)
        skipped = case.find("skipped")
        if skipped is not None:
            pytest.skip(f"in a user namespace: {skipped.get('message')}")
        for failed in (case.find("failure"), case.find("error")):
            if failed is not None:
                pytest.fail(f"in a user namespace (`{' '.join(UNSHARE)}`):\n{failed.text or failed.get('message')}",
                            pytrace=False)
