"""Overlap groups from strong pairs, without chaining through weak links, and their labels.

Strong pairs are taken best first and join their two groups only if the groups are about
the same thing as wholes: the cosine of the groups' centroids (title, keywords and column
names of all members) must reach COHESION. 'Building permits' -> 'Building permit
inspections' -> 'Building inspections' -> 'Restaurant inspections' is a chain of strong
pairs, but the centroids of its ends do not meet, so it stays apart.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import scipy.sparse as sp

from catalog.overlap import concepts, text
from catalog.overlap.features import Catalogue, normalise

COHESION = 0.45
CONCEPT_SHARE = 1.0   # two groups of one kind of record ('Crimes', 'BPD Offenses') cohere
CENTROID_TERMS = 300


def subject_vectors(c: Catalogue) -> sp.csr_matrix:
    return normalise(sp.hstack([c.title, c.keywords * 0.4, c.columns * 0.4, 
                                 c.concepts * CONCEPT_SHARE], format="csr"))


def form_groups(c: Catalogue, a: np.ndarray, b: np.ndarray, score: np.ndarray,
                cohesion: float = COHESION) -> list[list[int]]:
    """Groups (lists of rows) of at least two cities, from pairs best-first."""
    vectors = subject_vectors(c)
    parent = list(range(len(c)))
    centroid: dict[int, dict[int, float]] = {}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    indptr, indices, data = vectors.indptr, vectors.indices, vectors.data

    def centroid_of(root: int) -> dict[int, float]:
        found = centroid.get(root)
        if found is None:
            start, end = indptr[root], indptr[root + 1]
            found = centroid[root] = dict(zip(indices[start:end].tolist(), data[start:end].tolist()))
        return found

    rejected: set[tuple[int, int]] = set()
    for i in np.argsort(-score, kind="stable"):
        ra, rb = find(int(a[i])), find(int(b[i]))
        if ra == rb or (ra, rb) in rejected:
            continue
        ca, cb = centroid_of(ra), centroid_of(rb)
        if _cosine(ca, cb) < cohesion:
            rejected.add((ra, rb))
            continue
        if len(ca) < len(cb):
            ra, rb, ca, cb = rb, ra, cb, ca
        parent[rb] = ra
        for term, weight in cb.items():
            ca[term] = ca.get(term, 0.0) + weight
        if len(ca) > 2 * CENTROID_TERMS:  # keep the centroid's heaviest terms: its subject
            centroid[ra] = dict(sorted(ca.items(), key=lambda kv: -kv[1])[:CENTROID_TERMS])
        del centroid[rb]

    members: dict[int, list[int]] = defaultdict(list)
    for row in {int(x) for x in np.concatenate([a, b])} if len(a) else ():
        members[find(row)].append(row)
    groups = [sorted(rows) for rows in members.values() if len({c.city_ids[r] for r in rows}) >= 2]
    return sorted(groups, key=lambda rows: (-len(rows), c.uids[rows[0]]))


def _cosine(x: dict[int, float], y: dict[int, float]) -> float:
    if len(x) > len(y):
        x, y = y, x
    dot = sum(w * y.get(t, 0.0) for t, w in x.items())
    if dot == 0:
        return 0.0
    nx = sum(w * w for w in x.values()) ** 0.5
    ny = sum(w * w for w in y.values()) ** 0.5
    return dot / (nx * ny)


def label(c: Catalogue, rows: list[int]) -> str:
    """The title words most of the group's cities use ('Building permits'), preferring a
    phrase to a single word when as many cities use it."""
    cities_with: dict[str, set[int]] = defaultdict(set)
    surfaces: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        for term, surface in text.terms_with_surface(c.titles[row], c.places[row]):
            cities_with[term].add(int(c.city_ids[row]))
            surfaces[term][surface] += 1
    if not cities_with:
        return c.titles[rows[0]]
    n_cities = len({int(c.city_ids[r]) for r in rows})

    def rank(term: str) -> tuple:
        coverage = len(cities_with[term]) / n_cities
        surface = surfaces[term].most_common(1)[0][0]
        words = surface.count(" ") + 1
        # a word, not a code: 'yg821jf8611' or 'ea' name no subject
        wordlike = any(len(w) > 2 and w.isalpha() for w in surface.split()) or surface in text.KEEP_NUMBERS
        return (coverage >= 0.5 - 1e-9, wordlike, round(coverage, 1), min(words, 3), coverage, term)

    best = max(cities_with, key=rank)
    surface = surfaces[best].most_common(1)[0][0]
    # the kind of record the cities share names the group better than a title word fewer
    # of them use ('Race' for complaint tables), or a lone word as many use ('Crime')
    kind, kind_coverage = _shared_kind(c, rows, n_cities)
    coverage = len(cities_with[best]) / n_cities
    if kind and kind_coverage >= 0.5 and (kind_coverage > coverage + 1e-9
                                          or (kind_coverage >= coverage - 1e-9 and " " not in surface)):
        return concepts.label(kind)
    return surface[:1].upper() + surface[1:]


def _shared_kind(c: Catalogue, rows: list[int], n_cities: int) -> tuple[str | None, float]:
    """The kind of record most of the group's cities have a member of, and their share."""
    cities_of: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        for kind in c.concept_lists[row]:
            cities_of[kind].add(int(c.city_ids[row]))
    if not cities_of:
        return None, 0.0
    kind = max(cities_of, key=lambda k: (len(cities_of[k]), k))
    return kind, len(cities_of[kind]) / n_cities
