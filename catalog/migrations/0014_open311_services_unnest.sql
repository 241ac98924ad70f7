-- open311_services unnests each endpoint's services in its select list, not in a lateral join:
-- DuckDB's lateral unnest carried the raw record (all its services' JSON) along with each
-- service it gave, memory growing as the square of the list: 2,000 services (364 KB of JSON)
-- did not fit the harvest connection's 122 MiB, 10,000 (the most kept) would take GBs. Read
-- in the select list, 10,000 services take 26 ms under that limit. Same columns, same rows.
CREATE OR REPLACE VIEW open311_services AS
SELECT e.portal_id,
       e.city,
       s.service_code,
       s.service_name,
       s.description,
       s."group" AS service_group,
       s.keywords,
       s.type,
       s.metadata
FROM (SELECT d.portal_id,
             d.city,
             unnest(from_json(r.raw -> '$.services',
                 '[{"service_code": "VARCHAR", "service_name": "VARCHAR", "description": "VARCHAR", "group": "VARCHAR",
                    "keywords": "VARCHAR", "type": "VARCHAR", "metadata": "VARCHAR"}]')) AS s
      FROM datasets d
      JOIN raw_records r ON r.uid = d.uid AND r.raw_hash = d.raw_hash
      WHERE d.portal_kind = 'open311' AND d.deleted_at IS NULL) AS e;
