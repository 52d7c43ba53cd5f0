-- The monitor's fold of the event stream, plus what the API must read back at once.

CREATE TABLE IF NOT EXISTS jobs (
    job_id                TEXT PRIMARY KEY,
    status                TEXT NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'processing', 'retrying', 'completed',
                                            'partial', 'failed')),
    priority              TEXT NOT NULL DEFAULT 'normal',
    theme                 TEXT NOT NULL,
    style                 TEXT NOT NULL,
    niche                 TEXT NOT NULL,
    prompt                TEXT,
    product_types         TEXT[] NOT NULL,
    image_count           INTEGER NOT NULL CHECK (image_count > 0),
    auto_publish          BOOLEAN NOT NULL DEFAULT FALSE,
    expected_products     INTEGER NOT NULL,
    expected_publications INTEGER NOT NULL,
    images_done           INTEGER NOT NULL DEFAULT 0,
    images_failed         INTEGER NOT NULL DEFAULT 0,
    products_done         INTEGER NOT NULL DEFAULT 0,
    products_failed       INTEGER NOT NULL DEFAULT 0,
    publications_done     INTEGER NOT NULL DEFAULT 0,
    publications_failed   INTEGER NOT NULL DEFAULT 0,
    error                 TEXT,
    submitted_by          TEXT,
    request               JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at            TIMESTAMPTZ,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at           TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS jobs_status_created_idx ON jobs (status, created_at DESC, job_id);
CREATE INDEX IF NOT EXISTS jobs_created_idx ON jobs (created_at DESC, job_id);

CREATE TABLE IF NOT EXISTS images (
    job_id       TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    image_index  INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    uri          TEXT NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    prompt       TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    tags         TEXT[] NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, image_index)
);

CREATE TABLE IF NOT EXISTS products (
    job_id        TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    image_index   INTEGER NOT NULL,
    product_type  TEXT NOT NULL,
    status        TEXT NOT NULL
                  CHECK (status IN ('created', 'published', 'failed', 'publish_failed')),
    product_id    TEXT,
    shop_id       TEXT,
    price_cents   INTEGER,
    title         TEXT,
    external_id   TEXT,
    error         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    PRIMARY KEY (job_id, image_index, product_type)
);

-- One row per event seen: the job's log. The event id makes re-folding a replayed topic a no-op.
CREATE TABLE IF NOT EXISTS job_events (
    event_id     UUID PRIMARY KEY,
    job_id       TEXT NOT NULL,
    type         TEXT NOT NULL,
    level        TEXT NOT NULL DEFAULT 'info',
    message      TEXT NOT NULL,
    producer     TEXT NOT NULL,
    data         JSONB NOT NULL DEFAULT '{}'::jsonb,
    topic        TEXT,
    kafka_partition INTEGER,
    kafka_offset BIGINT,
    occurred_at  TIMESTAMPTZ NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS job_events_job_idx ON job_events (job_id, occurred_at);

CREATE TABLE IF NOT EXISTS workers (
    instance_id     TEXT PRIMARY KEY,
    service         TEXT NOT NULL,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    partitions      TEXT[] NOT NULL DEFAULT '{}',
    in_flight       INTEGER NOT NULL DEFAULT 0,
    processed       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'running',
    started_at      TIMESTAMPTZ NOT NULL,
    last_heartbeat  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS workers_service_idx ON workers (service, last_heartbeat DESC);
