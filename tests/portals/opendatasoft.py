"""Local OpenDataSoft portal: Explore API v2.1 catalog with its caps and export."""

from __future__ import annotations

from typing import Any, Iterable

import itertools
import json
import random

from .base import LocalPortal, Query, RawBody

API = "/api/explore/v2.1/catalog"


def ods_error(message: str) -> dict:
    return {"error_code": "InvalidRESTParameterError", "message": message}


def make_ods_datasets(n: int, seed: int = 0) -> list[dict]:
    """Catalog entries shaped as Explore v2.1 returns them (flat `results[]` items)."""
    themes = ["Transport, Mobility", "Environment", "Culture, Heritage", "Administration, Government"]
    subjects = ["Bicycle counters", "Parking occupancy", "Air quality measurements", "Street trees",
                "Public toilets", "Building permits", "Council budget"]
    out = []
    for i in range(n):
        subject = subjects[(i + seed) % len(subjects)]
        out.append({
            "dataset_id": f"{subject.lower().replace(' ', '-')}-{i:05d}",
            "dataset_uid": f"da_{i:06x}",
            "has_records": i % 9 != 0,
            "features": ["analyze", "geo"] if i % 2 else ["analyze"],
            "visibility": "domain",
            "metas": {
                "default": {
                    "title": f"{subject} {2000 + i % 25}", "description": f"<p>{subject} of the city.</p>",
                    "keyword": ["open data", subject.split()[0].lower()], "theme": [themes[i % len(themes)]],
                    "publisher": "Ville d'Exemple", "modified": f"2024-0{1 + i % 9}-15T08:30:00+00:00",
                    "license": "Licence Ouverte / Open Licence", "license_url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence",
                    "territory": ["Exemple"], "records_count": 100 + i, "language": "fr",
                },
                "dcat": {"accrualperiodicity": "http://publications.europa.eu/resource/authority/frequency/DAILY",
                         "contact_email": "opendata@exemple.fr", "issued": "2019-03-01"},
            },
            "fields": [
                {"name": "id", "label": "Identifiant", "type": "text", "description": None},
                {"name": "count", "label": "Comptage", "type": "int", "description": "Passages"},
                {"name": "rate", "label": "Taux", "type": "double", "description": None},
                {"name": "date", "label": "Date", "type": "datetime", "description": None},
                {"name": "geo_point_2d", "label": "Position", "type": "geo_point_2d", "description": None},
            ],
        })
    return out


class OpenDataSoftPortal(LocalPortal):
    """Explore v2.1: `catalog/datasets` (limit ≤ 100 else 400, offset+limit ≤ 10,000 else
    400, `order_by=dataset_id` honoured, `select` of field literals: a dataset's own fields, and its
    metadata as `<template>.<name>` (`default.modified`; the `default.` prefix optional), each
    answered where the dataset holds it (`metas.default.modified`), another literal a 400 ODSQL
    error as ODS answers an unknown field),
    `catalog/exports/json` (the whole catalogue)."""

    MAX_LIMIT = 100
    MAX_WINDOW = 10_000
    missing_records: str | None = None   # what a dataset's records answer when it has none ({id}); None: unknown path

    def __init__(self, datasets: Iterable[dict], prefix: str = "", records: dict[str, list[dict]] | None = None,
                 count_cap: int | None = None, replicas: int = 1, record_orders: tuple[str, ...] = ("_id",)) -> None:
        super().__init__(prefix)
        self.datasets = list(datasets)
        self.records = dict(records or {})  # dataset id → its records (flat objects)
        # `total_count` said as at most this many, as a search index's default count stops at 10,000
        # ("For datasets list, total is max 10000": data-fair/data-fair#89; data.gouv.fr#753)
        self.count_cap = count_cap
        # records pages without `order_by` come in each replica's own order, the replicas answering in
        # turn (a search index's replicas break ties each their own way); ordered by the record's id,
        # in that order on every replica
        self.replicas = replicas
        self._answers = itertools.count()
        # the names of the record's id an `order_by` may use: v2.1's `_id` (its OpenAPI `record` schema);
        # v2.0's technical field `recordid` is not one of v2.1's record fields, so it is refused as any
        # field the portal does not know (a 400 ODSQL error); () refuses both
        self.record_orders = record_orders

    def _records_in_order(self, rows: list, query: Query) -> list | tuple[int, dict]:
        order = query.get("order_by")
        if order is not None:
            if order not in self.record_orders:
                return 400, {"error_code": "ODSQLError", "message": f"Unknown field: {order}"}
            return rows   # (record ids given in the order the rows were loaded)
        replica = next(self._answers) % self.replicas
        if replica:
            rows = list(rows)
            random.Random(replica).shuffle(rows)
        return rows

    def _count(self, rows: list) -> int:
        return len(rows) if self.count_cap is None else min(len(rows), self.count_cap)

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        for dataset_id, rows in self.records.items():
            base = f"{API}/datasets/{dataset_id}"
            if path == f"{base}/exports/jsonl":
                return 200, RawBody("".join(json.dumps(r) + "\n" for r in rows).encode(), "application/jsonl")
            if path == f"{base}/records":
                limit, offset = int(query.get("limit", 10)), int(query.get("offset", 0))
                if limit > self.MAX_LIMIT:
                    return 400, ods_error(f"Invalid value for limit API parameter: {limit}")
                if offset + limit > self.MAX_WINDOW:
                    return 400, ods_error("Invalid value for offset API parameter: offset + limit must be <= 10000.")
                ordered = self._records_in_order(rows, query)
                if isinstance(ordered, tuple):
                    return ordered
                return 200, {"total_count": self._count(rows), "results": ordered[offset:offset + limit]}
        if path == f"{API}/exports/json":
            return 200, self.datasets
        if self.missing_records and path.startswith(f"{API}/datasets/"):   # (a dataset whose records it has not)
            return 404, ods_error(self.missing_records.format(id=path.removeprefix(f"{API}/datasets/").split("/")[0]))
        if path != f"{API}/datasets":
            return 404, ods_error(f"Unknown path {path}")
        limit, offset = int(query.get("limit", 10)), int(query.get("offset", 0))
        if limit > self.MAX_LIMIT:
            return 400, ods_error(f"Invalid value for limit API parameter: {limit} was found but -1 <= limit <= 100 is expected.")
        if offset + limit > self.MAX_WINDOW:
            return 400, ods_error("Invalid value for offset API parameter: offset + limit must be <= 10000.")
        ordered = self.datasets
        if query.get("order_by") == "dataset_id":
            ordered = sorted(ordered, key=lambda d: str(d.get("dataset_id")) if isinstance(d, dict) else "")
        results = ordered[offset:offset + limit]
        if query.get("select"):   # a select clause of field literals: each dataset's that it has
            literals = [name.strip() for name in query["select"].split(",")]
            unknown = [name for name in literals if _path(name) is None]
            if unknown:
                return 400, {"error_code": "ODSQLError", "message": f"Unknown field: {unknown[0]}"}
            results = [_selected(dataset, literals) for dataset in results if isinstance(dataset, dict)]
        return 200, {"total_count": self._count(ordered), "results": results}


# a catalogue entry's own fields (ODS's "technical fields"), and its metadata templates
TECHNICAL_FIELDS = {"dataset_id", "dataset_uid", "has_records", "features", "visibility", "fields", "attachments",
                    "data_visible", "metas"}
TEMPLATES = {"default", "dcat", "dcat_ap", "explore", "inspire", "semantic", "visualization", "custom"}


def _path(literal: str) -> tuple[str, ...] | None:
    """Where a catalogue field literal is in a dataset: a technical field, `<template>.<name>`
    in `metas`, a bare name in `metas.default` (Explore's catalogue docs: the prefix is optional
    for basic metadata); None: not a field literal (`metas.default.modified` among them)."""
    parts = literal.split(".")
    if len(parts) == 1:
        return (literal,) if literal in TECHNICAL_FIELDS else ("metas", "default", literal)
    return ("metas", *parts) if len(parts) == 2 and parts[0] in TEMPLATES else None


def _selected(dataset: dict, literals: list[str]) -> dict:
    """The fields of `dataset` a select names, each where the dataset holds it (nested: the
    shape of a whole entry; that of a real answer to a select of metadata is not known)."""
    out: dict = {}
    for literal in literals:
        *holders, last = _path(literal)
        value, into = dataset, out
        for key in holders:
            value = value.get(key) if isinstance(value, dict) else None
            into = into.setdefault(key, {})
        if isinstance(value, dict) and last in value:
            into[last] = value[last]
    return out


class StalePagePortal(OpenDataSoftPortal):
    """An ODS behind a stale cache: the records request `stale` (its query, e.g. offset and
    limit) is answered once with the page before it at the size it asks, the rows a pull read
    just before it: each records page after the first is asked from the row before it, so the
    page before ends at `offset` (offset - limit + 1)."""

    def __init__(self, *args, stale: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stale: dict[str, str] | None = stale

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        if path.endswith("/records") and self.stale and all(query.get(k) == v for k, v in self.stale.items()):
            self.stale = None
            query = {**query, "offset": str(int(query["offset"]) - int(query["limit"]) + 1)}
        return super().route(path, query)
