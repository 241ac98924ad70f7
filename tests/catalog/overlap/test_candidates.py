"""Candidate pairs come from the inverted index, bounded per dataset, never all pairs; and
views derived from a dataset are neither candidates nor group members."""
import pytest

from catalog import overlap
from catalog.overlap import candidates, features
from harvester.pipeline import harvest
from tests.catalog.overlap.conftest import KIND_UIDS
from tests.conftest import portal_config
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_socrata_entries


def test_comparable_datasets_are_candidates_and_cities_differ(real_catalogue):
    c = real_catalogue
    a, b = candidates.candidate_pairs(c)
    pairs = set(zip(a.tolist(), b.tolist()))
    assert (c.city_ids[a] != c.city_ids[b]).all() and (a < b).all()
    for kind in ("311", "permits", "crime", "footprints"):
        rows = sorted(c.row(u) for u in KIND_UIDS[kind])
        linked = {(x, y) for x in rows for y in rows if (x, y) in pairs}
        assert len(linked) >= len(rows) - 1, kind   # enough to join them all


def test_candidates_per_dataset_are_bounded(store, http):
    domains = [f"data.city{i}.example.org" for i in range(4)]
    entries = [e for i, d in enumerate(domains) for e in make_socrata_entries(150, domain=d, seed=i)]
    with SocrataPortal(entries, domain="unused.example.org") as portal:
        report = harvest([portal_config(f"city{i}", "socrata", portal.url, domain=d) for i, d in enumerate(domains)],
                         store, http)
    assert report.ok
    c = features.load(store.con)
    a, b = candidates.candidate_pairs(c, top_k=5)
    assert 0 < len(a) <= 5 * len(c)
    all_pairs = len(c) * (len(c) - 1) // 2
    assert len(a) < all_pairs / 10

    result = overlap.detect(store.con)
    overlap.save(store.con, result)
    derived = store.con.execute("""
        SELECT count(*) FROM overlap_groups g JOIN datasets d USING (uid)
        WHERE d.parent_uid IS NOT NULL OR d.asset_type IN ('filtered_view', 'chart', 'story')""").fetchone()[0]
    views = store.con.execute("SELECT count(*) FROM datasets WHERE parent_uid IS NOT NULL").fetchone()[0]
    assert views > 50 and derived == 0
    assert result.groups and all(len(g.cities) >= 2 for g in result.groups)

    view = store.con.execute("SELECT uid, parent_uid FROM datasets WHERE parent_uid IS NOT NULL LIMIT 1").fetchone()
    with pytest.raises(LookupError, match=f"is a view of {view[1]}"):
        overlap.similar(store.con, view[0])
    found = overlap.similar(store.con, view[1], limit=3)
    assert 0 < len(found) <= 3 and all(not f["uid"].startswith(view[1].split(":")[0] + ":") for f in found)


def test_a_dataset_two_portals_of_its_city_list_takes_one_slot_of_a_candidate_list():
    """Chicago's 'Farmers Markets - 2013' is on its 2013 data.json and its Socrata site (one dataset, two copies:
    features.same_as). Each copy took a slot of another city's candidate list: in the real catalogues half the lists
    (5,312 of 10,460) spent 8,058 slots so, and Connecticut's 'Farmers Markets' and New York's '2012 NYC Farmers
    Market List' never met. A slot is a dataset, with every copy of it the list reached."""
    from tests.catalog.overlap.test_groups import rows_catalogue

    c = rows_catalogue([("Chicago", "Farmers Markets - 2013"), ("Chicago", "Farmers Markets - 2013"),
                        ("New York", "2012 NYC Farmers Market List"), ("Connecticut", "Farmers Markets")])
    c.same_as[1] = 0
    a, b = candidates.candidate_pairs(c, top_k=2)
    pairs = set(zip(a.tolist(), b.tolist()))
    assert (2, 3) in pairs                                  # (main: New York's two slots both Chicago's)
    assert {(0, 2), (1, 2), (0, 3), (1, 3)} <= pairs         # every copy still compared
    assert set(candidates.candidates_for(c, 2, 2).tolist()) == {0, 1, 3}   # (`similar`'s first reach)
