-- What the next night needs of each page of the latest committed listing to know it without
-- reading it: the request that gave it (JSON, parameters in the order they were sent), the
-- request after it (NULL after the last), the total the page reported, and the source ids it
-- listed. Requests along this chain are sent several at a time; a page answered with the very
-- body whose digest is in page_key (a 304) is then neither read nor parsed, and its datasets
-- are marked seen from `ids` in the merge. `ids` is NULL for a page whose entries need a
-- details lookup (its body is read), and for pages stored before this migration.
ALTER TABLE listing_pages ADD COLUMN params VARCHAR;
ALTER TABLE listing_pages ADD COLUMN next_params VARCHAR;
ALTER TABLE listing_pages ADD COLUMN total BIGINT;
ALTER TABLE listing_pages ADD COLUMN ids VARCHAR[];
