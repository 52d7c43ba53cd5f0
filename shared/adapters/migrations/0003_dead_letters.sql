-- Dead letters as the monitor reads them off the stages' DLQ topics, for listing and replay.

-- One row per DLQ record; its Kafka coordinates make re-reading a DLQ topic a no-op.
-- `replay_topic` / `replay_value` are what a replay re-produces: the stage input the record
-- came from (a retry topic mapped back to the stage's main input) and the original bytes (for a
-- StageFailed record: its `input_event`, the input narrowed to what failed). Either may be NULL
-- when the record carries nothing replayable.
CREATE TABLE IF NOT EXISTS dead_letters (
    id               BIGSERIAL PRIMARY KEY,
    topic            TEXT NOT NULL,
    kafka_partition  INTEGER NOT NULL,
    kafka_offset     BIGINT NOT NULL,
    stage            TEXT NOT NULL,
    job_id           TEXT,
    error_class      TEXT NOT NULL,
    message          TEXT NOT NULL,
    retryable        BOOLEAN NOT NULL DEFAULT FALSE,
    original_topic   TEXT,
    replay_topic     TEXT,
    replay_value     BYTEA,
    headers          JSONB NOT NULL DEFAULT '{}'::jsonb,
    failed_at        TIMESTAMPTZ NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at      TIMESTAMPTZ,
    replay_count     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (topic, kafka_partition, kafka_offset)
);

-- GET /dlq orders by (failed_at DESC, id DESC), optionally filtered by one of these columns.
CREATE INDEX IF NOT EXISTS dead_letters_keyset_idx ON dead_letters (failed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS dead_letters_stage_idx
    ON dead_letters (stage, failed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS dead_letters_job_idx
    ON dead_letters (job_id, failed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS dead_letters_error_class_idx
    ON dead_letters (error_class, failed_at DESC, id DESC);
-- POST /dlq/replay by stage picks the letters not yet replayed.
CREATE INDEX IF NOT EXISTS dead_letters_pending_idx
    ON dead_letters (stage, failed_at, id) WHERE replayed_at IS NULL;
