"""A guard over every recorded entry (../shared/fixtures) of every kind that has entries: each
adapter's mapping warns of no date or update frequency but the values it cannot read as one, which
are Philadelphia's 11 `modified` of "R/P1D" (DCAT-US 1.1's repeating interval, "updated
continually": the frequency, since session 36). A new date or frequency the mapping misreads in a
recorded payload is a warning here first. (Passes on main too: it guards, it proves nothing new.)"""
from __future__ import annotations

import json
from collections import Counter

from catalog.record import Notes
from harvester.config import PortalConfig
from harvester.portals import adapter_for
from tests.shared_fixtures import (FIXTURES, dcat_us_files, load_json, require_fixtures, socrata_catalog_files,
                                   spellarbot_domain_files)

DATE_FIELDS = ("issued", "modified", "accrual_periodicity", "temporal", "temporal_start", "temporal_end")


def recorded_entries() -> dict[str, list[dict]]:
    """kind -> every recorded entry of that kind, as its listing gives it."""
    ckan = []
    for name in ("birmingham-uk-package_search-purchase-card.json", "envidat-ch-package_search.json",
                 "zurich-stadt-package_search-verkehr.json"):
        answer = load_json(f"ckan/{name}")
        ckan += answer.get("result", answer)["results"]
    ckan += [load_json(f"ckan/{name}")["result"] for name in (
        "envidat-ch-package_show.json", "opendata-swiss-package_show-bfs-cantonal-votes.json",
        "opendata-swiss-package_show-bfs-national-votes.json")]
    ckan += load_json("ckan/zurich-stadt-group_show-mobilitat.json")["packages"] + \
        load_json("ckan/envidat-ch-organization_show.json")["result"]["packages"]
    data_json = {"arcgis-hub": [], "dcat-us": []}
    for path in dcat_us_files():
        document = json.loads(path.read_text())
        data_json["arcgis-hub" if path.name == "evian-fr-arcgis-hub-data.json" else "dcat-us"] += \
            document if isinstance(document, list) else document["dataset"]
    return {"socrata": [entry for path in socrata_catalog_files() for entry in json.loads(path.read_text())["results"]]
            + [entry for path in spellarbot_domain_files() for entry in json.loads(path.read_text())],
            "ckan": ckan, **data_json}


def test_no_recorded_date_or_frequency_is_misread_but_the_repeating_modified():
    require_fixtures()
    entries = recorded_entries()
    assert {kind: len(items) for kind, items in entries.items()} == {
        "socrata": 95 + 7187, "ckan": 23, "arcgis-hub": 8, "dcat-us": 3871}, FIXTURES
    warned, mapped = Counter(), Counter()
    for kind, items in entries.items():
        adapter = adapter_for(PortalConfig(id="p", city="City", kind=kind, url="https://data.example.org",
                                           domain="data.example.org" if kind == "socrata" else None), None)
        for entry in items:
            notes = Notes()
            record = adapter.map(entry, None, notes)
            mapped.update((kind, name) for name in ("modified", "accrual_periodicity") if record[name] is not None)
            warned.update((kind, name, message.split(":")[0]) for name, message in notes.items if name in DATE_FIELDS)
    assert warned == {("dcat-us", "modified", "a repeating interval 'R/P1D' (updated continually), not a date"): 11}
    # (what is read: the Discovery entries' dates, not the reshaped 2017 ones' (none recorded); the 16 2013
    # data.json documents' own entries' `frequency` and Philadelphia's 11 intervals)
    assert mapped == {("socrata", "modified"): 97, ("socrata", "accrual_periodicity"): 66,
                      ("ckan", "modified"): 23, ("ckan", "accrual_periodicity"): 8,
                      ("arcgis-hub", "modified"): 8, ("dcat-us", "modified"): 3469,
                      ("dcat-us", "accrual_periodicity"): 27}
