"""Read-only SQL over the catalogue, for `civicat sql` and analysts' scripts.

Three independent guards: only SELECT-like statements are accepted; the database is
opened read-only; and file system access (ATTACH, COPY, read_csv, INSTALL/LOAD ...) is
disabled with the configuration locked, so no statement can turn it back on.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import duckdb

from catalog import uncut
from catalog.lock import CatalogueBusy, connect_read_only, file_locked, file_writer
from catalog.read_copy import as_of, has_wal, is_current, read_copy_path

log = logging.getLogger("civicat.read")

ALLOWED_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
# DuckDB parses INSTALL as a LOAD statement: name both, as the user may have written either
STATEMENT_NAMES = {duckdb.StatementType.LOAD: "INSTALL or LOAD"}
LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


class QueryRefused(Exception):
    """The query is the user's error, refused before it runs (`civicat sql` exits 2, bad
    usage): it does not parse, names no such table, column or function, is no read-only
    statement, or asks for what the policy above turns off (a file, an extension)."""


# what DuckDB raises for the query itself, while parsing and binding it, before any row is
# read; any other error comes from running a valid query (`civicat sql` exits 1)
QUERY_ERRORS = (duckdb.ParserException, duckdb.SyntaxException, duckdb.BinderException, duckdb.CatalogException)


def read_only_connection(db_path: str | Path, *,
                         before_lock: Callable[[duckdb.DuckDBPyConnection], None] | None = None
                         ) -> duckdb.DuckDBPyConnection:
    """`before_lock` runs before file access is turned off: to load an extension from a
    file the caller names (search's fts), never anything a query says."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise FileNotFoundError(f"no catalogue at {db_path}: run `civicat harvest` first")
    config = LOCKED_DOWN if before_lock is None else {k: v for k, v in LOCKED_DOWN.items()
                                                      if k != "enable_external_access"}
    con = _catalogue_or_read_copy(db_path, config)
    if before_lock is not None:
        before_lock(con)
        con.execute("SET enable_external_access = false")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET lock_configuration = true")  # from here on no statement can re-open file access
    return con


def _catalogue_or_read_copy(db_path: Path, config: dict) -> uncut.Connection:
    """The read copy where it holds the catalogue's last write (a reader of the catalogue itself
    kept the next writer out: a long `civicat sql` at 01:00 made the cron harvest exit 2); else
    the catalogue; while a writer holds it, its read copy (catalog.read_copy), saying so on
    stderr with the time it is from. Without a copy, the catalogue's own error."""
    copy = read_copy_path(db_path)
    if is_current(db_path) and not has_wal(db_path):   # (a WAL: commits the file does not hold yet)
        try:
            return uncut.connect(str(copy), read_only=True, config=config, interruptible=True)
        except duckdb.Error:   # (replaced or removed meanwhile: the catalogue, as below)
            pass
    try:
        return connect_read_only(db_path, config)
    except duckdb.IOException as exc:
        if not file_locked(exc) or not copy.exists():
            raise
        writer = f"is being written by {file_writer(exc, db_path)}"
    except CatalogueBusy:   # (its WAL to replay, and a writer holding the lock)
        if not copy.exists():
            raise
        writer = "is being recovered by a writer"
    written = as_of(db_path)   # (before the open: a copy published meanwhile is newer, never older)
    con = uncut.connect(str(copy), read_only=True, config=config, interruptible=True)   # (as the catalogue's)
    log.warning("%s %s: reading its read copy %s, the catalogue as of %s (when the last writer ended)",
                db_path, writer, copy, written)
    return con


def run_query(db_path: str | Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement; returns (column names, rows)."""
    con = read_only_connection(db_path)
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryRefused(f"cannot parse the query: {exc}") from None
        if len(statements) != 1:
            raise QueryRefused(f"expected exactly one statement, got {len(statements)}")
        kind = statements[0].type
        if kind not in ALLOWED_STATEMENTS:
            name = STATEMENT_NAMES.get(kind, kind.name)
            article = "an" if name[0] in "AEIOU" else "a"
            raise QueryRefused(f"only read-only queries (SELECT) are allowed; this is {article} {name} statement")
        try:
            cursor = con.execute(sql)
        except QUERY_ERRORS as exc:
            raise QueryRefused(str(exc)) from None
        except duckdb.PermissionException as exc:
            raise QueryRefused(f"refused: a query reads the catalogue's own tables only, no file, URL or "
                               f"extension. {exc}") from None
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()
    finally:
        con.close()
