"""A records pull cut short resumes from its staged parts only where the portal's rows up to
its resume point are those it staged: over HTTP against a local FeatureServer (a layer
paged by `resultOffset`, one read in `objectIds` batches). A pull killed outright (SIGKILL,
`civicat records` in a process of its own against a local Socrata portal) loses only the part
being written, closed by time; parts so closed are published as parts closed by rows."""
import json

import pyarrow.parquet as pq
import pytest

from catalog.records import RecordsLayout
from harvester.portals.arcgis_hub import FeatureServerRecords
from harvester.records import pull_dataset
from tests.conftest import fail_pull_after, fast_client
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


def pull_layer(server, layout, store, source=None, **options):
    """The records pull of the local layer's dataset `city:counts` (`source`: a source of it)."""
    source = source or FeatureServerRecords(fast_client(), server.url + LAYER)
    return pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", **options)


def cut_short(server, layout, store, **options):
    """The pull of the layer, cut short after two pages."""
    source = FeatureServerRecords(fast_client(), server.url + LAYER)
    fail_pull_after(source, 2, Killed())
    with pytest.raises(Killed):
        pull_layer(server, layout, store, source, **options)


def cut_short_then_resumed(tmp_path, store, paged: bool, change):
    """A pull of 100 rows cut short after 40 (two parts of 20), `change` made to the rows
    served, then the pull again: (its result, the object ids published)."""
    with FeatureServerPortal({LAYER: (layer(paged), features(range(1, 101)))}) as server:
        layout = RecordsLayout(tmp_path / "records")
        cut_short(server, layout, store, part_rows=20)
        server.layers[LAYER] = (layer(paged), features(change(list(range(1, 101)))))
        result = pull_layer(server, layout, store, part_rows=20)
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
        fail_pull_after(source, 2, Killed())
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
        fail_pull_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", part_rows=20)
        server.stale = {"offset": "38", "limit": "20"}   # (pages of 19 new rows, each asked from the row before)
        with pytest.raises(RecordsError, match="offset=38, limit=20 gave again the last 20 rows read before it"):
            pull()
        assert server.stale is None and not layout.folder("city", "counts").exists()
        assert pq.read_table(layout.staging("city", "counts") / "parts")["id"].to_pylist() == list(range(1, 40))
        result = pull()
    assert result.resumed and result.rows == 100
    assert pq.read_table(layout.folder("city", "counts"))["id"].to_pylist() == list(range(1, 101))


def one_added_one_removed(served: list, offset: str):
    """An on_request that, at the page asked at `offset`, adds a row before every row (a record id
    sorting first) and removes the last: the count unchanged, every row after the first moved on one."""
    def change(path, query):
        if query.get("offset") == offset and query.get("limit") == "20" and served[0]["id"] != 0:
            served.insert(0, {"id": 0, "name": "new"})
            served.pop()
    return change


@pytest.mark.parametrize("moved", ["before_the_stop", "at_the_resume", "killed_before_the_check"])
def test_rows_moved_across_a_page_boundary_are_seen_by_a_pull_resumed_after_it(tmp_path, store, monkeypatch, moved):
    """OpenDataSoft rows carry no key: a row added before the page being read and one removed after
    it make the page begin with the last row of the page before, a row read twice and the row added
    never, every count right. The pull noted such pages in memory and checked them once every row was
    staged: cut short after the boundary (`before_the_stop`), resumed (the row before its resume point
    unmoved) or killed once every row was staged (`killed_before_the_check`), it checked none of them;
    nor did it compare the page it resumed at with the last row staged (`at_the_resume`: rows moved
    after the row before the resume point was asked). Row 20 or 40 was published twice and row 0 never,
    the pull ok. Each page after the first is asked from the row before it, compared with the last row
    read (a resumed pull's first, with the row before its resume point, shown to be the last staged):
    the move is seen as the page is read, the pull read again, and no row is staged twice."""
    monkeypatch.setattr("harvester.portals.opendatasoft.PAGE_LIMIT", 20)
    rows = [{"id": i, "name": f"row {i}"} for i in range(1, 101)]
    layout = RecordsLayout(tmp_path / "records")
    # (pages of 19 rows new asked 20 from the row before: offsets 0, 19, 38, …; the resume asks 38 alone, then 38)
    boundary = "38" if moved == "at_the_resume" else "19"
    with ods_portal(rows) as server:
        served = server.records["counts"]
        if moved != "at_the_resume":
            server.on_request = one_added_one_removed(served, boundary)
        source = ods_source(server)
        if moved == "killed_before_the_check":
            def killed(staged_glob):
                raise Killed()
            monkeypatch.setattr(source, "check_unchanged", killed)
        else:
            fail_pull_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", part_rows=20)
        staged = pq.read_table(layout.staging("city", "counts") / "parts")["id"].to_pylist()
        assert len(staged) == len(set(staged))   # (no row staged twice)
        assert staged[:38] == (list(range(1, 39)) if moved == "at_the_resume" else list(range(38)))
        if moved == "at_the_resume":
            server.on_request = one_added_one_removed(served, boundary)
        server.clear_log()
        result = pull_dataset(ods_source(server), layout, "city", "counts", store.con, uid="city:counts", run_id="r",
                              part_rows=20)
    assert sorted(pq.read_table(layout.folder("city", "counts"))["id"].to_pylist()) == list(range(100))
    assert result.rows == 100
    if moved == "at_the_resume":
        assert not result.resumed
        assert result.changed == ("the page at offset=38, limit=20 began with another row than the last read before "
                                  "it: rows moved between the pages as they were read (one removed before the page and "
                                  "one added after it, or one added before it and one removed after, the count "
                                  "unchanged)")
    else:   # (seen by the pull cut short, read again there)
        assert result.changed is None and result.resumed


def test_a_pull_cut_short_inside_a_part_keeps_the_pages_read(tmp_path, store):
    """Cut short after two pages of 20, inside its first part (of 1,000 rows): the part being
    written was removed, and the next pull read the 40 rows again. It is closed at the last
    page read whole: the next pull asks the row before it (offset 39), then from offset 40."""
    with FeatureServerPortal({LAYER: (layer(True), features(range(1, 101)))}) as server:
        layout = RecordsLayout(tmp_path / "records")
        source = FeatureServerRecords(fast_client(), server.url + LAYER)
        fail_pull_after(source, 2, Killed())
        with pytest.raises(Killed):
            pull_dataset(source, layout, "city", "counts", store.con, uid="city:counts", run_id="r", part_rows=1000)
        server.clear_log()
        result = pull_dataset(FeatureServerRecords(fast_client(), server.url + LAYER), layout, "city", "counts",
                              store.con, uid="city:counts", run_id="r", part_rows=1000)
        offsets = [int(q["resultOffset"]) for _, q, _ in server.requests if "resultOffset" in q]
    assert result.resumed and result.rows == 100 and min(offsets) == 39 and 0 not in offsets
    assert sorted(pq.read_table(layout.folder("city", "counts"))["OBJECTID"].to_pylist()) == list(range(1, 101))


# `civicat records` in a process of its own, with pages of 100 rows and a part closed after each page
# (PART_SECONDS = 0: what a slow portal's pages give in 30 s)
KILLED_CHILD = """
import sys
import harvester.portals.socrata, harvester.records
harvester.portals.socrata.SodaRecords.__init__.__kwdefaults__["page"] = 100
harvester.records.PART_SECONDS = 0
from harvester.cli import cli
cli(sys.argv[1:])
"""
KILL_VIEW = {"id": "kill-0001", "name": "Calls", "columns": [{"fieldName": "n", "dataTypeName": "number"},
                                                             {"fieldName": "kind", "dataTypeName": "text"}]}


def test_a_pull_killed_outright_keeps_the_pages_it_read_and_the_next_asks_only_the_rest(tmp_path):
    """`civicat records` SIGKILLed (the OOM killer, `timeout -s KILL`, a reboot) while a page of a
    3,000-row dataset hangs, 1,200 rows in: no fault is seen, nothing is closed, and with parts of
    500,000 rows the next pull asked every page again (hours of a rate-limited portal's requests).
    Parts closed by time keep what was read: the next run asks the row before where it stopped,
    then only the pages after it, and publishes every row once in one part, as an unbroken pull
    does. What a kill leaves in the staging folder (a part half-written, one closed but not yet
    listed in progress.json) is neither published nor resumed from."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    import duckdb
    from click.testing import CliRunner

    from harvester.cli import cli
    from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry

    rows, page, stop = 3_000, 100, 1_200
    table = SodaTable.from_rows([{"n": str(i), "kind": "abc"[i % 3]} for i in range(rows)])
    hanging, release = threading.Event(), threading.Event()

    def hang_from_the_stop(path, query):   # pages from row 1,200 on are never answered in the first run
        if path.endswith(".csv") and query.get("$limit") == str(page) and int(query["$offset"]) >= stop:
            if int(query["$offset"]) == stop + page:   # (asked once the page before the stop is being written)
                hanging.set()
            release.wait(120)

    with SocrataPortal([discovery_entry(KILL_VIEW)], records={"kill-0001": table}) as portal:
        config = tmp_path / "c.toml"
        config.write_text(f'[[portals]]\nid = "sea"\ncity = "Seattle"\nkind = "socrata"\nurl = "{portal.url}"\n'
                          'domain = "data.example.org"\n')
        db = tmp_path / "c.duckdb"
        assert CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", str(db)]).exit_code == 0
        command = [sys.executable, "-c", KILLED_CHILD, "records", "sea:kill-0001", "--config", str(config),
                   "--db", str(db)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        staging = tmp_path / ".records-staging" / "portal=sea" / "dataset=kill-0001"
        portal.on_request = hang_from_the_stop
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert hanging.wait(60), "the pull never asked the pages after the stop" + (
                f", it ended: {first.stderr.read().decode()[-2000:]}" if first.poll() is not None else "")
            kept, deadline = 0, time.monotonic() + 60   # the page before the stop, written and noted
            while kept < stop and time.monotonic() < deadline and first.poll() is None:
                try:
                    kept = json.loads((staging / "progress.json").read_text())["rows"]
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            first.kill()
            portal.on_request = None
            release.set()
        assert kept == stop
        progress = json.loads((staging / "progress.json").read_text())
        assert progress["rows"] == stop and progress["parts"] == [f"part-{n:05d}.parquet" for n in range(stop // page)]
        # killed between a part's rename and its listing, and in the next part's write
        parts = staging / "parts"
        (parts / f"part-{stop // page:05d}.parquet").write_bytes((parts / progress["parts"][-1]).read_bytes())
        (parts / f"part-{stop // page + 1:05d}.parquet.tmp").write_bytes(b"PAR1" + b"\0" * 100)

        portal.clear_log()
        second = subprocess.run(command + ["--json"], env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-3000:]
        asked = [(int(q["$offset"]), int(q["$limit"])) for p, q, _ in portal.requests if p.endswith(".csv")]

    # the row before the stop, then the pages from it on (two in flight; and the empty one after the last,
    # as any pull)
    assert asked[0] == (stop - 1, 1)
    assert sorted(asked[1:]) == [(offset, page) for offset in range(stop, rows + page, page)]
    [pulled] = json.loads(second.stdout)
    assert (pulled["status"], pulled["rows"], pulled["resumed"]) == ("ok", rows, True)
    folder = tmp_path / "records" / "portal=sea" / "dataset=kill-0001"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet"]
    published = pq.read_table(folder)
    assert sorted(published["n"].to_pylist()) == [float(i) for i in range(rows)]     # each row once
    assert pq.ParquetFile(folder / "part-00000.parquet").metadata.num_row_groups == rows // page   # a page each
    assert not staging.exists()
    con = duckdb.connect(str(db))
    assert con.execute("SELECT row_count FROM record_pulls").fetchall() == [(rows,)]


def published_layout(folder) -> list[list[int]]:
    """The rows of each row group of each published part, in order."""
    files = [pq.ParquetFile(path).metadata for path in sorted(folder.glob("*.parquet"))]
    return [[meta.row_group(n).num_rows for n in range(meta.num_row_groups)] for meta in files]


def test_parts_closed_by_time_are_published_as_parts_closed_by_rows(tmp_path, store):
    """A slow pull closes a part every PART_SECONDS (here after every page of 20 rows): published
    as staged, the 100 rows were five files where a fast pull writes two (parts of 50 rows or a
    page more), and a dataset pulled over hours thousands of small files. They are joined before
    the publish, row group by row group, into the files and row groups a fast pull publishes."""
    layouts = {}
    with FeatureServerPortal({LAYER: (layer(True), features(range(1, 101)))}) as server:
        for part_seconds in (None, 0):
            layout = RecordsLayout(tmp_path / f"records-{part_seconds}")
            result = pull_layer(server, layout, store, part_rows=50, part_seconds=part_seconds)
            folder = layout.folder("city", "counts")
            assert result.rows == 100 and pq.read_table(folder)["OBJECTID"].to_pylist() == list(range(1, 101))
            layouts[part_seconds] = published_layout(folder)
    assert layouts[0] == layouts[None] == [[20, 20, 20], [20, 20]]


def test_a_pull_killed_as_it_joins_its_parts_joins_them_again(tmp_path, store, monkeypatch):
    """Killed once every row is staged, the parts closed by time joined in a folder beside them
    and not yet published: the next pull asks no page again, joins the staged parts anew (the
    half-joined folder set aside) and publishes each row once."""
    import harvester.records as records_module

    with FeatureServerPortal({LAYER: (layer(True), features(range(1, 101)))}) as server:
        layout = RecordsLayout(tmp_path / "records")
        staging = layout.staging("city", "counts")

        def killed_once_joined(folder):
            (folder / "part-00000.parquet").write_bytes(b"PAR1 half written")
            raise Killed()

        monkeypatch.setattr(records_module, "measure_folder", killed_once_joined)
        with pytest.raises(Killed):
            pull_layer(server, layout, store, part_rows=50, part_seconds=0)
        assert json.loads((staging / "progress.json").read_text())["done"] and (staging / "packed").is_dir()
        monkeypatch.undo()
        server.clear_log()
        result = pull_layer(server, layout, store, part_rows=50, part_seconds=0)
        asked = [q for _, q, _ in server.requests if "resultOffset" in q]
    folder = layout.folder("city", "counts")
    assert result.resumed and result.rows == 100 and asked == []
    assert pq.read_table(folder)["OBJECTID"].to_pylist() == list(range(1, 101))
    assert published_layout(folder) == [[20, 20, 20], [20, 20]] and not staging.exists()


def test_a_part_that_cannot_be_closed_at_a_fault_is_logged_and_not_resumed_from(tmp_path, store, caplog):
    """Cut short by a fault, the pull closes the part being written; where that fails too (the
    disk full as progress.json is written) the failure was swallowed without a word. It is
    logged, the fault itself raised, and the part closed but never listed is not published: the
    next pull reads every row once."""
    with FeatureServerPortal({LAYER: (layer(True), features(range(1, 101)))}) as server:
        layout = RecordsLayout(tmp_path / "records")
        staging = layout.staging("city", "counts")
        source = FeatureServerRecords(fast_client(), server.url + LAYER)
        read = source.batches

        def the_disk_full_then_a_fault(resume):
            for n, item in enumerate(read(resume)):
                if n == 2:
                    (staging / "progress.json.tmp").symlink_to("/dev/full")   # (a write there: ENOSPC)
                    raise Killed()
                yield item

        source.batches = the_disk_full_then_a_fault
        with pytest.raises(Killed):
            pull_layer(server, layout, store, source, part_rows=1000)
        [warning] = [r.getMessage() for r in caplog.records if "could not close" in r.getMessage()]
        assert warning.startswith("could not close the records part part-00000.parquet.tmp at a fault (Killed): ")
        assert "No space left on device" in warning
        assert warning.endswith("; the next pull goes on from the last part closed")
        (staging / "progress.json.tmp").unlink()
        result = pull_layer(server, layout, store, part_rows=1000)
    assert not result.resumed and result.rows == 100
    assert pq.read_table(layout.folder("city", "counts"))["OBJECTID"].to_pylist() == list(range(1, 101))


def test_a_listed_part_a_reboot_left_empty_makes_the_pull_start_over(tmp_path, store, caplog):
    """A part renamed into place before its bytes reached the disk (an older civicat, then a
    reboot) comes back empty under its listed name: the resume read it and failed, and so did
    every pull after it. The pull starts over, saying why."""
    with FeatureServerPortal({LAYER: (layer(True), features(range(1, 101)))}) as server:
        layout = RecordsLayout(tmp_path / "records")
        cut_short(server, layout, store, part_rows=20)
        (layout.staging("city", "counts") / "parts" / "part-00001.parquet").write_bytes(b"")
        result = pull_layer(server, layout, store, part_rows=20)
    assert not result.resumed and result.rows == 100
    assert pq.read_table(layout.folder("city", "counts"))["OBJECTID"].to_pylist() == list(range(1, 101))
    assert any("is missing or unreadable" in r.getMessage() and "the pull starts over" in r.getMessage()
               for r in caplog.records)
