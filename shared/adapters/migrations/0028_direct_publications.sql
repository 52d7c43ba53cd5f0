-- Publications of the direct channels too: TikTok reviews a new product (an audit of minutes
-- to days) and Meta's catalog takes a batch and finishes it later, so their publishers hand a
-- pending publication to a watcher as the printify channel's does. One row per channel now:
-- `channel` is the engine's channel (its publisher's consumer group, which alone claims its
-- rows); `sales_channel` stays the one asked for the listing (the Printify shop's, or the
-- direct channel itself). `pending_ref` is what the channel checks it by (Meta's batch handle,
-- TikTok's product id).
ALTER TABLE publications ADD COLUMN IF NOT EXISTS channel TEXT NOT NULL DEFAULT 'printify';
ALTER TABLE publications ADD COLUMN IF NOT EXISTS pending_ref TEXT;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = 'publications'::regclass AND c.contype = 'p' AND a.attname = 'channel'
    ) THEN
        ALTER TABLE publications DROP CONSTRAINT IF EXISTS publications_pkey;
        ALTER TABLE publications
            ADD PRIMARY KEY (job_id, image_index, product_type, channel);
    END IF;
END $$;

DROP INDEX IF EXISTS publications_due_idx;
CREATE INDEX IF NOT EXISTS publications_channel_due_idx
    ON publications (channel, next_check_at) WHERE state = 'pending';
