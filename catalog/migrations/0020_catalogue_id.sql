-- The catalogue's id, made once by the migration (a catalogue made before it gets one on its next
-- writer's open): the files beside the catalogue (http_cache/, records/, .records-staging/) belong to
-- its folder, and the folder records whose they are by this id (catalog.folder), not by the file's
-- name: a catalogue renamed, or restored from a backup copy, is still the one they belong to.
CREATE TABLE IF NOT EXISTS catalogue_identity (id VARCHAR NOT NULL);
INSERT INTO catalogue_identity SELECT CAST(uuid() AS VARCHAR) WHERE NOT EXISTS (SELECT 1 FROM catalogue_identity);
