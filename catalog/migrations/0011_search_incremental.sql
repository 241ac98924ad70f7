-- The search index is updated in place when few datasets changed (catalog/search.py), so
-- nothing in it may depend on all documents at once: a posting keeps its term frequency
-- and its document's length, and BM25's length normalisation (by the average length,
-- kept in search_state) is applied at query time; a document remembers which version of
-- its dataset it indexes. The index starts empty: the next harvest builds it whole.
DROP TABLE search_postings;
CREATE TABLE search_postings (
    termid BIGINT NOT NULL,
    docid  BIGINT NOT NULL,
    tf     DOUBLE NOT NULL,             -- field-weighted occurrences of the term in the document
    length BIGINT NOT NULL              -- the document's indexed terms (search_documents.length)
);

-- the tables gain a column, empty: copied as the whole build writes them (the build
-- creates the docid index again); a table emptied cannot be altered in the same transaction
DROP INDEX search_documents_docid;
CREATE TABLE search_documents_next AS
SELECT *, NULL::TIMESTAMPTZ AS last_changed     -- of the dataset version indexed
FROM search_documents WHERE false;
DROP TABLE search_documents;
ALTER TABLE search_documents_next RENAME TO search_documents;

CREATE TABLE search_state_next AS
SELECT *, NULL::DOUBLE AS avgdl,                -- average length of the documents
          NULL::BIGINT AS updated               -- documents indexed in place since the last whole build
FROM search_state WHERE false;
DROP TABLE search_state;
ALTER TABLE search_state_next RENAME TO search_state;

DELETE FROM search_terms;
