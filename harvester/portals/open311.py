"""Open311 GeoReport v2 endpoints (a city's 311 service requests).

Endpoint: `{url}/services.json`, else `{url}/services.xml` (parsed with defusedxml, so an
entity-expansion bomb is refused). An endpoint is ONE catalogue dataset — the city's 311
service requests — whose columns are the GeoReport v2 request fields; its service list
is kept in the raw record and exposed as the `open311_services` view, to label 311 data
across cities. Requests themselves (`requests.json` by date window and page) are the
records harvest's business.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from catalog import record as R
from catalog.record import Notes
from harvester.http import PermanentError, capped_json, dropped
from harvester.paging import Listing, Page, Paginator, SinglePage, request_text
from harvester.portals.base import MAX_ITEMS, PortalAdapter
from harvester.records import Conversion, Field, RecordsError, RecordSource, paged_tables, parquet_max, read_parquet_sql

SOURCE_ID = "service-requests"
WINDOW = timedelta(days=90)             # the widest date window GeoReport v2 servers accept
EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)   # GeoReport v2 dates from 2010: nothing older to ask for
RECENT = timedelta(days=90)             # an incremental pull re-reads this much before its watermark
SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")
# GeoReport v2 service request fields (name, type in the shared vocabulary, description)
REQUEST_FIELDS = (
    ("service_request_id", "text", "Unique id of the service request"),
    ("status", "text", "open or closed"),
    ("status_notes", "text", "Explanation of the status"),
    ("service_name", "text", "Human-readable name of the service type"),
    ("service_code", "text", "Service type code (see open311_services)"),
    ("description", "text", "Description given by the requester"),
    ("agency_responsible", "text", "Agency responsible for fulfilling the request"),
    ("service_notice", "text", "Information about the expected handling"),
    ("requested_datetime", "datetime", "When the request was made"),
    ("updated_datetime", "datetime", "When the request was last changed"),
    ("expected_datetime", "datetime", "When the request is expected to be fulfilled"),
    ("address", "text", "Human-readable address"),
    ("address_id", "text", "Address id in the city's system"),
    ("zipcode", "text", "Postal code"),
    ("lat", "number", "Latitude (WGS84)"),
    ("long", "number", "Longitude (WGS84)"),
    ("media_url", "url", "Photo or other media of the request"),
)


SERVICES = capped_json(MAX_ITEMS)   # the first MAX_ITEMS services, the others dropped as they are read


def _services_shape(data) -> str | None:
    return None if isinstance(data, list) else "services.json is a JSON array of services"


def services_from_xml(root) -> list[dict]:
    """<services><service><service_code>…</service_code>…</service></services> → dicts."""
    services = []
    for element in root.iter("service"):
        service = {}
        for child in element:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag in SERVICE_FIELDS:
                service[tag] = (child.text or "").strip() or None
        services.append(service)
    return services


class Open311Adapter(PortalAdapter):
    kind = "open311"

    def listing(self) -> Listing:
        def fetch(_params: dict) -> Page:
            try:
                services = self.http.get_json(f"{self.portal.url}/services.json", conditional=True,
                                              expect=_services_shape, parse=SERVICES).data
                left_out, form = dropped(services).get("*", 0), "json"
            except PermanentError as exc:
                if exc.status not in (404, 406, 415, 501):
                    raise
                services = services_from_xml(self.http.get_xml(f"{self.portal.url}/services.xml",
                                                               conditional=True).data)
                left_out, form = max(0, len(services) - MAX_ITEMS), "xml"
            entry = {"endpoint": self.portal.url, "format": form, "services": list(services[:MAX_ITEMS])}
            return Page(items=[{**entry, "services_left_out": left_out} if left_out else entry])

        return Listing(fetch, SinglePage(), self.source_id)

    def source_id(self, entry) -> str | None:
        return SOURCE_ID if isinstance(entry, dict) else None

    def record_source(self, dataset, previous) -> "RequestsRecords":
        if dataset.source_id != SOURCE_ID:
            raise RecordsError(f"an Open311 endpoint has one dataset, {SOURCE_ID!r}, not {dataset.source_id!r}")
        return RequestsRecords(self, previous)

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        services = [s for s in entry.get("services") or [] if isinstance(s, dict)]
        names = R.text_list([s.get("service_name") for s in services])
        groups = R.text_list([s.get("group") for s in services], split=None)
        out = R.blank_record()
        out["source_id"] = SOURCE_ID
        out["identifier"] = f"{self.portal.url}/requests.json"
        out["title"] = f"{self.portal.city} 311 service requests"
        out["description"] = (
            f"Service requests reported to {self.portal.city} through its Open311 GeoReport v2 endpoint "
            f"({len(services)} service types" + (f": {', '.join(names[:40])}" if names else "") + ").")
        out["keywords"] = R.text_list(["311", "service requests", *names])
        out["themes"] = groups
        out["access_level"] = "public"
        out["landing_page"] = R.url(self.portal.url)
        out["asset_type"] = "dataset"
        out["distributions"] = [
            {"title": "GeoReport v2 requests (JSON)", "format": "JSON", "media_type": "application/json",
             "download_url": None, "access_url": f"{self.portal.url}/requests.json"},
            {"title": "GeoReport v2 services (JSON)", "format": "JSON", "media_type": "application/json",
             "download_url": None, "access_url": f"{self.portal.url}/services.json"},
        ]
        if entry.get("services_left_out"):
            notes.warn("services", f"the endpoint lists {MAX_ITEMS + entry['services_left_out']:,} services; the "
                       f"first {MAX_ITEMS:,} are kept")
        out["columns"] = [{"position": i, "name": name, "field_name": name, "type": kind,
                           "source_type": "georeport-v2", "description": description}
                          for i, (name, kind, description) in enumerate(REQUEST_FIELDS)]
        return out


def _requests_shape(data) -> str | None:
    return None if isinstance(data, list) else "requests.json is a JSON array of requests"


def _ids(requests: list) -> list[str]:
    return [str(r.get("service_request_id")) for r in requests if isinstance(r, dict)]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class WindowPaginator(Paginator):
    """requests.json by date window (`start_date`/`end_date`, 90 days) and `page` within it:
    the next page while one brings new requests, then the next window, up to `until`."""

    def __init__(self, since: datetime, until: datetime):
        self.since, self.until = since, until

    def _window(self, start: datetime, page: int = 1) -> dict | None:
        if start >= self.until:
            return None
        return {"start_date": _stamp(start), "end_date": _stamp(min(start + WINDOW, self.until)), "page": page}

    def first(self) -> dict:
        return self._window(self.since)

    def next(self, page: Page, params: dict) -> dict | None:
        if len(page.items):
            return {**params, "page": params["page"] + 1}
        return self._window(datetime.fromisoformat(params["end_date"].replace("Z", "+00:00")))


class RequestsRecords(RecordSource):
    """An endpoint's service requests from `requests.json`, window after window from 2010
    (or, after a pull, from 90 days before its latest request, merged by
    `service_request_id`). A page that brings no request not already seen in this window
    or the one before ends the window: servers that ignore `page` repeat their first (asked
    twice: a stale page is not repeated). A later page of requests all read on this window's
    earlier pages, not its first again, is a stale or repeated page, and fails the pull: as
    the window's end, it lost the pages after it."""

    def __init__(self, adapter: Open311Adapter, previous, *, now: datetime | None = None,
                 since: datetime = EARLIEST):
        self.http, self.url = adapter.http, f"{adapter.portal.url}/requests.json"
        self.fields = [Field(name, "datetime_utc" if kind == "datetime" else kind) for name, kind, _ in REQUEST_FIELDS]
        self.conversion = Conversion(self.fields)
        self.until = now or datetime.now(UTC).replace(microsecond=0)
        self.since = since
        if previous is not None and previous.watermark:
            self.mode = "incremental"
            latest = datetime.fromisoformat(previous.watermark)
            self.since = max(since, (latest if latest.tzinfo else latest.replace(tzinfo=UTC)) - RECENT)
        self._window: str | None = None
        self._seen, self._seen_before = set(), set()   # ids of this window and of the one before
        self._first: list[str] = []   # the ids of this window's first page

    @property
    def fingerprint(self) -> str:
        return f"{super().fingerprint}|{self.url}|{_stamp(self.since)}"

    def _page(self, params: dict) -> Page:
        requests = self.http.get_json(self.url, params, expect=_requests_shape).data
        if params["start_date"] != self._window:
            self._window, self._seen_before, self._seen = params["start_date"], self._seen, set()
        ids = _ids(requests)
        if params["page"] > 1 and ids and ids == self._first:
            # a server that ignores `page` answers its first page every time; a stale page once
            requests = self.http.get_json(self.url, params, expect=_requests_shape).data
            ids = _ids(requests)
        if params["page"] == 1:
            self._first = ids
        elif ids and ids != self._first and set(ids) <= self._seen:
            raise RecordsError(f"the page at {request_text(params)} brings only requests read on earlier pages of "
                               "its window, and is not its first page again (a server that ignores `page`): a stale "
                               "or repeated page, whose window would end short; the next pull reads it again")
        rows = []
        for request in requests:
            if not isinstance(request, dict):
                rows.append(request)   # (a row of nulls, counted: see Conversion.table_from_rows)
                continue
            key = request.get("service_request_id")
            if key is not None:
                key = str(key)
                if key in self._seen or key in self._seen_before:
                    continue
                self._seen.add(key)
            rows.append(request)
        return Page(items=self.conversion.table_from_rows(rows))

    def batches(self, resume):
        return paged_tables(self._page, WindowPaginator(self.since, self.until), resume)

    def watermark(self, glob: str) -> str | None:
        latest = parquet_max(glob, "requested_datetime")
        if latest is None:
            return None
        return (latest if latest.tzinfo else latest.replace(tzinfo=UTC)).isoformat()

    def merge_sql(self, previous_glob: str, delta_glob: str) -> str:
        previous, delta = read_parquet_sql(previous_glob), read_parquet_sql(delta_glob)
        return (f"SELECT * FROM {previous} WHERE service_request_id IS NULL OR service_request_id NOT IN "
                f"(SELECT service_request_id FROM {delta} WHERE service_request_id IS NOT NULL) "
                f"UNION ALL BY NAME SELECT * FROM {delta}")
