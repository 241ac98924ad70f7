"""Local Socrata portal: Discovery API (/api/catalog/v1) and /api/views/{id}.json,
with the real paging caps and scroll_id ordering."""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any, Iterable

from .base import LocalPortal, Query, json_error

VIEW_PATH = re.compile(r"^/api/views/([a-z0-9]{4}-[a-z0-9]{4})\.json$")


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
    """

    DEFAULT_LIMIT = 10
    MAX_LIMIT = 100
    MAX_WINDOW = 10_000

    def __init__(self, entries: Iterable[dict], views: dict[str, Any] | None = None,
                 domain: str = "data.example.org", other_domain_entries: Iterable[dict] = (),
                 prefix: str = "") -> None:
        super().__init__(prefix)
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

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path == "/api/catalog/v1":
            return self.catalog(query)
        match = VIEW_PATH.match(path)
        if match:
            view = self.views.get(match[1])
            if view is None:
                return 404, json_error(404, f"Cannot find view with id {match[1]}")
            return 200, view
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
