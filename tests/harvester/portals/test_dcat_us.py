"""The DCAT-US adapter over real HTTP: every recorded data.json document, the Hub feed
path, and documents that are not data.json."""
import json
import os
from datetime import UTC, datetime

import pytest

from harvester.pipeline import harvest
from harvester.portals import dcat_us
from tests.conftest import (assert_stored_by_an_older_mapping_is_re_mapped_once, fast_client, periodicity_as_before,
                            portal_config)
from tests.portals.base import RawBody, files_served_apart
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.synth import make_data_json
from tests.shared_fixtures import dcat_us_files, load_json, require_fixtures


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
    # Philadelphia's modified "R/P1D" (updated daily, DCAT-US 1.1's repeating interval): null with a
    # warning naming it, never a rejection
    assert count(store, "SELECT count(*) FROM harvest_errors WHERE severity = 'warning' "
                        "AND message LIKE 'modified: a repeating interval ''R/P1D''%'") == 11


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


@pytest.fixture
def streamed_from_1_mb(monkeypatch):
    """Documents of 1 MB and more read a value at a time (in place of 16 MB): test bodies stay small."""
    monkeypatch.setattr("harvester.http.json_parsing.STREAMED_JSON_BYTES", 1 << 20)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("streamed", [False, True])
def test_a_dataset_of_more_distributions_and_keywords_than_kept_keeps_the_first_10000(store, http, legacy, streamed,
                                                                                      monkeypatch):
    """One dataset with 25,000 distributions and 25,000 keywords (10^6 distributions failed the
    portal: its raw entry did not fit DuckDB's memory): each list is cut to 10,000 as the
    document is read, in a catalog object or a bare array, parsed whole or its datasets one at
    a time (this one wider than the window of text read at a time), with a warning naming the
    dataset for each; the other datasets are stored."""
    if streamed:
        monkeypatch.setattr("harvester.http.json_parsing.STREAMED_JSON_BYTES", 1 << 20)
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


def test_a_large_data_json_is_listed_a_thousand_datasets_at_a_time(http, streamed_from_1_mb):
    """A large data.json (20,000 datasets, 33 MB) over HTTP: its parsed tree was held whole until
    its last dataset was stored (a 192 MB data.json of 100,000 datasets peaked at 1,167 MiB of
    RSS). Its datasets are now handed out a thousand at a time, each parsed again from the body
    as it is listed: no more is held than the body and one batch."""
    import tracemalloc
    from harvester.portals import adapter_for
    document = make_data_json(20_000)
    body = json.dumps(document).encode()
    document["dataset"][15_000]["identifier"] = document["dataset"][10]["identifier"]   # (listed twice)
    body = json.dumps(document).encode()
    with DataJsonPortal(RawBody(body, "application/json")) as portal:
        listing = adapter_for(portal_config("city", "dcat-us", portal.url + "/data.json"), http).listing()
        sizes, identifiers = [], []
        tracemalloc.start()
        try:
            for page in listing.read():
                sizes.append(len(page.items))
                identifiers += [entry["identifier"] for entry in page.items]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert sizes == [1000] * 15 + [999] + [1000] * 4 and listing.complete and listing.unique == 19_999
    assert identifiers == [entry["identifier"] for number, entry in enumerate(document["dataset"]) if number != 15_000]
    assert listing.duplicates == [document["dataset"][15_000]["identifier"].split("id=")[1].replace("&sublayer=", "_")]
    assert peak < 2 * len(body), f"{peak / len(body):.1f} times the body's size"


@pytest.mark.parametrize("fault", ["cut short", "not JSON midway"])
def test_a_large_data_json_broken_after_1000_of_5000_datasets_fails_and_keeps_the_catalogue(store, http, fault,
                                                                                           streamed_from_1_mb):
    """A data.json whose body ends (or stops being JSON) after 1,000 of its 5,000 datasets: read
    a batch at a time, the 1,000 must never be stored as the catalogue with the 4,000 others
    marked deleted. The body is checked whole before any dataset is listed: the portal fails
    (its request retried first), its stored catalogue as it was; the next good answer stores
    the lot again, as unchanged."""
    document = make_data_json(5000)
    body = json.dumps(document).encode()
    after_1000 = body.index(json.dumps(document["dataset"][1000]).encode())
    broken = body[:after_1000] if fault == "cut short" else body[:after_1000] + b"<oops>, " + body[after_1000:]
    assert len(broken) > 1 << 20   # (read a value at a time)
    config = None
    with DataJsonPortal(RawBody(body, "application/json")) as portal:
        config = portal_config("city", "dcat-us", portal.url + "/data.json")
        assert harvest([config], store, http).ok and count(store) == 5000
        portal.document = RawBody(broken, "application/json")
        report = harvest([config], store, http).portals[0]
        assert report.status == "failed" and report.error_type == "InvalidBody"
        assert ("ends inside a value" if fault == "cut short" else "the body is not JSON") in report.error_message
        assert portal.hits["/data.json"] == 1 + http.max_attempts   # (retried, as any broken body)
        assert count(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NULL AND missing_since IS NULL") == 5000
        portal.document = RawBody(body, "application/json")
        report = harvest([config], store, http).portals[0]
    assert report.status == "ok" and report.listing_complete and (report.unchanged, report.removed) == (5000, 0)
    assert count(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NULL AND missing_since IS NULL") == 5000


def test_a_large_data_json_answered_304_is_read_again_from_the_cache(store, http, streamed_from_1_mb):
    """The validator cache gives back a large data.json's body on a 304: its datasets are read
    from it a batch at a time, as from a 200 (here, with a lone surrogate to make UTF-8-safe).
    (A document the catalogue holds as it is is not read at all: this one holds a dataset
    without a title, rejected, and reported again each night it is there.)"""
    document = make_data_json(3001)
    document["dataset"][2500]["title"] = "Lone \ud83d surrogate"
    document["dataset"][3000]["title"] = None
    body = json.dumps(document).encode().replace(b"Lone \\\\ud83d", b"Lone \\ud83d")
    assert b"Lone \\ud83d surrogate" in body and len(body) > 1 << 20
    with DataJsonPortal(RawBody(body, "application/json")) as portal:
        config = portal_config("city", "dcat-us", portal.url + "/data.json")
        first = harvest([config], store, http).portals[0]
        second = harvest([config], store, http).portals[0]
    assert (first.status, first.new, first.errors) == ("ok", 3000, 1)
    assert (second.status, second.not_modified, second.unchanged, second.new, second.errors) == ("ok", 1, 3000, 0, 1)
    assert count(store, "SELECT count(*) FROM datasets WHERE title = 'Lone \ufffd surrogate'") == 1


@pytest.mark.parametrize("answer", [200, 304])
def test_a_large_data_json_is_read_from_a_temporary_file_not_held(tmp_path, streamed_from_1_mb, answer):
    """A large data.json's body was held in memory while it was listed, up to the 256 MiB response
    cap (a 192 MB data.json: 183 MiB of its harvest's 550 MiB peak). It is now written to a
    temporary file as it arrives and its datasets read from there: what the listing allocates
    stays well under the body's size, which it held at 1.5 times before. Answered 304 (a portal's
    unchanged night, the common case), the body came from the validator cache read whole and
    decompressed whole, the stored gzip beside it: 2.6 times the body's size. It is now decoded
    from the cache file a piece at a time into a temporary file, and read from there as a 200's.
    (tracemalloc counts allocations, not pages, so a busy machine does not move it; the body is
    served by a process of its own, so that only the client's allocations are counted.)"""
    import tracemalloc
    from harvester.portals import adapter_for
    body = json.dumps(make_data_json(20_000)).encode()   # (33 MB)
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "data.json").write_bytes(body)
    with files_served_apart(tmp_path / "served") as url:
        config = portal_config("city", "dcat-us", url + "/data.json")
        client = fast_client(tmp_path)
        if answer == 304:
            assert sum(len(page.items) for page in adapter_for(config, client).listing().read()) == 20_000
            client.cache.flush()
            client = fast_client(tmp_path)   # (the next night's: nothing held from the night before)
        listing = adapter_for(config, client).listing()
        tracemalloc.start()
        try:
            listed = sum(len(page.items) for page in listing.read())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert listed == 20_000 and listing.complete and client.stats.not_modified == (answer == 304)
    assert peak < 0.8 * len(body), f"{peak / len(body):.2f} times the body's size"   # (0.5 either way)


def _open_spooled_bodies(folder) -> list[str]:
    """The files this process holds open in `folder` (a spooled body's has no name: '#<inode> (deleted)')."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:   # (the listing's own descriptor, closed since)
            pass
    return [link for link in links if link.startswith(f"{folder}/")]


@pytest.fixture
def spool_folder(tmp_path, monkeypatch):
    """Temporary files made in a folder of the test's own, so that its test can see them."""
    import tempfile
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="open files are read from /proc")
def test_a_large_data_json_s_temporary_file_is_gone_after_success_a_body_cut_short_and_a_listing_stopped(
        store, http, spool_folder, streamed_from_1_mb):
    """The temporary file a large body is written to lives while its datasets are listed and no
    longer: after a harvest, after one answered 304 (decoded from the cache), after a body cut
    short (its portal failed), and after a listing stopped midway by an exception. It never has
    a name in the folder."""
    from harvester.portals import adapter_for
    document = make_data_json(3001)
    document["dataset"][3000]["title"] = None   # (rejected: the document is read again each night, 304 or not)
    body = json.dumps(document).encode()
    assert len(body) > 1 << 20
    with DataJsonPortal(RawBody(body, "application/json")) as portal:
        config = portal_config("city", "dcat-us", portal.url + "/data.json")

        def list_until_a_dataset_fails():   # (as the pipeline lists: the pages gone with the loop)
            for number, _ in enumerate(adapter_for(config, http).listing().read()):
                assert len(_open_spooled_bodies(spool_folder)) == 1   # (read from it while listed)
                if number == 1:
                    raise RuntimeError("a dataset that fails the listing")

        with pytest.raises(RuntimeError):
            list_until_a_dataset_fails()
        assert _open_spooled_bodies(spool_folder) == []
        assert harvest([config], store, http).ok and count(store) == 3000
        assert _open_spooled_bodies(spool_folder) == []
        http.cache.flush()
        unchanged = harvest([config], store, http).portals[0]   # (a 304: decoded from the cache into a file)
        assert (unchanged.status, unchanged.not_modified, unchanged.unchanged) == ("ok", 1, 3000)
        assert _open_spooled_bodies(spool_folder) == []
        portal.document = RawBody(body[: len(body) // 2], "application/json")
        report = harvest([config], store, http).portals[0]
        assert report.status == "failed" and "ends inside a value" in report.error_message
    assert _open_spooled_bodies(spool_folder) == [] and list(spool_folder.iterdir()) == []



TABLES = ("datasets", "distributions", "columns", "raw_records", "listing_pages")


def stored_tables(store) -> dict:
    return {table: store.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in TABLES}


@pytest.mark.parametrize("validators", ["none", "changing"])
@pytest.mark.parametrize("size", [300, 1500], ids=["parsed whole", "streamed"])
def test_an_unchanged_data_json_is_neither_parsed_nor_mapped_whatever_its_validators(
        store, http, monkeypatch, streamed_from_1_mb, validators, size):
    """A data.json served without validators (or with a new ETag for the same bytes, as servers
    behind a balancer do) came whole every night, and each of its datasets was listed, checked
    and hashed again (50,000 of them: 3.8 s of CPU, docs/benchmarks.md). Its body's digest, taken
    as it arrives, now tells the document the catalogue holds: nothing is parsed, mapped nor
    written, every dataset unchanged. A document one byte different is read, and its changed
    dataset alone mapped; `--full` maps them all."""
    from harvester import mapping
    monkeypatch.setenv("CIVICAT_MAP_WORKERS", "0")   # (every batch mapped here, where it is counted)
    listed, mapped = [], []
    add, map_entry = mapping.Mapper.add, mapping.map_entry
    monkeypatch.setattr(mapping.Mapper, "add", lambda self, *args: listed.append(1) or add(self, *args))
    monkeypatch.setattr(mapping, "map_entry", lambda *args: mapped.append(1) or map_entry(*args))
    document = make_data_json(size)
    body = json.dumps(document).encode()
    assert (len(body) > 1 << 20) == (size == 1500)   # (streamed: read a value at a time from a temporary file)
    with DataJsonPortal(RawBody(body, "application/json")) as portal:
        portal.validators = validators
        config = portal_config("city", "dcat-us", portal.url + "/data.json")
        first = harvest([config], store, http).portals[0]
        assert (first.status, first.new, len(listed), len(mapped)) == ("ok", size, size, size)
        before = stored_tables(store)
        listed.clear(), mapped.clear()

        second = harvest([config], store, http).portals[0]
        assert (second.status, second.new, second.changed, second.unchanged, second.removed) == ("ok", 0, 0, size, 0)
        assert (second.requests, second.not_modified, second.seen) == (1, 0, size)   # the whole body came
        assert (listed, mapped) == ([], [])                  # and not one dataset was read from it
        assert stored_tables(store) == before

        edited = body.replace(document["dataset"][size // 2]["title"].encode(),
                              document["dataset"][size // 2]["title"][:-1].encode() + b"!", 1)
        assert len(edited) == len(body) and edited != body
        portal.document = RawBody(edited, "application/json")
        third = harvest([config], store, http).portals[0]
        assert (third.status, third.changed, third.unchanged, len(listed), len(mapped)) == ("ok", 1, size - 1, size, 1)
        assert store.con.execute("SELECT count(*) FROM datasets WHERE title LIKE '%!'").fetchone()[0] == 1
        listed.clear(), mapped.clear()

        full = harvest([config], store, http, full=True).portals[0]
        assert (full.status, full.changed, full.unchanged, len(listed), len(mapped)) == ("ok", 0, size, size, size)


def test_the_2013_legacy_feed_and_created_fields_are_read(store, http):
    """Socrata's 2013 data.json documents (pre-1.1) give each dataset's rows as an RSS feed (`feed`,
    `…/rows.rss`) and its creation day (`created`) beside `releaseDate`: the feed was dropped (no
    distribution had it), and an entry without a releaseDate was stored without an issued date."""
    require_fixtures()
    document = load_json("dcat-us/socrata-pod-2013-08-28/data.seattle.gov.json")
    feeds = {entry["identifier"]: entry["feed"] for entry in document if entry.get("feed")}
    assert len(feeds) == 147 and all(feed.endswith("/rows.rss") for feed in feeds.values())
    crime = next(entry for entry in document if entry["identifier"] == "e3zj-s4zh")
    assert (crime["created"], crime["releaseDate"]) == ("2009-11-23", "2009-11-23")
    del crime["releaseDate"]
    with DataJsonPortal(document) as portal:
        assert harvest([portal_config("sea", "dcat-us", f"{portal.url}/data.json")], store, http).ok
    rss = dict(store.con.execute("""SELECT d.source_id, x.download_url FROM datasets d JOIN distributions x
                                    ON x.dataset_uid = d.uid WHERE x.format = 'RSS'
                                    AND x.media_type = 'application/rss+xml'""").fetchall())
    assert rss == feeds
    issued = store.con.execute("SELECT issued FROM datasets WHERE source_id = 'e3zj-s4zh'").fetchone()[0]
    assert issued.isoformat() == "2009-11-23T00:00:00+00:00"


# what DCAT-US mapping 3 stored of each (session 34's French and Italian words and session 35's phrases
# it did not read: null; "twice weekly" as weekly)
READ_SINCE_MAPPING_3 = {"Plusieurs fois par jour": ("R/PT12H", None), "Giornaliera": ("R/P1D", None),
                        "Twice weekly": ("R/P3D", "R/P1W"), "Data are updated multiple times per hour": ("R/PT30M", None)}


def test_newer_frequencies_and_dotted_dates_re_map_a_catalogue_stored_by_mapping_3(store, http):
    """The update frequencies read since session 34 ("Plusieurs fois par jour", "Giornaliera"; session
    35's "twice weekly", "multiple times per hour") and a `modified` written day first ("22.09.2004",
    null with a warning) were read by DCAT-US datasets only when they changed (none of the 3,879
    recorded data.json entries says one: a portal that does has them read at once): DCAT-US mapping 4
    re-maps a catalogue stored by 3 the first night after. Five of Philadelphia's recorded datasets
    given them."""
    require_fixtures()
    datasets = load_json("dcat-us/philadelphia-opendataphilly-data.json")["dataset"][:5]
    for dataset, said in zip(datasets, READ_SINCE_MAPPING_3):
        dataset["accrualPeriodicity"] = said
    datasets[4]["modified"] = "22.09.2004"

    def as_mapping_3(patch):
        patch.setattr(dcat_us.R, "periodicity", periodicity_as_before({said: then for said, (_, then)
                                                                       in READ_SINCE_MAPPING_3.items()}))
        patch.setattr(dcat_us.R, "_day_first", lambda value: None)

    expected = {dataset["identifier"]: (now, None) for dataset, (now, _) in zip(datasets, READ_SINCE_MAPPING_3.values())}
    expected[datasets[4]["identifier"]] = (None, datetime(2004, 9, 22, tzinfo=UTC))
    document = {"conformsTo": "https://project-open-data.cio.gov/v1.1/schema", "dataset": datasets}
    with DataJsonPortal(document) as portal:
        assert_stored_by_an_older_mapping_is_re_mapped_once(
            store, http, portal_config("phl", "dcat-us", f"{portal.url}/data.json"), dcat_us.DcatUsAdapter, 3,
            as_mapping_3, ("accrual_periodicity", "modified"), expected)


def test_a_catalogue_stored_by_mapping_4_takes_its_frequency_from_a_repeating_modified(store, http):
    """Philadelphia's recorded data.json, all 402 datasets: the 11 whose `modified` is "R/P1D" (DCAT-US
    1.1's "updated continually, daily") and no accrualPeriodicity were stored with a null frequency
    (and `modified` null, a warning calling it no date): DCAT-US mapping 5 re-maps the catalogue the
    first night after, those 11 given R/P1D, `modified` still null, every other dataset as it was
    (11 of the 3,879 recorded data.json entries change). Each night it is mapped, each of the 11 has
    a warning naming the field and its value."""
    require_fixtures()
    document = load_json("dcat-us/philadelphia-opendataphilly-data.json")
    continual = [d["identifier"] for d in document["dataset"] if d.get("modified") == "R/P1D"]
    assert len(continual) == 11

    def as_mapping_4(patch):
        patch.setattr(dcat_us.R, "repeating_duration", lambda value: None)

    with DataJsonPortal(document) as portal:
        assert_stored_by_an_older_mapping_is_re_mapped_once(
            store, http, portal_config("phl", "dcat-us", f"{portal.url}/data.json"), dcat_us.DcatUsAdapter, 4,
            as_mapping_4, ("accrual_periodicity", "modified"), {identifier: ("R/P1D", None) for identifier in continual})
    message = ("modified: a repeating interval 'R/P1D' (updated continually), not a date: stored as null, and "
               "read as the update frequency (the entry gives none)")
    warned = store.con.execute("""SELECT source_id, count(*) FROM harvest_errors WHERE severity = 'warning'
                                  AND message = ? GROUP BY source_id""", [message]).fetchall()
    assert dict(warned) == dict.fromkeys(continual, 1)   # the upgrade's night (the first's: "not a date/time")


def test_a_modified_more_than_a_day_after_the_harvest_began_is_kept_with_a_warning(store, http, monkeypatch):
    """A `modified` past the harvest's own clock by more than a day (a typo's year, a change planned)
    is stored as the portal gives it, never dropped, with a warning naming it; one within a day (a
    portal's clock, or its zone's day, ahead of the harvest's) has none. The night after, the
    entries unchanged, nothing is mapped again, and the two still ahead are said again (since session
    37: session 36's warning came from the mapping, the night an entry was mapped only)."""
    from harvester import pipeline
    document = make_data_json(4)
    said = ["2026-12-07T01:59:59Z", "2026-12-07T02:00:01Z", "2062-12-01", "2026-12-07T02:00:00+05:00"]
    for dataset, modified in zip(document["dataset"], said):
        dataset["modified"] = modified
    monkeypatch.setattr(pipeline, "run_began", lambda: datetime(2026, 12, 6, 2, 0, tzinfo=UTC))
    with DataJsonPortal(document) as portal:
        config = portal_config("c", "dcat-us", f"{portal.url}/data.json")
        first = harvest([config], store, http)
        assert first.portals[0].new == 4
        again = harvest([config], store, http)
    assert (again.portals[0].changed, again.portals[0].unchanged, again.portals[0].warnings) == (0, 4, 2)
    stored = [row[0].isoformat() for row in store.con.execute(
        "SELECT modified FROM datasets ORDER BY modified").fetchall()]
    assert stored == ["2026-12-06T21:00:00+00:00", "2026-12-07T01:59:59+00:00", "2026-12-07T02:00:01+00:00",
                      "2062-12-01T00:00:00+00:00"]
    warnings = store.con.execute("""SELECT run_id, stage, error_type, message FROM harvest_errors
                                    WHERE severity = 'warning' ORDER BY run_id, message""").fetchall()
    assert warnings == [(run.run_id, "store", "FutureModified", message) for run in sorted((first, again),
                                                                                           key=lambda r: r.run_id)
                        for message in (
        "modified: 2026-12-07T02:00:01Z is 1 day after this harvest began (a change planned, or a typo); stored as "
        "the portal gives it",
        "modified: 2062-12-01T00:00:00Z is 13143 days after this harvest began (a change planned, or a typo); "
        "stored as the portal gives it")]
