-- A channel whose publisher is retrying shows it per product: `retrying`, with the last error,
-- until the channel lists the product or the publisher gives up.
ALTER TABLE listings DROP CONSTRAINT IF EXISTS listings_status_check;
ALTER TABLE listings ADD CONSTRAINT listings_status_check
    CHECK (status IN ('publishing', 'retrying', 'published', 'publish_failed'));
