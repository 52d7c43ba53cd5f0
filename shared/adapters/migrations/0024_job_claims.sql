-- A job id belongs to its first request (issue 25). Whoever sees a job.requested first (the API
-- when it accepts the job, else the monitor's fold or the generator) claims the id with a digest
-- of the request (shared.contract.events.JobRequestedPayload.digest); the same request again is a
-- duplicate, another one under the same id is refused ("job id in use").
CREATE TABLE IF NOT EXISTS job_claims (
    job_id         TEXT PRIMARY KEY,
    request_digest TEXT NOT NULL,
    -- The event that claimed it: its redeliveries and replays are the owner, another event with
    -- the same request is a duplicate. NULL for a job from before claims: any event of its
    -- request is the owner.
    event_id       UUID,
    claimed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Jobs from before claims keep their ids: claimed by the request they hold. The digest is the
-- application's (a canonical form of the payload with today's defaults), so it is worked out
-- from the stored request the first time the job's id is claimed again (shared.adapters.store.job_claims).
INSERT INTO job_claims (job_id, request_digest, event_id, claimed_at)
SELECT job_id, 'legacy', NULL, created_at FROM jobs WHERE request IS NOT NULL
ON CONFLICT (job_id) DO NOTHING;

-- An event id is unique within its job, not across jobs: output ids follow from input ids that
-- /events shows, so an id recorded first under another job must not make the real event look
-- like a duplicate of it (event-id squatting).
ALTER TABLE job_events DROP CONSTRAINT IF EXISTS job_events_pkey;
ALTER TABLE job_events ADD PRIMARY KEY (job_id, event_id);
