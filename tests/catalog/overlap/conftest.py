"""A small real multi-city catalogue for the overlap tests: chosen datasets of the 2017
Socrata domains (real titles, descriptions, tags and columns) and of the 2013 city
data.json catalogues, harvested through local portals once per module."""
import json
import shutil

import pytest

from catalog import overlap
from catalog.overlap import features
from catalog.store import Store
from tests.conftest import fast_client
from tests.portals.catalogues import (harvest_data_json, harvest_spellarbot, place_of, pod_2013_files,
                                      portal_id)
from tests.shared_fixtures import require_fixtures

# (domain, id) of real 2017 Socrata datasets, by what they hold
SOCRATA = {
    "311": [("data.cityofnewyork.us", "erm2-nwe9"), ("data.baltimorecity.gov", "9agw-sxsr"),
            ("data.montgomerycountymd.gov", "xtyh-brr2"), ("data.somervillema.gov", "xs7t-pxkc")],
    "calls": [("data.sfgov.org", "hz9m-tj6z"), ("data.nola.gov", "28ec-c8d6"), ("data.baltimorecity.gov", "xviu-ezkt"),
              ("data.hartford.gov", "9a5q-r34k"), ("data.lacity.org", "mgue-vbsx")],
    "crime": [("data.cityofchicago.org", "ijzp-q8t2"), ("data.montgomerycountymd.gov", "icn6-v9z3"),
              ("data.austintexas.gov", "7g8v-xxja"), ("data.baltimorecity.gov", "wsfq-mvij")],
    "permits": [("data.cityofchicago.org", "ydr8-5enu"), ("data.sfgov.org", "i98e-djp9"),
                ("data.seattle.gov", "mags-97de"), ("data.somervillema.gov", "q3yh-mp87")],
    "violations": [("data.cityofchicago.org", "22u3-xenr")],
    "inspections": [("data.cityofnewyork.us", "43nn-pn8j"), ("data.sfgov.org", "pyih-qa8i"),
                    ("data.kingcounty.gov", "f29f-zza5"), ("data.montgomerycountymd.gov", "5pue-gfbe")],
    "licenses": [("data.cityofchicago.org", "r5kz-chrr"), ("data.seattle.gov", "c3ri-wwcn")],
    "salaries": [("data.baltimorecity.gov", "2j28-xzd7"), ("data.montgomerycountymd.gov", "54rh-89p8"),
                 ("data.cityofchicago.org", "xzkq-xp2w")],
    "budget": [("data.baltimorecity.gov", "g5wn-pq7y"), ("data.sfgov.org", "xdgd-c79v"),
               ("data.hartford.gov", "c986-wrvr")],
    # the fire department's and EMS's dispatch logs; tables of crime counts and rates
    "fire_calls": [("data.sfgov.org", "nuek-vuh3"), ("data.cityofnewyork.us", "8m42-w767"),
                   ("data.seattle.gov", "kzjm-xkqj")],
    "crime_stats": [("data.maryland.gov", "jwfa-fdxs"), ("data.seattle.gov", "3xqu-vnum"),
                    ("data.ny.gov", "ca8h-8gjq")],
    # lists of the codes crime records use ('IUCR Codes', 'SPD Offense Codes'); portals' own pages
    "crime_codes": [("data.cityofchicago.org", "c7ck-438e"), ("data.seattle.gov", "22zb-azac")],
    "home_pages": [("data.hawaii.gov", "v2k9-msid"), ("data.oregon.gov", "9c8s-3c6m"), ("data.wa.gov", "dx9h-3hci")],
}
# (city file, id) of 2013 data.json entries: boundary files and footprints
POD_2013 = {
    "footprints": [("data.cityofchicago.org", "6mpq-sfwi"), ("data.cityofnewyork.us", "xe92-xce7"),
                   ("data.baltimorecity.gov", "q7hm-rw3u")],
    "districts": [("data.cityofchicago.org", "4dt9-88ua"), ("data.oaklandnet.com", "ykcy-5r55")],
    # a city's zoning map, titled by the zoning or by its districts
    "zoning": [("data.austintexas.gov", "it3m-vb7j"), ("data.oaklandnet.com", "q8sz-29u5"),
               ("data.seattle.gov", "2hat-teay"), ("data.sfgov.org", "mici-sct2"), ("data.cityofchicago.org", "p8va-airx")],
}


def uid_of(domain: str, source_id: str, pod: bool = False) -> str:
    return f"{'pod-' if pod else ''}{portal_id(domain)}:{source_id}"


KIND_UIDS = {kind: [uid_of(d, i) for d, i in ids] for kind, ids in SOCRATA.items()}
KIND_UIDS.update({kind: [uid_of(d, i, pod=True) for d, i in ids] for kind, ids in POD_2013.items()})


def harvest_selection(store: Store, socrata: dict = SOCRATA, pod_2013: dict = POD_2013) -> None:
    """Harvest the `socrata` and `pod_2013` datasets ((domain, id) lists by what they hold) into `store`
    through local portals."""
    require_fixtures()
    wanted = {i for ids in socrata.values() for _, i in ids}
    http = fast_client()
    if wanted:
        harvest_spellarbot(store, http, domains=sorted({d for ids in socrata.values() for d, _ in ids}),
                           select=lambda e: e["resource"]["id"] in wanted)
    pod_wanted = {(d, i) for ids in pod_2013.values() for d, i in ids}
    catalogues = {}
    for path in pod_2013_files():
        entries = [e for e in json.loads(path.read_text()) if (path.stem, e.get("identifier")) in pod_wanted]
        if entries:
            catalogues["pod-" + portal_id(path.stem)] = (place_of(path.stem), entries)
    harvest_data_json(store, http, catalogues)


@pytest.fixture(scope="module")
def real_store(real_selection_path, tmp_path_factory):
    db = tmp_path_factory.mktemp("overlap") / "catalog.duckdb"
    shutil.copy(real_selection_path, db)   # (a module's overlap results stay its own)
    store = Store(db)
    yield store
    store.close()


@pytest.fixture(scope="module")
def real_catalogue(real_store):
    return features.load(real_store.con)


@pytest.fixture(scope="module")
def real_result(real_store):
    result = overlap.detect(real_store.con)
    overlap.save(real_store.con, result)
    return result
