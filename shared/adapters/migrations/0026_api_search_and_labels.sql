-- Every filter the API takes is served by an index (issue 25): a few clients with a filter
-- that matches nothing must not make PostgreSQL read a million rows each.

-- GET /jobs?q=: the start of the job id (LIKE 'x%' needs pattern ops under a non-C collation) ...
CREATE INDEX IF NOT EXISTS jobs_id_prefix_idx ON jobs (job_id text_pattern_ops);
-- ... or words of the theme, niche, style and prompt starting with the query's words (full-text,
-- core PostgreSQL: no extension, nothing a non-superuser role cannot create). The expression is
-- services/api/queries.py's _SEARCH_DOCUMENT, character for character, or the index is unused.
CREATE INDEX IF NOT EXISTS jobs_search_idx ON jobs USING gin (
    to_tsvector('simple', theme || ' ' || niche || ' ' || style || ' ' || COALESCE(prompt, ''))
);

-- GET /events?type= and ?level=: from the stream's position on, in its delivery order (xid, seq:
-- migration 0025), by type or level.
CREATE INDEX IF NOT EXISTS job_events_type_xid_seq_idx ON job_events (type, xid, seq);
CREATE INDEX IF NOT EXISTS job_events_level_xid_seq_idx ON job_events (level, xid, seq);

-- The deployment's own secret that callers' labels (submitted_by) are HMACs under: a label
-- names a key within this deployment and cannot be linked to the same key elsewhere nor tested
-- against a guessed key. gen_random_uuid() is core and drawn from a strong source (2 x 122 bits).
CREATE TABLE IF NOT EXISTS api_label_secret (
    one         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO api_label_secret (secret)
VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
ON CONFLICT DO NOTHING;
-- Labels stored by older versions (an unsalted digest of the key) are replaced when the API
-- starts (services/api/labels.py); these partial indexes hold only such rows, so once they are
-- gone that check costs a lookup in an empty index.
CREATE INDEX IF NOT EXISTS jobs_legacy_label_idx ON jobs (submitted_by)
    WHERE submitted_by ~ '^key-[0-9a-f]{16}$';
CREATE INDEX IF NOT EXISTS job_events_legacy_label_idx ON job_events ((data->>'submitted_by'))
    WHERE type = 'job.requested' AND data->>'submitted_by' ~ '^key-[0-9a-f]{16}$';
CREATE INDEX IF NOT EXISTS api_idempotency_legacy_idx ON api_idempotency (key)
    WHERE key ~ '^key-[0-9a-f]{16}:';
