"""Open311 service requests by date window and page, over HTTP against the local GeoReport
endpoint serving Boston's recorded requests (1,000 objects of which 950 distinct: the
recording merged overlapping pages)."""
import json
import random
import re
import shutil
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.records import PreviousPull, RecordsLayout, previous_pull
from harvester.portals import adapter_for
from harvester.portals.open311 import SECOND, RequestsRecords, _ids, _stamp
from harvester.http import PermanentError, TransientError
from harvester.records import RecordsError, SourceChanged, StartsOver, pull_dataset
from tests.conftest import fast_client, harvest_with_records, portal_config
from tests.harvester.portals.test_open311 import JSON_SERVICES
from tests.portals.open311 import Open311Portal, instant
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
    # every window read in one answer, narrowed where it was full (a later page only of one second)
    assert wider_windows_paged(windows) <= 1
    assert min(instant(q["end_date"]) - instant(q["start_date"]) for q in windows) < timedelta(days=1)
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    top = con.execute("SELECT top_values FROM column_profiles WHERE column_name = 'status'").fetchone()[0]
    assert set(top) <= {"open", "closed"} and top


def source_for(portal, previous=None, now=datetime(2020, 3, 1, tzinfo=UTC), timezone=None):
    adapter = adapter_for(portal_config("bos311", "open311", portal.url, timezone=timezone), fast_client())
    return RequestsRecords(adapter, previous, now=now, since=datetime(2018, 1, 1, tzinfo=UTC))


def test_a_server_that_ignores_page_is_read_whole_in_narrower_windows(tmp_path):
    """A server that ignores `page` answers a window's first 50 requests, whatever page is
    asked: read page after page, each window ended at its repeated first page, the pull
    published 86 of the 950 requests and reported ok. Windows narrowed until their answer
    is not full read every one, page 1 each."""
    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON), paging=False) as portal:
        ids = [i for table, _ in source_for(portal).batches(None) for i in table["service_request_id"].to_pylist()]
        asked = [q for p, q, _ in portal.requests if p == "/requests.json"]
    assert len(ids) == len(set(ids)) == len({r["service_request_id"] for r in load_json(BOSTON)
                                             if r["requested_datetime"] >= "2018"})
    # (a later page only of one second: while the server's cap is not known, of an answer as large as any yet)
    assert wider_windows_paged(asked) <= 1


def wider_windows_paged(asked: list[dict]) -> int:
    """How many windows wider than one second had a page past the first asked: the one P was
    learned from only, its pages 2 to 4 asked for their sizes (how much the server thins a cut
    answer), their requests not taken."""
    paged = {(q["start_date"], q["end_date"]) for q in asked if q["page"] != "1"
             and instant(q["end_date"]) - instant(q["start_date"]) > timedelta(seconds=1)}
    assert all(int(q["page"]) <= 4 for q in asked if (q["start_date"], q["end_date"]) in paged)
    return len(paged)


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


def test_requests_without_an_id_read_again_are_not_kept_twice(tmp_path):
    """An incremental pull reads the 90 days before its watermark again, and a merge re-run after
    a kill between the publish and `record_pulls` reads a delta the previous folder already holds:
    a request with no `service_request_id` was kept from the previous folder and added again from
    the delta each time. One equal to a delta row (every column, as often as the delta holds it)
    is now kept once; one the delta does not hold (read before, gone or edited since) is kept."""
    idless = [{"status": "open", "requested_datetime": "2020-01-10T09:00:00Z", "description": "twice"},
              {"status": "open", "requested_datetime": "2020-01-10T09:00:00Z", "description": "twice"},
              {"status": "open", "requested_datetime": "2020-01-11T10:00:00Z", "description": "edited"}]
    layout = RecordsLayout(tmp_path / "records")
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    from catalog.store import migrate
    migrate(con)

    def pull(portal, previous, run_id):
        return pull_dataset(source_for(portal, previous), layout, "bos311", "service-requests", con,
                            uid="bos311:service-requests", run_id=run_id)

    def described() -> list:
        table = pq.read_table(layout.folder("bos311", "service-requests"))
        return sorted((r["description"], r["status"]) for r in table.to_pylist() if r["service_request_id"] is None)

    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON) + idless) as portal:
        assert pull(portal, None, "r1").rows == 953
        first = previous_pull(con, "bos311:service-requests")
        second = pull(portal, first, "r2")
        assert (second.mode, second.rows) == ("incremental", 953)
        assert pull(portal, first, "r3").rows == 953   # (the merge again over the folder it published)
        assert described() == [("edited", "open"), ("twice", "open"), ("twice", "open")]
        portal.service_requests[-1]["status"] = "closed"   # (no id to tell it is the same request)
        assert pull(portal, previous_pull(con, "bos311:service-requests"), "r4").rows == 954
        assert described() == [("edited", "closed"), ("edited", "open"), ("twice", "open"), ("twice", "open")]


def one_second(count: int, at: str = "2020-01-08T14:23:26Z") -> list[dict]:
    """`count` requests made in the same second (a batch entered at once), among others."""
    return [{"service_request_id": f"batch-{n:04d}", "status": "open", "requested_datetime": at}
            for n in range(count)] + load_json(BOSTON)


def daily(count: int, month: str) -> list[dict]:
    """`count` requests of `month`, one a day from its first (a 29th on the 1st again, an hour later)."""
    return [{"service_request_id": f"{month}-{n}", "status": "open",
             "requested_datetime": f"{month}-{1 + n % 28:02d}T{8 + n // 28:02d}:00:00Z"} for n in range(count)]


def served_ids(portal) -> set[str]:
    return {str(r["service_request_id"]) for r in portal.service_requests
            if "2018-01-01" <= r["requested_datetime"] < "2020-03-01"}


def pulled_ids(portal, source=None) -> list[str]:
    """The ids a pull of `portal` reads, started over once where its source says so (as pull_dataset does)."""
    source = source or source_for(portal)
    try:
        return [i for table, _ in source.batches(None) for i in table["service_request_id"].to_pylist()]
    except StartsOver:
        return [i for table, _ in source.batches(None) for i in table["service_request_id"].to_pylist()]


class RemovesOnceAPageIsFull(Open311Portal):
    """Once it has answered a full page, removes the first request of that page before the
    next answer (a request deleted, or merged into another, as the pull reads)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.removed: dict | None = None
        self._full: list | None = None

    def requests_page(self, query):
        if self._full and self.removed is None:
            self.removed = self._full[0]
            self.service_requests.remove(self.removed)
        status, page = super().requests_page(query)
        if self._full is None and len(page) == self.PAGE_SIZE:
            self._full = page
        return status, page


def test_a_request_removed_as_the_windows_are_read_loses_no_other(tmp_path):
    """GeoReport v2 says no count: a request removed from a window's page 1 once it was read
    moved the first request of page 2 onto page 1, and the pull never read it, unseen. A
    window is read in one answer (narrowed until its answer is not a full page): every
    request still served is read."""
    with RemovesOnceAPageIsFull(services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        ids = pulled_ids(portal)
        assert portal.removed is not None
        assert sorted(set(ids)) == sorted(served_ids(portal)) and len(ids) == len(set(ids))


def test_many_requests_in_one_second_are_paged_and_read_again_until_two_readings_agree(tmp_path):
    """A window of one second cannot be narrowed: its pages are read. A request of page 1
    removed once page 1 was read moves the first of page 2 onto page 1, never read; so the
    pages are read again until two readings agree page by page."""
    with Open311Portal(services=JSON_SERVICES, requests=one_second(120)) as portal:
        removed = []

        def remove_one_of_page_1(path, query):
            if query.get("page") == "2" and query["start_date"] == "2020-01-08T14:23:26Z" and not removed:
                first = portal.requests_page({**query, "page": "1"})[1][0]
                removed.append(first["service_request_id"])
                portal.service_requests.remove(first)

        portal.on_request = remove_one_of_page_1
        ids = pulled_ids(portal)
        second = [int(q["page"]) for p, q, _ in portal.requests if p == "/requests.json"
                  and (q["start_date"], q["end_date"]) == ("2020-01-08T14:23:26Z", "2020-01-08T14:23:27Z")]
    assert removed and removed[0] not in ids
    assert sorted(set(ids)) == sorted(served_ids(portal)) and len(ids) == len(set(ids))
    assert sum(i.startswith("batch-") for i in ids) == 119
    assert second.count(1) == 3 and max(second) == 3   # three readings of pages 1 to 3: the last two agree


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


@pytest.mark.parametrize("stale", [2, 3])
def test_a_stale_page_of_one_second_is_read_again_not_taken_as_its_end(tmp_path, stale):
    """A page that repeats the page before (a cache's stale page; page 2 repeating page 1
    looks like a server that ignores `page`): taken as the end of the second's pages, the
    pages after it were never read. It is read again."""
    with StalePages(stale, services=JSON_SERVICES, requests=one_second(120)) as portal:
        ids = pulled_ids(portal)
        assert portal.staled
    assert sorted(set(ids)) == sorted(served_ids(portal)) and len(ids) == len(set(ids))


NO_PART = r"; read by parts, 50 of its requests came in no part \(e.g. 'batch-\d+', of status 'open' and service " \
          r"code None\): a status or service code asked by none"


def test_more_requests_in_one_second_than_a_server_that_ignores_page_gives_fail_the_pull(tmp_path):
    """(Read by parts: none gives the second's requests, of no service code.)"""
    with Open311Portal(services=JSON_SERVICES, requests=one_second(120), paging=False) as portal:
        with pytest.raises(RecordsError, match=r"the one second at start_date=2020-01-08T14:23:26Z, "
                                               r"end_date=2020-01-08T14:23:27Z, page=1 answers 50 requests, within 10% "
                                               r"of the largest answer the server gave \(50\), and the server ignores "
                                               r"`page`: .*" + NO_PART):
            pulled_ids(portal)


def test_more_requests_in_one_second_than_a_server_that_ignores_page_gives_are_read_by_parts(tmp_path):
    """120 requests entered in one second from a server that ignores `page` and gives 50 at once:
    the rest of that second could not be read, and the pull failed. A second cannot be narrowed, but
    its requests can, by `status` and `service_code`: read whole, each once."""
    batch = [{**r, "status": "open" if n % 6 == 0 else "closed", "service_code": CODES[n % 7]}
             for n, r in enumerate(one_second(120)[:120])]
    with Open311Portal(services=CITY_SERVICES, requests=batch + load_json(BOSTON), paging=False) as portal:
        ids = pulled_ids(portal)
        by_parts = [q for p, q, _ in portal.requests if p == "/requests.json" and "status" in q]
    assert sorted(ids) == sorted(served_ids(portal)) and len(ids) == len(set(ids))
    assert {q["start_date"] for q in by_parts} == {"2020-01-08T14:23:26Z"} and len(by_parts) < 12, by_parts


def test_a_second_deeper_than_the_server_pages_is_read_by_parts(tmp_path):
    """130 requests entered in one second from a server that gives pages of 50 only two deep (page 3 and
    after: none, as a server capping its offset does): the second cannot be narrowed, and its empty
    page 3 after a full page 2 was taken as its end, 30 requests lost, the pull ok. That empty page may
    be the server's last, not the second's: the second is read again by `status` and `service_code`,
    whose parts are each under a page. Read whole, each once."""
    batch = [{**r, "status": "open" if n % 6 == 0 else "closed", "service_code": CODES[n % 7]}
             for n, r in enumerate(one_second(130)[:130])]
    with Open311Portal(services=CITY_SERVICES, requests=batch + load_json(BOSTON), last_page=2) as portal:
        ids = pulled_ids(portal)
        by_parts = [q for p, q, _ in portal.requests if p == "/requests.json" and "status" in q]
    assert sorted(ids) == sorted(served_ids(portal)) and len(ids) == len(set(ids))
    assert {q["start_date"] for q in by_parts} == {"2020-01-08T14:23:26Z"} and len(by_parts) < 12, by_parts


def records_run(db) -> tuple[list[tuple], list[tuple], list[str]]:
    """A harvest's records outcome: (its records errors and warnings: source id, type, severity, message;
    its record_pulls: source id, rows; the ids published)."""
    con = duckdb.connect(str(db))
    try:
        errors = con.execute("SELECT source_id, error_type, severity, message FROM harvest_errors WHERE stage = "
                             "'records' ORDER BY severity, error_type").fetchall()
        pulls = con.execute("SELECT source_id, row_count FROM record_pulls").fetchall()
    finally:
        con.close()
    folder = db.parent / "records" / "portal=bos311" / "dataset=service-requests"
    published = pq.read_table(folder)["service_request_id"].to_pylist() if folder.is_dir() else []
    return errors, pulls, published


def test_a_second_deeper_than_the_server_pages_that_parts_cannot_tell_is_kept_with_an_error_naming_it(tmp_path):
    """The same second's 130 requests all open and of no service code: no part is under a page. Once the
    pull published 100 of them, ok; then (session 44) it failed, every night, the dataset never updated. The
    server gives no page 3 of the 90 days up to that second, or from it, either (it pages no deeper): the pull
    keeps every other window and the second's 100, and the run records an error naming the dataset, the
    second and the count read."""
    with Open311Portal(services=JSON_SERVICES, requests=one_second(130), last_page=2) as portal:
        db, result = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
        served = served_ids(portal)
        second = {str(r["service_request_id"]) for r in portal.service_requests
                  if instant(r["requested_datetime"]) == instant("2020-01-08T14:23:26Z")}   # (130, and one of Boston's)
    errors, pulls, published = records_run(db)
    assert result.exit_code == 0 and pulls == [("service-requests", len(published))], result.output
    assert len(published) == len(set(published)) and set(published) <= served
    assert served - set(published) <= second and len(second & set(published)) == 100   # (the rest of the second only)
    assert [(source_id, kind, severity) for source_id, kind, severity, _ in errors] == [
        ("service-requests", "RequestsUnread", "error")], errors
    # (Boston's 90 days before it hold more than three pages the pull read: the server shown to page no deeper)
    assert re.search(r"the one second at start_date=2020-01-08T14:23:26Z, end_date=2020-01-08T14:23:27Z, page=1 gave "
                     r"2 full page\(s\), 100 requests, then an empty page, and the server pages no deeper than page 2 "
                     r"\(its page 3 of 90 days it holds more requests in was empty\), .* the pull kept the requests it "
                     r"read", errors[0][3]), errors[0][3]


@pytest.mark.parametrize("services", [[], JSON_SERVICES], ids=["no-codes-listed", "codes-not-given"])
def test_a_second_of_exactly_two_pages_where_parts_cannot_tell_is_read_whole(tmp_path, services):
    """100 requests entered in one second (exactly two pages of 50: 98, and one of Boston's twice), all open, of no
    service code, from an
    endpoint listing no codes (or codes the requests do not have), whose server pages as deep as asked: the
    second's page 3 is empty, as a server paging two deep would answer, and its parts cannot tell (one
    status, no code): the pull failed every night (session 44). A server's paging cap is its own, not a
    window's: its page 3 of the 90 days up to that second gives requests, so the second's empty page 3
    is its end. Read whole, no error, one request more."""
    with Open311Portal(services=services, requests=one_second(98)) as portal:
        db, result = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
        served = served_ids(portal)
        deeper = [q for p, q, _ in portal.requests if p == "/requests.json" and q["page"] == "3"
                  and q["end_date"] == "2020-01-08T14:23:27Z"]   # (the second's end)
    errors, pulls, published = records_run(db)
    assert result.exit_code == 0 and [kind for _, kind, severity, _ in errors if severity == "error"] == [], errors
    assert sorted(published) == sorted(served) and pulls == [("service-requests", len(served))]
    # (the second's page 3 in each of its two readings; the 90 days' once)
    assert sorted(q["start_date"] for q in deeper) == ["2019-10-10T14:23:27Z", *["2020-01-08T14:23:26Z"] * 2], deeper


def a_day_of(count: int, day: str) -> list[dict]:
    """`count` requests of `day` (an ISO date), all open, from 8:00 on, one a minute."""
    return [{"service_request_id": f"day-{n:03d}", "status": "open",
             "requested_datetime": f"{day}T{8 + n // 60:02d}:{n % 60:02d}:00Z"} for n in range(count)]


def test_a_day_deeper_than_a_server_reading_whole_days_pages_is_an_error_naming_it(tmp_path):
    """A server that reads whole days and pages only two deep (pages of 50; page 3 and after: none), one
    day of 130 requests: the day's empty page 3 after a full page 2 was taken as the day's end, its 30
    others lost unsaid, the pull ok. The server gives no page 3 of the 90 days up to it (or from it)
    either: the pull keeps every other day and that day's 100, and the run records an error naming the
    dataset, the day and the count. A server paging whole, a day of exactly 100 the first of its requests
    (none in the 90 days before it), gives a page 3 of the 90 days from it: read whole, no error."""
    with Open311Portal(services=JSON_SERVICES, requests=a_day_of(130, "2020-01-08") + load_json(BOSTON),
                       whole_days=True, last_page=2) as portal:
        db, result = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
        served = served_ids(portal)
        day_served = sorted((r for r in portal.service_requests
                             if instant(r["requested_datetime"]).astimezone(UTC).date() == date(2020, 1, 8)),
                            key=lambda r: r["requested_datetime"], reverse=True)
        on_the_day, paged = ({str(r["service_request_id"]) for r in rs} for rs in (day_served, day_served[:100]))
    errors, pulls, published = records_run(db)
    unread = [message for _, kind, severity, message in errors if severity == "error"]
    assert result.exit_code == 0 and pulls == [("service-requests", len(published))], result.output
    assert len(published) == len(set(published)) and set(published) <= served
    assert served - set(published) <= on_the_day and on_the_day & set(published) == paged   # (that day's rest only)
    assert [(source_id, kind) for source_id, kind, severity, _ in errors if severity == "error"] == [
        ("service-requests", "RequestsUnread")], errors
    assert re.search(r"^the one day at start_date=2020-01-08T00:00:00Z, end_date=2020-01-09T00:00:00Z, page=1 gave 2 "
                     r"full page\(s\), 100 requests, then an empty page", unread[0]), unread

    first = tmp_path / "first"   # (Boston's first request: 2018-06-19)
    first.mkdir()
    with Open311Portal(services=JSON_SERVICES, requests=a_day_of(100, "2018-06-01") + load_json(BOSTON),
                       whole_days=True) as portal:
        db, result = harvest_with_records(first, "bos311", "open311", portal.url, ["service-requests"])
        served = served_ids(portal)
    errors, pulls, published = records_run(db)
    assert result.exit_code == 0 and [e for e in errors if e[2] == "error"] == [], errors
    assert sorted(published) == sorted(served)


@pytest.mark.parametrize("whole_days", [True, False], ids=["a-day", "a-second"])
def test_a_window_of_exactly_two_pages_alone_in_its_180_days_is_read_whole_by_the_citys_busy_days(tmp_path,
                                                                                                  whole_days):
    """A window of exactly two pages (a day of 100, from a server reading whole days; or a second of 100 of
    one status and no code), no other request within 90 days either side, from a server paging as deep as
    asked: its page 3 is empty, and so is page 3 of the 90 days up to it and from it, as a server paging two
    deep would answer. It was kept with an error saying its requests past those 100 were unread (a false
    `RequestsUnread`, documented). A cap is the server's: the city's busy days months later (40 a day for 10
    days, each day under a page) hold more than three pages, and their page 3 is given: the window is whole,
    no error, one request more."""
    start = datetime(2019, 7, 1, tzinfo=UTC)
    busy = uniform_city(40, 10, start)
    window = a_day_of(100, "2019-01-02") if whole_days else one_second(100, "2019-01-02T12:00:00Z")[:100]
    with Open311Portal(services=[], requests=window + busy, whole_days=whole_days) as portal:
        db, result = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
        deeper = [q for p, q, _ in portal.requests if p == "/requests.json" and q["page"] == "3"
                  and instant(q["start_date"]) >= start - timedelta(days=3)]
    errors, pulls, published = records_run(db)
    assert result.exit_code == 0 and [e for e in errors if e[2] == "error"] == [], errors
    assert sorted(published) == sorted(r["service_request_id"] for r in portal.service_requests)
    assert len(deeper) == 1, deeper   # (the busy days' page 3, once)


def test_a_server_paging_two_deep_is_asked_so_once_a_pull_not_each_capped_day(tmp_path, store):
    """A server reading whole days that pages two deep, 130 requests a day for 10 days: each day's pages end
    at an empty page 3, and the pull asked page 3 of the 90 days up to it and from it, for each of the day's
    two readings: 4 requests a day, the answer the same. Once a span the pull read more than three pages in
    gives no page 3, the server pages no deeper: the days after are kept short at once. Every day named, its
    100 kept."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests = [{"service_request_id": f"{day}-{n}", "status": "open",
                 "requested_datetime": _stamp(start + timedelta(days=day, minutes=8 * 60 + 5 * n))}
                for day in range(10) for n in range(130)]
    layout = RecordsLayout(tmp_path / "records")
    with Open311Portal(services=JSON_SERVICES, requests=requests, whole_days=True, last_page=2) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=10), since=start)
        result = pulled_into(layout, store.con, source)
        deeper = [q for p, q, _ in portal.requests if p == "/requests.json" and q["page"] == "3"
                  and instant(q["end_date"]) - instant(q["start_date"]) > timedelta(days=80)]
    assert result.rows == 1_000 and [message[:36] for message in source.short] == [
        f"the one day at start_date=2024-01-{day:02d}" for day in range(1, 11)], source.short
    assert all("pages no deeper than page 2" in message for message in source.short[2:]), source.short
    assert len(deeper) == 5, deeper   # (two days asked both spans; the third, the days before, shows the cap)


def a_minute_apart(days: int, start: datetime) -> list[dict]:
    """A city's requests for `days` days from `start`, one every minute, all open."""
    return [{"service_request_id": f"m-{n}", "status": "open", "requested_datetime": _stamp(start + timedelta(minutes=n))}
            for n in range(days * 1440)]


@pytest.mark.parametrize("last_page", [None, 2], ids=["pages-whole", "pages-two-deep"])
def test_a_server_reading_whole_days_is_noticed_by_a_seconds_pages_where_requests_come_a_minute_apart(tmp_path, store,
                                                                                                         last_page):
    """A server that reads whole days, the end's day left out, a city of a request a minute (3 days): a window
    within a day is answered with nothing, and the one second before a midnight with that day, page 1 its last
    50 requests, made within an hour — no sign by the first page. The pull read each day's pages second by
    second (300 requests for 3 days, by whole days 220); from a server paging two deep it named "the one
    second at 2024-01-01T23:59:59Z" as kept short, where the day was. A second's later pages hold requests
    made further apart than the window is wide, as its first would: the pull reads whole days, each day
    named where it is kept short."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    layout = RecordsLayout(tmp_path / "records")
    with Open311Portal(services=JSON_SERVICES, requests=a_minute_apart(3, start), whole_days=True,
                       last_page=last_page) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=3), since=start)
        result = pulled_into(layout, store.con, source)
        asked = [q for p, q, _ in portal.requests if p == "/requests.json"]
    assert source.whole_days
    if last_page is None:
        assert result.rows == 3 * 1440 and not source.short
        assert len(asked) <= 240, len(asked)   # (by seconds: 300)
    else:
        assert result.rows == 300 and [message[:36] for message in source.short] == [
            f"the one day at start_date=2024-01-{day:02d}" for day in range(1, 4)], source.short


class FailsPastACheckedDay(Open311Portal):
    """Once asked whether it pages past its `last_page` over the 90 days up to `day` (a midnight) or from it,
    answers every later window (a page 1 from the day after `day` on) HTTP 400: a pull that fails after
    that day was kept short."""

    def __init__(self, day: str, **kwargs):
        super().__init__(**kwargs)
        self.day, self.failing = instant(day), False

    def requests_page(self, query):
        start, end = instant(query["start_date"]), instant(query["end_date"])
        page = int(query.get("page", 1))
        if self.failing and page == 1 and start >= self.day + timedelta(days=1):
            return 400, [{"code": 400, "description": "start_date is out of range"}]
        if page > self.last_page and end - start > timedelta(days=80) \
                and self.day in (start, end - timedelta(days=1)):
            self.failing = True
        return super().requests_page(query)


def test_a_pull_failing_after_a_day_paged_no_deeper_says_it_kept_none_of_it(tmp_path):
    """The day of 130 from a server reading whole days that pages only two deep, kept with its 100 and an
    error saying "the pull kept the requests it read" — then a later window fails the pull (HTTP 400), which
    keeps nothing it read (the previous records kept): the notice said it kept them. It says the pull failed,
    keeping none, a warning beside the pull's error."""
    with FailsPastACheckedDay("2020-01-08T00:00:00Z", services=JSON_SERVICES,
                              requests=a_day_of(130, "2020-01-08") + load_json(BOSTON), whole_days=True,
                              last_page=2) as portal:
        db, result = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
        assert portal.failing
    errors, pulls, published = records_run(db)
    assert pulls == [] and published == [], result.output
    assert [(source_id, kind, severity) for source_id, kind, severity, _ in errors] == [
        ("service-requests", "ClientError", "error"), ("service-requests", "RequestsUnread", "warning")], errors
    unread = errors[1][3]
    assert unread.startswith("the one day at start_date=2020-01-08T00:00:00Z, end_date=2020-01-09T00:00:00Z, page=1 "
                             "gave 2 full page(s), 100 requests, then an empty page"), unread
    assert unread.endswith(": the pull failed, keeping none of the requests it read (the previous records kept)") \
        and "kept the requests it read" not in unread, unread


def test_a_day_paged_no_deeper_in_a_window_read_again_is_named_where_the_pull_fails_reading_it_again(tmp_path,
                                                                                                      store):
    """200 requests a day, 8 of every 20 left out of a cut page in odd weeks, from a server reading whole days
    and paging two deep: the first week's days, taken whole in a window under the margin learned narrow, are
    read again, split, once it widens, and each is paged no deeper (kept short: an error naming it). The pull
    fails while that window is read again (HTTP 400 past its first day): the day's message was merged into
    the pull's after the reading again only, so dropped, the failed pull naming no day. Kept."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    layout = RecordsLayout(tmp_path / "records")

    class Fails(FailsPastACheckedDay, ThinsWholeDays):
        pass

    with Fails("2024-01-01T00:00:00Z", days_in="UTC", private=8, services=JSON_SERVICES,
               requests=uniform_city(200, 14, start), last_page=2) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=14), since=start)
        with pytest.raises(PermanentError, match="HTTP 400"):
            pulled_into(layout, store.con, source)
        assert portal.failing
    assert len(source.short) == 1 and source.short[0].startswith(
        "the one day at start_date=2024-01-01T00:00:00Z, end_date=2024-01-02T00:00:00Z, page=1 gave 2 full page(s)"), \
        source.short
    assert [kind for kind, *_ in source.notices(kept=False)] == ["RequestsUnread"]


def test_requests_before_a_full_second_at_a_windows_end_are_read_where_end_date_is_inclusive(tmp_path):
    """GeoReport's `end_date` is the latest moment to include, and Boston's server answers
    newest first: a window whose newest second holds a page of requests or more answers
    that second alone. Checked by the parts of the window before and after that second,
    the part before, ending at it, answered that second's requests again (all in the
    answer: nothing new), and the window was taken as that one second: the requests of
    its earlier days were never read, the pull ok."""
    requests = one_second(60, "2018-02-01T00:00:00Z")[:60] + daily(10, "2018-01")
    with Open311Portal(services=JSON_SERVICES, requests=requests, end_inclusive=True) as portal:
        ids = pulled_ids(portal)
    assert sorted(set(ids)) == sorted(served_ids(portal)) and len(ids) == len(set(ids)) == 70


def test_one_seconds_answer_from_a_server_that_ignores_page_is_not_taken_whole_unknown_to_be_short(tmp_path):
    """60 requests entered in one second, the first answer of the pull, from a server that
    ignores `page` and gives 50 at once: its cap not known yet, the 50 were taken as the
    second's whole (10 lost, the pull ok). Neither the 90 days before nor those after give
    more than 50 at once: the second is read by parts, which cannot tell it (its requests of no
    service code), and the pull fails."""
    with Open311Portal(services=JSON_SERVICES, requests=one_second(60, "2018-03-30T12:00:00Z")[:60],
                       paging=False) as portal:
        with pytest.raises(RecordsError, match=r"the one second at start_date=2018-03-30T12:00:00Z, "
                                               r"end_date=2018-03-30T12:00:01Z, page=1 answers 50 requests, within 10% "
                                               r"of the largest answer the server gave \(50\), and the server ignores "
                                               r"`page`: .*" + NO_PART):
            pulled_ids(portal)


def test_one_seconds_answer_from_a_server_that_ignores_page_is_whole_where_it_gives_more_at_once(tmp_path):
    """30 requests in one second, the first answer of the pull, from a server that ignores
    `page`: the 90 days after it give 50 at once, so 30 was the second's whole."""
    requests = one_second(30, "2018-03-30T12:00:00Z")[:30] + daily(40, "2018-04")
    with Open311Portal(services=JSON_SERVICES, requests=requests, paging=False) as portal:
        ids = pulled_ids(portal)
    assert sorted(set(ids)) == sorted(served_ids(portal)) and len(ids) == len(set(ids)) == 70


class IgnoresDates(Open311Portal):
    """Answers every window with the requests of June 2017, newest first, by page (a server
    that does not read `start_date`/`end_date`); from its 300th answer on, a 400, which
    fails the pull (it read on without end: the time of a hang)."""

    def requests_page(self, query):
        if len([p for p, _, _ in self.requests if p == "/requests.json"]) > 300:
            return 400, [{"code": 400, "description": "too many requests"}]
        return super().requests_page({**query, "start_date": "2017-06-01T00:00:00Z",
                                      "end_date": "2017-07-01T00:00:00Z"})


def test_a_server_that_ignores_the_dates_asked_fails_the_pull_at_once(tmp_path):
    """Every window answered with the same requests, made outside it: narrowed again and
    again (each answer as full as the one before), each one-second window read page after
    page, the requests of every page yielded again: 20,000 requests for a year's first 13
    minutes, without end. The first answer of requests none of which was made within a day
    of its window fails the pull, naming it."""
    june = [{"service_request_id": f"r{n}", "status": "open",
             "requested_datetime": f"2017-06-{1 + n % 28:02d}T08:00:{n // 28:02d}Z"} for n in range(120)]
    with IgnoresDates(services=JSON_SERVICES, requests=june) as portal:
        with pytest.raises(RecordsError, match=r"the window at start_date=2018-01-01T00:00:00Z, "
                                               r"end_date=2018-04-01T00:00:00Z, page=1 was answered with requests "
                                               r"made from 2017-06-16T08:00:02Z to 2017-06-28T08:00:03Z, none within "
                                               r"a day of it: the server does not read start_date/end_date"):
            pulled_ids(portal)
        assert len([p for p, _, _ in portal.requests if p == "/requests.json"]) == 1


def test_a_windows_error_names_its_bounds_as_sent_in_the_portals_zone(tmp_path):
    """With the portal's `timezone` the window bounds are sent as its local times with their
    offset, but an error named them in UTC (`…Z`), bounds no request the log shows carried. They
    are named as sent, and the requests' times in the same zone."""
    june = [{"service_request_id": f"r{n}", "status": "open",
             "requested_datetime": f"2017-06-{1 + n % 28:02d}T08:00:{n // 28:02d}Z"} for n in range(120)]
    with IgnoresDates(services=JSON_SERVICES, requests=june, local_zone="America/New_York") as portal:
        with pytest.raises(RecordsError, match=r"the window at start_date=2017-12-31T19:00:00-05:00, "
                                               r"end_date=2018-03-31T20:00:00-04:00, page=1 was answered with requests "
                                               r"made from 2017-06-16T04:00:02-04:00 to 2017-06-28T04:00:03-04:00, none "
                                               r"within a day of it"):
            pulled_ids(portal, source_for(portal, timezone="America/New_York"))
        sent = [q for p, q, _ in portal.requests if p == "/requests.json"]
    assert [(q["start_date"], q["end_date"]) for q in sent] == [("2017-12-31T19:00:00-05:00", "2018-03-31T20:00:00-04:00")]


class ReadsWholeDays(Open311Portal):
    """Reads the days of `start_date`/`end_date` whole, their times dropped (uReport did), the
    end's day included; from its `limit`th answer on, a 400, which fails the pull (it read on
    without end)."""

    def __init__(self, limit: int = 300, **kwargs):
        super().__init__(whole_days=True, end_inclusive=True, **kwargs)
        self.limit = limit

    def requests_page(self, query):
        if len([p for p, _, _ in self.requests if p == "/requests.json"]) > self.limit:
            return 400, [{"code": 400, "description": "too many requests"}]
        return super().requests_page(query)


@pytest.mark.parametrize("zone", [None, "America/New_York"], ids=["utc", "new-york"])
@pytest.mark.parametrize("paging", [True, False], ids=["page", "page-ignored"])
@pytest.mark.parametrize("inclusive", [False, True], ids=["end-excluded", "end-included"])
def test_a_server_that_reads_whole_days_is_read_again_by_whole_days_from_midnight(tmp_path, store, caplog, zone,
                                                                                    paging, inclusive):
    """A server that reads the days of `start_date`/`end_date` but not their times (uReport did,
    its issue #285): once a check showed it (o31), the pull failed naming the windows, every
    night, its requests never read. It starts over reading whole days, each window from a
    midnight to a midnight of the portal's zone (a day at the narrowest): Boston's requests read
    whole, each once, the end's day excluded or included (the windows then overlap by a day
    until the pull sees it, then end a second before midnight), in UTC or New York's time."""
    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON), whole_days=True, end_inclusive=inclusive,
                       paging=paging, local_zone=zone) as portal:
        portal.PAGE_SIZE = 50 if paging else 1000
        pulled_into(RecordsLayout(tmp_path / "records"), store.con, source_for(portal, timezone=zone))
        by_days = read_by_days(windows_asked(portal))
    pulled = [i for i, in duckdb.sql(f"SELECT service_request_id FROM read_parquet("
                                     f"'{tmp_path}/records/portal=bos311/dataset=service-requests/*.parquet')").fetchall()]
    assert len(pulled) == len(set(pulled)) and served_ids(portal) <= set(pulled) <= set(_ids(portal.service_requests))
    started_over = [r.getMessage() for r in caplog.records if "starts over" in r.getMessage()]
    assert len(started_over) == 1 and "does not read the times of start_date/end_date" in started_over[0] \
        and "reading whole days from midnight" in started_over[0], started_over
    assert (inclusive or {end[11:19] for _, end, _ in by_days} == {"00:00:00"}) \
        and asked_to_their_last_days(by_days) == inclusive
    assert len(by_days) < 150


@pytest.mark.parametrize("inclusive", [False, True], ids=["end-excluded", "end-included"])
def test_a_server_read_by_whole_days_is_read_so_by_the_next_pull_from_its_start_until_it_reads_times(
        tmp_path, store, caplog, inclusive):
    """Nothing remembered that a server reads whole days (w32): every pull met the check that shows
    it, read by times until then, and started over. The pull keeps it (record_pulls.whole_days): the
    next reads whole days from its start, no start over, each window asked once but for one check
    that the server still ignores the times (the rest of a window after its newest request: a
    whole day's requests). Fixed since, the server answers that check with nothing: the pull reads
    by times from there on, and the next from its start."""
    layout, uid = RecordsLayout(tmp_path / "records"), "bos311:service-requests"

    def pull(portal) -> list[tuple[str, str, str]]:
        portal.clear_log()
        caplog.clear()
        previous = previous_pull(store.con, uid)
        pulled_into(layout, store.con, source_for(portal, previous and replace(previous, watermark=None)))
        published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
        assert sorted(published) == sorted(served_ids(portal)), "each request published once"
        return windows_asked(portal)

    def starts_over() -> list[str]:
        return [r.getMessage() for r in caplog.records if "starts over" in r.getMessage()]

    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON), whole_days=True,
                       end_inclusive=inclusive) as portal:
        by_days = read_by_days(pull(portal))
        assert len(starts_over()) == 1 and previous_pull(store.con, uid).whole_days is True
        again = pull(portal)
        assert not starts_over() and previous_pull(store.con, uid).whole_days is True
        checked = [window for window in again if window[0][11:19] != "00:00:00"]
        assert len(checked) == 1 and len(again) == len(set(again)) <= len(by_days) + 1, again
        assert again[0][0] == by_days[0][0]   # (from the start's midnight)
        portal.whole_days = False   # fixed: it reads the times asked
        fixed = pull(portal)
        assert not starts_over() and previous_pull(store.con, uid).whole_days is False
        assert any("reads the times of start_date/end_date again" in r.getMessage() for r in caplog.records)
        assert any(instant(end) - instant(start) < timedelta(days=1) for start, end, _ in fixed)
        by_times = pull(portal)
    assert not caplog.records and previous_pull(store.con, uid).whole_days is False   # (no start over, no check)
    # by times from the start: the first full window narrowed at a request's second, not at a midnight
    assert any(end[11:19] not in ("00:00:00", "23:59:59") for _, end, _ in by_times[:3]), by_times[:3]


@pytest.mark.parametrize("days_in, last_second, inclusive", [
    ("UTC", "23:59:59Z", False), ("UTC", "23:59:59Z", True), ("America/New_York", "04:59:59Z", False)],
    # (New York's days, the end's included: each answer holds requests made before its window, and no window is checked)
    ids=["utc-days-end-excluded", "utc-days-end-included", "new-york-days-end-excluded"])
def test_a_server_still_reading_whole_days_is_not_taken_as_fixed_where_a_day_ends_with_a_request(
        caplog, days_in, last_second, inclusive):
    """A pull that reads whole days because the pull before did checks once that the server still
    ignores the times: it asked the rest of a window after its newest request, a second after it.
    A request made in the last second of the server's day (23:59:59 of UTC's, or of New York's from
    a portal in UTC, 04:59:59Z) puts that second at the server's next midnight, whose day holds none
    of the window's requests: nothing came back, and the server was taken as reading times again
    (its next pull by times, shown otherwise, started over). The check asks from a second after the
    newest request whose next second is no midnight in any zone; a server gives requests made before
    that second only where it reads whole days."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests = [{"service_request_id": f"{day}-{n}", "status": "open", "requested_datetime": at}
                for day in range(1, 11) for n, at in enumerate([f"2024-01-{day:02d}T14:00:00Z",
                                                                f"2024-01-{day + (days_in != 'UTC'):02d}T{last_second}"])]
    with ThinsWholeDays(days_in, private=0, services=JSON_SERVICES, requests=requests,
                        end_inclusive=inclusive) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        previous = PreviousPull(path="x", row_count=0, watermark=None, pulled_at=start, whole_days=True)
        source = RequestsRecords(adapter, previous, now=start + timedelta(days=20), since=start)
        ids = [i for table, _ in source.batches(None) for i in table["service_request_id"].to_pylist()]
        asked = windows_asked(portal)
    assert sorted(ids) == sorted(r["service_request_id"] for r in requests)
    assert source.whole_days and not [r.getMessage() for r in caplog.records], asked
    assert len([window for window in asked if window[0][11:19] != "00:00:00"]) == 1   # (the one check)


def asked_to_their_last_days(by_days: list[tuple[str, str, str]]) -> bool:
    """Whether windows of whole days were asked to their last day (23 hours before their end: a server
    seen to include the end's day), not to a midnight: the window after one starts a day after its
    `end_date`'s."""
    return any(date.fromisoformat(following[:10]) - date.fromisoformat(end[:10]) == timedelta(days=1)
               for (_, end, _), (following, _, _) in zip(by_days, by_days[1:]))


def read_by_days(asked: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The windows asked (`windows_asked`) from the pull's start over by whole days on: each
    from a midnight (its first at or before the pull's first window's start; a later page of the 90
    days before a window, which asks whether the server pages that deep, starts before it too)."""
    restart = max(i for i, (start, _, page) in enumerate(asked) if instant(start) <= instant(asked[0][0])
                  and page == "1")
    assert 0 < restart and all(start[11:19] == "00:00:00" for start, _, _ in asked[restart:]), asked[restart:]
    return asked[restart:]


class ThinsWholeDays(Open311Portal):
    """Reads whole days of its own zone, `days_in` (the dates asked taken there, their times
    dropped), whatever the offset sent; cuts a window's requests at its page of 50, then leaves out
    `private` of every 20 made in odd weeks (a service type private for a while: its cut pages
    thinned now and then, so windows taken whole under a margin learned narrow are read again), or
    in every week where not `odd_weeks`. `private_in`: so many of every 20 of a status or a service
    code instead (counted among that status's or code's requests; a code's share before its status's):
    a server that thins some parts of a day more than others. `refused`: service codes it answers HTTP 400
    where a `service_code` asked holds one (a private service type's, its requests left out by `private_in`)."""

    def __init__(self, days_in: str, private: int = 4, odd_weeks: bool = True, private_in: dict | None = None,
                 refused: tuple = (), **kwargs):
        super().__init__(whole_days=True, **kwargs)
        self.days_in = ZoneInfo(days_in)
        self.refused = set(refused)
        made = sorted(self.service_requests, key=lambda r: r["requested_datetime"])
        counted: dict = {}
        self.private = set()
        for request in made:
            group = next((value for value in (request.get("service_code"), request.get("status"))
                          if value in (private_in or {})), None)
            share, n = (private_in or {}).get(group, private), counted.get(group, 0)
            counted[group] = n + 1
            if n % 20 < share and (instant(request["requested_datetime"]).isocalendar()[1] % 2 or not odd_weeks):
                self.private.add(str(request["service_request_id"]))

    def requests_page(self, query):
        if refused := sorted(set(query.get("service_code", "").split(",")) & self.refused):
            return 400, [{"code": 400, "description": f"service_code {refused[0]} is not a public service"}]
        local = {key: instant(query[key]).astimezone(self.days_in).isoformat() for key in ("start_date", "end_date")
                 if key in query}
        status, page = super().requests_page({**query, **local})
        return status, [r for r in page if str(r["service_request_id"]) not in self.private] if status == 200 else page


def uniform_city(per_day: int, days: int, start: datetime, seed: int = 311) -> list[dict]:
    draw = random.Random(seed)
    return [{"service_request_id": str(n), "status": "open", "requested_datetime": _stamp(moment)}
            for n, moment in enumerate(sorted(start + timedelta(seconds=draw.randrange(days * 86_400))
                                              for _ in range(per_day * days)))]


@pytest.mark.parametrize("zone, days_in", [("America/New_York", "UTC"), ("UTC", "America/New_York"),
                                           ("Asia/Tokyo", "UTC")], ids=["ny-utc-days", "utc-ny-days", "tokyo-utc-days"])
@pytest.mark.parametrize("inclusive", [False, True], ids=["end-excluded", "end-included"])
def test_a_server_whose_days_are_not_the_portals_zones_loses_and_doubles_none_where_windows_are_read_again(
        tmp_path, store, zone, days_in, inclusive):
    """A server read by whole days whose days are not those of the portal's `timezone` (New York
    configured, its days UTC's; none configured, its days New York's): a window read again, split
    (the margin widened past its cut answer), kept only the requests made within its own bounds,
    but the server gives a window its own days, so the requests made in the hours between the
    zone's midnight and the server's came in no other window: lost (11 to 78 of 1,671 requests of
    100 a day); and a server that includes the end's day gave the day shared with the window after
    to both, some published twice (12 to 52). Read again, a window keeps the requests its answer,
    the window before's and the window after's lacked, each once: none lost or doubled."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with ThinsWholeDays(days_in, services=JSON_SERVICES, requests=uniform_city(100, 20, start),
                        end_inclusive=inclusive) as portal:
        public = {r["service_request_id"] for r in portal.service_requests} - portal.private
        adapter = adapter_for(portal_config("bos311", "open311", portal.url, timezone=zone), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=20), since=start)
        layout = RecordsLayout(tmp_path / "records")
        pulled_into(layout, store.con, source)
    pulled = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert source.whole_days and source.thinning > 0.1   # (whole days, windows read again as it widened)
    assert len(pulled) == len(set(pulled)), f"{len(pulled) - len(set(pulled))} published twice"
    # (a server that leaves out the end's day gives the last day's requests to the next pull: GeoReport's
    # end_date read as its day's midnight, which the pull's end may be before, in the server's zone)
    before_the_last_day = {r["service_request_id"] for r in portal.service_requests
                           if instant(r["requested_datetime"]) < start + timedelta(days=19)} - portal.private
    assert before_the_last_day <= set(pulled) <= public, \
        f"{len(before_the_last_day - set(pulled))} of {len(before_the_last_day)} lost"


def read_including_the_ends_day(zone: str, days_in: str, start: datetime, days: int) -> tuple[list[str], set[str], int]:
    """A pull by whole days of `zone` from a server reading its own days, `days_in`, the end's day
    included: (the ids read, those served, the requests asked once whole days were read)."""
    with ThinsWholeDays(days_in, private=0, services=JSON_SERVICES, requests=uniform_city(100, days, start),
                        end_inclusive=True) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url, timezone=zone), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=days), since=start)
        ids = pulled_ids(portal, source)
        return ids, {r["service_request_id"] for r in portal.service_requests}, len(read_by_days(windows_asked(portal)))


@pytest.mark.parametrize("zone, days_in", [("America/New_York", "UTC"), ("UTC", "America/New_York")],
                         ids=["ny-utc-days", "utc-ny-days"])
def test_a_server_including_the_ends_day_whose_days_are_not_the_portals_zones_is_asked_no_day_twice(zone, days_in):
    """A server read by whole days that includes the end's day was asked to a second before each
    midnight of the portal's zone, which falls in the server's day after it where its days are not
    that zone's: every window overlapped the next by a day, the pull asking 1.6 to 1.7 times what it
    asks a server of the portal's own days (100 a day for 20 days: 182 and 177 requests for 111 and
    104). Asked to 23 hours before a window's end, the windows tile the server's days: each request
    read once, in 110 and 109."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    asked = {}
    for days in (zone, days_in):
        ids, served, asked[days] = read_including_the_ends_day(zone, days, start, 20)
        assert len(ids) == len(set(ids)) and set(ids) == served
    assert asked[days_in] <= 1.1 * asked[zone], asked


@pytest.mark.parametrize("zone, days_in", [("America/New_York", "UTC"), ("UTC", "America/New_York")],
                         ids=["ny-utc-days", "utc-ny-days"])
@pytest.mark.parametrize("inclusive", [False, True], ids=["end-excluded", "end-included"])
def test_a_server_of_other_days_that_ignores_page_and_thins_none_is_learned_to_thin_none(zone, days_in, inclusive):
    """By whole days a window narrowed counted as cut once a narrower window brought a request made
    before its end that its answer lacked; but a server whose days are not the portal's zone's ends
    a window's answer hours before the window ends, and the requests of those hours come in the
    windows after it: 257 requests a day from a server that ignores `page`, gives 1,000 at once and
    leaves none out, the end's day left out, was learned to thin half of a cut answer (kept for the
    next pull, read at half of P); asked to 23 hours before each window's end, the end's day
    included, the answers of two days were counted cut so, and days taken whole, within half of the
    largest answer, failed the pull as possibly cut. Only a request made before the answer's newest
    shows it cut: every request read, a thinning of none learned."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with ThinsWholeDays(days_in, private=0, services=JSON_SERVICES, requests=uniform_city(257, 29, start),
                        end_inclusive=inclusive, paging=False) as portal:
        portal.PAGE_SIZE = 1000
        adapter = adapter_for(portal_config("bos311", "open311", portal.url, timezone=zone), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=29), since=start)
        ids = pulled_ids(portal, source)
    last_day = {r["service_request_id"] for r in portal.service_requests
                if instant(r["requested_datetime"]) >= start + timedelta(days=28)}
    assert len(ids) == len(set(ids)) and set(ids) | last_day == {r["service_request_id"] for r in portal.service_requests}
    assert source.whole_days and source.thinning == 0


@pytest.mark.parametrize("start", [datetime(2024, 3, 21, tzinfo=UTC), datetime(2024, 10, 17, tzinfo=UTC)],
                         ids=["clocks-forward", "clocks-back"])
def test_a_server_including_the_ends_day_loses_no_day_where_the_portals_clock_changes(start):
    """London's days read from a server of UTC's (their midnights an hour apart in summer, none in
    winter): a window's last day 23 or 25 hours long still ends where the server's next day starts
    (asked to the midnight that starts that day, a day of 25 hours held two of the server's
    midnights, and the server's day between them was asked by no window)."""
    ids, served, _ = read_including_the_ends_day("Europe/London", "UTC", start, 20)
    assert len(ids) == len(set(ids)) and set(ids) == served


@pytest.mark.parametrize("inclusive", [False, True], ids=["end-excluded", "end-included"])
def test_a_day_read_by_pages_whose_last_page_read_was_thinned_under_the_margin_is_checked(tmp_path, store, inclusive):
    """Windows of whole days were never checked (_audit: the part it asks, cut at a request's
    second, is read as whole days). A day of 200 requests is read by pages, and a page thinned
    further under P than the margin (learned from days not thinned) was taken as the day's last:
    768 and 801 of 2,224 requests lost (200 a day for 14 days, 8 of 20 left out in odd weeks),
    reported ok. The page after it is asked (one request, a day in 20 and the first 10 while the
    server is seen to thin): it brings requests, the margin widens, and the days taken so are read
    again: none lost."""
    start = datetime(2024, 1, 1, tzinfo=UTC)   # (an odd week, then an even one: its full pages read first, newest first)
    with ThinsWholeDays("UTC", private=8, services=JSON_SERVICES, requests=uniform_city(200, 14, start),
                        end_inclusive=inclusive) as portal:
        public = {r["service_request_id"] for r in portal.service_requests} - portal.private
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=14), since=start)
        layout = RecordsLayout(tmp_path / "records")
        pulled_into(layout, store.con, source)
    pulled = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert set(pulled) == public, f"{len(public - set(pulled))} of {len(public)} lost"
    assert len(pulled) == len(set(pulled)) and source.whole_days and source.thinning > 0.1


CODES = [f"code-{n:02d}" for n in range(40)]   # (services.json's codes, CITY_SERVICES)
CITY_SERVICES = [{"service_code": code, "service_name": f"Service {code}"} for code in CODES]


def coded(requests: list[dict], unlisted: int = 0) -> list[dict]:
    """`requests` with a status (one in 6 open) and a service code (seeded, the first codes the most
    given), one in `unlisted` of a code services.json does not list (real servers give some)."""
    draw = random.Random(35)
    weights = [len(CODES) - n for n in range(len(CODES))]
    return [{**r, "status": "open" if n % 6 == 0 else "closed", "service_code":
             "unlisted" if unlisted and n % unlisted == unlisted // 2 else draw.choices(CODES, weights)[0]}
            for n, r in enumerate(requests)]


def busy_days_pull(tmp_path, store, requests: list[dict], services: list[dict] = CITY_SERVICES, private: int = 8,
                   results: list | None = None, **server):
    """A pull of 10 days from `requests`, served by a server that reads whole days (New York's, the
    portal's zone UTC), ignores `page`, cuts at 50 and then leaves out `private` of every 20 requests
    (see ThinsWholeDays): (the public requests made before the last day, the ids published, the
    `requests.json` asked, the other paths asked)."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    layout = RecordsLayout(tmp_path / "records")
    with ThinsWholeDays("America/New_York", private=private, odd_weeks=False, services=services, requests=requests,
                        paging=False, **server) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=10), since=start)
        result = pulled_into(layout, store.con, source)
    if results is not None:   # (the pull's PullResult, for a test that reads it)
        results.append(result)
    public = {r["service_request_id"] for r in portal.service_requests
              if instant(r["requested_datetime"]) < start + timedelta(days=9)} - portal.private
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    return public, published, [q for p, q, _ in portal.requests if p == "/requests.json"], \
        [p for p, _, _ in portal.requests if p != "/requests.json"]


def test_a_server_that_reads_whole_days_ignores_page_and_thins_cut_answers_is_read_whole_by_parts(tmp_path, store):
    """400 requests a day for 10 days from a server that reads whole days (New York's, the portal's
    zone UTC), ignores `page`, cuts at 50 and then leaves out 8 of every 20 requests: each day's one
    answer (26 to 34 of its 240 public requests) was taken as the day's whole because an answer of
    the 90 days beside it was larger (34), itself cut and thinned less: 1,899 of the 2,148 public
    requests made before the last day lost, the pull ok (w33's sweep); then (w34) the pull failed,
    naming the first day: an answer larger by less than the margin does not show that the server
    gives more at once. Time cannot be narrowed below a day, but GeoReport's `status` and
    `service_code` can: each day is read again by status, then by lists of service codes halved while
    at the cap, each part under it complete. Every public request read once, one in 20 of a code
    services.json does not list (met in the pull's answers, and asked)."""
    public, published, asked, others = busy_days_pull(tmp_path, store, coded(uniform_city(400, 10, datetime(2024, 1, 1,
                                                                                                    tzinfo=UTC)), 20))
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"
    by_codes = [q for q in asked if "service_code" in q]
    assert by_codes and any("unlisted" in q["service_code"].split(",") for q in by_codes)
    assert all(q["status"] in ("open", "closed") for q in asked if "status" in q)
    assert len(asked) < 60 * 10, len(asked)   # (bounded: about two requests per 50 of a day's)
    assert others == ["/services.json"]   # (once, for every day's parts)


@pytest.mark.parametrize("private_in", [{"open": 0, "closed": 5}, {"open": 1, "closed": 6}, {"open": 0, "closed": 8}],
                         ids=["closed-25%", "closed-30%-open-5%", "closed-40%"])
def test_a_day_whose_statuses_a_server_thins_unlike_is_read_by_parts_losing_none(tmp_path, store, private_in):
    """200 requests a day from a server that reads whole days, ignores `page`, cuts at 50 and then
    leaves out of a cut answer more of one status than of the other (closed 25% to 40%, open 0 to 5%):
    a part was taken whole by the margin learned from the days' answers (a thinning of 5% to 12%),
    and the closed one, cut and thinned more, lost 559, 526 and 877 of 1,417, 1,327 and 1,192, the
    pull ok (r35's scratch run: 59 of 200). A server seen to leave requests out after the cut may
    leave out more of one part than of another: a part is taken whole under half of the largest
    answer only, the days too (the last one lost all its days once a part showed a larger answer)."""
    public, published, asked, _ = busy_days_pull(
        tmp_path, store, coded(uniform_city(200, 10, datetime(2024, 1, 1, tzinfo=UTC))), private=0,
        private_in=private_in)
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"
    assert len(asked) < 400, len(asked)


def one_code_of_four(requests: list[dict]) -> list[dict]:
    """`requests` (coded), one in four of code-00: a code of more requests a day than the others."""
    return [{**r, "service_code": "code-00"} if n % 4 == 0 else r for n, r in enumerate(requests)]


def test_a_day_whose_code_a_server_thins_more_than_its_status_is_read_whole(tmp_path, store):
    """150 requests a day, one in four of code-00, of which the server leaves out half once a part
    is cut (none of the others): the parts holding code-00 cut and thinned more than the days' answers
    showed (5%) were taken whole, 3 of 1,148 lost, the pull ok. Taken whole under half of the largest
    answer only: none lost."""
    public, published, _, _ = busy_days_pull(
        tmp_path, store, one_code_of_four(coded(uniform_city(150, 10, datetime(2024, 1, 1, tzinfo=UTC)))),
        private=0, private_in={"code-00": 10})
    assert len(published) == len(set(published)) and public <= set(published), \
        f"{len(public - set(published))} of {len(public)} lost"


def test_a_day_whose_one_code_may_be_cut_and_thinned_is_told_whole_by_the_day_before(tmp_path, store):
    """As above, 2 of every 5 of code-00 left out: 10 of 1,186 lost, the pull ok (before session 36).
    One code of one status answering half of the largest answer or more may be cut (its answer thinned
    by up to half), and it cannot be split: the pull failed, naming the day and the part (a day's part
    of code-00 answering 24 of a largest 48). The part asked over the day before too answers, newest
    first, the part's requests and then the day before's: were the part cut, that answer would be cut
    at the same request; it holds requests made before the part's oldest, so the part was whole. Every
    public request read once, one request more."""
    public, published, asked, _ = busy_days_pull(
        tmp_path, store, one_code_of_four(coded(uniform_city(150, 10, datetime(2024, 1, 1, tzinfo=UTC)))),
        private=0, private_in={"code-00": 8})
    assert len(published) == len(set(published)) and public <= set(published), \
        f"{len(public - set(published))} of {len(public)} lost"
    assert [(q["start_date"], q["end_date"]) for q in asked if q.get("service_code") == "code-00"
            and q["start_date"][:10] == "2024-01-09" and q["end_date"][:10] == "2024-01-11"] == \
        [("2024-01-09T00:00:00Z", "2024-01-11T00:00:00Z")]   # (the day before and the day in doubt: asked once)


def test_a_day_whose_one_code_is_cut_and_thinned_fails_the_pull_naming_it(tmp_path, store):
    """As above, one in two of code-00 (its closed part of a day over the cap of 50, 2 of every 5 left
    out after the cut): the part asked over the day before too answers the same requests (cut at the same
    one), none made before the part's oldest, and nothing else GeoReport lets one ask tells it whole: the
    pull fails, naming the day and the part, nothing published."""
    requests = coded(uniform_city(150, 10, datetime(2024, 1, 1, tzinfo=UTC)))
    with pytest.raises(RecordsError, match=r"the one day at start_date=2024-01-02T00:00:00Z, .*; read by parts, the "
                                           r"part status=closed, service_code=code-00 answers 31 requests, within 50% "
                                           r"of the largest answer too, and cannot be split further"):
        busy_days_pull(tmp_path, store, [{**r, "service_code": "code-00"} if n % 2 == 0 else r
                                         for n, r in enumerate(requests)], private=0, private_in={"code-00": 8})
    assert store.con.execute("SELECT count(*) FROM record_pulls").fetchone() == (0,)


def one_code_of_three(requests: list[dict]) -> list[dict]:
    """`requests` (coded), one in three of code-01 (a private service type, in the tests below)."""
    return [{**r, "service_code": "code-01"} if n % 3 == 0 else r for n, r in enumerate(requests)]


@pytest.mark.parametrize("per_day", [200, 300])
def test_a_private_service_type_beside_public_ones_in_a_part_loses_none_of_theirs(tmp_path, store, per_day):
    """One request in three of a service type services.json lists whose requests the server leaves out
    (private), from a server that reads whole days, ignores `page` and cuts at 50 before leaving them
    out: a day's closed part, split by the codes its answer gave, put code-01 (given by none, so taken
    as light) with code-00 and code-02, where it was most of the part's cut: that part answered under
    half of the largest answer and was taken whole (the half rule assumes no cut answer thinned by more
    than half), 10 and 42 of 1,130 and 1,691 public requests lost, the pull ok. The codes no answer gave
    are asked apart from those met: none lost or published twice."""
    public, published, asked, _ = busy_days_pull(
        tmp_path, store, one_code_of_three(coded(uniform_city(per_day, 10, datetime(2024, 1, 1, tzinfo=UTC)))),
        private=0, private_in={"code-01": 20})
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"
    assert any(q.get("service_code") == "code-01" for q in asked)   # (asked alone: it answers nothing)


def test_a_rare_public_code_beside_a_private_type_in_a_part_loses_none(tmp_path, store):
    """As above (300 a day, one in three of a private type), and a listed code of one request every three
    days, made early in its day: no answer of the pull gave it (each cut at the day's newest), so it was
    grouped with the other codes never met, the private one among them, whose requests filled their part's
    cut: the part answered none of the rare code's and was taken whole, its 3 requests lost, the pull ok.
    Where the server leaves requests out after the cut, each code never met is asked alone once a pull
    over the days in doubt (here the private one and the rare one; the 40 others were met): the rare one
    is then met, and grouped with the codes met."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rare = [{"service_request_id": f"rare-{day}", "status": "closed", "service_code": "rare",
             "requested_datetime": _stamp(start + timedelta(days=day, hours=7))} for day in (2, 5, 8)]
    public, published, asked, _ = busy_days_pull(
        tmp_path, store, one_code_of_three(coded(uniform_city(300, 10, start))) + rare, private=0,
        private_in={"code-01": 20}, services=[*CITY_SERVICES, {"service_code": "rare", "service_name": "Rare"}])
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{sorted(public - set(published))} of {len(public)} lost"
    alone = [q["service_code"] for q in asked if "status" not in q and "service_code" in q]
    assert sorted(alone) == ["code-01", "rare"], alone   # (once each: the 40 codes met are not asked so)


@pytest.mark.parametrize("share", [0.5, 0.67], ids=["half", "two-thirds"])
def test_a_private_service_type_of_half_the_requests_or_more_loses_none_of_the_others(tmp_path, store, share):
    """As above, the private type half or two thirds of 300 requests a day: a day's answer (its cut of 50
    thinned by half or more) and its parts by status, which hold the private type, answered under half of
    the largest and were taken whole, the others' requests behind each cut lost, the pull ok (the half
    rule assumes no cut answer thinned by more than half). Once the server is seen past it (a margin of
    twice its thinning wider than half), the pull starts over: every day of it is read by parts, a part by
    status split by codes, the private type apart from the codes met."""
    draw = random.Random(44)   # (drawn: a cut answer of 50 thinned by more than half, now and then)
    requests = [{**r, "service_code": "code-01"} if draw.random() < share else r
                for r in coded(uniform_city(300, 10, datetime(2024, 1, 1, tzinfo=UTC)))]
    public, published, _, _ = busy_days_pull(tmp_path, store, requests, private=0, private_in={"code-01": 20})
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"


def past_half_city() -> tuple[datetime, int, list[dict]]:
    """The city of 331 requests a day for 27 days below: its start, days and requests."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    draw = random.Random(11)
    per_day, days = draw.randint(100, 400), draw.randint(10, 30)
    moments = sorted(start + timedelta(seconds=draw.randrange(days * 86_400)) for _ in range(per_day * days))
    weights = [len(CODES) - n for n in range(len(CODES))]
    requests = [{"service_request_id": str(n), "requested_datetime": _stamp(moment),
                 "status": "open" if n % 6 == 0 else "closed",
                 "service_code": "private" if draw.random() < 0.67 else draw.choices(CODES, weights)[0]}
                for n, moment in enumerate(moments)]
    return start, days, requests


def past_half_server(requests: list[dict]) -> ThinsWholeDays:
    """Reads UTC's whole days, ignores `page`, cuts at 50 and then leaves the private type's requests out."""
    return ThinsWholeDays("UTC", private=0, odd_weeks=False, requests=requests, paging=False,
                          services=[*CITY_SERVICES, {"service_code": "private", "service_name": "Private"}],
                          private_in={"private": 20})


def test_a_server_shown_not_to_read_times_then_past_half_starts_over_again_losing_none(tmp_path, store, caplog):
    """A city of 331 requests a day for 27 days, two thirds of a private service type (bench/open311_windows.py
    --private-type's city 11), from a server that reads UTC's whole days, ignores `page`, cuts at 50 and then
    leaves the private requests out. A first pull reads by times until the server is shown not to read them,
    and starts over by whole days; there the server is seen past the half rule after days were taken whole
    by their answers' size. A pull started over once, a second start-over failed it; so the second was not
    raised: those days were kept, 80 of the 3,058 public requests lost, the pull ok. Each reason to start
    over is met once a pull, and the pull starts over for each: none lost, each published once."""
    start, days, requests = past_half_city()
    layout = RecordsLayout(tmp_path / "records")
    with past_half_server(requests) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        result = pulled_into(layout, store.con, RequestsRecords(adapter, None, now=start + timedelta(days=days),
                                                                since=start))
    public = {r["service_request_id"] for r in requests} - portal.private
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    started_over = [r.getMessage() for r in caplog.records if "the pull starts over" in r.getMessage()]
    assert len(started_over) == 2 and "does not read the times" in started_over[0] \
        and "more than half of some" in started_over[1], started_over
    assert result.status == "ok" and len(published) == len(set(published)) == result.rows
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"


class StartsOverFirst(RequestsRecords):
    """Starts over `more` times at the first window of a pull's readings, before the server's own reasons."""

    def __init__(self, *args, more: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.more = more

    def batches(self, resume):
        for batch in super().batches(resume):
            if self.more:
                self.more -= 1
                raise StartsOver("the rows read so far are to be read again")
            yield batch


def test_a_pull_starts_over_three_times_at_most_and_a_fourth_fails_it_keeping_the_records_before(tmp_path, store,
                                                                                                 caplog):
    """A pull starts over for each reason it meets (StartsOver), three at most (STARTS_OVER_AT_MOST: Open311's
    three reasons, each once a pull). The city above, whose server makes two reasons fire (shown not to read
    times, then past half), and one more before them: started over three times, none lost, each published
    once. A fourth (two more before them): the pull fails, the run naming the dataset and the bound, its
    records before kept whole, none read again."""
    from harvester.pipeline import ErrorLog, PortalReport, harvest
    from harvester.records import STARTS_OVER_AT_MOST, pull_records

    start, days, requests = past_half_city()
    layout = RecordsLayout(tmp_path / "records")
    outcomes = []
    with past_half_server(requests) as portal:
        config = portal_config("bos311", "open311", portal.url)
        harvest([config], store, fast_client())
        for more in (1, 2):
            adapter = adapter_for(config, fast_client())
            adapter.record_source = lambda _dataset, _previous, more=more: StartsOverFirst(
                adapter, None, now=start + timedelta(days=days), since=start, more=more)
            errors = ErrorLog(store, f"run-{more}", "bos311", PortalReport("bos311"))
            caplog.clear()
            [result] = pull_records(adapter, ["service-requests"], store.con, layout, run_id=f"run-{more}",
                                    errors=errors)
            published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
            outcomes.append((result, [r.getMessage() for r in caplog.records if "the pull starts over" in r.getMessage()],
                             [row["message"] for row in errors.rows if row["stage"] == "records"], published))
    public = {r["service_request_id"] for r in requests} - portal.private
    (three, started, reported, published), (four, started_again, failed, kept) = outcomes
    assert STARTS_OVER_AT_MOST == 3 and three.status == "ok" and reported == [], reported
    assert len(started) == 3 and "to be read again" in started[0] and "does not read the times" in started[1] \
        and "more than half of some" in started[2], started
    assert sorted(published) == sorted(public) and three.rows == len(public), f"{len(public - set(published))} lost"
    assert four.status == "failed" and len(started_again) == 3 and len(failed) == 1, (started_again, failed)
    assert failed[0].startswith("records pull failed (bos311:service-requests): the server leaves out up to") \
        and failed[0].endswith("; the pull had started over 3 times already, and does not again: its previous "
                               "records kept"), failed[0]
    assert kept == published   # (the records of the pull before, whole)


def test_a_service_code_the_server_refuses_is_taken_as_private_not_failing_the_pull(tmp_path, store, caplog):
    """As above, the server answering HTTP 400 where a `service_code` asked holds code-01: the first part
    holding it failed the pull, every night. The part refused is halved down to the code refused, which
    is taken as a service type whose requests the server gives none of (warned of in the run report, not
    only the log, and not asked again): every public request read once."""
    results = []
    public, published, asked, _ = busy_days_pull(
        tmp_path, store, one_code_of_three(coded(uniform_city(200, 10, datetime(2024, 1, 1, tzinfo=UTC)))),
        private=0, private_in={"code-01": 20}, refused=("code-01",), results=results)
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"
    assert len([q for q in asked if q.get("service_code") == "code-01"]) == 1   # (refused once, not asked again)
    assert [r.getMessage()[:45] for r in caplog.records if "refuses" in r.getMessage()] == \
        ["the server refuses service_code=code-01 (HTTP"]
    assert [(kind, message[:61]) for kind, message in results[0].notices] == \
        [("RefusedServiceCode", "the server refuses to be asked for service_code=code-01 (HTTP")]


def test_a_part_at_the_cap_is_split_by_the_codes_its_answer_gave_not_halved(tmp_path, store):
    """80 requests a day for 10 days, one in four of code-00, from a server that reads whole days, ignores
    `page`, cuts at 50 and then leaves out 8 of every 20: a day's closed part, at the cap, was halved (code-00
    to code-19, code-20 to code-39), then halved again while at the cap, down to code-00 alone, though its
    answer showed code-00 held over a quarter of it at the first. Split by what its answer gave of each code (in
    their order, each group expected under the cap), code-00 is asked alone at the first split, and the
    day's parts cost fewer requests. None lost or published twice."""
    public, published, asked, _ = busy_days_pull(
        tmp_path, store, one_code_of_four(coded(uniform_city(80, 10, datetime(2024, 1, 1, tzinfo=UTC)))))
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"
    closed = [q for q in asked if q.get("status") == "closed"]
    first_split = [q.get("service_code") for q in closed[1:3]]   # (the parts asked after the day's closed part)
    assert closed and "service_code" not in closed[0] and first_split[0] == "code-00", first_split
    by_parts = [q for q in asked if "status" in q]
    assert len(by_parts) < 70, len(by_parts)   # (halved: 80; by the codes given: 55)


def test_days_whose_parts_were_taken_whole_before_a_part_showed_the_server_thins_are_read_again(tmp_path, store):
    """Three days, each of 100 closed requests in its afternoon and 60 open ones in its morning, from a
    server that reads whole days, ignores `page` and cuts at 50: the days' answers (their afternoons)
    are never thinned, so the server is taken to leave nothing out of a cut answer. It leaves out every
    other open request of the first day and 4 of the third's, once a part is cut: the first day's open
    part (25 of 50) was taken whole under the margin of a server that thins none, 5 lost, the pull ok.
    The third day's open part (46), split, shows the server thins: the days settled before are settled
    again, under half of the largest answer: none lost."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests, private = [], set()
    for day in range(3):
        for n in range(160):
            status, hour = ("open", n * 11 // 60) if n < 60 else ("closed", 12 + (n - 60) * 11 // 100)
            request_id = f"d{day}-{status}-{n}"
            requests.append({"service_request_id": request_id, "status": status, "service_code": CODES[n % 10],
                             "requested_datetime": _stamp(start + timedelta(days=day, hours=hour, minutes=n % 50))})
            if status == "open" and (day == 0 and n % 2 or day == 2 and n in (20, 30, 40, 50)):
                private.add(request_id)
    layout = RecordsLayout(tmp_path / "records")
    with ThinsWholeDays("UTC", private=0, services=CITY_SERVICES, requests=requests, paging=False) as portal:
        portal.private = private
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        pulled_into(layout, store.con, RequestsRecords(adapter, None, now=start + timedelta(days=4), since=start))
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    public = {r["service_request_id"] for r in requests} - private
    assert len(published) == len(set(published)) and public == set(published), \
        f"{len(public - set(published))} of {len(public)} lost"


def test_a_server_seen_thinning_its_parts_is_remembered_so_by_the_next_pull(tmp_path, store):
    """Three days as above (100 closed requests in each afternoon, 60 open in its morning) from a server
    that reads whole days, ignores `page` and cuts at 50. The first pull sees the third day's open part
    cut and thinned (46 of 50): the server leaves requests out of a cut part. That was not kept: the
    next pull, whose server leaves out every other open request of the first day only, started as for
    a server that thins none, its days' answers never thinned, and took that day's open part (25 of
    50) whole, 5 lost, the pull ok. The thinning a part showed is kept with the pull (record_pulls.
    thinning): the next pull judges its parts under half of the largest answer from its start."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests = []
    for day in range(3):
        for n in range(160):
            status, hour = ("open", n * 11 // 60) if n < 60 else ("closed", 12 + (n - 60) * 11 // 100)
            requests.append({"service_request_id": f"d{day}-{status}-{n}", "status": status,
                             "service_code": CODES[n % 10],
                             "requested_datetime": _stamp(start + timedelta(days=day, hours=hour, minutes=n % 50))})
    layout = RecordsLayout(tmp_path / "records")
    with ThinsWholeDays("UTC", private=0, services=CITY_SERVICES, requests=requests, paging=False) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        portal.private = {f"d2-open-{n}" for n in (20, 30, 40, 50)}
        pulled_into(layout, store.con, RequestsRecords(adapter, None, now=start + timedelta(days=4), since=start))
        previous = previous_pull(store.con, "bos311:service-requests")
        assert previous.thinning == pytest.approx(1 - 46 / 50)   # (the days' answers show none: 50 each)
        portal.private = {f"d0-open-{n}" for n in range(60) if n % 2}
        source = RequestsRecords(adapter, previous, now=start + timedelta(days=4), since=start)
        ids = pulled_ids(portal, source)
    public = {r["service_request_id"] for r in requests} - portal.private
    assert len(ids) == len(set(ids)) and public <= set(ids), f"{len(public - set(ids))} of {len(public)} lost"
    assert source.thinning == pytest.approx(1 - 25 / 50)   # (what its parts showed: the first day's open one)


def test_a_pull_cut_short_goes_on_with_the_thinning_its_parts_showed_and_an_old_state_as_before():
    """The thinning a part showed is in the state a pull cut short goes on from (and kept from there);
    a state without it (written before session 37) goes on as before: a server not seen to thin."""
    from harvester.portals.open311 import Windows
    start = datetime(2024, 1, 1, tzinfo=UTC)
    state = {"start": start.isoformat(), "width": 86_400, "before": [], "page_size": 50, "thinning": 0.0}
    going_on = Windows(lambda *_: [], start, start + timedelta(days=2), {**state, "parts_thinning": 0.08})
    assert not going_on._thins_none() and going_on.kept_thinning == 0.08
    assert [state for _, state in going_on][-1]["parts_thinning"] == 0.08
    as_before = Windows(lambda *_: [], start, start + timedelta(days=2), state)
    assert as_before._thins_none() and as_before.kept_thinning == 0.0
    assert "parts_thinning" not in [state for _, state in as_before][-1]


def test_a_pull_gone_on_from_one_cut_short_after_days_taken_whole_by_size_starts_over_once_past_half():
    """Days taken whole by their answers' size, of a server that ignores `page`, prove nothing once the server
    is seen past the half rule: the pull starts over (PastHalf). A pull cut short after such days forgot them
    (they were in no state): gone on from there, the server seen past half, the days before the cut were kept,
    possibly cut. The state keeps them, and the pull gone on from it starts over (here its last window read:
    none in doubt is left, and it sees the server past half from the thinning it goes on with)."""
    from harvester.portals.open311 import PastHalf, Windows
    start = datetime(2024, 1, 1, tzinfo=UTC)
    state = {"start": (start + timedelta(days=2)).isoformat(), "width": 86_400, "before": [], "page_size": 50,
             "thinning": 0.6, "days": True, "days_known": True, "sized_whole": True}
    going_on = Windows(lambda *_: [], start, start + timedelta(days=2), json.loads(json.dumps(state)),
                       days=True, services=lambda: [])
    assert going_on.state()["sized_whole"] is True
    with pytest.raises(PastHalf, match="days taken whole by their answers' size may have been cut"):
        list(going_on)
    as_before = Windows(lambda *_: [], start, start + timedelta(days=2), {**state, "sized_whole": False}, days=True,
                        services=lambda: [])
    assert all(not rows for rows, _ in as_before) and "sized_whole" not in as_before.state()


@pytest.mark.parametrize("per_day, days, private", [(263, 13, 8), (300, 10, 4)])
def test_a_day_read_before_the_server_was_seen_to_include_the_ends_day_is_read_by_parts_without_it(
        per_day, days, private):
    """A server that reads whole days, includes the end's day, ignores `page` and thins cut answers:
    the first day, read before the server was seen to include the end's day, was answered with two
    days, and its parts were asked so: one code of one status of the two days (18 and 25 requests, as
    much as half of the cut answers) stayed at the cap, and the pull failed naming that day (6 or 7 of
    each end's-day-included row of `--page-ignored 100`). Its parts are asked as the windows are by
    then, to 23 hours before its end: that day alone, every request read once."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with ThinsWholeDays("UTC", private=private, odd_weeks=False, services=CITY_SERVICES, paging=False,
                        requests=coded(uniform_city(per_day, days, start), 20), end_inclusive=True) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        ids = pulled_ids(portal, RequestsRecords(adapter, None, now=start + timedelta(days=days), since=start))
        first_days_parts = {q["end_date"] for p, q, _ in portal.requests
                            if p == "/requests.json" and "status" in q and q["start_date"] == "2024-01-01T00:00:00Z"}
    assert len(ids) == len(set(ids)) and set(ids) == {r["service_request_id"] for r in portal.service_requests} - \
        portal.private
    assert first_days_parts == {"2024-01-01T01:00:00Z"}


@pytest.mark.parametrize("per_day", [215, 263, 338])
def test_utc_days_from_a_server_of_new_yorks_that_includes_the_ends_day_are_read_whole(tmp_path, store, per_day):
    """UTC's days from a server that reads New York's, includes the end's day, ignores `page` and
    thins cut answers: every answer cut, no two windows in a row shared a request, so the end's day
    was never seen included, and each day's parts held two of the server's days, one code of one
    status of them at the cap: the pull failed naming a day (7 of `--page-ignored 100`'s row). An
    answer holding requests made after its end has the server asked, once, for the one second from
    that end: a server that includes the end's day answers it with that day. The days' windows then
    end 23 hours early, one of the server's days each: every public request read once."""
    public, published, asked, _ = busy_days_pull(
        tmp_path, store, coded(uniform_city(per_day, 10, datetime(2024, 1, 1, tzinfo=UTC)), 20), end_inclusive=True)
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert public <= set(published), f"{len(public - set(published))} of {len(public)} lost"
    one_second = [q for q in asked if instant(q["end_date"]) - instant(q["start_date"]) == SECOND]
    assert len(one_second) == 1 and "status" not in one_second[0], one_second   # (asked once a pull)


def test_a_server_sorting_oldest_first_including_the_ends_day_unseen_publishes_no_request_twice(tmp_path, store):
    """140 requests a day for 19 days from a server that reads whole days (UTC's, the portal's), includes the
    end's day, sorts oldest first, ignores `page`, cuts at 50 and leaves out 8 of every 20: its cut answers
    hold each window's first day only, so the end's day is never seen included, and each day in doubt is read
    by parts over two days, the day after's too. The parts of a day gave again what the day after's own
    answer gave (its oldest requests), itself in doubt: 540 requests published twice, the pull ok. Each
    once now, none lost."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    layout = RecordsLayout(tmp_path / "records")
    with ThinsWholeDays("UTC", private=8, odd_weeks=False, services=CITY_SERVICES, paging=False, end_inclusive=True,
                        oldest_first=True, requests=coded(uniform_city(140, 19, start))) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        pulled_into(layout, store.con, RequestsRecords(adapter, None, now=start + timedelta(days=19), since=start))
    public = {r["service_request_id"] for r in portal.service_requests} - portal.private
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert set(published) == public, f"{len(public - set(published))} of {len(public)} lost"


def test_a_server_that_leaves_the_ends_day_out_gives_nothing_after_a_windows_end_and_is_not_asked(tmp_path, store):
    # (a guard: the question is asked only of an answer holding requests made after its window's end)
    _, _, asked, _ = busy_days_pull(tmp_path, store, coded(uniform_city(215, 10, datetime(2024, 1, 1, tzinfo=UTC)), 20))
    assert not [q for q in asked if instant(q["end_date"]) - instant(q["start_date"]) == SECOND]


@pytest.mark.parametrize("requests, server, why", [
    (lambda city: city, {}, r"read by parts, 31 of its requests came in no part \(e.g. '79', of status 'open' and "
                            r"service code None\): a status or service code asked by none"),
    (coded, {"filters": False}, r"read by parts, the part status=open gave request '\d+' of status 'closed' and "
                                r"service code 'code-\d\d': the server does not read `status` or `service_code`")],
    ids=["requests-of-no-code", "filters-ignored"])
def test_a_day_in_doubt_whose_parts_cannot_tell_fails_the_pull_naming_it(tmp_path, store, requests, server, why):
    """Where a day's parts cannot tell it whole (a server that ignores `status` and `service_code`,
    answering every part alike; the day's own answer holding requests no part gave, their code
    none asked), the pull fails as before, naming the day and why, nothing published."""
    with pytest.raises(RecordsError, match=r"the one day at start_date=2024-01-01T00:00:00Z, end_date=2024-01-02T00:"
                                           r"00:00Z, page=1 answers 31 requests, within 49% of the largest answer the "
                                           r"server gave \(34\), and the server ignores `page`: it may be an answer cut "
                                           r"at the server's cap.*; " + why):
        busy_days_pull(tmp_path, store, requests(uniform_city(400, 10, datetime(2024, 1, 1, tzinfo=UTC))), **server)
    assert store.con.execute("SELECT count(*) FROM record_pulls").fetchone() == (0,)


def test_a_day_taken_whole_in_doubt_is_settled_by_the_pull_gone_on_from_one_cut_short(tmp_path):
    """The days a server that ignores `page` answers within the margin of a larger answer are
    settled when the pull ends: a pull cut short after some of them goes on from its state, which
    holds them, and fails naming the first (a state without them published the pull's days, ok).
    (The server's day of the pull's end, asked after it since session 39, is answered with nothing
    here: at the cap, with no parts to read it by, it would fail the pull first.)"""
    from bench.open311_windows import whole_days_server
    from harvester.portals.open311 import Windows
    start = datetime(2024, 1, 1, tzinfo=UTC)
    moments = [instant(r["requested_datetime"]) for r in uniform_city(400, 10, start)]
    _, served = whole_days_server(moments, 50, thinned=0.4, inclusive=False, days_in=ZoneInfo("America/New_York"),
                                  paging=False, odd_weeks=False)

    def answer(since, until, page):
        return [] if since >= start + timedelta(days=10) else served(since, until, page)

    first = Windows(answer, start, start + timedelta(days=10), days=True)
    for _, state in first:
        if state.get("doubtful") and instant(state["start"]) >= start + timedelta(days=5):
            break
    assert state["doubtful"][0][:3] == ["2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00", 31]
    with pytest.raises(RecordsError, match=r"the one day at start_date=2024-01-01T00:00:00Z, .* answers 31 requests"):
        list(Windows(answer, start, start + timedelta(days=10), json.loads(json.dumps(state))))


@pytest.mark.parametrize("codes", [False, True], ids=["no-codes", "codes"])
def test_a_server_that_reads_whole_days_and_ignores_page_where_one_day_fills_an_answer(tmp_path, codes):
    """A server that reads the days asked (the end's included) and ignores `page` answers both
    parts a full answer is checked by with its first page again: nothing new, so that answer was
    taken as its window's whole (50 of 20 days' 2,000 requests published, reported ok). Read by
    whole days, a day of 100 requests fills its one answer of 50, and the rest of that day could
    not be read: the pull failed, naming the day as sent. Each day is read by parts (by status, then
    service codes): whole where its requests have codes, else the pull fails, naming it."""
    requests = [{"service_request_id": f"d{day}-{n}", "status": "open",
                 "requested_datetime": f"2018-02-{1 + day:02d}T{8 + n // 12:02d}:{n % 12 * 5:02d}:00Z"}
                for day in range(20) for n in range(100)]
    if codes:
        requests = coded(requests)
        with Open311Portal(services=CITY_SERVICES, requests=requests, whole_days=True, end_inclusive=True,
                           paging=False) as portal:
            ids = pulled_ids(portal)
        assert sorted(ids) == sorted(served_ids(portal)), f"{len(served_ids(portal) - set(ids))} lost"
        return
    server = Open311Portal(services=JSON_SERVICES, requests=requests, whole_days=True, end_inclusive=True, paging=False)
    # (the day before, asked to the 1st, was answered with the 1st's requests, made after its end: the server is
    # asked whether it includes the end's day, and the 1st is asked alone, to 23 hours before its end)
    fails_naming(server, r"the one day at start_date=2018-02-01T00:00:00Z, end_date=2018-02-01T01:00:00Z, page=1 "
                         r"answers 50 requests, within 10% of the largest answer the server gave \(50\), and the server "
                         r"ignores `page`: .*; read by parts, 50 of its requests came in no part")


@pytest.mark.parametrize("burst", [2, 20])
def test_a_server_that_reads_whole_days_giving_one_seconds_requests_to_every_second_is_read_whole(tmp_path, burst):
    """A city's only requests made in one second, a server that reads the days asked (the end's
    included): every one-second window of that day was answered with them, read one second after
    another (5,000 requests asked for 16 minutes of the day, its 86,400 seconds ahead; then o31's
    check of a request given by window after window for more than two minutes failed the pull).
    Read again by whole days: the burst, once, in a few requests."""
    with ReadsWholeDays(services=JSON_SERVICES, requests=one_second(burst, "2018-02-10T09:09:35Z")[:burst],
                        limit=1000) as portal:
        ids = pulled_ids(portal)
        by_days = read_by_days(windows_asked(portal))   # (after 683 asked before o31's check showed it)
    assert sorted(ids) == [f"batch-{n:04d}" for n in range(burst)]
    assert len(by_days) < 50


def fails_naming(server: Open311Portal, message: str) -> None:
    """The pull from `server` fails, its error matching `message`."""
    with server as portal, pytest.raises(RecordsError, match=message):
        pulled_ids(portal)


def test_a_server_that_reads_the_dates_asked_in_its_own_zone_loses_and_doubles_none(tmp_path):
    """A server that reads `…Z` dates as its local time (five hours behind) answers each window
    five hours late: the windows still tile, and every request is read once."""
    class LocalTime(Open311Portal):
        def requests_page(self, query):
            shifted = {key: _stamp(instant(query[key]) + timedelta(hours=5)) for key in ("start_date", "end_date")}
            return super().requests_page({**query, **shifted})

    with LocalTime(services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        ids = pulled_ids(portal)
    assert len(ids) == len(set(ids)) == len({r["service_request_id"] for r in load_json(BOSTON)
                                             if r["requested_datetime"] >= "2018"})


class ReadsMinutes(Open311Portal):
    """Reads `start_date`/`end_date` to the minute, their seconds dropped, the end's minute
    included: every window within one minute is answered with that whole minute."""

    def requests_page(self, query):
        def minute(key: str) -> datetime:
            return instant(query[key]).replace(second=0)
        return super().requests_page({**query, "start_date": _stamp(minute("start_date")),
                                      "end_date": _stamp(minute("end_date") + timedelta(minutes=1))})


def test_a_request_met_in_three_windows_in_a_row_is_yielded_once(tmp_path):
    """20 requests in one second, a server that reads the dates asked to the minute: the
    one-second windows narrowed around them, and those after them within that minute, are
    each answered with all 20. The window before's ids were those it yielded only, none in a
    window that met them all again: every other window yielded them again (600 rows of 20)."""
    with ReadsMinutes(services=JSON_SERVICES, requests=one_second(20)[:20]) as portal:
        ids = pulled_ids(portal)
        answers = [q for p, q, _ in portal.requests if p == "/requests.json"]
    assert sorted(ids) == sorted(served_ids(portal)) == [f"batch-{n:04d}" for n in range(20)]
    # (the 20 were met in more than three windows in a row: one-second windows within their minute)
    assert len({(q["start_date"], q["end_date"]) for q in answers if q["start_date"].startswith("2020-01-08T14:23")}) > 3


def test_a_servers_local_times_without_an_offset_are_read_in_the_portals_time_zone(tmp_path):
    """A server that keeps Boston's times as local times without an offset (as real servers
    give them) and reads the dates asked as local times: taken as UTC, every stored instant was
    4 or 5 hours off (and each window asked 4 or 5 hours late). With the portal's `timezone`,
    the dates asked carry its offset and the times given are read in it: each stored instant
    is the request's own."""
    truth = {r["service_request_id"]: (datetime.fromisoformat(r["requested_datetime"]),
                                       datetime.fromisoformat(r["updated_datetime"]))
             for r in load_json(BOSTON) if r["requested_datetime"] >= "2018"}
    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON), local_zone="America/New_York") as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url, timezone="America/New_York"),
                              fast_client())
        source = RequestsRecords(adapter, None, now=datetime(2020, 3, 1, tzinfo=UTC),
                                 since=datetime(2018, 1, 1, tzinfo=UTC))
        rows = [row for table, _ in source.batches(None) for row in table.to_pylist()]
        first = next(q for p, q, _ in portal.requests if p == "/requests.json")
    assert first["start_date"] == "2017-12-31T19:00:00-05:00" and first["end_date"] == "2018-03-31T20:00:00-04:00"
    assert sorted(row["service_request_id"] for row in rows) == sorted(truth)
    assert all((row["requested_datetime"], row["updated_datetime"]) == truth[row["service_request_id"]] for row in rows)


def test_zone_less_times_in_the_hour_the_clock_goes_back_are_read_as_its_first_pass(tmp_path):
    """A server giving local times without an offset gives the hour a clock goes back twice alike
    (Boston's 01:00 to 02:00 of 3 November 2019, first -04:00, then -05:00): nothing in one answer
    says which pass a request was made in, so civicat reads each as the first (Python's fold=0),
    the second pass's an hour early, none lost or doubled (docs/portals.md, `timezone`). This
    pins it: a change to it must be one that knows better."""
    made = {"first-0130": "2019-11-03T05:30:00Z", "second-0110": "2019-11-03T06:10:00Z",
            "second-0130": "2019-11-03T06:30:00Z", "after-0230": "2019-11-03T07:30:00Z"}
    requests = [{"service_request_id": key, "status": "open", "requested_datetime": at} for key, at in made.items()]
    with Open311Portal(services=JSON_SERVICES, requests=requests, local_zone="America/New_York") as portal:
        given = {r["service_request_id"]: r["requested_datetime"] for r in map(portal._local, requests)}
        rows = [row for table, _ in source_for(portal, timezone="America/New_York").batches(None)
                for row in table.to_pylist()]
    assert given == {"first-0130": "2019-11-03T01:30:00", "second-0110": "2019-11-03T01:10:00",
                     "second-0130": "2019-11-03T01:30:00", "after-0230": "2019-11-03T02:30:00"}
    assert {row["service_request_id"]: row["requested_datetime"] for row in rows} == {
        "first-0130": datetime(2019, 11, 3, 5, 30, tzinfo=UTC), "second-0110": datetime(2019, 11, 3, 5, 10, tzinfo=UTC),
        "second-0130": datetime(2019, 11, 3, 5, 30, tzinfo=UTC), "after-0230": datetime(2019, 11, 3, 7, 30, tzinfo=UTC)}
    assert len(rows) == 4


@pytest.mark.parametrize("paging", [True, False], ids=["page", "page-ignored"])
def test_what_the_windows_cost_a_busy_city(paging):
    """90 days of a city of 700 requests a day (an incremental pull), pages of 50: every
    request read once, in about 2 N/P answers (numbered pages: N/P, and requests lost)."""
    from bench.open311_windows import busy_city, in_memory_server
    from harvester.portals.open311 import Windows
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests, answer = in_memory_server(busy_city(700, 90, start), 50, paging=paging)
    windows = Windows(answer, start, start + timedelta(days=90))
    read = [r["service_request_id"] for batch, _ in windows for r in batch]
    assert sorted(read, key=int) == [r["service_request_id"] for r in requests]
    assert windows.page_size == 50
    assert windows.asked < 2.3 * len(requests) / 50   # (2.15 N/P; 1.93 taking every answer under P as whole)


class GoesDown(Open311Portal):
    """Answers `up` requests for requests.json, then 503 (a host down mid-pull) until `up`
    is None again."""

    def __init__(self, up: int | None, **kwargs):
        super().__init__(**kwargs)
        self.up = up

    def requests_page(self, query):
        if self.up is not None:
            if self.up <= 0:
                return 503, [{"code": 503, "description": "down"}]
            self.up -= 1
        return super().requests_page(query)


def windows_asked(portal) -> list[tuple[str, str, str]]:
    return [(q["start_date"], q["end_date"], q["page"]) for p, q, _ in portal.requests if p == "/requests.json"]


def pulled_into(layout, con, source):
    return pull_dataset(source, layout, "bos311", "service-requests", con, uid="bos311:service-requests", run_id="r")


def cut_short_then_resumed(layout, con, portal: "GoesDown"):
    """A pull of `portal` until its host goes down (HTTP 503), then the next pull with it up:
    the windows the first asked, those the second asked, and the second's result."""
    with pytest.raises(TransientError, match="HTTP 503"):
        pulled_into(layout, con, source_for(portal))
    first = windows_asked(portal)
    portal.up = None
    portal.clear_log()
    result = pulled_into(layout, con, source_for(portal))
    return first, windows_asked(portal), result


def test_a_pull_cut_short_goes_on_after_its_last_window_read(tmp_path, store):
    """A pull of 70 requests cut short after 40 (the host down): the next pull started over
    from 2018 (its windows' rows were kept only in parts of 500,000, and windows could not
    resume). The windows read are kept, and the next pull asks none of them again: every
    request published once."""
    layout = RecordsLayout(tmp_path / "records")
    with Open311Portal(services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        whole = sum(table.num_rows for table, _ in source_for(portal).batches(None)), len(windows_asked(portal))
    with GoesDown(40, services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        first, second, result = cut_short_then_resumed(layout, store.con, portal)
    # no window read before is asked again (but the one being read when the host went down)
    assert whole[0] == 950 and len(set(first) & set(second)) == 1 and len(second) < whole[1] - 40 + 5
    assert result.resumed and all(start >= first[-1][0] for start, _, _ in second)
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert sorted(published) == sorted(served_ids(portal)) and result.rows == len(published) == len(set(published))
    assert len(first) > 40 and store.con.execute("SELECT page_size FROM record_pulls").fetchone() == (50,)


@pytest.mark.parametrize("inclusive", [False, True], ids=["end-excluded", "end-included"])
def test_a_pull_by_whole_days_cut_short_goes_on_by_whole_days(tmp_path, store, inclusive):
    """A pull gone to whole days (a server shown not to read the times asked) and cut short there
    (the host down) goes on by whole days from its last window read, each request published once,
    none of its windows asked again, the check that showed it not met again."""
    layout = RecordsLayout(tmp_path / "records")
    options = dict(services=JSON_SERVICES, requests=load_json(BOSTON), whole_days=True, end_inclusive=inclusive)
    with Open311Portal(**options) as portal:
        pulled_ids(portal)
        by_days = read_by_days(windows_asked(portal))
        restart = len(windows_asked(portal)) - len(by_days)
    with GoesDown(restart + len(by_days) // 2, **options) as portal:
        first, second, result = cut_short_then_resumed(layout, store.con, portal)
    assert result.resumed and len(second) < len(by_days)   # (and none before the window being read, below)
    assert all(start[11:19] == "00:00:00" and start >= first[-1][0] for start, _, _ in second)
    assert (inclusive or {end[11:19] for _, end, _ in second} == {"00:00:00"}) \
        and asked_to_their_last_days(second) == inclusive
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert served_ids(portal) <= set(published) and result.rows == len(published) == len(set(published))


def test_a_request_met_again_at_an_inclusive_end_date_across_a_resume_is_kept_once(tmp_path):
    """The window before's requests go with the state: a server whose `end_date` is
    inclusive answers the request at a window's end second in the next window too, which
    a pull resumed there kept twice."""
    from harvester.portals.open311 import Windows
    moments = [datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(300)]   # one a second
    requests = [{"service_request_id": str(n), "requested_datetime": m.isoformat()} for n, m in enumerate(moments)]

    def inclusive(start, end, page):
        return [r for r in requests if start <= datetime.fromisoformat(r["requested_datetime"]) <= end][:50]

    start, until = moments[0], moments[-1] + SECOND
    read, state = [], None
    for batch, state in Windows(inclusive, start, until):
        read += [r["service_request_id"] for r in batch]
        if len(read) >= 100:
            break
    assert state["start"] in {m.isoformat() for m in moments}   # (a request at the second it resumes at)
    read += [r["service_request_id"] for batch, _ in Windows(inclusive, start, until, json.loads(json.dumps(state)))
             for r in batch]
    assert sorted(read, key=int) == [r["service_request_id"] for r in requests]


def remembering(page_size: int | None, thinning: float | None = None) -> PreviousPull:
    """A pull before, of the same query (its watermark before 2018), that learned `page_size`
    (and how much the server thins a cut answer)."""
    return PreviousPull(path="x", row_count=0, watermark="2018-01-01T00:00:00+00:00",
                        pulled_at=datetime(2018, 1, 1, tzinfo=UTC), page_size=page_size, thinning=thinning)


def read_remembering(portal, page_size: int | None, thinning: float | None = None
                     ) -> tuple[list[str], RequestsRecords, int]:
    """(the ids read, the source, the requests it made) of a pull whose pull before learned `page_size`."""
    portal.clear_log()
    source = RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client()),
                             remembering(page_size, thinning), now=datetime(2020, 3, 1, tzinfo=UTC),
                             since=datetime(2018, 1, 1, tzinfo=UTC))
    ids = [i for table, _ in source.batches(None) for i in table["service_request_id"].to_pylist()]
    return ids, source, len(windows_asked(portal))


def test_the_page_size_learned_is_kept_and_saves_the_next_pull_learning_it(tmp_path, store, boston):
    layout = RecordsLayout(tmp_path / "records")
    pulled_into(layout, store.con, source_for(boston))
    assert previous_pull(store.con, "bos311:service-requests").page_size == 50
    learned_again, _, asked_learning = read_remembering(boston, None)
    ids, source, asked = read_remembering(boston, 50)
    assert ids == learned_again and source.page_size == 50
    assert asked < asked_learning


@pytest.mark.parametrize("remembered", [25, 100], ids=["grew", "shrank"])
def test_a_page_size_the_server_changed_since_is_learned_again_no_request_lost(boston, remembered):
    """The server gives pages of 50 where the pull before learned `remembered`. Grown: an
    answer of 50 (more than 25) is not taken as whole. Shrunk: an answer of 50, less than
    100, is not taken as whole either until an answer of 100 shows the server gives that
    many still (none does): the page size is learned again, and kept."""
    ids, source, _ = read_remembering(boston, remembered)
    assert sorted(ids) == sorted(served_ids(boston)) and len(ids) == len(set(ids))
    assert source.page_size == 50


class DropsAfterCutting(Open311Portal):
    """Cuts a window's requests at its page of 50, then leaves out the private ones (every
    20th request of Boston's): a cut page answers 47 or 48, fewer than a page."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.private = {str(r["service_request_id"]) for r in self.service_requests[::20]}

    def requests_page(self, query):
        status, page = super().requests_page(query)
        return status, [r for r in page if str(r["service_request_id"]) not in self.private] if status == 200 else page


@pytest.mark.parametrize("requests", [load_json, lambda _: one_second(120)], ids=["boston", "one-second"])
def test_a_server_that_drops_requests_from_a_page_after_cutting_it_loses_none(tmp_path, requests):
    """A window's answer was taken as whole when it held fewer requests than P: a server
    that cuts at 50 and then leaves out private requests answers a cut window with 47, and
    the requests past the cut were lost, unseen (92 of Boston's 900 public ones). An answer
    within a tenth of P may be cut: its window is narrowed, and the pages of one second are
    read on past it."""
    with DropsAfterCutting(services=JSON_SERVICES, requests=requests(BOSTON)) as portal:
        ids = pulled_ids(portal)
        public = served_ids(portal) - portal.private
    assert sorted(set(ids)) == sorted(public) and len(ids) == len(set(ids))


class ThinsAfterCutting(Open311Portal):
    """Cuts a window's requests at its page of 50, then leaves out the private ones: 8 of every
    20 of Boston's in the order they were made (a private service type's requests come in
    runs), so a cut page answers 26 to 34, a third to a half under P."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        made = sorted(self.service_requests, key=lambda r: r["requested_datetime"])
        self.private = {str(r["service_request_id"]) for n, r in enumerate(made) if n % 20 < 8}

    def requests_page(self, query):
        status, page = super().requests_page(query)
        return status, [r for r in page if str(r["service_request_id"]) not in self.private] if status == 200 else page


def test_a_server_that_thins_cut_pages_more_than_a_tenth_loses_nothing_from_the_pull_that_learned_it(tmp_path,
                                                                                                     store):
    """A cut answer within a tenth of P (the largest answer yet) counted as possibly cut: one of
    a server that leaves more out after cutting was taken as whole, the requests past the cut
    lost unseen, night after night. How much the server thins is learned from the answers shown
    cut (their smallest against the largest), kept with the pull (`record_pulls.thinning`), and
    the next pull takes answers within twice that of P as possibly cut: it loses none."""
    layout = RecordsLayout(tmp_path / "records")
    with ThinsAfterCutting(services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        public = served_ids(portal) - portal.private
        first = pulled_into(layout, store.con, source_for(portal))
        learned = previous_pull(store.con, "bos311:service-requests")
        again = source_for(portal, PreviousPull(path="x", row_count=0, watermark="2018-01-01T00:00:00+00:00",
                                                pulled_at=datetime(2018, 1, 1, tzinfo=UTC),
                                                page_size=learned.page_size, thinning=learned.thinning))
        ids = [i for table, _ in again.batches(None) for i in table["service_request_id"].to_pylist()]
    assert learned.thinning > 0.1 and first.rows <= len(public)
    assert sorted(set(ids)) == sorted(public) and len(ids) == len(set(ids))


def test_the_pull_that_learns_how_a_server_thins_cut_pages_loses_none_of_the_windows_read_before(tmp_path, store):
    """A city of 200 requests a day for two weeks, its server leaving out 8 of every 20 after
    cutting a page at 50 (cut answers of 26 to 34): the margin widened as the pull learned the
    thinning, but the windows it had taken whole under the narrower margin before were cut
    answers: 592 of the 1,596 public requests lost. Those the wider margin would not take are
    read again, split, as soon as it widens: none lost, none read twice."""
    from bench.open311_windows import busy_city
    start = datetime(2019, 6, 1, tzinfo=UTC)
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(busy_city(200, 14, start))]
    layout = RecordsLayout(tmp_path / "records")
    with ThinsAfterCutting(services=JSON_SERVICES, requests=city) as portal:
        public = served_ids(portal) - portal.private
        source = RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client()), None,
                                 now=start + timedelta(days=14), since=start)
        pulled_into(layout, store.con, source)
    pulled = duckdb.sql(f"SELECT service_request_id FROM read_parquet('{layout.glob('bos311', 'service-requests')}')"
                        ).fetchall()
    assert source.thinning > 0.1
    assert sorted(i for i, in pulled) == sorted(public)


def test_a_small_city_after_empty_windows_whose_page_size_is_learned_from_a_thinned_answer_loses_none(tmp_path,
                                                                                                      store):
    """100 requests a day for 30 days after a year and a half of none, its server leaving out 8
    of every 20 after cutting a page at 50: the first window holding any, 90 days wide, was
    shown cut at 34 (P learned from a thinned answer), and the cut answers after it (26 to 30,
    under 34 by more than a tenth) were taken whole, never seen cut, so the thinning was never
    learned: nearly all the public requests lost, every pull. The next pages of a window that may be
    cut show the thinning: the pull learns it at once, and loses none, nor the next (nor one after
    a pull that learned P = 34 and no thinning)."""
    from bench.open311_windows import busy_city
    start = datetime(2019, 6, 1, tzinfo=UTC)
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(busy_city(100, 30, start))]
    with ThinsAfterCutting(services=JSON_SERVICES, requests=city) as portal:
        public = served_ids(portal) - portal.private
        first = source_for(portal, now=start + timedelta(days=30))
        ids = [i for table, _ in first.batches(None) for i in table["service_request_id"].to_pylist()]
        pulls = [source_for(portal, PreviousPull(path="x", row_count=0, watermark=None, pulled_at=start,
                                                 page_size=page_size, thinning=thinning), now=start + timedelta(days=30))
                 for page_size, thinning in ((first.page_size, first.thinning), (34, None))]   # (34: as main learned it)
        ids_again = [[i for table, _ in pull.batches(None) for i in table["service_request_id"].to_pylist()]
                     for pull in pulls]
    assert [len(ids), *map(len, ids_again)] == [len(public)] * 3
    assert sorted(ids) == sorted(public) == sorted(ids_again[0]) == sorted(ids_again[1])
    assert first.thinning > 0.1 and first.page_size >= 34 and pulls[1].thinning > 0.1


def test_a_thinned_cut_answer_is_not_taken_whole_when_the_part_checked_beyond_it_brings_only_private_ones(
        tmp_path):
    """113 requests a minute apart one morning, then 5 over the next weeks, newest first from a
    server that leaves out 8 of every 20 after cutting at 50. The first answer (34 of the 60
    days' 50 newest), P not known, was checked by two windows cut in the middle of its span: the
    older one's 50 newest were the morning's in the answer and the 4 just before them, all
    private, so it brought nothing new and the answer was taken as the whole window: 36 of the 70
    public requests lost, every pull, in 3 requests. The answer is cut a second after its oldest
    request (newest first): the part before brings nearly a page it lacks, too many to be all
    private, were it cut."""
    start = datetime(2019, 6, 1, tzinfo=UTC)
    made = [start + timedelta(days=10, minutes=m) for m in range(113)] + \
           [start + timedelta(days=day, hours=9) for day in (20, 25, 30, 35, 40)]
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(made)]
    with ThinsAfterCutting(services=JSON_SERVICES, requests=city) as portal:
        public = {r["service_request_id"] for r in city} - portal.private
        source = RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client()), None,
                                 now=start + timedelta(days=60), since=start)
        ids = [i for table, _ in source.batches(None) for i in table["service_request_id"].to_pylist()]
    assert len(public) == 70 and sorted(ids) == sorted(public)


class StartsThinning(Open311Portal):
    """Leaves nothing out of a cut page until `private` is set (a private service type added
    later, or one made private): then leaves those requests out after cutting."""

    private: set[str] = frozenset()

    def requests_page(self, query):
        status, page = super().requests_page(query)
        return status, [r for r in page if str(r["service_request_id"]) not in self.private] if status == 200 else page


@pytest.mark.parametrize("runs", [2, 3])
def test_a_server_learned_to_thin_none_that_starts_thinning_loses_nothing(tmp_path, store, runs):
    """Boston's server leaves nothing out of a cut page: its pull learns thinning 0. Taken as a
    margin of 2% of P, the next pulls saw no cut answer thinned more (seen within the margin
    only), so never learned it: once the server left out `runs` of every 20 requests (a private
    type added), 63 and 131 of its 856 and 806 public requests were lost every pull, where a
    tenth of P, the margin of a thinning not known, lost none. A learned thinning only widens it."""
    with StartsThinning(services=JSON_SERVICES, requests=load_json(BOSTON)) as portal:
        pulled_into(RecordsLayout(tmp_path / "records"), store.con, source_for(portal))
        learned = previous_pull(store.con, "bos311:service-requests")
        made = sorted(portal.service_requests, key=lambda r: r["requested_datetime"])
        portal.private = {str(r["service_request_id"]) for n, r in enumerate(made) if n % 20 < runs}
        public = served_ids(portal) - portal.private
        ids, _, _ = read_remembering(portal, learned.page_size, learned.thinning)
    assert learned.thinning == 0 and learned.page_size == 50
    assert sorted(set(ids)) == sorted(public) and len(ids) == len(set(ids))


class UnsettledSecond(Open311Portal):
    """120 requests entered in one second whose pages move as they are read: the first
    `changes` times page 2 of that second is asked, a request of its page 1 is removed."""

    SECOND = ("2020-01-08T14:23:26Z", "2020-01-08T14:23:27Z")

    def __init__(self, changes: int, **kwargs):
        super().__init__(requests=one_second(120), **kwargs)
        self.changes, self.removed = changes, []

    def requests_page(self, query):
        if (query["start_date"], query["end_date"], query.get("page")) == (*self.SECOND, "2") \
                and len(self.removed) < self.changes:
            first = super().requests_page({**query, "page": "1"})[1][0]
            self.removed.append(first["service_request_id"])
            self.service_requests.remove(first)
        return super().requests_page(query)


def other_windows(asked: list) -> list:
    """The windows asked but UnsettledSecond's second, sorted; as a pull where it settles at once asks them."""
    return sorted(window for window in asked if window[:2] != UnsettledSecond.SECOND)


@pytest.fixture
def settled_windows():
    with UnsettledSecond(0, services=JSON_SERVICES) as portal:
        pulled_ids(portal)
        return other_windows(windows_asked(portal))


def test_a_second_whose_pages_move_as_they_are_read_is_read_again_alone(tmp_path, store, settled_windows):
    """Three readings of a second's pages that did not agree read the whole pull again
    (SourceChanged): every window of two years asked twice for one second that moved. Only
    that second is read again, until two readings agree."""
    layout = RecordsLayout(tmp_path / "records")
    with UnsettledSecond(3, services=JSON_SERVICES) as portal:
        result = pulled_into(layout, store.con, source_for(portal))
        asked = windows_asked(portal)
        assert len(portal.removed) == 3
    assert other_windows(asked) == settled_windows and result.changed is None
    assert [page for *second, page in asked if tuple(second) == UnsettledSecond.SECOND].count("1") == 5
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert sorted(published) == sorted(served_ids(portal)) and len(published) == len(set(published))


def test_a_second_whose_pages_never_settle_fails_the_pull_naming_it(tmp_path, store, settled_windows):
    layout = RecordsLayout(tmp_path / "records")
    with UnsettledSecond(100, services=JSON_SERVICES) as portal:
        with pytest.raises(RecordsError, match=r"the pages of the one second at start_date=2020-01-08T14:23:26Z, "
                                               r"end_date=2020-01-08T14:23:27Z, page=1 did not agree in any two "
                                               r"readings of 6") as failed:
            pulled_into(layout, store.con, source_for(portal))
        asked = windows_asked(portal)
    assert not isinstance(failed.value, SourceChanged)
    assert [page for *second, page in asked if tuple(second) == UnsettledSecond.SECOND].count("1") == 6
    assert other_windows(asked) == [window for window in settled_windows if window[0] <= UnsettledSecond.SECOND[0]]


def test_a_full_pull_starts_from_the_page_size_learned(tmp_path, boston):
    """`--full` reads every request again, but P is a fact about the server, not about the
    requests read (and taken only once an answer of P shows it still holds): a full pull
    forgot it and learned it again (133 requests, where starting from it asks 125)."""
    db, first = harvest_with_records(tmp_path, "bos311", "open311", boston.url, ["service-requests"])
    learning = len(windows_asked(boston))
    boston.clear_log()
    _, full = harvest_with_records(tmp_path, "bos311", "open311", boston.url, ["service-requests"], "--full")
    assert first.exit_code == full.exit_code == 0, full.output
    assert json.loads(full.output)["portals"][0]["record_rows"] == 950
    assert len(windows_asked(boston)) < learning
    con = duckdb.connect(str(db))
    assert con.execute("SELECT mode, page_size FROM record_pulls").fetchall() == [("full", 50)]



class ThinsAndGoesDown(GoesDown, ThinsAfterCutting):
    """Thins cut pages (ThinsAfterCutting), and goes down after `up` requests (GoesDown)."""


@pytest.mark.parametrize("up, days, why", [
    (30, 20, "gone on from where a pull cut short stopped: windows taken whole before that point, in no state, are "
             "due to be read again, split, under the wider margin learned since"),
    *[(up, 14, "a pull cut short cannot go on from where it stopped (windows taken whole were being read again, "
               "split)") for up in (20, 60)]],
    # cut at the 31st request of 20 days: three cuts thinned alike read as a thinning of none, the margin a tenth,
    # the pull gone on from there widens it later (14 days: a window taken whole is checked and shown cut before
    # the 11th); at the 21st and 61st of 14 days: early and late in the reading again
    ids=["margin-widens-after-the-cut", "reading-again-early", "reading-again-late"])
def test_a_pull_cut_short_while_windows_may_be_read_again_loses_none_of_them(tmp_path, store, caplog, up, days, why):
    """The pull that learns a server's thinning reads again, split, the windows it took whole
    under the narrower margin (c23). Those windows are in no state: a pull cut short (its host
    down) while they could still be read again, and gone on from its last state, read none of
    them again (r23: 478, 592 and 302 of 1,596 public requests lost). It starts over when they
    are due to be read again or being read, saying so (it said rows had been added or removed);
    cut before the thinning is learned (a thinning of none learned from three cuts thinned alike,
    after 10 requests: 298 lost), the pull gone on from there starts over once its margin widens
    past the windows taken before it."""
    from bench.open311_windows import busy_city
    start = datetime(2019, 6, 1, tzinfo=UTC)
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(busy_city(200, days, start))]
    layout = RecordsLayout(tmp_path / "records")

    def source(portal):
        return RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client(max_attempts=1)),
                               None, now=start + timedelta(days=days), since=start)

    with ThinsAndGoesDown(up, services=JSON_SERVICES, requests=city) as portal:
        public = served_ids(portal) - portal.private
        with pytest.raises(TransientError, match="HTTP 503"):
            pulled_into(layout, store.con, source(portal))
        portal.up = None
        result = pulled_into(layout, store.con, source(portal))
    pulled = [i for i, in duckdb.sql(f"SELECT service_request_id FROM read_parquet("
                                     f"'{layout.glob('bos311', 'service-requests')}')").fetchall()]
    assert sorted(pulled) == sorted(public) and not result.resumed
    assert [f"bos311:service-requests: {why}: the pull starts over"] == [
        r.getMessage() for r in caplog.records if "starts over" in r.getMessage()]


def test_a_server_that_ignores_page_and_thins_cut_answers_loses_nothing(tmp_path, store):
    """A server that ignores `page` shows nothing on its later pages, so the pull learned its
    thinning from the few outermost windows narrowed only: its cut answers, thinned further under
    P than a tenth, were taken whole (200 a day for 20 days, 8 of every 20 left out: 2,209 of
    2,328 lost, in 12 requests). Once it is seen to ignore `page`, an answer within half of P may
    be cut until the thinning is learned, from every window narrowed; the next pull starts from it."""
    from bench.open311_windows import busy_city
    start = datetime(2024, 1, 1, tzinfo=UTC)   # (the bench's city: bench/open311_windows.py)
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(busy_city(200, 20, start))]
    layout = RecordsLayout(tmp_path / "records")

    def source(portal, previous):
        return RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client()),
                               previous, now=start + timedelta(days=20), since=start)

    with ThinsAfterCutting(services=JSON_SERVICES, requests=city, paging=False) as portal:
        public = {r["service_request_id"] for r in city} - portal.private
        pulled_into(layout, store.con, source(portal, None))
        learned = previous_pull(store.con, "bos311:service-requests")
        again = [i for table, _ in source(portal, learned).batches(None) for i in table["service_request_id"].to_pylist()]
    pulled = [i for i, in duckdb.sql(f"SELECT service_request_id FROM read_parquet("
                                     f"'{layout.glob('bos311', 'service-requests')}')").fetchall()]
    assert len(public) == 2_328 and sorted(pulled) == sorted(public)
    assert sorted(again) == sorted(public) and learned.thinning > 0.2


def test_a_server_that_ignores_page_and_thins_none_is_not_read_at_a_wide_margin_all_pull(tmp_path, store):
    """An answer within half of P is taken as possibly cut only until the thinning is learned,
    and every window narrowed counts towards it: learned from the outermost windows only, it
    came after 3,400 requests of 700 a day, the pull asking 1.6 to 1.8 times what it asks a
    server that reads `page` (200 a day for 20 days: 359 for 220; now 238)."""
    from bench.open311_windows import busy_city
    start = datetime(2024, 1, 1, tzinfo=UTC)
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(busy_city(200, 20, start))]
    asked = {}
    for paging in (True, False):
        with Open311Portal(services=JSON_SERVICES, requests=city, paging=paging) as portal:
            source = RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client()),
                                     None, now=start + timedelta(days=20), since=start)
            ids = [i for table, _ in source.batches(None) for i in table["service_request_id"].to_pylist()]
            asked[paging] = len(windows_asked(portal))
        assert sorted(ids) == sorted(r["service_request_id"] for r in city) and source.thinning == 0
    assert asked[False] <= 1.25 * asked[True], asked


def pulls_of(portal, start: datetime, days: int, pulls: int = 2) -> list[list[str]]:
    """The ids each of `pulls` pulls of the same `days` in turn read, each from what the pull
    before learned (P and the thinning, as `record_pulls` keeps them)."""
    previous, read = None, []
    for _ in range(pulls):
        source = RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client()),
                                 previous, now=start + timedelta(days=days), since=start)
        read.append([i for table, _ in source.batches(None) for i in table["service_request_id"].to_pylist()])
        previous = PreviousPull(path="x", row_count=0, watermark=None, pulled_at=start,
                                page_size=source.page_size, thinning=source.thinning)
    return read


def test_a_server_that_thins_every_cut_answer_and_ignores_page_loses_none_on_the_next_pull(tmp_path):
    """30 requests a day for 10 days, 8 of every 20 left out after a cut at 50, a server that
    ignores `page`: every cut answer is thinned, so its P of 50 never shows. The first pull learned
    P = 34 (a thinned answer) and a thinning of 6% from three cuts of 32 to 34, so the next pulls
    took the cut answers of 24 to 26 whole: 22 of 168 lost every pull. A window taken whole outside
    the margin is checked (the part beyond its answer's end): one shown cut widens the margin."""
    from bench.open311_windows import busy_city
    start = datetime(2024, 1, 1, tzinfo=UTC)   # (the bench's city: bench/open311_windows.py)
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(busy_city(30, 10, start))]
    with ThinsAfterCutting(services=JSON_SERVICES, requests=city, paging=False) as portal:
        public = {r["service_request_id"] for r in city} - portal.private
        pulls = pulls_of(portal, start, 10, pulls=3)
    assert len(public) == 168
    assert [sorted(ids) for ids in pulls] == [sorted(public)] * 3


def test_a_page_size_learned_from_a_thinned_answer_with_no_thinning_shown_loses_none(tmp_path):
    """Bursts of requests a minute to a day apart (the bench's bursty city 56: 93 requests, 53 public),
    from a server that reads `page` and leaves out 8 of every 20 after a cut at 50: P was learned
    from a thinned answer (29), one cut only was seen, so the margin stayed a tenth, and a cut answer
    of 26 (45 days wide) was taken whole: 24 of 53 lost every pull."""
    from bench.open311_windows import bursty_city
    start = datetime(2024, 1, 1, tzinfo=UTC)
    moments, share, paging = bursty_city(56, start)
    assert (share, paging) == (0.4, True)
    city = [{"service_request_id": str(n), "status": "open", "requested_datetime": moment.isoformat()}
            for n, moment in enumerate(moments)]
    with ThinsAfterCutting(services=JSON_SERVICES, requests=city) as portal:
        public = {r["service_request_id"] for r in city} - portal.private
        pulls = pulls_of(portal, start, 90)
    assert len(public) == 53
    assert [sorted(ids) for ids in pulls] == [sorted(public)] * 2


class ThinsWholeDaysAndGoesDown(GoesDown, ThinsWholeDays):
    """Reads whole days and thins cut answers (ThinsWholeDays), and goes down after `up` requests (GoesDown)."""


@pytest.mark.parametrize("up", [50, 330], ids=["reading-the-days", "reading-the-parts"])
def test_a_pull_cut_short_with_days_in_doubt_starts_over_losing_and_doubling_none(tmp_path, store, caplog, up):
    """The days in doubt are read by parts at the pull's end (the first after the 87th request of this
    city, 434 in all), and what their parts give that the
    pull has yielded already is known from the answers around each day, in no state: a pull cut
    short before or while they are read (its host down) starts over, saying so, and publishes every
    public request once."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    layout = RecordsLayout(tmp_path / "records")

    def source(portal):
        return RequestsRecords(adapter_for(portal_config("bos311", "open311", portal.url), fast_client(max_attempts=1)),
                               None, now=start + timedelta(days=10), since=start)

    with ThinsWholeDaysAndGoesDown(up, days_in="America/New_York", private=8, odd_weeks=False, paging=False,
                                   services=CITY_SERVICES, requests=coded(uniform_city(400, 10, start), 20)) as portal:
        with pytest.raises(TransientError, match="HTTP 503"):
            pulled_into(layout, store.con, source(portal))
        portal.up = None
        result = pulled_into(layout, store.con, source(portal))
    public = {r["service_request_id"] for r in portal.service_requests
              if instant(r["requested_datetime"]) < start + timedelta(days=9)} - portal.private
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert len(published) == len(set(published)) and public <= set(published) and not result.resumed
    assert "bos311:service-requests: a pull cut short cannot go on from where it stopped (days taken whole in doubt " \
           "are due to be read by parts): the pull starts over" in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("fixed", [False, True], ids=["still-whole-days", "fixed-since"])
def test_a_window_whose_requests_are_all_made_in_59th_seconds_leaves_the_check_to_a_later_one(caplog, fixed):
    """The check that a server read by whole days because the pull before was still ignores the times
    asks from a second after the newest request made in no 59th second: a window whose requests were
    all made in 59th seconds is not checked, and the first window answered whole after it is (w34
    left it). Nothing is lost or read twice by it: until checked, the server is read by whole days,
    which a server reading times answers with each day's requests too; the check, a window later,
    tells a server fixed since (read by times from there on) from one still reading whole days."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    # (the 1st's 3 requests, then 60 a day: the first window answered whole is the 1st's)
    requests = [{"service_request_id": f"{day}-{n}", "status": "open", "requested_datetime":
                 f"2024-01-{day:02d}T{9 + n // 10:02d}:{n % 10 * 5:02d}:{59 if day == 1 else 30}Z"}
                for day in range(1, 11) for n in range(3 if day == 1 else 60)]
    server = Open311Portal(services=JSON_SERVICES, requests=requests) if fixed else \
        ThinsWholeDays("UTC", private=0, services=JSON_SERVICES, requests=requests)
    with server as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        previous = PreviousPull(path="x", row_count=0, watermark=None, pulled_at=start, whole_days=True)
        source = RequestsRecords(adapter, previous, now=start + timedelta(days=10), since=start)
        tables = list(source.batches(None))
        asked = windows_asked(portal)
    ids = [i for table, _ in tables for i in table["service_request_id"].to_pylist()]
    assert sorted(ids) == sorted(r["service_request_id"] for r in requests)
    first = tables[0][0]["service_request_id"].to_pylist()
    checked = [window for window in asked if window[0][11:19] != "00:00:00"]
    assert sorted(first) == ["1-0", "1-1", "1-2"] and tables[0][1]["start"] == "2024-01-02T00:00:00+00:00"
    # (a later window checked; still whole days, once; fixed, by times from there on)
    assert (fixed or len(checked) == 1) and checked[0][0] > "2024-01-02", asked
    assert source.whole_days is not fixed
    assert any("reads the times of start_date/end_date again" in r.getMessage() for r in caplog.records) is fixed


@pytest.mark.parametrize("zone, days_in", [("UTC", "Atlantic/Azores"), ("Europe/Berlin", "UTC")],
                         ids=["utc-azores-days", "berlin-utc-days"])
def test_a_server_including_the_ends_day_whose_midnight_is_in_the_hour_after_the_portals_loses_and_doubles_none(
        zone, days_in):
    """(A guard.) A window asked to 23 hours before its end ends at the server's midnight in its last
    day, unless that midnight is in the day's first hour (the Azores' 01:00Z in winter from a portal in
    UTC; UTC's from Berlin's): the server's day then reaches past the window's end, the window after
    starts in it, and each window overlaps the next by a day (100 a day for 20 days: 178 and 182
    requests, where a server of the portal's days costs 104). Asked earlier, to the portal's last
    midnight, it would tile those servers' days but lose the day of one whose clock goes forward where
    its midnight leaves that hour (the Azores' 31 March 2024, 23 hours from 01:00Z, asked by no window):
    the day asked twice is dropped (the window before's ids), none lost or published twice."""
    ids, served, asked = read_including_the_ends_day(zone, days_in, datetime(2024, 1, 1, tzinfo=UTC), 20)
    assert len(ids) == len(set(ids)) and set(ids) == served
    assert asked < 200, asked


def test_a_part_taken_whole_then_split_under_a_wider_margin_still_fails_for_requests_of_no_code():
    """A part taken whole (status=open, 43 of a cap of 50) is split after all once the other parts' cut
    answers widen the margin (status=closed cut to 46); the keys of its first answer counted as read by
    a part taken whole, so that its requests of no service code (no part by codes gives them) passed the
    check that fails the pull for them, and those past its cap were lost, the pull ok (4 of 6). Only the
    parts taken whole in the end count: the pull fails, naming them."""
    from array import array

    from harvester.portals.open311 import Doubt, NotPullable, Windows, _request_key

    day, cap = datetime(2024, 1, 1, tzinfo=UTC), 50
    requests = [{"service_request_id": f"r{n}", "status": status, "service_code": code, "private": i % every == 1}
                for n, (i, status, code, every) in enumerate(
                    [(i, "open", code, 6) for i, code in enumerate([c for c in "ABCDEF" for _ in range(16)][:94]
                                                                   + [None] * 6)]
                    + [(i, "closed", code, 11) for i, code in enumerate([c for c in "ABCDEF" for _ in range(17)][:100])])]
    random.Random(1).shuffle(requests)
    for n, request in enumerate(requests):
        request["requested_datetime"] = _stamp(day + timedelta(seconds=300 * n))

    def answer(start, end, page, filters=None):
        """A server that ignores `page`, cuts at 50 (newest first), then leaves the private ones out."""
        filters = filters or {}
        chosen = sorted((r for r in requests if r["status"] == filters.get("status", r["status"])
                         and str(r["service_code"]) in filters.get("service_code", str(r["service_code"])).split(",")),
                        key=lambda r: r["requested_datetime"], reverse=True)
        if len(chosen) > cap:
            chosen = [r for r in chosen[:cap] if not r["private"]]
        return [{k: v for k, v in r.items() if k != "private"} for r in chosen]

    windows = Windows(answer, day, day + timedelta(days=1), page_size=cap, services=lambda: list("ABCDEF"))
    first = answer(day, day + timedelta(days=1), 1)
    doubt = Doubt(day + timedelta(days=1), day + timedelta(days=1), array("q", sorted(map(_request_key, first))), ())
    with pytest.raises(NotPullable, match=r"read by parts, 2 of its requests came in no part \(e\.g\. 'r\d+', of status "
                                          r"'open' and service code None\)"):
        windows._by_parts(day, day + timedelta(days=1), len(first), cap, doubt)
    assert [len(answer(day, day, 1, {"status": status})) for status in ("open", "closed")] == [43, 46]


def test_a_request_changed_ahead_of_the_pull_is_warned_of(tmp_path):
    """GeoReport v2's `updated_datetime` says when a request last changed: one years ahead of the
    pull (a server's clock, or a typo) is kept as the server gives it, with a warning naming the
    dataset and counting its requests (FutureModified, stage `records`), as the harvest warns of a
    dataset's `modified`; the pull went unsaid. Its `expected_datetime`, a plan, ahead by nature, is
    not warned of, and the watermark (`requested_datetime`, read by windows up to the pull's clock)
    is as it was."""
    requests = load_json(BOSTON)
    requests[0] = {**requests[0], "updated_datetime": "2062-01-10T09:00:00Z"}
    requests[1] = {**requests[1], "updated_datetime": "2061-05-01T00:00:00-04:00"}
    requests[2] = {**requests[2], "expected_datetime": "2063-01-01T00:00:00Z"}
    with Open311Portal(services=JSON_SERVICES, requests=requests) as portal:
        db, result = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db))
    warnings = con.execute("SELECT source_id, error_type, message FROM harvest_errors WHERE stage = 'records'").fetchall()
    assert con.execute("SELECT watermark FROM record_pulls").fetchall() == [("2020-01-18T00:03:41+00:00",)]
    began = con.execute("SELECT started_at FROM harvest_runs").fetchone()[0]
    con.close()
    assert len(warnings) == 1
    source_id, kind, message = warnings[0]
    days = re.fullmatch(r"2 rows' updated_datetime more than a day after this pull began \(the latest "
                        r"2062-01-10T09:00:00Z, (\d+) days after\): kept as the portal gives them \(a server's clock, "
                        r"or a typo\)", message)
    assert (source_id, kind) == ("service-requests", "FutureModified") and days, message
    assert int(days[1]) in {(datetime(2062, 1, 10, 9, tzinfo=UTC) - began).days + d for d in (0, -1)}


@pytest.mark.parametrize("inclusive", [False, True], ids=["end-excluded", "end-included"])
def test_one_pull_reads_every_request_up_to_its_end_from_a_server_whose_days_are_not_the_portals(
        tmp_path, store, inclusive):
    """A server reading New York's days (the portal's zone UTC) that ignores `page`, cuts at 50 and
    leaves out 4 of every 20: the pull's last window, one UTC day, is New York's day before it and its
    day of the pull's end. Including the end's day, the window's parts were asked to 23 hours before
    its end, New York's day before only, and of its day of the pull's end only what the window's cut
    answer held was read; leaving it out, that day was asked by no window (the windows end at the
    UTC midnight, in New York's day before). The pull said ok and its next read them (90 days back),
    but a portal retired after it never publishes them. That day is asked alone (by parts where in
    doubt): every public request made before the pull's end is published by the one pull, once."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    layout = RecordsLayout(tmp_path / "records")
    with ThinsWholeDays("America/New_York", private=4, odd_weeks=False, services=CITY_SERVICES, paging=False,
                        requests=coded(uniform_city(120, 10, start)), end_inclusive=inclusive) as portal:
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        source = RequestsRecords(adapter, None, now=start + timedelta(days=10), since=start)
        pulled_into(layout, store.con, source)
    public = {r["service_request_id"] for r in portal.service_requests} - portal.private
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    last_day = {r["service_request_id"] for r in portal.service_requests
                if instant(r["requested_datetime"]) >= start + timedelta(days=9, hours=5)} - portal.private
    assert len(published) == len(set(published)), f"{len(published) - len(set(published))} published twice"
    assert set(published) == public, \
        f"{len(public - set(published))} of {len(public)} not published ({len(last_day - set(published))} " \
        f"of the {len(last_day)} of New York's last day)"


def test_requests_changed_at_the_now_of_a_server_whose_clock_is_ahead_are_not_warned_of(tmp_path):
    """A server whose clock runs 3 days ahead stamps each request it changes 3 days ahead of ours:
    judged by our clock, every pull warned of them (FutureModified), though nothing was wrong. Judged
    by the server's clock (its answers' Date header) they are not ahead; a request changed in 2062
    still is, and the warning names the clock it was judged by."""
    server_now = datetime.now(UTC) + timedelta(days=3)
    requests = load_json(BOSTON)
    for i in range(5):
        requests[i] = {**requests[i], "updated_datetime": _stamp(server_now - timedelta(minutes=i))}
    requests[5] = {**requests[5], "updated_datetime": "2062-01-10T09:00:00Z"}
    with Open311Portal(services=JSON_SERVICES, requests=requests) as portal:
        portal.date_header = timedelta(days=3)
        db, result = harvest_with_records(tmp_path, "bos311", "open311", portal.url, ["service-requests"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db))
    try:
        warnings = con.execute("SELECT source_id, error_type, message FROM harvest_errors WHERE stage = 'records'").fetchall()
        assert con.execute("SELECT watermark FROM record_pulls").fetchall() == [("2020-01-18T00:03:41+00:00",)]
    finally:
        con.close()
    assert [(source_id, kind) for source_id, kind, _ in warnings] == [("service-requests", "FutureModified")]
    assert warnings[0][2].startswith("1 row's updated_datetime more than a day after this pull began by the server's "
                                     "clock (3 days ahead of ours, by its Date header) (the latest 2062-01-10T09:00:00Z, ")


def requests_around(now: datetime, made: list[timedelta]) -> list[dict]:
    """Boston's first recorded requests, one made at each of `made` from `now`."""
    return [{**request, "service_request_id": f"r{i}", "requested_datetime": _stamp(now + offset),
             "updated_datetime": _stamp(now + offset)} for i, (request, offset) in enumerate(zip(load_json(BOSTON), made))]


@pytest.mark.parametrize("asked_before", [True, False], ids=["catalogue-asked-first", "records-alone"])
def test_a_pull_reads_the_requests_a_server_whose_clock_is_ahead_made_after_our_now(tmp_path, store, asked_before):
    """A GeoReport server whose clock runs 3 hours ahead of ours stamps the requests made in those 3
    hours after our now. The windows ended at our now: none asked for them, and they waited for the
    next pull (it starts 90 days before the latest), never read where the portal was retired after
    it. They end at the server's now, by its answers' Date header: known before the pull where the
    catalogue was asked first (`harvest --records`: the windows reach it at once), else from the first
    answer on (`civicat records`: one window more). A request stamped past the server's now is asked
    by no window, as before (a server reading the windows asked gives none)."""
    now = datetime.now(UTC).replace(microsecond=0)
    made = [-timedelta(days=9, hours=h) for h in range(0, 200, 7)] + \
        [timedelta(minutes=10), timedelta(hours=1), timedelta(hours=2, minutes=50)] + [timedelta(hours=4)]
    layout = RecordsLayout(tmp_path / "records")
    with Open311Portal(services=JSON_SERVICES, requests=requests_around(now, made)) as portal:
        portal.date_header = timedelta(hours=3)
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        if asked_before:
            adapter.services()
        source = RequestsRecords(adapter, None, since=now - timedelta(days=20))
        pulled_into(layout, store.con, source)
        ends = [instant(end) for _, end, _ in windows_asked(portal)]
    published = pq.read_table(layout.folder("bos311", "service-requests"))
    made_at = dict(zip(published["service_request_id"].to_pylist(), published["requested_datetime"].to_pylist()))
    in_the_gap = {f"r{i}" for i, offset in enumerate(made) if timedelta(0) < offset < timedelta(hours=3)}
    assert len(in_the_gap) == 3 and in_the_gap <= set(made_at), sorted(in_the_gap - set(made_at))
    assert set(made_at) == {f"r{i}" for i in range(len(made) - 1)}   # (not the one past the server's now)
    # (a Date is to the second, and made before the answer's way here: the server's now measured a little early)
    assert timedelta(hours=2, minutes=59) <= max(ends) - source.until <= timedelta(hours=3)
    # (by our clock, the windows ended at `until`: the server's known at once, none ends there)
    assert (source.until in ends) is not asked_before
    watermark = previous_pull(store.con, "bos311:service-requests").watermark
    assert datetime.fromisoformat(watermark) == now + timedelta(hours=2, minutes=50)


def test_windows_reach_no_further_than_an_incremental_pull_reads_back(tmp_path, store):
    """A web front whose clock runs 200 days ahead (its Date header, believed: within a year) while
    its database's is right stamps every request with our now: only a typo is in that gap. The windows
    end at most 90 days past our now (RECENT, what the next pull reads back from the latest): a request
    typed 30 days ahead is read and is the watermark, and the next pull, starting 90 days before it,
    still reads a request made after this one (none made meanwhile is skipped); one typed 150 days
    ahead is asked by no window (ended at the front's now, it would be read, be the watermark, and the
    next pulls would start 60 days past our now, skipping every request made until then). The bound is
    a guard: on main the windows end at our now."""
    now = datetime.now(UTC).replace(microsecond=0)
    made = [-timedelta(days=9, hours=h) for h in range(0, 200, 7)] + [timedelta(days=30), timedelta(days=150)]
    layout = RecordsLayout(tmp_path / "records")
    requests = requests_around(now, made)
    with Open311Portal(services=JSON_SERVICES, requests=requests) as portal:
        portal.date_header = timedelta(days=200)
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        adapter.services()
        first = RequestsRecords(adapter, None, since=now - timedelta(days=20))
        pulled_into(layout, store.con, first)
        ends = [instant(end) for _, end, _ in windows_asked(portal)]
        watermark = previous_pull(store.con, "bos311:service-requests").watermark
        portal.service_requests.append({**requests[0], "service_request_id": "later",
                                        "requested_datetime": _stamp(now + timedelta(minutes=30))})
        previous = previous_pull(store.con, "bos311:service-requests")
        pulled_into(layout, store.con, RequestsRecords(adapter, previous, now=now + timedelta(hours=1)))
    assert max(ends) == first.until + timedelta(days=90)
    assert datetime.fromisoformat(watermark) == now + timedelta(days=30)
    published = set(pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist())
    assert published == {f"r{i}" for i in range(len(made) - 1)} | {"later"}


def test_a_pull_cut_short_past_our_now_goes_on_where_the_servers_clock_is_learned_from_its_answers(tmp_path, store):
    """A server whose clock runs 3 days ahead, pulled by `civicat records` alone (nothing asked of it
    before: its clock known from the pull's first answer), cut short (the host down) after windows
    past our now, in the 3 days of requests the server has made since. The pull resumed at once knew
    no clock before its first answer: its windows' end was our now, the state's start past it, and
    the resume check refused it; the pull started over from its start (every window asked again).
    The clock the cut pull learned is kept in its state, until the resumed pull's answers give it:
    no window read is asked again but the one being read, every request published once."""
    now = datetime.now(UTC).replace(microsecond=0)
    made = [timedelta(hours=h * 0.4) for h in range(-24 * 10 * 5 // 2, 24 * 3 * 5 // 2)]   # (60 a day, 3 days ahead)
    layout = RecordsLayout(tmp_path / "records")

    def pull(portal):
        adapter = adapter_for(portal_config("bos311", "open311", portal.url), fast_client())
        return pulled_into(layout, store.con, RequestsRecords(adapter, None, since=now - timedelta(days=11)))

    requests = requests_around(now, made)
    assert len(requests) == len(made)
    with Open311Portal(services=JSON_SERVICES, requests=requests) as portal:
        portal.date_header = timedelta(days=3)
        whole = windows_asked(portal) if pull(portal) else None
    shutil.rmtree(layout.root)
    ahead = [i for i, (start, _, _) in enumerate(whole) if instant(start) > now + timedelta(hours=1)]
    assert len(ahead) >= 4, whole   # (windows past our now: the cut comes after the second of them)
    with GoesDown(ahead[1] + 1, services=JSON_SERVICES, requests=requests) as portal:
        portal.date_header = timedelta(days=3)
        first, second, result = cut_short_then_resumed_by(layout, portal, pull)
    again = set(first) & set(second)
    assert instant(first[-2][1]) > now + timedelta(hours=1)   # (cut with its state past our now)
    assert result.resumed and len(again) == 1, f"{len(again)} of the {len(set(first))} windows read asked again"
    published = pq.read_table(layout.folder("bos311", "service-requests"))["service_request_id"].to_pylist()
    assert sorted(published) == sorted(r["service_request_id"] for r in requests) and len(set(published)) == len(published)


def cut_short_then_resumed_by(layout, portal: "GoesDown", pull):
    """cut_short_then_resumed with `pull(portal)` for each pull."""
    with pytest.raises(TransientError, match="HTTP 503"):
        pull(portal)
    first = windows_asked(portal)
    portal.up = None
    portal.clear_log()
    result = pull(portal)
    return first, windows_asked(portal), result


@pytest.mark.parametrize("given", [False, True], ids=["private", "given-in-windows"])
def test_a_service_code_the_server_refuses_is_in_the_run_report_whether_the_pull_succeeds_or_fails(tmp_path, store,
                                                                                                   given):
    """A service code the server refuses (HTTP 400) is taken as a private type's, and the run report
    says so (harvest_errors: stage `records`, type RefusedServiceCode, naming the code), once a pull,
    however many parts held it. Where the server does give that code's requests in the windows'
    answers (not private after all), the pull fails, naming one of them ("a status or service code
    asked by none"): the run report said that failure, but not the refusal that explains it (the
    reader's own warnings were stored only with a pull that succeeded)."""
    from harvester.pipeline import ErrorLog, PortalReport, harvest
    from harvester.records import pull_records

    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests = one_code_of_three(coded(uniform_city(200, 10, start)))
    with ThinsWholeDays("America/New_York", private=0, odd_weeks=False, services=CITY_SERVICES, requests=requests,
                        paging=False, private_in={} if given else {"code-01": 20}, refused=("code-01",)) as portal:
        config = portal_config("bos311", "open311", portal.url)
        harvest([config], store, fast_client())
        adapter = adapter_for(config, fast_client())
        adapter.record_source = lambda _dataset, previous: RequestsRecords(
            adapter, previous, now=start + timedelta(days=10), since=start)
        errors = ErrorLog(store, "run-1", "bos311", PortalReport("bos311"))
        [result] = pull_records(adapter, ["service-requests"], store.con, RecordsLayout(tmp_path / "records"),
                                run_id="run-1", errors=errors)
    records = [(row["error_type"], row["severity"], row["message"]) for row in errors.rows if row["stage"] == "records"]
    refusals = [message for kind, severity, message in records if kind == "RefusedServiceCode" and severity == "warning"]
    assert len(refusals) == 1 and re.fullmatch(
        r"the server refuses to be asked for service_code=code-01 \(HTTP 400: .*service_code code-01 is not a public "
        r"service.*\): taken as a service type whose requests it gives none of \(a private one\), not asked again by "
        r"this pull", refusals[0]), records
    assert result.status == ("failed" if given else "ok"), result
    if given:
        [(kind, message)] = [(kind, message) for kind, severity, message in records if severity == "error"]
        assert "service code 'code-01'): a status or service code asked by none" in message, message


def test_nights_that_change_no_request_publish_the_same_bytes(tmp_path, boston):
    """Boston's recorded requests pulled night after night, an incremental pull reading its last 90 days
    again: the published part's bytes changed on nights 2 and 3 though no request did (night 2's merge
    wrote the full pull's 37 row groups as one and, choosing dictionaries on the first of them, 3 rows,
    none; night 3's chose them on the whole), so a front end's cache and a sync by hash fetched the
    part again. A night that changes nothing now publishes the parts as they were; one that changes a
    request writes them again, once."""
    import hashlib

    layout = RecordsLayout(tmp_path / "records")
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    from catalog.store import migrate
    migrate(con)

    def night(number: int) -> dict[str, str]:
        previous = previous_pull(con, "bos311:service-requests")
        pulled = pull_dataset(source_for(boston, previous), layout, "bos311", "service-requests", con,
                              uid="bos311:service-requests", run_id=f"r{number}")
        assert (pulled.mode, pulled.rows) == ("full" if number == 1 else "incremental", 950)
        folder = layout.folder("bos311", "service-requests")
        return {part.name: hashlib.sha256(part.read_bytes()).hexdigest() for part in sorted(folder.iterdir())}

    first = night(1)
    assert pq.ParquetFile(next(layout.folder("bos311", "service-requests").iterdir())).num_row_groups > 10
    assert night(2) == night(3) == night(4) == first
    recent = max(boston.service_requests, key=lambda r: r["requested_datetime"])
    recent["status"] = "closed" if recent["status"] == "open" else "open"
    changed = night(5)
    assert changed != first
    assert night(6) == night(7) == changed
    table = pq.read_table(layout.folder("bos311", "service-requests"))
    assert table.filter(pa.compute.equal(table["service_request_id"], recent["service_request_id"]))["status"] \
        .to_pylist() == [recent["status"]]


def test_nights_that_change_no_request_publish_the_same_bytes_when_a_request_gives_nan(tmp_path, boston):
    """A server giving a request's `lat` as "NaN" (a float NaN in the records): the merge judged the rows
    read again against the previous ones with Arrow's `equals`, for which NaN is no NaN, so the part was
    written again every night though no request changed. NaN is equal to NaN for this; a change elsewhere
    still writes the part again."""
    import hashlib

    layout = RecordsLayout(tmp_path / "records")
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    from catalog.store import migrate
    migrate(con)
    ids = list(dict.fromkeys(r["service_request_id"] for r in sorted(boston.service_requests,
                                                                     key=lambda r: r["requested_datetime"])))[-3:]
    for request in boston.service_requests:
        if request["service_request_id"] in ids[:2]:
            request["lat"] = "NaN"

    def night(number: int) -> dict[str, str]:
        pulled = pull_dataset(source_for(boston, previous_pull(con, "bos311:service-requests")), layout, "bos311",
                              "service-requests", con, uid="bos311:service-requests", run_id=f"r{number}")
        assert (pulled.mode, pulled.rows) == ("full" if number == 1 else "incremental", 950)
        folder = layout.folder("bos311", "service-requests")
        return {part.name: hashlib.sha256(part.read_bytes()).hexdigest() for part in sorted(folder.iterdir())}

    first = night(1)
    lat = pq.read_table(layout.folder("bos311", "service-requests"), columns=["lat"])["lat"]
    assert pa.compute.sum(pa.compute.is_nan(lat)).as_py() == 2
    profiled = con.execute("SELECT max_value, profiled_at FROM column_profiles WHERE column_name = 'lat'").fetchone()
    assert night(2) == night(3) == first
    # (column_profiles, compared in DuckDB, has NaN equal to NaN: the profile keeps night 1's time)
    assert con.execute("SELECT max_value, profiled_at FROM column_profiles WHERE column_name = 'lat'").fetchone() \
        == profiled
    for request in boston.service_requests:
        if request["service_request_id"] == ids[2]:
            request["status"] = "closed" if request["status"] == "open" else "open"
    changed = night(4)
    assert changed != first and night(5) == changed


def test_a_night_that_changes_no_request_writes_no_merged_part(tmp_path, boston, monkeypatch):
    """A night on which no request changed (its last days read again): the merge wrote every row of
    the dataset into merged parts, then threw them away for the previous parts it found the same
    (the work and the disk written a whole dataset's, each night). It judges first and writes
    nothing; a night that changes a request writes the dataset, each row once."""
    import harvester.records_merge as records_merge
    from catalog.store import migrate

    layout = RecordsLayout(tmp_path / "records")
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    migrate(con)
    written, write = [], records_merge._Parts.write
    monkeypatch.setattr(records_merge._Parts, "write", lambda parts, table: (written.append(table.num_rows),
                                                                               write(parts, table))[1])

    def night(number: int) -> list[int]:
        written.clear()
        pulled = pull_dataset(source_for(boston, previous_pull(con, "bos311:service-requests")), layout, "bos311",
                              "service-requests", con, uid="bos311:service-requests", run_id=f"r{number}")
        assert (pulled.mode, pulled.rows) == ("full" if number == 1 else "incremental", 950)
        return list(written)

    night(1)
    published = sorted(path.stat().st_ino for path in layout.folder("bos311", "service-requests").iterdir())
    assert night(2) == night(3) == []
    assert sorted(path.stat().st_ino for path in layout.folder("bos311", "service-requests").iterdir()) == published
    latest = max(boston.service_requests, key=lambda r: r["requested_datetime"])
    latest["status"] = "closed" if latest["status"] == "open" else "open"
    assert sum(night(4)) == 950
    con.close()
