-- The pages of each portal's latest committed listing, by the digest of their body (and
-- the mapping that read them). Every entry of such a page is stored as it is on the page,
-- so when the next night gets the same page back (most often a 304), its entries are
-- known unchanged without hashing each one.
CREATE TABLE listing_pages (
    portal_id VARCHAR NOT NULL,
    page_key  VARCHAR NOT NULL   -- '<kind>/<mapping version>/<portal settings>:<sha256 of the page body>'
);
