"""Local ArcGIS FeatureServer: layer metadata and `query`, with the server's record cap,
`exceededTransferLimit`, counts, object-id queries and errors behind a 200."""
from __future__ import annotations

from typing import Any

from .base import LocalPortal, Query


class FeatureServerPortal(LocalPortal):
    """``layers``: path (e.g. ``/arcgis/rest/services/X/FeatureServer/0``) → (metadata,
    features). ``query``: ``returnCountOnly``, ``returnIdsOnly`` (of the ``objectIds`` asked, if any), ``objectIds``; with
    pagination advertised (``advancedQueryCapabilities.supportsPagination``),
    ``resultOffset``/``resultRecordCount`` (``orderByFields`` honoured unless the layer says
    ``supportsOrderBy: false``); without it both are ignored, as old servers
    do: the first ``maxRecordCount`` features come back with ``exceededTransferLimit``."""

    def __init__(self, layers: dict[str, tuple[dict, list[dict]]], real_cap: int | None = None,
                 answer_fields: bool | None = True) -> None:
        super().__init__()
        self.layers = layers
        self.real_cap = real_cap   # a server that answers fewer features than its metadata says
        # False: query answers name their fields by `fieldAliases` only (Cook County's MapServer);
        # None: by neither (the features' attributes alone)
        self.answer_fields = answer_fields

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path in self.layers:
            return 200, self.layers[path][0]
        base = path.removesuffix("/query")
        if path.endswith("/query") and base in self.layers:
            return 200, self.query(*self.layers[base], query)
        return 200, {"error": {"code": 400, "message": "Invalid URL", "details": []}}  # ArcGIS: 200 + error

    def query(self, metadata: dict, features: list[dict], query: Query) -> dict:
        oid = metadata.get("objectIdField") or "OBJECTID"
        cap = self.real_cap or metadata.get("maxRecordCount") or 1000
        if query.get("returnCountOnly") == "true":
            return {"count": len(features)}
        chosen = features
        if query.get("objectIds"):
            wanted = {int(i) for i in query["objectIds"].split(",")}
            chosen = [f for f in features if f["attributes"][oid] in wanted]
        if query.get("returnIdsOnly") == "true":
            return {"objectIdFieldName": oid, "objectIds": [f["attributes"][oid] for f in chosen]}
        capabilities = metadata.get("advancedQueryCapabilities") or {}
        paged = capabilities.get("supportsPagination")
        offset = int(query.get("resultOffset", 0)) if paged else 0
        count = min(int(query.get("resultRecordCount", cap)), cap) if paged else cap
        # a layer that says it cannot order answers in its own order, whatever is asked
        if paged and query.get("orderByFields") == oid and capabilities.get("supportsOrderBy") is not False:
            chosen = sorted(chosen, key=lambda f: f["attributes"][oid])
        page = chosen[offset:offset + count]
        answer = {"objectIdFieldName": oid, "geometryType": metadata.get("geometryType"),
                  "spatialReference": {"wkid": 4326}, "features": page}
        if self.answer_fields:
            answer["fields"] = metadata.get("fields")
        elif self.answer_fields is False:
            answer["fieldAliases"] = {f["name"]: f.get("alias") or f["name"] for f in metadata.get("fields") or []}
        if offset + len(page) < len(chosen):
            answer["exceededTransferLimit"] = True
        return answer
