-- The perceptual hash of every design the generator screened (near-duplicate screening, issue
-- 29): a new design within the deployment's Hamming distance of an earlier one is flagged with
-- the design it resembles. The 64 bits are kept as a signed bigint (PostgreSQL has no unsigned
-- one; the same bits, two's complement) and again as four 16-bit chunks, each indexed: two
-- hashes within distance d agree within floor(d/4) bits on at least one chunk (pigeonhole), so
-- the lookup reads the few index entries near each chunk instead of every hash (multi-index
-- hashing; shared/adapters/store/design_hashes.py).
CREATE TABLE IF NOT EXISTS design_hashes (
    job_id      TEXT NOT NULL,
    image_index INTEGER NOT NULL CHECK (image_index >= 0),
    generation  INTEGER NOT NULL CHECK (generation >= 0),
    phash       BIGINT NOT NULL,
    chunk0      INTEGER NOT NULL CHECK (chunk0 BETWEEN 0 AND 65535),
    chunk1      INTEGER NOT NULL CHECK (chunk1 BETWEEN 0 AND 65535),
    chunk2      INTEGER NOT NULL CHECK (chunk2 BETWEEN 0 AND 65535),
    chunk3      INTEGER NOT NULL CHECK (chunk3 BETWEEN 0 AND 65535),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, image_index, generation),
    -- The chunks are the hash's bits, most significant first: never out of step with it.
    CHECK (chunk0 = ((phash >> 48) & 65535)::INTEGER
       AND chunk1 = ((phash >> 32) & 65535)::INTEGER
       AND chunk2 = ((phash >> 16) & 65535)::INTEGER
       AND chunk3 = (phash & 65535)::INTEGER)
);
CREATE INDEX IF NOT EXISTS design_hashes_chunk0 ON design_hashes (chunk0);
CREATE INDEX IF NOT EXISTS design_hashes_chunk1 ON design_hashes (chunk1);
CREATE INDEX IF NOT EXISTS design_hashes_chunk2 ON design_hashes (chunk2);
CREATE INDEX IF NOT EXISTS design_hashes_chunk3 ON design_hashes (chunk3);
