-- What screening found and decided about each image the generator made (decision §49): kept
-- with the image so that a redelivered job or regenerate hands the image on with the screening
-- it had, instead of screening it again (Claude's answer may differ, its tokens are spent).
ALTER TABLE generated_images ADD COLUMN IF NOT EXISTS screening JSONB;
