"""bench.hub_feed: the large Hub feed made of the recorded entries, as the benchmark serves it."""
import json

import requests

from bench.hub_feed import recorded_hub_feed
from bench.serve import serving
from harvester.http.json_parsing import STREAMED_JSON_BYTES
from harvester.portals.arcgis_hub import ArcgisHubAdapter, layer_url
from tests.children import line_of
from tests.conftest import portal_config
from tests.portals.dcat import HUB_FEED_PATH
from tests.shared_fixtures import load_json


def test_the_feed_is_the_recorded_entries_each_copy_an_item_and_a_layer_of_its_own():
    recorded = load_json("dcat-us/evian-fr-arcgis-hub-data.json")
    feed = json.loads(recorded_hub_feed(20, "127.0.0.1:8000"))
    assert {key: value for key, value in feed.items() if key != "dataset"} == \
        {key: value for key, value in recorded.items() if key != "dataset"}
    entries = feed["dataset"]
    adapter = ArcgisHubAdapter(portal_config("hub", "arcgis-hub", "http://127.0.0.1:8000"), None)
    assert len({adapter.source_id(entry) for entry in entries}) == 20
    assert entries[0] == recorded["dataset"][0] | {   # (copy 0: the recorded entry, its layer on the host)
        "distribution": json.loads(json.dumps(recorded["dataset"][0]["distribution"]).replace(
            "https://services.arcgis.com/Hbks8qlTugfLqQka/arcgis/rest/services/", "http://127.0.0.1:8000/services/rest/c0_"))}
    assert entries[8]["title"] == entries[0]["title"] and entries[8]["identifier"] != entries[0]["identifier"]
    layers = [layer_url(entry) for entry in entries]
    assert sum(layer is not None for layer in layers) == 5 + 5 + 4   # (the first five of the 8 recorded name a layer)
    assert all(layer.startswith("http://127.0.0.1:8000/services/rest/c") for layer in layers if layer)
    assert len(set(filter(None, layers))) == 14


def test_the_default_sizes_are_read_a_value_at_a_time():
    # (the benchmark's point: its smaller feed too is past the size read a value at a time)
    load_json("dcat-us/evian-fr-arcgis-hub-data.json")
    assert len(recorded_hub_feed(12_000, "127.0.0.1:8000")) >= STREAMED_JSON_BYTES


def test_the_served_site_answers_the_feed_and_each_layer_with_a_recorded_layer():
    load_json("dcat-us/evian-fr-arcgis-hub-data.json")
    with serving("hub-recorded", 16) as server:
        url = line_of(server).strip()
        feed = requests.get(url + HUB_FEED_PATH, timeout=30).json()
        assert len(feed["dataset"]) == 16
        layer = requests.get(layer_url(feed["dataset"][0]), params={"f": "json"}, timeout=30).json()
    assert layer == load_json("arcgis-featureserver/cook-county-poi-layer-metadata.json")   # (layer 5: HUB_LAYERS[0])
