"""Local Socrata portal: Discovery API (/api/catalog/v1) and /api/views/{id}.json,
with the real paging caps and scroll_id ordering."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal
from bisect import bisect_right
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

import orjson
from werkzeug.wrappers import Request
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .base import LocalPortal, Query, RawBody, json_error

VIEW_PATH = re.compile(r"^/api/views/([a-z0-9]{4}-[a-z0-9]{4})\.json$")
RESOURCE_PATH = re.compile(r"^/resource/([a-z0-9]{4}-[a-z0-9]{4})\.(json|csv)$")
UPDATED_AFTER = re.compile(r"^\s*:updated_at\s*>\s*'([^']+)'\s*$")


class SodaTable:
    """One dataset's rows as SODA serves them at /resource/{id}: text values (SODA's JSON
    gives numbers as strings), objects for locations, sorted by the system field :id.

    ``$select`` (``count(*) [AS n]``, or fields with ``:id``, ``:updated_at``, ``*``),
    ``$where`` (only ``:updated_at > '<timestamp>'``), ``$order`` (``:id``; anything else
    is refused), ``$limit`` (default 1,000; above 50,000 refused), ``$offset``.

    ``before_page[offset]`` changes the dataset (``add``, ``remove``) as a page at that
    ``$offset`` is first asked, before it is answered: a dataset edited during a pull."""

    MAX_LIMIT = 50_000
    DEFAULT_LIMIT = 1_000

    def __init__(self, table: pa.Table) -> None:
        self.table = table.sort_by(":id")
        self.fields = [n for n in table.column_names if not n.startswith(":")]
        self.before_page: dict[int, Callable[[SodaTable], None]] = {}

    def add(self, rows: list[dict]) -> None:
        """Rows added, each in its place in `:id` order (SODA's)."""
        added = pa.Table.from_pylist(rows, schema=self.table.schema)
        self.table = pa.concat_tables([self.table, added]).sort_by(":id")

    def remove(self, ids: list[str]) -> None:
        self.table = self.table.filter(pc.invert(pc.is_in(self.table[":id"], pa.array(ids))))

    @classmethod
    def from_rows(cls, rows: list[dict], updated_at: str = "2024-01-15T12:00:00.000Z") -> "SodaTable":
        rows = [{":id": f"row-{i:08d}", ":updated_at": row.pop(":updated_at", updated_at), **row}
                for i, row in enumerate(dict(r) for r in rows)]
        return cls(pa.Table.from_pylist(rows))

    def answer(self, fmt: str, query: Query) -> tuple[int, object]:
        counting = query.get("$select", "").replace(" ", "").lower().startswith("count(*)")
        offset = str(query.get("$offset", "0"))
        change = None if counting or not offset.isdigit() else self.before_page.pop(int(offset), None)
        if change is not None:
            change(self)
        table = self.table
        where = query.get("$where")
        if where:
            match = UPDATED_AFTER.match(where)
            if not match:
                return 400, json_error(400, f"unsupported $where: {where}")
            since = pc.cast(pa.scalar(match[1].rstrip("Z")), pa.timestamp("us"))
            stamps = pc.cast(pc.utf8_rtrim(table[":updated_at"], characters="Z"), pa.timestamp("us"))
            table = table.filter(pc.greater(stamps, since))
        select = query.get("$select", "*").replace(" ", "")
        if select.lower().startswith("count(*)"):
            alias = select[8:].lower().removeprefix("as") or "count"
            return 200, [{alias: str(table.num_rows)}]
        if query.get("$order", ":id") != ":id":
            return 400, json_error(400, "this portal only orders by :id")
        try:
            limit = int(query.get("$limit", self.DEFAULT_LIMIT))
            offset = int(query.get("$offset", 0))
        except ValueError:
            return 400, json_error(400, "$limit and $offset must be integers")
        if limit > self.MAX_LIMIT:
            return 400, json_error(400, f"$limit must be at most {self.MAX_LIMIT}")
        names = []
        for part in select.split(","):
            names += self.fields if part == "*" else [":id", ":updated_at"] if part == ":*" else [part]
        missing = [n for n in names if n not in table.column_names]
        if missing:
            return 400, json_error(400, f"no such column: {missing[0]}")
        page = table.slice(offset, limit).select(names)
        if fmt == "json":
            rows = [{k: v for k, v in row.items() if v is not None} for row in page.to_pylist()]
            return 200, RawBody(orjson.dumps(rows), "application/json; charset=utf-8")
        return 200, RawBody(csv_bytes(page))


def csv_bytes(table: pa.Table) -> bytes:
    """SODA's CSV: a header of field names, cells as soda-fountain's CsvColumnRep writes them:
    URL cells ({"url", "description"}) "description (url)", else the URL, else the description;
    documents ({"file_id", "filename", "content_type"}) "file_id?filename=…&content_type=…";
    legacy locations ({latitude, longitude, human_address}) as address lines then "(lat, lng)"
    (LocationRep); GeoJSON geometries (a `point` column's) as WKT (GeometryLikeRep)."""
    columns = []
    for name in table.column_names:
        column = table[name]
        if pa.types.is_struct(column.type) and column.type.get_field_index("file_id") >= 0:
            column = pa.array([None if cell is None else _document(cell) for cell in column.to_pylist()], pa.string())
        elif pa.types.is_struct(column.type) and column.type.get_field_index("url") >= 0:
            url = pc.struct_field(column, "url")
            described = (pc.struct_field(column, "description") if column.type.get_field_index("description") >= 0
                         else pa.nulls(len(column), pa.string()))
            both = pc.binary_join_element_wise(described, " (", url, ")", "")
            column = pc.coalesce(both, url, described)
        elif pa.types.is_struct(column.type) and column.type.get_field_index("coordinates") >= 0:
            column = pa.array([None if cell is None else _wkt(cell) for cell in column.to_pylist()], pa.string())
        elif pa.types.is_struct(column.type):
            column = pa.array([None if cell is None else _location(cell) for cell in column.to_pylist()], pa.string())
        columns.append(column)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(columns, names=table.column_names), sink)
    return sink.getvalue().to_pybytes()


def _document(cell: dict) -> str:
    query = urlencode({key: cell[key] for key in ("filename", "content_type") if cell.get(key)})
    return f"{cell['file_id']}?{query}" if query else cell["file_id"]


def _location(cell: dict) -> str | None:
    """LocationRep: "address\ncity, state zip" (each part given, with its separator), then, with
    both coordinates, "(lat, lng)" on a line of its own; null when that leaves nothing."""
    text = ""
    try:
        address = json.loads(cell.get("human_address") or "null")
    except ValueError:
        address = None
    if isinstance(address, dict):
        for key, separator in (("address", "\n"), ("city", ", "), ("state", " "), ("zip", "")):
            if isinstance(address.get(key), str):
                text += address[key] + separator
    if cell.get("latitude") is not None and cell.get("longitude") is not None:
        text += ("\n" if text else "") + f"({cell['latitude']}, {cell['longitude']})"
    return text or None


def _wkt(geometry: dict) -> str:
    """GeometryLikeRep: JTS's WKT, each number (its shortest digits, as Java's DecimalFormat takes them)
    with at most 16 decimals and no trailing zeros ("-87", not "-87.0")."""
    def number(value: float) -> str:
        text = f"{Decimal(repr(value)).quantize(Decimal('1e-16'), ROUND_HALF_EVEN):f}"
        return text.rstrip("0").rstrip(".") if "." in text else text

    def points(coordinates, depth: int) -> str:
        if depth == 0:
            return " ".join(number(v) for v in coordinates[:2])
        if depth == 1 and kind == "MultiPoint":   # (JTS 1.13's WKTWriter: each point in brackets)
            return "(" + ", ".join(f"({points(c, 0)})" for c in coordinates) + ")"
        return "(" + ", ".join(points(c, depth - 1) for c in coordinates) + ")"

    depths = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}
    kind = geometry["type"]
    text = points(geometry["coordinates"], depths[kind])
    return f"{kind.upper()} ({text})" if kind == "Point" else f"{kind.upper()} {text}"


class TrackedList(list):
    """A list that counts its mutations, so derived listings can be cached
    (sorting 100k entries on every page would dominate a benchmark)."""

    version = 0


def _bump_version(method):
    def mutate(self, *args, **kwargs):
        self.version += 1
        return method(self, *args, **kwargs)

    return mutate


for _name in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__", "__imul__"):
    setattr(TrackedList, _name, _bump_version(getattr(list, _name)))


def interleave(entries: list, others: list) -> list:
    """Spread ``others`` evenly through ``entries``, as federated assets appear
    among a portal's own ones when no ``domains`` filter is given."""
    merged, n, m, j = [], len(entries), len(others), 0
    for i, entry in enumerate(entries):
        while j < m and (j + 1) * n // (m + 1) <= i:
            merged.append(others[j])
            j += 1
        merged.append(entry)
    merged.extend(others[j:])
    return merged


class SocrataPortal(LocalPortal):
    """Socrata Discovery API over ``entries`` (Discovery ``results[]`` items).

    - ``limit`` defaults to 10 and is silently capped at 100; ``offset`` defaults to 0;
      offset + limit > 10,000 is answered 400.
    - ``domains=a,b`` keeps entries whose ``metadata.domain`` is listed; without it the
      ``other_domain_entries`` (federated) are interleaved with the portal's own.
    - ``scroll_id`` (present, even empty): entries sorted by ``resource.id``, only ids
      greater than it, offset ignored. Without it, entries come in list order.
    - ``portal.entries`` may be mutated or replaced between requests (e.g.
      ``insert(0, new)``, also from ``portal.on_request``); entries are served live,
      but changing an entry's id in place needs a list operation to be noticed.
    - ``throttle_every=N``: every Nth request without ``app_token`` in its ``X-App-Token``
      header is answered 429 with a Retry-After, as Socrata throttles requests that carry
      no app token (``throttled`` counts them).
    """

    DEFAULT_LIMIT = 10
    MAX_LIMIT = 100
    MAX_WINDOW = 10_000
    missing_records = "Cannot find dataset {id}"   # (Socrata's words for records it does not serve)

    def __init__(self, entries: Iterable[dict], views: dict[str, Any] | None = None,
                 domain: str = "data.example.org", other_domain_entries: Iterable[dict] = (),
                 prefix: str = "", records: dict[str, SodaTable] | None = None, app_token: str | None = None,
                 throttle_every: int | None = None) -> None:
        super().__init__(prefix)
        self.app_token, self.throttle_every = app_token, throttle_every
        self.tokenless = self.throttled = 0
        self.records = dict(records or {})
        self.domain = domain
        self._listings: dict[tuple, tuple[list, list]] = {}
        self.entries = entries
        self.other_domain_entries = other_domain_entries
        self.views = dict(views or {})

    # Assigned lists become TrackedLists so cached listings notice in-place changes.
    @property
    def entries(self) -> TrackedList:
        return self._entries

    @entries.setter
    def entries(self, value: Iterable[dict]) -> None:
        self._entries = TrackedList(value)
        self._listings = {}

    @property
    def other_domain_entries(self) -> TrackedList:
        return self._others

    @other_domain_entries.setter
    def other_domain_entries(self, value: Iterable[dict]) -> None:
        self._others = TrackedList(value)
        self._listings = {}

    def _wsgi(self, environ, start_response):
        if self.throttle_every and (self.app_token is None or environ.get("HTTP_X_APP_TOKEN") != self.app_token):
            with self._lock:
                self.tokenless += 1
                throttled = self.tokenless % self.throttle_every == 0
                self.throttled += throttled
            if throttled:
                status, headers, body = self._encode(Request(environ), 429, json.dumps(json_error(429)).encode(),
                                                     headers=[("Retry-After", "1")])
                start_response("429 Too Many Requests", headers)
                return [body]
        return super()._wsgi(environ, start_response)

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path == "/api/catalog/v1":
            return self.catalog(query)
        match = VIEW_PATH.match(path)
        if match:
            view = self.views.get(match[1])
            if view is None:
                return 404, json_error(404, f"Cannot find view with id {match[1]}")
            return 200, view
        match = RESOURCE_PATH.match(path)
        if match:
            table = self.records.get(match[1])
            if table is None:
                return 404, json_error(404, self.missing_records.format(id=match[1]))
            return table.answer(match[2], query)
        return 404, json_error(404, f"No route for {path}")

    def catalog(self, query: Query) -> tuple[int, Any]:
        try:
            limit = min(int(query.get("limit", self.DEFAULT_LIMIT)), self.MAX_LIMIT)
            offset = int(query.get("offset", 0))
        except ValueError:
            return 400, {"error": "limit and offset must be non-negative integers"}
        if limit < 0 or offset < 0:
            return 400, {"error": "limit and offset must be non-negative integers"}

        domains = query.get("domains")
        scroll_id = query.get("scroll_id")
        entries, ids = self.listing(domains, by_id=scroll_id is not None)
        if scroll_id is not None:
            start = bisect_right(ids, scroll_id)
            page = entries[start:start + limit]
        elif offset + limit > self.MAX_WINDOW:
            return 400, {"error": f"Offset + limit must be less than or equal to {self.MAX_WINDOW}"}
        else:
            page = entries[offset:offset + limit]
        return 200, {
            "results": page,
            "resultSetSize": len(entries),
            "timings": {"serviceMillis": 23, "searchMillis": [4, 9]},
            "warnings": [],
        }

    def listing(self, domains: str | None, by_id: bool) -> tuple[list, list]:
        """(entries, their ids) after domain filtering, in list or id order; cached
        until ``entries`` or ``other_domain_entries`` change."""
        key = (self._entries.version, self._others.version, domains, by_id)
        cached = self._listings.get(key)
        if cached is None:
            entries = interleave(self._entries, self._others)
            if domains is not None:
                wanted = set(domains.split(","))
                entries = [e for e in entries if e["metadata"]["domain"] in wanted]
            if by_id:
                entries.sort(key=lambda e: e["resource"]["id"])
            cached = entries, [e["resource"]["id"] for e in entries]
            self._listings = {key: cached} if len(self._listings) > 8 else {**self._listings, key: cached}
        return cached


def discovery_entry(view: dict, domain: str = "data.example.org") -> dict:
    """A Discovery ``results[]`` item for a /api/views document (columns as the catalogue
    lists them), so a recorded view can be served as a catalogue entry."""
    columns = [c for c in view.get("columns", []) if not str(c.get("fieldName", "")).startswith(":")]
    return {
        "resource": {
            "id": view["id"], "name": view.get("name") or view["id"], "type": "dataset",
            "description": view.get("description") or "", "updatedAt": "2024-01-15T12:00:00.000Z",
            "columns_field_name": [c["fieldName"] for c in columns], "columns_name": [c.get("name") for c in columns],
            "columns_datatype": [c.get("dataTypeName") for c in columns],
            "columns_description": [c.get("description") for c in columns],
        },
        "classification": {"categories": [], "tags": [], "domain_category": view.get("category"), "domain_tags": []},
        "metadata": {"domain": domain},
        "permalink": f"https://{domain}/d/{view['id']}",
    }
