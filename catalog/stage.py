"""A portal's mapped records on their way to the catalogue: Parquet parts in a folder
beside the database, so memory stays flat however large the portal is.

Records are gathered in a `RecordBatch` and written as one part (`records-<n>.parquet`,
`raw-<n>.parquet`). Parts are written by whoever maps the batch, a worker process or the
harvest itself; `Stage` hands out part numbers, keeps the ids the listing named
(`seen.jsonl`), and tells the store when a raw part is ready. Parquet written from
column lists, not JSON lines: Arrow builds typed columns from Python values in a fifth
of the CPU DuckDB spends parsing the same records back from JSON (18 against 62 us a
record at 2.6 KB), the merge reads the parts as they are, and the raw entry is a string
column DuckDB only checks, where parsing it from a line cost 39 us. The raw entry is
stored as it arrived (compact, in the portal's key order), never re-encoded.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson

from catalog.lazy import LazyModule

pa = LazyModule("pyarrow")
pq = LazyModule("pyarrow.parquet")

DATASET_FIELDS = (
    "uid", "portal_id", "city", "portal_kind", "source_id", "identifier", "title", "description",
    "keywords", "themes", "publisher", "contact_name", "contact_email", "issued", "modified",
    "accrual_periodicity", "license", "access_level", "landing_page", "spatial", "temporal_start",
    "temporal_end", "asset_type", "parent_uid", "row_count",
)
TIMESTAMP_FIELDS = ("issued", "modified", "temporal_start", "temporal_end")

DISTRIBUTION_FIELDS = ("position", "title", "format", "media_type", "download_url", "access_url")
COLUMN_FIELDS = ("position", "name", "field_name", "type", "source_type", "description")
RAW_FIELDS = ("uid", "raw_hash", "portal_id", "source_id", "raw", "details")   # raw, details: JSON text
SEEN_COLUMNS = {"uids": "VARCHAR[]"}


def _struct_list(fields: tuple[str, ...]):
    return pa.list_(pa.struct([(name, pa.int32() if name == "position" else pa.string()) for name in fields]))


@functools.cache
def record_schema():
    """A records part: the record, with its distributions and columns nested."""
    def arrow_type(name: str):
        return (pa.list_(pa.string()) if name in ("keywords", "themes")
                else pa.int64() if name == "row_count" else pa.string())
    return pa.schema([(name, arrow_type(name)) for name in DATASET_FIELDS]
                     + [("raw_hash", pa.string()), ("distributions", _struct_list(DISTRIBUTION_FIELDS)),
                        ("columns", _struct_list(COLUMN_FIELDS))])


@functools.cache
def raw_schema():
    return pa.schema([(name, pa.string()) for name in RAW_FIELDS])

_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json_bytes(value) -> bytes:
    """Sorted keys, no whitespace: equal JSON gives equal bytes, hence equal hashes."""
    return orjson.dumps(value, option=_CANONICAL, default=str)


def compact_json_bytes(value) -> bytes:
    """No whitespace, keys in the portal's order: the raw record as it was given."""
    try:  # parsed JSON needs no options, and is 30% faster without them (hot: once per entry)
        return orjson.dumps(value)
    except TypeError:  # an entry an adapter built itself: non-string keys, dates...
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
    """Validated records and their raw entries, until written as one part."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.raw: dict[str, list] = {name: [] for name in RAW_FIELDS}

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: dict, raw_json: bytes, details_json: bytes | None, raw_hash: str) -> None:
        for position, distribution in enumerate(record["distributions"]):
            distribution["position"] = position
        record["raw_hash"] = raw_hash
        self.records.append(record)
        for name, value in (("uid", record["uid"]), ("raw_hash", raw_hash), ("portal_id", record["portal_id"]),
                            ("source_id", record["source_id"]), ("raw", raw_json), ("details", details_json)):
            self.raw[name].append(value)

    def write(self, directory: Path, number: int) -> None:
        """Write part `number`: the raw part first, so a records part never lacks its raw one.
        Each file appears whole (written aside, then renamed): a worker killed mid-write
        leaves no part that could be read."""
        schema = record_schema()
        records = pa.table([pa.array([r.get(field.name) for r in self.records], type=field.type) for field in schema],
                           schema=schema)
        # JSON text as UTF-8 strings: Arrow checks the encoding, DuckDB the JSON on insert
        raw = pa.table([pa.array(self.raw[name], type=pa.binary()).cast(pa.string()) if name in ("raw", "details")
                        else pa.array(self.raw[name], type=pa.string()) for name in RAW_FIELDS], schema=raw_schema())
        for path, table in ((raw_part(directory, number), raw), (records_part(directory, number), records)):
            aside = path.with_name(f".{path.name}.{os.getpid()}")
            # uncompressed, no dictionaries: a part lives only until its portal's merge
            pq.write_table(table, aside, compression="none", use_dictionary=False)
            os.replace(aside, path)


class Stage:
    """One portal's staging folder. `on_part(directory, number)` is called once per
    written part, in the order the parts complete, in a thread of its own (DuckDB releases
    the GIL), so the store loads the part's raw entries while the next batches are mapped."""

    BATCH = 1000

    def __init__(self, directory: Path, on_part: Callable[[Path, int, int], None]):
        self.directory = directory
        self.on_part = on_part
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._batch = RecordBatch()
        self._seen = open(self.path("seen"), "wb")  # noqa: SIM115 (closed by close() or abandon())
        self._seen_uids: list[str] = []
        # parts are loaded by a thread of their own, one at a time
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicat-load")
        self._loading: Future | None = None
        self.parts = 0
        self._written: list[int] = []
        self.longest = 0  # bytes of the longest line of seen.jsonl: DuckDB must be told to expect it
        self.closed = False

    def path(self, name: str, suffix: str = ".jsonl") -> str:
        return str(self.directory / f"{name}{suffix}")

    def records_files(self) -> list[str]:
        """The records parts written so far (never one a failed worker left behind)."""
        return [str(records_part(self.directory, number)) for number in sorted(self._written)]

    def new_part(self) -> int:
        """A part number for a batch about to be written (by this process or a worker)."""
        with self._lock:
            return next(self._numbers)

    def part_written(self, number: int) -> None:
        self.parts += 1
        self._written.append(number)
        self._wait_loading()
        self._loading = self._loader.submit(self.on_part, self.directory, number)

    def _wait_loading(self) -> None:
        if self._loading is not None:
            loading, self._loading = self._loading, None
            loading.result()  # a failed load surfaces here

    def write_batch(self, batch: RecordBatch) -> None:
        number = self.new_part()
        batch.write(self.directory, number)
        self.part_written(number)

    def add(self, record: dict, raw_json: str | bytes, details_json: str | bytes | None, raw_hash: str) -> None:
        """Stage one record here, in this process (worker processes write whole batches)."""
        if isinstance(raw_json, str):
            raw_json = raw_json.encode()
        if isinstance(details_json, str):
            details_json = details_json.encode()
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
        line = orjson.dumps({"uids": self._seen_uids}) + b"\n"  # a line per batch of ids, not per id
        self.longest = max(self.longest, len(line))
        self._seen.write(line)
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
