"""Candidate pairs without an all-pairs loop: an inverted index over each dataset's
strongest terms (prefix filtering, as in set-similarity joins).

Every dataset gets one blocking vector (title, keywords, column names, description). A
dataset is *probed* with its PROBE_TERMS heaviest terms and *indexed* under all of its
terms, but a term's posting list keeps at most POSTING_CAP datasets (chosen by a hash of
the uid, so the same ones every run): a term shared by 5,000 datasets links each of them
to a fixed few hundred, which is enough to join a group and costs O(n), not O(n^2).
The probe is a sparse matrix product done in row chunks; per dataset the TOP_K best
datasets of *other* cities are kept, a dataset two portals of its city list counted once (its
copies all come with it: a slot is a dataset, not a listing of it).
"""
from __future__ import annotations

import zlib

import numpy as np
import scipy.sparse as sp

from catalog.overlap.features import Catalogue, normalise

PROBE_TERMS = 8
POSTING_CAP = 160
TOP_K = 12
TIES = 3
CHUNK_ROWS = 2048
BLOCKING_WEIGHTS = {"title": 1.0, "keywords": 0.35, "columns": 0.6, "description": 0.3, "concepts": 0.5}


def blocking_vectors(catalogue: Catalogue) -> sp.csr_matrix:
    parts = [getattr(catalogue, name) * weight for name, weight in BLOCKING_WEIGHTS.items()]
    return normalise(sp.hstack(parts, format="csr"))


def top_per_key(keys: np.ndarray, scores: np.ndarray, k: int, ties: int = TIES) -> np.ndarray:
    """Positions of the k best scores of each key, taking at most `ties` of any one score
    (rounded to 3 places), sorted. Sixty cities publishing 'Calls for Service' under the
    same title must not fill every slot, or 'CFS 2014' and '911 Calls' are never reached."""
    if not len(scores):
        return np.zeros(0, dtype=np.int64)
    rounded = np.round(scores.astype(np.float64), 3)
    # one float key sorts by key, then by descending score: key*2 - score/max in (key*2 - 1, key*2]
    order = np.argsort(keys * 2.0 - rounded / (float(rounded.max()) * (1 + 1e-9) + 1e-12), kind="stable")
    sorted_keys, sorted_scores = keys[order], rounded[order]
    new_key = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    new_run = new_key | np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    position = np.arange(len(order))
    run_rank = position - np.maximum.accumulate(np.where(new_run, position, 0))
    allowed = run_rank < ties
    # rank among the allowed entries of the key
    allowed_count = np.cumsum(allowed)
    key_start = np.maximum.accumulate(np.where(new_key, position, 0))
    rank = allowed_count - 1 - (allowed_count[key_start] - allowed[key_start])
    return np.sort(order[allowed & (rank < k)])


def _keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's k best entries (at most TIES of one score), as a CSR matrix."""
    matrix = sp.csr_matrix(matrix)
    counts = np.diff(matrix.indptr)
    if not len(matrix.data) or counts.max() <= min(k, TIES):
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    keep = top_per_key(rows, matrix.data, k)
    return sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape)


def _keep_top_datasets_per_row(matrix: sp.csr_matrix, same_as: np.ndarray, k: int,
                               in_family: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best *datasets* (at most TIES of one score), each with every copy of it the row reached: one
    city's two portals listing a dataset (features.copies_of) fill one slot, not two. Before, half the real
    catalogues' lists (5,312 of 10,460) spent 8,058 of their slots on a second listing of a dataset already in
    them ('Legislation in Committee' of Seattle's Socrata site and its data.json) and missed that many others.
    `in_family`: per column, whether it is a copy or has one (_copy_families). -> the kept entries' rows and
    columns."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()   # a row's entries by column: ties keep the lower dataset, as they always have
    row = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    col, score = matrix.indices, matrix.data
    # each (row, dataset) once, by its best copy's score, in key order. Only a copy family's entries are sorted
    # by dataset and taken at their best; the others (every entry, in a catalogue of one portal a city) are one
    # dataset each and in key order already: they are merged in. (Sorting every entry by key cost this
    # function 5.3 s of CPU at 100,000 datasets, 1.7 s more than session 41's per-row cut, with no copy at all.)
    family = in_family[col]
    plain = np.flatnonzero(~family)
    if len(plain) == len(col):
        chosen = top_per_key(row, score, k)
        return row[chosen], col[chosen].astype(np.int64)
    n = np.int64(matrix.shape[1])
    copies = np.flatnonzero(family)
    key = row[copies] * n + same_as[col[copies]]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new_key = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    starts = np.flatnonzero(new_key)
    best = np.maximum.reduceat(score[copies[order]], starts)
    # the datasets of copy families put among the others in key order (their keys are never a plain entry's)
    at = np.searchsorted(row[plain] * n + col[plain], sorted_key[starts]) + np.arange(len(starts))
    is_family = np.zeros(len(plain) + len(starts), dtype=bool)
    is_family[at] = True
    keys_row, keys_score = np.empty(len(is_family), dtype=np.int64), np.empty(len(is_family), dtype=score.dtype)
    keys_row[at], keys_score[at] = sorted_key[starts] // n, best
    keys_row[~is_family], keys_score[~is_family] = row[plain], score[plain]
    chosen = np.zeros(len(is_family), dtype=bool)
    chosen[top_per_key(keys_row, keys_score, k)] = True
    keep = np.zeros(len(col), dtype=bool)
    keep[plain] = chosen[~is_family]
    keep[copies[order]] = chosen[at][np.cumsum(new_key) - 1]   # every copy of a kept dataset
    return row[keep], col[keep].astype(np.int64)


def _copy_families(same_as: np.ndarray) -> np.ndarray:
    """Per row, whether it is a copy of a dataset or the dataset copies are of."""
    copied = np.flatnonzero(same_as != np.arange(len(same_as)))
    found = np.zeros(len(same_as), dtype=bool)
    found[copied] = True
    found[same_as[copied]] = True
    return found


def _capped_postings(vectors: sp.csr_matrix, uid_hash: np.ndarray, cap: int) -> sp.csr_matrix:
    """The index: per term (column), at most `cap` datasets, those with the smallest uid hash."""
    by_term = sp.csc_matrix(vectors)
    columns = np.repeat(np.arange(by_term.shape[1]), np.diff(by_term.indptr))
    order = np.lexsort((uid_hash[by_term.indices], columns))
    rank = np.arange(len(order)) - by_term.indptr[columns[order]]
    keep = order[rank < cap]
    return sp.csr_matrix((by_term.data[keep], (by_term.indices[keep], columns[keep])), shape=by_term.shape)


def uid_hashes(uids: list[str]) -> np.ndarray:
    return np.fromiter((zlib.crc32(u.encode()) for u in uids), dtype=np.uint32, count=len(uids))


def candidate_pairs(catalogue: Catalogue, top_k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) of datasets of different cities worth scoring in full."""
    n = len(catalogue)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    vectors = blocking_vectors(catalogue)
    probes = _keep_top_per_row(vectors, PROBE_TERMS)
    index_t = _capped_postings(vectors, uid_hashes(catalogue.uids), POSTING_CAP).T.tocsr()
    city, in_family = catalogue.city_ids, _copy_families(catalogue.same_as)
    left, right = [], []
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        scores = (probes[start:stop] @ index_t).tocsr()
        # the entries of other cities, each row's in place (no matrix built again from coordinates)
        rows = np.repeat(np.arange(stop - start), np.diff(scores.indptr))
        other_city = city[rows + start] != city[scores.indices]
        indptr = np.r_[0, np.cumsum(np.bincount(rows[other_city], minlength=stop - start))]
        scores = sp.csr_matrix((scores.data[other_city], scores.indices[other_city], indptr), shape=scores.shape)
        best_rows, best_cols = _keep_top_datasets_per_row(scores, catalogue.same_as, top_k, in_family)
        left.append(best_rows + start)
        right.append(best_cols)
    if catalogue.embeddings is not None:
        dense_a, dense_b = _dense_neighbours(catalogue, max(top_k // 2, 1))
        left.append(dense_a)
        right.append(dense_b)
    a = np.concatenate(left)
    b = np.concatenate(right)
    low, high = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(low * n + high)
    return pairs // n, pairs % n


def _dense_neighbours(catalogue: Catalogue, k: int) -> tuple[np.ndarray, np.ndarray]:
    """With the optional embeddings: each dataset's k nearest vectors of other cities (a
    dense product in row chunks: O(n^2 d) flops, fine for tens of thousands of datasets)."""
    vectors, city = catalogue.embeddings, catalogue.city_ids
    n = len(vectors)
    left, right = [], []
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        sims = vectors[start:stop] @ vectors.T
        sims[city[start:stop, None] == city[None, :]] = -np.inf
        k_here = min(k, n - 1)
        if k_here <= 0:
            break
        best = np.argpartition(-sims, k_here - 1, axis=1)[:, :k_here]
        rows = np.repeat(np.arange(start, stop), best.shape[1])
        cols = best.ravel()
        finite = np.isfinite(sims[rows - start, cols])
        left.append(rows[finite])
        right.append(cols[finite].astype(np.int64))
    if not left:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(left), np.concatenate(right)


def candidates_for(catalogue: Catalogue, row: int, limit: int) -> np.ndarray:
    """The datasets of other cities nearest to one dataset (one sparse product over the catalogue)."""
    vectors = blocking_vectors(catalogue)
    scores = (vectors[row] @ vectors.T).toarray().ravel()
    if catalogue.embeddings is not None:
        scores = scores + np.clip(catalogue.embeddings @ catalogue.embeddings[row], 0, 1)
    scores[catalogue.city_ids == catalogue.city_ids[row]] = 0.0
    nonzero = np.flatnonzero(scores > 0)
    ranked = nonzero[np.argsort(-scores[nonzero], kind="stable")]
    # `limit` datasets, each with the copies of it reached (a second listing of one takes no slot)
    dataset = catalogue.same_as[ranked]
    _, first = np.unique(dataset, return_index=True)
    chosen = dataset[np.sort(first)[:limit]]
    return ranked[np.isin(dataset, chosen)]
