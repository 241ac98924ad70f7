"""Open311 service requests by date window and page, over HTTP against the local GeoReport
endpoint serving Boston's recorded requests (1,000 objects of which 950 distinct: the
recording merged overlapping pages)."""
import json
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.records import PreviousPull, RecordsLayout, previous_pull
from harvester.portals import adapter_for
from harvester.portals.open311 import RequestsRecords
from harvester.records import RecordsError, pull_dataset
from tests.conftest import fast_client, harvest_with_records, portal_config
from tests.harvester.portals.test_open311 import JSON_SERVICES
from tests.portals.open311 import Open311Portal
from tests.shared_fixtures import load_json

BOSTON = "open311/boston-mayors24-requests-abandoned-vehicle-merged-pages.json"


@pytest.fixture
def boston():
    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        yield portal


def test_requests_by_window_and_page_into_typed_parquet(tmp_path, boston):
    _, result = harvest_with_records(tmp_path, "bos311", "open311", boston.url, ["service-requests"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["portals"][0]["record_rows"] == 950
    table = pq.read_table(tmp_path / "records" / "portal=bos311" / "dataset=service-requests")
    assert table.num_rows == 950 == len(set(table["service_request_id"].to_pylist()))
    assert table.schema.field("requested_datetime").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("lat").type == pa.float64()
    row = table.filter(pa.compute.equal(table["service_request_id"], "101003172470")).to_pylist()[0]
    assert row["requested_datetime"] == datetime(2020, 1, 18, 0, 3, 41, tzinfo=UTC)   # -05:00 kept as the instant
    windows = [q for p, q, _ in boston.requests if p == "/requests.json"]
    assert windows[0]["start_date"] == "2010-01-01T00:00:00Z" and windows[0]["page"] == "1"
    assert max(int(q["page"]) for q in windows) > 1          # windows with more than one page were paged
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    top = con.execute("SELECT top_values FROM column_profiles WHERE column_name = 'status'").fetchone()[0]
    assert set(top) <= {"open", "closed"} and top


def source_for(portal, previous=None, now=datetime(2020, 3, 1, tzinfo=UTC)):
    adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
    return RequestsRecords(adapter, previous, now=now, since=datetime(2018, 1, 1, tzinfo=UTC))


def test_a_server_that_ignores_page_is_read_once_per_window(tmp_path):
    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON), paging=False) as portal:
        source = source_for(portal)
        rows = sum(table.num_rows for table, _ in source.batches(None))
        pages_per_window = {}
        for p, q, _ in portal.requests:
            pages_per_window[q["start_date"]] = max(pages_per_window.get(q["start_date"], 0), int(q["page"]))
    assert rows <= 950 and max(pages_per_window.values()) == 2   # the repeat of page 1 ends the window


def test_incremental_window_starts_before_the_watermark(tmp_path, boston):
    previous = PreviousPull(path="x", row_count=950, watermark="2020-01-18T00:03:41+00:00",
                            pulled_at=datetime(2020, 1, 20, tzinfo=UTC))
    source = source_for(boston, previous)
    assert source.mode == "incremental" and source.since == datetime(2019, 10, 20, 0, 3, 41, tzinfo=UTC)
    rows = sum(table.num_rows for table, _ in source.batches(None))
    requests = load_json(BOSTON)
    recent = {r["service_request_id"] for r in requests
              if datetime.fromisoformat(r["requested_datetime"]) >= source.since}
    assert rows == len(recent)
    assert all(q["start_date"] >= "2019-10-20" for p, q, _ in boston.requests if p == "/requests.json")


def test_a_second_pull_merges_by_service_request_id(tmp_path, boston):
    layout = RecordsLayout(tmp_path / "records")
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    from catalog.store import migrate
    migrate(con)
    first = pull_dataset(source_for(boston), layout, "bos311", "service-requests", con, uid="bos311:service-requests",
                         run_id="r1")
    assert first.rows == 950
    changed = [r for r in boston.service_requests if r["service_request_id"] == "101003172470"][0]
    changed["status"] = "closed"
    previous = previous_pull(con, "bos311:service-requests")
    second = pull_dataset(source_for(boston, previous), layout, "bos311", "service-requests", con,
                          uid="bos311:service-requests", run_id="r2")
    assert (second.mode, second.rows) == ("incremental", 950)
    table = pq.read_table(layout.folder("bos311", "service-requests"))
    assert table.filter(pa.compute.equal(table["service_request_id"], "101003172470"))["status"].to_pylist() == ["closed"]


class StalePages(Open311Portal):
    """Answers page `stale` of each window, the first time it is asked, with the page before's
    requests (a cache's stale page)."""

    def __init__(self, stale: int, **kwargs):
        super().__init__(**kwargs)
        self.stale, self.staled = stale, set()

    def requests_page(self, query):
        if query.get("page") == str(self.stale) and query["start_date"] not in self.staled:
            self.staled.add(query["start_date"])
            query = {**query, "page": str(self.stale - 1)}
        return super().requests_page(query)


def test_a_page_repeating_the_page_before_fails_the_pull_instead_of_ending_its_window(tmp_path):
    """A page of requests all read on this window's earlier pages, that is not its first page
    again (a server ignoring `page`), is a stale or repeated page: taken as the window's end,
    the window's later pages were never read, the pull published without them and reported ok."""
    with StalePages(3, services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        with pytest.raises(RecordsError, match=r"the page at start_date=.*, page=3 brings only requests read on "
                                               r"earlier pages of its window"):
            list(source_for(portal).batches(None))


def test_a_second_page_repeating_the_first_once_is_asked_again(tmp_path):
    """Page 2 answered once with page 1's requests looks like a server that ignores `page`,
    which answers so every time: it is asked once more, and the window is read whole."""
    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        whole = sum(table.num_rows for table, _ in source_for(portal).batches(None))
    with StalePages(2, services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        assert sum(table.num_rows for table, _ in source_for(portal).batches(None)) == whole
        assert portal.staled   # (windows of two pages or more were answered stale)
