"""One config listing a portal of every kind, harvested in one `civicat harvest` run."""
import json

from click.testing import CliRunner

from harvester.cli import cli
from harvester.portals import ADAPTERS
from harvester.config import KINDS
from tests.portals.base import LocalPortal
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.open311 import Open311Portal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_data_json, make_socrata_entries
from tests.harvester.portals.test_ckan import packages
from tests.harvester.portals.test_open311 import JSON_SERVICES


def test_every_config_kind_has_an_adapter():
    assert set(ADAPTERS) == set(KINDS)


class FeatureServers(LocalPortal):
    """Any `…/FeatureServer/<n>` answers one small point layer."""

    LAYER = {"type": "Feature Layer", "geometryType": "esriGeometryPoint",
             "fields": [{"name": "OBJECTID", "type": "esriFieldTypeOID"}, {"name": "NAME", "type": "esriFieldTypeString"}]}

    def route(self, path, query):
        return (200, self.LAYER) if "/FeatureServer/" in path else (404, {"error": "no"})


def test_one_run_harvests_a_portal_of_every_kind(tmp_path):
    with FeatureServers() as services, SocrataPortal(make_socrata_entries(120)) as socrata, \
            CkanPortal(packages(30), prefix="/ckan") as ckan, DataJsonPortal(make_data_json(15)) as dcat, \
            DataJsonPortal(make_data_json(12, seed=4, services_url=services.url), path=HUB_FEED_PATH) as hub, \
            OpenDataSoftPortal(make_ods_datasets(25)) as ods, Open311Portal(services=JSON_SERVICES) as o311:
        portals = [("soc", "socrata", socrata.url, 'domain = "data.example.org"'), ("ck", "ckan", ckan.url, ""),
                   ("dj", "dcat-us", dcat.url + "/data.json", ""), ("hub", "arcgis-hub", hub.url, ""),
                   ("ods", "opendatasoft", ods.url, ""), ("o311", "open311", o311.url, "")]
        config = tmp_path / "every.toml"
        config.write_text("".join(f'[[portals]]\nid = "{i}"\ncity = "City {i}"\nkind = "{k}"\nurl = "{u}"\n{extra}\n\n'
                                  for i, k, u, extra in portals))
        result = CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", str(tmp_path / "c.duckdb"),
                                          "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    seen = {p["portal_id"]: (p["status"], p["new"], p["errors"]) for p in report["portals"]}
    assert seen == {"soc": ("ok", 120, 0), "ck": ("ok", 30, 0), "dj": ("ok", 15, 0), "hub": ("ok", 12, 0),
                    "ods": ("ok", 25, 0), "o311": ("ok", 1, 0)}
    out = CliRunner().invoke(cli, ["sql", "--db", str(tmp_path / "c.duckdb"), "--format", "json",
                                   "SELECT portal_kind, count(*) AS n FROM datasets GROUP BY ALL ORDER BY 1"])
    assert {r["portal_kind"]: r["n"] for r in json.loads(out.output)} == {
        "socrata": 120, "ckan": 30, "dcat-us": 15, "arcgis-hub": 12, "opendatasoft": 25, "open311": 1}
    layers = CliRunner().invoke(cli, ["sql", "--db", str(tmp_path / "c.duckdb"), "--format", "json",
                                      "SELECT count(DISTINCT dataset_uid) AS n FROM columns WHERE dataset_uid LIKE 'hub:%'"])
    assert json.loads(layers.output)[0]["n"] > 0
