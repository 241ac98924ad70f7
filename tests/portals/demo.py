"""A demo of civicat that runs offline: the payloads recorded from real portals in
../shared/fixtures served by the local portal servers of this package, all on one port of
127.0.0.1, and a config (TOML) to harvest them (`python -m tests.portals`, README "Try it
offline").

What each portal serves (every kind a city runs; ../shared/fixtures/SOURCES.md says where
each file was recorded):
- socrata: the 2017 catalogues of the five G7 cities on Socrata (the Discovery entries,
  with columns, of flattened-catalog/spellarbot-2018), one Socrata portal, one entry per
  domain, as configs/g7.toml has them; and the 1,000 rows recorded of Seattle's SPD 911
  (socrata-records), the `records` of its entry;
- dcat-us: Philadelphia's data.json (v1.1) and Boston's of 2013 (the legacy array);
- arcgis-hub: Evian's Hub feed; its FeatureServer layers were not recorded, so recorded
  layers of other ArcGIS servers stand in for them (as tests/harvester/portals/test_arcgis_hub.py does);
- ckan: the package_search pages recorded of Stadt Zürich, Birmingham and EnviDat;
- open311: San Francisco's and Giessen's services.xml;
- opendatasoft: nothing recorded, so a synthetic catalogue (make_ods_datasets), its city
  named as such.

The files those catalogues link for download (data.json's CSV distributions, CKAN's resources) were
not recorded: their links are served pointing at the demo's own server, under NOT_RECORDED, which
answers 404 saying so. The demo promises to run offline, and `civicat records --overlap` on its
catalogue pulled Philadelphia's and Boston's files from their real hosts (session 40's finding).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.portals.base import LocalPortal, json_error
from tests.portals.catalogues import PLACES, evian_feed, serve_hub_layers
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.open311 import Open311Portal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal, SodaTable
from tests.shared_fixtures import FIXTURES, load_json

SPD_911 = "3k2p-39jp"   # Seattle's 911 incident responses: 1,000 of their rows recorded (2015)
# the G7 cities on Socrata: configs/g7.toml's id of each, and its domain
SOCRATA_CITIES = {"sf": "data.sfgov.org", "nyc": "data.cityofnewyork.us", "seattle": "data.seattle.gov",
                  "la": "data.lacity.org", "chicago": "data.cityofchicago.org"}
CKAN_SITES = {   # id: (city, the package_search pages recorded of it)
    "zurich": ("Zürich", ["zurich-stadt-package_search-verkehr.json"]),
    "birmingham": ("Birmingham", ["birmingham-uk-package_search-purchase-card.json"]),
    "envidat": ("EnviDat (Switzerland)", ["envidat-ch-package_search.json"]),
}
DATA_JSON = {   # id: (city, the data.json recorded)
    "philadelphia": ("Philadelphia", "philadelphia-opendataphilly-data.json"),
    "boston-2013": ("Boston", "socrata-pod-2013-08-28/data.cityofboston.gov.json"),
}
OPEN311 = {"sf-311": ("San Francisco", "sf-sf311v2-services.xml"), "giessen-311": ("Giessen", "giessen-de-services.xml")}


class OnePort(LocalPortal):
    """Local portals sharing one server: each answers the requests under its own `prefix`
    (a portal here is never started itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.mounted: list[LocalPortal] = []

    def mount(self, portal: LocalPortal) -> str:
        """`portal` served under its prefix: its URL."""
        if not portal.prefix:
            raise ValueError("a mounted portal needs a prefix of its own")
        self.mounted.append(portal)
        return self.url + portal.prefix

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        for portal in self.mounted:
            if path == portal.prefix or path.startswith(portal.prefix + "/"):
                return portal._wsgi(environ, start_response)
        return super()._wsgi(environ, start_response)   # (404, naming the path)


# where the demo answers for the files its catalogues link: '/not-recorded/https/host/path'
NOT_RECORDED = "/not-recorded"
# a link to the data in a data.json (a distribution's, a legacy entry's) or a Hub feed; a CKAN resource's is its url
DATA_LINK_KEYS = {"downloadURL", "accessURL", "webService", "feed"}


class NotRecorded(LocalPortal):
    """The files the recorded catalogues link: 404, naming the real link, which the demo does not follow."""

    def route(self, path: str, query) -> tuple[int, object]:
        scheme, _, rest = path.lstrip("/").partition("/")
        return 404, json_error(404, f"the offline demo recorded no copy of {scheme}://{rest}: it does not go online")


def kept_offline(payload, server_url: str):
    """`payload` with every link to the data (a distribution's downloadURL or accessURL, a legacy
    entry's webService or feed, a CKAN resource's url) not on the demo's server pointed at its NotRecorded:
    'https://host/path' becomes '{server_url}/not-recorded/https/host/path'."""
    def offline(url):
        if isinstance(url, str) and url.startswith(("http://", "https://")) and not url.startswith(server_url + "/"):
            scheme, _, rest = url.partition("://")
            return f"{server_url}{NOT_RECORDED}/{scheme}/{rest}"
        return url

    if isinstance(payload, list):
        return [kept_offline(item, server_url) for item in payload]
    if not isinstance(payload, dict):
        return payload
    return {key: offline(value) if key in DATA_LINK_KEYS
            else [{**r, "url": offline(r.get("url"))} if isinstance(r, dict) else r for r in value]
            if key == "resources" and isinstance(value, list)
            else kept_offline(value, server_url) for key, value in payload.items()}


@dataclass
class Entry:
    """One portal of the demo's config."""
    id: str
    city: str
    kind: str
    url: str
    domain: str | None = None
    note: str = ""
    records: list[str] = field(default_factory=list)

    def toml(self) -> str:
        lines = [f"[[portals]]{'   # ' + self.note if self.note else ''}", f'id   = "{self.id}"',
                 f"city = {json.dumps(self.city, ensure_ascii=False)}", f'kind = "{self.kind}"', f'url  = "{self.url}"']
        if self.domain:
            lines.append(f'domain = "{self.domain}"')
        if self.records:
            lines.append(f"records = {json.dumps(self.records)}")
        return "\n".join(lines) + "\n"


def mount_demo(server: OnePort) -> list[Entry]:
    """The demo's portals mounted on `server` (started): its config's entries."""
    entries: list[Entry] = []
    server.mount(NotRecorded(prefix=NOT_RECORDED))

    socrata_entries = [e for domain in SOCRATA_CITIES.values()
                       for e in load_json(f"flattened-catalog/spellarbot-2018/{domain}.json")]
    records = {SPD_911: SodaTable.from_rows(load_json("socrata-records/seattle-3k2p-39jp-spd-911-page1000.json"))}
    socrata = SocrataPortal(socrata_entries, domain="unused.example.org", prefix="/socrata", records=records)
    socrata.missing_records = "the offline demo recorded no records of {id}: it does not go online"
    url = server.mount(socrata)
    entries += [Entry(pid, PLACES[domain], "socrata", url, domain, f"{domain} in 2017",
                      records=[SPD_911] if pid == "seattle" else [])
                for pid, domain in SOCRATA_CITIES.items()]

    documents = DataJsonPortal([], path="/unused", prefix="/dcat-us")
    url = server.mount(documents)
    for pid, (city, name) in DATA_JSON.items():
        documents.serve_json(f"/{pid}/data.json", kept_offline(load_json(f"dcat-us/{name}"), server.url))
        entries.append(Entry(pid, city, "dcat-us", f"{url}/{pid}/data.json"))

    layers = LocalPortal(prefix="/arcgis")
    feed = evian_feed(server.mount(layers))
    serve_hub_layers(feed, layers, server.url + layers.prefix)
    url = server.mount(DataJsonPortal(kept_offline(feed, server.url), path=HUB_FEED_PATH, prefix="/hub/evian"))
    entries.append(Entry("evian", "Évian-les-Bains", "arcgis-hub", url,
                         note="its layers: recorded ones of other ArcGIS servers"))

    for pid, (city, names) in CKAN_SITES.items():
        searches = [load_json(f"ckan/{name}") for name in names]   # (some recorded with the envelope, some without)
        packages = {p["id"]: kept_offline(p, server.url)
                    for search in searches for p in search.get("result", search)["results"]}
        url = server.mount(CkanPortal(list(packages.values()), prefix=f"/ckan/{pid}"))
        entries.append(Entry(pid, city, "ckan", url))

    for pid, (city, name) in OPEN311.items():
        url = server.mount(Open311Portal(services_xml=(FIXTURES / "open311" / name).read_bytes(),
                                         prefix=f"/open311/{pid}"))
        entries.append(Entry(pid, city, "open311", url))

    ods = OpenDataSoftPortal(make_ods_datasets(7), prefix="/ods")
    ods.missing_records = "the offline demo recorded no records of {id}: it does not go online"
    url = server.mount(ods)
    entries.append(Entry("exemple", "Exemple (synthetic)", "opendatasoft", url,
                         note="synthetic: no OpenDataSoft payload is recorded"))
    return entries


def config_text(entries: list[Entry], url: str) -> str:
    return (f"# civicat's offline demo: recorded payloads of real portals served on {url}\n"
            f"# by `python -m tests.portals` (README \"Try it offline\"); it holds while that runs.\n\n"
            + "\n".join(entry.toml() for entry in entries))
