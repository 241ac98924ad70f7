"""CKAN field mapping, asserted on real package dicts."""
import pytest

from catalog.record import Notes
from harvester.config import PortalConfig
from harvester.http import HttpClient
from harvester.portals.ckan import CkanAdapter, markdown_to_text
from tests.shared_fixtures import load_json, require_fixtures

PORTAL = PortalConfig(id="bham", city="Birmingham", kind="ckan", url="https://data.birmingham.gov.uk")


@pytest.fixture(scope="module")
def adapter():
    require_fixtures()
    return CkanAdapter(PORTAL, HttpClient())


def test_birmingham_package_maps_every_field(adapter):
    raw = load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"][0]
    notes = Notes()
    rec = adapter.map(raw, None, notes)
    assert rec["source_id"] == "cf552d08-cee9-43bf-8c0f-3196a9311799"
    assert rec["title"] == raw["title"] and rec["description"]
    assert rec["identifier"] == f"https://data.birmingham.gov.uk/dataset/{raw['name']}"
    assert rec["landing_page"] == rec["identifier"]
    assert rec["keywords"] == [t["display_name"] for t in raw["tags"]]
    assert rec["themes"] == [g["title"] for g in raw["groups"]]
    assert rec["publisher"] == raw["organization"]["title"]
    assert rec["contact_name"] == "Ian Martin" and rec["contact_email"] == "ian.martin@birmingham.gov.uk"
    assert rec["issued"] == "2014-12-01T10:29:19.414595Z" and rec["modified"] == "2021-01-15T10:25:28.638659Z"
    assert rec["license"] == "http://reference.data.gov.uk/id/open-government-licence"   # license_url first
    assert rec["description"].startswith("Under the Code of Recommended Practice")
    assert rec["access_level"] == "public" and rec["asset_type"] == "dataset"
    assert len(rec["distributions"]) == len(raw["resources"])
    first = rec["distributions"][0]
    assert first["format"] == "XLS" and first["download_url"].endswith("purchasecardtransactionsapril2014.xls")
    assert first["title"] == "Purchase Card transactions - April 2014"


def test_multilingual_opendata_swiss_package(adapter):
    raw = load_json("ckan/opendata-swiss-package_show-bfs-national-votes.json")["result"]
    rec = adapter.map(raw, None, Notes())
    assert rec["title"] == "Real-time data on federal popular votes"          # English of the dict
    assert rec["description"].startswith("Web service for real-time results on voting Sunday")
    assert "### " not in rec["description"] and "Documentation (new, 19 February 2026) (https://" in rec["description"]
    assert rec["publisher"] == "Federal Statistical Office FSO"
    assert rec["accrual_periodicity"] == "R/PT1S"                              # EU vocabulary CONT
    assert rec["contact_name"].startswith("Bundesamt für Statistik BFS")      # JSON inside a string, first language
    assert rec["keywords"] == raw["keywords"]["en"]                          # English, not 63 mixed tags


def test_zurich_update_intervals_in_german_map_to_dcat_us_periodicity(adapter):
    # Stadt Zurich's CKAN says how often a dataset changes in `updateInterval`, in German:
    # it was not read (every dataset's accrual_periodicity was null)
    packages = load_json("ckan/zurich-stadt-package_search-verkehr.json")["results"] + \
        load_json("ckan/zurich-stadt-group_show-mobilitat.json")["packages"]
    mapped = {}
    for raw in packages:
        notes = Notes()
        mapped[raw["updateInterval"][0]] = adapter.map(raw, None, notes)["accrual_periodicity"]
        assert not [field for field, _ in notes.items if field == "accrual_periodicity"]
    assert mapped == {"sporadisch oder unregelmaessig": "irregular", "jaehrlich": "R/P1Y",
                      "laufend": "R/PT1S"}                     # (the city's own DCAT export: continuous)


@pytest.mark.parametrize("interval, expected", [
    ("taeglich", "R/P1D"), ("täglich", "R/P1D"), ("woechentlich", "R/P1W"), ("vierzehntaeglich", "R/P2W"),
    ("monatlich", "R/P1M"), ("quartalsweise", "R/P3M"), ("halbjährlich", "R/P6M"), ("Jährlich", "R/P1Y"),
    ("alle 4 Jahre", "R/P4Y"), ("stuendlich", "R/PT1H"), ("Echtzeit", "R/PT1S"), ("laufende Nachfuehrung", "R/PT1S"),
    ("keines", "unknown"), ("keine Nachführung", "unknown"), ("sporadisch oder unregelmässig", "irregular"),
    ("wird jährlich aktualisiert", "R/P1Y"), ("   ", None)])   # (Zurich's vocabulary has a blank one)
def test_german_update_intervals(interval, expected):
    from catalog.record import periodicity
    assert periodicity(interval) == expected


def test_envidat_people_given_as_json_strings(adapter):
    raw = load_json("ckan/envidat-ch-package_show.json")["result"]
    rec = adapter.map(raw, None, Notes())
    assert rec["contact_email"] == "data@slf.ch"
    assert rec["title"] == "Fatal avalanche accidents in Switzerland since 1936/37"
    assert "**" not in rec["description"]


def test_datastore_fields_become_columns(adapter):
    raw = load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"][0]
    fields = [{"id": "_id", "type": "int"}, {"id": "amount", "type": "numeric", "info": {"label": "Amount"}},
              {"id": "paid_on", "type": "timestamp"}, {"id": "merchant", "type": "text"},
              {"id": "n", "type": "int4"}, {"id": "shape", "type": "geometry"}, {"id": "odd", "type": "tsvector"}]
    rec = adapter.map(raw, {"datastore": {"resource_id": "r", "fields": fields}}, Notes())
    assert [(c["field_name"], c["type"]) for c in rec["columns"]] == [
        ("amount", "number"), ("paid_on", "datetime"), ("merchant", "text"), ("n", "integer"),
        ("shape", "geometry"), ("odd", "other")]
    assert rec["columns"][0]["name"] == "Amount"


def test_markdown_to_text():
    assert markdown_to_text("## Title\r\n**Bold** and *it* with [a link](https://x.org \"t\")\n* item") == \
        "Title\nBold and it with a link (https://x.org)\n- item"


@pytest.mark.parametrize("time_range, period, warned", [
    ("14.12.2025", ("2025-12-14T00:00:00Z", "2025-12-14T00:00:00Z"), []),   # recorded: the data's state that day
    ("Laufende Nachführung", (None, None), []),                               # recorded: kept up to date
    ("2010-2020", ("2010-01-01T00:00:00Z", "2020-12-31T00:00:00Z"), []),       # years, as the city's DCAT reads them
    ("2015", ("2015-01-01T00:00:00Z", "2015-12-31T00:00:00Z"), []),
    ("seit Jahren", (None, None), [("temporal", "not a date/time: 'seit Jahren'")])])
def test_zurich_time_range_is_the_period(adapter, time_range, period, warned):
    """Stadt Zürich's timeRange was not read: a date, a year or years are the data's period (its
    DCAT export reads years; a date is a day), "Laufende Nachführung" none, and says nothing wrong."""
    require_fixtures()
    raw = load_json("ckan/zurich-stadt-package_search-verkehr.json")["results"][1]
    raw["timeRange"] = time_range
    notes = Notes()
    rec = adapter.map(raw, None, notes)
    assert (rec["temporal_start"], rec["temporal_end"]) == period and notes.items == warned
    assert rec["modified"] == "2025-12-14T00:00:00Z" and rec["issued"] == "2022-07-05T13:55:52.879293Z"


def harvested_from_data_json(extras: list[dict]) -> dict:
    """Birmingham's recorded package with the DCAT-US extras a CKAN harvest of a data.json document
    gives it: data.gov's harvester (GSA/datagov-harvester) keeps the document's `modified` as the
    `modified` extra, "R/P1W" included."""
    raw = load_json("ckan/birmingham-uk-package_search-purchase-card.json")["result"]["results"][0]
    return {**raw, "extras": [{"key": "accessLevel", "value": "public"}, *extras]}


def test_a_modified_extra_that_is_a_repeating_interval_gives_the_frequency_and_the_record_s_day(adapter):
    """A `modified` extra of "R/P1W" (DCAT-US 1.1's "updated continually, weekly") names no day: the
    package's `modified` is the CKAN record's own metadata_modified, with a warning naming it, and the
    interval is its frequency where the package gives none (as DCAT-US reads it since session 36).
    Before session 37 CKAN read it as a date: `modified` null ("not a date/time") and no frequency."""
    notes = Notes()
    rec = adapter.map(harvested_from_data_json([{"key": "modified", "value": "R/P1W"}]), None, notes)
    assert (rec["modified"], rec["accrual_periodicity"]) == ("2021-01-15T10:25:28.638659Z", "R/P1W")
    assert notes.items == [("modified", "a repeating interval 'R/P1W' (updated continually), not a date: the CKAN "
                                        "record's metadata_modified stored instead, and read as the update frequency "
                                        "(the entry gives none)")]
    notes = Notes()   # the package's own frequency is the one read
    rec = adapter.map(harvested_from_data_json([{"key": "modified", "value": "R/P1D"},
                                                {"key": "accrualPeriodicity", "value": "R/P1M"}]), None, notes)
    assert (rec["modified"], rec["accrual_periodicity"]) == ("2021-01-15T10:25:28.638659Z", "R/P1M")
    assert notes.items == [("modified", "a repeating interval 'R/P1D' (updated continually), not a date: the CKAN "
                                        "record's metadata_modified stored instead")]
    notes = Notes()   # a date extra: as before, the dataset's own day
    rec = adapter.map(harvested_from_data_json([{"key": "modified", "value": "2020-03-04"}]), None, notes)
    assert (rec["modified"], rec["accrual_periodicity"], notes.items) == ("2020-03-04T00:00:00Z", None, [])
