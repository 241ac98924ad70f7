"""CKAN (data.boston.gov and most European portals) through the action API.

Endpoints: `{url}/api/3/action/package_search?rows=1000&start=…&sort=id asc` — sorted by
a stable key, because the default order (relevance, then modification time) moves a
dataset edited during the crawl and makes offset pages miss or double it; ids seen twice
are dropped by the paging toolkit. Columns from the DataStore
(`datastore_search?resource_id=…&limit=0`) for the first resource with
`datastore_active`. `url` may carry a path prefix (`https://host/ckan`).
An answer with `"success": false` is an error, whatever its HTTP status.
"""
from __future__ import annotations

import re

import orjson

from catalog import record as R
from catalog.record import Notes
from harvester.http import PortalError, UnexpectedResult, capped_json, dropped
from harvester.paging import Listing, OffsetPaginator, Page
from harvester.portals.base import (MAX_ITEMS, PortalAdapter, lists_cut, note_columns_cut, note_lists_cut,
                                    refuse_cut_columns)
from harvester.records import (MAX_COLUMNS, Conversion, DownloadedFile, Field, NotPullable, RecordsAnswerUnexpected,
                               RecordSource, SameColumns, count_changed, csv_distribution, paged_tables, unique_fields)

ROWS = 1000  # CKAN's default ckan.search.rows_max
# a package over the response cap alone is listed by these fields only (package_search's `fl`, the
# Solr fields it answers): its id and name, and its modification time, so that its answer changes,
# and it is asked whole again, once the package changed
IDS_ONLY = {"fl": "id,name,metadata_modified"}
RECORD_ROWS = 32_000  # CKAN's default ckan.datastore.search.rows_max
DATASTORE_FIELDS = capped_json({"result": {"fields": MAX_COLUMNS}})   # cut as the answer is read
# each package's lists cut as a package_search page is read
SEARCH_PAGE = capped_json({"result": {"results": {"*": dict.fromkeys(("resources", "tags", "groups"), MAX_ITEMS)}}})

# DataStore (PostgreSQL) field types → the shared vocabulary
COLUMN_TYPES = {
    "text": "text", "varchar": "text", "char": "text", "name": "text", "citext": "text",
    "int": "integer", "int2": "integer", "int4": "integer", "int8": "integer", "integer": "integer",
    "bigint": "integer", "smallint": "integer", "serial": "integer", "numeric": "number",
    "float": "number", "float4": "number", "float8": "number", "double_precision": "number",
    "real": "number", "money": "number", "bool": "boolean", "boolean": "boolean", "date": "date",
    "timestamp": "datetime", "timestamptz": "datetime", "timestamp_without_time_zone": "datetime",
    "timestamp_with_time_zone": "datetime", "time": "other", "interval": "other", "json": "other",
    "jsonb": "other", "geometry": "geometry", "geography": "geometry", "point": "point",
}
# DCAT extras (ckanext-dcat and data.json harvests) → record fields
EXTRA_KEYS = {
    "spatial": ("spatial", "spatial_text", "geographic_coverage", "spatialRelationship"),   # (the last: Stadt Zürich's)
    "frequency": ("frequency", "accrual_periodicity", "accrualPeriodicity", "update_frequency"),
    "temporal": ("temporal",),
    "temporal_start": ("temporal_start", "temporal_coverage_from", "temporal-extent-begin"),
    "temporal_end": ("temporal_end", "temporal_coverage_to", "temporal-extent-end"),
    "identifier": ("identifier", "dcat_identifier", "guid"),
    # (Stadt Zürich's own, "22.09.2004": its DCAT export gives them as dct:issued/dct:modified)
    "issued": ("issued", "dateFirstPublished"),
    "modified": ("modified", "dateLastUpdated"),
}
_MARKDOWN = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),             # images → alt text
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)"), r"\1 (\2)"),  # links → text (url)
    (re.compile(r"^\s{0,3}#{1,6}\s*", re.M), ""),                # headings
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),                    # bold
    (re.compile(r"(?<![\w*])[*_](?!\s)(.+?)(?<!\s)[*_](?![\w*])"), r"\1"),  # italics
    (re.compile(r"^\s*[*+-]\s+", re.M), "- "),                   # bullets
    (re.compile(r"`([^`]*)`"), r"\1"),                           # code
]


def markdown_to_text(value: str | None) -> str | None:
    """CKAN notes are Markdown, sometimes with HTML: plain text for search and export."""
    if not value:
        return value
    text = R.html_to_text(value) if ("<" in value or "&" in value) else value.replace("\r\n", "\n")
    for pattern, replacement in _MARKDOWN:
        text = pattern.sub(replacement, text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() or None


def _envelope(data) -> str | None:
    if not isinstance(data, dict) or "success" not in data:
        return "a CKAN action answer is an object with 'success'"
    return None  # success: false is reported by _result, with the portal's own message


def _result(data: dict, url: str):
    if data.get("success") is not True:
        error = data.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else error
        kind = error.get("__type") if isinstance(error, dict) else None
        raise PortalError(f"CKAN error{f' ({kind})' if kind else ''}: {message or error}", url)
    return data.get("result")


class CkanAdapter(PortalAdapter):
    kind = "ckan"
    # 2: `updateInterval` (Stadt Zurich, in German) → accrual_periodicity; 3: the dataset's own DCAT
    # issued/modified and `temporals` (opendata.swiss), Stadt Zürich's `spatialRelationship`; update
    # frequencies read whole (catalog.record); 4: EnviDat's `date` (its collection period) → temporal,
    # its DOI → identifier, opendata.swiss's `contact_points` → contact; a link in HTML notes keeps its
    # address; English by any of its language keys ("en-GB", "EN"); 5: EnviDat's year of publication
    # → issued where the record was created in another year; 6: Stadt Zürich's dateFirstPublished,
    # dateLastUpdated (day first: "22.09.2004") → issued, modified, its timeRange → temporal; the update
    # frequencies read since (session 34's French, Catalan and Italian; session 35's "twice weekly");
    # 7: a `modified` extra that is a repeating interval ("R/P1W", a package harvested from data.json)
    # → the record's metadata_modified, and the frequency where none
    mapping_version = 7

    def _action(self, action: str, params: dict, *, conditional: bool = True, parse=None):
        url = f"{self.portal.url}/api/3/action/{action}"
        return _result(self.http.get_json(url, params, conditional=conditional, expect=_envelope, parse=parse).data,
                       url)

    def _search_page(self, params: dict, unread: str | None = None) -> Page:
        url = f"{self.portal.url}/api/3/action/package_search"
        response = self.http.get_json(url, params, conditional=True, expect=_envelope, unread=unread, parse=SEARCH_PAGE)
        if response.data is None:  # the very body `unread` names: the listing knows what is on it
            return Page(items=None, digest=response.digest)
        result = _result(response.data, url)
        if not isinstance(result, dict) or not isinstance(result.get("results"), list):
            raise UnexpectedResult("package_search gave no 'results' list", url)
        count = result.get("count")
        return Page(items=result["results"], total=count if isinstance(count, int) else None, digest=response.digest,
                    url=response.url)

    def listing(self) -> Listing:
        paginator = OffsetPaginator(ROWS, offset_param="start", limit_param="rows", extra={"sort": "id asc"},
                                    ids_only=IDS_ONLY, past_a_full_total=True)
        return Listing(self._search_page, paginator, self.source_id, skips_bodies=True, cap=self.http.max_bytes,
                       forget=self.http.forget)

    def source_id(self, entry) -> str | None:
        return R.text(entry.get("id")) if isinstance(entry, dict) else None

    looked_up = ("datastore", "columns_left_out")   # all the DataStore's

    def entry_details(self, entry: dict) -> dict | None:
        return lists_cut(entry)   # the entry's lists cut as its page was read

    def details_without_lookup(self, entry: dict, stored: dict | None) -> dict | None:
        """The stored DataStore fields are kept only while the entry names that resource
        first: another resource's fields are not this dataset's."""
        resource = _datastore_resource(entry)
        same_resource = resource is not None and R.obj((stored or {}).get("datastore")).get("resource_id") == \
            resource["id"]
        return super().details_without_lookup(entry, stored if same_resource else None)

    def fetch_details(self, entry: dict) -> dict | None:
        cut = self.entry_details(entry)
        resource = _datastore_resource(entry)
        if resource is None:
            return cut
        result = self._action("datastore_search", {"resource_id": resource["id"], "limit": 0}, parse=DATASTORE_FIELDS)
        left_out = dropped(result).get("fields")
        return {**(cut or {}), "datastore": {"resource_id": resource["id"], "fields": R.items(R.obj(result).get("fields"))},
                **({"columns_left_out": left_out} if left_out else {})}

    def record_source(self, dataset, previous) -> RecordSource:
        """The DataStore of the first resource that has one, paged by `datastore_search`;
        else the first CSV resource, downloaded whole."""
        resource = _datastore_resource(dataset.raw)
        if resource is not None:
            refuse_cut_columns(dataset)
            return DatastoreRecords(self, str(resource["id"]))
        url = csv_distribution(dataset)
        if url is None:
            raise NotPullable(f"{dataset.uid} has no DataStore resource and no CSV resource")
        return DownloadedFile(self.http, url)

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        extras = _extras(entry)
        out = R.blank_record()
        out["source_id"] = R.text(entry.get("id"))
        name = R.text(entry.get("name"))
        out["identifier"] = R.text(extras.get("identifier") or entry.get("identifier")) or _doi(entry.get("doi")) or \
            (f"{self.portal.url}/dataset/{name}" if name else None)
        out["title"] = R.plain_text(entry.get("title"), notes, "title")
        if out["title"] is None and name:   # (CKAN's form leaves a title out; its URL name is required)
            out["title"] = name
            notes.warn("title", f"the package has no title; its name {name[:80]!r} is stored as its title")
        out["description"] = markdown_to_text(R.text(entry.get("notes") or entry.get("description"), notes, "description"))
        if isinstance(entry.get("keywords"), dict):  # multilingual portals: one language, not all mixed
            out["keywords"] = _keywords(entry["keywords"])
        else:
            out["keywords"] = R.text_list([t.get("display_name") or t.get("name") for t in R.items(entry.get("tags"))
                                           if isinstance(t, dict)])
        out["themes"] = R.text_list([R.text(g.get("title") or g.get("display_name")) or g.get("name")
                                     for g in R.items(entry.get("groups")) if isinstance(g, dict)], split=None)
        organization = R.obj(entry.get("organization"))
        out["publisher"] = R.text(organization.get("title")) or \
            _publisher(entry.get("publisher"))
        out["contact_name"], out["contact_email"] = _contact(entry, notes)
        # the dataset's own DCAT dates (ckanext-dcat, opendata.swiss), else CKAN's record's
        out["issued"] = _issued(entry, extras, notes)
        # (a `modified` extra of "R/P1W", as a package harvested from a DCAT-US document keeps it, names no
        # day: the record's own metadata_modified, and the frequency where the package gives none)
        out["modified"], out["accrual_periodicity"] = R.modified_and_frequency(
            extras.get("modified") or entry.get("metadata_modified"),
            extras.get("frequency") or entry.get("accrual_periodicity") or _first(entry.get("updateInterval")), notes,
            instead=entry.get("metadata_modified"), instead_named="the CKAN record's metadata_modified")
        out["license"] = R.url(entry.get("license_url")) or R.text(entry.get("license_title")) or \
            R.text(entry.get("license_id"))
        out["access_level"] = "non-public" if entry.get("private") is True else "public"
        out["landing_page"] = f"{self.portal.url}/dataset/{name}" if name else R.url(entry.get("url"))
        out["spatial"] = R.text(extras.get("spatial") if not isinstance(extras.get("spatial"), (dict, list))
                                else orjson.dumps(extras["spatial"]).decode())
        periods = [p for p in R.items(entry.get("temporals")) if isinstance(p, dict)]   # opendata.swiss
        collected = _collected(entry.get("date"))   # EnviDat
        if extras.get("temporal"):
            out["temporal_start"], out["temporal_end"] = R.temporal(extras["temporal"], notes)
        elif periods:
            out["temporal_start"] = R.timestamp(periods[0].get("start_date"), notes, "temporal_start")
            out["temporal_end"] = R.timestamp(periods[0].get("end_date"), notes, "temporal_end")
        elif collected:
            out["temporal_start"], out["temporal_end"] = _period(collected, notes)
        elif R.text(entry.get("timeRange")):   # Stadt Zürich
            out["temporal_start"], out["temporal_end"] = _time_range(R.text(entry["timeRange"]), notes)
        else:
            out["temporal_start"] = R.timestamp(extras.get("temporal_start"), notes, "temporal_start")
            out["temporal_end"] = R.timestamp(extras.get("temporal_end"), notes, "temporal_end")
        kind = R.text(entry.get("type")) or "dataset"
        out["asset_type"] = re.sub(r"[^a-z0-9_]", "_", kind.lower())
        out["distributions"] = [_distribution(r, notes) for r in R.items(entry.get("resources")) if isinstance(r, dict)]
        note_lists_cut(notes, details)
        if details and isinstance(details.get("datastore"), dict):
            out["columns"] = _datastore_columns(R.items(details["datastore"].get("fields")))
            note_columns_cut(notes, "the DataStore", details, len(R.items(details["datastore"].get("fields"))))
        return out


def _issued(entry: dict, extras: dict, notes: Notes) -> str | None:
    """The dataset's own DCAT issued; else when CKAN's record was created, unless the publisher
    names another year of publication (EnviDat's `publication`, a JSON object in a string:
    {"publication_year": "2023", "publisher": "EnviDat"}, the year of its DOI): a record created in
    another year (a catalogue migrated, a draft published a year later) was not issued then, and
    that year is stored, as its first instant. A record created in that year keeps its day."""
    if extras.get("issued"):
        return R.timestamp(extras["issued"], notes, "issued")
    created = R.timestamp(entry.get("metadata_created"), notes, "issued")
    publication = _maybe_json(entry.get("publication"))
    year = R.text(publication.get("publication_year")) if isinstance(publication, dict) else None
    if year is None or (created or "").startswith(f"{year}-"):
        return created
    if not re.fullmatch(r"\d{4}", year):
        notes.warn("issued", f"not a year of publication: {year[:80]!r}")
        return created
    return R.timestamp(year, notes, "issued")   # ("2023": 2023-01-01T00:00:00Z)


# Stadt Zürich's timeRange for a series kept up to date: no period
ONGOING = ("laufende nachführung", "laufende nachfuehrung")
_YEARS = re.compile(r"^(\d{4})(?:\s*-\s*(\d{4}))?$")


def _time_range(value: str, notes: Notes) -> tuple[str | None, str | None]:
    """Stadt Zürich's timeRange, as its own DCAT export reads it: years "2010-2020" from the first's
    start to the last's end (a year alone, its own); a date ("14.12.2025": the data's state that day) its own start and end;
    "Laufende Nachführung" (kept up to date) no period, and no warning."""
    years = _YEARS.match(value)
    if years:
        return R.timestamp(years[1], notes, "temporal_start"), R.timestamp(f"{years[2] or years[1]}-12-31", notes, "temporal_end")
    if value.lower() in ONGOING:
        return None, None
    moment = R.timestamp(value, notes, "temporal")
    return moment, moment


def _datastore_resource(entry: dict) -> dict | None:
    """The first resource whose DataStore is active (the one whose fields are the columns)."""
    return next((r for r in R.items(entry.get("resources"))
                 if isinstance(r, dict) and r.get("datastore_active") is True and r.get("id")), None)


def _extras(entry: dict) -> dict:
    """CKAN extras [{key, value}] (and top-level DCAT keys) → our names."""
    raw = {}
    for extra in R.items(entry.get("extras")):
        if isinstance(extra, dict) and extra.get("key"):
            raw[str(extra["key"])] = extra.get("value")
    found = {}
    for name, keys in EXTRA_KEYS.items():
        for key in keys:
            value = raw.get(key, entry.get(key) if key not in ("identifier",) else None)
            if value not in (None, "", [], {}):
                found[name] = value
                break
    return found


def _keywords(value) -> list[str]:
    """opendata.swiss style: {"en": [...], "de": [...]} → English (by any of its keys: "en-GB"),
    else the first language."""
    if isinstance(value, dict):
        for language in ["en", *(key for key in value if R.is_english(key)), *value]:
            if value.get(language):
                return R.text_list(value[language])
        return []
    return R.text_list(value)


_DOI = re.compile(r"^10\.\d{4,9}/\S+$")


def _doi(value) -> str | None:
    """EnviDat's `doi` ("10.16904/envidat.412"; empty while unpublished) as its resolver URL, the
    dataset's persistent identifier; None for anything that is no DOI."""
    value = R.text(value)
    if not value:
        return None
    value = re.sub(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", "", value, flags=re.IGNORECASE)
    return f"https://doi.org/{value}" if _DOI.match(value) else None


def _collected(value) -> list[dict]:
    """EnviDat's `date` (a JSON list, in a string: [{"date", "date_type", "end_date"}]): the
    entries of type "collected", when the data were collected, the period its data cover.
    ("created", when the dataset was made, is no coverage and is not read.)"""
    value = _maybe_json(value)
    return [d for d in R.items(value) if isinstance(d, dict) and R.text(d.get("date_type")) == "collected"
            and R.text(d.get("date"))]


def _period(collected: list[dict], notes: Notes) -> tuple[str | None, str | None]:
    """The span of the collection periods: the first start, the last end (a date given alone is
    its own end, as a single DCAT temporal is)."""
    starts = [R.timestamp(d.get("date"), notes, "temporal_start") for d in collected]
    ends = [R.timestamp(d.get("end_date"), notes, "temporal_end") if R.text(d.get("end_date")) else start
            for d, start in zip(collected, starts)]
    starts, ends = [s for s in starts if s], [e for e in ends if e]
    return (min(starts) if starts else None, max(ends) if ends else None)


def _first(value):
    """A value given as a list (Stadt Zurich's `updateInterval`: ["jaehrlich"]) by its first
    element that holds text; any other value as it is."""
    if isinstance(value, list):
        return next((v for v in value if isinstance(v, str) and v.strip()), None)
    return value


def _publisher(value) -> str | None:
    if isinstance(value, dict):
        return R.text(value.get("name")) or R.text(value.get("title"))
    return R.text(_maybe_json(value))


def _maybe_json(value):
    """Some portals put JSON objects inside string fields (multilingual names, authors)."""
    if isinstance(value, str) and value[:1] in "{[" and value[-1:] in "}]":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _person(value) -> tuple[str | None, str | None]:
    value = _maybe_json(value)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        if "email" in value or "given_name" in value or "name" in value:
            name = " ".join(p for p in (R.text(value.get("given_name")), R.text(value.get("name"))) if p) or None
            return name, R.text(value.get("email"))
        return R.text(value), None  # multilingual
    value = R.text(value)
    if value and "@" in value and " " not in value:
        return None, value  # a maintainer given as an address only
    return value, None


def _contact(entry: dict, notes: Notes) -> tuple[str | None, str | None]:
    """The DCAT contact point (opendata.swiss's `contact_points`: [{"name", "email"}]), else the
    maintainer, else the author. A contact point named by its address alone has no name of its own."""
    name, email = None, None
    point = next((p for p in R.items(entry.get("contact_points")) if isinstance(p, dict)), {})
    point_name, point_email = _person(point.get("name"))
    name, email = point_name, R.email(point.get("email")) or R.email(point_email)
    for person_key, email_key in (("maintainer", "maintainer_email"), ("author", "author_email")):
        person_name, person_email = _person(entry.get(person_key))
        name = name or person_name
        email = email or R.email(entry.get(email_key)) or R.email(person_email)
    if email is None and (point.get("email") or entry.get("maintainer_email") or entry.get("author_email")):
        R.email(point.get("email") or entry.get("maintainer_email") or entry.get("author_email"), notes)  # the warning
    return name, email


def _distribution(resource: dict, notes: Notes) -> dict:
    media_type = R.text(resource.get("mimetype") or resource.get("media_type"))
    fmt = R.text(resource.get("format"))
    return {
        "title": R.text(resource.get("name") or resource.get("title"), notes, "distributions.title"),
        "format": fmt.upper() if fmt and len(fmt) <= 12 else fmt,
        "media_type": media_type.lower() if media_type else None,
        "download_url": R.url(resource.get("download_url") or resource.get("url"), notes, "distributions.download_url"),
        "access_url": None,
    }


def _datastore_columns(fields: list) -> list[dict]:
    columns = []
    for field in fields:
        if not isinstance(field, dict):
            continue
        field_name = R.text(field.get("id"))
        if not field_name or field_name == "_id" or field_name.startswith("_full_text"):
            continue  # DataStore's own row id and search index
        info = field.get("info") if isinstance(field.get("info"), dict) else {}
        source_type = R.text(field.get("type"))
        columns.append({
            "position": len(columns), "name": R.text(info.get("label")) or field_name, "field_name": field_name,
            "type": R.column_type(source_type, COLUMN_TYPES), "source_type": source_type,
            "description": R.plain_text(info.get("notes")),
        })
    return columns


def _field_ids(result: dict) -> list[str]:
    return [str(f.get("id")) for f in R.items(result.get("fields")) if isinstance(f, dict)]


class DatastoreRecords(RecordSource):
    """A DataStore table through `datastore_search`: pages of 32,000 sorted by `_id`, typed
    from the DataStore's field types; the total is asked first and must be reached."""

    def __init__(self, adapter: CkanAdapter, resource_id: str):
        self.adapter, self.resource_id = adapter, resource_id
        first = R.obj(adapter._action("datastore_search", {"resource_id": resource_id, "limit": 0},
                                      conditional=False))
        fields = [f for f in R.items(first.get("fields")) if isinstance(f, dict) and R.text(f.get("id"))]
        self.fields = unique_fields([Field(f["id"], R.column_type(R.text(f.get("type")), COLUMN_TYPES)) for f in fields
                                     if not str(f["id"]).startswith("_full_text")])
        if not self.fields:
            raise RecordsAnswerUnexpected(f"the DataStore of resource {resource_id} lists no fields")
        self.conversion = Conversion(self.fields)
        self.field_ids = SameColumns(_field_ids(first))
        total = first.get("total")
        self.expected_rows = total if isinstance(total, int) else None

    @property
    def fingerprint(self) -> str:
        return f"{super().fingerprint}|{self.resource_id}"

    def _page(self, params: dict) -> Page:
        result = R.obj(self.adapter._action("datastore_search", params, conditional=False))
        records = result.get("records")
        if not isinstance(records, list):
            raise RecordsAnswerUnexpected(f"datastore_search of {self.resource_id} gave no records list")
        if "fields" in result:
            self.field_ids.check(_field_ids(result), params)
        total = result.get("total")
        # rows added take the next `_id`s, after every row (read on to them); a row removed moves
        # the rows after it back, and one past the page being read is never read
        if isinstance(total, int) and self.expected_rows is not None and total < self.expected_rows:
            counted, self.expected_rows = self.expected_rows, total
            raise count_changed(params, total, counted)
        return Page(items=self.conversion.table_from_rows(records))

    def batches(self, resume):
        paginator = OffsetPaginator(RECORD_ROWS, extra={"resource_id": self.resource_id, "sort": "_id asc"})
        return paged_tables(self._page, paginator, resume, key="_id", columns=len(self.fields))
