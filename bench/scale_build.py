"""A year of a busy shop in PostgreSQL, built fast from a few real jobs (bench/scale.py).

Real jobs run through a real stack first (the *templates*: their jobs, images, products,
publications, listings, log entries... as the services wrote them). :func:`build` then clones
them with set-based SQL (``INSERT ... SELECT`` over ``generate_series``) under new job ids, spread
over ``days`` days with a daily rhythm, each clone's timestamps shifted by the same amount, its
theme, niche and style drawn from small vocabularies (so a search matches many, few or none),
and a realistic status mix laid over the top (mostly completed, some partial, failed and
cancelled, the newest few still in flight). Then dead letters (some replayed), alerts, the
metrics minutes of the retention window, and screening flags. Every table with a ``job_id`` is
cloned column by column from the catalog, so a column, index or partitioning added by a
migration keeps working (rows go through the parent table).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

# Per table, what a clone's column becomes when copying it would break a key (``t`` is the
# template row, ``m`` the clone's row of ``scale_map``).
# A clone's design gets a hash of its own (as every real design has): copies of 48 templates'
# hashes made every near-duplicate lookup match tens of thousands of rows, so the planner read
# all of design_hashes on every new image, which no shop's data would make it do.
_HASH = (
    "('x' || substr(md5(m.new_id || ':' || t.image_index || ':' || t.generation), 1, 16))"
    "::bit(64)::bigint"
)
OVERRIDES: dict[str, dict[str, str]] = {
    "api_idempotency": {"key": "t.key || ':' || m.n"},
    "design_hashes": {
        "phash": _HASH,
        **{f"chunk{i}": f"(({_HASH}) >> {48 - 16 * i}) & 65535" for i in range(4)},
    },
}
# Not cloned: rows about the templates' run, not about a job's life (or generated below).
SKIPPED = {"dead_letters", "jobs"}

THEMES = [
    "cat",
    "mountain",
    "sunset",
    "coffee",
    "dragon",
    "ocean",
    "forest",
    "retro",
    "skull",
    "rose",
    "wolf",
    "galaxy",
    "pizza",
    "guitar",
    "bicycle",
    "owl",
    "camping",
    "vintage",
    "taco",
    "yoga",
    "lighthouse",
    "cactus",
    "robot",
    "unicorn",
    "whale",
    "fox",
    "bear",
    "sushi",
    "mushroom",
    "astronaut",
    "dinosaur",
    "moon",
    "penguin",
    "octopus",
    "tiger",
    "panda",
    "rainbow",
    "waves",
    "anchor",
]
STYLES = [
    "flat",
    "minimalist",
    "watercolor",
    "vintage",
    "retro",
    "line-art",
    "bold",
    "pop-art",
    "kawaii",
    "grunge",
]
NICHES = [
    "gardening",
    "teachers",
    "nurses",
    "gamers",
    "fishing",
    "hiking",
    "coffee-lovers",
    "dog-moms",
    "runners",
    "bakers",
    "pilots",
    "programmers",
    "farmers",
    "musicians",
]
# A theme word no clone has: the search that matches (almost) nothing.
RARE_THEME = "zeppelin"

STATUS_MIX = (  # (status, share), laid over completed clones; the newest few are in flight
    ("partial", 0.04),
    ("failed", 0.03),
    ("cancelled", 0.005),
)
IN_FLIGHT = ("queued", "processing", "retrying")


@dataclass(frozen=True)
class BuildReport:
    jobs: int
    seconds: float
    rows: dict[str, int]


def _columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str, str | None, bool]]:
    """(name, type, default, is_generated) of a table's columns, in order."""
    rows = conn.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid),
               a.attgenerated <> '' OR a.attidentity <> ''
        FROM pg_attribute a
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (table,),
    ).fetchall()
    return [(r[0], r[1], r[2], bool(r[3])) for r in rows]


def job_tables(conn: psycopg.Connection) -> list[str]:
    """Every table (partitioned parents included, partitions not) with a ``job_id`` column."""
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'job_id' AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname NOT LIKE 'scale\\_%%'
        ORDER BY c.relname
        """
    ).fetchall()
    return [r[0] for r in rows]


def _expr(table: str, name: str, typ: str, default: str | None) -> str | None:
    """The clone's value of one column (None: its default)."""
    override = OVERRIDES.get(table, {}).get(name)
    if override:
        return override
    col = f"t.{sql.Identifier(name).as_string(None)}"
    if name == "job_id":
        return "m.new_id"
    if default and default.startswith(("nextval(", "pg_current_xact_id(")):
        return None  # a serial (job_events.seq, ids) or the writing transaction's id
    if typ.startswith("timestamp"):
        return f"{col} + m.shift"
    if typ == "text":
        return f"replace({col}, m.tmpl, m.new_id)"
    if typ == "jsonb":
        return f"replace({col}::text, m.tmpl, m.new_id)::jsonb"
    return col


def _clone_sql(conn: psycopg.Connection, table: str) -> str:
    cols = [(n, t, d) for n, t, d, generated in _columns(conn, table) if not generated]
    maybe = [(n, _expr(table, n, t, d)) for n, t, d in cols]
    pairs = [(n, e) for n, e in maybe if e is not None]
    names = ", ".join(sql.Identifier(n).as_string(None) for n, _ in pairs)
    exprs = ", ".join(e for _, e in pairs)
    # seq follows the clone's order, so the log's order is (about) the order things happened.
    order = "m.n, t.seq" if table == "job_events" else "m.n"
    return (
        f"INSERT INTO {sql.Identifier(table).as_string(None)} ({names}) "
        f"SELECT {exprs} FROM scale_map m "
        f"JOIN {sql.Identifier('scale_tpl_' + table).as_string(None)} t ON t.job_id = m.tmpl "
        f"WHERE m.n BETWEEN %(lo)s AND %(hi)s ORDER BY {order}"
    )


def _jobs_sql(conn: psycopg.Connection) -> str:
    """The jobs rows: the template's, with the clone's words, status and times."""
    special = {
        "theme": "m.theme",
        "style": "m.style",
        "niche": "m.niche",
        "prompt": "CASE WHEN t.prompt IS NULL THEN NULL ELSE m.theme || ' in a ' || m.style "
        "|| ' style for ' || m.niche END",
        "status": "m.status",
        "error": "CASE WHEN m.status IN ('failed', 'partial') "
        "THEN 'PermanentError: printify answered 400 (blueprint unavailable)' ELSE t.error END",
        "last_error": "CASE WHEN m.status IN ('failed', 'retrying') "
        "THEN 'RetryableError: printify answered 503' ELSE t.last_error END",
        "finished_at": "CASE WHEN m.status IN ('queued', 'processing', 'retrying') THEN NULL "
        "ELSE t.finished_at + m.shift END",
        "cancelled_at": "CASE WHEN m.status = 'cancelled' THEN t.finished_at + m.shift "
        "ELSE t.cancelled_at + m.shift END",
        "cancelled_by": "CASE WHEN m.status = 'cancelled' THEN 'seller' ELSE t.cancelled_by END",
    }
    cols = [(n, t, d) for n, t, d, generated in _columns(conn, "jobs") if not generated]
    maybe = [(n, special.get(n) or _expr("jobs", n, t, d)) for n, t, d in cols]
    pairs = [(n, e) for n, e in maybe if e is not None]
    names = ", ".join(sql.Identifier(n).as_string(None) for n, _ in pairs)
    exprs = ", ".join(e for _, e in pairs)
    return (
        f"INSERT INTO jobs ({names}) SELECT {exprs} FROM scale_map m "
        "JOIN scale_tpl_jobs t ON t.job_id = m.tmpl "
        "WHERE m.n BETWEEN %(lo)s AND %(hi)s ORDER BY m.n"
    )


def _map(conn: psycopg.Connection, templates: list[str], jobs: int, days: int, seed: str) -> None:
    """scale_map: one row per clone (its number, id, template, time shift, words, status)."""
    conn.execute("DROP TABLE IF EXISTS scale_map")
    conn.execute(
        """
        CREATE UNLOGGED TABLE scale_map AS
        WITH base AS (
            SELECT n,
                   -- Four independent uniform numbers from one hash.
                   ('x' || substr(md5(%(seed)s || n), 1, 8))::bit(32)::bigint / 4294967296.0 AS r1,
                   ('x' || substr(md5(%(seed)s || n), 9, 8))::bit(32)::bigint / 4294967296.0 AS r2,
                   ('x' || substr(md5(%(seed)s || n), 17, 8))::bit(32)::bigint / 4294967296.0
                       AS r3,
                   ('x' || substr(md5(%(seed)s || n), 25, 8))::bit(32)::bigint / 4294967296.0
                       AS r4
            FROM generate_series(1, %(jobs)s) AS n
        ), placed AS (
            SELECT b.*,
                   -- The status's draw, independent of the words (the niche's is r4).
                   (r2 * 7919 + r3 * 104729) - floor(r2 * 7919 + r3 * 104729) AS r5,
                   -- Day by number (so ids are spread evenly over the year), then a daily
                   -- rhythm: more jobs in the afternoon than at night (a warped uniform).
                   date_trunc('day', now()) - make_interval(days => %(days)s)
                     + make_interval(days => ((n - 1) * %(days)s / %(jobs)s)::int)
                     + make_interval(secs => 86400 * (r1 - 0.12 * sin(2 * pi() * r1)))
                     AS at
            FROM base b
        )
        SELECT p.n,
               md5(%(seed)s || ':' || p.n)::uuid::text AS new_id,
               (%(templates)s::text[])[1 + (p.n %% %(count)s)] AS tmpl,
               p.at, p.r2, p.r3, p.r4,
               (%(themes)s::text[])[1 + floor(p.r2 * %(n_themes)s)::int] || ' '
                 || (%(themes)s::text[])[1 + floor(p.r3 * %(n_themes)s)::int] AS theme,
               (%(styles)s::text[])[1 + floor(p.r3 * %(n_styles)s)::int] AS style,
               (%(niches)s::text[])[1 + floor(p.r4 * %(n_niches)s)::int] AS niche,
               CASE
                 WHEN p.at > now() - interval '10 minutes'
                   THEN (ARRAY['queued', 'processing', 'retrying'])[1 + (p.n %% 3)]
                 WHEN p.r5 < %(partial)s THEN 'partial'
                 WHEN p.r5 < %(partial)s + %(failed)s THEN 'failed'
                 WHEN p.r5 < %(partial)s + %(failed)s + %(cancelled)s THEN 'cancelled'
                 ELSE 'completed'
               END AS status
        FROM placed p
        """,
        {
            "seed": seed,
            "jobs": jobs,
            "days": days,
            "templates": templates,
            "count": len(templates),
            "themes": THEMES,
            "n_themes": len(THEMES),
            "styles": STYLES,
            "n_styles": len(STYLES),
            "niches": NICHES,
            "n_niches": len(NICHES),
            "partial": STATUS_MIX[0][1],
            "failed": STATUS_MIX[1][1],
            "cancelled": STATUS_MIX[2][1],
        },
    )
    conn.execute(
        "ALTER TABLE scale_map ADD COLUMN shift interval; "
        "UPDATE scale_map m SET shift = m.at - j.created_at FROM jobs j WHERE j.job_id = m.tmpl; "
        "CREATE UNIQUE INDEX ON scale_map (n); ANALYZE scale_map"
    )


def _templates(conn: psycopg.Connection, tables: Iterable[str], templates: list[str]) -> None:
    for table in ["jobs", *tables]:
        tpl = sql.Identifier(f"scale_tpl_{table}")
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(tpl))
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT * FROM {} WHERE job_id = ANY(%s)").format(
                tpl, sql.Identifier(table)
            ),
            (templates,),
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} (job_id)").format(tpl))


def build(
    dsn: str, templates: list[str], jobs: int, *, days: int = 365, batch: int = 25_000
) -> BuildReport:
    """Clone ``templates`` (job ids of real, finished jobs) into ``jobs`` jobs over ``days``."""
    if not templates:
        raise ValueError("no template jobs to clone")
    start = time.monotonic()
    seed = f"scale-{int(time.time())}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [t for t in job_tables(conn) if t not in SKIPPED]
        _templates(conn, tables, templates)
        kept = [
            t
            for t in tables
            if conn.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(f"scale_tpl_{t}"))
            ).fetchone()
            == (True,)
        ]
        _map(conn, templates, jobs, days, seed)
        statements = [("jobs", _jobs_sql(conn))] + [(t, _clone_sql(conn, t)) for t in kept]
        # Indexes are built once at the end rather than kept up to date row by row (several
        # times faster); the keys' own indexes stay, a conflict must still be one.
        indexes = _secondary_indexes(conn, ["jobs", *kept])
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        # A year of the partitioned tables gets its own periods (the DEFAULT partition would
        # otherwise hold it all, and retention could drop none of it).
        _ensure_partitions(conn, days)
        # The summaries' triggers (migration 0038) would append a delta per row cloned: they
        # are off for the copy and the summaries recounted once from the rows after it.
        summarised: list[str] = [t for t in ("jobs", "images", "products") if t in ["jobs", *kept]]
        for table in summarised:
            conn.execute(
                sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table))
            )
        try:
            for lo in range(1, jobs + 1, batch):
                hi = min(jobs, lo + batch - 1)
                # One transaction per batch: the log's entries of a batch share a commit (xid),
                # as a fold's do.
                with conn.transaction():
                    for _table, statement in statements:
                        conn.execute(statement.encode(), {"lo": lo, "hi": hi})
                logger.info("built jobs=%d/%d elapsed_s=%.0f", hi, jobs, time.monotonic() - start)
        finally:
            for table in summarised:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(sql.Identifier(table))
                )
            conn.execute("SET maintenance_work_mem = '256MB'")
            for name, definition in indexes:
                conn.execute(definition.replace(" INDEX ", " INDEX IF NOT EXISTS ", 1).encode())
                logger.info("index built name=%s elapsed_s=%.0f", name, time.monotonic() - start)
        if _has_function(conn, "pod_rebuild_job_summaries"):
            conn.execute("SELECT pod_rebuild_job_summaries()")
            logger.info("summaries rebuilt elapsed_s=%.0f", time.monotonic() - start)
        _dead_letters(conn, jobs)
        _alerts(conn, jobs)
        _metrics(conn)
        _screening_flags(conn, jobs)
        for table in ["jobs", *tables]:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"scale_tpl_{table}"))
            )
        conn.execute("DROP TABLE IF EXISTS scale_map")
        conn.execute("ANALYZE")
        rows = {
            t: _count(conn, t)
            for t in ["jobs", *tables, "dead_letters", "alerts", "metrics_minute"]
        }
    return BuildReport(jobs=jobs, seconds=time.monotonic() - start, rows=rows)


def _has_function(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT to_regproc(%s) IS NOT NULL", (name,)).fetchone() == (True,)


def _ensure_partitions(conn: psycopg.Connection, days: int) -> None:
    """Periods of their own for the partitioned tables over the year being built (migration
    0039's function; a database from before it has none to make)."""
    if not _has_function(conn, "pod_ensure_partitions"):
        return
    for table in ("job_events", "metrics_minute"):
        conn.execute(
            "SELECT pod_ensure_partitions(%s::regclass, now() - make_interval(days => %s),"
            " now() + interval '1 day')",
            (table, days + 2),
        )


def _secondary_indexes(conn: psycopg.Connection, tables: list[str]) -> list[tuple[str, str]]:
    """(name, definition) of the tables' indexes that back no constraint (a partitioned
    table's own, not its partitions')."""
    rows = conn.execute(
        """
        SELECT i.relname, pg_get_indexdef(x.indexrelid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY(%s) AND t.relnamespace = current_schema()::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        """,
        (tables,),
    ).fetchall()
    # A partitioned table's index reads back as "ON ONLY": re-run as it is, it would index the
    # parent alone (invalid, and no partition indexed: every stream a sequential scan).
    return [(str(r[0]), str(r[1]).replace(" ON ONLY ", " ON ", 1)) for r in rows]


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _dead_letters(conn: psycopg.Connection, jobs: int) -> None:
    """About one dead letter per 300 jobs, a third of them replayed."""
    conn.execute(
        """
        INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, stage, job_id, error_class,
                                  message, retryable, original_topic, replay_topic, replay_value,
                                  headers, failed_at, recorded_at, replayed_at, replay_count)
        SELECT s.stage || '.dlq', i %% 3, 1000000 + i, s.stage, m.new_id, s.error_class,
               s.message, s.retryable, s.input, s.input,
               convert_to('{"job_id": "' || m.new_id || '", "type": "' || s.event || '"}', 'UTF8'),
               jsonb_build_object('error.class', s.error_class, 'error.stage', s.stage),
               m.at + interval '2 minutes', m.at + interval '2 minutes',
               CASE WHEN i %% 3 = 0 THEN m.at + interval '3 hours' END,
               CASE WHEN i %% 3 = 0 THEN 1 ELSE 0 END
        FROM generate_series(1, greatest(1, %(n)s)) AS i
        JOIN scale_map m ON m.n = 1 + (i * 297) %% %(jobs)s
        CROSS JOIN LATERAL (
            SELECT * FROM (VALUES
                ('generator', 'jobs.requested.normal', 'job.requested', 'PermanentError',
                 'claude answered 400: prompt refused', false),
                ('printify', 'images.generated', 'image.generated', 'RetryableError',
                 'printify answered 503 after 8 attempts', true),
                ('publisher', 'products.created', 'product.created', 'PermanentError',
                 'printify answered 422: variant unavailable', false),
                ('monitor', 'published', 'product.published', 'ValidationError',
                 'payload does not match product.published', false)
            ) AS v(stage, input, event, error_class, message, retryable)
            OFFSET i %% 4 LIMIT 1
        ) AS s
        ON CONFLICT DO NOTHING
        """,
        {"n": jobs // 300, "jobs": jobs},
    )


def _alerts(conn: psycopg.Connection, jobs: int) -> None:
    """About one alert per 300 jobs, all resolved (one per condition may be open)."""
    conn.execute(
        """
        INSERT INTO alerts (condition_key, type, severity, message, details, status, created_at,
                            updated_at, resolved_at, notified_at)
        SELECT a.type || ':' || a.subject, a.type, a.severity, a.message,
               jsonb_build_object('value', round((i %% 97)::numeric / 10, 1)), 'resolved',
               m.at, m.at + interval '20 minutes', m.at + interval '20 minutes', m.at
        FROM generate_series(1, greatest(1, %(n)s)) AS i
        JOIN scale_map m ON m.n = 1 + (i * 331) %% %(jobs)s
        CROSS JOIN LATERAL (
            SELECT * FROM (VALUES
                ('worker_down', 'generator-' || (i %% 4), 'critical', 'worker went silent'),
                ('error_rate', 'all', 'warning', 'error rate above 5%% over 15 minutes'),
                ('consumer_lag', 'printify', 'warning', 'consumer lag above 1000'),
                ('dlq_growth', 'publisher', 'info', 'dead letters arriving')
            ) AS v(type, subject, severity, message)
            OFFSET i %% 4 LIMIT 1
        ) AS a
        """,
        {"n": jobs // 300, "jobs": jobs},
    )


def _metrics(conn: psycopg.Connection) -> None:
    """Every metric the templates' run wrote, on every minute of the retention window (7 days)."""
    conn.execute(
        """
        INSERT INTO metrics_minute (name, labels, minute, kind, count, sum, min, max, last,
                                    buckets, updated_at)
        SELECT s.name, s.labels, mm, s.kind, s.count, s.sum, s.min, s.max, s.last, s.buckets, mm
        FROM (SELECT DISTINCT ON (name, labels) * FROM metrics_minute
              ORDER BY name, labels, minute DESC) AS s
        CROSS JOIN generate_series(date_trunc('minute', now()) - interval '7 days',
                                   date_trunc('minute', now()) - interval '1 hour',
                                   interval '1 minute') AS mm
        ON CONFLICT DO NOTHING
        """
    )


def _screening_flags(conn: psycopg.Connection, jobs: int) -> None:
    """About one flag per 100 jobs (a few checks, mostly allowed after review)."""
    conn.execute(
        """
        INSERT INTO screening_flags (job_id, image_index, generation, "check", outcome, flagged_at)
        SELECT m.new_id, 0, 0,
               (ARRAY['deny_list', 'risk_review', 'rendered_text', 'near_duplicate'])[1 + i %% 4],
               (ARRAY['review', 'allow', 'block', 'review'])[1 + (i / 4) %% 4],
               m.at + interval '1 minute'
        FROM generate_series(1, greatest(1, %(n)s)) AS i
        JOIN scale_map m ON m.n = 1 + (i * 101) %% %(jobs)s
        ON CONFLICT DO NOTHING
        """,
        {"n": jobs // 100, "jobs": jobs},
    )


def disk(dsn: str) -> list[tuple[str, int]]:
    """pg_total_relation_size per table (a partitioned table: its partitions'), largest first."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT coalesce(parent.relname, c.relname) AS name,
                   sum(pg_total_relation_size(c.oid))::bigint
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
            LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
            LEFT JOIN pg_class parent ON parent.oid = i.inhparent
            WHERE c.relkind = 'r'
            GROUP BY 1 ORDER BY 2 DESC
            """
        ).fetchall()
    return [(r[0], int(r[1])) for r in rows]
