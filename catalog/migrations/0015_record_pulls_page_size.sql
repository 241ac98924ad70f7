-- The server's own page size as a records pull learned it (Open311 GeoReport v2 says none):
-- the next pull starts from it rather than learning it again, a few requests a night per
-- endpoint. NULL: none learned (every other kind, which asks the page size it wants).
ALTER TABLE record_pulls ADD COLUMN IF NOT EXISTS page_size INTEGER;
