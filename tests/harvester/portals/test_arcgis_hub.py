"""The ArcGIS Hub adapter: the site's DCAT-US feed, columns from FeatureServer layers on
another host, ArcGIS's errors behind a 200."""
import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest


from catalog.record import Notes
from harvester.config import PortalConfig
from harvester.http import HttpClient
from harvester.pipeline import harvest
from harvester.portals.arcgis_hub import ArcgisHubAdapter
from harvester.portals.dcat_us import arcgis_item_id
from tests.conftest import (
    assert_a_full_harvest_with_its_lookup_down_keeps_the_columns, assert_a_lookup_refused_for_good_is_asked_again_only_when_due,
    assert_an_edited_dataset_whose_lookup_is_down_keeps_its_columns,
    assert_a_refused_lookup_down_for_a_night_changes_nothing, assert_the_first_night_after_the_upgrade_changes_nothing,
    assert_an_unread_frequency_stored_as_unknown_is_re_mapped_once, assert_first_10000_columns_kept, fast_client,
    portal_config)
from tests.portals.base import LocalPortal
from tests.portals.catalogues import HUB_LAYERS, evian_feed, serve_hub_layers
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.shared_fixtures import load_json, require_fixtures



def count(store, sql="SELECT count(*) FROM datasets"):
    return store.con.execute(sql).fetchone()[0]


def test_hub_feed_with_layer_columns_from_another_host(store, http):
    require_fixtures()
    with LocalPortal() as services:
        feed = evian_feed(services.url)
        layers = serve_hub_layers(feed, services, services.url)
        assert len(layers) == 5  # the other 3 entries (a link, two web maps) name no layer
        services.serve_json(layers[-1], {"error": {"code": 499, "message": "Token Required"}})
        with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
            report = harvest([portal_config("evian", "arcgis-hub", hub.url)], store, http).portals[0]
        assert all(query == {"f": "json"} for _, query, _ in services.requests) and len(services.requests) == 5
    assert report.status == "ok" and count(store) == 8 and report.errors == 1
    assert store.con.execute("SELECT message FROM harvest_errors").fetchone()[0].startswith("ArcGIS error")
    first = store.con.execute("""SELECT d.source_id, d.identifier, count(c.position), list(c.type ORDER BY c.position)
                                 FROM datasets d JOIN columns c ON c.dataset_uid = d.uid
                                 WHERE d.source_id = 'f6565516d1354383b25793e630cf3f2b_5' GROUP BY ALL""").fetchone()
    assert first[1].startswith("https://www.arcgis.com/home/item.html?id=f6565516")
    assert first[2] == 32 and first[3][:2] == ["integer", "number"] and "point" in first[3]  # Shape of a point layer
    assert count(store, "SELECT count(DISTINCT dataset_uid) FROM columns") == 4


def test_esri_field_types_map_to_the_vocabulary():
    require_fixtures()
    adapter = ArcgisHubAdapter(PortalConfig(id="h", city="H", kind="arcgis-hub", url="https://hub.example.org"),
                               HttpClient())
    assert adapter.feed_url == "https://hub.example.org/api/feed/dcat-us/1.1.json"
    entry = load_json("dcat-us/evian-fr-arcgis-hub-data.json")["dataset"][0]
    for name in HUB_LAYERS:
        layer = load_json(f"arcgis-featureserver/{name}")
        columns = adapter.map(entry, {"layer": layer}, Notes())["columns"]
        assert "other" not in {c["type"] for c in columns}, name
        assert {c["field_name"] for c in columns if c["field_name"]} == {f["name"] for f in layer["fields"]}


def test_entries_without_a_layer_are_not_fetched(store, http):
    feed = {"dataset": [{"identifier": "https://www.arcgis.com/home/item.html?id=0123456789abcdef0123456789abcdef",
                         "title": "Zoning document", "distribution": [{"accessURL": "https://x.org/doc.pdf"}]}]}
    with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
        report = harvest([portal_config("h", "arcgis-hub", hub.url)], store, http).portals[0]
        assert list(hub.hits) == [HUB_FEED_PATH]
    assert report.status == "ok" and count(store, "SELECT source_id FROM datasets") == "0123456789abcdef0123456789abcdef"


def test_bad_hub_entries_are_reported_and_the_rest_harvested(store, http):
    feed = {"dataset": [
        {"identifier": "https://www.arcgis.com/home/item.html?id=" + "a" * 32, "title": "Street trees"},
        {"identifier": "https://www.arcgis.com/home/item.html?id=" + "b" * 32, "title": None},
        {"identifier": "https://www.arcgis.com/home/item.html?id=" + "c" * 32, "title": "<b>Permits</b>",
         "description": "<div>Building <i>permits</i></div>", "keyword": "permits,building", "issued": 12.5e20,
         "distribution": [{"accessURL": "http://127.0.0.1:9/arcgis/rest/services/P/FeatureServer/0"}]},
        ["not", "an", "object"],
    ]}
    with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
        report = harvest([portal_config("h", "arcgis-hub", hub.url)], store, http).portals[0]
    assert report.status == "ok" and count(store) == 2 and report.errors == 3   # no title, not an object, layer down
    row = store.con.execute("SELECT title, description, keywords, issued FROM datasets WHERE source_id = ?",
                            ["c" * 32]).fetchone()
    assert row == ("Permits", "Building permits", ["permits", "building"], None)   # HTML out of titles too



def test_entries_whose_layer_urls_are_malformed_are_their_own_errors_and_the_portal_is_stored(store, http):
    """A Hub entry naming its layer on a host name with an empty label ('services..arcgis.com', a
    typo in the item's URL) raised urllib3's LocationParseError, one with unclosed brackets
    urlparse's ValueError, no HttpError: the whole portal failed every night on that one entry.
    Now each such dataset is stored with an error saying what is wrong with its link."""
    feed = edited_hub("https://services..arcgis.com", ["/arcgis/rest/services/A/FeatureServer/0"])
    feed["dataset"] += edited_hub("https://[services", ["/arcgis/rest/services/B/FeatureServer/0"])["dataset"]
    feed["dataset"][1]["identifier"] = "https://www.arcgis.com/home/item.html?id=" + "f" * 32
    feed["dataset"].append({"identifier": "https://www.arcgis.com/home/item.html?id=" + "e" * 32, "title": "Trees"})
    with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
        report = harvest([portal_config("h", "arcgis-hub", hub.url)], store, http).portals[0]
    assert report.status == "ok" and count(store) == 3 and report.errors == 2, report.error_message
    messages = sorted(m for (m,) in store.con.execute("SELECT message FROM harvest_errors WHERE stage = 'fetch'").fetchall())
    assert messages[0].startswith("URL not valid (") and messages[1].startswith("host name services..arcgis.com is not valid (")


def test_a_layer_of_more_fields_than_a_pull_takes_keeps_the_first_10000(store, http):
    """A FeatureServer layer listing 25,000 fields (10^6 failed the portal: its details did not
    fit DuckDB's memory): its fields are cut to 10,000 as the layer is read, with a warning
    naming the dataset, the other datasets harvested, its records pull refused."""
    layer = "/arcgis/rest/services/Wide/FeatureServer/0"
    with LocalPortal() as services:
        services.serve_json(layer, {"name": "Wide", "type": "Table", "fields": [
            {"name": f"column_{i}", "alias": None, "type": "esriFieldTypeInteger"} for i in range(25_000)]})
        feed = {"dataset": [{"identifier": f"https://www.arcgis.com/home/item.html?id={i:032x}&sublayer=0",
                             "title": f"Layer {i}", "landingPage": f"https://x.hub.arcgis.com/datasets/{i:032x}_0",
                             "distribution": [{"accessURL": services.url + layer}] if i == 0 else []}
                            for i in range(3)]}
        source_id = f"{0:032x}_0"
        with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
            config = portal_config("city", "arcgis-hub", hub.url, records=(source_id,))
            for run in range(2):
                report = harvest([config], store, http, records=run == 1)
                assert report.ok and (report.portals[0].errors, report.portals[0].warnings) == (run, 1 - run), run
        assert set(services.hits) == {layer}
    assert count(store) == 3
    assert_first_10000_columns_kept(store, source_id, "the layer")


def edited_hub(services_url: str, layers: list[str]) -> dict:
    """A Hub feed of one dataset per layer path, each layer of two fields."""
    return {"dataset": [{"identifier": f"https://www.arcgis.com/home/item.html?id={i:032x}&sublayer=0",
                         "title": f"Layer {i}", "keyword": ["old"], "modified": "2024-01-01",
                         "distribution": [{"accessURL": services_url + path}]} for i, path in enumerate(layers)]}


def layer_fields(*names: str) -> dict:
    return {"name": "L", "type": "Feature Layer", "geometryType": "esriGeometryPoint",
            "fields": [{"name": name, "alias": name.title(), "type": "esriFieldTypeString"} for name in names]}


def test_an_edited_dataset_whose_layer_is_down_takes_the_feed_and_keeps_its_columns(store, http):
    """Night 2: the feed edits a dataset's title, keywords and modified while its layer host
    answers 503: the feed's metadata is stored, the columns the layer gave last time are
    kept (not changed), and a warning names the layer. Night 3, the host back: the columns
    are read again. The dataset not edited stays unchanged throughout."""
    layers = ["/arcgis/rest/services/A/FeatureServer/0", "/arcgis/rest/services/B/FeatureServer/0"]
    with LocalPortal() as services:
        for path in layers:
            services.serve_json(path, layer_fields("id", "name"))
        with DataJsonPortal(edited_hub(services.url, layers), path=HUB_FEED_PATH) as hub:
            config = portal_config("hub", "arcgis-hub", hub.url)

            def edit():
                hub.document = edited_hub(services.url, layers)
                hub.document["dataset"][0].update(title="Layer 0, renamed", keyword=["new"], modified="2024-02-01")
            assert_an_edited_dataset_whose_lookup_is_down_keeps_its_columns(
                store, http, config, services, "/arcgis/", edit,
                {f"{i:032x}_0": services.url + path for i, path in enumerate(layers)},
                asked={f"{0:032x}_0"})   # (the other's entry as stored: its layer kept, not asked tonight)

            services.clear_faults()
            services.serve_json(layers[0], layer_fields("id", "name", "ward"))
            report = harvest([config], store, http).portals[0]
            assert report.status == "ok" and (report.changed, report.unchanged) == (1, 1)
            assert store.con.execute("SELECT list(field_name ORDER BY position) FROM columns WHERE dataset_uid = ?",
                                     [f"hub:{0:032x}_0"]).fetchone()[0] == ["id", "name", "ward", None]
            assert store.con.execute("SELECT title FROM datasets WHERE uid = ?", [f"hub:{0:032x}_0"]).fetchone()[0] \
                == "Layer 0, renamed"


def test_a_full_harvest_whose_layer_host_is_down_keeps_the_columns(store, http):
    """`harvest --full` re-maps every dataset: one whose layer cannot be read keeps the
    columns it has, and is not rewritten (nothing else of it changed)."""
    layer = "/arcgis/rest/services/A/FeatureServer/0"
    with LocalPortal() as services:
        services.serve_json(layer, layer_fields("id", "name"))
        with DataJsonPortal(edited_hub(services.url, [layer]), path=HUB_FEED_PATH) as hub:
            assert_a_full_harvest_with_its_lookup_down_keeps_the_columns(
                store, http, portal_config("hub", "arcgis-hub", hub.url), services, "/arcgis/", stored=3)



def test_layers_on_a_host_whose_name_does_not_resolve_cost_two_requests(store, resolver):
    """20 datasets whose layers are on a FeatureServer host that does not resolve: its name is
    asked twice, then the host is given up (it was 5 attempts for each of 3 lookups, ~50 s);
    each dataset is stored, with an error saying why its columns are missing."""
    layers = [f"/arcgis/rest/services/L{number}/FeatureServer/0" for number in range(20)]
    http = fast_client(max_attempts=5)
    with DataJsonPortal(edited_hub("https://services.nowhere.invalid", layers), path=HUB_FEED_PATH) as hub:
        report = harvest([portal_config("hub", "arcgis-hub", hub.url)], store, http).portals[0]
    assert report.status == "ok" and count(store) == 20 and report.errors == 20
    assert (report.requests, resolver.asked["services.nowhere.invalid"]) == (3, 2)   # the feed, the name twice
    messages = [message for (message,) in store.con.execute("SELECT message FROM harvest_errors WHERE stage = 'fetch'")
                .fetchall()]
    assert len(messages) == 20 and all(message.startswith("host name services.nowhere.invalid does not resolve")
                                       for message in messages)


def test_layers_on_a_port_that_refuses_are_given_up_once_it_has_refused_for_the_limit(store, refusing_port):
    """20 datasets whose layers are on a FeatureServer port nothing listens on: 5 attempts a
    layer, for 3 layers, before the host was given up (~50 s with the default backoff). Its
    refusals are retried until it has refused for the client's `refused_limit` (10 s by default,
    0.3 here), then every layer fails at once; each dataset is stored, its error naming the port."""
    port = refusing_port
    layers = [f"/arcgis/rest/services/L{number}/FeatureServer/0" for number in range(20)]
    http = fast_client(max_attempts=10_000, refused_limit=0.3)
    with DataJsonPortal(edited_hub(f"http://127.0.0.1:{port}", layers), path=HUB_FEED_PATH) as hub:
        report = harvest([portal_config("hub", "arcgis-hub", hub.url)], store, http).portals[0]
    assert report.status == "ok" and count(store) == 20 and report.errors == 20
    assert report.requests < 10_000   # the feed, and the first layer's attempts while the port might restart
    messages = [message for (message,) in store.con.execute("SELECT message FROM harvest_errors WHERE stage = 'fetch'")
                .fetchall()]
    assert len(messages) == 20 and all(message.startswith(f"connection refused by 127.0.0.1:{port}")
                                       for message in messages)
    assert sum("for 0.3 s in a row; not asked again this run" in message for message in messages) >= 19

def test_a_dataset_moved_to_another_layer_that_is_down_keeps_no_columns_of_the_old_one(store, http):
    """The stored columns are the old layer's: while the new one cannot be read the dataset
    has none (an error naming the new layer), and its records are not read from the old one."""
    old, new = "/arcgis/rest/services/A/FeatureServer/0", "/arcgis/rest/services/A2/FeatureServer/0"
    with LocalPortal() as services:
        services.serve_json(old, layer_fields("id", "name"))
        with DataJsonPortal(edited_hub(services.url, [old]), path=HUB_FEED_PATH) as hub:
            config = portal_config("hub", "arcgis-hub", hub.url)
            harvest([config], store, http)
            hub.document = edited_hub(services.url, [new])
            services.inject("/arcgis/", ("status", 503), times=1000)
            run = harvest([config], store, http)
        new_layer = services.url + new
    assert run.portals[0].status == "ok" and run.portals[0].changed == 1
    assert count(store, "SELECT count(*) FROM columns") == 0
    [(severity, message)] = store.con.execute("SELECT severity, message FROM harvest_errors WHERE run_id = ? AND "
                                              "stage = 'fetch'", [run.run_id]).fetchall()
    assert severity == "error" and new_layer in message


def test_a_hub_dataset_whose_identifier_and_landing_page_become_slugs_keeps_its_uid(store, http):
    require_fixtures()
    with LocalPortal() as services:
        feed = evian_feed(services.url)
        with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
            config = portal_config("evian", "arcgis-hub", hub.url)
            assert harvest([config], store, http).ok
            first_seen = store.con.execute("SELECT first_seen FROM datasets WHERE source_id = ?",
                                           ["f6565516d1354383b25793e630cf3f2b_5"]).fetchone()[0]
            slug = "https://ville-d-evian-opendata-ville-evian.hub.arcgis.com/datasets/sigevian::stationnement-velos"
            hub.document = json.loads(json.dumps(feed))
            hub.document["dataset"][0].update(identifier=slug, landingPage=slug)
            report = harvest([config], store, http).portals[0]
    assert (report.new, report.changed, report.removed) == (0, 1, 0)
    assert store.con.execute("SELECT first_seen, identifier, deleted_at FROM datasets WHERE source_id = ?",
                             ["f6565516d1354383b25793e630cf3f2b_5"]).fetchone() == (first_seen, slug, None)
SLUG = "https://ville-d-evian-opendata-ville-evian.hub.arcgis.com/datasets/sigevian::stationnement-velos"


def hub_adapter():
    return ArcgisHubAdapter(PortalConfig(id="h", city="H", kind="arcgis-hub", url="https://hub.example.org"), HttpClient())


@pytest.mark.parametrize("position", range(5))
def test_a_real_entry_whose_identifier_and_landing_page_become_slugs_keeps_its_source_id(position):
    require_fixtures()
    entry = load_json("dcat-us/evian-fr-arcgis-hub-data.json")["dataset"][position]
    adapter = hub_adapter()
    before = adapter.source_id(entry)
    assert before.endswith(entry["identifier"].rsplit("=", 1)[1])   # '<item>_<sublayer>'
    entry.update(identifier=SLUG, landingPage=SLUG)
    entry["distribution"] = [d for d in entry["distribution"] if "/maps/" not in d.get("accessURL", "")]
    assert adapter.source_id(entry) == before   # from …/api/download/v1/items/<item>/csv?layers=<n>


ITEM, OTHER = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"


@pytest.mark.parametrize("links, expected", [
    ([f"https://opendata.arcgis.com/datasets/{ITEM}_3.csv", f"https://opendata.arcgis.com/datasets/{ITEM}_3.geojson"],
     f"{ITEM}_3"),
    ([f"https://www.arcgis.com/sharing/rest/content/items/{ITEM}/data"], ITEM),
    ([f"https://hub.example.org/api/download/v1/items/{ITEM.upper()}/shapefile?layers=0"], f"{ITEM}_0"),
    ([f"https://hub.example.org/api/download/v1/items/{ITEM}/csv?layers=1",
      f"https://hub.example.org/api/download/v1/items/{OTHER}/csv?layers=1"], SLUG),   # two items: none trusted
    (["https://services.arcgis.com/x/arcgis/rest/services/velos/FeatureServer/5"], SLUG),   # no item id there
])
def test_a_slug_identifiers_source_id_comes_from_its_own_download_links(links, expected):
    entry = {"identifier": SLUG, "landingPage": SLUG, "title": "Stationnement vélos",
             "distribution": [{"downloadURL": link} for link in links]}
    assert hub_adapter().source_id(entry) == expected


def test_a_plain_data_json_entry_linking_a_hub_download_keeps_its_own_identifier():
    from harvester.portals.dcat_us import DcatUsAdapter
    entry = {"identifier": "https://data.state.example/datasets/county-parcels", "title": "County parcels",
             "distribution": [{"downloadURL": f"https://hub.example.org/api/download/v1/items/{ITEM}/csv?layers=0"}]}
    adapter = DcatUsAdapter(PortalConfig(id="s", city="S", kind="dcat-us", url="https://data.state.example/data.json"),
                            HttpClient())
    assert adapter.source_id(entry) == "https://data.state.example/datasets/county-parcels"


def test_a_layer_that_cannot_be_read_is_not_asked_again_while_its_feed_entry_is_unchanged(store, http):
    """A layer answering ArcGIS's error behind a 200 (a layer deleted or made private): reported
    the night it happens, not asked (nor reported) again every night after."""
    layers = ["/arcgis/rest/services/A/FeatureServer/0", "/arcgis/rest/services/B/FeatureServer/0"]
    with LocalPortal() as services:
        services.serve_json(layers[0], layer_fields("id", "name"))
        services.serve_json(layers[1], {"error": {"code": 400, "message": "Invalid URL", "details": []}})
        with DataJsonPortal(edited_hub(services.url, layers), path=HUB_FEED_PATH) as hub:
            def edit():
                hub.document = edited_hub(services.url, layers)
                hub.document["dataset"][1].update(title="Layer 1, renamed", modified="2024-02-01")

            def mend():
                services.serve_json(layers[1], layer_fields("id", "name"))
            assert_a_lookup_refused_for_good_is_asked_again_only_when_due(
                store, http, portal_config("hub", "arcgis-hub", hub.url), services,
                lambda path, query: path == layers[1], lambda path, query: path == layers[0], edit, mend, kept=True)



UNREADABLE_LAYERS = ["/arcgis/rest/services/A/FeatureServer/0", "/arcgis/rest/services/B/FeatureServer/0"]


@contextmanager
def hub_with_an_unreadable_layer():
    """(services, hub): a Hub feed of two layers' datasets, the second's layer answering ArcGIS's
    error behind a 200 (deleted or made private)."""
    with LocalPortal() as services:
        services.serve_json(UNREADABLE_LAYERS[0], layer_fields("id", "name"))
        services.serve_json(UNREADABLE_LAYERS[1], {"error": {"code": 400, "message": "Invalid URL", "details": []}})
        with DataJsonPortal(edited_hub(services.url, UNREADABLE_LAYERS), path=HUB_FEED_PATH) as hub:
            yield services, hub


@pytest.mark.parametrize("full", [False, True], ids=["night", "full"])
def test_the_first_night_after_the_upgrade_counts_no_dataset_changed_for_its_unreadable_layer(store, http, full):
    """A catalogue session 26 harvested, one of whose layers answers ArcGIS's error behind a
    200: the night after the upgrade records that refusal in its details, and counts it
    changed no more than it is."""
    with hub_with_an_unreadable_layer() as (services, hub):
        assert_the_first_night_after_the_upgrade_changes_nothing(
            store, http, portal_config("hub", "arcgis-hub", hub.url), services,
            lambda path, query: path == UNREADABLE_LAYERS[1], full=full)


def test_an_unreadable_layer_that_answers_503_for_a_night_counts_its_dataset_changed_on_no_night(store, http):
    with hub_with_an_unreadable_layer() as (services, hub):
        assert_a_refused_lookup_down_for_a_night_changes_nothing(
            store, http, portal_config("hub", "arcgis-hub", hub.url), services, UNREADABLE_LAYERS[1],
            lambda path, query: path == UNREADABLE_LAYERS[1])


def test_a_layer_answering_a_json_list_is_an_unexpected_result_settled_like_an_arcgis_error(store, http):
    """A layer's address answering valid JSON that is no object (a list, a string) was stored as
    `PortalError`, which says the portal answered an error of its own: nothing said error. It is
    `UnexpectedResult`, not asked again (as before), and settled like an ArcGIS error: not asked
    again the next night while its feed entry is unchanged."""
    with LocalPortal() as services:
        services.serve_json(UNREADABLE_LAYERS[0], layer_fields("id", "name"))
        services.serve_json(UNREADABLE_LAYERS[1], [{"name": "L"}])
        with DataJsonPortal(edited_hub(services.url, UNREADABLE_LAYERS), path=HUB_FEED_PATH) as hub:
            config = portal_config("hub", "arcgis-hub", hub.url)
            first = harvest([config], store, http)
            assert first.portals[0].status == "ok" and first.portals[0].errors == 1
            [(kind, message)] = store.con.execute("SELECT error_type, message FROM harvest_errors WHERE stage = 'fetch' "
                                                  "AND run_id = ?", [first.run_id]).fetchall()
            assert kind == "UnexpectedResult" and "the layer's answer is a JSON list, not the layer's object" in message
            assert UNREADABLE_LAYERS[1] in message
            asked = services.hits[UNREADABLE_LAYERS[1]]
            assert asked == 1   # not retried
            second = harvest([config], store, fast_client())
            assert (second.portals[0].errors, second.portals[0].changed) == (0, 0)
            assert services.hits[UNREADABLE_LAYERS[1]] == asked   # settled: not asked the next night


SEVEN_LAYERS = [f"/arcgis/rest/services/L{i}/FeatureServer/0" for i in range(7)]


def test_an_unchanged_datasets_layer_is_asked_once_a_week_on_a_night_of_its_own(store, http, monkeypatch):
    """Layers change apart from the feed, but rarely: a dataset whose feed entry is as stored
    keeps its layer's columns, its layer asked on one night of every seven (each its own, so a
    nightly harvest asks a seventh of them a night): a layer whose fields change while the feed
    does not (its item's `modified` the same) is stored as it is by the night its layer is asked,
    within the week. A dataset whose entry changes has its layer asked that night."""
    import harvester.pipeline as pipeline

    nights = iter(datetime(2026, 3, 1, 2, 0, tzinfo=UTC) + timedelta(days=n) for n in range(20))

    def columns(i: int) -> list:
        return store.con.execute("SELECT list(field_name ORDER BY position) FROM columns WHERE dataset_uid = ?",
                                 [f"hub:{i:032x}_0"]).fetchone()[0]

    with LocalPortal() as services:
        for path in SEVEN_LAYERS:
            services.serve_json(path, layer_fields("id", "name"))
        with DataJsonPortal(edited_hub(services.url, SEVEN_LAYERS), path=HUB_FEED_PATH) as hub:
            config = portal_config("hub", "arcgis-hub", hub.url)

            def night() -> tuple[list[int], object]:
                services.clear_log()
                report = harvest([config], store, http).portals[0]
                assert report.status == "ok", report.error_message
                return sorted(SEVEN_LAYERS.index(path) for path, _, _ in services.requests), report

            monkeypatch.setattr(pipeline, "run_began", lambda: next(nights))   # each harvest a night later
            asked, report = night()
            assert asked == list(range(7)) and report.new == 7
            # the fields of layer 0 change, its feed entry does not
            services.serve_json(SEVEN_LAYERS[0], layer_fields("id", "name", "ward"))
            asked_in_the_week = []
            for _ in range(7):
                asked, report = night()
                assert (report.unchanged + report.changed, report.errors) == (7, 0)
                assert report.changed == (0 in asked)   # (its night: the new fields stored)
                assert columns(0) == (["id", "name", "ward", None] if 0 in asked_in_the_week + asked
                                      else ["id", "name", None])
                asked_in_the_week += asked
            assert sorted(asked_in_the_week) == list(range(7))   # each once in the seven nights
            assert columns(0) == ["id", "name", "ward", None]

            # an edited entry (its item's modified moved, its layer changed): its layer asked at once
            hub.document = edited_hub(services.url, SEVEN_LAYERS)
            for entry in hub.document["dataset"]:
                entry["modified"] = "2024-01-01"
            hub.document["dataset"][3]["modified"] = "2024-05-01"
            services.serve_json(SEVEN_LAYERS[3], layer_fields("id", "name", "status"))
            asked, report = night()
            assert 3 in asked and report.changed == 1 and columns(3) == ["id", "name", "status", None]


@pytest.mark.parametrize("validators", ["stable", "none"])
def test_an_unchanged_hub_feed_costs_the_nights_due_layers_alone(store, http, monkeypatch, validators):
    """A Hub feed the catalogue holds as it is (a 304, or the same bytes again: its digest): each
    dataset whose layer is not due tonight is its stored version, its stored details not read and
    nothing hashed (each such dataset's stored details were read and hashed with its entry every
    night); the layers due tonight are asked, and their datasets alone checked. The catalogue is
    as the night before left it."""
    import harvester.pipeline as pipeline
    from harvester import mapping

    nights = iter(datetime(2026, 3, 1, 2, 0, tzinfo=UTC) + timedelta(days=n) for n in range(20))
    monkeypatch.setattr(pipeline, "run_began", lambda: next(nights))   # each harvest a night later
    hashed, details_read = [], []
    raw_hash, stored_details = mapping.raw_hash, store.stored_details
    monkeypatch.setattr(mapping, "raw_hash", lambda *args: hashed.append(1) or raw_hash(*args))
    monkeypatch.setattr(store, "stored_details", lambda uids: details_read.extend(uids) or stored_details(uids))
    tables = ("datasets", "distributions", "columns", "raw_records")
    with LocalPortal() as services:
        for path in SEVEN_LAYERS:
            services.serve_json(path, layer_fields("id", "name"))
        with DataJsonPortal(edited_hub(services.url, SEVEN_LAYERS), path=HUB_FEED_PATH) as hub:
            hub.validators = validators
            config = portal_config("hub", "arcgis-hub", hub.url)
            assert harvest([config], store, http).portals[0].new == 7
            before = {table: store.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in tables}
            asked_in_the_week = []
            for _ in range(7):
                services.clear_log()
                hashed.clear(), details_read.clear()
                report = harvest([config], store, http).portals[0]
                asked = [path for path, _, _ in services.requests]
                assert (report.status, report.unchanged, report.errors) == ("ok", 7, 0)
                assert (len(hashed), details_read) == (len(asked), [])   # the due layers' datasets alone
                assert {table: store.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
                        for table in tables} == before
                asked_in_the_week += asked
            assert sorted(asked_in_the_week) == sorted(SEVEN_LAYERS)   # each layer asked once in the week


def test_a_refused_layer_on_a_feed_held_as_it_is_is_asked_again_once_its_week_is_over(store, http, monkeypatch):
    """A dataset whose layer was refused for good keeps that refusal in its stored details, and
    is asked again once LOOKUP_ASKED_AGAIN_DAYS have passed since it was reported, on any night,
    its feed unchanged: an unchanged feed's datasets are taken as stored unread (their stored
    details not read), but not one whose lookup a refusal was ever reported for."""
    import harvester.pipeline as pipeline
    from harvester.mapping import LOOKUP_ASKED_AGAIN_DAYS

    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    nights = iter(day + timedelta(minutes=n) for n in range(10))
    monkeypatch.setattr(pipeline, "run_began", lambda: next(nights))   # (nights of one day: no layer is due)
    with hub_with_an_unreadable_layer() as (services, hub):
        config = portal_config("hub", "arcgis-hub", hub.url)

        def night():
            services.clear_log()
            report = harvest([config], store, http).portals[0]
            assert report.status == "ok", report.error_message
            return sorted(path for path, _, _ in services.requests), report

        asked, report = night()
        assert asked == UNREADABLE_LAYERS and (report.new, report.errors) == (2, 1)
        asked, report = night()   # the refusal settled, the other layer kept: the feed as stored
        assert asked == [] and (report.unchanged, report.errors) == (2, 0)
        assert len(store.settled_pages("hub")) == 1
        asked, report = night()
        assert asked == [] and (report.unchanged, report.errors) == (2, 0)
        store.con.execute("UPDATE harvest_errors SET occurred_at = occurred_at - ?",
                          [timedelta(days=LOOKUP_ASKED_AGAIN_DAYS, minutes=1)])
        asked, report = night()
        assert asked == [UNREADABLE_LAYERS[1]] and (report.unchanged, report.errors) == (2, 1)


def test_a_hub_template_left_unrendered_is_no_coverage(store, http):
    """Hub's feed template fills `spatial` from the item's extent; for an item without one the real
    Evian feed gives the placeholder itself ("{{extent:computeSpatialProperty}}"), which is no place:
    stored as null with a warning naming it, the bounding boxes of the others kept as given."""
    require_fixtures()
    feed = load_json("dcat-us/evian-fr-arcgis-hub-data.json")
    spatial = {arcgis_item_id(e["identifier"], e.get("landingPage")): e["spatial"] for e in feed["dataset"]}
    placeholders = {item for item, value in spatial.items() if value == "{{extent:computeSpatialProperty}}"}
    assert len(placeholders) == 3
    with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
        assert harvest([portal_config("evian", "arcgis-hub", hub.url)], store, http).ok
    stored = dict(store.con.execute("SELECT source_id, spatial FROM datasets").fetchall())
    assert stored == {item: None if item in placeholders else value for item, value in spatial.items()}
    warned = store.con.execute("SELECT source_id, message FROM harvest_errors WHERE severity = 'warning'").fetchall()
    assert sorted(warned) == sorted((item, "spatial: an unrendered template placeholder "
                                           "'{{extent:computeSpatialProperty}}'; stored as null") for item in placeholders)


def test_a_frequency_stored_as_unknown_before_session_31_is_re_mapped_by_the_first_night_after_it(store, http):
    """The real Evian feed, each entry given a frequency civicat cannot read, its layers served:
    Hub maps as DCAT-US does and shares its mapping version, which session 31 moved from 1 to 2,
    so a dataset stored before is re-mapped the first night after (its layer's columns read
    again, not kept: they are hashed with the entry under the new mapping)."""
    require_fixtures()
    with LocalPortal() as services:
        feed = evian_feed(services.url)
        serve_hub_layers(feed, services, services.url)
        for entry in feed["dataset"]:
            entry["accrualPeriodicity"] = "variable"
        with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
            assert_an_unread_frequency_stored_as_unknown_is_re_mapped_once(
                store, http, portal_config("evian", "arcgis-hub", hub.url), ArcgisHubAdapter, 1)


class HubNights:
    """Harvests of a Hub feed of SEVEN_LAYERS' datasets and one document (no layer), each a night
    after the one before, each saying what it cost: the feed bodies parsed, the source ids the
    harvest handed to its mapper (listed, or read from the catalogue for a kept feed's due
    layers) and the layers asked (by their positions in SEVEN_LAYERS)."""

    DOCUMENT_ID = f"{7:032x}"

    def __init__(self, store, http, monkeypatch, services, hub):
        import functools

        import harvester.pipeline as pipeline
        from harvester import mapping
        from harvester.portals import dcat_us

        self.store, self.http, self.services, self.hub = store, http, services, hub
        self.config = portal_config("hub", "arcgis-hub", hub.url)
        nights = iter(datetime(2026, 3, 1, 2, 0, tzinfo=UTC) + timedelta(days=n) for n in range(40))
        monkeypatch.setattr(pipeline, "run_began", lambda: next(nights))
        self.parsed, self.handed = [], []
        document, add = dcat_us.DOCUMENT, mapping.Mapper.add

        @functools.wraps(document)   # (its attributes too: how the client hands it a body)
        def counted_document(*args, **kwargs):
            self.parsed.append(1)
            return document(*args, **kwargs)

        def counted_add(mapper, entry, *args):
            self.handed.append(mapper.adapter.source_id(entry))
            return add(mapper, entry, *args)
        monkeypatch.setattr(dcat_us, "DOCUMENT", counted_document)
        monkeypatch.setattr(mapping.Mapper, "add", counted_add)

    @staticmethod
    def feed(services_url: str) -> dict:
        feed = edited_hub(services_url, SEVEN_LAYERS)
        feed["dataset"].append({"identifier": f"https://www.arcgis.com/home/item.html?id={HubNights.DOCUMENT_ID}",
                                "title": "A document", "modified": "2024-01-01",
                                "distribution": [{"downloadURL": "https://example.org/report.pdf"}]})
        return feed

    def __call__(self, *, full: bool = False):
        """(report, feed bodies parsed, positions of the datasets handed out, of the layers asked)."""
        self.parsed.clear(), self.handed.clear(), self.services.clear_log()
        report = harvest([self.config], self.store, self.http, full=full).portals[0]
        assert report.status == "ok", report.error_message
        handed = sorted(int(source_id[:32], 16) for source_id in self.handed if source_id)
        return report, len(self.parsed), handed, sorted(SEVEN_LAYERS.index(path) for path, _, _ in self.services.requests)

    def columns(self, position: int) -> list:
        return self.store.con.execute("SELECT list(field_name ORDER BY position) FROM columns WHERE dataset_uid = ?",
                                      [f"hub:{position:032x}_0"]).fetchone()[0]


@contextmanager
def hub_nights(store, http, monkeypatch, validators="stable"):
    with LocalPortal() as services:
        for path in SEVEN_LAYERS:
            services.serve_json(path, layer_fields("id", "name"))
        with DataJsonPortal(HubNights.feed(services.url), path=HUB_FEED_PATH) as hub:
            hub.validators = validators
            yield HubNights(store, http, monkeypatch, services, hub)


@pytest.mark.parametrize("validators", ["stable", "none"])
def test_an_unchanged_hub_feed_is_not_parsed_and_its_due_layers_are_asked_with_their_stored_entries(
        store, http, monkeypatch, validators):
    """A Hub feed the catalogue holds as it is (a 304, or a 200 of the same bytes) is not parsed:
    its ids are kept with those whose layers need asking, and the nights a layer is due, its
    dataset's entry is read from the catalogue (the stored version's is the feed's) and checked as
    a listed one is: the layer asked, its new fields stored. The document (no layer) is never
    handed out again; each layer is asked once in the week."""
    with hub_nights(store, http, monkeypatch, validators) as night:
        report, parsed, handed, asked = night()
        assert (report.new, parsed, handed, asked) == (8, 1, list(range(8)), list(range(7)))
        # the fields of layer 0 change, the feed does not (its item's `modified` the same)
        night.services.serve_json(SEVEN_LAYERS[0], layer_fields("id", "name", "ward"))
        asked_in_the_week = []
        for _ in range(7):
            report, parsed, handed, asked = night()
            assert parsed == 0   # (main parsed the feed every night)
            assert handed == asked   # the due layers' datasets alone, from their stored entries
            assert (report.unchanged + report.changed, report.changed, report.errors) == (8, int(0 in asked), 0)
            assert night.columns(0) == (["id", "name", "ward", None] if 0 in asked_in_the_week + asked
                                        else ["id", "name", None])
            asked_in_the_week += asked
        assert sorted(asked_in_the_week) == list(range(7))   # each once in the seven nights
        assert night.columns(0) == ["id", "name", "ward", None]


def test_a_hub_feed_that_changes_or_loses_a_dataset_is_parsed_that_night_and_kept_the_next(store, http, monkeypatch):
    with hub_nights(store, http, monkeypatch) as night:
        assert night()[0].new == 8
        report, parsed, handed, asked = night()
        assert (parsed, report.unchanged) == (0, 8)
        night.hub.document = HubNights.feed(night.services.url)
        night.hub.document["dataset"][2]["title"] = "Layer 2, renamed"
        report, parsed, handed, asked = night()
        assert (parsed, handed, report.changed, report.unchanged) == (1, list(range(8)), 1, 7)
        assert night.store.con.execute("SELECT title FROM datasets WHERE uid = ?",
                                       [f"hub:{2:032x}_0"]).fetchone()[0] == "Layer 2, renamed"
        report, parsed, handed, asked = night()
        assert (parsed, report.changed, report.unchanged) == (0, 0, 8)
        del night.hub.document["dataset"][5]
        report, parsed, handed, asked = night()
        assert (parsed, len(handed), report.removed, report.unchanged) == (1, 7, 1, 7)
        assert night.store.con.execute("SELECT deleted_at IS NOT NULL FROM datasets WHERE uid = ?",
                                       [f"hub:{5:032x}_0"]).fetchone()[0]
        report, parsed, handed, asked = night()
        assert (parsed, report.seen, report.unchanged, report.removed) == (0, 7, 7, 0)


def test_a_due_layer_that_fails_on_a_kept_feeds_night_has_the_feed_read_the_next(store, http, monkeypatch):
    """A due layer answering 503 on a night the feed is kept unread: the dataset keeps its columns
    with a warning, as on a night the feed is read, and the feed is read the next night (as a page
    holding an entry whose lookup failed is), that layer asked again."""
    with hub_nights(store, http, monkeypatch) as night:
        assert night()[0].new == 8
        for _ in range(7):   # (the first night a layer is due: one of the first seven)
            night.services.inject("/arcgis/", ("status", 503), times=1000)
            report, parsed, handed, asked = night()
            if asked:
                break
        else:
            pytest.fail("no layer was due in seven nights")
        night.services.clear_faults()
        assert (parsed, report.unchanged, report.changed) == (0, 8, 0)
        warned = night.store.con.execute("SELECT source_id FROM harvest_errors WHERE severity = 'warning' "
                                         "AND stage = 'fetch'").fetchall()
        assert sorted(int(source_id[:32], 16) for source_id, in warned) == handed
        assert all(night.columns(position) == ["id", "name", None] for position in handed)
        failed = handed
        report, parsed, handed, asked = night()
        assert (parsed, report.unchanged, report.errors) == (1, 8, 0)
        assert set(failed) <= set(asked)   # (failed since the last complete run: asked at once)
        report, parsed, handed, asked = night()
        assert (parsed, report.unchanged) == (0, 8)


def test_a_hub_feed_holding_a_rejected_entry_is_parsed_every_night(store, http, monkeypatch):
    """The rejection is reported every night it lasts: the feed holding it is never kept unread."""
    with hub_nights(store, http, monkeypatch) as night:
        night.hub.document["dataset"].append("not an entry")
        for _ in range(3):
            report, parsed, handed, asked = night()
            assert (parsed, report.errors) == (1, 1)


def test_a_full_harvest_or_a_new_mapping_reads_a_kept_hub_feed(store, http, monkeypatch):
    from harvester.portals.arcgis_hub import ArcgisHubAdapter
    with hub_nights(store, http, monkeypatch) as night:
        assert night()[0].new == 8
        assert night()[1] == 0
        report, parsed, handed, asked = night(full=True)
        assert (parsed, handed, asked) == (1, list(range(8)), list(range(7)))
        assert night()[1] == 0
        monkeypatch.setattr(ArcgisHubAdapter, "mapping_version", ArcgisHubAdapter.mapping_version + 1)
        report, parsed, handed, asked = night()
        assert (parsed, handed, report.changed + report.unchanged) == (1, list(range(8)), 8)
        report, parsed, handed, asked = night()
        assert (parsed, report.unchanged) == (0, 8)


def test_a_kept_hub_feed_stored_before_migration_0018_is_read_once_then_kept(tmp_path, http, monkeypatch):
    """A catalogue whose Hub feed page was stored by the civicat before migration 0018 (no ids:
    read every night): the migration runs on it, the next night reads the feed once more and
    keeps it with its ids and lookups, and the night after does not parse it."""
    from catalog.store import Store
    db = tmp_path / "c.duckdb"
    store = Store(db)
    try:
        with hub_nights(store, http, monkeypatch) as night:
            assert night()[0].new == 8
            store.con.execute("UPDATE listing_pages SET ids = NULL")   # (as such a page was stored)
            store.con.execute("ALTER TABLE listing_pages DROP COLUMN lookups")
            store.con.execute("DELETE FROM schema_migrations WHERE version = 18")
            before = store.con.execute("SELECT * FROM datasets ORDER BY uid").fetchall()
            store.close()
            store = night.store = Store(db)
            assert store.con.execute("SELECT lookups FROM listing_pages").fetchall() == [(None,)]
            assert store.con.execute("SELECT * FROM datasets ORDER BY uid").fetchall() == before
            report, parsed, handed, asked = night()
            assert (parsed, report.unchanged) == (1, 8)
            [(ids, lookups)] = store.con.execute("SELECT ids, lookups FROM listing_pages").fetchall()
            assert sorted(ids) == sorted([f"{i:032x}_0" for i in range(7)] + [HubNights.DOCUMENT_ID])
            assert sorted(lookups) == [f"{i:032x}_0" for i in range(7)]   # (not the document's)
            report, parsed, handed, asked = night()
            assert (parsed, report.unchanged) == (0, 8)
    finally:
        store.close()


def test_a_due_layers_stored_entry_gone_has_the_kept_feed_read_the_next_night(store, http, monkeypatch, caplog):
    """The catalogue no longer holding the stored entry of a kept feed's due dataset (it cannot
    stand in for the feed): the dataset stays as stored, a warning says so, and the feed is read
    the next night."""
    with hub_nights(store, http, monkeypatch) as night:
        assert night()[0].new == 8
        stored_entries = store.stored_entries
        monkeypatch.setattr(store, "stored_entries", lambda uids: {})
        for _ in range(7):   # (until a layer is due: one of the first seven nights)
            report, parsed, handed, asked = night()
            if any("on a listing page kept unread, is gone" in r.getMessage() for r in caplog.records):
                break
            assert (parsed, handed, asked) == (0, [], [])   # (no layer due that night)
        else:
            pytest.fail("no layer was due in seven nights")
        assert (parsed, handed, asked, report.unchanged, report.removed) == (0, [], [], 8, 0)
        monkeypatch.setattr(store, "stored_entries", stored_entries)
        report, parsed, handed, asked = night()
        assert (parsed, report.unchanged, report.removed) == (1, 8, 0)
