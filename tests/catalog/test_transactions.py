import duckdb
import pytest

from catalog import uncut
from catalog.transactions import rollback, stoppable_transaction


def test_a_commit_that_ran_out_of_memory_keeps_its_own_error(tmp_path):
    # DuckDB keeps strings of ~60 KB in memory until a checkpoint: the second commit of
    # 60 MB of them does not fit 128 MB, and ends its transaction as it fails
    con = duckdb.connect(str(tmp_path / "c.duckdb"), config={"memory_limit": "128MB",
                                                             "checkpoint_threshold": "1GB"})
    con.execute("CREATE TABLE t (s VARCHAR)")
    with pytest.raises(duckdb.TransactionException, match="Failed to commit"):  # noqa: PT012
        for _ in range(5):
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("INSERT INTO t SELECT repeat('x', 60000) || range FROM range(1000)")
                con.execute("COMMIT")
            except BaseException:
                rollback(con)  # a plain ROLLBACK raised "no transaction is active" here instead
                raise
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 1000  # the failed one left nothing


def test_a_rollback_still_rolls_back_an_open_transaction(tmp_path):
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    con.execute("CREATE TABLE t (n INTEGER)")
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO t VALUES (1)")
    rollback(con)
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    rollback(con)  # nothing open: not an error


def test_a_stoppable_transaction_commits_and_a_stop_inside_rolls_it_back(tmp_path):
    """The merge's and the rebuild's transaction: its statements interruptible while it runs,
    committed at its end; a stop inside (KeyboardInterrupt) rolls it back and goes on; the
    COMMIT and the ROLLBACK are never interruptible."""
    cur = uncut.Connection(duckdb.connect(str(tmp_path / "c.duckdb")))
    cur.execute("CREATE TABLE t (n INTEGER)")
    with stoppable_transaction(cur):
        assert cur.interruptible
        cur.execute("INSERT INTO t VALUES (1)")
    assert not cur.interruptible
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012
        with stoppable_transaction(cur):
            cur.execute("INSERT INTO t VALUES (2)")
            raise KeyboardInterrupt
    assert not cur.interruptible
    assert cur.execute("SELECT list(n) FROM t").fetchone()[0] == [1]
    cur.execute("INSERT INTO t VALUES (3)")   # (no transaction left open)
    assert cur.execute("SELECT list(n ORDER BY n) FROM t").fetchone()[0] == [1, 3]
