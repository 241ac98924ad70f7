"""OpenDataSoft records: /records pages inside the 10,000-row window, the JSON-lines
export beyond it, over HTTP against the local Explore v2.1 portal."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import harvest_with_records
from tests.portals.base import RawBody
from tests.portals.opendatasoft import OpenDataSoftPortal, StalePagePortal, make_ods_datasets


def counter_rows(n):
    return [{"id": f"c{i:06d}", "count": i % 500, "rate": i / 7, "date": f"2024-03-{1 + i % 28:02d}T08:{i % 60:02d}:00+01:00",
             "geo_point_2d": {"lon": 2.35 + i / 1e6, "lat": 48.85}} for i in range(n)]


@pytest.fixture
def ods():
    datasets = make_ods_datasets(3)
    small, large = datasets[1]["dataset_id"], datasets[2]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={small: counter_rows(250), large: counter_rows(12_345)}) as portal:
        yield portal, small, large


def test_records_pages_and_export(tmp_path, ods):
    portal, small, large = ods
    _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [small, large])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["portals"][0]["record_rows"] == 250 + 12_345

    table = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={small}")
    assert table.num_rows == 250
    assert table.schema.field("count").type == pa.int64() and table.schema.field("rate").type == pa.float64()
    assert table.schema.field("date").type == pa.timestamp("us", tz="UTC")
    first = table.sort_by("id").slice(0, 1).to_pylist()[0]
    assert first["geo_point_2d"] == "POINT (2.35 48.85)" and first["date"].hour == 7   # 08:00+01:00
    pages = [q for p, q, _ in portal.requests if p.endswith(f"{small}/records") and q.get("limit") != "0"]
    # (each page after the first asked from the row before it: 99 rows new a request)
    assert [q["offset"] for q in pages] == ["0", "99", "198"] and all(q["limit"] == "100" for q in pages)

    big = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={large}")
    assert big.num_rows == 12_345 and len(set(big["id"].to_pylist())) == 12_345
    assert any(p.endswith(f"{large}/exports/jsonl") for p, _, _ in portal.requests)
    assert not any(p.endswith(f"{large}/records") and q.get("limit") != "0" for p, q, _ in portal.requests)


def test_a_dataset_counted_at_the_window_s_10000_rows_is_read_from_the_export(tmp_path):
    """A `total_count` of exactly 10,000 may be one that stops there: 100 pages read 10,000 rows
    of 10,050, the pull whole by its count, 50 lost unsaid. Such a dataset is read from its export."""
    datasets = make_ods_datasets(2)
    large = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={large: counter_rows(10_050)}, count_cap=10_000) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [large])
        assert result.exit_code == 0, result.output
        assert any(p.endswith(f"{large}/exports/jsonl") for p, _, _ in portal.requests)
    table = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={large}")
    assert table.num_rows == len(set(table["id"].to_pylist())) == 10_050


def test_records_pages_come_in_the_order_of_their_record_ids_whatever_replica_answers(tmp_path):
    """Pages read by offset from replicas each in its own order (a search index's, ties broken
    its own way), the count unchanged: rows were skipped and others read twice, with nothing to
    tell (rows carry no key, no page was the page before). Each page asks `order_by=_id` (the
    record's id in Explore v2.1), one order whichever replica answers."""
    datasets = make_ods_datasets(2)
    dataset_id = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={dataset_id: counter_rows(450)}, replicas=2) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [dataset_id])
        pages = [q for p, q, _ in portal.requests if p.endswith(f"{dataset_id}/records") and q.get("limit") != "0"]
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={dataset_id}")["id"].to_pylist()
    assert sorted(ids) == sorted(r["id"] for r in counter_rows(450))
    assert len(pages) == 5 and all(q["order_by"] == "_id" for q in pages)


def test_a_portal_that_refuses_the_record_id_order_is_read_from_the_export(tmp_path):
    """Offset pages in no order asked may skip rows unseen: where the record id's orders are refused
    (asked with the count, before any row), the dataset is read from its export, as one past
    the 10,000-row window is, never by unordered pages."""
    datasets = make_ods_datasets(2)
    dataset_id = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={dataset_id: counter_rows(450)}, replicas=2,
                            record_orders=()) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [dataset_id])
        asked = [(p.rsplit("/", 1)[-1], q) for p, q, _ in portal.requests if dataset_id in p]
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={dataset_id}")["id"].to_pylist()
    assert sorted(ids) == sorted(r["id"] for r in counter_rows(450))
    assert [name for name, q in asked if name != "records" or q.get("limit") != "0"] == ["jsonl"]


@pytest.mark.parametrize("accepted", [("_id",), ("recordid",)])
def test_records_are_paged_by_the_record_id_order_the_portal_knows(tmp_path, accepted):
    """Explore v2.1 names the record's id `_id` (its OpenAPI `record` schema; v2.0's technical
    field was `recordid`). civicat asked `order_by=recordid` alone: a v2.1 portal answers an
    unknown field with a 400, and every dataset under 10,000 rows was downloaded whole from its
    export instead of paged. `_id` is asked first, `recordid` next (a portal that knows only
    it), each refusal known from the count, before any row."""
    datasets = make_ods_datasets(2)
    dataset_id = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={dataset_id: counter_rows(250)}, replicas=2,
                            record_orders=accepted) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [dataset_id])
        asked = [(p.rsplit("/", 1)[-1], q) for p, q, _ in portal.requests if dataset_id in p]
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    pages = [q for name, q in asked if name == "records" and q.get("limit") != "0"]
    assert [q["offset"] for q in pages] == ["0", "99", "198"] and {q["order_by"] for q in pages} == set(accepted)
    assert not any(name == "jsonl" for name, _ in asked)
    counts = [q["order_by"] for name, q in asked if name == "records" and q.get("limit") == "0"]
    assert counts == (["_id"] if accepted == ("_id",) else ["_id", "recordid"])
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={dataset_id}")["id"].to_pylist()
    assert sorted(ids) == sorted(r["id"] for r in counter_rows(250))


class OffsetIgnoringPortal(OpenDataSoftPortal):
    """An ODS behind a broken cache: every records page is the first, whatever `offset` asks."""

    def route(self, path, query):
        return super().route(path, {**query, "offset": "0"} if path.endswith("/records") else query)


@pytest.mark.parametrize("rate", [0.5, float("nan")], ids=["number", "nan"])
def test_a_table_of_identical_rows_is_pulled_whole(tmp_path, rate):
    """ODS rows carry no key, so a legitimate table of 250 identical rows (a count per day that
    never changed, a lookup repeated) gives pages identical to the page before: that alone
    must not fail the pull, as it does for sources whose rows carry their key. Rows holding a
    NaN too: the page and its rows one further on are compared NaN equal to NaN, as the pages are."""
    datasets = make_ods_datasets(3)[1:]   # (the first has no records)
    same = {"id": "a", "count": 1, "rate": rate, "date": "2024-03-01T08:00:00+01:00", "geo_point_2d": None}
    periodic = [{**same, "count": i % 4} for i in range(400)]   # pages of 100 repeat the page before too
    with OpenDataSoftPortal(datasets, records={datasets[0]["dataset_id"]: [same] * 250,
                                               datasets[1]["dataset_id"]: periodic}) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url,
                                         [d["dataset_id"] for d in datasets])
    assert result.exit_code == 0, result.output
    for dataset, rows in zip(datasets, ([same] * 250, periodic)):
        table = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={dataset['dataset_id']}")
        assert table.num_rows == len(rows) and table["count"].to_pylist() == [r["count"] for r in rows]


def with_nan_rates(rows: list) -> list:
    """`rows` with every tenth row's `rate` a float NaN (the portal's JSON writes NaN, Python's json reads it)."""
    return [{**row, "rate": float("nan")} if i % 10 == 0 else row for i, row in enumerate(rows)]


@pytest.mark.parametrize("rows", [counter_rows(250), with_nan_rates(counter_rows(250))], ids=["numbers", "nan"])
def test_a_portal_that_ignores_the_offset_still_fails_the_pull(tmp_path, rows):
    """Rows holding a float NaN too: Arrow's `equals` has no NaN equal to itself, so the page
    repeated was taken as new until session 43 (the pull published 300 rows of the 250 counted:
    rows 0-99 three times, 100-249 never)."""
    datasets = make_ods_datasets(2)
    with OffsetIgnoringPortal(datasets, records={datasets[1]["dataset_id"]: rows}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
    assert result.exit_code == 0, result.output   # (a records pull's failure is its dataset's, not its portal's)
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1
    assert not (tmp_path / "records" / "portal=paris" / f"dataset={datasets[1]['dataset_id']}").exists()
    import duckdb
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE stage = 'records'").fetchone()[0]
    assert "offset=99" in message and "the same 100 rows as the page before" in message


def test_records_that_are_not_objects_keep_their_place_and_are_reported(tmp_path):
    """A records page holding a string and a null among its objects: they were dropped, so the
    next page was asked one or two rows short of where it should start, a row was read twice,
    the count was still met, and the pull said nothing. Now each is a row of nulls, counted
    in a warning, and every object is kept once."""
    datasets = make_ods_datasets(2)
    rows = counter_rows(250)
    rows[5], rows[120] = "oops", None
    with OpenDataSoftPortal(datasets, records={datasets[1]["dataset_id"]: rows}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={datasets[1]['dataset_id']}")["id"].to_pylist()
    assert len(ids) == 250 and ids.count(None) == 2
    assert sorted(i for i in ids if i) == sorted(r["id"] for r in rows if isinstance(r, dict))
    import duckdb
    warnings = duckdb.connect(str(db)).execute("SELECT error_type, severity, message FROM harvest_errors").fetchall()
    assert warnings == [("NotAnObject", "warning", "2 records were not JSON objects; each stored as a row of nulls")]


def test_a_dataset_of_3000_columns_is_pulled_and_profiled(tmp_path):
    """Wide tables (census tables run to hundreds of columns): their profiles were inserted a
    row at a time, each insert holding blocks of its own in the catalogue's 128 MB, so past
    ~400 columns every pull of such a dataset failed (DuckDB's Out of Memory Error), and past
    ~1,500 the one scan of every column's distinct estimate did not fit the profile's 128 MB."""
    datasets = make_ods_datasets(2)
    datasets[1]["fields"] = [{"name": f"f{i}", "label": f"F {i}", "type": "int"} for i in range(3000)]
    rows = [{f"f{i}": i * n for i in range(3000)} for n in range(3)]
    with OpenDataSoftPortal(datasets, records={datasets[1]["dataset_id"]: rows}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    import duckdb
    con = duckdb.connect(str(db))
    assert con.execute("SELECT column_count FROM record_pulls").fetchone()[0] == 3000
    assert con.execute("SELECT count(*), max(max_value::INTEGER) FILTER (WHERE column_name = 'f2999'), "
                       "sum(distinct_count) FILTER (WHERE column_name = 'f1') FROM column_profiles").fetchone() \
        == (3000, 2999 * 2, 3)


def test_a_profile_that_fails_keeps_the_previous_dataset(tmp_path, monkeypatch):
    """A pull is published only once complete, and a failed pull keeps the previous Parquet
    (`civicat records`: exit 1, "its previous Parquet is kept"): the profile, which can fail
    (out of memory), ran after the new folder replaced the old one, so a failed pull left
    the new rows published with the previous pull's row in record_pulls."""
    import duckdb

    import catalog.records
    datasets = make_ods_datasets(2)
    dataset_id = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={dataset_id: counter_rows(250)}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [dataset_id])
        assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
        portal.records[dataset_id] = counter_rows(300)
        monkeypatch.setattr(catalog.records, "PROFILE_MEMORY", "1KB")   # no profile fits,
        monkeypatch.setattr(catalog.records, "SCAN_MEMORY_RETRY", "1KB")   # nor tried again
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [dataset_id])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    assert pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={dataset_id}").num_rows == 250
    con = duckdb.connect(str(db))
    assert con.execute("SELECT row_count FROM record_pulls").fetchall() == [(250,)]
    assert "records pull failed" in con.execute("SELECT message FROM harvest_errors WHERE stage = 'records'").fetchone()[0]


def test_a_dataset_of_more_columns_than_a_pull_takes_fails_at_once(tmp_path):
    """A portal listing 10^6 fields for a dataset: its pull (outside the portal's max_minutes)
    would have run for days, the profile's cost growing with the square of the columns
    (100,000 took 7 minutes). Past 10,000 columns the pull fails before reading a row."""
    datasets = make_ods_datasets(2)
    datasets[1]["fields"] = [{"name": f"f{i}", "label": f"F {i}", "type": "int"} for i in range(10_001)]
    with OpenDataSoftPortal(datasets, records={datasets[1]["dataset_id"]: [{"f0": 1}] * 3}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
        read = [q for p, q, _ in portal.requests if p.endswith("/records") and q.get("limit") != "0"]
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    assert read == []
    import duckdb
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE stage = 'records'").fetchone()[0]
    assert "the dataset has 10001 columns, more than the 10,000 a records pull takes" in message


def test_columns_named_as_the_hive_partitions_are_not_hidden_by_them(tmp_path):
    """A data inventory's `dataset` column (or a `Portal` one): read Hive-style, as the README and
    the export show it, DuckDB, polars and pyarrow all gave the folder's `dataset=` value in
    its place, and the column's own values were lost."""
    import duckdb
    import polars as pl
    datasets = make_ods_datasets(2)
    datasets[1]["fields"] = [{"name": "dataset", "type": "text"}, {"name": "Portal", "type": "text"},
                             {"name": "rows", "type": "int"}]
    rows = [{"dataset": f"Inventory {i}", "Portal": "data.example.org", "rows": i} for i in range(3)]
    with OpenDataSoftPortal(datasets, records={datasets[1]["dataset_id"]: rows}) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    glob = str(tmp_path / "records" / "portal=*" / "dataset=*" / "*.parquet")
    read = duckdb.sql(f"SELECT dataset_2, Portal_2, portal, dataset FROM read_parquet('{glob}', hive_partitioning = true) "
                      "ORDER BY rows").fetchall()
    assert read[0] == ("Inventory 0", "data.example.org", "paris", datasets[1]["dataset_id"])
    frame = pl.scan_parquet(str(tmp_path / "records" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert sorted(frame["dataset_2"].to_list()) == ["Inventory 0", "Inventory 1", "Inventory 2"]
    assert set(frame["dataset"].to_list()) == {datasets[1]["dataset_id"]}


def test_a_value_nested_past_orjson_s_depth_is_kept_as_its_json_text(tmp_path):
    """A text field holding JSON nested 300 deep (read fine: the page's parser allows 1,024
    levels) failed the whole pull with "TypeError: Recursion limit reached" when the value
    was written as text (orjson writes 254 levels)."""
    datasets = make_ods_datasets(2)
    rows = counter_rows(3)
    rows[1]["id"] = json.loads("[" * 300 + "]" * 300)
    with OpenDataSoftPortal(datasets, records={datasets[1]["dataset_id"]: rows}) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={datasets[1]['dataset_id']}")["id"].to_pylist()
    assert ids[0] == "c000000" and json.loads(ids[1]) == rows[1]["id"]


def pull_failure(tmp_path, rows):
    """Pull one ODS dataset of `rows` (paged by 100); its records_failed and error messages."""
    import duckdb
    datasets = make_ods_datasets(2)
    with OpenDataSoftPortal(datasets, records={datasets[1]["dataset_id"]: rows}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
    messages = [m for (m,) in duckdb.connect(str(db)).execute(
        "SELECT message FROM harvest_errors WHERE stage = 'records'").fetchall()]
    folder = tmp_path / "records" / "portal=paris" / f"dataset={datasets[1]['dataset_id']}"
    return json.loads(result.output)["portals"][0]["records_failed"], messages, folder


def test_a_field_renamed_while_the_dataset_is_read_fails_its_pull(tmp_path):
    """`count` renamed `comptage` after the first page: the later pages' counts were nulls and
    their `comptage` values dropped, the count of rows met, the pull reported complete."""
    rows = counter_rows(250)
    for row in rows[100:]:
        row["comptage"] = row.pop("count")
    failed, messages, folder = pull_failure(tmp_path, rows)
    assert failed == 1 and not folder.exists()
    assert "the columns changed while the dataset was read: the page at" in messages[0]
    assert "offset=99" in messages[0] and "new: ['comptage']" in messages[0]


def test_a_field_dropped_while_the_dataset_is_read_fails_its_pull(tmp_path):
    """A portal that writes null values out (`"rate": null`) and then leaves `rate` out of every
    row of a page has dropped the column."""
    rows = counter_rows(250)
    for row in rows[:100:3]:
        row["rate"] = None
    for row in rows[100:]:
        del row["rate"]
    failed, messages, _ = pull_failure(tmp_path, rows)
    assert failed == 1 and "gone: ['rate']" in messages[0], messages


def test_null_values_left_out_of_rows_are_no_column_change(tmp_path):
    """A portal that leaves a row's null values out (as SODA's JSON does): a page whose rows
    all lack `rate` and `geo_point_2d`, or whose first page lacks them, is read, the values null."""
    rows = counter_rows(250)
    for row in rows[:100] + rows[200:]:
        del row["geo_point_2d"]
    for row in rows[100:200]:
        del row["rate"]
    failed, messages, folder = pull_failure(tmp_path, rows)
    assert (failed, messages) == (0, [])
    table = pq.read_table(folder).sort_by("id")
    assert table["rate"].null_count == 100 and table["geo_point_2d"].null_count == 150


def test_a_row_added_while_the_dataset_is_read_is_read_again_not_published_twice(tmp_path):
    """OpenDataSoft rows carry no key and come in no order asked: a row added before the page
    being read moved the rows after it on, one read twice, the row added never; the pull read
    on to the page's new total and was complete. A page whose total is not the count the pull
    began with reads it again."""
    import duckdb
    datasets = make_ods_datasets(2)
    rows = counter_rows(250)
    with OpenDataSoftPortal(datasets, records={datasets[1]["dataset_id"]: rows}) as portal:
        def add_a_row_first(path, query):
            if path.endswith("/records") and query.get("offset") == "99" and rows[0]["id"] != "new":
                rows.insert(0, {**rows[0], "id": "new"})

        portal.on_request = add_a_row_first
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [datasets[1]["dataset_id"]])
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"]) == (1, 251), result.output
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={datasets[1]['dataset_id']}")["id"]
    assert sorted(ids.to_pylist()) == sorted(r["id"] for r in rows)   # each once, the new one too
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE error_type = "
                                              "'ChangedWhileRead'").fetchone()[0]
    assert message == ("the page at offset=99, limit=100 counts 251 rows where the pull began with 250: rows were "
                       "added as it read them: the pull read it again"), message


def test_a_row_added_and_another_removed_between_two_pages_is_read_again_not_published_twice(tmp_path):
    """A row added before the page being read and another removed after it, between two pages: every
    page counts 250, the pull gave 250 rows, and the last row of the first page was published twice, the
    row added never (its rows carry no key). Each page after the first is asked from the row before
    it: that row is now another than the last read, and the pull reads it again, no request more."""
    import duckdb
    datasets = make_ods_datasets(2)
    rows = counter_rows(250)
    name = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={name: rows}) as portal:
        def one_added_one_removed(path, query):
            if path.endswith("/records") and query.get("offset") == "99" and rows[0]["id"] != "new":
                rows.insert(0, {**rows[0], "id": "new"})
                rows.pop()

        portal.on_request = one_added_one_removed
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
        asked = [q["offset"] for p, q, _ in portal.requests if p.endswith("/records") and q.get("limit") != "0"]
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"]) == (1, 250), result.output
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={name}")["id"].to_pylist()
    assert sorted(ids) == sorted(r["id"] for r in rows) and len(set(ids)) == 250   # each once, the new one too
    assert asked == ["0", "99", "0", "99", "198"]   # (read again from its start)
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE error_type = "
                                              "'ChangedWhileRead'").fetchone()[0]
    assert message == ("the page at offset=99, limit=100 began with another row than the last read before it: rows "
                       "moved between the pages as they were read (one removed before the page and one added after "
                       "it, or one added before it and one removed after, the count unchanged): the pull read it "
                       "again"), message


def test_a_row_removed_before_a_page_and_one_added_after_it_is_read_again_not_lost(tmp_path):
    """A row removed before the page being read and one added after it, between two pages: every
    page counts 250, the pull gave 250 rows, and the row that moved back into the page before was
    never read (the row added read, nothing repeated to notice): published one row short of the
    dataset, the count met. Each page after the first is asked from the row before it, which is then
    another than the last row read: the pull reads it again, and publishes every row once."""
    import duckdb
    datasets = make_ods_datasets(2)
    rows = counter_rows(250)
    name = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={name: rows}) as portal:
        def one_removed_one_added(path, query):   # (at the second page, whatever its offset)
            if path.endswith("/records") and query.get("offset") not in (None, "0") and rows[0]["id"] == "c000000":
                del rows[0]
                rows.append({**rows[-1], "id": "new"})

        portal.on_request = one_removed_one_added
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
        asked = [q for p, q, _ in portal.requests if p.endswith("/records") and q.get("limit") != "0"]
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"]) == (1, 250), result.output
    ids = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={name}")["id"].to_pylist()
    assert sorted(ids) == sorted(r["id"] for r in rows) and "c000100" in ids and "new" in ids
    assert len(asked) == 5 and all(q["limit"] == "100" for q in asked)   # (the pull read again: no request more)
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE error_type = "
                                              "'ChangedWhileRead'").fetchone()[0]
    assert message.startswith("the page at offset=99, limit=100 began with another row than the last read"), message


def test_alike_neighbouring_rows_across_a_page_boundary_are_no_change_and_cost_no_request(tmp_path):
    """Rows 98-101 alike (a count repeated), across the first page's end: the row before the second
    page, asked with it, is the last row read and the one after it alike. Nothing moved: no reading
    again, no warning, the rows published as served, and no request but the pages' (a page that began
    with the last row read cost a request more, the row before it asked alone)."""
    datasets = make_ods_datasets(2)
    rows = counter_rows(250)
    rows[98:102] = [dict(rows[98]) for _ in range(4)]
    name = datasets[1]["dataset_id"]
    with OpenDataSoftPortal(datasets, records={name: rows}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
        asked = [q for p, q, _ in portal.requests if p.endswith("/records") and q.get("limit") != "0"]
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"], report["warnings"]) == (1, 250, 0), result.output
    table = pq.read_table(tmp_path / "records" / "portal=paris" / f"dataset={name}")
    assert table["id"].to_pylist() == [r["id"] for r in rows]
    assert len(asked) == 3 and all(q["limit"] == "100" for q in asked)


def test_a_stale_page_of_rows_read_already_fails_the_pull_and_is_never_staged(tmp_path, monkeypatch):
    """A page over the response cap is asked in halves; a stale cache answered the first half
    (offset 100, limit 50) with the half page before it (offset 50): the last 50 rows of the
    page of 100 read just before. Equal to no whole page read, it was taken: rows 50-99
    published twice, rows 100-149 never, the count still met (seed 2 of the records chaos,
    15 nights). It fails the pull, its rows not staged; the next pull resumes before it and
    publishes every row once."""
    from catalog.records import RecordsLayout
    datasets = make_ods_datasets(2)
    name = datasets[1]["dataset_id"]
    rows = [{**row, "id": f"{row['id']}-" + "p" * 60} for row in counter_rows(200)]   # ~150 bytes a row
    rows[120]["id"] += "w" * 20_000          # a page of 100 holding it is over the cap, one of 50 is not
    monkeypatch.setenv("CIVICAT_HTTP_MAX_BYTES", str(20_000 + 100 * 150 * 3 // 4))
    with StalePagePortal(datasets, records={name: rows}, stale={"offset": "99", "limit": "51"}) as portal:
        def staged_before_the_stale_page(db):
            staged = pq.read_table(RecordsLayout.beside(db).staging("paris", name) / "parts")
            assert staged["id"].to_pylist() == [r["id"] for r in rows[:100]]

        message = pulls_past_a_stale_page(tmp_path, portal, name, rows, staged_before_the_stale_page)
    assert "offset=99, limit=51 gave again the last 51 rows read before it" in message, message


def pulls_past_a_stale_page(tmp_path, portal: StalePagePortal, name: str, rows: list, check_failed=None) -> str:
    """Two pulls of `name`: the first meets the stale page and fails, nothing published
    (`check_failed(db)` then), the next publishes every row once. Returns the first's error."""
    import duckdb
    folder = tmp_path / "records" / "portal=paris" / f"dataset={name}"
    db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
    assert portal.stale is None and json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    assert not folder.exists()
    message = duckdb.connect(str(db)).execute("SELECT message FROM harvest_errors WHERE stage = 'records' "
                                              "AND severity = 'error'").fetchone()[0]
    if check_failed is not None:
        check_failed(db)
    _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    assert pq.read_table(folder)["id"].to_pylist() == [r["id"] for r in rows]
    return message


def test_a_stale_page_after_repeated_rows_shown_real_fails_the_pull(tmp_path):
    """Rows carry no key: a page repeating the page before (rows 100-199 those of 0-99) is
    shown real by the same request one row further on, and after that no page was looked
    at again: a stale answer to offset 300 (the rows of offset 200) was taken, rows
    200-299 published twice and 300-399 never, the count met. Every page that repeats the
    rows before it is checked so."""
    datasets = make_ods_datasets(2)
    name = datasets[1]["dataset_id"]
    rows = counter_rows(99) * 3 + counter_rows(400)[297:]   # (pages of 99 rows new: rows 100-198 those of 1-99)
    with StalePagePortal(datasets, records={name: rows}, stale={"offset": "297", "limit": "100"}) as portal:
        message = pulls_past_a_stale_page(tmp_path, portal, name, rows)
    assert "offset=297, limit=100 gave the same 100 rows as the page before" in message, message


class OverlappingPagesPortal(OpenDataSoftPortal):
    """An ODS whose records pages after the first start a row early (a sort that moved between
    them): the last row of each page is given again as the first of the next, the count unchanged."""

    def route(self, path, query):
        if path.endswith("/records") and int(query.get("offset", 0)) > 0:
            query = {**query, "offset": str(int(query["offset"]) - 1)}
        return super().route(path, query)


def over_count_failure(tmp_path, portal, name: str, given: str, counted: str, read: str) -> None:
    """A pull of `name` from `portal` fails, `given` rows more than the `counted`, its error naming
    the dataset and what was `read`, and nothing is published."""
    import duckdb
    db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    assert not (tmp_path / "records" / "portal=paris" / f"dataset={name}").exists()
    with duckdb.connect(str(db)) as con:
        error = con.execute("SELECT error_type, message FROM harvest_errors WHERE stage = 'records' "
                            "AND severity = 'error'").fetchone()
    assert error == ("PagingError", f"records pull failed (paris:{name}): the pull gave {given} rows, more than the "
                     f"{counted} the portal counts at its start and its end: {read} rows (rows carry no key to keep "
                     "one of each); the previous records are kept")


@pytest.mark.parametrize("rows", [counter_rows(250), with_nan_rates(counter_rows(250))], ids=["numbers", "nan"])
def test_pages_that_overlap_fail_the_pull_not_publish_duplicates(tmp_path, rows):
    """Rows 0-99, 99-198 and 199-249 (the second page's first row the last of the first, NaN or
    not): no page repeats the rows before it, every page counts 250, and 251 rows were published,
    row 99 twice (only twice the count and a million more stopped a pull). Each page after the first
    asked from the row before it, such a page begins a row earlier still, with a row read before the
    last: rows moved as they were read, and again when read again. The pull fails naming the
    dataset, nothing staged is kept, and the next pull, the pages right again, reads it whole once."""
    import duckdb
    datasets = make_ods_datasets(2)
    name = datasets[1]["dataset_id"]
    folder = tmp_path / "records" / "portal=paris" / f"dataset={name}"
    with OverlappingPagesPortal(datasets, records={name: rows}) as portal:
        db, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    assert not folder.exists() and not any((tmp_path / "records").rglob("*.parquet"))
    with duckdb.connect(str(db)) as con:
        message, = con.execute("SELECT message FROM harvest_errors WHERE stage = 'records' AND severity = 'error'").fetchone()
    moved = "the page at offset=99, limit=100 began with another row than the last read before it"
    assert message.startswith(f"records pull failed (paris:{name}): the dataset changed while it was read, twice: "
                              f"first {moved}") and f"read again, {moved}" in message, message
    with OpenDataSoftPortal(datasets, records={name: rows}) as portal:
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
        pages = [q["offset"] for p, q, _ in portal.requests if p.endswith("/records") and q.get("limit") != "0"]
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    assert pq.read_table(folder)["id"].to_pylist() == [r["id"] for r in rows]
    assert pages == ["0", "99", "198"]   # (read again from its start: the staged rows were not resumed from)


class RepeatingExportPortal(OpenDataSoftPortal):
    """An ODS whose records export gives one row twice, its count the rows it holds."""

    def route(self, path, query):
        if path.endswith("/exports/jsonl"):
            rows = next(r for name, r in self.records.items() if path.endswith(f"/{name}/exports/jsonl"))
            return 200, RawBody("".join(json.dumps(r) + "\n" for r in [*rows, rows[7]]).encode(), "application/jsonl")
        return super().route(path, query)


def test_an_export_that_repeats_a_row_fails_the_pull_and_one_grown_since_the_count_is_published(tmp_path):
    """A dataset past the offset window is read from its export: one repeating a row (12,346
    lines, the count 12,345 before and after) was published, a row twice. It fails naming the
    dataset. An export that gives more rows than counted because rows were added between the count
    and the download (the count asked again says so) is the dataset as it now is: published."""
    datasets = make_ods_datasets(2)
    name = datasets[1]["dataset_id"]
    rows = counter_rows(12_345)
    folder = tmp_path / "records" / "portal=paris" / f"dataset={name}"
    with RepeatingExportPortal(datasets, records={name: rows}) as portal:
        over_count_failure(tmp_path, portal, name, "12,346", "12,345", "its export repeats")
    with OpenDataSoftPortal(datasets, records={name: rows}) as portal:
        def a_row_added_before_the_export(path, query):
            if path.endswith("/exports/jsonl") and len(rows) == 12_345:
                rows.append({**rows[0], "id": "new"})

        portal.on_request = a_row_added_before_the_export
        _, result = harvest_with_records(tmp_path, "paris", "opendatasoft", portal.url, [name])
    report = json.loads(result.output)["portals"][0]
    assert (report["records_pulled"], report["record_rows"]) == (1, 12_346), result.output
    assert sorted(pq.read_table(folder)["id"].to_pylist()) == sorted(r["id"] for r in rows)
