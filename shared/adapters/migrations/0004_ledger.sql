-- The side-effect ledger: one row per external call that must happen once (DESIGN §5).

-- A row is written as 'started' (and committed) before the vendor is called, and turns 'done'
-- with the vendor's answer in `result`. A row left 'started' means an earlier attempt's outcome
-- is unknown (crash, timeout): the next attempt reconciles with the vendor before calling again.
-- `product_type` is '' for a step that is not per type (the image upload).
CREATE TABLE IF NOT EXISTS side_effects (
    job_id        TEXT NOT NULL,
    image_index   INTEGER NOT NULL,
    product_type  TEXT NOT NULL DEFAULT '',
    step          TEXT NOT NULL CHECK (step IN ('upload', 'create', 'publish')),
    state         TEXT NOT NULL DEFAULT 'started' CHECK (state IN ('started', 'done')),
    result        JSONB,
    attempts      INTEGER NOT NULL DEFAULT 1,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, image_index, product_type, step),
    CHECK (state = 'started' OR result IS NOT NULL)
);

-- For operators (and a future janitor): effects still in doubt, oldest first.
CREATE INDEX IF NOT EXISTS side_effects_started_idx
    ON side_effects (updated_at) WHERE state = 'started';
