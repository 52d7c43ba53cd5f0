-- Bounded disk (issue 30): the two tables that grow with every job and minute, job_events (the
-- detailed log, ~9 KB per job) and metrics_minute, are partitioned by time, so retention drops a
-- whole partition (no DELETE, no dead tuples, no VACUUM debt) and keeps the disk bounded.
--
-- job_events by month of occurred_at, metrics_minute by day of minute. A unique index of a
-- partitioned table must hold the partition key, so job_events' key becomes
-- (job_id, event_id, occurred_at); a redelivered Kafka record repeats its envelope, but an input
-- processed again re-derives an output's event_id with a new occurred_at, so the log's writer
-- (shared/adapters/store/job_events.py) still checks (job_id, event_id) across every partition.
--
-- A row outside every partition (occurred_at is claimed by the producer) goes to a DEFAULT
-- partition, never an error that would lose the event; the monitor deletes its expired rows,
-- and pod_ensure_partitions moves a range's rows out of it when that range gets its partition.
--
-- On an existing deployment the old table becomes one "legacy" partition covering everything
-- before the next period (no copy: only its rows past that bound move, and the indexes a
-- partitioned key needs are built); it is dropped whole once retention passes its upper bound.
-- An empty old table (a fresh install) is dropped instead, so past periods can get partitions.

-- Which tables are partitioned, on which column, by which period.
CREATE TABLE IF NOT EXISTS pod_partitioning (
    parent      TEXT PRIMARY KEY,
    part_column TEXT NOT NULL,
    period      TEXT NOT NULL CHECK (period IN ('day', 'week', 'month'))
);
INSERT INTO pod_partitioning VALUES ('job_events', 'occurred_at', 'month')
ON CONFLICT (parent) DO NOTHING;
INSERT INTO pod_partitioning VALUES ('metrics_minute', 'minute', 'day')
ON CONFLICT (parent) DO NOTHING;

-- The partitions of a table, with each one's upper bound (NULL: DEFAULT or MAXVALUE). The bound
-- is printed with its UTC offset, so casting it back does not depend on the session's TimeZone.
CREATE OR REPLACE FUNCTION pod_partitions(tbl regclass)
RETURNS TABLE (part regclass, upper_bound timestamptz, is_default boolean)
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass,
           substring(b.expr FROM 'TO \(''([^'']*)''\)')::timestamptz,
           b.expr = 'DEFAULT'
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
    WHERE i.inhparent = tbl
$$;

-- Creates every missing partition of `tbl` (one pod_partitioning names) covering from_ts..to_ts
-- (both included), each [start of a period, start of the next) in UTC, named
-- <table>_pYYYYMMDD; returns how many it created. A period some partition already covers (the
-- legacy one) is skipped. Rows of the range sitting in the DEFAULT partition are moved into the
-- new one. Built by CREATE TABLE + ATTACH PARTITION, which takes SHARE UPDATE EXCLUSIVE on the
-- parent (CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE): inserts and reads go on.
-- Idempotent; bench/scale.py's builder calls it before loading a year of rows.
CREATE OR REPLACE FUNCTION pod_ensure_partitions(tbl regclass, from_ts timestamptz,
                                                 to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cfg pod_partitioning;
    nsp text;
    rel text;
    def regclass;
    lo timestamptz;
    hi timestamptz;
    step interval;
    name text;
    created integer := 0;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    SELECT * INTO cfg FROM pod_partitioning WHERE parent = rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pod_ensure_partitions: % is not a table partitioned by POD Engine', tbl;
    END IF;
    IF from_ts IS NULL OR to_ts IS NULL OR to_ts < from_ts THEN
        RAISE EXCEPTION 'pod_ensure_partitions: bad range % .. %', from_ts, to_ts;
    END IF;
    IF to_ts - from_ts > interval '20 years' THEN
        RAISE EXCEPTION 'pod_ensure_partitions: range % .. % is over 20 years', from_ts, to_ts;
    END IF;
    step := ('1 ' || cfg.period)::interval;
    SELECT p.part INTO def FROM pod_partitions(tbl) p WHERE p.is_default;
    lo := date_trunc(cfg.period, from_ts, 'UTC');
    WHILE lo <= to_ts LOOP
        hi := date_add(lo, step, 'UTC');
        name := rel || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(format('%I.%I', nsp, name)) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               nsp, name, tbl);
                IF def IS NOT NULL THEN
                    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 '
                                   'RETURNING *) INSERT INTO %I.%I SELECT * FROM moved',
                                   def, cfg.part_column, cfg.part_column, nsp, name)
                    USING lo, hi;
                END IF;
                EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                               tbl, nsp, name, lo, hi);
                created := created + 1;
            EXCEPTION WHEN invalid_object_definition THEN
                -- "would overlap partition": a partition (the legacy one) covers this period
                -- already; the subtransaction undoes the table and the move.
                NULL;
            END;
        END IF;
        lo := hi;
    END LOOP;
    RETURN created;
END
$$;

-- Turns `tbl` into a table partitioned by range of `col`: the old table is renamed <tbl>_legacy
-- (its indexes too) and the new parent takes its columns, defaults and checks (its sequences
-- too: they must outlive the legacy partition). Returns the legacy table, which the caller
-- attaches or drops once the parent has its key and indexes. Does nothing (NULL) when `tbl` is
-- partitioned already, so the migration can run again.
CREATE OR REPLACE FUNCTION pod_begin_partitioning(tbl text, col text)
RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    legacy text := tbl || '_legacy';
    idx record;
    seq record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = tbl::regclass) THEN
        RETURN NULL;
    END IF;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, legacy);
    FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = legacy::regclass LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', idx.relname,
                       left(legacy || substr(idx.relname, length(tbl) + 1), 63));
    END LOOP;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                   'PARTITION BY RANGE (%I)', tbl, legacy, col);
    FOR seq IN SELECT s.oid::regclass AS s, a.attname
               FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               WHERE d.refobjid = legacy::regclass AND d.deptype = 'a' LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I', seq.s, tbl, seq.attname);
    END LOOP;
    RETURN legacy::regclass;
END
$$;

-- Finishes pod_begin_partitioning once the parent has its key and indexes: a DEFAULT
-- partition, then the legacy table attached as the partition of everything before the next
-- period (its rows from there on moved out first: they would break its bound) or dropped when
-- empty, then the partitions up to two periods ahead.
CREATE OR REPLACE FUNCTION pod_finish_partitioning(tbl text, legacy regclass)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cfg pod_partitioning;
    cols text;
    has_rows boolean;
    bound timestamptz;
    first_ts timestamptz := now();
BEGIN
    SELECT * INTO STRICT cfg FROM pod_partitioning WHERE parent = tbl;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', legacy) INTO STRICT has_rows;
    IF NOT has_rows THEN
        EXECUTE format('DROP TABLE %s', legacy);
    ELSE
        bound := date_add(date_trunc(cfg.period, now(), 'UTC'), ('1 ' || cfg.period)::interval,
                          'UTC');
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
        FROM pg_attribute WHERE attrelid = tbl::regclass AND attnum > 0 AND NOT attisdropped;
        EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM %s WHERE %I >= $1',
                       tbl, cols, cols, legacy, cfg.part_column) USING bound;
        EXECUTE format('DELETE FROM %s WHERE %I >= $1', legacy, cfg.part_column) USING bound;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %s FOR VALUES FROM (MINVALUE) TO (%L)',
                       tbl, legacy, bound);
        first_ts := bound;
    END IF;
    PERFORM pod_ensure_partitions(tbl::regclass, first_ts,
                                  date_add(now(), ('2 ' || cfg.period)::interval, 'UTC'));
END
$$;

-- job_events. seq stays unique (one sequence feeds it) but a unique index must hold the
-- partition key, so its index is a plain one now. The notification trigger (a statement-level
-- trigger with a transition table) moves to the parent, where it sees rows routed to any
-- partition.
DO $$
DECLARE
    legacy regclass := pod_begin_partitioning('job_events', 'occurred_at');
BEGIN
    IF legacy IS NULL THEN
        RETURN;
    END IF;
    DROP TRIGGER IF EXISTS job_events_notify ON job_events_legacy;
    -- Superseded by the key with occurred_at and the plain seq index (built on attach).
    ALTER TABLE job_events_legacy DROP CONSTRAINT IF EXISTS job_events_legacy_pkey;
    DROP INDEX IF EXISTS job_events_legacy_seq_idx;
    ALTER TABLE job_events ADD PRIMARY KEY (job_id, event_id, occurred_at);
    CREATE INDEX job_events_seq_idx ON job_events (seq);
    CREATE INDEX job_events_job_idx ON job_events (job_id, occurred_at);
    CREATE INDEX job_events_xid_seq_idx ON job_events (xid, seq);
    CREATE INDEX job_events_job_xid_seq_idx ON job_events (job_id, xid, seq);
    CREATE INDEX job_events_type_xid_seq_idx ON job_events (type, xid, seq);
    CREATE INDEX job_events_level_xid_seq_idx ON job_events (level, xid, seq);
    CREATE INDEX job_events_legacy_label_idx ON job_events ((data->>'submitted_by'))
        WHERE type = 'job.requested' AND data->>'submitted_by' ~ '^key-[0-9a-f]{16}$';
    CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION pod_notify_job_events();
    PERFORM pod_finish_partitioning('job_events', legacy);
END
$$;

-- metrics_minute: its key (name, labels, minute) holds the partition key already, so the legacy
-- table's indexes serve as they are.
DO $$
DECLARE
    legacy regclass := pod_begin_partitioning('metrics_minute', 'minute');
BEGIN
    IF legacy IS NULL THEN
        RETURN;
    END IF;
    ALTER TABLE metrics_minute ADD PRIMARY KEY (name, labels, minute);
    CREATE INDEX metrics_minute_name_idx ON metrics_minute (name, minute DESC);
    CREATE INDEX metrics_minute_minute_idx ON metrics_minute (minute);
    PERFORM pod_finish_partitioning('metrics_minute', legacy);
END
$$;

-- The small tables keep a key with no time in it (partitioning them would break its uniqueness)
-- and lose expired rows by batched DELETE (services/monitor/retention.py), oldest first along
-- these (api_idempotency has its created_at index since 0002).
CREATE INDEX IF NOT EXISTS side_effects_done_idx ON side_effects (updated_at)
    WHERE state = 'done';
CREATE INDEX IF NOT EXISTS dead_letters_replayed_idx ON dead_letters (replayed_at)
    WHERE replayed_at IS NOT NULL;
