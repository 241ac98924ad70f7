"""A portal's mapped records on their way to the catalogue: parts in a folder beside the
database, so memory stays flat however large the portal is.

Records are gathered in a `RecordBatch` and written as one part: `records-<n>.parquet`,
the mapped records as the merge reads them, and `raw-<n>.tsv`, the raw entries. Parts are
written by whoever maps the batch, a worker process or the harvest itself; `Stage` hands
out part numbers, keeps the ids the listing named (`seen.jsonl`), and is told when a part
is ready. The raw entries of the parts are gathered, in a thread of their own, in batch
files of a row group each (catalog.store.ROW_GROUP_ROWS), handed to the store as each
fills (and the last when the stage closes, before the merge): DuckDB compresses and
writes an insert that large as it runs, where it logged smaller ones in the WAL and
compressed them at the close.

Why these formats: the records go to Parquet from the mapped dicts, a column at a time
(23-30 us a record with the write), where writing them as JSON lines for Arrow's JSON
reader to turn into Parquet in the harvest's process took 47-60 us. A worker imports
pyarrow for it without numpy (see import_arrow_without_numpy), and neither DuckDB. A
raw line is `["uid","raw_hash","portal_id","source_id"]<TAB>raw<TAB>details`: compact
JSON holds no raw tab or newline, so DuckDB's CSV reader splits it without parsing the
entry, which its JSON reader cost 39 us a record to do. The raw entry is stored as it
arrived (compact, in the portal's key order), never re-encoded.
"""
from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import json
import math
import operator
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson

from catalog.files import copy_bytes, write_buffers, writing
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
SEEN_COLUMNS = {"uids": "VARCHAR[]"}


def _struct_list(fields: tuple[str, ...]):
    return pa.list_(pa.struct([(name, pa.int32() if name == "position" else pa.string()) for name in fields]))


@functools.cache
def record_schema():
    """A records line: the record, with its distributions and columns nested."""
    def arrow_type(name: str):
        return (pa.list_(pa.string()) if name in ("keywords", "themes")
                else pa.int64() if name == "row_count" else pa.string())
    return pa.schema([(name, arrow_type(name)) for name in DATASET_FIELDS]
                     + [("raw_hash", pa.string()), ("distributions", _struct_list(DISTRIBUTION_FIELDS)),
                        ("columns", _struct_list(COLUMN_FIELDS))])

_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json_bytes(value) -> bytes:
    """Sorted keys, no whitespace: equal JSON gives equal bytes, hence equal hashes."""
    try:  # parsed JSON needs neither option nor default, and is faster without (hot: once per entry)
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _dumps(value, _CANONICAL, sort_keys=True)


def compact_json_bytes(value) -> bytes:
    """No whitespace, keys in the portal's order: the raw record as it was given."""
    try:  # parsed JSON needs no options, and is 30% faster without them (hot: once per entry)
        return orjson.dumps(value)
    except TypeError:  # an entry an adapter built itself: non-string keys, dates...
        return _dumps(value, orjson.OPT_NON_STR_KEYS, sort_keys=False)


def _dumps(value, option: int, sort_keys: bool) -> bytes:
    try:
        return orjson.dumps(value, option=option, default=str)
    except TypeError as exc:
        if "64-bit" not in str(exc):   # (nested past orjson's 254 levels: the caller rejects the entry)
            raise
    # an integer past 64 bits (a portal's long id), which orjson cannot write: json writes its digits
    return json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys,
                      default=str).encode("utf-8", "surrogatepass")


def _finite(value):
    """`value` with each NaN or infinity null, as orjson writes them (json writes NaN and
    Infinity, which are no JSON: a body with a long integer is parsed by json, which reads them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


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
    return directory / f"raw-{number:06d}.tsv"


def records_batch(records: list[dict]):
    """Mapped records as an Arrow record batch of record_schema(), a column at a time (what
    RecordBatch.from_pylist does, but in malloc: Arrow's own pool kept what it had used)."""
    schema, pool = record_schema(), pa.system_memory_pool()
    return pa.RecordBatch.from_arrays([pa.array(_field_values(records, name), type=field.type, memory_pool=pool)
                                       for name, field in zip(schema.names, schema)], schema=schema)


def _field_values(records: list[dict], name: str) -> list:
    """Each record's `name`, None where a record lacks it. Taken in C by itemgetter (every
    mapped record has every field: blank_record), 0.4 us a record cheaper than `get` in a
    comprehension; a record without the field is taken by `get` again (null, not an error)."""
    try:
        return list(map(operator.itemgetter(name), records))
    except KeyError:
        return [record.get(name) for record in records]


def import_arrow_without_numpy() -> None:
    """For a process that only writes parts (a mapping worker): pyarrow imports numpy
    when it is installed, and numpy's import took ~40 MB of private memory a process
    (measured: two workers 194 MB PSS with it, 108 MB without), which writing a part
    never uses. pyarrow runs without it from version 18 (pyproject.toml). That pyarrow
    stays without numpy for the life of the process, even once numpy is imported:
    to_numpy() raises and to_pandas() crashed the process (SIGSEGV, pyarrow 26), so only
    a process that never converts to numpy or pandas may call this."""
    if "pyarrow" in sys.modules or "numpy" in sys.modules:
        return
    sys.modules["numpy"] = None   # `import numpy` raises ImportError, which pyarrow expects
    try:
        import pyarrow.parquet  # noqa: F401
    finally:
        del sys.modules["numpy"]   # numpy itself can still be imported later (not for pyarrow)


class RecordBatch:
    """Validated records and their raw entries, until written as one part."""

    # records held as dicts before they become Arrow columns: a mapped record's dicts take
    # a few times the memory of its columns (a whole part's held as dicts: 4-7 MB more). Each
    # chunk costs ~5 us an Arrow column (30-40 for the nested ones) whatever its size: 250
    # records, not 100, take ~2 us a record less for ~1.2 MB more a batch (3.5 -> 4.6 MB at its peak)
    CHUNK = 250

    def __init__(self) -> None:
        self.records: list[dict] = []   # not yet in `chunks`
        self.chunks: list = []          # Arrow record batches
        self.raw: list[bytes] = []
        self.longest = 0  # bytes of its longest raw line: DuckDB must be told to expect it

    def __len__(self) -> int:
        return len(self.raw)

    def add(self, record: dict, raw_json: bytes, details_json: bytes | None, raw_hash: str) -> None:
        for position, distribution in enumerate(record["distributions"]):
            distribution["position"] = position
        record["raw_hash"] = raw_hash
        self.records.append(record)
        key = orjson.dumps([record["uid"], raw_hash, record["portal_id"], record["source_id"]])
        line = b"".join((key, b"\t", raw_json, b"\t", details_json or b"", b"\n"))   # (ended here: see write)
        self.raw.append(line)
        self.longest = max(self.longest, len(line) - 1)
        if len(self.records) >= self.CHUNK:
            self._to_columns()

    def _to_columns(self) -> None:
        if self.records:
            self.chunks.append(records_batch(self.records))
            self.records = []

    def write(self, directory: Path, number: int) -> None:
        """Write part `number`: the raw part first, so a records part never lacks its raw one.
        Each file appears whole (written aside, then renamed): a worker killed mid-write
        leaves no part that could be read. The records go straight to the Parquet the merge
        reads (uncompressed: it lives only until its portal's merge)."""
        # (the lines, each ended as it was added, handed to the kernel as they are: a join copied the
        # part's ~2.7 MB into a block of its own, faulted in afresh, 1.2-1.8 ms of a batch's 2.5-3.0 ms write)
        _write_whole(raw_part(directory, number), lambda aside: write_buffers(aside, self.raw))
        self._to_columns()
        _write_whole(records_part(directory, number), lambda aside: pq.write_table(
            pa.Table.from_batches(self.chunks, schema=record_schema()), aside, compression="none",
            use_dictionary=False))


def _write_whole(path: Path, write: Callable[[Path], None]) -> None:
    """`write` into a file beside `path`, then renamed to it: a reader sees the file whole or not at all."""
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    with writing(aside):
        write(aside)
    os.replace(aside, path)


class Stage:
    """One portal's staging folder. Each written part's raw entries are gathered, in the
    order the parts complete, by a thread of its own (DuckDB releases the GIL), so the
    store inserts them while the next batches are mapped: `load_raw(files, longest_line)`
    is called with a file of the next `raw_rows` raw entries as they fill (the parts' lines
    in order, a part split between two files if need be), or fewer: as many whole lines as
    fit `raw_bytes` (large entries: the insert keeps a row group in memory), and the rest when
    the stage closes. One file, one thread: DuckDB read several files in parallel, a row
    group of raw JSON in memory per thread, which did not fit the harvest's memory limit."""

    BATCH = 1000
    LOADS_QUEUED = 32  # parts written and not loaded yet, at most (they wait on disk)

    def __init__(self, directory: Path, load_raw: Callable[[list[Path], int], None], raw_rows: int,
                 raw_bytes: int | None = None):
        self.directory = directory
        self.load_raw = load_raw
        self.raw_rows = raw_rows
        self.raw_bytes = raw_bytes
        # the raw entries of written parts not loaded yet, and how many (the loader thread's)
        self._raw_file = None
        self._raw_rows = 0
        self._raw_files = itertools.count()
        self._raw_longest = 0
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._batch = RecordBatch()
        self._seen = open(self.path("seen"), "wb")  # noqa: SIM115 (closed by close() or abandon())
        self._seen_uids: list[str] = []
        # parts are loaded by a thread of their own, one at a time, in order
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicat-load")
        self._loading: collections.deque[Future] = collections.deque()
        self.parts = 0
        self.longest = 0
        self.closed = False

    def path(self, name: str, suffix: str = ".jsonl") -> str:
        return str(self.directory / f"{name}{suffix}")

    def records_files(self) -> list[str]:
        """The records parts written (a part appears whole; none when nothing was staged)."""
        return sorted(str(path) for path in self.directory.glob("records-*.parquet"))

    def new_part(self) -> int:
        """A part number for a batch about to be written (by this process or a worker)."""
        with self._lock:
            return next(self._numbers)

    def part_written(self, number: int, longest: int, lines: int | None = None) -> None:
        """Part `number` is written, its longest raw line `longest` bytes; `lines`: its raw
        lines, when known (a part that fits the batch file whole is then copied in the kernel,
        never read here)."""
        self.parts += 1
        self.longest = max(self.longest, longest)
        # queued, not waited for: a row group of raw entries takes ~0.5 s to insert, which
        # held up whoever wrote the next part (the listing's thread) when it waited
        while self._loading and (self._loading[0].done() or len(self._loading) >= self.LOADS_QUEUED):
            self._loading.popleft().result()  # a failed load surfaces here
        self._loading.append(self._loader.submit(self._load, number, longest, lines))

    def _load(self, number: int, longest: int, lines: int | None = None) -> None:
        part = raw_part(self.directory, number)
        self._raw_longest = max(self._raw_longest, longest)
        if lines is not None and self._append_whole(part, lines):
            part.unlink()
            return
        data, start = part.read_bytes(), 0
        if data == b"\n":  # an empty batch's part as written before session 34 (now no bytes)
            data = b""
        while start < len(data):
            # the part's lines into the batch file, up to raw_rows in all (a row group): an
            # insert of whole row groups only, as a partial row group between full ones made
            # the checkpoint merge them, compressing the whole table again
            need, lines = self.raw_rows - self._raw_rows, data.count(b"\n", start)
            end = len(data)
            if lines > need:
                end = start
                for _ in range(need):
                    end = data.index(b"\n", end) + 1
            # ... and up to raw_bytes: cut at the last whole line that fits (a part of large
            # entries is itself larger than raw_bytes); an entry larger than raw_bytes alone
            # goes in a batch of its own
            full = self._raw_rows + min(lines, need) >= self.raw_rows
            if self.raw_bytes is not None:
                room = self.raw_bytes - (self._raw_file.tell() if self._raw_file is not None else 0)
                if end - start > room:
                    full, cut = True, data.rfind(b"\n", start, start + room) + 1
                    if cut > start:
                        end = cut
                    elif self._raw_file is not None:
                        self._load_waiting_raw()
                        continue
                    else:
                        end = data.index(b"\n", start) + 1
            self._raw_rows += data.count(b"\n", start, end)
            if self._raw_file is None:
                self._raw_file = open(self.path(f"raw-batch-{next(self._raw_files):06d}", ".tsv"), "wb")  # noqa: SIM115
            with writing(self._raw_file.name):
                self._raw_file.write(data[start:end])
            start = end
            if full:
                self._load_waiting_raw()
        part.unlink()

    def _append_whole(self, part: Path, lines: int) -> bool:
        """A part of `lines` lines appended whole to the batch file when all of it fits there
        (most parts: a row group holds 16 and more), copied in the kernel (a part's read, its
        lines counted and its write cost the harvest's process ~0.4 s of CPU at 100,000
        entries); the batch file loaded if that fills it. False when it does not fit."""
        if lines == 0:   # (an empty batch's part: no bytes since session 34, a newline alone before)
            return True
        if lines > self.raw_rows - self._raw_rows:
            return False
        if self.raw_bytes is not None and part.stat().st_size > \
                self.raw_bytes - (self._raw_file.tell() if self._raw_file is not None else 0):
            return False
        if self._raw_file is None:
            self._raw_file = open(self.path(f"raw-batch-{next(self._raw_files):06d}", ".tsv"), "wb")  # noqa: SIM115
        with writing(self._raw_file.name), open(part, "rb") as source:
            self._raw_file.flush()
            copy_bytes(source.fileno(), self._raw_file.fileno())
        self._raw_rows += lines
        if self._raw_rows >= self.raw_rows:
            self._load_waiting_raw()
        return True

    def _load_waiting_raw(self) -> None:
        """The batch file as it is, into the catalogue."""
        if self._raw_file is not None:
            batch, self._raw_file, self._raw_rows = self._raw_file, None, 0
            batch.close()
            self.load_raw([Path(batch.name)], self._raw_longest)

    def _close_raw_file(self) -> None:
        if self._raw_file is not None:
            self._raw_file.close()

    def _wait_loading(self) -> None:
        while self._loading:
            self._loading.popleft().result()

    def write_batch(self, batch: RecordBatch) -> None:
        number = self.new_part()
        batch.write(self.directory, number)
        self.part_written(number, batch.longest, len(batch))

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
        with writing(self._seen.name):
            self._seen.write(line)
        self._seen_uids = []

    def abandon(self) -> None:
        """Drop what is buffered, write nothing more; returns once no raw part is loading."""
        if not self.closed:
            self.closed = True
            self._loader.shutdown(wait=True, cancel_futures=True)  # the loading one finishes
            self._seen.close()
            self._close_raw_file()

    def close(self) -> None:
        if self.closed:
            return
        try:
            # nothing staged, no part: a night with nothing new or changed writes no file (nor
            # imports pyarrow.parquet, 45 ms), and its merge skips the staged records' statements
            if len(self._batch):
                batch, self._batch = self._batch, RecordBatch()
                self.write_batch(batch)
            if self._seen_uids:
                self._write_seen()
            self._wait_loading()
            self._load_waiting_raw()  # before the merge: it only stores raw versions no dataset carries
        finally:
            self.closed = True
            self._loader.shutdown(wait=True, cancel_futures=True)  # (none left, unless a load failed)
            self._seen.close()
            self._close_raw_file()
