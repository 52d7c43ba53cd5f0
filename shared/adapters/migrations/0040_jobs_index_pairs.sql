-- jobs had each of its listing indexes twice (issue 30): 0001's (created_at DESC, job_id) and
-- (status, created_at DESC, job_id), and 0002's keyset pair, which differ only in job_id's
-- direction. Every write to jobs (a fold's status change, a submit) paid for four indexes where
-- two serve every read: GET /jobs orders by (created_at DESC, job_id DESC), the keyset pair's
-- exact order, and the review queue's (created_at, job_id) is the same index read backwards.
DROP INDEX IF EXISTS jobs_created_idx;
DROP INDEX IF EXISTS jobs_status_created_idx;
