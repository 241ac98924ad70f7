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


def test_an_unchanged_delta_is_the_last_rows_read_again_and_its_merge_publishes_the_previous_parts(tmp_path):
    """`--unchanged`: the delta reads the last tenth of the rows again as they are (a night that changed
    nothing); the merge publishes the previous parts themselves, which the bench reports."""
    from bench.records_memory import published_the_previous_parts

    build(tmp_path, 2000, 5, 8, unchanged=True)
    delta = pq.read_table(sorted((tmp_path / "staging" / "parts").glob("*.parquet")))
    previous = RecordsLayout(tmp_path / "records").folder(PORTAL, DATASET)
    assert delta.equals(pq.read_table(sorted(previous.glob("*.parquet")), partitioning=None).slice(1800))
    merge(tmp_path, 5, duckdb_merge=False)
    assert published_the_previous_parts(tmp_path)


def test_an_edits_only_delta_is_every_hundredth_row_edited_and_its_merge_writes_them(tmp_path):
    """`--edits`: the delta is every 100th row edited and none added (a night of edits only, an edit in
    every row group: what the merge judged reading every replaced row group, then read them again to
    write); the merge writes the edits in place of the rows they replace."""
    from bench.records_memory import published_the_previous_parts

    build(tmp_path, 2000, 5, 8, edits=True)
    delta = pq.read_table(sorted((tmp_path / "staging" / "parts").glob("*.parquet")))
    previous = pq.read_table(sorted(RecordsLayout(tmp_path / "records").folder(PORTAL, DATASET).glob("*.parquet")),
                             partitioning=None)
    assert delta[":id"].to_pylist() == previous[":id"].to_pylist()[::100]
    assert all(a != b for a, b in zip(delta["c0"].to_pylist(), previous["c0"].to_pylist()[::100]))
    merge(tmp_path, 5, duckdb_merge=False)
    assert not published_the_previous_parts(tmp_path)
    merged = pq.read_table(sorted((tmp_path / "staging" / "merged").glob("*.parquet"))).sort_by(":id")
    assert merged.num_rows == 2000 and merged[":id"].to_pylist() == previous[":id"].to_pylist()
    assert merged["c0"].to_pylist()[::100] == delta["c0"].to_pylist()
