"""OpenDataSoft portals through the Explore API v2.1.

Endpoints: `{url}/api/explore/v2.1/catalog/datasets?limit=100&offset=…&order_by=dataset_id`
(limit ≤ 100, offset+limit ≤ 10,000); a catalogue counted at that window or more is read whole
from the catalog export `{url}/api/explore/v2.1/catalog/exports/json` instead, never
mixed with offset pages. `metas.default` holds the DCAT-like metadata, `fields` the
columns; distributions are the dataset's own export endpoints.
"""
from __future__ import annotations

from urllib.parse import quote

from catalog import record as R
from catalog.record import Notes
from catalog.lazy import LazyModule
from harvester.http import Entries, PermanentError, ResponseTooLarge, capped_json, dropped
from harvester.paging import Listing, OffsetPaginator, Page, SinglePage, reported_total, request_text
from harvester.portals.base import (MAX_ITEMS, PortalAdapter, lists_cut, note_columns_cut, note_lists_cut,
                                    refuse_cut_columns)
from harvester.records import (MAX_COLUMNS, Conversion, DownloadedFile, Field, NotPullable, PagesDisagree, PagesOverlap,
                               RecordSource, SameKeys, SourceChanged, count_changed, paged_tables, parquet_rows,
                               same_rows, unique_fields)

pa, pq = LazyModule("pyarrow"), LazyModule("pyarrow.parquet")

API = "/api/explore/v2.1"
PAGE_LIMIT = 100
# the probe of the catalogue's size needs none of a dataset: its id only (`select`)
IDS_ONLY = {"select": "dataset_id"}
# a dataset over the response cap alone is listed by its id and the dates an edit moves (its
# metadata's, and `modified`, which the publisher or, where the portal is so set, a data
# update moves): an edit changes that answer, and the dataset is asked whole again (read if
# it fits now), as CKAN's `metadata_modified` does. Metadata in a catalogue query are field
# literals `<template>.<name>` (Explore's catalogue docs), not the answer's `metas.default.…` path
ID_AND_DATES = {"select": "dataset_id,default.modified,default.metadata_processed"}
OFFSET_WINDOW = 10_000
# records pages by offset need one order: without it a search index's replicas each break ties their
# own way, and rows are skipped or read twice, the count unchanged (rows carry no key to tell). The
# record's unique id is one: Explore v2.1 names it `_id` (its OpenAPI document's `record` schema:
# `_id`, `_timestamp`, `_size`, the v2.0 technical fields `recordid`, `record_timestamp`,
# `record_size` of ods-documentation-explore-api's `_dataset.md`, renamed as records were made
# flat). v2.0's name is asked next, for a portal that still knows it only; a portal that refuses
# both (a 400 to the count, before any row is read) is read from the export instead
RECORD_ORDERS = ({"order_by": "_id"}, {"order_by": "recordid"})
# a `total_count` of the window's 10,000 may be a count that stops there (a search index's default:
# "total is max 10000", data-fair#89): read as "at least", so that count too is read from the export

# ODS field types → the shared vocabulary
COLUMN_TYPES = {
    "text": "text", "int": "integer", "double": "number", "decimal": "number", "boolean": "boolean",
    "date": "date", "datetime": "datetime", "geo_point_2d": "point", "geo_shape": "geometry",
    "file": "other", "json_blob": "other", "json": "other",
}
EXPORTS = (("CSV", "text/csv", "csv"), ("JSON", "application/json", "json"))
# each dataset's `fields` cut to MAX_COLUMNS as a page (or the export) is read (v2.0 wraps each in `dataset`)
_DATASET = {"fields": MAX_COLUMNS, "metas": {"default": dict.fromkeys(("keyword", "theme"), MAX_ITEMS)}}
DATASET_FIELDS = {**_DATASET, "dataset": _DATASET}
CATALOG_PAGE = capped_json({"results": {"*": DATASET_FIELDS}})
CATALOG_EXPORT = capped_json({"*": DATASET_FIELDS}, entries=("*",))   # (a large one read as listed: Entries)


def _page_shape(data) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return None
    return "a catalog/datasets page is an object with a 'results' list"


def _export_shape(data) -> str | None:
    return None if isinstance(data, (list, Entries)) else "the catalog export is a JSON array"


class OpenDataSoftAdapter(PortalAdapter):
    kind = "opendatasoft"
    # 2: an update frequency civicat cannot read is null with a warning, not "unknown" (session 31
    # changed that in catalog.record without a new version here: such datasets kept "unknown" until
    # `harvest --full`); a link in a description keeps its address; English by any of its language keys;
    # 3: French update frequencies ("Quotidienne", "Temps réel", "Ponctuelle") read, stored null before;
    # 4: more French frequencies ("Au fil de l'eau", "Plusieurs fois par jour", "Toutes les 15 minutes");
    # 5: English counts in a period ("twice weekly", "multiple times per hour"), and dates written day
    # first with dots ("22.09.2004")
    mapping_version = 5

    def listing(self) -> Listing:
        base = f"{self.portal.url}{API}/catalog"

        def page(params: dict, unread: str | None = None) -> Page:
            response = self.http.get_json(f"{base}/datasets", params, conditional=True, expect=_page_shape,
                                          unread=unread, parse=CATALOG_PAGE)
            if response.data is None:  # the very body `unread` names: the listing knows what is on it
                return Page(items=None, digest=response.digest)
            total = response.data.get("total_count")
            return Page(items=response.data["results"], total=total if isinstance(total, int) else None,
                        digest=response.digest, url=response.url)

        total = reported_total(page, lambda offset: {**IDS_ONLY, "limit": 1, "offset": offset})
        if total is not None and total >= OFFSET_WINDOW:
            def export(_params: dict) -> Page:
                return Page(items=self.http.get_json(f"{base}/exports/json", conditional=True,
                                                     expect=_export_shape, parse=CATALOG_EXPORT).data,
                            total=total if total > OFFSET_WINDOW else None)   # (10,000: "at least", no count)
            return Listing(export, SinglePage(), self.source_id)
        paginator = OffsetPaginator(PAGE_LIMIT, max_window=OFFSET_WINDOW, extra={"order_by": "dataset_id"},
                                    ids_only=ID_AND_DATES, past_a_full_total=True)
        return Listing(page, paginator, self.source_id, skips_bodies=True, cap=self.http.max_bytes,
                       forget=self.http.forget)

    def source_id(self, entry) -> str | None:
        if not isinstance(entry, dict):
            return None
        entry = entry.get("dataset", entry)  # v2.0 wraps each dataset
        return R.text(entry.get("dataset_id")) if isinstance(entry, dict) else None

    def fetch_details(self, entry: dict) -> dict | None:
        """Nothing to fetch: how many items were left out of the lists cut as its page was read."""
        entry = entry["dataset"] if isinstance(entry.get("dataset"), dict) else entry   # (v2.0 wraps each dataset)
        cut = lists_cut(R.obj(R.obj(entry.get("metas")).get("default"))) or {}
        left_out = dropped(entry).get("fields")
        return {**cut, "columns_left_out": left_out} if left_out else cut or None

    def record_source(self, dataset, previous) -> "OdsRecords":
        refuse_cut_columns(dataset)
        return OdsRecords(self, dataset)

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        entry = entry.get("dataset", entry) if isinstance(entry.get("dataset"), dict) else entry
        metas = R.obj(entry.get("metas"))
        default = R.obj(metas.get("default"))
        dcat = R.obj(metas.get("dcat"))
        source_id = R.text(entry.get("dataset_id"))
        out = R.blank_record()
        out["source_id"] = source_id
        out["identifier"] = R.text(entry.get("dataset_uid")) or source_id
        out["title"] = R.plain_text(default.get("title"), notes, "title")
        out["description"] = R.plain_text(default.get("description"), notes, "description")
        out["keywords"] = R.text_list(default.get("keyword"), notes, "keywords")
        out["themes"] = R.text_list(default.get("theme"), notes, "themes", split=None)
        note_lists_cut(notes, details)
        out["publisher"] = R.text(default.get("publisher"), notes, "publisher")
        out["contact_name"] = R.text(dcat.get("contact_name"), notes, "contact_name")
        out["contact_email"] = R.email(dcat.get("contact_email"), notes)
        out["issued"] = R.timestamp(dcat.get("issued") or dcat.get("created"), notes, "issued")
        out["modified"] = R.timestamp(default.get("modified") or default.get("data_processed"), notes, "modified")
        out["accrual_periodicity"] = R.periodicity(dcat.get("accrualperiodicity"), notes)
        out["license"] = R.url(default.get("license_url")) or R.text(default.get("license"), notes, "license")
        out["access_level"] = "public" if entry.get("visibility", "domain") == "domain" else "restricted public"
        out["spatial"] = ", ".join(R.text_list(default.get("territory"), split=None)) or \
            R.text(dcat.get("spatial"))
        out["temporal_start"] = R.timestamp(dcat.get("temporal_coverage_start"), notes, "temporal_start")
        out["temporal_end"] = R.timestamp(dcat.get("temporal_coverage_end"), notes, "temporal_end")
        out["row_count"] = R.integer(default.get("records_count"), notes, "row_count")
        out["asset_type"] = "dataset" if entry.get("has_records", True) else "file"
        if source_id:
            safe = quote(source_id, safe="")
            out["landing_page"] = f"{self.portal.url}/explore/dataset/{safe}/"
            if entry.get("has_records", True):
                formats = EXPORTS + ((("GEOJSON", "application/geo+json", "geojson"),)
                                     if "geo" in R.items(entry.get("features")) else ())
                out["distributions"] = [
                    {"title": label, "format": label, "media_type": media_type, "access_url": None,
                     "download_url": f"{self.portal.url}{API}/catalog/datasets/{safe}/exports/{extension}"}
                    for label, media_type, extension in formats]
        out["columns"] = _columns(entry.get("fields"))
        note_columns_cut(notes, "the catalogue entry", details, len(R.items(entry.get("fields"))))
        return out


def _columns(fields) -> list[dict]:
    columns = []
    for field in fields if isinstance(fields, list) else []:
        if not isinstance(field, dict):
            continue
        source_type = R.text(field.get("type"))
        columns.append({
            "position": len(columns), "name": R.text(field.get("label")) or R.text(field.get("name")),
            "field_name": R.text(field.get("name")), "type": R.column_type(source_type, COLUMN_TYPES),
            "source_type": source_type, "description": R.plain_text(field.get("description")),
        })
    return columns


def _records_shape(data) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("results"), list) and isinstance(data.get("total_count"), int):
        return None
    return "a records page is an object with a 'results' list and a 'total_count'"


class OdsRecords(RecordSource):
    """A dataset's records: `/records` pages of 100 in the order of their record ids (`_id`, else
    v2.0's `recordid`) while the dataset is counted under the 10,000-row offset window, else (or
    where the portal refuses both orders) the whole `/exports/jsonl` file, downloaded and read line by line.
    Typed from the catalogue's fields (ODS datetimes carry their offset: instants)."""

    def __init__(self, adapter: OpenDataSoftAdapter, dataset):
        columns = [c for c in dataset.columns if c.get("field_name")]
        if not columns:
            raise NotPullable(f"{dataset.uid} has no fields in the catalogue")
        self.http = adapter.http
        self.base = f"{adapter.portal.url}{API}/catalog/datasets/{quote(dataset.source_id, safe='')}"
        self.fields = unique_fields([Field(c["field_name"], "datetime_utc" if c.get("type") == "datetime"
                                           else c.get("type") or "other") for c in columns])
        self.conversion = Conversion(self.fields)
        self.row_keys = SameKeys([f.key for f in self.fields])   # a records page names its columns by them
        self.expected_rows = self._ordered_count()
        self.export = None
        if self.expected_rows >= OFFSET_WINDOW or not self.order:
            self.export = DownloadedFile(self.http, f"{self.base}/exports/jsonl", fmt="jsonl", fields=self.fields)
            self.conversion = self.export.conversion

    def _ordered_count(self) -> int:
        """The row count, asked with the first record order the portal accepts (`self.order`;
        refused, it is known before any row is read); with none ({}) where it refuses each."""
        for self.order in (*RECORD_ORDERS, {}):
            try:
                return self._get({"limit": 0})["total_count"]
            except PermanentError as error:
                if error.status != 400 or not self.order:
                    raise

    @property
    def fingerprint(self) -> str:
        # (pages asked from the row before each since session 46: a state of before, the offset of a
        # page's first row, would now be asked from the row before it, and is not resumed from)
        read = "export" if self.export else f"records by {self.order['order_by']}, each page from the row before"
        return f"{super().fingerprint}|{self.base}|{read}"

    def _get(self, params: dict) -> dict:
        return self.http.get_json(f"{self.base}/records", {**params, **self.order}, expect=_records_shape).data

    def _counted(self, asked: dict) -> list:
        """The rows answered to the records request `asked`, its count checked: a count that is not
        the one the pull began with (rows carry no key, in no order asked: any change moves them)
        reads the pull again."""
        data = self._get(asked)
        if data["total_count"] != self.expected_rows:
            counted, self.expected_rows = self.expected_rows, data["total_count"]
            raise count_changed(asked, data["total_count"], counted)
        self.row_keys.check(data["results"], asked)
        return data["results"]

    def _page(self, params: dict, reading: dict) -> Page:
        """The page `params` names (its offset and limit: the rows it reads new). After the first,
        each is asked with the row before it (offset − 1, limit + 1), and that row, dropped, must be
        the last row read (`reading["read"]`, the rows read up to this page): rows carry no key, and a
        row removed before the page and one added after it (the count unchanged) moves the page a row
        on, one row never read; one added before and one removed after moves it a row back, one read
        twice. Either way the row before is another: the pull is read again (SourceChanged). An answer
        of rows read already, in their order (a stale cache, a portal ignoring the offset), fails the
        pull (PagesDisagree). Pages are asked one at a time (paged_tables' one request in flight), so
        `reading` is the rows read just before. A pull resumed has none yet: its first request, the
        row before its resume point (PagedTables.row_before), is asked alone and is the row read."""
        offset, limit = params["offset"], params["limit"]
        before = reading["read"]
        if not offset or before is None:
            table = self.conversion.table_from_rows(self._counted(params))
        else:
            asked = {**params, "offset": offset - 1, "limit": limit + 1}
            try:
                rows = self._counted(asked)
            except ResponseTooLarge:
                if limit > 1:   # (the page is asked in smaller pages: paged_tables)
                    raise
                rows, asked = self._apart(params), {**params, "apart": True}
            table = self._after(asked, rows, before, reading["answered"])
        reading["read"] = _last_rows(before, table, PAGE_LIMIT)
        reading["answered"] = table.num_rows + (offset > 0 and before is not None)
        return Page(items=table, total=self.expected_rows)

    def _apart(self, params: dict) -> list:
        """A row whose answer with the row before it is over the response cap: the row asked alone
        (over the cap alone, the pull fails: refuse_oversized), then the row before it alone (asked
        after: rows that moved between the two requests show there too)."""
        row = self._counted(params)
        try:
            return self._counted({**params, "offset": params["offset"] - 1, "limit": 1}) + row
        except ResponseTooLarge:   # (read under the cap as the page before: it changed)
            raise SourceChanged(f"the row before the page at {request_text(params)}, read before under the "
                                "response cap, is over it now: the dataset changed as it was read") from None

    def _after(self, asked: dict, rows: list, before: pa.Table, answered: int | None) -> pa.Table:
        """The rows of the answer to `asked` after its first, which must be the last row `before`
        ends with (converted apart: its bad values were counted when it was read). `answered`: the
        rows of the answer before it."""
        asked_text = request_text({k: v for k, v in asked.items() if k != "apart"})
        if asked.get("apart"):
            asked_text = f"{asked_text} and the row before it, each alone (together over the response cap)"
        if rows and _same_row(Conversion(self.fields).table_from_rows(rows[:1]), before.slice(before.num_rows - 1)):
            return self.conversion.table_from_rows(rows[1:])
        answer = Conversion(self.fields).table_from_rows(rows)
        # rows read already, up to the last (its first perhaps before the rows kept: a resumed pull's
        # are the last part's last row group); the answer before ended there too: the same, if as many
        if rows and (_ends(before, answer) or _ends(before, answer.slice(1))):
            again = f"the same {len(rows)} rows as the page before" if len(rows) == answered else \
                f"again the last {len(rows)} rows read before it"
            raise PagesDisagree(f"the page at {asked_text} gave {again}: the portal repeats a page instead of "
                                "paging on")
        raise SourceChanged(f"the page at {asked_text} began with another row than the last read before it: rows "
                            "moved between the pages as they were read (one removed before the page and one added "
                            "after it, or one added before it and one removed after, the count unchanged)")

    def _shifted(self, params: dict):
        """The rows of a page's request from its second row on (its rows carry no key: see
        paged_tables), asked as they are and converted apart so that their bad values are not counted twice."""
        one_on = {**params, "offset": params["offset"] + 1, "limit": params["limit"] - 1}
        return Conversion(self.fields).table_from_rows(self._counted(one_on))

    def batches(self, resume):
        if self.export is not None:
            return self.export.batches(resume)
        # (this reading's own: a request of a reading given up may still be answered)
        reading = {"read": None, "answered": None}
        paginator = OverlappingPages(PAGE_LIMIT - 1, max_window=OFFSET_WINDOW, total=self.expected_rows)
        tables = paged_tables(lambda params: self._page(params, reading), paginator, resume, shifted=self._shifted,
                              columns=len(self.fields))
        staged_before = tables.staged_before

        def resumed_after(rows: pa.Table) -> None:   # (the rows staged before a resume point, shown unmoved)
            staged_before(rows)
            reading["read"] = _last_rows(None, rows, PAGE_LIMIT)   # (a stale first page gives them again)
        tables.staged_before = resumed_after
        return tables

    def check_unchanged(self, staged_glob: str) -> None:
        """More rows staged than counted: rows carry no key to keep one of each, and every page
        gave the count the pull began with (`_counted`) and began with the last row read before it
        (`_page`), so pages that overlapped otherwise or an export that repeats rows
        published duplicates, over the count (fewer: RowsMissing, pull_dataset's). The count is
        asked again: one that moved reads the pull again (SourceChanged), as a page's does; an
        export as many rows as it now counts is a later reading than the count (rows added between).
        A count of the window's 10,000 an export was read for may stop there ("at least"): no over-count."""
        rows, counted = parquet_rows(staged_glob), self.expected_rows
        if rows <= counted or self.export is not None and counted == OFFSET_WINDOW:
            return
        now = self._get({"limit": 0})["total_count"]
        if self.export is not None and rows == now:
            self.expected_rows = now
            return
        if now != counted:
            self.expected_rows = now   # (what the pull, read again, must give)
            raise SourceChanged(f"the row count went from {counted} to {now} while it was read, {rows} rows read")
        read = "its export repeats" if self.export is not None else "its pages repeat"
        raise PagesOverlap(f"the pull gave {rows:,} rows, more than the {counted:,} the portal "
                           f"counts at its start and its end: {read} rows (rows carry no key to keep one of "
                           "each); the previous records are kept")

    def close(self) -> None:
        if self.export is not None:
            self.export.close()


class OverlappingPages(OffsetPaginator):
    """OdsRecords' pages by offset: a page's offset and limit are the rows it reads new, and each
    after the first is asked from the row before it, one row more (OdsRecords._page): pages of
    `limit` rows ask limit + 1. The first asks as many, none of them a row before: every request
    alike in size (a portal that ignores the offset answers each the same). A page asks no further
    than the API's window (offset + limit ≤ 10,000, the same as asked from the row before with one
    more): after pages of another size (asked smaller, or sized by their bytes) the last ends there."""

    def first(self) -> dict:
        params = super().first()
        return {**params, self.limit_param: params[self.limit_param] + 1}

    def _params(self, offset: int) -> dict:
        if self.max_window is None or offset >= self.max_window:
            return super()._params(offset)
        size = min(self.sizes.at(offset), self.max_window - offset)
        return {**self.extra, self.offset_param: offset, self.limit_param: size}


def _last_rows(read: pa.Table | None, page: pa.Table, most: int) -> pa.Table:
    """The last `most` rows of `read` and then `page`."""
    rows = page if read is None or read.schema != page.schema else pa.concat_tables([read, page])
    return rows.slice(max(0, rows.num_rows - most))


def _ends(read: pa.Table, answer: pa.Table) -> bool:
    """Whether `answer`'s rows are the last of `read`, in order (NaN equal to NaN: same_rows)."""
    try:
        return answer.num_rows <= read.num_rows and \
            same_rows(answer.cast(read.schema), read.slice(read.num_rows - answer.num_rows))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return False


def _same_row(asked: pa.Table, staged: pa.Table) -> bool:
    """Whether the row `asked` again is the `staged` one (cast to the staged schema, as _continues does)."""
    try:
        return asked.num_rows == 1 and same_rows(asked.cast(staged.schema), staged)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):   # another shape: not that row
        return False
