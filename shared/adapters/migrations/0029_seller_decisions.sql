-- Seller decisions (decision §41): the stages act on seller.decisions, each once per decision.
--
-- 1. Side effects of a regenerated image, and the undo steps: a step may name a generation
--    (`create@g2`: the products of an image's third render are new products, never the first
--    render's again) and the steps that take things down or price them again exist, per channel
--    where a channel's own (`unpublish:etsy`, `reprice:shopify@<decision>`). The ledger's rows
--    stay one per (job, image, type, step).
ALTER TABLE side_effects DROP CONSTRAINT IF EXISTS side_effects_step_check;
ALTER TABLE side_effects ADD CONSTRAINT side_effects_step_check
    CHECK (step ~ '^(upload|create|price|publish|delete|unpublish|reprice|approve)(:[a-z][a-z0-9_]{0,29})?(@[a-z0-9_-]{1,40})?$');

-- 2. A cancelled job, as each stage learns it from the decision: no stage starts new work for
--    it, and what is in flight checks here before each external call (so a cancel wins over
--    work in flight). Written by whichever stage reads the cancel first; every other stage's
--    write of the same decision changes nothing.
CREATE TABLE IF NOT EXISTS job_cancellations (
    job_id        TEXT PRIMARY KEY,
    decision_id   UUID NOT NULL,
    decided_by    TEXT NOT NULL,
    cancelled_at  TIMESTAMPTZ NOT NULL
);

-- 3. The review of a job's images (jobs asked with review), as the monitor folds it: one row per
--    image, its generation now, and where its review stands:
--    awaiting      its products are made (drafts), waiting for the seller;
--    approved      approved: its products are published to the job's channels;
--    rejected      rejected: its products deleted, nothing listed;
--    regenerating  a new image was asked for and is not made yet (no decision is taken then);
--    cancelled     its job was cancelled before a decision.
--    `decision_id`/`decided_by`/`decided_at`: the last decision about the image. The API claims
--    a decision here (a compare-and-set on state and generation) before it produces it, so two
--    decisions about one image cannot both be produced (approve twice: one event; approve while
--    a regenerate is in flight: 409); the fold of the decision confirms the claim.
CREATE TABLE IF NOT EXISTS image_reviews (
    job_id         TEXT NOT NULL,
    image_index    INTEGER NOT NULL,
    generation     INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL DEFAULT 'awaiting'
        CHECK (state IN ('awaiting', 'approved', 'rejected', 'regenerating', 'cancelled')),
    awaiting_since TIMESTAMPTZ,
    decision_id    UUID,
    decision       TEXT,
    decided_by     TEXT,
    decided_at     TIMESTAMPTZ,
    -- The decision's event was folded (the claim is confirmed by the pipeline).
    decision_folded BOOLEAN NOT NULL DEFAULT FALSE,
    -- A regenerate's prompt, when the seller edited it.
    prompt         TEXT,
    PRIMARY KEY (job_id, image_index)
);
CREATE INDEX IF NOT EXISTS image_reviews_awaiting_idx
    ON image_reviews (awaiting_since) WHERE state = 'awaiting';

-- 4. The job's own: whether it is reviewed, and its cancel.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS review BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS cancelled_at TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS cancelled_by TEXT;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'processing', 'retrying', 'awaiting_review', 'completed',
                      'partial', 'failed', 'cancelled'));

-- 5. An image's generation (a regenerate replaces the row's image), a product's (the products
--    of a regenerated image replace the row's), a product deleted from Printify (rejected,
--    cancelled, deleted after launch, or by the seller in Printify), a listing taken down.
ALTER TABLE images ADD COLUMN IF NOT EXISTS generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN IF NOT EXISTS generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products DROP CONSTRAINT IF EXISTS products_status_check;
ALTER TABLE products ADD CONSTRAINT products_status_check
    CHECK (status IN ('created', 'publishing', 'published', 'failed', 'publish_failed',
                      'deleted'));
ALTER TABLE products ADD COLUMN IF NOT EXISTS withdrawn_reason TEXT;
ALTER TABLE listings DROP CONSTRAINT IF EXISTS listings_status_check;
ALTER TABLE listings ADD CONSTRAINT listings_status_check
    CHECK (status IN ('publishing', 'retrying', 'published', 'publish_failed', 'withdrawn'));
ALTER TABLE listings ADD COLUMN IF NOT EXISTS withdrawn_reason TEXT;

-- A cancelled job's stream ends too.
DROP TRIGGER IF EXISTS jobs_notify_ended ON jobs;
CREATE TRIGGER jobs_notify_ended AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'partial', 'failed', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION pod_notify_job_ended();
