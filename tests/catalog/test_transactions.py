import duckdb
import pytest

from catalog.transactions import rollback


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
