"""An incremental pull's merge (harvester.records_merge through harvester.records._merge),
checked against the DuckDB statement that merged before session 26 (bench.records_memory's
baseline), on real records."""
from __future__ import annotations

from types import SimpleNamespace

import duckdb
import polars
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bench.records_memory import duckdb_merge_sql
from catalog.records import RecordsLayout
from harvester.records import Conversion, Field, RecordsError, _merge
from tests.real_records import boston_requests, soda_911

PORTAL, DATASET = "city", "abcd-1234"


def source_of(key: str, fields: list[Field]):
    return SimpleNamespace(merge_key=key, fields=fields)


def staged(tmp_path, previous: list[pa.Table], delta: list[pa.Table]):
    """The previous folder's parts and the delta's staged parts, written as a pull writes them."""
    layout = RecordsLayout(tmp_path / "records")
    folder = layout.folder(PORTAL, DATASET)
    folder.mkdir(parents=True)
    for number, table in enumerate(previous):
        pq.write_table(table, folder / f"part-{number:05d}.parquet", compression="zstd", row_group_size=300)
    parts = tmp_path / "staging" / "parts"
    parts.mkdir(parents=True)
    for number, table in enumerate(delta):
        pq.write_table(table, parts / f"part-{number:05d}.parquet", compression="zstd", row_group_size=300)
    return layout, tmp_path / "staging"


def read_folder(folder) -> pa.Table:
    return pq.read_table(sorted(folder.glob("*.parquet")))


def edited(rows: list, first: int, last: int, key: str) -> list:
    """Rows `first`..`last` - 1 read again: every fourth edited (a keyless one then differs from
    its earlier reading: both kept), the others as they were."""
    out = []
    for i, row in enumerate(rows[first:last], first):
        if row is not None and i % 4 == 0:
            row = {**row, "description" if key != ":id" else "event_clearance_group": f"edited {i}"}
        out.append(row)
    return out


@pytest.mark.parametrize("real", [soda_911, boston_requests], ids=["socrata", "open311"])
def test_the_merge_gives_the_rows_duckdbs_merge_gave_with_its_columns_and_types(tmp_path, real):
    key, fields, rows = real()
    table = Conversion(fields).table_from_rows
    # previous: rows 0-799 in two parts; the delta: 700-899 read again (some edited), 900-999 new,
    # and a keyless row of the previous read again twice (one more than the previous holds)
    keyless = next(row for row in rows[:700] if row is None or key not in row)
    previous = [table(rows[:400]), table(rows[400:800])]
    delta = [table(edited(rows, 700, 900, key)), table(rows[900:] + [keyless, keyless])]
    layout, staging = staged(tmp_path, previous, delta)
    delta_rows = pa.concat_tables(delta).to_pylist()

    merged = _merge(source_of(key, fields), layout, PORTAL, DATASET, staging)

    expected = same_rows_as_duckdbs(merged, layout, staging, key, fields)
    merged_rows = read_folder(merged).to_pylist()
    for row in edited(rows, 700, 900, key):   # (each edit in its new reading)
        if row is not None and str(row.get("description", row.get("event_clearance_group"))).startswith("edited"):
            assert sum(r[key] == row.get(key) for r in merged_rows) == sum(r.get(key) == row.get(key) for r in delta_rows)
    # the same columns, in order, of the same Parquet types, read as the same types by DuckDB, Arrow
    # and polars (an INT64 is written without DuckDB's Int(64) annotation, as a full pull writes it)
    theirs = pq.read_metadata(expected).schema
    for path in sorted(merged.glob("*.parquet")):
        ours = pq.read_metadata(path).schema
        assert [(c.name, c.physical_type) for c in ours] == [(c.name, c.physical_type) for c in theirs]
        with duckdb.connect() as con:
            assert con.execute(f"DESCRIBE FROM '{path}'").fetchall() == con.execute(f"DESCRIBE FROM '{expected}'").fetchall()
        assert pq.read_schema(path).remove_metadata() == pq.read_schema(expected)
        assert polars.read_parquet_schema(path) == polars.read_parquet_schema(expected)
    assert read_folder(merged).schema.names == [f.name for f in fields]
    assert polars.read_parquet(merged / "*.parquet").height == read_folder(merged).to_pandas().shape[0]


def same_rows_as_duckdbs(merged, layout, staging, key: str, fields: list[Field]):
    """Asserts the merged folder holds the rows DuckDB's merge gives (EXCEPT ALL both ways);
    returns the file DuckDB wrote."""
    expected = staging.parent / "duckdb-merge.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY ({duckdb_merge_sql(str(layout.glob(PORTAL, DATASET)), str(staging / 'parts' / '*.parquet'), key, [f.name for f in fields])}) "
                    f"TO '{expected}' (FORMAT parquet)")
        got, want = f"read_parquet('{merged}/*.parquet')", f"read_parquet('{expected}')"
        assert con.execute(f"SELECT count(*) FROM {got}").fetchone() == con.execute(f"SELECT count(*) FROM {want}").fetchone()
        assert con.execute(f"SELECT count(*) FROM (FROM {got} EXCEPT ALL FROM {want})").fetchone() == (0,)
        assert con.execute(f"SELECT count(*) FROM (FROM {want} EXCEPT ALL FROM {got})").fetchone() == (0,)
    return expected


@pytest.mark.parametrize("real", [soda_911, boston_requests], ids=["socrata", "open311"])
def test_row_groups_read_in_batches_and_keys_looked_up_a_few_groups_at_once_give_duckdbs_rows(
        tmp_path, monkeypatch, real):
    """A row group over twice ROW_GROUP_BYTES (Parquet of an earlier civicat) is read in batches,
    and the previous rows' keys are looked up KEYS_AT_ONCE rows (or the delta's keys) at a time:
    the masks they give must fall on the rows they were asked for."""
    import harvester.records
    import harvester.records_merge

    monkeypatch.setattr(harvester.records, "ROW_GROUP_BYTES", 20_000)
    monkeypatch.setattr(harvester.records_merge, "KEYS_AT_ONCE", 500)
    key, fields, rows = real()
    table = Conversion(fields).table_from_rows
    layout, staging = staged(tmp_path, [table(rows[:450]), table(rows[450:800])],
                             [table(edited(rows, 100, 300, key)), table(rows[800:])])

    merged = _merge(source_of(key, fields), layout, PORTAL, DATASET, staging)

    same_rows_as_duckdbs(merged, layout, staging, key, fields)
    groups = [pq.read_metadata(path).row_group(g) for path in sorted(merged.glob("*.parquet"))
              for g in range(pq.read_metadata(path).num_row_groups)]
    assert len(groups) > 10 and all(group.total_byte_size <= 20_000 for group in groups)


@pytest.mark.parametrize("real", [soda_911, boston_requests], ids=["socrata", "open311"])
def test_a_delta_whose_keys_are_looked_up_in_slices_gives_the_bytes_of_one_looked_up_at_once(
        tmp_path, monkeypatch, real):
    """The delta's keys were held whole (about 20 bytes a SODA `:id`: 1 GB for 50 million): past
    DELTA_KEY_BYTES they are looked up a slice at a time, what each slice found kept on disk. Here
    slices of a few keys (the previous parts' row groups of 300 rows, read once a slice): the
    same bytes as the delta's keys at once, DuckDB's rows, and no file left of the slices."""
    import harvester.records_merge

    key, fields, rows = real()
    table = Conversion(fields).table_from_rows
    keyless = next(row for row in rows[:700] if row is None or key not in row)
    layout, staging = staged(tmp_path, [table(rows[:400]), table(rows[400:800])],
                             [table(edited(rows, 100, 300, key)), table(edited(rows, 700, 900, key) + [keyless]),
                              table(rows[900:])])
    source = source_of(key, fields)
    at_once = {path.name: path.read_bytes() for path in _merge(source, layout, PORTAL, DATASET, staging).iterdir()}
    slices = []
    real_slices = harvester.records_merge._key_slices
    monkeypatch.setattr(harvester.records_merge, "_key_slices",
                        lambda *args: (slices.append(len(keys)) or keys for keys in real_slices(*args)))
    monkeypatch.setattr(harvester.records_merge, "DELTA_KEY_BYTES", 200)

    merged = _merge(source, layout, PORTAL, DATASET, staging)

    assert len(slices) > 20 and max(slices) < 20   # (the keys of a few rows a slice)
    assert {path.name: path.read_bytes() for path in merged.iterdir()} == at_once
    same_rows_as_duckdbs(merged, layout, staging, key, fields)
    assert sorted(path.name for path in staging.iterdir()) == ["merged", "parts"]


def test_a_delta_replaces_adds_and_keeps_rows_in_order(tmp_path):
    fields = [Field("id", "text"), Field("v", "integer")]
    schema = Conversion(fields).schema
    previous = pa.table({"id": ["a", "b", None, None, "c", None], "v": [1, 2, 3, 3, 4, 5]}, schema=schema)
    delta = pa.table({"id": ["b", "d", None, None], "v": [20, 40, 3, 6]}, schema=schema)
    layout, staging = staged(tmp_path, [previous], [delta])

    merged = read_folder(_merge(source_of("id", fields), layout, PORTAL, DATASET, staging))

    # b replaced, d added; of the two keyless (None, 3) one is read again: one kept, then the delta's
    assert sorted(zip(merged["id"].to_pylist(), merged["v"].to_pylist()), key=repr) == sorted(
        [("a", 1), (None, 3), ("c", 4), (None, 5), ("b", 20), ("d", 40), (None, 3), (None, 6)], key=repr)
    assert merged["id"].to_pylist()[-4:] == ["b", "d", None, None]   # the delta's rows after the previous ones


@pytest.mark.parametrize("empty", ["delta", "previous"])
def test_an_empty_side_gives_the_other_whole(tmp_path, empty):
    fields = [Field("id", "text"), Field("when", "datetime_utc")]
    schema = Conversion(fields).schema
    rows = pa.table({"id": ["a", "b", None], "when": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC"))}, schema=schema)
    none = schema.empty_table()
    layout, staging = staged(tmp_path, [none if empty == "previous" else rows], [none if empty == "delta" else rows])

    merged = read_folder(_merge(source_of("id", fields), layout, PORTAL, DATASET, staging))

    assert merged.equals(rows)


def test_the_same_parts_give_the_same_bytes(tmp_path):
    key, fields, rows = boston_requests()
    table = Conversion(fields).table_from_rows
    layout, staging = staged(tmp_path, [table(rows[:800])], [table(edited(rows, 700, 1000, key))])
    source = source_of(key, fields)

    first = {path.name: path.read_bytes() for path in _merge(source, layout, PORTAL, DATASET, staging).iterdir()}
    second = {path.name: path.read_bytes() for path in _merge(source, layout, PORTAL, DATASET, staging).iterdir()}

    assert first and first == second


def test_merges_night_after_night_leave_no_small_row_groups_and_parts_of_their_rows(tmp_path, monkeypatch):
    """Each row group written as it came, every merge added a row group of its delta (a few rows
    a night) and left the previous ones thinned. The merged folder is in parts of PART_ROWS, as
    a full pull's, in the rows' order."""
    import harvester.records

    monkeypatch.setattr(harvester.records, "ROW_GROUP_ROWS", 100)
    monkeypatch.setattr(harvester.records, "PART_ROWS", 450)
    fields = [Field("id", "integer"), Field("t", "text")]
    schema = Conversion(fields).schema
    first = pa.table({"id": range(1000), "t": [f"first {i}" for i in range(1000)]}, schema=schema)
    layout, staging = staged(tmp_path, [first], [])
    source = source_of("id", fields)
    for night in range(10):   # each night, 3 rows edited and 2 added
        ids = [night, 300 + night, 600 + night, 1000 + 2 * night, 1001 + 2 * night]
        delta = pa.table({"id": ids, "t": [f"night {night}"] * 5}, schema=schema)
        pq.write_table(delta, staging / "parts" / "part-00000.parquet")
        merged = _merge(source, layout, PORTAL, DATASET, staging)
        folder = layout.folder(PORTAL, DATASET)
        for path in folder.iterdir():
            path.unlink()
        for path in merged.iterdir():
            path.rename(folder / path.name)

    names = sorted(path.name for path in layout.folder(PORTAL, DATASET).iterdir())
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    groups = [pq.ParquetFile(layout.folder(PORTAL, DATASET) / name).metadata for name in names]
    rows = [m.row_group(g).num_rows for m in groups for g in range(m.num_row_groups)]
    assert rows == [100] * 10 + [20]
    merged = read_folder(layout.folder(PORTAL, DATASET))
    assert sorted(merged["id"].to_pylist()) == list(range(1020))
    assert merged.slice(1000)["t"].to_pylist()[-5:] == ["night 9"] * 5   # the last night's delta last


def test_a_previous_part_that_does_not_read_fails_the_merge_naming_it(tmp_path):
    fields = [Field("id", "text"), Field("v", "integer")]
    schema = Conversion(fields).schema
    rows = pa.table({"id": ["a", "b"], "v": [1, 2]}, schema=schema)
    layout, staging = staged(tmp_path, [rows, rows], [rows])
    damaged = layout.folder(PORTAL, DATASET) / "part-00001.parquet"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    kept = {path.name: path.read_bytes() for path in layout.folder(PORTAL, DATASET).iterdir()}

    with pytest.raises(RecordsError, match=r"the merge .* failed: part part-00001\.parquet does not read: .*the "
                                           r"previous records are kept \(a full pull, --full"):
        _merge(source_of("id", fields), layout, PORTAL, DATASET, staging)

    assert {path.name: path.read_bytes() for path in layout.folder(PORTAL, DATASET).iterdir()} == kept


def keyless_read_again(key: str, rows: list) -> tuple[list, list]:
    """Previous and delta rows with many keyless ones (every third row's key gone), some alike:
    in the previous, a row thrice (the delta reads it twice: its first two go), one once (read
    three times: it goes), one twice (not read again: both stay), each copy among other rows; the
    delta reads again rows 600-799 of the previous, every fourth edited (then both kept)."""
    rows = [None if row is None else ({k: v for k, v in row.items() if k != key} if i % 3 == 0 else row)
            for i, row in enumerate(rows)]
    thrice, once, twice = rows[30], rows[60], rows[90]
    assert all(row is None or key not in row for row in (thrice, once, twice))
    previous = rows[:800]
    for at, row in ((100, thrice), (350, thrice), (420, twice), (700, thrice), (760, twice)):
        previous.insert(at, row)
    delta = edited(previous, 600, len(previous), key) + rows[800:] + [thrice, once, thrice, once, once]
    return previous, delta


@pytest.mark.parametrize("real", [soda_911, boston_requests], ids=["socrata", "open311"])
def test_keyless_rows_counted_on_disk_a_bucket_at_a_time_give_the_bytes_of_those_counted_in_memory(
        tmp_path, monkeypatch, real):
    """The delta's keyless rows were counted whole in memory (~100 bytes a row). Past
    KEYLESS_DIGESTS distinct ones they are counted on disk in buckets by their digests' first
    byte, matched a bucket at a time with the previous keyless rows', a bucket of more split by
    the next byte: here at most two in memory (every bucket of more split again), the same bytes
    as all of them counted in memory, DuckDB's rows, and no file of the buckets left."""
    import harvester.records_merge

    key, fields, rows = real()
    table = Conversion(fields).table_from_rows
    previous, delta = keyless_read_again(key, rows)
    layout, staging = staged(tmp_path, [table(previous[:450]), table(previous[450:])],
                             [table(delta[:150]), table(delta[150:])])
    source = source_of(key, fields)
    in_memory = {path.name: path.read_bytes() for path in _merge(source, layout, PORTAL, DATASET, staging).iterdir()}
    depths = []
    real_match = harvester.records_merge._match
    monkeypatch.setattr(harvester.records_merge, "_match",
                        lambda delta, previous, depth, bits: depths.append(depth) or real_match(delta, previous,
                                                                                              depth, bits))
    monkeypatch.setattr(harvester.records_merge, "KEYLESS_DIGESTS", 2)
    monkeypatch.setattr(harvester.records_merge, "BUCKET_BUFFER", 100)   # (buffers appended to their files)

    merged = _merge(source, layout, PORTAL, DATASET, staging)

    assert depths[0] == 1 and max(depths) >= 2   # (buckets counted on disk, some split again)
    assert {path.name: path.read_bytes() for path in merged.iterdir()} == in_memory
    same_rows_as_duckdbs(merged, layout, staging, key, fields)
    keyless = [sum(r[key] is None for r in t.to_pylist()) for t in (read_folder(layout.folder(PORTAL, DATASET)),
                                                                    read_folder(staging / "parts"), read_folder(merged))]
    assert keyless[0] > 250 and keyless[1] > 100 and keyless[2] < keyless[0] + keyless[1]   # (some read again)
    assert sorted(path.name for path in staging.iterdir()) == ["merged", "parts"]


def test_the_same_records_merged_from_row_groups_of_any_size_give_the_same_bytes(tmp_path):
    """The text columns given a dictionary were chosen on the first row group read: 3 rows of an
    Open311 full pull's (one row group a page), which chose none, where the next merge, reading the
    one row group the first wrote, chose some: the same records, other bytes, each night until the
    choice settled. They are chosen on the first row group written, whatever the previous one's."""
    key, fields, rows = boston_requests()
    table = Conversion(fields).table_from_rows
    previous, delta = table(rows[:800]), table(edited(rows, 700, 1000, key))
    merged = {}
    for layout_name, sizes in {"by pages": [3] + [50] * 15 + [47], "whole": [800]}.items():
        layout, staging = staged(tmp_path / layout_name, [], [delta])
        with pq.ParquetWriter(layout.folder(PORTAL, DATASET) / "part-00000.parquet", previous.schema,
                              compression="zstd") as writer:
            at = 0
            for size in sizes:
                writer.write_table(previous.slice(at, size), row_group_size=size)
                at += size
        folder = _merge(source_of(key, fields), layout, PORTAL, DATASET, staging)
        merged[layout_name] = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert merged["by pages"] == merged["whole"]
    dictionary = pq.ParquetFile(tmp_path / "whole" / "staging" / "merged" / "part-00000.parquet").metadata \
        .row_group(0).column(previous.schema.get_field_index("status")).encodings
    assert "RLE_DICTIONARY" in dictionary


@pytest.mark.parametrize("order", ["as read", "another order"])
def test_a_delta_that_reads_the_previous_records_again_publishes_the_previous_parts(tmp_path, order):
    """A night on which no request changed: Open311's pull reads its last 90 days again. Written again,
    the rows read again came out last, in other row groups: the same records, other bytes. The previous
    parts are published as they are (linked); a delta holding an edited or a new row writes them again."""
    key, fields, rows = boston_requests()
    table = Conversion(fields).table_from_rows
    again = rows[700:1000] if order == "as read" else rows[999:699:-1]
    layout, staging = staged(tmp_path, [table(rows[:500]), table(rows[500:])], [table(again)])
    previous = sorted(layout.folder(PORTAL, DATASET).iterdir())

    merged = sorted(_merge(source_of(key, fields), layout, PORTAL, DATASET, staging).iterdir())

    assert [path.name for path in merged] == [path.name for path in previous]
    assert [path.stat().st_ino for path in merged] == [path.stat().st_ino for path in previous]
    for changed, total in ((edited(rows, 700, 1000, key), 1000), (rows[700:1000] + [{**rows[5], key: "new"}], 1001)):
        pq.write_table(table(changed), staging / "parts" / "part-00000.parquet")
        merged = _merge(source_of(key, fields), layout, PORTAL, DATASET, staging)
        assert read_folder(merged).num_rows == total
        assert {path.stat().st_ino for path in merged.iterdir()}.isdisjoint(path.stat().st_ino for path in previous)


def test_a_delta_larger_than_a_row_group_that_reads_the_previous_records_again_publishes_the_previous_parts(
        tmp_path, monkeypatch):
    """The rows held to judge the same records were capped at a row group's bytes a side (8 MB): a larger
    delta (an Open311 endpoint's 90 days read again) was taken for a change and its dataset written again
    every night. They are judged by their digests as they stream by, whatever the delta's size; a delta
    of that size holding edited rows, or a new one, still writes them again."""
    import harvester.records

    monkeypatch.setattr(harvester.records, "ROW_GROUP_BYTES", 16 * 1024)   # (the delta: several times that)
    key, fields, rows = boston_requests()
    table = Conversion(fields).table_from_rows
    again = rows[999:199:-1]
    assert table(again).nbytes > 4 * 16 * 1024
    layout, staging = staged(tmp_path, [table(rows[:500]), table(rows[500:])], [table(again)])
    previous = sorted(layout.folder(PORTAL, DATASET).iterdir())

    merged = sorted(_merge(source_of(key, fields), layout, PORTAL, DATASET, staging).iterdir())

    assert [path.stat().st_ino for path in merged] == [path.stat().st_ino for path in previous]
    for changed in (edited(rows, 200, 1000, key), rows[200:1000] + [{**rows[5], key: "new"}]):
        pq.write_table(table(changed), staging / "parts" / "part-00000.parquet")
        merged = _merge(source_of(key, fields), layout, PORTAL, DATASET, staging)
        assert read_folder(merged).num_rows > 1000   # (an edited keyless row stays beside its earlier reading)
        assert {path.stat().st_ino for path in merged.iterdir()}.isdisjoint(path.stat().st_ino for path in previous)


def test_a_delta_holding_a_float_nan_that_reads_the_previous_records_again_publishes_the_previous_parts(tmp_path):
    """Arrow's `equals` has NaN unequal to NaN: a keyed row holding one, read again unchanged, was taken for
    a change (SPD 911's shape, a float column as a pull types it)."""
    key, fields, rows = soda_911()
    fields = fields + [Field("reading", "number")]
    rows = [row and {**row, "reading": float("nan") if i % 7 == 0 else i / 4} for i, row in enumerate(rows)]
    table = Conversion(fields).table_from_rows
    layout, staging = staged(tmp_path, [table(rows[:600])], [table(rows[400:600])])
    previous = sorted(layout.folder(PORTAL, DATASET).iterdir())

    merged = sorted(_merge(source_of(key, fields), layout, PORTAL, DATASET, staging).iterdir())

    assert [path.stat().st_ino for path in merged] == [path.stat().st_ino for path in previous]
    assert pc.sum(pc.is_nan(read_folder(layout.folder(PORTAL, DATASET))["reading"])).as_py() > 50
    pq.write_table(table(rows[400:599] + [{**rows[599], "reading": 1.5}]), staging / "parts" / "part-00000.parquet")
    assert {path.stat().st_ino for path in _merge(source_of(key, fields), layout, PORTAL, DATASET, staging).iterdir()} \
        .isdisjoint(path.stat().st_ino for path in previous)


def previous_reads(monkeypatch, layout, method: str, which) -> dict:
    """How many times the merge reads the previous parts by `method` (ParquetFile's): a read that
    `which(groups, columns)` gives a tuple for is counted under the part's name and that tuple's items
    (the name alone for ()), one it gives None for is not."""
    import harvester.records_merge
    previous, reads, parquet_file = layout.folder(PORTAL, DATASET), {}, harvester.records_merge._parquet

    def counted(path, schema):
        parquet = parquet_file(path, schema)
        read = getattr(parquet, method)

        def reading(groups, columns=None, **options):
            suffix = which(groups, columns)
            if path.parent == previous and suffix is not None:
                name = (path.name, *suffix) if suffix else path.name
                reads[name] = reads.get(name, 0) + 1
            return read(groups, columns=columns, **options)
        setattr(parquet, method, reading)
        return parquet

    monkeypatch.setattr(harvester.records_merge, "_parquet", counted)
    return reads


def test_a_night_of_edits_only_reads_the_replaced_row_groups_once(tmp_path, monkeypatch):
    """A delta of edited rows only (as many rows as it replaces) was judged in full before the merge wrote:
    every row group holding a replaced row read and digested, then read again to be written (every row
    group, an edit in each). The delta is digested first, by key: the first replaced row unlike its key's
    ends the judging, and the writing reads the others once. A key the delta holds twice, as the previous
    parts do, is left to the sums (the same records: published)."""
    key, fields, rows = soda_911()
    table = Conversion(fields).table_from_rows
    layout, staging = staged(tmp_path, [table(rows[:500]), table(rows[500:])],
                             [table([{**rows[i], "event_clearance_group": f"edited {i}"} for i in range(21, 1000, 10)])])
    # (a whole row group: not the key column alone)
    reads = previous_reads(monkeypatch, layout, "read_row_group", lambda group, columns: None if columns else (group,))
    merged = read_folder(_merge(source_of(key, fields), layout, PORTAL, DATASET, staging))

    assert len(reads) == 4   # (two parts of a row group of 300 rows and one of 200, an edit in each)
    assert sum(count - 1 for count in reads.values()) <= 1, reads
    assert merged.num_rows == 1000
    assert sorted(pc.filter(merged["event_clearance_group"], pc.starts_with(merged["event_clearance_group"], "edited"))
                  .to_pylist()) == sorted(f"edited {i}" for i in range(21, 1000, 10))

    twice = {**rows[700], "event_clearance_group": "read twice"}
    layout, staging = staged(tmp_path / "twice", [table(rows[:600] + [twice, twice])], [table([twice, twice])])
    published = sorted(_merge(source_of(key, fields), layout, PORTAL, DATASET, staging).iterdir())
    assert [path.stat().st_ino for path in published] == \
        [path.stat().st_ino for path in sorted(layout.folder(PORTAL, DATASET).iterdir())]


@pytest.mark.parametrize("night", ["edits", "added", "unchanged"])
def test_the_previous_key_column_is_read_once_whatever_the_night(tmp_path, monkeypatch, night):
    """Which previous rows the delta replaces was looked up in their key column as each pass read them:
    a night of edits only read it three times (the replaced rows counted, the row groups holding one
    judged, every row group written), a night that added rows and one that changed nothing twice. The
    finds are kept on disk, a bit a row, from one read; the merged rows are the same."""
    key, fields, rows = soda_911()
    table = Conversion(fields).table_from_rows
    delta = {"edits": [{**rows[i], "event_clearance_group": f"edited {i}"} for i in range(21, 1000, 10)],
             "added": edited(rows, 900, 1000, key) + [{**row, key: f"{row[key]}-new"} for row in rows[:50] if row],
             "unchanged": [row for row in rows[900:1000] if row]}[night]
    layout, staging = staged(tmp_path, [table(rows[:500]), table(rows[500:])], [table(delta)])
    reads = previous_reads(monkeypatch, layout, "read_row_groups", lambda groups, columns: () if columns == [key] else None)
    merged = _merge(source_of(key, fields), layout, PORTAL, DATASET, staging)

    assert reads == {"part-00000.parquet": 1, "part-00001.parquet": 1}, reads
    same_rows_as_duckdbs(merged, layout, staging, key, fields)
    assert read_folder(merged).num_rows == 1000 + (night == "added") * sum(1 for row in rows[:50] if row)
