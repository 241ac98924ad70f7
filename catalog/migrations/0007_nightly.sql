-- Nightly operation (issue 7).
-- A dataset missing from a complete listing is first only *missing*; it is marked
-- deleted_at once it has stayed missing for its portal's grace period (config
-- `deletion_grace_days`), and a dataset that comes back before that is simply listed again.
ALTER TABLE datasets ADD COLUMN missing_since TIMESTAMPTZ;

-- The latest complete listing of each portal. An unchanged dataset is not rewritten by a
-- run (no last_seen update per row): a dataset that is neither missing nor deleted was
-- seen by its portal's latest complete listing, listed_at here; its own last_seen is
-- brought up to that time when it goes missing.
CREATE TABLE portal_listings (
    portal_id VARCHAR PRIMARY KEY,
    listed_at TIMESTAMPTZ NOT NULL,
    datasets  INTEGER          -- unique ids the listing gave
);
INSERT INTO portal_listings
SELECT portal_id, max(last_seen), count(*) FROM datasets WHERE deleted_at IS NULL GROUP BY portal_id;
