"""The catalogue as the overlap detector sees it: one row per comparable dataset, with a
sparse, L2-normalised vector per signal (title, description, keywords, columns, column
types, profiled values) and the flags the scorer needs (boundary file, event records).

Built from the DuckDB catalogue in a few passes over Arrow columns; words and column
names are normalised once per distinct spelling.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from catalog.copies import copies_of
from catalog.overlap import concepts, text

# Assets that are views of another dataset, or not data: they never form groups.
NOT_COMPARABLE = ("filtered_view", "chart", "story", "catalog", "form", "calendar", "measure")
COLUMN_TYPES = ("text", "integer", "number", "boolean", "date", "datetime", "point", "geometry", "url", "other")
DESCRIPTION_CHARS = 600   # the first sentences say what a dataset is; the rest is methodology
TOP_VALUES_PER_COLUMN = 50
GENERIC_WEIGHT = 0.25     # a title's form words ('map', 'directory', 'codes') against its subject words
COLUMN_PROFILES_DDL = """CREATE TABLE IF NOT EXISTS column_profiles (
    dataset_uid VARCHAR, column_name VARCHAR, type VARCHAR, row_count BIGINT, null_count BIGINT,
    distinct_count BIGINT, min_value VARCHAR, max_value VARCHAR, top_values VARCHAR[],
    profiled_at TIMESTAMPTZ, PRIMARY KEY (dataset_uid, column_name))"""


@dataclass
class Catalogue:
    uids: list[str]
    cities: list[str]
    titles: list[str]
    asset_types: list[str]
    city_ids: np.ndarray                      # int per row: same id = same city
    title: sp.csr_matrix
    description: sp.csr_matrix
    keywords: sp.csr_matrix
    columns: sp.csr_matrix                    # column keys (and their words) weighted by idf
    column_types: sp.csr_matrix               # share of each shared column type
    values: sp.csr_matrix                     # idf weight of each profiled top value (not normalised)
    concepts: sp.csr_matrix                   # the kind of record (concepts.py), normalised
    value_sets: sp.csr_matrix                 # the same, 0/1
    is_boundary: np.ndarray
    is_code_table: np.ndarray                 # a list of codes ('IUCR Codes'), not the records they code
    is_site_page: np.ndarray                  # the portal's own content ('Home Page Stories'), not data
    has_dates: np.ndarray
    has_title: np.ndarray
    has_description: np.ndarray
    has_keywords: np.ndarray
    has_columns: np.ndarray
    has_values: np.ndarray
    has_concept: np.ndarray
    concept_lists: list[tuple[str, ...]]
    concept_confidence: np.ndarray            # 1: the title names the kind; less: only the description
    column_names: list[list[tuple[str, str, str]]]   # per row: (name, key, type)
    keyword_lists: list[list[str]]
    title_vocab: list[str]
    keyword_vocab: list[str]
    value_vocab: list[str]
    places: list[frozenset] = field(default_factory=list)
    embeddings: np.ndarray | None = None      # optional: one normalised sentence vector per row
    # per row, the row of the dataset it is a copy of (itself if none): one city's two portals list one dataset
    # (copies_of); each copy is compared, the groups and pairs count the dataset once
    same_as: np.ndarray | None = None
    records_named: np.ndarray | None = None   # which records the title names (bits of text.RECORD_BITS)
    # rows the families of records judge: no kind read, or one read only in the description, or a log of
    # records requests (a kind that is itself a family: requests), which stays apart from 'Calendar of Special Events'
    families_judge: np.ndarray | None = None
    # per row, the title terms it names only in a breakdown, after 'by' ('land', 'use' of 'Damage By Sandy By
    # Land Use'), none where its title has none (empty list: not read)
    breakdown_terms: list[frozenset[str]] = field(default_factory=list, repr=False)
    # per row, the words its title negates ('general' of 'Non-General Fund Expenditures'; empty list: none read)
    negated: list[frozenset[str]] = field(default_factory=list, repr=False)
    # per row, the bodies a directory lists ('agency' of 'Directory of Criminal Justice Agencies'; empty list: not read)
    bodies_listed: list[frozenset[str]] = field(default_factory=list, repr=False)
    # per row, the (term, surface) pairs of the title as its publisher wrote it (labels quote these)
    title_surface_lists: list[list[tuple[str, str]]] = field(default_factory=list, repr=False)
    # rows whose title was read with words of its description: term -> the title's words and where
    # the others come from ('CIP (Capital Improvement Projects, per its description)')
    described_surfaces: dict[int, dict[str, str]] = field(default_factory=dict, repr=False)
    index: dict[str, int] = field(default_factory=dict)
    _surfaces: dict[int, dict[str, str]] = field(default_factory=dict, repr=False)
    _column_keys: dict[int, dict[str, str]] = field(default_factory=dict, repr=False)
    _keyword_sets: dict[int, frozenset[str]] = field(default_factory=dict, repr=False)
    _title_weights: dict[int, dict[str, float]] = field(default_factory=dict, repr=False)
    _title_ranks: dict[int, dict[str, int]] = field(default_factory=dict, repr=False)
    _shown_in_order: dict[str, tuple[sp.csr_matrix, list[str]]] = field(default_factory=dict, repr=False)
    _mixed_case_forms: dict | None = field(default=None, repr=False)   # (groups._mixed_case_forms, read once)

    def __post_init__(self) -> None:
        if self.same_as is None:
            self.same_as = np.arange(len(self.uids))

    def __len__(self) -> int:
        return len(self.uids)

    def title_surfaces(self, row: int) -> dict[str, str]:
        """Title term -> the title's words it came from (cached: explanations ask often); a term
        read from the description's words, with them said to be the description's."""
        found = self._surfaces.get(row)
        if found is None:
            pairs = (self.title_surface_lists[row] if self.title_surface_lists
                     else text.terms_with_surface(self.titles[row], self.places[row]))
            found = dict(pairs)
            for term, surface in self.described_surfaces.get(row, {}).items():
                found.setdefault(term, surface)
            self._surfaces[row] = found
        return found

    def title_weights(self, row: int) -> dict[str, float]:
        """Title term -> its TF-IDF weight in the row."""
        found = self._title_weights.get(row)
        if found is None:
            start, end = self.title.indptr[row], self.title.indptr[row + 1]
            vocab = self.title_vocab
            found = self._title_weights[row] = {vocab[i]: w for i, w in zip(self.title.indices[start:end].tolist(),
                                                                           self.title.data[start:end].tolist())}
        return found

    def title_ranks(self, row: int) -> dict[str, int]:
        """Title term (title_surfaces) -> its place, heaviest first, ties in the title's order (cached: each
        explanation of the row's pairs quotes the heaviest terms it shares)."""
        found = self._title_ranks.get(row)
        if found is None:
            weight = self.title_weights(row)
            ranked = sorted(self.title_surfaces(row), key=lambda t: -weight.get(t, 0))
            found = self._title_ranks[row] = {term: place for place, term in enumerate(ranked)}
        return found

    def column_keys(self, row: int) -> dict[str, str]:
        """Normalised column name -> the first column name of the row with it."""
        found = self._column_keys.get(row)
        if found is None:
            found = self._column_keys[row] = _first_of_each(self.column_names[row])
        return found

    def shown_in_order(self, kind: str) -> tuple[sp.csr_matrix, list[str]]:
        """What explanations quote of each row's column keys (kind 'columns': the first column name with each key,
        in the row's order, as column_keys) or keywords ('keywords': each, in alphabetical order), as one list
        (`shown`, a row's in its order) and a row x key matrix holding 1 + each key's place in it. The pairs'
        shared columns and keywords are found on these for all pairs at once (cached: built once a catalogue)."""
        found = self._shown_in_order.get(kind)
        if found is None:
            ids: dict[str, int] = {}
            shown: list[str] = []
            indices: list[int] = []
            indptr = [0]
            for row in range(len(self.uids)):
                if kind == "columns":
                    keys = _first_of_each(self.column_names[row])
                else:
                    keys = {word: word for word in sorted(set(self.keyword_lists[row]))}
                indices += [ids.setdefault(key, len(ids)) for key in keys]
                shown += keys.values()
                indptr.append(len(indices))
            places = np.int32 if len(indices) < np.iinfo(np.int32).max else np.int64   # (the save's peak: 4 bytes)
            matrix = sp.csr_matrix((np.arange(1, len(indices) + 1, dtype=places), np.asarray(indices, dtype=places),
                                    np.asarray(indptr, dtype=places)), shape=(len(self.uids), len(ids)))
            matrix.sort_indices()
            found = self._shown_in_order[kind] = (matrix, shown)
        return found

    def keyword_sets(self, row: int) -> frozenset[str]:
        found = self._keyword_sets.get(row)
        if found is None:
            found = self._keyword_sets[row] = frozenset(self.keyword_lists[row])
        return found

    def row(self, uid: str) -> int:
        if not self.index:
            self.index = {u: i for i, u in enumerate(self.uids)}
        return self.index[uid]


def _first_of_each(columns: list[tuple[str, str, str]]) -> dict[str, str]:
    """Column key -> the first column name with it, in the columns' order."""
    found: dict[str, str] = {}
    for name, key, _ in columns:
        found.setdefault(key, name)
    return found


def tfidf(docs: list[list[str]], *, sublinear: bool = True, max_df: float | None = None,
          weights: list[list[float]] | None = None) -> tuple[sp.csr_matrix, list[str]]:
    """Rows of term lists -> L2-normalised TF-IDF rows and the vocabulary."""
    n = len(docs)
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=n)
    flat = [term for doc in docs for term in doc]
    codes, vocab = pd.factorize(pd.Series(flat, dtype=object), sort=False) if flat else (np.zeros(0, np.int64), [])
    values = (np.fromiter((w for row in weights for w in row), dtype=np.float32, count=len(flat))
              if weights is not None else np.ones(len(flat), dtype=np.float32))
    rows = np.repeat(np.arange(n), lengths)
    matrix = sp.csr_matrix((values, (rows, codes)), shape=(n, len(vocab)), dtype=np.float32)
    matrix.sum_duplicates()
    if sublinear:
        matrix.data = np.maximum(1.0 + np.log(np.maximum(matrix.data, 1e-6)), 0.05).astype(np.float32)
    df = np.bincount(matrix.indices, minlength=len(vocab))
    idf = (np.log((n + 1) / (df + 1)) + 1.0).astype(np.float32)
    if max_df is not None:  # words in most rows (e.g. 'latitude' in columns) tell little
        idf[df > max_df * n] *= 0.25
    matrix = matrix @ sp.diags(idf, format="csr") if len(vocab) else matrix
    return normalise(matrix), list(vocab)


def normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix, dtype=np.float32)


def load(con: duckdb.DuckDBPyConnection, uids: list[str] | None = None) -> Catalogue:
    """Read the comparable datasets of the catalogue (not deleted, not derived views)."""
    rows = con.execute(f"""
        SELECT uid, coalesce(nullif(city, ''), portal_id) AS city, portal_id, title, description,
               keywords, themes, coalesce(asset_type, 'dataset') AS asset_type, publisher,
               CAST(issued AS DATE) AS issued_day, source_id, modified,
               (SELECT count(*) FROM columns c WHERE c.dataset_uid = d.uid) AS column_count
        FROM datasets d
        WHERE deleted_at IS NULL AND parent_uid IS NULL
          AND coalesce(asset_type, 'dataset') NOT IN {NOT_COMPARABLE}
        ORDER BY uid""").to_arrow_table().to_pydict()
    columns = con.execute("""
        SELECT c.dataset_uid, coalesce(c.field_name, c.name) AS field_name, coalesce(c.name, c.field_name) AS name,
               coalesce(c.type, 'other') AS type
        FROM columns c JOIN datasets d ON d.uid = c.dataset_uid
        WHERE d.deleted_at IS NULL AND d.parent_uid IS NULL
        ORDER BY c.dataset_uid, c.position""").to_arrow_table()
    columns = {name: columns.column(name).to_pylist() for name in columns.column_names}
    # one normalisation per distinct spelling, not per column
    key_of = {spelling: text.column_key(spelling) for spelling in {*columns["field_name"], *columns["name"]}}
    keys = [key_of.get(f) or key_of.get(n) or "" for f, n in zip(columns["field_name"], columns["name"])]
    columns_by_uid: dict[str, list[tuple[str, str, str]]] = {}
    for uid, name, key, column_type in zip(columns["dataset_uid"], columns["name"], keys, columns["type"]):
        if key:
            columns_by_uid.setdefault(uid, []).append((name, key, column_type))
    values_by_uid = _top_values(con)
    catalogue = build(rows, columns_by_uid, values_by_uid)
    index = {uid: row for row, uid in enumerate(rows["uid"])}
    for first, others in copies_of(rows).items():
        catalogue.same_as[[index[uid] for uid in others]] = index[first]
    return catalogue


def _top_values(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Profiled top values of text-like columns, where a records harvest has profiled them."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'column_profiles'").fetchone()[0]
    if not exists:
        return {}
    out: dict[str, list[str]] = {}
    for uid, values in con.execute(f"""
            SELECT dataset_uid, flatten(list(top_values[1:{TOP_VALUES_PER_COLUMN}]))
            FROM column_profiles
            WHERE top_values IS NOT NULL AND coalesce(type, 'text') IN ('text', 'other')
            GROUP BY dataset_uid""").fetchall():
        normal = {text.normal_value(v) for v in values or ()}
        normal.discard("")
        if normal:
            out[uid] = sorted(normal)
    return out


# the words the detector reads: those that name a kind of record, a family of records, a civic word found inside a
# file name, a synonym or a word of a civic phrase
VOCABULARY = concepts.KIND_WORDS | text.VOCABULARY


def build(rows: dict[str, list], columns_by_uid: dict[str, list[tuple[str, str, str]]],
          values_by_uid: dict[str, list[str]]) -> Catalogue:
    uids = rows["uid"]
    n = len(uids)
    city_codes: dict[str, int] = {}
    city_ids = np.fromiter((city_codes.setdefault((c or "").lower(), len(city_codes)) for c in rows["city"]),
                           dtype=np.int32, count=n)
    places = [text.own_place_words(city, portal) for city, portal in zip(rows["city"], rows["portal_id"])]
    # a title's misspellings of the detector's own words, read as those words ('Compliants', 'Elecricity Usage')
    respelling = text.respellings(rows["title"], rows["description"], VOCABULARY)
    own_titles = [text.respelled(t, respelling) for t in rows["title"]] if respelling else rows["title"]
    # a title read with what its description says of it: the words it spells a title's acronyms with ('2019
    # ISR': Investigatory Stop Report), the records it names of a title it repeats ('Inspections ... Budgets')
    spelled_titles = [_with_acronyms_spelled(t, d) for t, d in zip(own_titles, rows["description"])]
    read_titles = [_with_records_described(t, d) for t, d in zip(spelled_titles, rows["description"])]
    read_surface_lists = [text.terms_with_surface(t, drop) for t, drop in zip(read_titles, places)]
    title_terms = [[term for term, _ in pairs] for pairs in read_surface_lists]
    # labels and explanations quote the publisher's own words: the description's are said to be its
    title_surface_lists, described_surfaces = read_surface_lists[:], {}
    for row in np.flatnonzero([r != t for r, t in zip(read_titles, own_titles)]).tolist():
        title_surface_lists[row] = text.terms_with_surface(own_titles[row], places[row])
        described_surfaces[row] = _described_surfaces(own_titles[row], spelled_titles[row], read_titles[row],
                                                      rows["description"][row], read_surface_lists[row],
                                                      title_surface_lists[row])
    if respelling:   # ... and a misspelt word as the publisher spelt it ("'complaints' ↔ 'compliants'")
        misspelt = {meant: slip for slip, meant in respelling.items()}
        for row in np.flatnonzero([o != t for o, t in zip(own_titles, rows["title"])]).tolist():
            title_surface_lists[row] = [(term, " ".join(misspelt.get(w, w) for w in surface.split(" ")))
                                        for term, surface in title_surface_lists[row]]
    # the words a title repeats are its subject: a phrase term counts more than its parts
    # (and a form word like 'map' or 'directory' less than a subject word)
    generic, form_weight = text.GENERIC, GENERIC_WEIGHT
    # (the words of a body's name, a part of the title of their own, say whose the records are: form words)
    body_words = [text.body_name_words(t, drop) for t, drop in zip(read_titles, places)]
    title_weights = [[form_weight if t in body else 1.5 if ("_" in t or "+" in t) else form_weight if t in generic
                      else 1.0 for t in terms] for terms, body in zip(title_terms, body_words)]
    title, title_vocab = tfidf(title_terms, weights=title_weights)
    description_terms = _description_terms(rows["description"], places)
    description, _ = tfidf(description_terms, max_df=0.3)
    # (the kinds a description names only as examples are none of its own: concepts.EXAMPLES)
    kind_description_terms = [_without_accident_off_the_road(_without_examples(terms, d, drop), d) for terms, d, drop
                              in zip(description_terms, rows["description"], places)]
    found = [concepts.of_dataset_terms(t, d, title, publisher) for t, d, title, publisher
             in zip(title_terms, kind_description_terms, read_titles, rows.get("publisher") or [None] * n)]
    concept_lists = [kinds for kinds, _ in found]
    # a kind read in a description is weaker evidence than one the title names
    concept_confidence = np.fromiter((1.0 if own else concepts.DESCRIPTION_CONFIDENCE for _, own in found),
                                     dtype=np.float32, count=n)
    concept_matrix = concept_vectors(concept_lists)
    keyword_lists = [sorted(set(text.keyword_terms((k or []) + (th or [])))) for k, th in
                     zip(rows["keywords"], rows["themes"])]
    keywords, keyword_vocab = tfidf(keyword_lists, sublinear=False, max_df=0.2)

    column_names = [columns_by_uid.get(uid, []) for uid in uids]
    column_docs, column_weights = [], []
    type_rows = []
    for cols in column_names:
        keys = sorted({key for _, key, _ in cols})   # sorted: a set's order changes with the hash seed, and
        words = sorted({w for key in keys for w in key.split()} - set(keys))   # the order of sums with it
        column_docs.append(keys + words)
        column_weights.append([1.0] * len(keys) + [0.4] * len(words))
        type_rows.append(Counter(t for _, _, t in cols))
    columns, _ = tfidf(column_docs, sublinear=False, max_df=0.25, weights=column_weights)
    type_index = {t: i for i, t in enumerate(COLUMN_TYPES)}
    column_types = normalise(sp.csr_matrix(
        [[counts.get(t, 0) for t in COLUMN_TYPES] for counts in type_rows] if n else np.zeros((0, len(type_index))),
        dtype=np.float32))

    value_lists = [values_by_uid.get(uid, []) for uid in uids]
    value_sets, value_vocab = _binary(value_lists)
    df = np.bincount(value_sets.indices, minlength=value_sets.shape[1])
    has_values = np.diff(value_sets.indptr) > 0
    idf = np.log((max(int(has_values.sum()), 1) + 1) / (df + 1)) + 1.0
    values = sp.csr_matrix(value_sets @ sp.diags(idf.astype(np.float32)), dtype=np.float32)

    has_dates = np.fromiter((any(t in ("date", "datetime") for _, _, t in cols) for cols in column_names),
                            dtype=bool, count=n)
    is_boundary = np.fromiter((_is_boundary(title, terms, cols, asset) for title, terms, cols, asset
                               in zip(own_titles, title_terms, column_names, rows["asset_type"])),
                              dtype=bool, count=n)
    is_code_table = np.fromiter((_is_code_table(title) for title in own_titles), dtype=bool, count=n)
    is_site_page = np.fromiter(("home_page" in terms or _configures_the_portal(d)
                                for terms, d in zip(title_terms, rows["description"])), dtype=bool, count=n)
    is_site_page |= _set_up_with_the_home_page(rows, is_site_page)
    # a log of records requests holds requests, though its title may not say so ('SSMMA Sauk Village FOIA Log')
    records_named = np.fromiter((text.FAMILY_BITS["request"] if kinds == (concepts.RECORDS_REQUEST,)
                                 else text.records_named([t for t in terms if t not in body])
                                 for terms, kinds, body in zip(title_terms, concept_lists, body_words)),
                                dtype=np.int64, count=n)
    breakdown_terms = [_breakdown_terms(t, terms, drop) for t, terms, drop in zip(read_titles, title_terms, places)]
    for row in np.flatnonzero(records_named & ~text.FAMILY_BITS[text.FEE]).tolist():
        if text.FEE in title_terms[row] and _fees_of(read_titles[row], places[row]):
            records_named[row] = text.FAMILY_BITS[text.FEE]
    # records by industry are an economy's figures, whatever records they count or none (a ledger lists payees,
    # never industries: 'Procurement By Industry' too); records per a unit a rate of them
    for row in range(n):
        per_unit = records_named[row] and RATE.search(own_titles[row] or "")
        if breakdown_terms[row] & text.ECONOMY_BREAKDOWNS or per_unit:
            records_named[row] = text.FAMILY_BITS[text.FIGURES]
    for row in np.flatnonzero(records_named == 0).tolist():
        if _headed_by_figures(own_titles[row]) or COMPARES_PLACES.search(own_titles[row] or ""):
            records_named[row] = text.FAMILY_BITS[text.FIGURES]
        elif used := _statistics_of_use(title_terms[row], rows["description"][row]):
            records_named[row] = text.RECORD_BITS[used[0]]
            described_surfaces.setdefault(row, {})[used[0]] = f"{rows['title'][row]} ({used[1]}, per its description)"
        elif given := _money_given_listed(rows["description"][row]):
            records_named[row] = text.RECORD_BITS[text.GRANT]
            described_surfaces.setdefault(row, {})[text.GRANT] = f"{given} (per its description)"
    return Catalogue(
        uids=uids, cities=rows["city"], titles=rows["title"], asset_types=rows["asset_type"], city_ids=city_ids,
        title=title, description=description, keywords=keywords, columns=columns, column_types=column_types,
        values=values, value_sets=value_sets, concepts=concept_matrix, is_boundary=is_boundary,
        is_code_table=is_code_table, is_site_page=is_site_page, has_dates=has_dates,
        has_title=np.array([any(t not in text.GENERIC and "+" not in t for t in terms) for terms in title_terms],
                           dtype=bool),
        has_description=np.array([len(d) >= 3 for d in description_terms], dtype=bool),
        has_keywords=np.array([bool(k) for k in keyword_lists], dtype=bool),
        has_columns=np.array([bool(c) for c in column_names], dtype=bool),
        has_values=has_values, has_concept=np.diff(concept_matrix.indptr) > 0, concept_lists=concept_lists,
        concept_confidence=concept_confidence,
        column_names=column_names, keyword_lists=keyword_lists,
        title_vocab=title_vocab, keyword_vocab=keyword_vocab, value_vocab=value_vocab, places=places,
        title_surface_lists=title_surface_lists, described_surfaces=described_surfaces, records_named=records_named,
        breakdown_terms=breakdown_terms, negated=[text.negated_words(t) for t in read_titles],
        bodies_listed=[text.bodies_listed(t) for t in read_titles],
        # (a kind read only in a description leaves the title's families to judge: Baltimore's 'Fixed Speed
        # Cameras', described by the citations they send, is a list of cameras, not 'Speed Camera Violations')
        families_judge=np.fromiter((not kinds or kinds == (concepts.RECORDS_REQUEST,) or not own
                                    for kinds, own in found), dtype=bool, count=n))


def _description_terms(descriptions: list[str | None], places: list[frozenset[str]]) -> list[list[str]]:
    """Each description's terms less its dataset's own place words, each distinct description read once and its
    terms made once for the place words it holds (one list for all of its datasets: read, never changed).
    Catalogues repeat descriptions: a dataset two portals of a city list, a publisher's boilerplate (7,989
    distinct of the real catalogues' 10,656; the bench's 100,000, made of 7,186 real datasets, 5,783 of 85,166)."""
    every_place = frozenset().union(*places)
    held: dict[str, frozenset[str]] = {}   # description -> the place words of any dataset it holds
    made: dict[tuple[str, frozenset[str]], list[str]] = {}
    out = []
    for description, drop in zip(descriptions, places):
        opening = _without_caveats(description)[:DESCRIPTION_CHARS]
        if not opening:
            out.append([])
            continue
        found = made.get((opening, drop & held[opening])) if opening in held else None
        if found is None:
            raw, stemmed, head_words = text.read_words(opening, bigrams=False, glued=False)
            held[opening] = every_place.intersection(raw, stemmed)
            found = made.setdefault((opening, drop & held[opening]), [
                term for term, _ in text.terms_read(raw, stemmed, head_words, drop, bigrams=False)])
        out.append(found)
    return out


# a title's phrases: what a ' - ', ':', a comma or a bracket parts ('Building Permits - Waived Fees': two)
PHRASE_PARTS = re.compile(r"\s[-–—/]\s|[:,;()\[\]]")


def _fees_of(title: str | None, drop: frozenset[str]) -> bool:
    """Whether the title lists fees of the other records it names: fees the last record word of a phrase that
    names the others before them ('DOB License Fees', 'Directory of Tennis Permit Fees', 'Special Event Concession
    Fee Details': a schedule of what a licence, a permit, a concession costs), as the last noun of a phrase is what
    it names; a phrase of fees beside a phrase of other records holds those records ('Building Permits - Waived
    Fees': permits)."""
    for phrase in PHRASE_PARTS.split(title or ""):
        named = [term for term in text.terms(phrase, drop) if term in text.RECORD_BITS]
        if text.FEE in named:
            return named[-1] == text.FEE and len(named) > 1
    return False


# an accident a description names is a traffic crash only on the road: a workplace's ('First reports of injury by
# county based on accident site location'), an employee's 'accident leave' are none (a title's 'Accidents', a police
# department's records, are crashes: the concepts read titles so)
ROAD_WORDS = re.compile(r"\b(?:traffic|vehicles?|motor|cars?|roads?|roadways?|highways?|streets?|pedestrians?|bicycl\w*|"
                        r"bikes?|cyclists?|drivers?|driving|intersections?|transit|bus|buses|trains?|rail|transportation|"
                        r"crash\w*|collisions?|wrecks?)\b", re.IGNORECASE)


def _without_examples(terms: list[str], description: str | None, drop: frozenset[str]) -> list[str]:
    """A description's terms, read again less its examples when they name a kind (a word of a trigger)."""
    opening = _without_caveats(description)[:DESCRIPTION_CHARS]
    read = concepts.without_examples(opening)
    if read == opening or not concepts.TRIGGER_WORDS.intersection(
            text.terms(" ".join(concepts.EXAMPLES.findall(opening)), drop, bigrams=False, glued=False)):
        return terms   # (the examples named no kind: the reading is the same, not worth reading it all again)
    return text.terms(read, drop, bigrams=False, glued=False)


def _without_accident_off_the_road(terms: list[str], description: str | None) -> list[str]:
    if "crash" not in terms or not description or ROAD_WORDS.search(description):
        return terms
    return [term for term in terms if term != "crash"]


# a disclaimer's numbered caveats ('DATA DISCLAIMER\n1. The data provided are for informational use only and may
# differ from official APD crime data.'): what the data may differ from, not what it holds
CAVEATS = re.compile(r"\bdisclaimer\b[\s:.]*\n\s*1[.)]\s.*", re.IGNORECASE | re.DOTALL)


def _without_caveats(description: str | None) -> str:
    """A description without the numbered caveats of a data disclaimer, and all after them."""
    if not description:
        return ""
    return CAVEATS.sub(" ", description) if "isclaimer" in description or "ISCLAIMER" in description else description


STATISTICS_WORDS = frozenset({"statistic", "stat"})
# the figures of a service's use as a description names them, as written -> the record word of them
USE_FIGURES = {"visit": "visitor", "visitor": "visitor", "circulation": "circulation", "ridership": "ridership",
               "attendance": "attendance", "attendee": "attendance"}


def _statistics_of_use(title_terms: list[str], description: str | None) -> tuple[str, str] | None:
    """A title of statistics whose description's first sentence says they are figures of use: Los
    Angeles's 'Library Monthly Stats', 'Monthly statistics from the Library on Web visits, computer usage,
    e-media', are its libraries' figures of use (text.RECORD_FAMILIES), not a list of them. The record
    word of those figures and the description's word for them; None for other titles."""
    if not description or not STATISTICS_WORDS & set(title_terms):
        return None
    sentence = SENTENCE_END.split(description[:DESCRIPTION_CHARS], maxsplit=1)[0]
    return next(((USE_FIGURES[text.stem(w)], w) for w in text.find_words(sentence) if text.stem(w) in USE_FIGURES),
                None)


# a description whose first sentence says the dataset lists grants or financial assistance names its records: money a
# government gives, as 'aid' is (text.RECORD_FAMILIES). Connecticut's 'Department of Economic and Community Development
# – Community Development Portfolio', "... listing of direct financial assistance for community development and
# improvement projects", lists grants and loans, no community's figures (Baltimore's Vital Signs 'Housing and Community
# Development (2010-2012)'); Illinois' 'March 2014 Open', "This is a listing of all grants administered by the ICJIA
# that were open on March 19, 2014", grants, no open space; 'List of Job Centers that offer temporary financial
# assistance' lists centres
MONEY_GIVEN_LISTED = re.compile(r"\blist(?:ing)?\s+of\s+(?:[\w,]+\s+){0,2}?(financial\s+assistance|grants?)\b",
                                re.IGNORECASE)


def _money_given_listed(description: str | None) -> str | None:
    """The words a description's first sentence names the money given it lists with ('grants'), or None."""
    opening = (description or "")[:DESCRIPTION_CHARS]
    if "list" not in opening.lower():
        return None
    found = MONEY_GIVEN_LISTED.search(SENTENCE_END.split(opening, maxsplit=1)[0])
    return found.group(1) if found else None


def _headed_by_figures(title: str | None) -> bool:
    """A title that starts with a figure of what follows: 'Percent of Short-term Rentals Issued by Census Tract',
    'Total Number of High School Seniors in Missouri', 'Number of businesses in the State' (text.FIGURE_HEADS)."""
    words = text.words(title, glued=False)
    first = next((i for i, w in enumerate(words) if w not in text.STOPWORDS and not text.YEARISH.match(w)), None)
    return first is not None and words[first] in text.FIGURE_HEADS and words[first + 1:first + 2] == ["of"]


# a title that compares places ('Choose Maryland: Compare States - Utilities', '... Compare Counties - Taxes') holds
# their figures side by side: the states' utility prices, no utility to find ('Find A Missouri Utility')
COMPARES_PLACES = re.compile(r"\bcompar\w*\s+(?:states|counties|cities|metros|towns|countries|regions)\b", re.IGNORECASE)


# records counted or paid per a unit are a rate, figures of them: 'Maryland Average Wage Per Job' (no payroll),
# 'Medicare Hospital Spending Per Patient', 'Dog Licenses Sold per Town' (not 'Per Capita County Expenditures',
# where nothing comes before it, nor 'One- Day- Per- Week')
RATE = re.compile(r"\w[^\w-]+(per\s+\w+)", re.IGNORECASE)


NO_TERMS: frozenset[str] = frozenset()
# where a breakdown after 'by' ends: 'Boston by the Numbers: Foreign Born' is the foreign-born
# population, 'By Year Of CCRB Referral' counts by year
BREAKDOWN_END = re.compile(r"\b(?:of|for|in|and|from|with)\b|[,:;(\[]| - ", re.IGNORECASE)
BREAKDOWN_TERMS = 2   # a breakdown is a word or two ('by Census Tracts'); 'Lead By Example Hawaii State
                      # Agencies Electricity Consumption' names a programme


def _breakdown_terms(title: str | None, title_terms: list[str], drop: frozenset[str]) -> frozenset[str]:
    """The terms a title names only in a breakdown, after 'by' or 'per': 'sandy', 'land', 'use' and
    'land+use' of 'Damage By Sandy By Land Use', which counts damage, not land use. None when the title
    has no breakdown, or nothing before it ('By Council District': then what follows is its subject). The place
    of things listed in it ('Toilets In Public Parks') and a body's name ('Board of Education') are read as one."""
    if title and " in " in title.lower():
        title = LOCATED_IN.sub(_as_breakdown, title)
    if title and " of " in title.lower():
        title = BODY_OF.sub(r"\1 by \2,", title)
    if not title or not text.BREAKDOWN_WORD.search(title):
        return NO_TERMS
    head, *after = text.BREAKDOWN_WORD.split(title)
    subject = set(text.terms(head, drop))
    broken = set()
    for part in after:
        grouping, *rest = BREAKDOWN_END.split(part, maxsplit=1)
        found = text.terms(grouping, drop)
        if sum("+" not in t for t in found) > BREAKDOWN_TERMS:
            return NO_TERMS
        broken.update(found)
        subject.update(text.terms(rest[0], drop) if rest else ())
    return frozenset(t for t in title_terms if t in broken and t not in subject) if subject else NO_TERMS


# things listed where they are, a plural 'in' a plural: 'Directory Of Toilets In Public Parks' lists toilets (the
# parks are where), 'Movies in the Parks' films shown; not 'Total Change in Resident Population', 'Licenses In
# Active Status', 'Projects in construction'
LOCATED_IN = re.compile(r"\b(\w+)\s+in\s+((?:the\s+)?\w+(?:\s+\w+)?)(?![\w-])", re.IGNORECASE)


# a body's name says whose records a title holds, not what they are about: 'Board of Education, 1934-2002' holds the
# board's papers, no figures of education; 'Board of Elections', 'Board of Ethics' (read as a breakdown of one word,
# 'Board by Education,': 'Board of Agriculture Meetings' are meetings)
BODY_OF = re.compile(r"\b(board|commission)\s+(?:of|on)\s+(\w+)", re.IGNORECASE)


def _as_breakdown(match: re.Match) -> str:
    """A plural 'in' a plural read as a breakdown that ends at the place ('Toilets by Public Parks,'; 'Bikes in
    Buildings Requests' are requests); any other 'in' as written."""
    things, where = match.groups()
    words = where.split()
    place = next((i for i, w in enumerate(words) if _plural(w)), None)   # the first plural after 'in'
    if place is None or not _plural(things):
        return match.group()
    return f"{things} by {' '.join(words[:place + 1])}, {' '.join(words[place + 1:])}"


def _plural(word: str) -> bool:
    return not word.isupper() and text.stem(word.lower()) != word.lower()   # an acronym ('GTFS') is none


ACRONYM_WORD = re.compile(r"[^\W_]+")      # in any alphabet: 'CAFÉ' is one word, not 'CAF'
SPELLING = re.compile(r"[^\W\d_]+")        # 'Français', 'Écologique'
# words of an organisation's name: an acronym spelled with one names the publisher ('MTA': Metropolitan
# Transportation Authority; 'CHP': California Highway Patrol; 'CUNY': City University of New York)
ORGANISATION = frozenset({"department", "authority", "commission", "agency", "office", "board", "bureau", "council",
                          "administration", "division", "corporation", "ministry", "police", "patrol", "sheriff",
                          "university", "college", "school", "schools"})
# words an acronym may leave out or keep ('SQF': Stop, Question and Frisk; 'UOF': Use of Force)
ACRONYM_GAPS = frozenset({"of", "and", "the", "for", "in", "on", "to", "a", "an"})


def _with_acronyms_spelled(title: str | None, description: str | None) -> str | None:
    """A title that names its records by acronyms alone, with the words the opening of its
    description spells them with in parentheses: '2019 ISR' described as 'Chicago Police
    Department Investigatory Stop Report (ISR) data' reads '2019 ISR (Investigatory Stop Report)',
    'sqf 2010' described as 'NYPD Stop Question and Frisk Data' reads 'sqf 2010 (Stop Question and
    Frisk)'. An acronym is a word of three to six letters in capitals (any word of a title in lower
    case or all in capitals); a department's ('LMPD') names the publisher, not the records, and
    so does one spelled as an organisation's name or after one ('Department of Housing and Urban
    Development (HUD)'). Beside a word that is no acronym ('ODOT Construction Contracts',
    'Permits - BLDS') an acronym mostly says whose the records are, not what they are: such a
    title stays as it is."""
    spellings = _spellings(title, description)
    return f"{title} ({'; '.join(spellings.values())})" if spellings else title


def _spellings(title: str | None, description: str | None) -> dict[str, str]:
    """Each acronym of a title of acronyms alone (in lower case) -> the words the opening of its
    description spells it with, as `_with_acronyms_spelled` reads them: none unless all are
    spelled, none as an organisation's name."""
    if not title or not description:
        return {}
    any_case = title.islower() or title.isupper()
    subject = [w for w in ACRONYM_WORD.findall(title) if text._is_content(w.lower()) and w.lower() not in text.GENERIC]
    if not subject or not all(3 <= len(w) <= 6 and w.isalpha() and (any_case or w.isupper())
                              and not concepts.DEPARTMENT.match(w.lower()) for w in subject):
        return {}
    words = SPELLING.findall(description[:DESCRIPTION_CHARS])
    lowered = [text.fold(w) for w in words]
    acronyms = list(dict.fromkeys(w.lower() for w in subject))
    runs = [_spelling(text.fold(acronym), lowered) for acronym in acronyms]
    # ... and an organisation's name ('MTA': Metropolitan Transportation Authority) is the publisher's
    if not all(runs) or any(_names_organisation(lowered, start, end) for start, end in runs):
        return {}
    return {acronym: " ".join(words[start:end]) for acronym, (start, end) in zip(acronyms, runs)}


def _described_surfaces(title: str, spelled: str, read: str, description: str,
                        read_pairs: list[tuple[str, str]], own_pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The terms of a title read with its description's words (`read`) that its own words do not
    give, each with the title's words and the description's ('CIP (Capital Improvement Projects,
    per its description)', 'Inspections (budgets, per its description)'): an explanation or a
    label quotes no words the publisher did not title the dataset with."""
    own = {term for term, _ in own_pairs}
    spellings = _spellings(title, description) if spelled != title else {}
    records = read[len(spelled):].strip(" ()") if read != spelled else ""
    out: dict[str, str] = {}
    for term, surface in read_pairs:
        if term in own or term in out:
            continue
        words = set(text.find_words(surface))
        if records and words & set(text.find_words(records)):
            out[term] = f"{title} ({records}, per its description)"
            continue
        acronym = next((a for a, spelling in spellings.items() if words & set(text.find_words(spelling))),
                       next(iter(spellings), None))
        out[term] = (f"{acronym} ({spellings[acronym]}, per its description)" if acronym
                     else f"{title} ({read[len(title):].strip(' ()')}, per its description)")
    return out


def _names_organisation(lowered: list[str], start: int, end: int) -> bool:
    """Whether words[start:end] name an organisation: a word of one in them, or just before
    them ('Department of' Housing and Urban Development) or just after ('... Development Department')."""
    if any(w in ORGANISATION for w in lowered[start:end]):
        return True
    # 'Department of', 'Office of the' (not 'Police Department Investigatory Stop Report': the department's report)
    before = start - 1
    while before >= 0 and lowered[before] in ACRONYM_GAPS and start - before <= 2:
        before -= 1
    return ((0 <= before < start - 1 and lowered[before] in ORGANISATION)
            or (end < len(lowered) and lowered[end] in ORGANISATION))


SENTENCE_END = re.compile(r"[.;:!?\n]")
RECORDS_DESCRIBED_WITHIN = 8   # words after the title ('FY13 Adopted And FY14 Proposed Budgets'); further on a
                               # sentence goes on to other things ('... Visit the below link for info on SPEDES permits')
# words that end the title's own phrase: what follows says what its records are of or come with
# ('Food inspections of restaurants, with the violations found'), not what they are
PHRASE_ENDS = frozenset({"of", "with", "since", "for", "including", "includes", "include", "from", "by", "in", "on",
                         "at", "during", "to", "about", "under", "within", "after", "before", "per", "through",
                         "into", "over", "across", "against", "between", "among", "as", "such", "like", "plus",
                         "the", "their", "its", "a", "an", "this", "these", "that", "which", "who", "where", "when",
                         "related", "resulting", "associated"})


def _with_records_described(title: str | None, description: str | None) -> str | None:
    """A title its description's first sentence repeats and goes on to name the records of,
    with the record words in parentheses: Raleigh's 'Inspections' described as 'Inspections
    FY13 Adopted And FY14 Proposed Budgets' is a budget line of its inspections office, not
    inspections; 'Human Service Agencies' the same office's budget. Only record words the title
    does not name (text.RECORD_FAMILIES), a few words after it and in the title's own phrase:
    up to a comma, a preposition or an article ('Food inspections of restaurants, with the
    violations found' are food inspections; 'Code Enforcement All Violations. Connected to ...'
    says nothing new)."""
    if not title or not description or not title.strip():
        return title
    first = title.split(maxsplit=1)[0].casefold()
    if description.lstrip()[:len(first)].casefold() != first:   # most descriptions: not read further
        return title
    said = text.find_words(title)
    if not said:
        return title
    # the first sentence's clauses (cut at commas) up to the one the title ends in
    sentence = SENTENCE_END.split(description[:DESCRIPTION_CHARS], maxsplit=1)[0]
    read: list[str] = []
    for clause in sentence.split(","):
        read += text.find_words(clause)
        if len(read) >= len(said):
            break
    if read[:len(said)] != said:
        return title
    named = set(text.words(title))
    after = []
    for w in read[len(said):]:
        if w in PHRASE_ENDS or len(after) == RECORDS_DESCRIBED_WITHIN:
            break
        if not w.isdigit():
            after.append(w)
    records = [w for w, stemmed in zip(after, text.words(" ".join(after)))
               if stemmed in text.RECORD_BITS and stemmed not in named]
    return f"{title} ({' '.join(dict.fromkeys(records))})" if records else title


def _spelling(acronym: str, lowered: list[str]) -> tuple[int, int] | None:
    """Where the first run of `lowered` (words in lower case, accents off) whose initials are
    `acronym` starts and ends (a small word like 'of' counted or skipped), starting and ending on
    a word that is not one, each word longer than its initial ('I S R' spells nothing)."""

    def end_of(i: int, k: int) -> int | None:   # where a run matching acronym[k:] from words[i] ends
        if k == len(acronym):
            return i if lowered[i - 1] not in ACRONYM_GAPS else None
        if i >= len(lowered) or i - start > len(acronym) + 3:
            return None
        if (lowered[i][:1] == acronym[k] and len(lowered[i]) > 1 and lowered[i] != acronym
                and (end := end_of(i + 1, k + 1)) is not None):
            return end
        return end_of(i + 1, k) if lowered[i] in ACRONYM_GAPS else None

    for start in range(len(lowered)):
        if lowered[start][:1] == acronym[0] and lowered[start] not in ACRONYM_GAPS:
            end = end_of(start, 0)
            if end is not None:
                return start, end
    return None


def concept_vectors(concept_lists: list[tuple[str, ...]]) -> sp.csr_matrix:
    """One normalised row per dataset over the concept classes (a parent at its share)."""
    index = {name: i for i, name in enumerate(concepts.CLASSES)}
    rows, cols, data = [], [], []
    for row, found in enumerate(concept_lists):
        for concept, weight in concepts.vector(found).items():
            rows.append(row)
            cols.append(index[concept])
            data.append(weight)
    return normalise(sp.csr_matrix((np.asarray(data, dtype=np.float32), (rows, cols)),
                                   shape=(len(concept_lists), len(index))))


def _binary(docs: list[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
    vocab: dict[str, int] = {}
    indices = [vocab.setdefault(term, len(vocab)) for doc in docs for term in doc]
    indptr = np.cumsum([0] + [len(doc) for doc in docs], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int32), indptr),
                           shape=(len(docs), len(vocab)))
    return matrix, sorted(vocab, key=vocab.get)


def _is_boundary(title: str, title_terms: list[str], columns: list[tuple[str, str, str]], asset_type: str) -> bool:
    """A set of shapes (wards, districts, footprints), not the records that fall in them:
    its title names boundaries or ends in an area noun ('Police Districts'; '2010 Census Tracts -
    KMZ': a file's form is no subject), or its columns are a shape and a few attributes with
    no date. 'Ward Offices' and 'Ward Offices - KML' are offices."""
    words = [t for t in title_terms if "+" not in t]
    if any(t in text.BOUNDARY_TERMS for t in words) and not any(t == "crash" for t in words):
        return True
    has_shape = any(t == "geometry" for _, _, t in columns)
    has_date = any(t in ("date", "datetime") for _, _, t in columns)
    *named, last = (title or "").split(" - ")
    if named and ORGANISATION & set(text.find_words(last)):   # '... Districts - Fire Department': its publisher
        title = " - ".join(named)
    title = WITH_ATTRIBUTES.split(title or "", maxsplit=1)[0]   # 'Census Tracts with Town Names (2010)': tracts
    content = [w for w in text.words(title) if w in text.PER_AREA or w in text.HEAD_STOPWORDS or text._is_content(w)]
    while len(content) > 1 and content[-1] in text.SHAPE_FORMATS:
        content.pop()
    # ... not a table of counts by area ('Race Distribution By City Council Districts') or of values for
    # each ('Capacity For All Parcels 2015', '2010 Census data: all Boston planning districts'), nor one
    # of figures over time ('Land Area (1985 - Present)', 'Traffic Count Study Area': dates and numbers);
    # dates beside names alone say when each area was drawn (Chicago's 'Landmark Districts', designated)
    has_figures = any(t in ("number", "integer") for _, _, t in columns)
    if (len(content) >= 1 and content[-1] in text.AREA_NOUNS and not (has_date and has_figures)
            and not any(w in text.PER_AREA for w in content[:-1])):
        return True
    return has_shape and not has_date and len(columns) <= 12 and asset_type in ("dataset", "map", "file")


# what each thing a title lists carries, after 'with' ('Census Tracts with Town Names', 'Parcels With Planning
# Department Zoning'): the things are what comes before it
WITH_ATTRIBUTES = re.compile(r"\s+with\s+", re.IGNORECASE)


CODE_LIST_WORDS = frozenset({"codes", "lookup", "lookups"})
NOT_A_CODE_LIST = frozenset({"zip", "postal", "area", "country"})   # 'ZIP Codes' are areas


# a dataset's documentation: its fields and what their values mean ('Campaign Finance - Data Key', 'Data SF
# Data Dictionary For 2012 Customer Survey', 'Vital Signs 13 Codebook'), unless the data comes with it
# ('2012 SFO Customer Survey Data Set + Dictionary')
DOCUMENTATION = re.compile(r"\bdata\s+(?:dictionary|key)\b|\bcode\s?book\b|\bfield\s+(?:definitions|dictionary)\b",
                           re.IGNORECASE)
WITH_THE_DATA = re.compile(r"\bdata\s?set\b|\+", re.IGNORECASE)


# a dataset a portal configures its own pages with, as its description says: 'Messages' ("Messages to be displayed on
# the data.wa.gov web page. This is one of several datasets used to configure the appearance of the site"), Los
# Angeles' 'Category Page Data' ("... used to customize the data.lacity homepage"); the portal named as such ('the
# site', 'the data.lacity homepage': not 'the cell tower site'), within one sentence (a '.' inside a host name is
# none): 'Transportation Sites' ("... configurations. This dataset includes ... sites") is data
SITE_CONFIGURATION = re.compile(r"\b(?:configur|customi[sz])\w*\b(?:[^.]|\.(?=\S)){0,60}?\b(?:the|this|our)\s+"
                                r"(?:[\w-]+\.[\w.]+\s+|open\s+data\s+)?(?:home\s?page|web\s?page|web\s?site|site|portal)\b",
                                re.IGNORECASE)


def _configures_the_portal(description: str | None) -> bool:
    return bool(description) and SITE_CONFIGURATION.search(description) is not None


def _set_up_with_the_home_page(rows: dict[str, list], is_site_page: np.ndarray) -> np.ndarray:
    """The datasets a portal's set-up made with its home page's: no description, no keyword, issued on the day its
    portal issued a page of its own. Socrata set a site's home page up with a set of datasets made together, its
    stories and featured story, 'Messages', 'Templates' and 'Applications' (Baltimore's and Raleigh's of August
    2013, titled by nothing more): the last is no application for a permit or aid, nor a list of any."""
    days = rows.get("issued_day") or [None] * len(rows["uid"])
    set_up = {(portal, day) for portal, day, page in zip(rows["portal_id"], days, is_site_page) if page and day}
    if not set_up:
        return np.zeros(len(rows["uid"]), dtype=bool)
    return np.fromiter(((portal, day) in set_up and not (description or "").strip() and not keywords
                        for portal, day, description, keywords
                        in zip(rows["portal_id"], days, rows["description"], rows["keywords"])),
                       dtype=bool, count=len(rows["uid"]))


def _is_code_table(title: str | None) -> bool:
    """A list of codes and what they mean ('Illinois Uniform Crime Reporting (IUCR) Codes',
    'SPD Offense Codes', 'DOF Parking Violation Codes'): its title ends in 'codes'; or a data
    dictionary. It names the kind of record it codes, but holds none of them."""
    return _is_documentation(title) or _is_code_list(title)


def _is_documentation(title: str | None) -> bool:
    """A data dictionary, a data key, a codebook: a dataset's fields and what their values mean."""
    return bool(title and DOCUMENTATION.search(title) and not WITH_THE_DATA.search(title))


def _is_code_list(title: str | None) -> bool:
    """A list of codes: its title ends in 'codes' (not 'ZIP Codes') or a lookup."""
    if not title or not any(w in title.lower() for w in CODE_LIST_WORDS):
        return False
    words = [w for w in text.split_words(title, glued=False) if text._is_content(w)]
    return bool(words) and words[-1] in CODE_LIST_WORDS and not (len(words) > 1 and words[-2] in NOT_A_CODE_LIST)
