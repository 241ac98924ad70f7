"""Socrata field mapping, asserted field by field on real Discovery entries."""
import copy

import pytest

from catalog.record import Notes
from harvester.config import PortalConfig
from harvester.http import HttpClient
from harvester.portals.socrata import SocrataAdapter
from tests.shared_fixtures import load_json, require_fixtures

PORTAL = PortalConfig(id="chicago", city="Chicago", kind="socrata", url="https://data.cityofchicago.org")


@pytest.fixture(scope="module")
def adapter():
    require_fixtures()
    return SocrataAdapter(PORTAL, HttpClient())


def entry(path, source_id):
    return next(r for r in load_json(path)["results"] if r["resource"]["id"] == source_id)


def test_dataset_entry_maps_every_field(adapter):
    raw = entry("socrata-catalog/chicago-discovery-p1-a.json", "xzkq-xp2w")
    notes = Notes()
    rec = adapter.map(raw, None, notes)
    assert rec["source_id"] == "xzkq-xp2w"
    assert rec["identifier"] == "https://data.cityofchicago.org/api/views/xzkq-xp2w"
    assert rec["title"] == "Current Employee Names, Salaries, and Position Titles"
    assert rec["description"].startswith("This dataset is a listing of all active City of Chicago employees")
    assert rec["keywords"] == ["personnel"]                       # tags + domain_tags
    assert rec["themes"] == ["Administration & Finance"]           # categories + domain_category
    assert rec["publisher"] == "City of Chicago"                   # attribution
    assert rec["issued"] == "2011-09-27T20:18:55Z"                 # createdAt
    assert rec["modified"] == "2025-08-25T04:49:06Z"               # latest of data/metadata updated
    assert rec["accrual_periodicity"] == "R/P1D"                   # domain metadata "Data are updated daily"
    assert rec["license"] == "See Terms of Use"
    assert rec["access_level"] == "public"
    assert rec["landing_page"] == "https://data.cityofchicago.org/d/xzkq-xp2w"   # permalink
    assert rec["asset_type"] == "dataset" and rec["parent_uid"] is None
    assert [d["download_url"] for d in rec["distributions"]] == [
        "https://data.cityofchicago.org/resource/xzkq-xp2w.csv", "https://data.cityofchicago.org/resource/xzkq-xp2w.json"]
    assert [(c["field_name"], c["type"], c["source_type"]) for c in rec["columns"][:4]] == [
        ("annual_salary", "number", "Number"), ("typical_hours", "number", "Number"),
        ("hourly_rate", "number", "Number"), ("name", "text", "Text")]
    assert rec["columns"][0]["description"].startswith("Annual salary rates")
    assert [c["position"] for c in rec["columns"]] == list(range(8))
    assert notes.items == []


def test_story_keeps_its_type_without_distributions(adapter):
    raw = entry("socrata-catalog/us-discovery-only-dataset-story.json", "q5as-kyim")
    rec = adapter.map(raw, None, Notes())
    assert rec["asset_type"] == "story" and rec["distributions"] == [] and rec["columns"] == []
    assert rec["accrual_periodicity"] == "unknown"  # "Not updated (historical data)"


def test_derived_view_points_at_its_parent(adapter):
    raw = copy.deepcopy(entry("socrata-catalog/chicago-discovery-p1-a.json", "xzkq-xp2w"))
    raw["resource"].update(id="abcd-1234", type="filter", parent_fxf=["xzkq-xp2w"])
    rec = adapter.map(raw, None, Notes())
    assert rec["asset_type"] == "filtered_view" and rec["parent_uid"] == "chicago:xzkq-xp2w"
    raw["resource"]["type"] = "href"
    assert adapter.map(raw, None, Notes())["asset_type"] == "link"


def test_columns_fall_back_to_the_views_document(adapter):
    views = load_json("socrata-views/seattle-3k2p-39jp-spd-911.json")
    raw = copy.deepcopy(entry("socrata-catalog/chicago-discovery-p1-a.json", "xzkq-xp2w"))
    for key in ("columns_name", "columns_field_name", "columns_datatype", "columns_description"):
        raw["resource"][key] = []
    rec = adapter.map(raw, {"views": views}, Notes())
    assert len(rec["columns"]) == len([c for c in views["columns"] if not c["fieldName"].startswith(":")])
    assert rec["columns"][0]["field_name"] == "cad_cdw_id" and rec["columns"][0]["type"] == "text"
    assert rec["row_count"] == 1257418


def test_views_types_of_every_kind_map_to_the_vocabulary(adapter):
    views = load_json("socrata-views/soda-demo-2asz-g9qq-all-datatypes.json")
    raw = copy.deepcopy(entry("socrata-catalog/chicago-discovery-p1-a.json", "xzkq-xp2w"))
    raw["resource"]["columns_field_name"] = []
    types = {c["field_name"]: c["type"] for c in adapter.map(raw, {"views": views}, Notes())["columns"]}
    assert types["number_column"] == "number" and types["money_column"] == "number"
    assert types["date_time_column"] == "datetime" and types["location_column"] == "point"
    assert types["website_url_column"] == "url" and types["checkbox_column"] == "boolean"
    assert types["photo_column"] == "other"
    assert not any(name.startswith(":") for name in types)


def test_volatile_counters_do_not_change_the_hash_view(adapter):
    raw = entry("socrata-catalog/chicago-discovery-p1-a.json", "xzkq-xp2w")
    busier = copy.deepcopy(raw)
    busier["resource"]["page_views"]["page_views_total"] += 1000
    busier["resource"]["download_count"] += 5
    assert adapter.hash_view(raw, None) == adapter.hash_view(busier, None)
    renamed = copy.deepcopy(raw)
    renamed["resource"]["name"] = "Employees"
    assert adapter.hash_view(raw, None) != adapter.hash_view(renamed, None)


def test_a_hash_view_cut_in_place_hashes_as_the_copied_one(adapter):
    """A mapping worker gives up the entry once its record is made: its hash view is cut in
    place (no copy), and the raw hash is the one a copy gives (and the catalogue holds)."""
    from catalog.stage import canonical_json_bytes, content_hash
    from harvester.mapping import mapping_namespace, raw_hash

    raw = entry("socrata-catalog/chicago-discovery-p1-a.json", "xzkq-xp2w")
    details = {"views": {**load_json("socrata-views/soda-demo-2asz-g9qq-all-datatypes.json"), "viewCount": 7}}
    kept, kept_details = copy.deepcopy(raw), copy.deepcopy(details)
    expected = content_hash(mapping_namespace(adapter), canonical_json_bytes(adapter.hash_view(raw, details)))
    assert raw == kept and details == kept_details   # a view not owned leaves the entry whole
    assert raw_hash(adapter, raw, details) == expected
    given, given_details = copy.deepcopy(raw), copy.deepcopy(details)
    assert raw_hash(adapter, given, given_details, True) == expected
    assert "page_views" in raw["resource"] and "page_views" not in given["resource"]   # cut in place
    assert "viewCount" not in given_details["views"]


def test_ragged_catalog_columns_are_cleaned_like_any_text(adapter):
    """The columns' hot loop cleans strings inline and remembers each datatype it met:
    other values (numbers, objects, lists, null) and repeated types must map as `R.text`
    and the vocabulary say, in every position."""
    resource = {
        "id": "abcd-1234", "name": "Ragged", "type": "dataset",
        "columns_field_name": [" a ", ":id", 7, "b", None, {"en": " c "}, "d"],
        "columns_name": ["A", "Id", " ", 3.5],
        "columns_datatype": [" Calendar date ", "Text", ["x"], {"en": "Number"}, "Calendar date", 12, " Calendar date "],
        "columns_description": ["", "x", "<b>bold</b> &amp; more", None, "  plain  ", 0],
    }
    for _ in range(2):   # the second time from the remembered datatypes
        columns = adapter.map({"resource": copy.deepcopy(resource)}, None, Notes())["columns"]
        assert [(c["position"], c["name"], c["field_name"], c["type"], c["source_type"], c["description"])
                for c in columns] == [
            (0, "A", "a", "datetime", "Calendar date", None),
            (1, None, "7", "other", None, "bold & more"),
            (2, "3.5", "b", "number", "Number", None),
            (3, None, None, "datetime", "Calendar date", "plain"),
            (4, None, "c", "other", "12", "0"),
            (5, None, "d", "datetime", "Calendar date", None),
        ]


def test_modified_is_the_latest_stamp_and_each_bad_one_is_noted(adapter):
    notes = Notes()
    resource = {"id": "abcd-1234", "name": "Stamps", "data_updated_at": "2020-01-02T03:04:05.000Z",
                "metadata_updated_at": "2021-06-01", "updatedAt": "2020-01-02T03:04:05.000Z"}
    assert adapter.map({"resource": resource}, None, notes)["modified"] == "2021-06-01T00:00:00Z"
    assert notes.items == []
    resource.update(data_updated_at="soon", metadata_updated_at="soon", updatedAt=None)
    assert adapter.map({"resource": resource}, None, notes)["modified"] is None
    assert notes.items == [("modified", "not a date/time: 'soon'")] * 2


def test_keywords_and_themes_join_both_sources_once_each(adapter):
    notes = Notes()
    rec = adapter.map({"resource": {"id": "abcd-1234", "name": "Lists"},
                       "classification": {"tags": "crime, roads ,crime", "domain_tags": ["roads", " bus ", 5, None],
                                          "categories": "Parks, Recreation", "domain_category": 3}}, None, notes)
    assert rec["keywords"] == ["crime", "roads", "bus", "5"]
    assert rec["themes"] == ["Parks, Recreation"]
    assert notes.items == [("themes", "expected a list, got int")]


def test_domain_metadata_in_other_words_gives_license_frequency_and_coverage(adapter):
    """Recorded entries whose domain metadata names its fields in other words: Calgary's license
    address ("License/Attribution_License-URL", where the catalogue says "See Terms of Use"), the
    Generalitat de Catalunya's update frequency and geographic scope ("Freqüència d'actualització":
    "Diària", "Actualització_Periodicitat": "Diari", "Àmbit geogràfic"), an Italian domain's
    "Frequenza": "Giornaliera". Each was stored null (the license as "See Terms of Use"): 7 of the
    95 recorded Discovery entries change (Socrata mapping 4), none of the 7,187 reshaped ones."""
    def mapped(path, source_id):
        notes = Notes()
        rec = adapter.map(entry(path, source_id), None, notes)
        assert notes.items == []
        return rec["license"], rec["accrual_periodicity"], rec["spatial"]

    eu, us = "socrata-catalog/eu-discovery-p1.json", "socrata-catalog/us-discovery-mixed-c.json"
    assert mapped(us, "y3tg-gbwj") == ("https://data.calgary.ca/d/Open-Data-Terms/u45n-7awa", "R/P6M", None)
    assert mapped(eu, "gn9e-3qhr") == ("See Terms of Use", "R/P1D", "Conques internes de Catalunya")
    assert mapped(eu, "qtv3-9x52") == ("Creative Commons Attribution 4.0 International", "R/P1D", None)
    assert mapped(eu, "jj6z-iyrp") == ("See Terms of Use", "unknown", "Catalunya")   # "Dades estàtiques"
    assert mapped(eu, "b4zx-cfga") == ("See Terms of Use", "R/P1Y", "Catalunya")     # "Anual"
    # the section's name is no field's: "Frequenza_di_aggiornamento_Data-ultima-modifica" is a date
    assert mapped(eu, "avft-pty4") == ("Creative Commons 1.0 Universal (Public Domain Dedication)", "R/P1D", None)
    # the catalogue's license name is kept over the domain's field naming one ("Licentie": CC0)
    assert mapped(eu, "m9d7-ebf2")[0] == "Public Domain"


def common_core(source_id, path="socrata-catalog/us-discovery-mixed-b.json", **fields):
    """A recorded entry whose domain gives DCAT-US Common Core fields, those named set ("Issued":
    Common-Core_Issued), a field given None removed."""
    raw = copy.deepcopy(entry(path, source_id))
    metadata = [m for m in raw["classification"]["domain_metadata"]
                if m["key"].removeprefix("Common-Core_") not in fields]
    raw["classification"]["domain_metadata"] = metadata + [{"key": f"Common-Core_{key}", "value": value}
                                                           for key, value in fields.items() if value is not None]
    return raw


def test_common_core_issued_publisher_theme_and_access_level_where_the_catalogue_has_none(adapter):
    """A domain's DCAT-US Common Core fields (what its data.json gives) beside the catalogue's own:
    `Issued` was never read (issued was the asset's creation, whatever day the publisher says it
    was issued), nor `Publisher`, `Theme` or `Public-Access-Level` (always "public"). The recorded
    entries keep their values (none of the 95 changes: each says what the catalogue does, its
    Issued the day of its creation); where they differ or the catalogue has none, the domain's."""
    def mapped(raw):
        notes = Notes()
        rec = adapter.map(raw, None, notes)
        return (rec["issued"], rec["publisher"], rec["themes"], rec["access_level"]), notes.items

    recorded = entry("socrata-catalog/us-discovery-mixed-b.json", "9bhg-hcku")
    assert mapped(recorded) == (("2020-05-01T16:01:23Z", "NCHS/DVS", ["National Center for Health Statistics"],
                                 "public"), [])   # Common-Core_Issued "2020-05-01": the day it was created
    # issued another day than the asset was made (a draft published later, a dataset moved here)
    assert mapped(common_core("9bhg-hcku", Issued="2019-03-01"))[0][0] == "2019-03-01T00:00:00Z"
    assert mapped(common_core("9bhg-hcku", Issued="soon")) == (
        ("2020-05-01T16:01:23Z", "NCHS/DVS", ["National Center for Health Statistics"], "public"),
        [("issued", "not a date/time: 'soon'")])
    without_attribution = common_core("9bhg-hcku", **{"Public-Access-Level": "restricted public"})
    without_attribution["resource"]["attribution"] = None
    assert mapped(without_attribution)[0][1:] == ("National Center for Health Statistics",
                                                  ["National Center for Health Statistics"], "restricted public")
    uncategorised = copy.deepcopy(entry("socrata-catalog/us-discovery-mixed-b.json", "rxn6-qnx8"))
    uncategorised["classification"]["domain_category"] = None
    assert mapped(uncategorised)[0][2] == ["Health"]                  # Common-Core_Theme
    assert mapped(common_core("rxn6-qnx8", **{"Public-Access-Level": "open"})) == (
        ("2021-12-28T15:47:44Z", "U.S. Department of Health & Human Services", ["Health"], "public"),
        [("access_level", "not a DCAT-US access level: 'open'")])


def test_common_core_last_update_is_not_read_for_modified(adapter):
    """A guard of session 38's decision (it passes on the code before it): the domain's Common Core
    "Last-Update" is a date the publisher typed; the one recorded entry that gives one (HHS's
    COVID-19 Public Therapeutic Locator, listed in two recordings) says "March 21, 2022, 14:16",
    before its own publication (31 March 2022) and where Socrata's stamps say its data changed on
    31 January 2024 and its metadata on 3 July 2025. `modified` stays the latest system stamp, with
    no note, whatever the field says (a later date, too: one the publisher plans)."""
    def modified(raw):
        notes = Notes()
        return adapter.map(raw, None, notes)["modified"], notes.items

    for path in ("socrata-catalog/us-discovery-mixed-b.json", "socrata-catalog/us-discovery-only-dataset-story.json"):
        recorded = entry(path, "rxn6-qnx8")
        stated = {m["key"]: m["value"] for m in recorded["classification"]["domain_metadata"]}
        assert stated["Common-Core_Last-Update"] == "March 21, 2022, 14:16"
        assert recorded["resource"]["data_updated_at"] == "2024-01-31T09:30:24.000Z"
        assert modified(recorded) == ("2025-07-03T14:26:28Z", [])
    assert modified(common_core("rxn6-qnx8", **{"Last-Update": "2030-01-01"})) == ("2025-07-03T14:26:28Z", [])


@pytest.mark.parametrize("path, source_id, frequency", [
    ("socrata-catalog/chicago-discovery-transportation-p1.json", "ygr5-vcbg", "R/PT30M"),
    ("socrata-catalog/chicago-discovery-transportation-p1.json", "5k2z-suxx", "R/PT30M"),
    ("socrata-catalog/chicago-nygov-discovery-p1.json", "5xaw-6ayf", "R/P3D")])
def test_recorded_frequencies_counted_in_a_period(adapter, path, source_id, frequency):
    """Chicago's "Data are updated multiple times per hour" (null, with a warning) and New York's
    "Twice weekly" (read as weekly) in the recorded entries."""
    notes = Notes()
    assert adapter.map(entry(path, source_id), None, notes)["accrual_periodicity"] == frequency
    assert not [field for field, _ in notes.items if field == "accrual_periodicity"]
