"""Local Open311 GeoReport v2 endpoint: services.json, or only services.xml."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .base import LocalPortal, Query, json_error


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Open311Portal(LocalPortal):
    """Serves ``services`` as services.json, or ``services_xml`` (bytes) as services.xml
    with services.json answering 404, as XML-only endpoints do."""

    PAGE_SIZE = 50   # requests per page, as Boston's server gives them

    def __init__(self, services: list | None = None, services_xml: bytes | None = None, prefix: str = "/open311/v2",
                 requests: list[dict] | None = None, paging: bool = True, end_inclusive: bool = False,
                 whole_days: bool = False, local_zone: str | None = None, filters: bool = True,
                 oldest_first: bool = False, last_page: int | None = None):
        super().__init__(prefix)
        self.services = services
        self.services_xml = services_xml
        self.service_requests = list(requests or [])   # GeoReport v2 request objects
        self.paging = paging   # False: `page` is ignored, as some servers do
        self.end_inclusive = end_inclusive   # True: `end_date` is the latest moment included (GeoReport's words)
        # True: the times of `start_date`/`end_date` are dropped (uReport did so until its issue #285:
        # "TicketTable is chopping off the time portion when doing queries"): from the start's midnight
        # to the end's, the end's day included only with `end_inclusive` (`<=` a date chopped to midnight
        # excludes it)
        self.whole_days = whole_days
        # a zone name: the server keeps its times as local times without an offset (as real ones do), gives
        # them so, and reads the dates asked as local times, any offset or `Z` dropped
        self.local_zone = ZoneInfo(local_zone) if local_zone else None
        # True: ``status`` and ``service_code`` (comma-separated lists, GeoReport's) choose the requests
        # given before the cut at a page; False: both ignored, as some servers do
        self.filters = filters
        self.oldest_first = oldest_first   # True: requests sorted oldest first before the cut at a page (some do)
        # the deepest page it gives: those after it answered with none (a server that pages only so deep)
        self.last_page = last_page

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path == "/services.json" and self.services is not None:
            return 200, self.services
        if path == "/requests.json":
            return self.requests_page(query)
        return 404, json_error(404, f"No route for {path}")

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.services_xml is not None and path == f"{self.prefix}/services.xml" and not self._faults:
            self.requests.append((path[len(self.prefix):], {}, {}))
            start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                      ("Content-Length", str(len(self.services_xml)))])
            return [self.services_xml]
        return super()._wsgi(environ, start_response)

    def requests_page(self, query: Query) -> tuple[int, Any]:
        """``start_date``/``end_date`` (at most 90 days apart, else 400) on requested_datetime,
        the end excluded unless `end_inclusive` (their times dropped with `whole_days`), newest first
        (oldest first with `oldest_first`),
        ``page`` (from 1) of PAGE_SIZE, none past `last_page`."""
        try:
            start, end = instant(query["start_date"]), instant(query["end_date"])
        except (KeyError, ValueError):
            return 400, [{"code": 400, "description": "start_date and end_date are required"}]
        if (end - start).days > 90:
            return 400, [{"code": 400, "description": "the date window is at most 90 days"}]
        if self.local_zone is not None:
            start, end = (moment.replace(tzinfo=self.local_zone) for moment in (start, end))
        inclusive = self.end_inclusive
        if self.whole_days:
            start = start.replace(hour=0, minute=0, second=0, microsecond=0)
            end = end.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1 if inclusive else 0)
            inclusive = False
        chosen = sorted((r for r in self.service_requests if (start <= instant(r["requested_datetime"]) < end
                         or inclusive and instant(r["requested_datetime"]) == end) and self.chosen(r, query)),
                        key=lambda r: r["requested_datetime"], reverse=not self.oldest_first)
        page = int(query.get("page", 1)) if self.paging else 1
        if self.last_page is not None and page > self.last_page:
            return 200, []
        return 200, [self._local(r) for r in chosen[(page - 1) * self.PAGE_SIZE:page * self.PAGE_SIZE]]

    def chosen(self, request: dict, query: Query) -> bool:
        """Whether `request` has the ``status`` and the ``service_code`` asked (any, where not asked)."""
        return not self.filters or all(name not in query or str(request.get(name)) in query[name].split(",")
                                       for name in ("status", "service_code"))

    def _local(self, request: dict) -> dict:
        if self.local_zone is None:
            return request
        return {key: instant(value).astimezone(self.local_zone).replace(tzinfo=None).isoformat()
                if key.endswith("_datetime") and isinstance(value, str) and value[:1].isdigit() else value
                for key, value in request.items()}
