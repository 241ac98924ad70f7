-- Full-text search (`civicat search`): a BM25 index over title, description, keywords,
-- column names and city of every dataset not deleted. Rebuilt whole, in one transaction,
-- at the end of each harvest that changed the catalogue (catalog/search.py).
CREATE TABLE search_documents (
    docid      BIGINT NOT NULL,
    uid        VARCHAR NOT NULL,
    portal_id  VARCHAR NOT NULL,
    city       VARCHAR,
    themes     VARCHAR[],
    asset_type VARCHAR,
    title      VARCHAR NOT NULL,
    length     BIGINT NOT NULL,         -- indexed terms in all fields
    city_key   VARCHAR,                 -- lower(city), for --city
    theme_keys VARCHAR[]                -- the themes lower-cased, for --theme
);

CREATE TABLE search_terms (
    termid BIGINT NOT NULL,
    term   VARCHAR NOT NULL,            -- stemmed (Porter), lower case, accents stripped
    df     BIGINT NOT NULL              -- documents holding the term
);

-- One row per (term, document), sorted by term so a query reads only its terms' row groups.
CREATE TABLE search_postings (
    termid     BIGINT NOT NULL,
    docid      BIGINT NOT NULL,
    tf_weight  DOUBLE NOT NULL          -- BM25's saturated, length-normalised term frequency
);

CREATE TABLE search_state (
    built_at    TIMESTAMPTZ NOT NULL,
    documents   BIGINT NOT NULL,
    fingerprint VARCHAR NOT NULL         -- of the datasets it was built from: unchanged, no rebuild
);

CREATE UNIQUE INDEX search_documents_docid ON search_documents (docid);
