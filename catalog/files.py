"""Writing files: a write that fails names its file; two folders swapped in one step; a file
synced to the disk.

Python's and Arrow's write errors say only "[Errno 28] No space left on device" (or, past a
file-size limit, "File too large"): a nightly run that fails so must say which file, so that
its reader knows which disk is full (the catalogue's folder, the records', an export's, the
temporary directory)."""
from __future__ import annotations

import ctypes
import errno
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """An OSError raised in the block names `path` (unless it does already), its errno kept."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or str(path) in str(exc) or getattr(exc, "names_its_file", False):
            raise   # (a write in the block named its own file: a part's block writes its progress file)
        named = OSError(exc.errno, f"could not write {path}: {exc.strerror or exc}")
        named.names_its_file = True
        raise named from exc


_COPY_CHUNK = 64 << 20   # bytes per copy_file_range call, and between two calls of copy_bytes' `step`


def copy_bytes(source: int, target: int, step: Callable[[], None] | None = None) -> int:
    """The rest of file descriptor `source` (from its offset to its end) written at `target`'s
    offset, both offsets moved past it; returns the bytes copied. In the kernel where it can
    (copy_file_range: no user-space buffer; a reflink, no data written, on btrfs or XFS), else
    by reads and writes (file systems without it, across devices on older kernels). `step()`
    after each _COPY_CHUNK bytes (a copy of many GB shows it is getting on)."""
    left = os.fstat(source).st_size - os.lseek(source, 0, os.SEEK_CUR)
    done = stepped = 0
    while done < left:
        try:
            copied = os.copy_file_range(source, target, min(_COPY_CHUNK, left - done))
        except OSError:
            copied = 0
        if copied == 0:
            break
        done += copied
        if step and done - stepped >= _COPY_CHUNK:
            step()
            stepped = done
    while done < left and (block := os.read(source, min(1 << 20, _COPY_CHUNK, left - done))):
        view = memoryview(block)
        while view:
            view = view[os.write(target, view):]
        done += len(block)
        if step and done - stepped >= _COPY_CHUNK:
            step()
            stepped = done
    return done


def _iov_max() -> int:
    """Buffers one writev takes (Linux: 1,024; -1 where the system does not say)."""
    try:
        limit = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):
        limit = -1
    return limit if limit > 0 else 16   # (POSIX's least)


_IOV_MAX = _iov_max()


def write_buffers(path: str | Path, buffers: list[bytes]) -> None:
    """`buffers` one after the other as the file `path`, handed to the kernel as they are
    (writev): no block of their joined bytes, which a part of ~2.7 MB would be copied into
    and faulted in afresh for each write."""
    with open(path, "wb", buffering=0) as file:
        for start in range(0, len(buffers), _IOV_MAX):
            waiting = buffers[start:start + _IOV_MAX]
            while waiting:
                written = os.writev(file.fileno(), waiting)
                if written == 0 and any(waiting):
                    raise OSError(errno.EIO, f"could not write {path}: nothing written")
                # (a write cut short: what it took is dropped, the rest written next)
                done = 0
                while done < len(waiting) and written >= len(waiting[done]):
                    written -= len(waiting[done])
                    done += 1
                waiting = waiting[done:]
                if waiting and written:
                    waiting[0] = memoryview(waiting[0])[written:]


_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` (both existing) in one step, Linux's renameat2
    RENAME_EXCHANGE: a reader of either finds one of the two, never nothing. False where the
    system or the file system has no such call (the caller then renames twice)."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


def rename_where_none(source: Path, target: Path) -> bool:
    """Rename `source` to `target` where no file is at `target`, in one step (Linux's renameat2
    RENAME_NOREPLACE): FileExistsError where one is, never replaced. What makes a file whole at a
    path on a file system without hard links (exFAT, vfat: their Linux drivers take the flag). False
    where the system or the file system has no such rename (some FUSE mounts, NFS)."""
    return _renameat2(source, target, _RENAME_NOREPLACE)


def _renameat2(a: Path, b: Path, flags: int) -> bool:
    """renameat2(a, b, flags): True once done, False where the system or the file system has no
    such call or flag; OSError else (FileExistsError for RENAME_NOREPLACE's refusal)."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):   # (a file system without it: some FUSE, NFS)
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))   # (EEXIST: FileExistsError, Python's mapping)


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):   # (no C library to load; Windows takes no None: not Linux)
        return None


def sync(path: str | Path) -> None:
    """Flush a file's bytes (or a folder's names) to the disk. A kill loses only what the
    process held, but a reboot also loses what the kernel had not written yet: a file renamed
    into place before its bytes reached the disk can come back empty under its new name."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
