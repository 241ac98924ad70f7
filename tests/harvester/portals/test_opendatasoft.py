"""The OpenDataSoft adapter over real HTTP against the local Explore v2.1 portal."""
import copy

import pytest

from catalog.record import Notes
from harvester.config import PortalConfig
from harvester.http import HttpClient
from harvester.pipeline import harvest
from harvester.portals import opendatasoft
from harvester.portals.opendatasoft import OpenDataSoftAdapter
from tests.conftest import (assert_an_unread_frequency_stored_as_unknown_is_re_mapped_once, assert_first_10000_columns_kept,
                            fast_client, harvested_with_a_cap, portal_config)
from tests.portals.opendatasoft import API, OpenDataSoftPortal, make_ods_datasets


def count(store, sql="SELECT count(*) FROM datasets"):
    return store.con.execute(sql).fetchone()[0]


def test_mapping_of_every_field():
    adapter = OpenDataSoftAdapter(PortalConfig(id="ods", city="Exemple", kind="opendatasoft",
                                               url="https://data.exemple.fr"), HttpClient())
    entry = make_ods_datasets(2)[1]
    rec = adapter.map(entry, None, Notes())
    assert rec["source_id"] == entry["dataset_id"] and rec["identifier"] == "da_000001"
    assert rec["title"] == "Parking occupancy 2001" and rec["description"] == "Parking occupancy of the city."
    assert rec["keywords"] == ["open data", "parking"] and rec["themes"] == ["Environment"]
    assert rec["publisher"] == "Ville d'Exemple" and rec["contact_email"] == "opendata@exemple.fr"
    assert rec["modified"] == "2024-02-15T08:30:00Z" and rec["issued"] == "2019-03-01T00:00:00Z"
    assert rec["accrual_periodicity"] == "R/P1D" and rec["license"].startswith("https://www.etalab.gouv.fr")
    assert rec["spatial"] == "Exemple" and rec["row_count"] == 101 and rec["asset_type"] == "dataset"
    assert rec["landing_page"] == f"https://data.exemple.fr/explore/dataset/{entry['dataset_id']}/"
    assert [d["format"] for d in rec["distributions"]] == ["CSV", "JSON", "GEOJSON"]
    assert rec["distributions"][0]["download_url"].endswith(f"/catalog/datasets/{entry['dataset_id']}/exports/csv")
    assert [(c["field_name"], c["type"]) for c in rec["columns"]] == [
        ("id", "text"), ("count", "integer"), ("rate", "number"), ("date", "datetime"), ("geo_point_2d", "point")]
    no_records = adapter.map(make_ods_datasets(1)[0], None, Notes())
    assert no_records["asset_type"] == "file" and no_records["distributions"] == []


def test_offset_paging_within_the_caps(store, http):
    with OpenDataSoftPortal(make_ods_datasets(250)) as portal:
        report = harvest([portal_config("ods", "opendatasoft", portal.url)], store, http).portals[0]
        queries = [q for path, q, _ in portal.requests if path == f"{API}/datasets"]
    assert report.status == "ok" and count(store) == 250 and report.listing_complete
    assert all(int(q["limit"]) <= 100 and int(q["offset"]) + int(q["limit"]) <= 10_000 for q in queries)


@pytest.mark.parametrize("streamed", [False, True])
def test_past_the_window_the_catalog_export_is_used(store, http, streamed, monkeypatch):
    """The export parsed whole, or (a large one) its datasets read from it a batch at a time."""
    if streamed:
        monkeypatch.setattr("harvester.http.json_parsing.STREAMED_JSON_BYTES", 1 << 20)
    with OpenDataSoftPortal(make_ods_datasets(10_050)) as portal:
        report = harvest([portal_config("ods", "opendatasoft", portal.url)], store, http).portals[0]
        paths = [path for path, _, _ in portal.requests]
    assert report.status == "ok", report.error_message
    assert report.listing_complete and report.seen == 10_050
    assert count(store) == 10_050 and paths.count(f"{API}/exports/json") == 1
    assert paths.count(f"{API}/datasets") == 1          # only the size probe


def test_a_catalogue_counted_at_the_window_s_10000_is_read_from_the_export(store, http):
    """A count of exactly 10,000 may be one that stops there (a search index's default): the
    offset pages ended at the 10,000th dataset, 50 of 10,050 lost unsaid, the listing complete."""
    with OpenDataSoftPortal(make_ods_datasets(10_050), count_cap=10_000) as portal:
        report = harvest([portal_config("ods", "opendatasoft", portal.url)], store, http).portals[0]
        paths = [path for path, _, _ in portal.requests]
    assert report.status == "ok", report.error_message
    assert report.listing_complete and report.seen == 10_050 and count(store) == 10_050
    assert paths.count(f"{API}/exports/json") == 1 and paths.count(f"{API}/datasets") == 1


def test_bad_entries_and_an_error_answer(store, http):
    datasets = make_ods_datasets(4)
    broken = copy.deepcopy(datasets[1])
    broken.update(dataset_id="broken")
    broken["metas"]["default"].update(title=None)
    weird = copy.deepcopy(datasets[2])
    weird.update(dataset_id="weird", fields="x")
    weird["metas"]["default"].update(modified="R/P1D", keyword={"a": 1})
    with OpenDataSoftPortal(datasets + [broken, weird]) as portal:
        report = harvest([portal_config("ods", "opendatasoft", portal.url)], store, http).portals[0]
    assert report.status == "ok" and count(store) == 5 and report.errors == 1
    assert store.con.execute("SELECT modified FROM datasets WHERE source_id = 'weird'").fetchone() == (None,)
    with OpenDataSoftPortal(datasets) as portal:
        portal.inject(f"{API}/datasets", ("status", 400), times=10)
        failed = harvest([portal_config("ods", "opendatasoft", portal.url)], store, http).portals[0]
    assert failed.status == "failed" and count(store) == 5


def test_ragged_metadata_and_huge_numbers_are_warnings(store, http):
    datasets = make_ods_datasets(3)
    datasets[0]["metas"]["default"]["records_count"] = "99999999999999999999"
    datasets[1]["metas"] = ["not", "an", "object"]
    datasets[1]["dataset_id"] = "ragged"
    with OpenDataSoftPortal(datasets) as portal:
        report = harvest([portal_config("ods", "opendatasoft", portal.url)], store, http).portals[0]
    assert report.status == "ok" and report.errors == 1          # 'ragged' has no title left: rejected
    assert store.con.execute("SELECT row_count FROM datasets WHERE source_id = ?",
                             [datasets[0]["dataset_id"]]).fetchone() == (None,)
    assert store.con.execute("SELECT count(*) FROM harvest_errors WHERE message LIKE 'row_count: integer out of range%'"
                             ).fetchone() == (1,)


def test_a_dataset_of_more_fields_than_a_pull_takes_keeps_the_first_10000(store, http):
    """A catalog page whose dataset lists 25,000 fields (10^6 failed the portal: its raw entry
    did not fit DuckDB's memory): the fields are cut to 10,000 as the page is read, with a
    warning naming the dataset, the rest of the portal harvested, its records pull refused."""
    datasets = make_ods_datasets(5)
    wide = datasets[1]
    wide["fields"] = [{"name": f"column_{i}", "label": None, "type": "int"} for i in range(25_000)]
    with OpenDataSoftPortal(datasets) as portal:
        config = portal_config("city", "opendatasoft", portal.url, records=(wide["dataset_id"],))
        for run in range(2):
            report = harvest([config], store, http, records=run == 1)
            assert report.ok and (report.portals[0].errors, report.portals[0].warnings) == (run, 1 - run), run
        assert not any("/records" in path or "/exports/" in path for path in portal.hits)
    assert count(store) == 5
    assert_first_10000_columns_kept(store, wide["dataset_id"], "the catalogue entry")


def test_a_dataset_of_more_keywords_than_kept_keeps_the_first_10000(store, http):
    """25,000 keywords in one dataset's `metas.default`: cut to 10,000 as the page is read, with
    a warning naming the dataset."""
    datasets = make_ods_datasets(3)
    datasets[1]["metas"]["default"]["keyword"] = [f"keyword {i}" for i in range(25_000)]
    with OpenDataSoftPortal(datasets) as portal:
        report = harvest([portal_config("city", "opendatasoft", portal.url)], store, http)
    assert report.ok and count(store) == 3 and report.portals[0].warnings == 1
    assert count(store, "SELECT max(len(keywords)) FROM datasets") == 10_000
    assert store.con.execute("SELECT source_id, message FROM harvest_errors").fetchall() == [
        (datasets[1]["dataset_id"], "keyword: the catalogue entry lists 25,000 of them; the first 10,000 are kept")]


def test_a_dataset_over_the_cap_edited_to_fit_under_the_same_cap_is_asked_whole_and_read(store, tmp_path):
    """The ids-only request selects the dataset's modification dates with its id, so an edit
    changes its answer: a dataset over the cap alone, edited the night after (here made small
    again, its `modified` moved), is asked whole at once under the same cap and read; one
    untouched is not (no answer over the cap)."""
    datasets = sorted(make_ods_datasets(250), key=lambda d: d["dataset_id"])
    with OpenDataSoftPortal(datasets) as portal:
        config = portal_config("ods", "opendatasoft", portal.url)
        cap = harvested_with_a_cap(store, tmp_path, config, datasets)
        large = datasets[130]["metas"]["default"]
        description = f"SELECT description FROM datasets WHERE source_id = '{datasets[130]['dataset_id']}'"
        large["description"] = "A very long description. " * (cap // 25)
        nights = []
        for edit in (None, None, "Trimmed to fit."):
            if edit:
                large.update(description=edit, modified="2025-06-01T09:00:00+00:00")
            portal.clear_log()
            report = harvest([config], store, fast_client(tmp_path, max_bytes=cap)).portals[0]
            assert report.status == "ok" and report.listing_complete and report.seen == 250, report.error_message
            nights.append((report, count(store, description)))
    (first, _), (second, kept), (third, read) = nights
    assert (second.errors, second.changed) == (1, 0) and not kept.startswith("A very long")
    assert (third.errors, third.changed) == (0, 1) and read == "Trimmed to fit."


def test_a_listing_remembered_from_ids_only_requests_of_another_select_never_reads_them_as_datasets(
        store, tmp_path, monkeypatch):
    """Last night's pages held the ids-only request of an earlier civicat (`select=dataset_id`):
    along their chain it is no ids-only request of this one, so it is never asked as it was (its
    answer, an id alone, read as the dataset): its position is paged in the listing's own size,
    and the dataset over the cap found again, its stored version kept."""
    datasets = sorted(make_ods_datasets(250), key=lambda d: d["dataset_id"])
    with OpenDataSoftPortal(datasets) as portal:
        config = portal_config("ods", "opendatasoft", portal.url)
        cap = harvested_with_a_cap(store, tmp_path, config, datasets)
        datasets[130]["metas"]["default"]["description"] = "A very long description. " * (cap // 25)
        titles = "SELECT count(*) FROM datasets WHERE title IS NOT NULL"
        with monkeypatch.context() as earlier:
            earlier.setattr(opendatasoft, "ID_AND_DATES", opendatasoft.IDS_ONLY)
            assert harvest([config], store, fast_client(tmp_path, max_bytes=cap)).portals[0].listing_complete
        portal.clear_log()
        report = harvest([config], store, fast_client(tmp_path, max_bytes=cap)).portals[0]
        selects = {q.get("select") for path, q, _ in portal.requests if path == f"{API}/datasets"}
    assert report.status == "ok" and report.listing_complete and report.changed == 0 and report.errors == 1
    assert selects == {None, "dataset_id", opendatasoft.ID_AND_DATES["select"]}   # (the size probe: dataset_id)
    assert count(store, titles) == 250


def test_a_dataset_over_the_response_cap_alone_is_listed_by_id_and_deletions_marked_night_after_night(store, tmp_path):
    """A dataset grows past the response cap alone, another is deleted from the portal: the
    large one is asked for by its id and dates only (`select=dataset_id,...`), so the listing is complete,
    the deleted one marked deleted and the large one keeps its stored version. The next
    night asks no answer over the cap; once the dataset is small again (here: the cap
    raised), its ids-only answer differs and it is asked whole, and read."""
    datasets = sorted(make_ods_datasets(250), key=lambda d: d["dataset_id"])
    with OpenDataSoftPortal(datasets) as portal:
        config = portal_config("ods", "opendatasoft", portal.url)
        cap = harvested_with_a_cap(store, tmp_path, config, datasets)
        large, gone = datasets[130], datasets.pop(7)
        description = f"SELECT description FROM datasets WHERE source_id = '{large['dataset_id']}'"
        stored = count(store, description)
        large["metas"]["default"]["description"] = "A very long description. " * (cap // 25)
        portal.datasets = datasets

        def whole_over_the_cap() -> int:
            at = datasets.index(large)
            return sum(1 for path, q, _ in portal.requests if path == f"{API}/datasets" and "select" not in q
                       and int(q["offset"]) <= at < int(q["offset"]) + int(q["limit"]))

        nights = []
        for max_bytes in (cap, cap, 4 * cap):
            portal.clear_log()
            report = harvest([config], store, fast_client(tmp_path, max_bytes=max_bytes)).portals[0]
            assert report.status == "ok" and report.listing_complete and report.seen == 249, report.error_message
            nights.append((report, whole_over_the_cap()))
            if len(nights) < 3:
                assert count(store, description) == stored
    (first, first_over), (second, second_over), (third, third_over) = nights
    assert (first.removed, first.errors) == (1, 1) and first_over > 2
    assert (second.removed, second.errors, second_over, second.changed) == (0, 1, 0, 0)
    assert (third.errors, third_over, third.changed) == (0, 1, 1)
    assert count(store, f"SELECT deleted_at IS NOT NULL FROM datasets WHERE source_id = '{gone['dataset_id']}'")
    assert count(store, description).startswith("A very long description.")
    source_id, message = store.con.execute("SELECT source_id, message FROM harvest_errors WHERE error_type = "
                                           "'ResponseTooLarge' ORDER BY occurred_at DESC LIMIT 1").fetchone()
    assert source_id == large["dataset_id"] and message.startswith(
        "ods: the entry asked for alone (order_by=dataset_id, offset=129, limit=1) is over the response cap alone when "
        f"last asked whole (a {cap}-byte cap): listed by its id only, its stored version kept")


def test_a_frequency_stored_as_unknown_before_session_31_is_re_mapped_by_the_first_night_after_it(store, http):
    """Session 31 made an update frequency civicat cannot read null with a warning, not 'unknown',
    without a new OpenDataSoft mapping: a dataset stored before kept 'unknown' until `--full`."""
    datasets = make_ods_datasets(5)
    for dataset in datasets:
        dataset["metas"]["dcat"]["accrualperiodicity"] = "variable"
    with OpenDataSoftPortal(datasets) as portal:
        assert_an_unread_frequency_stored_as_unknown_is_re_mapped_once(
            store, http, portal_config("ods", "opendatasoft", portal.url), OpenDataSoftAdapter, 1)


# French portals' update frequencies as they word them (OpenDataSoft's `accrualperiodicity` is free
# text; data.gouv.fr's labels), each to the frequency its English word maps to
FRENCH_FREQUENCIES = {
    "Quotidienne": "R/P1D", "Hebdomadaire": "R/P1W", "Mensuelle": "R/P1M", "Trimestrielle": "R/P3M",
    "Semestrielle": "R/P6M", "Annuelle": "R/P1Y", "Temps réel": "R/PT1S", "Ponctuelle": "irregular",
    "Irrégulière": "irregular", "Mise à jour quotidienne": "R/P1D",
}


def test_french_update_frequencies_are_read_and_stored_ones_re_mapped_once(store, http):
    """French portals' frequencies ("Quotidienne", "Temps réel", "Ponctuelle"...) were stored null,
    each with an 'unrecognised update frequency' warning. They map as their English words do; a
    catalogue stored by mapping 2 (null) is re-mapped once, the first night after."""
    assert_frequencies_read_and_re_mapped_once(store, http, FRENCH_FREQUENCIES, stored_by=2)


def assert_frequencies_read_and_re_mapped_once(store, http, frequencies: dict, stored_by: int) -> None:
    """Datasets saying each of `frequencies`, stored by mapping `stored_by` (null), are re-mapped
    once, the first night after, to the frequency each maps to, with no warning."""
    datasets = make_ods_datasets(len(frequencies))
    for dataset, said in zip(datasets, frequencies):
        dataset["metas"]["dcat"]["accrualperiodicity"] = said
    expected = {d["dataset_id"]: frequencies[d["metas"]["dcat"]["accrualperiodicity"]] for d in datasets}
    with OpenDataSoftPortal(datasets) as portal:
        config = portal_config("ods", "opendatasoft", portal.url)
        with pytest.MonkeyPatch.context() as patch:   # the catalogue as that mapping stored it
            patch.setattr(OpenDataSoftAdapter, "mapping_version", stored_by)
            patch.setattr(opendatasoft.R, "periodicity", lambda value, notes=None, field_name="": None)
            before = harvest([config], store, http).portals[0]
        assert before.new == len(datasets) and count(store, "SELECT count(accrual_periodicity) FROM datasets") == 0
        upgraded = harvest([config], store, http).portals[0]
        after = harvest([config], store, http).portals[0]
    assert (upgraded.changed, after.changed, after.unchanged) == (len(datasets), 0, len(datasets))
    stored = dict(store.con.execute("SELECT source_id, accrual_periodicity FROM datasets").fetchall())
    assert stored == expected
    assert count(store, "SELECT count(*) FROM harvest_errors WHERE message LIKE 'accrual_periodicity%'") == 0


# more French frequencies (session 34): udata's labels, the EU vocabulary's and ISO 19115's, portals' own
FRENCH_FREQUENCIES_34 = {
    "Au fil de l'eau": "R/PT1S", "Au fil de l’eau": "R/PT1S", "Plusieurs fois par jour": "R/PT12H",
    "Mise à jour plusieurs fois par jour": "R/PT12H", "Quatre fois par jour": "R/PT6H",
    "Trois fois par jour": "R/PT8H", "Quatre fois par semaine": "R/P2D", "Toutes les deux semaines": "R/P2W",
    "Tous les 15 jours": "R/P2W", "Toutes les 15 minutes": "R/PT15M", "Tous les deux ans": "R/P2Y",
    "Sans régularité": "irregular", "Quand nécessaire": "irregular", "Mise à jour continue": "R/PT1S",
    "Autre": "irregular",
}


def test_more_french_update_frequencies_are_read_and_stored_ones_re_mapped_once(store, http):
    """Session 33 read "Quotidienne", "Temps réel"…; "Au fil de l'eau", "Plusieurs fois par jour", udata's
    "Quatre fois par jour", "Sans régularité", "Toutes les 15 minutes"… were still stored null, each with
    an 'unrecognised update frequency' warning. They are read; a catalogue stored by mapping 3 is re-mapped
    once, the first night after. Words that say other things in a sentence are not read from one."""
    assert_frequencies_read_and_re_mapped_once(store, http, FRENCH_FREQUENCIES_34, stored_by=3)
    for sentence in ("Mise à jour par une autre direction", "La série continue"):
        assert opendatasoft.R.periodicity(sentence) is None


# English counts in a period (session 35), and NYC's "Every weekday" and "To be determined"
ENGLISH_FREQUENCIES_35 = {
    "Twice weekly": "R/P3D", "Data are updated multiple times per hour": "R/PT30M", "Twice a day": "R/PT12H",
    "Updated three times a week": "R/P2D", "Several times a month": "R/P0.5M", "Four times a year": "R/P3M",
    "Every weekday": "R/P1D", "To be determined": "unknown",
}


def test_english_counts_in_a_period_are_read_and_stored_ones_re_mapped_once(store, http):
    """"Twice weekly" was read as weekly, "multiple times per hour", "three times a week", "Every weekday"
    and "To be determined" not at all (null, with a warning); OpenDataSoft mapping 5 re-maps a catalogue
    stored by 4 the first night after. ("Twice weekly" read as weekly was stored null here: the test's
    mapping 4 reads nothing.)"""
    assert_frequencies_read_and_re_mapped_once(store, http, ENGLISH_FREQUENCIES_35, stored_by=4)
