-- Screening (issue 29), as the monitor folds it from each image.generated's `screening`.
--
-- 1. The image's screening, with the image (a later generation replaces it, as it replaces the
--    image): what was found and decided (the Screening model as JSON), the decision alone for
--    the status machine's count of blocked images, and a short summary of why for the job's
--    error ("deny_list: Nike"). NULL: an image from before screening.
ALTER TABLE images ADD COLUMN IF NOT EXISTS screening JSONB;
ALTER TABLE images ADD COLUMN IF NOT EXISTS screening_decision TEXT
    CHECK (screening_decision IN ('allow', 'review', 'block'));
ALTER TABLE images ADD COLUMN IF NOT EXISTS screening_summary TEXT;

-- 2. Every screening that ran, one row per (job, image, generation): it stays when a later
--    generation replaces the image (its Claude tokens were spent). The job's cost sums the risk
--    review's tokens from here at read time, so a redelivered image never adds them twice.
CREATE TABLE IF NOT EXISTS image_screenings (
    job_id             TEXT NOT NULL,
    image_index        INTEGER NOT NULL CHECK (image_index >= 0),
    generation         INTEGER NOT NULL CHECK (generation >= 0),
    decision           TEXT NOT NULL CHECK (decision IN ('allow', 'review', 'block')),
    screened_at        TIMESTAMPTZ NOT NULL,
    input_tokens       BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens      BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0 CHECK (cache_read_tokens >= 0),
    cache_write_tokens BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
    PRIMARY KEY (job_id, image_index, generation)
);

-- 3. What each check flagged: one row per (job, image, generation, check) that found something,
--    with the strictest outcome its findings asked for (allow = recorded only) and when. The
--    dashboard's "flagged per check per day" reads a range of `flagged_at` by its index, never
--    every image's JSON. Rows of an earlier generation stay: they happened.
CREATE TABLE IF NOT EXISTS screening_flags (
    job_id       TEXT NOT NULL,
    image_index  INTEGER NOT NULL CHECK (image_index >= 0),
    generation   INTEGER NOT NULL CHECK (generation >= 0),
    "check"      TEXT NOT NULL CHECK ("check" IN ('deny_list', 'risk_review', 'rendered_text',
                                                  'near_duplicate', 'unsafe_image')),
    outcome      TEXT NOT NULL CHECK (outcome IN ('allow', 'review', 'block')),
    flagged_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, image_index, generation, "check")
);
CREATE INDEX IF NOT EXISTS screening_flags_day_idx
    ON screening_flags (flagged_at, "check", outcome);
