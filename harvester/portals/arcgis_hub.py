"""ArcGIS Hub sites (opendata.dc.gov and most US counties): the site's DCAT-US feed
(`{url}/api/feed/dcat-us/1.1.json`) as the listing, the FeatureServer / MapServer layer
its distribution names (`…/FeatureServer/<layer>?f=json`, often on another host such as
services.arcgis.com) for the columns.

The feed's identifiers are item URLs that change with the site's address; the source id
is the Hub item id (`<item>_<layer>`), the URL kept as `identifier`. ArcGIS answers
errors with HTTP 200 and an `{"error": {...}}` body: those are errors too.
"""
from __future__ import annotations

import re

from catalog import record as R
from catalog.record import Notes
from harvester.http import PermanentError
from harvester.portals.dcat_us import DcatUsAdapter, arcgis_item_id

FEED_PATH = "/api/feed/dcat-us/1.1.json"
LAYER_URL = re.compile(r"^(https?://[^?#]+/(?:FeatureServer|MapServer)/\d+)(?:[/?#].*)?$", re.IGNORECASE)

# Esri field types → the shared vocabulary
COLUMN_TYPES = {
    "esrifieldtypeoid": "integer", "esrifieldtypesmallinteger": "integer", "esrifieldtypeinteger": "integer",
    "esrifieldtypebiginteger": "integer", "esrifieldtypesingle": "number", "esrifieldtypedouble": "number",
    "esrifieldtypestring": "text", "esrifieldtypeguid": "text", "esrifieldtypeglobalid": "text",
    "esrifieldtypedate": "datetime", "esrifieldtypetimestampoffset": "datetime", "esrifieldtypedateonly": "date",
    "esrifieldtypetimeonly": "other", "esrifieldtypegeometry": "geometry", "esrifieldtypeblob": "other",
    "esrifieldtyperaster": "other", "esrifieldtypexml": "other",
}


def layer_url(entry: dict) -> str | None:
    """The FeatureServer/MapServer layer a Hub entry's distributions name, if any."""
    distributions = entry.get("distribution")
    for dist in distributions if isinstance(distributions, list) else []:
        if not isinstance(dist, dict):
            continue
        for key in ("accessURL", "downloadURL"):
            match = LAYER_URL.match(str(dist.get(key) or ""))
            if match:
                return match.group(1)
    return None


class ArcgisHubAdapter(DcatUsAdapter):
    kind = "arcgis-hub"

    @property
    def feed_url(self) -> str:
        return self.portal.url if self.portal.url.endswith(".json") else self.portal.url + FEED_PATH

    def source_id(self, entry) -> str | None:
        if not isinstance(entry, dict):
            return None
        identifier = R.text(entry.get("identifier"))
        return arcgis_item_id(identifier, R.text(entry.get("landingPage"))) or identifier

    def fetch_details(self, entry: dict) -> dict | None:
        url = layer_url(entry)
        if url is None:
            return None  # documents, web maps, apps: no layer to read columns from
        layer = self.http.get_json(url, {"f": "json"}, conditional=True).data
        if not isinstance(layer, dict) or "error" in layer:
            error = layer.get("error") if isinstance(layer, dict) else layer
            raise PermanentError(f"ArcGIS error: {error}", url)
        return {"layer_url": url, "layer": layer}

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        out = super().map(entry, details, notes)
        layer = (details or {}).get("layer")
        if isinstance(layer, dict):
            out["columns"] = _layer_columns(layer)
            if layer.get("type") == "Table":
                out["asset_type"] = "dataset"
        return out


def _layer_columns(layer: dict) -> list[dict]:
    columns = []
    geometry = R.text(layer.get("geometryType"))
    shape_type = "point" if geometry == "esriGeometryPoint" else "geometry"
    for field in layer.get("fields") or []:
        if not isinstance(field, dict):
            continue
        source_type = R.text(field.get("type"))
        field_name = R.text(field.get("name"))
        kind = R.column_type(source_type, COLUMN_TYPES)
        columns.append({
            "position": len(columns), "name": R.text(field.get("alias")) or field_name, "field_name": field_name,
            "type": shape_type if kind == "geometry" else kind, "source_type": source_type,
            "description": R.plain_text(field.get("description")) if isinstance(field.get("description"), str) else None,
        })
    if geometry and not any(c["source_type"] == "esriFieldTypeGeometry" for c in columns):
        # the features' shape is a column of the data, though most layers list it apart
        columns.append({"position": len(columns), "name": "geometry", "field_name": None,
                        "type": shape_type, "source_type": geometry, "description": None})
    return columns
