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
