"""Read-only SQL over the catalogue, for `civicat sql` and analysts' scripts.

Three independent guards: only SELECT-like statements are accepted; the database is
opened read-only; and file system access (ATTACH, COPY, read_csv, INSTALL/LOAD ...) is
disabled with the configuration locked, so no statement can turn it back on.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb

from catalog import uncut
from catalog.lock import connect_read_only
from catalog.read_copy import catalogue_or_read_copy, has_wal, is_current, read_copy_path

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
    the catalogue, or its read copy while a writer holds it (`catalogue_or_read_copy`)."""
    def open_db(path: Path) -> uncut.Connection:   # (the copy as the catalogue: it never has a WAL)
        return connect_read_only(path, config)

    if is_current(db_path) and not has_wal(db_path):   # (a WAL: commits the file does not hold yet)
        try:
            return open_db(read_copy_path(db_path))
        except duckdb.Error:   # (replaced or removed meanwhile: the catalogue, as below)
            pass
    return catalogue_or_read_copy(db_path, open_db)[0]


# DuckDB's error for a table name that does not exist, and its guess on the next line if it has one
_TABLE_GUESS = re.compile(r'(Table with name .* does not exist!)(?:\nDid you mean "([^"\n]+)"\?)?')


def _guess_among_the_catalogue_s_tables(con: duckdb.DuckDBPyConnection, exc: duckdb.Error) -> str:
    """DuckDB's words for the query's error; for a table that does not exist, its guess kept when it
    is one of the catalogue's tables (`dataset`: "datasets"), else (`runs`: DuckDB's own
    "duckdb_constraints", `nope`: "pg_enum", tables no user asked about; `x`: none) the catalogue's
    tables named."""
    message = str(exc)
    guess = _TABLE_GUESS.search(message) if isinstance(exc, duckdb.CatalogException) else None
    if guess is None:
        return message
    tables = [name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
    if guess.group(2) in tables:
        return message
    return message.replace(guess.group(0), f"{guess.group(1)}\nThe catalogue's tables: {', '.join(tables)}", 1)


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
            raise QueryRefused(_guess_among_the_catalogue_s_tables(con, exc)) from None
        except duckdb.PermissionException as exc:
            raise QueryRefused(f"refused: a query reads the catalogue's own tables only, no file, URL or "
                               f"extension. {exc}") from None
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()
    finally:
        con.close()
