"""ArcGIS Hub records from FeatureServer layers, over HTTP against a local FeatureServer
serving recorded layers: the Esri test layer (pagination advertised) and Cook County's
points of interest (no pagination: object-id batches)."""
import json
import re

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.records import RecordsLayout
from harvester.portals.arcgis_hub import FeatureServerRecords, esri_wkt
from harvester.records import RecordsError, pull_dataset
from tests.conftest import fail_pull_after, fast_client, harvest_with_records
from tests.portals.arcgis import FeatureServerPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.shared_fixtures import load_json

ESRI = "/arcgis/rest/services/Facilities/FeatureServer/0"
COOK = "/arcgis/rest/services/POI/MapServer/0"
ESRI_ITEM, COOK_ITEM = "a" * 32, "b" * 32


def hub_entry(item: str, title: str, layer_url: str) -> dict:
    return {"identifier": f"https://www.arcgis.com/home/item.html?id={item}&sublayer=0", "title": title,
            "description": title, "modified": "2024-01-01", "publisher": {"name": "Example"},
            "accessLevel": "public", "keyword": ["x"],
            "distribution": [{"title": "ArcGIS GeoService", "format": "ArcGIS GeoServices REST API",
                              "accessURL": layer_url}]}


@pytest.fixture
def servers():
    esri_meta = {**load_json("arcgis-featureserver/esri-test-layer-metadata.json"), "maxRecordCount": 300}
    esri_features = load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]
    for n, feature in enumerate(esri_features):   # the recording has no shapes: give them points
        feature["geometry"] = {"x": -77.0 + n / 1e4, "y": 38.9}
    cook_meta = {**load_json("arcgis-featureserver/cook-county-poi-layer-metadata.json"), "maxRecordCount": 200}
    cook_features = load_json("arcgis-featureserver/cook-county-poi-query-page500.json")["features"]
    with FeatureServerPortal({ESRI: (esri_meta, esri_features), COOK: (cook_meta, cook_features)}) as services:
        feed = {"dataset": [hub_entry(ESRI_ITEM, "Facilities", services.url + ESRI),
                            hub_entry(COOK_ITEM, "Points of interest", services.url + COOK)]}
        with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
            yield services, hub


def run(tmp_path, hub_url):
    return harvest_with_records(tmp_path, "dc", "arcgis-hub", hub_url, [f"{ESRI_ITEM}_0", f"{COOK_ITEM}_0"])[1]


def test_featureserver_layers_become_typed_parquet(tmp_path, servers):
    services, hub = servers
    result = run(tmp_path, hub.url)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"]) == (2, 1500)

    esri = pq.read_table(tmp_path / "records" / "portal=dc" / f"dataset={ESRI_ITEM}_0")
    assert esri.num_rows == 1000 and len(set(esri["objectid"].to_pylist())) == 1000
    assert esri.schema.field("objectid").type == pa.int64()
    assert esri.schema.field("observed").type == pa.timestamp("us", tz="UTC")
    first = esri.sort_by("objectid").slice(0, 1).to_pylist()[0]
    assert first["observed"].isoformat() == "2015-04-07T11:04:35+00:00"    # epoch ms 1428404675000
    assert first["geometry"].startswith("POINT (-77.0")
    # paged by resultOffset in steps of the server's cap, ordered by the object id
    offsets = [(q.get("resultOffset"), q.get("orderByFields")) for p, q, _ in services.requests
               if p == ESRI + "/query" and "resultOffset" in q]
    assert offsets == [("0", "objectid"), ("300", "objectid"), ("600", "objectid"), ("900", "objectid")]

    cook = pq.read_table(tmp_path / "records" / "portal=dc" / f"dataset={COOK_ITEM}_0")
    assert cook.num_rows == 500 and len(set(cook["OBJECTID"].to_pylist())) == 500
    assert cook.schema.field("ID").type == pa.float64() and cook.schema.field("NAME").type == pa.string()
    assert cook.schema.field("geometry").type == pa.string()
    assert cook.sort_by("OBJECTID").slice(0, 1).to_pylist()[0]["geometry"] == \
        "POINT (-87.7923858839999 41.946683282)"
    batches = [q["objectIds"].count(",") + 1 for p, q, _ in services.requests if "objectIds" in q]
    assert batches == [200, 200, 100]          # no pagination: object-id batches of maxRecordCount
    # Cook County's LAST_EDIT dates are text, as ArcGIS Server 10.0 wrote them ("12/23/2005 12:00:00 AM"):
    # read as the instants the newer servers give in epoch milliseconds (UTC), none lost (until session
    # 31 all 499 were null, with a warning)
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    recorded = {f["attributes"]["OBJECTID"]: f["attributes"]["LAST_EDIT"]
                for f in load_json("arcgis-featureserver/cook-county-poi-query-page500.json")["features"]}
    assert sum(1 for text in recorded.values() if text) == 499 and cook["LAST_EDIT"].null_count == 1
    stored = dict(zip(cook["OBJECTID"].to_pylist(), cook["LAST_EDIT"].to_pylist()))
    assert recorded[1] == "12/23/2005 12:00:00 AM" and stored[1].isoformat() == "2005-12-23T00:00:00+00:00"
    assert recorded[4] == "1/27/2006 12:00:00 AM" and stored[4].isoformat() == "2006-01-27T00:00:00+00:00"
    assert all((stored[i] is None) == (text is None) for i, text in recorded.items())
    assert con.execute("SELECT count(*) FROM harvest_errors WHERE stage = 'records'").fetchone()[0] == 0
    profiles = dict(con.execute("SELECT column_name, type FROM column_profiles WHERE dataset_uid = ?",
                                [f"dc:{COOK_ITEM}_0"]).fetchall())
    assert profiles["ID"] == "number" and profiles["geometry"] == "point" and profiles["LAST_EDIT"] == "datetime"
    assert profiles["NAME"] == "text" and len(profiles) == 32


def test_an_arcgis_error_behind_200_fails_the_dataset_only(tmp_path, servers):
    services, hub = servers
    services.layers[COOK + "/query"] = ({"error": {"code": 500, "message": "boom"}}, [])
    del services.layers[COOK]
    result = run(tmp_path, hub.url)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["portals"][0]
    assert (report["status"], report["records_pulled"], report["records_failed"]) == ("ok", 1, 1)
    assert not (tmp_path / "records" / "portal=dc" / f"dataset={COOK_ITEM}_0").exists()


def test_esri_shapes_as_wkt():
    assert esri_wkt({"x": 1, "y": 2.5}) == "POINT (1.0 2.5)"
    assert esri_wkt({"paths": [[[0, 0], [1, 1]]]}) == "MULTILINESTRING ((0.0 0.0, 1.0 1.0))"
    assert esri_wkt({"rings": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}) == "POLYGON ((0.0 0.0, 1.0 0.0, 1.0 1.0, 0.0 0.0))"
    assert esri_wkt({"points": [[0, 1]]}) == "MULTIPOINT ((0.0 1.0))"
    assert esri_wkt({"x": None, "y": None}) is None and esri_wkt(None) is None


def test_a_server_answering_fewer_than_asked_is_paged_by_what_it_gave():
    from harvester.portals.arcgis_hub import FeatureServerRecords
    from tests.conftest import fast_client

    meta = {**load_json("arcgis-featureserver/esri-test-layer-metadata.json"), "maxRecordCount": 300}
    features = load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]
    with FeatureServerPortal({ESRI: (meta, features)}, real_cap=240) as services:
        source = FeatureServerRecords(fast_client(), services.url + ESRI)
        ids = [i for table, _ in source.batches(None) for i in table["objectid"].to_pylist()]
        offsets = [int(q["resultOffset"]) for p, q, _ in services.requests if "resultOffset" in q]
    assert len(ids) == len(set(ids)) == 1000 == source.expected_rows
    assert offsets == [0, 240, 480, 720, 960]   # on by the 240 it gave, not the 300 asked


def test_fields_that_change_while_the_layer_is_read_fail_its_pull(tmp_path, servers):
    """A layer's field renamed between two query pages (the answers name their fields): the
    later pages' values of the old name were null, the new name's lost, the pull complete."""
    services, hub = servers
    metadata, features = services.layers[ESRI]
    old = next(f["name"] for f in metadata["fields"] if f["type"] not in ("esriFieldTypeOID", "esriFieldTypeGeometry"))

    def rename_after_the_first_page(path, query):
        if path.endswith("/query") and query.get("resultOffset") not in (None, "0") and ESRI in path:
            for field in metadata["fields"]:
                if field["name"] == old:
                    field["name"] = "renamed"

    services.on_request = rename_after_the_first_page
    db, result = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE stage = 'records'").fetchone()[0]
    assert "columns changed while the dataset was read: the page at" in message and "new: ['renamed']" in message


class RenamingServer(FeatureServerPortal):
    """Answers every object-id batch but the first with the layer's NAME field renamed
    FACILITY_NAME, in its features and in what the answer names (pages are asked ahead, so
    the answer itself, not the order of the requests, says which batch it is)."""

    def query(self, metadata, features, query):
        answer = super().query(metadata, features, query)
        first = min(f["attributes"]["OBJECTID"] for f in features)
        if not query.get("objectIds") or first in {f["attributes"]["OBJECTID"] for f in answer["features"]}:
            return answer
        def renamed(name):
            return "FACILITY_NAME" if name == "NAME" else name
        answer["features"] = [{**f, "attributes": {renamed(k): v for k, v in f["attributes"].items()}}
                              for f in answer["features"]]
        if "fieldAliases" in answer:
            answer["fieldAliases"] = {renamed(k): v for k, v in answer["fieldAliases"].items()}
        return answer


@pytest.mark.parametrize("answers_name", ["fieldAliases", "nothing"])
def test_fields_that_change_between_object_id_batches_fail_its_pull(tmp_path, answers_name):
    """Cook County's MapServer answers name their fields by `fieldAliases` only, and other
    servers by nothing but the attributes: a field renamed between two object-id batches gave
    nulls for the later batches' values of the old name, the new name's lost, the pull complete."""
    cook_meta = {**load_json("arcgis-featureserver/cook-county-poi-layer-metadata.json"), "maxRecordCount": 200}
    features = load_json("arcgis-featureserver/cook-county-poi-query-page500.json")["features"]
    with RenamingServer({COOK: (cook_meta, features)},
                        answer_fields=False if answers_name == "fieldAliases" else None) as services:
        with DataJsonPortal({"dataset": [hub_entry(COOK_ITEM, "Points of interest", services.url + COOK)]},
                            path=HUB_FEED_PATH) as hub:
            db, result = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{COOK_ITEM}_0"])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE stage = 'records' "
                                              "AND severity = 'error'").fetchone()[0]
    assert "columns changed while the dataset was read: the page at" in message
    assert "new: ['FACILITY_NAME']" in message
    # (the attributes alone say a field is gone only where a null is written out: none in these batches)
    assert ("gone: ['NAME']" if answers_name == "fieldAliases" else "gone: []") in message


def test_an_answer_without_fields_is_read_whole(tmp_path):
    """The same layer, unchanged, answered without `fields`: no false alarm (its nulls are kept
    in the attributes, as the recording shows)."""
    cook_meta = {**load_json("arcgis-featureserver/cook-county-poi-layer-metadata.json"), "maxRecordCount": 200}
    features = load_json("arcgis-featureserver/cook-county-poi-query-page500.json")["features"]
    with FeatureServerPortal({COOK: (cook_meta, features)}, answer_fields=None) as services:
        with DataJsonPortal({"dataset": [hub_entry(COOK_ITEM, "Points of interest", services.url + COOK)]},
                            path=HUB_FEED_PATH) as hub:
            _, result = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{COOK_ITEM}_0"])
    assert json.loads(result.output)["portals"][0]["record_rows"] == 500, result.output


class RowsOfAnEarlierOffset(FeatureServerPortal):
    """Answers the `resultOffset` query at `at`, once, with the features from 20 before (a
    stale or misrouted page: neither the page before nor the one asked)."""

    def __init__(self, layers, at: int):
        super().__init__(layers)
        self.at, self.done = at, True   # (answers right until told)

    def query(self, metadata, features, query):
        if query.get("resultOffset") == str(self.at) and not self.done:
            self.done = True
            query = {**query, "resultOffset": str(self.at - 20)}
        return super().query(metadata, features, query)


def esri_layer() -> tuple[dict, list[dict]]:
    meta = {**load_json("arcgis-featureserver/esri-test-layer-metadata.json"), "maxRecordCount": 300}
    return meta, load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]


def test_a_page_of_rows_already_read_fails_the_pull_instead_of_doubling_them(tmp_path):
    """Features come in object-id order (`orderByFields`): a page that starts at or before the
    last object id read holds rows read already. Only a page equal to the one before was
    refused: the pull published 20 rows twice, its count met (it read on while the server
    said `exceededTransferLimit`), and reported ok. The previous Parquet stays."""
    meta, features = esri_layer()
    ids = [f["attributes"]["objectid"] for f in features]
    with RowsOfAnEarlierOffset({ESRI: (meta, features)}, at=600) as services:
        with DataJsonPortal({"dataset": [hub_entry(ESRI_ITEM, "Facilities", services.url + ESRI)]},
                            path=HUB_FEED_PATH) as hub:
            _, first = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"])
            assert json.loads(first.output)["portals"][0]["record_rows"] == 1000, first.output
            services.done = False
            db, result = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE stage = 'records'").fetchone()[0]
    assert "resultOffset=600" in message, message
    assert f"starts at objectid {ids[580]}, not past the last row read (objectid {ids[599]})" in message, message
    kept = pq.read_table(tmp_path / "records" / "portal=dc" / f"dataset={ESRI_ITEM}_0")["objectid"].to_pylist()
    assert sorted(kept) == ids


class Killed(Exception):
    pass


def test_a_resumed_pull_refuses_a_page_of_rows_read_before_it_stopped(tmp_path, store):
    """A pull cut short after 900 rows, resumed: its first page is answered with rows from 880
    on. Nothing read since the resume to compare it with, it was written: 20 rows twice."""
    meta, features = esri_layer()
    ids = [f["attributes"]["objectid"] for f in features]
    with RowsOfAnEarlierOffset({ESRI: (meta, features)}, at=900) as services:
        layout, url, uid = RecordsLayout(tmp_path / "records"), services.url + ESRI, f"dc:{ESRI_ITEM}_0"
        source = FeatureServerRecords(fast_client(), url)
        fail_pull_after(source, 3, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "dc", f"{ESRI_ITEM}_0", store.con, uid=uid, run_id="r", part_rows=300)
        services.done = False
        with pytest.raises(RecordsError, match=rf"resultOffset=900.* starts at objectid {ids[880]}, not past the "
                                               rf"last row read \(objectid {ids[899]}\)"):
            pull_dataset(FeatureServerRecords(fast_client(), url), layout, "dc", f"{ESRI_ITEM}_0", store.con,
                         uid=uid, run_id="r", part_rows=300)
    assert json.loads((layout.staging("dc", f"{ESRI_ITEM}_0") / "progress.json").read_text())["rows"] == 900


def test_a_layer_that_cannot_order_is_paged_in_its_own_order(tmp_path):
    """A layer whose capabilities say `supportsOrderBy: false` answers in its own order (here,
    newest object id first): the object ids fall from page to page, which is no stale page."""
    meta, features = esri_layer()
    meta = {**meta, "advancedQueryCapabilities": {**meta["advancedQueryCapabilities"], "supportsOrderBy": False}}
    with FeatureServerPortal({ESRI: (meta, features[::-1])}) as services:
        source = FeatureServerRecords(fast_client(), services.url + ESRI)
        ids = [i for table, _ in source.batches(None) for i in table["objectid"].to_pylist()]
    assert ids == [f["attributes"]["objectid"] for f in features[::-1]]


# -- objectIds batches of a layer that changes while it is read -------------------------------

def cook_layer() -> tuple[dict, list[dict]]:
    meta = {**load_json("arcgis-featureserver/cook-county-poi-layer-metadata.json"), "maxRecordCount": 200}
    return meta, load_json("arcgis-featureserver/cook-county-poi-query-page500.json")["features"]


def pull_cook(tmp_path, store, services) -> tuple:
    layout = RecordsLayout(tmp_path / "records")
    result = pull_dataset(FeatureServerRecords(fast_client(), services.url + COOK), layout, "dc", f"{COOK_ITEM}_0",
                          store.con, uid=f"dc:{COOK_ITEM}_0", run_id="r")
    return result, pq.read_table(layout.folder("dc", f"{COOK_ITEM}_0"), columns=["OBJECTID"])["OBJECTID"].to_pylist()


def test_a_feature_deleted_after_the_ids_were_listed_is_no_row_not_a_failed_pull(tmp_path, store):
    """The ids come from `returnIdsOnly` first; a feature deleted before its batch is read is
    not in the layer any more, and its batch gives one row fewer than it asks. The pull failed
    (500 counted, 499 read), as it would each night on a layer whose features are deleted as
    it is read; asked again alone and still not answered, the id is no row of the layer."""
    meta, features = cook_layer()
    last = max(f["attributes"]["OBJECTID"] for f in features)
    with FeatureServerPortal({COOK: (meta, features)}) as services:
        def delete_the_last_feature(path, query):
            if query.get("objectIds") and not services.requests[-2][1].get("objectIds"):   # the first batch
                features[:] = [f for f in features if f["attributes"]["OBJECTID"] != last]

        services.on_request = delete_the_last_feature
        result, ids = pull_cook(tmp_path, store, services)
        asked = [q["objectIds"] for p, q, _ in services.requests if "objectIds" in q]
    assert result.rows == 499 and sorted(ids) == sorted(f["attributes"]["OBJECTID"] for f in features)
    assert last not in ids and asked[-1] == str(last)   # asked again alone: gone


def test_a_batch_answered_short_is_asked_the_rest(tmp_path, store):
    """A server whose own cap (150) is under the maxRecordCount it says (200): each batch
    answered short, the rest of its ids asked again, every feature read."""
    meta, features = cook_layer()
    with FeatureServerPortal({COOK: (meta, features)}, real_cap=150) as services:
        result, ids = pull_cook(tmp_path, store, services)
        asked = [q["objectIds"].count(",") + 1 for p, q, _ in services.requests if "objectIds" in q]
    assert result.rows == 500 and sorted(ids) == sorted(f["attributes"]["OBJECTID"] for f in features)
    assert asked == [200, 50, 200, 50, 100]


class NeverAnswersOneFeature(FeatureServerPortal):
    """Lists every object id (`returnIdsOnly`) but answers no feature for one of them."""

    def __init__(self, layers, withheld: int) -> None:
        super().__init__(layers)
        self.withheld = withheld

    def query(self, metadata, features, query):
        answer = super().query(metadata, features, query)
        if "features" in answer:
            answer["features"] = [f for f in answer["features"] if f["attributes"]["OBJECTID"] != self.withheld]
        return answer


def test_a_feature_the_layer_still_lists_but_never_answers_fails_the_pull(tmp_path, store):
    """An id left out of every answer is taken for a deleted feature only when the layer no
    longer lists it: one it still lists was a row lost, and the pull reported ok."""
    meta, features = cook_layer()
    withheld = sorted(f["attributes"]["OBJECTID"] for f in features)[250]
    with NeverAnswersOneFeature({COOK: (meta, features)}, withheld) as services:
        with pytest.raises(RecordsError, match=rf"the objectIds batch at ids_from=200, ids=200 of .*{COOK} answered "
                                               rf"no feature for object ids the layer still lists \(\[{withheld}\]\)"):
            pull_cook(tmp_path, store, services)


class AnswersARangeOfIds(FeatureServerPortal):
    """Answers `objectIds` with the features from three before the least id asked on (up to its
    cap): features it was not asked for."""

    def query(self, metadata, features, query):
        if query.get("objectIds"):
            asked = [int(i) for i in query["objectIds"].split(",")]
            between = [f["attributes"]["OBJECTID"] for f in features
                       if min(asked) - 3 <= f["attributes"]["OBJECTID"] <= max(asked)]
            query = {**query, "objectIds": ",".join(map(str, between))}
        return super().query(metadata, features, query)


def test_features_a_batch_did_not_ask_for_fail_the_pull(tmp_path, store):
    """A batch answered with features of the batch before: they were published twice, the
    count met (more rows, not fewer), and the pull reported ok."""
    meta, features = cook_layer()
    ids = sorted(f["attributes"]["OBJECTID"] for f in features)
    strays = [i for i in ids[:200] if i >= ids[200] - 3]   # of the first batch, three ids before the second
    with AnswersARangeOfIds({COOK: (meta, features)}) as services:
        with pytest.raises(RecordsError, match=rf"the objectIds batch at ids_from=200, ids=200 of .*{COOK} answered "
                                               rf"features it did not ask for, or twice \(object ids "
                                               rf"{re.escape(str(strays))}\): the server does not select by objectIds"):
            pull_cook(tmp_path, store, services)


def test_a_feature_removed_while_result_offset_pages_are_read_is_read_again(tmp_path, store):
    """A feature removed before the page being read moves the features after it back: one is
    never read, the one removed was. The pull failed (1,000 counted, 999 read); the count
    asked again at its end fell, and read again the pull is the layer as it now is."""
    meta, features = esri_layer()
    first = min(f["attributes"]["objectid"] for f in features)
    with FeatureServerPortal({ESRI: (meta, features)}) as services:
        def remove_the_first_feature(path, query):
            if query.get("resultOffset") == "600":
                features[:] = [f for f in features if f["attributes"]["objectid"] != first]

        services.on_request = remove_the_first_feature
        layout = RecordsLayout(tmp_path / "records")
        result = pull_dataset(FeatureServerRecords(fast_client(), services.url + ESRI), layout, "dc", f"{ESRI_ITEM}_0",
                              store.con, uid=f"dc:{ESRI_ITEM}_0", run_id="r")
    ids = pq.read_table(layout.folder("dc", f"{ESRI_ITEM}_0"), columns=["objectid"])["objectid"].to_pylist()
    assert sorted(ids) == sorted(f["attributes"]["objectid"] for f in features) and len(ids) == 999
    assert result.changed == ("the layer counted 1000 features when the pull began and 999 at its end: features "
                              "removed as it read them move unread ones back past the page being read")
