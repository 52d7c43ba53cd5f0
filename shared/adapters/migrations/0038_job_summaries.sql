-- Jobs summarised ahead of time, so that GET /stats and GET /dashboard read a few hundred rows
-- whatever the number of jobs (issue 30: they scanned jobs, images and products, 1.45 s at 273k
-- jobs for a day's window).
--
-- Triggers on jobs, images and products write what each row change adds to or takes from the
-- summaries, in the transaction of the change, so the summaries are exact and cannot drift. They
-- only INSERT into `job_summary_deltas` (append-only, no index): a trigger that updated shared
-- counter rows would make every fold wait on the others' row locks (all of an hour's jobs share
-- its rows) and could deadlock two monitors that change jobs in different orders. The monitor
-- moves the deltas into the summaries every few seconds (`pod_compact_job_summaries`, one
-- statement, one compaction at a time), and readers add the few pending deltas to the summaries
-- in the same statement (one snapshot: a delta is either still pending or already moved).
--
-- Everything follows the job's creation hour (UTC), as the dashboard's window does: a job that
-- finishes days later moves between statuses of its creation hour. Durations are counted in
-- log-spaced buckets 5 % wide (bucket b holds [1.05^b, 1.05^(b+1)) seconds; everything under
-- 1 ms in the lowest), with their count and sum exact and each bucket's min and max, so that a
-- percentile read from them is within a bucket's width of the exact one.

-- Summary of the whole table: jobs per status (GET /stats).
CREATE TABLE IF NOT EXISTS job_status_counts (
    status  TEXT PRIMARY KEY,
    jobs    BIGINT NOT NULL DEFAULT 0
);

-- Per creation hour and status: jobs, and their images, products and publications done.
CREATE TABLE IF NOT EXISTS job_hours (
    hour       TIMESTAMPTZ NOT NULL,
    status     TEXT NOT NULL,
    jobs       BIGINT NOT NULL DEFAULT 0,
    images     BIGINT NOT NULL DEFAULT 0,
    products   BIGINT NOT NULL DEFAULT 0,
    published  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, status)
);

-- Per creation hour, duration (job, generation, product, publish) and bucket: how many, their
-- sum (seconds), and the least and greatest ever counted there (a bucket's min and max are not
-- lowered when a duration leaves it: they stay within the bucket's bounds).
CREATE TABLE IF NOT EXISTS job_hour_durations (
    hour    TIMESTAMPTZ NOT NULL,
    metric  TEXT NOT NULL,
    bucket  SMALLINT NOT NULL,
    n       BIGINT NOT NULL DEFAULT 0,
    sum     DOUBLE PRECISION NOT NULL DEFAULT 0,
    min     DOUBLE PRECISION,
    max     DOUBLE PRECISION,
    PRIMARY KEY (hour, metric, bucket)
);

-- The same per creation day (UTC): a window of many days reads a row per day and bucket for
-- its whole days (a month: ~30 x 4 x 100 rows instead of ~720 x 4 x 40).
CREATE TABLE IF NOT EXISTS job_day_durations (
    day     TIMESTAMPTZ NOT NULL,
    metric  TEXT NOT NULL,
    bucket  SMALLINT NOT NULL,
    n       BIGINT NOT NULL DEFAULT 0,
    sum     DOUBLE PRECISION NOT NULL DEFAULT 0,
    min     DOUBLE PRECISION,
    max     DOUBLE PRECISION,
    PRIMARY KEY (day, metric, bucket)
);

-- What row changes added (+) or took (-) since the last compaction: a status row (status set)
-- or a duration row (metric set).
CREATE TABLE IF NOT EXISTS job_summary_deltas (
    hour       TIMESTAMPTZ NOT NULL,
    status     TEXT,
    jobs       INTEGER NOT NULL DEFAULT 0,
    images     INTEGER NOT NULL DEFAULT 0,
    products   INTEGER NOT NULL DEFAULT 0,
    published  INTEGER NOT NULL DEFAULT 0,
    metric     TEXT,
    bucket     SMALLINT,
    n          INTEGER NOT NULL DEFAULT 0,
    sum        DOUBLE PRECISION NOT NULL DEFAULT 0,
    min        DOUBLE PRECISION,
    max        DOUBLE PRECISION,
    CHECK ((status IS NULL) <> (metric IS NULL))
);
-- Emptied every few seconds: vacuumed by the number of dead rows, not by a share of a table
-- that is always nearly empty (its dead rows are what every read scans).
ALTER TABLE job_summary_deltas SET (autovacuum_vacuum_scale_factor = 0,
                                    autovacuum_vacuum_threshold = 5000);

-- The bucket of a duration in seconds (capped: a timestamp at infinity must not fail a fold).
CREATE OR REPLACE FUNCTION pod_duration_bucket(d DOUBLE PRECISION) RETURNS SMALLINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN floor(ln(LEAST(GREATEST(d, 0.001), 1e12)) / ln(1.05::float8))::smallint;

-- A duration in seconds between two times, as the dashboard has always measured it.
CREATE OR REPLACE FUNCTION pod_seconds(t0 TIMESTAMPTZ, t1 TIMESTAMPTZ) RETURNS DOUBLE PRECISION
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN GREATEST(0, extract(epoch FROM t1 - t0))::float8;

-- A job's image and product durations (its children), counted in the hour of
-- `created` (the job's creation time) `times` times (1 or -1).
CREATE OR REPLACE FUNCTION pod_summarise_children(job TEXT, created TIMESTAMPTZ, times INTEGER)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO job_summary_deltas (hour, metric, bucket, n, sum, min, max)
    SELECT date_trunc('hour', created, 'UTC'), metric, pod_duration_bucket(d), times, times * d,
           CASE WHEN times > 0 THEN d END, CASE WHEN times > 0 THEN d END
    FROM (
        SELECT 'generation' AS metric, pod_seconds(created, i.created_at) AS d
        FROM images i WHERE i.job_id = job
        UNION ALL
        SELECT 'product', pod_seconds(i.created_at, p.created_at)
        FROM products p JOIN images i USING (job_id, image_index)
        WHERE p.job_id = job AND p.product_id IS NOT NULL
        UNION ALL
        SELECT 'publish', pod_seconds(p.created_at, p.published_at)
        FROM products p WHERE p.job_id = job AND p.published_at IS NOT NULL
    ) d;
$$;

-- A job row: its status row, its duration once finished, and (when it is deleted or its
-- creation time changes, which moves its hour) its children's durations. One INSERT a row
-- change, of only what changed: this runs for most of the fold's statements.
CREATE OR REPLACE FUNCTION pod_jobs_summary() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counts_changed BOOLEAN;
    took_changed BOOLEAN;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO job_summary_deltas (hour, status, jobs, images, products, published)
        VALUES (date_trunc('hour', OLD.created_at, 'UTC'), OLD.status, -1, -OLD.images_done,
                -OLD.products_done, -OLD.publications_done);
        IF OLD.finished_at IS NOT NULL THEN
            INSERT INTO job_summary_deltas (hour, metric, bucket, n, sum)
            SELECT date_trunc('hour', OLD.created_at, 'UTC'), 'job', pod_duration_bucket(d), -1, -d
            FROM pod_seconds(OLD.created_at, OLD.finished_at) d;
        END IF;
        -- This runs BEFORE the row goes, while its children are still there: their own
        -- triggers, when the cascade deletes them, no longer find the job.
        PERFORM pod_summarise_children(OLD.job_id, OLD.created_at, -1);
        RETURN OLD;
    END IF;
    -- OLD is NULL on an INSERT: everything of NEW counts.
    counts_changed := TG_OP = 'INSERT'
        OR (OLD.status, OLD.images_done, OLD.products_done, OLD.publications_done, OLD.created_at)
           IS DISTINCT FROM
           (NEW.status, NEW.images_done, NEW.products_done, NEW.publications_done, NEW.created_at);
    took_changed := TG_OP = 'INSERT'
        OR (OLD.created_at, OLD.finished_at) IS DISTINCT FROM (NEW.created_at, NEW.finished_at);
    INSERT INTO job_summary_deltas (hour, status, jobs, images, products, published, metric,
                                    bucket, n, sum, min, max)
    SELECT date_trunc('hour', OLD.created_at, 'UTC'), OLD.status, -1, -OLD.images_done,
           -OLD.products_done, -OLD.publications_done, NULL::text, NULL::smallint, 0,
           0::float8, NULL::float8, NULL::float8
    WHERE TG_OP = 'UPDATE' AND counts_changed
    UNION ALL
    SELECT date_trunc('hour', NEW.created_at, 'UTC'), NEW.status, 1, NEW.images_done,
           NEW.products_done, NEW.publications_done, NULL, NULL, 0, 0, NULL, NULL
    WHERE counts_changed
    UNION ALL
    SELECT date_trunc('hour', OLD.created_at, 'UTC'), NULL, 0, 0, 0, 0, 'job',
           pod_duration_bucket(d), -1, -d, NULL, NULL
    FROM pod_seconds(OLD.created_at, OLD.finished_at) d
    WHERE TG_OP = 'UPDATE' AND took_changed AND OLD.finished_at IS NOT NULL
    UNION ALL
    SELECT date_trunc('hour', NEW.created_at, 'UTC'), NULL, 0, 0, 0, 0, 'job',
           pod_duration_bucket(d), 1, d, d, d
    FROM pod_seconds(NEW.created_at, NEW.finished_at) d
    WHERE took_changed AND NEW.finished_at IS NOT NULL;
    IF TG_OP = 'UPDATE' AND OLD.created_at IS DISTINCT FROM NEW.created_at THEN
        PERFORM pod_summarise_children(OLD.job_id, OLD.created_at, -1);
        PERFORM pod_summarise_children(NEW.job_id, NEW.created_at, 1);
    END IF;
    RETURN NULL;
END $$;

-- An image: its generation duration (request -> image) and the product durations (image ->
-- product) of its products, which are measured from it.
CREATE OR REPLACE FUNCTION pod_images_summary() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    created TIMESTAMPTZ;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT j.created_at INTO created FROM jobs j WHERE j.job_id = OLD.job_id;
        IF FOUND THEN
            INSERT INTO job_summary_deltas (hour, metric, bucket, n, sum)
            SELECT date_trunc('hour', created, 'UTC'), metric, pod_duration_bucket(d), -1, -d
            FROM (
                SELECT 'generation' AS metric, pod_seconds(created, OLD.created_at) AS d
                UNION ALL
                SELECT 'product', pod_seconds(OLD.created_at, p.created_at)
                FROM products p
                WHERE p.job_id = OLD.job_id AND p.image_index = OLD.image_index
                  AND p.product_id IS NOT NULL
            ) d;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT j.created_at INTO created FROM jobs j WHERE j.job_id = NEW.job_id;
        IF FOUND THEN
            INSERT INTO job_summary_deltas (hour, metric, bucket, n, sum, min, max)
            SELECT date_trunc('hour', created, 'UTC'), metric, pod_duration_bucket(d), 1, d, d, d
            FROM (
                SELECT 'generation' AS metric, pod_seconds(created, NEW.created_at) AS d
                UNION ALL
                SELECT 'product', pod_seconds(NEW.created_at, p.created_at)
                FROM products p
                WHERE p.job_id = NEW.job_id AND p.image_index = NEW.image_index
                  AND p.product_id IS NOT NULL
            ) d;
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- A product: its product duration (from its image, when it has a Printify id and the image
-- is there) and its publish duration (once published). One INSERT a row change, of only the
-- durations that changed (publishing one changes its publish duration alone).
CREATE OR REPLACE FUNCTION pod_products_summary() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_created TIMESTAMPTZ;
    new_created TIMESTAMPTZ;
    product_changed BOOLEAN;
    publish_changed BOOLEAN;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        SELECT j.created_at INTO old_created FROM jobs j WHERE j.job_id = OLD.job_id;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.job_id = NEW.job_id THEN
        new_created := old_created;
    ELSIF TG_OP <> 'DELETE' THEN
        SELECT j.created_at INTO new_created FROM jobs j WHERE j.job_id = NEW.job_id;
    END IF;
    -- OLD is NULL on an INSERT and NEW on a DELETE: their branches below yield nothing.
    product_changed := TG_OP <> 'UPDATE'
        OR (OLD.job_id, OLD.image_index, OLD.created_at, OLD.product_id IS NULL)
           IS DISTINCT FROM (NEW.job_id, NEW.image_index, NEW.created_at, NEW.product_id IS NULL);
    publish_changed := TG_OP <> 'UPDATE'
        OR (OLD.job_id, OLD.created_at, OLD.published_at)
           IS DISTINCT FROM (NEW.job_id, NEW.created_at, NEW.published_at);
    INSERT INTO job_summary_deltas (hour, metric, bucket, n, sum, min, max)
    SELECT date_trunc('hour', created, 'UTC'), metric, pod_duration_bucket(d), times, times * d,
           CASE WHEN times > 0 THEN d END, CASE WHEN times > 0 THEN d END
    FROM (
        SELECT old_created AS created, -1 AS times, 'product' AS metric,
               pod_seconds(i.created_at, OLD.created_at) AS d
        FROM images i
        WHERE product_changed AND old_created IS NOT NULL AND OLD.product_id IS NOT NULL
          AND i.job_id = OLD.job_id AND i.image_index = OLD.image_index
        UNION ALL
        SELECT old_created, -1, 'publish', pod_seconds(OLD.created_at, OLD.published_at)
        WHERE publish_changed AND old_created IS NOT NULL AND OLD.published_at IS NOT NULL
        UNION ALL
        SELECT new_created, 1, 'product', pod_seconds(i.created_at, NEW.created_at)
        FROM images i
        WHERE product_changed AND new_created IS NOT NULL AND NEW.product_id IS NOT NULL
          AND i.job_id = NEW.job_id AND i.image_index = NEW.image_index
        UNION ALL
        SELECT new_created, 1, 'publish', pod_seconds(NEW.created_at, NEW.published_at)
        WHERE publish_changed AND new_created IS NOT NULL AND NEW.published_at IS NOT NULL
    ) d;
    RETURN NULL;
END $$;

-- Only the columns a summary reads wake the triggers up: the fold's other updates (tokens,
-- retries, errors, prices) cost nothing here.
CREATE OR REPLACE TRIGGER jobs_summary_ins AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION pod_jobs_summary();
CREATE OR REPLACE TRIGGER jobs_summary_upd AFTER UPDATE ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.images_done IS DISTINCT FROM NEW.images_done
        OR OLD.products_done IS DISTINCT FROM NEW.products_done
        OR OLD.publications_done IS DISTINCT FROM NEW.publications_done
        OR OLD.created_at IS DISTINCT FROM NEW.created_at
        OR OLD.finished_at IS DISTINCT FROM NEW.finished_at)
    EXECUTE FUNCTION pod_jobs_summary();
CREATE OR REPLACE TRIGGER jobs_summary_del BEFORE DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION pod_jobs_summary();
CREATE OR REPLACE TRIGGER images_summary_ins_del AFTER INSERT OR DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION pod_images_summary();
CREATE OR REPLACE TRIGGER images_summary_upd AFTER UPDATE ON images
    FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
        OR OLD.job_id IS DISTINCT FROM NEW.job_id
        OR OLD.image_index IS DISTINCT FROM NEW.image_index)
    EXECUTE FUNCTION pod_images_summary();
CREATE OR REPLACE TRIGGER products_summary_ins_del AFTER INSERT OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION pod_products_summary();
CREATE OR REPLACE TRIGGER products_summary_upd AFTER UPDATE ON products
    FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
        OR OLD.published_at IS DISTINCT FROM NEW.published_at
        OR (OLD.product_id IS NULL) <> (NEW.product_id IS NULL)
        OR OLD.job_id IS DISTINCT FROM NEW.job_id
        OR OLD.image_index IS DISTINCT FROM NEW.image_index)
    EXECUTE FUNCTION pod_products_summary();

-- Moves the pending deltas into the summaries; returns how many it moved. One compaction at a
-- time (a second one returns 0 at once): the summary rows are then only ever locked by one
-- transaction, so compactions neither wait on each other nor deadlock.
CREATE OR REPLACE FUNCTION pod_compact_job_summaries() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    n_moved BIGINT;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('pod_job_summaries')) THEN
        RETURN 0;
    END IF;
    -- One statement: only the deltas its snapshot sees are deleted and moved (one committed
    -- meanwhile waits for the next round), and each summary row is proposed once.
    WITH moved AS (DELETE FROM job_summary_deltas RETURNING *),
    counts AS (
        INSERT INTO job_status_counts AS t (status, jobs)
        SELECT status, sum(jobs) FROM moved WHERE status IS NOT NULL
        GROUP BY status ORDER BY status
        ON CONFLICT (status) DO UPDATE SET jobs = t.jobs + EXCLUDED.jobs
    ),
    hours AS (
        INSERT INTO job_hours AS t (hour, status, jobs, images, products, published)
        SELECT hour, status, sum(jobs), sum(images), sum(products), sum(published)
        FROM moved WHERE status IS NOT NULL
        GROUP BY hour, status ORDER BY hour, status
        ON CONFLICT (hour, status) DO UPDATE SET jobs = t.jobs + EXCLUDED.jobs,
            images = t.images + EXCLUDED.images, products = t.products + EXCLUDED.products,
            published = t.published + EXCLUDED.published
    ),
    durations AS (
        INSERT INTO job_hour_durations AS t (hour, metric, bucket, n, sum, min, max)
        SELECT hour, metric, bucket, sum(n), sum(sum), min(min), max(max)
        FROM moved WHERE metric IS NOT NULL
        GROUP BY hour, metric, bucket ORDER BY hour, metric, bucket
        ON CONFLICT (hour, metric, bucket) DO UPDATE SET n = t.n + EXCLUDED.n,
            sum = t.sum + EXCLUDED.sum, min = LEAST(t.min, EXCLUDED.min),
            max = GREATEST(t.max, EXCLUDED.max)
    ),
    days AS (
        INSERT INTO job_day_durations AS t (day, metric, bucket, n, sum, min, max)
        SELECT date_trunc('day', hour, 'UTC'), metric, bucket, sum(n), sum(sum), min(min),
               max(max)
        FROM moved WHERE metric IS NOT NULL
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (day, metric, bucket) DO UPDATE SET n = t.n + EXCLUDED.n,
            sum = t.sum + EXCLUDED.sum, min = LEAST(t.min, EXCLUDED.min),
            max = GREATEST(t.max, EXCLUDED.max)
    )
    SELECT count(*) INTO n_moved FROM moved;
    RETURN n_moved;
END $$;

-- Rebuilds every summary from the rows (set-based: seconds for a million jobs). Writes to
-- jobs, images and products wait meanwhile, so no change is lost or counted twice. For a
-- deployment that already has jobs (this migration) and if ever in doubt (`pod summaries
-- rebuild`).
CREATE OR REPLACE FUNCTION pod_rebuild_job_summaries() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    counted BIGINT;
BEGIN
    LOCK TABLE jobs, images, products IN SHARE MODE;
    PERFORM pg_advisory_xact_lock(hashtext('pod_job_summaries'));
    DELETE FROM job_summary_deltas;
    DELETE FROM job_status_counts;
    DELETE FROM job_hours;
    DELETE FROM job_hour_durations;
    DELETE FROM job_day_durations;
    INSERT INTO job_status_counts (status, jobs)
    SELECT status, count(*) FROM jobs GROUP BY status;
    INSERT INTO job_hours (hour, status, jobs, images, products, published)
    SELECT date_trunc('hour', created_at, 'UTC'), status, count(*), sum(images_done),
           sum(products_done), sum(publications_done)
    FROM jobs GROUP BY 1, 2 ORDER BY 1, 2;
    GET DIAGNOSTICS counted = ROW_COUNT;
    INSERT INTO job_hour_durations (hour, metric, bucket, n, sum, min, max)
    SELECT hour, metric, pod_duration_bucket(d), count(*), sum(d), min(d), max(d)
    FROM (
        SELECT date_trunc('hour', created_at, 'UTC') AS hour, 'job' AS metric,
               pod_seconds(created_at, finished_at) AS d
        FROM jobs WHERE finished_at IS NOT NULL
        UNION ALL
        SELECT date_trunc('hour', j.created_at, 'UTC'), 'generation',
               pod_seconds(j.created_at, i.created_at)
        FROM images i JOIN jobs j USING (job_id)
        UNION ALL
        SELECT date_trunc('hour', j.created_at, 'UTC'), 'product',
               pod_seconds(i.created_at, p.created_at)
        FROM products p JOIN images i USING (job_id, image_index) JOIN jobs j USING (job_id)
        WHERE p.product_id IS NOT NULL
        UNION ALL
        SELECT date_trunc('hour', j.created_at, 'UTC'), 'publish',
               pod_seconds(p.created_at, p.published_at)
        FROM products p JOIN jobs j USING (job_id)
        WHERE p.published_at IS NOT NULL
    ) d
    GROUP BY 1, 2, 3
    -- In key order: a window's rows then lie together on disk (a hash aggregate's order
    -- scattered an hour's few thousand rows over as many pages).
    ORDER BY 1, 2, 3;
    INSERT INTO job_day_durations (day, metric, bucket, n, sum, min, max)
    SELECT date_trunc('day', hour, 'UTC'), metric, bucket, sum(n), sum(sum), min(min), max(max)
    FROM job_hour_durations GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
    RETURN counted;
END $$;

-- A TRUNCATE fires no row trigger: recount (the tables are empty or nearly so by then).
CREATE OR REPLACE FUNCTION pod_job_summaries_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pod_rebuild_job_summaries();
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER jobs_summary_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION pod_job_summaries_truncated();
CREATE OR REPLACE TRIGGER images_summary_truncate AFTER TRUNCATE ON images
    FOR EACH STATEMENT EXECUTE FUNCTION pod_job_summaries_truncated();
CREATE OR REPLACE TRIGGER products_summary_truncate AFTER TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION pod_job_summaries_truncated();

SELECT pod_rebuild_job_summaries();

-- GET /dashboard's `recent.metrics` (how often each counter counted in the window) summed a
-- week of minute rows at each call (~250 ms for 200k rows). The same counts per hour, kept by a
-- trigger on the minute rows in the fold's transaction. Keyed like the minutes, (name, labels)
-- first: the fold locks its minutes sorted by (name, labels, minute), so it locks these rows in
-- that order too and two monitors cannot deadlock on them. Retention's deletes of minutes do
-- not lower them (they are counts of what happened).
CREATE TABLE IF NOT EXISTS metric_hours (
    name    TEXT NOT NULL,
    labels  JSONB NOT NULL DEFAULT '{}'::jsonb,
    hour    TIMESTAMPTZ NOT NULL,
    count   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (name, labels, hour)
);
CREATE INDEX IF NOT EXISTS metric_hours_hour_idx ON metric_hours (hour);

CREATE OR REPLACE FUNCTION pod_metric_hours() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- OLD is NULL on an INSERT: the whole count is new.
    INSERT INTO metric_hours AS t (name, labels, hour, count)
    VALUES (NEW.name, NEW.labels, date_trunc('hour', NEW.minute, 'UTC'),
            NEW.count - COALESCE(OLD.count, 0))
    ON CONFLICT (name, labels, hour) DO UPDATE SET count = t.count + EXCLUDED.count;
    RETURN NULL;
END $$;
-- Created before the rows are copied: the trigger's lock holds the minutes' writers back until
-- this migration commits, so none is missed or counted twice.
CREATE OR REPLACE TRIGGER metrics_minute_hours_ins AFTER INSERT ON metrics_minute
    FOR EACH ROW WHEN (NEW.kind <> 'gauge') EXECUTE FUNCTION pod_metric_hours();
CREATE OR REPLACE TRIGGER metrics_minute_hours_upd AFTER UPDATE ON metrics_minute
    FOR EACH ROW WHEN (NEW.kind <> 'gauge' AND NEW.count IS DISTINCT FROM OLD.count)
    EXECUTE FUNCTION pod_metric_hours();
INSERT INTO metric_hours (name, labels, hour, count)
SELECT name, labels, date_trunc('hour', minute, 'UTC'), sum(count)
FROM metrics_minute WHERE kind <> 'gauge'
GROUP BY 1, 2, 3
ON CONFLICT (name, labels, hour) DO NOTHING;
