"""Real multi-city catalogues from ../shared/fixtures, harvested through local portals:
for the overlap detector's tests and its quality benchmark.

- the 33 Socrata domains of 2017 (flattened-catalog/spellarbot-2018, with columns), one
  portal per domain, served by one local Socrata portal;
- the 16 city data.json catalogues of 2013 (dcat-us/socrata-pod-2013-08-28), one dcat-us
  portal per city;
- Evian's ArcGIS Hub feed, its FeatureServer layers answered by recorded layers of other servers.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from catalog.store import Store
from harvester.http import HttpClient
from harvester.pipeline import harvest
from harvester.portals.arcgis_hub import layer_url
from tests.conftest import portal_config
from tests.portals.base import LocalPortal
from tests.portals.dcat import DataJsonPortal
from tests.portals.socrata import SocrataPortal
from tests.shared_fixtures import FIXTURES, load_json, require_fixtures, spellarbot_domain_files


# The place each real catalogue serves, as its portal names it (Socrata's attribution 'City of Chicago',
# 'King County', 'Cook County Clerk'; the city of a 2013 data.json's domain): what a real config sets as
# `city`, and what the detector drops from the titles as their own place's name ('Chicago Crimes' are the
# city's 'Crimes'). A federal agency's portals are that agency's (CDC's two, CMS's Medicare and Medicaid).
PLACES = {
    "chronicdata.cdc.gov": "CDC", "data.cdc.gov": "CDC",
    "data.medicare.gov": "CMS", "data.medicaid.gov": "CMS",
    "data.energystar.gov": "ENERGY STAR", "data.imls.gov": "IMLS", "opendata.fcc.gov": "FCC",
    "data.austintexas.gov": "Austin", "data.baltimorecity.gov": "Baltimore", "data.brla.gov": "Baton Rouge",
    "data.cityofboston.gov": "Boston", "data.cityofchicago.org": "Chicago", "data.cityofmadison.com": "Madison",
    "data.cityofnewyork.us": "New York", "data.edmonton.ca": "Edmonton", "data.hartford.gov": "Hartford",
    "data.honolulu.gov": "Honolulu", "data.jacksonms.gov": "Jackson", "data.kingcounty.gov": "King County",
    "data.lacity.org": "Los Angeles", "data.montgomerycountymd.gov": "Montgomery County",
    "data.nola.gov": "New Orleans", "data.oaklandnet.com": "Oakland", "data.raleighnc.gov": "Raleigh",
    "data.seattle.gov": "Seattle", "data.sfgov.org": "San Francisco", "data.slcgov.com": "Salt Lake City",
    "data.somervillema.gov": "Somerville", "data.srcity.org": "Santa Rosa",
    "datacatalog.cookcountyil.gov": "Cook County",
    "data.ct.gov": "Connecticut", "data.hawaii.gov": "Hawaii", "data.illinois.gov": "Illinois",
    "data.iowa.gov": "Iowa", "data.maryland.gov": "Maryland", "data.mo.gov": "Missouri",
    "data.ny.gov": "New York State", "data.oregon.gov": "Oregon", "data.wa.gov": "Washington State",
}


def place_of(domain: str) -> str:
    """The place a real catalogue's domain serves; a domain not in PLACES is an error to fix there."""
    try:
        return PLACES[domain]
    except KeyError:
        raise KeyError(f"no place named for the fixture domain {domain!r}: add it to PLACES") from None


def portal_id(domain: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", domain.lower()).strip("-")


def spellarbot_entries(domains: list[str] | None = None) -> dict[str, list[dict]]:
    """Discovery entries per domain (all 33, or the named ones)."""
    out = {}
    for path in spellarbot_domain_files():
        if domains is None or path.stem in domains:
            out[path.stem] = json.loads(path.read_text())
    return out


def harvest_spellarbot(store: Store, http: HttpClient, domains: list[str] | None = None,
                       select=None) -> dict[str, int]:
    """Harvest the 2017 Socrata domains (entries filtered by `select(entry)` if given);
    each domain is its place (PLACES). Returns the number of entries served per domain."""
    by_domain = spellarbot_entries(domains)
    if select is not None:
        by_domain = {d: [e for e in entries if select(e)] for d, entries in by_domain.items()}
    entries = [e for domain_entries in by_domain.values() for e in domain_entries]
    with SocrataPortal(entries, domain="unused.example.org") as portal:
        configs = [portal_config(portal_id(d), "socrata", portal.url, domain=d, city=place_of(d))
                   for d, domain_entries in by_domain.items() if domain_entries]
        report = harvest(configs, store, http)
    assert report.ok, [p.error_message for p in report.portals if p.status != "ok"]
    return {d: len(e) for d, e in by_domain.items()}


def pod_2013_files() -> list[Path]:
    return sorted((FIXTURES / "dcat-us" / "socrata-pod-2013-08-28").glob("*.json"))


def harvest_pod_2013(store: Store, http: HttpClient) -> int:
    """Harvest the 16 city data.json catalogues of 2013 (legacy arrays), one portal per city (PLACES)."""
    configs = []
    with DataJsonPortal([], path="/unused") as portal:
        for path in pod_2013_files():
            portal.serve_json(f"/{path.stem}/data.json", json.loads(path.read_text()))
            configs.append(portal_config("pod-" + portal_id(path.stem), "dcat-us",
                                         f"{portal.url}/{path.stem}/data.json", city=place_of(path.stem)))
        report = harvest(configs, store, http)
    assert report.ok, [p.error_message for p in report.portals if p.status != "ok"]
    return len(configs)


def harvest_data_json(store: Store, http: HttpClient, catalogues: dict[str, tuple[str, list[dict]]]) -> None:
    """Serve and harvest one DCAT-US catalog per portal id: {portal_id: (city, datasets)}."""
    configs = []
    with DataJsonPortal([], path="/unused") as portal:
        for pid, (city, datasets) in catalogues.items():
            document = {"conformsTo": "https://project-open-data.cio.gov/v1.1/schema", "dataset": datasets}
            portal.serve_json(f"/{pid}/data.json", document)
            configs.append(portal_config(pid, "dcat-us", f"{portal.url}/{pid}/data.json", city=city))
        report = harvest(configs, store, http)
    assert report.ok, [p.error_message for p in report.portals if p.status != "ok"]


@lru_cache(maxsize=1)
def fixture_datasets() -> dict[tuple[str, str], tuple[str, str]]:
    """(domain, id) -> (title, description) of every fixture dataset."""
    require_fixtures()
    out = {}
    for domain, entries in spellarbot_entries().items():
        for e in entries:
            out[(domain, e["resource"]["id"])] = (e["resource"]["name"], e["resource"].get("description") or "")
    for path in pod_2013_files():
        for e in json.loads(path.read_text()):
            if isinstance(e, dict) and e.get("identifier"):
                out.setdefault((path.stem, e["identifier"]), (e.get("title"), e.get("description") or ""))
    return out


# recorded layers of other ArcGIS servers: Evian's own were not recorded
HUB_LAYERS = ["cook-county-poi-layer-metadata.json", "chicago-census-places-layer-metadata.json",
              "esri-test-layer-metadata.json", "columbia-mo-layer-metadata.json", "polk-fl-addresses-layer-metadata.json"]


def evian_feed(services_url: str) -> dict:
    """The real Evian Hub feed, its FeatureServer links pointed at the local services host."""
    text = json.dumps(load_json("dcat-us/evian-fr-arcgis-hub-data.json"))
    return json.loads(text.replace("https://services.arcgis.com", services_url))


def serve_hub_layers(feed: dict, services: LocalPortal, services_url: str) -> list[str]:
    """Each layer `feed` names at `services_url` (where `services` answers) served by a recorded
    layer, HUB_LAYERS in turn: their paths on `services`, in the feed's order."""
    paths = [url.split(services_url, 1)[1] for url in map(layer_url, feed["dataset"])
             if url and url.startswith(services_url)]
    for number, path in enumerate(paths):
        services.serve_json(path, load_json(f"arcgis-featureserver/{HUB_LAYERS[number % len(HUB_LAYERS)]}"))
    return paths
