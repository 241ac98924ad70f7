"""Socrata: the domain catalogue through the Discovery API.

Endpoints: `{url}/api/catalog/v1?domains=<domain>` (limit capped at 100, offset+limit at
most 10,000; deeper listings page the WHOLE listing by `scroll_id`, which returns results
in id order, so the two are never mixed), `{url}/api/views/{id}.json` for the columns of
tabular assets that come without them, records under `{url}/resource/{id}.json|csv`.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from urllib.parse import urlparse

from catalog import record as R
from catalog.record import Notes
from catalog.records import scratch_duckdb
from harvester.http import capped_json, dropped, value_in_head
from harvester.paging import CursorPaginator, Listing, OffsetPaginator, Page, reported_total
from harvester.portals.base import (MAX_ITEMS, PortalAdapter, lists_cut, note_columns_cut, note_lists_cut,
                                    refuse_cut_columns)
from harvester.records import (MAX_COLUMNS, Conversion, Field, NotPullable, RecordSource, SameColumns, SourceChanged,
                               csv_page, geometry_cells_of_csv, paged_tables, point_cells_of_csv,
                               read_parquet_sql, unique_fields, url_cells_of_csv)

PAGE_LIMIT = 100
RECORD_PAGE = 50_000          # SODA's largest $limit
SYSTEM_FIELDS = [Field(":id", "text"), Field(":updated_at", "datetime_utc")]
FOUR_BY_FOUR = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}$")
OFFSET_WINDOW = 10_000
ID_CHECK_MEMORY = "64MB"   # DuckDB's, to find a records pull's :id read twice (it spills past it)

# Discovery `type` → civicat asset_type
ASSET_TYPES = {
    "dataset": "dataset", "system_dataset": "dataset", "filter": "filtered_view", "chart": "chart",
    "visualization": "chart", "datalens": "chart", "datalens_chart": "chart", "map": "map",
    "datalens_map": "map", "file": "file", "blob": "file", "href": "link", "federated_href": "link",
    "story": "story", "measure": "measure", "form": "form", "calendar": "calendar", "api": "service",
    "gateway": "service",
}
TABULAR = ("dataset", "filtered_view")
# a Discovery result's parallel lists of its columns, each cut to MAX_COLUMNS as the page is read
COLUMN_LISTS = ("columns_name", "columns_field_name", "columns_datatype", "columns_description", "columns_format")
DISCOVERY_PAGE = capped_json({"results": {"*": {
    "resource": dict.fromkeys(COLUMN_LISTS, MAX_COLUMNS),
    "classification": dict.fromkeys(("tags", "domain_tags", "categories"), MAX_ITEMS)}}})
VIEWS_DOCUMENT = capped_json({"columns": MAX_COLUMNS})

# Socrata column types (Discovery display names and views-API dataTypeName alike,
# lowercased with spaces as underscores) → the shared vocabulary
COLUMN_TYPES = {
    "text": "text", "html": "text", "email": "text", "phone": "text", "drop_down_list": "text",
    "flag": "text", "number": "number", "money": "number", "percent": "number", "double": "number",
    "stars": "number", "calendar_date": "datetime", "floating_timestamp": "datetime",
    "fixed_timestamp": "datetime", "date": "datetime", "date_&_time": "datetime", "checkbox": "boolean",
    "boolean": "boolean", "url": "url", "point": "point", "location": "point", "polygon": "geometry",
    "multipolygon": "geometry", "line": "geometry", "multiline": "geometry", "multipoint": "geometry",
    "geospatial": "geometry", "photo": "other", "document": "other", "blob": "other",
    "nested_table": "other", "dataset_link": "other",
}

# Counters (Discovery resource, views document) that change every night while the dataset does not
VOLATILE_KEYS = ("page_views", "download_count", "viewCount", "downloadCount", "numberOfComments",
                 "averageRating", "totalTimesRated", "indexUpdatedAt", "viewLastModified")


def _entry_in_head(head: bytes) -> dict | None:
    """The Discovery entry an answer over the response cap (for that one entry) starts with, by
    its id alone: a result's `resource` names it second, after its name (in every recorded
    Discovery page, the id within an entry's first 110 bytes), before what makes an entry huge
    (its columns_* lists, its description). None when the head does not hold a Socrata id
    there: the entry is then skipped."""
    source_id = value_in_head(head, ("results", 0, "resource", "id"))
    return {"resource": {"id": source_id}} if isinstance(source_id, str) and FOUR_BY_FOUR.match(source_id) else None


def _catalog_shape(data) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return "a Discovery API page has a 'results' list"
    return None


def _views_shape(data) -> str | None:
    return None if isinstance(data, dict) and "id" in data else "a views document is an object with an 'id'"


def default_domain(url: str) -> str:
    """The Discovery API's `domains` for a portal whose config names none: the url's host, with its
    port only where it is not the scheme's own (`https://data.city.example:443` is the domain
    `data.city.example`; `domains=data.city.example:443` names no domain Socrata hosts)."""
    parsed = urlparse(url)
    if parsed.port is not None and parsed.port == {"http": 80, "https": 443}.get(parsed.scheme):
        return parsed.netloc.rpartition(":")[0]
    return parsed.netloc


class SocrataAdapter(PortalAdapter):
    kind = "socrata"
    # 2: contact name, coverage and period from the domain's Common Core metadata (a field saying
    # whether the data is geospatial, or its unit, is no coverage); update frequencies read whole;
    # 3: a link in a description keeps its address ("here (https://…)", catalog.record.html_to_text);
    # 4: license, update frequency and spatial coverage from the domain's own metadata fields in other
    # words ("License-URL", Dutch "Licentie", Catalan "Freqüència d'actualització", "Àmbit geogràfic",
    # Italian "Frequenza"), and Catalan and Italian frequency words ("Diària", "Giornaliera"); 5: the
    # domain's Common Core Issued (another day than the asset's creation), Publisher, Theme and
    # Public-Access-Level where the catalogue has none; frequencies "multiple times per hour",
    # "twice weekly", "every weekday", "to be determined" (catalog.record)
    mapping_version = 5

    without_key = "an app token (Socrata throttles such requests)"

    def __init__(self, portal, http):
        super().__init__(portal, http)
        self.domain = portal.domain or default_domain(portal.url)

    # -- gather ---------------------------------------------------------------------

    def _page(self, params: dict, unread: str | None = None) -> Page:
        response = self.http.get_json(f"{self.portal.url}/api/catalog/v1", params,
                                      conditional=True, expect=_catalog_shape, unread=unread, parse=DISCOVERY_PAGE)
        data = response.data
        if data is None:  # the very body `unread` names: the listing knows what is on it
            return Page(items=None, digest=response.digest)
        total = data.get("resultSetSize")
        return Page(items=data["results"], total=total if isinstance(total, int) else None, digest=response.digest,
                    url=response.url)

    def listing(self) -> Listing:
        base = {"domains": self.domain}
        total = reported_total(self._page, lambda offset: {**base, "offset": offset, "limit": 1})
        if total is not None and total > OFFSET_WINDOW:
            paginator = CursorPaginator("scroll_id", lambda page: self.source_id(page.items[-1]), extra=base,
                                        size_param="limit", size=PAGE_LIMIT)
        else:
            paginator = OffsetPaginator(PAGE_LIMIT, max_window=OFFSET_WINDOW, extra=base, past_a_full_total=True)
        return Listing(self._page, paginator, self.source_id, skips_bodies=True, forget=self.http.forget,
                       entry_in_head=_entry_in_head)

    def source_id(self, entry) -> str | None:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        return R.text(resource.get("id")) if isinstance(resource, dict) else None

    # -- fetch ----------------------------------------------------------------------

    looked_up = ("views", "columns_left_out")   # /api/views' document, and how many columns it left out

    def entry_details(self, entry: dict) -> dict | None:
        return lists_cut(R.obj(entry.get("classification")))   # the entry's lists cut as its page was read

    def details_without_lookup(self, entry: dict, stored: dict | None) -> dict | None:
        """A stored `columns_left_out` is kept only with the views document it counts: one
        counting the catalogue entry's columns (cut as its page was read) is not the lookup's."""
        return super().details_without_lookup(entry, stored if "views" in (stored or {}) else None)

    def fetch_details(self, entry: dict) -> dict | None:
        """Columns from /api/views only for tabular assets the catalogue gave none for; for an
        entry whose column lists were cut as its page was read, how many it left out."""
        resource = R.obj(entry.get("resource"))
        cut = self.entry_details(entry) or {}
        columns_cut = dropped(resource)
        if columns_cut:
            return {**cut, "columns_left_out": columns_cut.get("columns_field_name") or max(columns_cut.values())}
        if resource.get("columns_field_name") or _asset_type(resource) not in TABULAR:
            return cut or None
        if not FOUR_BY_FOUR.match(str(resource.get("id"))):
            return cut or None  # not a Socrata id: never let it shape a request path
        response = self.http.get_json(f"{self.portal.url}/api/views/{resource['id']}.json",
                                      conditional=True, expect=_views_shape,
                                      parse=VIEWS_DOCUMENT)
        left_out = dropped(response.data).get("columns")
        return {**cut, "views": response.data, **({"columns_left_out": left_out} if left_out else {})}

    # -- records --------------------------------------------------------------------

    def record_source(self, dataset, previous) -> "SodaRecords":
        return SodaRecords(self, dataset, previous)

    # -- map ------------------------------------------------------------------------

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        resource = R.obj(entry.get("resource"))
        classification = R.obj(entry.get("classification"))
        metadata = R.obj(entry.get("metadata"))
        domain_metadata = {str(m.get("key", "")).lower(): m.get("value")
                           for m in R.items(classification.get("domain_metadata")) if isinstance(m, dict)}
        source_id = R.text(resource.get("id"))
        asset_type = _asset_type(resource)

        out = R.blank_record()
        out["source_id"] = source_id
        out["identifier"] = f"{self.portal.url}/api/views/{source_id}" if source_id else None
        out["title"] = R.plain_text(resource.get("name"), notes, "title")
        out["description"] = R.plain_text(resource.get("description"), notes, "description")
        out["keywords"] = R.text_lists((classification.get("tags"), classification.get("domain_tags")),
                                       notes, "keywords")
        out["themes"] = R.text_lists((classification.get("categories"), classification.get("domain_category")),
                                     notes, "themes", split=None) or \
            R.text_list(domain_metadata.get("common-core_theme"), notes, "themes", split=None)
        note_lists_cut(notes, details)
        # the domain's Common Core fields (DCAT-US, as the domain's data.json gives them) where the
        # catalogue says nothing of its own
        out["publisher"] = R.text(resource.get("attribution"), notes, "publisher") or \
            R.text(domain_metadata.get("common-core_publisher"), notes, "publisher")
        out["contact_name"] = R.text(_first(domain_metadata, "contact-name"), notes, "contact_name")
        out["contact_email"] = R.email(resource.get("contact_email") or _first(domain_metadata, "email"), notes)
        out["issued"] = _issued(resource.get("createdAt"), domain_metadata.get("common-core_issued"), notes)
        out["modified"] = _latest(notes, resource.get("data_updated_at"), resource.get("metadata_updated_at"),
                                  resource.get("updatedAt"))
        other = _fields_in_other_words(domain_metadata)
        out["accrual_periodicity"] = R.periodicity(_first(domain_metadata, "frequency") or other.get("frequency"), notes)
        out["license"] = _license(metadata, other, notes)
        # the Discovery API lists public assets only; a publisher may say its data are restricted
        out["access_level"] = R.access_level(domain_metadata.get("common-core_public-access-level"), notes) or "public"
        out["landing_page"] = R.url(entry.get("permalink") or entry.get("link"), notes, "landing_page")
        out["spatial"] = R.text(_first(domain_metadata, "geographic-coverage") or _first(domain_metadata, "_spatial")
                                or other.get("spatial"))
        temporal = _first(domain_metadata, "temporal-applicability")   # DCAT-US `temporal`, an ISO 8601 interval
        if temporal:
            out["temporal_start"], out["temporal_end"] = R.temporal(temporal, notes)
        out["asset_type"] = asset_type
        parents = resource.get("parent_fxf")
        parents = [parents] if isinstance(parents, str) else R.items(parents)
        if parents and R.text(parents[0]):
            out["parent_uid"] = f"{self.portal.id}:{R.text(parents[0])}"
        if asset_type in TABULAR and source_id and FOUR_BY_FOUR.match(source_id):
            out["distributions"] = [
                {"title": "CSV", "format": "CSV", "media_type": "text/csv", "access_url": None,
                 "download_url": f"{self.portal.url}/resource/{source_id}.csv"},
                {"title": "JSON", "format": "JSON", "media_type": "application/json", "access_url": None,
                 "download_url": f"{self.portal.url}/resource/{source_id}.json"},
            ]
        if isinstance(resource.get("columns_field_name"), list) and resource["columns_field_name"]:
            out["columns"] = _catalog_columns(resource)
            note_columns_cut(notes, "the catalogue entry", details, len(resource["columns_field_name"]))
            _note_uneven_column_lists(notes, resource)
        elif resource.get("columns_field_name"):
            notes.warn("columns", "columns_field_name is not a list")
        elif details and isinstance(details.get("views"), dict):
            out["columns"], out["row_count"] = _views_columns(details["views"])
            note_columns_cut(notes, "the views document", details, len(details["views"].get("columns") or []))
        return out

    def hash_view(self, entry: dict, details: dict | None, owned: bool = False):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            entry = {**entry, "resource": _without_volatile(resource, owned)}
        views = (details or {}).get("views")
        if isinstance(views, dict):   # (what a cut left out stays in the hash: its count may change)
            details = {**details, "views": _without_volatile(views, owned)}
        return [entry, details]


def _without_volatile(document: dict, owned: bool = False) -> dict:
    # a copy less a handful of keys: cheaper than a comprehension over its ~30 (the hash
    # sorts the keys, so their order does not matter); a document the caller gives up is cut
    # in place (a mapping worker's, once its record is made: the copy was a fifth of the hash)
    kept = document if owned else document.copy()
    for key in VOLATILE_KEYS:
        kept.pop(key, None)
    return kept


def _asset_type(resource: dict) -> str | None:
    kind = R.text(resource.get("type"))
    if kind is None:
        # entries rebuilt from views metadata carry no type; with columns they are tables
        return "dataset" if resource.get("columns_field_name") else None
    kind = kind.lower()
    return ASSET_TYPES.get(kind, kind.replace(" ", "_").replace("-", "_"))


def _first(domain_metadata: dict, word: str):
    for key, value in domain_metadata.items():
        if word in key and value:
            return value
    return None


# a domain's own metadata fields (`<section>_<field>`, lowercased) in other words, read by the field's
# name (a section's name says nothing of its fields': "Frequenza_di_aggiornamento_Data-ultima-modifica")
FIELDS_IN_OTHER_WORDS = {
    "frequency": ("freqüència", "frequenza", "periodicitat", "frecuencia", "periodicidad"),
    "spatial": ("àmbit-geogràfic", "ámbito-geográfico"),
    "license_url": ("license-url", "licence-url"), "license": ("licen", "llicència"),
}
# what a Socrata portal's license says when the license is elsewhere (its terms of use, a domain field)
UNNAMED_LICENSES = ("see terms of use",)
# a domain's entries share their metadata keys: which of an entry's keys name such a field is worked out
# once per set of keys (a loop over every key of every entry cost 7 µs of the 42 µs an entry's mapping
# takes, a regular expression over them 2.5)
_KEYS_READ: dict[tuple, tuple] = {}
_KEYS_READ_MAX = 4096


def _fields_in_other_words(domain_metadata: dict) -> dict:
    """FIELDS_IN_OTHER_WORDS' names → the value of the first field so named that has one."""
    keys = tuple(domain_metadata)
    read = _KEYS_READ.get(keys)
    if read is None:
        read = tuple((key, name) for key in keys for name, words in FIELDS_IN_OTHER_WORDS.items()
                     if any(word in key.rpartition("_")[2] for word in words))
        if len(_KEYS_READ) < _KEYS_READ_MAX:
            _KEYS_READ[keys] = read
    found: dict = {}
    for key, name in read:
        if name not in found and domain_metadata[key]:
            found[name] = domain_metadata[key]
    return found


def _license(metadata: dict, other: dict, notes: Notes) -> str | None:
    """A license address the domain's metadata gives ("License/Attribution_License-URL": Calgary's),
    else the catalogue's license name, unless it only points elsewhere ("See Terms of Use"), else a
    license the domain's metadata names ("Licentie_Licentie": RDW's "Creative Commons 0 (CC0)")."""
    address = R.url(other.get("license_url"))
    if address:
        return address
    named = R.text(metadata.get("license"), notes, "license")
    if named and named.lower() not in UNNAMED_LICENSES:
        return named
    return R.text(other.get("license")) or named


def _issued(created, common_core, notes: Notes) -> str | None:
    """When the asset was created on the portal, unless the domain's Common Core `Issued` (the
    dataset's DCAT-US `issued`, its formal issue, "2020-05-01") names another day: an asset made
    before it was issued (a draft) or after (a dataset moved to the portal) was not issued then.
    The same day keeps the creation's time."""
    stamp = R.timestamp(created, notes, "issued")
    if not common_core:
        return stamp
    stated = R.timestamp(common_core, notes, "issued")
    if stated is None or (stamp or "")[:10] == stated[:10]:
        return stamp or stated
    return stated


def _latest(notes: Notes, *values) -> str | None:
    latest, parsed = None, {}
    for value in values:
        # the same text twice (updatedAt is mostly data_updated_at) is parsed once; only a
        # valid one is reused, so an invalid one is noted each time, as before
        stamp = parsed.get(value) if type(value) is str else None
        if stamp is None:
            stamp = R.timestamp(value, notes, "modified")
            if stamp and type(value) is str:
                parsed[value] = stamp
        if stamp and (latest is None or stamp > latest):
            latest = stamp
    return latest


def _clean(value) -> str | None:
    return (value.strip() or None) if type(value) is str else R.text(value)


def _note_uneven_column_lists(notes: Notes, resource: dict) -> None:
    """The `columns_*` lists of a Discovery entry are parallel; one of another length (a portal's
    fault) cannot say which column its values belong to. The columns are the field names' (what
    a records pull asks for), each given the other lists' values in order, none past a list's
    end (padding loses nothing a shorter list holds; cutting to the shortest dropped columns):
    a warning says so, naming the lists."""
    count = len(resource["columns_field_name"])
    uneven = [f"{key} {len(resource[key]):,}" for key in ("columns_name", "columns_datatype", "columns_description")
              if isinstance(resource.get(key), list) and len(resource[key]) != count]   # (the lists columns are made of)
    if uneven:
        notes.warn("columns", f"the catalogue entry's column lists differ in length (columns_field_name "
                   f"{count:,}, {', '.join(uneven)}): its {count:,} columns are given the other lists' "
                   "values in order, none past a list's end")


def _padded(values, length: int) -> list:
    values = values if isinstance(values, list) else []
    return values + [None] * (length - len(values)) if len(values) < length else values


# a Discovery datatype as given -> (source_type, shared type): a portal uses a dozen or so,
# so each is cleaned and looked up once per process, not once per column
_DATATYPES: dict[str, tuple[str | None, str]] = {}
_DATATYPES_MAX = 4096


def _datatype(value) -> tuple[str | None, str]:
    source_type = _clean(value)
    typed = (source_type, R.column_type(source_type, COLUMN_TYPES))
    if type(value) is str and len(_DATATYPES) < _DATATYPES_MAX:
        _DATATYPES[value] = typed
    return typed


def _catalog_columns(resource: dict) -> list[dict]:
    """Columns from the Discovery entry's parallel `columns_*` lists (hot: ~12 per dataset,
    so `_clean` is written out for the strings almost every value is)."""
    fields = resource.get("columns_field_name") or []
    count = len(fields)
    columns: list[dict] = []
    known_types = _DATATYPES
    for field_name, name, datatype, description in zip(
            fields, _padded(resource.get("columns_name"), count), _padded(resource.get("columns_datatype"), count),
            _padded(resource.get("columns_description"), count)):
        field_name = (field_name.strip() or None) if type(field_name) is str else R.text(field_name)
        if field_name and field_name[0] == ":":
            continue  # system columns (:id, :updated_at, :@computed_region_...)
        typed = known_types.get(datatype) if type(datatype) is str else None
        if typed is None:
            typed = _datatype(datatype)
        description = (description.strip() or None) if type(description) is str else R.text(description)
        if description and ("<" in description or "&" in description):
            description = R.html_to_text(description) or None
        columns.append({
            "position": len(columns), "name": (name.strip() or None) if type(name) is str else R.text(name),
            "field_name": field_name, "type": typed[1], "source_type": typed[0], "description": description,
        })
    return columns


def _views_columns(views: dict) -> tuple[list[dict], int | None]:
    columns, row_count = [], None
    raw_columns = [c for c in views.get("columns") or [] if isinstance(c, dict)]
    raw_columns.sort(key=lambda c: c.get("position") if isinstance(c.get("position"), int) else 1 << 30)
    for column in raw_columns:
        field_name = R.text(column.get("fieldName"))
        if field_name and field_name.startswith(":"):
            continue
        source_type = R.text(column.get("dataTypeName"))
        columns.append({
            "position": len(columns), "name": R.text(column.get("name")), "field_name": field_name,
            "type": R.column_type(source_type, COLUMN_TYPES), "source_type": source_type,
            "description": R.plain_text(column.get("description")),
        })
        cached = column.get("cachedContents")
        if row_count is None and isinstance(cached, dict):
            # (numbers in 2015's documents, text in today's: {"non_null": "59", "null": "0"})
            counts = [R.integer(cached.get("non_null")), R.integer(cached.get("null"))]
            if all(isinstance(c, int) for c in counts):
                row_count = sum(counts)
    return columns, row_count


class SodaRecords(RecordSource):
    """A dataset's rows through SODA: `{url}/resource/{id}.csv` (parsed by Arrow; `.json`
    with `format="json"`) in pages of 50,000 in `:id` order, with `:id` and `:updated_at`.
    With a previous pull, only rows updated since its latest `:updated_at` are read and
    merged by `:id` (rows deleted at the source stay until a full pull). The row count
    is asked first: a pull that gives fewer rows is an error, never a short dataset."""

    def __init__(self, adapter: SocrataAdapter, dataset, previous, *, format: str = "csv", page: int = RECORD_PAGE):
        if not FOUR_BY_FOUR.match(dataset.source_id):
            raise NotPullable(f"{dataset.source_id!r} is not a Socrata id")
        if dataset.asset_type not in TABULAR:
            raise NotPullable(f"{dataset.uid} is a {dataset.asset_type}, not a table")
        columns = [c for c in dataset.columns if c.get("field_name")]
        if not columns:
            raise NotPullable(f"{dataset.uid} has no columns in the catalogue")
        refuse_cut_columns(dataset)
        self.http, self.format, self.page = adapter.http, format, page
        self.url = f"{adapter.portal.url}/resource/{dataset.source_id}"
        self.fields = unique_fields(SYSTEM_FIELDS + [Field(c["field_name"], _record_kind(c)) for c in columns])
        self.conversion = Conversion(self.fields)
        self.url_keys = [f.key for f in self.fields if f.kind == "url"]
        self.point_keys = [f.key for f in self.fields if f.kind == "point"]   # point and legacy location columns
        self.geometry_keys = [f.key for f in self.fields if f.kind == "geometry"]   # lines, polygons, multi-*
        self.header = SameColumns()   # of the CSV pages (JSON rows leave out their null values)
        self.pages_read: list[tuple] = []
        self.where = None
        if previous is not None and previous.watermark:
            self.mode, self.where = "incremental", f":updated_at > '{previous.watermark}'"
        self.expected_rows = self._count()

    def _count(self) -> int:
        counted = self.http.get_json(f"{self.url}.json", {"$select": "count(*) AS n", "$where": self.where},
                                     expect=_count_shape).data
        return int(counted[0]["n"])

    @property
    def fingerprint(self) -> str:
        return f"{super().fingerprint}|{self.format}|{self.where}"

    def _fetch(self, params: dict) -> Page:
        page = self._read(params)
        self.pages_read.append((params.get("$offset"), params.get("$limit"), page.items.num_rows))
        return page

    def _read(self, params: dict) -> Page:
        if self.format == "json":
            rows = self.http.get_json(f"{self.url}.json", params, expect=_rows_shape).data
            return Page(items=self.conversion.table_from_rows(rows))
        table = self.http.get_data(f"{self.url}.csv", lambda body: csv_page(body, self.fields), params)
        if table.num_rows == 0:
            return Page(items=self.conversion.schema.empty_table())
        self.header.check(table.column_names, params)
        columns = {name: table[name] for name in table.column_names}
        for keys, as_json_stores in ((self.url_keys, url_cells_of_csv), (self.point_keys, point_cells_of_csv),
                                      (self.geometry_keys, geometry_cells_of_csv)):
            for key in keys:   # (stored as the JSON's cells are)
                if key in columns:
                    columns[key] = as_json_stores(columns[key])
        return Page(items=self.conversion.table(columns, table.num_rows))

    def _read_in_one_answer(self) -> bool:
        """Whether this read was one page from the first row, short of its limit, with the rows
        counted when it began: one answer holds every row at once, none of them can move
        between pages, and the count needs no asking again (an empty incremental pull: 2
        requests, not 3)."""
        if len(self.pages_read) != 1:
            return False
        offset, limit, rows = self.pages_read[0]
        return offset == 0 and rows < limit and rows == self.expected_rows

    def batches(self, resume):
        self.pages_read = []   # (offset, limit, rows) of each page this read asked
        paginator = OffsetPaginator(self.page, offset_param="$offset", limit_param="$limit", total=self.expected_rows,
                                    extra={"$select": ":id,:updated_at,*", "$order": ":id", "$where": self.where})
        # CSV: two pages in flight, the server working on the next while this one is parsed and
        # written; JSON pages, as Python objects, are ten times larger in memory: one
        return paged_tables(self._fetch, paginator, resume, ahead=2 if self.format == "csv" else 1,
                            columns=len(self.fields))

    def check_unchanged(self, staged_glob: str) -> None:
        """Pages are offsets into the rows in `:id` order, and an `:id` (`row-ab3x.k9q2_mz7e`)
        says nothing of when its row was added: a row added before the page being read moves
        the rows after it on, one is read twice (its `:id` staged twice, the row added never
        read); a row removed moves them back, one is never read (the count falls, the row
        removed staged); a row added to the last page after it was read is not read. Rows
        added past the page being read move nothing: a count that grew to the rows read, each
        `:id` once, is the dataset as it now is. (A row added and one removed before the page
        being read, between the same two pages, leave the count and the ids as they were:
        the removed row is published and a row is not read, until the next full pull.)
        Rows only added (`only_added`): the count did not fall and as many distinct rows were
        read as it counted when the read began. (With two pages in flight, a page served before
        a row is added and one before it served after leave a row of the first count unread.)"""
        staged = read_parquet_sql(staged_glob)
        # distinct 64-bit hashes (over 5M rows 0.6 s of CPU, the ids' text 1.1 s; +80 MB of RSS at most in
        # 64 MB, +120 in 128); the ids read twice, if any, are then asked by their text, which also clears a
        # hash two ids share (about 1 in 10^6 such pulls)
        with scratch_duckdb(ID_CHECK_MEMORY) as duck:
            # (rows of nulls, records that were no object, have no :id: hash(NULL) is a value)
            with_id = f'{staged} WHERE ":id" IS NOT NULL'
            read, distinct = duck.execute(f'SELECT count(*), count(DISTINCT hash(":id")) FROM {with_id}').fetchone()
            twice = [] if read == distinct else [row[0] for row in duck.execute(
                f'SELECT ":id" FROM {with_id} GROUP BY ALL HAVING count(*) > 1 ORDER BY 1').fetchall()]
        if not twice and self._read_in_one_answer():
            return
        started, now = self.expected_rows, self._count()
        self.expected_rows = now   # what the pull, read again, must give
        if twice:
            raise SourceChanged(f"{len(twice)} row{'s' if len(twice) > 1 else ''} read twice (:id "
                                f"{', '.join(map(repr, twice[:3]))}{', ...' if len(twice) > 3 else ''}): rows moved "
                                f"between the pages as they were read (the count went from {started} to {now})",
                                only_added=now >= started and distinct >= started, key=":id", repeated=twice)
        # (`read` leaves out rows of nulls, records that were no object: they have no :id)
        if now < started or read > now:
            raise SourceChanged(f"the row count went from {started} to {now} while it was read, {read} rows read: "
                                "a row removed before the page being read moves an unread row back past it")
        if started < now and read < now:   # (a count that did not change is a short read: pull_dataset says so)
            raise SourceChanged(f"the row count went from {started} to {now} while it was read, {read} rows read: "
                                "rows were added to pages read already", only_added=read >= started)

    past_stamps = (":updated_at",)
    watermark_column = ":updated_at"

    def server_clock(self) -> timedelta | None:
        return self.http.server_clock(self.url)   # (its rows are stamped by the server's clock)

    def watermark_text(self, latest: datetime) -> str:
        return latest.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]   # (as `$where` compares it: a floating timestamp)

    # (a record that was no object is a row of nulls, its :id null: kept unless the delta holds
    # it again, as Open311 keeps a request without an id, not added again by every delta)
    merge_key = ":id"


# Socrata's fixed timestamps, sent as UTC ('…Z'): `fixed_timestamp`, and the views API's older name
# for it, `date` (Discovery's "Date"; `calendar_date` is the floating one)
FIXED_TIMESTAMPS = ("fixed_timestamp", "date")


def _record_kind(column: dict) -> str:
    """The shared type of a column, with Socrata's fixed timestamps kept as instants."""
    source = (column.get("source_type") or "").lower().replace(" ", "_")
    return "datetime_utc" if source in FIXED_TIMESTAMPS else column.get("type") or "other"


def _count_shape(data) -> str | None:
    ok = isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) and str(data[0].get("n", "")).isdigit()
    return None if ok else "a SODA count is [{\"n\": \"<digits>\"}]"


def _rows_shape(data) -> str | None:
    return None if isinstance(data, list) else "a SODA page is a JSON array of rows"
