"""The API's SQL for operations: metrics, alerts, stats and the dashboard.

Everything here reads what the monitor wrote (``metrics_minute`` through
:mod:`shared.adapters.store.metrics`),
``alerts``, ``workers``, ``dead_letters`` and ``jobs``.
"""

from __future__ import annotations

import math
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.api.queries import _JOB_COLUMNS
from shared.adapters.store import alerts as alert_store
from shared.adapters.store import metrics as metric_store
from shared.adapters.store import workers as worker_store
from shared.adapters.store.metrics import (
    DURATION_BUCKETS,
    Series,
    bucket_label,
)

JOB_STATUSES = ("queued", "processing", "retrying", "completed", "partial", "failed")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _name(raw: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in raw)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


def _labels(labels: dict[str, Any], extra: dict[str, str] | None = None) -> str:
    items = {**{_name(k): v for k, v in sorted(labels.items())}, **(extra or {})}
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items.items()) + "}"


def prometheus_text(series: list[Series]) -> str:
    """The Prometheus text exposition (format 0.0.4) of ``series``.

    Counters: ``pod_<name>_total``; histograms (durations, seconds):
    ``pod_<name>_seconds_bucket{le=...}`` (cumulative), ``_sum``, ``_count``; gauges:
    ``pod_<name>``. Counters and histograms are running totals (``metric_totals``), so they
    never fall when the monitor expires old minutes (Prometheus would read a drop as a reset).
    """
    lines: list[str] = []
    typed: set[str] = set()
    for s in series:
        base = _name(s.name)
        if s.kind == "counter":
            metric = f"pod_{base}_total"
            kind = "counter"
        elif s.kind == "histogram":
            metric = f"pod_{base}_seconds"
            kind = "histogram"
        else:
            metric = f"pod_{base}"
            kind = "gauge"
        if metric not in typed:
            typed.add(metric)
            lines.append(f"# HELP {metric} POD Engine {s.name} ({kind})")
            lines.append(f"# TYPE {metric} {kind}")
        if s.kind == "counter":
            lines.append(f"{metric}{_labels(s.labels)} {s.count}")
        elif s.kind == "histogram":
            bounds = {bucket_label(b): b for b in DURATION_BUCKETS}
            for le in s.buckets:
                bounds.setdefault(le, float(le))
            cumulative = 0
            for le, _ in sorted(bounds.items(), key=lambda kv: kv[1]):
                cumulative += s.buckets.get(le, 0)
                lines.append(f"{metric}_bucket{_labels(s.labels, {'le': le})} {cumulative}")
            lines.append(f"{metric}_sum{_labels(s.labels)} {_number(s.sum)}")
            lines.append(f"{metric}_count{_labels(s.labels)} {s.count}")
        else:
            lines.append(f"{metric}{_labels(s.labels)} {_number(s.value)}")
    return "\n".join(lines) + "\n"


_JOBS_BY_STATUS = "SELECT status, count(*) AS n FROM jobs GROUP BY status"

# Per stage: its instances live (a heartbeat within %(live_s)s seconds) and silent, and the live
# ones' counters.
_INSTANCES_BY_STAGE = """
SELECT service,
       count(*) FILTER (WHERE live) AS instances,
       count(*) FILTER (WHERE NOT live) AS silent,
       COALESCE(sum(in_flight) FILTER (WHERE live), 0) AS in_flight,
       COALESCE(sum(processed) FILTER (WHERE live), 0) AS processed,
       COALESCE(sum(failed) FILTER (WHERE live), 0) AS failed
FROM (SELECT *, last_heartbeat >= now() - make_interval(secs => %(live_s)s) AS live
      FROM workers WHERE status = 'running') w
GROUP BY service
"""

_DEAD_LETTERS_BY_STAGE = """
SELECT stage, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY stage
"""


# Each shared rate budget that described itself: its limit, how much of it counts now, whether
# a vendor's 429 stopped it, and how many 429s it met.
_BUDGETS = """
SELECT b.name, b.label, b.lim AS limit, b.window_s,
    CASE WHEN b.blocked_until > now() THEN b.blocked_until END AS blocked_until, b.rate_limited,
    (SELECT count(*) FROM rate_grants g WHERE g.name = b.name
        AND (g.released_at IS NULL
             OR g.released_at > now() - make_interval(secs => b.window_s))) AS used
FROM rate_budgets b WHERE b.label IS NOT NULL ORDER BY b.label, b.name
"""


async def budgets(pool: AsyncConnectionPool, live_s: float) -> list[dict[str, Any]]:
    """The shared rate budgets, each with the messages waiting for it on the live instances."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_BUDGETS)
        rows = list(await cur.fetchall())
    waiting = {
        r["what"]: r
        for r in await worker_store.waiting(pool, live_s)
        if r["kind"] == "vendor_limit"
    }
    for row in rows:
        w = waiting.get(row["label"]) or {}
        row["waiting"] = int(w.get("waiting", 0))
        row["jobs_waiting"] = int(w.get("jobs", 0))
    return rows


async def stats(pool: AsyncConnectionPool, live_s: float, names: list[str]) -> dict[str, Any]:
    """Jobs by status, live instances per stage (a heartbeat within ``live_s``), lag and dead
    letters (``StatsView`` shape), for the stages ``names`` and any other that reports."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_JOBS_BY_STATUS)
        by_status = {r["status"]: int(r["n"]) for r in await cur.fetchall()}
        await cur.execute(_INSTANCES_BY_STAGE, {"live_s": live_s})
        workers = {r["service"]: r for r in await cur.fetchall()}
        lags = await metric_store.latest_lag(conn)
        await cur.execute(_DEAD_LETTERS_BY_STAGE)
        dlq = {r["stage"]: int(r["n"]) for r in await cur.fetchall()}
    stages: dict[str, dict[str, Any]] = {}
    for stage in [*names, *sorted(set(workers) - set(names))]:
        w = workers.get(stage) or {}
        stages[stage] = {
            "instances": int(w.get("instances", 0)),
            "in_flight": int(w.get("in_flight", 0)),
            "processed": int(w.get("processed", 0)),
            "failed": int(w.get("failed", 0)),
            "lag": lags.get(stage),
            "dlq_size": dlq.get(stage, 0),
        }
    running = sum(int(w["instances"]) for w in workers.values())
    silent = sum(int(w["silent"]) for w in workers.values())
    total_jobs = sum(by_status.values())
    return {
        # The seed's names: a partial job counts as completed, as its status shows it.
        "total_workers": running + silent,
        "running_workers": running,
        "error_workers": silent,
        "total_jobs": total_jobs,
        "total_completed": by_status.get("completed", 0) + by_status.get("partial", 0),
        "total_failed": by_status.get("failed", 0),
        "jobs": {"total": total_jobs} | {s: by_status.get(s, 0) for s in JOB_STATUSES},
        "worker_stats": {
            "running": running,
            "error": silent,
            "stages": stages,
        },
        "queue": {
            "lag": sum(lags.values()) if lags else None,
            "dlq_size": sum(dlq.values()),
        },
        "budgets": await budgets(pool, live_s),
    }


def _duration_sql(values: str) -> str:
    """count/sum/avg/min/max/percentiles of a subquery yielding ``d`` (seconds)."""
    return f"""
        SELECT count(d) AS count, sum(d) AS sum, avg(d) AS avg, min(d) AS min, max(d) AS max,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY d) AS p95,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99
        FROM ({values}) AS durations
    """  # noqa: S608  # fixed fragments only


# Per-stage durations, from the rows the fold keeps (each row's time is its event's time).
_STAGE_DURATIONS = {
    # request -> image generated (prompt + image)
    "generation": """
        SELECT GREATEST(0, extract(epoch FROM i.created_at - j.created_at))::float8 AS d
        FROM images i JOIN jobs j USING (job_id) WHERE j.created_at >= %(since)s""",
    # image generated -> product created
    "product": """
        SELECT GREATEST(0, extract(epoch FROM p.created_at - i.created_at))::float8 AS d
        FROM products p JOIN images i USING (job_id, image_index) JOIN jobs j USING (job_id)
        WHERE j.created_at >= %(since)s AND p.product_id IS NOT NULL""",
    # product created -> published
    "publish": """
        SELECT GREATEST(0, extract(epoch FROM p.published_at - p.created_at))::float8 AS d
        FROM products p JOIN jobs j USING (job_id)
        WHERE j.created_at >= %(since)s AND p.published_at IS NOT NULL""",
}
_JOB_DURATIONS = """
    SELECT GREATEST(0, extract(epoch FROM finished_at - created_at))::float8 AS d
    FROM jobs WHERE created_at >= %(since)s AND finished_at IS NOT NULL"""


# The start of the last %(hours)s hours, by the database's clock.
_SINCE = "SELECT now() - make_interval(hours => %(hours)s) AS since"

_OVERVIEW = """
SELECT count(*) AS total_jobs,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'processing') AS processing,
       count(*) FILTER (WHERE status = 'retrying') AS retrying,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'partial') AS partial,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       COALESCE(sum(images_done), 0) AS images,
       COALESCE(sum(products_done), 0) AS products,
       COALESCE(sum(publications_done), 0) AS published
FROM jobs WHERE created_at >= %(since)s
"""

_RECENT_JOBS = f"""
SELECT {_JOB_COLUMNS} FROM jobs WHERE created_at >= %(since)s
ORDER BY created_at DESC, job_id DESC LIMIT 10
"""  # noqa: S608  # fixed columns only


async def dashboard(pool: AsyncConnectionPool, hours: int) -> dict[str, Any]:
    """Overview, the 10 latest jobs and durations over jobs created in the last ``hours``."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SINCE, {"hours": hours})
        row = await cur.fetchone()
        assert row is not None
        params = {"since": row["since"]}
        await cur.execute(_OVERVIEW, params)
        overview = await cur.fetchone()
        assert overview is not None
        finished = overview["completed"] + overview["partial"] + overview["failed"]
        overview["success_rate"] = (
            round(100.0 * overview["completed"] / finished, 2) if finished else None
        )
        await cur.execute(_RECENT_JOBS, params)
        recent = await cur.fetchall()
        alerts = await alert_store.recent(conn, params["since"], 10)
        metrics = await metric_store.counts_since(conn, params["since"])
        await cur.execute(_duration_sql(_JOB_DURATIONS), params)
        job_duration = await cur.fetchone()
        stages = {}
        for stage, values in _STAGE_DURATIONS.items():
            await cur.execute(_duration_sql(values), params)
            stages[stage] = await cur.fetchone()
    assert job_duration is not None
    overview["completed_jobs"] = overview["completed"] + overview["partial"]
    overview["failed_jobs"] = overview["failed"]
    avg = job_duration["avg"]
    overview["avg_processing_time"] = None if avg is None else round(avg * 1000)
    period = f"{hours}h"
    return {
        "hours": hours,
        "overview": overview,
        "recent": {"jobs": recent, "alerts": alerts, "metrics": metrics},
        "performance": {
            # The seed's aggregates, in milliseconds.
            "job_duration": _in_ms(job_duration, period),
            "image_generation": _in_ms(stages["generation"], period),
            "product_creation": _in_ms(stages["product"], period),
            "stages": stages,
        },
    }


def _in_ms(seconds: dict[str, Any] | None, period: str) -> dict[str, Any]:
    """A duration aggregate in seconds as the seed's ``{count, sum, avg, ..., period}`` in ms."""
    row = seconds or {}
    out: dict[str, Any] = {"count": int(row.get("count") or 0), "period": period}
    for key in ("sum", "avg", "min", "max", "p50", "p95", "p99"):
        value = row.get(key)
        out[key] = None if value is None else round(float(value) * 1000, 1)
    return out
