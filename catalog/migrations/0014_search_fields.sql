-- Search ranks with BM25F (catalog/search.py): each field's occurrences are normalised by
-- that field's length against its own average, so a long description no longer pulls down
-- a dataset whose title is the query. A posting keeps its term's occurrences per field and
-- its document's length per field; a document its lengths per field; the state each field's
-- average length. The index starts empty: the next harvest builds it whole (until then
-- `civicat search` asks for one).
DROP TABLE search_postings;
CREATE TABLE search_postings (
    termid              BIGINT NOT NULL,
    docid               BIGINT NOT NULL,
    tf_title            INTEGER NOT NULL,   -- the term's occurrences in each field
    tf_keywords         INTEGER NOT NULL,
    tf_description      INTEGER NOT NULL,
    tf_column_names     INTEGER NOT NULL,
    tf_city             INTEGER NOT NULL,
    length_title        INTEGER NOT NULL,   -- the document's indexed terms in each field
    length_keywords     INTEGER NOT NULL,
    length_description  INTEGER NOT NULL,
    length_column_names INTEGER NOT NULL,
    length_city         INTEGER NOT NULL
);

DROP INDEX IF EXISTS search_documents_docid;
DROP TABLE search_documents;
CREATE TABLE search_documents (
    docid               BIGINT NOT NULL,
    uid                 VARCHAR NOT NULL,
    portal_id           VARCHAR NOT NULL,
    city                VARCHAR,
    themes              VARCHAR[],
    asset_type          VARCHAR,
    title               VARCHAR NOT NULL,
    length              BIGINT NOT NULL,    -- indexed terms in all fields
    length_title        BIGINT NOT NULL,    -- and in each
    length_keywords     BIGINT NOT NULL,
    length_description  BIGINT NOT NULL,
    length_column_names BIGINT NOT NULL,
    length_city         BIGINT NOT NULL,
    city_key            VARCHAR,            -- lower(city), for --city
    theme_keys          VARCHAR[],          -- the themes lower-cased, for --theme
    last_changed        TIMESTAMPTZ         -- of the dataset version indexed
);
CREATE UNIQUE INDEX search_documents_docid ON search_documents (docid);

DROP TABLE search_state;
CREATE TABLE search_state (
    built_at           TIMESTAMPTZ NOT NULL,
    documents          BIGINT NOT NULL,
    fingerprint        VARCHAR NOT NULL,    -- of the datasets it was built from: unchanged, no rebuild
    updated            BIGINT,              -- documents indexed in place since the last whole build
    avg_title          DOUBLE,              -- each field's average length over the documents
    avg_keywords       DOUBLE,
    avg_description    DOUBLE,
    avg_column_names   DOUBLE,
    avg_city           DOUBLE
);

DELETE FROM search_terms;
