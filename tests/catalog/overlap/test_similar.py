"""`similar` lists a dataset's group (as `civicat overlap` saved it) first, then the others, each by score."""
import pytest

from catalog import overlap
from catalog.store import Store
from tests.catalog.overlap.conftest import harvest_selection, uid_of

# New York's civilian complaints board's table; police complaints of two other places; Illinois' ethics
# office's report, which scores higher against it than they do but is no police complaint
CCRB = uid_of("data.cityofnewyork.us", "bbvw-ivc8", pod=True)
POLICE_COMPLAINTS = [uid_of("data.montgomerycountymd.gov", "usip-62e2"), uid_of("data.sfgov.org", "zpxx-ap9z", pod=True)]
ETHICS_REPORT = uid_of("data.illinois.gov", "qzfu-9rdc")


@pytest.fixture(scope="module")
def complaints_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("similar") / "catalog.duckdb")
    harvest_selection(store, socrata={"complaints": [("data.montgomerycountymd.gov", "usip-62e2"),
                                                     ("data.illinois.gov", "qzfu-9rdc")]},
                      pod_2013={"complaints": [("data.cityofnewyork.us", "bbvw-ivc8"),
                                               ("data.sfgov.org", "zpxx-ap9z")]})
    yield store
    store.close()


def test_a_dataset_s_group_is_listed_before_datasets_scoring_higher_outside_it(complaints_store):
    con = complaints_store.con
    by_score = overlap.similar(con, CCRB)   # no overlap run yet: no group, the order is the scores'
    assert by_score[0]["uid"] == ETHICS_REPORT and not any(f["in_group"] for f in by_score)
    assert [f["score"] for f in by_score] == sorted((f["score"] for f in by_score), reverse=True)

    overlap.save(con, overlap.detect(con))
    (group,) = {g for (g,) in con.execute("SELECT group_id FROM overlap_groups WHERE uid = ?", [CCRB]).fetchall()}
    members = {u for (u,) in con.execute("SELECT uid FROM overlap_groups WHERE group_id = ?", [group]).fetchall()}
    assert set(POLICE_COMPLAINTS) <= members and ETHICS_REPORT not in members

    found = overlap.similar(con, CCRB)
    assert {f["uid"] for f in found[:2]} == set(POLICE_COMPLAINTS) and all(f["in_group"] for f in found[:2])
    assert found[2]["uid"] == ETHICS_REPORT and not found[2]["in_group"]
    assert found[2]["score"] > max(f["score"] for f in found[:2])   # the ethics report still scores higher
    assert [f["uid"] for f in overlap.similar(con, CCRB, limit=1)] == [found[0]["uid"]]
