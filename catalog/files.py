"""Writing files: a write that fails names its file.

Python's and Arrow's write errors say only "[Errno 28] No space left on device" (or, past a
file-size limit, "File too large"): a nightly run that fails so must say which file, so that
its reader knows which disk is full (the catalogue's folder, the records', an export's, the
temporary directory)."""
from __future__ import annotations

from collections.abc import Iterator
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
