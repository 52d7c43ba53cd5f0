-- What the pool manager reported: instances that died (and whether they were restarted) and
-- scales. The monitor's alerts read it (worker_error, high_worker_errors, pool_scaled).
CREATE TABLE IF NOT EXISTS worker_events (
    event_id     UUID PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('exited', 'scaled')),
    service      TEXT NOT NULL,
    instance_id  TEXT,
    pool_id      TEXT NOT NULL,
    data         JSONB NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS worker_events_time_idx ON worker_events (kind, occurred_at DESC);
