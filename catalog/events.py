"""dataset_events: what each run did to each dataset (migration 0017).

A portal's merge (catalog.store) writes them in its own transaction, set-wise: `compare`
once it knows which stored datasets changed and before it writes them (the stored row is
still there to compare with), `record` once the missing ones are tracked. A
run that changes nothing, a failed merge (rolled back) and a portal not harvested write none.

Events: new; changed (a stored live dataset written again); back (a removed one listed
again); listed_again (one missing within its portal's grace listed again, changed or not);
missing (not named by a complete listing, within the grace); removed (deleted_at set: the
grace ran out, or `civicat retire`).
"""
from __future__ import annotations

from datetime import datetime

import duckdb

from catalog.stage import COLUMN_FIELDS, DATASET_FIELDS, DISTRIBUTION_FIELDS, TIMESTAMP_FIELDS

# the datasets columns whose mapped values are compared (not the keys, nor the merge's own)
COMPARED_FIELDS = tuple(f for f in DATASET_FIELDS if f not in ("uid", "portal_id", "source_id"))
ROW_TABLES = {"distributions": DISTRIBUTION_FIELDS, "columns": COLUMN_FIELDS}
# `_changes`' fields, and the row tables whose rows differ after them
ROWS_CHANGED = "list_concat(changed_fields, " + ", ".join(
    f"CASE WHEN {table}_changed THEN ['{table}'] ELSE []::VARCHAR[] END" for table in ROW_TABLES) + ")"


def _field_changed(field: str) -> str:
    """The stored row `d` and the staged record `s` differ in `field` (timestamps are staged as text)."""
    staged = f"CAST(s.{field} AS TIMESTAMPTZ)" if field in TIMESTAMP_FIELDS else f"s.{field}"
    return f"CASE WHEN d.{field} IS DISTINCT FROM {staged} THEN '{field}' END"


def compare(cur: duckdb.DuckDBPyConnection, staged: str, params: dict, changed: int) -> None:
    """`_changes`: the stored datasets the merge's `_status` has changed (`changed` of them), each
    with its event, raw hashes and changed fields; called before the merge writes them. Only
    those are compared: a row each, not the catalogue (the new ones are `record`'s, by their
    first_seen). A statement per table, each with one join (the three joined at once did not
    fit MEMORY_LIMIT for 100,000 datasets changed: a --full night after a mapping upgrade)."""
    fields = ", ".join(_field_changed(f) for f in COMPARED_FIELDS)
    cur.execute(f"""
        CREATE OR REPLACE TEMP TABLE _changes AS
        SELECT st.uid,
               CASE WHEN d.deleted_at IS NOT NULL THEN 'back' WHEN d.missing_since IS NOT NULL THEN 'listed_again'
                    ELSE 'changed' END AS event,
               d.raw_hash AS raw_hash_before, s.raw_hash AS raw_hash_after,
               list_filter([{fields}], lambda f: f IS NOT NULL) AS changed_fields,
               false AS distributions_changed, false AS columns_changed
        FROM _status st JOIN {staged} s ON s.uid = st.uid JOIN datasets d ON d.uid = st.uid
        WHERE st.status = 'changed' AND $changed""", {**params, "changed": changed > 0})
    if not changed:   # (a merge of new datasets alone compares nothing)
        return
    for table, row_fields in ROW_TABLES.items():
        # as the merge's rewrite compares them (catalog.store._mark_remapped_rows): as multisets,
        # their number and the sum of their hashes, each row holding its position
        row_hash = f"hash({', '.join(row_fields)})::HUGEINT"
        item_hash = f"hash({', '.join(f'item.{f}' for f in row_fields)})::HUGEINT"
        cur.execute(f"""
            UPDATE _changes SET {table}_changed = true
            FROM (SELECT c.uid FROM _changes c JOIN {staged} s ON s.uid = c.uid
                  LEFT JOIN (SELECT dataset_uid, count(*) AS n, sum({row_hash}) AS hashes FROM {table}
                             JOIN _status ON _status.uid = dataset_uid WHERE _status.status = 'changed'
                             GROUP BY dataset_uid) t ON t.dataset_uid = c.uid
                  WHERE (coalesce(t.n, 0) <> coalesce(len(s.{table}), 0)
                         OR coalesce(t.hashes, 0) <> coalesce(list_sum(list_transform(s.{table}, lambda item: {item_hash})), 0))
                 ) differ
            WHERE _changes.uid = differ.uid""", params)


def record(cur: duckdb.DuckDBPyConnection, run_id: str | None, portal_id: str, now: datetime, *,
           compared: bool) -> None:
    """Write the merge's events (at `now`, the time it gave the rows it wrote): those `compare`
    found (`compared`: it ran), and the portal's datasets this merge stored first (first_seen =
    `now`), marked missing or removed (missing_since or deleted_at = `now`) or listed again
    unchanged after going missing (their last_seen moved to `now`, not their last_changed), read
    in one pass over the portal's rows. Then `_changes` goes."""
    params = {"run": run_id, "portal": portal_id, "now": now}
    listed = f"""SELECT uid, event, raw_hash_before, raw_hash_after, {ROWS_CHANGED} AS changed_fields
                 FROM _changes UNION ALL BY NAME """ if compared else ""
    cur.execute(f"""
        INSERT INTO dataset_events BY NAME
        SELECT $run AS run_id, $portal AS portal_id, $now AS occurred_at, e.* FROM (
            {listed}
            SELECT uid, CASE WHEN first_seen = $now THEN 'new' WHEN deleted_at = $now THEN 'removed'
                             WHEN missing_since = $now THEN 'missing' ELSE 'listed_again' END AS event,
                   CASE WHEN first_seen <> $now THEN raw_hash END AS raw_hash_before, raw_hash AS raw_hash_after,
                   CASE WHEN last_changed <> $now AND last_seen = $now THEN []::VARCHAR[] END AS changed_fields
            FROM datasets WHERE portal_id = $portal
              AND (first_seen = $now OR deleted_at = $now OR missing_since = $now
                   OR (last_seen = $now AND last_changed <> $now))) e""",
                params)
    if compared:
        cur.execute("DROP TABLE _changes")


def record_retired(con: duckdb.DuckDBPyConnection, run_id: str, portal_id: str, now: datetime) -> None:
    """`civicat retire`: its datasets marked deleted at `now` are removed (in its transaction)."""
    record(con, run_id, portal_id, now, compared=False)
