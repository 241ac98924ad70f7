"""The DCAT-US adapter over real HTTP: every recorded data.json document, the Hub feed
path, and documents that are not data.json."""
import json

import pytest

from harvester.pipeline import harvest
from tests.conftest import portal_config
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.synth import make_data_json
from tests.shared_fixtures import dcat_us_files, require_fixtures


def count(store, sql="SELECT count(*) FROM datasets"):
    return store.con.execute(sql).fetchone()[0]


def test_every_recorded_data_json_is_stored(store, http):
    require_fixtures()
    files = dcat_us_files()
    assert len(files) == 18
    configs, expected = [], 0
    with DataJsonPortal([], path="/unused") as portal:
        for number, path in enumerate(files):
            document = json.loads(path.read_text())
            entries = document if isinstance(document, list) else document["dataset"]
            expected += len({e["identifier"] for e in entries})
            portal.serve_json(f"/{number}/data.json", document)
            configs.append(portal_config(f"d{number}", "dcat-us", f"{portal.url}/{number}/data.json"))
        report = harvest(configs, store, http)
    assert report.ok, [p.error_message for p in report.portals if p.status != "ok"]
    rejected = count(store, "SELECT count(*) FROM harvest_errors WHERE severity = 'error'")
    assert rejected == 0
    assert count(store) == expected == sum(p.seen for p in report.portals) - sum(p.duplicates for p in report.portals)
    legacy_self_entries = count(store, "SELECT count(*) FROM datasets WHERE asset_type = 'catalog'")
    assert legacy_self_entries == 16                               # one per 2013 Socrata array
    # Philadelphia's modified "R/P1D" and friends: null with a warning, never a rejection
    assert count(store, "SELECT count(*) FROM harvest_errors WHERE message LIKE 'modified: not a date/time%'") >= 1


def test_hub_feed_and_stable_item_ids(store, http):
    document = make_data_json(12)
    with DataJsonPortal(document, path=HUB_FEED_PATH) as portal:
        config = portal_config("dc", "dcat-us", portal.url + HUB_FEED_PATH)
        assert harvest([config], store, http).ok
        # the site moves to a new address: identifiers and landing pages change, item ids do not
        moved = json.loads(json.dumps(document).replace("data-example.hub.arcgis.com", "opendata.example.gov"))
        for entry in moved["dataset"]:
            entry["identifier"] = entry["landingPage"]
        portal.document = moved
        report = harvest([config], store, http)
    assert report.ok and report.portals[0].new == 0 and report.portals[0].removed == 0
    assert count(store) == 12
    assert count(store, "SELECT count(*) FROM datasets WHERE identifier LIKE '%opendata.example.gov%'") == 12


@pytest.mark.parametrize("document", [{"error": "not found"}, {"dataset": "x"}, "just a string", 42])
def test_a_document_that_is_not_data_json_fails_the_portal(store, http, document):
    with DataJsonPortal(document) as portal:
        report = harvest([portal_config("x", "dcat-us", portal.url + "/data.json")], store, http)
    assert not report.ok and report.portals[0].error_type == "UnexpectedPayload"
    assert count(store) == 0


@pytest.mark.parametrize("legacy", [False, True])
def test_a_dataset_of_more_distributions_and_keywords_than_kept_keeps_the_first_10000(store, http, legacy):
    """One dataset with 25,000 distributions and 25,000 keywords (10^6 distributions failed the
    portal: its raw entry did not fit DuckDB's memory): each list is cut to 10,000 as the
    document is read, in a catalog object or a bare array, with a warning naming the dataset
    for each; the other datasets are stored."""
    datasets = [{"identifier": f"id-{i}", "title": f"Dataset {i}", "keyword": ["k"],
                 "distribution": [{"downloadURL": "https://x.org/a.csv", "mediaType": "text/csv"}]} for i in range(3)]
    datasets[1].update(keyword=[f"keyword {j}" for j in range(25_000)],
                       distribution=[{"downloadURL": f"https://x.org/{j}.csv"} for j in range(25_000)])
    with DataJsonPortal(datasets if legacy else {"dataset": datasets}) as portal:
        report = harvest([portal_config("city", "dcat-us", portal.url + "/data.json")], store, http)
    assert report.ok and count(store) == 3 and report.portals[0].warnings == 2
    assert store.con.execute("SELECT len(keywords), (SELECT count(*) FROM distributions WHERE dataset_uid = uid) "
                             "FROM datasets WHERE source_id = 'id-1'").fetchone() == (10_000, 10_000)
    warnings = store.con.execute("SELECT source_id, severity, message FROM harvest_errors ORDER BY message").fetchall()
    assert warnings == [("id-1", "warning", f"{key}: the catalogue entry lists 25,000 of them; the first 10,000 are kept")
                        for key in ("distribution", "keyword")]
