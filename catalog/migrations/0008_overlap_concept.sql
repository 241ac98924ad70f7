-- The concept signal of the overlap score (catalog/overlap/concepts.py): the kind of record
-- both datasets hold; NULL unless both name one.
ALTER TABLE overlap_pairs ADD COLUMN concept_score DOUBLE;
