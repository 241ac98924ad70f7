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

_string = pa.string()
STAGE_SCHEMAS = {
    "datasets": pa.schema(
        [(name, pa.list_(_string) if name in ("keywords", "themes") else pa.int64() if name == "row_count" else _string)
         for name in DATASET_FIELDS] + [("raw_hash", _string)]
    ),
    "distributions": pa.schema([("dataset_uid", _string), ("position", pa.int32()), ("title", _string),
                                ("format", _string), ("media_type", _string), ("download_url", _string),
                                ("access_url", _string)]),
    "columns": pa.schema([("dataset_uid", _string), ("position", pa.int32()), ("name", _string),
                          ("field_name", _string), ("type", _string), ("source_type", _string),
                          ("description", _string)]),
    "raw_records": pa.schema([("uid", _string), ("portal_id", _string), ("source_id", _string),
                              ("raw", _string), ("details", _string), ("raw_hash", _string)]),
    "seen": pa.schema([("uid", _string)]),
}
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
    """Parquet files holding one portal's mapped records until its merge."""

    BATCH = 5000

    def __init__(self, directory: Path):
        self.directory = directory
        self._writers = {name: pq.ParquetWriter(directory / f"{name}.parquet", schema, compression="zstd")
                         for name, schema in STAGE_SCHEMAS.items()}
        self._rows: dict[str, list[dict]] = {name: [] for name in STAGE_SCHEMAS}
        self.count = 0

    def path(self, name: str) -> str:
        return str(self.directory / f"{name}.parquet")

    def add(self, record: dict, raw_json: str, details_json: str | None, raw_hash: str) -> None:
        uid = record["uid"]
        row = {name: record.get(name) for name in DATASET_FIELDS}
        row["raw_hash"] = raw_hash
        self._append("datasets", row)
        for position, dist in enumerate(record.get("distributions") or []):
            self._append("distributions", {"dataset_uid": uid, "position": position, **dist})
        for column in record.get("columns") or []:
            self._append("columns", {"dataset_uid": uid, **column})
        self._append("raw_records", {"uid": uid, "portal_id": record["portal_id"], "source_id": record["source_id"],
                                     "raw": raw_json, "details": details_json, "raw_hash": raw_hash})
        self.count += 1

    def mark_seen(self, uid: str) -> None:
        """Listed by the portal (valid or not): must not be marked deleted."""
        self._append("seen", {"uid": uid})

    def _append(self, name: str, row: dict) -> None:
        rows = self._rows[name]
        rows.append(row)
        if len(rows) >= self.BATCH:
            self._flush(name)

    def _flush(self, name: str) -> None:
        if self._rows[name]:
            self._writers[name].write_table(pa.Table.from_pylist(self._rows[name], STAGE_SCHEMAS[name]))
            self._rows[name] = []

    def close(self) -> None:
        for name, writer in self._writers.items():
            self._flush(name)
            writer.close()


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
        return Stage(Path(tempfile.mkdtemp(dir=root)))

    @staticmethod
    def discard(stage: Stage) -> None:
        try:
            stage.close()
        finally:
            shutil.rmtree(stage.directory, ignore_errors=True)

    # -- the per-portal merge -------------------------------------------------------

    def commit_portal(self, stage: Stage, portal_id: str, now: datetime, *, mark_deleted: bool) -> dict[str, int]:
        """Merge a closed stage into the catalogue in one transaction.

        new: never stored; changed: raw hash differs, or it was marked deleted and is back;
        unchanged: only last_seen moves. With `mark_deleted` (a complete listing), the
        portal's stored datasets that were not listed get deleted_at; none is purged.
        """
        stage.close()
        fields = ", ".join(DATASET_FIELDS)
        select_fields = ", ".join(
            f"CAST(s.{f} AS TIMESTAMPTZ) AS {f}" if f in TIMESTAMP_FIELDS else f"s.{f}" for f in DATASET_FIELDS
        )
        assignments = ", ".join(f"{f} = u.{f}" for f in DATASET_FIELDS if f != "uid")
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.execute("CREATE OR REPLACE TEMP TABLE _stage AS SELECT * FROM read_parquet(?)", [stage.path("datasets")])
                cur.execute("""
                    CREATE OR REPLACE TEMP TABLE _status AS
                    SELECT s.uid,
                           CASE WHEN d.uid IS NULL THEN 'new'
                                WHEN d.raw_hash <> s.raw_hash OR d.deleted_at IS NOT NULL THEN 'changed'
                                ELSE 'unchanged' END AS status
                    FROM _stage s LEFT JOIN datasets d ON d.uid = s.uid""")
                cur.execute(f"""
                    INSERT INTO datasets ({fields}, first_seen, last_seen, last_changed, deleted_at, raw_hash)
                    SELECT {select_fields}, $now, $now, $now, NULL, s.raw_hash
                    FROM _stage s JOIN _status st ON st.uid = s.uid WHERE st.status = 'new'""", {"now": now})
                cur.execute(f"""
                    UPDATE datasets SET {assignments}, raw_hash = u.raw_hash, last_seen = $now,
                                        last_changed = $now, deleted_at = NULL
                    FROM (SELECT {select_fields}, s.raw_hash FROM _stage s JOIN _status st ON st.uid = s.uid
                          WHERE st.status = 'changed') u
                    WHERE datasets.uid = u.uid""", {"now": now})
                cur.execute("UPDATE datasets SET last_seen = $now WHERE uid IN "
                            "(SELECT uid FROM _status WHERE status = 'unchanged')", {"now": now})
                touched = "(SELECT uid FROM _status WHERE status <> 'unchanged')"
                for table, key in (("distributions", "dataset_uid"), ("columns", "dataset_uid"), ("raw_records", "uid")):
                    cur.execute(f"DELETE FROM {table} WHERE {key} IN {touched}")
                    if table == "raw_records":
                        cur.execute(f"INSERT INTO raw_records BY NAME SELECT *, $now AS fetched_at FROM read_parquet($path) "
                                    f"WHERE uid IN {touched}", {"path": stage.path(table), "now": now})
                    else:
                        cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet($path) WHERE {key} IN {touched}",
                                    {"path": stage.path(table)})
                removed = 0
                if mark_deleted:
                    removed = cur.execute("""
                        UPDATE datasets SET deleted_at = $now
                        WHERE portal_id = $portal AND deleted_at IS NULL
                          AND uid NOT IN (SELECT uid FROM read_parquet($seen))""",
                                          {"now": now, "portal": portal_id, "seen": stage.path("seen")}).fetchone()[0]
                counts = dict(cur.execute("SELECT status, count(*) FROM _status GROUP BY status").fetchall())
                cur.execute("DROP TABLE _stage")
                cur.execute("DROP TABLE _status")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
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
