"""Local Open311 GeoReport v2 endpoint: services.json, or only services.xml."""

from __future__ import annotations

from typing import Any

from .base import LocalPortal, Query, json_error


class Open311Portal(LocalPortal):
    """Serves ``services`` as services.json, or ``services_xml`` (bytes) as services.xml
    with services.json answering 404, as XML-only endpoints do."""

    def __init__(self, services: list | None = None, services_xml: bytes | None = None, prefix: str = "/open311/v2"):
        super().__init__(prefix)
        self.services = services
        self.services_xml = services_xml

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path == "/services.json" and self.services is not None:
            return 200, self.services
        return 404, json_error(404, f"No route for {path}")

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.services_xml is not None and path == f"{self.prefix}/services.xml" and not self._faults:
            self.requests.append((path[len(self.prefix):], {}, {}))
            start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                      ("Content-Length", str(len(self.services_xml)))])
            return [self.services_xml]
        return super()._wsgi(environ, start_response)
