"""dataset_events: what each merge did to each dataset, written in the merge's transaction
(catalog.events). One row per dataset per run in which something happened to it."""
from datetime import timedelta
from pathlib import Path

import pytest

from catalog.store import Store, canonical_json, content_hash
from tests.catalog import test_store
from tests.catalog.test_store import T0, record, remapped_stage, rows

store = test_store.store   # (the fixture: a catalogue in tmp_path)
DAY = timedelta(days=1)


def events(store, run_id):
    """The run's events: uid -> (event, raw hash before, raw hash after, changed fields)."""
    found = rows(store, f"""SELECT uid, event, raw_hash_before, raw_hash_after, changed_fields, portal_id, occurred_at
                            FROM dataset_events WHERE run_id = '{run_id}' ORDER BY uid""")
    assert len({uid for uid, *_ in found}) == len(found), f"a dataset twice in one run: {found}"
    assert len({(portal, at) for *_, portal, at in found}) <= 1, found   # one portal's merge, at its time
    return {uid: tuple(rest[:4]) for uid, *rest in found}


def stored_hash(store, uid):
    return rows(store, f"SELECT raw_hash FROM datasets WHERE uid = '{uid}'")[0][0]


def whole_stage(store, records, seen_extra=()):
    """A stage of `records` whose raw entries are the records themselves: any change is a raw change."""
    stage = store.new_stage()
    for rec in records:
        raw = canonical_json(rec)
        stage.mark_seen(rec["uid"])
        stage.add(rec, raw, None, content_hash(raw))
    for uid in seen_extra:
        stage.mark_seen(uid)
    return stage


def merge(store, run_id, records, at, **options):
    return store.commit_portal(whole_stage(store, records, options.pop("seen_extra", ())), "city", at,
                               mark_deleted=options.pop("complete", True), run_id=run_id, **options)


def test_new_datasets_are_events_of_their_first_merge_and_an_unchanged_merge_writes_none(store):
    merge(store, "r1", [record("a"), record("b")], T0)
    assert events(store, "r1") == {
        "city:a": ("new", None, stored_hash(store, "city:a"), None),
        "city:b": ("new", None, stored_hash(store, "city:b"), None)}
    assert rows(store, "SELECT DISTINCT portal_id, occurred_at FROM dataset_events") == [("city", T0)]
    merge(store, "r2", [record("a"), record("b")], T0 + DAY)            # staged, compared: unchanged
    stage = store.new_stage()                                           # recognised before mapping: seen ids only
    for uid in ("city:a", "city:b"):
        stage.mark_seen(uid)
    store.commit_portal(stage, "city", T0 + 2 * DAY, mark_deleted=True, run_id="r3")
    assert events(store, "r2") == events(store, "r3") == {}
    assert rows(store, "SELECT count(*) FROM dataset_events") == [(2,)]


def test_a_change_names_the_mapped_fields_that_differ_and_the_rows_that_changed(store):
    column = record("x")["columns"][0]
    merge(store, "r1", [record("a"), record("b"), record("c"), record("d"), record("e")], T0)
    before = {uid: stored_hash(store, f"city:{uid}") for uid in "abcde"}
    merge(store, "r2", [
        record("a", title="Building permits 2", modified="2026-01-01T00:00:00Z"),
        record("b", columns=[column, {**column, "position": 1, "name": "Issued"}]),
        record("c", keywords=["permits", "new"], distributions=[]),
        record("d"),
        record("e", row_count=12)], T0 + DAY)
    after = {uid: stored_hash(store, f"city:{uid}") for uid in "abcde"}
    assert events(store, "r2") == {
        "city:a": ("changed", before["a"], after["a"], ["title", "modified"]),
        "city:b": ("changed", before["b"], after["b"], ["columns"]),
        "city:c": ("changed", before["c"], after["c"], ["keywords", "distributions"]),
        "city:e": ("changed", before["e"], after["e"], ["row_count"])}


def test_a_raw_entry_that_changed_while_its_mapped_record_did_not_is_a_change_of_no_field(store):
    stage = store.new_stage()
    raw = canonical_json({"id": "a", "views": 1})
    stage.mark_seen("city:a")
    stage.add(record("a"), raw, None, content_hash(raw))
    store.commit_portal(stage, "city", T0, mark_deleted=True, run_id="r1")
    stage = store.new_stage()
    raw2 = canonical_json({"id": "a", "views": 1, "note": "a key the mapping ignores"})
    stage.mark_seen("city:a")
    stage.add(record("a"), raw2, None, content_hash(raw2))
    assert store.commit_portal(stage, "city", T0 + DAY, mark_deleted=True, run_id="r2")["changed"] == 1
    assert events(store, "r2") == {"city:a": ("changed", content_hash(raw), content_hash(raw2), [])}


def test_missing_within_the_grace_listed_again_removed_after_it_and_back(store):
    grace = {"grace": 2 * DAY}
    merge(store, "r0", [record("a"), record("b")], T0, **grace)
    b = stored_hash(store, "city:b")
    merge(store, "r1", [record("a")], T0 + DAY, **grace)
    assert events(store, "r1") == {"city:b": ("missing", b, b, None)}
    merge(store, "r2", [record("a")], T0 + 2 * DAY, complete=False, **grace)   # a partial listing decides nothing
    merge(store, "r3", [record("a"), record("b")], T0 + 2 * DAY + timedelta(hours=1), **grace)
    assert events(store, "r2") == {} and events(store, "r3") == {"city:b": ("listed_again", b, b, [])}
    merge(store, "r4", [record("a")], T0 + 3 * DAY, **grace)
    merge(store, "r5", [record("a")], T0 + 4 * DAY, **grace)                   # still missing: nothing new
    merge(store, "r6", [record("a")], T0 + 5 * DAY, **grace)
    assert events(store, "r4") == {"city:b": ("missing", b, b, None)} and events(store, "r5") == {}
    assert events(store, "r6") == {"city:b": ("removed", b, b, None)}
    assert rows(store, "SELECT deleted_at FROM datasets WHERE uid = 'city:b'") == [(T0 + 5 * DAY,)]
    merge(store, "r7", [record("a"), record("b", title="Building permits again")], T0 + 6 * DAY, **grace)
    assert events(store, "r7") == {"city:b": ("back", b, stored_hash(store, "city:b"), ["title"])}


def test_a_missing_dataset_listed_again_changed_is_listed_again_with_its_fields(store):
    merge(store, "r0", [record("a"), record("b")], T0, grace=3 * DAY)
    b = stored_hash(store, "city:b")
    merge(store, "r1", [record("a")], T0 + DAY, grace=3 * DAY)
    merge(store, "r2", [record("a"), record("b", description="Now described")], T0 + 2 * DAY, grace=3 * DAY)
    assert events(store, "r2") == {"city:b": ("listed_again", b, stored_hash(store, "city:b"), ["description"])}


def test_without_a_grace_a_dataset_gone_is_removed_at_once_and_back_unchanged_has_no_field(store):
    merge(store, "r0", [record("a"), record("b")], T0)
    b = stored_hash(store, "city:b")
    assert merge(store, "r1", [record("a")], T0 + DAY)["removed"] == 1
    assert events(store, "r1") == {"city:b": ("removed", b, b, None)}
    merge(store, "r2", [record("a"), record("b")], T0 + 2 * DAY)
    assert events(store, "r2") == {"city:b": ("back", b, b, [])}


def test_a_listed_entry_that_failed_validation_and_a_partial_listing_write_no_event(store):
    merge(store, "r0", [record("a"), record("b")], T0)
    merge(store, "r1", [record("a")], T0 + DAY, seen_extra=["city:b"])   # b listed, its record rejected
    merge(store, "r2", [record("a")], T0 + 2 * DAY, complete=False)
    assert events(store, "r1") == events(store, "r2") == {}


def test_a_merge_that_fails_midway_writes_no_event(store):
    merge(store, "r0", [record("a")], T0)
    stage = whole_stage(store, [record("a", title="changed"), record("c")])
    stage.close()
    Path(stage.path("seen")).write_bytes(b"not parquet")  # the merge breaks after datasets were written
    with pytest.raises(Exception):
        store.commit_portal(stage, "city", T0 + DAY, mark_deleted=True, run_id="r1")
    assert events(store, "r1") == {}
    assert rows(store, "SELECT count(*) FROM dataset_events") == [(1,)]


def test_a_full_night_writes_only_the_datasets_its_mapping_changed(store):
    def entry(source_id, **fields):
        return record(source_id, **{"modified": "2021-05-06T07:08:09Z", **fields})

    ids = [f"d{n}" for n in range(4)]
    store.commit_portal(remapped_stage(store, [entry(i) for i in ids]), "city", T0, mark_deleted=True, run_id="r0")
    store.commit_portal(remapped_stage(store, [entry(i) for i in ids]), "city", T0 + DAY, mark_deleted=True,
                        rewrite=True, run_id="r1")
    assert events(store, "r1") == {}
    column = entry("x")["columns"][0]
    hashes = {i: stored_hash(store, f"city:{i}") for i in ids}
    store.commit_portal(remapped_stage(store, [entry("d0"), entry("d1", modified="2021-05-06T07:08:10Z"),
                                               entry("d2", columns=[{**column, "type": "other"}]), entry("d3")]),
                        "city", T0 + 2 * DAY, mark_deleted=True, rewrite=True, run_id="r2")
    assert events(store, "r2") == {"city:d1": ("changed", hashes["d1"], hashes["d1"], ["modified"]),
                                   "city:d2": ("changed", hashes["d2"], hashes["d2"], ["columns"])}


def test_a_full_night_that_rebuilds_the_datasets_table_records_its_changes(store):
    ids = [f"d{n}" for n in range(4)]
    merge(store, "r0", [record(i) for i in ids], T0)
    hashes = {i: stored_hash(store, f"city:{i}") for i in ids}
    store.commit_portal(remapped_stage(store, [record(i, description=f"About {i}") for i in ids]), "city", T0 + DAY,
                        mark_deleted=True, rewrite=True, run_id="r1")
    assert events(store, "r1") == {f"city:{i}": ("changed", hashes[i], stored_hash(store, f"city:{i}"),
                                                 ["description"]) for i in ids}


def test_each_portal_merge_records_its_own_datasets(store):
    store.commit_portal(whole_stage(store, [record("a", portal="one")]), "one", T0, mark_deleted=True, run_id="r")
    store.commit_portal(whole_stage(store, [record("z", portal="two")]), "two", T0 + timedelta(seconds=1),
                        mark_deleted=True, run_id="r")
    store.commit_portal(whole_stage(store, [record("y", portal="two")]), "two", T0 + DAY, mark_deleted=True,
                        run_id="r2")
    assert rows(store, "SELECT run_id, portal_id, uid, event FROM dataset_events ORDER BY ALL") == [
        ("r", "one", "one:a", "new"), ("r", "two", "two:z", "new"), ("r2", "two", "two:y", "new"),
        ("r2", "two", "two:z", "removed")]


def test_the_migration_brings_a_catalogue_at_0016_with_its_data_up_to_the_events_table(tmp_path):
    db = tmp_path / "c.duckdb"
    store = Store(db)
    merge(store, "r0", [record("a"), record("b")], T0)
    # the catalogue as migration 0016 left it: no events table, nor its row in schema_migrations
    store.con.execute("DROP TABLE dataset_events")
    store.con.execute("DELETE FROM schema_migrations WHERE version = 17")
    before = rows(store, "SELECT * FROM datasets ORDER BY uid")
    store.close()
    store = Store(db)
    try:
        assert rows(store, "SELECT count(*) FROM schema_migrations WHERE version = 17") == [(1,)]
        assert rows(store, "SELECT * FROM datasets ORDER BY uid") == before
        assert rows(store, "SELECT count(*) FROM dataset_events") == [(0,)]    # no history invented
        merge(store, "r1", [record("a", title="Permits")], T0 + DAY)
        assert events(store, "r1") == {
            "city:a": ("changed", before[0][-2], stored_hash(store, "city:a"), ["title"]),
            "city:b": ("removed", before[1][-2], before[1][-2], None)}
    finally:
        store.close()
