-- raw_records loses its primary key: maintaining the (uid, raw_hash) index cost as much as
-- writing the raw JSON itself. A raw version is written only when no dataset carries it
-- already, and versions no dataset points at are pruned before and after each portal's
-- harvest, so one row per (uid, raw_hash) still holds.
CREATE TABLE raw_records_unkeyed (
    uid        VARCHAR NOT NULL,
    raw_hash   VARCHAR NOT NULL,
    portal_id  VARCHAR NOT NULL,
    source_id  VARCHAR NOT NULL,
    raw        JSON NOT NULL,
    details    JSON,
    fetched_at TIMESTAMPTZ NOT NULL
);
INSERT INTO raw_records_unkeyed SELECT DISTINCT ON (uid, raw_hash) * FROM raw_records;
DROP TABLE raw_records;
ALTER TABLE raw_records_unkeyed RENAME TO raw_records;
