"""The records folder: names from portals never leave it; publishing replaces a dataset
whole; profiles from DuckDB over the Parquet (checked against the statistics read as before
session 28, on real records and a wide dataset)."""
import os
from pathlib import Path
from tests.children import line_of, run

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.records import EXACT_STATISTICS, NUMERIC, RecordsLayout, UnsafePath, profile_columns, safe_segment
from harvester.records import Conversion
from tests.real_records import boston_requests, soda_911


def two_versions_staged(tmp_path) -> RecordsLayout:
    """A records root in tmp_path, and two pulls of a dataset ready to publish: ready1 and
    ready2, a part each whose `v` is 1 or 2."""
    for version in (1, 2):
        ready = tmp_path / f"ready{version}"
        ready.mkdir()
        pq.write_table(pa.table({"v": [version]}), ready / "part-00000.parquet")
    return RecordsLayout(tmp_path / "records")


def test_distinct_names_stay_distinct():
    names = ["a/b", "a%2Fb", "a_b", "a b", "A b", "a" * 300, "a" * 301]
    assert len({safe_segment(n) for n in names}) == len(names)
    assert safe_segment("3k2p-39jp") == "3k2p-39jp" and safe_segment("abc_0.x") == "abc_0.x"


KEYED_SOURCE_IDS = [
    "https://data.city.example/api/views/parks?id=7&token=k-one",   # a key last
    "https://data.city.example/api/views/parks?token=k-one&id=7",   # a key before another parameter
    "https://u:pa55@data.city.example/x?api_key=k-two&f=json",   # a password before the host, and a key
    ".hidden?token=k-one",   # (safe_segment's leading dot)
    "https://data.city.example/" + "very-long-path/" * 12 + "?token=k-one",   # cut
    "https://data.city.example/x?token=k-" + "é" * 80,   # a key past the length limit
]


@pytest.mark.parametrize("source_id", KEYED_SOURCE_IDS)
def test_the_folder_of_a_source_id_holding_a_key_is_named_without_it_and_apart_from_another_key(tmp_path, source_id):
    """Until session 46 the folder's name was safe_segment(source_id), the key in it (`ls`, `du`, a backup's
    index). Now the id redacted and a digest keyed with the catalogue's id: another key, another folder."""
    from hashlib import sha256

    from catalog.records import MAX_SEGMENT

    layout = RecordsLayout(tmp_path / "records", "a catalogue's id")
    name = layout.segment(source_id)
    assert "k-" not in name and "pa55" not in name and not name.startswith(".")
    assert "REDACTED" in name or len(name) == MAX_SEGMENT   # (else cut before it)
    assert len(name) <= MAX_SEGMENT and all(c.isascii() and (c.isalnum() or c in "%_.-~") for c in name)
    assert name != layout.segment(source_id.replace("k-", "k-x"))
    assert name == RecordsLayout(tmp_path / "elsewhere", "a catalogue's id").segment(source_id)   # (a copy: alike)
    digest = name.rpartition("~")[2]
    assert digest != RecordsLayout(tmp_path, "another id").segment(source_id).rpartition("~")[2]
    assert digest not in sha256(source_id.encode()).hexdigest()   # (a plain digest: a test of a guessed key)
    folder = layout.folder("p", source_id)
    assert folder.parent.parent == layout.root and folder.name == f"dataset={name}"


def test_a_source_id_holding_no_key_and_a_layout_without_the_catalogues_id_name_folders_as_before(tmp_path):
    keyed = KEYED_SOURCE_IDS[0]
    assert RecordsLayout(tmp_path, "id").segment("3k2p-39jp") == "3k2p-39jp"
    assert RecordsLayout(tmp_path, "id").segment("a b?x=1") == safe_segment("a b?x=1")
    assert RecordsLayout(tmp_path).segment(keyed) == safe_segment(keyed)   # (an export's: its uids redacted)


def test_a_folder_named_with_its_key_before_is_found_until_it_is_renamed_published_and_staged(tmp_path):
    layout = RecordsLayout(tmp_path / "records", "id")
    keyed = KEYED_SOURCE_IDS[1]
    for base in (layout.root, layout.staging_root):
        (base / layout.relative_before("p", keyed) / "parts").mkdir(parents=True)
    assert layout.folder("p", keyed) == layout.root / layout.relative_before("p", keyed)
    assert layout.where("p", keyed) == layout.relative_before("p", keyed)
    assert layout.rename_keyed([("p", keyed), ("p", "plain")]) == [("p", keyed)]
    assert layout.folder("p", keyed) == layout.root / layout.relative("p", keyed) and (
        layout.folder("p", keyed) / "parts").is_dir()
    assert (layout.staging("p", keyed) / "parts").is_dir()
    assert not [p for p in tmp_path.rglob("*") if "k-one" in p.name]
    assert layout.rename_keyed([("p", keyed)]) == []   # (once)


def test_a_keyed_folder_is_found_and_renamed_when_another_civicat_redacts_its_id_otherwise(tmp_path, monkeypatch):
    """A keyed source id's folder is named by the id as `redacted` gives it, and redacting changes from one
    civicat to the next (session 45 ran a query key through its `#`; a secret's name added to SECRET_WORDS
    redacts one more parameter). Named by the new rules, the folder was not found: an export left its records
    out ("holds no part"), the next pull read them all again and published them beside it, which stayed. The
    digest ending the name is of the id itself: the folder is found by it, and renamed at the next pull."""
    import catalog.links

    layout = RecordsLayout(tmp_path / "records", "id")
    keyed = "https://data.city.example/x?apikey=k-one&session=s-one"
    for base in (layout.root, layout.staging_root):
        (base / layout.relative("p", keyed) / "parts").mkdir(parents=True)
    named = layout.folder("p", keyed)
    assert "s-one" in named.name and "k-one" not in named.name
    redacted = catalog.links.redacted
    # a later civicat that takes `session` for a secret too
    monkeypatch.setattr(catalog.links, "redacted", lambda text: redacted(text).replace("s-one", "REDACTED"))
    assert layout.relative("p", keyed) != named.relative_to(layout.root).as_posix()
    assert layout.folder("p", keyed) == named   # (r46's k46: the new name, no such folder)
    assert layout.rename_keyed([("p", keyed)]) == [("p", keyed)]
    assert not named.exists() and "s-one" not in layout.folder("p", keyed).name
    assert layout.folder("p", keyed) == layout.root / layout.relative("p", keyed)
    assert (layout.folder("p", keyed) / "parts").is_dir() and (layout.staging("p", keyed) / "parts").is_dir()
    assert layout.rename_keyed([("p", keyed)]) == []   # (once)
    # one that no longer takes the id for keyed names it by the id made safe, as any other
    renamed = layout.folder("p", keyed)
    monkeypatch.setattr(catalog.links, "redacted", lambda text: text)
    assert layout.folder("p", keyed) == renamed
    assert layout.rename_keyed([("p", keyed)]) == [("p", keyed)]
    assert layout.folder("p", keyed).name == f"dataset={safe_segment(keyed)}" and not renamed.exists()
    assert (layout.staging("p", keyed) / "parts").is_dir()


def test_a_folder_named_with_its_key_beside_one_of_the_new_name_is_left_and_said_without_the_key(tmp_path, caplog):
    layout = RecordsLayout(tmp_path / "records", "id")
    keyed = KEYED_SOURCE_IDS[1]
    for relative in (layout.relative_before("p", keyed), layout.relative("p", keyed)):
        (layout.root / relative).mkdir(parents=True)
    assert layout.rename_keyed([("p", keyed)]) == []
    assert (layout.root / layout.relative_before("p", keyed)).is_dir()   # (a hand made both: neither removed)
    assert layout.folder("p", keyed) == layout.root / layout.relative("p", keyed)
    assert "left beside" in caplog.text and "k-one" not in caplog.text


def test_empty_names_are_refused(tmp_path):
    with pytest.raises(UnsafePath):
        RecordsLayout(tmp_path).folder("p", "")


def test_publish_replaces_the_whole_folder(tmp_path):
    layout = RecordsLayout(tmp_path / "records")
    for version, files in ((1, ["part-00000.parquet", "part-00001.parquet"]), (2, ["part-00000.parquet"])):
        ready = tmp_path / f"ready{version}"
        ready.mkdir()
        for name in files:
            pq.write_table(pa.table({"v": [version]}), ready / name)
        layout.publish(ready, "p", "d")
    folder = layout.folder("p", "d")
    assert sorted(os.listdir(folder)) == ["part-00000.parquet"]
    assert pq.read_table(folder)["v"].to_pylist() == [2]
    assert not any(layout.staging_root.glob("retired-*"))


def test_profiles_from_statistics_and_one_scan(tmp_path):
    table = pa.table({"n": pa.array([3, None, -12, 7], pa.int64()), "x": [1.5, 2.5, None, -0.5],
                      "t": ["b", "a", "b", None], "when": pa.array([1, 2, None, 4], pa.timestamp("s"))})
    pq.write_table(table.slice(0, 2), tmp_path / "part-0.parquet")
    pq.write_table(table.slice(2), tmp_path / "part-1.parquet", write_statistics=False)  # no stats: scanned
    profiles = {p["column_name"]: p for p in profile_columns(duckdb.connect(), str(tmp_path / "*.parquet"))}
    assert {k: profiles["n"][k] for k in ("type", "row_count", "null_count", "min_value", "max_value")} == \
        {"type": "BIGINT", "row_count": 4, "null_count": 1, "min_value": "-12", "max_value": "7"}
    assert (profiles["x"]["min_value"], profiles["x"]["max_value"], profiles["x"]["null_count"]) == ("-0.5", "2.5", 1)
    assert profiles["t"]["top_values"] == ["b", "a"] and profiles["t"]["distinct_count"] == 2
    assert profiles["when"]["min_value"].startswith("1970-01-01 00:00:01")


def test_profile_min_max_compare_numbers_as_numbers(tmp_path):
    pq.write_table(pa.table({"n": pa.array([9, 10], pa.int64())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"n": pa.array([100, -5], pa.int64())}), tmp_path / "b.parquet")
    profile = profile_columns(duckdb.connect(), str(tmp_path / "*.parquet"))[0]
    assert (profile["min_value"], profile["max_value"]) == ("-5", "100")


def test_a_zero_the_parquet_statistics_write_as_minus_zero_is_profiled_as_the_zero_the_rows_hold(tmp_path):
    """Parquet writers store a least value of 0.0 as -0.0 in the statistics (the format asks it,
    the sign of a zero being unknown there): a rate of 0, 1/3, ... was profiled from -0.0."""
    pq.write_table(pa.table({"rate": [0.0, 1 / 3, 2.5], "low": [-1.5, -0.25, 0.0]}), tmp_path / "a.parquet")
    profiles = {p["column_name"]: p for p in profile_columns(duckdb.connect(), str(tmp_path / "*.parquet"))}
    assert (profiles["rate"]["min_value"], profiles["rate"]["max_value"]) == ("0.0", "2.5")
    assert (profiles["low"]["min_value"], profiles["low"]["max_value"]) == ("-1.5", "0.0")


def whole_folder_statistics(con, glob: str, kinds: dict[str, str]) -> dict[str, list]:
    """The profile's statistics as read before session 28 (`catalog.records.part_statistics`
    reads them a part at a time): one `parquet_metadata` of the whole folder, every column
    chunk's at once, min and max taken over all of them."""
    stats = {}
    for name, nulls, exact, lows, highs in con.execute(f"""
            SELECT path_in_schema, sum(stats_null_count), bool_and({EXACT_STATISTICS}),
                   list(stats_min_value) FILTER (WHERE stats_min_value IS NOT NULL),
                   list(stats_max_value) FILTER (WHERE stats_max_value IS NOT NULL)
            FROM parquet_metadata(?) GROUP BY path_in_schema""", [glob]).fetchall():
        number = (lambda v: float(v)) if kinds.get(name, "").startswith(NUMERIC) else (lambda v: v)
        stats[name] = [nulls, exact, min(lows, key=number) if lows else None, max(highs, key=number) if highs else None]
    return stats


def wide_table(rows: int, columns: int) -> pa.Table:
    """`columns` columns of the types a pull writes, in turn: integers (some negative, some
    null), numbers, texts of a few values, distinct texts, timestamps, dates, booleans, and a
    column of nulls only."""
    kinds = [lambda k: pa.array([None if i % 7 == k % 7 else (i * (k + 3)) % 1001 - 300 for i in range(rows)], pa.int64()),
             lambda k: pa.array([None if i % 5 == 0 else (i - rows / 2) / (k + 1) for i in range(rows)], pa.float64()),
             lambda k: pa.array([None if i % 11 == 0 else f"value {(i * k) % 9}" for i in range(rows)]),
             lambda k: pa.array([f"row {i} of column {k}" for i in range(rows)]),
             lambda k: pa.array([None if i % 3 == 0 else 1_700_000_000_000_000 + i * k * 3_600_000_000
                                 for i in range(rows)], pa.timestamp("us", tz="UTC")),
             lambda k: pa.array([None if i % 4 == 0 else 19_000 + (i * k) % 400 for i in range(rows)], pa.date32()),
             lambda k: pa.array([None if i % 6 == 0 else (i + k) % 2 == 0 for i in range(rows)]),
             lambda k: pa.nulls(rows, pa.string())]
    return pa.table({f"c{k}": kinds[k % len(kinds)](k) for k in range(columns)})


def profiled_parts(tmp_path, real) -> str:
    """Parts of the rows `real` gives, as a pull writes them (row groups of a few hundred rows),
    one of them without statistics for some columns (those columns are scanned instead)."""
    if real == "wide":
        table = wide_table(1200, 300)
    else:
        _, fields, rows = real()
        table = Conversion(fields).table_from_rows(rows)
    thirds = table.num_rows // 3
    for number, start in enumerate(range(0, table.num_rows, thirds)):
        part = table.slice(start, thirds)
        statistics = True if number != 1 else table.column_names[::3]
        pq.write_table(part, tmp_path / f"part-{number:05d}.parquet", compression="zstd", row_group_size=170,
                       write_statistics=statistics)
    return str(tmp_path / "*.parquet")


@pytest.mark.parametrize("real", [soda_911, boston_requests, "wide"], ids=["socrata", "open311", "wide"])
def test_statistics_read_a_part_at_a_time_give_the_profiles_read_all_at_once_gave(tmp_path, real):
    """The profile read `parquet_metadata` of every column chunk of the folder at once (510 MB
    for 100,000 rows of 1,000 columns, growing with the rows): now a part at a time, folded
    into running figures; the profiles are the same, on real records and on 300 columns of
    every type a pull writes, numbers compared as numbers across parts."""
    glob = profiled_parts(tmp_path, real)
    with duckdb.connect() as con:
        profiles = profile_columns(con, glob)
        assert profiles == profile_columns(con, glob, statistics=whole_folder_statistics)
    assert len(profiles) == (300 if real == "wide" else len(real()[1]))
    assert any(p["min_value"] is not None and p["null_count"] for p in profiles)


def test_a_scan_of_a_pull_s_parquet_keeps_none_of_it_in_duckdb_s_cache(tmp_path):
    """DuckDB caches the files it reads (its external file cache), which a scan of a pull's
    Parquet never reads twice: a profile of 1,000 columns (a scan a PROFILE_COLUMNS of them)
    took its process to 493 MB with the cache, 261 MB without."""
    from catalog.records import scratch_duckdb

    pq.write_table(pa.table({"t": [f"value {i}" for i in range(20_000)]}), tmp_path / "part-00000.parquet")
    with scratch_duckdb("128MB") as con:
        assert con.execute("SELECT count(DISTINCT t) FROM read_parquet(?)", [str(tmp_path / "*.parquet")]).fetchone() == (20_000,)
        assert con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
                           "WHERE tag = 'EXTERNAL_FILE_CACHE'").fetchone() == (0,)


def test_parquet_types_in_the_shared_vocabulary():
    from catalog.records import vocabulary_type

    assert [vocabulary_type(t) for t in ("VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "DECIMAL(18,3)", "BOOLEAN", "DATE",
                                         "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "BLOB", "VARCHAR[]")] == [
        "text", "integer", "integer", "number", "number", "boolean", "date", "datetime", "datetime", "other", "other"]


def test_pulls_of_portals_harvested_in_parallel_record_themselves_without_conflict(tmp_path):
    # each pull redefined the records() macro inside its own transaction: two portals'
    # pulls finishing together failed one with "Catalog write-write conflict on alter"
    import threading
    from datetime import UTC, datetime

    from catalog.records import record_pull
    from catalog.store import Store

    store = Store(tmp_path / "c.duckdb")
    layout = RecordsLayout.beside(store.db_path)
    for portal in ("a", "b", "c", "d"):
        for n in range(8):
            ready = tmp_path / f"ready-{portal}-{n}"
            ready.mkdir()
            pq.write_table(pa.table({"v": [n, n + 1]}), ready / "part-00000.parquet")
            layout.publish(ready, portal, f"d{n}")
    failures = []

    def pull_all(portal):
        cursor = store.cursor()
        for n in range(8):
            try:
                record_pull(cursor, layout, uid=f"{portal}:d{n}", portal_id=portal, source_id=f"d{n}", mode="full",
                            watermark=None, run_id="r", now=datetime.now(UTC), seconds=0.1)
            except Exception as exc:
                failures.append(exc)
        cursor.close()

    threads = [threading.Thread(target=pull_all, args=(portal,), daemon=True) for portal in ("a", "b", "c", "d")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)   # (a deadline: pulls that wait for each other fail the test, not hang the suite)
    assert not any(thread.is_alive() for thread in threads) and failures == []
    assert store.con.execute("SELECT count(*), sum(row_count) FROM record_pulls").fetchone() == (32, 64)
    assert store.con.execute("SELECT sum(v) FROM records('c', 'd7')").fetchone() == (15,)
    store.close()


def test_a_folder_set_aside_by_an_older_civicat_is_removed_only_when_it_can_be_no_dataset_s_only_copy(tmp_path):
    """Session 13's publish set the old folder aside as `retired-<hex>/part-*.parquet`, naming no
    dataset: while a pulled dataset has no folder it may be that dataset's only copy."""
    layout = RecordsLayout(tmp_path / "records")
    leftover = layout.staging_root / "retired-0123abcd"
    leftover.mkdir(parents=True)
    pq.write_table(pa.table({"v": [1]}), leftover / "part-00000.parquet")
    [kept] = layout.repair([("p", "a")])
    assert kept.startswith(f"kept {leftover}") and "p:a" in kept and leftover.is_dir()
    ready = tmp_path / "ready"
    ready.mkdir()
    pq.write_table(pa.table({"v": [2]}), ready / "part-00000.parquet")
    layout.publish(ready, "p", "a")
    [removed] = layout.repair([("p", "a")])
    assert removed.startswith(f"removed {leftover}") and not leftover.exists()
    assert layout.repair([("p", "a")]) == [] and list(layout.staging_root.iterdir()) == []


def test_a_repair_never_takes_a_publish_in_progress_for_a_leftover(tmp_path, monkeypatch):
    """Portals pull in threads, and each portal's pull starts with a repair: one that ran while
    another thread's publish was still deleting the folder it had set aside took that folder for
    a leftover (logged "removed … cut short", and two deletions of one folder race to a
    FileNotFoundError in the repair's)."""
    import shutil
    import threading

    import catalog.records

    layout = two_versions_staged(tmp_path)
    layout.publish(tmp_path / "ready1", "p", "a")
    repaired: list[list[str]] = []
    others: list[threading.Thread] = []
    real_rmtree = shutil.rmtree

    def rmtree_while_another_portal_repairs(path, *args, **kwargs):
        if not others:   # the publish's deletion of the folder it set aside
            others.append(threading.Thread(target=lambda: repaired.append(layout.repair([("p", "a")]))))
            others[0].start()
            others[0].join(timeout=0.5)   # (blocked, as it should be, until the publish is over)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(catalog.records.shutil, "rmtree", rmtree_while_another_portal_repairs)
    layout.publish(tmp_path / "ready2", "p", "a")
    others[0].join(timeout=60)   # (a deadline, not a wait: the repair ends as the publish lets go)
    assert not others[0].is_alive() and repaired == [[]]
    assert pq.read_table(layout.folder("p", "a")).column("v").to_pylist() == [2]
    assert list(layout.staging_root.iterdir()) == []


def _swaps_in_one_step(tmp_path) -> bool:
    from catalog.files import exchange

    a, b = tmp_path / "probe-a", tmp_path / "probe-b"
    a.mkdir()
    b.mkdir()
    try:
        return exchange(a, b)
    finally:
        a.rmdir()
        b.rmdir()


# a front end's reader: opens the dataset's folder as fast as it can until told to stop, and
# prints how many of its looks found no folder
POLLER = """
import os, sys
folder, stop = sys.argv[1], sys.argv[2]
looks = missing = 0
print("ready", flush=True)
while not os.path.exists(stop):
    looks += 1
    try:
        os.close(os.open(folder, os.O_RDONLY | os.O_DIRECTORY))
    except FileNotFoundError:
        missing += 1
print(looks, missing)
"""


def test_a_reader_polling_a_dataset_through_many_publishes_never_finds_it_missing(tmp_path):
    """The publish set the previous folder aside and moved the new one in with two renames: a
    front end reading `records/portal=…/dataset=…/` between them found no folder. Where the
    system swaps two folders in one step (renameat2), it never does."""
    import subprocess
    import sys

    if not _swaps_in_one_step(tmp_path):
        pytest.skip("no renameat2 RENAME_EXCHANGE on this system or file system: the publish renames twice")
    layout = RecordsLayout(tmp_path / "records")
    staged = tmp_path / ".records-staging" / "pull"

    def stage(version: int) -> Path:
        staged.mkdir(parents=True)
        for part in range(3):
            pq.write_table(pa.table({"v": [version]}), staged / f"part-{part:05d}.parquet")
        return staged

    layout.publish(stage(0), "p", "d")
    stop = tmp_path / "stop"
    poller = subprocess.Popen([sys.executable, "-c", POLLER, str(layout.folder("p", "d")), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    assert line_of(poller) == "ready\n"
    try:
        for version in range(1, 1001):
            layout.publish(stage(version), "p", "d")
    finally:
        stop.touch()
        looks, missing = map(int, poller.communicate(timeout=60)[0].split())
    assert looks > 1000 and missing == 0, (looks, missing)
    assert pq.read_table(layout.folder("p", "d"))["v"].to_pylist() == [1000] * 3
    assert not staged.exists() and list(layout.staging_root.iterdir()) == []


def test_a_publish_whose_swap_fails_keeps_the_previous_records_and_leaves_nothing_aside(tmp_path, monkeypatch):
    """The swap refused (EXDEV, EACCES: a mount, a permission): the publish fails naming both
    folders, the previous records stay published, the pull's folder staged, and the copy made
    to swap in is not left in `.records-staging/` for the next pull's repair."""
    import errno

    import catalog.records

    layout = two_versions_staged(tmp_path)
    layout.publish(tmp_path / "ready1", "p", "d")

    def refused(a, b):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(a), None, str(b))

    monkeypatch.setattr(catalog.records, "exchange", refused)
    with pytest.raises(PermissionError, match="swapping-"):
        layout.publish(tmp_path / "ready2", "p", "d")
    assert pq.read_table(layout.folder("p", "d"))["v"].to_pylist() == [1]
    assert (tmp_path / "ready2" / "part-00000.parquet").is_file()
    assert list(layout.staging_root.iterdir()) == []


@pytest.mark.parametrize("refusal", ["EPERM", "EOPNOTSUPP", "EMLINK"])
def test_a_file_system_that_refuses_hard_links_still_gets_the_new_records(tmp_path, monkeypatch, refusal):
    """The copy swapped in is made of hard links: on a file system without them (exFAT, vfat:
    EPERM; some FUSE and network mounts: EOPNOTSUPP) or a part at its link limit (EMLINK) every
    publish over a previous folder failed, and the dataset kept its first records for good,
    where a rename had published them. The publish renames twice there instead."""
    import errno

    layout = two_versions_staged(tmp_path)
    layout.publish(tmp_path / "ready1", "p", "d")

    def refused(source, target, **kwargs):
        code = getattr(errno, refusal)
        raise OSError(code, os.strerror(code), str(source), None, str(target))

    monkeypatch.setattr(os, "link", refused)
    layout.publish(tmp_path / "ready2", "p", "d")
    assert pq.read_table(layout.folder("p", "d"))["v"].to_pylist() == [2]
    assert not (tmp_path / "ready2").exists() and list(layout.staging_root.iterdir()) == []


# publishes `ready` (argv[2]) as dataset p:d of the records root argv[1], SIGKILLed right after
# the first part is hard-linked into the copy made to swap in
KILLED_AFTER_ONE_LINK = """
import os, signal, sys
from catalog.records import RecordsLayout
link = os.link
def link_then_kill(source, target):
    link(source, target)
    os.kill(os.getpid(), signal.SIGKILL)
os.link = link_then_kill
RecordsLayout(sys.argv[1]).publish(__import__("pathlib").Path(sys.argv[2]), "p", "d")
"""


def test_a_partial_copy_made_to_swap_in_is_never_restored_as_the_dataset(tmp_path):
    """Killed as the copy of the new folder to swap in was being hard-linked, with the published
    folder then deleted by hand: that copy lay where a publish cut short between its two renames
    sets the previous folder aside, and `repair` moved it into place, saying it "restored" the
    dataset — one part of two published. The copy is never the only one (the pull stays staged):
    it is removed, and the next publish of the staged pull puts the whole dataset in place."""
    import shutil
    import signal
    import sys

    if not _swaps_in_one_step(tmp_path):
        pytest.skip("no renameat2 RENAME_EXCHANGE on this system or file system: no copy is swapped in")
    layout = two_versions_staged(tmp_path)
    layout.publish(tmp_path / "ready1", "p", "d")
    ready = tmp_path / "ready2"
    pq.write_table(pa.table({"v": [2]}), ready / "part-00001.parquet")
    killed = run([sys.executable, "-c", KILLED_AFTER_ONE_LINK, str(layout.root), str(ready)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                            capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    shutil.rmtree(layout.folder("p", "d"))   # (by hand)

    [said] = layout.repair([("p", "d")])
    assert said.startswith("removed ") and "restored" not in said
    assert not layout.folder("p", "d").exists() and list(layout.staging_root.iterdir()) == []
    assert sorted(os.listdir(ready)) == ["part-00000.parquet", "part-00001.parquet"]
    layout.publish(ready, "p", "d")
    assert pq.read_table(layout.folder("p", "d"))["v"].to_pylist() == [2, 2]


def test_a_profile_that_does_not_fit_its_memory_is_run_again_on_one_thread_with_more(tmp_path, monkeypatch, caplog):
    """A profile that did not fit failed its pull every night: each DuckDB thread holds a row
    group of the Parquet it reads, whose size is its rows' width (1,000,000 rows of 30 distinct
    16-character texts did not fit 128 MB). It is run once more, saying so."""
    import catalog.records
    from catalog.records import measure_folder

    pq.write_table(pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]}), tmp_path / "part-00000.parquet")
    monkeypatch.setattr(catalog.records, "PROFILE_MEMORY", "1KB")   # (nothing fits it)
    with caplog.at_level("WARNING", logger="civicat.records"):
        measured = measure_folder(tmp_path)
    assert measured.rows == 1000
    assert [p["column_name"] for p in measured.profiles] == ["id", "name"]
    assert "did not fit in 1KB" in caplog.text and "trying again on one thread with 1GB" in caplog.text


def test_a_column_profiled_as_the_last_pull_profiled_it_keeps_that_pull_s_time(tmp_path):
    """A pull of unchanged records gives the same profiles; their profiled_at changed every night
    all the same, and with it column_profiles.parquet's bytes (a front end caching the export by
    sha256 fetched it again nightly). A column's profile now keeps the time of the pull that gave
    it its values; a column whose values changed, or new, takes the pull's."""
    from datetime import UTC, datetime

    from catalog.records import record_pull
    from catalog.store import Store

    store = Store(tmp_path / "c.duckdb")
    layout = RecordsLayout.beside(store.db_path)
    nights = [datetime(2026, 12, day, 23, 5, tzinfo=UTC) for day in (1, 2, 3)]

    def pull(night: datetime, table: pa.Table) -> dict:
        ready = tmp_path / f"ready-{night.day}"
        ready.mkdir()
        pq.write_table(table, ready / "part-00000.parquet")
        layout.publish(ready, "sea", "d1")
        record_pull(store.con, layout, uid="sea:d1", portal_id="sea", source_id="d1", mode="full", watermark=None,
                    run_id=f"r{night.day}", now=night, seconds=0.1)
        return dict(store.con.execute("SELECT column_name, profiled_at FROM column_profiles "
                                      "WHERE dataset_uid = 'sea:d1'").fetchall())

    first = pa.table({"n": [1, 2, 3], "kind": ["theft", "theft", "fire"], "gone": [1.5, None, 2.5]})
    assert pull(nights[0], first) == {"n": nights[0], "kind": nights[0], "gone": nights[0]}
    assert pull(nights[1], first) == {"n": nights[0], "kind": nights[0], "gone": nights[0]}
    changed = pa.table({"n": [1, 2, 4], "kind": ["theft", "theft", "fire"], "new": ["a", "b", "c"]})
    assert pull(nights[2], changed) == {"n": nights[2], "kind": nights[0], "new": nights[2]}
    assert store.con.execute("SELECT max_value, row_count FROM column_profiles WHERE column_name = 'n'").fetchone() \
        == ("4", 3)
    store.close()
