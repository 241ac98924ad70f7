-- raw_records keeps the raw entry and its details as the compact JSON text the harvest
-- wrote (orjson, from parsed JSON: always valid JSON), in VARCHAR columns: a JSON column
-- parsed every entry again to check it as it was inserted, a third of the raw load's CPU
-- (1.1 s at 100,000 datasets). JSON functions and operators read them as before
-- (raw->>'title'), but what needs the JSON type now needs a cast first: dot access
-- ((raw::JSON).title, not raw.title), CAST(raw::JSON AS MAP(...)), typeof() says VARCHAR.
-- The README's raw_records row says so.
ALTER TABLE raw_records ALTER raw TYPE VARCHAR;
ALTER TABLE raw_records ALTER details TYPE VARCHAR;
