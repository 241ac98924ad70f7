"""A DuckDB transaction a stop may end, and ending one that failed."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from catalog import uncut
from catalog.lazy import LazyModule

duckdb = LazyModule("duckdb")  # as in catalog.records, whose module the mapping workers import


def rollback(con) -> None:
    """Roll back the connection's transaction, unless DuckDB already has: a COMMIT that
    fails (out of memory while it writes) ends its transaction, and a ROLLBACK then raises
    "no transaction is active" in place of the commit's own error, which is the one to
    report (and the one a retry with more memory looks for). So too on a database a failed
    checkpoint invalidated (DuckDB refuses every statement there, a ROLLBACK too, until it is
    attached again: nothing of the transaction can be written)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        if "no transaction is active" not in str(exc) and "has been invalidated" not in str(exc):
            raise


class StoppedAfterCommit(KeyboardInterrupt):
    """A stop (Ctrl-C, SIGTERM) came during a stoppable_transaction's COMMIT, which ran to its end:
    the transaction is committed, and the stop goes on from there."""


@contextmanager
def stoppable_transaction(cur) -> Iterator[None]:
    """BEGIN ... COMMIT on `cur` (an uncut.Connection), whose statements a stop ends at once,
    DuckDB interrupting them (a large portal's merge or a table's rebuild takes 15 s and more):
    rolled back, the tables as they were. The COMMIT and the ROLLBACK run to their end: a stop
    held through the COMMIT is raised as StoppedAfterCommit (it was said rolled back)."""
    cur.execute("BEGIN TRANSACTION")
    cur.interruptible = True
    committing = False
    try:
        yield
        cur.interruptible = False
        committing = True
        cur.execute("COMMIT")
    except BaseException as exc:
        cur.interruptible = False
        if committing and uncut.held_to_its_end(exc):
            raise StoppedAfterCommit(f"stopped as the transaction committed ({exc!r})") from exc
        rollback(cur)
        raise
