-- GET /jobs?q= matches words *starting with* each word of the query. Asked as a prefix
-- ('cat':*), the GIN index gathers every entry starting with it into a bitmap of its own before
-- intersecting: at a million jobs, 73-98 ms for three common words against 7-10 ms for the same
-- words as exact lexemes ('cat' | 'cats'), before a row is read (issue 30). So the search first
-- turns each prefix into the words that exist (this table, a few thousand rows at most for a
-- shop's vocabulary), and asks the index for exact lexemes; a prefix with too many words
-- (services/api/queries.py) is still asked as a prefix.
--
-- Every word of every job's search_doc is here from the transaction that wrote it: a word
-- missing would make its jobs unfindable. Words are never removed (a word whose jobs are gone
-- only costs a lookup that finds nothing).
CREATE TABLE IF NOT EXISTS search_words (
    word TEXT COLLATE "C" PRIMARY KEY
);

CREATE OR REPLACE FUNCTION pod_search_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Looked up before inserting: nearly every word of a new job is known already, and a
    -- read costs less than a speculative insert that conflicts.
    INSERT INTO search_words (word)
    SELECT w FROM unnest(tsvector_to_array(NEW.search_doc)) AS w
    WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.word = w)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS jobs_search_words_ins ON jobs;
CREATE TRIGGER jobs_search_words_ins AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION pod_search_words();
DROP TRIGGER IF EXISTS jobs_search_words_upd ON jobs;
CREATE TRIGGER jobs_search_words_upd AFTER UPDATE ON jobs
    FOR EACH ROW WHEN (OLD.search_doc IS DISTINCT FROM NEW.search_doc)
    EXECUTE FUNCTION pod_search_words();

-- The words of the jobs already there (one pass over the column: seconds at a million jobs).
INSERT INTO search_words (word)
SELECT DISTINCT w FROM jobs, unnest(tsvector_to_array(search_doc)) AS w
ON CONFLICT DO NOTHING;
