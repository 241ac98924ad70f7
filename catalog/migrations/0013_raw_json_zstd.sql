-- raw_records' raw entry and details compressed with zstd, not FSST: at 100,000 synthetic
-- entries (~2.8 KB of JSON each) the raw loads cost half the CPU and the column takes a
-- sixteenth of the blocks (JSON entries repeat runs far longer than FSST's 8-byte
-- symbols; the synthetic ones more than real ones). zstd for strings needs the storage
-- version that catalog.store.connect attaches the catalogue with (STORAGE_VERSION): under
-- an older one DuckDB stores these columns uncompressed. The table is copied, as migration
-- 0005 did.
CREATE TABLE raw_records_zstd (
    uid        VARCHAR NOT NULL,
    raw_hash   VARCHAR NOT NULL,
    portal_id  VARCHAR NOT NULL,
    source_id  VARCHAR NOT NULL,
    raw        VARCHAR NOT NULL USING COMPRESSION zstd,
    details    VARCHAR USING COMPRESSION zstd,
    fetched_at TIMESTAMPTZ NOT NULL
);
INSERT INTO raw_records_zstd SELECT uid, raw_hash, portal_id, source_id, raw, details, fetched_at FROM raw_records;
DROP TABLE raw_records;
ALTER TABLE raw_records_zstd RENAME TO raw_records;
