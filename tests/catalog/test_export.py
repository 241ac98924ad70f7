"""The Parquet export: layout, manifest, pinned column contract, atomic replacement,
sanitised record paths, and the readers front ends and analysts use."""
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from catalog import export
from catalog.files import exchange
from catalog.read_copy import read_copy_path
from catalog.records import RecordsLayout, safe_segment
from catalog.store import Store, connect
from harvester.cli import cli
from tests.conftest import REPO, as_in_a_test, harvest_with_records, left_beside, writer_under_way
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry
from tests.shared_fixtures import load_json
from tests.children import ended, line_of, run

DOCS = Path(__file__).parents[2] / "docs" / "export.md"
S, I32, I64, F64, TS, LIST = ("string", "int32", "int64", "double", "timestamp[us, tz=UTC]",
                              "list<element: string>")
# The contract of schema version 1.1. Changing a column here is changing the export's
# schema: bump export.SCHEMA_VERSION and docs/export.md with it.
PINNED_VERSION = "1.1"
PINNED = {
    "datasets": [("uid", S), ("portal_id", S), ("city", S), ("portal_kind", S), ("source_id", S),
                 ("identifier", S), ("title", S), ("description", S), ("keywords", LIST), ("themes", LIST),
                 ("publisher", S), ("contact_name", S), ("contact_email", S), ("issued", TS), ("modified", TS),
                 ("accrual_periodicity", S), ("license", S), ("access_level", S), ("landing_page", S),
                 ("spatial", S), ("temporal_start", TS), ("temporal_end", TS), ("asset_type", S),
                 ("parent_uid", S), ("row_count", I64), ("first_seen", TS), ("last_seen", TS),
                 ("last_changed", TS), ("deleted_at", TS), ("missing_since", TS), ("raw_hash", S)],
    "distributions": [("dataset_uid", S), ("position", I32), ("title", S), ("format", S), ("media_type", S),
                      ("download_url", S), ("access_url", S)],
    "columns": [("dataset_uid", S), ("position", I32), ("name", S), ("field_name", S), ("type", S),
                ("source_type", S), ("description", S)],
    "overlap_pairs": [("uid_a", S), ("uid_b", S), ("score", F64), ("title_score", F64),
                      ("description_score", F64), ("keywords_score", F64), ("columns_score", F64),
                      ("values_score", F64), ("embedding_score", F64), ("concept_score", F64), ("shape_factor", F64),
                      ("explanation", S), ("computed_at", TS)],
    "overlap_groups": [("group_id", I32), ("uid", S), ("label", S), ("computed_at", TS)],
    "column_profiles": [("dataset_uid", S), ("column_name", S), ("type", S), ("row_count", I64),
                        ("null_count", I64), ("distinct_count", I64), ("min_value", S), ("max_value", S),
                        ("top_values", LIST), ("profiled_at", TS)],
}
ID = "3k2p-39jp"


def schema_of(path: Path) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in pq.read_schema(path)]


def run_export(db, out, *options):
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "--out", str(out), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)   # (stderr: the warnings, e.g. of a portal the config does not name)


@pytest.fixture(scope="module")
def seattle_folder(tmp_path_factory):
    """A folder as `civicat harvest --records` leaves it: a catalogue with the records of one real
    dataset (Seattle's 911 calls), its read copy, lock, marker and validators; harvested once a
    module (each worker's)."""
    folder = tmp_path_factory.mktemp("seattle")
    view = load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")
    rows = load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json")
    with as_in_a_test(), SocrataPortal([discovery_entry(view)], records={ID: SodaTable.from_rows(rows)}) as portal:
        _, result = harvest_with_records(folder, "sea", "socrata", portal.url, [ID],
                                         extra='domain = "data.example.org"\n')
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def seattle(tmp_path, seattle_folder):
    """A harvested catalogue with the records of one real dataset (Seattle's 911 calls): a copy of
    seattle_folder's (the same catalogue, as a backup restored, in a folder of its own)."""
    shutil.copytree(seattle_folder, tmp_path, dirs_exist_ok=True)
    return tmp_path / "c.duckdb"


def test_layout_and_manifest(tmp_path, seattle):
    out = tmp_path / "export"
    summary = run_export(seattle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == export.SCHEMA_VERSION == PINNED_VERSION
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    part = f"records/portal=sea/dataset={ID}/part-00000.parquet"
    assert [f["path"] for f in manifest["files"]] == [f"{t}.parquet" for t in PINNED] + [part]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([f["path"] for f in manifest["files"]] + ["manifest.json"])
    for f in manifest["files"]:
        body = (out / f["path"]).read_bytes()
        assert f["sha256"] == hashlib.sha256(body).hexdigest() and re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
        assert f["bytes"] == len(body) and f["rows"] == pq.read_metadata(out / f["path"]).num_rows
    con = connect(seattle, read_only=True)
    for table in PINNED:
        assert manifest["row_counts"][table] == con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    assert manifest["row_counts"]["datasets"] == 1 and manifest["row_counts"]["columns"] == 19
    assert manifest["row_counts"]["column_profiles"] >= 19  # every column of the pulled records
    assert manifest["records"] == {"datasets": 1, "rows": 1000}
    con.close()
    assert summary["parquet"]["row_counts"] == manifest["row_counts"]
    # nothing left beside the export but its own folder, which OUT names
    assert out.is_symlink() and os.readlink(out) == out.resolve().name
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".export")) == [out.resolve().name]


def test_every_file_matches_the_pinned_and_documented_contract(tmp_path, seattle):
    out = tmp_path / "export"
    run_export(seattle, out)
    for table, columns in PINNED.items():
        assert schema_of(out / f"{table}.parquet") == columns, f"{table}.parquet changed: bump the schema version"
        assert export.TABLES[table][0] == tuple(name for name, _ in columns)
    assert documented_columns() == PINNED
    assert f"Schema version: **{PINNED_VERSION}**" in DOCS.read_text()
    # the manifest's table gives the version too; it said "1.0" a version after 1.1
    assert f'the column contract below (`"{PINNED_VERSION}"`)' in DOCS.read_text()


def documented_columns() -> dict[str, list[tuple[str, str]]]:
    """The column tables of docs/export.md: `### name.parquet`, then `| `col` | type | ... |`."""
    tables: dict[str, list] = {}
    current = None
    for line in DOCS.read_text().splitlines():
        heading = re.match(r"^### (\w+)\.parquet\s*$", line)
        if heading:
            current = tables.setdefault(heading.group(1), [])
            continue
        row = re.match(r"^\| `(\w+)` \| `([^`]+)` \|", line)
        if row and current is not None:
            current.append((row.group(1), row.group(2)))
    return {name: cols for name, cols in tables.items() if name in PINNED}


def test_readers_see_the_catalogue(tmp_path, real_catalogue_with_overlap):
    db = real_catalogue_with_overlap
    out = tmp_path / "export"
    run_export(db, out)
    con = connect(db, read_only=True)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in PINNED}
    uids = {r[0] for r in con.execute("SELECT uid FROM datasets").fetchall()}
    modified = dict(con.execute("SELECT uid, modified FROM datasets WHERE modified IS NOT NULL").fetchall())
    con.close()
    assert counts["datasets"] > 10000 and counts["columns"] > 50000 and counts["overlap_pairs"] > 100

    reader = duckdb.connect()
    for table, columns in PINNED.items():
        path = str(out / f"{table}.parquet")
        assert reader.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()[0] == counts[table]
        arrow = pq.read_table(path)
        assert arrow.num_rows == counts[table] and [(f.name, str(f.type)) for f in arrow.schema] == columns
        frame = pd.read_parquet(path)
        assert len(frame) == counts[table] and list(frame.columns) == [c for c, _ in columns]
        polars = pl.read_parquet(path)
        assert polars.height == counts[table] and polars.columns == [c for c, _ in columns]
    # types as each reader gives them
    datasets = str(out / "datasets.parquet")
    described = {r[0]: r[1] for r in reader.execute("DESCRIBE SELECT * FROM read_parquet(?)", [datasets]).fetchall()}
    assert described["modified"] == "TIMESTAMP WITH TIME ZONE" and described["keywords"] == "VARCHAR[]"
    assert described["row_count"] == "BIGINT"
    frame = pd.read_parquet(datasets)
    assert str(frame["modified"].dtype) == "datetime64[us, UTC]" and frame["row_count"].dtype.kind in "if"
    assert set(frame["uid"]) == uids
    polars = pl.read_parquet(datasets)
    assert polars.schema["modified"] == pl.Datetime("us", "UTC")
    assert polars.schema["keywords"] == pl.List(pl.String)
    assert polars.schema["row_count"] == pl.Int64
    sample = polars.filter(pl.col("modified").is_not_null()).head(50)
    for uid, value in zip(sample["uid"], sample["modified"]):
        assert value == modified[uid]


def test_records_partitions_are_read_as_hive(tmp_path, seattle):
    out = tmp_path / "export"
    run_export(seattle, out)
    root = str(out / "records")
    by_duckdb = duckdb.execute("SELECT portal, dataset, count(*) FROM read_parquet(?, hive_partitioning = true) "
                               "GROUP BY ALL", [f"{root}/**/*.parquet"]).fetchall()
    assert by_duckdb == [("sea", ID, 1000)]
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 1000 and set(table.column("dataset").to_pylist()) == {ID}
    frame = pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True).collect()
    assert frame.height == 1000 and frame["portal"].unique().to_list() == ["sea"]
    # the same columns as the records the harvest keeps
    kept = pq.read_table(seattle.parent / "records" / "portal=sea" / f"dataset={ID}")
    assert pq.read_table(out / "records" / "portal=sea" / f"dataset={ID}").schema.equals(kept.schema)


def test_names_from_portals_are_sanitised_in_record_paths(tmp_path):
    db = tmp_path / "c.duckdb"
    store = Store(db)
    layout = RecordsLayout.beside(db)
    hostile = [("evil/../..", "../../../etc/x"), ("sea", ".hidden"), ("sea", "a b/c\x00d")]
    for portal_id, source_id in hostile:
        folder = layout.folder(portal_id, source_id)
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"n": [1, 2]}), folder / "part-00000.parquet")
        store.con.execute("INSERT INTO record_pulls (dataset_uid, portal_id, source_id, path, row_count, "
                          "column_count, bytes, mode, pulled_at) VALUES (?, ?, ?, ?, 2, 1, ?, 'full', now())",
                          [f"{portal_id}:{source_id}", portal_id, source_id, layout.relative(portal_id, source_id),
                           (folder / "part-00000.parquet").stat().st_size])
    store.close()
    out = tmp_path / "export"
    run_export(db, out)
    manifest = json.loads((out / "manifest.json").read_text())
    paths = [f["path"] for f in manifest["files"] if f["path"].startswith("records/")]
    assert len(paths) == 3 and manifest["records"] == {"datasets": 3, "rows": 6}
    for path in paths:
        segments = path.split("/")
        assert len(segments) == 4 and all(s not in ("", ".", "..") and not s.startswith(".") for s in segments)
        assert (out / path).resolve().is_relative_to(out.resolve())
    assert sorted(paths) == sorted(f"records/portal={safe_segment(p)}/dataset={safe_segment(i)}/part-00000.parquet"
                                   for p, i in hostile)
    assert "records/portal=sea/dataset=%2Ehidden/part-00000.parquet" in paths
    assert not (tmp_path / "etc").exists()


def test_the_summary_counts_in_words_that_agree(tmp_path, seattle):
    # it said "records of 1 datasets"
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    assert re.search(r"records of 1 dataset \(\d+ rows\)", result.output), result.output


def test_a_folder_that_is_not_an_export_is_never_replaced(tmp_path, seattle):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(mine)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(tmp_path / "file")])
    assert result.exit_code == 2 and (tmp_path / "file").read_text() == "x"



def test_the_catalogues_own_records_folder_is_never_an_export(tmp_path):
    """`--out data/records` before any pull was an empty folder: the export took it, the pulls
    then wrote their folders into it, and the next export into it deleted them all (an export
    replaces its folder whole) while `record_pulls` still named them."""
    view = load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")
    with SocrataPortal([discovery_entry(view)]) as portal:
        db, result = harvest_with_records(tmp_path, "sea", "socrata", portal.url, [ID], with_records=False,
                                          extra='domain = "data.example.org"\n')
    assert result.exit_code == 0, result.output
    for out in (tmp_path / "records", tmp_path / "records" / "portal=sea"):
        result = CliRunner().invoke(cli, ["export", "--db", str(db), "--out", str(out)])
        assert result.exit_code == 2 and "records folder" in result.output, result.output
        assert not (tmp_path / "records").exists()

def test_a_folder_holding_only_an_earlier_data_json_export_takes_the_parquet_export_beside_it(tmp_path, seattle):
    """`export --out DIR --format data.json`, then `export --out DIR`: the second was refused
    (exit 2, "not empty and holds no civicat manifest.json") though DIR held nothing but the
    data.json civicat had written there, which the Parquet export keeps."""
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out), "--format", "data.json"])
    assert result.exit_code == 0, result.output
    written = (out / "data.json").read_bytes()
    summary = run_export(seattle, out)
    assert summary["parquet"]["row_counts"]["datasets"] == 1
    assert (out / "data.json").read_bytes() == written and (out / "manifest.json").is_file()
    # a data.json beside anything else is still someone's folder
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.json").write_bytes(written)
    (other / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(other)])
    assert result.exit_code == 2 and (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("refusal", ["EPERM", "EOPNOTSUPP"])
def test_an_earlier_data_json_is_kept_on_a_file_system_that_refuses_hard_links(tmp_path, seattle, monkeypatch,
                                                                               refusal):
    """The data.json an earlier export left in OUT is linked into the new export: on a file
    system without hard links (exFAT, vfat: EPERM, a USB stick; some FUSE: EOPNOTSUPP) every
    export over it failed. It is copied there."""
    import errno

    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out), "--format", "data.json"])
    assert result.exit_code == 0, result.output
    written = (out / "data.json").read_bytes()

    def refused(source, target, **kwargs):
        code = getattr(errno, refusal)
        raise OSError(code, os.strerror(code), str(source), None, str(target))

    monkeypatch.setattr(os, "link", refused)
    summary = run_export(seattle, out)
    assert summary["parquet"]["row_counts"]["datasets"] == 1
    assert (out / "data.json").read_bytes() == written and (out / "manifest.json").is_file()


def test_a_new_export_replaces_the_previous_whole_and_a_failed_one_leaves_it(tmp_path, seattle, monkeypatch):
    out = tmp_path / "export"
    run_export(seattle, out)
    (out / "data.json").write_text('{"dataset": []}')   # an earlier data.json export stays
    (out / "stale.parquet").write_text("from an older export")
    first = json.loads((out / "manifest.json").read_text())
    run_export(seattle, out)
    second = json.loads((out / "manifest.json").read_text())
    assert second["created_at"] > first["created_at"]
    assert not (out / "stale.parquet").exists() and (out / "data.json").read_text() == '{"dataset": []}'

    def broken(*args):
        raise OSError("disk full")
    monkeypatch.setattr(export, "_copy_records", broken)
    with pytest.raises(OSError, match="disk full"):
        export.export_parquet(seattle, out)
    assert json.loads((out / "manifest.json").read_text()) == second
    assert all(f["sha256"] == export.sha256_of(out / f["path"]) for f in second["files"])
    assert left_beside(out) == [] and export.versions(out)[-1] == out.resolve()


def whole_export(out: Path) -> bool:
    """OUT as a front end reads it: the manifest, then every file it lists, each its digest."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        return all(f["sha256"] == export.sha256_of(out / f["path"]) for f in manifest["files"])
    except OSError:
        return False


def test_a_reader_finds_a_whole_export_in_out_at_every_step_of_its_replacement(tmp_path, seattle, monkeypatch):
    """The export was published by two renames: OUT set aside, then the new one moved in.
    Between them OUT was missing: a front end reading it then found no file."""
    out = tmp_path / "export"
    run_export(seattle, out)
    seen = []

    def watched(step):
        def step_then_read(*args):
            done = step(*args)
            seen.append((step.__name__, whole_export(out)))
            return done
        return step_then_read
    monkeypatch.setattr(export.os, "rename", watched(export.os.rename))
    monkeypatch.setattr(export, "exchange", watched(exchange), raising=False)
    run_export(seattle, out)
    assert seen and all(whole for _, whole in seen), seen


def read_resolved(out: Path) -> tuple[dict, bool]:
    """OUT as a front end that reads several files reads it (docs/export.md): resolved once,
    then the manifest and every file it lists; (the manifest, whether each file is the one
    it lists and the manifest is unchanged at the end)."""
    folder = out.resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    whole = all(f["sha256"] == export.sha256_of(folder / f["path"]) for f in manifest["files"])
    return manifest, whole and json.loads((folder / "manifest.json").read_text()) == manifest


def test_a_reader_of_several_files_reads_one_export_while_the_next_lands(tmp_path, seattle):
    """A front end reads the manifest, then the files it lists, while the night's export lands.
    Exports were swapped into OUT itself and the previous one deleted: a reader whose reads
    straddled the swap got the new manifest, or the new files against the old manifest (or no
    file). Each export is now a folder of its own that OUT names: the folder OUT resolved to
    stays whole and unchanged until the export after next lands."""
    out = tmp_path / "export"
    run_export(seattle, out)
    folder = out.resolve()
    first = json.loads((folder / "manifest.json").read_text())
    run_export(seattle, out)                  # lands while the reader reads `folder`
    assert read_resolved(out)[0]["created_at"] > first["created_at"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == first                  # the reader's export, as it began to read it
    assert all(f["sha256"] == export.sha256_of(folder / f["path"]) for f in first["files"])
    assert read_records_of(folder) == 1000
    second = out.resolve()
    run_export(seattle, out)                  # the export after next: the first one's folder goes
    assert not folder.exists() and second.is_dir() and read_resolved(out)[1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".export.")) == \
        sorted([second.name, out.resolve().name])


def read_records_of(folder: Path) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/records/*/*/*.parquet')").fetchone()[0]


def test_readers_racing_exports_never_mix_two(tmp_path, seattle):
    """Readers in a loop while exports land one after another: each read, resolved once, is one
    whole export."""
    import threading
    out = tmp_path / "export"
    run_export(seattle, out)
    reads, done = [], threading.Event()

    def reader():
        while not done.is_set():
            try:
                reads.append(read_resolved(out))
            except (OSError, ValueError) as exc:   # a file gone, a manifest cut: no whole export either
                reads.append(({"error": repr(exc)}, False))
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(3):
            run_export(seattle, out)
    finally:
        done.set()
        thread.join()
    assert reads and all(whole for _, whole in reads), [m for m, whole in reads if not whole][:3]


@pytest.mark.parametrize("copy", ["current", "missing"])
def test_a_writer_that_starts_during_an_export_runs_and_the_export_is_the_catalogue_as_it_began(
        tmp_path, seattle, monkeypatch, copy):
    """With no writer running, the export opened the catalogue itself and kept it open to the
    end: a harvest (here a retire) that started meanwhile exited 2 ("open in process …"),
    the nightly cron harvest lost to a front end's export. The export reads the read copy, as
    the other readers do (made current first when its last writer was killed, under the writer
    lock held briefly); a writer starting as it links the records runs, and the export is the
    catalogue as it was when the export began."""
    before = tmp_path / "before"
    run_export(seattle, before)
    if copy == "missing":   # (its last writer killed before it published it)
        read_copy_path(seattle).unlink()
    config = tmp_path / "without-sea.toml"   # (sea taken out of the config: retired)
    config.write_text('[[portals]]\nid = "other"\ncity = "Other"\nkind = "ckan"\nurl = "http://127.0.0.1:9"\n')
    writer = [sys.executable, "-m", "harvester", "retire", "sea", "--db", str(seattle), "--config", str(config)]
    ran = []
    copy_records = export._copy_records

    def a_writer_starts(*args):
        ran.append(subprocess.run(writer, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO},
                                  timeout=300))
        return copy_records(*args)
    monkeypatch.setattr(export, "_copy_records", a_writer_starts)
    out = tmp_path / "export"
    run_export(seattle, out)
    [writer] = ran
    assert writer.returncode == 0, writer.stderr
    assert exported(out) == exported(before)
    with connect(seattle, read_only=True) as con:   # (what the writer wrote, which the export began without)
        assert con.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NULL").fetchone() == (0,)
    assert json.loads((out / "manifest.json").read_text())["row_counts"]["datasets"] == 1


def test_an_export_as_a_writer_starts_reads_the_copy_and_keeps_the_writer_s_open_free(tmp_path, seattle, monkeypatch):
    """A writer that has taken the lock and not yet opened the catalogue (making its read copy
    current as it starts): the export opened the catalogue itself (the copy was not current),
    and the writer's open then found it held (exit 2). The export reads the copy, as it will
    be while the writer writes."""
    from catalog.lock import WriterLock

    before = tmp_path / "before"
    run_export(seattle, before)
    os.utime(seattle)   # (the copy no longer current: a writer killed since, say)
    opened = []
    copy_records = export._copy_records

    def the_writer_opens(*args):
        opened.append(run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(seattle)!r}).close()"],
                          capture_output=True, text=True))
        return copy_records(*args)
    monkeypatch.setattr(export, "_copy_records", the_writer_opens)
    with WriterLock(seattle):   # (this process's own: a writer at its start)
        out = tmp_path / "export"
        run_export(seattle, out)
    [writer] = opened
    assert writer.returncode == 0, writer.stderr
    assert exported(out) == exported(before)


def test_a_writer_starting_while_an_export_makes_a_slow_copy_current_waits_for_it_to_the_end(tmp_path, seattle,
                                                                                              monkeypatch):
    """An export whose read copy is stale makes it current under the writer lock, held briefly: a
    writer starting then waited BRIEF_HOLD_SECONDS in all, and exited 2 behind a copy of many GB
    that was getting on. It waits as long as the copy shows progress (here a copy four times
    as long as the bound, a step at each of its chunks, of the lock's clock, which the chunks move:
    a copy's thread late by 0.5 s under load was a hung copy to a waiter of real time)."""
    import threading
    import time

    from catalog import files, lock
    from tests.catalog.test_lock import LockClock

    monkeypatch.setattr(lock, "BRIEF_HOLD_SECONDS", 0.5)
    clock = LockClock(sleeps_pass_time=False)
    monkeypatch.setattr(lock, "time", clock)
    os.utime(seattle)   # (the copy no longer current: its last writer killed, say)
    size = seattle.stat().st_size
    monkeypatch.setattr(files, "_COPY_CHUNK", size // 20 + 1)
    waited, copy_file_range = [], os.copy_file_range

    def a_writer_waits():
        try:
            with lock.WriterLock(seattle, poll_seconds=0.02):
                waited.append(("took it", time.monotonic()))
        except lock.CatalogueBeingWritten as exc:
            waited.append((str(exc), time.monotonic()))
    writer = threading.Thread(target=a_writer_waits)

    def a_slow_copy(*args):   # (a disk of 20 chunks in 2 s of the lock's clock)
        if not writer.is_alive() and not waited:
            writer.start()
        time.sleep(0.02)   # (real: each chunk's step a new time on the lock file)
        clock.passes(0.1)
        return copy_file_range(*args)
    monkeypatch.setattr(os, "copy_file_range", a_slow_copy)
    run_export(seattle, tmp_path / "export")
    copied = time.monotonic()
    writer.join(60)
    [(outcome, at)] = waited
    assert outcome == "took it" and at <= copied
    assert clock.now == pytest.approx(2.0)   # (the 20 chunks waited for)
    assert read_copy_path(seattle).read_bytes() == seattle.read_bytes()


def test_a_catalogue_without_overlap_tables_exports_them_empty(tmp_path):
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute((Path(export.__file__).parent / "migrations" / "0001_initial.sql").read_text())
    con.execute("CREATE TABLE record_pulls (portal_id VARCHAR, source_id VARCHAR, row_count BIGINT)")   # as 0004 made it
    # (the record of them civicat's migrate keeps from the first write: without it, no catalogue of civicat's)
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL)")
    con.execute("INSERT INTO schema_migrations VALUES (1, 'initial')")
    con.close()
    out = tmp_path / "export"
    manifest = export.export_parquet(db, out)
    assert manifest["row_counts"]["overlap_pairs"] == 0
    assert schema_of(out / "overlap_pairs.parquet") == PINNED["overlap_pairs"]


def test_last_seen_is_the_latest_listing_that_named_the_dataset(tmp_path):
    """An unchanged night rewrites no dataset row; the export's last_seen is still the
    latest complete listing that named the dataset, and a missing one says since when."""
    from harvester.http import HttpClient
    from harvester.pipeline import harvest
    from tests.conftest import portal_config
    from tests.portals.synth import make_socrata_entries

    with SocrataPortal(make_socrata_entries(30, domain="data.example.org"), domain="data.example.org") as portal:
        config = portal_config("city", "socrata", portal.url, domain="data.example.org", deletion_grace_days=3)
        store = Store(tmp_path / "c.duckdb")
        harvest([config], store, HttpClient(backoff_initial=0.01))
        gone = portal.entries.pop(0)["resource"]["id"]
        harvest([config], store, HttpClient(backoff_initial=0.01))
        listed_at, first_seen = store.con.execute(
            "SELECT listed_at, min(first_seen) FROM portal_listings, datasets GROUP BY ALL").fetchone()
        store.close()
    run_export(tmp_path / "c.duckdb", tmp_path / "out")
    rows = {r["uid"]: r for r in pq.read_table(tmp_path / "out" / "datasets.parquet").to_pylist()}
    assert rows[f"city:{gone}"]["missing_since"] == listed_at and rows[f"city:{gone}"]["last_seen"] == first_seen
    listed = [r for uid, r in rows.items() if uid != f"city:{gone}"]
    assert len(listed) == 29 and all(r["last_seen"] == listed_at and r["missing_since"] is None for r in listed)


def test_a_pull_whose_folder_is_gone_is_left_out_of_the_export_with_a_warning_naming_it(tmp_path, seattle, caplog):
    """`data/records` cleaned by hand: the export said "records of 0 datasets" and nothing
    of the pulls record_pulls still lists, though their rows were no longer exported."""
    layout = RecordsLayout.beside(seattle)
    folder = layout.folder("sea", ID)
    for part in folder.glob("part-*.parquet"):
        part.unlink()
    with caplog.at_level("WARNING", logger="civicat.export"):
        summary = run_export(seattle, tmp_path / "export")
    assert summary["parquet"]["records"] == {"datasets": 0, "rows": 0}
    warned = [r.getMessage() for r in caplog.records if r.name == "civicat.export"]
    assert len(warned) == 1 and f"sea:{ID}" in warned[0] and str(folder) in warned[0], warned
    assert "civicat records" in warned[0]


def test_the_manifest_counts_the_record_datasets_it_holds_not_pulls_whose_folder_is_gone(tmp_path):
    db = tmp_path / "c.duckdb"
    store = Store(db)
    layout = RecordsLayout.beside(db)
    for source_id, kept in [("aaaa-1111", True), ("bbbb-2222", False)]:
        part = layout.folder("sea", source_id) / "part-00000.parquet"
        if kept:
            part.parent.mkdir(parents=True)
            pq.write_table(pa.table({"n": [1, 2, 3]}), part)
        store.con.execute("INSERT INTO record_pulls (dataset_uid, portal_id, source_id, path, row_count, "
                          "column_count, bytes, mode, pulled_at) VALUES (?, 'sea', ?, ?, 3, 1, ?, 'full', now())",
                          [f"sea:{source_id}", source_id, layout.relative("sea", source_id),
                           part.stat().st_size if kept else 0])
    store.close()
    run_export(db, tmp_path / "export")
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["records"] == {"datasets": 1, "rows": 3}


def exported(out: Path) -> dict:
    """What an export holds, its time aside: each file's rows and digest."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {f["path"]: (f["rows"], f["sha256"]) for f in manifest["files"]}


def test_an_export_while_a_harvest_writes_is_the_export_of_the_read_copy(tmp_path, seattle, caplog):
    """`civicat export` exited 1 while any writer held the catalogue: a harvest of hours kept
    the front ends' cron export out. A harvest (a retire, an overlap run) leaves the records
    folders as its read copy describes them: the export is of the copy, said so on stderr; the
    same export as before the writer, its merge under way left out."""
    before = tmp_path / "before"
    run_export(seattle, before, "--format", "parquet", "--format", "data.json")
    for command in (["harvest"], ["retire", "sea"], ["overlap"]):
        out = tmp_path / command[0]
        with writer_under_way(seattle, *command) as writer:
            caplog.clear()
            summary = run_export(seattle, out, "--format", "parquet", "--format", "data.json")
        assert exported(out) == exported(before), command
        assert (out / "data.json").read_bytes() == (before / "data.json").read_bytes()
        assert summary["parquet"]["records"] == {"datasets": 1, "rows": 1000}
        assert (f"{seattle} is being written by process {writer.pid} (civicat {' '.join(command)}, since "
                in caplog.text and f"exporting its read copy {read_copy_path(seattle)}" in caplog.text), caplog.text


@pytest.mark.parametrize("command", [["harvest", "--records"], ["records", f"sea:{ID}"]])
def test_an_export_during_a_records_pull_is_refused_and_leaves_the_previous_one(tmp_path, seattle, command):
    """A records pull replaces records folders as it runs: the read copy beside them would name
    the previous pull's rows and profiles beside the new pull's files. Exit 1, as for any writer
    before; the previous export stands (cron exports again after the pull)."""
    out = tmp_path / "export"
    run_export(seattle, out)
    previous = exported(out)
    with writer_under_way(seattle, *command) as writer:
        result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"is being written by process {writer.pid} (civicat {' '.join(command)}, since " in result.output
    assert "a records pull replaces records folders as it runs" in result.output
    assert exported(out) == previous


def test_an_export_in_another_pid_namespace_than_a_records_pull_s_is_refused_as_during_any_records_pull(
        tmp_path, seattle):
    """A records pull outside a container, the export in it (a PID namespace of its own, as `unshare
    -Urpf` makes one): /proc/locks there leaves the pull's lock out, and the record names a PID of the
    namespace outside. The export took it for no writer (main): it read the copy beside folders being
    replaced (or met the catalogue held). Now refused as during any records pull, the pull said as a
    process whose PID is not known here, its record's command and PID given; the previous export stands."""
    from tests.conftest import pid_namespace_or_skip

    unshare = pid_namespace_or_skip("tests/catalog/test_lock.py reads a recorded /proc/locks instead")
    out = tmp_path / "export"
    run_export(seattle, out)
    previous = exported(out)
    with writer_under_way(seattle, "records", f"sea:{ID}") as writer:
        result = subprocess.run([unshare, "-Urpf", "--mount-proc", sys.executable, "-m", "harvester", "export",
                                 "--db", str(seattle), "--out", str(out)], capture_output=True, text=True,
                                timeout=300, env={**os.environ, "PYTHONPATH": REPO})
    said = " ".join(result.stderr.split())
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "is being written by a process whose PID is not known here" in said, said
    assert f"names process {writer.pid} (civicat records sea:{ID}, since " in said, said
    assert "a records pull replaces records folders as it runs" in said, said
    assert exported(out) == previous


def test_export_wait_waits_out_a_records_pull_and_exits_1_naming_it_when_the_wait_runs_out(tmp_path, seattle):
    """`civicat export --wait [SECONDS]`: a records pull keeps an export out (exit 1 at once);
    with --wait the export says once that it waits for that pull, and exports once it ends; a
    pull still running at the end of the wait: exit 1 naming it, the previous export kept."""
    out = tmp_path / "export"
    run_export(seattle, out)
    previous = exported(out)
    export_command = [sys.executable, "-m", "harvester", "export", "--db", str(seattle), "--out", str(out)]
    with writer_under_way(seattle, "records", f"sea:{ID}") as writer:
        ran_out = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out), "--wait", "0.5"])
        waiting = subprocess.Popen([*export_command, "--wait"], stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": REPO})
        said = line_of(waiting, "stderr")
    assert ran_out.exit_code == 1, ran_out.output
    assert (f"is being written by process {writer.pid} (civicat records sea:{ID}, since " in ran_out.output
            and "a records pull replaces records folders as it runs" in ran_out.output
            and ran_out.output.rstrip().endswith("(still so at the end of --wait 0.5)")), ran_out.output
    assert exported(out) == previous
    assert f"process {writer.pid} (civicat records sea:{ID}" in said and "waiting for it to end (--wait: " in said, said
    assert ended(waiting, 300) == 0, waiting.stderr.read()   # (the pull ended: the writer killed)
    assert waiting.stderr.read().count("waiting for it to end") == 0   # (said once)
    assert json.loads((out / "manifest.json").read_text())["records"] == {"datasets": 1, "rows": 1000}


def test_an_export_of_the_read_copy_itself_writes_nothing_beside_it_nor_puts_a_pull_under_way_right(
        tmp_path, seattle):
    """`export --db data/civicat.read.duckdb` (the copy analysts are told to open) took it for a
    catalogue whose own read copy was stale: under the copy's lock, which no writer holds, it
    wrote a copy of it (`civicat.read.read.duckdb`), and put right the records pull under way
    on the catalogue (the records folders are shared): the pull's record of the publish it
    was making was removed (killed then, the folder and the catalogue disagreed again), or
    written into the read copy by a writable open. The read copy is read as it is."""
    from catalog.records import Measured, intend_record

    copy = read_copy_path(seattle)
    copy_bytes = copy.read_bytes()
    layout = RecordsLayout.beside(seattle)
    ready = layout.staging_root / "a-pull-under-way"
    ready.mkdir(parents=True)
    pq.write_table(pa.table({"n": [1, 2, 3]}), ready / "part-00000.parquet")
    with writer_under_way(seattle, "records", f"sea:{ID}"):
        intent = intend_record(layout, ready, uid=f"sea:{ID}", portal_id="sea", source_id=ID, mode="full",
                               watermark=None, page_size=None, thinning=None, run_id="r", now=datetime.now(UTC),
                               seconds=1.0, measured=Measured([], 3, 100), kinds={})   # (it publishes next)
        refused = CliRunner().invoke(cli, ["export", "--db", str(copy), "--out", str(tmp_path / "export")])
        assert refused.exit_code == 1 and intent.exists(), refused.output   # (during the pull: below)
    run_export(copy, tmp_path / "export")   # (the pull killed as it published: its intent left for a writer)
    assert intent.exists()
    assert copy.read_bytes() == copy_bytes
    assert list(seattle.parent.glob(f"{copy.stem}*")) == [copy]   # (no copy of it, its lock, its WAL)


def test_an_export_of_the_read_copy_itself_during_a_records_pull_of_its_catalogue_is_refused_or_waits(
        tmp_path, seattle):
    """`export --db data/civicat.read.duckdb` read the copy as it is, beside the records folders
    a pull of its catalogue was replacing: not refused, its folders not checked (a new pull's
    parts beside the copy's profiles). Refused as an export of the catalogue is (exit 1, naming
    the pull; `--wait` waits for it), and its folders are checked to be the pulls it describes."""
    copy = read_copy_path(seattle)
    out = tmp_path / "export"
    run_export(copy, out)
    previous = exported(out)
    with writer_under_way(seattle, "records", f"sea:{ID}") as writer:
        refused = CliRunner().invoke(cli, ["export", "--db", str(copy), "--out", str(out)])
        waited = CliRunner().invoke(cli, ["export", "--db", str(copy), "--out", str(out), "--wait", "0.5"])
    for result in (refused, waited):
        assert result.exit_code == 1, result.output
        assert (f"{copy} is the read copy of {seattle}, which is being written by process {writer.pid} (civicat "
                f"records sea:{ID}, since " in result.output), result.output
        assert "a records pull replaces records folders as it runs" in result.output
    assert waited.output.rstrip().endswith("(still so at the end of --wait 0.5)")
    assert exported(out) == previous
    # a pull that replaced a folder since the copy (the copy not published after it: the disk full)
    folder = RecordsLayout.beside(seattle).folder("sea", ID)
    os.utime(folder, ns=(copy.stat().st_mtime_ns + 10**9,) * 2)
    changed = CliRunner().invoke(cli, ["export", "--db", str(copy), "--out", str(out)])
    assert changed.exit_code == 1 and f"the records of sea:{ID} in {folder} are not the pull" in changed.output, \
        changed.output
    assert exported(out) == previous


@pytest.mark.parametrize("replaced", ["before", "as-it-is-linked"])
def test_records_replaced_since_the_read_copy_fail_its_export_never_mixed_with_it(tmp_path, seattle, monkeypatch,
                                                                                   replaced):
    """The export of the read copy links the live records folders: a records pull that started
    as a harvest ended (its copy published) may replace one as it is linked; a copy that failed
    (the disk full) is older than the folders. Their parts would be exported beside the copy's
    record_pulls and profiles of another pull: each folder is checked to be the pull the copy
    describes (rows and bytes), else the export fails and the previous one stands."""
    out = tmp_path / "export"
    run_export(seattle, out)
    previous = exported(out)
    folder = RecordsLayout.beside(seattle).folder("sea", ID)
    [part] = folder.glob("part-*.parquet")

    def replace_the_folder():   # the next pull's folder: the rows the portal serves now
        with duckdb.connect() as con:
            con.execute(f"COPY (SELECT * FROM read_parquet('{part}') LIMIT 990) TO '{folder}/next.parquet'")
        if replaced == "before":
            os.replace(folder / "next.parquet", part)
        else:   # (parts named otherwise: the one listed is gone)
            os.replace(folder / "next.parquet", folder / "part-00001.parquet")
            part.unlink()

    if replaced == "before":
        replace_the_folder()
    else:   # after its parts were listed
        link = os.link
        monkeypatch.setattr(export.os, "link", lambda *args: (replace_the_folder(), link(*args)))
    with writer_under_way(seattle, "harvest"):
        result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"the records of sea:{ID} in {folder} are not the pull the read copy describes (1000 rows" in result.output
    assert exported(out) == previous
    assert left_beside(out) == []


def test_a_records_pull_that_ended_as_the_export_ran_is_said_so_not_taken_for_a_hand_s_change(tmp_path, seattle,
                                                                                               monkeypatch):
    """A records pull that replaced a folder while the export linked it, and ended (its read copy
    published) before the export looked for one running: the export told to pull the dataset
    again with --full, or to put the folder back, as if a hand had changed it. A read copy
    published since the one the export read says a writer ended meanwhile: export again."""
    out = tmp_path / "export"
    run_export(seattle, out)
    previous = exported(out)
    folder = RecordsLayout.beside(seattle).folder("sea", ID)
    [part] = folder.glob("part-*.parquet")
    copy = read_copy_path(seattle)

    def a_pull_replaces_the_folder_and_ends():
        with duckdb.connect() as con:
            con.execute(f"COPY (SELECT * FROM read_parquet('{part}') LIMIT 990) TO '{folder}/next.parquet'")
        os.replace(folder / "next.parquet", part)
        later = copy.stat().st_mtime_ns + 10**9
        os.utime(copy, ns=(later, later))   # (its writer's read copy, published as it ended)
    link = os.link
    monkeypatch.setattr(export.os, "link", lambda *args: (a_pull_replaces_the_folder_and_ends(), link(*args)))
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out)])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert f"the records of sea:{ID} in {folder} are not the pull the read copy describes (1000 rows" in said, said
    assert "a records pull replaced them as the export ran, and has ended: export again" in said, said
    assert "changed outside civicat" not in said and "--full" not in said, said
    assert exported(out) == previous


def test_a_records_folder_changed_by_hand_fails_the_export_naming_what_does_not_match_and_ends_a_wait(tmp_path,
                                                                                                       seattle):
    """A records folder edited by hand, no writer running: `export --wait` took it for a pull
    under way and tried again every 2 seconds to the end of its wait (an hour by default). A
    few tries, then exit 1 naming the folder and what does not match; at once without --wait."""
    out = tmp_path / "export"
    run_export(seattle, out)
    previous = exported(out)
    folder = RecordsLayout.beside(seattle).folder("sea", ID)
    [part] = folder.glob("part-*.parquet")
    expected_bytes = part.stat().st_size
    with duckdb.connect() as con:   # (990 of its 1000 rows kept)
        con.execute(f"COPY (SELECT * FROM read_parquet('{part}') LIMIT 990) TO '{folder}/edited.parquet'")
    os.replace(folder / "edited.parquet", part)
    at_once = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out)])
    # (a wait long enough for the tries to end it: 30 s ran out after two on a loaded machine, each try an export)
    waited = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out), "--wait", "600"])
    for result in (at_once, waited):
        assert result.exit_code == 1, result.output
        assert (f"the records of sea:{ID} in {folder} are not the pull the read copy describes (1000 rows, "
                f"{expected_bytes} bytes): its parts hold rows 990 and bytes {part.stat().st_size}; no records pull "
                "is running") in result.output, result.output
        assert (f"the folder was changed outside civicat? Pull the dataset again (civicat records sea:{ID} --full), "
                "or put its folder back") in result.output
    assert "(3 tries)" in waited.output and "still so at the end of --wait" not in waited.output, waited.output
    assert exported(out) == previous


def _written_as_large_as(table: pa.Table, size: int, path: Path) -> None:
    """`table` as Parquet at `path`, `size` bytes: smaller than a pull writes it (zstd at its
    slowest level, no statistics), then padded in its footer's key-value metadata."""
    from harvester.records import dictionary_columns

    pad = 0
    for _ in range(10):
        with pq.ParquetWriter(path, table.schema, compression="zstd", compression_level=22, store_schema=False,
                              use_dictionary=dictionary_columns(table), write_statistics=False) as writer:
            writer.write_table(table)
            writer.add_key_value_metadata({"pad": "x" * pad})
        if path.stat().st_size == size:
            return
        pad = max(0, pad + size - path.stat().st_size)
    raise AssertionError(f"{path} not written in {size} bytes")


def test_records_replaced_since_the_read_copy_by_a_pull_of_as_many_rows_and_bytes_fail_its_export(tmp_path, seattle):
    """Rows and bytes do not tell two pulls apart: the next pull of a dataset whose rows were
    edited in place ('OPEN' to 'SHUT') may write as many bytes. A folder published since the read
    copy was made is not the pull the copy describes, whatever its size: the export fails, the
    previous one stands. (r24: exported, its parts beside the copy's profiles of the pull before.)"""
    out = tmp_path / "export"
    run_export(seattle, out)
    previous = exported(out)
    folder = RecordsLayout.beside(seattle).folder("sea", ID)
    [part] = folder.glob("part-*.parquet")
    table = pq.read_table(part)
    column = next(field.name for field in table.schema if pa.types.is_string(field.type) and field.name != ":id")
    values = table[column].to_pylist()
    edited = next(i for i, value in enumerate(values) if value)
    values[edited] = "X" * len(values[edited])
    layout = RecordsLayout.beside(seattle)
    ready = layout.staging("sea", ID) / "ready"   # the next pull, published as a pull publishes it
    ready.mkdir(parents=True)
    _written_as_large_as(table.set_column(table.schema.get_field_index(column), column, pa.array(values)),
                         part.stat().st_size, ready / part.name)
    layout.publish(ready, "sea", ID)
    assert pq.read_metadata(folder / part.name).num_rows == 1000   # as many rows and bytes as the copy names
    with writer_under_way(seattle, "harvest"):
        result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"the records of sea:{ID} in {folder} are not the pull the read copy describes" in result.output
    assert exported(out) == previous


def test_records_copied_where_hard_links_are_refused_are_not_taken_for_a_change_after_the_read_copy(
        tmp_path, monkeypatch):
    """On a file system without hard links (exFAT, vfat: EPERM) a pull copies what it would link
    (`link_or_copy`: parts packed; `_linked`: the folder to swap in), and a copy takes the time it
    was made. The export's check compares the records folder's time (not its files') with the read
    copy's, and a pull writes the folder it publishes, copies included, before the catalogue
    records it: the export of the read copy passes, full pull and incremental alike."""
    import errno

    import harvester.records

    def refused(source, target, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(source), None, str(target))

    monkeypatch.setattr(os, "link", refused)
    monkeypatch.setattr(harvester.records, "PART_ROWS", 300)   # (parts closed at their rows: copied as packed,
    monkeypatch.setattr(harvester.records, "PART_SECONDS", 0)  # between parts closed by time: joined)
    view = load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")
    rows = load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json")
    folder = RecordsLayout(tmp_path / "records").folder("sea", ID)
    with SocrataPortal([discovery_entry(view)], records={ID: SodaTable.from_rows(rows)}) as portal:
        for pull in ("full", "incremental"):
            db, result = harvest_with_records(tmp_path, "sea", "socrata", portal.url, [ID],
                                              extra='domain = "data.example.org"\n')
            assert result.exit_code == 0, result.output
            assert all(part.stat().st_nlink == 1 for part in folder.glob("*.parquet"))   # (copies, not links)
            with duckdb.connect(str(db), read_only=True) as con:
                assert con.execute("SELECT mode, row_count FROM record_pulls").fetchone() == (pull, 1000)
            summary = run_export(db, tmp_path / f"export-{pull}")   # (the read copy, as a front end's cron reads it)
            assert summary["parquet"]["records"] == {"datasets": 1, "rows": 1000}
    with writer_under_way(db, "harvest"):   # (and beside a writer: its stand-in marks every dataset deleted)
        summary = run_export(db, tmp_path / "export-beside-a-writer")
    assert summary["parquet"]["records"] == {"datasets": 1, "rows": 1000}


def test_an_export_onto_a_file_system_without_symbolic_links_is_swapped_into_out(tmp_path, seattle, monkeypatch,
                                                                                  caplog):
    """OUT on a file system that makes no symbolic links (exFAT, vfat, some FUSE and SMB mounts:
    symlink(2) answers EPERM) cannot be a link to its export's own folder: every export there
    failed, its version folder left beside OUT. The export is swapped into OUT itself, as before
    version folders (a reader of several files may then mix two exports: said in a warning)."""
    def refused(source, target, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(target))
    monkeypatch.setattr(os, "symlink", refused)
    out = tmp_path / "export"
    run_export(seattle, out)
    first = json.loads((out / "manifest.json").read_text())
    run_export(seattle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not out.is_symlink() and out.is_dir() and manifest["created_at"] > first["created_at"]
    assert all(f["sha256"] == export.sha256_of(out / f["path"]) for f in manifest["files"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".export")) == []
    assert any("no symbolic links" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_clock_stepping_back_between_exports_never_prunes_the_export_a_reader_resolved(tmp_path, seattle,
                                                                                        monkeypatch):
    """Version folders were ordered by the time in their names: after the clock stepped back (NTP,
    a VM restored) by more than the time between two exports, the new export was taken for the
    oldest and the one just before it, which a reader may have resolved, was pruned as it landed.
    Ordered by a number each export takes above the highest beside OUT, whatever the clock says,
    the previous export stays until the one after next, and an export of an older civicat (named
    by its time alone) counts as older than every numbered one."""
    out = tmp_path / "export"
    run_export(seattle, out)
    first = out.resolve()
    old_style = first.with_name(f".export{export.VERSION}20991231T235959000000Z-0123abcd")   # (an older civicat's)
    first.rename(old_style)
    (tmp_path / "export").unlink()
    (tmp_path / "export").symlink_to(old_style.name)
    now = datetime.now(UTC)

    class SteppingBack(datetime):
        back = 0

        @classmethod
        def now(cls, tz=None):
            return now - timedelta(hours=cls.back)
    monkeypatch.setattr(export, "datetime", SteppingBack)
    resolved = [old_style]
    for back in (1, 5, 3, 24):   # hours back from now: each export's clock earlier than the one before
        SteppingBack.back = back
        run_export(seattle, out)
        resolved.append(out.resolve())
        assert resolved[-1] != resolved[-2] and whole_export(resolved[-2]), back   # the reader's, kept whole
        assert export.versions(out) == resolved[-2:] and left_beside(out) == [], back
        assert json.loads((out / "manifest.json").read_text())["created_at"].startswith(
            (now - timedelta(hours=back)).strftime("%Y-%m-%dT%H"))
    assert [export.version_number(v) for v in resolved] == [0, 1, 2, 3, 4]


def test_an_export_making_the_copy_current_copies_no_file_put_in_the_catalogue_s_place_after_its_checks(
        tmp_path, seattle, monkeypatch, caplog):
    """An export whose read copy is stale makes it current (catalog.export._copy_made_current): under the
    writer lock it checks the file is a catalogue and its folder its own, then puts it right and publishes its
    copy. On main those two read the path again: a file another program renamed over the catalogue after the
    checks (a real process here) was published as the catalogue's read copy, which every reader then read as
    the catalogue. Now they act only on the file checked (its stat before the checks): the previous copy kept
    byte for byte, said; the export's own open then meets that file as it is (refused: no catalogue)."""
    from tests.harvester.test_cli_one_catalogue_a_folder import PUTS_ITS_FILE_THERE

    os.utime(seattle)   # (the copy no longer current: its last writer killed, say)
    copy = read_copy_path(seattle)
    kept = copy.read_bytes()
    checked, ran = export.why_not_its_folder, []

    def checked_then_replaced(*args):
        why = checked(*args)
        done = subprocess.run([sys.executable, "-c", PUTS_ITS_FILE_THERE, str(seattle)], capture_output=True,
                              text=True, timeout=120)
        ran.append((done.returncode, done.stdout.strip(), done.stderr))
        return why

    monkeypatch.setattr(export, "why_not_its_folder", checked_then_replaced)
    result = CliRunner().invoke(cli, ["export", "--db", str(seattle), "--out", str(tmp_path / "export")])
    assert ran == [(0, "replaced", "")], ran
    assert copy.read_bytes() == kept   # (main: a copy of the other program's file)
    assert (f"export: the read copy of {seattle} was not made current ({seattle} was replaced by another file after "
            "this run checked it was the catalogue: nothing written)") in " ".join(caplog.text.split())
    assert result.exit_code == 2 and "is a DuckDB database but no civicat catalogue" in result.output, result.output
    with duckdb.connect(str(seattle), read_only=True) as con:
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("results",)]
