-- The API's idempotency ledger, and indexes for its keyset-paginated job listing.

-- One row per Idempotency-Key (scoped per API key when keys are configured). `produced` turns
-- true once the job's event is acknowledged by the broker; a row left false by a crash is
-- produced again with the same job id and event id on the next request with that key.
CREATE TABLE IF NOT EXISTS api_idempotency (
    key           TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    produced      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_idempotency_created_idx ON api_idempotency (created_at);

-- GET /jobs orders by (created_at DESC, job_id DESC); these match that order exactly.
CREATE INDEX IF NOT EXISTS jobs_keyset_idx ON jobs (created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_status_keyset_idx ON jobs (status, created_at DESC, job_id DESC);
