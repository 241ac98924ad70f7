"""An incremental records pull's merge: the previous Parquet folder with the rows just read.

The previous rows the delta does not hold again by the source's key (`RecordSource.merge_key`),
then the delta's rows, written to one Parquet file streamed a bounded batch at a time with
Arrow. DuckDB's `COPY` of the same rows did not fit 128 MB at 1,000 text columns or more
(each column a vector of 2,048 values in each operator, and a string dictionary of up to
1 MB in the writer) and ran again with 1 GB every night (docs/records.md). Here the merge
holds the delta's keys (a slice of DELTA_KEY_BYTES at a time, what each found kept on disk),
a batch of about ROW_GROUP_BYTES of the rows read and one row group being written, and the
footers of two parts (bounded by harvester.records.PART_COLUMN_CHUNKS), and of the delta's
keyless rows (below) at most KEYLESS_DIGESTS digests: its memory grows with neither the width nor
the delta's length.

A row with no key (Open311's request without `service_request_id`, a record that was no JSON
object, stored as a row of nulls) has nothing else to be known by: one equal to a delta row in
every column is that row read again (the days an incremental pull reads again, or a merge
re-run over the folder it published), kept once; as many as the delta holds of it, so that two
alike stay two. One edited since differs from its new reading: both are kept. The delta's keyless
rows are counted by a digest of their values; past KEYLESS_DIGESTS distinct ones, the counts go to
disk in buckets by their digests' first byte, with the previous keyless rows' digests, and are
matched a bucket at a time into a bit a previous keyless row (which the merge drops), a bucket
still too large split again by the next byte.
"""
from __future__ import annotations

import array
import contextlib
import hashlib
import itertools
import math
import mmap
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from catalog.files import sync, writing
from catalog.lazy import LazyModule
from catalog.records import link_or_copy, name_in_order, part_name

pa, pc, pq = LazyModule("pyarrow"), LazyModule("pyarrow.compute"), LazyModule("pyarrow.parquet")

# how the merged file is written: zstd at Arrow's default level (written once a night, read often)
MERGE_COMPRESSION = "zstd"
# the dictionary of a column chosen for one (few distinct values) falls back to plain values
# past this size: Arrow's default, 1 MB a column, held for each column of the row group written
DICTIONARY_PAGE_BYTES = 64 * 1024


class MergeError(Exception):
    """A previous part or a delta part that does not read as the dataset's Parquet."""


def merge_by_key(previous: list[Path], delta: list[Path], key: str, schema: pa.Schema, folder: Path, *,
                 part_rows: int, part_column_chunks: int, row_group_rows: int, row_group_bytes: int) -> int:
    """Write into `folder` the rows of the `previous` parts whose `key` the `delta` parts do not
    hold again (a keyless row: unless the delta holds it again, as many times as it does), then
    every delta row, in the parts' order; returns the rows written. Parts of `part_rows` rows
    (or a row group more), or fewer at `part_column_chunks` row groups times columns (a footer of
    ~1 KB each), as a full pull publishes them, named in order; row groups of at most
    `row_group_rows` rows and about `row_group_bytes` (as Arrow holds them). The same parts give
    the same bytes. MergeError names a part that does not read as `schema`."""
    spill = folder.with_name(f"{folder.name}-found")   # (what slices of the delta's keys found: below)
    shutil.rmtree(spill, ignore_errors=True)
    try:
        return _merge(previous, delta, key, schema, folder, spill, part_rows=part_rows,
                      part_column_chunks=part_column_chunks, row_group_rows=row_group_rows,
                      row_group_bytes=row_group_bytes)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _merge(previous: list[Path], delta: list[Path], key: str, schema: pa.Schema, folder: Path, spill: Path, *,
           part_rows: int, part_column_chunks: int, row_group_rows: int, row_group_bytes: int) -> int:
    with_nulls: set[Path] = set()
    slices = _key_slices(delta, key, schema, DELTA_KEY_BYTES, with_nulls)
    first, second = next(slices), next(slices, None)
    # which previous rows the delta replaces, a bit a row on disk, their key column read once: the judging
    # counts them, reads the row groups holding one, and the writing filters every row group by them (looked
    # up as each read, a night of edits only read the previous key column three times)
    delta_keys = first if second is None else None   # (a night's delta: its keys at once, for _SameRecords)
    spilled = _found_on_disk(previous, key, schema, itertools.chain([first], [] if second is None else [second], slices),
                             spill)
    masks = lambda path, parquet: _spilled_masks(spilled[path])   # noqa: E731
    del first, second
    keyless_delta = [path for path in delta if path in with_nulls]
    with contextlib.closing(_keyless_matches(previous, keyless_delta, key, schema, row_group_bytes, spill)) as keyless:
        # judged before a byte is written: on a night that changed nothing the whole merge was written, then
        # thrown away for the previous parts (a 38.5 MB delta: every previous row read and written again)
        if previous and _same_records(previous, delta, key, schema, row_group_bytes, masks, keyless,
                                      by_keys_alone=not keyless_delta, keys=delta_keys):
            # (the records the previous parts hold, as they hold them: those bytes)
            for part in previous:
                link_or_copy(part, folder / part.name)
            sync(folder)
            return sum(pq.read_metadata(part).num_rows for part in previous)
        keyless.rewind()
        parts = _Parts(folder, schema, part_rows, part_column_chunks)
        groups = _RowGroups(row_group_rows, row_group_bytes, parts.write)
        try:
            for path in previous:
                for table, found in _batches(path, schema, row_group_bytes, masks):
                    groups.add(table.filter(_kept(table, found, key, keyless)))
            for path in delta:
                for table in _batches(path, schema, row_group_bytes):
                    groups.add(table)
            groups.flush()
            parts.close()
        except BaseException:
            parts.abandon()
            raise
    name_in_order(folder, parts.count)
    sync(folder)
    return parts.rows


def _same_records(previous: list[Path], delta: list[Path], key: str, schema: pa.Schema, row_group_bytes: int,
                  masks, keyless, *, by_keys_alone: bool, keys: pa.Array | None = None) -> bool:
    """Whether the merge gives the records the previous parts hold (_SameRecords), judged before
    anything is written and given up at the first sign of a change. `by_keys_alone` (the delta has
    no keyless row): the previous rows it replaces are those its keys find, counted from the key
    column alone (a night that added rows ends there, no row read); their count equal to the
    delta's, only the row groups holding one are read. The delta is read first: with its `keys`
    (held at once), a replaced row unlike the delta's row of its key ends the judging there, and
    the writing reads again only the row groups judged before it, one where the first holds an
    edit (a night of edits only read every replaced row group twice, an edit in each: the whole
    dataset). `keyless` is left part read (rewind it)."""
    same = _SameRecords(delta, key, keys)
    if by_keys_alone and same.delta_rows != sum(_true_count(found) for path in previous
                                                for found in masks(path, _parquet(path, schema))):
        return False
    for path in delta:
        for table in _batches(path, schema, row_group_bytes):
            same.read_again(table)
    for path in previous:
        for table, found in _batches(path, schema, row_group_bytes, masks, skip_unfound=by_keys_alone):
            same.replaced(table, _kept(table, found, key, keyless))
            if same.changed:
                return False
    return same.holds()


def _true_count(found) -> int:
    return pc.sum(found).as_py() or 0


class _SameRecords:
    """Whether a merge gives the records the previous parts hold: the rows the delta replaces (by their
    key, or keyless rows it reads again) are its rows, equal in every column (a night on which nothing
    changed; Open311's pull reads its last days again). The merge then publishes the previous parts
    themselves, linked: written again, they came out in another order (the rows read again last) or in
    other row groups (a full pull's, one a page), other bytes for the same records.

    Judged before the merge writes (_same_records; until session 44 as it wrote, its whole output then
    thrown away on such a night), as the rows stream by, holding none of them: the two sides are the same records when they
    hold as many rows and the sums of their rows' digests (_row_digests, a float NaN equal to NaN) are
    equal, in whatever order they come. Until session 43 both sides' rows were held, up to 8 MB a side
    (a delta past it, an Open311 endpoint's 90 days read again, was taken as a change and written again
    every night), and compared by Arrow's `equals`, for which NaN is no NaN (a part holding one was written
    again every night). The digests are keyed with a key drawn for this merge: a sum of unkeyed digests
    could be matched by rows a portal built for it (a generalized birthday search), which would keep an
    edit out; keyed, nobody can compute them."""

    def __init__(self, delta: list[Path], key_column: str, keys: pa.Array | None):
        self.delta_rows = sum(pq.read_metadata(path).num_rows for path in delta)
        self.key = os.urandom(16)
        self.rows, self.sums, self.changed = [0, 0], [0, 0], False   # (replaced, read again)
        # each delta key's row digest (8 bytes of it, made odd; REPEATED for a key the delta holds twice), at
        # `keys`' positions: a replaced row unlike its key's is a change found at once (where the sums, in any
        # order, say so only at the end). 8 bytes a key beside the keys' ~20 (a SODA `:id`), up to BY_KEY_ROWS.
        self.column, self.keys = key_column, keys if keys is not None and len(keys) <= BY_KEY_ROWS else None
        self.by_key = None if self.keys is None else array.array("Q", [0]) * len(self.keys)

    def replaced(self, rows: pa.Table, kept: pa.Array) -> None:
        """Previous rows, of which the delta replaces those not `kept` (read after the delta's)."""
        if not self.changed and kept.false_count:
            self._add(0, rows.filter(pc.invert(kept)))

    def read_again(self, rows: pa.Table) -> None:
        """The delta's rows (read first)."""
        self._add(1, rows)

    def _add(self, side: int, rows: pa.Table) -> None:
        if self.changed or not rows.num_rows:
            return
        self.rows[side] += rows.num_rows
        if self.rows[0] > self.delta_rows:   # (more replaced than the delta holds: rows removed)
            self.changed = True
            return
        positions = (itertools.repeat(None) if self.by_key is None else
                     pc.index_in(rows[self.column], value_set=self.keys).to_pylist())
        total = self.sums[side]
        for digest, position in zip(_row_digests(rows, self.key), positions):
            total += int.from_bytes(digest, "little")
            if position is None:   # (a keyless row, or no keys held)
                continue
            short = int.from_bytes(digest[:8], "little") | 1
            if side == 1:
                self.by_key[position] = short if not self.by_key[position] else REPEATED
            elif self.by_key[position] != short and self.by_key[position] != REPEATED:
                self.changed = True   # (that key's row edited)
                return
        self.sums[side] = total % 2**(8 * DIGEST_BYTES)

    def holds(self) -> bool:
        return not self.changed and self.rows[0] == self.rows[1] and self.sums[0] == self.sums[1]


# the delta's keys whose rows' digests are held to find an edit at the first replaced row holding one (8 bytes
# each: 8 MB); a larger delta is judged by its sums alone (its replaced row groups read, then written)
BY_KEY_ROWS = 1 << 20
# (an even value: no row's digest, each made odd)
REPEATED = 2


class _Parts:
    """The merged folder's parts, each closed (and synced) at `part_rows` rows, or at
    `column_chunks` row groups times columns (its footer: ~1 KB each). The text columns worth a
    dictionary are judged on the first row group written, as the pull's writer judges them on its
    first table (harvester.records.dictionary_columns): on the previous parts' first row group as
    read, it was 3 rows of an Open311 full pull's (none then), and the next merge chose others."""

    def __init__(self, folder: Path, schema: pa.Schema, part_rows: int, column_chunks: int):
        self.folder, self.schema, self.part_rows, self.dictionary = folder, schema, part_rows, None
        # (a row group at least)
        self.groups_per_part = max(1, -(-column_chunks // max(len(schema), 1)))
        self.writer, self.path = None, None
        self.count = self.rows = self.in_part = self.groups = 0

    def write(self, table: pa.Table) -> None:
        """`table` as one row group."""
        if self.writer is None:
            if self.dictionary is None:
                from harvester.records import dictionary_columns
                self.dictionary = dictionary_columns(table)
            self.path = self.folder / part_name(self.count)
            with writing(self.path):
                self.writer = pq.ParquetWriter(self.path, self.schema, compression=MERGE_COMPRESSION,
                                               dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES,
                                               use_dictionary=self.dictionary)
        with writing(self.path):
            self.writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows
        self.in_part += table.num_rows
        self.groups += 1
        if self.in_part >= self.part_rows or self.groups >= self.groups_per_part:
            self.close()

    def close(self) -> None:
        if self.writer is None and self.count == 0:   # (no rows at all: a part of none, which says the columns)
            self.write(self.schema.empty_table())
        if self.writer is not None:
            with writing(self.path):
                self.writer.close()
                sync(self.path)
            self.writer, self.count, self.in_part, self.groups = None, self.count + 1, 0, 0

    def abandon(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:   # (the disk full fails its close too; the folder goes with the staging one)
                pass


def _read(path: Path, what: str, read):
    try:
        return read()
    except (OSError, pa.ArrowException) as exc:   # (ArrowInvalid: not Parquet, cut short, bad pages)
        raise MergeError(f"{what} {path.name} does not read: {str(exc).splitlines()[0]}") from None


def _parquet(path: Path, schema: pa.Schema) -> pq.ParquetFile:
    parquet = _read(path, "part", lambda: pq.ParquetFile(path))
    read = parquet.schema_arrow
    if read.names != schema.names or read.types != schema.types:
        raise MergeError(f"part {path.name} holds other columns than the dataset's: "
                         f"{_shown(read)} where the dataset has {_shown(schema)}")
    return parquet


def _shown(schema: pa.Schema) -> str:
    shown = ", ".join(f"{f.name} {f.type}" for f in list(schema)[:5])
    return shown + (f", ... ({len(schema)} columns)" if len(schema) > 5 else "")


def _batches(path: Path, schema: pa.Schema, row_group_bytes: int, masks=None, groups=None, skip_unfound=False):
    """A part's rows a row group at a time, a row group over twice `row_group_bytes` in batches
    of about that (one read whole held 425 MB of Parquet written before session 24, its row
    groups of 131,072 rows whatever their width). Arrow's batch reader holds buffers for each
    column: 110 MB for 1,000 text columns, where reading a row group whole holds 11 MB. With
    `masks` (path, parquet → which rows of each row group the delta replaces): (rows, which of
    them it replaces), else the rows alone; with `groups`, only those row groups (without `masks`);
    with `skip_unfound`, only the row groups holding a row `masks` finds."""
    parquet = _parquet(path, schema)
    metadata = parquet.metadata
    masks = masks(path, parquet) if masks else None
    for group in range(metadata.num_row_groups) if groups is None else groups:
        rows, size = metadata.row_group(group).num_rows, metadata.row_group(group).total_byte_size
        mask = next(masks) if masks else None
        if skip_unfound and not _true_count(mask):
            continue
        if size <= 2 * row_group_bytes:
            table = _read(path, "part", lambda: parquet.read_row_group(group, use_threads=False)).cast(schema)
            yield (table, mask) if masks else table
            continue
        batches = parquet.iter_batches(batch_size=max(1, rows * row_group_bytes // size), row_groups=[group],
                                       use_threads=False)
        done = 0
        while (batch := _read(path, "part", lambda: next(batches, None))) is not None:
            table = pa.Table.from_batches([batch]).cast(schema)
            yield (table, mask.slice(done, table.num_rows)) if masks else table
            done += table.num_rows


# the previous rows whose keys are looked up in the delta's at once, at least: a lookup builds a
# hash table of the delta's keys each time, so a row group at a time a delta of every one of
# 1,000,000 rows cost CPU 12.1 s and 665 MB (3.2 s, 270 MB so); their keys are read alone
KEYS_AT_ONCE = 131_072


# the delta's keys looked up at once, at most (their bytes, as Arrow holds them: about 20 a SODA
# `:id`): a larger delta's keys are looked up in slices of this, and the previous parts' keys read
# once for each slice; its memory (the slice, and the hash table each lookup builds of it) then
# does not grow with the delta (4,000,000 keys: a peak of 336 MB, 593-612 MB held whole; the
# same CPU: docs/benchmarks.md, Records memory)
DELTA_KEY_BYTES = 16 * 2**20


def _replaced_masks(path: Path, parquet: pq.ParquetFile, key: str, keys: pa.Array):
    """For each row group of `parquet` in turn: which of its rows have a key among `keys`,
    looked up for as many rows at once as `keys` holds (KEYS_AT_ONCE at least)."""
    metadata, at_once = parquet.metadata, max(KEYS_AT_ONCE, len(keys))
    group = 0
    while group < metadata.num_row_groups:
        groups = [group]
        rows = metadata.row_group(group).num_rows
        while groups[-1] + 1 < metadata.num_row_groups and rows + metadata.row_group(groups[-1] + 1).num_rows <= at_once:
            groups.append(groups[-1] + 1)
            rows += metadata.row_group(groups[-1]).num_rows
        column = _read(path, "part", lambda: parquet.read_row_groups(groups, columns=[key], use_threads=False))[key]
        found = pc.is_in(column, value_set=keys)   # (a null key is in no value set)
        done = 0
        for number in groups:
            count = metadata.row_group(number).num_rows
            yield found.slice(done, count)
            done += count
        group = groups[-1] + 1


def _key_slices(delta: list[Path], key: str, schema: pa.Schema, most_bytes: int, with_nulls: set[Path]):
    """The delta's keys in slices of about `most_bytes` (at least one slice, and one key; each key
    once within its slice), read a row group at a time; the parts that hold a row without a key are
    added to `with_nulls`."""
    kind = schema.field(key).type
    pending, size, given = [], 0, False
    for path in delta:
        parquet = _parquet(path, schema)
        for group in range(parquet.metadata.num_row_groups):
            column = _read(path, "part", lambda: parquet.read_row_group(group, columns=[key], use_threads=False))[key]
            if column.null_count:
                with_nulls.add(path)
            pending.append(column.drop_null())
            size += pending[-1].nbytes
            while size >= most_bytes:   # (as many keys as fit, at their mean width; one at least)
                keys = pa.chunked_array(pending, kind)
                taken = max(1, len(keys) * most_bytes // size)
                yield keys.slice(0, taken).unique()
                rest = keys.slice(taken)
                pending, size, given = ([rest] if len(rest) else []), rest.nbytes, True
    if pending or not given:
        yield pa.chunked_array(pending, kind).unique() if pending else pa.array([], kind)


def _found_on_disk(previous: list[Path], key: str, schema: pa.Schema, slices, spill: Path) -> dict[Path, Path]:
    """For each previous part, a file in `spill` of which of its rows have a key among the
    delta's (a batch a row group), the delta's keys looked up one slice after another (`slices`),
    each slice's finds added to the last's: a bit a previous row on disk, not the delta's keys in
    memory."""
    spill.mkdir()
    files: dict[Path, Path] = {}
    # a bit for each previous row: whether a slice of the delta's keys held its key so far (built
    # here, not as the module is imported: a mapping worker imports it before pyarrow, which it
    # imports without numpy, catalog.stage.import_arrow_without_numpy)
    found_schema = pa.schema([("found", pa.bool_())])
    for number, keys in enumerate(slices):
        for index, path in enumerate(previous):
            target, earlier = spill / f"{index}.{number % 2}.arrow", files.get(path)
            masks = _replaced_masks(path, _parquet(path, schema), key, keys)
            with contextlib.ExitStack() as files_open:
                before = None if earlier is None else pa.ipc.open_file(
                    files_open.enter_context(pa.memory_map(str(earlier))))
                writer = pa.ipc.new_file(files_open.enter_context(pa.OSFile(str(target), "wb")), found_schema)
                files_open.callback(writer.close)
                for group, found in enumerate(masks):
                    found = found.combine_chunks() if isinstance(found, pa.ChunkedArray) else found
                    if before is not None:
                        found = pc.or_(found, before.get_batch(group).column(0))
                    writer.write_batch(pa.record_batch([found], schema=found_schema))
            files[path] = target
    return files


def _spilled_masks(path: Path):
    """The masks `_found_on_disk` wrote for a previous part, a row group at a time."""
    with pa.memory_map(str(path)) as source:
        found = pa.ipc.open_file(source)
        for group in range(found.num_record_batches):
            yield found.get_batch(group).column(0)


# the delta's keyless rows' digests counted in memory at most (distinct ones: ~100 bytes each in a
# Counter, 13 MB): past it they are counted on disk, a bucket of them at a time (_SpilledKeyless)
KEYLESS_DIGESTS = 131_072
DIGEST_BYTES = 16
# a record of a bucket: a digest, then a count (the delta's) or a row's number (the previous keyless
# rows', in the merge's order); 256 buckets, each a buffer of this many bytes before its file
RECORD_BYTES = DIGEST_BYTES + 8
BUCKET_BUFFER = 16 * 1024


def _keyless_matches(previous: list[Path], delta: list[Path], key: str, schema: pa.Schema, row_group_bytes: int,
                     spill: Path):
    """Which previous keyless rows the delta's keyless rows (those of its `delta` parts that hold
    any) read again: a `_CountedKeyless`, or past KEYLESS_DIGESTS a `_SpilledKeyless` (in `spill`)."""
    counts, buckets = Counter(), None
    for digest in _keyless_digests(delta, key, schema, row_group_bytes):
        counts[digest] += 1
        if len(counts) > KEYLESS_DIGESTS:
            buckets = buckets or _Buckets(_made(spill / "delta"), 0)
            buckets.add_counts(counts)
            counts.clear()
    if buckets is None:
        return _CountedKeyless(counts)
    buckets.add_counts(counts)
    del counts
    return _SpilledKeyless(previous, buckets.close(), key, schema, row_group_bytes, spill)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _keyless_digests(parts: list[Path], key: str, schema: pa.Schema, row_group_bytes: int):
    """The digest of each keyless row of `parts`, in the merge's order (a row group read whole
    only where its key column holds a null)."""
    for path in parts:
        parquet = _parquet(path, schema)
        with_nulls = [group for group in range(parquet.metadata.num_row_groups)
                      if _read(path, "part", lambda: parquet.read_row_group(group, columns=[key], use_threads=False))
                      [key].null_count]
        for table in _batches(path, schema, row_group_bytes, groups=with_nulls):
            yield from _row_digests(table.filter(pc.is_null(table[key])))


class _CountedKeyless:
    """The delta's keyless rows counted in memory by their digests: each previous keyless row
    equal to one not yet matched is dropped (and counted down)."""

    def __init__(self, counts: Counter):
        self.counts, self.taken = counts, []   # (the digests counted down, given back by rewind)

    def dropped(self, table: pa.Table, positions: pa.Array) -> list[bool]:
        """Of the next previous keyless rows (`table`'s at `positions`), which the delta reads again."""
        if not self.counts:
            return [False] * len(positions)
        out = []
        for digest in _row_digests(table.take(positions)):
            out.append(self.counts[digest] > 0)   # (that row read again: the delta's reading is kept)
            if out[-1]:
                self.counts[digest] -= 1
                self.taken.append(digest)
        return out

    def rewind(self) -> None:
        """Matched again from the first previous keyless row."""
        for digest in self.taken:
            self.counts[digest] += 1
        self.taken = []

    def close(self) -> None:
        pass


class _SpilledKeyless:
    """The previous keyless rows the delta reads again as a bit each in a file, made by matching
    the delta's counts (`delta`: bucket → file) with the previous keyless rows' digests a bucket
    at a time, a bucket of over KEYLESS_DIGESTS distinct digests split by the next byte of them;
    read in the merge's order as it reads the previous rows."""

    def __init__(self, previous: list[Path], delta: dict[int, Path], key: str, schema: pa.Schema,
                 row_group_bytes: int, spill: Path):
        buckets, rows = _Buckets(_made(spill / "previous"), 0), 0
        for rows, digest in enumerate(_keyless_digests(previous, key, schema, row_group_bytes), 1):
            if digest[0] in delta:   # (a digest no delta row has is never dropped)
                buckets.add(digest + (rows - 1).to_bytes(8, "little"))
        marks = spill / "dropped.bits"
        with open(marks, "wb") as out:
            out.truncate(-(-rows // 8))
        if rows:
            with open(marks, "r+b") as out, mmap.mmap(out.fileno(), 0) as bits:
                _match(delta, buckets.close(), 1, bits)
        self.bits, self.row, self.byte = open(marks, "rb"), 0, 0

    def dropped(self, table: pa.Table, positions: pa.Array) -> list[bool]:
        """Of the next previous keyless rows (`table`'s at `positions`), which the delta reads again."""
        out = []
        for _ in range(len(positions)):
            if self.row % 8 == 0:
                self.byte = self.bits.read(1)[0]
            out.append(bool(self.byte >> (self.row % 8) & 1))
            self.row += 1
        return out

    def rewind(self) -> None:
        """Read again from the first previous keyless row."""
        self.bits.seek(0)
        self.row = 0

    def close(self) -> None:
        self.bits.close()


def _match(delta: dict[int, Path], previous: dict[int, Path], depth: int, bits: mmap.mmap) -> None:
    """Set the bit of each previous keyless row (`previous`: bucket → its records, in the merge's
    order) equal to one of the delta's (`delta`: bucket → counts) not yet matched, a bucket at a
    time; one of more than KEYLESS_DIGESTS distinct digests split by their byte `depth` first."""
    for bucket, counts_file in sorted(delta.items()):
        rows_file = previous.get(bucket)
        if rows_file is None:
            continue
        counts = Counter()
        for record in _records(counts_file):
            counts[record[:DIGEST_BYTES]] += int.from_bytes(record[DIGEST_BYTES:], "little")
            if len(counts) > KEYLESS_DIGESTS and depth < DIGEST_BYTES:
                break
        else:
            for record in _records(rows_file):
                digest = record[:DIGEST_BYTES]
                if counts.get(digest, 0) > 0:
                    counts[digest] -= 1
                    row = int.from_bytes(record[DIGEST_BYTES:], "little")
                    bits[row // 8] |= 1 << (row % 8)
            continue
        del counts
        _match(_split(counts_file, depth), _split(rows_file, depth), depth + 1, bits)


def _split(records: Path, depth: int) -> dict[int, Path]:
    """`records` (removed) in buckets by their digests' byte `depth`, in a folder beside it."""
    buckets = _Buckets(_made(records.with_name(f"{records.name}.{depth}")), depth)
    for record in _records(records):
        buckets.add(record)
    records.unlink()
    return buckets.close()


def _records(path: Path):
    with open(path, "rb") as records:
        while chunk := records.read(RECORD_BYTES * 4096):
            for start in range(0, len(chunk), RECORD_BYTES):
                yield chunk[start:start + RECORD_BYTES]


class _Buckets:
    """Records in files of `folder` by their digests' byte `depth`, each file's records in the order
    they came, a buffer of BUCKET_BUFFER bytes a file (256 at most, appended to as each fills)."""

    def __init__(self, folder: Path, depth: int):
        self.folder, self.depth = folder, depth
        self.buffers: dict[int, bytearray] = {}

    def add(self, record: bytes) -> None:
        buffer = self.buffers.setdefault(record[self.depth], bytearray())
        buffer += record
        if len(buffer) >= BUCKET_BUFFER:
            self._flush(record[self.depth])

    def add_counts(self, counts: Counter) -> None:
        for digest, count in counts.items():
            self.add(digest + count.to_bytes(8, "little"))

    def _flush(self, bucket: int) -> None:
        with open(self.folder / str(bucket), "ab") as out:
            out.write(self.buffers[bucket])
        self.buffers[bucket] = bytearray()

    def close(self) -> dict[int, Path]:
        """Each bucket's file."""
        for bucket in list(self.buffers):
            self._flush(bucket)
        return {bucket: self.folder / str(bucket) for bucket in self.buffers}


def _kept(table: pa.Table, replaced: pa.ChunkedArray, key: str, keyless) -> pa.Array:
    """Which previous rows of `table` the delta does not replace: those whose key it holds
    (`replaced`), and the keyless rows it reads again (`keyless`, asked for them in order)."""
    kept = pc.invert(replaced.combine_chunks() if isinstance(replaced, pa.ChunkedArray) else replaced)
    keys = table[key]
    if keys.null_count:
        positions = pc.indices_nonzero(pc.is_null(keys))
        dropped = keyless.dropped(table, positions)
        if any(dropped):
            keep = kept.to_pylist()
            for position, drop in zip(positions.to_pylist(), dropped):
                keep[position] = keep[position] and not drop
            kept = pa.array(keep, pa.bool_())
    return kept


def _row_digests(table: pa.Table, key: bytes = b"") -> Iterator[bytes]:
    """Each row's values as a digest (`key`: blake2b's): rows equal in every column (null equal to
    null, as DuckDB's EXCEPT ALL has them; a float NaN to NaN, -0.0 to 0.0) have the same; 16 bytes
    each, not the rows. Read a slice of about DIGESTED_BYTES at a time, a column at a time (a float
    column's values made comparable): Python's objects of a row group's 8 MB took several times that."""
    if not table.num_rows:
        return
    at_once = max(1, table.num_rows * DIGESTED_BYTES // max(table.nbytes, 1))
    floating = [pa.types.is_floating(field.type) for field in table.schema]
    for start in range(0, table.num_rows, at_once):
        part = table.slice(start, at_once)
        columns = [[_comparable(v) for v in column.to_pylist()] if is_float else column.to_pylist()
                   for column, is_float in zip(part.columns, floating)]
        for row in zip(*columns):
            yield hashlib.blake2b(repr(row).encode(), digest_size=DIGEST_BYTES, key=key).digest()


# the rows of a table turned into Python's objects at once to be digested, at most (their bytes as Arrow
# holds them)
DIGESTED_BYTES = 1 << 20


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    """Whether `a` and `b` hold the same rows in the same order, a float NaN equal to NaN (as
    _row_digests has them): Arrow's `equals` has no NaN equal to itself, so a page a portal repeated
    or a row asked again was never the same where it held one. `equals` first; the rows' digests
    only where it says no and both hold a NaN (digested a slice at a time, stopping at a row that differs)."""
    if a.num_rows != b.num_rows or not a.schema.equals(b.schema):
        return False
    if a.equals(b):
        return True
    if not (_holds_nan(a) and _holds_nan(b)):
        return False
    return all(x == y for x, y in zip(_row_digests(a), _row_digests(b)))


def _holds_nan(table: pa.Table) -> bool:
    """Whether a float column of `table` holds a NaN (records' columns are flat: harvester.records.arrow_type)."""
    return any(pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py()
               for column in table.columns)


def _comparable(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value + 0.0   # (every NaN alike; -0.0 is 0.0)
    return value


class _RowGroups:
    """Tables gathered into row groups of about `most_bytes` each, however they came (previous
    row groups thinned by the delta, a night's delta of a few rows), each given to `write`:
    written as they came, each merge would add a row group of its delta and leave smaller ones."""

    def __init__(self, most_rows: int, most_bytes: int, write):
        # (aimed a sixteenth under: Parquet's own measure of a group, with its lengths and levels,
        # is a little over Arrow's, and the pull's writer keeps it within most_bytes too)
        self.most_rows, self.most_bytes, self.write = most_rows, most_bytes - most_bytes // 16, write
        self.pending: list[pa.Table] = []
        self.rows = self.bytes = 0

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.pending.append(table)
        self.rows += table.num_rows
        self.bytes += table.nbytes
        while self.rows >= self.most_rows or self.bytes >= self.most_bytes:
            self._write_group()

    def flush(self) -> None:
        while self.rows:
            self._write_group()

    def _write_group(self) -> None:
        """The next group: as many rows as fit at the pending rows' mean width."""
        rows = max(1, min(self.most_rows, self.rows, self.most_bytes * self.rows // max(self.bytes, 1)))
        pending = pa.concat_tables(self.pending)
        self.write(pending.slice(0, rows))
        rest = pending.slice(rows)
        self.pending = [rest] if rest.num_rows else []
        self.rows, self.bytes = rest.num_rows, rest.nbytes if rest.num_rows else 0
