"""Local CKAN portal: the action API's package_search and datastore_search, with CKAN's
caps, default order and error envelope."""

from __future__ import annotations

import re
from typing import Any, Iterable

from .base import LocalPortal, Query

ROWS_MAX = 1000


def ckan_error(kind: str, message: str) -> dict:
    return {"help": "http://localhost/api/3/action/help_show", "success": False,
            "error": {"__type": kind, "message": message}}


def _field(package, key: str) -> str:
    """Sort key that tolerates the junk entries bad-payload tests serve."""
    return str(package.get(key) or "") if isinstance(package, dict) else ""


class CkanPortal(LocalPortal):
    """CKAN action API over ``packages`` (package dicts as package_show gives them).

    - ``rows`` above 1,000 is refused (409, ``Validation Error``), as ckan.search.rows_max does;
    - ``sort``: ``id asc`` (or ``name asc``) is stable; without it, packages come most
      recently modified first, as CKAN's default ``score desc, metadata_modified desc``
      does: a package edited during a crawl jumps to the front;
    - ``datastore_search?resource_id=…&limit=0`` answers ``fields`` from ``datastore``
      (resource id → fields), else 404 ``Not Found Error``;
    - ``fl`` (``id,name``): each package answered with those fields only, as Solr's field
      list makes package_search do;
    - ``prefix`` mounts the API under a path (``/ckan``).
    """

    RECORDS_MAX = 32_000  # ckan.datastore.search.rows_max

    def __init__(self, packages: Iterable[dict], datastore: dict[str, list] | None = None, prefix: str = "",
                 records: dict[str, list[dict]] | None = None) -> None:
        super().__init__(prefix)
        self.packages = list(packages)
        self.datastore = dict(datastore or {})
        self.records = dict(records or {})  # resource id → DataStore rows (each with its `_id`)

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path == "/api/3/action/package_search":
            return self.package_search(query)
        if path == "/api/3/action/datastore_search":
            fields = self.datastore.get(query.get("resource_id", ""))
            if fields is None:
                return 404, ckan_error("Not Found Error", f'Resource "{query.get("resource_id")}" was not found.')
            rows = self.records.get(query["resource_id"], [])
            limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
            if limit > self.RECORDS_MAX:
                return 409, ckan_error("Validation Error", f"limit: Must be less than or equal to {self.RECORDS_MAX}")
            if query.get("sort", "_id asc") == "_id asc":
                rows = sorted(rows, key=lambda r: r["_id"])
            return 200, {"success": True, "result": {"resource_id": query["resource_id"], "fields": fields,
                                                     "records": rows[offset:offset + limit], "total": len(rows)}}
        return 404, ckan_error("Not Found Error", f"Action not found: {path}")

    def package_search(self, query: Query) -> tuple[int, Any]:
        try:
            rows, start = int(query.get("rows", 10)), int(query.get("start", 0))
        except ValueError:
            return 409, ckan_error("Validation Error", "rows and start must be integers")
        if rows > ROWS_MAX:
            return 409, ckan_error("Validation Error", f"rows: Must be less than or equal to {ROWS_MAX}")
        sort = query.get("sort", "")
        match = re.fullmatch(r"(id|name) asc", sort.strip())
        if match:
            ordered = sorted(self.packages, key=lambda p: _field(p, match.group(1)))
        else:
            ordered = sorted(self.packages, key=lambda p: _field(p, "metadata_modified"), reverse=True)
        results = ordered[start:start + rows]
        if query.get("fl"):   # the Solr fields named (comma or space separated), each package's that it has
            fields = [name for name in re.split(r"[\s,]+", query["fl"]) if name]
            results = [{name: package[name] for name in fields if name in package} for package in results
                       if isinstance(package, dict)]
        return 200, {"help": "http://localhost/api/3/action/help_show", "success": True,
                     "result": {"count": len(ordered), "sort": sort or "score desc, metadata_modified desc",
                                "facets": {}, "results": results, "search_facets": {}}}
