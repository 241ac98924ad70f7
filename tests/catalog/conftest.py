"""The real fixture catalogues (16 city data.json catalogues of 2013, 33 Socrata domains
of 2017), harvested through local portals once per test session (tests/conftest.py's
real_catalogue_path), for search and export."""
import shutil

import pytest

from catalog import overlap
from catalog.store import connect


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
