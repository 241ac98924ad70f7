"""Groups over the real selection: one group per kind, labelled, stored; derived views
never group; strong pairs do not chain weak subjects together."""
import numpy as np

from catalog.overlap import features, groups
from tests.catalog.overlap.conftest import KIND_UIDS


def kind_of(uid):
    return next((k for k, uids in KIND_UIDS.items() if uid in uids), None)


def test_every_group_holds_one_kind_and_is_labelled(real_result):
    assert len(real_result.groups) >= 6
    labels = {}
    for group in real_result.groups:
        kinds = {kind_of(u) for u in group.uids}
        assert len(kinds) == 1, (group.label, kinds)
        assert len(group.cities) >= 2
        labels[kinds.pop()] = group.label
    assert labels["311"] == "311 service requests"
    assert labels["permits"] == "Building permits"
    assert labels["footprints"] == "Building footprints"
    assert labels["calls"].lower().endswith("calls for service")


def test_groups_and_pairs_are_stored(real_store, real_result):
    con = real_store.con
    stored = con.execute("SELECT count(DISTINCT group_id), count(*) FROM overlap_groups").fetchone()
    assert stored == (len(real_result.groups), sum(len(g.uids) for g in real_result.groups))
    row = con.execute("""SELECT score, title_score, columns_score, explanation FROM overlap_pairs
                         WHERE uid_a = 'data-cityofchicago-org:ydr8-5enu' AND uid_b = 'data-seattle-gov:mags-97de'
                         """).fetchone()
    assert row is not None and row[0] >= real_result.min_score and row[1] > 0.9 and row[2] > 0
    assert "columns align" in row[3]
    same_city = con.execute("""SELECT count(*) FROM overlap_pairs p JOIN datasets a ON a.uid = p.uid_a
                               JOIN datasets b ON b.uid = p.uid_b WHERE a.city = b.city""").fetchone()[0]
    assert same_city == 0


def rows_catalogue(titles_by_city, asset_types=None, parents=None):
    n = len(titles_by_city)
    rows = {"uid": [f"c{i}:d{i}" for i in range(n)], "city": [city for city, _ in titles_by_city],
            "portal_id": [f"c{i}" for i in range(n)], "title": [title for _, title in titles_by_city],
            "description": [None] * n, "keywords": [[]] * n, "themes": [[]] * n,
            "asset_type": asset_types or ["dataset"] * n}
    return features.build(rows, {}, {})


def test_a_chain_of_strong_pairs_does_not_join_unrelated_ends():
    c = rows_catalogue([("A", "Building permits"), ("B", "Building permits"),
                        ("C", "Building permit inspections"), ("D", "Building inspections"),
                        ("E", "Restaurant building inspections"), ("F", "Restaurant inspections"),
                        ("G", "Restaurant inspections")])
    a = np.array([0, 1, 2, 3, 4, 5])
    b = np.array([1, 2, 3, 4, 5, 6])
    found = groups.form_groups(c, a, b, np.full(6, 0.9, dtype=np.float32))
    together = {frozenset(g) for g in found}
    assert not any({0, 6} <= g for g in together)
    assert any({0, 1} <= g for g in together) and any({5, 6} <= g for g in together)


def test_a_group_needs_two_cities():
    c = rows_catalogue([("A", "Street trees"), ("A", "Street trees")])
    assert groups.form_groups(c, np.array([0]), np.array([1]), np.array([0.9], dtype=np.float32)) == []


def test_a_group_sharing_a_kind_of_record_is_labelled_by_it():
    """Complaint tables of three cities, whose titles share no subject word all of them
    use ('race' is in two): the kind of record they hold names the group."""
    from types import SimpleNamespace

    from catalog.overlap import concepts

    titles = ["CCRB Race of Officers against Whom Allegations Were Substantiated",
              "CCRB Complaints Received by Race of Complainant",
              "Office of Citizen Complaints Complainants by Race/Ethnicity",
              "Internal Affairs Allegations"]
    catalogue = SimpleNamespace(titles=titles, places=["nyc", "nyc", "sf", "montgomery"],
                                city_ids=np.array([0, 0, 1, 2]),
                                concept_lists=[concepts.of_dataset(t, None) for t in titles])
    assert all("police_complaint" in kinds for kinds in catalogue.concept_lists), catalogue.concept_lists
    assert groups.label(catalogue, [0, 1, 2, 3]) == "Police complaints"
    # titles that all share their subject keep it ('Building permits', not a kind)
    permits = SimpleNamespace(titles=["Building Permits", "EBR Building Permits"], places=["chi", "brla"],
                              city_ids=np.array([0, 1]), concept_lists=[(), ()])
    assert groups.label(permits, [0, 1]) == "Building permits"
