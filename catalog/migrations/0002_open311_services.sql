-- The service list of every Open311 endpoint (kept in its raw record), one row per service
-- type, to label 311 data across cities. A view, so it always matches the catalogue.
CREATE VIEW open311_services AS
SELECT d.portal_id,
       d.city,
       s.service_code,
       s.service_name,
       s.description,
       s."group" AS service_group,
       s.keywords,
       s.type,
       s.metadata
FROM datasets d
JOIN raw_records r ON r.uid = d.uid AND r.raw_hash = d.raw_hash
CROSS JOIN unnest(from_json(r.raw -> '$.services',
    '[{"service_code": "VARCHAR", "service_name": "VARCHAR", "description": "VARCHAR", "group": "VARCHAR",
       "keywords": "VARCHAR", "type": "VARCHAR", "metadata": "VARCHAR"}]')) AS t(s)
WHERE d.portal_kind = 'open311' AND d.deleted_at IS NULL;
