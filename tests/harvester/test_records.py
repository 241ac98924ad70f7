"""The records step: value conversion to Arrow types, and `civicat records` (one-off pulls,
--overlap) over a local Socrata portal."""
import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from harvester.cli import cli
from harvester import records
from harvester.records import (Conversion, Field, _keep_once, csv_page, dated_ahead, point_wkt, stamps_after,
                               unique_fields)
from tests.conftest import REPO, harvest_with_records
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry

VIEW = {"id": "abcd-1234", "name": "Calls", "columns": [
    {"fieldName": "n", "dataTypeName": "number"}, {"fieldName": "when", "dataTypeName": "calendar_date"},
    {"fieldName": "ok", "dataTypeName": "checkbox"}, {"fieldName": "where", "dataTypeName": "location"},
    {"fieldName": "site", "dataTypeName": "url"}]}


def test_conversion_types_values_and_counts_the_bad_ones():
    fields = [Field("n", "number"), Field("i", "integer"), Field("when", "datetime"), Field("at", "datetime_utc"),
              Field("day", "date"), Field("ok", "boolean"), Field("where", "point"), Field("site", "url"),
              Field("shape", "geometry")]
    conversion = Conversion(fields)
    table = conversion.table_from_rows([
        {"n": "1.5", "i": "7", "when": "2014-10-13T00:00:00.000", "at": "2014-10-14T07:00:00.000Z", "day": "2024-02-29",
         "ok": True, "where": {"latitude": "47.5", "longitude": "-122.3"}, "site": {"url": "http://x"},
         "shape": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}},
        {"n": "n/a", "i": "7.5", "when": "yesterday", "at": 1428404675000, "day": "2024-02-30T10:00:00", "ok": "maybe",
         "where": {"type": "Point", "coordinates": [2.0, 48.0]}},
        {},
    ])
    assert table.schema == pa.schema([("n", pa.float64()), ("i", pa.int64()), ("when", pa.timestamp("us")),
                                      ("at", pa.timestamp("us", tz="UTC")), ("day", pa.date32()), ("ok", pa.bool_()),
                                      ("where", pa.string()), ("site", pa.string()), ("shape", pa.string())])
    first, second, third = table.to_pylist()
    assert (first["n"], first["i"], first["day"], first["ok"]) == (1.5, 7, date(2024, 2, 29), True)
    assert first["at"] == datetime(2014, 10, 14, 7, tzinfo=UTC) and first["when"] == datetime(2014, 10, 13)
    assert first["where"] == "POINT (-122.3 47.5)" and first["site"] == "http://x"
    assert first["shape"] == "POLYGON ((0.0 0.0, 1.0 0.0, 0.0 0.0))"   # (WKT, as every kind stores shapes)
    assert second["at"] == datetime(2015, 4, 7, 11, 4, 35, tzinfo=UTC) and second["where"] == "POINT (2.0 48.0)"
    assert (second["n"], second["i"], second["when"], second["day"], second["ok"]) == (None,) * 5
    assert set(third.values()) == {None}
    assert dict(conversion.invalid) == {"n": 1, "i": 1, "when": 1, "day": 1, "ok": 1}


def test_csv_pages_parse_typed_and_fall_back_to_text_for_bad_values():
    fields = [Field("n", "number"), Field("t", "datetime_utc")]
    good = csv_page(b'"n","t","x"\n"1.5","2024-01-15T12:00:00.000Z","a"\n"","","b"\n', fields)
    assert good.schema.field("n").type == pa.float64() and good.schema.field("t").type == pa.timestamp("us", tz="UTC")
    bad = csv_page(b'"n","t"\n"1.5","2024-01-15T12:00:00.000Z"\n"oops",""\n', fields)
    assert bad.schema.field("n").type == pa.string()      # read as text; the conversion nulls and counts "oops"
    with pytest.raises(ValueError):
        csv_page(b'"n","t"\n"1.5","2024-01-15T12:0', fields)     # cut mid-row
    assert point_wkt({"lon": 1, "lat": 2}) == "POINT (1.0 2.0)" and point_wkt({"latitude": "", "longitude": ""}) is None


@pytest.fixture
def portal():
    rows = [{"n": str(i), "when": f"2024-01-{1 + i % 28:02d}T00:00:00.000", "ok": i % 2 == 0} for i in range(120)]
    with SocrataPortal([discovery_entry(VIEW)], records={"abcd-1234": SodaTable.from_rows(rows)}) as p:
        yield p


def setup(tmp_path, url):
    config = tmp_path / "c.toml"
    config.write_text(f'[[portals]]\nid = "sea"\ncity = "Seattle"\nkind = "socrata"\nurl = "{url}"\n'
                      'domain = "data.example.org"\n')
    db = tmp_path / "c.duckdb"
    assert CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", str(db)]).exit_code == 0
    return ["--config", str(config), "--db", str(db)]


def test_records_command_pulls_named_datasets(tmp_path, portal):
    options = setup(tmp_path, portal.url)
    result = CliRunner().invoke(cli, ["records", "sea:abcd-1234", "--json", *options])
    assert result.exit_code == 0, result.output
    [pulled] = json.loads(result.output)
    assert (pulled["uid"], pulled["status"], pulled["rows"], pulled["columns"]) == ("sea:abcd-1234", "ok", 120, 7)
    table = CliRunner().invoke(cli, ["records", "sea:abcd-1234", *options])
    assert table.exit_code == 0 and "incremental" in table.output and "portal=sea/dataset=abcd-1234" in table.output
    runs = CliRunner().invoke(cli, ["runs", "--json", "--db", options[-1]])
    assert any(r["run_id"].split("-")[1] == "records" for r in json.loads(runs.output))


def test_records_json_prints_exactly_the_keys_docs_records_md_names(tmp_path, portal):
    """Scripts read `records --json` by docs/records.md's list of its keys: each key printed is there
    (`notices`, the reader's own warnings, was printed and not named) and each one named is printed."""
    text = (Path(REPO) / "docs" / "records.md").read_text()
    section = re.search(r"^## The records command\n(.*?)(?=^## )", text, re.S | re.M)[1]
    listed = re.search(r"`--json` a list of one object per dataset:(.*?)Exit 0", section, re.S)[1]
    documented = {key for key in re.findall(r"`([^`]+)`", listed) if re.fullmatch(r"[a-z_]+", key)}
    result = CliRunner().invoke(cli, ["records", "sea:abcd-1234", "--json", *setup(tmp_path, portal.url)])
    assert result.exit_code == 0, result.output
    [pulled] = json.loads(result.output)
    assert set(pulled) == documented, (sorted(set(pulled) - documented), sorted(documented - set(pulled)))


def test_a_records_pull_whose_catalogue_log_is_out_of_room_names_that_file(tmp_path, portal, monkeypatch):
    """A records pull records itself in the catalogue (record_pulls): a COMMIT there that found no room
    in the catalogue's write-ahead log said 'no room to write a file civicat writes', the pull knowing
    the records' folder only. It names the catalogue's write-ahead log."""
    import duckdb

    import harvester.records as records_module

    options = setup(tmp_path, portal.url)
    wal = tmp_path / "c.duckdb.wal"

    def no_room_in_the_log(*args, **kwargs):
        raise duckdb.TransactionException(f'TransactionContext Error: Failed to commit: Could not write file "{wal}": '
                                          "No space left on device")

    monkeypatch.setattr(records_module, "pull_dataset", no_room_in_the_log)
    result = CliRunner().invoke(cli, ["records", "sea:abcd-1234", "--json", *options])
    assert result.exit_code == 1, result.output
    [failed] = json.loads(result.output)
    assert failed["error_type"] == "DiskFull", failed
    assert failed["error_message"].startswith(f"no room to write the catalogue's write-ahead log ({wal}): its file "
                                              "system is full; "), failed["error_message"]


def test_records_command_refuses_bad_and_unknown_uids_before_anything_is_recorded(tmp_path, portal):
    options = setup(tmp_path, portal.url)
    for bad in ("nocolon", "other:abcd-1234", "sea:"):
        result = CliRunner().invoke(cli, ["records", bad, *options])
        assert result.exit_code == 2 and "portal_id:source_id" in result.output
    both = CliRunner().invoke(cli, ["records", "nocolon", "other:x", *options])
    assert both.exit_code == 2 and "'nocolon', 'other:x' are not" in both.output
    assert CliRunner().invoke(cli, ["records", *options]).exit_code == 2
    portal.requests.clear()
    # a typo is bad usage (exit 2, each unknown uid named, near ones suggested), not a failed portal:
    # no request, no harvest_runs row that monitoring would alert on
    typos = CliRunner().invoke(cli, ["records", "sea:abcd-1243", "sea:zzzz-9999", "sea:abcd-1234", "--json", *options])
    assert typos.exit_code == 2, typos.output
    assert "not in the catalogue" in typos.output
    assert "'sea:abcd-1243' (did you mean 'sea:abcd-1234'?)" in typos.output and "'sea:zzzz-9999'" in typos.output
    assert portal.requests == []
    con = duckdb.connect(options[-1])
    assert con.execute("SELECT count(*) FROM harvest_runs WHERE run_id LIKE '%-records-%'").fetchone() == (0,)
    con.close()


@pytest.mark.parametrize("typed, said", [
    (["SEA:ABCD-1234"], "'SEA:ABCD-1234' is not portal_id:source_id of a portal in {config} (did you mean "
                        "'sea:abcd-1234'?)"),
    (["abcd-1234"], "'abcd-1234' is not portal_id:source_id of a portal in {config} (did you mean 'sea:abcd-1234'?)"),
    (["SEA:ABCD-1234", "paris:x"], "'SEA:ABCD-1234' (did you mean 'sea:abcd-1234'?), 'paris:x' are not "
                                   "portal_id:source_id of a portal in {config} (portals: sea)"),
], ids=["capitals", "a source id alone", "one of two with no suggestion"])
def test_records_of_uids_naming_no_portal_names_the_catalogue_s_uid_meant_and_the_portals(tmp_path, portal, typed,
                                                                                         said):
    """Session 42: a uid copied in capitals was refused with its portal id alone put right ('sea:ABCD-1234',
    which the catalogue does not hold either), a source id alone with the portals' list (the catalogue holds
    it, as `similar` says), and of several mistyped uids one suggestion for any dropped the list for all."""
    options = setup(tmp_path, portal.url)
    portal.requests.clear()
    written = os.stat(options[-1]).st_mtime_ns
    result = CliRunner().invoke(cli, ["records", *typed, *options])
    assert result.exit_code == 2, result.output
    assert said.format(config=options[1]) in " ".join(result.output.split()), result.output
    assert portal.requests == [] and os.stat(options[-1]).st_mtime_ns == written


def test_records_overlap_says_when_there_are_no_groups_and_pulls_the_grouped(tmp_path, portal):
    options = setup(tmp_path, portal.url)
    result = CliRunner().invoke(cli, ["records", "--overlap", *options])
    assert result.exit_code == 0 and "no overlap groups yet" in result.output
    con = duckdb.connect(options[-1])   # the table exists (migration 0003) and is empty
    assert con.execute("SELECT count(*) FROM overlap_groups").fetchone() == (0,)
    con.execute("INSERT INTO overlap_groups VALUES (1, 'sea:abcd-1234', 'calls', now()), (1, 'gone:x', 'calls', now())")
    con.close()
    result = CliRunner().invoke(cli, ["records", "--overlap", "--json", *options])
    assert result.exit_code == 0, result.output
    assert [r["uid"] for r in json.loads(result.stdout)] == ["sea:abcd-1234"]
    assert "skipped 1 grouped dataset of portals not in" in result.stderr


def test_one_harvest_pulls_records_from_a_portal_of_every_kind(tmp_path):
    from tests.portals.arcgis import FeatureServerPortal
    from tests.portals.base import RawBody
    from tests.portals.ckan import CkanPortal
    from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
    from tests.portals.open311 import Open311Portal
    from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets

    layer = {"type": "Feature Layer", "geometryType": "esriGeometryPoint", "objectIdField": "OBJECTID",
             "maxRecordCount": 10, "advancedQueryCapabilities": {"supportsPagination": True},
             "fields": [{"name": "OBJECTID", "type": "esriFieldTypeOID"}, {"name": "NAME", "type": "esriFieldTypeString"}]}
    features = [{"attributes": {"OBJECTID": i, "NAME": f"n{i}"}, "geometry": {"x": i, "y": 1}} for i in range(25)]
    ods_datasets = make_ods_datasets(2)
    ods_rows = [{"id": str(i), "count": i, "rate": 0.5, "date": "2024-01-01T00:00:00+00:00"} for i in range(40)]
    requests = [{"service_request_id": str(i), "status": "open", "requested_datetime": f"2024-05-{1 + i:02d}T10:00:00Z"}
                for i in range(10)]
    datastore = [{"id": "_id", "type": "int"}, {"id": "amount", "type": "numeric"}]
    item = "c" * 32
    with FeatureServerPortal({"/arcgis/rest/services/S/FeatureServer/0": (layer, features)}) as services, \
            SocrataPortal([discovery_entry(VIEW)], records={"abcd-1234": SodaTable.from_rows(
                [{"n": str(i)} for i in range(50)])}) as socrata, \
            CkanPortal([{"id": "pkg-1", "name": "p", "title": "P", "resources": [
                {"id": "r1", "datastore_active": True}]}], datastore={"r1": datastore},
                records={"r1": [{"_id": i + 1, "amount": str(i)} for i in range(30)]}) as ckan, \
            DataJsonPortal({"dataset": []}) as dcat, \
            DataJsonPortal({"dataset": [{"identifier": f"https://www.arcgis.com/home/item.html?id={item}&sublayer=0",
                                         "title": "S", "distribution": [
                                             {"accessURL": services.url + "/arcgis/rest/services/S/FeatureServer/0"}]}]},
                           path=HUB_FEED_PATH) as hub, \
            OpenDataSoftPortal(ods_datasets, records={ods_datasets[1]["dataset_id"]: ods_rows}) as ods, \
            Open311Portal(services=[], requests=requests) as o311:
        dcat.document = {"dataset": [{"identifier": "d1", "title": "D", "distribution": [
            {"mediaType": "text/csv", "downloadURL": dcat.url + "/d1.csv"}]}]}
        dcat.serve_json("/d1.csv", RawBody(b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(20))))
        portals = [("soc", "socrata", socrata.url, "abcd-1234", 'domain = "data.example.org"'),
                   ("ck", "ckan", ckan.url, "pkg-1", ""), ("dj", "dcat-us", dcat.url + "/data.json", "d1", ""),
                   ("hub", "arcgis-hub", hub.url, f"{item}_0", ""),
                   ("ods", "opendatasoft", ods.url, ods_datasets[1]["dataset_id"], ""),
                   ("o311", "open311", o311.url, "service-requests", "")]
        config = tmp_path / "every.toml"
        config.write_text("".join(f'[[portals]]\nid = "{i}"\ncity = "City {i}"\nkind = "{k}"\nurl = "{u}"\n'
                                  f'records = ["{r}"]\n{extra}\n\n' for i, k, u, r, extra in portals))
        db = tmp_path / "c.duckdb"
        result = CliRunner().invoke(cli, ["harvest", "--records", "--json", "--config", str(config), "--db", str(db)])
    assert result.exit_code == 0, result.output
    pulled = {p["portal_id"]: (p["records_pulled"], p["records_failed"], p["record_rows"])
              for p in json.loads(result.output)["portals"]}
    assert pulled == {"soc": (1, 0, 50), "ck": (1, 0, 30), "dj": (1, 0, 20), "hub": (1, 0, 25), "ods": (1, 0, 40),
                      "o311": (1, 0, 10)}
    con = duckdb.connect(str(db))
    profiled = dict(con.execute("SELECT split_part(dataset_uid, ':', 1), count(*) FROM column_profiles GROUP BY 1")
                    .fetchall())
    assert set(profiled) == {"soc", "ck", "dj", "hub", "ods", "o311"} and all(n >= 2 for n in profiled.values())
    assert con.execute("SELECT count(*) FROM record_pulls").fetchone()[0] == 6


def test_fields_named_twice_or_with_control_characters_become_distinct_columns():
    fields = unique_fields([Field("a", "number"), Field("a", "text"), Field("b\x00\n", "integer"), Field("c", "nonsense")])
    assert [(f.name, f.kind, f.key) for f in fields] == [
        ("a", "number", "a"), ("a_2", "text", "a"), ("b", "integer", "b\x00\n"), ("c", "other", "c")]
    table = Conversion(fields).table_from_rows([{"a": "1.5", "b\x00\n": "7", "c": {"x": 1}}])
    assert table.column_names == ["a", "a_2", "b", "c"]
    assert table.to_pylist() == [{"a": 1.5, "a_2": "1.5", "b": 7, "c": '{"x":1}'}]


def test_rows_staged_twice_are_kept_once_at_their_later_reading(tmp_path):
    """A dataset published as read (harvester.records._pull): a row read twice would stay
    twice, an incremental merge keeping both copies until a full pull."""
    parts = {"part-00000.parquet": {":id": ["a", "b", "c"], "v": [1, 2, 3]},
             "part-00001.parquet": {":id": ["c", "d", "e"], "v": [30, 4, 5]},
             "part-00002.parquet": {":id": ["f", None, "g"], "v": [6, 7, 8]}}
    for name, columns in parts.items():
        pq.write_table(pa.table(columns), tmp_path / name)
    untouched = (tmp_path / "part-00002.parquet").read_bytes()
    assert _keep_once(tmp_path, ":id", ("c",)) == 1
    rows = [row for name in sorted(parts) for row in pq.read_table(tmp_path / name).to_pylist()]
    assert [(row[":id"], row["v"]) for row in rows] == [
        ("a", 1), ("b", 2), ("c", 30), ("d", 4), ("e", 5), ("f", 6), (None, 7), ("g", 8)]
    assert (tmp_path / "part-00002.parquet").read_bytes() == untouched   # (no repeated row: not written again)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(parts)   # (no temporary file left)


@pytest.mark.parametrize("key", ["portal", "dataset"])
def test_rows_staged_twice_are_kept_once_when_the_key_is_named_as_a_folder_of_the_staging_path(tmp_path, key):
    """A part is staged under `portal=<id>/dataset=<source_id>/parts/`: pyarrow 18 to 24 read a part's
    path (pq.read_table) as Hive partitions, and a key field of one of those names failed the pull."""
    parts_dir = tmp_path / "portal=p" / "dataset=d" / "parts"
    parts_dir.mkdir(parents=True)
    pq.write_table(pa.table({key: ["a", "b"], "v": [1, 2]}), parts_dir / "part-00000.parquet")
    pq.write_table(pa.table({key: ["b", "c"], "v": [20, 3]}), parts_dir / "part-00001.parquet")
    assert _keep_once(parts_dir, key, ("b",)) == 1
    rows = [row for n in (0, 1) for row in pq.ParquetFile(parts_dir / f"part-0000{n}.parquet").read().to_pylist()]
    assert rows == [{key: "a", "v": 1}, {key: "b", "v": 20}, {key: "c", "v": 3}]


@pytest.mark.parametrize("dropped", ["scattered rows", "a whole row group", "every row"])
def test_a_part_whose_repeated_rows_are_dropped_is_written_as_if_read_whole(tmp_path, monkeypatch, dropped):
    """_keep_once read a part whole and wrote it filtered (a part of 500,000 rows, or of 16,384
    column chunks of 1,000 text columns: ~130 MB, held twice); it now reads it a row group at a
    time and writes the same bytes: row groups cut at row_group_rows of the rows kept, the text
    columns of few values dictionary-encoded as dictionary_columns judges them on those rows."""
    import harvester.records as records
    monkeypatch.setattr(records, "ROW_GROUP_BYTES", 96 * 1024)   # (row groups of a few thousand rows)
    rows = 40_000
    table = pa.table({":id": [f"row-{i:06d}" for i in range(rows)],
                      "status": [("open", "closed", None, "pending")[i % 4] for i in range(rows)],
                      "note": [f"note {i * 7919 % 100_003}" if i % 5 else None for i in range(rows)],
                      "amount": [i * 1.5 if i % 3 else None for i in range(rows)]})
    part = tmp_path / "part-00000.parquet"
    with pq.ParquetWriter(part, table.schema, **records.PART_COMPRESSION, use_dictionary=["status"]) as writer:
        for start in range(0, rows, 3_000):   # (pages cut into row groups, as the pull's writer cuts them)
            page = table.slice(start, 3_000)
            writer.write_table(page, row_group_size=records.row_group_rows(page))
    assert pq.ParquetFile(part).num_row_groups > 10
    keep = {"scattered rows": [i % 11 != 3 for i in range(rows)],
            "a whole row group": [not 3_000 <= i < 6_000 for i in range(rows)],
            "every row": [False] * rows}[dropped]
    whole = pq.read_table(part).filter(pa.array(keep))   # (what _keep_once wrote before: the part read whole)
    expected = tmp_path / "expected.parquet"
    pq.write_table(whole, expected, **records.PART_COMPRESSION, use_dictionary=records.dictionary_columns(whole),
                   row_group_size=records.row_group_rows(whole))
    records._write_kept(part, tmp_path / "written.parquet", pa.array(keep))
    assert (tmp_path / "written.parquet").read_bytes() == expected.read_bytes()
    assert pq.read_table(tmp_path / "written.parquet").equals(whole)


def test_past_100000_parts_the_published_names_still_sort_in_their_order(tmp_path, monkeypatch):
    """Parts were named with 5 digits: the 100,001st, `part-100000`, sorted between `part-10000`
    and `part-10001`, and DuckDB and front ends, which read a folder's parts in name order, read
    the rows out of order. Past 100,000 parts every name takes the digits of the largest; up to
    it the names stay as they were. (The folder packed past 10**PART_DIGITS parts with 2 digits,
    101 parts: with 5, 100,001 parts' footers were read, 12 s of the suite, for the same path.)"""
    import catalog.records
    from catalog.records import part_name
    from harvester.records import _packed

    assert [part_name(n, 100_000) for n in (0, 99_999)] == ["part-00000.parquet", "part-99999.parquet"]
    assert [part_name(n, 100_001) for n in (0, 99_999, 100_000)] == [
        "part-000000.parquet", "part-099999.parquet", "part-100000.parquet"]
    monkeypatch.setattr(catalog.records, "PART_DIGITS", 2)
    parts_dir, count = tmp_path / "parts", 101
    parts_dir.mkdir()
    marked = (0, 9, 10, 11, 99, 100)
    base = tmp_path / "base.parquet"
    pq.write_table(pa.table({"v": [-1]}), base)
    parts = [f"part-{number:02d}.parquet" for number in range(count)]   # as a pull stages them
    for number, name in enumerate(parts):
        if number in marked:
            pq.write_table(pa.table({"v": [number]}), parts_dir / name)
        else:
            os.link(base, parts_dir / name)
    ready = _packed(parts_dir, parts, tmp_path, part_rows=1)
    names = sorted(os.listdir(ready))
    assert [pq.read_table(ready / names[n])["v"][0].as_py() for n in marked] == list(marked)
    assert len(names) == count and names[0] == "part-000.parquet" and names[-1] == "part-100.parquet"
    assert ready != parts_dir   # (linked under names of one width, not published as staged)


def test_parts_joined_past_the_name_width_are_named_in_their_order(tmp_path, monkeypatch):
    """Parts closed by time are joined before the publish: past 10**PART_DIGITS joined parts
    their names are widened together (here 1 digit, so that 12 parts go past it)."""
    import catalog.records
    from harvester.records import _packed

    monkeypatch.setattr(catalog.records, "PART_DIGITS", 1)
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    parts = [f"part-{number}.parquet" for number in range(24)]
    for number, name in enumerate(parts):   # closed by time: half a part each
        pq.write_table(pa.table({"v": [number]}), parts_dir / name)
    ready = _packed(parts_dir, parts, tmp_path, part_rows=2)
    assert sorted(os.listdir(ready)) == [f"part-{n:02d}.parquet" for n in range(12)]
    with duckdb.connect(config={"threads": 1}) as con:   # (the files in the order DuckDB takes them)
        assert [v for (v,) in con.execute(f"SELECT v FROM read_parquet('{ready}/*.parquet')").fetchall()] == \
            list(range(24))


@pytest.mark.parametrize("refusal", ["EPERM", "EOPNOTSUPP", "EMLINK"])
@pytest.mark.parametrize("shape", ["joined", "renamed"])
def test_parts_are_packed_on_a_file_system_that_refuses_hard_links(tmp_path, monkeypatch, refusal, shape):
    """Packing links the parts closed at their rows (joined: a part between parts closed by time;
    renamed: every part, past the name width) into the folder published: on a file system
    without hard links (exFAT, vfat: EPERM; some FUSE: EOPNOTSUPP) or a part at its link limit
    (EMLINK) every such pull failed at its publish. They are copied there, the staged parts kept
    for a publish killed while packing to pack again."""
    import errno

    import catalog.records
    from harvester.records import _packed

    def refused(source, target, **kwargs):
        code = getattr(errno, refusal)
        raise OSError(code, os.strerror(code), str(source), None, str(target))

    monkeypatch.setattr(os, "link", refused)
    monkeypatch.setattr(catalog.records, "PART_DIGITS", 1)
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    sizes = [2, 1, 2, 1] if shape == "joined" else [2] * 11
    parts, first = [], 0
    for number, size in enumerate(sizes):
        parts.append(f"part-{number}.parquet")
        pq.write_table(pa.table({"v": list(range(first, first + size))}), parts_dir / parts[-1])
        first += size
    staged = {name: (parts_dir / name).read_bytes() for name in parts}
    ready = _packed(parts_dir, parts, tmp_path, part_rows=2)
    assert ready == tmp_path / "packed"
    names = sorted(os.listdir(ready))
    assert names == (["part-0.parquet", "part-1.parquet", "part-2.parquet"] if shape == "joined"
                     else [f"part-{n:02d}.parquet" for n in range(11)])
    assert [v for name in names for v in pq.read_table(ready / name)["v"].to_pylist()] == list(range(first))
    assert {name: (parts_dir / name).read_bytes() for name in parts} == staged


def _distinct_texts(path, first: int, last: int, salt: str) -> None:
    """Rows `first`..`last` - 1 of 12 distinct 16-character texts (nothing for Parquet to
    share by dictionary), keyed by `:id`, written as a pull writes its parts."""
    columns = ", ".join(f"md5('{salt}' || (i * {k + 1})::VARCHAR)[:16] AS c{k}" for k in range(12))
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT 'row-' || i AS ":id", {columns} FROM range({first}, {last}) t(i))
                        TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 131072)""")


def test_an_incremental_merge_of_300000_rows_of_distinct_texts_fits_and_keeps_each_row_once(tmp_path, caplog):
    """The merge ran on the catalogue's connection (128 MB, every core): two DuckDB threads each
    holding a row group of the previous records did not fit, and such a dataset's incremental
    pull failed every night ('Out of Memory Error')."""
    from types import SimpleNamespace

    from catalog.records import RecordsLayout
    from harvester.records import _merge

    layout = RecordsLayout(tmp_path / "records")
    previous = layout.folder("city", "abcd-1234")
    previous.mkdir(parents=True)
    _distinct_texts(previous / "part-00000.parquet", 0, 300_000, "before")
    staging = tmp_path / "staging"
    (staging / "parts").mkdir(parents=True)
    _distinct_texts(staging / "parts" / "part-00000.parquet", 297_000, 303_000, "after")   # 3,000 edited, 3,000 new
    fields = [Field(":id", "text")] + [Field(f"c{k}", "text") for k in range(12)]
    source = SimpleNamespace(merge_key=":id", fields=fields)

    merged = _merge(source, layout, "city", "abcd-1234", staging)

    glob = str(merged / "*.parquet")
    with duckdb.connect() as con:
        rows, ids, edited = con.execute(f"""SELECT count(*), count(DISTINCT ":id"),
                                                   count(*) FILTER (WHERE c0 = md5('after' || (split_part(":id", '-', 2)::INT)::VARCHAR)[:16])
                                            FROM read_parquet('{glob}')""").fetchone()
    assert (rows, ids) == (303_000, 303_000)
    assert edited == 6_000   # the delta's rows, edited ones in their new reading


def _wide_table(first: int, last: int, columns: int, width: int, salt: str, updated_at: str) -> pa.Table:
    """SODA rows `first`..`last` - 1 of `columns` distinct `width`-character texts."""
    texts = ", ".join(f"repeat(md5('{salt}' || (i * {k + 1})::VARCHAR), 2)[:{width}] AS c{k}" for k in range(columns))
    with duckdb.connect() as con:
        return con.execute(f"""SELECT 'row-' || lpad(i::VARCHAR, 8, '0') AS ":id", '{updated_at}' AS ":updated_at",
                                      {texts} FROM range({first}, {last}) t(i)""").to_arrow_table()


@pytest.mark.parametrize("rows, columns, width", [(140_000, 30, 16), (20_000, 200, 40)])
def test_a_wide_dataset_is_pulled_merged_and_profiled_in_128_mb(tmp_path, monkeypatch, rows, columns, width):
    """Row groups were 131,072 rows whatever their width, and each DuckDB thread that reads a
    part holds about twice one: a pull of 1,000,000 rows of 30 distinct 16-character texts
    (63 MB a row group) fitted neither its merge nor its profile in 128 MB, and one of 200
    40-character texts (a page of 20,000 rows: 176 MB) not even the 1 GB retry. Row groups
    are bounded by bytes now (ROW_GROUP_BYTES): both pulls, full and incremental, fit 128 MB."""
    import catalog.records

    monkeypatch.setattr(catalog.records, "SCAN_MEMORY_RETRY", "1MB")   # (no retry: a scan fits 128 MB or fails)
    view = {"id": "wide-0001", "name": "Wide", "columns": [{"fieldName": f"c{k}", "dataTypeName": "text"}
                                                           for k in range(columns)]}
    before = _wide_table(0, rows, columns, width, "before", "2024-01-15T12:00:00.000Z")
    with SocrataPortal([discovery_entry(view)], records={"wide-0001": SodaTable(before)}) as portal:
        db, result = harvest_with_records(tmp_path, "sea", "socrata", portal.url, ["wide-0001"],
                                          extra='domain = "data.example.org"\n')
        assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
        edited = _wide_table(rows - 1_000, rows + 1_000, columns, width, "after", "2024-02-01T00:00:00.000Z")
        portal.records["wide-0001"] = SodaTable(pa.concat_tables([before.slice(0, rows - 1_000), edited]))
        db, result = harvest_with_records(tmp_path, "sea", "socrata", portal.url, ["wide-0001"],
                                          extra='domain = "data.example.org"\n')
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT mode, row_count, column_count FROM record_pulls").fetchone() == \
            ("incremental", rows + 1_000, columns + 2)
        assert con.execute("SELECT count(*), min(row_count) FROM column_profiles").fetchone() == (columns + 2, rows + 1_000)
    published = list((tmp_path / "records" / "portal=sea" / "dataset=wide-0001").glob("*.parquet"))
    table = pq.read_table(published)
    assert table.num_rows == rows + 1_000 and pc.count_distinct(table[":id"]).as_py() == rows + 1_000
    assert table.filter(pc.equal(table[":id"], f"row-{rows - 1:08d}"))["c0"].to_pylist() == \
        edited.filter(pc.equal(edited[":id"], f"row-{rows - 1:08d}"))["c0"].to_pylist()   # its new reading
    from harvester.records import ROW_GROUP_BYTES
    for path in published:
        metadata = pq.read_metadata(path)
        assert all(metadata.row_group(g).total_byte_size <= ROW_GROUP_BYTES for g in range(metadata.num_row_groups))


def test_row_groups_are_cut_even_within_the_byte_budget(monkeypatch):
    import harvester.records
    from harvester.records import row_group_rows

    monkeypatch.setattr(harvester.records, "ROW_GROUP_BYTES", 1_000_000)
    page = pa.table({"t": ["x" * 246] * 10_000})   # 250 bytes a row (with its offset): 2.5 MB
    assert row_group_rows(page) == 3_334   # three groups of at most 1 MB, even (not 4,000, 4,000 and 2,000)
    assert row_group_rows(pa.table({"n": list(range(500_000))})) == 125_000   # 4 MB: at most ROW_GROUP_ROWS
    assert row_group_rows(pa.table({"t": ["x" * 2_000_000]})) == 1   # a row over the budget: a group of its own
    assert row_group_rows(page.slice(0, 0)) == 131_072


def _chunks(path) -> int:
    """A part's column chunks (row groups times columns): its footer holds ~1 KB for each."""
    metadata = pq.read_metadata(path)
    return metadata.num_row_groups * metadata.num_columns


def test_a_wide_dataset_is_published_in_parts_whose_footers_stay_small(tmp_path, monkeypatch):
    """A part held 500,000 rows whatever its width: with row groups bounded by bytes, a part of
    1,000 text columns had hundreds of row groups, and its footer (~1 KB a column of each row
    group: ~1.3 GB at 500,000 rows) was read whole by whatever opened it, the next night's merge
    and profile among them. A part now closes at PART_COLUMN_CHUNKS row groups times columns
    too: a full pull's parts (here 42 columns, 4 row groups a part) and the merge's alike, in
    the rows' order, each row once."""
    import harvester.records

    monkeypatch.setattr(harvester.records, "ROW_GROUP_BYTES", 40_000)   # (~500 rows a row group)
    monkeypatch.setattr(harvester.records, "PAGE_BYTES", 80_000)
    monkeypatch.setattr(harvester.records, "PART_COLUMN_CHUNKS", 4 * 42)
    rows, columns = 6_000, 40
    view = {"id": "wide-0001", "name": "Wide", "columns": [{"fieldName": f"c{k}", "dataTypeName": "text"}
                                                           for k in range(columns)]}
    before = _wide_table(0, rows, columns, 16, "before", "2024-01-15T12:00:00.000Z")
    folder = tmp_path / "records" / "portal=sea" / "dataset=wide-0001"
    with SocrataPortal([discovery_entry(view)], records={"wide-0001": SodaTable(before)}) as portal:
        db, result = harvest_with_records(tmp_path, "sea", "socrata", portal.url, ["wide-0001"],
                                          extra='domain = "data.example.org"\n')
        assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
        full = sorted(folder.glob("*.parquet"))
        # (closed at the page that reaches 4 row groups: a page is cut in a few, ~32 rows each here)
        assert len(full) > 3 and all(4 * 42 <= _chunks(path) <= 10 * 42 for path in full[:-1])
        assert [path.name for path in full] == [f"part-{n:05d}.parquet" for n in range(len(full))]
        names = [":id"] + [f"c{k}" for k in range(columns)]
        assert pq.read_table(full).select(names).equals(before.select(names))
        edited = _wide_table(rows - 100, rows + 100, columns, 16, "after", "2024-02-01T00:00:00.000Z")
        portal.records["wide-0001"] = SodaTable(pa.concat_tables([before.slice(0, rows - 100), edited]))
        db, result = harvest_with_records(tmp_path, "sea", "socrata", portal.url, ["wide-0001"],
                                          extra='domain = "data.example.org"\n')
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT mode, row_count FROM record_pulls").fetchone() == ("incremental", rows + 100)
    merged = sorted(folder.glob("*.parquet"))
    assert len(merged) > 3 and all(_chunks(path) <= 4 * 42 for path in merged)
    assert [path.name for path in merged] == [f"part-{n:05d}.parquet" for n in range(len(merged))]
    expected = pa.concat_tables([before.slice(0, rows - 100), edited])
    assert pq.read_table(merged).select(names).equals(expected.select(names))


def test_parts_closed_at_their_column_chunks_are_not_joined_with_those_closed_by_time(tmp_path, monkeypatch):
    """A slow pull's parts closed by time are joined before the publish into parts of
    PART_ROWS rows, and now of PART_COLUMN_CHUNKS at most: a part closed at its column chunks
    is linked as it is, and those closed by time are joined up to the same bound."""
    import harvester.records
    from harvester.records import _packed

    monkeypatch.setattr(harvester.records, "PART_COLUMN_CHUNKS", 3 * 2)   # (2 columns: 3 row groups a part)
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    groups = [3, 1, 1, 1, 1, 1]   # the first closed at its chunks, the rest by time
    parts, first = [], 0
    for number, count in enumerate(groups):
        parts.append(f"part-{number:05d}.parquet")
        pq.write_table(pa.table({"v": range(first, first + 2 * count), "w": ["x"] * 2 * count}),
                       parts_dir / parts[-1], row_group_size=2)
        first += 2 * count
    ready = _packed(parts_dir, parts, tmp_path, part_rows=500_000)
    names = sorted(os.listdir(ready))
    assert [pq.read_metadata(ready / name).num_row_groups for name in names] == [3, 3, 2]
    assert (ready / names[0]).read_bytes() == (parts_dir / parts[0]).read_bytes()
    assert [v for name in names for v in pq.read_table(ready / name)["v"].to_pylist()] == list(range(first))


def test_a_records_pull_past_its_portals_records_max_minutes_fails_keeping_the_previous_records(tmp_path):
    """A server that trickles its pages (each answered within its timeout, a second after it was
    asked) held a records pull as long as it liked: `max_minutes` bounds the catalogue harvest
    only. Past the portal's `records_max_minutes` the pull makes no more requests and fails
    (OverBudget), saying so; the records it published before are kept."""
    from tests.harvester.portals.test_open311 import JSON_SERVICES
    from tests.portals.open311 import Open311Portal
    from tests.shared_fixtures import load_json

    folder = tmp_path / "records" / "portal=bos311" / "dataset=service-requests"
    requests = load_json("open311/boston-mayors24-requests-abandoned-vehicle-merged-pages.json")
    with Open311Portal(services=JSON_SERVICES, requests=requests) as portal:
        db, first = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
        published = pq.read_table(folder)
        portal.clear_log()
        # (each request slower than the whole budget: on a loaded machine too, the pull cannot end within it)
        portal.inject("/requests.json", ("slow", 1.0), times=10_000)
        _, second = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"],
                                         extra="records_max_minutes = 0.01\n")
        asked = portal.hits["/requests.json"]
    assert first.exit_code == 0, first.output
    report = json.loads(second.output)["portals"][0]
    assert (report["records_pulled"], report["records_failed"]) == (0, 1), second.output
    assert asked <= 2
    con = duckdb.connect(str(db))
    (kind, message), = con.execute("SELECT error_type, message FROM harvest_errors WHERE stage = 'records'").fetchall()
    assert kind == "OverBudget" and "the records pull of bos311:service-requests took over 0.01 minutes (its portal's " \
        "records_max_minutes); not requested: " in message and "the previous records are kept" in message, message
    assert con.execute("SELECT count(*) FROM record_pulls").fetchone() == (1,)
    assert pq.read_table(folder).equals(published) and published.num_rows == 950


def test_a_records_pull_past_its_budget_in_a_page_read_ahead_fails_keeping_the_previous_records(tmp_path,
                                                                                              monkeypatch):
    """The budget (`records_max_minutes`) is checked at each request, and a SODA pull's pages are
    asked in other threads, two in flight: the OverBudget a page read ahead raises there fails the
    pull as one in the pull's own thread does: the message names the budget, the published records
    and record_pulls are kept, the parts it closed are gone on from by the next pull (it asks none
    of their pages again), and no page is asked once the budget is out but those in flight."""
    import threading
    import time

    from harvester.http import OverBudget
    from harvester.http.client import HttpClient
    from harvester.portals.socrata import SodaRecords
    from tests.shared_fixtures import load_json

    ID = "3k2p-39jp"
    monkeypatch.setattr(SodaRecords.__init__, "__kwdefaults__", {"format": "csv", "page": 100})   # 10 pages
    view = load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")
    rows = load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json")
    folder = tmp_path / "records" / "portal=sea" / f"dataset={ID}"
    raised_in: list[str] = []   # the threads OverBudget was raised in
    check = HttpClient._check_stopped

    def checked(client, url):
        try:
            check(client, url)
        except OverBudget:
            raised_in.append(threading.current_thread().name)
            raise

    monkeypatch.setattr(HttpClient, "_check_stopped", checked)

    def harvest(*options, extra=""):
        return harvest_with_records(tmp_path, "sea", "socrata", portal.url, [ID], *options,
                                    extra='domain = "data.example.org"\n' + extra)

    def slow_from_the_4th_page(path, query):   # (each past the budget whatever the machine's load)
        if path.endswith(".csv") and int(query.get("$offset", 0)) >= 300:
            time.sleep(2.0)

    with SocrataPortal([discovery_entry(view)], records={ID: SodaTable.from_rows(rows)}) as portal:
        db, first = harvest()
        published = pq.read_table(folder)
        portal.clear_log()
        portal.on_request = slow_from_the_4th_page
        _, second = harvest("--full", extra="records_max_minutes = 0.02\n")
        offsets = [int(q.get("$offset", 0)) for p, q, _ in portal.requests if p.endswith(".csv")]
        staged = sorted(p.name for p in (tmp_path / ".records-staging").rglob("part-*.parquet"))
        portal.on_request = None
        portal.clear_log()
        _, third = harvest("--full")
        resumed_at = sorted(int(q.get("$offset", 0)) for p, q, _ in portal.requests if p.endswith(".csv"))
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    report = json.loads(second.output)["portals"][0]
    assert (report["records_pulled"], report["records_failed"]) == (0, 1), second.output
    con = duckdb.connect(str(db))
    (kind, message), = con.execute("SELECT error_type, message FROM harvest_errors WHERE stage = 'records'").fetchall()
    assert kind == "OverBudget" and "the records pull of sea:3k2p-39jp took over 0.02 minutes (its portal's " \
        "records_max_minutes); not requested: " in message and "the previous records are kept" in message, message
    assert con.execute("SELECT row_count FROM record_pulls").fetchall() == [(1000,)]
    assert pq.read_table(folder).equals(published) and published.num_rows == 1000
    con.close()
    # the budget ran out in a page read ahead (the pages are asked in the pool's threads), pages 0-200
    # read and staged; asked past them, only those in flight as it ran out (two at a time)
    assert raised_in and all(name.startswith("civicat-page") for name in raised_in), raised_in
    assert sorted(offsets) == [0, 100, 200, 300, 400], offsets
    assert staged, "the parts closed as the pull failed are kept for the next"
    report = json.loads(third.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"]) == (1, 1000), third.output
    assert 0 not in resumed_at and 100 not in resumed_at, resumed_at   # (gone on from its parts)
    ids = pq.read_table(folder, columns=[":id"])[":id"].to_pylist()
    assert len(ids) == len(set(ids)) == 1000


class _Stamped:
    """A record source as `dated_ahead` reads it: its past stamps, and which is its watermark's."""
    past_stamps = ("changed", "made")
    watermark_column = "changed"


def test_stamps_after_the_pull_are_counted_from_the_files_statistics_or_one_scan(tmp_path, monkeypatch):
    began = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
    after = began + timedelta(days=1)
    kind = pa.timestamp("us", tz="UTC")
    pq.write_table(pa.table({"changed": pa.array([datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 7, 23, tzinfo=UTC)],
                                                 kind),
                             "made": pa.array([datetime(2026, 11, 1), None], pa.timestamp("us"))}), tmp_path / "a.parquet")
    glob = str(tmp_path / "*.parquet")

    def no_scan(*_args, **_kwargs):
        raise AssertionError("a scan where the statistics say none is ahead")

    monkeypatch.setattr(records, "scratch_duckdb", no_scan)
    # (within the day's slack: not ahead; a naive column, a `datetime`, read as UTC)
    assert stamps_after(glob, "changed", after) == (0, datetime(2026, 12, 7, 23, tzinfo=UTC),
                                                    datetime(2026, 12, 7, 23, tzinfo=UTC))
    assert stamps_after(glob, "made", after)[0] == 0 and stamps_after(glob, "absent", after) == (0, None, None)
    # (the watermark at most a minute before the pull began: a row changed since is stamped after it)
    assert dated_ahead(_Stamped(), glob, began) == (None, datetime(2026, 12, 7, 0, 29, tzinfo=UTC))
    monkeypatch.undo()
    pq.write_table(pa.table({"changed": pa.array([datetime(2062, 1, 10, 9, tzinfo=UTC)] * 2, kind),
                             "made": pa.array([datetime(2030, 1, 1), datetime(2026, 1, 1)], pa.timestamp("us"))}),
                   tmp_path / "b.parquet")
    assert stamps_after(glob, "changed", after) == (2, datetime(2062, 1, 10, 9, tzinfo=UTC),
                                                    datetime(2026, 12, 7, 23, tzinfo=UTC))
    assert stamps_after(glob, "made", after) == (1, datetime(2030, 1, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert dated_ahead(_Stamped(), glob, began) == (
        "2 rows' changed more than a day after this pull began (the latest 2062-01-10T09:00:00Z, 12818 days after); "
        "1 row's made more than a day after this pull began (the latest 2030-01-01T00:00:00Z, 1120 days after): kept "
        "as the portal gives them (a server's clock, or a typo); the next incremental pull reads on from "
        "2026-12-07T00:29:00Z (the latest not ahead, at most a minute before this pull began), and reads those rows "
        "again each time until their day", datetime(2026, 12, 7, 0, 29, tzinfo=UTC))
    (tmp_path / "a.parquet").unlink()   # every row's watermark stamp ahead: no watermark, the next pull reads it whole
    assert stamps_after(glob, "changed", after)[2] is None
    said, watermark = dated_ahead(_Stamped(), glob, began)
    assert said.endswith("(a server's clock, or a typo); the next pull reads the dataset whole (no row's is not ahead)")
    assert watermark is None


def test_stamps_are_judged_by_the_server_s_clock_where_it_is_believed(tmp_path):
    """A server's clock days ahead of ours (its Date header) stamps its rows days ahead: judged by
    it, they are not ahead, and their latest is the watermark; a row further ahead still is warned
    of, the clock named. Within a minute the clocks agree (a Date is to the second): the words are
    ours. Over a year off, the clock is not believed (ServerClock), and ours judges."""
    from harvester.records import server_began

    began = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
    kind = pa.timestamp("us", tz="UTC")
    server_now = began + timedelta(days=3)
    pq.write_table(pa.table({"changed": pa.array([server_now - timedelta(hours=3), server_now - timedelta(hours=1)], kind),
                             "made": pa.array([server_now - timedelta(days=30), None], kind)}), tmp_path / "a.parquet")
    glob = str(tmp_path / "*.parquet")
    mine = dated_ahead(_Stamped(), glob, began)
    assert mine[1] is None and mine[0].startswith("2 rows' changed more than a day after this pull began (the latest "
                                                  "2026-12-09T23:30:00Z, 2 days after)")
    assert dated_ahead(_Stamped(), glob, began, timedelta(days=3, seconds=-1)) == (None, server_now - timedelta(hours=1))
    pq.write_table(pa.table({"changed": pa.array([datetime(2062, 1, 10, 9, tzinfo=UTC)], kind),
                             "made": pa.array([None], kind)}), tmp_path / "b.parquet")
    said, watermark = dated_ahead(_Stamped(), glob, began, timedelta(days=3, seconds=-1))
    assert watermark == server_now - timedelta(hours=1)
    assert said == ("1 row's changed more than a day after this pull began by the server's clock (3 days ahead of ours, "
                    "by its Date header) (the latest 2062-01-10T09:00:00Z, 12815 days after): kept as the portal gives "
                    "them (a server's clock, or a typo); the next incremental pull reads on from 2026-12-09T23:30:00Z (the latest "
                    "not ahead, at most a minute before this pull began), and reads those rows again each time until "
                    "their day")
    # a row stamped after the pull began by the server's clock, within the day's slack: not ahead, and
    # not the watermark either (a row changed before its stamp, after the pull began, would be read by none)
    pq.write_table(pa.table({"changed": pa.array([server_now + timedelta(hours=2)], kind),
                             "made": pa.array([None], kind)}), tmp_path / "c.parquet")
    assert dated_ahead(_Stamped(), glob, began, timedelta(days=3, seconds=-1))[1] == \
        server_now - timedelta(minutes=1, seconds=1)
    assert server_began(began, None) == (began, "", None)
    assert server_began(began, timedelta(seconds=-59)) == (began, "", None)
    assert server_began(began, timedelta(hours=-5, seconds=-1)) == (
        began - timedelta(hours=5, seconds=1), " by the server's clock (5 hours behind ours, by its Date header)", None)
    assert server_began(began, timedelta(minutes=20))[1] == " by the server's clock (20 minutes ahead of ours, by its " \
        "Date header)"
    assert server_began(began, timedelta(days=365))[1] == " by the server's clock (365 days ahead of ours, by its " \
        "Date header)"
    for off, words in ((timedelta(days=366), "366 days ahead of"), (-timedelta(days=4000), "4000 days behind")):
        assert server_began(began, off) == (began, "", f"the server's answers (their Date header) put its clock "
                                                       f"{words} ours: not believed, its rows' stamps are judged by ours")


NAIVE_STAMPS = """import sys
from datetime import UTC, datetime
from harvester.records import stamps_after
print(stamps_after(sys.argv[1], "made", datetime(2026, 12, 8, tzinfo=UTC)))
"""


def test_naive_stamps_are_counted_as_utc_whatever_the_machine_s_zone(tmp_path):
    """A `datetime` column (naive, its stamps UTC's) compared in DuckDB's TimeZone, the machine's: in
    Los Angeles a stamp 4 hours before the bound was counted ahead, and the latest not ahead (the
    watermark) lost. Counted as in UTC now (a process of its own: DuckDB reads the zone as it starts)."""
    pq.write_table(pa.table({"made": pa.array([datetime(2026, 12, 7, 20), datetime(2062, 1, 1)], pa.timestamp("us"))}),
                   tmp_path / "a.parquet")
    done = subprocess.run([sys.executable, "-c", NAIVE_STAMPS, str(tmp_path / "*.parquet")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TZ": "America/Los_Angeles", "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr((1, datetime(2062, 1, 1, tzinfo=UTC), datetime(2026, 12, 7, 20, tzinfo=UTC)))


@contextmanager
def _pothole_repairs_on_two_portals_of_seattle(tmp_path):
    """Seattle's 'Pothole Repair' (w3qe-e2jj, 30 rows) on two portals of the city, `sea` and `seattle`,
    harvested: -> the two portals and the command's catalogue options."""
    view = {**VIEW, "id": "w3qe-e2jj", "name": "Pothole Repair"}
    rows = [{"n": str(i), "when": f"2024-01-{1 + i % 28:02d}T00:00:00.000", "ok": True} for i in range(30)]
    with SocrataPortal([discovery_entry(view)], records={"w3qe-e2jj": SodaTable.from_rows(rows)}) as one, \
            SocrataPortal([discovery_entry(view)], records={"w3qe-e2jj": SodaTable.from_rows(rows)}) as other:
        config = tmp_path / "c.toml"
        config.write_text("".join(f'[[portals]]\nid = "{name}"\ncity = "Seattle"\nkind = "socrata"\nurl = "{p.url}"\n'
                                  'domain = "data.example.org"\n\n' for name, p in (("sea", one), ("seattle", other))))
        options = ["--config", str(config), "--db", str(tmp_path / "c.duckdb")]
        assert CliRunner().invoke(cli, ["harvest", *options]).exit_code == 0
        yield one, other, options


def test_records_overlap_pulls_a_dataset_two_portals_of_its_city_list_once(tmp_path, portal):
    """A dataset two portals of one city list (Seattle's Socrata site and a second portal of Seattle both list
    'Pothole Repair', w3qe-e2jj as the real catalogues' 2013 data.json and 2017 Socrata site do) is a row of its
    overlap group by each uid, so that any finds the group. `records --overlap` pulled every row: the same records
    twice, two folders of one dataset. Now once, by the copy the group lists, and it says so."""
    with _pothole_repairs_on_two_portals_of_seattle(tmp_path) as (one, other, options):
        db = tmp_path / "c.duckdb"
        con = duckdb.connect(str(db))
        con.execute("INSERT INTO overlap_groups VALUES (1, 'sea:w3qe-e2jj', 'Pothole repairs', now()), "
                    "(1, 'seattle:w3qe-e2jj', 'Pothole repairs', now()), (1, 'bos:x', 'Pothole repairs', now())")
        con.close()
        one.requests.clear()
        other.requests.clear()
        result = CliRunner().invoke(cli, ["records", "--overlap", "--json", *options])
        assert result.exit_code == 0, result.output
        assert [r["uid"] for r in json.loads(result.stdout)] == ["sea:w3qe-e2jj"]
        assert other.requests == [] and one.requests
        assert ("left out 1 copy of grouped datasets another portal of their city lists: each pulled once, by the "
                "copy its group lists") in " ".join(result.stderr.split())
        assert "skipped 1 grouped dataset of portals not in" in result.stderr   # (Boston's, as before)


def test_records_overlap_pulls_a_live_copy_where_the_copy_its_group_lists_was_deleted_since(tmp_path, portal):
    """The groups are the last `civicat overlap`'s: a copy the group lists may have been deleted since (its
    portal stopped listing it, Chicago's 2013 data.json retired). Pulling it fails (not in the catalogue, or
    was deleted), and its live copy on the city's other portal, left out as a copy, was pulled by nothing:
    `records --overlap` pulls the live copy."""
    with _pothole_repairs_on_two_portals_of_seattle(tmp_path) as (one, other, options):
        db = tmp_path / "c.duckdb"
        with duckdb.connect(str(db)) as con:
            con.execute("INSERT INTO overlap_groups VALUES (1, 'sea:w3qe-e2jj', 'Pothole repairs', now()), "
                        "(1, 'seattle:w3qe-e2jj', 'Pothole repairs', now())")
            # (as a harvest marks a dataset its portal no longer lists once its grace is over; the copy the
            # group lists, 'sea:' first of two alike)
            con.execute("UPDATE datasets SET deleted_at = now() WHERE uid = 'sea:w3qe-e2jj'")
        one.requests.clear()
        result = CliRunner().invoke(cli, ["records", "--overlap", "--json", *options])
        assert result.exit_code == 0, result.output
        assert [(r["uid"], r["status"], r["rows"]) for r in json.loads(result.stdout)] == \
            [("seattle:w3qe-e2jj", "ok", 30)]
        assert one.requests == []
