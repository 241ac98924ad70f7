-- Comparable datasets across cities (`civicat overlap`). Both tables are replaced whole
-- by each run; computed_at says when.
CREATE TABLE overlap_pairs (
    uid_a             VARCHAR NOT NULL,
    uid_b             VARCHAR NOT NULL,      -- uid_a < uid_b; the two are of different cities
    score             DOUBLE NOT NULL,       -- 0..1: weighted mean of the signals x shape_factor
    title_score       DOUBLE,                -- per-signal scores, 0..1; NULL: missing on a side
    description_score DOUBLE,
    keywords_score    DOUBLE,
    columns_score     DOUBLE,
    values_score      DOUBLE,                -- profiled top values (column_profiles)
    embedding_score   DOUBLE,                -- only with `overlap --embeddings`
    shape_factor      DOUBLE NOT NULL,       -- < 1: boundary file vs records, differing asset types
    explanation       VARCHAR NOT NULL,
    computed_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (uid_a, uid_b)
);

CREATE TABLE overlap_groups (
    group_id    INTEGER NOT NULL,
    uid         VARCHAR NOT NULL PRIMARY KEY, -- a dataset is in at most one group
    label       VARCHAR NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);

-- The optional embedding signal's vectors (`civicat overlap --embeddings`), by a hash of
-- the embedded text and the model: unchanged datasets are not embedded again.
CREATE TABLE overlap_embeddings (
    text_hash VARCHAR NOT NULL,
    model     VARCHAR NOT NULL,
    vector    FLOAT[] NOT NULL,
    PRIMARY KEY (text_hash, model)
);
