-- Metrics as per-minute rollups, and alerts with one open row per condition.

-- One row per (metric, label set, minute). Counters and histograms add to their minute
-- (count, sum, min, max, and for histograms the per-bucket counts); gauges are sampled
-- periodically and keep their latest sample in `last`. `buckets` maps each upper bound
-- ("1", "5", ..., "+Inf") to the number of observations in that bucket (not cumulative).
CREATE TABLE IF NOT EXISTS metrics_minute (
    name        TEXT NOT NULL,
    labels      JSONB NOT NULL DEFAULT '{}'::jsonb,
    minute      TIMESTAMPTZ NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'counter'
                CHECK (kind IN ('counter', 'histogram', 'gauge')),
    count       BIGINT NOT NULL DEFAULT 0,
    sum         DOUBLE PRECISION NOT NULL DEFAULT 0,
    min         DOUBLE PRECISION,
    max         DOUBLE PRECISION,
    last        DOUBLE PRECISION,
    buckets     JSONB,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, labels, minute)
);
-- GET /metrics?name= reads a metric's latest minutes; retention deletes by minute.
CREATE INDEX IF NOT EXISTS metrics_minute_name_idx ON metrics_minute (name, minute DESC);
CREATE INDEX IF NOT EXISTS metrics_minute_minute_idx ON metrics_minute (minute);

-- A job's completion/failure is counted once: the fold's hook stamps the job when it records it.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS metrics_recorded_at TIMESTAMPTZ;

CREATE TABLE IF NOT EXISTS alerts (
    id             BIGSERIAL PRIMARY KEY,
    -- What the alert is about, e.g. 'worker_down:<instance>' or 'error_rate:all'.
    condition_key  TEXT NOT NULL,
    type           TEXT NOT NULL,
    severity       TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message        TEXT NOT NULL,
    details        JSONB NOT NULL DEFAULT '{}'::jsonb,
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at    TIMESTAMPTZ,
    notified_at    TIMESTAMPTZ,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- One open alert per condition: a condition that fires again while open changes nothing, and
-- concurrent evaluators (several monitor instances) cannot open it twice.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_condition_idx
    ON alerts (condition_key) WHERE status = 'open';
-- GET /alerts lists newest first, optionally by severity or status.
CREATE INDEX IF NOT EXISTS alerts_created_idx ON alerts (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS alerts_status_created_idx ON alerts (status, created_at DESC, id DESC);
