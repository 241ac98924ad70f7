"""Ending a DuckDB transaction that failed."""
from __future__ import annotations

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
