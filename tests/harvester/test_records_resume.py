"""A records pull cut short resumes from its staged parts only where the portal's rows up to
its resume point are those it staged: over HTTP against a local FeatureServer (a layer
paged by `resultOffset`, one read in `objectIds` batches)."""
import pyarrow.parquet as pq
import pytest

from catalog.records import RecordsLayout
from harvester.portals.arcgis_hub import FeatureServerRecords
from harvester.records import pull_dataset
from tests.conftest import cut_short_after, fast_client
from tests.portals.arcgis import FeatureServerPortal

LAYER = "/arcgis/rest/services/Counts/FeatureServer/0"


class Killed(Exception):
    pass


def layer(paged: bool) -> dict:
    return {"type": "Table", "objectIdField": "OBJECTID", "maxRecordCount": 20,
            "advancedQueryCapabilities": {"supportsPagination": paged},
            "fields": [{"name": "OBJECTID", "type": "esriFieldTypeOID"}, {"name": "NAME", "type": "esriFieldTypeString"}]}


def features(ids) -> list[dict]:
    return [{"attributes": {"OBJECTID": i, "NAME": f"row {i}"}} for i in ids]


def cut_short_then_resumed(tmp_path, store, paged: bool, change):
    """A pull of 100 rows cut short after 40 (two parts of 20), `change` made to the rows
    served, then the pull again: (its result, the object ids published)."""
    with FeatureServerPortal({LAYER: (layer(paged), features(range(1, 101)))}) as server:
        layout = RecordsLayout(tmp_path / "records")
        source = FeatureServerRecords(fast_client(), server.url + LAYER)
        cut_short_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", part_rows=20)
        server.layers[LAYER] = (layer(paged), features(change(list(range(1, 101)))))
        result = pull_dataset(FeatureServerRecords(fast_client(), server.url + LAYER), layout, "city", "counts",
                              store.con, uid="city:counts", run_id="r", part_rows=20)
    return result, pq.read_table(layout.folder("city", "counts"))["OBJECTID"].to_pylist()


@pytest.mark.parametrize("paged", [True, False], ids=["resultOffset", "objectIds"])
def test_rows_removed_before_the_resume_point_make_the_pull_start_over(tmp_path, store, paged):
    """Two rows the staged parts hold removed, two added past the end: the count is the same,
    and every row after the resume point moved two places. Resumed at its offset, the pull
    published the removed rows and lost two that were served all along (reported ok)."""
    served = [i for i in range(1, 103) if i not in (5, 6)]
    result, published = cut_short_then_resumed(tmp_path, store, paged, lambda ids: served)
    assert sorted(published) == served
    assert not result.resumed and result.rows == 100


@pytest.mark.parametrize("paged", [True, False], ids=["resultOffset", "objectIds"])
def test_rows_added_past_the_resume_point_keep_the_staged_parts(tmp_path, store, paged):
    result, published = cut_short_then_resumed(tmp_path, store, paged, lambda ids: ids + [101, 102])
    assert sorted(published) == list(range(1, 103))
    assert result.resumed and result.rows == 102


def datastore_source(portal):
    from harvester.portals import adapter_for
    from harvester.portals.ckan import DatastoreRecords
    from tests.conftest import portal_config
    return DatastoreRecords(adapter_for(portal_config("city", "ckan", portal.url), fast_client()), "res")


def ods_source(portal):
    from harvester.portals import adapter_for
    from harvester.portals.opendatasoft import OdsRecords
    from harvester.records import StoredDataset
    from tests.conftest import portal_config
    columns = [{"field_name": "id", "type": "integer"}, {"field_name": "name", "type": "text"}]
    dataset = StoredDataset(uid="city:counts", portal_id="city", source_id="counts", asset_type="dataset",
                            columns=columns, distributions=[], raw={}, details=None)
    return OdsRecords(adapter_for(portal_config("city", "opendatasoft", portal.url), fast_client()), dataset)


def datastore_portal(rows):
    from tests.portals.ckan import CkanPortal
    fields = [{"id": "_id", "type": "int"}, {"id": "id", "type": "int"}, {"id": "name", "type": "text"}]
    return CkanPortal([], prefix="/ckan", datastore={"res": fields},
                      records={"res": [{"_id": row["id"], **row} for row in rows]})


def ods_portal(rows, **options):
    from tests.portals.opendatasoft import OpenDataSoftPortal, StalePagePortal
    return (StalePagePortal if options else OpenDataSoftPortal)([], records={"counts": rows}, **options)


@pytest.mark.parametrize("kind", ["ckan", "opendatasoft"])
def test_a_count_that_changes_as_a_pull_resumes_starts_it_over(tmp_path, store, monkeypatch, kind):
    """A resumed pull asks the dataset's count, then the row before its resume point; a row
    removed between the two makes that page count one row fewer (SourceChanged). It failed
    the pull, which starts over wherever else it sees the dataset changed: read again from
    its start, once, with the change said."""
    monkeypatch.setattr("harvester.portals.ckan.RECORD_ROWS", 20)
    monkeypatch.setattr("harvester.portals.opendatasoft.PAGE_LIMIT", 20)
    rows = [{"id": i, "name": f"row {i}"} for i in range(1, 101)]
    portal, source_for = (datastore_portal, datastore_source) if kind == "ckan" else (ods_portal, ods_source)
    with portal(rows) as server:
        served = server.records["res" if kind == "ckan" else "counts"]
        layout = RecordsLayout(tmp_path / "records")
        source = source_for(server)
        cut_short_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", part_rows=20)

        def remove_row_5_once_counted(path, query):   # (the request for the row before the resume point)
            if query.get("limit") == "1" and served[4]["id"] == 5:
                del served[4]

        server.on_request = remove_row_5_once_counted
        result = pull_dataset(source_for(server), layout, "city", "counts", store.con, uid="city:counts",
                              run_id="r", part_rows=20)
    assert sorted(pq.read_table(layout.folder("city", "counts"))["id"].to_pylist()) == [i for i in range(1, 101)
                                                                                        if i != 5]
    assert not result.resumed and result.rows == 99
    assert result.changed.endswith("counts 99 rows where the pull began with 100: rows were removed as it read them")


def test_a_resumed_pull_whose_first_page_is_the_staged_rows_again_fails_and_stages_none_twice(tmp_path, store,
                                                                                           monkeypatch):
    """OpenDataSoft rows carry no key. Cut short after two pages of 20, the pull resumed at
    offset 40 (the row before it, at 39, as staged), and a stale cache answered offset 40 with
    the page before it (offset 20): the last 20 rows staged, which no page read in this pull
    came before to be compared with. Taken, rows 21-40 were published twice and 41-60 never,
    the count met. It fails the pull, the staged rows as they were; the next pull publishes
    every row once."""
    from harvester.records import RecordsError
    monkeypatch.setattr("harvester.portals.opendatasoft.PAGE_LIMIT", 20)
    rows = [{"id": i, "name": f"row {i}"} for i in range(1, 101)]
    layout = RecordsLayout(tmp_path / "records")

    def pull():
        return pull_dataset(ods_source(server), layout, "city", "counts", store.con, uid="city:counts", run_id="r",
                            part_rows=20)

    with ods_portal(rows, stale=None) as server:
        source = ods_source(server)
        cut_short_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", part_rows=20)
        server.stale = {"offset": "40", "limit": "20"}
        with pytest.raises(RecordsError, match="offset=40, limit=20 gave again the last 20 rows read before it"):
            pull()
        assert server.stale is None and not layout.folder("city", "counts").exists()
        assert pq.read_table(layout.staging("city", "counts") / "parts")["id"].to_pylist() == list(range(1, 41))
        result = pull()
    assert result.resumed and result.rows == 100
    assert pq.read_table(layout.folder("city", "counts"))["id"].to_pylist() == list(range(1, 101))


def test_a_pull_cut_short_inside_a_part_keeps_the_pages_read(tmp_path, store):
    """Cut short after two pages of 20, inside its first part (of 1,000 rows): the part being
    written was removed, and the next pull read the 40 rows again. It is closed at the last
    page read whole: the next pull asks the row before it (offset 39), then from offset 40."""
    with FeatureServerPortal({LAYER: (layer(True), features(range(1, 101)))}) as server:
        layout = RecordsLayout(tmp_path / "records")
        source = FeatureServerRecords(fast_client(), server.url + LAYER)
        cut_short_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", part_rows=1000)
        server.clear_log()
        result = pull_dataset(FeatureServerRecords(fast_client(), server.url + LAYER), layout, "city", "counts",
                              store.con, uid="city:counts", run_id="r", part_rows=1000)
        offsets = [int(q["resultOffset"]) for _, q, _ in server.requests if "resultOffset" in q]
    assert result.resumed and result.rows == 100 and min(offsets) == 39 and 0 not in offsets
    assert sorted(pq.read_table(layout.folder("city", "counts"))["OBJECTID"].to_pylist()) == list(range(1, 101))
