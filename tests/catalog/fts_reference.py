"""The fts extension's own index (`PRAGMA create_fts_index`), from which civicat derived its
search index before it tokenised in SQL of its own: the reference that build is checked
against (test_search.py) and a naive baseline of bench/search.py."""
from __future__ import annotations

import duckdb

from catalog import search

SOURCE = "search_source"
FTS = f"fts_main_{SOURCE}"

# the text without its invisible characters (search.INVISIBLE), which civicat drops before
# the extension's rules
SOURCE_ROWS = f"""
CREATE OR REPLACE TABLE {SOURCE} AS
SELECT uid, {', '.join(f"regexp_replace({field}, '{search.INVISIBLE}', '', 'g') AS {field}"
                       for field in search.FIELD_WEIGHTS)}
FROM (
SELECT d.uid, d.title, d.description, array_to_string(d.keywords, ' ') AS keywords,
       c.column_names, d.city
FROM datasets d
LEFT JOIN (SELECT dataset_uid, string_agg(coalesce(name, field_name), ' ') AS column_names
           FROM columns GROUP BY dataset_uid) c ON c.dataset_uid = d.uid
WHERE d.deleted_at IS NULL)"""

CREATE_FTS = (f"PRAGMA create_fts_index('{SOURCE}', 'uid', {', '.join(repr(f) for f in search.FIELD_WEIGHTS)}, "
              f"stemmer = 'porter', stopwords = 'english', ignore = '{search.IGNORE}', strip_accents = 1, "
              "lower = 1, overwrite = 1)")

# what civicat kept of the extension's index: BM25F weight per (dataset, term), df per
# term, length per dataset (and, beside it, the terms of each title and the frequencies beyond it)
POSTINGS = f"""
    SELECT f.name AS uid, dict.term, t.tf * ($k1 + 1) / (t.tf + $k1 * (1 - $b + $b * f.len / s.avgdl)) AS tf_weight
    FROM (SELECT termid, docid, sum(w.weight) AS tf
          FROM {FTS}.terms JOIN {FTS}.fields USING (fieldid)
          JOIN (SELECT unnest($fields) AS field, unnest($weights) AS weight) w USING (field)
          GROUP BY termid, docid) t
    JOIN {FTS}.docs f USING (docid) JOIN {FTS}.dict dict USING (termid), {FTS}.stats s"""
TERMS = f"SELECT term, df FROM {FTS}.dict"
# the terms of each dataset's title (the field the title tiers of a query read)
TITLES = f"""
    SELECT f.name AS uid, list(DISTINCT dict.term) AS terms
    FROM {FTS}.terms t JOIN {FTS}.fields USING (fieldid) JOIN {FTS}.docs f USING (docid) JOIN {FTS}.dict dict USING (termid)
    WHERE field = 'title'
    GROUP BY f.name"""
# the weighted frequency of each (dataset, term) in the fields other than the title (what a title
# of one word needs beside it to be the first tier of its word)
BEYOND_TITLE = f"""
    SELECT f.name AS uid, dict.term, sum(w.weight) AS tf
    FROM {FTS}.terms JOIN {FTS}.fields USING (fieldid)
    JOIN (SELECT unnest($fields) AS field, unnest($weights) AS weight) w USING (field)
    JOIN {FTS}.docs f USING (docid) JOIN {FTS}.dict dict USING (termid)
    WHERE field <> 'title'
    GROUP BY f.name, dict.term"""
LENGTHS = f"SELECT name AS uid, len AS length FROM {FTS}.docs"


def build(con: duckdb.DuckDBPyConnection) -> None:
    search.load_fts(con)
    con.execute(SOURCE_ROWS)
    con.execute(CREATE_FTS)


def drop(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"PRAGMA drop_fts_index('{SOURCE}')")
    con.execute(f"DROP TABLE {SOURCE}")


def index(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """The reference index of the catalogue on `con`, as plain dicts (see `civicat_index`)."""
    build(con)
    try:
        fields = {"fields": list(search.FIELD_WEIGHTS), "weights": list(search.FIELD_WEIGHTS.values())}
        postings = con.execute(POSTINGS, {"k1": search.K1, "b": search.B, **fields}).fetchall()
        return {"postings": {(uid, term): weight for uid, term, weight in postings},
                "beyond_title": {(uid, term): tf for uid, term, tf in con.execute(BEYOND_TITLE, fields).fetchall()},
                "terms": dict(con.execute(TERMS).fetchall()),
                "lengths": dict(con.execute(LENGTHS).fetchall()),
                "titles": {uid: set(terms) for uid, terms in con.execute(TITLES).fetchall()}}
    finally:
        drop(con)


def civicat_index(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """civicat's search index on `con`, in the form of `index`."""
    weight = search.TF_WEIGHT.format(avgdl="s.avgdl")
    postings = con.execute(f"""SELECT d.uid, t.term, {weight} FROM search_postings p
                               JOIN search_terms t USING (termid) JOIN search_documents d USING (docid), search_state s""",
                           {"k1": search.K1, "b": search.B}).fetchall()
    return {"postings": {(uid, term): weight for uid, term, weight in postings},
            "terms": dict(con.execute("SELECT term, df FROM search_terms").fetchall()),
            "lengths": dict(con.execute("SELECT uid, length FROM search_documents").fetchall())}
