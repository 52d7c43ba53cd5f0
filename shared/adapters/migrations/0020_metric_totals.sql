-- Counters and histograms as running totals, for the Prometheus exposition (GET /metrics).
--
-- The exposition used to sum `metrics_minute`, whose rows the monitor deletes after
-- METRICS_RETENTION_HOURS: every counter then fell as its oldest minutes went, which Prometheus
-- reads as a reset (and `increase()` as a spike). A total is added to in the same transaction
-- as its minute rows (so a replayed event, which the fold does not count again, is not counted
-- here either) and is never deleted: it only grows. One row per metric and label set;
-- `buckets` maps each upper bound to its observations (not cumulative), as in metrics_minute.
CREATE TABLE IF NOT EXISTS metric_totals (
    name        TEXT NOT NULL,
    labels      JSONB NOT NULL DEFAULT '{}'::jsonb,
    kind        TEXT NOT NULL CHECK (kind IN ('counter', 'histogram')),
    count       BIGINT NOT NULL DEFAULT 0,
    sum         DOUBLE PRECISION NOT NULL DEFAULT 0,
    buckets     JSONB,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, labels)
);

-- The totals start from what the minutes still hold: what the exposition showed until now.
INSERT INTO metric_totals (name, labels, kind, count, sum, buckets)
SELECT m.name, m.labels, min(m.kind), sum(m.count), sum(m.sum),
    (SELECT jsonb_object_agg(b.le, b.n)
     FROM (SELECT e.key AS le, sum(e.value::bigint) AS n
           FROM metrics_minute m2, jsonb_each_text(m2.buckets) e
           WHERE m2.name = m.name AND m2.labels = m.labels AND m2.kind = 'histogram'
           GROUP BY e.key) b)
FROM metrics_minute m
WHERE m.kind IN ('counter', 'histogram')
GROUP BY m.name, m.labels
ON CONFLICT (name, labels) DO NOTHING;
