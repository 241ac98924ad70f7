-- What each harvest did to each dataset (catalog.events): one row per dataset per run in which
-- something happened to it, written by the portal's merge in its transaction. The catalogue
-- keeps only a dataset's current version; this keeps when it was new, changed (and which mapped
-- fields), missing, removed, listed again or back. No key nor index: a table that only grows
-- would hold its index in memory as it grows; (run_id, uid) is unique by construction.
-- It starts empty: the history of the runs before it is not known.
CREATE TABLE IF NOT EXISTS dataset_events (
    run_id          VARCHAR,               -- harvest_runs.run_id (a retire run's too)
    portal_id       VARCHAR NOT NULL,
    uid             VARCHAR NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,  -- the merge's time: the dataset's last_changed, deleted_at...
    event           VARCHAR NOT NULL,      -- new, changed, missing, listed_again, removed, back
    raw_hash_before VARCHAR,               -- the stored version before the run (NULL: new)
    raw_hash_after  VARCHAR NOT NULL,      -- the stored version after it
    changed_fields  VARCHAR[]              -- datasets columns, then distributions / columns, whose
                                           -- mapped value differs (NULL: nothing compared)
);
