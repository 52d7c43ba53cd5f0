-- What the printify stage made (issue 28): one row per (job, image, generation, product type),
-- written when the product is made (with its product.created payload whole, so that a seller's
-- decision about it can be acted on later: approve re-emits it as product.approved, reject,
-- cancel and delete delete it, reprice prices it again) or when its type failed for good (so
-- that a decision knows the image's products are all settled). The ledger (side_effects) keeps
-- that each call happened once; this keeps what the products are.
--   made     live in Printify;
--   failed   the type failed permanently (reported on the stage's DLQ), nothing was made;
--   deleted  deleted from Printify (deleted_reason: rejected, regenerated, cancelled, deleted).
CREATE TABLE IF NOT EXISTS made_products (
    job_id         TEXT NOT NULL,
    image_index    INTEGER NOT NULL,
    generation     INTEGER NOT NULL,
    product_type   TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('made', 'failed', 'deleted')),
    product_id     TEXT,
    payload        JSONB,
    error          TEXT,
    made_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at     TIMESTAMPTZ,
    deleted_reason TEXT,
    PRIMARY KEY (job_id, image_index, generation, product_type),
    CHECK (state = 'failed' OR (product_id IS NOT NULL AND payload IS NOT NULL))
);
