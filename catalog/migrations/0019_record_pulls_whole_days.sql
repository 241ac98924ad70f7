-- Whether the server was read by whole days (Open311: one shown not to read the times of
-- start_date/end_date), as the last records pull found it: the next pull reads whole days from its
-- start rather than meeting the check and starting over, and checks once that the server still
-- ignores the times (one fixed since is read by times again). NULL: not known (every other kind).
ALTER TABLE record_pulls ADD COLUMN IF NOT EXISTS whole_days BOOLEAN;
