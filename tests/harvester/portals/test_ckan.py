"""The CKAN adapter over real HTTP against the local CKAN portal."""
import copy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from harvester.pipeline import harvest
from harvester.portals import ckan
from tests.conftest import (
    assert_a_full_harvest_with_its_lookup_down_keeps_the_columns, assert_a_lookup_refused_for_good_is_asked_again_only_when_due,
    assert_an_edited_dataset_whose_lookup_is_down_keeps_its_columns,
    assert_a_refused_lookup_down_for_a_night_changes_nothing, assert_the_first_night_after_the_upgrade_changes_nothing,
    assert_first_10000_columns_kept, assert_stored_by_an_older_mapping_is_re_mapped_once, fast_client,
    harvested_with_a_cap, periodicity_as_before, portal_config)
from tests.portals.ckan import CkanPortal
from tests.shared_fixtures import FIXTURES, load_json, require_fixtures


def count(store, sql="SELECT count(*) FROM datasets"):
    return store.con.execute(sql).fetchone()[0]


def packages(n, template=None):
    """n packages shaped like the real Birmingham one, with their own ids and dates."""
    template = template or {"title": "Purchase card transactions", "name": "purchase-card", "resources": [],
                            "tags": [], "groups": [], "metadata_modified": "2021-01-15T10:25:28"}
    out = []
    for i in range(n):
        package = copy.deepcopy(template)
        package.update(id=str(uuid.UUID(int=i * 7919 + 1)), name=f"{template['name']}-{i}",
                       title=f"{template['title']} {i}", metadata_modified=f"2021-01-{1 + i % 28:02d}T10:00:{i % 60:02d}")
        out.append(package)
    return out


def test_paging_in_a_stable_order_under_a_path_prefix(store, http):
    with CkanPortal(packages(2_345), prefix="/ckan") as portal:
        report = harvest([portal_config("boston", "ckan", portal.url)], store, http)
        queries = [q for path, q, _ in portal.requests if path == "/api/3/action/package_search"]
    assert report.ok, report.portals[0].error_message
    assert count(store) == 2_345 and report.portals[0].listing_complete
    assert [q["start"] for q in queries] == ["0", "1000", "2000"]
    assert all(q["rows"] == "1000" and q["sort"] == "id asc" for q in queries)


def test_a_dataset_modified_during_the_crawl_is_neither_missed_nor_doubled(store, http):
    catalogue = packages(2_500)
    with CkanPortal(catalogue) as portal:
        def touch(path, query):
            if path.endswith("package_search") and query.get("start") == "1000":
                catalogue[-1]["metadata_modified"] = "2030-01-01T00:00:00"   # edited mid-crawl
                portal.packages = catalogue
        portal.on_request = touch
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
    assert report.seen == 2_500 and report.duplicates == 0 and count(store) == 2_500


def test_datastore_columns_and_a_missing_table(store, http):
    with_table, without = packages(2)
    with_table["resources"] = [{"id": "res-1", "datastore_active": True, "format": "CSV", "url": "https://x.org/a.csv"}]
    without["resources"] = [{"id": "res-404", "datastore_active": True, "format": "CSV", "url": "https://x.org/b.csv"}]
    fields = [{"id": "_id", "type": "int"}, {"id": "case_id", "type": "text"}, {"id": "opened", "type": "timestamp"}]
    with CkanPortal([with_table, without], datastore={"res-1": fields}) as portal:
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
        limits = {q.get("limit") for path, q, _ in portal.requests if path.endswith("datastore_search")}
    assert report.status == "ok" and report.errors == 1 and count(store) == 2 and limits == {"0"}
    assert store.con.execute("SELECT field_name, type FROM columns ORDER BY position").fetchall() == [
        ("case_id", "text"), ("opened", "datetime")]
    message = store.con.execute("SELECT stage, message FROM harvest_errors").fetchone()
    assert message[0] == "fetch" and "404" in message[1]


def test_success_false_fails_the_portal_with_ckans_message(store):
    with CkanPortal(packages(3)) as portal:
        portal.serve_json("/api/3/action/package_search",
                          {"success": False, "error": {"__type": "Authorization Error", "message": "Access denied"}})
        report = harvest([portal_config("c", "ckan", portal.url)], store, fast_client()).portals[0]
    assert report.status == "failed" and "Authorization Error" in report.error_message
    assert "Access denied" in report.error_message and count(store) == 0


def test_rows_over_the_cap_is_refused_by_the_local_portal():
    import requests
    with CkanPortal(packages(3)) as portal:
        answer = requests.get(portal.url + "/api/3/action/package_search", params={"rows": 5000})
    assert answer.status_code == 409 and answer.json()["success"] is False


def test_every_recorded_ckan_package_is_stored(store, http):
    require_fixtures()
    found = []
    for path in sorted((FIXTURES / "ckan").glob("*.json")):
        data = json.loads(path.read_text())
        result = data.get("result", data) if isinstance(data, dict) else data
        if isinstance(result, dict) and isinstance(result.get("results"), list):
            found += result["results"]                      # package_search
        elif isinstance(result, dict) and result.get("type") == "dataset":
            found.append(result)                            # package_show
        elif isinstance(result, dict) and isinstance(result.get("packages"), list):
            found += result["packages"]                     # group_show / organization_show
    unique = {p["id"]: p for p in found}
    assert len(unique) >= 15
    with CkanPortal(list(unique.values())) as portal:
        report = harvest([portal_config("mix", "ckan", portal.url)], store, http).portals[0]
    assert report.status == "ok", report.error_message
    rejected = count(store, "SELECT count(*) FROM harvest_errors WHERE stage IN ('validate', 'map') "
                            "AND severity = 'error'")
    assert rejected == 0 and count(store) == len(unique)
    # DataStore tables the fixtures do not carry: a dataset-level error each, datasets kept
    with_tables = sum(any(r.get("datastore_active") is True for r in p.get("resources") or []) for p in unique.values())
    assert count(store, "SELECT count(*) FROM harvest_errors WHERE stage = 'fetch'") == with_tables == report.errors


def test_bad_packages_are_reported_and_the_rest_harvested(store, http):
    good = packages(3)
    no_title = {**copy.deepcopy(good[0]), "id": "no-title", "title": None, "name": None}
    wrong_types = {**copy.deepcopy(good[0]), "id": "wrong", "tags": "roads", "resources": "x",
                   "metadata_modified": "yesterday", "maintainer_email": ["a"], "extras": [{"key": "frequency"}]}
    html = {**copy.deepcopy(good[0]), "id": "html", "notes": "<p>Street <b>trees</b>&nbsp;inventory</p>"}
    with CkanPortal(good + [no_title, wrong_types, html, "junk"]) as portal:
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
    assert report.status == "ok" and count(store) == 5 and report.errors == 2
    assert store.con.execute("SELECT message FROM harvest_errors WHERE severity = 'error' ORDER BY 1").fetchall() == [
        ("entry is a str, not an object",), ("record has no title",)]
    assert store.con.execute("SELECT description FROM datasets WHERE source_id = 'html'").fetchone() == (
        "Street trees inventory",)
    assert store.con.execute("SELECT modified, keywords FROM datasets WHERE source_id = 'wrong'").fetchone() == (None, [])


class StartIgnoringCkan(CkanPortal):
    """A CKAN behind a broken proxy: every package_search answers the first page, and a
    count far past it, whatever `start` asks for."""

    def package_search(self, query):
        return super().package_search({**query, "start": "0"})[0], {
            "success": True, "result": {"count": 10**9, "results": sorted(self.packages, key=lambda p: p["id"])[:1000]}}


def test_a_portal_that_repeats_its_first_page_fails_at_once_and_loses_nothing(store, http):
    """Paged by offset, a listing whose pages repeat would run for a million pages (hours,
    and every repeated id kept as a duplicate); it fails at the first repeated page."""
    catalogue = packages(1_500)
    with CkanPortal(catalogue) as portal:
        assert harvest([portal_config("c", "ckan", portal.url)], store, http).ok
    before = store.con.execute("SELECT uid, title, deleted_at FROM datasets ORDER BY uid").fetchall()
    with StartIgnoringCkan(catalogue) as portal:
        report = harvest([portal_config("c", "ckan", portal.url, max_concurrency=1)], store, http).portals[0]
        searches = portal.hits["/api/3/action/package_search"]
    assert report.status == "failed" and report.error_type == "PagingError"
    assert "start=1000" in report.error_message and "already listed" in report.error_message
    # the page after the repeated one may already be asked (paging reads one page ahead) before
    # the repeat is judged: a race under load, so at most one request more
    assert searches in (2, 3)
    assert store.con.execute("SELECT uid, title, deleted_at FROM datasets ORDER BY uid").fetchall() == before


def test_a_search_answer_without_its_results_list_fails_the_portal_as_unexpected_result(store, http):
    """A package_search that says it succeeded but gives no `results` list (a plugin or proxy
    that changed CKAN's answer): the portal fails, typed UnexpectedResult (not the bare
    PermanentError it was), asked once as before, and keeps what it had."""
    catalogue = packages(3)
    with CkanPortal(catalogue) as portal:
        config = portal_config("c", "ckan", portal.url)
        assert harvest([config], store, http).ok
        before = store.con.execute("SELECT uid, title, deleted_at FROM datasets ORDER BY uid").fetchall()
        portal.serve_json("/api/3/action/package_search", {"success": True, "result": {"count": 3, "rows": []}})
        portal.clear_log()
        run = harvest([config], store, http)
        searches = portal.hits["/api/3/action/package_search"]
    report = run.portals[0]
    assert (report.status, report.error_type) == ("failed", "UnexpectedResult")
    assert "package_search gave no 'results' list" in report.error_message
    assert searches == 1   # not retried, as before
    assert store.con.execute("SELECT error_type FROM harvest_runs WHERE run_id = ?", [run.run_id]).fetchall() == [
        ("UnexpectedResult",)]
    assert store.con.execute("SELECT uid, title, deleted_at FROM datasets ORDER BY uid").fetchall() == before


class UndercountingCkan(CkanPortal):
    """A CKAN whose search index is being rebuilt: full pages, and a count far below them (`count`)."""
    count = 5

    def package_search(self, query):
        status, body = super().package_search(query)
        body["result"]["count"] = self.count
        return status, body


def test_a_count_below_what_the_pages_give_marks_nothing_deleted(store, http):
    catalogue = packages(2_500)
    with CkanPortal(catalogue) as portal:
        assert harvest([portal_config("c", "ckan", portal.url)], store, http).ok
    with UndercountingCkan(catalogue) as portal:
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
    assert report.status == "ok" and report.listing_complete is False and report.removed == 0
    assert count(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NULL AND missing_since IS NULL") == 2_500
    assert store.con.execute("SELECT message FROM harvest_errors WHERE error_type = 'PartialListing'").fetchone()[0] \
        .startswith("listing gave 2500 unique entries of the 5 it reported")   # (read past it: 1000 until session 40)


def test_a_datastore_of_more_fields_than_a_pull_takes_keeps_the_first_10000(store, http):
    """A DataStore listing 25,000 fields (10^6 took 925 MB of RSS and all were stored): its
    fields are cut to 10,000 as the answer is read, with a warning naming the dataset, and its
    records pull is refused."""
    wide, narrow = packages(2)
    wide["resources"] = [{"id": "res-wide", "datastore_active": True, "format": "CSV", "url": "https://x.org/a.csv"}]
    fields = [{"id": f"column_{i}", "type": "int4"} for i in range(25_000)]
    with CkanPortal([wide, narrow], datastore={"res-wide": fields}) as portal:
        config = portal_config("city", "ckan", portal.url, records=(wide["id"],))
        for run in range(2):
            report = harvest([config], store, http, records=run == 1)
            assert report.ok and (report.portals[0].errors, report.portals[0].warnings) == (run, 1 - run), run
        assert all(query.get("limit") == "0" for path, query, _ in portal.requests if "datastore" in path)
    assert count(store) == 2
    assert_first_10000_columns_kept(store, wide["id"], "the DataStore")
    details = json.loads(store.con.execute("SELECT details FROM raw_records WHERE source_id = ?", [wide["id"]]).fetchone()[0])
    assert len(details["datastore"]["fields"]) == 10_000 and details["columns_left_out"] == 15_000


def test_a_package_of_more_resources_than_kept_keeps_the_first_10000(store, http):
    """A package with 25,000 resources (10^6 failed the portal: its raw entry did not fit
    DuckDB's memory): they are cut to 10,000 as the page is read, with a warning naming the
    dataset, and the other packages are stored."""
    wide, narrow = packages(2)
    wide["resources"] = [{"id": f"r{j}", "name": f"R {j}", "format": "CSV", "url": f"https://x.org/{j}.csv"}
                         for j in range(25_000)]
    with CkanPortal([wide, narrow]) as portal:
        report = harvest([portal_config("city", "ckan", portal.url)], store, http)
    assert report.ok and count(store) == 2 and report.portals[0].warnings == 1
    assert count(store, "SELECT count(*) FROM distributions GROUP BY dataset_uid ORDER BY 1 DESC LIMIT 1") == 10_000
    assert store.con.execute("SELECT source_id, severity, message FROM harvest_errors").fetchall() == [
        (wide["id"], "warning", "resources: the catalogue entry lists 25,000 of them; the first 10,000 are kept")]


def test_the_local_portal_answers_the_fields_fl_names_as_ckan_does():
    import requests
    catalogue = packages(3)
    with CkanPortal(catalogue) as portal:
        answer = requests.get(portal.url + "/api/3/action/package_search",
                              params={"fl": "id,name", "rows": 2, "sort": "id asc"}).json()
    first = sorted(catalogue, key=lambda package: package["id"])[:2]
    assert answer["result"]["results"] == [{"id": p["id"], "name": p["name"]} for p in first]
    assert answer["result"]["count"] == 3


def test_packages_over_the_response_cap_alone_are_listed_by_id_and_deletions_marked_night_after_night(store, tmp_path):
    """Two packages grow past the response cap alone, one stored, one new; another is deleted
    from the portal. Each is asked for by its id only (`fl`): the listing is complete, the
    deleted package is marked deleted, the stored one keeps its stored version, the new one is
    reported never stored. The next night asks no answer over the cap: the pages that fitted
    around them and their ids-only requests, along last night's chain."""
    catalogue = sorted(packages(600), key=lambda package: package["id"])
    with CkanPortal(catalogue) as portal:
        config = portal_config("city", "ckan", portal.url)
        cap = harvested_with_a_cap(store, tmp_path, config, catalogue)
        stored, gone = catalogue[130], catalogue.pop(40)
        new = {**copy.deepcopy(catalogue[300]), "id": str(uuid.UUID(int=2**127)), "name": "new-and-large"}
        catalogue = sorted(catalogue + [new], key=lambda package: package["id"])   # (in the listing's order)
        for package in (stored, new):
            package["notes"] = "A very long description. " * (cap // 20)
        portal.packages = catalogue

        def whole_over_the_cap() -> int:   # answers over the cap: requests of the large packages whole
            positions = [catalogue.index(stored), catalogue.index(new)]
            return sum(1 for path, q, _ in portal.requests if path.endswith("package_search") and "fl" not in q
                       and any(int(q["start"]) <= at < int(q["start"]) + int(q["rows"]) for at in positions))

        nights = []
        for night in range(2):
            portal.clear_log()
            run = harvest([config], store, fast_client(tmp_path, max_bytes=cap))
            report = run.portals[0]
            nights.append((report, whole_over_the_cap()))
            assert report.status == "ok" and report.listing_complete, (night, report.error_message)
            assert report.seen == 600 and report.errors == 2, night
    (first, first_over), (second, second_over) = nights
    assert first.removed == 1 and first_over > 2
    assert (second.removed, second_over, second.new, second.changed) == (0, 0, 0, 0)
    assert count(store, "SELECT count(*) FROM datasets WHERE deleted_at IS NOT NULL") == 1
    assert count(store, f"SELECT deleted_at IS NOT NULL FROM datasets WHERE source_id = '{gone['id']}'")
    assert count(store, f"SELECT description FROM datasets WHERE source_id = '{stored['id']}'") is None   # as stored
    assert count(store, f"SELECT count(*) FROM datasets WHERE source_id = '{new['id']}'") == 0
    messages = dict(store.con.execute("SELECT source_id, message FROM harvest_errors WHERE error_type = 'ResponseTooLarge' "
                                      "AND run_id = ?", [run.run_id]).fetchall())   # (the second night's)
    assert messages[stored["id"]].endswith("listed by its id only, its stored version kept (CIVICAT_HTTP_MAX_BYTES "
                                           "raises the cap)")
    assert messages[new["id"]].endswith("listed by its id only, never stored (CIVICAT_HTTP_MAX_BYTES raises the cap)")
    assert "over the response cap alone when last asked whole" in messages[stored["id"]]


def datastore_packages(count: int) -> tuple[list[dict], dict[str, list]]:
    """`count` packages, each with a DataStore resource `res-<i>` of two fields, and the fields."""
    listed = packages(count)
    for i, package in enumerate(listed):
        package["resources"] = [{"id": f"res-{i}", "datastore_active": True, "format": "CSV",
                                 "url": f"https://x.org/{i}.csv"}]
    return listed, {f"res-{i}": [{"id": "_id", "type": "int"}, {"id": "case_id", "type": "text"},
                                 {"id": "opened", "type": "timestamp"}] for i in range(count)}


def test_an_edited_package_whose_datastore_is_down_takes_the_listing_and_keeps_its_columns(store, http):
    """Night 2: package_search edits a package's title, tags and metadata_modified while
    datastore_search answers 503: the new metadata is stored, the columns the DataStore gave
    last time are kept, and a warning names the lookup. Night 3, the DataStore back: the
    columns are read again. The package not edited stays unchanged throughout."""
    listed, fields = datastore_packages(2)
    with CkanPortal(listed, datastore=fields) as portal:
        config = portal_config("c", "ckan", portal.url)

        def edit():
            edited = copy.deepcopy(listed[0])
            edited.update(title=f"{listed[0]['title']}, renamed", tags=[{"name": "new"}],
                          metadata_modified="2024-02-01T00:00:00")
            portal.packages = [edited, listed[1]]
        assert_an_edited_dataset_whose_lookup_is_down_keeps_its_columns(
            store, http, config, portal, "/api/3/action/datastore_search", edit,
            {package["id"]: f"{portal.url}/api/3/action/datastore_search?resource_id={package['resources'][0]['id']}"
             for package in listed})

        portal.clear_faults()
        portal.datastore["res-0"] = fields["res-0"] + [{"id": "ward", "type": "text"}]
        report = harvest([config], store, http).portals[0]
        assert report.status == "ok" and (report.changed, report.unchanged) == (1, 1)
        assert store.con.execute("SELECT list(field_name ORDER BY position) FROM columns WHERE dataset_uid = ?",
                                 [f"c:{listed[0]['id']}"]).fetchone()[0] == ["case_id", "opened", "ward"]
        assert store.con.execute("SELECT title FROM datasets WHERE uid = ?", [f"c:{listed[0]['id']}"]).fetchone()[0] \
            == "Purchase card transactions 0, renamed"


def test_a_full_harvest_whose_datastore_is_down_keeps_the_columns(store, http):
    """`harvest --full` re-maps every dataset: a package whose DataStore cannot be read keeps
    the columns it has, and is not rewritten (nothing else of it changed)."""
    listed, fields = datastore_packages(1)
    with CkanPortal(listed, datastore=fields) as portal:
        assert_a_full_harvest_with_its_lookup_down_keeps_the_columns(
            store, http, portal_config("c", "ckan", portal.url), portal, "/api/3/action/datastore_search", stored=2)


def test_a_package_whose_datastore_moved_to_a_resource_that_is_down_keeps_no_columns(store, http):
    """The stored DataStore fields are another resource's once the package names a new one
    first: when that one cannot be read, the package keeps none (an error, not a warning)."""
    listed, fields = datastore_packages(1)
    with CkanPortal(listed, datastore=fields) as portal:
        config = portal_config("c", "ckan", portal.url)
        harvest([config], store, http)
        assert count(store, "SELECT count(*) FROM columns") == 2
        portal.packages = [{**listed[0], "resources": [{**listed[0]["resources"][0], "id": "res-new"}]}]
        report = harvest([config], store, http).portals[0]
    assert report.status == "ok" and report.changed == 1 and (report.errors, report.warnings) == (1, 0)
    assert count(store, "SELECT count(*) FROM columns") == 0


def test_a_datastore_lookup_that_answers_404_is_not_asked_again_while_its_package_is_unchanged(store, http):
    """Birmingham's packages name DataStore resources whose datastore_search answers 404:
    reported the night it happens, not asked (nor reported) again every night after."""
    listed, fields = datastore_packages(2)
    missing = fields.pop("res-1")
    with CkanPortal(listed, datastore=fields) as portal:
        def edit():
            edited = copy.deepcopy(listed[1])
            edited.update(title=f"{listed[1]['title']}, renamed", metadata_modified="2024-02-01T00:00:00")
            portal.packages = [listed[0], edited]

        def mend():
            portal.datastore["res-1"] = missing
        assert_a_lookup_refused_for_good_is_asked_again_only_when_due(
            store, http, portal_config("c", "ckan", portal.url), portal,
            lambda path, query: path.endswith("/datastore_search") and query.get("resource_id") == "res-1",
            lambda path, query: path.endswith("/datastore_search") and query.get("resource_id") == "res-0", edit, mend)


@pytest.mark.parametrize("full", [False, True], ids=["night", "full"])
def test_the_first_night_after_the_upgrade_counts_no_package_changed_for_its_404_datastore(store, http, full):
    """A catalogue session 26 harvested, whose package's DataStore answers 404: the night after
    the upgrade records that refusal in its details, and counts it changed no more than it is."""
    listed, fields = datastore_packages(2)
    fields.pop("res-1")
    with CkanPortal(listed, datastore=fields) as portal:
        assert_the_first_night_after_the_upgrade_changes_nothing(
            store, http, portal_config("c", "ckan", portal.url), portal,
            lambda path, query: path.endswith("/datastore_search") and query.get("resource_id") == "res-1", full=full)


def test_a_404_datastore_that_answers_503_for_a_night_counts_its_package_changed_on_no_night(store, http):
    listed, fields = datastore_packages(2)
    fields.pop("res-1")
    with CkanPortal(listed, datastore=fields) as portal:
        assert_a_refused_lookup_down_for_a_night_changes_nothing(
            store, http, portal_config("c", "ckan", portal.url), portal, "/api/3/action/datastore_search",
            lambda path, query: path.endswith("/datastore_search") and query.get("resource_id") == "res-1")


def test_a_dcat_ap_package_gives_its_own_dates_and_period(store, http):
    """opendata.swiss (ckanext-dcat) packages carry the dataset's DCAT `issued`/`modified` beside CKAN's
    record dates (metadata_created: when the record was made, not when the data was issued) and its
    period as `temporals`: the dataset's own are stored, CKAN's only where it gives none."""
    require_fixtures()
    national = load_json("ckan/opendata-swiss-package_show-bfs-national-votes.json")["result"]
    cantonal = load_json("ckan/opendata-swiss-package_show-bfs-cantonal-votes.json")["result"]
    assert (national["issued"], national["metadata_created"][:10]) == ("2026-02-16T00:00:00", "2019-02-04")
    assert "issued" not in cantonal or cantonal["issued"] is None
    with CkanPortal([national, cantonal]) as portal:
        assert harvest([portal_config("ch", "ckan", portal.url)], store, http).ok
    rows = {r[0]: [v.isoformat() if v else None for v in r[1:]] for r in store.con.execute(
        "SELECT source_id, issued, modified, temporal_start, temporal_end FROM datasets").fetchall()}
    assert rows[national["id"]] == ["2026-02-16T00:00:00+00:00", "2026-05-11T00:00:00+00:00",
                                    "1981-06-14T00:00:00+00:00", "2026-06-14T00:00:00+00:00"]
    assert rows[cantonal["id"]] == ["2021-11-17T08:31:54.925969+00:00", "2026-06-15T08:00:17.608779+00:00",
                                    "2019-02-10T00:00:00+00:00", "2026-06-14T23:59:59.999999+00:00"]


def test_stadt_zurichs_spatial_relationship_is_the_coverage(store, http):
    """Stadt Zürich's CKAN names each dataset's area in `spatialRelationship` (its own schema's key for
    DCAT's spatial coverage): "Stadt Zürich", "Kanton Zürich"."""
    require_fixtures()
    packages = load_json("ckan/zurich-stadt-package_search-verkehr.json")["results"]
    with CkanPortal(packages) as portal:
        assert harvest([portal_config("zh", "ckan", portal.url)], store, http).ok
    stored = dict(store.con.execute("SELECT source_id, spatial FROM datasets").fetchall())
    assert stored == {p["id"]: p["spatialRelationship"] for p in packages}
    assert sorted(set(stored.values())) == ["Kanton Zürich", "Stadt Zürich"]


def stored_rows(store, columns: str) -> dict[str, dict]:
    cursor = store.con.execute(f"SELECT source_id, {columns} FROM datasets")
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names[1:], row[1:])) for row in cursor.fetchall()}


def test_envidat_s_collection_period_and_doi_are_stored(store, http):
    """EnviDat (WSL) gives a dataset's dates in `date`, a JSON list in a string, each typed: "collected"
    (when its data were collected: the period they cover) and "created"; and its DOI in `doi`.
    Neither was read: no period, and an identifier built from the portal's URL."""
    require_fixtures()
    shown = load_json("ckan/envidat-ch-package_show.json")["result"]
    searched = load_json("ckan/envidat-ch-package_search.json")["result"]["results"]
    assert [json.loads(p["date"]) for p in searched][1] == [
        {"date_type": "created", "date": "2024-04-01", "end_date": "2026-07-22"},
        {"date_type": "collected", "date": "2024-04-01", "end_date": "2024-09-30"}]
    with CkanPortal([shown, *searched]) as portal:
        assert harvest([portal_config("envidat", "ckan", portal.url)], store, http).ok
    stored = stored_rows(store, "identifier, temporal_start, temporal_end")
    as_text = {source_id: (row["identifier"], *(v.isoformat()[:10] if v else None
                                                for v in (row["temporal_start"], row["temporal_end"])))
               for source_id, row in stored.items()}
    assert as_text == {
        shown["id"]: ("https://doi.org/10.16904/envidat.412", "2023-06-09", "2023-06-09"),   # collected that day
        searched[0]["id"]: ("https://doi.org/10.16904/envidat.792", "2000-06-20", "2017-01-01"),
        searched[1]["id"]: ("https://doi.org/10.16904/envidat.790", "2024-04-01", "2024-09-30"),   # not "created"
    }


def test_envidat_s_year_of_publication_is_issued_where_the_record_was_created_in_another(store, http):
    """EnviDat names a dataset's year of publication (the year of its DOI) in `publication`, a JSON
    object in a string, which was not read: issued was when CKAN's record was created. Each of the
    five recorded packages was created in its year of publication and keeps that day; the recorded
    package as a catalogue migrated in 2025 holds it (its record created then) is issued in 2023,
    not 2025; a year that is none is warned of, the record's day kept."""
    require_fixtures()
    shown = load_json("ckan/envidat-ch-package_show.json")["result"]
    recorded = [shown, *load_json("ckan/envidat-ch-package_search.json")["result"]["results"],
                *load_json("ckan/envidat-ch-organization_show.json")["result"]["packages"]]
    assert json.loads(shown["publication"]) == {"publication_year": "2023", "publisher": "EnviDat"}
    migrated = {**shown, "id": str(uuid.uuid4()), "name": "migrated", "metadata_created": "2025-03-04T10:00:00.000000"}
    garbled = {**shown, "id": str(uuid.uuid4()), "name": "garbled", "metadata_created": "2025-03-04T10:00:00.000000",
               "publication": '{"publication_year": "n/a"}'}
    with CkanPortal([*recorded, migrated, garbled]) as portal:
        assert harvest([portal_config("envidat", "ckan", portal.url)], store, http).ok
    issued = {source_id: row["issued"].isoformat()[:19] for source_id, row in stored_rows(store, "issued").items()}
    assert {p["id"]: issued[p["id"]] for p in recorded} == {p["id"]: p["metadata_created"][:19] for p in recorded}
    assert (issued[migrated["id"]], issued[garbled["id"]]) == ("2023-01-01T00:00:00", "2025-03-04T10:00:00")
    warned = store.con.execute("SELECT source_id, message FROM harvest_errors WHERE message LIKE 'issued%'").fetchall()
    assert warned == [(garbled["id"], "issued: not a year of publication: 'n/a'")]


def test_opendata_swiss_s_contact_point_is_the_contact(store, http):
    """opendata.swiss (DCAT-AP CH) names a dataset's contact in `contact_points` ([{"name", "email"}]),
    which was not read: a package whose maintainer is not given (the recorded package, its maintainer
    left out) was stored without a contact address, its author holding none. A contact point named by
    its address alone (as both recorded ones are) gives no name: the author's stays."""
    require_fixtures()
    national = load_json("ckan/opendata-swiss-package_show-bfs-national-votes.json")["result"]
    cantonal = load_json("ckan/opendata-swiss-package_show-bfs-cantonal-votes.json")["result"]
    assert national["contact_points"] == [{"email": "poku@bfs.admin.ch", "name": "poku@bfs.admin.ch"}]
    del cantonal["maintainer"]
    with CkanPortal([national, cantonal]) as portal:
        assert harvest([portal_config("ch", "ckan", portal.url)], store, http).ok
    stored = stored_rows(store, "contact_name, contact_email")
    author = "Bundesamt für Statistik BFS, Office fédéral de la statistique OFS, Ufficio federale di statistica UST"
    assert stored == {package["id"]: {"contact_name": author, "contact_email": "poku@bfs.admin.ch"}
                      for package in (national, cantonal)}


def test_a_package_without_a_title_takes_its_name_with_a_warning(store, http):
    """CKAN requires a package's URL name, not its title: one left without is stored under its name
    (SPEC rejects a record without a title), and a warning says so."""
    require_fixtures()
    package = load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"][0]
    package["title"] = ""
    with CkanPortal([package]) as portal:
        assert harvest([portal_config("bham", "ckan", portal.url)], store, http).ok
    assert store.con.execute("SELECT title FROM datasets").fetchall() == [(package["name"],)]
    assert store.con.execute("SELECT source_id, severity, message FROM harvest_errors WHERE stage = 'map'").fetchall() \
        == [(package["id"], "warning", f"title: the package has no title; its name {package['name']!r} is stored as "
                                       "its title")]


def test_english_named_with_its_region_is_read_as_english(store, http):
    """The recorded multilingual package, its English keyed "en-GB" (CKAN locales name a region):
    its German (the first language given) was stored."""
    require_fixtures()
    package = load_json("ckan/opendata-swiss-package_show-bfs-national-votes.json")["result"]
    for key in ("title", "description", "keywords"):
        package[key] = {("en-GB" if language == "en" else language): value for language, value in package[key].items()}
    with CkanPortal([package]) as portal:
        assert harvest([portal_config("ch", "ckan", portal.url)], store, http).ok
    [(title, description, keywords)] = store.con.execute("SELECT title, description, keywords FROM datasets").fetchall()
    assert title == "Real-time data on federal popular votes"
    assert description.startswith("Web service for real-time results on voting Sunday")
    assert keywords == package["keywords"]["en-GB"]


def utc(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None


def zurich_packages() -> list[dict]:
    """Stadt Zürich's six recorded packages."""
    return load_json("ckan/zurich-stadt-package_search-verkehr.json")["results"] + \
        load_json("ckan/zurich-stadt-group_show-mobilitat.json")["packages"]


def test_zurich_dates_and_newer_frequencies_re_map_a_catalogue_stored_by_mapping_5(store, http):
    """Stadt Zürich's own dates, written day first ("22.09.2004"), were not read: `modified` was the
    CKAN record's edit (all six recorded packages: 2026-08-07), the city's dateLastUpdated being the
    dataset's (its DCAT export gives it as dct:modified, dateFirstPublished as dct:issued); a timeRange
    of one day ("14.12.2025", two of them) is their period, "Laufende Nachführung" (kept up to date,
    the four others) none. Frequencies read since session 34 ("Plusieurs fois par jour",
    "Giornaliera"; session 35's "twice weekly", read as weekly) were read by CKAN datasets only when
    they changed: CKAN mapping 6 re-maps a catalogue stored by 5 the first night after."""
    require_fixtures()
    zurich = zurich_packages()
    birmingham = load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"][:3]
    for package, said in zip(birmingham, ("Plusieurs fois par jour", "Giornaliera", "Twice weekly")):
        package.setdefault("extras", []).append({"key": "frequency", "value": said})
    stored_by_5 = periodicity_as_before({"Plusieurs fois par jour": None, "Giornaliera": None, "Twice weekly": "R/P1W"})

    def as_mapping_5(patch):
        patch.setitem(ckan.EXTRA_KEYS, "issued", ("issued",))
        patch.setitem(ckan.EXTRA_KEYS, "modified", ("modified",))
        patch.setattr(ckan, "_time_range", lambda value, notes: (None, None))
        patch.setattr(ckan.R, "periodicity", stored_by_5)

    by_name = {p["name"]: p["id"] for p in zurich}
    interval = {p["id"]: {"jaehrlich": "R/P1Y", "laufend": "R/PT1S"}.get(p["updateInterval"][0], "irregular")
                for p in zurich}
    expected = {by_name[name]: (utc(modified), utc(start), utc(start), interval[by_name[name]])
                for name, modified, start in (
                    ("geo_kommunaler_richtplan_verkehr", "2004-09-22", None),
                    ("ktzh_haltestellen_des_oeffentlichen_verkehrs___ogd_", "2025-12-14", "2025-12-14"),
                    ("ktzh_tarifzonen_des_oeffentlichen_verkehrs__ogd_", "2025-12-14", "2025-12-14"),
                    ("geo_abstimmungsgeraete_taz", "2026-10-01", None),
                    ("geo_oeffentlich_zugaengliche_parkhaeuser", "2026-08-07", None),
                    ("geo_dienstleistungen", "2026-08-07", None))}
    for package, frequency in zip(birmingham, ("R/PT12H", "R/P1D", "R/P3D")):
        expected[package["id"]] = (utc(package["metadata_modified"]), None, None, frequency)
    with CkanPortal(zurich + birmingham) as portal:
        assert_stored_by_an_older_mapping_is_re_mapped_once(
            store, http, portal_config("zh", "ckan", portal.url), ckan.CkanAdapter, 5, as_mapping_5,
            ("modified", "temporal_start", "temporal_end", "accrual_periodicity"), expected)
    assert count(store, "SELECT count(*) FROM harvest_errors WHERE severity = 'warning' AND stage = 'map'") == 0


def test_a_repeating_modified_extra_re_maps_a_catalogue_stored_by_mapping_6(store, http):
    """A catalogue stored by CKAN mapping 6, whose package harvested from a data.json document kept
    `modified` "R/P1W" (stored: `modified` null, no frequency), is re-mapped the first night after
    the upgrade to 7 without `--full`: the record's metadata_modified and the frequency R/P1W; the
    packages without such an extra keep their values."""
    require_fixtures()
    packages = load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"][:3]
    packages[0]["extras"] = [{"key": "modified", "value": "R/P1W"}]

    def as_mapping_6(patch):
        patch.setattr(ckan.R, "modified_and_frequency", lambda modified, frequency, notes, **_: (
            ckan.R.timestamp(modified, notes, "modified"), ckan.R.periodicity(frequency, notes)))

    expected = {packages[0]["id"]: (utc(packages[0]["metadata_modified"]), "R/P1W")}
    with CkanPortal(packages) as portal:
        assert_stored_by_an_older_mapping_is_re_mapped_once(
            store, http, portal_config("b", "ckan", portal.url), ckan.CkanAdapter, 6, as_mapping_6,
            ("modified", "accrual_periodicity"), expected)


def warnings_of(store, run_id=None) -> list[tuple]:
    return store.con.execute("""SELECT source_id, stage, error_type, message FROM harvest_errors
                                WHERE severity = 'warning' AND (run_id = ? OR ? IS NULL) ORDER BY source_id""",
                             [run_id, run_id]).fetchall()


def test_a_modified_after_the_harvest_s_clock_is_kept_with_a_warning(store, http, monkeypatch):
    """Stadt Zürich's "Abstimmungsgeräte" dataset gives dateLastUpdated "01.10.2026" in the catalogue
    recorded on 7 August 2026: harvested that day, its `modified` is 54 days ahead of the harvest's own
    clock (a change planned, or a typo: nothing tells). It is stored as the portal gives it, with a
    warning naming it (it was stored without one before session 36; stage `map`, type InvalidValue in
    session 36); the five others, updated up to that very day, have none (a day's slack: a portal's
    clock, or its zone's day, may run ahead of the harvest's)."""
    require_fixtures()
    from harvester import pipeline
    zurich = zurich_packages()
    monkeypatch.setattr(pipeline, "run_began", lambda: datetime(2026, 8, 7, 9, 0, tzinfo=UTC))
    with CkanPortal(zurich) as portal:
        report = harvest([portal_config("zh", "ckan", portal.url)], store, http).portals[0]
    assert (report.status, report.new, report.warnings) == ("ok", 6, 1)
    planned = next(p["id"] for p in zurich if p["name"] == "geo_abstimmungsgeraete_taz")
    stored = dict(store.con.execute("SELECT source_id, modified FROM datasets").fetchall())
    assert stored[planned] == datetime(2026, 10, 1, tzinfo=UTC)
    assert max(modified for source_id, modified in stored.items() if source_id != planned) == \
        datetime(2026, 8, 7, tzinfo=UTC)
    assert warnings_of(store) == [(planned, "store", "FutureModified", "modified: 2026-10-01T00:00:00Z is 54 days "
                                       "after this harvest began (a change planned, or a typo); stored as the portal "
                                       "gives it")]


def test_a_modified_ahead_is_warned_of_every_night_it_is_still_ahead(store, http, monkeypatch):
    """The night after, Zürich's catalogue unchanged, nothing is mapped (each entry as stored): its
    "01.10.2026" is still ahead, and said again, 53 days ahead now (until session 37 the mapping said it,
    so only on the night the entry was mapped: never again while the date stayed ahead). On 30 September
    it is within a day of the harvest's start: nothing is said."""
    require_fixtures()
    from harvester import pipeline
    zurich = zurich_packages()
    planned = next(p["id"] for p in zurich if p["name"] == "geo_abstimmungsgeraete_taz")
    nights = []
    with CkanPortal(zurich) as portal:
        for night in (datetime(2026, 8, 7, 9, 0, tzinfo=UTC), datetime(2026, 8, 8, 9, 0, tzinfo=UTC),
                      datetime(2026, 9, 30, 9, 0, tzinfo=UTC)):
            monkeypatch.setattr(pipeline, "run_began", lambda night=night: night)
            run = harvest([portal_config("zh", "ckan", portal.url)], store, http)
            report = run.portals[0]
            nights.append(((report.status, report.new, report.unchanged, report.warnings),
                           warnings_of(store, run.run_id)))
    ahead = "after this harvest began (a change planned, or a typo); stored as the portal gives it"
    assert nights == [
        (("ok", 6, 0, 1), [(planned, "store", "FutureModified", f"modified: 2026-10-01T00:00:00Z is 54 days {ahead}")]),
        (("ok", 0, 6, 1), [(planned, "store", "FutureModified", f"modified: 2026-10-01T00:00:00Z is 53 days {ahead}")]),
        (("ok", 0, 6, 0), [])]
    assert store.con.execute("SELECT DISTINCT modified FROM datasets WHERE source_id = ?", [planned]).fetchall() == [
        (datetime(2026, 10, 1, tzinfo=UTC),)]


def test_datasets_dated_ahead_are_named_up_to_a_bound_and_the_rest_counted(store, http, monkeypatch):
    """A portal dating its whole catalogue ahead (a typo's year in its template) would add a warning a
    dataset a night: the latest FUTURE_MODIFIED_NAMED are named, the rest counted in one warning."""
    from harvester import pipeline
    monkeypatch.setattr(pipeline, "FUTURE_MODIFIED_NAMED", 3)
    monkeypatch.setattr(pipeline, "run_began", lambda: datetime(2026, 8, 7, 9, 0, tzinfo=UTC))
    listed = packages(7)
    for day, package in enumerate(listed[:5], start=1):
        package["metadata_modified"] = f"2062-01-0{day}T10:00:00"
    with CkanPortal(listed) as portal:
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
    assert (report.status, report.new, report.warnings) == ("ok", 7, 4)
    warnings = store.con.execute("SELECT source_id, stage, error_type, message FROM harvest_errors "
                                 "ORDER BY source_id NULLS LAST").fetchall()
    latest = sorted(package["id"] for package in listed[2:5])   # 3, 4 and 5 January 2062
    assert [(source_id, stage, error_type) for source_id, stage, error_type, _ in warnings] == \
        [(source_id, "store", "FutureModified") for source_id in latest] + [(None, "store", "FutureModified")]
    assert warnings[-1][3].startswith("2 more datasets have a modified more than a day after this harvest began "
                                      "(the 3 latest are named;")


def test_a_package_harvested_from_data_json_with_a_repeating_modified_is_stored_with_its_record_s_day(store, http):
    """Over HTTP: Birmingham's recorded package as a CKAN harvest of a data.json document keeps it, its
    `modified` extra "R/P1W" (data.gov's harvester writes the document's value there): stored with the
    CKAN record's metadata_modified and the frequency R/P1W, a warning naming the interval (before session
    37: `modified` null, frequency null, a warning "not a date/time")."""
    package = load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"][0]
    package["extras"] = [{"key": "modified", "value": "R/P1W"}]
    with CkanPortal([package]) as portal:
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
    assert (report.status, report.new, report.warnings) == ("ok", 1, 1)
    assert store.con.execute("SELECT modified, accrual_periodicity FROM datasets").fetchall() == [
        (datetime(2021, 1, 15, 10, 25, 28, 638659, tzinfo=UTC), "R/P1W")]
    assert warnings_of(store) == [(package["id"], "map", "InvalidValue", "modified: a repeating interval 'R/P1W' "
                                       "(updated continually), not a date: the CKAN record's metadata_modified stored "
                                       "instead, and read as the update frequency (the entry gives none)")]


def test_a_modified_at_the_now_of_a_portal_whose_clock_is_ahead_is_not_warned_of(store, http):
    """A portal whose clock runs 3 days ahead of ours dates each dataset it changes 3 days ahead:
    judged by our clock, each was warned of (FutureModified) every night for 2 days, though nothing
    was wrong. Judged by the portal's clock (its answers' Date header, as a records pull judges its
    rows) it is not ahead; a `modified` a year ahead of it still is, the warning naming the clock,
    and so is the count of those past the named ones, with the bound that lists them."""
    from harvester import pipeline

    server_now = datetime.now(UTC) + timedelta(days=3)
    listed = packages(4)
    for package, ahead in zip(listed, (timedelta(0), -timedelta(hours=5), timedelta(days=365), timedelta(days=366))):
        package["metadata_modified"] = (server_now + ahead).replace(tzinfo=None).isoformat(timespec="seconds")
    with CkanPortal(listed) as portal:
        portal.date_header = timedelta(days=3)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipeline, "FUTURE_MODIFIED_NAMED", 1)
            report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
    assert (report.status, report.new, report.warnings) == ("ok", 4, 2)
    [(named, *_, said), (nobody, *_, more)] = warnings_of(store)
    assert named == listed[3]["id"] and nobody is None
    # (366 days less the seconds between the test's now and the harvest's start: floored, 365 under load)
    assert re.fullmatch(r"modified: \S+Z is 36[5-7] days after this harvest began by the server's clock \(3 days "
                        r"ahead of ours, by its Date header\) \(a change planned, or a typo\); stored as the portal "
                        r"gives it", said), said
    bound = re.fullmatch(r"1 more dataset has a modified more than a day after this harvest began by the server's "
                         r"clock \(3 days ahead of ours, by its Date header\) \(the 1 latest are named; `modified > "
                         r"'(\S+)'` in the datasets table lists them all\)", more)
    assert bound, more
    assert store.con.execute("SELECT list(source_id ORDER BY source_id) FROM datasets WHERE modified > ?",
                             [bound[1]]).fetchone()[0] == sorted(package["id"] for package in listed[2:])
