"""The real fixture catalogues (16 city data.json catalogues of 2013, 33 Socrata domains
of 2017), harvested through local portals once per test session, for search and export."""
import shutil

import pytest

from catalog import overlap
from catalog.store import connect

from catalog.store import Store
from tests.conftest import fast_client
from tests.portals.catalogues import harvest_pod_2013, harvest_spellarbot
from tests.shared_fixtures import require_fixtures


@pytest.fixture(scope="session")
def real_catalogue_path(tmp_path_factory):
    """The path of a closed catalogue holding both real catalogues (about 10,600 datasets); named apart from
    `real_catalogue` so that the overlap tests, whose own `real_catalogue` is a small selection, reach it."""
    require_fixtures()
    db = tmp_path_factory.mktemp("real") / "catalog.duckdb"
    store = Store(db)
    try:
        harvest_pod_2013(store, fast_client())
        harvest_spellarbot(store, fast_client())
    finally:
        store.close()
    return db


@pytest.fixture(scope="session")
def real_catalogue(real_catalogue_path):
    return real_catalogue_path


@pytest.fixture(scope="session")
def real_catalogue_with_overlap(real_catalogue_path, tmp_path_factory):
    """A copy of the real catalogues with `civicat overlap` run on it."""
    db = tmp_path_factory.mktemp("real-overlap") / "catalog.duckdb"
    shutil.copy(real_catalogue_path, db)
    con = connect(db)
    try:
        overlap.save(con, overlap.detect(con))
    finally:
        con.close()
    return db
