"""DCAT-US field mapping: v1.1, the legacy pre-1.1 array and ArcGIS Hub feeds."""
import copy

import pytest

from catalog.record import Notes
from harvester.config import PortalConfig
from harvester.http import HttpClient
from harvester.portals.dcat_us import DcatUsAdapter, arcgis_item_id
from tests.shared_fixtures import load_json, require_fixtures

PORTAL = PortalConfig(id="city", city="City", kind="dcat-us", url="https://example.org/data.json")


@pytest.fixture(scope="module")
def adapter():
    require_fixtures()
    return DcatUsAdapter(PORTAL, HttpClient())


def test_v11_entry_maps_every_field(adapter):
    raw = load_json("dcat-us/evian-fr-arcgis-hub-data.json")["dataset"][0]
    rec = adapter.map(raw, None, Notes())
    assert rec["source_id"] == "f6565516d1354383b25793e630cf3f2b_5"   # Hub item id, not the URL
    assert rec["identifier"] == "https://www.arcgis.com/home/item.html?id=f6565516d1354383b25793e630cf3f2b&sublayer=5"
    assert rec["title"] == "stationnement velos"
    assert rec["description"] == "Emplacement et description des stationnement vélos à Evian-les-Bains"  # HTML → text
    assert rec["keywords"] == ["mobilite"] and rec["themes"] == ["geospatial"]
    assert rec["publisher"] == "Ville d'Evian-les-Bains" and rec["contact_name"] == "sigevian"
    assert rec["issued"] == "2022-07-29T10:07:13Z" and rec["modified"] == "2022-07-29T11:29:07.556000Z"
    assert rec["access_level"] == "public" and rec["spatial"] == "6.5735,46.3912,6.6069,46.4028"
    assert rec["license"].startswith("Soumis à la licence Etalab")
    assert rec["landing_page"].endswith("/maps/f6565516d1354383b25793e630cf3f2b_5")
    assert rec["asset_type"] == "dataset"
    formats = [(d["format"], d["media_type"]) for d in rec["distributions"]]
    assert ("CSV", "text/csv") in formats and ("ARCGIS GEOSERVICES REST API", "application/json") not in formats
    geoservice = next(d for d in rec["distributions"] if "FeatureServer" in (d["access_url"] or ""))
    assert geoservice["format"] == "ArcGIS GeoServices REST API"


def test_philadelphia_contact_point_and_null_fields(adapter):
    document = load_json("dcat-us/philadelphia-opendataphilly-data.json")
    raw = document["dataset"][0]
    rec = adapter.map(raw, None, Notes())
    assert rec["contact_name"] == "City of Philadelphia Open Data Program"
    assert rec["contact_email"] == "maps@phila.gov"          # mailto: stripped
    assert rec["modified"] is None                           # null in the source stays null
    notes = Notes()
    bad = copy.deepcopy(document["dataset"][0])
    bad["modified"] = "last Tuesday"
    assert adapter.map(bad, None, notes)["modified"] is None
    assert notes.items == [("modified", "not a date/time: 'last Tuesday'")]


def test_a_modified_that_is_a_repeating_interval_is_the_frequency_not_a_date(adapter):
    """DCAT-US 1.1 lets `modified` say a dataset is updated continually by a repeating interval
    ("R/P1D" for daily: its schema's second pattern, Project Open Data's guidance). Philadelphia's 11
    such datasets give no accrualPeriodicity: their `modified` was null with a warning calling it no
    date, their frequency null; now the frequency is R/P1D, `modified` still null (no day is named),
    the warning saying so. A frequency the entry gives is kept."""
    datasets = load_json("dcat-us/philadelphia-opendataphilly-data.json")["dataset"]
    continual = [d for d in datasets if d.get("modified") == "R/P1D"]
    assert len(continual) == 11 and not any(d.get("accrualPeriodicity") for d in continual)
    for dataset in continual:
        notes = Notes()
        rec = adapter.map(dataset, None, notes)
        assert (rec["modified"], rec["accrual_periodicity"]) == (None, "R/P1D")
        assert notes.items == [("modified", "a repeating interval 'R/P1D' (updated continually), not a date: "
                                            "stored as null, and read as the update frequency (the entry gives none)")]
    weekly = {**continual[0], "modified": "R/PT5M", "accrualPeriodicity": "R/P1W"}
    notes = Notes()
    rec = adapter.map(weekly, None, notes)
    assert (rec["modified"], rec["accrual_periodicity"]) == (None, "R/P1W")
    assert notes.items == [("modified", "a repeating interval 'R/PT5M' (updated continually), not a date: "
                                        "stored as null")]
    legacy = {**continual[0], "modified": "R/P1M", "frequency": "weekly"}    # pre-1.1's name for it
    assert adapter.map(legacy, None, Notes())["accrual_periodicity"] == "R/P1W"
    # no repeating interval: as before (a bare duration, a repeat count, an interval of dates)
    for value in ("P1D", "R5/P1D", "R/P", "R/2020-01-01/P1D"):
        notes = Notes()
        rec = adapter.map({**continual[0], "modified": value}, None, notes)
        assert (rec["modified"], rec["accrual_periodicity"]) == (None, None)
        assert notes.items == [("modified", f"not a date/time: {value!r}")]


def legacy_to_v11(entry):
    """The official POD 1.0 → 1.1 field mapping, applied by hand; Socrata's own `feed` (no POD 1.0
    field) as the distribution civicat reads it as, and its `created` left out (each the day of the
    entry's releaseDate)."""
    v11 = {k: v for k, v in entry.items()
           if k not in ("accessURL", "format", "webService", "keyword", "keywords", "releaseDate", "distribution",
                        "created", "feed", "frequency")}
    v11["keyword"] = entry["keywords"] if "keywords" in entry else entry["keyword"].split(",")
    v11["issued"] = entry["releaseDate"]
    v11["accessLevel"] = entry["accessLevel"].lower()
    v11["distribution"] = [{"downloadURL": d["accessURL"], "mediaType": d["formats"][0]["value"],
                            "format": d["formats"][0]["label"]} for d in entry["distribution"]]
    if "webService" in entry:
        v11["distribution"].append({"accessURL": entry["webService"], "format": "API"})
    if "feed" in entry:
        v11["distribution"].append({"downloadURL": entry["feed"], "mediaType": "application/rss+xml", "format": "RSS"})
    return v11


def test_legacy_and_v11_forms_give_the_same_record(adapter):
    document = load_json("dcat-us/socrata-pod-2013-08-28/data.seattle.gov.json")
    compared = 0
    for entry in document[1:]:
        if "distribution" not in entry:
            continue
        legacy = adapter.map(copy.deepcopy(entry), None, Notes())
        modern = adapter.map(legacy_to_v11(entry), None, Notes())
        assert legacy == modern, entry["identifier"]
        compared += 1
    assert compared >= 160
    sample = adapter.map(document[1], None, Notes())
    assert sample["keywords"] == ["crime", "violent", "seattle"] and sample["issued"] == "2009-11-23T00:00:00Z"
    assert sample["distributions"][0] == {
        "title": None, "format": "CSV", "media_type": "text/csv", "access_url": None,
        "download_url": "https://data.seattle.gov/api/views/e3zj-s4zh/rows.csv?accessType=DOWNLOAD"}
    assert [(d["format"], d["access_url"], d["download_url"]) for d in sample["distributions"][-2:]] == [
        ("API", "https://data.seattle.gov/resource/e3zj-s4zh", None),
        ("RSS", None, "https://data.seattle.gov/api/views/e3zj-s4zh/rows.rss")]


def test_legacy_self_description_is_kept_as_a_catalog_asset(adapter):
    first = load_json("dcat-us/socrata-pod-2013-08-28/data.seattle.gov.json")[0]
    rec = adapter.map(first, None, Notes())
    assert rec["asset_type"] == "catalog" and rec["accrual_periodicity"] == "R/PT1H"


@pytest.mark.parametrize("identifier, landing, expected", [
    ("https://www.arcgis.com/home/item.html?id=f6565516d1354383b25793e630cf3f2b&sublayer=5", None,
     "f6565516d1354383b25793e630cf3f2b_5"),
    ("https://opendata.dc.gov/datasets/DCGIS::crime-incidents", "https://opendata.dc.gov/datasets/89bfd2aed9a142249225a638448a5276_29",
     "89bfd2aed9a142249225a638448a5276_29"),
    ("https://hub.arcgis.com/maps/0123456789abcdef0123456789abcdef", None, "0123456789abcdef0123456789abcdef"),
    ("2009-2012-police-advisory-commission-complaints", None, None),
])
def test_arcgis_item_id(identifier, landing, expected):
    assert arcgis_item_id(identifier, landing) == expected


def test_a_download_file_url_as_identifier_stays_the_source_id():
    # (the item id is read from such a link only among a Hub entry's own downloads: an identifier of
    # this form keeps the key it had, the URL)
    url = "https://opendata.arcgis.com/datasets/0123456789abcdef0123456789abcdef_3.csv"
    assert arcgis_item_id(url, None) is None
