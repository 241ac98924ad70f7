"""bench.records_memory's steps on a small shape: its build wrote the previous records and the delta with
the pull's own writer (harvester.records._write_parts), whose arguments changed under it: the build
failed and the bench ended in an IndexError, measuring nothing (until session 42)."""
import pyarrow.parquet as pq

from bench.records_memory import DATASET, PORTAL, build, merge
from catalog.records import RecordsLayout


def test_the_build_and_the_merge_run_on_a_small_shape(tmp_path):
    build(tmp_path, 2000, 5, 8)
    previous = RecordsLayout(tmp_path / "records").folder(PORTAL, DATASET)
    assert pq.read_table(sorted(previous.glob("*.parquet"))).num_rows == 2000
    assert pq.read_table(sorted((tmp_path / "staging" / "parts").glob("*.parquet"))).num_rows == 40
    merge(tmp_path, 5, duckdb_merge=False)
    merged = pq.read_table(sorted((tmp_path / "staging" / "merged").glob("*.parquet")))
    assert merged.num_rows == 2020 and len(set(merged[":id"].to_pylist())) == 2020
