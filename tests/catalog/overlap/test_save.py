"""`civicat overlap` saves its pairs and groups whole each run; a row it gives the values the last run gave
keeps that run's `computed_at`, so two nights that changed nothing leave the tables (and the export's files)
as they were."""
import shutil

import pytest

from catalog import overlap
from catalog.store import Store
from tests.catalog.overlap.conftest import KIND_UIDS

TABLES = {"overlap_pairs": "uid_a, uid_b", "overlap_groups": "uid"}


def rows(con, table: str) -> dict[tuple, tuple]:
    """The table's rows by key: (values but computed_at, computed_at)."""
    columns = [c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()
               if c != "computed_at"]
    key = TABLES[table].split(", ")
    values = ", ".join(c for c in columns if c not in key)
    return {row[:len(key)]: (row[len(key):-1], row[-1]) for row in con.execute(
        f"SELECT {', '.join(key)}, {values}, computed_at FROM {table}").fetchall()}


@pytest.fixture
def store(real_selection_path, tmp_path):
    shutil.copy(real_selection_path, tmp_path / "catalog.duckdb")
    store = Store(tmp_path / "catalog.duckdb")
    yield store
    store.close()


def test_a_result_unchanged_keeps_the_time_of_the_run_that_gave_it(store):
    con = store.con
    overlap.save(con, overlap.detect(con))
    night1 = {table: rows(con, table) for table in TABLES}
    assert len(night1["overlap_pairs"]) > 20 and len(night1["overlap_groups"]) > 10
    (first,) = {at for table in night1.values() for _, at in table.values()}

    overlap.save(con, overlap.detect(con))
    assert {table: rows(con, table) for table in TABLES} == night1   # computed_at too

    # one dataset changes what it holds: its pairs and its group's rows are computed again, the rest stands
    changed = KIND_UIDS["salaries"][0]
    con.execute("UPDATE datasets SET title = 'Street tree census', description = 'Every street tree: species, "
                "trunk diameter and condition.', keywords = ['trees', 'forestry'] WHERE uid = ?", [changed])
    overlap.save(con, overlap.detect(con))
    night3 = {table: rows(con, table) for table in TABLES}
    times = {at for table in night3.values() for _, at in table.values()}
    assert len(times) == 2 and first in times
    (third,) = times - {first}
    assert third > first
    for table, now in night3.items():
        for key, (values, at) in now.items():
            before = night1[table].get(key)
            assert at == (first if before is not None and before[0] == values else third), (table, key)
        assert any(at == first for _, at in now.values()), table
    assert all(at == third for key, (_, at) in night3["overlap_pairs"].items() if changed in key)
    assert any(changed in key for key in night1["overlap_pairs"])


def test_a_run_times_each_step_in_wall_and_cpu_seconds_the_labels_apart_from_the_groups(store):
    """bench.overlap prints where a run's time goes, step by step: session 44 found the 100,000-dataset
    catalogue's candidates and save slower than session 41's whole run and could not say what grew (the save is
    the pairs' explanations, then the write; the labels, apart from the groups, were a quadratic's home)."""
    result = overlap.detect(store.con)
    overlap.save(store.con, result)
    steps = ["load", "candidates", "score", "groups", "labels", "explain", "write"]
    assert list(result.seconds) == steps and list(result.cpu_seconds) == steps
    assert all(result.seconds[step] >= 0 and result.cpu_seconds[step] >= 0 for step in steps)
    # CPU, every thread's (DuckDB's too), measured apart from the wall time
    assert result.cpu_seconds["load"] > 0 and result.cpu_seconds["labels"] > 0
