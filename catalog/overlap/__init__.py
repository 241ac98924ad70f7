"""Comparable datasets across cities: candidate pairs from an inverted index, a score
from several lexical signals with an explanation, groups from strong pairs.

    result = detect(con, min_score=0.35)  # score and group the catalogue
    save(con, result)                     # overlap_pairs, overlap_groups
    similar(con, uid, limit=10)           # the nearest datasets of other cities, explained
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from catalog.overlap import features, groups, scoring
from catalog.overlap.candidates import candidate_pairs, candidates_for
from catalog.overlap.scoring import DEFAULT_MIN_SCORE, SIGNALS
from catalog.stamps import replace_keeping_stamps
from catalog.transactions import rollback

log = logging.getLogger("civicat.overlap")
EXPLAIN_CHUNK = 50_000   # pairs explained at once in a save (explanation_array)


@dataclass
class Group:
    group_id: int
    label: str
    uids: list[str]
    cities: list[str]
    # a member's copies on its city's other portals (copies_of): the same dataset, listed once (uid -> theirs)
    copies: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class OverlapResult:
    catalogue: features.Catalogue
    pairs: scoring.PairScores          # pairs at or above min_score
    groups: list[Group]
    min_score: float
    candidates: int = 0
    seconds: dict[str, float] = field(default_factory=dict)       # each step's wall time (Steps)
    cpu_seconds: dict[str, float] = field(default_factory=dict)   # and its CPU, every thread's (DuckDB's, BLAS's)

    def explanations(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The pairs' explanations (those of pairs start:stop)."""
        p, at = self.pairs, slice(start, stop)
        return scoring.explain_all(self.catalogue, p.a[at], p.b[at],
                                   {name: p.signals[name][at].tolist() for name in SIGNALS})

    def explanation_array(self) -> pa.Array:
        """The explanations as one Arrow array, made a chunk of pairs at a time: 370,000 sentences held as
        Python strings at once would add some 180 MB to the save's peak."""
        chunks = [pa.array(self.explanations(start, start + EXPLAIN_CHUNK), pa.string())
                  for start in range(0, len(self.pairs.a), EXPLAIN_CHUNK)]
        return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())

    def pair_table(self) -> pa.Table:
        """The strong pairs as overlap_pairs rows (NULL where a signal is missing)."""
        c, p = self.catalogue, self.pairs
        uids = np.asarray(c.uids, dtype=object)

        def scores(values: np.ndarray) -> pa.Array:
            rounded = np.round(values.astype(np.float64), 4)
            return pa.array(rounded, mask=np.isnan(rounded), type=pa.float64())

        columns = {"uid_a": pa.array(uids[p.a], pa.string()), "uid_b": pa.array(uids[p.b], pa.string()),
                   "score": scores(p.total)}
        columns.update({f"{name}_score": scores(p.signals[name]) for name in SIGNALS})
        columns["shape_factor"] = scores(p.shape)
        columns["explanation"] = self.explanation_array()
        return pa.table(columns, schema=PAIR_SCHEMA)

    def pair_rows(self) -> list[dict]:
        return self.pair_table().to_pylist()


def detect(con: duckdb.DuckDBPyConnection, min_score: float = DEFAULT_MIN_SCORE, *,
           use_embeddings: bool = False) -> OverlapResult:
    """Score the catalogue's cross-city candidate pairs and form groups from those >= min_score.
    `use_embeddings`: add the optional embedding signal (needs the `embeddings` extra: EMBEDDINGS_INSTALL)."""
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be between 0 and 1, got {min_score}")
    steps = Steps()
    with steps("load"):
        catalogue = features.load(con)
    if use_embeddings:
        from catalog.overlap import embeddings
        with steps("embed"):
            catalogue.embeddings = embeddings.vectors(con, catalogue)
    return detect_in(catalogue, min_score, steps)


class Steps:
    """The wall and CPU seconds of each step of a run (bench.overlap prints them), a step timed in parts summed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - wall
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu


def detect_in(catalogue: features.Catalogue, min_score: float = DEFAULT_MIN_SCORE,
              steps: Steps | None = None) -> OverlapResult:
    steps = steps or Steps()
    with steps("candidates"):
        a, b = candidate_pairs(catalogue)
    with steps("score"):
        strong, links = _strong_pairs(catalogue, a, b, min_score)
    with steps("groups"):
        rows_per_group = groups.form_groups(catalogue, links.a, links.b, links.total)
    with steps("labels"):
        label_of = {tuple(rows): _label(catalogue, rows) for rows in rows_per_group}
    with steps("groups"):
        rows_per_group = groups.join_split_subjects(catalogue, rows_per_group, list(label_of.values()),
                                                    links.a, links.b)
    with steps("labels"):
        # labelling is a seventh of the run at 100,000 datasets: only the groups joined are labelled again
        labels = groups.distinguish(catalogue, [label_of.get(tuple(rows)) or _label(catalogue, rows)
                                                for rows in rows_per_group], rows_per_group)
    with steps("groups"):
        # (labelled as formed: counting a dataset's copies once there moves labels whose cities tie, 'Elevation
        # benchmarks' to 'Survey monuments', which then takes a park's 'Monuments' in as a sort of it)
        rows_per_group, copies = _copies_folded(catalogue, rows_per_group)
        uids = catalogue.uids
        found = [Group(number, name, [uids[r] for r in rows], sorted({catalogue.cities[r] for r in rows}),
                       {uids[r]: [uids[o] for o in copies[r]] for r in rows if r in copies})
                 for number, (name, rows) in enumerate(zip(labels, rows_per_group), start=1)]
    return OverlapResult(catalogue, strong, found, min_score, candidates=len(a), seconds=steps.seconds,
                         cpu_seconds=steps.cpu_seconds)


def _strong_pairs(catalogue: features.Catalogue, a: np.ndarray, b: np.ndarray, min_score: float
                  ) -> tuple[scoring.PairScores, scoring.PairScores]:
    """The candidate pairs scored: those stored (best first) and those that may link a group."""
    scored = scoring.score_pairs(catalogue, a, b)
    above = scored.take(scored.total >= min_score)
    # the links are each dataset's best pairs among those not told apart, chosen apart from its
    # best pairs: a dataset whose best pairs are all told apart ('Budget Table: J2 (Other Current
    # Expenses)' against six tables of other records) still links by its next one. Both are
    # stored, so every link of a group is a pair with its explanation.
    k = scoring.PAIRS_PER_DATASET
    apart = scoring.told_apart(catalogue, above)
    linking = np.zeros(len(above.total), dtype=bool)
    linking[np.flatnonzero(~apart)[scoring.best_of_each(above.take(~apart), k)]] = True
    strong = above.take(scoring.best_of_each(above, k) | linking)
    strong = strong.take(np.argsort(-strong.total, kind="stable"))  # best first
    strong = strong.take(_once_per_dataset(catalogue, strong))
    return strong, above.take(linking)


def _once_per_dataset(catalogue: features.Catalogue, pairs: scoring.PairScores) -> np.ndarray:
    """The pairs (best first) that compare two datasets for the first time: a pair of a copy of a dataset another
    portal of its city lists too ('Warming Centers' of Chicago's data.json and of its Socrata site) with the same
    dataset as a pair before it says nothing more."""
    same_as = catalogue.same_as
    seen, keep = set(), np.zeros(len(pairs.total), dtype=bool)
    for i, (x, y) in enumerate(zip(same_as[pairs.a].tolist(), same_as[pairs.b].tolist())):
        key = (x, y) if x < y else (y, x)
        if key not in seen:
            seen.add(key)
            keep[i] = True
    return keep


def _copies_folded(catalogue: features.Catalogue, rows_per_group: list[list[int]]
                   ) -> tuple[list[list[int]], dict[int, list[int]]]:
    """Each group with a dataset once however many of its city's portals list it: the copy that says most of it
    (copies_of), unless another group holds that one; its other copies (in this group or in none) go with it.
    A copy in no group goes with one group alone, the first to take it: of a dataset three portals list, two
    copies in two groups, the third (or the one that says most) in none was put in both (overlap_groups' key
    refused the save) and a grouped copy was then left out of its group. -> the groups' rows, and the row
    shown -> its copies' rows."""
    same_as = catalogue.same_as
    copied = np.flatnonzero(same_as != np.arange(len(same_as)))
    if not len(copied):
        return rows_per_group, {}
    copies_of_first: dict[int, list[int]] = defaultdict(list)
    for row in copied.tolist():
        copies_of_first[int(same_as[row])].append(row)
    grouped = {row for rows in rows_per_group for row in rows}
    folded, copies, placed = [], {}, set()   # (placed: the rows in no group a group has taken)
    for rows in rows_per_group:
        by_dataset: dict[int, list[int]] = defaultdict(list)
        for row in rows:
            by_dataset[int(same_as[row])].append(row)
        kept = []
        for first, held in by_dataset.items():
            shown = first if first in held or (first not in grouped and first not in placed) else held[0]
            kept.append(shown)
            others = [r for r in [first, *copies_of_first.get(first, ())]
                      if r != shown and (r in held or (r not in grouped and r not in placed))]
            placed.update(r for r in (shown, *others) if r not in grouped)
            if others:
                copies[shown] = others
        folded.append(sorted(kept))
    return folded, copies


def _label(catalogue: features.Catalogue, rows: list[int]) -> str:
    """A group's label; a labelling that fails on one group (a bug: the 100,000-dataset bench once met one)
    costs that group its wording, not the whole night's groups: its first title names it, with a warning."""
    try:
        return groups.label(catalogue, rows)
    except Exception:
        log.warning("could not label the group of %r (%d datasets); it is named by that title",
                    catalogue.titles[rows[0]], len(rows), exc_info=True)
        return catalogue.titles[rows[0]] or catalogue.uids[rows[0]]


PAIR_SCHEMA = pa.schema([("uid_a", pa.string()), ("uid_b", pa.string()), ("score", pa.float64())]
                        + [(f"{name}_score", pa.float64()) for name in SIGNALS]
                        + [("shape_factor", pa.float64()), ("explanation", pa.string())])


def save(con: duckdb.DuckDBPyConnection, result: OverlapResult) -> None:
    """Replace overlap_pairs and overlap_groups in one transaction; a row this run gives the values
    it held keeps its `computed_at` (catalog.stamps)."""
    steps = Steps()
    computed_at = datetime.now(UTC)
    with steps("explain"):   # the pairs' rows, each explained
        pair_table = result.pair_table()
    with steps("write"):
        _write(con, pair_table, _group_table(result.groups), computed_at)
    result.seconds.update(steps.seconds)
    result.cpu_seconds.update(steps.cpu_seconds)


def _group_table(found: list[Group]) -> pa.Table:
    # a dataset's copies on its city's other portals are in its group too: any of its uids finds the group
    members = [(g, uid) for g in found for u in g.uids for uid in (u, *g.copies.get(u, ()))]
    return pa.table({
        "group_id": pa.array([g.group_id for g, _ in members], pa.int32()),
        "uid": pa.array([uid for _, uid in members], pa.string()),
        "label": pa.array([g.label for g, _ in members], pa.string()),
    })


def _write(con: duckdb.DuckDBPyConnection, pair_table: pa.Table, group_table: pa.Table, computed_at: datetime) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("new_pairs", pair_table)
        con.register("new_groups", group_table)
        # a pair or a group member that comes out as the last run left it keeps that run's time
        replace_keeping_stamps(con, "overlap_pairs", "new_pairs", ("uid_a", "uid_b"), "computed_at", computed_at)
        replace_keeping_stamps(con, "overlap_groups", "new_groups", ("uid",), "computed_at", computed_at)
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    finally:
        for name in ("new_pairs", "new_groups"):
            try:
                con.unregister(name)
            except duckdb.Error:
                pass


def similar_order(scores: np.ndarray, in_group: np.ndarray) -> np.ndarray:
    """The order `similar` lists datasets in, best first: those of the dataset's group (as `civicat overlap`
    last saved it) before the others, each by score. The detector grouped them as one kind; a dataset outside
    scoring higher was told apart or linked elsewhere (NYC's 'Total Allegations And Total Complaints Received'
    scores Illinois' ethics office report above the police complaints of its group). Labelled, this ranking
    lifts MAP in both halves of the jurisdictions (docs/benchmarks.md, session 23)."""
    return np.lexsort((-np.asarray(scores), ~np.asarray(in_group, dtype=bool)))


def _first_of_each(order: np.ndarray, dataset: np.ndarray) -> list[int]:
    seen: set[int] = set()
    return [i for i in order.tolist() if not (int(dataset[i]) in seen or seen.add(int(dataset[i])))]


def group_peers(con: duckdb.DuckDBPyConnection, uid: str) -> list[str]:
    """The other datasets of `uid`'s group in the saved overlap_groups (none before `civicat overlap` ran)."""
    return [peer for (peer,) in con.execute("""
        SELECT other.uid FROM overlap_groups own JOIN overlap_groups other USING (group_id)
        WHERE own.uid = ? AND other.uid <> own.uid""", [uid]).fetchall()]


def similar(con: duckdb.DuckDBPyConnection, uid: str, limit: int = 10,
            catalogue: features.Catalogue | None = None) -> list[dict]:
    """The datasets of other cities most comparable to `uid`, best first (its group's first), explained."""
    catalogue = catalogue or features.load(con)
    try:
        row = catalogue.row(uid)
    except KeyError:
        exists = con.execute("SELECT asset_type, parent_uid, deleted_at FROM datasets WHERE uid = ?", [uid]).fetchone()
        if exists is None:
            raise LookupError(f"no dataset {uid!r} in the catalogue") from None
        asset_type, parent_uid, deleted_at = exists
        why = ("it was deleted" if deleted_at else f"it is a view of {parent_uid}" if parent_uid
               else f"its asset type '{asset_type}' is not compared")
        raise LookupError(f"{uid} is not compared with other datasets: {why}") from None
    # a group saved before the catalogue changed may name datasets it no longer compares: those are skipped
    peers = {catalogue.row(p) for p in group_peers(con, uid) if p in catalogue.index}
    peers = {p for p in peers if catalogue.city_ids[p] != catalogue.city_ids[row]}
    nearest = candidates_for(catalogue, row, max(limit * 5, 50))
    others = np.concatenate([nearest, np.array(sorted(peers - set(nearest.tolist())), dtype=nearest.dtype)])
    scored = scoring.score_pairs(catalogue, np.full(len(others), row), others)
    in_group = np.array([int(b) in peers for b in others], dtype=bool)
    # a dataset two portals of its city list is listed once, by its copy that scores best
    order = [int(i) for i in _first_of_each(similar_order(scored.total, in_group), catalogue.same_as[others])][:limit]
    out = []
    for i in order:
        b = int(others[i])
        signals = {name: float(scored.signals[name][i]) for name in SIGNALS}
        out.append({"uid": catalogue.uids[b], "title": catalogue.titles[b], "city": catalogue.cities[b],
                    "score": round(float(scored.total[i]), 4), "in_group": bool(in_group[i]),
                    "signals": {k: None if np.isnan(v) else round(v, 4) for k, v in signals.items()},
                    "explanation": scoring.explain(catalogue, row, b, signals)})
    return out
