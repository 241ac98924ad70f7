"""bench.fleet: the nightly benchmark's portals and the changes of its third night."""
from bench.fleet import _key, build, change, sizes


def test_the_sizes_are_a_few_large_portals_and_a_long_tail():
    counts = sizes(300, 300_000)
    assert len(counts) == 300 and counts[:3] == [50_000] * 3
    assert 0.9 * 300_000 <= sum(counts) <= 1.1 * 300_000
    assert max(counts[3:]) <= 50_000 and min(counts) >= 1 and sorted(counts[3:])[148] < 1_000   # (most small)


def test_the_changing_night_says_what_it_changed_and_fails_two_portals():
    fleet = build(20, 4_000)
    before = {member.id: {_key(member, e): repr(e) for e in member.entries} for member in fleet}
    found = change(fleet)
    assert sorted(found["failing"].values()) == ["a 500", "an HTML page behind a 200"]
    assert {m.kind for m in fleet if m.id in found["failing"]} == {"socrata", "ckan"}
    for member in fleet:
        after = {_key(member, e): repr(e) for e in member.entries}
        if member.id in found["failing"]:
            assert after == before[member.id] and member.portal.pending_faults
            continue
        old = before[member.id]
        actual = {"new": len(after.keys() - old.keys()), "removed": len(old.keys() - after.keys()),
                  "changed": sum(old[k] != after[k] for k in old.keys() & after.keys())}
        assert actual == found["expected"][member.id], member.id
    assert sum(e["changed"] for e in found["expected"].values()) > 0
    assert sum(e["removed"] for e in found["expected"].values()) > 0


def test_each_changing_night_changes_and_adds_other_entries_and_a_steady_one_fails_none():
    """bench.nights changes the fleet night after night: the same seed each night sampled the same
    positions and added the entries it had added already (none new after the first), and two
    portals failed every night, their data never changed again."""
    fleet = build(20, 4_000)
    added_by_night = []
    for night in (2, 3):
        before = {member.id: {_key(member, e): repr(e) for e in member.entries} for member in fleet}
        found = change(fleet, night, failing_portals=False)
        assert found["failing"] == {} and not any(member.portal.pending_faults for member in fleet)
        added = set()
        for member in fleet:
            after = {_key(member, e): repr(e) for e in member.entries}
            old = before[member.id]
            actual = {"new": len(after.keys() - old.keys()), "removed": len(old.keys() - after.keys()),
                      "changed": sum(old[k] != after[k] for k in old.keys() & after.keys())}
            assert actual == found["expected"][member.id], (night, member.id)
            added |= {(member.id, key) for key in after.keys() - old.keys()}
        assert sum(e["new"] for e in found["expected"].values()) >= 10
        added_by_night.append(added)
    assert not added_by_night[0] & added_by_night[1]
