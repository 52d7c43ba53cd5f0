"""The API's SQL for operations: metrics, alerts, stats and the dashboard.

Everything here reads what the monitor wrote (``metrics_minute`` through
:mod:`shared.adapters.store.metrics`),
``alerts``, ``workers``, ``dead_letters`` and ``jobs``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from services.api.queries import _JOB_COLUMNS
from services.api.schemas.jobs import JobView
from services.api.schemas.ops import (
    Aggregate,
    BudgetView,
    DashboardView,
    Overview,
    QueueStats,
    StageStats,
    StatsView,
    WorkerStats,
)
from shared.adapters.store import alerts as alert_store
from shared.adapters.store import job_summaries, screening_flags
from shared.adapters.store import metrics as metric_store
from shared.adapters.store import workers as worker_store
from shared.adapters.store.job_summaries import Histogram, StatusTotals
from shared.adapters.store.metrics import (
    DURATION_BUCKETS,
    Series,
    bucket_label,
)
from shared.adapters.store.workers import WorkerRecord

JOB_STATUSES = (
    "queued", "processing", "retrying", "awaiting_review", "completed", "partial", "failed",
    "cancelled",
)  # fmt: skip


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


def _labels(labels: Mapping[str, object], extra: dict[str, str] | None = None) -> str:
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
SELECT stage AS key, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY stage
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


class _BudgetRow(TypedDict):
    name: str
    label: str
    limit: int | None
    window_s: float | None
    blocked_until: datetime | None
    rate_limited: int
    used: int


class _StageRow(TypedDict):
    service: str
    instances: int
    silent: int
    in_flight: int
    processed: int
    failed: int


class _CountRow(TypedDict):
    key: str
    n: int


async def budgets(pool: AsyncConnectionPool, live_s: float) -> list[BudgetView]:
    """The shared rate budgets, each with the messages waiting for it on the live instances."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(_BudgetRow)) as cur:
        await cur.execute(_BUDGETS)
        rows = await cur.fetchall()
    waiting = {
        r["what"]: r
        for r in await worker_store.waiting(pool, live_s)
        if r["kind"] == "vendor_limit"
    }
    views = []
    for row in rows:
        w = waiting.get(row["label"])
        views.append(
            BudgetView.model_validate(
                {
                    **row,
                    "waiting": int(w["waiting"]) if w else 0,
                    "jobs_waiting": int(w["jobs"]) if w else 0,
                }
            )
        )
    return views


async def _counts(conn: AsyncConnection[Any], sql: str) -> dict[str, int]:
    async with conn.cursor(row_factory=class_row(_CountRow)) as cur:
        await cur.execute(sql)
        return {r["key"]: int(r["n"]) for r in await cur.fetchall()}


async def _stage_rows(conn: AsyncConnection[Any], live_s: float) -> dict[str, _StageRow]:
    async with conn.cursor(row_factory=class_row(_StageRow)) as cur:
        await cur.execute(_INSTANCES_BY_STAGE, {"live_s": live_s})
        return {r["service"]: r for r in await cur.fetchall()}


def _stage(row: _StageRow | None, lag: int | None, dlq_size: int) -> StageStats:
    return StageStats(
        instances=int(row["instances"]) if row else 0,
        in_flight=int(row["in_flight"]) if row else 0,
        processed=int(row["processed"]) if row else 0,
        failed=int(row["failed"]) if row else 0,
        lag=lag,
        dlq_size=dlq_size,
    )


async def stats(
    pool: AsyncConnectionPool, live_s: float, names: list[str], workers: list[WorkerRecord]
) -> StatsView:
    """Jobs by status, live instances per stage (a heartbeat within ``live_s``), lag and dead
    letters, for the stages ``names`` and any other that reports; ``workers`` listed whole."""
    async with pool.connection() as conn:
        by_status = await job_summaries.status_counts(conn)
        per_stage = await _stage_rows(conn, live_s)
        lags = await metric_store.latest_lag(conn)
        dlq = await _counts(conn, _DEAD_LETTERS_BY_STAGE)
    stages = {
        stage: _stage(per_stage.get(stage), lags.get(stage), dlq.get(stage, 0))
        for stage in [*names, *sorted(set(per_stage) - set(names))]
    }
    running = sum(int(w["instances"]) for w in per_stage.values())
    silent = sum(int(w["silent"]) for w in per_stage.values())
    total_jobs = sum(by_status.values())
    return StatsView.model_validate(
        {
            # The seed's names: a partial job counts as completed, as its status shows it.
            "total_workers": running + silent,
            "running_workers": running,
            "error_workers": silent,
            "total_jobs": total_jobs,
            "total_completed": by_status.get("completed", 0) + by_status.get("partial", 0),
            "total_failed": by_status.get("failed", 0),
            "workers": workers,
            "jobs": {"total": total_jobs} | {s: by_status.get(s, 0) for s in JOB_STATUSES},
            "worker_stats": WorkerStats(running=running, error=silent, stages=stages),
            "queue": QueueStats(
                lag=sum(lags.values()) if lags else None, dlq_size=sum(dlq.values())
            ),
            "budgets": await budgets(pool, live_s),
        }
    )


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


# The start of the last %(hours)s hours by the database's clock, down to a whole hour (UTC):
# the summaries count jobs by their creation hour.
_SINCE = "SELECT date_trunc('hour', now() - make_interval(hours => %(hours)s), 'UTC') AS since"


_RECENT_JOBS = f"""
SELECT {_JOB_COLUMNS} FROM jobs WHERE created_at >= %(since)s
ORDER BY created_at DESC, job_id DESC LIMIT 10
"""  # noqa: S608  # fixed columns only


class _DurationRow(TypedDict):
    count: int
    sum: float | None
    avg: float | None
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None


async def _durations(conn: AsyncConnection[Any], sql: str, since: datetime) -> _DurationRow:
    async with conn.cursor(row_factory=class_row(_DurationRow)) as cur:
        await cur.execute(_duration_sql(sql), {"since": since})
        row = await cur.fetchone()
    assert row is not None  # an aggregate has one row
    return row


def _estimated(h: Histogram) -> _DurationRow:
    """A duration's figures from its buckets (count, sum and avg exact)."""
    return {
        "count": h.count,
        "sum": h.sum if h.count else None,
        "avg": h.avg,
        "min": h.min,
        "max": h.max,
        "p50": h.percentile(0.5),
        "p95": h.percentile(0.95),
        "p99": h.percentile(0.99),
    }


def _overview(totals: list[StatusTotals], avg_s: float | None) -> Overview:
    by_status = {t["status"]: t for t in totals}

    def jobs(status: str) -> int:
        return int(by_status[status]["jobs"]) if status in by_status else 0

    completed, partial, failed = jobs("completed"), jobs("partial"), jobs("failed")
    finished = completed + partial + failed
    return Overview.model_validate(
        {
            "total_jobs": sum(int(t["jobs"]) for t in totals),
            **{s: jobs(s) for s in ("queued", "processing", "retrying")},
            "completed": completed,
            "partial": partial,
            "failed": failed,
            "images": sum(int(t["images"]) for t in totals),
            "products": sum(int(t["products"]) for t in totals),
            "published": sum(int(t["published"]) for t in totals),
            "success_rate": round(100.0 * completed / finished, 2) if finished else None,
            "completed_jobs": completed + partial,
            "failed_jobs": failed,
            "avg_processing_time": None if avg_s is None else round(avg_s * 1000),
        }
    )


async def dashboard(
    pool: AsyncConnectionPool, hours: int, *, exact_max_jobs: int = 2000
) -> DashboardView:
    """Overview, the 10 latest jobs and durations over jobs created since the start of the hour
    ``hours`` hours ago: counts from the summaries; durations exact from the rows while the
    window holds at most ``exact_max_jobs`` jobs, from the summaries' buckets above."""
    async with pool.connection() as conn:
        cur = await conn.execute(_SINCE, {"hours": hours})
        since_row = await cur.fetchone()
        assert since_row is not None
        since: datetime = since_row[0]
        async with conn.cursor(row_factory=dict_row) as rows:
            await rows.execute(_RECENT_JOBS, {"since": since})
            recent = [JobView.model_validate(r) for r in await rows.fetchall()]
        alerts = await alert_store.recent(conn, since, 10)
        metrics = await metric_store.counts_since_hour(conn, since)
        totals = await job_summaries.window_statuses(conn, since)
        estimated = sum(int(t["jobs"]) for t in totals) > exact_max_jobs
        if estimated:
            histograms = await job_summaries.window_durations(conn, since)
            job_duration = _estimated(histograms["job"])
            stages = {stage: _estimated(histograms[stage]) for stage in _STAGE_DURATIONS}
        else:
            job_duration = await _durations(conn, _JOB_DURATIONS, since)
            stages = {
                stage: await _durations(conn, values, since)
                for stage, values in _STAGE_DURATIONS.items()
            }
    period = f"{hours}h"
    return DashboardView.model_validate(
        {
            "hours": hours,
            "since": since,
            "estimated": estimated,
            "overview": _overview(totals, job_duration["avg"]),
            "recent": {"jobs": recent, "alerts": alerts, "metrics": metrics},
            "performance": {
                # The seed's aggregates, in milliseconds.
                "job_duration": _in_ms(job_duration, period),
                "image_generation": _in_ms(stages["generation"], period),
                "product_creation": _in_ms(stages["product"], period),
                "stages": stages,
            },
        }
    )


def _in_ms(seconds: _DurationRow, period: str) -> Aggregate:
    """A duration aggregate in seconds as the seed's ``{count, sum, avg, ..., period}`` in ms."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(float(value) * 1000, 1)

    return Aggregate(
        count=int(seconds["count"] or 0),
        sum=ms(seconds["sum"]),
        avg=ms(seconds["avg"]),
        min=ms(seconds["min"]),
        max=ms(seconds["max"]),
        p50=ms(seconds["p50"]),
        p95=ms(seconds["p95"]),
        p99=ms(seconds["p99"]),
        period=period,
    )


async def screening(pool: AsyncConnectionPool, days: int) -> bytes:
    """``GET /screening``'s body (:class:`ScreeningFlagsView` as JSON): images screening flagged
    per check per day (UTC) and outcome over the last ``days`` days, today included, and per
    check over them all. The lists come as JSON from PostgreSQL (a year is thousands of rows)."""
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    counted = await screening_flags.per_day(pool, since)
    return (
        f'{{"days":{int(days)},"since":"{since.isoformat()}",'
        f'"flags":{counted.flags},"byCheck":{counted.by_check}}}'
    ).encode()
