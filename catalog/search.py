"""Ranked full-text search over the catalogue (`civicat search`).

The index is three tables of our own (migrations 0006, 0011): documents, stemmed terms,
and postings sorted by term with each (term, document) weighted frequency computed at
build time, so that a query only reads its terms' postings (22-46 ms p95 on 100,000
datasets, where the fts extension's `match_bm25` macro took 270-540 ms; bench/search.py)
and a title word can count more than a description word (BM25F-style field weights).
BM25's length normalisation (by the average document length) is applied at query time,
so that when few datasets changed the index is updated in place, only they tokenised
(`refresh`: 2.3-2.7 s of CPU against the whole build's 9.3 s for 4% of 282,000 datasets changed;
the postings are written anew, see UPDATED_POSTINGS). Titles that are
the query, then titles that hold all its words, come first among the best RERANK hits, and
titles that are the query past them too (of the TITLE_LOOKUP shortest titles that can hold
its words): worked out at query time from those hits' titles (see QUERY), the index unchanged.

The terms follow the rules of DuckDB's fts extension (`create_fts_index` with
lower = 1, strip_accents = 1, our IGNORE, English stop words, Porter stemmer), but are
built in parallel SQL: the extension's index build runs on one thread and took twice the
CPU (11 s against 4.4-5.5 s at 100,000 datasets, docs/benchmarks.md). The text is cut at
spaces as it is read (cheap, parallel) and what a distinct piece of text holds - its
words, stop words and stems - is worked out once per piece, not once per occurrence
(the regular expressions and the stemmer over every occurrence cost about as much as the
extension's whole build). The intermediate tables live in an in-memory database of their
own, attached for the build (it spills to disk past the memory limit, and unlike a
temporary table every cursor of the connection sees it: the documents table is written
by a second cursor while the postings are sorted, the two steps that ran on one core). The
extension, loaded from the `duckdb-extension-fts` wheel pinned to the DuckDB version
(never INSTALLed from the network), gives the stemmer (at build and at query time).

Queries and filters reach DuckDB as parameters, never as SQL text.
"""
from __future__ import annotations

import difflib
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

from catalog import uncut
from catalog.lock import NO_ARROW_LAMBDAS
from catalog.transactions import rollback

log = logging.getLogger("civicat.search")

# field: weight of one occurrence in the term frequency (title words say what a dataset is)
FIELD_WEIGHTS = {"title": 3.0, "keywords": 2.0, "description": 1.0, "column_names": 1.0, "city": 1.0}
if any(weight != int(weight) for weight in FIELD_WEIGHTS.values()):
    raise ValueError("the field weights must be whole numbers: the postings store weighted frequencies as integers")
K1, B = 1.2, 0.75
IGNORE = r"(\.|[^a-z0-9])+"   # the fts default drops digits too, and with them "311"
# Characters that show nothing: the soft hyphen, the zero-width space, non-joiner and joiner,
# the word joiner and the byte order mark. A portal's text keeps them (Zurich's theme
# "Ver\xadwalt\xadung", stored as sent), the index and the filters drop them before
# anything else, or IGNORE would cut "verwaltung" in three words no one types
INVISIBLE = "[\u00ad\u200b-\u200d\u2060\ufeff]"
# the tokeniser's version, ahead of the fingerprint: an index built by another (of an older
# civicat) is built whole again, not updated. t2: INVISIBLE characters dropped (the terms of t1
# kept them); t3: a field indexed up to INDEXED_CHARS (an index built before session 34 kept a
# longer field whole, its words past the cut and its length, through every update, until a whole
# build, which a catalogue that changes little may not see for months). The bump costs one whole
# build, on the first harvest after the upgrade (docs/benchmarks.md, Nightly)
TOKENISER = "t3"


def visible(text: str) -> str:
    """`text` without INVISIBLE characters, as the index reads it."""
    return re.sub(INVISIBLE, "", text)


# The English stop words of DuckDB's fts extension (`stopwords = 'english'`, the 571 words
# its create_fts_index inserts), less the 47 with an apostrophe (never a word here: IGNORE
# cuts at the apostrophe) and one listed twice. test_search.py checks them against the
# extension's own list.
STOP_WORDS = tuple("""
    a able about above according accordingly across actually after afterwards again against all
    allow allows almost alone along already also although always am among amongst an and another any
    anybody anyhow anyone anything anyway anyways anywhere apart appear appreciate appropriate are
    around as aside ask asking associated at available away awfully b be became because become
    becomes becoming been before beforehand behind being believe below beside besides best better
    between beyond both brief but by c came can cannot cant cause causes certain certainly changes
    clearly co com come comes concerning consequently consider considering contain containing
    contains corresponding could course currently d definitely described despite did different do
    does doing done down downwards during e each edu eg eight either else elsewhere enough entirely
    especially et etc even ever every everybody everyone everything everywhere ex exactly example
    except f far few fifth first five followed following follows for former formerly forth four from
    further furthermore g get gets getting given gives go goes going gone got gotten greetings h had
    happens hardly has have having he hello help hence her here hereafter hereby herein hereupon
    hers herself hi him himself his hither hopefully how howbeit however i ie if ignored immediate
    in inasmuch inc indeed indicate indicated indicates inner insofar instead into inward is it its
    itself j just k keep keeps kept know knows known l last lately later latter latterly least less
    lest let like liked likely little look looking looks ltd m mainly many may maybe me mean
    meanwhile merely might more moreover most mostly much must my myself n name namely nd near
    nearly necessary need needs neither never nevertheless new next nine no nobody non none noone
    nor normally not nothing novel now nowhere o obviously of off often oh ok okay old on once one
    ones only onto or other others otherwise ought our ours ourselves out outside over overall own p
    particular particularly per perhaps placed please plus possible presumably probably provides q
    que quite qv r rather rd re really reasonably regarding regardless regards relatively
    respectively right s said same saw say saying says second secondly see seeing seem seemed
    seeming seems seen self selves sensible sent serious seriously seven several shall she should
    since six so some somebody somehow someone something sometime sometimes somewhat somewhere soon
    sorry specified specify specifying still sub such sup sure t take taken tell tends th than thank
    thanks thanx that thats the their theirs them themselves then thence there thereafter thereby
    therefore therein theres thereupon these they think third this thorough thoroughly those though
    three through throughout thru thus to together too took toward towards tried tries truly try
    trying twice two u un under unfortunately unless unlikely until unto up upon us use used useful
    uses using usually uucp v value various very via viz vs w want wants was way we welcome well
    went were what whatever when whence whenever where whereafter whereas whereby wherein whereupon
    wherever whether which while whither who whoever whole whom whose why will willing wish with
    within without wonder would x y yes yet you your yours yourself yourselves z zero
""".split())


class SearchIndexMissing(LookupError):
    pass


class UnknownCity(ValueError):
    """A `cities` filter names neither a city nor a portal id of the indexed datasets (a typo:
    it matched none, said as "no match", as if the city had no such dataset)."""


CITIES_LISTED = 20   # an unknown city's or theme's message lists the known ones up to this many, else the nearest


class UnknownTheme(ValueError):
    """A `themes` filter names no theme of the indexed datasets (a typo: it matched none, said as
    "no dataset matches", exit 0, as if no dataset of that theme had the words)."""


class UnknownAssetType(ValueError):
    """A `types` filter names an asset type that is neither civicat's nor a portal's in the index
    (a typo: it matched none, said as "no match")."""


# the asset types civicat's mappers give (harvester.portals: Socrata's, data.json's `catalog` ...),
# known to the `types` filter whether the catalogue has one or not; a portal's own (a CKAN package
# type) is known once the index has one
ASSET_TYPES = ("calendar", "catalog", "chart", "dataset", "file", "filtered_view", "form", "link", "map", "measure",
               "service", "story")


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

# Up to this share of the documents changed since the last whole build (summed over the
# updates since), the index is updated in place: only the changed datasets are tokenised.
# Past it a whole build is cheaper.
UPDATE_SHARE = 0.2

# BM25's saturated, length-normalised term frequency of a posting `p`, given the average
# document length: applied at query time, so that a change of the average (any change of
# the catalogue) leaves the stored postings as they are
TF_WEIGHT = "p.tf * ($k1 + 1) / (p.tf + $k1 * (1 - $b + $b * p.length / {avgdl}))"


# What the index reads of a field of a dataset (its title, keywords, description, city): its first
# this many characters. A dataset's text is read whole, and split into its words at once: one of
# 24 MiB of description took 37 s of CPU to index, one of 32 MiB had not been stored and indexed
# after 5 minutes (docs/benchmarks.md, Search); the longest description of the real catalogues of
# ../shared has 8,150 characters. The word the cut falls in is indexed as cut.
INDEXED_CHARS = 1 << 20
# A field's indexed text (`{text}`: SQL). A text of no more bytes than INDEXED_CHARS has no more
# characters, so it is taken as it is: left() counts a text's characters, and a whole build read
# every text three times (its ranges' bytes, the dictionary's pieces, the term frequencies)
INDEXED_TEXT = "CASE WHEN strlen({text}) <= $indexed_chars THEN {text} ELSE left({text}, $indexed_chars) END"


def _text_pieces(docid: str, documents: str = "", within: str = "") -> str:
    """Every piece of text between spaces of the datasets not deleted (joined with
    `documents`), lower-cased and accents stripped as the whole text (both are per
    character), with its field's weight and its document `docid`; `within`: a condition on
    the dataset `d` (AND ...). A field's first $indexed_chars characters (INDEXED_CHARS)."""
    return f"""
    SELECT docid, weight, unnest(string_split(lower(strip_accents({INDEXED_TEXT.format(text="text")})), ' ')) AS piece
    FROM (SELECT {docid} AS docid, unnest($weights) AS weight,
                 unnest([d.title, array_to_string(d.keywords, ' '), d.description, d.city]) AS text
          FROM datasets d {documents} WHERE d.deleted_at IS NULL {within})"""


def _pieces(docid: str, documents: str = "", within: str = "") -> str:
    """_text_pieces, and those of the datasets' columns, read from their own table, one name at a
    time (the same pieces as the names joined by spaces)."""
    return _text_pieces(docid, documents, within) + f"""
    UNION ALL
    SELECT {docid}, $column_weight, unnest(string_split(lower(strip_accents(coalesce(c.name, c.field_name))), ' '))
    FROM columns c JOIN datasets d ON d.uid = c.dataset_uid {documents}
    WHERE d.deleted_at IS NULL {within}"""


# A whole build: a document's id is its dataset's row id (no numbering pass); the pieces of
# the documents of a range of them (see RANGED)
WITHIN_RANGE = "AND d.rowid >= $low AND d.rowid < $high"
RANGE_PIECES = _pieces("d.rowid", within=WITHIN_RANGE)
# the same pieces, without documents: what the dictionary is made of. The datasets' own text
# a range at a time, as the term frequencies (RANGED "text": TF_BATCH_BYTES of text), each
# range's distinct pieces kept (search_work.pieces): DuckDB reads a vector of 2,048 datasets at
# once, its text all in memory, so that the dictionary's one step over every dataset needed more
# than 48 MB for datasets of 800 words and more (1,200 of 2,000 words: a DISTINCT of their
# descriptions' first 10 letters alone did not fit 48 MB; docs/benchmarks.md, Search). A column
# name is split once, not once per dataset that has it (1,155,370 columns, 73 names in the
# synthetic catalogue: the dictionary's step took half the CPU)
RANGE_TEXT_PIECES = f"SELECT DISTINCT piece FROM ({_text_pieces('d.rowid', within=WITHIN_RANGE)})"
ALL_PIECES = """
    SELECT piece FROM search_work.pieces
    UNION ALL
    SELECT unnest(string_split(lower(strip_accents(name)), ' '))
    FROM (SELECT DISTINCT coalesce(name, field_name) AS name FROM columns)"""
# An update: the datasets to index again (new, changed or back), numbered after the
# documents indexed (row ids are not stable across updates and checkpoints)
CHANGED_PIECES = _pieces("x.docid", "JOIN search_work.changed x ON x.uid = d.uid")
PIECE_WEIGHTS = {"weights": [FIELD_WEIGHTS[f] for f in ("title", "keywords", "description", "city")],
                 "column_weight": FIELD_WEIGHTS["column_names"]}


def _piece_terms(pieces: str, term_ids: str) -> str:
    """Each distinct piece's terms, one row per word it holds (a piece can hold several:
    "covid-19"; or none: "the", "-"): the extension's tokeniser, stop words and stemmer;
    `term_ids` numbers the terms of `stems`."""
    return f"""
        WITH words AS (
            SELECT piece, unnest(string_split_regex(regexp_replace(regexp_replace(piece, $invisible, '', 'g'), $ignore,
                                                                   ' ', 'g'), '\\s+')) AS word
            FROM (SELECT DISTINCT piece FROM ({pieces}))),
        stems AS (
            SELECT piece, stem(word, 'porter') AS term FROM words
            WHERE word <> '' AND word NOT IN (SELECT unnest($stop_words))),
        ids AS ({term_ids})
        SELECT piece, termid, term FROM stems JOIN ids USING (term)"""


def _term_frequencies(pieces: str) -> str:
    """Weighted term frequency per (term, document); n: the term's occurrences."""
    return f"""
        SELECT termid, docid, sum(weight) AS tf, count(*) AS n
        FROM ({pieces}) JOIN search_work.piece_terms USING (piece)
        GROUP BY termid, docid"""


# A whole build writes the documents this many at a time (a range of row ids), and counts the
# term frequencies of at most this many at a time too (the ranges' (term, document) groups are
# apart): one hash aggregate of every document's pieces (5.9 million groups at 300 portals) needed
# more than 80 MB, beyond what 128 MB left beside the harvest's own at night 1's end
# (docs/benchmarks.md, Nightly). With POSTINGS_BATCH, the whole build of night 1's catalogue at 300
# portals fits 64 MB (ranges twice as large did not: 80), for ~1 s more CPU (of 8-9)
TF_BATCH_DOCUMENTS = 25_000
# ... and of at most this many bytes of text (TEXT_BYTES): a range's groups are its documents'
# words, so that ranges counted in documents alone grew with the descriptions' length (12,000
# datasets of 250-word descriptions, 3 million postings in one range, did not fit 128 MB;
# docs/benchmarks.md, Search)
TF_BATCH_BYTES = 4 << 20

LENGTHS = "SELECT docid, sum(n)::BIGINT AS length FROM search_work.tf GROUP BY docid"

# DuckDB reads a table this many rows at a time (a vector, aligned on row ids), their text all in memory
READ_ROWS = 2_048
# The dictionary's pieces are taken in one step over every run of text ranges that are light: none of
# whose vectors holds more than this much text (TEXT_BYTES; a vector across two of them, at most
# TF_BATCH_BYTES, what a range of the term frequencies reads); a heavy range's pieces alone. Taken a
# range at a time everywhere (session 33), a piece met in many ranges was kept once a range to the
# build's end (4,000 short datasets in 64 KiB ranges: 61,486 pieces held for 3,002 distinct)
READ_BYTES = TF_BATCH_BYTES // 2

# The first document of each run of about $batch bytes of text (what _pieces cuts into words: a
# dataset's title, keywords, description and city, its columns' names) among the datasets of a
# range of row ids ($low, $high), and the most text of a vector of its datasets (`heaviest`, as
# DuckDB reads them: READ_ROWS): a dataset's column names summed first, by the range's datasets
# alone (a join of every column with every dataset grows with the catalogue)
TEXT_BYTES = "coalesce(strlen(" + INDEXED_TEXT + "), 0)"
TEXT_RANGES = f"""
    SELECT min(docid) AS first, max(vector) AS heaviest FROM (
        SELECT docid, sum(bytes) OVER (ORDER BY docid) AS upto,
               sum(bytes) OVER (PARTITION BY docid // {READ_ROWS}) AS vector FROM (
            SELECT docid, sum(bytes) AS bytes FROM (
                SELECT d.rowid AS docid, {TEXT_BYTES.format(text="d.title")} + {TEXT_BYTES.format(
                    text="array_to_string(d.keywords, ' ')")} + {TEXT_BYTES.format(text="d.description")}
                       + {TEXT_BYTES.format(text="d.city")} AS bytes
                FROM datasets d WHERE d.deleted_at IS NULL {WITHIN_RANGE}
                UNION ALL
                SELECT d.rowid, {TEXT_BYTES.format(text="coalesce(c.name, c.field_name)")} + 1
                FROM columns c JOIN datasets d ON d.uid = c.dataset_uid WHERE d.deleted_at IS NULL {WITHIN_RANGE})
            GROUP BY docid))
    GROUP BY upto // $batch ORDER BY first"""


def _documents(docid: str, documents: str = "", within: str = "") -> str:
    return f"""
        SELECT {docid} AS docid, d.uid, d.portal_id, d.city, d.themes, d.asset_type, d.title,
               coalesce(l.length, 0)::BIGINT AS length, lower(regexp_replace(d.city, $invisible, '', 'g')) AS city_key,
               list_transform(d.themes, lambda t: lower(regexp_replace(t, $invisible, '', 'g'))) AS theme_keys,
               d.last_changed
        FROM datasets d {documents} LEFT JOIN search_work.lengths l ON l.docid = {docid}
        WHERE d.deleted_at IS NULL {within}
        ORDER BY docid"""  # a filter's join on docid then skips row groups


# Sorted by term: a query reads its terms' row groups only. The weighted frequency and the
# length are stored as integers (the weights are whole): a DOUBLE's compression (ALP) took a
# quarter of the postings' CPU (0.9 s against 0.7 s at 100,000 datasets)
POSTINGS = """
    SELECT t.termid::BIGINT AS termid, t.docid::BIGINT AS docid, t.tf::INTEGER AS tf, l.length::INTEGER AS length
    FROM search_work.tf t JOIN search_work.lengths l USING (docid) {terms}
    ORDER BY t.termid, t.docid"""
# the postings of a range of terms
IN_RANGE = "WHERE t.termid >= $low AND t.termid < $high"
# A whole build writes the postings a range of terms at a time, each range about this many
# postings, sorted, the ranges in term order: the same table as one sort of them all, whose
# join and sort of 5.9 million postings (300 portals) did not fit the harvest's 128 MB on one
# thread, nor beside what the harvest held at night 1's end (retried with 1 GB; docs/benchmarks.md)
POSTINGS_BATCH = 1 << 19


def _term_ranges(counts: str) -> str:
    """The first term of each range of about $batch postings, given `counts` (termid, n: a
    term's postings)."""
    return f"""
        SELECT min(termid) AS first FROM (
            SELECT termid, sum(n) OVER (ORDER BY termid) AS upto FROM ({counts}))
        GROUP BY upto // $batch ORDER BY first"""


# of a whole build: the postings counted in its term frequencies
POSTINGS_RANGES = _term_ranges("SELECT termid, count(*) AS n FROM search_work.tf GROUP BY termid")
# of an update: the stored postings (a term's df is its postings) and the new ones, a new term's among them
UPDATED_RANGES = _term_ranges("""
    SELECT termid, sum(n) AS n FROM (SELECT termid, df AS n FROM search_terms
                                     UNION ALL SELECT termid, count(*) FROM search_work.tf GROUP BY termid)
    GROUP BY termid""")

# the in-memory database of a build's or an update's intermediate tables (named in the SQL
# above and below): attached while it runs, detached after
WORK = "search_work"

# the intermediate tables of a whole build, built in this order
STEPS = {
    "search_work.pieces": RANGE_TEXT_PIECES,
    "search_work.piece_terms": _piece_terms(ALL_PIECES, "SELECT row_number() OVER (ORDER BY term) - 1 AS termid, term "
                                                    "FROM (SELECT DISTINCT term FROM stems)"),
    "search_work.tf": _term_frequencies(RANGE_PIECES),
    "search_work.lengths": LENGTHS,
}

# each built as a `_next` table of its own and committed (committed rows can spill to
# disk, rows of one long transaction cannot), then swapped in by one short transaction;
# the documents and the terms by a second cursor, beside the postings (the documents' and
# the postings' writes ran on one core each: 0.5 s and 0.8-0.9 s at 100,000 datasets)
BESIDE = ("search_documents", "search_terms")
BUILD = {
    "search_documents": _documents("d.rowid", within=WITHIN_RANGE),
    "search_terms": """
        SELECT termid::BIGINT AS termid, term, df
        FROM (SELECT DISTINCT termid, term FROM search_work.piece_terms)
        JOIN (SELECT termid, count(*) AS df FROM search_work.tf GROUP BY termid) USING (termid)""",
    "search_postings": POSTINGS.format(terms=IN_RANGE),
}
# The tables written a range at a time, the ranges in order (their SELECTs take $low and $high):
# of documents, by their dataset's row id (TF_BATCH_DOCUMENTS; "text": each cut again by
# TF_BATCH_BYTES of text), or of terms (POSTINGS_BATCH), cut by the query named; a whole build's,
# and an update's postings (see UPDATED_POSTINGS)
RANGED = {"search_work.pieces": "light text", "search_work.tf": "text", "search_documents": "documents",
          "search_postings": POSTINGS_RANGES, "search_postings_update": UPDATED_RANGES}

# the intermediate tables of an update, in this order: the documents whose dataset is
# deleted or changed since they were indexed, the datasets to index (again), then their
# terms (known terms keep their id, new ones are numbered after the others). The terms and
# their frequencies read the changed datasets alone (few: UPDATE_SHARE), on one DuckDB thread:
# on two, each hash table of their statements is built once a thread, and what the terms'
# statement needed varied from run to run: for 600 datasets changed of 15,000, from 36 MB to 48
# (it failed 15 runs in 20 at 36 MB, 4 in 20 at 44, and once at 48 in CI); on one the update fits
# 36 MB in every run (20 in 20; none at 34: docs/benchmarks.md, Search)
CHANGES = {
    "search_work.gone": """
        SELECT s.docid FROM search_documents s
        LEFT JOIN datasets d ON d.uid = s.uid AND d.deleted_at IS NULL AND d.last_changed = s.last_changed
        WHERE d.uid IS NULL""",
    "search_work.changed": """
        SELECT d.uid, (SELECT coalesce(max(docid), -1) FROM search_documents) + row_number() OVER (ORDER BY d.uid)
                      AS docid
        FROM datasets d LEFT JOIN search_documents s ON s.uid = d.uid AND s.last_changed = d.last_changed
        WHERE d.deleted_at IS NULL AND s.uid IS NULL""",
}
UPDATE_STEPS = {
    "search_work.piece_terms": _piece_terms(CHANGED_PIECES, """
        SELECT termid, term FROM search_terms WHERE term IN (SELECT term FROM stems)
        UNION ALL
        SELECT (SELECT coalesce(max(termid), -1) FROM search_terms) + row_number() OVER (ORDER BY term), term
        FROM (SELECT DISTINCT term FROM stems WHERE term NOT IN (SELECT term FROM search_terms))"""),
    "search_work.tf": _term_frequencies(CHANGED_PIECES),
    "search_work.lengths": LENGTHS,
}
# The postings an update leaves: those of the documents kept, and the new ones, written as a
# table of their own (committed: it spills) that replaces the old in the update's transaction,
# sorted by term as a whole build's. Not a DELETE of the old versions' postings: those are
# spread over every row group of the table (it is sorted by term), and DuckDB 1.5 holds the
# version info of each row group with a delete in memory it cannot evict (catalog.store,
# VACUUM_BYTES): at 300 portals that DELETE of ~11,000 documents' postings among 5.9 million
# did not fit the harvest's 128 MB (retried with 1 GB every night; docs/benchmarks.md, Nightly).
# Written a range of terms at a time (a range of the stored table is a few of its row groups,
# itself sorted by term): one sort of every posting grew with the catalogue (docs/benchmarks.md)
UPDATED_POSTINGS = f"""
    SELECT termid, docid, tf, length FROM (
        SELECT termid, docid, tf, length FROM search_postings t
        {IN_RANGE} AND docid NOT IN (SELECT docid FROM search_work.gone)
        UNION ALL
        SELECT termid, docid, tf, length FROM ({POSTINGS.format(terms=IN_RANGE)}))
    ORDER BY termid, docid"""
# in one transaction: the old versions leave (their documents, and their terms' counts),
# the new ones come in, the postings are swapped for UPDATED_POSTINGS; a term no document
# holds any more leaves the dictionary
UPDATE = (
    """UPDATE search_terms SET df = df - g.n
       FROM (SELECT termid, count(*) AS n FROM search_postings WHERE docid IN (SELECT docid FROM search_work.gone)
             GROUP BY termid) g
       WHERE search_terms.termid = g.termid""",
    "DELETE FROM search_documents WHERE docid IN (SELECT docid FROM search_work.gone)",
    """INSERT INTO search_terms
       SELECT DISTINCT termid, term, 0 FROM search_work.piece_terms
       WHERE termid IN (SELECT termid FROM search_work.tf) AND termid NOT IN (SELECT termid FROM search_terms)""",
    """UPDATE search_terms SET df = df + g.n
       FROM (SELECT termid, count(*) AS n FROM search_work.tf GROUP BY termid) g
       WHERE search_terms.termid = g.termid""",
    "DELETE FROM search_terms WHERE df = 0",
    "DROP TABLE search_postings",
    "ALTER TABLE search_postings_next RENAME TO search_postings",
    f"INSERT INTO search_documents BY NAME {_documents('x.docid', 'JOIN search_work.changed x ON x.uid = d.uid')}",
)
# the average length counts documents without a word too
STATE = """INSERT INTO search_state BY NAME
           SELECT $built_at AS built_at, count(*) AS documents, $fingerprint AS fingerprint, $updated AS updated,
                  coalesce(sum(length) / nullif(count(*), 0), 0) AS avgdl
           FROM search_documents"""


def refresh(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> bool:
    """Bring the index up to date if the catalogue changed since (or with `force`, build
    it whole). Few changed datasets are indexed in place, else the index is built whole.
    Either way the new index replaces the old in one transaction: a reader sees the
    previous index or the new one, and a build cut short leaves the previous one. Returns
    whether it changed. The caller's memory limit and threads hold (a build spills to disk
    past the limit), but that an update's steps over the changed datasets run on one thread
    (see UPDATE_STEPS). One refresh at a time per DuckDB instance (catalog.store.Store holds
    its write lock): a build attaches its working database under one name, WORK."""
    fingerprint = f"{TOKENISER}|{con.execute(FINGERPRINT).fetchone()[0]}"
    built = con.execute("SELECT fingerprint, documents, updated FROM search_state").fetchall()
    if not force and built and built[0][0] == fingerprint:
        return False
    force = force or bool(built) and not built[0][0].startswith(f"{TOKENISER}|")
    load_fts(con)
    con.execute("SET enable_progress_bar = false")  # the harvest shows its own progress
    params = {"ignore": IGNORE, "invisible": INVISIBLE, "stop_words": list(STOP_WORDS), **PIECE_WEIGHTS,
              "indexed_chars": INDEXED_CHARS,
              "built_at": datetime.now(UTC), "fingerprint": fingerprint}
    con.execute(f"DETACH DATABASE IF EXISTS {WORK}")  # (a build cut short in this connection)
    con.execute(f"ATTACH ':memory:' AS {WORK}")
    try:
        if force or not built or not _update(con, params, documents=built[0][1], updated=built[0][2]):
            _build(con, params)
    finally:
        _drop_leftovers(con)   # (held, as every COMMIT and ROLLBACK here: a stop waits for them alone)
    return True


def _build(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    # a stop interrupts the build's statements (3-8 s each at 100,000 datasets under load): what
    # they write is thrown away (WORK, `_next` tables), the previous index kept until the swap
    with uncut.interruptible(con):
        text_cuts = _text_cuts(con)   # (the pieces' and the term frequencies' alike: cut once)
        for name, select in STEPS.items():
            _create_in_ranges(con, name, name, select, params, text_cuts=text_cuts)
            if name == "search_work.piece_terms":   # (its pieces read: their memory for the steps after)
                con.execute("DROP TABLE search_work.pieces")
        _build_next(con, params)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in BUILD:
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE {table}_next RENAME TO {table}")
        # the hits of a query are looked up by document id, not found by a scan of all
        con.execute("CREATE UNIQUE INDEX search_documents_docid ON search_documents (docid)")
        con.execute("DELETE FROM search_state")
        con.execute(STATE, {**_only(STATE, params), "updated": 0})
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


def _create_in_ranges(con: duckdb.DuckDBPyConnection, table: str, name: str, select: str, params: dict,
                      stop: threading.Event | None = None, text_cuts: list[tuple[int, int, bool]] = ()) -> None:
    """Table `name` created from `select`, a range at a time if `table` is RANGED (each range's
    rows inserted after the previous range's), else at once. `text_cuts`: the ranges of text
    (_text_cuts), of the tables cut by their text."""
    if table not in RANGED:
        return _create(con, f"TABLE {name}", select, params)
    if RANGED[table] == "text":
        ranges = [(low, high) for low, high, _ in text_cuts]
    elif RANGED[table] == "light text":
        ranges = _light_merged(text_cuts)
    elif RANGED[table] == "documents":
        ranges = _document_ranges(con)
    else:   # (the first range from the lowest term: a term id is never negative)
        firsts = [row[0] for row in con.execute(RANGED[table], {"batch": POSTINGS_BATCH}).fetchall()]
        ranges = list(zip([0, *firsts[1:]], [*firsts[1:], 1 << 62]))
    for number, (low, high) in enumerate(ranges or [(0, 0)]):   # (none: the table, empty)
        bounded = {**params, "low": low, "high": high}
        if not number:
            _create(con, f"TABLE {name}", select, bounded)
            continue
        if stop is not None and stop.is_set():
            raise _Stopped(table)
        con.execute(f"INSERT INTO {name} {select}", _only(select, bounded))


def _document_ranges(con: duckdb.DuckDBPyConnection) -> list[tuple[int, int]]:
    """The datasets' row ids, TF_BATCH_DOCUMENTS at a time."""
    last = con.execute("SELECT coalesce(max(rowid), -1) FROM datasets").fetchone()[0]
    return [(low, low + TF_BATCH_DOCUMENTS) for low in range(0, last + 1, TF_BATCH_DOCUMENTS)]


def _text_cuts(con: duckdb.DuckDBPyConnection) -> list[tuple[int, int, bool]]:
    """The datasets' row ids in ranges of TF_BATCH_DOCUMENTS, each cut by TF_BATCH_BYTES of text
    (low, high, light: see _cut_by_text)."""
    return [cut for low, high in _document_ranges(con) for cut in _cut_by_text(con, low, high)]


def _light_merged(cuts: list[tuple[int, int, bool]]) -> list[tuple[int, int]]:
    """The text `cuts` (in order, each following the last) as ranges: each run of light ones merged
    into one (see READ_BYTES), a heavy one a range of its own."""
    ranges: list[tuple[int, int]] = []
    light_before = False
    for low, high, light in cuts:
        if light and light_before:
            ranges[-1] = (ranges[-1][0], high)
        else:
            ranges.append((low, high))
        light_before = light
    return ranges


def _cut_by_text(con: duckdb.DuckDBPyConnection, low: int, high: int) -> list[tuple[int, int, bool]]:
    """The range of row ids [low, high) cut into ranges of about TF_BATCH_BYTES of text each (see
    TEXT_RANGES): a dataset of more text than that, a range alone. Each with whether it is light: no
    vector of its datasets holds more than READ_BYTES of text."""
    rows = con.execute(TEXT_RANGES, {"low": low, "high": high, "batch": TF_BATCH_BYTES,
                                     "indexed_chars": INDEXED_CHARS}).fetchall()
    cuts = [low, *(first for first, _ in rows[1:]), high]
    heaviest = [vector for _, vector in rows] or [0]
    return [(low, high, vector <= READ_BYTES) for low, high, vector in zip(cuts, cuts[1:], heaviest)]


def _build_next(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    """The BUILD tables as `_next` tables, on two cursors."""
    beside = con.cursor()   # (it starts in the connection's default database)
    stop = threading.Event()     # one side failed: the other starts no further table
    ours_done = threading.Event()
    builder = threading.current_thread()
    try:
        beside.execute(f"USE {_current_database(con)}")
        beside.execute(NO_ARROW_LAMBDAS)   # (a cursor has settings of its own)

        def on_aside_done(done) -> None:
            if done.exception() is not None:
                stop.set()
                # Interrupts our query, from the pool's thread (not one started here: joining that
                # raced its start, and its error hid the table's). The pool's shutdown waits for
                # it, so no late interrupt hits a statement after the build. In our own thread if
                # it failed at once: ours has not begun, and the stop is enough.
                if threading.current_thread() is not builder:
                    _interrupt_until(con, ours_done.is_set)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicat-search") as pool:
            aside = pool.submit(_build_tables, beside, BESIDE, params, stop)
            aside.add_done_callback(on_aside_done)
            ours_failed = True
            try:
                _build_tables(con, [table for table in BUILD if table not in BESIDE], params, stop)
                ours_failed = False
            except BaseException as ours:
                # its failure stopped ours; but a stop stays a stop, whatever the other side did meanwhile
                if not isinstance(ours, KeyboardInterrupt) and aside.done() and aside.exception() is not None:
                    raise aside.exception() from None
                raise
            finally:
                ours_done.set()
                try:
                    if ours_failed:   # (a stop or a failure: no use finishing its tables, nor waiting for them)
                        _stop_aside(stop, beside, aside)
                    wait([aside])   # (interrupted when ours failed: then ours is the error raised)
                except BaseException:   # (a stop as we wait for it, outside any statement: likewise)
                    _stop_aside(stop, beside, aside)
                    raise
            aside.result()
    finally:
        beside.close()


def _stop_aside(stop: threading.Event, beside: duckdb.DuckDBPyConnection, aside) -> None:
    """The other cursor's build given up: no further table started, the one under way interrupted."""
    stop.set()
    _interrupt_until(beside, aside.done)


class _Stopped(Exception):
    """The other side of a build failed: this side stopped before its next table."""


def _build_tables(con: duckdb.DuckDBPyConnection, tables, params: dict, stop: threading.Event) -> None:
    for table in tables:
        if stop.is_set():
            raise _Stopped(table)
        _create_in_ranges(con, table, f"{table}_next", BUILD[table], params, stop)


def _interrupt_until(con: duckdb.DuckDBPyConnection, finished) -> None:
    """Interrupt `con`'s query until `finished()`: an interrupt that comes before the query has
    started is lost (DuckDB clears it as a query begins), so one alone could let a query of
    minutes run on (seen under load, when the failing side failed before the other had begun)."""
    while not finished():
        con.interrupt()
        time.sleep(0.02)


def _update(con: duckdb.DuckDBPyConnection, params: dict, *, documents: int, updated: int) -> bool:
    """Index only the datasets changed since the index was built, if they are few (see
    UPDATE_SHARE); returns whether it did. A stop interrupts it but for the COMMIT (as a build)."""
    with uncut.interruptible(con):
        for name, select in CHANGES.items():
            _create(con, f"TABLE {name}", select, params)
        changed = con.execute("SELECT (SELECT count(*) FROM search_work.gone) + "
                              "(SELECT count(*) FROM search_work.changed)").fetchone()[0]
        if updated + changed > UPDATE_SHARE * documents:
            return False
        with uncut.one_thread(con):   # (see UPDATE_STEPS)
            for name, select in UPDATE_STEPS.items():
                _create(con, f"TABLE {name}", select, params)
        _create_in_ranges(con, "search_postings_update", "search_postings_next", UPDATED_POSTINGS, params)
    con.execute("BEGIN TRANSACTION")
    try:
        with uncut.interruptible(con):   # (rolled back below)
            for statement in UPDATE:
                con.execute(statement, _only(statement, params))
            con.execute("DELETE FROM search_state")
            con.execute(STATE, {**_only(STATE, params), "updated": updated + changed})
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    return True


def _only(sql: str, params: dict) -> dict:
    """The parameters `sql` names (DuckDB refuses others)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


def _create(con: duckdb.DuckDBPyConnection, what: str, select: str, params: dict) -> None:
    con.execute(f"CREATE OR REPLACE {what} AS {select}", _only(select, params))


def _current_database(con: duckdb.DuckDBPyConnection) -> str:
    name = con.execute("SELECT current_database()").fetchone()[0]
    return '"' + name.replace('"', '""') + '"'


def _drop_leftovers(con: duckdb.DuckDBPyConnection) -> None:
    """The intermediate tables of a build or an update, and any `_next` table a failure left."""
    con.execute(f"DETACH DATABASE IF EXISTS {WORK}")
    for table in BUILD:
        con.execute(f"DROP TABLE IF EXISTS {table}_next")


# -- queries ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    cities: tuple[str, ...] = ()   # a city name or a portal id, any case
    themes: tuple[str, ...] = ()   # any case
    types: tuple[str, ...] = ()    # asset types: dataset, map, chart, filtered_view ...


# How many of the best hits by BM25 (after the filters) the title tiers reorder: a bound
# on the query's extra work (their titles read, cut into words and stemmed), whatever the
# catalogue's size
RERANK = 200
# Past the best RERANK hits, how many more titles are read to find those that are the query
# (whatever their BM25 rank): of the hits whose postings can put every query word in the
# title, the shortest titles, as a title that is the query has no other word (on the real
# catalogues and on 100,000 datasets such titles came in the first 17 of them)
TITLE_LOOKUP = 50
# A title of one word is the query's first tier only if the dataset says the word beyond its
# title at least this much (weighted as the index weighs it): a keyword's worth, i.e. a keyword,
# its columns' or description's words twice. A title of one word alone is a weak sign: Raleigh's
# "Payroll", "Inspections", "Planning", "Revenue" are each one department's slice of one budget,
# said only once more in their description ("Payroll FY13 Adopted And FY14 Proposed Budgets"),
# while San Francisco's "Budget", Montgomery County's "Crime" and Baltimore's "Libraries" are
# tagged with their word or describe themselves by it again and again
BEYOND_TITLE = FIELD_WEIGHTS["keywords"]

# The words of a text (an SQL expression) as the index makes its terms from them: INVISIBLE
# characters dropped, lower-cased, accents stripped, cut by IGNORE (which leaves one space between words), stop words
# (`stop.words`) dropped; stemmed by the caller
WORDS = ("list_filter(string_split(regexp_replace(lower(strip_accents(regexp_replace({text}, $invisible, '', 'g'))), "
         "$ignore, ' ', 'g'), ' '), "
         "lambda w: w <> '' AND NOT list_contains(stop.words, w))")

# The title tiers. BM25 over the whole text lets a long description pull down a dataset
# whose title is what the user typed (Chicago's "Building Permits", 2,000 characters of
# description, was 7th for "building permits"). So the best RERANK hits by BM25 (after the
# filters) are put in three tiers, BM25 ordering each: first the titles that are the query
# (the same words, no other, in any order: "Permits - Building"), then the titles that hold
# every word of the query, then the rest. The words are the index's terms: stop words
# dropped, stemmed ("The BUILDING of permits" is "Building Permits"); a query word no
# dataset holds is left out, as BM25 leaves it. A long text can push a title that is the
# query past the best RERANK, so the first tier also takes those of the TITLE_LOOKUP
# shortest titles past them, among the hits whose postings can hold every query word in
# the title, that are the query. A query of one word has a first tier too, for the titles
# that are the word and whose datasets say it beyond the title (BEYOND_TITLE): a title of one
# word is most often its subject's own dataset (San Francisco's "Budget", Montgomery County's
# "Crime", Baltimore's "Libraries"), but sometimes a fragment of another (Raleigh's
# "Payroll", "Planning", "Revenue": slices of one budget, which stay in the second tier). Each tier above the
# last adds the query's highest possible BM25 score (a term gives less than idf * (k1 + 1))
# to the score, the first twice, so the scores keep the order of the hits. The other hits
# past the best RERANK keep their BM25 score and place (they come only with --limit above
# RERANK).
QUERY = """
WITH query_terms AS (
    SELECT DISTINCT stem(unnest(string_split_regex(regexp_replace(lower(strip_accents($text)), $ignore, ' ', 'g'),
                                                   '\\s+')), 'porter') AS term),
terms AS MATERIALIZED (
    SELECT t.termid, t.term, ln((s.documents - t.df + 0.5) / (t.df + 0.5) + 1) AS idf, s.avgdl
    FROM search_terms t JOIN query_terms q ON q.term = t.term, search_state s),
scores AS (
    SELECT p.docid, sum(terms.idf * """ + TF_WEIGHT.format(avgdl="terms.avgdl") + """) AS score,
           -- the query's terms that can be in the title: a title word alone weighs $title_weight
           count(*) FILTER (WHERE p.tf >= $title_weight) AS title_terms,
           sum(p.tf) AS tf   -- (of a query of one word: that word's weighted frequency)
    FROM search_postings p JOIN terms ON terms.termid = p.termid
    GROUP BY p.docid),
-- (read twice: for the best hits and for the titles past them)
hits AS MATERIALIZED (SELECT scores.docid, scores.score, scores.title_terms, scores.tf FROM scores {filter_join}),
ranked AS MATERIALIZED (SELECT * FROM hits ORDER BY score DESC, docid LIMIT greatest($limit, $rerank)),
-- the stop words: one text, split here (a list of 523 as a parameter took 1 ms to bind)
stop AS MATERIALIZED (SELECT string_split($stop_words, ' ') AS words),
wanted AS (
    SELECT coalesce(list(term), []) AS terms FROM terms
    WHERE term IN (SELECT stem(unnest(""" + WORDS.format(text="$text") + """), 'porter') FROM stop)),
best_ranked AS (SELECT * FROM ranked ORDER BY score DESC, docid LIMIT $rerank),
candidates AS MATERIALIZED (   -- the hits whose titles can hold every word of the query (looked_up: past the best)
    SELECT h.docid, h.score, h.tf, d.title, h.docid NOT IN (SELECT docid FROM best_ranked) AS looked_up
    FROM hits h JOIN search_documents d ON d.docid = h.docid, wanted
    WHERE len(wanted.terms) > 0 AND h.title_terms >= len(wanted.terms)),
fetched AS (SELECT * FROM candidates WHERE NOT looked_up),   -- of the best hits
looked_up AS (SELECT * FROM candidates WHERE looked_up ORDER BY length(title), score DESC, docid LIMIT $title_lookup),
title_words AS (   -- their words, stemmed
    SELECT docid, score, tf, looked_up,
           list_transform(""" + WORDS.format(text="title") + """, lambda w: stem(w, 'porter')) AS words
    FROM (SELECT * FROM fetched UNION ALL SELECT * FROM looked_up), stop),
titles AS (SELECT *, list_distinct(words) AS terms FROM title_words),   -- their terms
tiers AS (
    SELECT titles.docid, titles.score, CASE
               WHEN NOT list_has_all(titles.terms, wanted.terms) THEN 0
               WHEN len(titles.terms) = len(wanted.terms)
                    -- one word: said beyond the title too (the title's own occurrences taken from its frequency)
                    AND (len(wanted.terms) > 1 OR titles.tf - $title_weight * len(titles.words) >= $beyond_title)
                    THEN 2 ELSE 1 END AS tier, looked_up
    FROM titles, wanted),
first_looked_up AS (SELECT docid FROM tiers WHERE looked_up AND tier = 2),
tiered AS (
    SELECT docid, score + tier * (SELECT sum(idf) * ($k1 + 1) FROM terms) AS score
    FROM tiers WHERE NOT looked_up OR tier = 2
    UNION ALL   -- the other best hits, whose titles cannot hold every word
    SELECT docid, score FROM best_ranked WHERE docid NOT IN (SELECT docid FROM fetched)
    UNION ALL   -- the hits past them, less those that joined the first tier
    SELECT * FROM (SELECT docid, score FROM ranked ORDER BY score DESC, docid OFFSET $rerank)
    WHERE docid NOT IN (SELECT docid FROM first_looked_up)),
best AS (SELECT * FROM tiered ORDER BY score DESC, docid LIMIT $limit)
SELECT d.uid, d.title, d.city, d.portal_id, d.asset_type, d.themes, best.score
FROM best JOIN search_documents d ON d.docid = best.docid   -- the hits only, by index
ORDER BY best.score DESC, best.docid"""

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
    try:  # (avgdl: the index of migration 0011, which a harvest builds)
        built = con.execute("SELECT count(*) FROM search_state WHERE avgdl IS NOT NULL").fetchone()[0]
    except (duckdb.CatalogException, duckdb.BinderException):  # a catalogue of an older civicat, not migrated yet
        built = 0
    if not built:
        raise SearchIndexMissing("the search index is not built yet: run `civicat harvest` (it builds it)")
    text = visible(text)   # (the filters' values too: the index's keys are read so)
    if filters.cities:
        _check_cities(con, filters.cities)
    if filters.themes:
        _check_themes(con, filters.themes)
    if filters.types:
        known = sorted({*ASSET_TYPES, *(row[0] for row in con.execute(
            "SELECT DISTINCT asset_type FROM search_documents WHERE asset_type IS NOT NULL").fetchall())})
        unknown = [t for t in filters.types if visible(t).lower() not in known]
        if unknown:
            raise UnknownAssetType(f"{', '.join(map(repr, unknown))} {'is no' if len(unknown) == 1 else 'are no'} "
                                   f"asset type civicat or the catalogue knows (those known: {', '.join(known)})")
    params: dict = {"text": text, "ignore": IGNORE, "invisible": INVISIBLE, "limit": int(limit), "k1": K1, "b": B, "rerank": RERANK,
                    "title_lookup": TITLE_LOOKUP, "stop_words": " ".join(STOP_WORDS), "title_weight": FIELD_WEIGHTS["title"],
                    "beyond_title": BEYOND_TITLE}
    clauses = []
    for name, clause in FILTERS.items():
        values = getattr(filters, name)
        if values:
            clauses.append(clause)
            params[name] = [visible(v).lower() for v in values]
    filter_join = f"JOIN search_documents d ON d.docid = scores.docid WHERE {' AND '.join(clauses)}" if clauses else ""
    cursor = con.execute(QUERY.format(filter_join=filter_join), params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _check_cities(con: duckdb.DuckDBPyConnection, cities: tuple[str, ...]) -> None:
    """Raise UnknownCity for a city that is neither a city (any case) nor a portal id of the index."""
    known = {key for row in con.execute("SELECT DISTINCT city_key, portal_id FROM search_documents").fetchall()
             for key in row if key}
    _check_known(cities, known, UnknownCity, "city or portal id")


def _check_themes(con: duckdb.DuckDBPyConnection, themes: tuple[str, ...]) -> None:
    """Raise UnknownTheme for a theme (any case) that no dataset of the index has. (Its keys read
    as visible(): an index an older civicat built keyed them with soft hyphens until rebuilt.)"""
    known = {visible(row[0]) for row in con.execute(
        "SELECT DISTINCT unnest(theme_keys) FROM search_documents").fetchall() if row[0]}
    _check_known(themes, known, UnknownTheme, "theme")


def _check_known(values: tuple[str, ...], known: set[str], error: type[ValueError], what: str) -> None:
    """Raise `error` naming the values not in `known` (read as the index keys them: visible, lower
    case) and those known: all up to CITIES_LISTED, else how many and the nearest."""
    unknown = [v for v in values if visible(v).lower() not in known]
    if not unknown:
        return
    if len(known) <= CITIES_LISTED:
        listed = ", ".join(sorted(known)) or "none"
    else:
        nearest = sorted({m for v in unknown for m in difflib.get_close_matches(visible(v).lower(), known, n=5)})
        listed = f"{len(known)}; the nearest: {', '.join(nearest) or 'none'}"
    raise error(f"{', '.join(map(repr, unknown))} {'is no' if len(unknown) == 1 else 'are no'} {what} of the "
                f"catalogue's datasets (those known: {listed})")


def open_for_search(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    """The catalogue read-only and locked down, with the fts extension's stemmer loaded."""
    from catalog.query import read_only_connection
    return read_only_connection(db_path, before_lock=_prepare)


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    load_fts(con)
    con.execute(NO_ARROW_LAMBDAS)
    # a query reads a few thousand postings: one thread answered in half the time of two
    # (p50 9 against 23 ms on the real catalogues, on the shared machine)
    con.execute("SET threads = 1")
    # the hits' documents are read by their docids when the hash join hands the scan an IN
    # filter, which it does for up to this many hits (DuckDB's default: 50); the title tiers
    # read the titles of the hits that can hold the query's words, often no more than RERANK
    # (200 of 100,000 documents: 4.8 ms so, 7.1 ms by a whole scan)
    con.execute(f"SET dynamic_or_filter_threshold = {RERANK}")
