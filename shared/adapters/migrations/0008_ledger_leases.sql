-- The side-effect ledger serialises concurrent attempts of one effect with a lease instead of a
-- row lock held across the vendor call: an attempt claims the row for a while (renewed while it
-- works), a racing attempt waits for the claim to end without holding a connection, and a claim
-- whose holder died simply expires. No connection or lock is held while a vendor call (or its
-- rate budget) is awaited.
ALTER TABLE side_effects ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE side_effects ADD COLUMN IF NOT EXISTS claimed_until TIMESTAMPTZ;
