-- jobs had each of its listing indexes twice (issue 30): 0001's (created_at DESC, job_id) and
-- (status, created_at DESC, job_id), and 0002's keyset pair, which differ only in job_id's
-- direction. Every write to jobs (a fold's status change, a submit) paid for four indexes where
-- two serve every read: GET /jobs orders by (created_at DESC, job_id DESC), the keyset pair's
-- exact order, and the review queue's (created_at, job_id) is the same index read backwards.
DROP INDEX IF EXISTS jobs_created_idx;
DROP INDEX IF EXISTS jobs_status_created_idx;

-- GET /jobs?q=: the searched document stored with the row (a generated column) rather than
-- computed again. The GIN index on the expression answers which rows match, but PostgreSQL
-- rechecks each matching row against the query, and with the expression index that recheck
-- ran to_tsvector over the row's four columns again: at 100k jobs, 22 ms of a 35 ms search for
-- 196 rows on a busy machine, paid twice per request (the count, then the page). Adding the
-- column rewrites the table once (seconds per hundred thousand jobs, under an exclusive lock).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS search_doc tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', theme || ' ' || niche || ' ' || style || ' ' || COALESCE(prompt, ''))
) STORED;
CREATE INDEX IF NOT EXISTS jobs_search_doc_idx ON jobs USING gin (search_doc);
DROP INDEX IF EXISTS jobs_search_idx;
