-- One shape for a job (issue 26): the columns say what they hold, and the request is kept whole.

-- `priority` held the band (high/normal/low); the number a job may have been given is
-- priority_level. The view shows `priority` as given and `band` beside it, read by these names.
ALTER TABLE jobs RENAME COLUMN priority TO band;

-- `request` holds the job.requested payload (shared.contract.events.JobRequestedPayload: the JobSpec
-- and who asked) and GET /jobs/{id} serves `request` from it. Rows written without one (by
-- hand, or by a version that wrote '{}') get it from their columns, as the payload names them.
UPDATE jobs SET request = jsonb_strip_nulls(jsonb_build_object(
        'theme', theme, 'style', style, 'niche', niche, 'prompt', prompt,
        'product_types', to_jsonb(product_types), 'count', image_count,
        'auto_publish', auto_publish, 'channels', to_jsonb(channels), 'priority', band,
        'priority_level', priority_level, 'submitted_by', submitted_by))
WHERE request = '{}'::jsonb;

-- A product's prices by shared.contract.events.PriceSummary's names: price_cents was the lowest price.
ALTER TABLE products RENAME COLUMN price_cents TO price_min_cents;
