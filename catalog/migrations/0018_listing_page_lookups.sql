-- The source ids on a listing page whose entries need a details lookup kept while the entry is
-- listed as stored (harvester.portals.base.PortalAdapter.lookup_kept_days: an ArcGIS Hub
-- feed's datasets with a FeatureServer layer). Such a page keeps its `ids` too, so the next
-- night that gets its very body back (a 304, or the same bytes) does not parse it: the entries
-- of the ids whose lookups are due that night are read from raw_records (the stored version's
-- entry is the page's: every entry of a kept page is stored as it is on it) and looked up; the
-- others are their stored versions. NULL: no entry on the page needs such a lookup, and for
-- the pages stored before this migration (their `ids` NULL: read once more, then kept so).
ALTER TABLE listing_pages ADD COLUMN lookups VARCHAR[];
