-- Live streams that never skip an entry, woken by the database instead of polling.
--
-- `seq` is taken at INSERT but a row becomes visible at COMMIT, so with two writers (two
-- monitors, a replay) a row can appear below a `seq` a stream has already passed. Streams now
-- follow (xid, seq): the writing transaction's id, then seq. A row is handed out only once its
-- xid is below the oldest transaction still running (pg_snapshot_xmin), i.e. once no
-- transaction that could still commit a row before it in that order is left; every later row
-- gets a higher xid, so a position (xid, seq) is never overtaken.
--
-- A constant default first: existing rows read as xid 1 (ordered among themselves by seq)
-- without rewriting the table; new rows then take their transaction's id.
ALTER TABLE job_events ADD COLUMN IF NOT EXISTS xid xid8 NOT NULL DEFAULT '1';
ALTER TABLE job_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS job_events_xid_seq_idx ON job_events (xid, seq);
CREATE INDEX IF NOT EXISTS job_events_job_xid_seq_idx ON job_events (job_id, xid, seq);
-- Superseded by (job_id, xid, seq): one index fewer for every insert to maintain.
DROP INDEX IF EXISTS job_events_job_seq_idx;

-- One notification per job written, sent at COMMIT (never for a rolled-back write); the API's
-- one listening connection wakes that job's streams and the all-jobs streams.
CREATE OR REPLACE FUNCTION pod_notify_job_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pod_job_events', job_id) FROM (SELECT DISTINCT job_id FROM added) AS j;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS job_events_notify ON job_events;
CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION pod_notify_job_events();

-- A job's stream ends when the job does, which may come without a new entry in its log.
CREATE OR REPLACE FUNCTION pod_notify_job_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pod_job_events', NEW.job_id);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS jobs_notify_ended ON jobs;
CREATE TRIGGER jobs_notify_ended AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'partial', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION pod_notify_job_ended();
