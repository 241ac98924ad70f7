"""The Socrata adapter over real HTTP against the local Socrata portal: caps, paging
modes, the views fallback, app tokens, and every recorded Discovery payload."""
import collections
import contextlib
import copy
import json
from datetime import UTC, datetime

import duckdb
import pytest

from harvester.pipeline import harvest
from harvester.portals import socrata
from tests.conftest import (
    assert_a_full_harvest_with_its_lookup_down_keeps_the_columns, assert_a_lookup_refused_for_good_is_asked_again_only_when_due,
    assert_an_edited_dataset_whose_lookup_is_down_keeps_its_columns,
    assert_first_10000_columns_kept, assert_stored_by_an_older_mapping_is_re_mapped_once, fast_client,
    periodicity_as_before, portal_config)
from tests.portals.catalogues import portal_id
from tests.portals.socrata import SocrataPortal, discovery_entry
from tests.portals.synth import make_socrata_entries
from tests.shared_fixtures import load_json, require_fixtures, socrata_catalog_files, spellarbot_domain_files

DOMAIN = "data.example.org"


def count(store, sql="SELECT count(*) FROM datasets"):
    return store.con.execute(sql).fetchone()[0]


def test_small_catalogue_pages_by_offset_within_the_caps(store, http):
    entries = make_socrata_entries(250, domain=DOMAIN)
    others = make_socrata_entries(30, domain="federated.example.org", seed=9)
    with SocrataPortal(entries, domain=DOMAIN, other_domain_entries=others) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN)], store, http)
        catalog_queries = [q for path, q, _ in portal.requests if path == "/api/catalog/v1"]
    assert report.ok and report.portals[0].seen == 250 and report.portals[0].new == 250
    assert count(store) == 250                                   # federated assets kept out
    assert all(q["domains"] == DOMAIN and int(q["limit"]) <= 100 for q in catalog_queries)
    assert not any("scroll_id" in q for q in catalog_queries)
    assert report.portals[0].listing_complete


def test_catalogue_past_the_offset_window_is_paged_whole_by_scroll_id(store, http):
    entries = make_socrata_entries(10_250, domain=DOMAIN, seed=3)
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        report = harvest([portal_config("big", "socrata", portal.url, domain=DOMAIN)], store, http)
        catalog_queries = [q for path, q, _ in portal.requests if path == "/api/catalog/v1"]
    portal_report = report.portals[0]
    assert report.ok, portal_report.error_message
    assert portal_report.seen == portal_report.new == count(store) == 10_250
    assert portal_report.duplicates == 0 and portal_report.errors == 0
    paging = catalog_queries[1:]                                  # after the size probe
    assert all("scroll_id" in q and "offset" not in q for q in paging)   # never mixed
    assert all(int(q["offset"]) + int(q["limit"]) <= 10_000 for q in catalog_queries if "offset" in q)
    # asset types and parent links survive
    types = dict(store.con.execute("SELECT asset_type, count(*) FROM datasets GROUP BY ALL").fetchall())
    assert {"dataset", "filtered_view", "chart", "map", "story", "link", "file"} <= set(types)
    orphans = count(store, """SELECT count(*) FROM datasets c WHERE parent_uid IS NOT NULL
                             AND parent_uid NOT IN (SELECT uid FROM datasets)""")
    assert orphans == 0 and count(store, "SELECT count(*) FROM datasets WHERE parent_uid IS NOT NULL") > 0


@pytest.mark.parametrize("alone_over_the_cap", ["no", "named", "unnamed"])
def test_a_scroll_page_over_the_size_cap_is_read_in_smaller_pages(store, tmp_path, monkeypatch, alone_over_the_cap):
    """scroll_id paging (a catalogue past the offset window; here a window of 100) takes a
    `limit`: a page over the response cap is read in smaller ones, after the same last id.
    An entry over the cap alone is listed by the id its answer starts with, and the listing
    goes on after it; one whose answer does not start with its id (its description first)
    cannot be skipped (the next scroll_id is its id): the portal fails naming the request and
    the cap, its catalogue kept."""
    monkeypatch.setattr(socrata, "OFFSET_WINDOW", 100)
    entries = make_socrata_entries(250, domain=DOMAIN, seed=3)
    ordered = sorted(entries, key=lambda entry: entry["resource"]["id"])   # as scroll_id pages them
    cap = 2 * len(json.dumps(ordered[:100]))
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        config = portal_config("big", "socrata", portal.url, domain=DOMAIN)
        assert harvest([config], store, fast_client(tmp_path)).ok
        big = ordered[130:132] if alone_over_the_cap == "no" else ordered[130:131]
        for entry in big:   # each 0.6 of the cap, so that no page of both fits (or the whole cap: over it alone)
            entry["resource"]["description"] = "A long description. " * (cap // (33 if alone_over_the_cap == "no" else 20))
            if alone_over_the_cap == "unnamed":
                entry["resource"] = {"description": entry["resource"].pop("description"), **entry["resource"]}
        portal.entries = entries
        portal.clear_log()
        report = harvest([config], store, fast_client(tmp_path, max_bytes=cap)).portals[0]
        limits = [int(q["limit"]) for path, q, _ in portal.requests if path == "/api/catalog/v1" and "scroll_id" in q]
    if alone_over_the_cap == "unnamed":
        assert report.status == "failed" and report.error_type == "ResponseTooLarge"
        assert f"cannot ask for the page at domains={DOMAIN}, scroll_id={ordered[129]['resource']['id']}, limit=1 in " \
               "smaller parts nor skip an entry by its position (CIVICAT_HTTP_MAX_BYTES raises the cap)" \
               in report.error_message
    elif alone_over_the_cap == "named":
        assert report.status == "ok" and report.listing_complete and report.seen == 250 and report.changed == 0
        assert count(store, "SELECT max(source_id) FROM harvest_errors WHERE error_type = 'ResponseTooLarge'") == \
            ordered[130]["resource"]["id"]
        assert limits[-2:] == [100, 100]   # paged on after its id, in pages of 100
    else:
        assert report.status == "ok" and report.listing_complete and report.seen == 250 and report.changed == 2
        assert min(limits) < 100 and limits[-2:] == [100, 100]   # back to pages of 100 past the two
    if alone_over_the_cap != "no":
        assert count(store, "SELECT count(*) FROM datasets WHERE description LIKE 'A long%'") == 0   # as it was
    assert count(store) == 250


def test_the_last_entry_of_a_catalogue_as_large_as_the_offset_window_is_listed_over_the_cap_alone(store, tmp_path,
                                                                                                 monkeypatch):
    """A catalogue of exactly OFFSET_WINDOW assets (here 200) is paged by offset; its last entry,
    over the response cap alone, is listed by the id its answer starts with and the portal
    harvested: no request is made past it (offset 200 is past the API's cap of offset+limit,
    and failed the portal)."""
    monkeypatch.setattr(socrata, "OFFSET_WINDOW", 200)
    entries = make_socrata_entries(200, domain=DOMAIN, seed=3)
    cap = 2 * len(json.dumps(entries[:100]))
    entries[-1]["resource"]["description"] = "A very long description. " * (cap // 25)
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        config = portal_config("big", "socrata", portal.url, domain=DOMAIN)
        report = harvest([config], store, fast_client(tmp_path, max_bytes=cap)).portals[0]
        again = harvest([config], store, fast_client(tmp_path, max_bytes=cap)).portals[0]   # along last night's pages
        offsets = [int(q["offset"]) for path, q, _ in portal.requests if path == "/api/catalog/v1" and "offset" in q]
    for night in (report, again):
        assert night.status == "ok" and night.listing_complete and night.seen == 200, night.error_message
    assert again.not_modified > 0 and count(store) == 199 and max(offsets) == 199   # (never stored: never read)
    message = count(store, "SELECT max(message) FROM harvest_errors WHERE error_type = 'ResponseTooLarge'")
    assert "offset=199, limit=1) is over the response cap alone" in message and message.endswith(
        "listed by its id only, never stored (CIVICAT_HTTP_MAX_BYTES raises the cap)")


def test_an_entry_over_the_cap_alone_is_listed_by_the_id_its_answer_starts_with_and_the_listing_complete(
        store, tmp_path):
    """The Discovery API selects no fields, but an answer names its entry's id in its first bytes
    (`{"results":[{"resource":{"name":…,"id":…`): the entry over the cap alone is listed by it,
    its stored version kept, so the listing is complete and a dataset removed from the portal is
    marked missing. The next night asks it alone at once: one answer over the cap."""
    entries = make_socrata_entries(250, domain=DOMAIN, seed=3)
    cap = 2 * len(json.dumps(entries[:100]))
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        assert harvest([config], store, fast_client(tmp_path)).ok
        huge, removed = entries[130]["resource"]["id"], entries.pop(10)["resource"]["id"]
        entries[129]["resource"]["description"] = "A very long description. " * (cap // 25)
        portal.entries = entries
        nights = [harvest([config], store, fast_client(tmp_path, max_bytes=cap)).portals[0] for _ in range(2)]
    for night in nights:
        assert night.status == "ok" and night.listing_complete and night.seen == 249, night.error_message
    assert nights[1].not_modified > 0
    missing = store.con.execute("SELECT source_id FROM datasets WHERE missing_since IS NOT NULL").fetchall()
    assert missing == [(removed,)]
    assert count(store, "SELECT count(*) FROM datasets WHERE description LIKE 'A very long%'") == 0   # as stored
    errors = store.con.execute("SELECT source_id, message FROM harvest_errors WHERE error_type = 'ResponseTooLarge' "
                               "ORDER BY run_id").fetchall()
    assert [source_id for source_id, _ in errors] == [huge, huge]
    assert "(domains=data.example.org, offset=129, limit=1) is over the response cap alone" in errors[0][1]
    assert errors[0][1].endswith("its id read from the start of the answer: listed by its id only, its stored "
                                 "version kept (CIVICAT_HTTP_MAX_BYTES raises the cap)")


def test_views_fallback_and_a_404_that_does_not_fail_the_portal(store, http):
    require_fixtures()
    entries = make_socrata_entries(20, domain=DOMAIN)
    datasets = [e for e in entries if e["resource"]["type"] == "dataset"][:2]
    for entry in datasets:
        for key in ("columns_name", "columns_field_name", "columns_datatype", "columns_description"):
            entry["resource"][key] = []
    views = {datasets[0]["resource"]["id"]: load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")}
    with SocrataPortal(entries, views=views, domain=DOMAIN) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN)], store, http)
        views_hits = [p for p in portal.hits if p.startswith("/api/views/")]
    assert report.ok and report.portals[0].errors == 1 and count(store) == 20
    assert len(views_hits) == 2                                  # only tabular assets without columns
    with_views, missing = (f"city:{d['resource']['id']}" for d in datasets)
    assert count(store, f"SELECT count(*) FROM columns WHERE dataset_uid = '{with_views}'") == 19
    assert count(store, f"SELECT row_count FROM datasets WHERE uid = '{with_views}'") == 1257418
    assert count(store, f"SELECT count(*) FROM columns WHERE dataset_uid = '{missing}'") == 0
    error = store.con.execute("SELECT source_id, stage, error_type, message FROM harvest_errors").fetchone()
    assert error[:3] == (missing.split(":")[1], "fetch", "NotFound") and "404" in error[3]


def test_every_recorded_discovery_page_is_stored(store, http):
    require_fixtures()
    files = socrata_catalog_files()
    assert len(files) >= 11
    expected, configs = 0, []
    with contextlib.ExitStack() as portals:   # (a portal a file, all harvested in one run)
        for number, path in enumerate(files):
            results = json.loads(path.read_text())["results"]
            by_domain = collections.defaultdict(list)
            for entry in results:
                by_domain[entry["metadata"]["domain"]].append(entry)
            portal = portals.enter_context(SocrataPortal(results, domain="unused.example.org"))
            configs += [portal_config(f"f{number}-{i}", "socrata", portal.url, domain=domain)
                        for i, domain in enumerate(sorted(by_domain))]
            expected += len(results)
        report = harvest(configs, store, http)
    assert report.ok, [p.error_message for p in report.portals if p.status != "ok"]
    rejected = count(store, "SELECT count(*) FROM harvest_errors WHERE stage = 'validate'")
    assert rejected == 0
    assert count(store) == expected == 95


def test_the_33_socrata_domains_of_2017(real_catalogue_path):
    """The 33 domains as the session's real catalogue harvested them (tests.portals.catalogues.
    harvest_spellarbot, one local Socrata portal serving every domain, one portal a domain: its run
    asserted ok), beside the 2013 data.json catalogues: harvested once a session, not again here."""
    require_fixtures()
    entries, domains = 0, []
    for path in spellarbot_domain_files():
        entries += len(json.loads(path.read_text()))
        domains.append(path.stem)
    assert len(domains) == 33 and entries == 7187
    con = duckdb.connect(str(real_catalogue_path), read_only=True)
    try:
        def count_of(sql: str) -> int:
            return con.execute(sql, [[portal_id(d) for d in domains]]).fetchone()[0]
        rejected = count_of("SELECT count(*) FROM harvest_errors WHERE severity = 'error' AND list_contains(?, portal_id)")
        assert count_of("SELECT count(*) FROM datasets WHERE list_contains(?, portal_id)") == 7187 - rejected
        assert rejected == 0
        in_domains = "FROM columns JOIN datasets ON uid = dataset_uid WHERE list_contains(?, portal_id)"
        assert count_of(f"SELECT count(*) {in_domains}") == 115_830
        assert count_of(f"SELECT count(DISTINCT dataset_uid) {in_domains}") == 7186
        # views-API datatypes all land in the shared vocabulary; only blobs and the like are 'other'
        assert count_of(f"SELECT count(*) {in_domains} AND type = 'other'") < 0.01 * 115_830
    finally:
        con.close()


def test_bad_discovery_entries_are_reported_and_the_rest_harvested(store, http):
    entries = make_socrata_entries(6, domain=DOMAIN)
    no_title = copy.deepcopy(entries[0])
    no_title["resource"].update(id="nott-itle", name=None)
    wrong = copy.deepcopy(entries[1])
    wrong["resource"].update(id="wron-gtyp", createdAt="not a date", columns_field_name="oops",
                             description="<p>Crime <b>incidents</b> &amp; arrests</p>", parent_fxf=[7])
    wrong["classification"]["domain_tags"] = {"tag": 1}
    no_id = copy.deepcopy(entries[2])
    no_id["resource"]["id"] = None
    no_id["metadata"]["domain"] = DOMAIN
    with SocrataPortal(entries + [no_title, wrong, no_id], domain=DOMAIN) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN)], store, http).portals[0]
    assert report.status == "ok" and count(store) == 7 and report.errors == 2
    messages = {r[0] for r in store.con.execute("SELECT message FROM harvest_errors WHERE severity = 'error'").fetchall()}
    assert messages == {"record has no title", "entry has no source id"}
    row = store.con.execute("SELECT issued, description, parent_uid FROM datasets WHERE source_id = 'wron-gtyp'").fetchone()
    assert row == (None, "Crime incidents & arrests", "city:7")
    assert count(store, "SELECT count(*) FROM columns WHERE dataset_uid = 'city:wron-gtyp'") == 0
    warned = {r[0] for r in store.con.execute("SELECT split_part(message, ':', 1) FROM harvest_errors "
                                              "WHERE source_id = 'wron-gtyp'").fetchall()}
    assert {"issued", "columns"} <= warned


def views_only_table(entries: int, columns: int) -> tuple[list[dict], str, list[dict]]:
    """`entries` Discovery results, the first dataset's without columns (they come from its
    views document), its id, and views-document columns `column_<i>` for it."""
    listed = make_socrata_entries(entries, domain=DOMAIN)
    wide = next(e for e in listed if e["resource"]["type"] == "dataset")
    for key in ("columns_name", "columns_field_name", "columns_datatype", "columns_description"):
        wide["resource"][key] = []
    return listed, wide["resource"]["id"], [
        {"id": i, "name": f"Column {i}", "fieldName": f"column_{i}", "dataTypeName": "number", "position": i + 1,
         "format": {}} for i in range(columns)]


def test_a_views_document_of_more_columns_than_a_pull_takes_keeps_the_first_10000(store, http):
    """A views document listing 25,000 columns (10^6 took 1.46 GB and 16 s to harvest, or failed
    the portal: its raw entry did not fit DuckDB's memory): the catalogue keeps the first 10,000
    (as many as a records pull takes), says so in a warning naming the dataset, and the
    document's other columns are read one at a time and dropped, never all held. Twice, the
    second from the validator cache (a 304)."""
    entries, source_id, columns = views_only_table(5, 25_000)
    views = {source_id: {"id": source_id, "name": "Wide", "columns": columns, "rowsUpdatedAt": 1}}
    with SocrataPortal(entries, views=views, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN, records=(source_id,))
        for run in range(2):
            report = harvest([config], store, http, records=run == 1)
            # (the second run finds the entry unchanged: not mapped again, no warning again); its
            # records pull is refused: it would read the 10,000 columns kept and drop the others unsaid
            assert report.ok and (report.portals[0].errors, report.portals[0].warnings) == (run, 1 - run), run
        assert not any(path.startswith("/resource/") for path in portal.hits)
    assert portal.hits[f"/api/views/{source_id}.json"] == 2
    uid = f"city:{source_id}"
    assert_first_10000_columns_kept(store, source_id, "the views document")
    details = json.loads(store.con.execute("SELECT details FROM raw_records WHERE uid = ?", [uid]).fetchone()[0])
    assert len(details["views"]["columns"]) == 10_000 and details["views"]["rowsUpdatedAt"] == 1


def test_a_discovery_entry_of_more_columns_than_a_pull_takes_keeps_the_first_10000(store, http):
    """A Discovery result whose `columns_*` lists hold 25,000 columns (10^6 took 1.2 GB of RSS
    and all were stored): the page's lists are cut to 10,000 as the page is read, the
    catalogue keeps those with a warning naming the dataset, the other datasets of the page are
    harvested, the raw entry keeps the lists cut, and its records pull is refused."""
    entries = make_socrata_entries(5, domain=DOMAIN)
    wide = next(e for e in entries if e["resource"]["type"] == "dataset")
    wide["resource"].update(columns_name=[f"Column {i}" for i in range(25_000)],
                            columns_field_name=[f"column_{i}" for i in range(25_000)],
                            columns_datatype=["Number"] * 25_000, columns_description=[""] * 25_000)
    source_id = wide["resource"]["id"]
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN, records=(source_id,))
        for run in range(2):
            report = harvest([config], store, http, records=run == 1)
            assert report.ok and (report.portals[0].errors, report.portals[0].warnings) == (run, 1 - run), run
        assert not any(path.startswith(("/resource/", "/api/views/")) for path in portal.hits)
    assert count(store) == 5
    uid = f"city:{source_id}"
    assert_first_10000_columns_kept(store, source_id, "the catalogue entry")
    raw = json.loads(store.con.execute("SELECT raw FROM raw_records WHERE uid = ?", [uid]).fetchone()[0])
    assert {len(raw["resource"][key]) for key in ("columns_name", "columns_field_name", "columns_datatype")} == {10_000}


def test_a_discovery_entry_of_more_tags_than_kept_keeps_the_first_10000(store, http):
    """25,000 tags and 25,000 domain tags on one result: each list is cut to 10,000 as the page
    is read, with a warning naming the dataset and the list."""
    entries = make_socrata_entries(3, domain=DOMAIN)
    entries[1]["classification"].update(tags=[f"tag {i}" for i in range(25_000)],
                                        domain_tags=[f"domain tag {i}" for i in range(25_000)])
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN)], store, http)
    assert report.ok and count(store) == 3 and report.portals[0].warnings == 2
    source_id = entries[1]["resource"]["id"]
    assert count(store, f"SELECT len(keywords) FROM datasets WHERE source_id = '{source_id}'") == 20_000
    assert store.con.execute("SELECT source_id, message FROM harvest_errors ORDER BY message").fetchall() == [
        (source_id, f"{key}: the catalogue entry lists 25,000 of them; the first 10,000 are kept")
        for key in ("domain_tags", "tags")]


def test_a_views_document_that_lists_more_columns_past_the_10000_kept_is_a_change(store, http):
    """The first 10,000 columns stay, the document's count grows from 25,000 to 30,000: the
    dataset has changed (the count left out is part of its version), and the warning says 30,000."""
    entries, source_id, columns = views_only_table(3, 30_000)
    views = {source_id: {"id": source_id, "name": "Wide", "columns": columns[:25_000]}}
    with SocrataPortal(entries, views=views, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        assert harvest([config], store, http).portals[0].warnings == 1
        portal.views[source_id] = {**views[source_id], "columns": columns}
        report = harvest([config], store, http).portals[0]
    assert (report.changed, report.warnings) == (1, 1)
    assert store.con.execute("SELECT message FROM harvest_errors ORDER BY occurred_at DESC LIMIT 1").fetchone()[0] == (
        "columns: the views document lists 30,000 columns; the first 10,000 are kept (as many as a records pull takes)")


def test_tags_cut_on_a_table_of_no_socrata_id_and_no_columns_are_still_said(store, http):
    """A table the catalogue gives no columns for and whose id is no four-by-four (no views
    document is asked for it): the tags cut as its page was read are still warned of (its
    details came back None, the cut's count lost)."""
    entries, _, _ = views_only_table(2, 0)
    odd = next(e for e in entries if e["resource"]["type"] == "dataset" and not e["resource"]["columns_field_name"])
    odd["resource"]["id"] = "odd_id_1"
    odd["classification"]["tags"] = [f"tag {i}" for i in range(25_000)]
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN)], store, http)
    assert report.ok and count(store) == 2
    assert store.con.execute("SELECT source_id, message FROM harvest_errors").fetchall() == [
        ("odd_id_1", "tags: the catalogue entry lists 25,000 of them; the first 10,000 are kept")]



def test_a_discovery_entry_whose_column_lists_differ_in_length_is_kept_with_a_warning(store, http):
    """A portal's Discovery result whose parallel `columns_*` lists are not the same length (one
    name missing, two types too many): its columns are the field names', each given the other
    lists' values in order (none past a list's end), with a warning naming the dataset and the
    lists; it was silent. The rest of the portal is harvested."""
    entries = make_socrata_entries(4, domain=DOMAIN)
    uneven = next(e for e in entries if e["resource"]["type"] == "dataset")["resource"]
    uneven.update(columns_name=["Ward", "Permit"], columns_field_name=["ward", "permit", "issued"],
                  columns_datatype=["Number", "Text", "Calendar date", "Text", "Text"],
                  columns_description=["", "", ""], columns_format=[{}])   # (no column is made of it)
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN)], store, http)
    assert report.ok and count(store) == 4 and report.portals[0].warnings == 1
    assert store.con.execute("SELECT source_id, severity, message FROM harvest_errors").fetchall() == [
        (uneven["id"], "warning", "columns: the catalogue entry's column lists differ in length (columns_field_name 3, "
         "columns_name 2, columns_datatype 5): its 3 columns are given the other lists' values in order, none past "
         "a list's end")]
    assert store.con.execute("SELECT name, field_name, type FROM columns WHERE dataset_uid = ? ORDER BY position",
                             [f"city:{uneven['id']}"]).fetchall() == [
        ("Ward", "ward", "number"), ("Permit", "permit", "text"), (None, "issued", "datetime")]


def views_tables(count: int) -> tuple[dict[str, dict], list[dict]]:
    """`count` tables whose Discovery entries list no columns (they come from /api/views):
    their views documents by id (two columns each), and their entries."""
    views = {f"tabl-{i:04d}": {"id": f"tabl-{i:04d}", "name": f"Table {i}", "columns": [
        {"fieldName": "id", "name": "ID", "dataTypeName": "number"},
        {"fieldName": "kind", "name": "Kind", "dataTypeName": "text"}]} for i in range(count)}
    entries = [discovery_entry(view, DOMAIN) for view in views.values()]
    for entry in entries:
        for key in ("columns_field_name", "columns_name", "columns_datatype", "columns_description"):
            del entry["resource"][key]
    return views, entries


def test_an_edited_table_whose_views_lookup_fails_takes_the_catalogue_and_keeps_its_columns(store, http):
    """Night 2: the catalogue edits a table's title, tags and updatedAt while /api/views
    answers 503: the catalogue's metadata is stored, the columns the views document gave
    last time are kept, and a warning names the document. Night 3, /api/views back: the
    columns are read again. The table not edited stays unchanged throughout."""
    views, entries = views_tables(2)
    with SocrataPortal(entries, views=views, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)

        def edit():
            edited = copy.deepcopy(entries[0])
            edited["resource"].update(name="Table 0, renamed", updatedAt="2024-02-01T00:00:00.000Z")
            edited["classification"]["tags"] = ["new"]
            portal.entries = [edited, entries[1]]
        assert_an_edited_dataset_whose_lookup_is_down_keeps_its_columns(
            store, http, config, portal, "/api/views/", edit,
            {source: f"{portal.url}/api/views/{source}.json" for source in views})

        portal.clear_faults()
        portal.views["tabl-0000"]["columns"].append({"fieldName": "ward", "name": "Ward", "dataTypeName": "text"})
        report = harvest([config], store, http).portals[0]
        assert report.status == "ok" and (report.changed, report.unchanged) == (1, 1)
        assert store.con.execute("SELECT list(field_name ORDER BY position) FROM columns WHERE dataset_uid = ?",
                                 ["city:tabl-0000"]).fetchone()[0] == ["id", "kind", "ward"]
        assert store.con.execute("SELECT title FROM datasets WHERE uid = ?", ["city:tabl-0000"]).fetchone()[0] \
            == "Table 0, renamed"


def test_a_full_harvest_whose_views_lookup_fails_keeps_the_columns(store, http):
    """`harvest --full` re-maps every dataset: a table whose views document cannot be read
    keeps the columns it has, and is not rewritten (nothing else of it changed)."""
    views, entries = views_tables(1)
    with SocrataPortal(entries, views=views, domain=DOMAIN) as portal:
        assert_a_full_harvest_with_its_lookup_down_keeps_the_columns(
            store, http, portal_config("city", "socrata", portal.url, domain=DOMAIN), portal, "/api/views/", stored=2)


def test_a_table_whose_catalogue_columns_were_cut_keeps_no_count_when_its_views_lookup_fails(store, http):
    """A count of columns left out that the catalogue entry's cut gave is not the views
    document's: once the entry lists no columns and the lookup fails, it is not kept."""
    entries, source_id, columns = views_only_table(3, 0)
    wide = next(e for e in entries if e["resource"]["id"] == source_id)
    wide["resource"].update(columns_field_name=[f"column_{i}" for i in range(10_005)],
                            columns_name=[f"Column {i}" for i in range(10_005)])
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        harvest([config], store, http)
        details = "SELECT r.details FROM datasets d JOIN raw_records r USING (uid, raw_hash) WHERE d.uid = ?"
        assert json.loads(store.con.execute(details, [f"city:{source_id}"]).fetchone()[0])["columns_left_out"] == 5
        for key in ("columns_name", "columns_field_name", "columns_datatype", "columns_description"):
            wide["resource"][key] = []
        portal.entries = list(portal.entries)
        portal.inject("/api/views/", ("status", 503), times=1000)
        report = harvest([config], store, http).portals[0]
        assert report.status == "ok" and report.errors == 1 and report.changed == 1
        assert store.con.execute(details, [f"city:{source_id}"]).fetchone()[0] is None


def test_a_views_lookup_that_answers_404_is_not_asked_again_while_its_entry_is_unchanged(store, http):
    """A table the catalogue lists without columns whose /api/views document answers 404:
    reported the night it happens, not asked (nor reported) again every night after."""
    views, entries = views_tables(2)
    missing = views.pop("tabl-0001")
    with SocrataPortal(entries, views=views, domain=DOMAIN) as portal:
        def edit():
            edited = copy.deepcopy(entries[1])
            edited["resource"].update(name="Table 1, renamed", updatedAt="2024-02-01T00:00:00.000Z")
            portal.entries = [entries[0], edited]

        def mend():
            portal.views["tabl-0001"] = missing
        assert_a_lookup_refused_for_good_is_asked_again_only_when_due(
            store, http, portal_config("city", "socrata", portal.url, domain=DOMAIN), portal,
            lambda path, query: path == "/api/views/tabl-0001.json", lambda path, query: path == "/api/views/tabl-0000.json",
            edit, mend)


def test_the_app_token_named_by_the_config_is_sent_on_every_request_and_never_throttled(store, http, monkeypatch):
    """Socrata throttles requests that carry no app token: the token, read from the environment
    variable `app_token_env` names, goes in the X-App-Token header of every request (never in a
    URL), and a portal that throttles tokenless requests throttles none."""
    monkeypatch.setenv("CIVICAT_TEST_SOCRATA_TOKEN", "token-o30")
    entries = make_socrata_entries(250, domain=DOMAIN)
    with SocrataPortal(entries, domain=DOMAIN, app_token="token-o30", throttle_every=1) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN,
                                        app_token_env="CIVICAT_TEST_SOCRATA_TOKEN")], store, http).portals[0]
        asked = list(portal.requests)
    assert report.status == "ok" and count(store) == 250 and portal.throttled == 0
    assert asked and all(headers.get("X-App-Token") == "token-o30" for _, _, headers in asked)
    assert not any("token-o30" in json.dumps(query) for _, query, _ in asked)


def test_without_an_app_token_throttled_requests_are_retried_after_the_wait_asked(store, http, monkeypatch, caplog):
    """The variable `app_token_env` names unset: a warning names it, and the requests Socrata
    throttles (429 with a Retry-After) are asked again after it, the catalogue stored whole."""
    monkeypatch.delenv("CIVICAT_TEST_SOCRATA_TOKEN", raising=False)
    entries = make_socrata_entries(250, domain=DOMAIN)
    with SocrataPortal(entries, domain=DOMAIN, app_token="token-o30", throttle_every=2) as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN,
                                        app_token_env="CIVICAT_TEST_SOCRATA_TOKEN")], store, http).portals[0]
    assert report.status == "ok" and count(store) == 250 and report.listing_complete
    assert portal.throttled >= 1
    assert "CIVICAT_TEST_SOCRATA_TOKEN is not set" in caplog.text


def recorded_entry(source_id: str) -> dict:
    """A real Discovery entry, by its id, from whichever recorded page holds it."""
    for path in socrata_catalog_files():
        for entry in json.loads(path.read_text())["results"]:
            if entry["resource"]["id"] == source_id:
                return entry
    raise KeyError(source_id)


def harvested_by_domain(store, http, ids: list[str]) -> dict[str, dict]:
    """The real entries `ids`, each harvested as its own domain's portal: their stored rows by id."""
    entries = [recorded_entry(source_id) for source_id in ids]
    domains = sorted({e["metadata"]["domain"] for e in entries})
    with SocrataPortal(entries, domain="unused.example.org") as portal:
        configs = [portal_config(f"d{number}", "socrata", portal.url, domain=domain)
                   for number, domain in enumerate(domains)]
        assert harvest(configs, store, http).ok
    cursor = store.con.execute("SELECT * FROM datasets")
    names = [d[0] for d in cursor.description]
    return {row["source_id"]: row for row in (dict(zip(names, values)) for values in cursor.fetchall())}


def test_update_frequencies_worded_as_real_portals_word_them(store, http):
    """Words the phrase reading missed (session 31's field-by-field check): a full stop after the word,
    a two-word phrase across the pairs the words were read in, a hyphenated word, "every N <unit>"."""
    require_fixtures()
    stored = harvested_by_domain(store, http, ["ijzp-q8t2", "s6ha-ppgi", "6qat-uaei", "9fxf-t2tr", "q5as-kyim"])
    assert stored["ijzp-q8t2"]["accrual_periodicity"] == "R/P1D"        # "Data are updated daily."
    assert stored["s6ha-ppgi"]["accrual_periodicity"] == "irregular"    # "Data are updated as needed"
    assert stored["6qat-uaei"]["accrual_periodicity"] == "R/P6M"        # "Semi-annually"
    assert stored["9fxf-t2tr"]["accrual_periodicity"] == "R/PT2M"       # "Every 2 Minutes"
    assert stored["q5as-kyim"]["accrual_periodicity"] == "unknown"      # "Not updated (historical data)"
    warned = [r[0] for r in store.con.execute(
        "SELECT source_id FROM harvest_errors WHERE message LIKE 'accrual_periodicity:%'").fetchall()]
    assert warned == []                                                 # each one read, none guessed


def test_contact_coverage_and_period_from_the_domains_common_core_metadata(store, http):
    """Socrata's DCAT-US ("Common Core") domain metadata names the contact, the geographic coverage
    and the period; a field that is no coverage ("contains geospatial information: No", a unit) is none."""
    require_fixtures()
    stored = harvested_by_domain(store, http, ["9bhg-hcku", "kwxv-fwze", "btc8-9kef", "6qat-uaei"])
    cdc = stored["9bhg-hcku"]
    assert (cdc["contact_name"], cdc["contact_email"]) == ("National Center for Health Statistics", "cdcinfo@cdc.gov")
    assert cdc["spatial"] == "United States, Puerto Rico"                      # Common-Core_Geographic-Coverage
    assert (cdc["temporal_start"].isoformat(), cdc["temporal_end"].isoformat()) == (
        "2020-01-01T00:00:00+00:00", "2023-07-29T00:00:00+00:00")               # Common-Core_Temporal-Applicability
    assert stored["kwxv-fwze"]["contact_name"] == "Open Data NY"
    assert stored["btc8-9kef"]["spatial"] is None      # Geospatial-Information_Dataset-contains-geospatial-information: No
    assert stored["6qat-uaei"]["spatial"] is None      # Additional-Information_Geographic-Unit: Latitude/Longitude


def test_a_views_document_counting_its_rows_in_text_gives_the_row_count(store, http):
    """Today's views documents give cachedContents' counts as text ("59"), 2015's as numbers."""
    require_fixtures()
    view = load_json("socrata-views/chicago-zidz-sdfj-landmark-districts.json")
    assert view["columns"][0]["cachedContents"]["non_null"] == "59"
    entry = discovery_entry(view, DOMAIN)
    for key in ("columns_name", "columns_field_name", "columns_datatype", "columns_description"):
        entry["resource"][key] = []   # the catalogue gave none: the views document is asked
    with SocrataPortal([entry], views={"zidz-sdfj": view}, domain=DOMAIN) as portal:
        assert harvest([portal_config("city", "socrata", portal.url, domain=DOMAIN)], store, http).ok
    assert count(store, "SELECT row_count FROM datasets WHERE uid = 'city:zidz-sdfj'") == 59
    assert count(store, "SELECT count(*) FROM columns WHERE dataset_uid = 'city:zidz-sdfj'") == 2


def test_a_link_in_a_description_keeps_its_address_after_its_text(store, http):
    """Socrata descriptions are HTML: "available <a href=…>here</a>" kept "available here", the
    manual it named lost (CKAN's Markdown links keep theirs as "text (url)"). Each link's address
    follows its text, its spaces encoded; a link whose text is its address is written once."""
    require_fixtures()
    stored = harvested_by_domain(store, http, ["85ca-t3if", "btc8-9kef", "ic3t-wcy2"])
    manual = ("https://idot.illinois.gov/Assets/uploads/files/Transportation-System/Manuals-Guides-&-Handbooks/Safety/"
              "Illinois%20Traffic%20Crash%20Report%20SR%201050%20Instruction%20Manual%202019.pdf")
    assert f"instructions manual with detailed information on each data elements is available here ({manual}).\n" \
        in stored["85ca-t3if"]["description"]
    calgary = stored["btc8-9kef"]["description"]
    assert "To see the most recent reports, visit Calgary.ca/citizensatisfaction.\n" in calgary   # its own address
    metadata = ("https://data.calgary.ca/api/views/btc8-9kef/files/8edca0d5-637f-4333-aaf1-f00a61a1fc11?download=true"
                "&filename=Variable-metadata%202018-2021.xlsx")
    assert f"see the variable metadata ({metadata})." in calgary
    assert f"The variable metadata ({metadata}) contains detailed information" in calgary
    assert "See the DOB NOW: Build – Job Application Filings (https://data.cityofnewyork.us/d/w9ak-ipjd) dataset" \
        in stored["ic3t-wcy2"]["description"]


def test_counted_frequencies_and_common_core_issued_re_map_a_catalogue_stored_by_mapping_4(store, http):
    """Recorded entries whose frequency is counted in a period (Chicago's "Data are updated multiple
    times per hour": null with a warning; New York's "Twice weekly": weekly), and one whose domain's
    Common Core Issued names another day than its creation (the recorded one's, moved a year back):
    Socrata mapping 5 re-maps a catalogue stored by 4 the first night after. (3 of the 95 recorded
    Discovery entries change; none of the 7,187 reshaped ones.)"""
    require_fixtures()
    entries = [copy.deepcopy(recorded_entry(source_id)) for source_id in ("ygr5-vcbg", "5k2z-suxx", "5xaw-6ayf",
                                                                          "9bhg-hcku", "xzkq-xp2w")]
    for entry in entries:
        entry["metadata"]["domain"] = DOMAIN
    issued = next(m for m in entries[3]["classification"]["domain_metadata"] if m["key"] == "Common-Core_Issued")
    issued["value"] = "2019-05-01"

    def as_mapping_4(patch):
        patch.setattr(socrata.R, "periodicity", periodicity_as_before({
            "Data are updated multiple times per hour": None, "Twice weekly": "R/P1W"}))
        patch.setattr(socrata, "_issued", lambda created, common_core, notes: socrata.R.timestamp(created, notes))

    expected = {"ygr5-vcbg": ("R/PT30M", datetime(2011, 9, 30, 8, 0, 5, tzinfo=UTC)),
                "5k2z-suxx": ("R/PT30M", datetime(2011, 9, 30, 8, 0, 22, tzinfo=UTC)),
                "5xaw-6ayf": ("R/P3D", datetime(2013, 3, 5, 14, 9, 25, tzinfo=UTC)),
                "9bhg-hcku": ("irregular", datetime(2019, 5, 1, tzinfo=UTC))}   # (xzkq-xp2w: as it was)
    with SocrataPortal(entries, domain=DOMAIN) as portal:
        assert_stored_by_an_older_mapping_is_re_mapped_once(
            store, http, portal_config("city", "socrata", portal.url, domain=DOMAIN), socrata.SocrataAdapter, 4,
            as_mapping_4, ("accrual_periodicity", "issued"), expected)


@pytest.mark.parametrize("url, domain", [
    ("https://data.city.example:443", "data.city.example"),
    ("http://data.city.example:80/socrata", "data.city.example"),
    ("https://data.city.example:8443", "data.city.example:8443"),
    ("https://data.city.example", "data.city.example"),
    ("http://127.0.0.1:8080", "127.0.0.1:8080"),
])
def test_the_domain_asked_by_default_is_the_url_s_host_with_a_port_only_not_its_scheme_s_own(url, domain):
    """A portal url written with its scheme's own port (`https://…:443`) asked the Discovery API
    for `domains=data.city.example:443`, a domain Socrata hosts none of; a port of its own (a local
    server, a proxy) is part of the domain the catalogue is asked for."""
    assert socrata.SocrataAdapter(portal_config("c", "socrata", url), None).domain == domain
