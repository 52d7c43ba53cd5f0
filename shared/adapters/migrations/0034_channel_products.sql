-- What each channel's publisher holds or put up for sale (issue 28): one row per product of a
-- job that sells on the channel, so that a seller's cancel, unpublish, delete or reprice finds
-- the products to act on from what the engine made, never from an id a decision names, and a
-- Printify webhook about a product is checked against what we made.
--
-- state:
--   held         a product of a job with review, waiting for the seller's approval;
--   active       to be published, or published (the ledger's publish step says which);
--   unpublished  taken down by a seller's unpublish (it may be listed again);
--   deleted      taken down for good (a delete, a cancel, or deleted in Printify).
-- A later generation of the image (a regenerate) replaces the row: its products are new ones.
CREATE TABLE IF NOT EXISTS channel_products (
    job_id        TEXT NOT NULL,
    image_index   INTEGER NOT NULL,
    product_type  TEXT NOT NULL,
    channel       TEXT NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 0,
    product_id    TEXT NOT NULL,
    shop_id       TEXT NOT NULL,
    title         TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL
        CHECK (state IN ('held', 'active', 'unpublished', 'deleted')),
    -- The decision that last took it down (NULL: none, or the vendor's webhook).
    decision_id   UUID,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, image_index, product_type, channel)
);
CREATE INDEX IF NOT EXISTS channel_products_product_idx
    ON channel_products (channel, product_id);

-- A Printify webhook names a product by Printify's id: the printify stage's ledger rows of its
-- create steps (`create`, `create@g2`, ...) record that id, and are how the engine finds a
-- product it made that no channel's publisher holds (a job that sells on other channels only).
CREATE INDEX IF NOT EXISTS side_effects_created_product_idx
    ON side_effects ((result ->> 'product_id'))
    WHERE step ~ '^create(@|$)' AND state = 'done';
