"""A DuckDB transaction a stop may end, and ending one that failed."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from catalog.lazy import LazyModule

duckdb = LazyModule("duckdb")  # as in catalog.records, whose module the mapping workers import


def rollback(con) -> None:
    """Roll back the connection's transaction, unless DuckDB already has: a COMMIT that
    fails (out of memory while it writes) ends its transaction, and a ROLLBACK then raises
    "no transaction is active" in place of the commit's own error, which is the one to
    report (and the one a retry with more memory looks for)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException as exc:
        if "no transaction is active" not in str(exc):
            raise


@contextmanager
def stoppable_transaction(cur) -> Iterator[None]:
    """BEGIN ... COMMIT on `cur` (an uncut.Connection), whose statements a stop ends at once,
    DuckDB interrupting them (a large portal's merge or a table's rebuild takes 15 s and more):
    rolled back, the tables as they were. The COMMIT and the ROLLBACK run to their end."""
    cur.execute("BEGIN TRANSACTION")
    cur.interruptible = True
    try:
        yield
        cur.interruptible = False
        cur.execute("COMMIT")
    except BaseException:
        cur.interruptible = False
        rollback(cur)
        raise
