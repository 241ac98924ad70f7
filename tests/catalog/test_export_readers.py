"""The export as its readers read it: a front end fetching the manifest's files over HTTP and
reading them from JavaScript, analysts reading the records' Hive folders, and a front end
caching files by sha256 across two exports of an unchanged catalogue (docs/export.md)."""
import hashlib
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.records import RecordsLayout
from catalog.store import Store
from tests.catalog.test_export import run_export, seattle  # noqa: F401 (a fixture)

JS_READER = Path(__file__).with_name("read_export.mjs")
JS_PACKAGES = ("hyparquet", "hyparquet-compressors", "parquet-wasm", "apache-arrow")


def catalogue_with_records(tmp_path, pulls: dict[tuple[str, str], pa.Table]) -> Path:
    """A catalogue whose record_pulls name `pulls` ((portal id, source id) -> its rows), their
    parts written where a pull puts them."""
    db = tmp_path / "c.duckdb"
    store = Store(db)
    layout = RecordsLayout.beside(db)
    for (portal_id, source_id), table in pulls.items():
        folder = layout.folder(portal_id, source_id)
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "part-00000.parquet", compression="zstd")
        store.con.execute("INSERT INTO record_pulls (dataset_uid, portal_id, source_id, path, row_count, "
                          "column_count, bytes, mode, pulled_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'full', now())",
                          [f"{portal_id}:{source_id}", portal_id, source_id, layout.relative(portal_id, source_id),
                           table.num_rows, table.num_columns, (folder / "part-00000.parquet").stat().st_size])
    store.close()
    return db


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def fetched(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_every_file_of_the_manifest_is_fetched_over_http_by_its_url(tmp_path):
    """A front end fetches the files the manifest lists from a static web server. A records
    folder's name holds an id percent-encoded (`dataset=a%20b%3Ac`), which the server decodes:
    its `path` fetched as written was a 404 (the `%` must be sent as `%25`). Each entry's `url`
    is the path as a relative URL; an ordinary path is its own URL."""
    ids = [("sea", "3k2p-39jp"), ("sea", "a b:c/é"), ("pod", "https://data.example.org/d/42?x=1&y=100%")]
    db = catalogue_with_records(tmp_path, {key: pa.table({"n": [1, 2, 3]}) for key in ids})
    out = tmp_path / "export"
    run_export(db, out)
    manifest = json.loads((out / "manifest.json").read_text())
    parts = [f for f in manifest["files"] if f["path"].startswith("records/")]
    assert len(parts) == 3
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(out.resolve())))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        for entry in manifest["files"]:
            status, body = fetched(base + entry["url"])
            assert status == 200 and hashlib.sha256(body).hexdigest() == entry["sha256"], entry
        encoded = [f for f in parts if "%" in f["path"]]
        assert len(encoded) == 2
        assert all(fetched(base + f["path"])[0] == 404 for f in encoded)   # (why `url` is there)
    finally:
        server.shutdown()
        server.server_close()
    plain = next(f for f in parts if "3k2p-39jp" in f["path"])
    assert plain["url"] == plain["path"] == "records/portal=sea/dataset=3k2p-39jp/part-00000.parquet"
    assert all(f["url"] == f["path"] for f in manifest["files"] if not f["path"].startswith("records/"))


def test_two_exports_of_an_unchanged_catalogue_are_the_same_bytes(tmp_path, real_catalogue_with_overlap):
    """Guard: a front end caching the files by the manifest's sha256 downloads nothing again
    when the catalogue has not changed: same rows in the same order, written alike, the
    export's time in manifest.json alone (data.json's bytes too)."""
    exports = []
    for night in ("1", "2"):
        out = tmp_path / f"export-{night}"
        run_export(real_catalogue_with_overlap, out, "--format", "parquet,data.json")
        exports.append(out)
    first, second = (json.loads((out / "manifest.json").read_text()) for out in exports)
    assert first["created_at"] != second["created_at"]
    assert {**first, "created_at": None} == {**second, "created_at": None}
    assert first["row_counts"]["overlap_pairs"] > 100 and first["row_counts"]["datasets"] > 10_000
    assert (exports[0] / "data.json").read_bytes() == (exports[1] / "data.json").read_bytes()


def test_a_night_whose_overlap_finds_what_it_found_exports_the_same_bytes(tmp_path, real_catalogue_with_overlap):
    """`civicat overlap` runs every night: each run stamped every pair and group member with its own time, so
    overlap_pairs.parquet and overlap_groups.parquet changed every night though no result did, and a front
    end caching by sha256 fetched them again. A result found again keeps the time of the run that found it."""
    from catalog import overlap
    from catalog.store import connect

    db = tmp_path / "catalog.duckdb"
    shutil.copy(real_catalogue_with_overlap, db)
    manifests = []
    for night in ("1", "2"):
        if night == "2":
            con = connect(db)
            try:
                overlap.save(con, overlap.detect(con))
            finally:
                con.close()
        run_export(db, tmp_path / f"export-{night}")
        manifests.append(json.loads((tmp_path / f"export-{night}" / "manifest.json").read_text()))
    first, second = ({f["path"]: f["sha256"] for f in manifest["files"]} for manifest in manifests)
    assert first == second and manifests[0]["row_counts"]["overlap_pairs"] > 100


def test_hive_folder_values_read_decoded_and_typed_as_the_docs_say(tmp_path):
    """Guard of docs/export.md "Reading it": DuckDB, polars and pyarrow decode a folder's
    percent-encoding (the value is the source id), and give a folder value that reads as a
    number or a date that type unless told the keys are text."""
    import polars as pl
    import pyarrow.dataset as ds

    ids = [("p1", "00123"), ("p1", "4567"), ("p2", "a b:c")]
    db = catalogue_with_records(tmp_path, {key: pa.table({"n": [1]}) for key in ids})
    out = tmp_path / "export"
    run_export(db, out)
    root = out.resolve() / "records"
    everything = f"{root}/*/*/*.parquet"
    assert duckdb.sql(f"SELECT portal, dataset FROM read_parquet('{everything}', hive_partitioning = true, "
                      "union_by_name = true) ORDER BY ALL").fetchall() == [("p1", "00123"), ("p1", "4567"), ("p2", "a b:c")]
    one = f"{root}/portal=p1/dataset=4567/*.parquet"
    assert duckdb.sql(f"SELECT dataset FROM read_parquet('{one}', hive_partitioning = true)").fetchall() == [(4567,)]
    assert duckdb.sql(f"SELECT dataset FROM read_parquet('{one}', hive_partitioning = true, "
                      "hive_types = {'portal': VARCHAR, 'dataset': VARCHAR})").fetchall() == [("4567",)]
    numeric = [str(root / "portal=p1" / f"dataset={i}" / "part-00000.parquet") for i in ("00123", "4567")]
    assert sorted(pl.scan_parquet(numeric, hive_partitioning=True).collect()["dataset"].to_list()) == [123, 4567]
    kept = pl.scan_parquet(numeric, hive_partitioning=True, hive_schema={"portal": pl.String, "dataset": pl.String})
    assert sorted(kept.collect()["dataset"].to_list()) == ["00123", "4567"]
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    assert sorted(table["dataset"].to_pylist()) == ["00123", "4567", "a b:c"]


def test_records_of_datasets_with_other_columns_as_each_analyst_reader_gives_them(tmp_path):
    """Guard of docs/export.md "Reading it": across datasets whose columns differ, DuckDB with
    `union_by_name` keeps every column, matching names whatever their case (`OBJECTID`,
    `objectid`) into one column of a type both fit; pandas and pyarrow on the folder keep one
    file's columns only, the others' dropped without a word; polars refuses, and its
    `pl.concat(how="diagonal_relaxed")` keeps every name as written."""
    import pandas as pd
    import polars as pl

    db = catalogue_with_records(tmp_path, {
        ("hub", "a_0"): pa.table({"OBJECTID": pa.array([1, 2], pa.int64()), "NAME": ["x", "y"]}),
        ("sea", "b"): pa.table({"objectid": [1.5], "zone": ["z"]})})
    out = tmp_path / "export"
    run_export(db, out)
    root = out.resolve() / "records"
    united = duckdb.sql(f"SELECT * FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning = true, "
                        "union_by_name = true)")
    assert sorted(c.lower() for c in united.columns) == ["dataset", "name", "objectid", "portal", "zone"]
    assert dict(zip((c.lower() for c in united.columns), map(str, united.types)))["objectid"] == "DOUBLE"
    assert len(pd.read_parquet(root).columns) < 5
    assert len(pq.ParquetDataset(root).read().column_names) < 5
    with pytest.raises(pl.exceptions.PolarsError):
        pl.scan_parquet(f"{root}/*/*/*.parquet", hive_partitioning=True).collect()
    every = pl.concat([pl.scan_parquet(p, hive_partitioning=True) for p in sorted(root.glob("*/*/*.parquet"))],
                      how="diagonal_relaxed").collect()
    assert sorted(every.columns) == ["NAME", "OBJECTID", "dataset", "objectid", "portal", "zone"]


def canonical(value):
    """A value as read_export.mjs compares it: instants in UTC to the millisecond (a
    timestamp without a zone as if UTC, as the JavaScript readers give it), integers as text."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def expected_values(out: Path) -> dict:
    files = {}
    for entry in json.loads((out / "manifest.json").read_text())["files"]:
        table = pq.read_table(out / entry["path"], partitioning=None)
        columns = {}
        for name in table.column_names:
            present = [v for v in table[name].to_pylist() if v is not None and v != []]
            columns[name] = {"type": str(table.schema.field(name).type), "present": len(present),
                             "first": canonical(present[0]) if present else None,
                             "last": canonical(present[-1]) if present else None}
        files[entry["path"]] = {"rows": table.num_rows, "columns": columns}
    return files


def javascript_readers() -> Path:
    """The folder whose node_modules holds the JavaScript readers (CIVICAT_JS_READERS): never
    installed by the tests (the CI machine may have no node, and installs nothing)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the export is not read from JavaScript")
    folder = os.environ.get("CIVICAT_JS_READERS")
    if not folder:
        pytest.skip("CIVICAT_JS_READERS is not set: give a folder where `npm install "
                    + " ".join(JS_PACKAGES) + " [@duckdb/node-api]` was run to read the export from JavaScript")
    missing = [p for p in JS_PACKAGES if not (Path(folder) / "node_modules" / p / "package.json").exists()]
    if missing:
        pytest.skip(f"CIVICAT_JS_READERS={folder} lacks {', '.join(missing)} in its node_modules")
    return Path(folder)


def test_every_file_reads_from_javascript_as_pyarrow_reads_it(tmp_path, real_catalogue_with_overlap, request):
    """hyparquet (with hyparquet-compressors: alone it reads no zstd), parquet-wasm + apache-arrow
    and DuckDB's node client read every file of two real exports (the catalogue tables of the
    real catalogues with overlap; Seattle's 911 records, instants and floating times) to the
    same values as pyarrow: int64 as BigInt, timestamps as Date (Arrow: milliseconds), lists
    as arrays (Arrow: vectors)."""
    readers = javascript_readers()
    records = request.getfixturevalue("seattle")   # (Seattle's 911 records)
    script = tmp_path / "js" / JS_READER.name
    script.parent.mkdir()
    shutil.copy(JS_READER, script)
    (script.parent / "node_modules").symlink_to(readers.resolve() / "node_modules")   # (bare imports resolve there)
    for name, db in (("tables", real_catalogue_with_overlap), ("records", records)):
        out = tmp_path / f"export-{name}"
        run_export(db, out)
        expected = tmp_path / f"{name}.json"
        expected.write_text(json.dumps(expected_values(out.resolve())))
        ran = subprocess.run(["node", str(script), str(out), str(expected)], capture_output=True, text=True,
                             timeout=600)
        assert ran.returncode == 0, ran.stderr
        read = json.loads(ran.stdout)
        manifest = json.loads((out / "manifest.json").read_text())
        assert sorted(read["files"]) == sorted(f["path"] for f in manifest["files"])
        for path, by_reader in read["files"].items():
            assert {reader: result["problems"] for reader, result in by_reader.items() if result["problems"]} == {}, path
            types = by_reader["hyparquet"]["types"]
            wanted = expected_values_types(out.resolve() / path)
            assert {c: types[c] for c in wanted} == wanted, path
            rows = next(f["rows"] for f in manifest["files"] if f["path"] == path)
            # (a file of no rows has no compressed page to read)
            assert read["alone"][path]["problems"] == (["fails: parquet unsupported compression codec: ZSTD"]
                                                       if rows else []), path
        if read["duckdb"] and name == "records":
            assert read["hive"] == [{"portal": "sea", "dataset": "3k2p-39jp", "n": 1000}]


def expected_values_types(path: Path) -> dict[str, str]:
    """The JavaScript type hyparquet gives each non-empty column of `path` (docs/export.md)."""
    table = pq.read_table(path, partitioning=None)
    js = {pa.types.is_int64: "bigint", pa.types.is_int32: "number", pa.types.is_floating: "number",
          pa.types.is_timestamp: "Date", pa.types.is_date32: "Date", pa.types.is_string: "string",
          pa.types.is_boolean: "boolean", pa.types.is_list: "Array"}
    return {field.name: next(name for test, name in js.items() if test(field.type)) for field in table.schema
            if any(v is not None and v != [] for v in table[field.name].to_pylist())}
