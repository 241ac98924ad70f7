-- The catalogue an analyst can rely on (SPEC "Store"). Timestamps are UTC instants.
CREATE TABLE datasets (
    uid                 VARCHAR PRIMARY KEY,   -- portal_id:source_id
    portal_id           VARCHAR NOT NULL,
    city                VARCHAR,
    portal_kind         VARCHAR NOT NULL,
    source_id           VARCHAR NOT NULL,
    identifier          VARCHAR,
    title               VARCHAR NOT NULL,
    description         VARCHAR,               -- plain text
    keywords            VARCHAR[],
    themes              VARCHAR[],
    publisher           VARCHAR,
    contact_name        VARCHAR,
    contact_email       VARCHAR,
    issued              TIMESTAMPTZ,
    modified            TIMESTAMPTZ,
    accrual_periodicity VARCHAR,               -- ISO 8601 repeating duration, irregular or unknown
    license             VARCHAR,
    access_level        VARCHAR,
    landing_page        VARCHAR,
    spatial             VARCHAR,
    temporal_start      TIMESTAMPTZ,
    temporal_end        TIMESTAMPTZ,
    asset_type          VARCHAR,
    parent_uid          VARCHAR,
    row_count           BIGINT,
    first_seen          TIMESTAMPTZ NOT NULL,
    last_seen           TIMESTAMPTZ NOT NULL,
    last_changed        TIMESTAMPTZ NOT NULL,
    deleted_at          TIMESTAMPTZ,
    raw_hash            VARCHAR NOT NULL
);

CREATE TABLE distributions (
    dataset_uid  VARCHAR NOT NULL,
    position     INTEGER NOT NULL,
    title        VARCHAR,
    format       VARCHAR,
    media_type   VARCHAR,
    download_url VARCHAR,
    access_url   VARCHAR
);

CREATE TABLE columns (
    dataset_uid VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    name        VARCHAR,
    field_name  VARCHAR,
    type        VARCHAR NOT NULL,  -- text, integer, number, boolean, date, datetime, point, geometry, url, other
    source_type VARCHAR,
    description VARCHAR
);

-- The listing entry as the portal gave it, and what was fetched beside it, per version:
-- a dataset's current raw record is the one whose raw_hash it carries.
CREATE TABLE raw_records (
    uid        VARCHAR NOT NULL,
    raw_hash   VARCHAR NOT NULL,
    portal_id  VARCHAR NOT NULL,
    source_id  VARCHAR NOT NULL,
    raw        JSON NOT NULL,
    details    JSON,
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (uid, raw_hash)
);

-- One row per portal per run.
CREATE TABLE harvest_runs (
    run_id        VARCHAR NOT NULL,
    portal_id     VARCHAR NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    status        VARCHAR NOT NULL,    -- running, ok, failed
    seen          INTEGER DEFAULT 0,
    new           INTEGER DEFAULT 0,
    changed       INTEGER DEFAULT 0,
    unchanged     INTEGER DEFAULT 0,
    removed       INTEGER DEFAULT 0,
    errors        INTEGER DEFAULT 0,
    warnings      INTEGER DEFAULT 0,
    duplicates    INTEGER DEFAULT 0,
    listing_complete BOOLEAN,
    requests      INTEGER DEFAULT 0,
    retries       INTEGER DEFAULT 0,
    not_modified  INTEGER DEFAULT 0,
    bytes         BIGINT DEFAULT 0,
    seconds       DOUBLE,
    error_type    VARCHAR,
    error_message VARCHAR,
    PRIMARY KEY (run_id, portal_id)
);

CREATE TABLE harvest_errors (
    run_id      VARCHAR NOT NULL,
    portal_id   VARCHAR NOT NULL,
    source_id   VARCHAR,
    stage       VARCHAR NOT NULL,     -- list, fetch, map, validate, store
    error_type  VARCHAR NOT NULL,
    severity    VARCHAR NOT NULL,     -- error, warning
    message     VARCHAR NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL
);
