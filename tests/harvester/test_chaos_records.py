"""Seeded chaos nights for records pulls (`civicat harvest --records`) and the export: a local
portal of every kind that has records (SODA, a CKAN DataStore, ArcGIS FeatureServer layers
paged by `resultOffset` and by `objectIds`, OpenDataSoft, Open311), harvested night after
night while their rows change (added, edited, removed, made wide) and any request may meet
one of test_chaos's faults, under a low response cap (CIVICAT_HTTP_MAX_BYTES).

After every night, for every dataset, against a model of the rows each portal served:
- a pull that failed leaves the published Parquet byte-identical, its `record_pulls` row as
  it was, and the failure in `harvest_errors`; its staged parts (the state a pull resumes
  from) hold each row once, as many as `progress.json` says;
- a pull that succeeded holds exactly the rows served (each once, none missing, its values
  those of the last version), typed as the dataset's columns say: a full pull the rows the
  portal serves, an incremental one (SODA, Open311) those merged into the previous pull's;
  a pull that resumed the parts a night before left holds them too;
- a wide row makes pages over the cap that are asked smaller (a row over the cap alone fails
  the pull: never skipped);
- the Parquet export and data.json equal the catalogue (test_chaos.check_export), data.json
  valid DCAT-US 1.1, and the export's records are the published ones.

CI runs seeds 1 and 2, 6 nights each (~20 s a seed). `CIVICAT_CHAOS_SEEDS=0-99
CIVICAT_CHAOS_NIGHTS=8` runs many (not in CI). Session 17 ran seeds 1-40, 7 nights each
(5 with faults): ~2,500 faults met, ~1,000 pulls ok, ~380 failed, ~100 started over and
~25 resumed from staged parts, ~115 pulls that asked smaller pages and ~55 refused a row
over the cap; seeds 5 and 29 found the DataStore's stale pages (fixed) before the last 14
seeds passed. Session 19 ran seeds 1-30 with 15 nights: seed 2 found an ODS half page answered
with the end of the page before (rows published twice, the count met: fixed), seeds 3 and 7 this
model's Open311 resume point (rows added before it since are the next pull's).
"""
from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import harvester.portals.ckan as ckan_module
import harvester.records as records_module
from catalog.records import RecordsLayout
from catalog.store import Store
from harvester.pipeline import harvest
from harvester.portals.open311 import REQUEST_FIELDS
from tests.conftest import portal_config
from tests.harvester.portals.test_arcgis_records import hub_entry
from tests.harvester.test_chaos import (FAULT_FREE_TIMEOUT, FAULT_RATES, TIMEOUT, Chaos, bounded_night, chaos_client,
                                        chaotic, check_export, seeds)
from tests.portals.arcgis import FeatureServerPortal
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.open311 import Open311Portal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry

DOMAIN = "data.example.org"
CAP = 24_000                 # the response cap: pages of ordinary rows fit, two or three wide rows do not
WIDE, TOO_WIDE = 9_000, CAP + 2_000   # a wide row's text; one over the cap on its own
PART_ROWS = 30               # rows per staged part: a pull cut short mid-dataset leaves parts to resume from
DATASTORE_PAGE = 60          # the DataStore's page (32,000 in production)
LAYER_PAGE = 40              # the layers' maxRecordCount
OPEN311_PAGE = 20            # requests.json's page (the server's)
NIGHT_ZERO = datetime(2024, 3, 1, 12, tzinfo=UTC)
SODA_ID, CKAN_ID = "ab12-cd34", "00000000-0000-0000-0000-00000000c0de"
PAGED, BY_IDS = "/arcgis/rest/services/Paged/FeatureServer/0", "/arcgis/rest/services/ByIds/FeatureServer/0"
ITEM_PAGED, ITEM_BY_IDS = "a" * 32, "b" * 32


@dataclass
class Row:
    version: int = 0
    width: int = 0    # how many characters pad its text: 0, WIDE or TOO_WIDE
    night: int = 0    # the night it last changed (SODA's :updated_at)


def label(key: int, row: Row) -> str:
    return f"row {key} version {row.version} " + "w" * row.width


def amount(key: int, row: Row) -> float:
    return key + row.version / 4


def updated_at(night: int) -> str:
    return (NIGHT_ZERO + timedelta(hours=night)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Dataset:
    """One dataset's rows as the model sees them (key → Row), and how its portal serves them
    and its Parquet holds them: the columns of its key, text and number, the exact schema."""
    portal: str
    source_id: str
    key: str
    text: str
    number: str
    schema: pa.Schema
    serve: Callable[[dict[int, Row]], None]
    incremental: bool = False            # a pull after a complete one merges what changed into it
    serial_keys: bool = True             # new keys come past the largest (else anywhere in the key order)
    wide_rows: bool = True               # a page's size is a request parameter: pages of wide rows shrink
    rows: dict[int, Row] = field(default_factory=dict)
    order: list[int] | None = None       # the order the portal serves rows in, where not by key
    # read in windows of time (Open311): when each row was requested; a pull cut short goes on at its
    # state's `start`, and a row added before that since is left to the next (incremental) pull
    requested_at: Callable[[int], datetime] | None = None

    @property
    def uid(self) -> str:
        return f"{self.portal}:{self.source_id}"

    def change(self, rng: random.Random, night: int, last: bool) -> None:
        """Rows removed, edited, added; some made wide (or narrow again), rarely one over the
        cap (never on the fault-free last night, which must pull everything)."""
        changed = set()
        for key in rng.sample(sorted(self.rows), min(rng.choice((0, 1, 4, 12)), len(self.rows) - 20)):
            del self.rows[key]
        changed.update(rng.sample(sorted(self.rows), min(rng.choice((0, 1, 5, 25)), len(self.rows))))
        for _ in range(rng.choice((0, 1, 3, 15))):
            key = max(self.rows) + 1 if self.serial_keys else rng.randrange(1, 10**7)
            self.rows.setdefault(key, Row(night=night))
        for key, row in self.rows.items():
            if row.width == TOO_WIDE or (last and row.width) or (row.width and rng.random() < 0.3):
                changed.add(key)
                row.width = 0
        if self.wide_rows and not last:
            for key in rng.sample(sorted(self.rows), rng.choice((0, 0, 1, 2, 3))):
                changed.add(key)
                self.rows[key].width = WIDE
        if not last and rng.random() < 0.08:
            key = rng.choice(sorted(self.rows))
            changed.add(key)
            self.rows[key].width = TOO_WIDE
        for key in changed:
            self.rows[key].version += 1
            self.rows[key].night = night

    def served_order(self) -> list[int]:
        return self.order if self.order is not None else sorted(self.rows)

    def served(self) -> dict[int, tuple]:
        return {key: (label(key, row), amount(key, row)) for key, row in self.rows.items()}


def parquet_key(value) -> int:
    """A key column's value as the model's key (SODA's `row-00000042`, Open311's text ids)."""
    return int(value.removeprefix("row-")) if isinstance(value, str) else value


def read_rows(dataset: Dataset, files: list[Path]) -> tuple[pa.Schema | None, list[tuple]]:
    """(schema, [(key, text, number), ...]) of Parquet files, in their order."""
    if not files:
        return None, []
    # (each file alone: pyarrow before 25 reads a file's `portal=…/dataset=…` folders into columns)
    table = pa.concat_tables([pq.ParquetFile(f).read() for f in files])
    return table.schema, [(parquet_key(k), t, n) for k, t, n in zip(
        *(table[c].to_pylist() for c in (dataset.key, dataset.text, dataset.number)))]


def published(layout: RecordsLayout, dataset: Dataset) -> dict[str, bytes]:
    folder = layout.folder(dataset.portal, dataset.source_id)
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*"))} if folder.is_dir() else {}


def published_rows(layout: RecordsLayout, dataset: Dataset) -> dict[int, tuple]:
    _, rows = read_rows(dataset, sorted(layout.folder(dataset.portal, dataset.source_id).glob("*.parquet")))
    return {key: (text, number) for key, text, number in rows}


# -- the portals: each serves its datasets' rows as its product does ---------------------------

def soda_view() -> dict:
    return {"id": SODA_ID, "name": "Counts", "columns": [{"fieldName": "label", "dataTypeName": "text"},
                                                          {"fieldName": "amount", "dataTypeName": "number"}]}


def serve_soda(portal: SocrataPortal) -> Callable[[dict[int, Row]], None]:
    def serve(rows: dict[int, Row]) -> None:   # SODA's JSON and CSV give text values
        portal.records[SODA_ID] = SodaTable(pa.Table.from_pylist([
            {":id": f"row-{key:08d}", ":updated_at": updated_at(row.night), "label": label(key, row),
             "amount": str(amount(key, row))} for key, row in rows.items()]))
    return serve


def serve_ckan(portal: CkanPortal) -> Callable[[dict[int, Row]], None]:
    def serve(rows: dict[int, Row]) -> None:
        portal.records["res-1"] = [{"_id": key, "label": label(key, row), "amount": amount(key, row)}
                                   for key, row in rows.items()]
    return serve


def layer(paged: bool) -> dict:
    return {"type": "Feature Layer", "geometryType": "esriGeometryPoint", "objectIdField": "OBJECTID",
            "maxRecordCount": LAYER_PAGE, "advancedQueryCapabilities": {"supportsPagination": paged},
            "fields": [{"name": "OBJECTID", "type": "esriFieldTypeOID"}, {"name": "LABEL", "type": "esriFieldTypeString"},
                       {"name": "AMOUNT", "type": "esriFieldTypeDouble"}]}


def serve_layer(portal: FeatureServerPortal, path: str) -> Callable[[dict[int, Row]], None]:
    def serve(rows: dict[int, Row]) -> None:
        portal.layers[path] = (portal.layers[path][0], [
            {"attributes": {"OBJECTID": key, "LABEL": label(key, row), "AMOUNT": amount(key, row)},
             "geometry": {"x": key % 90, "y": 1.5}} for key, row in rows.items()])
    return serve


def ods_dataset() -> dict:
    dataset = make_ods_datasets(1)[0]
    dataset["has_records"] = True
    dataset["fields"] = [{"name": "key", "label": "Key", "type": "int", "description": None},
                         {"name": "label", "label": "Label", "type": "text", "description": None},
                         {"name": "amount", "label": "Amount", "type": "double", "description": None}]
    return dataset


def serve_ods(portal: OpenDataSoftPortal, name: str, rng: random.Random, order: list[int]) \
        -> Callable[[dict[int, Row]], None]:
    """ODS rows carry no key and come in the portal's order (`order`): new ones land anywhere."""
    def serve(rows: dict[int, Row]) -> None:
        order[:] = [key for key in order if key in rows]
        for key in rows:
            if key not in order:
                order.insert(rng.randrange(len(order) + 1), key)
        portal.records[name] = [{"key": key, "label": label(key, rows[key]), "amount": amount(key, rows[key])}
                                for key in order]
    return serve


def open311_requested(today: datetime) -> Callable[[int], datetime]:
    start = today - timedelta(days=60)   # inside the 90 days an incremental pull reads again
    return lambda key: start + timedelta(minutes=key)


def serve_open311(portal: Open311Portal, requested_at: Callable[[int], datetime]) -> Callable[[dict[int, Row]], None]:
    def serve(rows: dict[int, Row]) -> None:   # newest first: a new request shifts every page
        portal.service_requests = [
            {"service_request_id": str(key), "status": "open", "description": label(key, row),
             "requested_datetime": requested_at(key).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "lat": amount(key, row)} for key, row in rows.items()]
    return serve


ARROW = {"text": pa.string(), "url": pa.string(), "number": pa.float64(), "datetime": pa.timestamp("us", tz="UTC")}


class StartsOver(logging.Handler):
    """The datasets whose pull found parts staged and started over (records.py's warning)."""

    def __init__(self):
        super().__init__()
        self.uids: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if "the pull starts over" in record.msg:
            self.uids.add(record.args[0])


class RecordsChaos(Chaos):
    """Chaos whose draws leave out Open311's `end_date` (the time of the pull: the last
    window ends now), so that a seed meets the same faults whenever it runs."""

    def decide(self, path, query):
        return super().decide(path, {k: v for k, v in query.items() if k != "end_date"})


# -- the invariants of a night --------------------------------------------------------------

@dataclass
class Before:
    """What one dataset was before a night: its published files, its record_pulls row, the rows
    it published, the rows staged for a pull to resume from (in the order read) and the state it
    resumes at."""
    files: dict[str, bytes]
    pulled: tuple | None
    rows: dict[int, tuple]
    staged: list[tuple]
    state: dict | None = None


def staged_progress(layout: RecordsLayout, dataset: Dataset) -> dict | None:
    path = layout.staging(dataset.portal, dataset.source_id) / "progress.json"
    return json.loads(path.read_text()) if path.exists() else None


def staged_rows(layout: RecordsLayout, dataset: Dataset) -> list[tuple]:
    progress = staged_progress(layout, dataset)
    if progress is None:
        return []
    parts = layout.staging(dataset.portal, dataset.source_id) / "parts"
    return read_rows(dataset, [parts / name for name in progress["parts"]])[1]


def before_night(store: Store, layout: RecordsLayout, dataset: Dataset) -> Before:
    progress = staged_progress(layout, dataset)
    return Before(published(layout, dataset), pulled_row(store, dataset), published_rows(layout, dataset),
                  staged_rows(layout, dataset), progress and progress["state"])


def pulled_row(store: Store, dataset: Dataset) -> tuple | None:
    return store.con.execute("SELECT * FROM record_pulls WHERE dataset_uid = ?", [dataset.uid]).fetchone()


def check_staged(layout: RecordsLayout, dataset: Dataset) -> None:
    """The state a pull cut short resumes from: its parts hold as many rows as progress.json
    says, each once, each a row the portal served (at some night)."""
    staging = layout.staging(dataset.portal, dataset.source_id)
    if not (staging / "progress.json").exists():
        return
    progress = json.loads((staging / "progress.json").read_text())
    rows = staged_rows(layout, dataset)
    keys = [key for key, _, _ in rows]
    assert len(rows) == progress["rows"] and len(keys) == len(set(keys)), (dataset.uid, progress)
    assert not list((staging / "parts").glob("*.tmp")), dataset.uid


def check_resumed(dataset: Dataset, got: dict, expected: dict, staged: list[tuple], state: dict | None) -> None:
    """A pull resumed from staged rows keeps them as they were read (a row edited or removed
    since may be its older version; one inserted among them since is not read), and holds
    every row the portal serves after the last of them (windows of time: requested from the
    state's `start` on), as served (no row twice: checked before)."""
    order = dataset.served_order()
    if dataset.requested_at is not None and isinstance(state, dict) and "start" in state:
        resumed_at = datetime.fromisoformat(state["start"])
        after = [key for key in order if dataset.requested_at(key) >= resumed_at]
    else:
        last = staged[-1][0]
        after = order[order.index(last) + 1:] if last in order else order
    as_staged = {key: (text, number) for key, text, number in staged}
    missing = [key for key in after if key in expected and got.get(key) != expected[key]]
    assert not missing, (dataset.uid, "rows after the staged ones not as served", missing[:5])
    invented = [key for key, value in got.items() if value not in (expected.get(key), as_staged.get(key))]
    assert not invented, (dataset.uid, "rows neither served nor staged", [(k, got[k], expected.get(k), as_staged.get(k)) for k in invented[:3]])


def check_dataset(store: Store, layout: RecordsLayout, run, dataset: Dataset, before: Before, started_over: bool) -> str:
    """The invariants of one dataset's night; returns its outcome."""
    portal = next(p for p in run.portals if p.portal_id == dataset.portal)
    pulled = pulled_row(store, dataset)
    failures = store.con.execute(
        "SELECT error_type, message FROM harvest_errors WHERE run_id = ? AND portal_id = ? AND source_id = ? AND "
        "stage = 'records' AND severity = 'error'", [run.run_id, dataset.portal, dataset.source_id]).fetchall()
    if pulled is not None and pulled[9] == run.run_id:   # (record_pulls.run_id) pulled this night
        assert not failures, (dataset.uid, failures)
        schema, rows = read_rows(dataset, sorted(layout.folder(dataset.portal, dataset.source_id).glob("*.parquet")))
        assert schema == dataset.schema, (dataset.uid, schema)
        keys = [key for key, _, _ in rows]
        assert len(keys) == len(set(keys)), (dataset.uid, sorted(k for k, n in Counter(keys).items() if n > 1)[:5])
        expected = {**before.rows, **dataset.served()} if dataset.incremental else dataset.served()
        got = {key: (text, number) for key, text, number in rows}
        if before.staged and not started_over:   # the rows staged as read, every row after them as served
            check_resumed(dataset, got, expected, before.staged, before.state)
        else:
            assert got.keys() == expected.keys(), (dataset.uid, "missing", sorted(expected.keys() - got.keys())[:5],
                                                    "extra", sorted(got.keys() - expected.keys())[:5])
            wrong = [key for key in expected if got[key] != expected[key]]
            assert not wrong, (dataset.uid, [(got[k][0][:40], expected[k][0][:40]) for k in wrong[:3]])
        assert pulled[4] == len(rows)   # (record_pulls.row_count)
        # never skipped (a resumed pull read the rows it staged before they grew past the cap)
        read_before = {key for key, _, _ in before.staged} if before.staged and not started_over else set()
        assert not any(row.width == TOO_WIDE and key not in read_before for key, row in dataset.rows.items()), dataset.uid
        assert not layout.staging(dataset.portal, dataset.source_id).exists()
        return ("started over" if started_over else "resumed") if before.staged else "ok"
    # not pulled: the published records and their record_pulls row as they were
    assert published(layout, dataset) == before.files, dataset.uid
    assert pulled == before.pulled, dataset.uid
    if portal.status == "ok":   # its portal stored: the dataset's failure is recorded, with its reason
        [(error_type, message)] = failures
        assert error_type and message.startswith(f"records pull failed ({dataset.uid}): "), message
    else:
        assert store.con.execute("SELECT status FROM harvest_runs WHERE run_id = ? AND portal_id = ?",
                                 [run.run_id, dataset.portal]).fetchone() == ("failed",)
    check_staged(layout, dataset)
    return "failed"


def check_exported_records(tmp_path: Path, layout: RecordsLayout, datasets: list[Dataset]) -> None:
    """The export's records folders are the published ones, file for file."""
    exported = RecordsLayout(tmp_path / "export" / "records")
    for dataset in datasets:
        assert published(exported, dataset) == published(layout, dataset), dataset.uid


def chaos_nights(seed: int, nights: int, tmp_path: Path) -> dict:
    """`nights` nights of changing rows and faults (the first fault-free, the faults drawn on the
    others), then a fault-free night that must pull everything; returns what was exercised."""
    rng = random.Random(seed)
    names = ("soc", "ck", "hub", "fs", "ods", "o311")
    chaos = {name: RecordsChaos(seed, name) for name in names}
    db = tmp_path / f"chaos-records-{seed}.duckdb"
    layout = RecordsLayout.beside(db)
    ods_entry = ods_dataset()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    outcomes: Counter = Counter()
    starts_over = StartsOver()
    logging.getLogger("civicat.records").addHandler(starts_over)
    with chaotic(FeatureServerPortal)({PAGED: (layer(True), []), BY_IDS: (layer(False), [])},
                                      chaos=chaos["fs"]) as services, \
            chaotic(SocrataPortal)([discovery_entry(soda_view(), DOMAIN)], domain=DOMAIN, chaos=chaos["soc"]) as soc, \
            chaotic(CkanPortal)([], prefix="/ckan", datastore={"res-1": [
                {"id": "_id", "type": "int"}, {"id": "label", "type": "text"}, {"id": "amount", "type": "numeric"}]},
                chaos=chaos["ck"]) as ckan, \
            chaotic(DataJsonPortal)({"dataset": []}, path=HUB_FEED_PATH, chaos=chaos["hub"]) as hub, \
            chaotic(OpenDataSoftPortal)([ods_entry], chaos=chaos["ods"]) as ods, \
            chaotic(Open311Portal)(services=[], chaos=chaos["o311"]) as o311:
        ckan.packages = [{"id": CKAN_ID, "name": "counts", "title": "Counts in the DataStore", "resources": [
            {"id": "res-1", "name": "counts", "format": "CSV", "datastore_active": True,
             "url": f"{ckan.url}/datastore/dump/res-1"}]}]
        hub.document = {"dataset": [hub_entry(ITEM_PAGED, "Paged layer", services.url + PAGED),
                                    hub_entry(ITEM_BY_IDS, "Layer read by object ids", services.url + BY_IDS)]}
        o311.services = [{"service_code": "svc-1", "service_name": "Potholes", "description": "A pothole",
                          "metadata": False, "type": "realtime", "keywords": "", "group": "Streets"}]
        o311.PAGE_SIZE = OPEN311_PAGE
        ods_order: list[int] = []
        esri = pa.schema([("OBJECTID", pa.int64()), ("LABEL", pa.string()), ("AMOUNT", pa.float64()),
                          ("geometry", pa.string())])
        datasets = [
            Dataset("soc", SODA_ID, ":id", "label", "amount", pa.schema([
                (":id", pa.string()), (":updated_at", pa.timestamp("us", tz="UTC")), ("label", pa.string()),
                ("amount", pa.float64())]), serve_soda(soc), incremental=True, serial_keys=False),
            Dataset("ck", CKAN_ID, "_id", "label", "amount", pa.schema([
                ("_id", pa.int64()), ("label", pa.string()), ("amount", pa.float64())]), serve_ckan(ckan)),
            Dataset("hub", f"{ITEM_PAGED}_0", "OBJECTID", "LABEL", "AMOUNT", esri, serve_layer(services, PAGED)),
            Dataset("hub", f"{ITEM_BY_IDS}_0", "OBJECTID", "LABEL", "AMOUNT", esri, serve_layer(services, BY_IDS)),
            Dataset("ods", ods_entry["dataset_id"], "key", "label", "amount", pa.schema([
                ("key", pa.int64()), ("label", pa.string()), ("amount", pa.float64())]),
                serve_ods(ods, ods_entry["dataset_id"], rng, ods_order), serial_keys=False, order=ods_order),
            Dataset("o311", "service-requests", "service_request_id", "description", "lat",
                    pa.schema([(name, ARROW[kind]) for name, kind, _ in REQUEST_FIELDS]),
                    serve_open311(o311, open311_requested(today)), incremental=True, wide_rows=False,
                    requested_at=open311_requested(today)),
        ]
        for dataset in datasets:
            first = rng.randrange(150, 260)
            keys = range(1, first + 1) if dataset.serial_keys else rng.sample(range(1, 10**7), first)
            dataset.rows = {key: Row() for key in sorted(keys)}
        urls = {"soc": soc.url, "ck": ckan.url, "hub": hub.url, "ods": ods.url, "o311": o311.url}
        kinds = {"soc": "socrata", "ck": "ckan", "hub": "arcgis-hub", "ods": "opendatasoft", "o311": "open311"}
        def configs(timeout: float) -> list:
            return [portal_config(name, kinds[name], urls[name], timeout=timeout,
                                  records=tuple(d.source_id for d in datasets if d.portal == name),
                                  **({"domain": DOMAIN} if name == "soc" else {})) for name in urls]
        for night in range(nights + 1):   # the last night fault-free: it must pull everything
            for dataset in datasets:
                if night:
                    dataset.change(rng, night, last=night == nights)
                dataset.serve(dataset.rows)
            for portal_chaos in chaos.values():
                portal_chaos.new_night(night, 0.0 if night in (0, nights) else rng.choice(FAULT_RATES))
            store = Store(db)   # a process a night, as cron runs `civicat harvest --records`
            starts_over.uids.clear()
            before = {d.uid: before_night(store, layout, d) for d in datasets}
            timeout = FAULT_FREE_TIMEOUT if night in (0, nights) else TIMEOUT   # (see there)
            run = bounded_night(lambda: harvest(configs(timeout), store, chaos_client(tmp_path, max_bytes=CAP,
                                                                                      timeout=timeout),
                                                records=True, workers=3), night, nights)
            for dataset in datasets:
                outcome = check_dataset(store, layout, run, dataset, before[dataset.uid], dataset.uid in starts_over.uids)
                if night in (0, nights):
                    assert outcome != "failed", dataset.uid
                outcomes[outcome] += 1
            outcomes["smaller pages"] += store.con.execute(
                "SELECT count(*) FROM harvest_errors WHERE run_id = ? AND error_type = 'SmallerPages' AND "
                "stage = 'records'", [run.run_id]).fetchone()[0]
            outcomes["over the cap"] += store.con.execute(
                "SELECT count(*) FROM harvest_errors WHERE run_id = ? AND error_type = 'ResponseTooLarge' AND "
                "stage = 'records'", [run.run_id]).fetchone()[0]
            store.close()
            check_export(db, tmp_path, [SimpleNamespace(name=name) for name in urls])
            check_exported_records(tmp_path, layout, datasets)
    logging.getLogger("civicat.records").removeHandler(starts_over)
    faults = Counter()
    for c in chaos.values():
        faults.update(c.injected)
    return {"nights": nights + 1, "outcomes": outcomes, "faults": faults}


@pytest.mark.parametrize("seed", seeds())
def test_records_chaos_nights_publish_every_row_once_or_keep_the_previous_records(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(records_module, "PART_ROWS", PART_ROWS)
    monkeypatch.setattr(ckan_module, "RECORD_ROWS", DATASTORE_PAGE)
    exercised = chaos_nights(seed, int(os.environ.get("CIVICAT_CHAOS_NIGHTS", "5")), tmp_path)
    print(f"seed {seed}: {json.dumps(exercised)}")
    assert sum(exercised["faults"].values()) > 0 and exercised["outcomes"]["ok"] > 0
