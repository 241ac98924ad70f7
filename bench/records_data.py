"""A synthetic dataset shaped like Seattle's SPD 911 Incident Response (3k2p-39jp): its 12
main columns, values drawn from the recorded page, built column-wise with Arrow so
millions of rows take seconds, served as SODA serves them (text values)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tests.portals.socrata import SodaTable, discovery_entry

BIG_ID, SMALL_ID = "bnch-0001", "bnch-0002"
FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "socrata-records" / \
    "seattle-3k2p-39jp-spd-911-page1000.json"
COLUMNS = [  # field name, Socrata dataTypeName
    ("cad_cdw_id", "text"), ("cad_event_number", "text"), ("event_clearance_code", "text"),
    ("event_clearance_description", "text"), ("event_clearance_subgroup", "text"), ("event_clearance_group", "text"),
    ("event_clearance_date", "calendar_date"), ("hundred_block_location", "text"), ("district_sector", "text"),
    ("zone_beat", "text"), ("longitude", "number"), ("latitude", "number"),
]
CATEGORICAL = ("event_clearance_code", "event_clearance_description", "event_clearance_subgroup",
               "event_clearance_group", "hundred_block_location", "district_sector", "zone_beat")


def _vocabulary(name: str) -> list[str]:
    if FIXTURE.exists():
        values = sorted({r[name] for r in json.loads(FIXTURE.read_text()) if r.get(name)})
        if values:
            return values
    return [f"{name.upper()} {i}" for i in range(40)]


def build_table(rows: int, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    index = np.arange(rows, dtype=np.int64)
    columns = {
        ":id": pc.binary_join_element_wise("row-", pc.utf8_lpad(pa.array(index).cast(pa.string()), 9, "0"), ""),
        ":updated_at": pa.array(np.full(rows, "2024-01-15T12:00:00.000Z")),
        "cad_cdw_id": pa.array(15000 + index).cast(pa.string()),
        "cad_event_number": pa.array(10000246471 + index * 3).cast(pa.string()),
    }
    for name in CATEGORICAL:
        vocabulary = pa.array(_vocabulary(name))
        picks = rng.integers(0, len(vocabulary), rows)
        columns[name] = vocabulary.take(pa.array(picks))
    stamps = pa.array(np.datetime64("2010-07-17T20:50:00") + index * np.timedelta64(37, "s"))
    columns["event_clearance_date"] = pc.strftime(stamps, "%Y-%m-%dT%H:%M:%S")
    columns["longitude"] = pa.array(np.round(rng.uniform(-122.45, -122.25, rows), 9)).cast(pa.string())
    columns["latitude"] = pa.array(np.round(rng.uniform(47.5, 47.73, rows), 9)).cast(pa.string())
    # a few empty values, as on the real page
    blank = pa.array(rng.random(rows) < 0.02)
    columns["district_sector"] = pc.if_else(blank, pa.scalar(None, pa.string()), columns["district_sector"])
    order = [":id", ":updated_at"] + [name for name, _ in COLUMNS]
    return pa.table({name: columns[name] for name in order})


def view(dataset_id: str, name: str) -> dict:
    return {"id": dataset_id, "name": name, "category": "Public Safety",
            "columns": [{"fieldName": f, "name": f.replace("_", " ").title(), "dataTypeName": t} for f, t in COLUMNS]}


def records_portal_parts(rows: int, domain: str) -> tuple[list[dict], dict[str, SodaTable]]:
    table = build_table(rows)
    small = table.slice(0, max(1, rows // 10))
    entries = [discovery_entry(view(BIG_ID, "SPD 911 Incident Response (synthetic)"), domain),
               discovery_entry(view(SMALL_ID, "SPD 911 Incident Response (first tenth)"), domain)]
    return entries, {BIG_ID: SodaTable(table), SMALL_ID: SodaTable(small)}
