"""Modules imported on first use, and pandas kept out of a harvest.

Each portal kind's module also holds its records code, which needs Arrow and DuckDB. The
catalogue harvest's mapping workers import every portal module but never pull records:
imported eagerly, those libraries would cost each worker about 90 MB and most of a
second before its first batch.
"""
from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


class LazyModule:
    """Stands for the module `name` and imports it at the first attribute read."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (imported)' if self._module else ''}>"


class _RefusePandas:
    """A finder on sys.meta_path: `import pandas` raises ModuleNotFoundError (as if it
    were not installed), which DuckDB and pyarrow take as "no pandas"."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("pandas is kept out of the harvest's process (catalog.lazy.pandas_kept_out)",
                                      name=name)
        return None


_REFUSE_PANDAS = _RefusePandas()
_kept_out = {"users": 0}
_kept_out_lock = threading.Lock()


@contextmanager
def pandas_kept_out() -> Iterator[None]:
    """pandas is not imported while this runs (unless it already was). DuckDB imports it on
    the first statement given a parameter (to recognise pandas' own nulls), pyarrow on the
    first pa.array (to recognise its arrays): ~42 MB of RSS for the life of a harvest's
    process, which never hands either of them a pandas object. Both import it when needed
    once this has ended (a DataFrame queried, to_pandas()); but pa.array() reads a pandas
    Series as a plain sequence until some pyarrow call has needed pandas (pyarrow keeps its
    first answer). Harvests running side by side share it: the last to end lets pandas in.
    Process-wide: another thread's `import pandas` fails meanwhile."""
    with _kept_out_lock:
        if not _kept_out["users"] and "pandas" not in sys.modules:
            sys.meta_path.insert(0, _REFUSE_PANDAS)
        _kept_out["users"] += 1
    try:
        yield
    finally:
        with _kept_out_lock:
            _kept_out["users"] -= 1
            if not _kept_out["users"] and _REFUSE_PANDAS in sys.meta_path:
                sys.meta_path.remove(_REFUSE_PANDAS)
