"""Local DCAT-US portal: one data.json document (v1.1 catalog object or legacy
bare array) at one path."""

from __future__ import annotations

from typing import Any

from .base import LocalPortal, Query, json_error

HUB_FEED_PATH = "/api/feed/dcat-us/1.1.json"  # where ArcGIS Hub serves its data.json


class DataJsonPortal(LocalPortal):
    """Serves ``document`` at ``path``; replace ``portal.document`` to change it."""

    def __init__(self, document: Any, path: str = "/data.json", prefix: str = "") -> None:
        super().__init__(prefix)
        self.document = document
        self.path = path

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path == self.path:
            return 200, self.document
        return 404, json_error(404, f"No route for {path}")
