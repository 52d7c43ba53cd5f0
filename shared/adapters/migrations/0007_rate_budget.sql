-- One rate budget per vendor account, shared by every process that calls it (any number of
-- stage instances on any number of machines): a sliding-window log in PostgreSQL.

-- A grant is one request's slot. It counts from the moment it is granted until a whole window
-- after the vendor answered (`released_at`): a vendor that counts arrivals over the same window
-- then never sees more than `limit`, because every arrival it still counts was either in flight
-- or answered less than a window ago here. A grant never released (its process died) counts
-- until `hold` plus a window after it was granted.
CREATE TABLE IF NOT EXISTS rate_budgets (
    name           TEXT PRIMARY KEY,
    -- A 429's Retry-After stops the whole account, not only the process that got it.
    blocked_until  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    rate_limited   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS rate_grants (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    granted_at   TIMESTAMPTZ NOT NULL,
    released_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS rate_grants_name_idx ON rate_grants (name, granted_at);

-- Take up to `want` slots of budget `name` (at most `lim` per `window_s` seconds), first
-- releasing the grants in `release`, in one round trip. The budget's row lock is held for this
-- statement only; a caller that got fewer than it wanted is told how long to wait (`wait_s`:
-- until the oldest answered grant leaves the window, or the block ends; -1 when every counted
-- grant is still in flight, so nobody can know) and waits without holding anything.
-- The database's clock is the one clock of every process.
CREATE OR REPLACE FUNCTION pod_rate_take(
    name_in TEXT, lim INTEGER, window_s DOUBLE PRECISION, want INTEGER,
    release BIGINT[], hold_s DOUBLE PRECISION
) RETURNS TABLE (granted BIGINT[], wait_s DOUBLE PRECISION, used INTEGER)
LANGUAGE plpgsql AS $$
DECLARE
    now_ts   TIMESTAMPTZ := clock_timestamp();
    win      INTERVAL := make_interval(secs => window_s);
    blocked  TIMESTAMPTZ;
    n_used   INTEGER;
    n_take   INTEGER;
    ids      BIGINT[] := '{}';
    free_at  TIMESTAMPTZ;
BEGIN
    INSERT INTO rate_budgets AS b (name) VALUES (name_in) ON CONFLICT (name) DO NOTHING;
    SELECT b.blocked_until INTO blocked FROM rate_budgets b WHERE b.name = name_in FOR UPDATE;
    IF release IS NOT NULL AND cardinality(release) > 0 THEN
        UPDATE rate_grants g SET released_at = now_ts
        WHERE g.id = ANY(release) AND g.name = name_in AND g.released_at IS NULL;
    END IF;
    DELETE FROM rate_grants g
    WHERE g.name = name_in
      AND (g.released_at <= now_ts - win
           OR (g.released_at IS NULL
               AND g.granted_at <= now_ts - win - make_interval(secs => hold_s)));
    SELECT count(*) INTO n_used FROM rate_grants g WHERE g.name = name_in;
    n_take := CASE WHEN blocked > now_ts THEN 0 ELSE LEAST(want, GREATEST(0, lim - n_used)) END;
    IF n_take > 0 THEN
        WITH ins AS (
            INSERT INTO rate_grants (name, granted_at)
            SELECT name_in, now_ts FROM generate_series(1, n_take)
            RETURNING id
        )
        SELECT array_agg(ins.id) INTO ids FROM ins;
    END IF;
    IF n_take >= want THEN
        wait_s := 0;
    ELSIF blocked > now_ts THEN
        wait_s := extract(epoch FROM blocked - now_ts);
    ELSE
        SELECT min(g.released_at) + win INTO free_at
        FROM rate_grants g WHERE g.name = name_in AND g.released_at IS NOT NULL;
        wait_s := COALESCE(extract(epoch FROM free_at - now_ts), -1);
    END IF;
    granted := ids;
    used := n_used + n_take;
    RETURN NEXT;
END;
$$;

-- Stop the whole budget for `secs` (a vendor's Retry-After, already capped by the caller).
CREATE OR REPLACE FUNCTION pod_rate_block(name_in TEXT, secs DOUBLE PRECISION)
RETURNS VOID LANGUAGE sql AS $$
    INSERT INTO rate_budgets AS b (name, blocked_until, rate_limited)
    VALUES (name_in, clock_timestamp() + make_interval(secs => secs), 1)
    ON CONFLICT (name) DO UPDATE
    SET blocked_until = GREATEST(b.blocked_until, EXCLUDED.blocked_until),
        rate_limited = b.rate_limited + 1;
$$;
