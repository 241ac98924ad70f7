"""The fts extension's own index (`PRAGMA create_fts_index`), from which civicat derived its
search index before it tokenised in SQL of its own: the reference that build is checked
against (test_search.py) and a naive baseline of bench/search.py."""
from __future__ import annotations

import duckdb

from catalog import search

SOURCE = "search_source"
FTS = f"fts_main_{SOURCE}"
FIELDS = tuple(search.FIELD_WEIGHTS)   # in their order in civicat's postings

SOURCE_ROWS = f"""
CREATE OR REPLACE TABLE {SOURCE} AS
SELECT d.uid, d.title, d.description, array_to_string(d.keywords, ' ') AS keywords,
       c.column_names, d.city
FROM datasets d
LEFT JOIN (SELECT dataset_uid, string_agg(coalesce(name, field_name), ' ') AS column_names
           FROM columns GROUP BY dataset_uid) c ON c.dataset_uid = d.uid
WHERE d.deleted_at IS NULL"""

CREATE_FTS = (f"PRAGMA create_fts_index('{SOURCE}', 'uid', {', '.join(repr(f) for f in search.FIELD_WEIGHTS)}, "
              f"stemmer = 'porter', stopwords = 'english', ignore = '{search.IGNORE}', strip_accents = 1, "
              "lower = 1, overwrite = 1)")

# what civicat keeps of the extension's index: occurrences per field per (dataset, term),
# df per term, length per dataset, in all fields and in each (in the order of FIELDS)
PER_FIELD = ", ".join(f"count(*) FILTER (WHERE field = '{field}')" for field in FIELDS)
POSTINGS = f"""
    SELECT f.name AS uid, dict.term, {PER_FIELD}
    FROM {FTS}.terms JOIN {FTS}.fields USING (fieldid) JOIN {FTS}.docs f USING (docid) JOIN {FTS}.dict dict USING (termid)
    GROUP BY ALL"""
TERMS = f"SELECT term, df FROM {FTS}.dict"
LENGTHS = f"""
    SELECT f.name AS uid, any_value(f.len), {PER_FIELD.replace("count(*)", "count(t.termid)")}
    FROM {FTS}.docs f LEFT JOIN {FTS}.terms t USING (docid) LEFT JOIN {FTS}.fields USING (fieldid)
    GROUP BY ALL"""


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
        return {"postings": {(uid, term): tuple(tfs) for uid, term, *tfs in con.execute(POSTINGS).fetchall()},
                "terms": dict(con.execute(TERMS).fetchall()),
                "lengths": {uid: tuple(lengths) for uid, *lengths in con.execute(LENGTHS).fetchall()}}
    finally:
        drop(con)


def civicat_index(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """civicat's search index on `con`, in the form of `index`."""
    tfs = ", ".join(f"p.tf_{field}" for field in FIELDS)
    postings = con.execute(f"""SELECT d.uid, t.term, {tfs} FROM search_postings p
                               JOIN search_terms t USING (termid) JOIN search_documents d USING (docid)""").fetchall()
    # each posting carries its document's lengths: the same as the document's own
    lengths = ", ".join(f"length_{field}" for field in FIELDS)
    assert con.execute(f"""SELECT count(*) FROM search_postings p JOIN search_documents d USING (docid)
                           WHERE ({', '.join(f'p.length_{f}' for f in FIELDS)})
                                 IS DISTINCT FROM ({', '.join(f'd.length_{f}' for f in FIELDS)})""").fetchone()[0] == 0
    return {"postings": {(uid, term): tuple(tfs) for uid, term, *tfs in postings},
            "terms": dict(con.execute("SELECT term, df FROM search_terms").fetchall()),
            "lengths": {uid: tuple(lengths) for uid, *lengths in
                        con.execute(f"SELECT uid, length, {lengths} FROM search_documents").fetchall()}}
