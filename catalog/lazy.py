"""Modules imported on first use.

Each portal kind's module also holds its records code, which needs Arrow and DuckDB. The
catalogue harvest's mapping workers import every portal module but never pull records:
imported eagerly, those libraries would cost each worker about 90 MB and most of a
second before its first batch.
"""
from __future__ import annotations

import importlib
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
