-- metric_hours' triggers (0038) were made on metrics_minute before 0039 partitioned it: a fresh
-- install dropped them with the empty old table, an existing one kept them on the legacy
-- partition only. Made on the partitioned parent, PostgreSQL clones them onto every partition,
-- present and future; the legacy partition's own copies go first or its rows would count twice.
DO $$
BEGIN
    IF to_regclass('metrics_minute_legacy') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS metrics_minute_hours_ins ON metrics_minute_legacy;
        DROP TRIGGER IF EXISTS metrics_minute_hours_upd ON metrics_minute_legacy;
    END IF;
END $$;
CREATE OR REPLACE TRIGGER metrics_minute_hours_ins AFTER INSERT ON metrics_minute
    FOR EACH ROW WHEN (NEW.kind <> 'gauge') EXECUTE FUNCTION pod_metric_hours();
CREATE OR REPLACE TRIGGER metrics_minute_hours_upd AFTER UPDATE ON metrics_minute
    FOR EACH ROW WHEN (NEW.kind <> 'gauge' AND NEW.count IS DISTINCT FROM OLD.count)
    EXECUTE FUNCTION pod_metric_hours();
