"""The DuckDB catalogue: migrations, staging and the per-portal write.

A portal's records are first staged in Parquet files beside the database (memory stays
flat however large the portal), then merged in ONE transaction once its listing has
completed: a portal that fails mid-way never touches what earlier runs stored.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from importlib import resources
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

DATASET_FIELDS = (
    "uid", "portal_id", "city", "portal_kind", "source_id", "identifier", "title", "description",
    "keywords", "themes", "publisher", "contact_name", "contact_email", "issued", "modified",
    "accrual_periodicity", "license", "access_level", "landing_page", "spatial", "temporal_start",
    "temporal_end", "asset_type", "parent_uid", "row_count",
)
TIMESTAMP_FIELDS = ("issued", "modified", "temporal_start", "temporal_end")
MEMORY_LIMIT = "256MB"

_string = pa.string()
DISTRIBUTION_TYPE = pa.struct([("position", pa.int32()), ("title", _string), ("format", _string),
                               ("media_type", _string), ("download_url", _string), ("access_url", _string)])
COLUMN_TYPE = pa.struct([("position", pa.int32()), ("name", _string), ("field_name", _string), ("type", _string),
                         ("source_type", _string), ("description", _string)])
# One staged row per dataset: the record, with its distributions and columns nested.
STAGE_SCHEMA = pa.schema(
    [(name, pa.list_(_string) if name in ("keywords", "themes") else pa.int64() if name == "row_count" else _string)
     for name in DATASET_FIELDS]
    + [("raw_hash", _string), ("distributions", pa.list_(DISTRIBUTION_TYPE)), ("columns", pa.list_(COLUMN_TYPE))]
)
SEEN_SCHEMA = pa.schema([("uid", _string)])
RAW_SCHEMA = pa.schema([("uid", _string), ("raw_hash", _string), ("portal_id", _string), ("source_id", _string),
                        ("raw", _string), ("details", _string)])
ERROR_SCHEMA = pa.schema([("run_id", _string), ("portal_id", _string), ("source_id", _string),
                          ("stage", _string), ("error_type", _string), ("severity", _string),
                          ("message", _string), ("occurred_at", pa.timestamp("us", tz="UTC"))])


def canonical_json(value) -> str:
    """Sorted keys, no whitespace: equal JSON gives equal text, hence equal hashes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def connect(db_path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the catalogue; a writable open brings the schema up to date first."""
    db_path = Path(db_path)
    if read_only:
        if not db_path.exists():
            raise FileNotFoundError(f"no catalogue at {db_path}: run `civicat harvest` first")
        con = duckdb.connect(str(db_path), read_only=True)
    else:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(db_path))
        migrate(con)
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        # bounded memory whatever the portal's size: DuckDB spills to disk past this
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET allocator_background_threads = true")  # hand freed memory back to the OS
        # a checkpoint per 16 MB of WAL made batched raw inserts 2.5x slower and kept more
        # memory; the WAL is checkpointed when the harvest closes the database instead
        con.execute("SET checkpoint_threshold = '1GB'")
    return con


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply, in order and each in its own transaction, the migrations not yet applied."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    done = []
    for script in sorted(resources.files("catalog").joinpath("migrations").iterdir(), key=lambda p: p.name):
        match = re.match(r"^(\d+)_(\w+)\.sql$", script.name)
        if not match or int(match.group(1)) in applied:
            continue
        version = int(match.group(1))
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(script.read_text())
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, match.group(2)])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        done.append(version)
    return done


class Stage:
    """One portal's mapped records until its merge: rows are gathered column by column
    and, every BATCH datasets, written to Parquet (the records) and to `raw_records`
    (the raw entries, through `write_raw`), so memory stays flat. The writing happens in
    a background thread (Arrow, Parquet and DuckDB release the GIL), one batch at a time,
    while the next batch is mapped."""

    BATCH = 2000

    def __init__(self, directory: Path, write_raw: Callable[[pa.Table], None]):
        self.directory = directory
        self.write_raw = write_raw
        self._records = pq.ParquetWriter(self.path("records"), STAGE_SCHEMA, compression="zstd")
        self._seen = pq.ParquetWriter(self.path("seen"), SEEN_SCHEMA, compression="zstd")
        self._columns: dict[str, list] = {name: [] for name in STAGE_SCHEMA.names}
        self._raw: dict[str, list] = {name: [] for name in RAW_SCHEMA.names}
        self._seen_uids: list[str] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicat-stage")
        self._pending: Future | None = None
        self.count = 0
        self.closed = False

    def path(self, name: str) -> str:
        return str(self.directory / f"{name}.parquet")

    def add(self, record: dict, raw_json: str, details_json: str | None, raw_hash: str) -> None:
        columns = self._columns
        for name in DATASET_FIELDS:
            columns[name].append(record[name])
        for position, distribution in enumerate(record["distributions"]):
            distribution["position"] = position
        columns["distributions"].append(record["distributions"])
        columns["columns"].append(record["columns"])
        columns["raw_hash"].append(raw_hash)
        raw = self._raw
        raw["uid"].append(record["uid"])
        raw["raw_hash"].append(raw_hash)
        raw["portal_id"].append(record["portal_id"])
        raw["source_id"].append(record["source_id"])
        raw["raw"].append(raw_json)
        raw["details"].append(details_json)
        self.count += 1
        if len(columns["uid"]) >= self.BATCH:
            self._flush()

    def mark_seen(self, uid: str) -> None:
        """Listed by the portal (valid or not): must not be marked deleted."""
        self._seen_uids.append(uid)
        if len(self._seen_uids) >= self.BATCH:
            self._seen.write_table(pa.table({"uid": self._seen_uids}, schema=SEEN_SCHEMA))
            self._seen_uids = []

    def _flush(self) -> None:
        if self._columns["uid"]:
            self._wait()  # at most one batch in flight: memory stays bounded
            columns, raw = self._columns, self._raw
            self._pending = self._writer.submit(self._write, columns, raw)
            self._columns = {name: [] for name in STAGE_SCHEMA.names}
            self._raw = {name: [] for name in RAW_SCHEMA.names}

    def _write(self, columns: dict, raw: dict) -> None:
        self._records.write_table(pa.table(columns, schema=STAGE_SCHEMA))
        self.write_raw(pa.table(raw, schema=RAW_SCHEMA))

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # a failed write surfaces here

    def abandon(self) -> None:
        self._columns = {name: [] for name in STAGE_SCHEMA.names}
        self._raw = {name: [] for name in RAW_SCHEMA.names}
        self._seen_uids = []
        try:
            self._wait()
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._flush()
            self._wait()
            if self._seen_uids:
                self._seen.write_table(pa.table({"uid": self._seen_uids}, schema=SEEN_SCHEMA))
        finally:
            self.closed = True
            self._writer.shutdown(wait=True)
            self._records.close()
            self._seen.close()


class Store:
    """The catalogue database. Writes are serialised: one portal merge at a time."""

    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self.con = connect(self.db_path)
        self._write_lock = threading.Lock()

    def close(self) -> None:
        self.con.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self.con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    # -- staging --------------------------------------------------------------------

    def new_stage(self) -> Stage:
        root = self.db_path.parent / f".{self.db_path.name}.staging"
        root.mkdir(parents=True, exist_ok=True)
        return Stage(Path(tempfile.mkdtemp(dir=root)), self.add_raw_records)

    @staticmethod
    def discard(stage: Stage) -> None:
        """Remove a stage, whatever state a failure left it in (never raises). Rows still
        buffered are dropped, not flushed: nothing more reaches raw_records."""
        try:
            stage.abandon()
        except Exception:
            pass
        finally:
            shutil.rmtree(stage.directory, ignore_errors=True)

    def active_count(self, portal_id: str) -> int:
        with self._write_lock:
            return self.con.execute("SELECT count(*) FROM datasets WHERE portal_id = ? AND deleted_at IS NULL",
                                    [portal_id]).fetchone()[0]

    def prune_raw(self, portal_id: str) -> None:
        """Drop raw versions no dataset points at (superseded, or written by a failed run)."""
        with self._write_lock:
            self.con.execute("""DELETE FROM raw_records r WHERE r.portal_id = $portal AND NOT EXISTS
                                (SELECT 1 FROM datasets d WHERE d.uid = r.uid AND d.raw_hash = r.raw_hash)""",
                             {"portal": portal_id})

    # -- the per-portal merge -------------------------------------------------------

    def commit_portal(self, stage: Stage, portal_id: str, now: datetime, *, mark_deleted: bool,
                      rewrite: bool = False) -> dict[str, int]:
        """Merge a closed stage into the catalogue in one transaction.

        new: never stored; changed: raw hash differs, or it was marked deleted and is back
        (with `rewrite`, every stored dataset is rewritten as if changed);
        unchanged: only last_seen moves. With `mark_deleted` (a complete listing), the
        portal's stored datasets that were not listed get deleted_at; none is purged.
        """
        stage.close()
        fields = ", ".join(DATASET_FIELDS)
        select_fields = ", ".join(
            f"CAST(s.{f} AS TIMESTAMPTZ) AS {f}" if f in TIMESTAMP_FIELDS else f"s.{f}" for f in DATASET_FIELDS
        )
        assignments = ", ".join(f"{f} = u.{f}" for f in DATASET_FIELDS if f != "uid")
        records = {"records": stage.path("records")}
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.execute("""
                    CREATE OR REPLACE TEMP TABLE _status AS
                    SELECT s.uid,
                           CASE WHEN d.uid IS NULL THEN 'new'
                                WHEN $rewrite OR d.raw_hash <> s.raw_hash OR d.deleted_at IS NOT NULL THEN 'changed'
                                ELSE 'unchanged' END AS status
                    FROM read_parquet($records) s LEFT JOIN datasets d ON d.uid = s.uid""", {**records, "rewrite": rewrite})
                cur.execute(f"""
                    INSERT INTO datasets ({fields}, first_seen, last_seen, last_changed, deleted_at, raw_hash)
                    SELECT {select_fields}, $now, $now, $now, NULL, s.raw_hash
                    FROM read_parquet($records) s JOIN _status st ON st.uid = s.uid WHERE st.status = 'new'""",
                            {**records, "now": now})
                cur.execute(f"""
                    UPDATE datasets SET {assignments}, raw_hash = u.raw_hash, last_seen = $now,
                                        last_changed = $now, deleted_at = NULL
                    FROM (SELECT {select_fields}, s.raw_hash FROM read_parquet($records) s
                          JOIN _status st ON st.uid = s.uid WHERE st.status = 'changed') u
                    WHERE datasets.uid = u.uid""", {**records, "now": now})
                cur.execute("UPDATE datasets SET last_seen = $now WHERE uid IN "
                            "(SELECT uid FROM _status WHERE status = 'unchanged')", {"now": now})
                touched = "(SELECT uid FROM _status WHERE status <> 'unchanged')"
                for table in ("distributions", "columns"):
                    cur.execute(f"DELETE FROM {table} WHERE dataset_uid IN {touched}")
                    cur.execute(f"""
                        INSERT INTO {table} BY NAME
                        SELECT dataset_uid, unnest(item, recursive := true) FROM (
                            SELECT uid AS dataset_uid, unnest({table}) AS item FROM read_parquet($records)
                            WHERE uid IN {touched})""", records)
                removed = 0
                if mark_deleted:
                    removed = cur.execute("""
                        UPDATE datasets SET deleted_at = $now
                        WHERE portal_id = $portal AND deleted_at IS NULL
                          AND uid NOT IN (SELECT uid FROM read_parquet($seen))""",
                                          {"now": now, "portal": portal_id, "seen": stage.path("seen")}).fetchone()[0]
                counts = dict(cur.execute("SELECT status, count(*) FROM _status GROUP BY status").fetchall())
                cur.execute("DROP TABLE _status")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        self.prune_raw(portal_id)
        return {"new": counts.get("new", 0), "changed": counts.get("changed", 0),
                "unchanged": counts.get("unchanged", 0), "removed": removed}

    # -- runs and errors ------------------------------------------------------------

    def start_run(self, run_id: str, portal_id: str, started_at: datetime) -> None:
        with self._write_lock:
            self.con.execute("INSERT INTO harvest_runs (run_id, portal_id, started_at, status) VALUES (?, ?, ?, 'running')",
                             [run_id, portal_id, started_at])

    def finish_run(self, run_id: str, portal_id: str, report: dict) -> None:
        columns = [k for k in report if k not in ("run_id", "portal_id")]
        assignments = ", ".join(f"{c} = ?" for c in columns)
        with self._write_lock:
            self.con.execute(f"UPDATE harvest_runs SET {assignments} WHERE run_id = ? AND portal_id = ?",
                             [report[c] for c in columns] + [run_id, portal_id])

    def add_raw_records(self, table: pa.Table) -> None:
        """Raw entries, keyed by (uid, raw_hash), written beside the portal's transaction
        in small ones of their own: a version already stored is not written again, and
        the catalogue only points at a raw version once its merge has committed."""
        with self._write_lock:
            cur = self.cursor()
            try:
                cur.register("_raw", table)
                cur.execute("INSERT INTO raw_records BY NAME SELECT *, now() AS fetched_at FROM _raw "
                            "ON CONFLICT DO NOTHING")
                cur.unregister("_raw")
            finally:
                cur.close()

    def add_errors(self, rows: list[dict]) -> None:
        if not rows:
            return
        table = pa.Table.from_pylist(rows, ERROR_SCHEMA)
        with self._write_lock:
            cur = self.cursor()
            try:
                cur.register("_errors", table)
                cur.execute("INSERT INTO harvest_errors BY NAME SELECT * FROM _errors")
                cur.unregister("_errors")
            finally:
                cur.close()
