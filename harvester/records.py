"""The records harvest: rows of chosen datasets into typed, Hive-partitioned Parquet.

Each portal kind's module says how its rows are read (`PortalAdapter.record_source`):
endpoints, paging, field types. This module holds what they share: the Arrow types of
the shared column vocabulary and the conversion of portal values to them, the paged
driver that writes parts, resumes a pull cut short and publishes a dataset only when it
is complete, and the pull of a portal's chosen datasets with errors kept per dataset.
"""
from __future__ import annotations

import csv
import ctypes
import functools
import json
import logging
import re
import shutil
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from catalog.disk import disk_full
from catalog.files import sync, writing
from catalog.folder import catalogue_id
from catalog.scratch import ScratchFolder, remove_left_over
from catalog.lazy import LazyModule
from catalog.record import DATED_AHEAD_SLACK, days_after, format_timestamp
from catalog.records import (PreviousPull, RecordsLayout, intend_record, link_or_copy, measure_folder, name_in_order,
                             name_keyed_folders, part_name, part_number, previous_pull, record_pull, recorded,
                             scratch_duckdb, write_json_atomic)
from catalog import uncut
from harvester.http import OverBudget, ResponseTooLarge, error_type
from harvester.paging import RAISE_THE_CAP, OversizedAnswers, Page, Paginator, cap_reason, pages, request_text
from harvester.records_merge import MergeError, merge_by_key, same_rows
from harvester.stopping import cancelled_on_stop, stop_requested, stopped_by

log = logging.getLogger("civicat.records")

# imported on first use: the catalogue's mapping workers import this module, never run it
pa, pc = LazyModule("pyarrow"), LazyModule("pyarrow.compute")
pacsv, pq = LazyModule("pyarrow.csv"), LazyModule("pyarrow.parquet")

# the shared column vocabulary (SPEC `columns.type`) → Arrow; `datetime_utc` is a datetime
# the portal gives as an instant (Esri epoch milliseconds, Socrata fixed timestamps)
KINDS = ("text", "url", "other", "integer", "number", "boolean", "date", "datetime", "datetime_utc", "point",
         "geometry")


@functools.cache
def arrow_type(kind: str) -> pa.DataType:
    return {
        "text": pa.string(), "url": pa.string(), "other": pa.string(), "integer": pa.int64(), "number": pa.float64(),
        "boolean": pa.bool_(), "date": pa.date32(), "datetime": pa.timestamp("us"),
        "datetime_utc": pa.timestamp("us", tz="UTC"), "point": pa.string(), "geometry": pa.string(),
    }[kind]


TEXT_KINDS = ("text", "url", "other", "point", "geometry")
CSV_TYPED = ("integer", "number", "boolean", "datetime", "datetime_utc")   # Arrow's CSV reader parses these itself
PART_ROWS = 500_000   # rows per Parquet part: the unit a cut-short pull resumes from
# ...or fewer, so that a part's footer stays small: it holds ~100 bytes for each column of each row
# group (offsets, sizes, encodings, statistics), ~1 KB once read, and whatever opens a part (the
# merge, the profile, export, an analyst's DuckDB or pandas) reads it whole, as the part's writer
# holds it until it closes. 500,000 rows of 1,000 16-character texts are ~1,250 row groups of 8 MB:
# a footer of ~1.3 GB read. A part closes once its row groups times its columns reach this (~16 MB
# read; at least a row group: `part_full`)
PART_COLUMN_CHUNKS = 16_384
# ...or fewer: a part is also closed this long after the last, so that a pull killed outright
# (SIGKILL, the OOM killer, a reboot) loses at most this much pulling, not 500,000 rows of a
# slow portal's requests; such parts are joined into parts of PART_ROWS before they are
# published (_packed). Closing one costs milliseconds (its footer, two fsyncs, progress.json).
PART_SECONDS = 30
# how a part is written (zstd at its fastest level: parts are written as fast as pages arrive)
PART_COMPRESSION = {"compression": "zstd", "compression_level": 1}
ROW_GROUP_ROWS = 128 * 1024
# ...or fewer, so that a row group holds about this many bytes (as Arrow holds them; the merge,
# harvester.records_merge, gathers its rows alike): each DuckDB thread that reads a part (a
# profile, a front end) holds two to three times a row group of the columns it reads. 131,072
# rows of 30 distinct 16-character texts (63 MB) did not fit a 128 MB profile even on one
# thread, nor did row groups of 16 MB of 200 40-character texts on two; 8 MB did (docs/records.md)
ROW_GROUP_BYTES = 8 * 2**20
# ...and a page asks, from the first one read, as many rows as fit about this many bytes (as
# Arrow holds them): a pull holds a page or two whole, besides the one it writes, and SODA's
# 50,000 rows of 1,000 text columns are ~1 GB (they were asked by halving down from the
# response cap, 256 MiB, then read on in pages of ~212 MB). Two row groups: a narrow dataset's
# pages of 50,000 rows (SPD 911: ~10 MB) are asked as they were
PAGE_BYTES = 2 * ROW_GROUP_BYTES
# ...and the first page, whose rows' width is not known yet, no more rows than PAGE_BYTES holds
# at this many bytes a column (an Arrow text value's offset and a few characters): SODA's
# 50,000 rows for up to ~40 columns, ~2,000 rows of 1,000 (not halved down from the response
# cap, each answer over it a read of up to 256 MiB, to 12,500 rows of 212 MB)
FIRST_PAGE_COLUMN_BYTES = 8
# columns a pull takes: wide census tables run to a few thousand; a portal listing 10^6
# fields would hold the run for days (the profile's cost grows with the square of them:
# 100,000 took 7 minutes), and records pulls are outside the portal's max_minutes (each has its
# records_max_minutes, checked at its requests only)
MAX_COLUMNS = 10_000
CSV_MEMORY, WIDE_CSV_MEMORY = "256MB", "1GB"   # DuckDB's for a downloaded CSV; the second for a wide one
# a server's clock (its answers' Date headers) further than this from ours is not believed: warned of
# (ServerClock), its rows judged by ours (a Date of 2062 would let a row stamped 2062 be the watermark)
SERVER_CLOCK_BELIEVED = timedelta(days=365)
# nearer than this, the two clocks agree (a Date is to the second, and is older by the answer's way here)
CLOCKS_AGREE = timedelta(minutes=1)
# how long before the pull began (by the server's clock) the watermark is at the latest: a row changed
# after it began is stamped after that, and the next pull reads it. The latest stamp read was the
# watermark: a row edited during the pull in a page read already (staged as it was), and one edited a
# moment later in a page not yet read, had the next pull ask for rows changed after the second's stamp,
# and the first's edit was read by no incremental pull; so was every row changed before a stamp ahead
# within DATED_AHEAD_SLACK (a database's clock hours ahead, put right since). What it costs: the rows
# stamped since are read again by the next pull (merged by key). CLOCKS_AGREE: a server's clock within
# it is taken as ours, and may be that much behind
WATERMARK_BEFORE_START = CLOCKS_AGREE
# the rows a watermark bounded by our clock, not by a server's ahead of it, may read again each pull
# (watermark_bound), and their share of the dataset's: a server truly ahead that stamped more within its
# lead past our now keeps its own bound; fewer, rows stamped past our now are taken as a clock's slip
READ_AGAIN_AT_MOST, READ_AGAIN_SHARE = 1_000, 0.01
STAMPS_MEMORY = "64MB"   # DuckDB's to count a column's stamps dated ahead (a scan of one column, two aggregates)


class RecordsError(Exception):
    """A dataset whose records cannot be pulled. Its `error_type`, what record_pulls and
    harvest_errors store (docs/harvesting.md, "Error types"), is its class's name: each
    subclass says what happened, a reader's filter (a plain RecordsError is raised nowhere)."""

    @property
    def error_type(self) -> str:
        return type(self).__name__


class NotPullable(RecordsError):
    """What the catalogue holds of the dataset gives a pull nothing to read: no CSV, DataStore or
    layer, not a table, no columns, more than MAX_COLUMNS, or no such dataset."""


class RecordsAnswerUnexpected(RecordsError):
    """An answer the portal's API calls a success that lacks what that API always gives (a
    DataStore without fields, a query answer without its features list)."""

    error_type = "UnexpectedResult"


class PagesDisagree(RecordsError):
    """The pages of a pull repeat or contradict each other (a page starting behind the last row
    read, a batch answering rows it was not asked for, one second's pages never read alike)."""

    error_type = "PagingError"


class PagesWithoutEnd(PagesDisagree):
    """A pull that gave far more rows than the portal counted at its start: its pages do not end
    (a FeatureServer saying `exceededTransferLimit` on every page, SODA's pages full past the count)."""


class PagesOverlap(PagesDisagree):
    """A pull that gave more rows than the portal counts, at its start and again at its end, where
    rows carry no key to tell which came twice (OpenDataSoft): its pages overlap (a sort that moved
    between them, a row repeated across a page boundary) or its export repeats rows. Published, the
    dataset held duplicates, its count over the portal's."""


# rows a pull may give past twice the count the portal gave at its start before it fails as pages
# without end (PagesWithoutEnd): it read on while the pages came full or said there were more,
# bounded by its records_max_minutes alone, six hours of rows written to the disk. Rows added as a
# pull reads are few; twice the count and a million more is no dataset's growth
ROWS_PAST_THE_COUNT = 1_000_000


class RowsOverBudget(RecordsError):
    """A pull past its portal's `records_max_rows`, or whose portal counts more rows than that at its
    start: a count that lies high (500,000,000) let pages without end run for the pull's whole
    records_max_minutes, bounded by twice it, staging tens of GB; no other count of the same server
    (a FeatureServer's, SODA's) checks it. Said as a budget spent, as records_max_minutes is."""

    error_type = "OverBudget"


class RowsMissing(RecordsError):
    """The pull gave fewer rows than the portal counted, or a row the portal lists was never given."""


class NotTheDataset(RecordsError):
    """What was read has none of the published dataset's columns (a server's error text behind a 200)."""


class MergeFailed(RecordsError):
    """An incremental pull's rows could not be merged with the published records (a part that does not read)."""


class ChangedAsRead(RecordsError):
    """The dataset changed while it was read in a way a second reading does not mend (its columns
    changed; or it changed again as it was read again): the next pull reads it again."""

    error_type = "SourceChanged"


class SourceChanged(RecordsError):
    """Rows were added or removed while the pull read the dataset, which moves the rows
    after them between offset pages (one read twice, or one never read): the pull is read
    again, once (pull_dataset). `only_added`: raised once every row was staged, and rows were
    only added (a row read twice, or one added to a page read already; none lost): a second
    read that sees only that is published as read, with a warning. A large dataset that
    takes rows all day (a 911 log) changes during every full read, and failing it would
    leave it with no records at all, night after night."""

    def __init__(self, message: str, *, only_added: bool = False, key: str | None = None, repeated=()):
        super().__init__(message)
        self.only_added = only_added
        # the rows staged more than once, by their `key` column: published as read, each is kept once
        self.key, self.repeated = key, tuple(repeated)


class StartsOver(RecordsError):
    """A pull learned that rows read before that point must be read again, which its state does
    not allow (Open311's windows taken whole, due under a wider margin, by a pull gone on from where
    one cut short stopped; a server shown not to read the times asked, read again by whole days; one
    shown past the half rule): the pull starts over (pull_dataset), the reason logged. A source raises
    each of its reasons once a pull, so a pull may start over more than once (a server read by whole
    days once shown not to read times, then past half: started over once only, the second failed the
    pull, every night); STARTS_OVER_AT_MOST bounds it."""


# the start-overs a pull makes at most (StartsOver): Open311's three reasons, each once a pull
STARTS_OVER_AT_MOST = 3


@dataclass(frozen=True)
class Field:
    name: str      # the column's name in the Parquet: the portal's field name, made unique and printable
    kind: str      # one of KINDS
    source: str | None = None   # the portal's field name, where `name` had to differ from it

    @property
    def key(self) -> str:
        return self.name if self.source is None else self.source


def arrow_schema(fields: list[Field]) -> pa.Schema:
    return pa.schema([pa.field(f.name, arrow_type(f.kind)) for f in fields])


def clean_name(name: str) -> str:
    """A portal's field name as a Parquet column name: no control characters."""
    return "".join(ch for ch in str(name) if ch >= " " and ch != "\x7f") or "_"


PARTITION_KEYS = ("portal", "dataset")   # the records folders' Hive keys (catalog.records.RecordsLayout)


def unique_fields(fields: list[Field]) -> list[Field]:
    """Each column once, with a printable name (portals do list a field twice: the second
    becomes `name_2`, read from the same source field), of a known kind (else `other`).
    Names are unique whatever their case (DuckDB, which profiles the Parquet,
    reads `ID` and `id` as one name), and a name the portal gave is kept before a name made
    unique: `a`, `a<NUL>`, `a_2` become `a`, `a_3`, `a_2`, never two columns `a_2`. The
    folders' Hive keys are taken: a `dataset` column read Hive-style (DuckDB, polars and
    pyarrow alike) gave the folder's value in place of its own; it is `dataset_2`."""
    names = [clean_name(f.name) for f in fields]
    taken = set(PARTITION_KEYS)
    kept = []
    for name in names:
        kept.append(name.lower() not in taken)
        taken.add(name.lower())
    out = []
    for f, name, keep in zip(fields, names, kept):
        if not keep:
            number = 2
            while f"{name}_{number}".lower() in taken:
                number += 1
            name = f"{name}_{number}"
            taken.add(name.lower())
        out.append(Field(name, f.kind if f.kind in KINDS else "other", None if name == f.name else f.name))
    return out


_memory_bounded = False


def bound_process_memory() -> None:
    """A pull reads and converts pages in several threads; by default glibc keeps each
    thread's freed page buffers in its own arena and Arrow's mimalloc keeps freed
    segments, so RSS grows far past what is in use. Large buffers are mapped (and given
    back when freed) and Arrow allocates with jemalloc: 430 → 300 MB peak on a 1M-row pull."""
    global _memory_bounded
    if _memory_bounded:
        return
    _memory_bounded = True
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc
        pass
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)   # M_MMAP_THRESHOLD: 1 MB
    except (OSError, AttributeError):  # not glibc
        pass


# -- values → Arrow ------------------------------------------------------------------------

class Conversion:
    """Converts columns to their Arrow types; a value that does not parse becomes null and
    is counted per column (reported as a warning, the raw value being the portal's)."""

    def __init__(self, fields: list[Field]):
        self.fields = fields
        self.schema = arrow_schema(fields)
        self.invalid: Counter[str] = Counter()
        self.not_objects = 0   # records that were no JSON object, each stored as a row of nulls

    def table_from_rows(self, rows: list) -> pa.Table:
        """JSON records (a list of objects) → a typed table; missing keys are nulls. A record
        that is no object (a string, a number, null) is a row of nulls, counted: dropped, it
        shifted the offset of every page after it (a row read twice, the count still met)."""
        objects = [row if isinstance(row, dict) else None for row in rows]
        self.not_objects += objects.count(None)
        return self.table({f.key: [None if row is None else row.get(f.key) for row in objects] for f in self.fields},
                          len(rows))

    def table(self, columns: dict[str, list | pa.Array], length: int) -> pa.Table:
        """Columns by the portal's field names → a table of this schema."""
        arrays = []
        for f in self.fields:
            values = columns.get(f.key)
            arrays.append(pa.nulls(length, arrow_type(f.kind)) if values is None else self.column(values, f))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def column(self, values: list | pa.Array, f: Field) -> pa.Array:
        target = arrow_type(f.kind)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if isinstance(values, pa.Array):
            if values.type == target:
                return values
            if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
                return self._cast_strings(values, f, target)
            values = values.to_pylist()
        if f.kind in TEXT_KINDS:
            if f.kind in ("text", "other"):
                try:
                    return pa.array(values, pa.string())
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    pass   # objects, numbers among the strings: each value on its own
            return self._texts(values, f)
        try:
            array = pa.array(values)
        # mixed types, or an integer past 64 bits (JSON's, read exactly): each value on its own
        except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError):
            return self._one_by_one(values, f, target)
        if pa.types.is_null(array.type):
            return pa.nulls(len(values), target)
        if pa.types.is_string(array.type):
            return self._cast_strings(array, f, target)
        if f.kind in ("datetime", "datetime_utc") and pa.types.is_integer(array.type):
            # epoch milliseconds (Esri): an instant, in UTC
            stamps = array.cast(pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
            return stamps if f.kind == "datetime_utc" else stamps.cast(pa.timestamp("us"))
        try:
            return array.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return self._one_by_one(values, f, target)

    def _texts(self, values: list, f: Field) -> pa.Array:
        out, bad = [], 0
        for value in values:
            try:
                out.append(_as_text(value, f.kind))
            except ValueError:
                out.append(None)
                bad += 1
        if bad:
            self.invalid[f.name] += bad
        return pa.array(out, pa.string())

    def _cast_strings(self, array: pa.Array, f: Field, target: pa.DataType) -> pa.Array:
        if f.kind in TEXT_KINDS:
            return array.cast(pa.string())
        if f.kind == "boolean":
            array = pc.utf8_lower(array)
        try:
            return array.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return self._one_by_one(array.to_pylist(), f, target)

    def _one_by_one(self, values: list, f: Field, target: pa.DataType) -> pa.Array:
        parse = PARSERS[f.kind]
        out, bad = [], 0
        for value in values:
            if value is None or value == "":
                out.append(None)
                continue
            try:
                out.append(parse(value))
            except (ValueError, TypeError, OverflowError):
                out.append(None)
                bad += 1
        if bad:
            self.invalid[f.name] += bad
        return pa.array(out, target)


def _as_text(value, kind: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if kind == "point":
        return point_wkt(value)
    if kind == "geometry" and isinstance(value, dict):
        return geometry_wkt(value)
    if kind == "url" and isinstance(value, dict) and ("url" in value or "description" in value):
        return url_cell(value)
    if isinstance(value, (dict, list)):
        return json_text(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def url_cell(value: dict) -> str | None:
    """A Socrata URL cell ({"url": …, "description": …}) as text: "description (url)", as a link
    is kept in a description's text (catalog.record.html_to_text); the URL alone when it has no
    description of its own (the description was dropped: "Socrata" of "http://www.socrata.com")."""
    address = value.get("url")
    address = address.strip() if isinstance(address, str) else None
    described = value.get("description")
    described = described.strip() if isinstance(described, str) else None
    if not described or described == address:
        return address or None
    return f"{described} ({address})" if address else described


def url_cells_of_csv(cells: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A URL column as SODA's CSV writes it, "description (url)", the URL or the description alone
    (soda-fountain's CsvColumnRep.UrlRep): already as `url_cell` stores the JSON's cells, but for a
    description that is its own URL, written twice ("u (u)": stored "u", as `url_cell` stores it)
    and spaces around a cell (trimmed, as `url_cell` trims)."""
    text = pc.utf8_trim_whitespace(cells)
    first = pc.list_element(pc.split_pattern(text, " (", max_splits=1), 0)
    twice = pc.fill_null(pc.equal(pc.binary_join_element_wise(first, " (", first, ")", ""), text), False)
    text = pc.if_else(twice, first, text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def json_text(value) -> str:
    """A value as compact JSON text. orjson writes 254 levels of nesting, where the page's
    parser read up to 1,024: deeper values are written by the json module, and a value
    past even its reach is a ValueError (stored as null and counted, as a bad value is)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:   # (orjson.JSONEncodeError: "Recursion limit reached")
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except RecursionError:
            raise ValueError("a value nested too deep to be written as JSON") from None


def point_wkt(value) -> str | None:
    """A point as WKT `POINT (lon lat)`: from Socrata locations ({latitude, longitude}),
    GeoJSON points, Esri points ({x, y}); a Socrata location without coordinates as its address
    (soda_address); other shapes are kept as JSON text."""
    if isinstance(value, dict):
        if value.get("type") == "Point" and isinstance(value.get("coordinates"), list) \
                and len(value["coordinates"]) >= 2:
            x, y = value["coordinates"][:2]
        elif "longitude" in value and "latitude" in value:
            x, y = value.get("longitude"), value.get("latitude")
        elif "x" in value and "y" in value:
            x, y = value.get("x"), value.get("y")
        elif "lon" in value and "lat" in value:   # OpenDataSoft geo_point_2d
            x, y = value.get("lon"), value.get("lat")
        elif "human_address" in value:
            return soda_address(value["human_address"])
        else:
            return json_text(value)
        if x in (None, "") or y in (None, ""):
            return soda_address(value["human_address"]) if "human_address" in value else None
        try:
            return f"POINT ({float(x)!r} {float(y)!r})"
        except (TypeError, ValueError):
            return json_text(value)
    return value if isinstance(value, str) or value is None else json_text(value)


# GeoJSON's geometry types, each with the depth of its coordinates' nesting
GEOJSON_DEPTHS = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def geometry_wkt(value: dict) -> str | None:
    """A GeoJSON geometry (or a Feature holding one: OpenDataSoft's geo_shape) as WKT, its numbers
    written as point_wkt writes them (x y; a third coordinate left out, as from ArcGIS): the
    geometry type the other kinds store (ArcGIS's esri_wkt, SODA's CSV). A shape that is not
    GeoJSON is kept as JSON text, as before."""
    geometry = value.get("geometry") if value.get("type") == "Feature" else value
    if not isinstance(geometry, dict):
        return None if geometry is None else json_text(value)

    def text(coordinates, depth: int) -> str:
        if depth == 0:
            x, y = coordinates[:2]
            return f"{float(x)!r} {float(y)!r}"
        inner = (f"({text(c, 0)})" if depth == 1 and kind == "MultiPoint" else text(c, depth - 1) for c in coordinates)
        return "(" + ", ".join(inner) + ")"

    kind = geometry.get("type")
    try:
        if kind == "GeometryCollection":
            parts = [geometry_wkt(part) for part in geometry["geometries"]]
            if any(part is None or not part[:1].isalpha() for part in parts):
                return json_text(value)
            return f"GEOMETRYCOLLECTION ({', '.join(parts)})" if parts else "GEOMETRYCOLLECTION EMPTY"
        coordinates = geometry["coordinates"]
        if not coordinates:
            return f"{kind.upper()} EMPTY" if kind in GEOJSON_DEPTHS else json_text(value)
        body = text(coordinates, GEOJSON_DEPTHS[kind])
    except (KeyError, TypeError, ValueError, IndexError):
        return json_text(value)
    return f"POINT ({body})" if kind == "Point" else f"{kind.upper()} {body}"


def geometry_cells_of_csv(cells: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A Socrata geometry column as SODA's CSV writes it (JTS's WKT: soda-fountain's
    CsvColumnRep.GeometryLikeRep, "-87" for -87.0), stored as geometry_wkt stores the JSON's
    GeoJSON: each whole number written with ".0", as Python writes a float (twice: a number's
    separator before it is the one after the number before); the cells with a number under 1e-4,
    which JTS writes "0.00001" and Python "1e-05", number by number in Python."""
    text = pc.utf8_trim_whitespace(cells)
    for _ in range(2):
        text = pc.replace_substring_regex(text, r"(^|[ (,])(-?[0-9]+)([ ),]|$)", r"\1\2.0\3")
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    tiny = pc.indices_nonzero(pc.fill_null(pc.match_substring_regex(text, r"(^|[ (,])-?0\.0000"), False)).to_pylist()
    if not tiny:
        return text
    written = text.to_pylist()
    for i in tiny:
        written[i] = WKT_NUMBER.sub(lambda number: repr(float(number.group())), written[i])
    return pa.array(written, pa.string())


WKT_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


# a Socrata location's address parts as SODA's CSV writes them, each followed by its separator
# (soda-fountain's CsvColumnRep.LocationRep: "address\ncity, state zip", then "\n(lat, lng)")
SODA_ADDRESS_PARTS = (("address", "\n"), ("city", ", "), ("state", " "), ("zip", ""))


def soda_address(human_address) -> str | None:
    """A Socrata location's `human_address` (JSON text of {address, city, state, zip}) as the
    address lines SODA's CSV gives for it, trimmed, so that a location without coordinates
    is stored alike from either format (point_cells_of_csv); None for parts all empty
    ("\n,  "). Text that is no such object is kept as it is."""
    parts = human_address
    if isinstance(parts, str):
        try:
            parts = orjson.loads(parts)
        except orjson.JSONDecodeError:
            return human_address.strip() or None
    if not isinstance(parts, dict):
        return None if parts is None else json_text(parts)
    text = "".join(parts[key] + separator for key, separator in SODA_ADDRESS_PARTS
                   if isinstance(parts.get(key), str)).strip()
    return text if any(c.isalnum() for c in text) else None


_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d{1,3})?"
# the two ways SODA's CSV writes a point (soda-fountain's CsvColumnRep): a `point` column as
# WKT (GeometryLikeRep), a legacy `location` as "(lat, lng)" after its address lines (LocationRep)
SODA_CSV_POINTS = (rf"^POINT \((?P<x>{_NUMBER}) (?P<y>{_NUMBER})\)$",
                   rf"(?:^|\n)\((?P<y>{_NUMBER}), (?P<x>{_NUMBER})\)$")


def point_cells_of_csv(cells: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A Socrata point or location column as SODA's CSV writes it, stored as point_wkt stores
    the JSON's cells: WKT `POINT (lon lat)` with the coordinates written alike (a location's
    address lines beside its coordinates are left out, as from the JSON); a location with
    no coordinates as its address lines (soda_address); any other text as it is."""
    text = pc.utf8_trim_whitespace(cells)
    x = y = None
    for pattern in SODA_CSV_POINTS:
        found = pc.extract_regex(text, pattern)
        x = pc.struct_field(found, "x") if x is None else pc.coalesce(x, pc.struct_field(found, "x"))
        y = pc.struct_field(found, "y") if y is None else pc.coalesce(y, pc.struct_field(found, "y"))
    wkt = pc.binary_join_element_wise("POINT (", coordinate_texts(pc.cast(x, pa.float64())), " ",
                                      coordinate_texts(pc.cast(y, pa.float64())), ")", "")
    rest = pc.if_else(pc.match_substring_regex(text, r"[\pL\pN]"), text, pa.scalar(None, pa.string()))
    return pc.coalesce(wkt, rest)


def coordinate_texts(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Numbers as point_wkt writes them (Python's repr: the shortest text that reads back as the
    same number): Arrow's own text is that for 0 and magnitudes from 1e-4 to 1e9 but for a
    whole number's ".0"; the others (never a coordinate of Earth but 0.00001°) by Python."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    text = pc.cast(values, pa.string())
    text = pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, ".0", ""))
    size = pc.abs(values)
    plain = pc.or_kleene(pc.equal(size, 0), pc.and_(pc.greater_equal(size, 1e-4), pc.less(size, 1e9)))
    others = pc.indices_nonzero(pc.invert(pc.fill_null(plain, True))).to_pylist()
    if not others:
        return text
    cells = text.to_pylist()
    for i in others:
        cells[i] = repr(values[i].as_py())
    return pa.array(cells, pa.string())


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "1"):
        return True
    if text in ("false", "f", "no", "n", "0"):
        return False
    raise ValueError(value)


def _integer(value) -> int:
    if isinstance(value, bool):
        raise TypeError(value)
    number = float(value) if isinstance(value, str) and not value.strip().lstrip("-").isdigit() else value
    if isinstance(number, float) and not number.is_integer():
        raise ValueError(value)
    result = int(number)
    if not -(1 << 63) <= result < (1 << 63):
        raise OverflowError(value)
    return result


def _number(value) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    return float(value)


def _datetime(value, utc: bool = False) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = datetime.fromtimestamp(value / 1000, UTC)  # epoch milliseconds
    else:
        text = str(value).strip()
        stamp = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC)
        return stamp if utc else stamp.replace(tzinfo=None)
    return stamp.replace(tzinfo=UTC) if utc else stamp


def _date(value):
    return _datetime(value).date()


PARSERS = {
    "integer": _integer, "number": _number, "boolean": _boolean, "date": _date, "datetime": _datetime,
    "datetime_utc": lambda v: _datetime(v, utc=True),
}


def csv_page(body: bytes, fields: list[Field] | None = None) -> pa.Table:
    """One CSV page (in memory) as a table, parsed once by Arrow: the columns named in
    `fields` straight to their types, any other as text. A page with a value that does not
    parse is read again as text (the conversion then nulls and counts the bad values); a
    page that does not parse at all (cut mid-row) raises ValueError, which
    HttpClient.get_data retries like a truncated JSON page."""
    if not body.strip():
        return pa.table({})
    if not body.endswith((b"\n", b"\r")):   # every row ends with a line break: this page was cut short
        raise ValueError("the CSV page does not end with a line break")
    first_line = body[:body.find(b"\n")].rstrip(b"\r").decode("utf-8", "replace")
    text = {name: pa.string() for name in next(csv.reader([first_line]))}
    typed = {f.key: arrow_type(f.kind) for f in fields or [] if f.kind in CSV_TYPED and f.key in text}
    if typed:
        try:
            return _read_csv_page(body, {**text, **typed})
        except pa.ArrowInvalid:
            pass   # a value that does not parse as its type: read as text, converted value by value
    return _read_csv_page(body, text)


def _read_csv_page(body: bytes, types: dict) -> pa.Table:
    # (quoted line breaks in values: a Socrata location's address lines; without the option, Arrow's
    # reader splits a page of over a block, 1 MB, at any line break, and "got out of sync" with them)
    return pacsv.read_csv(pa.BufferReader(body), parse_options=pacsv.ParseOptions(newlines_in_values=True),
                          convert_options=pacsv.ConvertOptions(
                              column_types=types, strings_can_be_null=True, null_values=[""],
                              quoted_strings_can_be_null=True, true_values=["true", "True", "TRUE", "1"],
                              false_values=["false", "False", "FALSE", "0"]))


# -- what each kind implements --------------------------------------------------------------

@dataclass
class StoredDataset:
    """A dataset as the catalogue holds it: what a kind needs to read its records."""
    uid: str
    portal_id: str
    source_id: str
    asset_type: str | None
    columns: list[dict]
    distributions: list[dict]
    raw: dict
    details: dict | None


class RecordSource(ABC):
    """One dataset's records, in typed tables. `fingerprint` names the query: a cut-short
    pull resumes only with the same one. `batches(resume)` yields (table, state): state is
    where to continue after that table (None once the last one is read)."""

    fields: list[Field]
    mode: str = "full"
    expected_rows: int | None = None   # rows the portal says the pull must give, when it says
    # the server's own page size as the pull learned it (Open311), kept with the pull for the next,
    # and how much of an answer cut at it the server leaves out (Open311: Windows.thinning)
    page_size: int | None = None
    thinning: float | None = None
    whole_days: bool | None = None   # (Open311: the server read by whole days, as it ignores the times asked)

    @property
    def fingerprint(self) -> str:
        return json.dumps({"class": type(self).__name__, "fields": [[f.name, f.kind] for f in self.fields],
                           "mode": self.mode})

    @abstractmethod
    def batches(self, resume: dict | None) -> Iterator[tuple[pa.Table, dict | None]]:
        ...

    # columns of stamps of something past, each row's: when it last changed (SODA's `:updated_at`), when a
    # service request was made or last changed. None is rightly after the pull began, and a row's that is
    # more than a day after (a server's clock, a typo) is warned of, FutureModified (a column of planned
    # dates, Open311's expected_datetime, is not one: those are ahead by nature)
    past_stamps: tuple[str, ...] = ()
    # the past stamp whose latest the next incremental pull reads on from (None: it reads the dataset whole):
    # the latest not more than a day after the pull began (dated_ahead). One further ahead would have every
    # later pull ask for the rows changed after it and miss those changed until then (for good: their stamps
    # stay before it); the rows ahead are read again by each pull instead
    watermark_column: str | None = None

    def notices(self) -> list[tuple[str, ...]]:
        """What the reader learnt of the source as it read that the run report should say: (error
        type, message) pairs, stored as warnings of stage `records` (Open311: service codes refused), or
        (error type, message, severity) (Open311: a window kept with requests unread, an error)."""
        return []

    def server_clock(self) -> timedelta | None:
        """How far ahead of ours the clock that stamps the rows is (the server's, by its answers'
        Date headers: HttpClient.server_clock); None: not known, ours is taken."""
        return None

    def watermark_text(self, latest: datetime) -> str:
        """The watermark as record_pulls keeps it, from the latest stamp (a UTC datetime)."""
        return latest.isoformat()

    def close(self) -> None:
        """Release what the source holds (a downloaded file)."""

    def resumes_at(self, state: dict) -> bool:
        """Whether a pull cut short may go on from `state` whatever rows were added or
        removed before it since (rows read by date window: those move no row after it).
        False: only where the rows up to there are shown not to have moved (_continues)."""
        return False

    def starts_over_from(self, state) -> str | None:
        """Why a pull cut short at `state` must start over whatever rows moved, for a reason of
        the source's own (logged); None: none (it goes on where `_continues` allows)."""
        return None

    def check_unchanged(self, staged_glob: str) -> None:
        """Once every row is staged (in the Parquet at `staged_glob`): raise SourceChanged
        where they show the dataset changed while it was read."""

    # for an incremental pull: the column by which the rows read replace the previous ones
    # (harvester.records_merge: a row without one replaces its equal in every column)
    merge_key: str | None = None


def parquet_max(glob: str, column: str):
    """The largest value of `column` in the Parquet files at `glob`, from their statistics
    (no data read), or None."""
    files = sorted(Path(glob).parent.glob(Path(glob).name))
    latest = None
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        index = metadata.schema.names.index(column) if column in metadata.schema.names else None
        if index is None:
            return None
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(index).statistics
            if stats is not None and stats.has_min_max and (latest is None or stats.max > latest):
                latest = stats.max
    return latest


def parquet_rows(glob: str) -> int:
    """The rows of the Parquet files at `glob`, from their metadata (no data read)."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in Path(glob).parent.glob(Path(glob).name))


def stamps_after(glob: str, column: str, after: datetime) -> tuple[int, datetime | None, datetime | None]:
    """Of `column` (a datetime) in the Parquet files at `glob`: how many values are after `after`,
    the latest, and the latest not after it (UTC datetimes; None: none). The files' statistics
    answer where none is after (no data read: a pull's usual case); else one scan of the column."""
    latest = _utc(parquet_max(glob, column))
    if latest is None or latest <= after:
        return 0, latest, latest
    quoted = '"' + column.replace('"', '""') + '"'
    with scratch_duckdb(STAMPS_MEMORY, threads=1) as duck:   # (two aggregates: a few KB held)
        # (a naive column's stamps are UTC's: compared with `after`, DuckDB reads them in its TimeZone,
        # the machine's zone by default, which put one 4 hours before `after` ahead of it in Los Angeles)
        duck.execute("SET TimeZone = 'UTC'")
        count, before = duck.execute(f"SELECT count(*) FILTER (WHERE {quoted} > $after), "
                                     f"max({quoted}) FILTER (WHERE {quoted} <= $after) FROM {read_parquet_sql(glob)}",
                                     {"after": after}).fetchone()
    return count, latest, _utc(before)


def _utc(moment: datetime | None) -> datetime | None:
    """A stamp as a UTC datetime: a naive one (a `datetime` column) is taken as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def dated_ahead(source: RecordSource, glob: str, began: datetime,
                server_ahead: timedelta | None = None) -> tuple[str | None, datetime | None]:
    """Of the published rows' past stamps: the warning (FutureModified) of those more than a day
    after the pull `began`, each column's counted with its latest (None where none is), and the
    latest `watermark_column` not ahead (None: none, or no such column), each column scanned once
    at most, and never after the pull began (WATERMARK_BEFORE_START). Judged by the server's clock
    where it is `server_ahead` of ours (server_began); the watermark's bound by ours too where the
    rows' stamps are no later than our now (watermark_bound)."""
    ours = began
    began, by_clock, _ = server_began(began, server_ahead)
    after = began + DATED_AHEAD_SLACK
    said, next_pull, watermark = [], "", None
    for column in dict.fromkeys((*source.past_stamps, source.watermark_column)):
        if column is None:
            continue
        count, latest, before = stamps_after(glob, column, after)
        if column == source.watermark_column and before is not None:
            watermark = before = min(before, watermark_bound(
                before, ours, began, lambda since, until, column=column: stamps_between(glob, column, since, until)
                <= min(READ_AGAIN_AT_MOST, READ_AGAIN_SHARE * parquet_rows(glob))))
        if not count or column not in source.past_stamps:
            continue
        whose = "rows'" if count != 1 else "row's"
        said.append(f"{count} {whose} {column} more than a day after this pull began{by_clock} "
                    f"(the latest {format_timestamp(latest)}, {days_after(latest, began)} after)")
        if column == source.watermark_column:
            next_pull = ("; the next pull reads the dataset whole (no row's is not ahead)" if before is None else
                         f"; the next incremental pull reads on from {format_timestamp(before)} (the latest not "
                         "ahead, at most a minute before this pull began), and reads those rows again each time until "
                         "their day")
    if not said:
        return None, watermark
    return "; ".join(said) + ": kept as the portal gives them (a server's clock, or a typo)" + next_pull, watermark


def watermark_bound(latest: datetime, ours: datetime, servers: datetime,
                    few: Callable[[datetime, datetime], bool] | None = None) -> datetime:
    """The latest a watermark may be (WATERMARK_BEFORE_START before the pull began) for a pull
    that began at `ours` by our clock and at `servers` by the server's (server_began), whose latest
    stamp not ahead is `latest`. By the server's clock; and by ours as well where no stamp is later
    than our now: the rows were then stamped by a clock like ours, and a front whose Date alone runs
    ahead (its database's clock right) would put the server's bound past every row changed during
    the pull, holding nothing back. A server truly ahead stamps the rows it changed within its lead
    past our now, and keeps its own bound where they are more than READ_AGAIN_AT_MOST, or than
    READ_AGAIN_SHARE of the rows (`few`: whether the stamps after the first moment and not after the
    second are not); one that changed none within it has no stamp after ours to read again. Fewer, they
    are read again each pull until our clock passes them: rows stamped past our now by a clock that slipped ahead (a row stamped an hour ahead, under
    a front whose Date runs 2 hours ahead; a database's clock ahead and put back under a front ahead
    of that stamp) were taken as a server truly ahead, and the rows changed during the pull, or after
    it and stamped before that row, were read by no incremental pull."""
    bound = servers - WATERMARK_BEFORE_START
    by_ours = ours - WATERMARK_BEFORE_START
    if bound > by_ours and (latest <= datetime.now(UTC) or few is not None and few(by_ours, min(latest, bound))):
        return by_ours
    return bound


def stamps_between(glob: str, column: str, since: datetime, until: datetime) -> int:
    """How many values of `column` (a datetime) in the Parquet files at `glob` are after `since` and
    not after `until` (one scan of the column, where the files' statistics put any after `since`)."""
    latest = _utc(parquet_max(glob, column))
    if latest is None or latest <= since:
        return 0
    quoted = '"' + column.replace('"', '""') + '"'
    with scratch_duckdb(STAMPS_MEMORY, threads=1) as duck:
        duck.execute("SET TimeZone = 'UTC'")   # (as stamps_after: a naive column's stamps are UTC's)
        return duck.execute(f"SELECT count(*) FILTER (WHERE {quoted} > $since AND {quoted} <= $until) "
                            f"FROM {read_parquet_sql(glob)}", {"since": since, "until": until}).fetchone()[0]


def server_began(began: datetime, ahead: timedelta | None) -> tuple[datetime, str, str | None]:
    """When a pull that `began` by our clock began by the server's, which stamps its rows (a
    server's clock days ahead stamps each row it changes days ahead of ours: judged by ours, none
    would be the watermark, and every pull would read the dataset whole, for ever); the words
    naming that clock in dated_ahead's warning; and the warning (ServerClock) of a server's clock
    too far from ours to believe, ours then taken. `ahead`: by its answers' Date headers, None
    where they gave none."""
    if ahead is None or abs(ahead) < CLOCKS_AGREE:
        return began, "", None
    gap = f"{_clock_gap(abs(ahead))} {'ahead of' if ahead > timedelta(0) else 'behind'} ours"
    if abs(ahead) > SERVER_CLOCK_BELIEVED:
        return began, "", (f"the server's answers (their Date header) put its clock {gap}: not believed, its rows' "
                           "stamps are judged by ours")
    return began + ahead, f" by the server's clock ({gap}, by its Date header)", None


def _clock_gap(gap: timedelta) -> str:
    """A gap between two clocks in words, to the nearest day, else hour, else minute (a Date header
    is to the second: a clock 3 days ahead measures 2 days 23:59:59 and more)."""
    for unit, seconds in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if gap.total_seconds() >= seconds - 1 or unit == "minute":
            count = round(gap.total_seconds() / seconds)
            return f"{count} {unit}{'s' if count != 1 else ''}"


def read_parquet_sql(glob: str) -> str:
    """A Parquet glob as a DuckDB table expression: without Hive partition detection, which
    would add the folder's `portal` and `dataset` as columns."""
    return f"read_parquet('{glob.replace(chr(39), chr(39) * 2)}', hive_partitioning = false)"


def _columns_of(schema: pa.Schema | None) -> list | None:
    return None if schema is None else [(f.name, f.type) for f in schema]


def published_schema(layout: RecordsLayout, portal_id: str, source_id: str) -> pa.Schema | None:
    files = sorted(layout.folder(portal_id, source_id).glob("*.parquet"))
    return pq.read_schema(files[0]) if files else None


def _check_same_table(source: RecordSource, published: pa.Schema | None) -> None:
    """A source none of whose columns the published dataset has is not that dataset: a file
    server's error text behind a 200 ('Service Unavailable') read as a CSV of one column and no
    rows was published in its place, the pull reported ok. A file its publisher replaced with
    another table is taken by a full pull (`--full`, which passes no `published`)."""
    if published is None or not published.names:
        return
    names = [f.name for f in source.fields]
    if not {n.lower() for n in names} & {n.lower() for n in published.names}:
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        source.close()
        raise NotTheDataset(f"none of its columns ({shown}) is one of the {len(published.names)} the published "
                           f"dataset has ({', '.join(published.names[:5])}{', ...' if len(published.names) > 5 else ''}): "
                           "not this dataset (an error text?); the previous records are kept, a full pull "
                           "(--full) takes a file that is another table now")


def kind_of(data_type: pa.DataType) -> str:
    if pa.types.is_timestamp(data_type) and data_type.tz:
        return "datetime_utc"
    tests = ((pa.types.is_boolean, "boolean"), (pa.types.is_integer, "integer"), (pa.types.is_floating, "number"),
             (pa.types.is_decimal, "number"), (pa.types.is_date, "date"), (pa.types.is_timestamp, "datetime"))
    return next((kind for test, kind in tests if test(data_type)), "text")


class DownloadedFile(RecordSource):
    """A whole file (a CKAN resource, a DCAT-US CSV distribution, an export) downloaded to a
    temporary file, then read in batches: CSV with its types sniffed by DuckDB over the whole
    file, JSON lines (`jsonl`) typed by `fields`. Resumes by skipping the rows written."""

    BATCH = 100_000

    def __init__(self, http, url: str, *, fmt: str = "csv", fields: list[Field] | None = None,
                 params: dict | None = None, expected_rows: int | None = None):
        import duckdb

        self.url, self.fmt = url, fmt
        self.duck = None
        self.scratch = ScratchFolder("download")   # (one a kill -9 left, the next pull removes: catalog.scratch)
        self.folder = self.scratch.path
        self.path = self.folder / f"data.{fmt}"
        self.expected_rows = expected_rows
        try:
            http.download(url, self.path, params)
            if fmt == "csv":
                # spilling beside the download: an in-memory DuckDB's default is the working directory
                self.duck = uncut.connect(config={"memory_limit": CSV_MEMORY, "preserve_insertion_order": True,
                                                  "temp_directory": str(self.folder / "spill")},
                                          interruptible=True)   # (a stop interrupts its reading: catalog.uncut)
                try:
                    schema = self._sniff()
                except duckdb.OutOfMemoryException:
                    # DuckDB's CSV reader holds vectors per column: a file of 3,500 columns (of
                    # three rows) fitted neither its sniffer nor its reading in CSV_MEMORY
                    self.duck.execute(f"SET memory_limit = '{WIDE_CSV_MEMORY}'")
                    schema = self._sniff()
                # its columns are taken by position (the sniffer may name two alike: `a<NUL>`, `a`)
                self.fields = [Field(f.name, f.kind) for f in
                               unique_fields([Field(f.name, kind_of(f.type)) for f in schema])]
            else:
                self.fields = unique_fields(fields or [])
            self.conversion = Conversion(self.fields)
        except BaseException:
            self.close()  # a failed download or an unreadable file: no one else will remove it
            raise

    def _sniff(self):
        return self.duck.execute("SELECT * FROM read_csv(?, sample_size = -1) LIMIT 0",
                                 [str(self.path)]).to_arrow_table().schema

    @property
    def fingerprint(self) -> str:
        return f"{super().fingerprint}|{self.url}"

    def batches(self, resume):
        done = (resume or {}).get("rows", 0)
        if self.fmt == "csv":
            reader = self.duck.execute(f"SELECT * FROM read_csv(?, sample_size = -1) OFFSET {int(done)}",
                                       [str(self.path)]).to_arrow_reader(self.BATCH)
            tables = (pa.Table.from_batches([batch]) for batch in reader)
            for table in tables:
                table = table.rename_columns([f.name for f in self.fields])
                done += table.num_rows
                yield self.conversion.table({f.key: table[f.key] for f in self.fields}, table.num_rows), {"rows": done}
            return
        with open(self.path, "rb") as lines:
            rows, skipped = [], 0
            for line in lines:
                if not line.strip():
                    continue
                if skipped < done:
                    skipped += 1
                    continue
                rows.append(orjson.loads(line))
                if len(rows) >= self.BATCH:
                    done += len(rows)
                    yield self.conversion.table_from_rows(rows), {"rows": done}
                    rows = []
            if rows:
                done += len(rows)
                yield self.conversion.table_from_rows(rows), {"rows": done}

    def close(self) -> None:
        if self.duck is not None:
            self.duck.close()
        self.scratch.remove()


def csv_distribution(dataset: StoredDataset) -> str | None:
    """The download URL of a dataset's first CSV distribution."""
    for dist in dataset.distributions:
        label = f"{dist.get('format') or ''} {dist.get('media_type') or ''}".lower()
        if dist.get("download_url") and "csv" in label:
            return dist["download_url"]
    return None


class SameColumns:
    """The columns every page of a pull names (a CSV page's header, a DataStore page's
    fields) must be those the first named: a dataset whose columns changed while it was
    read (a column renamed, added, dropped) gave nulls in a kept column for the pages after
    the change and lost the renamed column's values, the pull reported complete. Pages are
    read in several threads: the first to arrive sets them."""

    def __init__(self, columns: list[str] | None = None):
        self.columns = columns
        self._lock = threading.Lock()

    def check(self, columns: list[str], params: dict | None) -> None:
        with self._lock:
            if self.columns is None:
                self.columns = list(columns)
        if list(columns) != self.columns:
            gone = [c for c in self.columns if c not in columns]
            new = [c for c in columns if c not in self.columns]
            raise columns_changed(params, len(columns), new, gone, len(self.columns))


def columns_changed(params: dict | None, count: int, new: list, gone: list, first: int) -> RecordsError:
    return ChangedAsRead(f"the columns changed while the dataset was read: the page at {request_text(params)} "
                         f"names {count} columns (new: {new[:5]}, gone: {gone[:5]}) where the first named {first}; "
                         "the next pull reads it again")


def count_changed(params: dict | None, counted: int, first: int) -> SourceChanged:
    """The error of a page whose count of the dataset's rows is not the count the pull began
    with: rows added or removed as it read them, which move the rows after them between
    offset pages."""
    return SourceChanged(f"the page at {request_text(params)} counts {counted} rows where the pull began with "
                         f"{first}: rows were {'added' if counted > first else 'removed'} as it read them")


class SameKeys:
    """SameColumns for JSON rows that name their columns only by their keys (OpenDataSoft
    records, ArcGIS attributes in an answer that lists no fields). A portal may leave a
    row's null values out (SODA's JSON does), so a key the first page lacks is no change
    when the catalogue lists it (all null there), and a key a page lacks is a dropped column
    only where the portal writes nulls out (a `null` value seen). Pages are checked in the
    order they are read (one request in flight): the first sets the keys."""

    def __init__(self, listed: list[str]):
        self.listed = set(listed)
        self.keys: set[str] | None = None
        self.writes_nulls = False

    def check(self, rows: list, params: dict | None) -> None:
        keys: set[str] = set()
        for row in rows:
            if isinstance(row, dict):
                keys.update(row)
                self.writes_nulls = self.writes_nulls or None in row.values()
        if not keys:
            return
        if self.keys is None:
            self.keys = keys
            return
        new = sorted(keys - self.keys - self.listed)
        gone = sorted(self.keys - keys) if self.writes_nulls else []
        if new or gone:
            raise columns_changed(params, len(keys), new, gone, len(self.keys))


class PagedTables:
    """The (table, state) pairs of paged_tables, and the pull's answers over the response
    cap (`answers`: what they cost it, once read to its end)."""

    def __init__(self, tables: Iterator[tuple[pa.Table, dict | None]] | None, answers: OversizedAnswers,
                 fetch_page=None, paginator: Paginator | None = None, start: dict | None = None,
                 key: str | None = None):
        self.tables, self.answers = tables, answers
        self.fetch_page, self.paginator, self.start = fetch_page, paginator, start
        # the `key` column and its value in the last row read (a resumed pull's: the row before it);
        # a dict the generator shares, not this object: a cycle kept the generator, and the requests
        # it has in flight, running after a pull that failed had let go of it
        self.order = {"key": key, "last": None}

    def row_before(self) -> pa.Table | None:
        """The row just before the request this read starts at (a resumed pull's state),
        asked alone; None where pages are not asked by offset (nothing to ask it by)."""
        offset_param = getattr(self.paginator, "offset_param", None)
        if not self.start or offset_param is None or not self.start.get(offset_param):
            return None
        row = self.fetch_page({**self.start, offset_param: self.start[offset_param] - 1,
                               self.paginator.limit_param: 1}).items
        key = self.order["key"]
        if key is not None and row.num_rows and key in row.column_names:
            self.order["last"] = row[key][0].as_py()
        return row

    def staged_before(self, rows: pa.Table) -> None:
        """`rows` were staged just before the request this read starts at (a resumed pull's
        last, shown unmoved): a first page that gives them again is a stale page, not the rows
        after them (rows that carry no key: nothing else tells)."""
        size = max(self.paginator.page_size(self.start) or 0, getattr(self.paginator, "limit", 0))
        self.order["recent"] = rows.slice(max(0, rows.num_rows - size))

    def __iter__(self) -> PagedTables:
        return self

    def __next__(self) -> tuple[pa.Table, dict | None]:
        return next(self.tables)


def paged_tables(fetch_page, paginator: Paginator, resume: dict | None, *, ahead: int = 1,
                 shifted=None, key: str | None = None, columns: int | None = None) -> PagedTables:
    """Pages whose `items` are tables, with the parameters of the next request as state.

    A page that gives the very rows of the page before fails the pull: the portal ignores
    the paging parameters (rows carry their source's key, :id, _id or the object id, so two
    pages of a dataset are never the same), and its full pages would come forever.
    Where rows carry no key (OpenDataSoft), a table of repeated rows gives such pages too:
    `shifted(params)` reads the rows of that request one row further on, which a portal
    that honours the paging answers with the page's own rows from its second on (a portal
    that ignores it, with the page again: the same rows only if they are all one row,
    which any page of that table then is). It is asked for each such page (a stale answer,
    the rows of an earlier offset, is not the rows one further on): a table of repeated
    rows costs a request more a page. So does a page that gives again the last rows read
    before it, fewer than a page (a stale answer to a page asked in halves: rows read twice,
    the count met), or, in a pull resumed, the rows staged before its resume point.
    Where rows come sorted by a `key` column whose values only grow (CKAN's `_id`, an
    object id), a page that starts at or before the last key read fails the pull too: it
    holds rows read already (a stale page of another offset), which no count catches.

    A page whose answer is over the response cap is asked for in smaller pages where the
    page size is a request parameter (as a listing's: harvester.paging.SmallerPages), and
    the rest of the pull in the size that fitted (unlike a listing's: the rows of a table
    are alike, see SmallerPages.keep); the state after each page is the exact request that
    follows it. A row over the cap alone fails the pull (see `refuse_oversized`): a pull
    never skips a row. There, from the first page read, a page asks as many rows as fit
    about PAGE_BYTES (SmallerPages.fit), whatever the cap allows; the first page, with the
    table's `columns`, no more than PAGE_BYTES holds at FIRST_PAGE_COLUMN_BYTES a column."""
    if paginator.sizes is not None:
        paginator.sizes.keep = True
        paginator.sizes.target = PAGE_BYTES
        if columns:
            paginator.sizes.fitted = max(1, PAGE_BYTES // (columns * FIRST_PAGE_COLUMN_BYTES))

    def sized(params: dict) -> Page:   # (pages sized by the bytes of those read: SmallerPages.fit)
        page = fetch_page(params)
        page.bytes = page.items.nbytes
        return page

    answers = OversizedAnswers(paginator, "the pull")
    tables = PagedTables(None, answers, fetch_page, paginator, resume, key)
    tables.tables = _paged_tables(sized, paginator, resume, answers, ahead, shifted, tables.order)
    return tables


def _paged_tables(fetch_page, paginator: Paginator, resume: dict | None, answers: OversizedAnswers, ahead: int,
                  shifted, order: dict) -> Iterator[tuple[pa.Table, dict | None]]:
    # the last page read, and the rows read just before the next page (as many as the largest
    # page: a page asked in halves may repeat the end of a larger one; a resumed pull's, staged)
    previous, recent = None, order.get("recent")
    honours_paging, key = False, order["key"]

    def instead_of_oversized(params: dict, error: ResponseTooLarge) -> dict:
        instead = answers.smaller(params, error)
        if instead is None:
            raise refuse_oversized(paginator, params, error) from None
        return instead

    for page, next_params in pages(fetch_page, paginator, start=resume, ahead=ahead, oversized=instead_of_oversized):
        rows = page.items.num_rows
        if rows and _ends_with(recent, page.items):
            if shifted is not None and rows > 1:   # (each such page: a portal that pages may answer one stale)
                honours_paging = same_rows(shifted(page.params), page.items.slice(1))
            if not honours_paging:   # (a page of one row has nothing to shift by: the portal shown to page, taken)
                same = previous is not None and same_rows(page.items, previous)
                again = f"the same {rows} rows as the page before" if same else f"again the last {rows} rows read before it"
                raise PagesDisagree(f"the page at {request_text(page.params)} gave {again}: the portal repeats a "
                                   "page instead of paging on")
        if key is not None and page.items.num_rows and key in page.items.column_names:
            first = page.items[key][0].as_py()
            if first is not None and order["last"] is not None and first <= order["last"]:
                raise PagesDisagree(f"the page at {request_text(page.params)} starts at {key} {first!r}, not past the "
                                   f"last row read ({key} {order['last']!r}): the portal answered rows already read; "
                                   "the next pull reads the dataset again")
            order["last"] = page.items[key][-1].as_py()
        previous, recent = page.items, _last_rows(recent, page.items)
        answers.read(page.params)
        yield page.items, next_params


def _ends_with(recent: pa.Table | None, page: pa.Table) -> bool:
    """Whether `page`'s rows are the last of `recent`, in order: an answer that repeats rows
    read just before it (a stale page asked smaller, or the page staged before a resume point).
    Compared with a float NaN equal to NaN (same_rows): by Arrow's `equals` a repeated page
    holding one was taken as new, and a portal ignoring the offset read to PagesWithoutEnd."""
    return recent is not None and page.num_rows <= recent.num_rows and \
        same_rows(page, recent.slice(recent.num_rows - page.num_rows))


def _last_rows(recent: pa.Table | None, page: pa.Table) -> pa.Table:
    """The rows read up to the end of `page`: as many as the larger of `recent` and `page`."""
    if recent is None or recent.schema != page.schema:
        return page
    kept = max(recent.num_rows, page.num_rows)
    rows = pa.concat_tables([recent, page])
    return rows.slice(rows.num_rows - kept)


def refuse_oversized(paginator: Paginator, params: dict, error: ResponseTooLarge) -> ResponseTooLarge:
    """The error that fails a pull whose request `params` cannot be asked in smaller pages
    (one row, or a page size that is no request parameter). Skipping the row, as a listing
    skips an entry, would publish the dataset short: the pull fails, its previous records kept."""
    if paginator.page_size(params) == 1:
        asked = f"the row asked for alone ({request_text(params)}) is over the response cap"
    else:
        asked = f"the page at {request_text(params)} cannot be asked for in smaller pages"
    return ResponseTooLarge(f"{cap_reason(error)}: {asked}, and a records pull never skips a row: the pull fails, "
                            f"its previous records kept ({RAISE_THE_CAP})", error.url, error.status)


# -- the driver -----------------------------------------------------------------------------

@dataclass
class PullResult:
    uid: str
    status: str = "ok"
    mode: str = "full"
    rows: int = 0
    columns: int = 0
    bytes: int = 0
    seconds: float = 0.0
    resumed: bool = False
    invalid_values: dict = field(default_factory=dict)
    not_objects: int = 0
    smaller_pages: str | None = None   # what pages over the response cap cost the pull (a warning)
    changed: str | None = None   # how the dataset changed while it was read, the pull read again (a warning)
    published_as_read: bool = False   # changed again in the second read, only by rows added: published so
    dated_ahead: str | None = None   # rows whose past stamps are after the pull began (a warning: dated_ahead)
    server_clock: str | None = None   # a server's clock too far from ours to believe (a warning: server_began)
    notices: list = field(default_factory=list)   # the reader's own warnings: (type, message) (RecordSource.notices)
    error_type: str | None = None
    error_message: str | None = None
    path: str | None = None


def pull_dataset(source: RecordSource, layout: RecordsLayout, portal_id: str, source_id: str, con, *,
                 uid: str, run_id: str, part_rows: int | None = None, part_seconds: float | None = None,
                 max_rows: int | None = None) -> PullResult:
    """Read `source` into the dataset's staging folder and publish it whole.

    Parts are closed every `part_rows` rows or `part_seconds` (else PART_ROWS, PART_SECONDS,
    read at each call) and noted in `progress.json` with the state to continue from, so a
    pull cut short (killed, a fault past every retry) resumes there, if the rows up to there
    did not move (`_continues`).
    An incremental pull's rows are merged with the published dataset (_merge) before the
    folder is published. Nothing is published unless the pull completed. `max_rows`: the portal's
    `records_max_rows` (RowsOverBudget past it; None: no bound but the count's)."""
    try:
        part_seconds = PART_SECONDS if part_seconds is None else part_seconds
        return _pull(source, layout, portal_id, source_id, con, uid=uid, run_id=run_id,
                     part_size=(part_rows or PART_ROWS, part_seconds, max_rows))
    except (PagesWithoutEnd, PagesOverlap, RowsOverBudget):
        shutil.rmtree(layout.staging(portal_id, source_id), ignore_errors=True)   # (never resumed from)
        raise
    finally:
        source.close()


def _pull(source: RecordSource, layout: RecordsLayout, portal_id: str, source_id: str, con, *,
          uid: str, run_id: str, part_size: tuple[int, float, int | None]) -> PullResult:
    started, began = time.monotonic(), datetime.now(UTC)
    result = PullResult(uid=uid, mode=source.mode)
    if len(source.fields) > MAX_COLUMNS:
        raise NotPullable(f"the dataset has {len(source.fields)} columns, more than the {MAX_COLUMNS:,} a records "
                           "pull takes")
    staging = layout.staging(portal_id, source_id)
    progress_path = staging / "progress.json"
    parts_dir = staging / "parts"
    schema = arrow_schema(source.fields)
    try:
        # (the resume's own check may see the change: a count asked again that moved)
        progress, tables = _resumed_or_new(source, staging, uid, result)
        for starts in range(STARTS_OVER_AT_MOST + 1):
            try:
                _stage(source, schema, progress, progress_path, parts_dir, part_size, tables, result)
                break
            except StartsOver as reason:
                if starts == STARTS_OVER_AT_MOST:
                    raise StartsOver(f"{reason}; the pull had started over {starts} times already, and does not "
                                     "again: its previous records kept") from None
                log.warning("%s: %s: the pull starts over", uid, reason)
                progress, tables = _started_over(source, staging, result), None
    except SourceChanged as changed:
        # rows added or removed while the pull read them: read again, once (a source that
        # changes all the time must not keep the night busy; the next pull tries again)
        log.warning("%s: %s: the pull reads it again", uid, changed)
        progress = _started_over(source, staging, result)
        result.changed = str(changed)
        try:
            _stage(source, schema, progress, progress_path, parts_dir, part_size, None, result)
        except SourceChanged as again:
            if not again.only_added:
                shutil.rmtree(staging, ignore_errors=True)   # (rows that moved are not resumed from)
                raise ChangedAsRead(f"the dataset changed while it was read, twice: first {changed}; read again, "
                                   f"{again}; the previous records are kept and the next pull reads it again") from None
            log.warning("%s: read again, %s: published as read", uid, again)
            result.changed = f"{changed}; read again, {again}"
            result.published_as_read = True
            if again.key is not None and again.repeated:
                progress["rows"] -= _keep_once(parts_dir, again.key, again.repeated)
    # (published as read: rows added to pages read already are missing, which the count says)
    if source.expected_rows is not None and progress["rows"] < source.expected_rows and not result.published_as_read:
        shutil.rmtree(staging, ignore_errors=True)  # an incomplete read is never resumed as if complete
        raise RowsMissing(f"the portal reported {source.expected_rows} rows but the pull gave {progress['rows']}")

    if source.mode == "incremental":
        ready = _merge(source, layout, portal_id, source_id, staging)
    else:
        ready = _packed(parts_dir, progress["parts"], staging, part_size[0])
    if isinstance(getattr(source, "conversion", None), Conversion):
        result.invalid_values = dict(source.conversion.invalid)
        result.not_objects = source.conversion.not_objects
    measured = measure_folder(ready)   # (before the publish: a profile that fails keeps the previous dataset)
    server_ahead = source.server_clock()
    result.server_clock = server_began(began, server_ahead)[2]
    result.notices = source.notices()
    result.dated_ahead, latest = dated_ahead(source, str(ready / "*.parquet"), began, server_ahead)
    watermark = None if latest is None else source.watermark_text(latest)
    pull = dict(uid=uid, portal_id=portal_id, source_id=source_id, mode=source.mode, watermark=watermark,
                page_size=source.page_size, thinning=source.thinning, whole_days=source.whole_days, run_id=run_id,
                now=datetime.now(UTC), seconds=round(time.monotonic() - started, 3), measured=measured,
                kinds={f.name: "datetime" if f.kind == "datetime_utc" else f.kind for f in source.fields})
    intent = intend_record(layout, ready, **pull)   # (killed after the publish, the next writer records it)
    layout.publish(ready, portal_id, source_id)
    shutil.rmtree(staging, ignore_errors=True)
    summary = record_pull(con, layout, **pull)
    recorded(intent)
    result.rows, result.columns, result.bytes = summary["rows"], summary["columns"], summary["bytes"]
    result.path = layout.relative(portal_id, source_id)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _started_over(source: RecordSource, staging: Path, result: PullResult) -> dict:
    """The progress of a pull read again from its start, in an empty staging folder."""
    shutil.rmtree(staging, ignore_errors=True)
    result.resumed = False
    if isinstance(getattr(source, "conversion", None), Conversion):   # (counted again as read again)
        source.conversion.invalid, source.conversion.not_objects = Counter(), 0
    (staging / "parts").mkdir(parents=True)
    return _new_progress(source)


def _resumed_or_new(source: RecordSource, staging: Path, uid: str, result: PullResult) -> tuple[dict, Iterator | None]:
    """The progress a pull starts from, and the tables it reads on (None: from `progress`'s
    state): a pull cut short resumes where its rows up to there did not move (`_continues`),
    else it starts over in an empty staging folder. SourceChanged: the request for the row
    before the resume point saw the dataset change (its count moved)."""
    progress_path, parts_dir = staging / "progress.json", staging / "parts"
    progress = _load_progress(progress_path, source.fingerprint)
    tables = None
    if progress is not None and not _whole(parts_dir, progress["parts"]):
        log.warning("%s: a part the pull cut short noted is missing or unreadable (the staging folder was "
                    "changed, or written by an older civicat before a reboot): the pull starts over", uid)
        progress = None
    if progress is not None and not progress["done"] and progress["parts"] \
            and (reason := source.starts_over_from(progress["state"])):
        log.warning("%s: a pull cut short cannot go on from where it stopped (%s): the pull starts over", uid, reason)
        progress = None
    if progress is not None and not progress["done"] and progress["parts"]:
        tables = source.batches(progress["state"])
        if not _continues(source, tables, progress["state"], parts_dir / progress["parts"][-1]):
            log.warning("%s: the rows staged by a pull cut short are not those the portal now serves before "
                        "where it stopped (rows added or removed since): the pull starts over", uid)
            progress = tables = None
    if progress is None:
        shutil.rmtree(staging, ignore_errors=True)
        progress = _new_progress(source)
    else:
        result.resumed = True
        listed = set(progress["parts"])
        for stray in parts_dir.iterdir():   # what a kill left: a part half-written, or closed but not yet listed
            if stray.name not in listed:
                stray.unlink()
    parts_dir.mkdir(parents=True, exist_ok=True)
    return progress, tables


def _whole(parts_dir: Path, parts: list[str]) -> bool:
    """Whether every part `parts` lists is a Parquet file whose footer reads."""
    try:
        for name in parts:
            pq.read_metadata(parts_dir / name)
    except (OSError, pa.ArrowInvalid):
        return False
    return True


def _stage(source: RecordSource, schema: pa.Schema, progress: dict, progress_path: Path, parts_dir: Path,
           part_size: tuple[int, float, int | None], tables, result: PullResult) -> None:
    """Read the source's rows into parts (at least one) closed at `part_size` (rows, seconds; and the
    rows a pull may give, `max_rows`),
    then let it check they are still what it serves (RecordSource.check_unchanged:
    SourceChanged if not)."""
    if not progress["done"]:
        result.smaller_pages = _write_parts(source, schema, progress, progress_path, parts_dir, *part_size, tables)
    if not progress["parts"]:  # an empty dataset is still a dataset: one part with its schema
        pq.write_table(schema.empty_table(), parts_dir / part_name(0))
        progress["parts"].append(part_name(0))
    source.check_unchanged(str(parts_dir / "*.parquet"))


def _keep_once(parts_dir: Path, key: str, repeated: tuple) -> int:
    """Rows staged more than once (their `key` among `repeated`) kept once, at their last
    reading (the latest served); only the parts holding one are written again. Returns the
    number of rows dropped."""
    wanted, kept, dropped = pa.array(sorted(repeated)), set(), 0
    for part in sorted(parts_dir.glob("part-*.parquet"), key=part_number, reverse=True):
        # (that column alone: the rows are read a group at a time). ParquetFile, not read_table: before
        # pyarrow 25 read_table took the staging path's `portal=`/`dataset=` folders for Hive partitions,
        # and a field named `portal` or `dataset` failed the read ("Unable to merge")
        keys = pq.ParquetFile(part).read(columns=[key])[key]
        hits = pc.indices_nonzero(pc.fill_null(pc.is_in(keys, value_set=wanted), False)).to_pylist()
        if not hits:
            continue
        keep = [True] * len(keys)
        for index in reversed(hits):
            value = keys[index].as_py()
            keep[index] = value not in kept
            kept.add(value)
        dropped += keep.count(False)
        temporary = part.with_name(part.name + ".tmp")
        with writing(temporary):
            _write_kept(part, temporary, pa.array(keep))
        temporary.replace(part)
    return dropped


def _write_kept(part: Path, target: Path, keep: pa.Array) -> None:
    """`part`'s rows where `keep` holds, written to `target` as the part read whole and filtered
    would be written (its row groups at row_group_rows of those rows, dictionary_columns of them:
    the same bytes), holding a row group or two and one column at a time, not the part twice
    (500,000 rows, or 16,384 column chunks: ~130 MB of 1,000 text columns, read and filtered)."""
    source = pq.ParquetFile(part)
    groups, at = [], 0
    for group in range(source.num_row_groups):
        rows = source.metadata.row_group(group).num_rows
        groups.append(keep.slice(at, rows))
        at += rows
    rows, nbytes = pc.sum(keep).as_py() or 0, 0
    for group, kept in enumerate(groups):   # (the width row_group_rows judges, as the part filtered whole has it)
        nbytes += source.read_row_group(group).filter(kept).nbytes
    dictionary = [field.name for field in source.schema_arrow   # (dictionary_columns, a column at a time)
                  if pa.types.is_string(field.type) and _few_distinct(source.read(columns=[field.name])[0].filter(keep))]
    group_rows = _group_rows(rows, nbytes)
    pending: list[pa.Table] = []
    with pq.ParquetWriter(target, source.schema_arrow, **PART_COMPRESSION, use_dictionary=dictionary) as writer:
        for group, kept in enumerate(groups):
            pending.append(source.read_row_group(group).filter(kept))
            held = pa.concat_tables(pending)
            while held.num_rows >= group_rows:
                writer.write_table(held.slice(0, group_rows), row_group_size=group_rows)
                held = held.slice(group_rows)
            pending = [held]
        if pending and (pending[0].num_rows or not rows):   # (no row kept: one empty row group, as written whole)
            writer.write_table(pending[0], row_group_size=group_rows)


def _write_parts(source: RecordSource, schema: pa.Schema, progress: dict, progress_path: Path, parts_dir: Path,
                 part_rows: int, part_seconds: float, max_rows: int | None, tables=None) -> str | None:
    """Write the source's tables (`tables`: its batches from the progress's state, else
    asked here) into parts; each closed part is noted in progress.json with the state to
    continue from. A part is closed at `part_rows` rows (or fewer, a wide dataset's: `part_full`),
    or once `part_seconds` have passed since the last was (a kill closes nothing: it loses the rows of the part being written,
    which on a slow portal are hours of requests at 500,000 rows). A fault in reading (a host
    down past every retry, Ctrl-C as KeyboardInterrupt) closes the part being written at the
    last table written whole, noted with the state after it: the next pull goes on from
    there, not from the last part closed. A part a fault cut short in its write is removed.
    Returns what pages over the response cap cost the read (PagedTables; None: nothing)."""
    writer, part_path, written, groups, dictionary = None, None, 0, 0, None
    state_written, in_write = progress["state"], False   # the state after the last table written whole
    closed_at = time.monotonic()
    tables = source.batches(progress["state"]) if tables is None else tables

    def close_part(state) -> None:
        # the part's bytes, then its name, reach the disk before progress.json lists it: after a
        # kill or a reboot a part is listed whole or not at all (an unlisted one is removed)
        nonlocal writer, part_path, written, groups, closed_at
        if writer is not None:
            writer.close()
            sync(part_path)
            final = part_path.with_suffix("")
            part_path.rename(final)
            sync(parts_dir)
            progress["parts"].append(final.name)
            writer, part_path, written, groups = None, None, 0, 0
        progress["state"] = state
        progress["done"] = state is None
        write_json_atomic(progress_path, progress)
        closed_at = time.monotonic()

    try:
        for table, state in tables:
            if table.schema != schema:
                table = table.cast(schema)
            _check_rows_budget(source, progress["rows"] + table.num_rows, max_rows)
            if source.expected_rows is not None and \
                    progress["rows"] + table.num_rows > 2 * source.expected_rows + ROWS_PAST_THE_COUNT:
                raise PagesWithoutEnd(f"the pull gave over {progress['rows'] + table.num_rows:,} rows, more than "
                                      f"twice the {source.expected_rows:,} the portal counted at its start and "
                                      f"{ROWS_PAST_THE_COUNT:,} more: its pages do not end; the previous records "
                                      "are kept")
            in_write = True
            if table.num_rows:   # (an empty page, an Open311 window without requests: no empty row group)
                if writer is None:
                    dictionary = dictionary_columns(table) if dictionary is None else dictionary
                    part_path = parts_dir / f"{part_name(len(progress['parts']))}.tmp"
                with writing(part_path):
                    if writer is None:
                        writer = pq.ParquetWriter(part_path, schema, **PART_COMPRESSION,
                                                  use_dictionary=dictionary)
                    writer.write_table(table, row_group_size=row_group_rows(table))
                written += table.num_rows
                groups += _row_groups(table)
                progress["rows"] += table.num_rows
            state_written = state
            if state is None or writer is not None and (part_full(written, groups, len(schema), part_rows) or
                                                        time.monotonic() - closed_at >= part_seconds):
                with writing(part_path or progress_path):
                    close_part(state)
            in_write = False
    except BaseException as fault:
        if writer is not None and written and not in_write:   # the rows read whole are kept
            name = part_path.name
            try:
                with writing(part_path):
                    close_part(state_written)
            except BaseException as failed:   # (the part goes below: the next pull goes on from the last part closed)
                log.warning("could not close the records part %s at a fault (%s): %s; the next pull goes on from "
                            "the last part closed", name, type(fault).__name__, failed)
        if writer is not None:  # the finished parts stay for the next attempt; this one goes
            try:
                writer.close()
            except OSError:   # (what made the write fail, the disk full, fails its close too)
                pass
            part_path.unlink(missing_ok=True)
        raise
    if not progress["done"]:
        close_part(None)
    return tables.answers.cost() if isinstance(tables, PagedTables) else None


def _check_rows_budget(source: RecordSource, rows: int, max_rows: int | None) -> None:
    """RowsOverBudget when the pull's `rows`, with the page read, pass the portal's `max_rows`, or
    when the portal counts more than that (said at the first page: the pull would pass the bound,
    or give fewer rows than counted, RowsMissing, hours later)."""
    if max_rows is None:
        return
    if source.expected_rows is not None and source.expected_rows > max_rows:
        raise RowsOverBudget(f"the portal counts {source.expected_rows:,} rows, more than the portal's "
                             f"records_max_rows ({max_rows:,}): the pull stops at its first page; the previous "
                             "records are kept (a dataset that large is pulled with records_max_rows raised)")
    if rows > max_rows:
        raise RowsOverBudget(f"the pull gave {rows:,} rows, past the portal's records_max_rows "
                             f"({max_rows:,}); the previous records are kept")


def _continues(source: RecordSource, tables, state: dict, last_part: Path) -> bool:
    """Whether a pull may resume from its staged parts: at any state of a source whose rows
    do not move (RecordSource.resumes_at), else where the row just before its resume point,
    asked again, is the last row staged. A row removed or added before that point since the
    parts were staged moves every row after it (offsets, object-id positions): resumed, the
    pull published the removed row and lost a row served all along, its count still met.
    Where that row cannot be asked (pages not by offset, a downloaded file) the pull starts
    over. A change both ways before the point (one row removed, one inserted) keeps the
    staged rows as they were read."""
    if isinstance(state, dict) and source.resumes_at(state):
        return True
    if not isinstance(tables, PagedTables):
        return False
    conversion = getattr(source, "conversion", None)
    counted = (conversion.invalid.copy(), conversion.not_objects) if isinstance(conversion, Conversion) else None
    try:
        row = tables.row_before()
    except ResponseTooLarge:   # (the row grew past the cap: changed)
        return False
    finally:
        if counted is not None:   # its bad values were counted when it was staged
            conversion.invalid, conversion.not_objects = counted
    if row is None or row.num_rows != 1:
        return False
    staged = pq.ParquetFile(last_part)
    group = staged.read_row_group(staged.num_row_groups - 1)
    try:
        if not (group.num_rows > 0 and same_rows(group.slice(group.num_rows - 1), row.cast(group.schema))):
            return False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):   # another shape: not that row
        return False
    tables.staged_before(group)
    return True


def part_full(rows: int, row_groups: int, columns: int, part_rows: int) -> bool:
    """Whether a part of `rows` rows in `row_groups` row groups of `columns` columns is full: at
    `part_rows` rows, or at PART_COLUMN_CHUNKS column chunks (row groups times columns; read at
    each call), whichever comes first."""
    return rows >= part_rows or row_groups * max(columns, 1) >= PART_COLUMN_CHUNKS


def _row_groups(table: pa.Table) -> int:
    """The row groups a writer makes of `table`, cut at row_group_rows(table)."""
    return -(-table.num_rows // row_group_rows(table))


def row_group_rows(table: pa.Table) -> int:
    """Rows a row group of `table`'s rows holds: at most ROW_GROUP_ROWS, and as many as fit
    ROW_GROUP_BYTES at the table's mean width (at least one), the table cut into groups of
    even rows (a page of 50,000 rows of 10 MB: two of 25,000, not 41,943 and 8,057)."""
    return _group_rows(table.num_rows, table.nbytes)


def _group_rows(rows: int, nbytes: int) -> int:
    """row_group_rows of `rows` rows of `nbytes` bytes (as Arrow holds them)."""
    if not rows:
        return ROW_GROUP_ROWS
    most = max(1, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES * rows // max(nbytes, 1)))
    groups = -(-rows // most)
    return -(-rows // groups)


def dictionary_columns(table: pa.Table) -> list[str]:
    """Text columns worth dictionary-encoding, judged on the first table: few distinct
    values. Trying it on every column (Arrow's default) doubled the write's CPU time on
    the SPD-911-shaped benchmark, for larger files."""
    return [name for name in table.column_names if _few_distinct(table[name])]


def _few_distinct(column) -> bool:
    """Whether a column is text of few distinct values (dictionary_columns)."""
    if not pa.types.is_string(column.type):
        return False
    present = len(column) - column.null_count
    return bool(present) and pc.count_distinct(column).as_py() <= present // 4


def _packed(parts_dir: Path, parts: list[str], staging: Path, part_rows: int) -> Path:
    """The folder a full pull publishes: its staged parts, where parts closed by time
    (PART_SECONDS: a slow pull) are joined, row group by row group as they were written, into
    parts of `part_rows` rows or a row group more. A front end finds the files and row groups
    a pull never cut short by time gives, whatever the pull's pace (a part full at `part_rows` rows
    or at PART_COLUMN_CHUNKS: `part_full`). Written beside the staged
    parts, which stay as they are (a publish killed while packing packs them again), a part
    closed at its rows linked as it is (copied where the file system has no hard links); parts all
    full but the last are published themselves."""
    footers = [pq.read_metadata(parts_dir / name) for name in parts]
    full = [part_full(f.num_rows, f.num_row_groups, f.num_columns, part_rows) for f in footers]
    del footers   # (each up to ~16 MB: PART_COLUMN_CHUNKS)
    whole = all(full[:-1])
    if whole and part_name(0) == part_name(0, len(parts)):   # (staged under names of one width)
        return parts_dir
    packed = staging / "packed"
    shutil.rmtree(packed, ignore_errors=True)
    packed.mkdir()
    if whole:   # (too many to be named in order as staged: linked under names of one width)
        for number, name in enumerate(parts):
            link_or_copy(parts_dir / name, packed / part_name(number, len(parts)))
        sync(packed)
        return packed
    writer, written, groups, dictionary, number = None, 0, 0, None, 0

    def close() -> None:
        nonlocal writer, written, groups, number
        with writing(target):
            writer.close()
            sync(target)
        writer, written, groups, number = None, 0, 0, number + 1

    try:
        for name, closed_full in zip(parts, full):
            if writer is None and closed_full:   # (closed at its rows, or its column chunks)
                link_or_copy(parts_dir / name, packed / part_name(number))
                number += 1
                continue
            staged = pq.ParquetFile(parts_dir / name)
            for group in range(staged.num_row_groups):
                table = staged.read_row_group(group)
                if writer is None:
                    dictionary = dictionary_columns(table) if dictionary is None else dictionary
                    target = packed / part_name(number)
                    writer = pq.ParquetWriter(target, staged.schema_arrow, **PART_COMPRESSION,
                                              use_dictionary=dictionary)
                with writing(target):
                    writer.write_table(table, row_group_size=row_group_rows(table))
                written += table.num_rows
                groups += _row_groups(table)
                if part_full(written, groups, table.num_columns, part_rows):
                    close()
        if writer is not None:
            close()
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except OSError:   # (the disk full fails its close too; the folder goes with the staging one)
                pass
        raise
    name_in_order(packed, number)
    sync(packed)
    return packed


def _merge(source: RecordSource, layout: RecordsLayout, portal_id: str, source_id: str, staging: Path) -> Path:
    """The folder an incremental pull publishes: the previous folder's rows the delta does not
    replace by the source's key, then the delta's (harvester.records_merge), in parts of PART_ROWS
    (or fewer: PART_COLUMN_CHUNKS)."""
    merged = staging / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir()
    previous = sorted(layout.folder(portal_id, source_id).glob("*.parquet"))
    delta = sorted((staging / "parts").glob("*.parquet"), key=part_number)
    try:
        merge_by_key(previous, delta, source.merge_key, arrow_schema(source.fields), merged, part_rows=PART_ROWS,
                     part_column_chunks=PART_COLUMN_CHUNKS, row_group_rows=ROW_GROUP_ROWS,
                     row_group_bytes=ROW_GROUP_BYTES)
    except MergeError as exc:
        raise MergeFailed(f"the merge of the rows read with the published records failed: {exc}; the previous "
                           "records are kept (a full pull, --full, writes them again)") from None
    return merged


def _new_progress(source: RecordSource) -> dict:
    return {"fingerprint": source.fingerprint, "parts": [], "rows": 0, "state": None, "done": False}


def _load_progress(path: Path, fingerprint: str) -> dict | None:
    try:
        progress = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(progress, dict) or progress.get("fingerprint") != fingerprint:
        return None
    return progress


# -- choosing and pulling datasets ----------------------------------------------------------

def stored_datasets(con, uids: list[str]) -> dict[str, StoredDataset]:
    """The named datasets from the catalogue, with their columns, distributions, raw entry."""
    rows = con.execute("""
        SELECT d.uid, d.portal_id, d.source_id, d.asset_type, r.raw, r.details,
               (SELECT list(struct_pack(field_name := c.field_name, name := c.name, type := c.type,
                                        source_type := c.source_type) ORDER BY c.position)
                FROM columns c WHERE c.dataset_uid = d.uid) AS columns,
               (SELECT list(struct_pack(title := x.title, format := x.format, media_type := x.media_type,
                                        download_url := x.download_url, access_url := x.access_url) ORDER BY x.position)
                FROM distributions x WHERE x.dataset_uid = d.uid) AS distributions
        FROM datasets d LEFT JOIN raw_records r ON r.uid = d.uid AND r.raw_hash = d.raw_hash
        WHERE list_contains(?, d.uid) AND d.deleted_at IS NULL""", [uids]).fetchall()
    return {row[0]: StoredDataset(uid=row[0], portal_id=row[1], source_id=row[2], asset_type=row[3],
                                  raw=orjson.loads(row[4]) if row[4] else {},
                                  details=orjson.loads(row[5]) if row[5] else None,
                                  columns=row[6] or [], distributions=row[7] or []) for row in rows}


def _read_whole(previous: PreviousPull | None) -> PreviousPull | None:
    """The pull before, as a pull that reads the dataset whole is given it: no watermark to
    go on from, but what it learned of the server (Open311's page size, trusted only once
    an answer shows it again) kept."""
    return None if previous is None else replace(previous, watermark=None)


def pull_records(adapter, datasets: list[str], con, layout: RecordsLayout, *, run_id: str, errors,
                 full: bool = False, db_path: Path | None = None) -> list[PullResult]:
    """Pull the records of `datasets` (source ids) of one portal, one after the other.
    A dataset that fails is reported in `errors` (stage "records") and keeps its previous
    complete Parquet; the others go on. Each pull's requests end past the portal's
    `records_max_minutes` (OverBudget: it fails, what it staged resumed by the next pull where it can). `db_path`: the catalogue `con` writes (a failure for want
    of room in it, or its log, names it)."""
    portal = adapter.portal
    uids = [f"{portal.id}:{source_id}" for source_id in datasets]
    known = stored_datasets(con, uids)
    results = []
    for uid, source_id in zip(uids, datasets):
        result = PullResult(uid=uid)
        started, source = time.monotonic(), None
        try:
            dataset = known.get(uid)
            if dataset is None:
                # (the config's `records`: its portal was just harvested, so "harvest it first" misled)
                raise NotPullable(f"{uid} is not in the catalogue, or was deleted: {portal.id}'s listing has no "
                                  f"dataset {source_id!r} (a typo in `records`? its portal not harvested yet?)")
            previous = previous_pull(con, uid)
            if full or not layout.folder(portal.id, source_id).is_dir():   # (the folder gone: nothing to add to)
                previous = _read_whole(previous)
            source = adapter.record_source(dataset, previous)
            published = None if full else published_schema(layout, portal.id, source_id)
            if source.mode == "incremental" and _columns_of(published) != _columns_of(arrow_schema(source.fields)):
                source = adapter.record_source(dataset, _read_whole(previous))  # the columns changed: read it whole
            _check_same_table(source, published)
            adapter.http.limit_to(portal.records_max_minutes, f"the records pull of {uid}", "portal's records_max_minutes")
            try:
                result = pull_dataset(source, layout, portal.id, source_id, con, uid=uid, run_id=run_id,
                                      max_rows=portal.records_max_rows)
            finally:
                adapter.http.limit_to(None)
            for column, count in sorted(result.invalid_values.items()):
                errors.add(source_id, "records", "InvalidValue",
                           f"{count} values of column {column!r} did not parse as its type; stored as null",
                           severity="warning")
            if result.not_objects:
                errors.add(source_id, "records", "NotAnObject",
                           f"{result.not_objects} records were not JSON objects; each stored as a row of nulls",
                           severity="warning")
            if result.smaller_pages:
                errors.add(source_id, "records", "SmallerPages", result.smaller_pages, severity="warning")
            if result.server_clock:
                errors.add(source_id, "records", "ServerClock", result.server_clock, severity="warning")
            if result.dated_ahead:   # (each pull the rows are still ahead, as the harvest's each night)
                errors.add(source_id, "records", "FutureModified", result.dated_ahead, severity="warning")
            if result.changed:
                errors.add(source_id, "records", "ChangedWhileRead", f"{result.changed}: the pull read it again" + (
                    ", and published it as read the second time (rows were only added as it was read: a row read "
                    "twice is kept once, at its later reading; a row added may be missing until the next full pull)"
                    if result.published_as_read else ""),
                           severity="warning")
        except (Exception, OverBudget) as exc:  # one dataset's failure: recorded, its previous Parquet kept
            if stop_requested():   # (DuckDB's "Query interrupted": Ctrl-C or SIGTERM in a query, no failure of this dataset)
                raise
            result.status = "failed"
            exc = disk_full(exc, db_path, records=layout.root) or exc   # (which file, which file system, how much free)
            result.error_type = error_type(exc)
            result.error_message = str(exc) + (": the pull fails, the previous records are kept"
                                               if isinstance(exc, OverBudget) else "")
            result.seconds = round(time.monotonic() - started, 3)
            errors.add(source_id, "records", result.error_type, f"records pull failed ({uid}): {result.error_message}")
            log.error("%s: records pull failed: %s", uid, result.error_message)
            # (what the reader learnt before it failed: a service code refused may be why, a request of it in no part)
            result.notices = [] if source is None else source.notices()
        for kind, message, *severity in result.notices:   # (the reader's own warnings, the pull ok or not)
            errors.add(source_id, "records", kind, message, severity=severity[0] if severity else "warning")
        results.append(result)
    return results


def harvest_records(adapter, store, run_id: str, errors, report, *, datasets: list[str] | None = None,
                    full: bool = False) -> list[PullResult]:
    """The records step of a portal's harvest (its config's `records`, or `datasets`),
    counted in its report; run after the portal's catalogue is committed."""
    datasets = list(adapter.portal.records if datasets is None else datasets)
    if not datasets:
        return []
    bound_process_memory()
    con = store.cursor()
    try:
        layout = RecordsLayout.beside(store.db_path, catalogue_id(con))
        for done in layout.repair(con.execute("SELECT portal_id, source_id FROM record_pulls").fetchall()):
            log.warning("records: %s", done)
        # (after the repair: a folder it restores may have the name before)
        for done in name_keyed_folders(con, layout, adapter.portal.id):
            log.warning("records: %s", done)
        for done in remove_left_over():   # (downloads and spills of a pull killed: in /tmp, until the OS cleans it)
            log.warning("records: %s", done)
        results = pull_records(adapter, datasets, con, layout, run_id=run_id, errors=errors, full=full,
                               db_path=store.db_path)
    finally:
        con.close()
    report.records_pulled += sum(r.status == "ok" for r in results)
    report.records_failed += sum(r.status != "ok" for r in results)
    report.record_rows += sum(r.rows for r in results)
    return results


def pull_uids(uids: list[str], portals: list, store, http, *, full: bool = False) -> tuple[str, list[PullResult]]:
    """`civicat records UID...`: pull the named datasets, grouped by portal, as one run
    (a harvest_runs row per portal, errors in harvest_errors)."""
    from harvester.pipeline import ErrorLog, PortalReport, record_keys_held_back  # (the pipeline imports this)
    from harvester.portals import adapter_for, say_once_a_run

    by_portal: dict[str, list[str]] = {}
    for uid in dict.fromkeys(uids):
        portal_id, _, source_id = uid.partition(":")
        by_portal.setdefault(portal_id, []).append(source_id)
    known = {p.id: p for p in portals}
    say_once_a_run([known[portal_id] for portal_id in by_portal])
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-records-{uuid.uuid4().hex[:8]}"
    results: list[PullResult] = []
    for portal_id, source_ids in by_portal.items():
        portal = known[portal_id]
        report = PortalReport(portal_id)
        errors = ErrorLog(store, run_id, portal_id, report)
        started = time.monotonic()
        client = http.for_portal(portal)
        store.start_run(run_id, portal_id, datetime.now(UTC))
        try:
            with cancelled_on_stop(client.cancel):   # (pages read ahead in other threads: not their retries waited out)
                results += harvest_records(adapter_for(portal, client), store, run_id, errors, report,
                                           datasets=source_ids, full=full)
            report.status = "ok" if report.records_failed == 0 else "failed"
            if report.records_failed:
                report.error_type = "RecordsFailed"
                report.error_message = f"{report.records_failed} of {len(source_ids)} records pulls failed"
        except BaseException as exc:   # Ctrl-C or SIGTERM: its portals not begun are left for the next run
            if not isinstance(exc, KeyboardInterrupt) and not stop_requested():   # (DuckDB's "Query interrupted")
                raise
            report.status, report.error_type = "failed", "Interrupted"
            report.error_message = (f"the records pull was interrupted ({stopped_by()}): each dataset keeps its "
                                    "previous Parquet (the pull resumes next time)")
            errors.add(None, "records", report.error_type, report.error_message)
            raise
        finally:
            if report.status == "running":   # harvest_records raised: the database itself, say
                report.status, report.error_type = "failed", "RecordsFailed"
            record_keys_held_back(client, errors, "records")
            errors.flush()
            report.seconds = round(time.monotonic() - started, 3)
            for key, value in client.stats.snapshot().items():
                setattr(report, key, value)
            store.finish_run(run_id, portal_id, {**report.stored(), "finished_at": datetime.now(UTC)})
    return run_id, results
