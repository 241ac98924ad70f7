-- Records harvest (issue 5). column_profiles is also created by 0003 (overlap); the two
-- definitions are identical, so whichever migration runs first makes it.
CREATE TABLE IF NOT EXISTS column_profiles (
    dataset_uid VARCHAR, column_name VARCHAR, type VARCHAR, row_count BIGINT, null_count BIGINT,
    distinct_count BIGINT, min_value VARCHAR, max_value VARCHAR, top_values VARCHAR[], profiled_at TIMESTAMPTZ,
    PRIMARY KEY(dataset_uid, column_name));

-- The last complete records pull of each dataset: where its Parquet is, and what an
-- incremental pull resumes from. A failed pull leaves this row (and the folder) as it was.
CREATE TABLE IF NOT EXISTS record_pulls (
    dataset_uid   VARCHAR PRIMARY KEY,
    portal_id     VARCHAR NOT NULL,
    source_id     VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,    -- the dataset's folder, relative to the records root
    row_count     BIGINT NOT NULL,
    column_count  INTEGER NOT NULL,
    bytes         BIGINT NOT NULL,
    mode          VARCHAR NOT NULL,    -- full or incremental
    watermark     VARCHAR,             -- e.g. Socrata's max :updated_at, for the next incremental pull
    run_id        VARCHAR,
    pulled_at     TIMESTAMPTZ NOT NULL,
    seconds       DOUBLE
);

ALTER TABLE harvest_runs ADD COLUMN IF NOT EXISTS records_pulled INTEGER DEFAULT 0;
ALTER TABLE harvest_runs ADD COLUMN IF NOT EXISTS records_failed INTEGER DEFAULT 0;
ALTER TABLE harvest_runs ADD COLUMN IF NOT EXISTS record_rows BIGINT DEFAULT 0;
