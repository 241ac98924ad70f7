import pytest

from catalog.query import QueryRefused, run_query
from catalog.store import Store


@pytest.fixture
def db(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    store.con.execute("CREATE TABLE t AS SELECT 1 AS a")
    store.close()
    return tmp_path / "c.duckdb"


def test_select_runs(db):
    assert run_query(db, "SELECT a, a + 1 AS b FROM t") == (["a", "b"], [(1, 2)])
    assert run_query(db, "DESCRIBE datasets")[1]


@pytest.mark.parametrize("sql", [
    "DELETE FROM t", "INSERT INTO t VALUES (2)", "UPDATE t SET a = 2", "DROP TABLE t", "CREATE TABLE x (a INT)",
    "ATTACH 'other.duckdb'", "COPY t TO 'out.csv'", "INSTALL fts", "LOAD fts", "SET enable_external_access = true",
    "EXPORT DATABASE 'dump'", "CHECKPOINT", "SELECT 1; DELETE FROM t",
])
def test_writes_and_file_access_are_refused(db, sql):
    with pytest.raises(QueryRefused):
        run_query(db, sql)
    assert run_query(db, "SELECT count(*) FROM t")[1] == [(1,)]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('x.parquet')", "SELECT * FROM read_json('x.json')",
])
def test_file_reading_table_functions_are_refused(db, sql):
    with pytest.raises(Exception, match="(?i)permission|disabled"):
        run_query(db, sql)
