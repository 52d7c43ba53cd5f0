-- Publications waiting for the sales channel's confirmation (owned by the publisher).
--
-- Printify answers a publish request at once, but Etsy, Shopify, ... list the product minutes
-- later, or refuse it. The publisher records each such publication here and a watcher checks
-- the product until Printify shows its external listing (published), releases it without one
-- (failed) or `confirm_by` passes (failed). `event` is the ProductCreated that asked for it:
-- the confirmation is derived from it, and a failure carries it for a replay.
CREATE TABLE IF NOT EXISTS publications (
    job_id         TEXT NOT NULL,
    image_index    INTEGER NOT NULL,
    product_type   TEXT NOT NULL,
    product_id     TEXT NOT NULL,
    shop_id        TEXT NOT NULL,
    sales_channel  TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'published', 'failed')),
    event          JSONB NOT NULL,
    input_topic     TEXT,
    input_partition INTEGER,
    input_offset    BIGINT,
    requested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirm_by     TIMESTAMPTZ NOT NULL,
    checks         INTEGER NOT NULL DEFAULT 0,
    next_check_at  TIMESTAMPTZ NOT NULL,
    -- A watcher holds a row while it checks it; another takes it over once this has passed.
    leased_until   TIMESTAMPTZ,
    external_id    TEXT,
    handle         TEXT,
    error          TEXT,
    finished_at    TIMESTAMPTZ,
    PRIMARY KEY (job_id, image_index, product_type)
);

CREATE INDEX IF NOT EXISTS publications_due_idx
    ON publications (next_check_at) WHERE state = 'pending';

-- A product whose publication is under way is 'publishing' until confirmed or refused.
ALTER TABLE products DROP CONSTRAINT IF EXISTS products_status_check;
ALTER TABLE products ADD CONSTRAINT products_status_check
    CHECK (status IN ('created', 'publishing', 'published', 'failed', 'publish_failed'));
