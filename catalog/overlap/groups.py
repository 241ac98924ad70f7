"""Overlap groups from strong pairs, without chaining through weak links, and their labels.

Strong pairs are taken best first and join their two groups only if the groups are about
the same thing as wholes: the cosine of the groups' centroids (title, keywords and column
names of all members) must reach COHESION; a second pass over them lets a pair refused early
join a group that has since gathered. 'Building permits' -> 'Building permit
inspections' -> 'Building inspections' -> 'Restaurant inspections' is a chain of strong
pairs, but the centroids of its ends do not meet, so it stays apart. Two datasets in no group yet
join on a pair of theirs all the same when one is titled by a thing and the other by a sort of it,
tagged alike ('Landmarks' / 'Individual Landmarks'): a title's modifier weighs as much as its thing.
A group whose datasets name one kind of record joins the larger group of that kind its links mostly run
into ('Community policing' data of stops, into 'Police stops').
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from functools import cache
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from catalog.overlap import concepts, text
from catalog.overlap.features import Catalogue, _is_code_table, _is_documentation, normalise

COHESION = 0.45
# a pair at the bottom of the strong range (0.35 to this) is too weak to join two datasets whose centroids
# do not meet on their titles alone ('Penalties' of nursing homes, 0.36, and 'Police Department Disciplinary
# Penalties'; 'Vehicles' and 'Abandoned Vehicles')
SORT_PAIR = 0.38
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

    subjects: dict[int, list[str]] = {}

    def sort_of_one_thing(x: int, y: int) -> bool:
        """Two datasets, each in no group yet, of one thing, one titled by its bare name and the other by a
        sort of it, and tagged alike: Seattle's 'Landmarks' and Chicago's 'Individual Landmarks' (both tagged
        'landmark'), whose centroids meet at 0.41 only, the modifier weighing as much as the thing."""
        for row in (x, y):
            if row not in subjects:
                subjects[row] = _label_subject(c.titles[row] or "")
        return bool(subjects[x] and subjects[y] and _one_thing(subjects[x], subjects[y])
                    and c.keyword_sets(x) & c.keyword_sets(y))

    rejected: set[tuple[int, int]] = set()
    alone = set(range(len(c)))   # rows in no group yet
    order = np.argsort(-score, kind="stable")
    # the links twice: a dataset whose best link came before its group had gathered ('Current Employee Names,
    # Salaries, and Position Titles' against Boston's 'Employee Earnings Report' alone, 0.37) meets the
    # group as its first pass left it (with New York's 'Title and Salary Listing', 0.51)
    for step, i in enumerate(np.concatenate([order, order])):
        if step == len(order):
            rejected.clear()
        ra, rb = find(int(a[i])), find(int(b[i]))
        if ra == rb or (ra, rb) in rejected:
            continue
        ca, cb = centroid_of(ra), centroid_of(rb)
        # a side with no subject at all (an id for a title, no keywords, columns or kind: its
        # pair stands on its description) has nothing a group could drift to
        if ca and cb and _cosine(ca, cb) < cohesion and not (ra in alone and rb in alone and score[i] >= SORT_PAIR
                                                           and sort_of_one_thing(ra, rb)):
            rejected.add((ra, rb))
            continue
        alone.discard(ra)
        alone.discard(rb)
        if len(ca) < len(cb):
            ra, rb, ca, cb = rb, ra, cb, ca
        parent[rb] = ra
        for term, weight in cb.items():
            ca[term] = ca.get(term, 0.0) + weight
        if len(ca) > 2 * CENTROID_TERMS:  # keep the centroid's heaviest terms: its subject
            centroid[ra] = dict(sorted(ca.items(), key=lambda kv: -kv[1])[:CENTROID_TERMS])
        del centroid[rb]

    for small, large in _joins_of_one_kind(c, find, a, b):
        parent[small] = large
    members: dict[int, list[int]] = defaultdict(list)
    for row in {int(x) for x in np.concatenate([a, b])} if len(a) else ():
        members[find(row)].append(row)
    groups = [sorted(rows) for rows in members.values() if len({c.city_ids[r] for r in rows}) >= 2]
    return sorted(groups, key=lambda rows: (-len(rows), c.uids[rows[0]]))


def _joins_of_one_kind(c: Catalogue, find, a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """(root, root it joins): a group whose datasets name one kind of record, and whose links to other
    groups run mostly into one larger group of that kind, is that group's: Virginia's 'community policing
    data' (its description: "all traffic and investigatory stops") and Dumfries' 'Community Policing Data
    Report' gather on their own words first, and their centroid then misses that of 'Police stops',
    the group their one link out points to. Judged on the groups as the links left them (a group that
    joins another takes in none); the kind decides, not a lower cohesion: 'Traffic stops' links mostly
    into 'Police stops' too, and stays apart."""
    if not len(a):
        return []
    rows = np.unique(np.concatenate([a, b]))
    root_of = np.zeros(int(rows[-1]) + 1, dtype=np.int64)
    root_of[rows] = [find(int(r)) for r in rows]
    ra, rb = root_of[a], root_of[b]
    across = ra != rb
    if not across.any():
        return []
    # every link between two groups, from each side: (group, the group it runs into)
    source = np.concatenate([ra[across], rb[across]])
    target = np.concatenate([rb[across], ra[across]])
    span = len(root_of)
    pairs, links = np.unique(source * span + target, return_counts=True)
    sources, targets = pairs // span, pairs % span
    order = np.lexsort((-links, sources))   # each group's most linked target first
    first = order[np.r_[True, sources[order[1:]] != sources[order[:-1]]]]
    outward = np.bincount(source, minlength=span)
    size = np.bincount(root_of[rows], minlength=span)
    small, large = sources[first], targets[first]
    mostly = (links[first] * 2 > outward[small]) & (size[large] > size[small])
    small, large = small[mostly], large[mostly]
    if not len(small):
        return []
    rows_of: dict[int, list[int]] = defaultdict(list)
    wanted = set(small.tolist()) | set(large.tolist())
    for row, r in zip(rows.tolist(), root_of[rows].tolist()):
        if r in wanted:
            rows_of[r].append(row)

    @cache
    def kinds_of(r: int) -> Counter:
        return Counter(kind for row in rows_of[r] for kind in c.concept_lists[row])

    joins = []
    for group, into in zip(small.tolist(), large.tolist()):
        kinds = kinds_of(group)
        if len(kinds) != 1:
            continue
        (kind,) = kinds
        shared, named = max(kinds_of(into).items(), key=lambda kv: (kv[1], kv[0]), default=(None, 0))
        if shared == kind and named * 2 >= size[into]:
            joins.append((group, into))
    moving = {group for group, _ in joins}
    return [(group, into) for group, into in joins if into not in moving]


def join_split_subjects(c: Catalogue, rows_per_group: list[list[int]], labels: list[str],
                        a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """Groups of one kind of thing that the centroids split, joined where a link (a, b) runs between
    them: 'Pools' and 'Swimming pools', 'Schools' and 'School locations', 'Trees' and 'Street trees'. A
    label whose words (form words aside) are all in the other's, both ending in the same word, is the
    same thing, or a sort of it that its cities list with the others ('Outdoor Swimming Pools' beside
    'Pools'). Not a family of records ('Budget' / 'Proposed budget', 'Expenditures' / 'Campaign
    expenditures': records of different accounts), nor kinds the concept layer reads (its kinds judge
    them), nor two labels of different last words ('City limits' / 'Speed limits'). Every two labels
    of a joined group are so: 'Stations' joins 'Fire stations' or 'Police stations', never both."""
    words = [_label_subject(name) for name in labels]
    group_of = {row: number for number, rows in enumerate(rows_per_group) for row in rows}
    parent = list(range(len(rows_per_group)))
    members = {number: [number] for number in range(len(rows_per_group))}   # a root's groups

    def one_thing(gx: int, gy: int) -> bool:
        return _one_thing(words[gx], words[gy])

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    judged = {number for number, rows in enumerate(rows_per_group) if any(c.concept_lists[r] for r in rows)}
    for x, y in zip(a.tolist(), b.tolist()):
        gx, gy = group_of.get(x), group_of.get(y)
        if gx is None or gy is None or gx == gy or gx in judged or gy in judged:
            continue
        if not words[gx] or not words[gy] or labels[gx].lower() == labels[gy].lower() or not one_thing(gx, gy):
            continue
        rx, ry = find(gx), find(gy)
        if rx != ry and all(one_thing(x, y) for x in members[rx] for y in members[ry]):
            parent[rx] = ry
            members[ry] += members.pop(rx)
    if all(find(n) == n for n in range(len(rows_per_group))):
        return rows_per_group
    joined: dict[int, list[int]] = defaultdict(list)
    for number, rows in enumerate(rows_per_group):
        joined[find(number)].extend(rows)
    return sorted((sorted(rows) for rows in joined.values()), key=lambda rows: (-len(rows), c.uids[rows[0]]))


def _one_thing(wx: list[str], wy: list[str]) -> bool:
    """Whether two labels' (or titles') subject words (`_label_subject`) name one thing, or one a sort of
    the other's: the same words, or the words of one all in the other's, both ending in the same word
    that is no record word ('Pools' / 'Outdoor Swimming Pools'; not 'Budget' / 'Proposed budget')."""
    return set(wx) == set(wy) or (wx[-1] == wy[-1] and wx[-1] not in RECORD_WORDS
                                  and (set(wx) <= set(wy) or set(wy) <= set(wx)))


RECORD_WORDS = frozenset(text.RECORD_FAMILIES.values())   # a label's record words, as _label_subject reads them


def _label_subject(name: str) -> list[str]:
    """A label's words, stemmed, in order, without form words and joining words, a record word as its
    family: 'School locations' -> ['school']; 'City limits' -> ['city', 'limit'] ('city' is no subject word,
    but the city's limits are not speed limits), 'After school programs' -> ['after', 'school', 'program'];
    'Events calendar' -> ['event'], as 'Events' (a calendar holds events)."""
    words = [text.RECORD_FAMILIES.get(w, w) for w in text.words(name, glued=False)
             if w not in text.GENERIC and w not in JOINING]
    return list(dict.fromkeys(words))


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
    phrase to a single word when as many cities use it, widened to the whole run of words
    those cities share ('Leading causes' -> 'Leading causes of death'), written as the
    cities write it (plural as often as they write it so, acronyms in capitals)."""
    cities_with: dict[str, set[int]] = defaultdict(set)
    rows_with: Counter = Counter()
    surface_cities: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    surface_rows: Counter = Counter()
    subject: set[str] = set()   # terms a title names before a breakdown ('Permits', not 'Ward', of 'Permits by Ward')
    read = getattr(c, "title_surface_lists", None)   # the terms features.build read, when it did
    for row in rows:
        city = int(c.city_ids[row])
        title_terms = set(read[row] if read else text.terms_with_surface(c.titles[row], c.places[row]))
        subject.update(_subject_terms(c.titles[row], c.places[row], title_terms))
        for term, surface in title_terms:
            cities_with[term].add(city)
            rows_with[term] += 1
            surface_cities[term][surface].add(city)
            surface_rows[surface] += 1
    if not cities_with:
        return c.titles[rows[0]]
    n_cities = len({int(c.city_ids[r]) for r in rows})

    @cache
    def surface_of(term: str) -> str:
        # the wording most cities use ('Capital Budget' of three cities, not 'Capital
        # Appropriations' of one that titles ten tables so), then the most titles', the shorter
        return min(surface_cities[term].items(), key=lambda kv: (-len(kv[1]), -surface_rows[kv[0]], len(kv[0]), kv[0]))[0]

    @cache
    def rank(term: str) -> tuple:
        coverage = len(cities_with[term]) / n_cities
        surface = surface_of(term)
        words = surface.count(" ") + 1
        # a word, not a code: 'yg821jf8611' or 'ea' name no subject
        wordlike = any(len(w) > 2 and w.isalpha() for w in surface.split()) or surface in text.KEEP_NUMBERS
        # among as many cities, the phrase more of the group's titles use ('Behavioral risk
        # factor' of all eleven CDC tables, not the 'Trends SMART' of two)
        return (coverage >= 0.5 - 1e-9, wordlike, round(coverage, 1), term in subject, min(words, 3), coverage,
                rows_with[term], term)

    ranked = sorted(cities_with, key=rank, reverse=True)
    best = ranked[0]
    # a lone word is named better by the phrase of it that most of the group's cities write
    # ('Fire incidents' of three cities of five, beside 'Fire Data' and 'Fire Department Incident Data'), or
    # the phrase term it is a word of ('Budget revenue' of seven cities of nine, beside Raleigh's 'Revenue')
    # (a city writing the phrase's words in its order with only stopwords between writes the phrase: 'Fire
    # Department Incidents' and 'Fire Department Incident Data' are fire incidents, as 'Fire Incidents' are)
    tokens = {row: _tokens(c.titles[row]) for row in rows}   # each title read once
    if "+" not in best and " " not in surface_of(best):
        phrases = [t for t in ranked if t != best and (best in t.split("+") or best in text.PHRASE_WORDS.get(t, ()))
                   and (len(cities_with[t]) * 2 > n_cities or _written_across_stopwords(c, rows, t, tokens, n_cities))
                   and rank(t)[1] and t in subject]
        best = phrases[0] if phrases else best
    surface = surface_of(best)
    # the kind of record the cities share names the group better than a title word fewer
    # of them use ('Race' for complaint tables), or a lone word as many use ('Crime')
    kind, kind_coverage = _shared_kind(c, rows, n_cities)
    coverage = len(cities_with[best]) / n_cities
    # ... or a phrase that is itself a trigger of a kind ('Traffic crash' of crash statistics)
    if kind and kind_coverage >= 0.5 and (kind_coverage > coverage + 1e-9
                                          or (kind_coverage >= coverage - 1e-9
                                              and (" " not in surface or concepts.of_terms([best])))):
        named = concepts.label(kind)
        if all(_is_code_table(c.titles[row]) for row in rows):   # lists of the codes of a kind, no records of it ('SPD Offense Codes',
            # Chicago's 'Illinois Uniform Crime Reporting (IUCR) Codes': no 'Crime incidents'); a data dictionary lists
            # fields, no codes ('NOPD - Data dictionary for Calls For Service Open Data')
            documented = [_is_documentation(c.titles[row]) for row in rows]
            what = "Data dictionaries" if all(documented) else "Codes and data dictionaries" if any(documented) else "Codes"
            return f"{what} of {named[:1].lower() if named[1:2].islower() else named[:1]}{named[1:]}"
        return named
    # terms as good as the best are often parts of one phrase ('Energy Efficiency Portfolio
    # Standards (EEPS)'): the one that widens to the longest phrase names it, unless that is
    # the tail of a phrase cut in two ('STATE System Tobacco Legislation')
    # (the best itself always: a phrase taken for a lone word may rank below the first five)
    tied = [best] + [t for t in ranked[:5] if t != best and rank(t)[:-1] == rank(best)[:-1]]
    widest, _cut = max((_widened(c, rows, surface_of(t).split(), tokens) for t in tied),
                       key=lambda w: (not w[1], len(w[0])))
    if len(widest) == 1:
        widest = _one_phrase_of(rows, [surface_of(t) for t in tied if " " not in surface_of(t)], tokens) or widest
    if _bracketed_form(c, rows, widest):
        return _series_name(c, rows) or _as_written(c, rows, widest, tokens)
    written = _as_written(c, rows, widest, tokens)
    if len(widest) == 1 and best in subject and (breakdown := _shared_breakdown(c, rows, widest[0])):
        return f"{written} by {breakdown}"
    if best not in subject:   # every title counts by it ('Race Distribution By City Council Districts',
        # '2010 Census Populations by Council District'): tables by council district, not the districts
        return f"By {written[:1].lower() if written[1:2].islower() else written[:1]}{written[1:]}"
    return written


def _written_across_stopwords(c: Catalogue, rows: list[int], term: str,
                              tokens_of: dict[int, list[tuple[str, str, str]]], n_cities: int) -> bool:
    """Whether most of the group's cities, and most of its datasets, write the two words of the bigram `term` in its
    order within one phrase, side by side or with only stopwords between ('fire+incident' of 'Fire Incidents' and
    'Connecticut Fire Department Incidents - 2014'); a phrase most datasets do not write names a part of the group
    ('Police precincts' of New York's and Jackson's, beside King County's four election 'Precincts')."""
    first, _, second = term.partition("+")
    if not second:
        return False
    cities, written = set(), 0
    for row in rows:
        tokens = tokens_of[row]
        read = [text.SYNONYMS.get(w, w) for w in (text.stem(lower) for lower, _written, _tight in tokens)]
        for i, word in enumerate(read):
            if word != first:
                continue
            j = i
            while j + 1 < len(tokens) and tokens[j][2] and tokens[j + 1][0] in NOUN_STOPWORDS:
                j += 1
            if j + 1 < len(tokens) and tokens[j][2] and read[j + 1] == second:
                cities.add(int(c.city_ids[row]))
                written += 1
                break
    return len(cities) * 2 > n_cities and written * 2 > len(rows)


def _shared_breakdown(c: Catalogue, rows: list[int], word: str) -> str | None:
    """The breakdown every title of the group writes right after `word`, a lone label word, in the same words:
    'fuel type' of 'Generation by Fuel Type' and 'Electric Generation By Fuel Type, GWh' ('Generation' alone
    says little of what they hold); None when a title writes none or another."""
    after = re.compile(rf"\b{re.escape(word)}\w*\s+(?:by|per)\s+([^\W\d_]+(?:[ -][^\W\d_]+)?)\s*(?=$|[,:;(\[]| - |\d)",
                       re.IGNORECASE)
    found = {match.group(1).lower() if (match := after.search(c.titles[row] or "")) else None for row in rows}
    if len(found) != 1 or None in found:
        return None
    breakdown = found.pop()
    return breakdown if any(w not in text.STOPWORDS for w in text.find_words(breakdown)) else None


def _one_phrase_of(rows: list[int], words: list[str], tokens_of: dict[int, list[tuple[str, str, str]]]) -> list[str]:
    """Words tied for a label that every title writes in one phrase, in one order, with only
    stopwords between them, and one title side by side: 'Police beats' of 'Boundaries - Police
    Beats' and 'Seattle Police Department Beats', not 'Police' alone (nor 'Beats'); not 'Projects
    construction' of 'Projects in construction' and 'Projects Under Construction', which no city
    writes. Empty when they are not so."""
    if not 1 < len(words) <= LABEL_WORDS:
        return []
    stems = {text.stem(w.lower()): w for w in words}
    order, side_by_side = None, None
    for row in rows:
        tokens = tokens_of[row]
        at = {}
        for i, (lower, _written, _tight) in enumerate(tokens):
            at.setdefault(text.stem(lower), i)
        if not stems.keys() <= at.keys():
            return []
        positions = sorted(at[s] for s in stems)
        found = [text.stem(tokens[i][0]) for i in positions]
        if order is not None and found != order:
            return []
        order = found
        if not all(tokens[i][2] and (i + 1 in positions or tokens[i + 1][0] in text.STOPWORDS)
                   for i in range(positions[0], positions[-1])):
            return []
        if positions[-1] - positions[0] == len(positions) - 1:
            # as that title joins them: 'Boards & Commissions' (beside 'Boards and Commissions')
            side_by_side = [w for i, s in zip(positions, order) for w in (
                [stems[s], "&"] if tokens[i][2] == " & " and i != positions[-1] else [stems[s]])]
    return side_by_side or []


SERIES_END = re.compile(r":| - ")   # '500 Cities: City-level Data', 'Campaign Finance - FPPC Form 460'


def _bracketed_form(c: Catalogue, rows: list[int], words: list[str]) -> bool:
    """Whether `words` hold a form word ('GIS', 'format') and every title writes them inside
    its last bracket ('... (GIS Friendly Format)'): how the file is made, not what it holds."""
    if not any(text.stem(w.lower()) in text.GENERIC or text.stem(w.lower()) in text.SHAPE_FORMATS for w in words):
        return False
    phrase = " ".join(words).lower()
    for row in rows:
        title = (c.titles[row] or "").lower()
        bracket = title.rfind("(")
        if bracket < 0 or title.find(phrase, bracket) < 0 or phrase in title[:bracket]:
            return False
    return True


def _series_name(c: Catalogue, rows: list[int]) -> str | None:
    """The name of the series every title of the group starts with, before a ':' or ' - '
    ('500 Cities' of '500 Cities: City-level Data' and '500 Cities: Census Tract-level Data'),
    if they all write the same one and it is a name, not a title."""
    heads = {SERIES_END.split(c.titles[row] or "", maxsplit=1)[0].strip() for row in rows}
    if len(heads) != 1:
        return None
    head = heads.pop()
    if not head or any(head == (c.titles[row] or "").strip() for row in rows) \
            or len(head.split()) > LABEL_WORDS or not any(ch.isalpha() for ch in head):
        return None
    return head


# words a label may run across ('Leading causes of death', 'Recovery and reinvestment act')
# but neither start nor end with; 'by' and 'per' start a breakdown, not the subject
JOINING = frozenset({"of", "and", "for", "to", "in", "on"})
BREAKDOWN = text.BREAKDOWN
NOT_CUT_BY = JOINING | BREAKDOWN   # 'School based programs' by Borough: a phrase ends before them
# the stopwords a phrase runs across when a label counts the cities writing it: words a title's own phrase may hold
# ('Fire Department Incidents'), not those that join two phrases ('Boards and Commissions'), start a breakdown
# ('Funding By Source') or say where or when ('... at ...', '... from ...')
NOUN_STOPWORDS = text.STOPWORDS - NOT_CUT_BY - {"at", "from", "with", "or", "the", "a", "an", "into", "within",
                                                "among", "over", "under", "via", "than", "as", "is", "are"}
# words of STOPWORDS that do name what a dataset holds or lists ('Elected officials', 'School
# progress report', 'Post offices', 'After school programs', 'Public art', 'City limits',
# 'Department descriptions'): the first ones only at a label's end, 'public', 'city' and
# 'department' only at its start
ENDS_ONLY = frozenset({"official", "officials", "office", "offices", "report", "reports", "program", "programs"})
STARTS_ONLY = frozenset({"public", "city", "department"})   # not 'Privately owned public', 'Police department'
LABEL_WORDS_ALLOWED = ENDS_ONLY | STARTS_ONLY

LABEL_WORDS = 5   # a label's most words: a name, not a title
WORDINGS_TRIED = 8   # the words a label may run on to past one other word: the first few wordings of its spans
TOKEN = re.compile(r"[^\W\d_]+(?:['’]s\b)?|[0-9]+")   # a word of any alphabet ('Café'), with its possessive
OWNER_AT_END = re.compile(r"['’]s$")
# words of one phrase ('Off- Leash', 'Park & Ride': an ampersand joins two words into one name); ':', ' - ', '('
# or ',' end it
TIGHT = re.compile(r" +|- ?|'|’| +& +")


def distinguish(c: Catalogue, labels: list[str], rows_per_group: list[list[int]]) -> list[str]:
    """Labels that several groups share, each told apart by the title word its group's cities
    use most and the others' least, if a quarter of its cities and two or half use it ('Budget
    (proposed)' of 'HART Proposed Budget 2012' and '2013 Proposed Budget, FTEs', beside 'Budget
    (operating)'; not one city's 'Qtr' of 'Revenue 2013 Qtr 1'), else by its size, else by a
    title of it; a label of one group stays as it is (a user picks a group by its label: two
    alike would read as one)."""
    read = getattr(c, "title_surface_lists", None)
    by_label: dict[str, list[int]] = defaultdict(list)
    for number, name in enumerate(labels):
        by_label[name.lower()].append(number)
    out = list(labels)
    for numbers in by_label.values():
        if len(numbers) < 2:
            continue
        shares = []   # per group: term -> share of its cities whose titles use it, a surface, its cities
        for number in numbers:
            rows = rows_per_group[number]
            cities_with: dict[str, set[int]] = defaultdict(set)
            surface: dict[str, str] = {}
            for row in rows:
                for term, written in (read[row] if read else text.terms_with_surface(c.titles[row], c.places[row])):
                    cities_with[term].add(int(c.city_ids[row]))
                    surface.setdefault(term, written)
            n_cities = len({int(c.city_ids[r]) for r in rows})
            shares.append(({t: len(v) / n_cities for t, v in cities_with.items()}, surface, n_cities))
        for position, number in enumerate(numbers):
            share, surface, n_cities = shares[position]
            label_terms = set(text.terms(labels[number], bigrams=False))   # ('crash' of 'Traffic crashes')
            others = [shares[i][0] for i in range(len(numbers)) if i != position]

            def margin(term: str) -> tuple:
                return (share[term] - max(o.get(term, 0.0) for o in others), share[term], -len(surface[term]), term)
            # a word of a quarter of its cities or more, and of two or half (not one city's 'Cook' or
            # one of three's 'Qtr'), no form word
            candidates = [t for t in share if share[t] >= 0.25 and (share[t] * n_cities >= 2 - 1e-9 or share[t] >= 0.5)
                          and " " not in surface[t] and surface[t].isalpha()
                          and len(surface[t]) > 2 and t not in label_terms and t not in text.GENERIC
                          and t not in text.BOUNDARY_TERMS]
            best = max(candidates, key=margin, default=None)
            if best is not None and margin(best)[0] > 0:
                qualifier = surface[best] if surface[best].isupper() else surface[best].lower()
            else:
                qualifier = f"{len(rows_per_group[number])} datasets"
            out[number] = f"{labels[number]} ({qualifier})"
        told = Counter(out[number] for number in numbers)
        for number in numbers:   # still alike ('Private schools (2 datasets)' twice): by a title of it
            if told[out[number]] > 1:
                title = min(c.titles[r] or "" for r in rows_per_group[number])
                out[number] = f"{labels[number]} ({title[:40].strip()})"
    return out


def _tokens(title: str | None) -> list[tuple[str, str, str]]:
    """(the word as text.py reads it: lower case, no accents, no possessive; as written;
    what joins it to the next word of the same phrase: ' ', '-' or ' & ', or '' at a phrase's end)."""
    found = list(TOKEN.finditer(title or ""))
    gaps = [title[m.end():found[i + 1].start()] if i + 1 < len(found) else "" for i, m in enumerate(found)]
    return [(text.POSSESSIVE.sub("", text.fold(m.group())), m.group(),
             ("-" if gap.startswith("-") else " & " if "&" in gap else " ") if TIGHT.fullmatch(gap) else "")
            for m, gap in zip(found, gaps)]


def _subject_terms(title: str | None, drop: frozenset[str], title_terms) -> list[str]:
    """The terms of `title` (read as `title_terms`: (term, surface)) before its first
    breakdown word ('Permits' of 'Permits by Ward'); all of them when it has none or starts
    with one."""
    before = text.BREAKDOWN_WORD.split(title or "", maxsplit=1)[0]
    return (before != title and text.terms(before, drop)) or [term for term, _surface in title_terms]


def _label_word(word: str, drop) -> bool:
    """A word a label may start or end with: a content word, not a year, an id, nor the
    dataset's own place ('Baltimore City ...')."""
    if word in drop or word.isdigit() and word not in text.KEEP_NUMBERS:
        return False
    return word in LABEL_WORDS_ALLOWED or (len(word) > 1 and word not in text.STOPWORDS
                                           and not text.YEARISH.match(word))


class _Span(NamedTuple):
    """Where a title holds a label's words: tokens[start:end]."""
    city: int
    tokens: list[tuple[str, str, str]]
    stems: list[str]
    start: int
    end: int
    drop: frozenset[str]

    def one_phrase(self, lo: int, hi: int) -> bool:
        """tokens[lo:hi] follow each other with no punctuation between them."""
        return all(self.tokens[i][2] for i in range(lo, hi - 1))

    def dangling(self, i: int, linked: bool) -> bool:
        """Token i is a stopword of the same phrase: what stops at it is a phrase cut in two."""
        return (linked and 0 <= i < len(self.tokens) and self.tokens[i][0] in text.STOPWORDS
                and self.tokens[i][0] not in NOT_CUT_BY and self.tokens[i][0] not in self.drop)

    def grown(self, side: int, length: int) -> "_Span | None":
        """This span with `length` more words on `side` (-1 left, +1 right), if they may
        start or end a label; more than one only across a joining word or stopwords ('causes'
        'of' 'death', 'mortality' 'data' 'among' 'US adults'), not across a breakdown ('by')."""
        lo, hi = (self.start - length, self.end) if side < 0 else (self.start, self.end + length)
        if lo < 0 or hi > len(self.tokens) or not self.one_phrase(lo, hi):
            return None
        outer = lo if side < 0 else hi - 1
        inner = [t[0] for t in (self.tokens[lo + 1:self.start] if side < 0 else self.tokens[self.end:hi - 1])]
        word = self.tokens[outer][0]
        if not _label_word(word, self.drop) or word in (STARTS_ONLY if side > 0 else ENDS_ONLY) \
                or not all((w in JOINING or w in text.STOPWORDS) and w not in BREAKDOWN for w in inner):
            return None
        return self._replace(start=lo, end=hi)

    def cut(self, side: int) -> bool:
        """Whether a stopword of the same phrase lies just past this span on `side`."""
        if side < 0:
            return self.dangling(self.start - 1, self.start > 0 and self.tokens[self.start - 1][2])
        return self.dangling(self.end, self.tokens[self.end - 1][2])


def _widened(c: Catalogue, rows: list[int], words: list[str],
             tokens_of: dict[int, list[tuple[str, str, str]]]) -> tuple[list[str], bool]:
    """`words` with the neighbouring words of the same phrase that every city writing them
    writes around them too ('use trails' -> 'multi use trails', 'leading causes' -> 'leading
    causes of death'); not past punctuation, nor to the tail of a phrase cut in two ('STATE
    System Tobacco Legislation': not 'system tobacco legislation'). And whether what it
    returns is such a tail in every title (a stopword before it in the same phrase)."""
    key = [text.stem(w) for w in words]
    spans = []
    for row in rows:
        tokens = tokens_of[row]
        stems = [text.stem(t[0]) for t in tokens]
        span = next((_Span(int(c.city_ids[row]), tokens, stems, i, i + len(key), c.places[row])
                     for i in range(len(tokens) - len(key) + 1) if stems[i:i + len(key)] == key), None)
        if span is not None and span.one_phrase(span.start, span.end):
            spans.append(span)
    cities = {span.city for span in spans}
    if len(cities) < 2:
        return words, False

    def grown(side: int, length: int) -> list[_Span] | None:
        """The spans that grow by the same words, if every city has one and no span would
        stop at the tail of a phrase cut in two."""
        by_words: dict[tuple, list[_Span]] = defaultdict(list)
        for span in spans:
            bigger = span.grown(side, length)
            if bigger is not None:
                if bigger.cut(side):
                    return None
                by_words[tuple(bigger.stems[bigger.start:bigger.end])].append(bigger)
        return next((found for found in by_words.values() if {s.city for s in found} == cities), None)

    def grown_past_a_word() -> list[_Span] | None:
        """The spans grown to the right to words a city writes next that every other city writes too, in the
        same phrase, one word further ('Privately Owned Public Spaces' and 'Privately Owned Public Open Space':
        'privately owned public spaces'); the spans that write them side by side first."""
        wordings: dict[tuple[str, ...], None] = {}   # each wording once, in the spans' order (a group may be large)
        for length in (1, 2):
            for span in spans:
                bigger = span.grown(1, length)
                if bigger is not None and not bigger.cut(1):
                    wordings.setdefault(tuple(bigger.stems[span.end:bigger.end]))
        for wanted in list(wordings)[:WORDINGS_TRIED]:
            found = [other._replace(end=end) for other in spans
                     if (end := _end_of_words_past_one(other, list(wanted))) is not None]
            if {s.city for s in found} == cities and any(s.end - s.start > len(key) + len(wanted) for s in found):
                return sorted(found, key=lambda s: s.end - s.start)
        return None

    while spans[0].end - spans[0].start < LABEL_WORDS:
        found = next((g for side in (-1, 1) for length in (1, 2, 3) if (g := grown(side, length))), None)
        if found is None:
            spans = grown_past_a_word() or spans
            break
        spans = found
    # in the chosen wording where a city writes it so ('Trade permits', not 'Trades permits')
    chosen = " ".join(words)
    span = next((s for s in spans if chosen in " ".join(t[0] for t in s.tokens[s.start:s.end])), spans[0])
    # words a title hyphenates stay one ('multi-use trails', 'off-leash areas')
    joined = "".join(t[0] + (t[2] if i < span.end - 1 else "") for i, t in enumerate(span.tokens) if span.start <= i < span.end)
    return joined.split(" "), all(s.cut(-1) for s in spans)


def _end_of_words_past_one(span: _Span, wanted: list[str]) -> int | None:
    """Where `span` ends grown by the words `wanted` in their order, with one other word at most among them,
    all in its phrase and ending on the last of them; None when it does not write them so."""
    at, skipped = span.end, 0
    for word in wanted:
        while at < len(span.stems) and span.stems[at] != word and skipped < 1:
            at, skipped = at + 1, skipped + 1
        if at >= len(span.stems) or span.stems[at] != word:
            return None
        at += 1
    return at if span.one_phrase(span.start, at) else None


def _as_written(c: Catalogue, rows: list[int], words: list[str],
                tokens_of: dict[int, list[tuple[str, str, str]]]) -> str:
    """`words` as the group's titles write them: the last word plural when as many cities
    end a phrase with its plural as with it ('Restaurant inspections' of 'Food Inspections'
    and 'Food Inspection'; not 'Arts' of 'Arts Office' against four 'Public Art'), an
    acronym or a name with inner capitals kept when every title writes it so ('CIP',
    'PRAMStat'), the rest in lower case."""
    *before, last = words[-1].split("-")
    singular: set[int] = set()
    plural: dict[str, set[int]] = defaultdict(set)
    written: dict[str, set[str]] = defaultdict(set)
    lowered: dict[str, set[str]] = defaultdict(set)   # 'café', "women's": what the reading took off
    for row in rows:
        tokens = tokens_of[row]
        shouting = sum(ch.isupper() for ch in c.titles[row] or "") > sum(ch.islower() for ch in c.titles[row] or "")
        for i, (lower, original, tight) in enumerate(tokens):
            lowered[lower].add(original.lower())
            # the end of a phrase: nothing, punctuation, a number or a stopword follows
            head = not tight or tokens[i + 1][0].isdigit() or tokens[i + 1][0] in text.STOPWORDS
            if head and lower == last and not (tight and tokens[i + 1][0] in LIST_WORDS):
                singular.add(int(c.city_ids[row]))
            elif head and lower != last and text.stem(lower) == last:
                plural[lower].add(int(c.city_ids[row]))
            if not shouting:   # a title in capitals tells no acronym ('2014 ELECTION', 'CIP 2011-2012')
                written[lower].add(original)
    if plural and text.stem(last) == last:
        form, cities = max(plural.items(), key=lambda kv: (len(kv[1]), kv[0]))
        if len(cities) >= len(singular):
            words = words[:-1] + ["-".join(before + [form])]
    def shown(word: str) -> str:
        forms = written.get(word, ())
        acronym = bool(forms) and all(len(f) > 1 and (f.isupper() or any(ch.isupper() for ch in f[1:]))
                                      for f in forms)
        if not acronym and forms and all(f.islower() for f in forms):   # 'foia files': as the catalogue writes it
            acronym, forms = _written_elsewhere_as_acronym(c, word)
        # else in lower case, with the accents and apostrophe a title writes ('Café', "Women's")
        return sorted(forms)[0] if acronym else max(lowered.get(word, ()), default=word)

    label = " ".join("-".join(map(shown, word.split("-"))) for word in words)
    label = OWNER_AT_END.sub("", label)   # "Mayor's Office", "Mayor's Town Halls": 'Mayor'
    return label[:1].upper() + label[1:]


def _written_elsewhere_as_acronym(c: Catalogue, word: str) -> tuple[bool, set[str]]:
    """Whether the catalogue's titles that write in both cases write `word` as an acronym, every one of them ('FOIA'
    of Chicago's 'FOIA Request Log - Law' for two cities' 'foia files', a title all in lower case telling no
    acronym), and how. A word no such title writes, or one writes otherwise ('Files'), is not one."""
    lines = getattr(c, "_title_lines", None)
    if lines is None:
        lines = c._title_lines = "\n".join((t or "").replace("\n", " ") for t in c.titles)
    forms = set()
    for line in re.findall(rf"^.*(?<![^\W_]){re.escape(word)}(?![^\W_]).*$", lines,
                           flags=re.IGNORECASE | re.MULTILINE):
        upper, lower = sum(ch.isupper() for ch in line), sum(ch.islower() for ch in line)
        if upper and lower > upper:   # neither all in lower case nor in capitals
            forms |= {original for folded, original, _ in _tokens(line) if folded == word}
    return bool(forms) and all(len(f) > 1 and f.isupper() for f in forms), forms


# a word before 'List' names what the list holds, in the singular as a noun before a noun is: 'New Business List' and
# 'City of Hartford Business Listing' list businesses, as 'Listing of All Businesses' does (no singular to count)
LIST_WORDS = frozenset({"list", "lists", "listing", "listings"})


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
