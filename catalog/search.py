"""Ranked full-text search over the catalogue (`civicat search`).

The index is built by DuckDB's fts extension, loaded from the `duckdb-extension-fts`
wheel pinned to the DuckDB version (never INSTALLed from the network): its
`create_fts_index` tokenises, drops English stop words and Porter-stems title,
description, keywords, column names and city. Its terms are then kept in three small
tables of our own (migration 0006) and its index dropped: the extension's `match_bm25`
macro answered in 270-370 ms (p95) on 100,000 datasets, a term-sorted postings table
with BM25 weights computed at build time in 22-42 ms (bench/search.py), and lets a title word
count more than a description word (BM25F-style field weights). At query time the
extension gives only the stemmer.

Queries and filters reach DuckDB as parameters, never as SQL text.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

log = logging.getLogger("civicat.search")

# field: weight of one occurrence in the term frequency (title words say what a dataset is)
FIELD_WEIGHTS = {"title": 3.0, "keywords": 2.0, "description": 1.0, "column_names": 1.0, "city": 1.0}
K1, B = 1.2, 0.75
IGNORE = r"(\.|[^a-z0-9])+"   # the fts default drops digits too, and with them "311"
SOURCE = "search_source"       # the text table the fts extension indexes, dropped after the build
FTS = f"fts_main_{SOURCE}"


class SearchIndexMissing(LookupError):
    pass


def fts_extension_path() -> Path:
    """The fts extension shipped by the `duckdb-extension-fts` wheel of this DuckDB version."""
    try:
        package = resources.files("duckdb_extension_fts")
    except ModuleNotFoundError:
        raise RuntimeError("the fts extension is missing: pip install duckdb-extension-fts=="
                           f"{duckdb.__version__}") from None
    path = Path(str(package.joinpath("extensions", f"v{duckdb.__version__}", "fts.duckdb_extension")))
    if not path.is_file():
        raise RuntimeError(f"duckdb-extension-fts has no build for DuckDB {duckdb.__version__} ({path}): "
                           f"pin it to duckdb=={duckdb.__version__}")
    return path


def load_fts(con: duckdb.DuckDBPyConnection) -> None:
    path = str(fts_extension_path())  # the package's own file, not input: quoted as a literal
    con.execute("LOAD '" + path.replace("'", "''") + "'")


# -- the index --------------------------------------------------------------------------

FINGERPRINT = """SELECT concat_ws('|', count(*), max(last_changed), max(deleted_at),
                                 count(*) FILTER (WHERE deleted_at IS NULL)) FROM datasets"""

SOURCE_ROWS = f"""
CREATE OR REPLACE TABLE {SOURCE} AS
SELECT d.uid, d.title, d.description, array_to_string(d.keywords, ' ') AS keywords,
       c.column_names, d.city
FROM datasets d
LEFT JOIN (SELECT dataset_uid, string_agg(coalesce(name, field_name), ' ') AS column_names
           FROM columns GROUP BY dataset_uid) c ON c.dataset_uid = d.uid
WHERE d.deleted_at IS NULL"""

CREATE_FTS = (f"PRAGMA create_fts_index('{SOURCE}', 'uid', {', '.join(repr(f) for f in FIELD_WEIGHTS)}, "
              f"stemmer = 'porter', stopwords = 'english', ignore = '{IGNORE}', strip_accents = 1, lower = 1, "
              "overwrite = 1)")

# each built as a `_next` table of its own and committed (committed rows can spill to
# disk, rows of one long transaction cannot: that ran out of the harvest's 128 MB), then
# swapped in by one short transaction
BUILD = {
    "search_documents": f"""
        SELECT f.docid::BIGINT AS docid, d.uid, d.portal_id, d.city, d.themes, d.asset_type, d.title,
               f.len::BIGINT AS length, lower(d.city) AS city_key,
               list_transform(d.themes, t -> lower(t)) AS theme_keys
        FROM {FTS}.docs f JOIN datasets d ON d.uid = f.name
        ORDER BY f.docid""",
    "search_terms": f"SELECT termid::BIGINT AS termid, term, df::BIGINT AS df FROM {FTS}.dict",
    # weighted term frequency per (term, document), saturated and length-normalised once
    # here, so a query only adds idf x weight over its terms' postings
    "search_postings": f"""
        SELECT t.termid::BIGINT AS termid, t.docid::BIGINT AS docid,
               t.tf * ($k1 + 1) / (t.tf + $k1 * (1 - $b + $b * f.len / s.avgdl)) AS tf_weight
        FROM (SELECT termid, docid, sum(w.weight) AS tf
              FROM {FTS}.terms JOIN {FTS}.fields USING (fieldid)
              JOIN (SELECT unnest($fields) AS field, unnest($weights) AS weight) w USING (field)
              GROUP BY termid, docid) t
        JOIN {FTS}.docs f USING (docid), {FTS}.stats s
        ORDER BY t.termid, t.docid""",
}
EMPTY = {table: f"SELECT * FROM {table} LIMIT 0" for table in BUILD}


def refresh(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> bool:
    """Rebuild the index if the catalogue changed since it was built (or with `force`).
    The new tables replace the old in one transaction: a reader sees the previous index
    or the new one, and a build cut short leaves the previous one. Returns whether it was
    rebuilt. The caller's memory limit holds (the build spills to disk past it)."""
    fingerprint = con.execute(FINGERPRINT).fetchone()[0]
    built = con.execute("SELECT fingerprint FROM search_state").fetchall()
    if not force and built and built[0][0] == fingerprint:
        return False
    load_fts(con)
    con.execute("SET enable_progress_bar = false")  # the harvest shows its own progress
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    try:
        # one thread: with two the text table ran out of the harvest's 128 MB at 100,000
        # datasets, and the fts index build, given the memory, was slower (40 s against 30)
        con.execute("SET threads = 1")
        con.execute(SOURCE_ROWS)
        con.execute("CHECKPOINT")  # written rows leave memory (the store checkpoints rarely)
        indexed = con.execute(f"SELECT count(*) FROM {SOURCE}").fetchone()[0] > 0
        if indexed:
            con.execute(CREATE_FTS)
        params = {"k1": K1, "b": B, "fields": list(FIELD_WEIGHTS), "weights": list(FIELD_WEIGHTS.values())}
        for table, select in (BUILD if indexed else EMPTY).items():
            con.execute(f"CREATE OR REPLACE TABLE {table}_next AS {select}",
                        {k: v for k, v in params.items() if f"${k}" in select})
        con.execute("BEGIN TRANSACTION")
        try:
            for table in BUILD:
                con.execute(f"DROP TABLE {table}")
                con.execute(f"ALTER TABLE {table}_next RENAME TO {table}")
            # the hits of a query are looked up by document id, not found by a scan of all
            con.execute("CREATE UNIQUE INDEX search_documents_docid ON search_documents (docid)")
            con.execute("DELETE FROM search_state")
            con.execute("INSERT INTO search_state SELECT ?, count(*), ? FROM search_documents",
                        [datetime.now(UTC), fingerprint])
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
    finally:
        _drop_leftovers(con)
        con.execute(f"SET threads = {int(threads)}")
    return True


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass  # a failed statement may have ended the transaction already


def _drop_leftovers(con: duckdb.DuckDBPyConnection) -> None:
    """The extension's index, the text it read and any `_next` table a failure left."""
    if con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = ?", [FTS]).fetchone()[0]:
        con.execute(f"PRAGMA drop_fts_index('{SOURCE}')")
    con.execute(f"DROP TABLE IF EXISTS {SOURCE}")
    for table in BUILD:
        con.execute(f"DROP TABLE IF EXISTS {table}_next")


# -- queries ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    cities: tuple[str, ...] = ()   # a city name or a portal id, any case
    themes: tuple[str, ...] = ()   # any case
    types: tuple[str, ...] = ()    # asset types: dataset, map, chart, filtered_view ...


QUERY = """
WITH query_terms AS (
    SELECT DISTINCT stem(unnest(string_split_regex(regexp_replace(lower(strip_accents($text)), $ignore, ' ', 'g'),
                                                   '\\s+')), 'porter') AS term),
terms AS (
    SELECT t.termid, ln((s.documents - t.df + 0.5) / (t.df + 0.5) + 1) AS idf
    FROM search_terms t JOIN query_terms q ON q.term = t.term, search_state s),
scores AS (
    SELECT p.docid, sum(terms.idf * p.tf_weight) AS score
    FROM search_postings p JOIN terms ON terms.termid = p.termid
    GROUP BY p.docid),
ranked AS (
    SELECT scores.docid, scores.score FROM scores {filter_join}
    ORDER BY scores.score DESC, scores.docid LIMIT $limit)
SELECT d.uid, d.title, d.city, d.portal_id, d.asset_type, d.themes, ranked.score
FROM ranked JOIN search_documents d ON d.docid = ranked.docid   -- the hits only, by index
ORDER BY ranked.score DESC, ranked.docid"""

# on keys lower-cased at build time (lower() of every document at query time cost more
# than the search itself); portal ids are lower-case slugs already
FILTERS = {
    "cities": "(d.city_key IN (SELECT unnest($cities)) OR d.portal_id IN (SELECT unnest($cities)))",
    "themes": "list_has_any($themes, d.theme_keys)",
    "types": "d.asset_type IN (SELECT unnest($types))",
}


def search(con: duckdb.DuckDBPyConnection, text: str, *, limit: int = 20,
           filters: Filters = Filters()) -> list[dict]:
    """Datasets matching `text`, best first: uid, title, city, portal_id, asset_type,
    themes, score (BM25; comparable within one query only)."""
    try:
        built = con.execute("SELECT count(*) FROM search_state").fetchone()[0]
    except duckdb.CatalogException:  # a catalogue of an older civicat, not migrated yet
        built = 0
    if not built:
        raise SearchIndexMissing("the search index is not built yet: run `civicat harvest` (it builds it)")
    params: dict = {"text": text, "ignore": IGNORE, "limit": int(limit)}
    clauses = []
    for name, clause in FILTERS.items():
        values = getattr(filters, name)
        if values:
            clauses.append(clause)
            params[name] = [v.lower() for v in values]
    filter_join = f"JOIN search_documents d ON d.docid = scores.docid WHERE {' AND '.join(clauses)}" if clauses else ""
    cursor = con.execute(QUERY.format(filter_join=filter_join), params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def open_for_search(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    """The catalogue read-only and locked down, with the fts extension's stemmer loaded."""
    from catalog.query import read_only_connection
    return read_only_connection(db_path, before_lock=_prepare)


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    load_fts(con)
    # a query reads a few thousand postings: one thread answered in half the time of two
    # (p50 9 against 23 ms on the real catalogues, on the shared machine)
    con.execute("SET threads = 1")
