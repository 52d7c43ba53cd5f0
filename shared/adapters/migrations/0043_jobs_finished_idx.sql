-- The monitor's alert evaluation asks every ALERT_INTERVAL_S (10 s) for the jobs that finished
-- within its window (the failure rate, the failed jobs to name). With no index on finished_at
-- both queries read the whole of `jobs`: at a million jobs 410 ms each, 88k buffers (the whole
-- 690 MB table) through a 128 MB cache every 10 s, slowing every other statement (issue 30:
-- the submit and fold rates at a million jobs). Only finished jobs are indexed: a submit
-- (finished_at NULL) does not touch it.
CREATE INDEX IF NOT EXISTS jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
