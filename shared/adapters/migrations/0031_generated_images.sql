-- What the generator made, one row per (job, image, generation): the brief it rendered (prompt,
-- negative prompt, listing copy), the seed, the stored image, and the job's request as the
-- generator read it. A regenerate decision (seller.decisions) names only the job, the image and
-- the generation the seller saw: the request and the image's own prompt come from here, the
-- generator's own record, never from the decision. Generation 0 is the first render; a
-- regenerate makes the next generation under its decision (the first row of a generation wins,
-- so a redelivered decision finds its render and hands it on again instead of rendering twice).
CREATE TABLE IF NOT EXISTS generated_images (
    job_id          TEXT NOT NULL,
    image_index     INTEGER NOT NULL CHECK (image_index >= 0),
    generation      INTEGER NOT NULL CHECK (generation >= 0),
    decision_id     UUID,
    seed            BIGINT NOT NULL,
    prompt          TEXT NOT NULL,
    negative_prompt TEXT NOT NULL,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL,
    tags            JSONB NOT NULL,
    sha256          TEXT NOT NULL,
    uri             TEXT NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    -- The job.requested payload (JobRequestedPayload) and when it was requested (its place in
    -- the GPU queue within its band).
    request         JSONB NOT NULL,
    requested_at    TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, image_index, generation)
);
