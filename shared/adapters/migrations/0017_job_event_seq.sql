-- The order in which job events were folded, for live streams (GET /jobs/{id}/events, GET
-- /events): a stream resumes after the last sequence number its client saw (Last-Event-ID).
ALTER TABLE job_events ADD COLUMN IF NOT EXISTS seq BIGSERIAL;
CREATE UNIQUE INDEX IF NOT EXISTS job_events_seq_idx ON job_events (seq);
CREATE INDEX IF NOT EXISTS job_events_job_seq_idx ON job_events (job_id, seq);
