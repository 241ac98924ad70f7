"""A fleet of synthetic portals of all six kinds, for bench.nightly: a few large ones and
many small ones, shaped like the real fixture entries (tests/portals/synth.py), each on a
port of its own (a host of its own, as cities are: per-host request limits apply to each),
served from one process (bench.serve's `nightly` kind).

Between nights the serving process changes its catalogues (`change`): a few percent of each
portal's entries changed, removed and added, and two portals failing, one with a 500, one
with an HTML page behind a 200.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from tests.portals.base import LocalPortal
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.open311 import Open311Portal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import DEPARTMENTS, LICENSES, TAGS, make_data_json, make_socrata_entries

# the kinds in turn, as the small portals take them (Socrata and CKAN the commonest)
KINDS = ["socrata", "ckan", "socrata", "dcat-us", "ckan", "opendatasoft", "arcgis-hub", "socrata", "open311"]
LARGE_KINDS = ["socrata", "ckan", "opendatasoft", "dcat-us"]   # the large portals' kinds, in turn
LARGE = 50_000          # datasets of a large portal (fewer when the whole fleet is smaller)
HUB_MOST = 400          # a Hub's datasets: each with a layer names one more request
SERVICES = 40           # an Open311 endpoint's services (one dataset)
CHANGED, REMOVED, ADDED = 0.03, 0.01, 0.01   # shares of each portal's entries on the changing night


@dataclass
class FleetPortal:
    id: str
    kind: str
    portal: LocalPortal
    entries: list            # the list the portal serves (changed in place)
    seed: int
    extra: dict = field(default_factory=dict)   # config keys besides id, city, kind, url
    layer_host: str = "{host}"   # where its Hub entries' layers are (known once it is served)

    def describe(self) -> dict:
        url = self.portal.url + ("/data.json" if self.kind == "dcat-us" else "")
        return {"id": self.id, "city": f"City {self.id}", "kind": self.kind, "url": url, **self.extra,
                "datasets": 1 if self.kind == "open311" else len(self.entries)}


def sizes(portals: int, datasets: int, seed: int = 0, largest: int = LARGE) -> list[int]:
    """Datasets per portal: `portals` sizes summing to about `datasets`, half of them in the
    large portals (one per hundred portals, `largest` each at most), the rest spread over the
    small ones, a few hundred each, unevenly (a long tail; none larger than the large ones)."""
    rng = random.Random(seed)
    large = max(1, portals // 100) if portals >= 10 else 0
    large_size = min(largest, datasets // 2 // max(large, 1))
    rest = max(datasets - large * large_size, portals - large)
    weights = [rng.paretovariate(1.5) for _ in range(portals - large)]
    scale = rest / sum(weights) if weights else 0
    return [large_size] * large + [min(max(1, round(w * scale)), large_size or largest) for w in weights]


def ckan_packages(n: int, seed: int, site: str) -> list[dict]:
    """n packages shaped as package_search gives them (the keys of the real Birmingham one:
    resources with their formats and urls, tags, organization, extras)."""
    rng = random.Random(seed)
    subjects = [e["resource"]["name"] for e in make_socrata_entries(min(n, 200) or 1, seed=seed)]
    out = []
    for i in range(n):
        package_id = str(uuid.UUID(int=rng.getrandbits(128)))
        title = f"{subjects[i % len(subjects)]} {i}"
        modified = f"20{15 + i % 10}-0{1 + i % 9}-{1 + i % 28:02d}T10:{i % 60:02d}:28.638659"
        resources = [{"id": str(uuid.UUID(int=rng.getrandbits(128))), "package_id": package_id, "position": r,
                      "name": f"{title} ({fmt})", "format": fmt, "mimetype": None, "datastore_active": False,
                      "url": f"https://{site}/dataset/{package_id}/resource/{r}/download/data.{fmt.lower()}",
                      "created": "2014-12-01T10:31:31.570360", "last_modified": None, "size": None,
                      "state": "active", "url_type": "upload", "description": ""}
                     for r, fmt in enumerate(rng.sample(["CSV", "XLS", "JSON", "PDF", "GeoJSON"], rng.randint(1, 3)))]
        department = DEPARTMENTS[i % len(DEPARTMENTS)]
        out.append({
            "id": package_id, "name": f"{title.lower().replace(' ', '-')[:80]}-{i}", "title": title, "type": "dataset",
            "notes": f"{title}, published by the {department}.", "state": "active", "private": False,
            "license_title": LICENSES[i % len(LICENSES)], "license_id": "ogl-uk-3.0",
            "author": department, "author_email": "opendata@example.gov", "maintainer": "Open Data Team",
            "maintainer_email": "opendata@example.gov", "metadata_created": "2014-12-01T10:29:19.414595",
            "metadata_modified": modified, "num_resources": len(resources), "resources": resources,
            "num_tags": 2, "tags": [{"name": t, "display_name": t, "state": "active"} for t in rng.sample(TAGS, 2)],
            "groups": [], "organization": {"name": "city", "title": f"City of {site}", "is_organization": True},
            "extras": [{"key": "update_frequency", "value": rng.choice(["daily", "monthly", "annually"])}],
            "url": "", "version": "",
        })
    return out


LAYER = {"currentVersion": 10.91, "id": 0, "name": "layer", "type": "Feature Layer",
         "geometryType": "esriGeometryPoint", "objectIdField": "OBJECTID", "maxRecordCount": 2000,
         "fields": [{"name": "OBJECTID", "type": "esriFieldTypeOID", "alias": "OBJECTID"},
                    {"name": "NAME", "type": "esriFieldTypeString", "alias": "Name", "length": 100},
                    {"name": "STATUS", "type": "esriFieldTypeString", "alias": "Status", "length": 50},
                    {"name": "OPENED", "type": "esriFieldTypeDate", "alias": "Opened", "length": 8},
                    {"name": "WARD", "type": "esriFieldTypeSmallInteger", "alias": "Ward"}],
         "capabilities": "Query", "advancedQueryCapabilities": {"supportsPagination": True}}


class HubPortal(DataJsonPortal):
    """An ArcGIS Hub site: its feed, and any FeatureServer layer under /services (the layers
    its feed names), each answering the same layer document."""

    def route(self, path, query):
        if "/FeatureServer/" in path:
            return 200, LAYER
        return super().route(path, query)


def _socrata(pid: str, n: int, seed: int) -> FleetPortal:
    domain = f"{pid}.example.org"
    entries = make_socrata_entries(n, domain=domain, seed=seed)
    portal = SocrataPortal(entries, domain=domain)
    return FleetPortal(pid, "socrata", portal, portal.entries, seed, {"domain": domain})


def build(portals: int, datasets: int, seed: int = 0, largest: int = LARGE) -> list[FleetPortal]:
    """The fleet, not started."""
    fleet = []
    counts = sizes(portals, datasets, seed, largest)
    large = sum(1 for c in counts if c == counts[0]) if portals >= 10 else 0
    for index, n in enumerate(counts):
        kind = LARGE_KINDS[index % len(LARGE_KINDS)] if index < large else KINDS[index % len(KINDS)]
        pid, s = f"p{index:03d}-{kind}", seed * 1000 + index
        if kind == "arcgis-hub":
            n = min(n, HUB_MOST)
        if kind == "socrata":
            fleet.append(_socrata(pid, n, s))
        elif kind == "ckan":
            portal = CkanPortal(ckan_packages(n, s, f"{pid}.example.org"))
            fleet.append(FleetPortal(pid, kind, portal, portal.packages, s))   # (the portal's own list)
        elif kind == "opendatasoft":
            portal = OpenDataSoftPortal(make_ods_datasets(n, seed=s))
            fleet.append(FleetPortal(pid, kind, portal, portal.datasets, s))
        elif kind in ("dcat-us", "arcgis-hub"):
            hub = kind == "arcgis-hub"
            portal = HubPortal({}, path=HUB_FEED_PATH) if hub else DataJsonPortal({})
            document = make_data_json(n, seed=s, services_url="http://{host}/services/rest")
            portal.document = document
            fleet.append(FleetPortal(pid, kind, portal, document["dataset"], s))
        else:
            services = [{"service_code": f"svc-{i:03d}", "service_name": f"Service {i}", "group": "Streets",
                         "description": "A request", "metadata": False, "type": "realtime", "keywords": "street"}
                        for i in range(SERVICES)]
            fleet.append(FleetPortal(pid, kind, Open311Portal(services), services, s))
    return fleet


def point_layers_at(member: FleetPortal) -> None:
    """A Hub's distributions name its layers on its own port (known once started); a
    data.json's name a host nobody asks (dcat-us reads no layer)."""
    member.layer_host = member.portal.url.removeprefix("http://") if member.kind == "arcgis-hub" \
        else "services.example.org"
    _point_at(member.entries, member.layer_host)


def _point_at(datasets: list, host: str) -> None:
    for dataset in datasets:
        for distribution in dataset["distribution"]:
            distribution["accessURL"] = distribution["accessURL"].replace("{host}", host)


def _key(member: FleetPortal, entry) -> str:
    return {"socrata": lambda e: e["resource"]["id"], "ckan": lambda e: e["id"],
            "opendatasoft": lambda e: e["dataset_id"], "open311": lambda e: e["service_code"]
            }.get(member.kind, lambda e: e["identifier"])(entry)


def _edit(member: FleetPortal, entry) -> None:
    if member.kind == "socrata":
        entry["resource"]["name"] += " (revised)"
        entry["resource"]["updatedAt"] = entry["resource"]["metadata_updated_at"] = "2026-12-01T00:00:00.000Z"
    elif member.kind == "ckan":
        entry["title"] += " (revised)"
        entry["metadata_modified"] = "2026-12-01T00:00:00.000000"
    elif member.kind == "opendatasoft":
        entry["metas"]["default"]["title"] += " (revised)"
        entry["metas"]["default"]["modified"] = "2026-12-01T00:00:00+00:00"
    elif member.kind == "open311":
        entry["description"] += " (revised)"
    else:
        entry["title"] += " (revised)"
        entry["modified"] = "2026-12-01T00:00:00.000Z"


def _new_entries(member: FleetPortal, n: int, night: int = 1) -> list:
    """`n` entries the portal has never served (`night`: the changing night's number, each night's others)."""
    seed = member.seed + 10_000_000 * night
    if member.kind == "socrata":
        return make_socrata_entries(n, domain=member.extra["domain"], seed=seed)
    if member.kind == "ckan":
        return ckan_packages(n, seed, f"{member.id}.example.org")
    if member.kind == "opendatasoft":
        added = make_ods_datasets(n, seed=member.seed)
        suffix = "-added" if night == 1 else f"-added{night}"   # (its ids are by position, not by seed)
        for entry in added:
            entry["dataset_id"] += suffix
            entry["dataset_uid"] += suffix
        return added
    added = make_data_json(n, seed=seed, services_url="http://{host}/services/rest")["dataset"]
    _point_at(added, member.layer_host)
    return added


def change(fleet: list[FleetPortal], seed: int = 1, *, failing_portals: bool = True) -> dict:
    """The changing night: in every portal a few percent of entries changed, removed and added
    (at least one of each where the portal has 20 entries or more; an Open311 endpoint's one
    dataset changed in one of three); the first Socrata portal of the small ones answers 500,
    the first small CKAN portal a maintenance page behind a 200 (unless not `failing_portals`).
    Returns what a harvest should find: per portal id, its expected changed, removed and new
    datasets, and the failing ids. Each `seed` changes other entries and adds others (night
    after night: bench.nights)."""
    rng = random.Random(seed)
    expected, failing = {}, {}
    largest = max(len(member.entries) for member in fleet)
    for member in fleet:
        if failing_portals and member.kind not in failing.values() and member.kind in ("socrata", "ckan") \
                and len(member.entries) < largest:
            fault = ("status", 500) if member.kind == "socrata" else "html"
            member.portal.inject("/", fault, times=1_000_000)
            failing[member.id] = member.kind
            continue
        if member.kind == "open311":
            edited = member.id.endswith(("0", "3", "6"))
            if edited:
                _edit(member, member.entries[0])
            expected[member.id] = {"changed": int(edited), "removed": 0, "new": 0}
            continue
        entries = member.entries
        n = len(entries)
        def share(fraction):
            return max(1, round(n * fraction)) if n >= 20 else 0
        picked = rng.sample(range(n), share(CHANGED) + share(REMOVED)) if n >= 20 else []
        edited, removed = picked[:share(CHANGED)], set(picked[share(CHANGED):])
        for i in edited:
            _edit(member, entries[i])
        entries[:] = [e for i, e in enumerate(entries) if i not in removed]
        added = _new_entries(member, share(ADDED), seed)
        known = {_key(member, e) for e in entries}
        added = [e for e in added if _key(member, e) not in known]
        entries.extend(added)
        expected[member.id] = {"changed": len(edited), "removed": len(removed), "new": len(added)}
    return {"expected": expected, "failing": {pid: ("a 500" if kind == "socrata" else "an HTML page behind a 200")
                                              for pid, kind in failing.items()}}
