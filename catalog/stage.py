"""A portal's mapped records on their way to the catalogue: Parquet parts in a folder
beside the database, so memory stays flat however large the portal is.

Records are gathered column by column in a `RecordBatch` and written as one part
(`records-<n>.parquet`, `raw-<n>.parquet`). Parts are written by whoever maps the batch,
a worker process or the harvest itself; `Stage` hands out part numbers, keeps the ids
the listing named (`seen.parquet`), and tells the store when a raw part is ready. This
module must stay light (no DuckDB): worker processes import it.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

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

_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json_bytes(value) -> bytes:
    """Sorted keys, no whitespace: equal JSON gives equal bytes, hence equal hashes."""
    return orjson.dumps(value, option=_CANONICAL, default=str)


def compact_json_bytes(value) -> bytes:
    """No whitespace, keys in the portal's order: the raw record as it was given."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)


def canonical_json(value) -> str:
    return canonical_json_bytes(value).decode()


def content_hash(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def records_part(directory: Path, number: int) -> Path:
    return directory / f"records-{number:06d}.parquet"


def raw_part(directory: Path, number: int) -> Path:
    return directory / f"raw-{number:06d}.parquet"


class RecordBatch:
    """Validated records and their raw entries, column by column, until written as one part."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {name: [] for name in STAGE_SCHEMA.names}
        self.raw: dict[str, list] = {name: [] for name in RAW_SCHEMA.names}

    def __len__(self) -> int:
        return len(self.columns["uid"])

    def add(self, record: dict, raw_json: str, details_json: str | None, raw_hash: str) -> None:
        columns = self.columns
        for name in DATASET_FIELDS:
            columns[name].append(record[name])
        for position, distribution in enumerate(record["distributions"]):
            distribution["position"] = position
        columns["distributions"].append(record["distributions"])
        columns["columns"].append(record["columns"])
        columns["raw_hash"].append(raw_hash)
        raw = self.raw
        raw["uid"].append(record["uid"])
        raw["raw_hash"].append(raw_hash)
        raw["portal_id"].append(record["portal_id"])
        raw["source_id"].append(record["source_id"])
        raw["raw"].append(raw_json)
        raw["details"].append(details_json)

    def write(self, directory: Path, number: int) -> None:
        """Write part `number`: the raw part first, so a records part never lacks its raw one."""
        pq.write_table(pa.table(self.raw, schema=RAW_SCHEMA), raw_part(directory, number), compression="zstd")
        pq.write_table(pa.table(self.columns, schema=STAGE_SCHEMA), records_part(directory, number),
                       compression="zstd")


class Stage:
    """One portal's staging folder. `on_raw_part(path)` is called once per written part,
    in the order the parts complete, so the store can load their raw entries."""

    BATCH = 1000

    def __init__(self, directory: Path, on_raw_part: Callable[[Path], None]):
        self.directory = directory
        self.on_raw_part = on_raw_part
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._batch = RecordBatch()
        self._seen = pq.ParquetWriter(self.path("seen"), SEEN_SCHEMA, compression="zstd")
        self._seen_uids: list[str] = []
        # raw parts are loaded by a thread of their own (DuckDB releases the GIL), one at a time
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicat-raw")
        self._loading: Future | None = None
        self.parts = 0
        self.closed = False

    def path(self, name: str) -> str:
        return str(self.directory / f"{name}.parquet")

    def records_files(self) -> list[str]:
        return sorted(str(path) for path in self.directory.glob("records-*.parquet"))

    def new_part(self) -> int:
        """A part number for a batch about to be written (by this process or a worker)."""
        with self._lock:
            return next(self._numbers)

    def part_written(self, number: int) -> None:
        self.parts += 1
        self._wait_loading()
        self._loading = self._loader.submit(self.on_raw_part, raw_part(self.directory, number))

    def _wait_loading(self) -> None:
        if self._loading is not None:
            loading, self._loading = self._loading, None
            loading.result()  # a failed load surfaces here

    def write_batch(self, batch: RecordBatch) -> None:
        number = self.new_part()
        batch.write(self.directory, number)
        self.part_written(number)

    def add(self, record: dict, raw_json: str, details_json: str | None, raw_hash: str) -> None:
        """Stage one record here, in this process (worker processes write whole batches)."""
        self._batch.add(record, raw_json, details_json, raw_hash)
        if len(self._batch) >= self.BATCH:
            batch, self._batch = self._batch, RecordBatch()
            self.write_batch(batch)

    def mark_seen(self, uid: str) -> None:
        """Listed by the portal (valid or not): must not be marked deleted."""
        self._seen_uids.append(uid)
        if len(self._seen_uids) >= self.BATCH:
            self._write_seen()

    def _write_seen(self) -> None:
        self._seen.write_table(pa.table({"uid": self._seen_uids}, schema=SEEN_SCHEMA))
        self._seen_uids = []

    def abandon(self) -> None:
        """Drop what is buffered, write nothing more; returns once no raw part is loading."""
        if not self.closed:
            self.closed = True
            self._loader.shutdown(wait=True)
            self._seen.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if len(self._batch) or not self.parts:  # at least one records part, maybe empty
                batch, self._batch = self._batch, RecordBatch()
                self.write_batch(batch)
            if self._seen_uids:
                self._write_seen()
            self._wait_loading()
        finally:
            self.closed = True
            self._loader.shutdown(wait=True)
            self._seen.close()
