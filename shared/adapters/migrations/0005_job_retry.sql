-- The retrying state: a job shows its pending attempt, when it is due and the last error.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS retry_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS next_retry_at TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS retrying_since TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS last_error TEXT;
