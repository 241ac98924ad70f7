"""Real records (recorded, ../shared/fixtures) as a records pull converts them, for tests of what
is done with them on disk: the merge (tests/harvester/test_records_merge.py), the profile
(tests/catalog/test_records.py)."""
from __future__ import annotations

from harvester.portals.open311 import REQUEST_FIELDS, RequestsRecords
from harvester.portals.socrata import SodaRecords
from harvester.records import Field
from tests.shared_fixtures import load_json


def soda_911() -> tuple[str, list[Field], list]:
    """SPD 911's records (Seattle, recorded) as SODA gives them, keyed by `:id`; records that
    were no JSON object among them (rows of nulls: no key)."""
    records = load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json")
    kinds = {"event_clearance_date": "datetime", "incident_location": "point", "longitude": "number",
             "latitude": "number", "cad_cdw_id": "integer"}
    names = list(dict.fromkeys(name for record in records for name in record))
    fields = [Field(":id", "text"), Field(":updated_at", "datetime_utc")] + [Field(n, kinds.get(n, "text"))
                                                                             for n in names]
    rows = [{**record, ":id": f"row-{i:05d}", ":updated_at": "2024-01-15T12:00:00.000Z"}
            for i, record in enumerate(records)]
    for i in (10, 11, 500, 990):
        rows[i] = None
    return SodaRecords.merge_key, fields, rows


def boston_requests() -> tuple[str, list[Field], list]:
    """Boston's Open311 requests (recorded), keyed by `service_request_id`; some without one."""
    requests = load_json("open311/boston-mayors24-requests-abandoned-vehicle-merged-pages.json")
    fields = [Field(name, "datetime_utc" if kind == "datetime" else kind) for name, kind, _ in REQUEST_FIELDS]
    rows = [dict(request) for request in requests]
    for i in (3, 4, 600, 601, 950):
        rows[i].pop("service_request_id")
    rows[601] = dict(rows[600])   # two alike without an id: both kept
    return RequestsRecords.merge_key, fields, rows
