"""ArcGIS Hub sites (opendata.dc.gov and most US counties): the site's DCAT-US feed
(`{url}/api/feed/dcat-us/1.1.json`) as the listing, the FeatureServer / MapServer layer
its distribution names (`…/FeatureServer/<layer>?f=json`, often on another host such as
services.arcgis.com) for the columns.

The feed's identifiers are item URLs that change with the site's address (or become the
item's slug URL, `…/datasets/<org>::<slug>`); the source id is the Hub item id
(`<item>_<layer>`) from the identifier, else the landing page, else the item's own download
links, the URL kept as `identifier`. ArcGIS answers
errors with HTTP 200 and an `{"error": {...}}` body: those are errors too.
"""
from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from catalog import record as R
from catalog.record import Notes
from harvester.http import PortalError, UnexpectedResult, capped_json, dropped
from harvester.paging import OffsetPaginator, Page, request_text
from harvester.portals.dcat_us import DcatUsAdapter, arcgis_item_id, arcgis_item_of_downloads
from harvester.portals.base import note_columns_cut, refuse_cut_columns
from harvester.records import (MAX_COLUMNS, Conversion, Field, NotPullable, PagesDisagree, RecordsAnswerUnexpected,
                               RecordSource, RowsMissing, SameColumns, SameKeys, SourceChanged, pa, paged_tables, unique_fields)

log = logging.getLogger("civicat.arcgis")

FEED_PATH = "/api/feed/dcat-us/1.1.json"
LAYER_DOCUMENT = capped_json({"fields": MAX_COLUMNS})   # its fields cut as they are read
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
        return (arcgis_item_id(identifier, R.text(entry.get("landingPage")))
                or arcgis_item_of_downloads(entry.get("distribution")) or identifier)

    looked_up = ("layer_url", "layer", "columns_left_out")   # all the layer's
    # A layer's fields change apart from the feed (its item's `modified` need not move), but
    # rarely; asking every layer every night was most of an unchanged night's requests (2,500 of
    # 3,387 at 100 portals, each a 304). An entry listed as stored keeps its layer for a week,
    # each layer asked on a night of its own (the layer's `editingInfo` dates are in the layer's
    # own document: no cheaper request says it changed). A changed entry is asked at once.
    lookup_kept_days = 7

    def entry_details(self, entry: dict) -> dict | None:
        return super().fetch_details(entry)   # the feed's lists cut as it was read

    def needs_lookup(self, entry: dict) -> bool:
        return layer_url(entry) is not None   # (documents, web maps, apps: none)

    def details_without_lookup(self, entry: dict, stored: dict | None) -> dict | None:
        """The stored layer is kept only while the feed names that layer: another one's
        columns are not this dataset's (nor its records' address)."""
        same_layer = stored is not None and stored.get("layer_url") == layer_url(entry)
        return super().details_without_lookup(entry, stored if same_layer else None)

    def fetch_details(self, entry: dict) -> dict | None:
        cut = self.entry_details(entry)
        url = layer_url(entry)
        if url is None:
            return cut  # documents, web maps, apps: no layer to read columns from
        layer = self.http.get_json(url, {"f": "json"}, conditional=True, parse=LAYER_DOCUMENT).data
        if not isinstance(layer, dict):   # (valid JSON, but no layer: not the portal saying error)
            raise UnexpectedResult(f"the layer's answer is a JSON {_json_kind(layer)}, not the layer's object", url)
        if "error" in layer:
            raise PortalError(f"ArcGIS error: {layer['error']}", url)
        left_out = dropped(layer).get("fields")
        return {**(cut or {}), "layer_url": url, "layer": layer,
                **({"columns_left_out": left_out} if left_out else {})}

    def record_source(self, dataset, previous) -> "FeatureServerRecords":
        refuse_cut_columns(dataset)
        url = (dataset.details or {}).get("layer_url") or layer_url(
            {"distribution": [{"accessURL": d.get("access_url"), "downloadURL": d.get("download_url")}
                              for d in dataset.distributions]})
        if not url:
            raise NotPullable(f"{dataset.uid} names no FeatureServer or MapServer layer")
        return FeatureServerRecords(self.http, url)

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        out = super().map(entry, details, notes)
        layer = (details or {}).get("layer")
        if isinstance(layer, dict):
            out["columns"] = _layer_columns(layer)
            note_columns_cut(notes, "the layer", details, len(R.items(layer.get("fields"))))
            if layer.get("type") == "Table":
                out["asset_type"] = "dataset"
        return out


def _json_kind(value) -> str:
    """What a JSON value that is no object is, in JSON's words (for messages)."""
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


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


def _arcgis_data(url: str):
    """An ArcGIS answer's shape check: errors come back as 200 with an `error` object."""
    def check(data) -> str | None:
        if isinstance(data, dict) and "error" in data:
            return f"ArcGIS error: {data['error']}"
        return None if isinstance(data, dict) else "an ArcGIS answer is a JSON object"
    return check


class TransferLimitPaginator(OffsetPaginator):
    """resultOffset paging that goes on while the server says `exceededTransferLimit`
    (it may answer fewer features than asked: its maxRecordCount wins)."""

    def next(self, page: Page, params: dict) -> dict | None:
        if not page.items or not page.cursor:
            return None
        return self._params(params[self.offset_param] + len(page.items))


class IdBatchPaginator(OffsetPaginator):
    """`objectIds` batches by their position in the layer's sorted ids (`ids_from`, `ids`):
    the batch size is a request parameter of ours, so a batch whose answer is over the
    response cap is asked in smaller ones (SmallerPages). Advances by the ids asked, not the
    features answered (a feature deleted meanwhile is no row, and its id is not asked again);
    ends past the last id."""

    def __init__(self, batch: int, ids: int):
        super().__init__(batch, offset_param="ids_from", limit_param="ids", total=ids)

    def next(self, page: Page, params: dict) -> dict | None:
        position = params[self.offset_param] + params[self.limit_param]
        return self._params(position) if position < self.total else None


class FeatureServerRecords(RecordSource):
    """A FeatureServer / MapServer layer's features through `query`: `resultOffset` pages of
    the layer's `maxRecordCount` in object-id order while `exceededTransferLimit` (a page that
    starts at or before the last object id read fails the pull: a stale page), or, when
    the layer does not advertise pagination, batches of `objectIds` from `returnIdsOnly`.
    Attributes typed from the layer's fields (dates are epoch milliseconds, UTC); the
    shape as WKT in `geometry` (WGS84, `outSR=4326`). The count is asked first."""

    def __init__(self, http, url: str):
        self.http, self.url = http, url
        layer = http.get_json(url, {"f": "json"}, expect=_arcgis_data(url)).data
        self.batch = int(layer.get("maxRecordCount") or 1000)
        self.object_id = R.text(layer.get("objectIdField")) or next(
            (f.get("name") for f in layer.get("fields") or [] if isinstance(f, dict)
             and f.get("type") == "esriFieldTypeOID"), None)
        capabilities = layer.get("advancedQueryCapabilities") or {}
        self.paged = bool(capabilities.get("supportsPagination") or layer.get("supportsPagination"))
        self.geometry_type = R.text(layer.get("geometryType"))
        fields = []
        for f in layer.get("fields") or []:
            if not isinstance(f, dict) or not f.get("name") or f.get("type") == "esriFieldTypeGeometry":
                continue
            kind = R.column_type(R.text(f.get("type")), COLUMN_TYPES)
            fields.append(Field(f["name"], "datetime_utc" if kind == "datetime" else kind))
        if self.geometry_type:
            fields.append(Field("geometry", "point" if self.geometry_type == "esriGeometryPoint" else "geometry"))
        if not fields:
            raise RecordsAnswerUnexpected(f"the layer {url} lists no fields")
        self.fields = unique_fields(fields)
        # the object id's column, where resultOffset pages come ordered by it (`orderByFields`):
        # its values then only grow along the pull, and a page that starts at or before the last
        # one read is a stale page (see paged_tables)
        self.order_key = next((f.name for f in self.fields if f.key == self.object_id and f.kind == "integer"), None) \
            if capabilities.get("supportsOrderBy") is not False else None
        self.conversion = Conversion(self.fields)
        self.date_keys = [f.key for f in self.fields if f.kind == "datetime_utc"]
        self.answer_fields = SameColumns()   # the fields each query answer names
        self.attribute_keys = SameKeys([f.key for f in self.fields])   # where an answer names none
        count = self._query({"where": "1=1", "returnCountOnly": "true"}).get("count")
        self.expected_rows = count if isinstance(count, int) else None

    def _query(self, params: dict) -> dict:
        return self.http.get_json(f"{self.url}/query", {**params, "f": "json"}, expect=_arcgis_data(self.url)).data

    def _page(self, data: dict, params: dict) -> Page:
        features = data.get("features")
        if not isinstance(features, list):
            raise RecordsAnswerUnexpected(f"a query answer of {self.url} has no features list")
        if isinstance(data.get("fields"), list):
            self.answer_fields.check([str(f.get("name")) for f in data["fields"] if isinstance(f, dict)], params)
        elif isinstance(data.get("fieldAliases"), dict):   # (MapServer answers: Cook County's)
            self.answer_fields.check([str(name) for name in data["fieldAliases"]], params)
        else:
            self.attribute_keys.check([f.get("attributes") for f in features if isinstance(f, dict)], params)
        rows = []
        for feature in features:
            if not isinstance(feature, dict) or not isinstance(feature.get("attributes") or {}, dict):
                rows.append(None)   # a row of nulls, counted (Conversion.table_from_rows)
                continue
            row = dict(feature.get("attributes") or {})
            for key in self.date_keys:
                if type(row.get(key)) is str:
                    row[key] = esri_text_date(row[key])
            if self.geometry_type:
                row["geometry"] = esri_wkt(feature.get("geometry"))
            rows.append(row)
        return Page(items=self.conversion.table_from_rows(rows),
                    cursor="more" if data.get("exceededTransferLimit") else None)

    def batches(self, resume):
        common = {"where": "1=1", "outFields": "*", "returnGeometry": "true", "outSR": "4326"}
        if self.paged:
            paginator = TransferLimitPaginator(self.batch, offset_param="resultOffset",
                                               limit_param="resultRecordCount",
                                               extra={**common, "orderByFields": self.object_id})
            return paged_tables(lambda params: self._page(self._query(params), params), paginator, resume,
                                key=self.order_key, columns=len(self.fields))
        if not self.object_id:
            raise NotPullable(f"the layer {self.url} supports neither pagination nor object ids")
        ids = self._query({"where": "1=1", "returnIdsOnly": "true"}).get("objectIds") or []
        ids = sorted(i for i in ids if isinstance(i, int))
        id_column = next((f.name for f in self.fields if f.key == self.object_id), None)

        def fetch(params: dict) -> Page:
            chosen = ids[params["ids_from"]:params["ids_from"] + params["ids"]]
            if not chosen:
                return Page(items=self.conversion.schema.empty_table())
            if id_column is None:   # (a layer whose fields leave its object id out: nothing to check by)
                return self._page(self._query({**common, "objectIds": ",".join(map(str, chosen))}), params)
            return self._id_batch(chosen, params, common, id_column)

        if resume is not None and "batch" in resume:   # a pull cut short when batches were numbered
            resume = {"ids_from": resume["batch"] * self.batch, "ids": self.batch}
        return paged_tables(fetch, IdBatchPaginator(self.batch, len(ids)), resume, columns=len(self.fields))

    def check_unchanged(self, staged_glob: str) -> None:
        """resultOffset pages: features added take new object ids, after every feature, and are
        read on to; a feature removed moves the ones after it back, and one past the page being
        read is never read. The count is asked again: one that fell reads the pull again.
        (Object-id batches ask each listed id: a removed feature is no row.)"""
        if not self.paged or self.expected_rows is None:
            return
        count = self._query({"where": "1=1", "returnCountOnly": "true"}).get("count")
        if isinstance(count, int) and count < self.expected_rows:
            started, self.expected_rows = self.expected_rows, count
            raise SourceChanged(f"the layer counted {started} features when the pull began and {count} at its end: "
                                "features removed as it read them move unread ones back past the page being read")

    def _id_batch(self, chosen: list[int], params: dict, common: dict, id_column: str) -> Page:
        """The features of the object ids `chosen`, each once. Ids a server left out are asked
        again (a server may answer fewer than asked: a cap of its own under maxRecordCount);
        an id still left out, and no longer listed by `returnIdsOnly`, was deleted since the
        ids were listed (one still listed fails the pull: a row lost). The layer no longer has
        it, so the pull reads the layer as it now is, one row fewer to reach (failing, it
        failed every pull of a layer whose features are deleted while it is read, and the
        next one read the same). A feature not asked for, or answered twice, fails the pull:
        the server does not select by `objectIds`, and those rows would be published twice."""
        tables, wanted, asked = [], set(chosen), chosen
        while asked:
            page = self._page(self._query({**common, "objectIds": ",".join(map(str, asked))}), params)
            answered = page.items[id_column].to_pylist()
            strays = [i for i in answered if i not in wanted]
            if strays or len(set(answered)) < len(answered):
                raise PagesDisagree(f"the objectIds batch at {request_text(params)} of {self.url} answered features "
                                  f"it did not ask for, or twice (object ids {strays[:5] or 'repeated'}): the server "
                                  "does not select by objectIds, and those rows would be published twice")
            tables.append(page.items)
            wanted.difference_update(answered)
            asked = sorted(wanted) if answered else []
        if wanted:   # deleted only if the layer no longer lists them: else rows the server will not give
            listed = self._query({"where": "1=1", "objectIds": ",".join(map(str, sorted(wanted))),
                                  "returnIdsOnly": "true"}).get("objectIds") or []
            kept = sorted(wanted.intersection(listed))
            if kept:
                raise RowsMissing(f"the objectIds batch at {request_text(params)} of {self.url} answered no feature "
                              f"for object ids the layer still lists ({kept[:5]}): those rows would be lost")
            log.info("%s: %d features listed by returnIdsOnly were deleted before their batch was read (object ids "
                     "%s)", self.url, len(wanted), sorted(wanted)[:5])
            if self.expected_rows is not None:
                self.expected_rows -= len(wanted)
        return Page(items=pa.concat_tables(tables) if len(tables) > 1 else tables[0])


# a date as ArcGIS Server 10.0 writes one in JSON (Cook County's MapServer: "12/23/2005 12:00:00 AM");
# later servers write epoch milliseconds
ESRI_TEXT_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")


def esri_text_date(value: str) -> int | str:
    """ArcGIS's text date as the epoch milliseconds (UTC, as ArcGIS keeps dates) later servers give;
    any other text as it is (its conversion then says it did not parse)."""
    if not ESRI_TEXT_DATE.match(value.strip()):
        return value
    try:
        moment = datetime.strptime(value.strip(), "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=UTC)
    except ValueError:
        return value
    return int(moment.timestamp()) * 1000


def esri_wkt(geometry) -> str | None:
    """An Esri JSON geometry as WKT (polygon rings are kept in one POLYGON, as given)."""
    if not isinstance(geometry, dict):
        return None

    def xy(point) -> str:
        return f"{float(point[0])!r} {float(point[1])!r}"

    try:
        if "x" in geometry and "y" in geometry:
            return None if geometry["x"] is None or geometry["y"] is None else \
                f"POINT ({float(geometry['x'])!r} {float(geometry['y'])!r})"
        if geometry.get("points"):
            return "MULTIPOINT (" + ", ".join(f"({xy(p)})" for p in geometry["points"]) + ")"
        if geometry.get("paths"):
            return "MULTILINESTRING (" + ", ".join(
                "(" + ", ".join(xy(p) for p in path) + ")" for path in geometry["paths"]) + ")"
        if geometry.get("rings"):
            return "POLYGON (" + ", ".join(
                "(" + ", ".join(xy(p) for p in ring) + ")" for ring in geometry["rings"]) + ")"
    except (TypeError, ValueError, IndexError):
        return None
    return None
