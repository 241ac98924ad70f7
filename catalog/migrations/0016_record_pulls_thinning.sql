-- How much of an answer cut at its page size the server leaves out (Open311: a server that
-- drops private requests after cutting), as a records pull learned it: the next pull takes an
-- answer that far under the page size as possibly cut, not a fixed tenth. NULL: not learned.
ALTER TABLE record_pulls ADD COLUMN IF NOT EXISTS thinning DOUBLE;
