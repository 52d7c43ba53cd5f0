-- Sales channels: each product of a job is published to each of the job's channels (printify,
-- shopify, etsy), each by its own publisher consumer group. `listings` holds one row per
-- (product, channel) as the monitor folds it; `jobs.channels` what the job asked for (NULL:
-- printify alone, jobs from before channels).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS channels TEXT[];

CREATE TABLE IF NOT EXISTS listings (
    job_id        TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    image_index   INTEGER NOT NULL,
    product_type  TEXT NOT NULL,
    channel       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('publishing', 'published', 'publish_failed')),
    -- The channel's id and URL of the listing; for printify, the shop's own sales channel too.
    external_id   TEXT,
    url           TEXT,
    sales_channel TEXT,
    error         TEXT,
    updated_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    PRIMARY KEY (job_id, image_index, product_type, channel)
);

-- The publications folded before this migration were all through Printify.
INSERT INTO listings (job_id, image_index, product_type, channel, status, external_id, error,
                      updated_at, published_at)
SELECT job_id, image_index, product_type, 'printify', status, external_id, error, created_at,
       published_at
FROM products WHERE status IN ('publishing', 'published', 'publish_failed')
ON CONFLICT DO NOTHING;

-- Publishing to a channel of our own is a ledger step per channel: publish:<channel>.
ALTER TABLE side_effects DROP CONSTRAINT IF EXISTS side_effects_step_check;
ALTER TABLE side_effects ADD CONSTRAINT side_effects_step_check
    CHECK (step IN ('upload', 'create', 'price', 'publish') OR step ~ '^publish:[a-z][a-z0-9_]*$');
