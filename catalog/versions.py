"""The migrations this civicat ships, and those a catalogue holds that it does not: a newer
civicat's. Writers refuse such a catalogue (catalog.store.migrate); readers read it as this
civicat knows it, saying so (catalog.lock.connect_read_only)."""
from __future__ import annotations

import functools
import re
from importlib import resources
from importlib.resources.abc import Traversable

MIGRATION_FILE = re.compile(r"^(\d+)_(\w+)\.sql$")


class CatalogueTooNew(Exception):
    """The catalogue holds migrations this civicat does not ship: a newer civicat wrote it
    (raised by catalog.store.migrate; here, where a command's reader catches it without
    importing the store)."""


@functools.cache
def shipped_migrations() -> dict[int, tuple[Traversable, str]]:
    """version -> (its script, its name), of catalog/migrations/."""
    shipped = {}
    for script in resources.files("catalog").joinpath("migrations").iterdir():
        match = MIGRATION_FILE.match(script.name)
        if match:
            shipped[int(match.group(1))] = (script, match.group(2))
    return shipped


def newer_migrations(applied: dict[int, str]) -> str | None:
    """What the applied migrations (version -> name) hold that this civicat does not ship,
    said for a message (`0018_name; this one knows up to 0017`), or None."""
    unknown = sorted(set(applied) - set(shipped_migrations()))
    if not unknown:
        return None
    return (", ".join(f"{version:04d}_{applied[version]}" for version in unknown)
            + f"; this one knows up to {max(shipped_migrations()):04d}")
