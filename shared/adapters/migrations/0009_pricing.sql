-- Prices from production costs: the printify stage prices each product's variants once it
-- knows their costs (a ledger step of its own), and the monitor keeps each product's ranges.
ALTER TABLE side_effects DROP CONSTRAINT IF EXISTS side_effects_step_check;
ALTER TABLE side_effects ADD CONSTRAINT side_effects_step_check
    CHECK (step IN ('upload', 'create', 'price', 'publish'));

ALTER TABLE products ADD COLUMN IF NOT EXISTS price_max_cents INTEGER;
ALTER TABLE products ADD COLUMN IF NOT EXISTS cost_min_cents INTEGER;
ALTER TABLE products ADD COLUMN IF NOT EXISTS cost_max_cents INTEGER;
ALTER TABLE products ADD COLUMN IF NOT EXISTS profit_min_cents INTEGER;
ALTER TABLE products ADD COLUMN IF NOT EXISTS margin_min_percent REAL;
