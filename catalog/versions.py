"""The migrations this civicat ships, and those a catalogue holds that it does not: a newer
civicat's. Writers refuse such a catalogue (catalog.store.migrate); readers read it as this
civicat knows it, saying so (catalog.lock.connect_read_only)."""
from __future__ import annotations

import functools
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

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


class NotACatalogue(Exception):
    """A DuckDB file that holds no civicat catalogue: another program's database (`empty` False),
    or a DuckDB file with nothing in it yet (`empty`: a first harvest makes the catalogue there)."""

    def __init__(self, message: str, *, empty: bool):
        super().__init__(message)
        self.empty = empty


TABLES_NAMED = 8   # of another program's database, in the message that refuses it


def not_a_catalogue(con, db_path) -> NotACatalogue | None:
    """Why the current database of `con` (DuckDB's) is no civicat catalogue, or None when it is one.
    civicat's catalogue records its migrations in schema_migrations (version, name) from the first
    write (catalog.store.migrate), the first of them 0001_initial; a database without that table, or
    whose table of that name has other columns or records another first migration (another tool's),
    is not civicat's. (Only the first is compared: a migration once shipped under a name since
    reverted, 0014_search_fields, is still civicat's.)"""
    import duckdb

    objects = [name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND database_name = current_database() "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name = current_database() "
        "ORDER BY 1").fetchall()]
    if "schema_migrations" in objects:
        try:
            applied = dict(con.execute("SELECT version, name FROM schema_migrations").fetchall())
        except duckdb.Error:   # (no such columns: another tool's table)
            applied = None
        first = min(shipped_migrations())
        if applied is not None and applied.get(first) == shipped_migrations()[first][1]:
            return None
        lacks = "its table schema_migrations is not civicat's record of its migrations"
        if applied == {} and objects == ["schema_migrations"]:
            # (the record alone, empty: a first harvest killed before its first migration committed, the
            # catalogue not made yet. An empty record beside other tables is another tool's: taken for
            # civicat's, a writer's migrations added civicat's tables to that database)
            objects = []
    else:
        lacks = "it has no civicat migration record (table schema_migrations)"
    if not objects:
        return NotACatalogue(f"{db_path} is an empty DuckDB database, no civicat catalogue yet: run `civicat "
                             "harvest` first (it makes the catalogue there)", empty=True)
    named = ", ".join(objects[:TABLES_NAMED]) + (f" and {len(objects) - TABLES_NAMED} more"
                                                 if len(objects) > TABLES_NAMED else "")
    tables = "1 table" if len(objects) == 1 else f"{len(objects)} tables"
    return NotACatalogue(f"{db_path} is a DuckDB database but no civicat catalogue: {lacks}; it holds {tables} "
                         f"of another program's ({named}). --db names civicat's catalogue, and civicat adds no "
                         "table to another program's database", empty=False)


def file_not_a_catalogue(db_path) -> NotACatalogue | None:
    """not_a_catalogue of the DuckDB file at `db_path`, opened read-only for it; None too when there
    is no file, or DuckDB cannot open it now (held by another process, a log to replay, damaged):
    the command's own open says why. The caller holds the writer lock (no civicat writer is opening
    the file: a read-only open meanwhile would keep it out)."""
    return read_from_file(db_path, lambda con: not_a_catalogue(con, db_path))


def read_from_file(db_path, read, *, unopened=None):
    """`read(con)` of the DuckDB file at `db_path` opened read-only; None when there is no file,
    `unopened` when DuckDB cannot open it now."""
    import duckdb

    from catalog import uncut

    if not Path(db_path).is_file():
        return None
    try:
        con = uncut.connect(str(db_path), read_only=True)
    except duckdb.Error:
        return unopened
    try:
        return read(con)
    finally:
        con.close()
