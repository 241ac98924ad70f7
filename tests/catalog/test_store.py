import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from tests.children import run

import duckdb
import pytest

from catalog import record as R
from catalog.store import MEMORY_LIMIT, Store, _out_of_memory, canonical_json, connect, content_hash
from catalog.transactions import rollback

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(source_id, title="Building permits", portal="city", **fields):
    rec = R.blank_record()
    rec.update(uid=f"{portal}:{source_id}", portal_id=portal, city="City", portal_kind="socrata",
               source_id=source_id, title=title, issued="2020-01-02T03:04:05Z", keywords=["permits"],
               distributions=[{"title": "CSV", "format": "CSV", "media_type": "text/csv",
                               "download_url": f"https://x.org/{source_id}.csv", "access_url": None}],
               columns=[{"position": 0, "name": "Permit", "field_name": "permit", "type": "text",
                         "source_type": "Text", "description": None}])
    rec.update(fields)
    return rec


def stage_of(store, records, seen_extra=()):
    stage = store.new_stage()
    for rec in records:
        raw = canonical_json({"title": rec["title"], "id": rec["source_id"]})
        stage.mark_seen(rec["uid"])
        stage.add(rec, raw, None, content_hash(raw))
    for uid in seen_extra:
        stage.mark_seen(uid)
    return stage


@pytest.fixture
def store(tmp_path):
    # (made by Store itself, not copied (tests.conftest.new_store): these tests squeeze the catalogue's
    # memory to a few MB, and a copied one's blocks are laid out otherwise: one such test waited on)
    s = Store(tmp_path / "c.duckdb")
    yield s
    s.close()


def rows(store, sql):
    return store.con.execute(sql).fetchall()


def test_migrations_create_the_spec_tables_once(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    tables = {r[0] for r in rows(store, "SELECT table_name FROM information_schema.tables")}
    assert {"datasets", "distributions", "columns", "raw_records", "harvest_runs", "harvest_errors",
            "schema_migrations"} <= tables
    store.close()
    from catalog.store import migrate
    con = connect(tmp_path / "c.duckdb")
    shipped = sorted(int(p.name.split("_")[0]) for p in resources.files("catalog").joinpath("migrations").iterdir()
                     if p.name.endswith(".sql"))
    assert shipped == list(range(1, len(shipped) + 1))   # (numbered without a gap)
    applied = [v for (v,) in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
    assert migrate(con) == [] and applied == shipped
    con.close()


def test_a_new_catalogues_migrations_are_one_transaction_an_existing_ones_each_its_own(tmp_path, monkeypatch):
    """A new catalogue's migrations commit together (one commit, not 20: a first run's catalogue in
    half the time; one failing leaves no half schema); an existing catalogue's each alone (a
    migration copying a large table holds no other's undo), those before a failing one kept."""
    import duckdb

    import catalog.store as store_module
    from catalog.versions import shipped_migrations

    shipped = shipped_migrations()
    broken = tmp_path / "broken.sql"
    broken.write_text("INSERT INTO no_such_table VALUES (1);")
    monkeypatch.setattr(store_module, "shipped_migrations", lambda: {**shipped, max(shipped) + 1: (broken, "broken")})

    def versions(con):
        return [v for (v,) in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]

    def tables(con):
        return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}

    new = duckdb.connect(str(tmp_path / "new.duckdb"))
    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        store_module.migrate(new)
    assert versions(new) == [] and tables(new) == {"schema_migrations"}
    new.close()

    existing = duckdb.connect(str(tmp_path / "existing.duckdb"))
    existing.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                     "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    script, name = shipped[1]
    existing.execute(script.read_text())
    existing.execute("INSERT INTO schema_migrations (version, name) VALUES (1, ?)", [name])
    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        store_module.migrate(existing)
    assert versions(existing) == sorted(shipped) and "datasets" in tables(existing)
    existing.close()


def test_a_catalogue_a_newer_civicat_migrated_is_refused_before_any_write(tmp_path):
    # an older civicat (a rollback, a second install) must not write a schema it does not know
    from catalog.store import CatalogueTooNew
    from catalog.versions import shipped_migrations
    db = tmp_path / "c.duckdb"
    Store(db).close()
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'datasets_region')")
        con.execute("ALTER TABLE datasets ADD COLUMN region VARCHAR")
        before = con.execute("SELECT * FROM schema_migrations ORDER BY version").fetchall()
    with pytest.raises(CatalogueTooNew) as refused:
        Store(db)
    assert str(db) in str(refused.value) and "0099_datasets_region" in str(refused.value)
    assert f"knows up to {max(shipped_migrations()):04d}" in str(refused.value) and "newer civicat" in str(refused.value)
    with duckdb.connect(str(db)) as con:   # (the refused open let the file go)
        assert con.execute("SELECT * FROM schema_migrations ORDER BY version").fetchall() == before


def test_an_older_catalogue_is_brought_to_the_storage_version_and_its_raw_json_compressed_with_zstd(tmp_path):
    import duckdb
    db = tmp_path / "old.duckdb"
    duckdb.connect(str(db)).close()   # a file of DuckDB's default (older) storage version
    store = Store(db)
    assert rows(store, "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = "
                       "current_database()") == [("v1.5.0+",)]
    raw = '{"name": "Building permits", "description": "%s"}' % ("Permits issued by the city. " * 40)
    store.commit_portal(stage_of(store, [record(f"d{n}") for n in range(3)]), "city", T0, mark_deleted=True)
    store.con.execute("INSERT INTO raw_records SELECT 'city:x' || range, 'h', 'city', 'x', $raw, NULL, now() "
                      "FROM range(20000)", {"raw": raw})
    store.con.execute("CHECKPOINT")
    assert rows(store, """SELECT DISTINCT compression FROM pragma_storage_info('raw_records')
                          WHERE column_name = 'raw' AND segment_type = 'VARCHAR'""") == [("ZSTD",)]
    assert rows(store, "SELECT count(*), count(*) FILTER (raw->>'name' = 'Building permits') FROM raw_records") == [
        (20003, 20000)]   # the staged three and these, read back
    store.close()


def test_a_rebuilt_table_keeps_the_compression_its_migration_declared(tmp_path):
    """DuckDB leaves a column's declared compression (USING COMPRESSION) out of the table definition that
    _rebuild_table copies: raw_records rebuilt from it held its raw JSON in FSST, not migration 0013's zstd,
    and so did every entry loaded after it (main: DICT_FSST). The declared columns keep it now, through
    the rebuild and a reopen; every USING COMPRESSION of the migrations is in DECLARED_COMPRESSION."""
    import re

    from catalog.store import DECLARED_COMPRESSION, _rebuild_table

    declared = {(column, method.lower()) for migration in resources.files("catalog").joinpath("migrations").iterdir()
                if migration.name.endswith(".sql")
                for column, method in re.findall(r"^\s*(\w+)\s[^,\n]*USING COMPRESSION (\w+)", migration.read_text(), re.M)}
    assert declared and declared == {(column, method) for columns in DECLARED_COMPRESSION.values()
                                     for column, method in columns.items()}
    db = tmp_path / "c.duckdb"
    store = Store(db)
    raw = '{"name": "Building permits", "description": "%s"}' % ("Permits issued by the city. " * 40)
    load = "INSERT INTO raw_records SELECT 'city:x' || range, 'h', 'city', 'x', $raw, $raw, now() FROM range(20000)"
    store.con.execute(load, {"raw": raw})
    cur = store.cursor()
    cur.execute("BEGIN")
    _rebuild_table(cur, "raw_records", "SELECT * FROM raw_records", {})
    cur.execute("COMMIT")
    cur.close()
    store.con.execute("CHECKPOINT")
    compression = """SELECT column_name, list(DISTINCT compression) FROM pragma_storage_info('raw_records')
                     WHERE column_name IN ('raw', 'details') AND segment_type = 'VARCHAR' GROUP BY ALL ORDER BY ALL"""
    assert rows(store, compression) == [("details", ["ZSTD"]), ("raw", ["ZSTD"])]
    with pytest.raises(duckdb.ConstraintException):   # (its NOT NULLs, as they were)
        store.con.execute("INSERT INTO raw_records VALUES ('city:y', 'h', 'city', 'y', NULL, NULL, now())")
    store.close()
    store = Store(db)   # (declared in the catalogue's own definition: the entries loaded later too)
    store.con.execute(load.replace("'city:x'", "'city:z'"), {"raw": raw})
    store.con.execute("CHECKPOINT")
    assert rows(store, compression) == [("details", ["ZSTD"]), ("raw", ["ZSTD"])]
    assert rows(store, "SELECT count(*), count(*) FILTER (raw = $raw AND details = $raw) FROM raw_records".replace(
        "$raw", "'" + raw.replace("'", "''") + "'")) == [(40_000, 40_000)]
    store.close()


def test_new_unchanged_changed_removed_and_restored(store):
    counts = store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0, mark_deleted=True)
    assert counts == {"new": 2, "changed": 0, "unchanged": 0, "removed": 0}
    assert rows(store, "SELECT issued, keywords FROM datasets WHERE uid='city:a'") == [
        (datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), ["permits"])]

    t1 = T0 + timedelta(days=1)
    counts = store.commit_portal(stage_of(store, [record("a"), record("b", title="Building permits 2")]),
                                 "city", t1, mark_deleted=True)
    assert counts == {"new": 0, "changed": 1, "unchanged": 1, "removed": 0}
    # unchanged: not written; its portal's latest complete listing saw it
    (a_first, a_seen, a_changed), = rows(store, "SELECT first_seen, last_seen, last_changed FROM datasets WHERE uid='city:a'")
    assert (a_first, a_seen, a_changed) == (T0, T0, T0)
    assert rows(store, "SELECT listed_at, datasets FROM portal_listings WHERE portal_id = 'city'") == [(t1, 2)]
    assert rows(store, "SELECT title, first_seen, last_changed FROM datasets WHERE uid='city:b'") == [
        ("Building permits 2", T0, t1)]
    assert rows(store, "SELECT count(*) FROM distributions WHERE dataset_uid='city:b'") == [(1,)]
    # the superseded raw version of b is gone; a's single version stays
    assert rows(store, "SELECT uid, raw->>'title' FROM raw_records ORDER BY uid") == [
        ("city:a", "Building permits"), ("city:b", "Building permits 2")]

    t2 = t1 + timedelta(days=1)
    counts = store.commit_portal(stage_of(store, [record("a")]), "city", t2, mark_deleted=True)
    assert counts["removed"] == 1
    # marked, not purged; last seen by the listing before
    assert rows(store, "SELECT deleted_at, missing_since, last_seen FROM datasets WHERE uid='city:b'") == [(t2, t2, t1)]
    assert rows(store, "SELECT count(*) FROM columns WHERE dataset_uid='city:b'") == [(1,)]

    t3 = t2 + timedelta(days=1)
    counts = store.commit_portal(stage_of(store, [record("a"), record("b", title="Building permits 2")]),
                                 "city", t3, mark_deleted=True)
    assert counts["changed"] == 1  # restored
    assert rows(store, "SELECT deleted_at, missing_since, last_seen FROM datasets WHERE uid='city:b'") == [
        (None, None, t3)]


def remapped_stage(store, records):
    """A stage of `records` whose raw entries are those of the same ids as before (their
    raw hash unchanged): what `harvest --full` stages after the mapping changed, not the portal."""
    stage = store.new_stage()
    for rec in records:
        raw = canonical_json({"id": rec["source_id"]})
        stage.mark_seen(rec["uid"])
        stage.add(rec, raw, None, content_hash(raw))
    return stage


def test_a_rewrite_changes_only_the_datasets_whose_mapped_entry_differs(store):
    """`harvest --full` re-maps every dataset: one whose raw entry, fields, distributions
    and columns are as stored is unchanged (its last_changed stays, nothing is written);
    one the new mapping gives another field, distribution or column is changed."""
    def entry(source_id, **fields):   # a timestamp too: the stored one is compared as a timestamp
        return record(source_id, **{"modified": "2021-05-06T07:08:09Z", **fields})

    ids = [f"d{n}" for n in range(7)]
    store.commit_portal(remapped_stage(store, [entry(i) for i in ids]), "city", T0, mark_deleted=True)
    before = rows(store, "SELECT * FROM datasets ORDER BY uid")
    t1 = T0 + timedelta(days=1)
    counts = store.commit_portal(remapped_stage(store, [entry(i) for i in ids]), "city", t1, mark_deleted=True,
                                 rewrite=True)
    assert counts == {"new": 0, "changed": 0, "unchanged": 7, "removed": 0}
    assert rows(store, "SELECT * FROM datasets ORDER BY uid") == before

    column = entry("x")["columns"][0]
    distribution = entry("x")["distributions"][0]
    remapped = {
        "d1": entry("d1", title="Building permits (issued)"),
        "d2": entry("d2", keywords=["permits", "construction"]),
        "d3": entry("d3", modified="2021-05-06T07:08:10Z"),
        "d4": entry("d4", columns=[{**column, "type": "other"}]),
        "d5": entry("d5", columns=[column, {**column, "position": 1, "name": "Issued"}]),
        "d6": entry("d6", distributions=[{**distribution, "media_type": None}]),
    }
    t2 = t1 + timedelta(days=1)
    counts = store.commit_portal(remapped_stage(store, [remapped.get(i) or entry(i) for i in ids]), "city", t2,
                                 mark_deleted=True, rewrite=True)
    assert counts == {"new": 0, "changed": 6, "unchanged": 1, "removed": 0}
    assert rows(store, "SELECT uid, last_changed FROM datasets ORDER BY uid") == [
        ("city:d0", T0), *((f"city:{i}", t2) for i in ids[1:])]
    assert rows(store, "SELECT title FROM datasets WHERE uid = 'city:d1'") == [("Building permits (issued)",)]
    assert rows(store, "SELECT type FROM columns WHERE dataset_uid = 'city:d4'") == [("other",)]
    assert rows(store, "SELECT name FROM columns WHERE dataset_uid = 'city:d5' ORDER BY position") == [
        ("Permit",), ("Issued",)]
    assert rows(store, "SELECT media_type FROM distributions WHERE dataset_uid = 'city:d6'") == [(None,)]

    t3 = t2 + timedelta(days=1)   # a column or distribution the new mapping no longer gives, columns in another order
    remapped.update(d4=entry("d4", columns=[]), d5=entry("d5", columns=[{**column, "name": "Issued"},
                                                                        {**column, "position": 1}]),
                    d6=entry("d6", distributions=[]))
    counts = store.commit_portal(remapped_stage(store, [remapped.get(i) or entry(i) for i in ids]), "city", t3,
                                 mark_deleted=True, rewrite=True)
    assert counts == {"new": 0, "changed": 3, "unchanged": 4, "removed": 0}
    assert store.con.execute("SELECT uid FROM datasets WHERE last_changed = ? ORDER BY uid", [t3]).fetchall() == [
        ("city:d4",), ("city:d5",), ("city:d6",)]
    assert rows(store, "SELECT count(*) FROM columns WHERE dataset_uid = 'city:d4'") == [(0,)]
    assert rows(store, "SELECT name FROM columns WHERE dataset_uid = 'city:d5' ORDER BY position") == [
        ("Issued",), ("Permit",)]
    assert rows(store, "SELECT count(*) FROM distributions WHERE dataset_uid = 'city:d6'") == [(0,)]


def test_partial_listing_marks_nothing_deleted(store):
    store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0, mark_deleted=True)
    counts = store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=False)
    assert counts["removed"] == 0
    assert rows(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NULL") == [(2,)]


def test_listed_but_invalid_entries_are_not_marked_deleted(store):
    store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0, mark_deleted=True)
    counts = store.commit_portal(stage_of(store, [record("a")], seen_extra=["city:b"]), "city", T0, mark_deleted=True)
    assert counts["removed"] == 0


def test_a_merge_that_only_adds_datasets_scans_no_raw_version_and_one_that_changes_prunes(store):
    """A new dataset supersedes no raw version, so a merge of new datasets alone skips the
    prune's scan of every raw version (a portal's first harvest); a changed one's previous
    version goes. A version no dataset points at is put here by hand, as no harvest leaves one
    (a failed run's are pruned as the next begins): the first merge keeps it, the second not."""
    store.con.execute("""INSERT INTO raw_records VALUES ('city:gone', 'h', 'city', 'gone', '{"id":"gone"}', NULL, now())""")
    assert store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)["new"] == 1
    assert rows(store, "SELECT uid FROM raw_records ORDER BY uid") == [("city:a",), ("city:gone",)]
    counts = store.commit_portal(stage_of(store, [record("a", title="Permits")]), "city", T0 + timedelta(days=1),
                                 mark_deleted=True)
    assert counts["changed"] == 1
    assert rows(store, "SELECT uid, raw->>'title' FROM raw_records ORDER BY uid") == [("city:a", "Permits")]


def test_deletion_is_scoped_to_the_portal(store):
    store.commit_portal(stage_of(store, [record("a", portal="one")]), "one", T0, mark_deleted=True)
    store.commit_portal(stage_of(store, [record("z", portal="two")]), "two", T0, mark_deleted=True)
    assert rows(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NULL") == [(2,)]


def test_a_merge_that_fails_midway_leaves_the_catalogue_untouched(store):
    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    before = rows(store, "SELECT * FROM datasets ORDER BY uid")
    stage = stage_of(store, [record("a", title="changed"), record("c")])
    stage.close()
    Path(stage.path("seen")).write_bytes(b"not parquet")  # the merge breaks after datasets were written
    with pytest.raises(Exception):
        store.commit_portal(stage, "city", T0 + timedelta(days=1), mark_deleted=True)
    assert rows(store, "SELECT * FROM datasets ORDER BY uid") == before
    assert rows(store, "SELECT r.raw FROM datasets d JOIN raw_records r USING (uid, raw_hash)") == [
        ('{"id":"a","title":"Building permits"}',)]


def test_a_merge_that_does_not_fit_the_memory_limit_is_retried_with_more(store, monkeypatch, caplog):
    import catalog.store as store_module

    stage = stage_of(store, [record(f"d{i:05d}", title=f"Permits {i} " + "x" * 200) for i in range(5_000)])
    stage.close()   # raw records loaded: only the merge meets the small limit
    store.con.execute("CHECKPOINT")   # committed rows are evictable only once checkpointed
    monkeypatch.setattr(store_module, "MEMORY_LIMIT", "1MB")
    store.con.execute("SET memory_limit = '1MB'")
    with caplog.at_level("WARNING", logger="civicat.store"):
        counts = store.commit_portal(stage, "city", T0, mark_deleted=True)
    assert counts["new"] == 5_000 and rows(store, "SELECT count(*) FROM columns") == [(5_000,)]
    assert "city: the merge did not fit in 1MB" in caplog.text
    assert rows(store, "SELECT current_setting('memory_limit')") == [("976.5 KiB",)]  # back to the small limit


def test_the_raw_records_key_migration_keeps_one_row_per_version(tmp_path):
    """0005 rebuilds raw_records without its primary key, keeping every stored version once."""
    import duckdb

    from catalog.store import migrate

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    migrations = Path(__file__).parents[2] / "catalog" / "migrations"
    for version, name in ((1, "0001_initial.sql"), (2, "0002_open311_services.sql")):
        con.execute((migrations / name).read_text())
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.execute("""INSERT INTO raw_records VALUES ('city:a', 'h1', 'city', 'a', '{"v": 1}', NULL, now()),
                                                  ('city:a', 'h2', 'city', 'a', '{"v": 2}', NULL, now())""")
    assert 5 in migrate(con)
    assert con.execute("SELECT uid, raw_hash, raw FROM raw_records ORDER BY raw_hash").fetchall() == [
        ("city:a", "h1", '{"v": 1}'), ("city:a", "h2", '{"v": 2}')]
    assert not con.execute("SELECT * FROM duckdb_constraints() WHERE table_name = 'raw_records' "
                           "AND constraint_type = 'PRIMARY KEY'").fetchall()
    con.close()


def test_a_missing_dataset_is_deleted_only_after_the_grace_period_and_comes_back_untouched(store):
    grace = timedelta(days=2)
    merge = lambda ids, at, complete=True: store.commit_portal(  # noqa: E731
        stage_of(store, [record(i) for i in ids]), "city", at, mark_deleted=complete, grace=grace)
    merge(["a", "b"], T0)
    before = rows(store, "SELECT * EXCLUDE (missing_since, last_seen) FROM datasets WHERE uid = 'city:b'")
    day = timedelta(days=1)
    assert merge(["a"], T0 + day)["removed"] == 0                      # missing, within the grace period
    assert rows(store, "SELECT missing_since, deleted_at FROM datasets WHERE uid='city:b'") == [(T0 + day, None)]
    assert merge(["a"], T0 + 2 * day, complete=False)["removed"] == 0  # a partial listing decides nothing
    counts = merge(["a", "b"], T0 + 2 * day)                            # back before the grace ran out
    assert counts == {"new": 0, "changed": 0, "unchanged": 2, "removed": 0}
    assert rows(store, "SELECT missing_since, last_seen FROM datasets WHERE uid='city:b'") == [(None, T0 + 2 * day)]
    assert rows(store, "SELECT * EXCLUDE (missing_since, last_seen) FROM datasets WHERE uid = 'city:b'") == before
    merge(["a"], T0 + 3 * day)
    assert merge(["a"], T0 + 4 * day)["removed"] == 0
    assert merge(["a"], T0 + 5 * day)["removed"] == 1                  # missing for the whole two days
    assert rows(store, "SELECT missing_since, deleted_at, last_seen FROM datasets WHERE uid='city:b'") == [
        (T0 + 3 * day, T0 + 5 * day, T0 + 2 * day)]
    assert merge(["a", "b"], T0 + 6 * day)["changed"] == 1             # a deleted dataset that reappears is restored
    assert rows(store, "SELECT missing_since, deleted_at FROM datasets WHERE uid='city:b'") == [(None, None)]


def test_a_row_group_of_raw_entries_is_written_by_its_insert_not_by_the_close(tmp_path):
    from catalog.store import ROW_GROUP_ROWS
    db = tmp_path / "c.duckdb"
    store = Store(db)
    stage = store.new_stage()
    padding = "x" * 1000  # 16 MB of raw JSON in all
    count = ROW_GROUP_ROWS + 10
    for n in range(count):
        raw = canonical_json({"id": f"id{n}", "padding": padding})
        stage.mark_seen(f"city:id{n}")
        stage.add(record(f"id{n}"), raw, None, content_hash(raw))
    stage.close()   # the rest of the raw entries loaded, before the merge
    wal = Path(f"{db}.wal")
    # the first row group went to the file compressed, not through the WAL (the last 10 did)
    assert wal.stat().st_size < 1_000_000
    assert store.commit_portal(stage, "city", T0, mark_deleted=True)["new"] == count
    store.close()
    store = Store(db)
    assert rows(store, """SELECT count(*), count(DISTINCT uid), min(raw->>'padding' = $$%s$$)
                          FROM raw_records JOIN datasets USING (uid, raw_hash)""" % padding) == [(count, count, True)]
    store.close()


def test_migration_0012_keeps_the_raw_json_as_text(tmp_path):
    db = tmp_path / "c.duckdb"
    store = Store(db)  # a catalogue as migration 0011 left it: JSON columns, a raw version
    store.con.execute("ALTER TABLE raw_records ALTER raw TYPE JSON")
    store.con.execute("ALTER TABLE raw_records ALTER details TYPE JSON")
    store.con.execute("DELETE FROM schema_migrations WHERE version = 12")
    store.con.execute("""INSERT INTO raw_records VALUES ('city:a', 'h', 'city', 'a', '{"title":"Permits","n":1}',
                                                         NULL, now())""")
    store.close()
    store = Store(db)
    assert rows(store, """SELECT data_type FROM information_schema.columns WHERE table_name = 'raw_records'
                          AND column_name IN ('raw', 'details')""") == [("VARCHAR",), ("VARCHAR",)]
    assert rows(store, "SELECT raw, raw->>'title', details FROM raw_records") == [
        ('{"title":"Permits","n":1}', "Permits", None)]
    # what the README says a query that needs the JSON type does now
    assert rows(store, "SELECT (raw::JSON).title, typeof(raw::JSON) FROM raw_records") == [('"Permits"', "JSON")]
    store.close()


def test_a_writable_catalogue_spills_beside_itself_not_in_the_working_directory(tmp_path, monkeypatch):
    db = tmp_path / "c.duckdb"
    con = connect(db)
    assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == f"{db}.tmp"
    # cron may run us where we cannot write ('/' as a user; /proc even as root): a query
    # larger than the memory limit still spills, beside the catalogue
    monkeypatch.chdir("/proc")
    con.execute("SET memory_limit = '64MB'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("CREATE TEMP TABLE big AS SELECT md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s "
                "FROM range(2000000)")
    assert con.execute("SELECT count(*) FROM (SELECT s FROM big ORDER BY s)").fetchone()[0] == 2_000_000
    spilled = [row[0] for row in con.execute("SELECT path FROM duckdb_temporary_files()").fetchall()]
    assert spilled and all(path.startswith(f"{db}.tmp/") for path in spilled)
    con.close()


def test_a_portal_of_very_large_raw_entries_is_stored_whole(tmp_path, caplog):
    # DuckDB keeps strings of ~48 KB and more in memory until a checkpoint: 150 MB of 60 KB
    # entries (CKAN packages with hundreds of resources) no longer fit the memory limit when
    # an insert commits; such an insert is retried with more room, not failed
    db = tmp_path / "c.duckdb"
    store = Store(db)
    stage = store.new_stage()
    padding = "x" * 60_000
    count = 2_500
    for n in range(count):
        raw = canonical_json({"id": f"id{n}", "padding": padding})
        stage.mark_seen(f"city:id{n}")
        stage.add(record(f"id{n}"), raw, None, content_hash(raw))
    assert store.commit_portal(stage, "city", T0, mark_deleted=True)["new"] == count
    Store.discard(stage)
    store.close()
    with connect(db, read_only=True) as con:  # as `civicat sql` reads it
        assert con.execute("""SELECT count(*), min(length(raw)), max(length(raw)) FROM raw_records
                              JOIN datasets USING (uid, raw_hash)""").fetchall() == [(count, 60_025, 60_028)]


def test_a_wal_left_by_a_killed_run_is_replayed_with_its_spill_beside_the_catalogue(tmp_path, monkeypatch):
    import sys

    import duckdb

    db = tmp_path / "c.duckdb"
    writer = f"""
import os
import threading
import time
from catalog.store import connect
con = connect({str(db)!r})
con.execute("SET memory_limit = '2GB'")  # DuckDB holds these strings in memory until a checkpoint
con.execute("CREATE TABLE big (s VARCHAR)")
for _ in range(3):
    con.execute("INSERT INTO big SELECT repeat('x', 60000) || range FROM range(1000)")
os._exit(9)  # killed: the inserts are in the WAL only
"""
    run([sys.executable, "-c", writer], 600, check=False, cwd=Path(__file__).parents[2])
    assert Path(f"{db}.wal").stat().st_size > 150_000_000
    # the replay runs as ATTACH opens it, before any SET: on a machine whose memory is
    # smaller than the WAL it spills, from cron's working directory too
    plain_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *args, config=None, **kwargs: plain_connect(
        *args, config={**(config or {}), "memory_limit": "128MB"}, **kwargs))
    monkeypatch.chdir("/proc")
    con = connect(db)
    assert con.execute("SELECT count(*) FROM big").fetchone()[0] == 3000
    con.close()


def test_migrations_run_under_the_memory_limit_and_once_more_with_room(tmp_path, monkeypatch, caplog):
    import duckdb

    import catalog.store as store_module
    limits, plain_migrate = [], store_module.migrate

    def migrate_short_of_memory(con):
        limits.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        if len(limits) == 1:  # migration 0013's copy of a large raw_records, say
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB")
        return plain_migrate(con)

    monkeypatch.setattr(store_module, "migrate", migrate_short_of_memory)
    con = store_module.connect(tmp_path / "c.duckdb")
    # DuckDB's default is 80% of the machine: the copy peaked at 947 MB for 200,000 entries
    assert limits == ["122.0 MiB", "953.6 MiB"]
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "122.0 MiB"
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] >= 13
    assert "a migration did not fit" in caplog.text
    con.close()


def _anonymous_rss() -> int:
    """The process's anonymous memory in RAM (the heap's): its whole RSS also counts the pages
    of its libraries as they are first read, which a merge or search build may be the first to
    use (25 MB of pyarrow's and DuckDB's in a fresh process), as much as the test looks for."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("RssAnon:")).split()[1]) << 10


def _heap_left_with_free_pages(megabytes: int) -> bytes:
    """`megabytes` of the C heap freed below a chunk still in use, as a listing leaves it:
    glibc keeps those pages (64 KB objects are below its mmap threshold). Returns the chunk.
    Written (not zeros, which glibc's calloc leaves untouched where the heap has just grown:
    held but not in RAM, and then not handed back either), as a listing's pages are."""
    held = [b"\x01" * (64 << 10) for _ in range(megabytes * 16)]
    pin = held[-1]
    del held
    return pin


def _glibc() -> bool:
    try:
        return "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "")
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="the freed heap is handed back with glibc's malloc_trim")
def test_the_merge_and_the_search_build_start_with_the_freed_heap_handed_back(store):
    """What Python freed during the listing is given back to the OS before the merge and
    the search build fill DuckDB's memory (it counted in the harvest's peak)."""
    stage = stage_of(store, [record("a")])
    pin = _heap_left_with_free_pages(200)
    before = _anonymous_rss()
    store.commit_portal(stage, "city", T0, mark_deleted=True)
    assert before - _anonymous_rss() > (80 << 20)   # (of the 200 MB: some went back as they were freed)
    pin = _heap_left_with_free_pages(200)
    before = _anonymous_rss()
    assert store.refresh_search()
    assert before - _anonymous_rss() > (80 << 20)   # (of the 200 MB: some went back as they were freed)
    del pin


def test_the_pages_a_merge_keeps_are_named_exactly_whatever_their_requests_hold(store):
    """The kept pages' identities reach the merge as one JSON text (KEPT_PAGES): a request
    holding quotes, a backslash, a line break, non-ASCII text or JSON's own punctuation names
    its page and no other. A kept page's ids are listed (its dataset is not missing); a page
    the listing no longer has is dropped with its dataset missing."""
    odd = '{"q": "a \\"b\\" \\\\ \n c", "city": "Zürich", "list": "[\\"x\\", \\"y\\"]"}'
    pages = [{"page_key": "k1", "params": odd, "next_params": None, "total": 2, "ids": ["a"]},
             {"page_key": "k1", "params": '{"q": "a"}', "next_params": None, "total": 2, "ids": ["b"]}]
    store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0, mark_deleted=True, pages=pages)
    assert rows(store, "SELECT count(*) FROM listing_pages") == [(2,)]
    counts = store.commit_portal(stage_of(store, []), "city", T0 + timedelta(days=1), mark_deleted=True,
                                 grace=timedelta(days=30), pages=[{"page_key": "k1", "params": odd, "kept": True}])
    assert rows(store, "SELECT params, ids FROM listing_pages") == [(odd, ["a"])]
    assert rows(store, "SELECT source_id FROM datasets WHERE missing_since IS NOT NULL") == [("b",)]
    assert counts["removed"] == 0


class _InsertsWatched:
    """A store's connection that notes DuckDB's threads as each raw insert begins."""

    def __init__(self, con):
        self.con, self.threads = con, []

    def execute(self, sql, *args):
        if "INSERT INTO raw_records" in sql:
            self.threads.append(self.con.execute("SELECT current_setting('threads')").fetchone()[0])
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_the_raw_loads_run_duckdb_on_one_thread_and_give_the_database_its_threads_back(store, tmp_path):
    """The raw loads run beside the listing, whose threads and workers keep every core busy:
    a second DuckDB thread there only added CPU. The merge and the search build, run alone
    afterwards, get the database's threads back, after a failed load too."""
    store.con.execute("SET threads = 3")
    watched = store.con = _InsertsWatched(store.con)
    stage = stage_of(store, [record("a"), record("b")])
    stage.close()   # (its raw entries loaded)
    assert watched.threads == [1]
    threads = "SELECT current_setting('threads')"
    assert rows(store, threads) == [(3,)]
    with pytest.raises(duckdb.IOException):
        store.load_raw([tmp_path / "no such part.tsv"], 100)
    assert watched.threads == [1, 1] and rows(store, threads) == [(3,)]
    assert store.commit_portal(stage, "city", T0, mark_deleted=True)["new"] == 2
    assert rows(store, "SELECT count(*) FROM raw_records JOIN datasets USING (uid, raw_hash)") == [(2,)]


class _StoppedAsThreadsArePutBack:
    """A connection whose cursors' first call that puts DuckDB's threads back to `threads` raises a
    stop before it runs, as the stop's handler does when a signal comes outside a statement."""

    def __init__(self, con, threads):
        self.con, self.put_back, self.stops = con, f"SET threads = {threads}", 0

    def cursor(self):
        outer, cursor = self, self.con.cursor()

        class Cursor:
            def execute(self, sql, *args):
                if sql == outer.put_back and not outer.stops:
                    outer.stops += 1
                    raise KeyboardInterrupt
                return cursor.execute(sql, *args)

            def __getattr__(self, name):
                return getattr(cursor, name)
        return Cursor()


def test_a_stop_as_duckdbs_threads_are_put_back_leaves_the_database_its_threads(store):
    """`SET threads = 1` is the database's setting, and each block on one thread reads the setting
    it puts back: a stop raised as the call that puts it back began (Ctrl-C or SIGTERM outside a
    statement: the handler raises at once) left the database on one thread, and every later block
    read 1 as the setting to put back: the merges, the search build and the close's checkpoint on one
    thread for good (main). The setting is put back all the same, the stop raised after."""
    from catalog import uncut

    store.con.execute("SET threads = 3")
    stopped = _StoppedAsThreadsArePutBack(store.con, 3)
    with pytest.raises(KeyboardInterrupt):
        with uncut.one_thread(stopped):
            assert rows(store, "SELECT current_setting('threads')") == [(1,)]
    assert stopped.stops == 1
    assert rows(store, "SELECT current_setting('threads')") == [(3,)]
    stage = stage_of(store, [record("a"), record("b")])
    assert store.commit_portal(stage, "city", T0, mark_deleted=True)["new"] == 2
    assert rows(store, "SELECT current_setting('threads')") == [(3,)]


def _datasets_written_as_before_session_25(cur, staged, params, rewritten):
    """The reference: how the merge wrote datasets until session 25, an INSERT of the new
    ones and an UPDATE of every column of the changed ones (kept here to compare with)."""
    from catalog.stage import DATASET_FIELDS, TIMESTAMP_FIELDS
    fields = ", ".join(DATASET_FIELDS)
    select_fields = ", ".join(f"CAST(s.{f} AS TIMESTAMPTZ) AS {f}" if f in TIMESTAMP_FIELDS else f"s.{f}"
                              for f in DATASET_FIELDS)
    assignments = ", ".join(f"{f} = u.{f}" for f in DATASET_FIELDS if f != "uid")
    cur.execute(f"""
        INSERT INTO datasets ({fields}, first_seen, last_seen, last_changed, deleted_at, raw_hash)
        SELECT {select_fields}, $now, $now, $now, NULL, s.raw_hash
        FROM {staged} s JOIN _status st ON st.uid = s.uid WHERE st.status = 'new'""", params)
    cur.execute(f"""
        UPDATE datasets SET {assignments}, raw_hash = u.raw_hash, last_seen = $now,
                            last_changed = $now, deleted_at = NULL, missing_since = NULL
        FROM (SELECT {select_fields}, s.raw_hash FROM {staged} s
              JOIN _status st ON st.uid = s.uid WHERE st.status = 'changed') u
        WHERE datasets.uid = u.uid""", params)


CATALOGUE_TABLES = {   # every table a merge writes, in an order that makes each comparable row for row
    "datasets": "SELECT * FROM datasets ORDER BY uid",
    "distributions": "SELECT * FROM distributions ORDER BY ALL",
    "columns": "SELECT * FROM columns ORDER BY ALL",
    "raw_records": "SELECT * EXCLUDE (fetched_at) FROM raw_records ORDER BY ALL",
    "portal_listings": "SELECT * FROM portal_listings ORDER BY ALL",
    "listing_pages": "SELECT * FROM listing_pages ORDER BY ALL",
}


def _entry(source_id, portal="city", **fields):
    return record(source_id, portal=portal, **{"modified": "2021-05-06T07:08:09Z", "themes": ["Housing"], **fields})


def _tables_after(db, nights, monkeypatch, reference):
    """The catalogue's tables after the merges `nights` ((records, portal, now, rewrite) each),
    datasets written as the merge does, or as `reference` did; and whether the last merge
    rebuilt the datasets table."""
    import catalog.store as store_module
    with monkeypatch.context() as patched:
        if reference:
            patched.setattr(store_module, "_write_datasets", _datasets_written_as_before_session_25)
        store = Store(db)
        for records, portal, now, rewrite in nights:
            table = rows(store, "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'datasets'")
            store.commit_portal(remapped_stage(store, records), portal, now, mark_deleted=True, rewrite=rewrite,
                                grace=timedelta(0))
        rebuilt = rows(store, "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'datasets'") != table
        assert rows(store, "SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = 'datasets' "
                           "AND constraint_type = 'PRIMARY KEY'") == [(["uid"],)]
        tables = {name: rows(store, sql) for name, sql in CATALOGUE_TABLES.items()}
        store.close()
    return tables, rebuilt


def test_a_full_night_and_an_ordinary_one_leave_the_tables_the_update_left_and_the_key(tmp_path, monkeypatch):
    """Changed datasets are deleted and inserted again, or the whole table rebuilt when most
    changed (a `--full` night), not UPDATEd (uid's primary key made that UPDATE and its COMMIT
    slow): every table is as the UPDATE left it, first_seen kept, and uid still the key."""
    city = [_entry(f"d{n}") for n in range(8)]
    first = [(city, "city", T0, False), ([_entry("z", portal="other")], "other", T0, False),
             (city[1:], "city", T0 + timedelta(days=2), False)]   # d0 deleted
    column = city[0]["columns"][0]
    remapped = [_entry("d0"), _entry("d1", title="Permits (issued)"), _entry("d2", keywords=["permits", "new"]),
                _entry("d3", themes=[]), _entry("d4", modified=None), _entry("d5", columns=[{**column, "type": "other"}]),
                _entry("d6", distributions=[]), _entry("d8")]   # d7 gone: deleted in the same transaction
    full = first + [(remapped, "city", T0 + timedelta(days=3), True)]
    few = first + [([_entry("d1", title="Permits (issued)"), *city[2:], _entry("d8")], "city",
                     T0 + timedelta(days=3), False)] + [([_entry(f"y{n}", portal="other") for n in range(30)],
                                                         "other", T0 + timedelta(days=4), False),
                                                        ([_entry("y1", portal="other", title="Y"), *(
                                                            _entry(f"y{n}", portal="other") for n in range(30))],
                                                         "other", T0 + timedelta(days=5), False)]
    for name, nights, route in (("full", full, True), ("few", few, False)):
        tables, rebuilt = _tables_after(tmp_path / f"{name}.duckdb", nights, monkeypatch, reference=False)
        expected, _ = _tables_after(tmp_path / f"{name}-reference.duckdb", nights, monkeypatch, reference=True)
        assert rebuilt is route, name
        for table in CATALOGUE_TABLES:
            assert tables[table] == expected[table], (name, table)
    store = Store(tmp_path / "full.duckdb")
    assert store.con.execute("""SELECT uid FROM datasets WHERE first_seen = ? AND last_changed = ? ORDER BY uid""",
                             [T0, T0 + timedelta(days=3)]).fetchall() == [(f"city:d{n}",) for n in range(7)]
    assert rows(store, "SELECT uid, deleted_at, missing_since FROM datasets WHERE uid IN ('city:d0', 'city:d7') "
                       "ORDER BY uid") == [("city:d0", None, None), ("city:d7", T0 + timedelta(days=3),
                                                                      T0 + timedelta(days=3))]
    store.close()


def test_a_full_night_failing_after_the_datasets_table_was_rebuilt_leaves_the_previous_one(store):
    """The rebuild (most datasets changed) runs in the merge's transaction: a failure after it
    leaves the previous table, its rows, its key and the view that reads it."""
    ids = [f"d{n}" for n in range(4)]
    store.commit_portal(remapped_stage(store, [_entry(i) for i in ids]), "city", T0, mark_deleted=True)
    before = {name: rows(store, sql) for name, sql in CATALOGUE_TABLES.items()}
    table = rows(store, "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'datasets'")
    stage = remapped_stage(store, [_entry(i, title=f"Permits {i}") for i in ids])
    stage.close()
    Path(stage.path("seen")).write_bytes(b"not parquet")  # the merge breaks after datasets were written
    with pytest.raises(duckdb.Error):
        store.commit_portal(stage, "city", T0 + timedelta(days=1), mark_deleted=True, rewrite=True)
    assert {name: rows(store, sql) for name, sql in CATALOGUE_TABLES.items()} == before
    assert rows(store, "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'datasets'") == table
    assert rows(store, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'datasets_next'") == [(0,)]
    assert rows(store, "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'datasets' "
                       "AND constraint_type = 'PRIMARY KEY'") == [("PRIMARY KEY",)]
    assert rows(store, "SELECT count(*) FROM open311_services") == [(0,)]
    # and the same merge, whole, rebuilds it
    counts = store.commit_portal(remapped_stage(store, [_entry(i, title=f"Permits {i}") for i in ids]), "city",
                                 T0 + timedelta(days=1), mark_deleted=True, rewrite=True)
    assert counts["changed"] == 4
    assert rows(store, "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'datasets'") != table
    assert rows(store, "SELECT title, first_seen FROM datasets ORDER BY uid") == [(f"Permits {i}", T0) for i in ids]
    assert rows(store, "SELECT count(*) FROM open311_services") == [(0,)]   # (the view reads the new table)


@pytest.mark.parametrize("stored", [False, True], ids=["new", "changed"])
def test_a_uid_staged_twice_is_refused_and_nothing_written(store, stored):
    """The key refuses a uid staged twice, a new dataset's or a changed one's: the UPDATE the
    merge ran before took either copy for a changed one, and stored both copies' distributions
    and columns (a dataset of one distribution with four)."""
    if stored:
        store.commit_portal(stage_of(store, [record("a"), *(record(f"x{n}") for n in range(9))]), "city", T0,
                            mark_deleted=True)
    before = {name: rows(store, sql) for name, sql in CATALOGUE_TABLES.items()}
    with pytest.raises(duckdb.ConstraintException, match='duplicate key "city:a"'):
        store.commit_portal(stage_of(store, [record("a", title="x"), record("a", title="y")]), "city",
                            T0 + timedelta(days=1), mark_deleted=False)
    after = {name: rows(store, sql) for name, sql in CATALOGUE_TABLES.items()}
    assert {**after, "raw_records": None} == {**before, "raw_records": None}   # (the raw loads are not the merge's)


class Profiled:
    """A DuckDB connection (or cursor) whose statements are profiled: for each, the rows its
    scans of the catalogue's large tables read, appended to `scans` as (statement, table, rows)."""

    TABLES = ("datasets", "distributions", "columns", "raw_records", "dataset_events")

    def __init__(self, con, scans: list):
        object.__setattr__(self, "_con", con)
        object.__setattr__(self, "_scans", scans)
        con.execute("SET enable_profiling = 'no_output'")
        con.execute("SET profiling_coverage = 'ALL'")   # (writes too, not only SELECTs)

    def execute(self, sql, *args, **kwargs):
        result = self._con.execute(sql, *args, **kwargs)
        import json

        def walk(node):
            table = (node.get("extra_info") or {}).get("Table", "")
            read = (node.get("extra_info") or {}).get("Projections")   # ('': count(*), from the row counts)
            if node.get("operator_type") == "TABLE_SCAN" and table.rsplit(".", 1)[-1] in self.TABLES and read:
                self._scans.append((" ".join(sql.split())[:70], table.rsplit(".", 1)[-1],
                                    node.get("operator_rows_scanned", 0)))
            for child in node.get("children", []):
                walk(child)
        walk(json.loads(self._con.get_profiling_information(format="json")))
        return result

    def cursor(self):
        return Profiled(self._con.cursor(), self._scans)

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __setattr__(self, name, value):
        setattr(self._con, name, value)


def test_a_portals_merge_reads_its_own_rows_not_the_whole_catalogue(tmp_path):
    """A night of 300 portals merges each in turn: a merge that read every portal's rows of
    datasets, distributions, columns and raw_records cost the night the square of the
    catalogue. A small portal beside a large one reads about its own rows (DuckDB skips the
    segments whose portal_id or uid range excludes it), nights 1 and 2 alike; dataset_events,
    which only grows, not at all."""
    from harvester.http import HttpClient
    from harvester.pipeline import harvest
    from tests.conftest import portal_config
    from tests.portals.socrata import SocrataPortal
    from tests.portals.synth import make_socrata_entries

    large = 100_000
    store = Store(tmp_path / "c.duckdb")
    try:   # another portal's rows, as its harvest would have left them (one insert each)
        store.con.execute(f"""INSERT INTO datasets BY NAME SELECT 'large:' || i AS uid, 'large' AS portal_id,
                                  'socrata' AS portal_kind, i::VARCHAR AS source_id, 'Filler ' || i AS title,
                                  now() AS first_seen, now() AS last_seen, now() AS last_changed, 'h' AS raw_hash
                              FROM range({large}) r(i)""")
        store.con.execute(f"""INSERT INTO raw_records BY NAME SELECT 'large:' || i AS uid, 'h' AS raw_hash,
                                  'large' AS portal_id, i::VARCHAR AS source_id, '{{}}' AS raw, now() AS fetched_at
                              FROM range({large}) r(i)""")
        store.con.execute(f"""INSERT INTO dataset_events BY NAME SELECT 'large:' || i AS uid, 'large' AS portal_id,
                                  now() AS occurred_at, 'new' AS event, 'h' AS raw_hash_after FROM range({large}) r(i)""")
        for table, more in (("distributions", ""), ("columns", ", 'text' AS type")):
            store.con.execute(f"""INSERT INTO {table} BY NAME SELECT 'large:' || (i // 2) AS dataset_uid,
                                      i % 2 AS position{more} FROM range({2 * large}) r(i)""")
        store.con.execute("CHECKPOINT")
        scans = []
        store.con = Profiled(store.con, scans)
        store.refresh_search = lambda: False   # (the index reads the catalogue: once a night, not a portal)
        entries = make_socrata_entries(40, domain="small.example.org")
        with SocrataPortal(entries, domain="small.example.org") as portal:
            config = portal_config("small", "socrata", portal.url, domain="small.example.org")
            assert harvest([config], store, HttpClient()).ok
            entries[0]["resource"]["name"] += " (revised)"   # night 2: one changed, one gone
            portal.entries = entries[:-1]
            night = harvest([config], store, HttpClient())
        assert night.ok and (night.portals[0].changed, night.portals[0].removed) == (1, 1)
    finally:
        store.close()
    assert scans, "no scan profiled"
    whole = [(sql, table, rows) for sql, table, rows in scans if rows >= large // 2]
    assert not whole, "statements that read the other portal's rows:\n" + "\n".join(map(str, whole))


def test_a_night_of_many_portals_writes_its_merges_into_the_file_as_it_goes(tmp_path, monkeypatch):
    """What a merge commits stays in the write-ahead log, and in DuckDB's memory, until a
    checkpoint; DuckDB's own comes at 1 GB of log (see connect), so a night of 300 portals
    kept every portal's writes until the harvest closed the catalogue: past ~120 portals each
    merge no longer fit the memory limit (retried with 1 GB), the search index's update failed,
    and the close's checkpoint did not happen (no read copy; the next open replayed 676 MB of
    log). Once a merge leaves the log past CHECKPOINT_WAL_BYTES, the catalogue is checkpointed."""
    from catalog import store as store_module
    from harvester.http import HttpClient
    from harvester.pipeline import harvest
    from tests.conftest import portal_config
    from tests.portals.socrata import SocrataPortal
    from tests.portals.synth import make_socrata_entries

    monkeypatch.setattr(store_module, "CHECKPOINT_WAL_BYTES", 256 << 10, raising=False)
    db = tmp_path / "c.duckdb"
    wal = tmp_path / "c.duckdb.wal"
    store = Store(db)
    logs = []   # the log's size after each portal's merge
    commit = store.commit_portal

    def commit_and_measure(*args, **kwargs):
        counts = commit(*args, **kwargs)
        logs.append(wal.stat().st_size if wal.exists() else 0)
        return counts
    store.commit_portal = commit_and_measure
    portals = [SocrataPortal(make_socrata_entries(300, domain=f"p{i}.example.org", seed=i),
                             domain=f"p{i}.example.org").start() for i in range(6)]
    try:
        configs = [portal_config(f"p{i}", "socrata", p.url, domain=f"p{i}.example.org") for i, p in enumerate(portals)]
        report = harvest(configs, store, HttpClient())
        assert report.ok
        live = store.con.execute("SELECT count(*) FROM datasets").fetchone()[0]
    finally:
        for portal in portals:
            portal.stop()
        store.close()
    assert live == 1800
    assert len(logs) == 6 and max(logs) < 256 << 10, f"the log after each portal's merge: {logs}"


# one raw load in a process of its own: how much its memory grows (VmHWM: the peak since exec)
RAW_LOAD_GROWTH = """
import sys
from pathlib import Path
from catalog.store import Store

def kib(field):
    return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith(field + ":")))

db, part, portal = sys.argv[1:4]
store = Store(db)
before = kib("VmRSS")
store.load_raw([Path(part)], 4000, **({"portal_id": portal} if portal else {}))
print((kib("VmHWM") - before) // 1024)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM (Linux)")
def test_a_portals_raw_load_holds_no_more_than_a_load_of_every_portal(tmp_path):
    """A portal's raw loads compare its entries with its own datasets only (session 26); asked
    with NOT EXISTS and that filter, DuckDB ran a delim join, which held the row group's staged
    rows, raw JSON and all: +41 MB at 16,384 Socrata entries, the first harvest's peak."""
    import json
    import subprocess
    import sys

    from catalog.store import ROW_GROUP_ROWS
    part = tmp_path / "part.tsv"
    padding = "x" * 2600   # (40 MB of raw JSON in all, as a row group of Socrata's entries)
    with open(part, "w") as lines:
        for n in range(ROW_GROUP_ROWS):
            raw = canonical_json({"id": f"id{n}", "padding": padding})
            key = json.dumps([f"city:id{n}", content_hash(raw), "city", f"id{n}"])
            lines.write(f"{key}\t{raw}\t\n")
    repo = str(Path(__file__).resolve().parents[2])

    def growth_mb(portal: str) -> int:
        db = tmp_path / f"{portal or 'all'}.duckdb"
        child = subprocess.run([sys.executable, "-c", RAW_LOAD_GROWTH, str(db), str(part), portal], cwd=repo,
                               capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": repo})
        assert child.returncode == 0, child.stderr
        assert duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM raw_records").fetchone() == (
            ROW_GROUP_ROWS,)
        return int(child.stdout)

    every_portal, one_portal = growth_mb(""), growth_mb("city")
    assert one_portal <= every_portal + 15, (one_portal, every_portal)


def test_a_checkpoint_that_does_not_fit_is_retried_and_leaves_the_catalogue_usable(store, monkeypatch, caplog):
    """A CHECKPOINT that cannot pin a block under the memory limit fails with an IO error
    (not an out-of-memory one) and invalidates the database: every statement after it failed
    ("Detach and reattach it before using it again"), and the harvest's close left the log and
    no read copy. It is retried with MERGE_MEMORY_LIMIT on the catalogue attached again."""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record(f"d{i:05d}", title=f"Permits {i} " + "x" * 200)
                                         for i in range(3_000)]), "city", T0, mark_deleted=True)
    assert store.wal_bytes() > 0
    # the tightest limit DuckDB accepts with what the merge left held (4 MB before dataset_events,
    # 5 MB with them): the checkpoint cannot pin its blocks under it
    limit = next(limit for limit in (f"{mb}MB" for mb in range(4, 33)) if _accepted(store, limit))
    small = rows(store, "SELECT current_setting('memory_limit')")
    monkeypatch.setattr(store_module, "MEMORY_LIMIT", limit)
    with caplog.at_level("WARNING", logger="civicat.store"):
        assert store.checkpoint("the checkpoint as the catalogue closes")
    assert f"the checkpoint as the catalogue closes did not fit in {limit}" in caplog.text
    assert store.wal_bytes() == 0
    assert rows(store, "SELECT count(*) FROM datasets") == [(3_000,)]
    assert rows(store, "SELECT current_setting('memory_limit')") == small  # back to the small limit
    store.commit_portal(stage_of(store, [record("e00001")]), "city", T0 + timedelta(days=1), mark_deleted=False)
    assert rows(store, "SELECT count(*) FROM datasets") == [(3_001,)]


def _accepted(store, limit: str) -> bool:
    """Whether DuckDB takes `limit` as its memory limit (it refuses one it cannot free down to)."""
    try:
        store.con.execute(f"SET memory_limit = '{limit}'")
        return True
    except duckdb.OutOfMemoryException:
        return False


class _SqueezedBeforeDelete:
    """A connection whose memory limit drops to `limit` just before the first statement that
    starts with `statement` (once): that DELETE runs out of memory half-way."""

    def __init__(self, con, statement: str, limit: str):
        self._con, self._statement, self._limit, self.squeezed = con, statement, limit, False

    def execute(self, sql, *args, **kwargs):
        if not self.squeezed and sql.lstrip().startswith(self._statement):
            self.squeezed = True
            try:
                self._con.execute(f"SET memory_limit = '{self._limit}'")
            except duckdb.OutOfMemoryException:   # (it does not go that low now: this round fits)
                pass
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_a_search_index_update_that_ran_out_of_memory_half_way_is_retried(store, caplog):
    """The update's DELETE of the changed documents (of their postings too, until the postings
    were written anew instead), out of memory half-way, leaves their rows marked by its
    rolled-back transaction; its retry with more memory on the same
    database failed with "Conflict on tuple deletion!" (at 300 portals: search answered from
    the night before). Several limits, as where the DELETE breaks varies with them."""
    from catalog.search import search

    words = "permits crime salaries budget trees parking water housing".split()
    store.commit_portal(stage_of(store, [record(f"d{i:05d}", title=f"{words[i % 8]} {words[i // 8 % 8]} {i} "
                                                + " ".join(f"w{i * j % 997}" for j in range(20)))
                                         for i in range(3_000)]), "city", T0, mark_deleted=True)
    assert store.refresh_search()
    store.con.execute("CHECKPOINT")
    real = store.con
    with caplog.at_level("WARNING", logger="civicat.store"):
        for round, limit in enumerate(("8MB", "10MB", "8MB", "12MB", "8MB")):
            changed = range(round * 50, round * 50 + 50)
            store.con = real
            store.commit_portal(stage_of(store, [record(f"d{i:05d}", title=f"quokka{round} {i}") for i in changed]),
                                "city", datetime.now(UTC), mark_deleted=False)   # (after the index's build)
            store.con = _SqueezedBeforeDelete(real, "DELETE FROM search_documents", limit)
            assert store.refresh_search(), caplog.text
            store.con = real
            assert sorted(hit["uid"] for hit in search(real, f"quokka{round}", limit=200)) == [
                f"city:d{i:05d}" for i in changed]
            assert rows(store, "SELECT updated > 0 FROM search_state") == [(True,)]   # updated, not rebuilt
    assert "the search index did not fit in" in caplog.text, "no round ran out of memory"
    assert "was not rebuilt" not in caplog.text


def test_a_retry_on_the_catalogue_attached_again_waits_for_a_statement_of_another_cursor(store, monkeypatch):
    """A records pull runs its statements on a cursor of its own (harvest_records), in its portal's
    thread, while the night's other writes run. A write retried on the catalogue attached again
    (the search index's, after running out of memory) detaches it; while another cursor's
    statement held the catalogue, DuckDB let the DETACH pass and refused the ATTACH ("Unique file
    handle conflict"): the store was left without its catalogue, every later statement failing
    ('Catalog "catalogue" does not exist'). The ATTACH waits until that statement lets the file go.
    (The store's own cursors wait for the re-attach now, and it for their transactions: _Gate; a
    cursor of the connection made otherwise does not.)"""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    reader = _cursor_outside_the_gate(store)   # (its statement under way as the write is retried)
    reader.execute("BEGIN TRANSACTION")
    assert reader.execute("SELECT count(*) FROM datasets").fetchone() == (1,)
    attach, attempts = store_module._attach, []

    def attach_then_the_reader_ends(con, db_path):
        attempts.append(db_path)
        try:
            attach(con, db_path)
        finally:
            if len(attempts) == 1:
                reader.execute("COMMIT")

    failed, out_of_memory_once = _a_count_out_of_memory_once(store)
    monkeypatch.setattr(store_module, "_attach", attach_then_the_reader_ends)
    assert store._with_room("the search index", out_of_memory_once, afresh=True) == (1,)
    assert failed and len(attempts) >= 2, attempts   # (retried, the first ATTACH refused while the reader held it)
    store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0 + timedelta(days=1), mark_deleted=True)
    assert rows(store, "SELECT uid FROM datasets ORDER BY uid") == [("city:a",), ("city:b",)]
    reader.close()


def _a_count_out_of_memory_once(store):
    """A write for Store._with_room that runs out of memory the first time (its retry attaches
    the catalogue again when `afresh`), then counts the datasets: (its failures, the write)."""
    failed = []

    def out_of_memory_once():
        if not failed:
            failed.append(True)
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB")
        return store.con.execute("SELECT count(*) FROM datasets").fetchone()
    return failed, out_of_memory_once


def _cursor_outside_the_gate(store):
    """A cursor of the store's connection on the catalogue, not made by Store.cursor: its
    statements do not pass the store's _Gate."""
    reader = store.con.cursor()
    reader.execute("USE catalogue")
    return reader


def _memory_held(store) -> int:
    """The tightest memory limit DuckDB accepts, in MB: what it holds and cannot evict (it
    refuses a limit it cannot free down to); the store's limit is put back after."""
    low, high = 1, 128
    while low < high:
        middle = (low + high) // 2
        if _accepted(store, f"{middle}MB"):
            high = middle
        else:
            low = middle + 1
    store.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    return low


def test_a_merge_whose_deletes_duckdb_would_hold_rebuilds_the_tables_it_deleted_from(store, monkeypatch):
    """DuckDB 1.5 holds, for every row group with deleted rows, their version info, and neither
    a checkpoint nor its buffer manager frees it: at 300 portals, night 3 (a few percent of every
    portal changed: a changed dataset's distributions and columns deleted and inserted again, in
    nearly every row group) it filled the memory limit until every merge was retried with 1 GB.
    Past VACUUM_BYTES of them the tables are rebuilt, without deletes, their rows unchanged."""
    import catalog.store as store_module

    columns = [{"position": i, "name": f"Column {i}", "field_name": f"column_{i}", "type": "text",
                "source_type": "Text", "description": None} for i in range(200)]
    night1 = [record(f"d{i:05d}", columns=columns) for i in range(3_000)]   # (600,000 columns: 37 row groups)
    store.commit_portal(stage_of(store, night1), "city", T0, mark_deleted=True)
    store.checkpoint("the test's checkpoint")
    before = _memory_held(store)
    expected = rows(store, "SELECT dataset_uid, position, name FROM columns WHERE dataset_uid NOT LIKE '%0' "
                           "ORDER BY ALL")
    monkeypatch.setattr(store_module, "VACUUM_BYTES", 2 * store_module.ROW_GROUP_DELETES_BYTES)
    # every tenth dataset changed (its title), spread over every row group of columns
    changed = [record(f"d{i:05d}", title="Building permits, corrected", columns=columns) for i in range(0, 3_000, 10)]
    counts = store.commit_portal(stage_of(store, changed, seen_extra=[r["uid"] for r in night1]), "city",
                                 T0 + timedelta(days=1), mark_deleted=True)
    assert counts["changed"] == 300
    assert _memory_held(store) <= before + 2   # (the uid index's changes: 1 MB; without the rebuild 13)
    assert store.deletes_held() == 0
    assert rows(store, "SELECT dataset_uid, position, name FROM columns WHERE dataset_uid NOT LIKE '%0' "
                       "ORDER BY ALL") == expected
    assert rows(store, "SELECT count(*), count(DISTINCT dataset_uid) FROM columns") == [(600_000, 3_000)]
    assert rows(store, "SELECT count(*) FROM distributions") == [(3_000,)]


def test_a_catalogue_that_could_not_be_attached_again_is_attached_by_the_next_use_or_refused_clearly(
        store, monkeypatch, caplog):
    """A checkpoint that fails for want of memory invalidates the catalogue, which is detached and
    attached again. When that ATTACH failed, the catalogue was left detached: the checkpoint
    raised from its `finally` and every later statement failed on a missing catalogue. Now the
    failure is logged, and the next use attaches it, or says clearly that it cannot, nothing lost."""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record(f"d{i:05d}", title=f"Permits {i} " + "x" * 200)
                                         for i in range(3_000)]), "city", T0, mark_deleted=True)
    limit = next(limit for limit in (f"{mb}MB" for mb in range(4, 33)) if _accepted(store, limit))
    small = store_module.MEMORY_LIMIT
    monkeypatch.setattr(store_module, "MEMORY_LIMIT", limit)   # (the checkpoint cannot pin its blocks)
    attach, refused = store_module._attach, []

    def refusing(con, db_path):
        refused.append(db_path)
        raise duckdb.IOException("IO Error: Could not set lock on file (the test's)")

    monkeypatch.setattr(store_module, "_attach", refusing)
    with caplog.at_level("WARNING", logger="civicat.store"):
        assert not store.checkpoint("the checkpoint as the catalogue closes")
    assert "could not be attached again" in caplog.text
    assert len(refused) == 2   # (the retry's, then the one that leaves it usable)
    with pytest.raises(store_module.CatalogueDetached, match="nothing it committed is lost") as refusal:
        store.commit_portal(stage_of(store, [record("e00001")]), "city", T0 + timedelta(days=1), mark_deleted=False)
    assert str(store.db_path) in str(refusal.value) and "Could not set lock" in str(refusal.value)
    monkeypatch.setattr(store_module, "_attach", attach)   # (the file let go)
    monkeypatch.setattr(store_module, "MEMORY_LIMIT", small)
    assert rows(store, "SELECT count(*) FROM datasets") == [(3_000,)]
    assert rows(store, "SELECT current_setting('memory_limit')") == [("122.0 MiB",)]
    store.commit_portal(stage_of(store, [record("e00001")]), "city", T0 + timedelta(days=1), mark_deleted=False)
    assert rows(store, "SELECT count(*) FROM datasets") == [(3_001,)]


def test_a_stop_ends_the_wait_for_another_cursors_statement_to_let_the_catalogue_go(store, monkeypatch):
    """Attaching the catalogue again waits for a statement of another cursor (a records pull's,
    in its portal's thread) that holds its file, REATTACH_WAIT_SECONDS at most (600 s): a Ctrl-C
    or SIGTERM did not end that wait, and the harvest's portal threads are joined before it
    exits. The stop (Store.stop_waiting, registered by the harvest) ends it; the catalogue is
    attached by its next use once the file is let go."""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 300.0)
    reader = _cursor_outside_the_gate(store)
    reader.execute("BEGIN TRANSACTION")
    assert reader.execute("SELECT count(*) FROM datasets").fetchone() == (1,)
    attach, attempts = store_module._attach, []

    def counted(con, db_path):
        attempts.append(db_path)
        attach(con, db_path)

    monkeypatch.setattr(store_module, "_attach", counted)
    ended: list[BaseException] = []

    def retried_write():
        failed = []

        def out_of_memory_once():
            if not failed:
                failed.append(True)
                raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB")
        try:
            store._with_room("the search index", out_of_memory_once, afresh=True)
        except BaseException as exc:
            ended.append(exc)

    waiting = threading.Thread(target=retried_write)
    waiting.start()
    while len(attempts) < 2 and waiting.is_alive():   # (refused at least once: the reader holds the file)
        time.sleep(0.01)
    store.stop_waiting()
    waiting.join(60)
    assert not waiting.is_alive(), "the stop did not end the wait"
    assert len(ended) == 1 and isinstance(ended[0], store_module.AttachStopped), ended
    reader.execute("COMMIT")
    reader.close()
    assert rows(store, "SELECT count(*) FROM datasets") == [(1,)]   # (attached by this use)



def test_the_deletes_held_are_counted_while_another_portal_s_thread_resets_a_rebuilt_table(store):
    """commit_portal asks how much the deletes hold outside the write lock, while another portal's
    thread may be taking a rebuilt table out of the deleted row groups (vacuum, under the lock): the
    count iterated the dict as it changed, and its RuntimeError ('dictionary keys changed during
    iteration') came out of a merge already committed, failing that portal. Thread switches are
    forced as often as the interpreter allows, so that the two meet."""
    import sys

    from catalog.store import ROW_GROUP_DELETES_BYTES

    store._deleted_groups = {"distributions": {1}, "columns": {2, 3}}
    done, failed, counts = threading.Event(), [], set()

    def counting():
        while not done.is_set():
            try:
                counts.add(store.deletes_held() // ROW_GROUP_DELETES_BYTES)
            except RuntimeError as exc:
                failed.append(exc)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    counter = threading.Thread(target=counting)
    try:
        counter.start()
        for _ in range(500_000):   # (vacuum's reset of a table, then the next merge's groups)
            store._deleted_groups.pop("columns", None)
            store._deleted_groups.setdefault("columns", set()).update({2, 3})
    finally:
        done.set()
        counter.join()
        sys.setswitchinterval(interval)
    assert failed == []
    assert counts <= {1, 3} and 3 in counts   # (a table's groups counted whole, or not at all)


def _another_cursor_at_work(store, expected_datasets: int):
    """A records pull's cursor (Store.cursor) in a thread of its own, as a portal harvested with
    --workers does beside the others' writes: a read of portal `city`, then a transaction that
    writes (record_pull's shape), over and over until `done` is set or a statement fails. Returns
    (done, thread, rounds run, errors)."""
    reader = store.cursor()
    done, ran, errors = threading.Event(), [0], []

    def work():
        try:
            while not done.is_set():
                try:
                    assert reader.execute("SELECT count(*) FROM datasets WHERE portal_id = 'city'").fetchone() == (
                        expected_datasets,)
                    reader.execute("BEGIN TRANSACTION")
                    reader.execute("DELETE FROM harvest_errors WHERE run_id = 'the reader'")
                    reader.execute("INSERT INTO harvest_errors (run_id, portal_id, stage, error_type, severity, message, "
                                   "occurred_at) VALUES ('the reader', 'city', 'records', 'Test', 'error', 'x', now())")
                    reader.execute("COMMIT")
                    ran[0] += 1
                except duckdb.Error as exc:
                    if _out_of_memory(exc):   # (a limit squeezed by the test: not what it looks for)
                        rollback(reader)
                        continue
                    errors.append(f"{type(exc).__name__}: {exc}")   # (the first is enough: others follow it)
                    return
        finally:
            reader.close()

    thread = threading.Thread(target=work)
    thread.start()
    return done, thread, ran, errors


def test_another_cursors_statements_never_meet_the_catalogue_detached_for_a_retry(store, caplog):
    """The search index's retry attaches the catalogue again (see _with_room's `afresh`): the
    statements another cursor ran meanwhile (a records pull's, in its portal's thread) failed
    ('Catalog "catalogue" does not exist!', between the DETACH and the ATTACH). They wait for the
    catalogue now, and the re-attach waits for a transaction of theirs to end."""
    store.commit_portal(stage_of(store, [record(f"d{i}") for i in range(50)]), "city", T0, mark_deleted=True)
    done, thread, ran, errors = _another_cursor_at_work(store, 50)
    try:
        for attempt in range(30):
            failed, out_of_memory_once = _a_count_out_of_memory_once(store)
            with caplog.at_level("ERROR"):
                assert store._with_room("the search index", out_of_memory_once, afresh=True) == (50,)
            assert failed
            time.sleep(0.005)   # (the reader's turn)
    finally:
        done.set()
        thread.join(60)
    assert errors == []
    assert ran[0] > 0
    assert rows(store, "SELECT count(*) FROM harvest_errors WHERE run_id = 'the reader'") == [(1,)]


def test_another_cursors_statements_never_meet_the_catalogue_a_failed_checkpoint_invalidated(store, monkeypatch):
    """A CHECKPOINT that does not fit invalidates the catalogue until it is attached again (see
    test_a_checkpoint_that_does_not_fit_is_retried_and_leaves_the_catalogue_usable): another
    cursor's statements failed in between ('has been invalidated', then 'does not exist'). They
    wait until the checkpoint and its re-attach are done, and run on the catalogue attached again."""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record(f"d{i:05d}", title=f"Permits {i} " + "x" * 200)
                                         for i in range(3_000)]), "city", T0, mark_deleted=True)
    done, thread, ran, errors = _another_cursor_at_work(store, 3_000)
    try:
        while not ran[0] and thread.is_alive():
            time.sleep(0.001)
        # (DuckDB refuses a limit under what the reader's statement has pinned at that moment: under
        # load one was in flight at every try of the sizes once, StopIteration; tried again until one is taken)
        deadline = time.monotonic() + 30
        while (limit := next((limit for limit in (f"{mb}MB" for mb in range(4, 33)) if _accepted(store, limit)),
                             None)) is None:
            assert time.monotonic() < deadline, "no memory limit from 4 to 32 MB taken in 30 s"
            time.sleep(0.01)
        monkeypatch.setattr(store_module, "MEMORY_LIMIT", limit)   # (the checkpoint cannot pin its blocks)
        logged = store.wal_bytes()
        assert logged > 500_000   # (the 3,000 datasets' merge)
        assert store.checkpoint("the checkpoint as the catalogue closes")
        # the log written into the file: what is left is the reader's rounds since (a few hundred bytes each)
        assert store.wal_bytes() < logged // 10
        ran_before = ran[0]
        while ran[0] == ran_before and thread.is_alive():   # (a round of the reader's on the catalogue attached again)
            time.sleep(0.001)
    finally:
        done.set()
        thread.join(60)
    assert errors == []
    assert ran[0] > ran_before
    assert rows(store, "SELECT count(*) FROM datasets WHERE portal_id = 'city'") == [(3_000,)]


def test_a_stop_ends_the_wait_for_another_cursors_transaction_and_nothing_is_detached(store, monkeypatch):
    """A re-attach waits for a transaction of another store cursor to end (_Gate), as long as
    REATTACH_WAIT_SECONDS; a stop ends that wait (AttachStopped), the catalogue left attached, the
    transaction and the store going on."""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 300.0)
    reader = store.cursor()
    reader.execute("BEGIN TRANSACTION")
    assert reader.execute("SELECT count(*) FROM datasets").fetchone() == (1,)
    ended: list[BaseException] = []

    def reattach():
        try:
            with store._write_lock:
                store._reattach()
        except BaseException as exc:
            ended.append(exc)

    waiting = threading.Thread(target=reattach)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive(), ended   # (waiting for the reader's transaction)
    store.stop_waiting()
    waiting.join(60)
    assert not waiting.is_alive(), "the stop did not end the wait"
    assert len(ended) == 1 and isinstance(ended[0], store_module.AttachStopped), ended
    assert store._detached is None
    reader.execute("INSERT INTO harvest_runs (run_id, portal_id, started_at, status) VALUES ('r', 'city', now(), 'ok')")
    reader.execute("COMMIT")
    reader.close()
    assert rows(store, "SELECT count(*) FROM harvest_runs WHERE run_id = 'r'") == [(1,)]


@pytest.mark.parametrize("begun_by", ["statements", "calls"])
def test_a_re_attach_waits_for_another_cursors_transaction_to_end(store, monkeypatch, begun_by):
    """A transaction of another store cursor (record_pull's) runs whole on the catalogue it began
    on: the re-attach waits for its COMMIT (before, its statements after the DETACH failed). So too
    for one begun and committed by the cursor's calls, begin() and commit(), which the gate did not
    see: its statement after the DETACH failed (its attach waited for the transaction's file)."""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 30.0)
    reader = store.cursor()
    reader.execute("BEGIN TRANSACTION") if begun_by == "statements" else reader.begin()
    assert reader.execute("SELECT count(*) FROM datasets").fetchone() == (1,)
    waiting, reattached = _reattach_in_a_thread(store)
    assert not reattached.wait(0.3)
    reader.execute("INSERT INTO harvest_runs (run_id, portal_id, started_at, status) VALUES ('r', 'city', now(), 'ok')")
    reader.execute("COMMIT") if begun_by == "statements" else reader.commit()
    waiting.join(60)
    assert reattached.is_set()
    assert reader.execute("SELECT count(*) FROM harvest_runs WHERE run_id = 'r'").fetchone() == (1,)   # (attached again)
    reader.close()


def _reattach_in_a_thread(store):
    """Store._reattach (the write lock held) started in a thread of its own: (the thread, done)."""
    reattached = threading.Event()

    def reattach():
        with store._write_lock:
            store._reattach()
        reattached.set()

    waiting = threading.Thread(target=reattach)
    waiting.start()
    return waiting, reattached


def test_a_rebuild_keeps_each_portals_rows_together_so_that_a_merge_touches_few_row_groups(store, monkeypatch):
    """A rebuild of `columns` (Store.vacuum) copied the rows in whatever order DuckDB's threads gave
    them, and each rebuild spread a portal's rows over more of the table's row groups: after a dozen
    nights at 10 portals every portal's columns lay in 121 of 123 row groups, so that every merge
    deleted rows from nearly all of them and the tables were rebuilt after every merge (10 a night,
    the night's CPU 5 -> 16 s). The rebuild writes them in the order of their dataset (a portal's
    uids together): a portal's rows lie in as few row groups as its share of the table."""
    import random

    import catalog.store as store_module
    from catalog.store import ROW_GROUP_ROWS

    columns = [{"position": i, "name": f"Column {i}", "field_name": f"column_{i}", "type": "text",
                "source_type": "Text", "description": None} for i in range(40)]
    portals = ("a", "b", "c", "d")
    for portal in portals:   # (4 x 2,000 x 40 = 320,000 columns: 20 row groups, 5 a portal)
        store.commit_portal(stage_of(store, [record(f"d{i:05d}", portal=portal, columns=columns) for i in range(2_000)]),
                            portal, T0, mark_deleted=True)
    monkeypatch.setattr(store_module, "VACUUM_BYTES", 3 * store_module.ROW_GROUP_DELETES_BYTES)
    chosen = random.Random(29)
    for night in range(1, 4):
        for portal in portals:
            changed = [record(f"d{i:05d}", portal=portal, title=f"Permits v{night}", columns=columns)
                       for i in chosen.sample(range(2_000), 100)]
            store.commit_portal(stage_of(store, changed, seen_extra=[f"{portal}:d{i:05d}" for i in range(2_000)]),
                                portal, T0 + timedelta(days=night), mark_deleted=True)
    store.vacuum("the test's rebuild")
    spread = dict(rows(store, f"""SELECT split_part(dataset_uid, ':', 1), count(DISTINCT rowid // {ROW_GROUP_ROWS})
                                  FROM columns GROUP BY ALL"""))
    assert max(spread.values()) <= 6, spread   # (5 a portal, and a row group two portals share)


def test_the_row_groups_earlier_harvests_left_with_deletes_count_towards_the_rebuild(tmp_path, monkeypatch):
    """The row groups of distributions and columns holding deletes were counted by the process
    alone: a harvest whose merges deleted less than VACUUM_BYTES, or one stopped before its rebuild,
    left them uncounted by the next, and a catalogue harvested (or stopped) often was never
    rebuilt. The first merge that deletes reads those earlier harvests left from DuckDB's storage."""
    import catalog.store as store_module
    from catalog.store import ROW_GROUP_DELETES_BYTES, ROW_GROUP_ROWS

    columns = [{"position": i, "name": f"Column {i}", "field_name": f"column_{i}", "type": "text",
                "source_type": "Text", "description": None} for i in range(200)]
    night1 = [record(f"d{i:05d}", columns=columns) for i in range(3_000)]   # (600,000 columns: 37 row groups)
    seen = [r["uid"] for r in night1]
    first = Store(tmp_path / "c.duckdb")
    first.commit_portal(stage_of(first, night1), "city", T0, mark_deleted=True)
    changed = [record(f"d{i:05d}", title="Permits, corrected", columns=columns) for i in range(0, 3_000, 500)]
    first.commit_portal(stage_of(first, changed, seen_extra=seen), "city", T0 + timedelta(days=1), mark_deleted=True)
    left = {table: set(groups) for table, groups in first._deleted_groups.items()}
    assert len(left["columns"]) >= 2, left
    first.close()   # (the harvest ends: a stop, or its merges deleted less than VACUUM_BYTES)

    second = Store(tmp_path / "c.duckdb")
    try:
        untouched = second.con.execute(
            f"SELECT dataset_uid FROM columns WHERE NOT list_contains($left, rowid // {ROW_GROUP_ROWS}) "
            "ORDER BY dataset_uid LIMIT 1", {"left": sorted(left["columns"])}).fetchone()[0]
        expected = rows(second, "SELECT dataset_uid, position, name FROM columns ORDER BY ALL")
        # (more than the second harvest's own merge deletes from, at most what both did)
        monkeypatch.setattr(store_module, "VACUUM_BYTES", ROW_GROUP_DELETES_BYTES * (sum(map(len, left.values())) + 1))
        source_id = untouched.split(":", 1)[1]
        counts = second.commit_portal(stage_of(second, [record(source_id, title="Permits, corrected again",
                                                               columns=columns)], seen_extra=seen),
                                      "city", T0 + timedelta(days=2), mark_deleted=True)
        assert counts["changed"] == 1
        assert second.deletes_held() == 0, second._deleted_groups   # (rebuilt: the first harvest's groups counted)
        assert rows(second, "SELECT dataset_uid, position, name FROM columns ORDER BY ALL") == expected
        from catalog.store import _row_groups_with_deletes
        cur = second.cursor()
        try:
            assert {table: _row_groups_with_deletes(cur, table) for table in left} == {"distributions": set(),
                                                                                     "columns": set()}
        finally:
            cur.close()
    finally:
        second.close()


def test_the_row_groups_with_deletes_read_from_storage_are_those_the_merges_counted(store):
    """What _row_groups_with_deletes reads from DuckDB's storage is what the merges counted (the
    same numbering), and rows a transaction inserted are not taken for deleted ones."""
    from catalog.store import _row_groups_with_deletes

    columns = [{"position": i, "name": f"Column {i}", "field_name": f"column_{i}", "type": "text",
                "source_type": "Text", "description": None} for i in range(50)]
    night1 = [record(f"d{i:05d}", columns=columns) for i in range(2_000)]   # (100,000 columns: 7 row groups)
    store.commit_portal(stage_of(store, night1), "city", T0, mark_deleted=True)
    cur = store.cursor()
    try:
        assert _row_groups_with_deletes(cur, "columns") == set()
        changed = [record(f"d{i:05d}", title="Permits, corrected", columns=columns) for i in (0, 1_999)]
        store.commit_portal(stage_of(store, changed, seen_extra=[r["uid"] for r in night1]), "city",
                            T0 + timedelta(days=1), mark_deleted=True)
        assert _row_groups_with_deletes(cur, "columns") == store._deleted_groups["columns"] != set()
        assert _row_groups_with_deletes(cur, "distributions") == store._deleted_groups["distributions"] == {0}
        cur.execute("BEGIN TRANSACTION")
        cur.execute("INSERT INTO columns (dataset_uid, position, name, type) SELECT 'city:x', range, 'x', 'text' FROM range(20000)")
        assert _row_groups_with_deletes(cur, "columns") == store._deleted_groups["columns"]
        cur.execute("ROLLBACK")
    finally:
        cur.close()


class _StopHeldThrough:
    """A DuckDB connection (a cursor's, or the store's own) on which a stop (Ctrl-C, SIGTERM) comes
    during the first statement that starts with `statement` and is held until it returns, as
    catalog.uncut holds one through every statement it does not interrupt (a COMMIT, a CHECKPOINT)."""

    def __init__(self, con, statement: str):
        self._con, self._statement, self.held = con, statement, False

    def execute(self, sql, *args, **kwargs):
        from catalog import uncut

        result = self._con.execute(sql, *args, **kwargs)
        if not self.held and sql.lstrip().upper().startswith(self._statement):
            self.held = True
            uncut.hold(KeyboardInterrupt())
        return self if result is self._con else result

    def __getattr__(self, name):
        return getattr(self._con, name)


@pytest.mark.parametrize("during", ["the merge's COMMIT", "the rebuild's COMMIT", "the checkpoint"])
def test_a_stop_held_through_a_commit_or_checkpoint_says_that_step_was_done(store, monkeypatch, during):
    """A stop that came during a COMMIT or a CHECKPOINT (never interrupted: held until it returns)
    was said to have left that step undone: the merge's ('before this portal was stored; its previous
    catalogue is kept', the portal stored), the rebuild's of distributions ('the rebuild of
    distributions and columns was not done'), the checkpoint's ('was not done', the log written).
    What it says now is what happened."""
    import catalog.store as store_module
    from catalog.store import StoppedAfterStoring

    columns = [{"position": i, "name": f"Column {i}", "field_name": f"column_{i}", "type": "text",
                "source_type": "Text", "description": None} for i in range(20)]
    night1 = [record(f"d{i:04d}", columns=columns) for i in range(500)]
    store.commit_portal(stage_of(store, night1), "city", T0, mark_deleted=True)
    store.checkpoint("the test's checkpoint")
    stopped_in = {"the merge's COMMIT": "_merge", "the rebuild's COMMIT": "vacuum", "the checkpoint": "checkpoint"}[during]
    if during == "the rebuild's COMMIT":
        monkeypatch.setattr(store_module, "VACUUM_BYTES", 1)
    if during == "the checkpoint":
        monkeypatch.setattr(store_module, "CHECKPOINT_WAL_BYTES", 1)
    cursor, method, held = store.cursor, getattr(store, stopped_in), []

    def holding_cursor():   # (the merge's and the rebuild's transaction: on a cursor of their own)
        cur = cursor()
        if not held:
            cur._con = _StopHeldThrough(cur._con, "COMMIT")
            held.append(cur._con)
        return cur

    def stopped_during(*args, **kwargs):
        if held:   # (once)
            return method(*args, **kwargs)
        if during == "the checkpoint":   # (on the store's connection)
            raw = store._con._con
            store._con._con = _StopHeldThrough(raw, "CHECKPOINT")
            held.append(store._con._con)
            try:
                return method(*args, **kwargs)
            finally:
                store._con._con = raw
        monkeypatch.setattr(store, "cursor", holding_cursor)
        try:
            return method(*args, **kwargs)
        finally:
            monkeypatch.setattr(store, "cursor", cursor)

    monkeypatch.setattr(store, stopped_in, stopped_during)
    changed = [record(f"d{i:04d}", title="Permits, corrected", columns=columns) for i in range(0, 500, 50)]
    with pytest.raises(StoppedAfterStoring) as stopped:
        store.commit_portal(stage_of(store, changed, seen_extra=[r["uid"] for r in night1]), "city",
                            T0 + timedelta(days=1), mark_deleted=True)
    assert held and held[0].held, "no stop was held"
    assert stopped.value.counts["changed"] == 10
    assert rows(store, "SELECT count(*) FROM datasets WHERE title = 'Permits, corrected'") == [(10,)]
    if during == "the merge's COMMIT":
        assert stopped.value.left == "nothing was left undone (its merge's COMMIT finished before the stop took effect)"
    elif during == "the rebuild's COMMIT":   # (distributions rebuilt; columns, after it, not begun)
        assert stopped.value.left.startswith("the rebuild of columns that frees the memory"), stopped.value.left
        assert stopped.value.left.endswith("(the rebuild of distributions finished before the stop took effect)")
        assert set(store._deleted_groups) == {"columns"}
    else:
        assert store.wal_bytes() == 0
        assert stopped.value.left == ("nothing was left undone (the checkpoint after its merge finished before the "
                                      "stop took effect)")
    store.commit_portal(stage_of(store, [record("e0001")], seen_extra=[r["uid"] for r in night1]), "city",
                        T0 + timedelta(days=2), mark_deleted=False)   # (the store goes on)
    assert rows(store, "SELECT count(*) FROM datasets") == [(501,)]


@pytest.mark.parametrize("reader", ["df", "fetch_arrow_table", "arrow", "fetchnumpy", "pl"])
def test_a_store_cursors_result_read_other_than_as_rows_is_refused_at_once(store, reader):
    """A store cursor reads a statement's rows whole as it runs (so that no result left open holds
    the catalogue's file): .df(), .fetch_arrow_table() and the like then met DuckDB's 'no open
    result set'. They are refused at once, naming what to use; the cursor goes on."""
    from catalog.store import StoreCursorMisuse

    store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0, mark_deleted=True)
    cur = store.cursor()
    try:
        cur.execute("SELECT uid FROM datasets ORDER BY uid")
        with pytest.raises(StoreCursorMisuse, match=rf"^{reader}\(\) on a store cursor: .* fetchall\(\)"):
            getattr(cur, reader)()
        assert cur.fetchall() == [("city:a",), ("city:b",)]
        assert store._gate._shared == 0
    finally:
        cur.close()


def test_a_relation_from_a_store_cursor_is_refused_at_once(store):
    """A relation (cursor.sql('SELECT ...')) runs its query when it is read, outside the store's
    gate, where it could meet the catalogue detached for a re-attach: refused at once."""
    from catalog.store import StoreCursorMisuse

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    cur = store.cursor()
    try:
        with pytest.raises(StoreCursorMisuse, match=r"^sql\(\) on a store cursor gave a relation"):
            cur.sql("SELECT uid FROM datasets")
        cur.sql("INSERT INTO harvest_runs (run_id, portal_id, started_at, status) VALUES ('r', 'city', now(), 'ok')")
        assert cur.execute("SELECT count(*) FROM harvest_runs").fetchone() == (1,)
    finally:
        cur.close()


@pytest.mark.parametrize("asked", ["checkpoint()", "CHECKPOINT", "force checkpoint;", "FORCE\n  CHECKPOINT catalogue",
                                   "CALL checkpoint()"])
def test_a_checkpoint_on_a_store_cursor_is_refused_at_once(store, asked):
    """A checkpoint asked on a store cursor ran under the shared hold of any statement, beside the
    other cursors' statements and transactions, and one that failed invalidated the catalogue under
    them with no re-attach after it. It is refused at once, naming Store.checkpoint (which holds
    the gate exclusive); nothing is held, the log is as it was, and the cursor goes on."""
    from catalog.store import StoreCursorMisuse

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    logged = store.wal_bytes()
    cur = store.cursor()
    try:
        with pytest.raises(StoreCursorMisuse, match=r"^a checkpoint on a store cursor: .* use Store\.checkpoint"):
            cur.checkpoint() if asked == "checkpoint()" else cur.execute(asked)
        assert store._gate._shared == 0 and store.wal_bytes() == logged > 0
        assert cur.execute("SELECT count(*) FROM datasets").fetchone() == (1,)
    finally:
        cur.close()
    assert store.checkpoint("the test's checkpoint") and store.wal_bytes() == 0


def test_a_force_statement_other_than_a_checkpoint_is_run_on_a_store_cursor(store, tmp_path):
    """Every statement on a store cursor whose first word was FORCE was refused as a checkpoint:
    FORCE INSTALL (an extension, from a file here) too. Only FORCE CHECKPOINT is; the other runs
    as DuckDB has it (here its own error: no such file), and nothing is held."""
    from catalog.store import StoreCursorMisuse

    missing = tmp_path / "missing.duckdb_extension"
    cur = store.cursor()
    try:
        with pytest.raises(duckdb.Error) as failed:
            cur.execute(f"FORCE INSTALL '{missing}'")
        assert not isinstance(failed.value, StoreCursorMisuse) and str(missing) in str(failed.value), failed.value
        assert store._gate._shared == 0
        assert cur.execute("SELECT 42").fetchone() == (42,)
    finally:
        cur.close()


def test_a_second_store_cursor_in_a_thread_inside_a_transaction_is_refused_at_once(store, monkeypatch):
    """A thread inside a store cursor's transaction that used a second store cursor waited, once a
    checkpoint or a re-attach wanted the gate (it waits for that transaction), REATTACH_WAIT_SECONDS
    (600 s), the transaction held up meanwhile. The second cursor's statement is refused at once,
    naming the misuse, whether or not anything waits, and so is a checkpoint asked in that thread;
    the transaction goes on and commits, and the re-attach then runs."""
    import catalog.store as store_module
    from catalog.store import StoreCursorMisuse

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 30.0)
    first, second = store.cursor(), store.cursor()
    begun = threading.Event()
    outcomes: list = []

    def in_a_transaction():   # (a records pull's thread, say)
        try:
            first.execute("BEGIN TRANSACTION")
            try:
                second.execute("SELECT count(*) FROM datasets")   # (nothing waits for the gate yet)
            except BaseException as exc:
                outcomes.append(exc)
            try:
                store.checkpoint("the test's checkpoint")
            except BaseException as exc:
                outcomes.append(exc)
            begun.set()
            wanted = time.monotonic() + 30   # (a deadline: a re-attach that never asks would hang the suite)
            while not store._gate._wanted and time.monotonic() < wanted:   # (the re-attach waits for the transaction)
                time.sleep(0.001)
            if not store._gate._wanted:
                outcomes.append(AssertionError("the re-attach did not ask for the gate within 30 s"))
            try:
                second.execute("SELECT count(*) FROM datasets")
            except BaseException as exc:
                outcomes.append(exc)
            first.execute("INSERT INTO harvest_runs (run_id, portal_id, started_at, status) "
                          "VALUES ('r', 'city', now(), 'ok')")
            first.execute("COMMIT")
        except BaseException as exc:
            outcomes.append(exc)
            begun.set()

    transaction = threading.Thread(target=in_a_transaction)
    try:
        transaction.start()
        assert begun.wait(60)
        waiting, reattached = _reattach_in_a_thread(store)
        transaction.join(60)
        assert not transaction.is_alive(), "the second cursor's statement waited for the re-attach"
        assert [type(exc) for exc in outcomes] == [StoreCursorMisuse] * 3, outcomes
        assert "inside another store cursor's transaction" in str(outcomes[0]) == str(outcomes[2])
        assert "end the transaction first" in str(outcomes[1])
        waiting.join(60)
        assert reattached.is_set()
        assert second.execute("SELECT count(*) FROM harvest_runs WHERE run_id = 'r'").fetchone() == (1,)
    finally:
        first.close()
        second.close()



def test_a_catalogue_invalidated_where_no_gate_was_held_is_attached_again_or_refused_naming_why(tmp_path, monkeypatch):
    """A CHECKPOINT that fails invalidates the catalogue: DuckDB refuses every statement on it until it
    is detached and attached again. checkpoint() does so (its gate held throughout), but a checkpoint
    run elsewhere (_restore_memory_limit's, DuckDB's own after a COMMIT) left it invalidated unseen:
    a retry with more memory ran on it and failed, and so did every statement after it, the run's
    and the next portals'. Now any write that meets it notes it: the retry, and every later use,
    attach it again first, waiting for the store's other cursors (here a transaction outlasting
    REATTACH_WAIT_SECONDS) or failing with CatalogueInvalidated naming the checkpoint's error and
    why; once that transaction ends the store goes on, nothing lost, and the next open is whole."""
    import catalog.store as store_module
    from catalog.store import CatalogueInvalidated

    store = Store(tmp_path / "c.duckdb")
    store.commit_portal(stage_of(store, [record(f"d{i:05d}", title=f"Permits {i} " + "x" * 200)
                                         for i in range(3_000)]), "city", T0, mark_deleted=True)
    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 1.0)
    reader = store.cursor()   # (a records pull's, in its portal's thread)
    begun, release, seen = threading.Event(), threading.Event(), []

    def a_transaction():
        try:
            reader.execute("BEGIN TRANSACTION")
            seen.append(reader.execute("SELECT count(*) FROM datasets").fetchone()[0])
            begun.set()
            release.wait(300)   # (past the uses that must not wait for it)
            try:
                reader.execute("SELECT count(*) FROM datasets")
            except duckdb.Error as exc:   # (invalidated under it: its statements fail, as any would)
                seen.append(type(exc).__name__)
            rollback(reader)   # (refused on the invalidated catalogue too: nothing to roll back)
        except BaseException as exc:
            seen.append(exc)
        finally:
            begun.set()

    transaction = threading.Thread(target=a_transaction)
    transaction.start()
    try:
        assert begun.wait(60) and seen == [3_000], seen
        limit = next(limit for limit in (f"{mb}MB" for mb in range(4, 33)) if _accepted(store, limit))
        small = store_module.MEMORY_LIMIT
        monkeypatch.setattr(store_module, "MEMORY_LIMIT", limit)   # (the checkpoint cannot pin its blocks)
        with pytest.raises(CatalogueInvalidated) as refused:   # (its retry, after more memory)
            store._with_room("a write whose checkpoint fails", lambda: store.con.execute("CHECKPOINT"))
        message = str(refused.value)
        assert message.startswith(f"the catalogue {store.db_path} was invalidated by a checkpoint that failed (")
        assert "used the catalogue for 1 s: it was not detached and attached again" in message
        assert message.endswith("nothing it committed is lost: its next open replays its log")
        monkeypatch.setattr(store_module, "MEMORY_LIMIT", small)
        # the next uses, the transaction still open: that transaction outlasted a whole wait, so they fail at
        # once (each waited REATTACH_WAIT_SECONDS again: 600 s for each portal's use, here an hour)
        monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 3_600.0)
        for _ in range(2):
            again: list = []

            def use_it():
                try:
                    store.con.execute("SELECT count(*) FROM datasets")
                except BaseException as exc:
                    again.append(exc)

            use = threading.Thread(target=use_it)
            use.start()
            use.join(60)
            assert not use.is_alive(), "a use waited again for the transaction that outlasted a wait"
            assert isinstance(again[0], CatalogueInvalidated), again
            assert str(again[0]).startswith(f"the catalogue {store.db_path} was invalidated by a checkpoint that failed (")
            assert ("kept the catalogue past an earlier wait of 1 s still uses it: it was not detached and attached "
                    "again (not waited for again)") in str(again[0])
        release.set()
        transaction.join(60)
        assert seen[1:] == ["IOException"], seen
        assert rows(store, "SELECT count(*) FROM datasets") == [(3_000,)]   # (attached again by this use)
        assert reader.execute("SELECT count(*) FROM datasets").fetchone() == (3_000,)
        store.commit_portal(stage_of(store, [record("e00001")]), "city", T0 + timedelta(days=1), mark_deleted=False)
    finally:
        release.set()
        transaction.join(60)
        reader.close()
        store.close()
    reopened = Store(tmp_path / "c.duckdb")
    try:
        assert rows(reopened, "SELECT count(*) FROM datasets") == [(3_001,)]
    finally:
        reopened.close()


def test_a_checkpoint_kept_waiting_by_another_cursors_transaction_says_it_was_not_checkpointed(store, monkeypatch,
                                                                                               caplog):
    """A checkpoint waits for the store's other cursors' transactions (_Gate), REATTACH_WAIT_SECONDS at
    most: then nothing is done, the log kept. Its warning said 'it was not attached again' (the
    re-attach's words), under a class named as catalog.lock's (another process writing): it says
    the catalogue was not checkpointed, OtherCursorsKeptTheCatalogue."""
    import catalog.store as store_module

    store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 1.0)
    logged = store.wal_bytes()
    reader, begun, release = store.cursor(), threading.Event(), threading.Event()

    def a_transaction():
        reader.execute("BEGIN TRANSACTION")
        reader.execute("SELECT count(*) FROM datasets")
        begun.set()
        release.wait(60)
        reader.execute("COMMIT")

    transaction = threading.Thread(target=a_transaction)
    transaction.start()
    try:
        assert begun.wait(60)
        with caplog.at_level("WARNING", logger="civicat.store"):
            assert not store.checkpoint("the checkpoint after its merge")
    finally:
        release.set()
        transaction.join(60)
        reader.close()
    assert ("the checkpoint after its merge failed (statements of the store's other cursors (a records pull's, say) "
            "used the catalogue for 1 s: it was not checkpointed): the log is kept") in caplog.text
    assert [r.exc_info for r in caplog.records] == [None] and store.wal_bytes() == logged > 0
    assert store.checkpoint("the checkpoint after its merge") and store.wal_bytes() == 0
def test_the_rebuild_sorts_a_few_portals_at_a_time_and_fits_where_a_sort_of_the_whole_table_did_not(
        store, monkeypatch, caplog):
    """The rebuild wrote the table sorted by dataset as a whole (ORDER BY dataset_uid), a sort whose
    memory grows with the table: at 300 portals night 3's rebuild of distributions (570,939 rows)
    did not fit 128 MB beside what the harvest held, and was retried with 1 GB. It sorts a batch
    of whole portals at a time (REBUILD_BATCH_ROWS), the batches one after the other in the order
    of their uids: the same rows, each portal's together, in a memory the table's size does not set."""
    import catalog.store as store_module
    from catalog.store import ROW_GROUP_ROWS

    portals = [f"p{n:02d}" for n in range(12)]
    for portal in portals:   # (12 x 250 x 100 = 300,000 distributions of ~300 bytes)
        store.commit_portal(stage_of(store, [record(f"d{i:04d}", portal=portal, distributions=[
            {"title": f"File {k}", "format": "CSV", "media_type": "text/csv", "access_url": None,
             "download_url": f"https://data.{portal}.example.org/api/views/d{i:04d}/rows.csv?part={k}&" + "q" * 200}
            for k in range(100)]) for i in range(250)]), portal, T0, mark_deleted=True)
    expected = rows(store, "SELECT dataset_uid, download_url FROM distributions ORDER BY ALL")
    store.checkpoint("the test's checkpoint")
    monkeypatch.setattr(store_module, "MEMORY_LIMIT", "40MB")
    store.con.execute("SET memory_limit = '40MB'")
    store._deleted_groups = {"distributions": {0}}   # (as a merge's deletes leave them)
    with caplog.at_level("WARNING", logger="civicat.store"):
        store.vacuum("the test's rebuild")
    assert "did not fit" not in caplog.text and "failed" not in caplog.text
    assert store.deletes_held() == 0
    store.con.execute("SET memory_limit = '1GB'")   # (the comparison's own sort)
    assert rows(store, "SELECT dataset_uid, download_url FROM distributions ORDER BY ALL") == expected
    spread = dict(rows(store, f"""SELECT split_part(dataset_uid, ':', 1), count(DISTINCT rowid // {ROW_GROUP_ROWS})
                                  FROM distributions GROUP BY ALL"""))
    assert max(spread.values()) <= 3, spread   # (25,000 rows: 2 row groups, and one two portals share)


def test_the_rebuild_fills_every_row_group_but_the_last(store, monkeypatch):
    """The rebuild inserts its batches one after the other (REBUILD_BATCH_ROWS), and an insert on
    DuckDB's threads writes row groups of its own, leaving its last one part-filled: 200,000 rows
    in 10 batches made 15 row groups where one insert makes 13, the file ~10 MB larger at 10
    portals. Its inserts run on one DuckDB thread, which fills the last row group before it starts
    another. 4 portals of 20,000 distributions (a batch each): main made 6 row groups (16,384, 7,232, ...), 5 now."""
    import catalog.store as store_module
    from catalog.store import ROW_GROUP_ROWS

    portals = ("a", "b", "c", "d")
    for portal in portals:
        store.commit_portal(stage_of(store, [record(f"d{i:04d}", portal=portal, distributions=[
            {"title": f"File {k}", "format": "CSV", "media_type": "text/csv", "access_url": None,
             "download_url": f"https://x.org/{portal}/d{i:04d}/{k}.csv"} for k in range(20)]) for i in range(1_000)]),
            portal, T0, mark_deleted=True)
    expected = rows(store, "SELECT dataset_uid, download_url FROM distributions ORDER BY ALL")
    threads = rows(store, "SELECT current_setting('threads')")
    assert int(threads[0][0]) > 1 and len(store_module._in_portal_batches(store.con, "distributions")) == 4
    store._deleted_groups = {"distributions": {0}}   # (as a merge's deletes leave them)
    store.vacuum("the test's rebuild")
    assert store.deletes_held() == 0
    store.con.execute("CHECKPOINT")
    groups = [n for (n,) in rows(store, """SELECT max(start + count) - min(start) FROM pragma_storage_info('distributions')
                                             WHERE column_id = 0 GROUP BY row_group_id ORDER BY row_group_id""")]
    assert sum(groups) == 80_000
    assert groups == [ROW_GROUP_ROWS] * 4 + [80_000 - 4 * ROW_GROUP_ROWS], groups
    assert rows(store, "SELECT dataset_uid, download_url FROM distributions ORDER BY ALL") == expected
    assert rows(store, "SELECT current_setting('threads')") == threads   # (put back)


def test_datasets_deleted_rows_are_reclaimed_once_they_pass_a_share_of_the_table(store):
    """A changed dataset's old version is deleted from `datasets` and stays in its row groups: DuckDB's
    checkpoint vacuums no table with an index (uid's key), so that every night's changes left more
    of the table dead, without bound (3% of the catalogue a night: 21% after 10 nights). Past
    RECLAIM_SHARE of the rows it holds, the table is written anew (Store.reclaim_datasets, at a
    harvest's end): 10% of 2,000 datasets changed a night, dead 200, 400, then 600 of 2,600 (23%)
    reclaimed to none, the rows and the key as they were."""
    from catalog.store import RECLAIM_SHARE

    def dead_and_held():
        held = rows(store, """SELECT estimated_size FROM duckdb_tables() WHERE database_name = current_database()
                              AND table_name = 'datasets'""")[0][0]
        return held - rows(store, "SELECT count(*) FROM datasets")[0][0], held

    store.commit_portal(stage_of(store, [record(f"d{i:04d}") for i in range(2_000)]), "city", T0, mark_deleted=True)
    seen = [f"city:d{i:04d}" for i in range(2_000)]
    found = []
    for night in range(1, 5):
        changed = [record(f"d{i:04d}", title=f"Permits v{night}") for i in range(night, 2_000, 10)]
        store.commit_portal(stage_of(store, changed, seen_extra=seen), "city", T0 + timedelta(days=night),
                            mark_deleted=True)
        store.checkpoint("the night's close")
        before = dead_and_held()
        expected = rows(store, "SELECT uid, title, first_seen, last_changed FROM datasets ORDER BY uid")
        found.append((before, store.reclaim_datasets(), dead_and_held()[0]))
        assert rows(store, "SELECT uid, title, first_seen, last_changed FROM datasets ORDER BY uid") == expected
    assert found == [((200, 2_200), False, 200), ((400, 2_400), False, 400), ((600, 2_600), True, 0),
                     ((200, 2_200), False, 200)]
    assert 600 > RECLAIM_SHARE * 2_600 and 400 <= RECLAIM_SHARE * 2_400
    with pytest.raises(duckdb.ConstraintException):   # (the table's key, as it was)
        store.con.execute("INSERT INTO datasets SELECT * FROM datasets LIMIT 1")


def test_the_reclaim_of_datasets_builds_its_key_once_the_rows_are_in_and_fits_32_mb(tmp_path, monkeypatch, caplog):
    """The rebuild of `datasets` grew its key's index row by row as the copy inserted them, on DuckDB's
    threads (a row group in memory each): at 300 portals (284,799 datasets, 22% dead) it did not fit
    48 MB and was retried with 1 GB. The index is built once the rows are in, and the reclaim's copy
    runs on one thread: 50,000 datasets, 30% of them deleted and inserted again as a merge's changes
    leave them, reclaimed at 32 MB (main: not within 40 MB, retried with 1 GB; now it fits 24), the rows,
    the key and its NOT NULL as they were."""
    import catalog.store as store_module

    db = tmp_path / "c.duckdb"
    store = Store(db)
    store.commit_portal(stage_of(store, [record(f"d{i:06d}", description="Permits issued by the city. " * 5)
                                         for i in range(50_000)]), "city", T0, mark_deleted=True)
    store.con.execute("BEGIN")
    store.con.execute("CREATE TEMP TABLE changed AS SELECT * FROM datasets WHERE hash(uid) % 100 < 30")
    store.con.execute("DELETE FROM datasets WHERE uid IN (SELECT uid FROM changed)")
    store.con.execute("INSERT INTO datasets SELECT * FROM changed")
    store.con.execute("COMMIT")
    store.close()
    contents = "SELECT count(*), sum(hash(d)::HUGEINT) FROM datasets d"
    monkeypatch.setattr(store_module, "MEMORY_LIMIT", "32MB")
    store = Store(db)
    try:
        (held,), = rows(store, "SELECT estimated_size FROM duckdb_tables() WHERE table_name = 'datasets'")
        expected = rows(store, contents)
        assert held - expected[0][0] > 0.2 * held
        with caplog.at_level("WARNING", logger="civicat.store"):
            assert store.reclaim_datasets()
        assert "did not fit" not in caplog.text and "failed" not in caplog.text
        assert rows(store, "SELECT estimated_size FROM duckdb_tables() WHERE table_name = 'datasets'") == [(50_000,)]
        assert rows(store, contents) == expected
        assert rows(store, """SELECT constraint_type, constraint_column_names FROM duckdb_constraints()
                              WHERE table_name = 'datasets' AND 'uid' IN constraint_column_names ORDER BY ALL""") == [
            ("NOT NULL", ["uid"]), ("PRIMARY KEY", ["uid"])]
        with pytest.raises(duckdb.ConstraintException):
            store.con.execute("INSERT INTO datasets SELECT * FROM datasets LIMIT 1")
        assert rows(store, "SELECT current_setting('threads')")[0][0] != "1"   # (put back)
    finally:
        store.close()
        shutil.rmtree(tmp_path)   # (51 MB: pytest keeps its last temporary folders)


def test_a_dataset_of_a_32_mib_description_is_merged_within_the_memory_limit(tmp_path, caplog):
    """The merge's insert of datasets ran on DuckDB's threads, each gathering its rows apart, and those
    of a thread with fewer than a row group were appended to the transaction a second time: a portal's
    one description of 32 MiB was held twice beside the staged Parquet's read of it, and the merge did
    not fit the harvest's 128 MB ("could not allocate block of size 32.0 MiB"), retried with 1 GB. An
    insert of fewer rows than a row group a thread runs on one: 200 datasets and that one merged within
    MEMORY_LIMIT, the description whole, DuckDB's threads put back (main: retried with 1 GB)."""
    import random

    words = random.Random(35)
    vocabulary = ["".join(words.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(words.randint(3, 9)))
                  for _ in range(5_000)]
    description = " ".join(words.choices(vocabulary, k=5_000_000))[:32 << 20]
    store = Store(tmp_path / "c.duckdb")
    try:
        threads = rows(store, "SELECT current_setting('threads')")
        assert int(threads[0][0]) > 1 and MEMORY_LIMIT == "128MB"
        with caplog.at_level("WARNING", logger="civicat.store"):
            counts = store.commit_portal(stage_of(store, [record(f"d{i:03d}") for i in range(200)] + [
                record("huge", "Permit texts", description=description)]), "city", T0, mark_deleted=True)
        assert "did not fit" not in caplog.text
        assert counts["new"] == 201
        (length, same), = store.con.execute("SELECT length(description), description = $d FROM datasets WHERE uid = "
                                            "'city:huge'", {"d": description}).fetchall()
        assert (length, same) == (32 << 20, True)
        assert rows(store, "SELECT current_setting('threads')") == threads   # (put back)
    finally:
        store.close()
        shutil.rmtree(tmp_path)   # (the description in the file and its log: ~60 MB)


def test_a_row_group_of_raw_entries_loads_within_half_the_memory_limit(tmp_path, monkeypatch, caplog):
    """A raw load read its file through DuckDB's default CSV buffers (16 longest lines of at
    least 2 MiB: two buffers of 32 MiB held) beside the row group it inserts: a row group of
    Socrata entries (43 MB) needed 80 MB, and the 50,000-dataset portals' loads of a 300-portal
    night 1 were retried with 1 GB. Its buffer is 2 lines now: it fits 64 MB, as the row group
    does with room to spare (48 MB did)."""
    import random

    import catalog.store as store_module
    from catalog.stage import RecordBatch, raw_part
    from catalog.store import ROW_GROUP_ROWS

    words = random.Random(30)
    vocabulary = ["".join(words.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(words.randint(3, 9)))
                  for _ in range(5_000)]
    batch = RecordBatch()
    for n in range(ROW_GROUP_ROWS):   # (entries of ~2.7 KB, as the large Socrata portal's)
        raw = canonical_json({"id": f"id{n}", "description": " ".join(words.choices(vocabulary, k=400))})
        batch.add(record(f"id{n}"), raw.encode(), None, content_hash(raw))
    batch.write(tmp_path, 0)
    assert raw_part(tmp_path, 0).stat().st_size > 40 << 20
    store = Store(tmp_path / "c.duckdb")
    try:
        monkeypatch.setattr(store_module, "MEMORY_LIMIT", "64MB")
        store.con.execute("SET memory_limit = '64MB'")
        with caplog.at_level("WARNING", logger="civicat.store"):
            store.load_raw([raw_part(tmp_path, 0)], batch.longest, "city")
        assert "did not fit" not in caplog.text
        assert rows(store, "SELECT count(*), min(strlen(raw)) > 2_000 FROM raw_records") == [(ROW_GROUP_ROWS, True)]
    finally:
        store.close()


# -- a KeyboardInterrupt from Python's own SIGINT handler (civicat used as a library) --------------

@contextlib.contextmanager
def sigint_in_main_thread_when(function, reached):
    """A real SIGINT, taken by Python's own handler (signal.default_int_handler: a library caller's,
    not the command's), sent once the main thread, in `function`, has `reached(frame)`: at the next
    step where Python runs a handler (a C call's return, a Python function's start: sys.setprofile's
    `c_return`, `call`), where the KeyboardInterrupt is raised, as the handler would raise it there.
    Yields the list that says whether it was sent."""
    code = getattr(function, "__wrapped__", function).__code__
    sent: list[bool] = []

    def profiled(frame, event, arg):
        caller = frame.f_back if event == "call" else frame
        if event in ("call", "c_return") and not sent and caller is not None and caller.f_code is code \
                and reached(caller):
            sent.append(True)
            signal.raise_signal(signal.SIGINT)   # (the handler runs as this returns: raised here)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.setprofile(profiled)
    try:
        yield sent
    finally:
        sys.setprofile(None)
        signal.signal(signal.SIGINT, previous)


def _statement_of_another_thread(store) -> list:
    """`SELECT 42` on a store cursor in a thread of its own, awaited 60 s at most (far beyond any
    load): what it gave, or [] if it was still waiting for the gate."""
    answered: list = []

    def ask():
        cur = store.cursor()
        try:
            answered.append(cur.execute("SELECT 42").fetchone()[0])
        finally:
            cur.close()

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(60)
    return answered


@pytest.mark.parametrize("where", ["a cursor's statement", "merged_in_run", "a checkpoint"])
def test_a_keyboard_interrupt_of_python_s_own_handler_leaves_no_hold_of_the_gate(tmp_path, monkeypatch, where):
    """civicat used as a library: Python's own SIGINT handler raises KeyboardInterrupt at whatever
    step of Python the main thread is at. One raised as a store cursor's statement had taken its
    shared hold of the gate, before the `try` that gives it back, kept that hold for good: every
    later checkpoint or re-attach waited REATTACH_WAIT_SECONDS (600 s) and failed, each one after it
    at once. One raised as a checkpoint had taken the gate exclusive, before its `try`, kept it so:
    every other thread's statement on a store cursor waited for good. Now the hold is taken inside
    the `try` whose end gives it back."""
    import catalog.store as store_module
    from catalog.store import _Gate

    monkeypatch.setattr(store_module, "REATTACH_WAIT_SECONDS", 5.0)   # (a hold kept: the checkpoint fails after it)
    store = Store(tmp_path / "catalog.duckdb")
    try:
        store.commit_portal(stage_of(store, [record("a")]), "city", T0, mark_deleted=True)
        me = threading.get_ident()
        if where == "a checkpoint":   # (once its exclusive hold is taken)
            injected = sigint_in_main_thread_when(_Gate.exclusive, lambda frame: frame.f_locals["self"]._owner == me)
        else:   # (once its shared hold is taken)
            injected = sigint_in_main_thread_when(_Gate.hold_shared, lambda frame: frame.f_locals["self"]._shared)
        with injected as sent, pytest.raises(KeyboardInterrupt):
            if where == "a cursor's statement":
                store.cursor().close()
            elif where == "merged_in_run":
                store.merged_in_run("run", "city")
            else:
                store.checkpoint("the test's checkpoint")
        assert sent == [True]
        assert store._gate._shared == 0 and store._gate._owner is None, (store._gate._shared, store._gate._owner)
        assert _statement_of_another_thread(store) == [42], "another thread's statement waited for a hold kept"
        store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0, mark_deleted=True)
        assert store.checkpoint("the checkpoint after") is True
    finally:
        store.close()


# -- whether a stopped portal's merge committed (Store.merged_in_run) ------------------------------

def test_whether_a_merge_committed_is_unknown_where_its_read_fails(store):
    """A portal stopped as it was stored asks the catalogue whether its merge committed. Where the
    read fails (here the runs table is not there: any DuckDB error) the answer is MergeOutcomeUnknown
    naming the error, neither None ("not stored": its previous catalogue said kept) nor a count, and
    the read leaves nothing held: the store's gate free, the next read answers."""
    from catalog.store import MergeOutcomeUnknown

    store.start_run("run", "city", T0)
    assert store.merged_in_run("run", "city") is None   # (not merged yet)
    counts = store.commit_portal(stage_of(store, [record("a"), record("b")]), "city", T0, mark_deleted=True,
                                 run_id="run")
    merged = {key: counts[key] for key in ("new", "changed", "unchanged", "removed")}
    assert merged == {"new": 2, "changed": 0, "unchanged": 0, "removed": 0}
    assert store.merged_in_run("run", "city") == merged
    store.con.execute("ALTER TABLE harvest_runs RENAME TO harvest_runs_moved")
    try:
        with pytest.raises(MergeOutcomeUnknown, match="harvest_runs") as unknown:
            store.merged_in_run("run", "city")
        assert isinstance(unknown.value.__cause__, duckdb.Error)
        assert store._gate._shared == 0 and not store._gate.holds
    finally:
        store.con.execute("ALTER TABLE harvest_runs_moved RENAME TO harvest_runs")
    assert store.merged_in_run("run", "city") == merged
    assert store.checkpoint("the checkpoint after") is True


# another program puts its file in the catalogue's place: argv[2] renamed over argv[1]
PUTS_ITS_FILE_IN_ITS_PLACE = """import os, sys
os.replace(sys.argv[2], sys.argv[1])
print("replaced")
"""


def put_in_its_place_once_invalidated(monkeypatch, db, other) -> list:
    """`other` renamed over the catalogue `db` by a process of its own, once, just after a checkpoint that
    fails has invalidated the catalogue (before the store attaches it again); what that process said,
    appended to the list returned."""
    noted, replaced = Store._note_invalidated, []

    def put_there_as_it_failed(self, exc):
        noted(self, exc)
        if self._invalidated and not replaced:
            ran = subprocess.run([sys.executable, "-c", PUTS_ITS_FILE_IN_ITS_PLACE, str(db), str(other)],
                                 capture_output=True, text=True, timeout=120)
            replaced.append((ran.returncode, ran.stdout.strip(), ran.stderr))

    monkeypatch.setattr(Store, "_note_invalidated", put_there_as_it_failed)
    return replaced


def test_a_catalogue_replaced_before_it_is_attached_again_after_a_failed_checkpoint_is_never_attached(
        tmp_path, monkeypatch):
    """A checkpoint that fails (here for want of memory) invalidates the catalogue, which is detached and
    attached again by its path. On main that ATTACH took whatever file the path held by then: a copy of
    the catalogue taken after its last checkpoint (a backup, put back over it by another process, a real
    one, after the failure) was attached, this run's log replayed into it (DuckDB 1.5 refuses the log of
    another database, not of a copy of its own), the checkpoint written there, and the run went on writing
    it. Now the store attaches again only the file it opened (device and inode, as its first open
    checked): CatalogueReplaced, the checkpoint's and every later use's, and the file at the path left as
    it was put there, byte for byte."""
    import hashlib

    import catalog.store as store_module
    from catalog.store import CatalogueReplaced

    db = tmp_path / "c.duckdb"
    backup = tmp_path / "backup.duckdb"
    store = Store(db)
    store.commit_portal(stage_of(store, [record("a00001")]), "city", T0, mark_deleted=True)
    assert store.checkpoint("the test's checkpoint")
    shutil.copyfile(db, backup)   # (the catalogue as of that checkpoint)
    restored = hashlib.sha256(backup.read_bytes()).hexdigest()
    store.commit_portal(stage_of(store, [record(f"d{i:05d}", title=f"Permits {i} " + "x" * 200, portal="town")
                                         for i in range(3_000)]), "town", T0, mark_deleted=True)
    assert store.wal_bytes() > 0
    limit = next(limit for limit in (f"{mb}MB" for mb in range(4, 33)) if _accepted(store, limit))
    monkeypatch.setattr(store_module, "MEMORY_LIMIT", limit)   # (the checkpoint cannot pin its blocks)
    replaced = put_in_its_place_once_invalidated(monkeypatch, db, backup)
    try:
        with pytest.raises(CatalogueReplaced) as refused:   # (main: True, the checkpoint written into the copy)
            store.checkpoint("the checkpoint as the catalogue closes")
        assert replaced == [(0, "replaced", "")], replaced
        aside = list(tmp_path.glob("c.duckdb.wal.of-a-replaced-file-*"))   # (this run's log: never the backup's)
        assert len(aside) == 1 and not (tmp_path / "c.duckdb.wal").exists(), aside
        assert str(refused.value) == (f"{db} was replaced by another file after this run opened it as the catalogue "
                                      "(found as it was to be attached again): that file was not written; this run's "
                                      f"log (what it wrote since its last checkpoint) was moved to {aside[0]}, where "
                                      "no open of that path replays it into the file there")
        with pytest.raises(CatalogueReplaced):   # (every later use: nothing attached)
            store.commit_portal(stage_of(store, [record("e00001")]), "city", T0 + timedelta(days=1),
                                mark_deleted=False)
    finally:
        store.close()   # (said already: nothing attached to checkpoint)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == restored


# another program's file put at argv[1] for a moment: "in" moves the file there aside (to argv[2]) and renames
# its own in its place; "back" moves its own away (to argv[3]) and puts the one it moved aside back
SWAPS_FOR_A_MOMENT = """import duckdb, os, sys
path, aside, theirs = sys.argv[1:4]
if sys.argv[4] == "in":
    os.replace(path, aside)
    with duckdb.connect(path + ".tmp") as con:
        con.execute("CREATE TABLE results AS SELECT 42 AS answer")
    os.replace(path + ".tmp", path)
else:
    os.replace(path, theirs)
    os.replace(aside, path)
print("done")
"""


def test_a_file_replaced_and_put_back_as_the_catalogue_is_attached_is_not_written(tmp_path, monkeypatch):
    """The writer compares the path's file with the one it checked just before and just after the ATTACH;
    another program that puts its own file there as DuckDB opens the path and puts the catalogue back
    before the second look (two real processes, one on each side of the ATTACH) passed both: on main its
    file was attached, civicat's migrations added to it, and the run wrote it as the catalogue. Now the
    ATTACH must leave this process holding the file checked (/proc/self/fd): CatalogueReplaced, that
    program's file as it made it, the catalogue back in place and whole."""
    import subprocess

    import catalog.store as store_module
    from catalog.store import CatalogueReplaced

    db, aside, theirs = tmp_path / "c.duckdb", tmp_path / "c.duckdb.aside", tmp_path / "theirs.duckdb"
    Store(db).close()
    checked = os.stat(db)
    attach, ran = store_module._attach, []

    def swap(way):
        done = subprocess.run([sys.executable, "-c", SWAPS_FOR_A_MOMENT, str(db), str(aside), str(theirs), way],
                              capture_output=True, text=True, timeout=120)
        ran.append((way, done.returncode, done.stdout.strip(), done.stderr))

    def attached_as_another_file_is_there_for_a_moment(con, db_path):
        swap("in")
        try:
            attach(con, db_path)
        finally:
            swap("back")

    monkeypatch.setattr(store_module, "_attach", attached_as_another_file_is_there_for_a_moment)
    with pytest.raises(CatalogueReplaced, match="c.duckdb was replaced by another file as this run opened it, and "
                                                "put back"):
        Store(db, checked=checked).close()   # (main: opened, migrated, closed)
    assert ran == [("in", 0, "done", ""), ("back", 0, "done", "")], ran
    assert os.path.samestat(os.stat(db), checked)
    with duckdb.connect(str(theirs), read_only=True) as con:
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("results",)]
    monkeypatch.setattr(store_module, "_attach", attach)
    reopened = Store(db, checked=checked)
    try:
        assert rows(reopened, "SELECT count(*) FROM datasets") == [(0,)]
    finally:
        reopened.close()
