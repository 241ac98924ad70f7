import pyarrow.parquet as pq
import pytest

from catalog.stage import DATASET_FIELDS, RecordBatch, Stage, raw_part, record_schema, records_part
from tests.catalog.test_store import record


def staged_raw(stage, count):
    raws = []
    for n in range(count):
        raw = b'{"id":"%d"}' % n
        stage.add(record(f"id{n}"), raw, None, f"hash{n}")
        raws.append(raw)
    return raws


def test_raw_entries_are_handed_over_a_row_group_at_a_time_and_the_rest_at_close(tmp_path, monkeypatch):
    monkeypatch.setattr(Stage, "BATCH", 3)  # parts of 3 entries, row groups of 5
    loads: list[list[bytes]] = []

    def load_raw(files, longest):
        assert len(files) == 1  # one file: DuckDB reads it on one thread
        loads.append(files[0].read_bytes().splitlines())

    stage = Stage(tmp_path, load_raw, raw_rows=5)
    raws = staged_raw(stage, 16)
    stage.close()
    assert [len(lines) for lines in loads] == [5, 5, 5, 1]
    assert [line.split(b"\t")[1] for lines in loads for line in lines] == raws  # each once, in order
    assert not any(raw_part(tmp_path, n).exists() for n in range(6))  # copied into the batches


def test_whole_parts_are_copied_into_the_batch_file_in_the_kernel(tmp_path, monkeypatch):
    """A part that fits the batch file whole is copied there by copy_file_range, never read by
    the loader thread; a part that straddles two row groups is cut between its lines as before."""
    import os

    monkeypatch.setattr(Stage, "BATCH", 2)  # parts of 2 entries, row groups of 5
    copied, copy_file_range = [], os.copy_file_range

    def copying(source, target, count, *args):
        done = copy_file_range(source, target, count, *args)
        copied.append(done)
        return done

    monkeypatch.setattr(os, "copy_file_range", copying)
    loads = []
    stage = Stage(tmp_path, lambda files, longest: loads.append(files[0].read_bytes().splitlines()), raw_rows=5)
    raws = staged_raw(stage, 11)
    stage.close()
    assert [len(lines) for lines in loads] == [5, 5, 1]
    assert [line.split(b"\t")[1] for lines in loads for line in lines] == raws  # each once, in order
    # parts 0 and 1 whole; part 2 cut (the first row group full after its first line); parts 3
    # and 4 whole; the last entry's part, written as the stage closes, whole
    lines = [line for batch in loads for line in batch]
    assert copied == [sum(len(lines[i]) + 1 for i in part) for part in ([0, 1], [2, 3], [6, 7], [8, 9], [10])]
    assert not any(raw_part(tmp_path, n).exists() for n in range(6))


def test_a_stage_with_nothing_staged_writes_no_part_and_loads_nothing(tmp_path):
    """An unchanged night: ids seen, no record staged. No empty part is written (nor Parquet's
    writer imported for it): the merge finds no part and skips the staged records."""
    loads = []
    stage = Stage(tmp_path, lambda files, longest: loads.append(files), raw_rows=5)
    stage.mark_seen("city:a")
    stage.close()
    assert stage.records_files() == [] and loads == [] and stage.parts == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seen.jsonl"]
    assert (tmp_path / "seen.jsonl").read_bytes() == b'{"uids":["city:a"]}\n'


def test_a_part_larger_than_a_row_group_fills_several(tmp_path, monkeypatch):
    monkeypatch.setattr(Stage, "BATCH", 7)
    loads = []
    stage = Stage(tmp_path,
                  lambda files, longest: loads.append(files[0].read_bytes().splitlines()), raw_rows=2)
    raws = staged_raw(stage, 9)
    stage.close()
    assert [len(lines) for lines in loads] == [2, 2, 2, 2, 1]
    assert [line.split(b"\t")[1] for lines in loads for line in lines] == raws


def test_an_abandoned_stage_loads_no_more_raw_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(Stage, "BATCH", 3)
    loads = []
    stage = Stage(tmp_path,
                  lambda files, longest: loads.append(files[0].read_bytes().splitlines()), raw_rows=5)
    staged_raw(stage, 4)  # one part written (3 entries, waiting for a row group), one entry buffered
    stage.abandon()
    assert loads == []


def test_large_raw_entries_are_handed_over_before_a_row_group_fills(tmp_path, monkeypatch):
    # a batch file is one insert, held in memory as a row group: it never passes raw_bytes,
    # though a part of large entries does (a part is cut between its lines), save an entry
    # larger than raw_bytes on its own
    monkeypatch.setattr(Stage, "BATCH", 5)
    loads = []
    stage = Stage(tmp_path,
                  lambda files, longest: loads.append(files[0].read_bytes()), raw_rows=100, raw_bytes=400)
    raws = []
    for n in range(12):
        raw = b'{"text":"%s"}' % (b"x" * (1000 if n == 8 else 100))
        stage.add(record(f"id{n}"), raw, None, f"hash{n}")
        raws.append(raw)
    stage.close()
    lines = [batch.splitlines() for batch in loads]
    assert [len(batch) for batch in lines] == [2, 2, 2, 2, 1, 2, 1]  # lines of 147 bytes, one of 1,047
    assert all(len(batch) <= 400 for batch in loads if batch.count(b"\n") > 1)
    assert [line.split(b"\t")[1] for batch in lines for line in batch] == raws  # each once, in order


def test_a_records_part_is_the_records_as_given_in_the_merge_schema(tmp_path):
    batch = RecordBatch()
    full = record("a1", title="Permis de bâtir — 2024 \u2603", row_count=2**40, themes=["Housing", "Permits"],
                  description="tab\there, newline\nthere, quote \" done")
    full["columns"].append({"position": 1, "name": None, "field_name": "issued", "type": "datetime",
                            "source_type": "Calendar date", "description": "When it was issued"})
    bare = record("b2", keywords=[], distributions=[], columns=[])
    for number, rec in enumerate((full, bare)):
        batch.add(rec, b'{"id":"%d"}' % number, None, f"hash{number}")
    batch.write(tmp_path, 7)
    table = pq.read_table(records_part(tmp_path, 7))
    assert table.schema == record_schema()
    rows = table.to_pylist()
    assert [row["raw_hash"] for row in rows] == ["hash0", "hash1"]
    for row, rec in zip(rows, (full, bare)):
        assert {name: row[name] for name in DATASET_FIELDS} == {name: rec.get(name) for name in DATASET_FIELDS}
        assert row["columns"] == rec["columns"]
        assert row["distributions"] == [{**d, "position": n} for n, d in enumerate(rec["distributions"])]
    assert rows[0]["row_count"] == 2**40 and rows[1]["keywords"] == [] and rows[1]["description"] is None
    assert raw_part(tmp_path, 7).read_bytes().count(b"\n") == 2


def test_a_raw_part_is_each_entry_on_a_line_of_its_own_each_line_ended(tmp_path):
    """The raw part's bytes: a line per entry (its key, raw JSON and details, tab-separated), each
    ended by a newline, the last too, and nothing after it (the loader copies parts whole, counting
    their lines)."""
    batch = RecordBatch()
    for number, details in enumerate((None, b'{"views":1}', None)):
        batch.add(record(f"a{number}"), b'{"id":"%d"}' % number, details, f"hash{number}")
    batch.write(tmp_path, 3)
    lines = raw_part(tmp_path, 3).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    assert [line.split(b"\t")[1:] for line in lines[:-1]] == [[b'{"id":"0"}', b""], [b'{"id":"1"}', b'{"views":1}'],
                                                              [b'{"id":"2"}', b""]]
    assert batch.longest == max(map(len, lines))


def test_the_records_parquet_holds_every_field_the_record_schema_allows():
    """The parts are built from the record dicts by field name (records_batch), so a field
    the JSON Schema lets through but the Parquet schema lacks would be dropped silently (the
    JSON reader it replaced refused it: unexpected_field_behavior="error")."""
    from catalog.record import SCHEMA

    def names(struct_list):
        return {field.name for field in struct_list.type.value_type}

    parquet = record_schema()
    properties = SCHEMA["properties"]
    assert set(properties) == set(parquet.names) - {"raw_hash"}
    assert set(properties["distributions"]["items"]["properties"]) == names(parquet.field("distributions")) - {"position"}
    assert set(properties["columns"]["items"]["properties"]) == names(parquet.field("columns"))


def test_an_integer_past_64_bits_is_written_with_its_digits():
    """The HTTP layer reads a portal's 12345678901234567890123 exactly (orjson made it a float);
    orjson cannot write it, and the entry was rejected as "nested deeper than 254 levels"."""
    import json

    from catalog.stage import canonical_json_bytes, compact_json_bytes
    entry = {"name": "permits", "id": 12345678901234567890123, "ids": [-9223372036854775809, 1.5]}
    assert json.loads(compact_json_bytes(entry)) == entry and compact_json_bytes(entry).startswith(b'{"name"')
    assert canonical_json_bytes(entry) == canonical_json_bytes(dict(reversed(entry.items())))
    assert json.loads(canonical_json_bytes(entry)) == entry


def test_a_nan_beside_an_integer_past_64_bits_is_written_null_as_orjson_writes_it():
    """A body holding a long integer is parsed by json, which also reads NaN and Infinity; json then
    wrote them back as such, no JSON (jq, a browser refuse the raw record), where orjson writes null."""
    import json

    from catalog.stage import canonical_json_bytes, compact_json_bytes
    from harvester.http import parse_json_body
    entry = parse_json_body(b'{"id": 12345678901234567890123, "score": NaN, "sizes": [Infinity, -1e400, 1.5]}',
                            "application/json", "http://x")
    expected = {"id": 12345678901234567890123, "score": None, "sizes": [None, None, 1.5]}
    for written in (compact_json_bytes(entry), canonical_json_bytes(entry)):
        assert json.loads(written, parse_constant=lambda name: pytest.fail(f"{name} written")) == expected


def test_a_record_lacking_a_field_is_written_with_it_null(tmp_path):
    """records_batch takes each field of every record at once (itemgetter); a record without a
    field (one an adapter built by hand) must still be written, that field null, not fail the part.
    A guard: main's `record.get` did the same."""
    batch = RecordBatch()
    whole, lacking = record("a0", row_count=7), record("a1", row_count=9)
    del lacking["row_count"], lacking["columns"], lacking["license"]
    batch.add(whole, b'{"id":"0"}', None, "hash0")
    batch.add(lacking, b'{"id":"1"}', None, "hash1")
    batch.write(tmp_path, 0)
    rows = pq.read_table(records_part(tmp_path, 0)).to_pylist()
    assert [row["row_count"] for row in rows] == [7, None]
    assert rows[1]["columns"] is None and rows[1]["license"] is None
    assert rows[0]["columns"] == [{"position": 0, "name": "Permit", "field_name": "permit", "type": "text",
                                   "source_type": "Text", "description": None}]
    assert [row["uid"] for row in rows] == ["city:a0", "city:a1"] and rows[1]["title"] == "Building permits"


def test_a_part_is_the_same_file_however_its_records_were_chunked(tmp_path, monkeypatch):
    """Records become Arrow columns a chunk at a time (RecordBatch.CHUNK, a cost per chunk against
    the dicts held): the part written must not depend on the chunk size, its rows in order. A guard."""
    written = {}
    for chunk in (3, 1000):
        monkeypatch.setattr(RecordBatch, "CHUNK", chunk)
        batch = RecordBatch()
        for n in range(8):
            batch.add(record(f"c{n}", row_count=n), b'{"id":"%d"}' % n, None, f"hash{n}")
        batch.write(tmp_path, chunk)
        written[chunk] = records_part(tmp_path, chunk).read_bytes()
        assert [row["row_count"] for row in pq.read_table(records_part(tmp_path, chunk)).to_pylist()] == list(range(8))
    assert written[3] == written[1000]
