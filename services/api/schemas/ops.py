"""Operations (``/metrics``, ``/alerts``, ``/stats``, ``/dashboard``, ``/screening``): what it all
adds up to."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    Field,
)

from services.api.schemas.common import _Wire
from services.api.schemas.jobs import JobView
from services.api.schemas.sales import SalesFigures
from shared.contract.events import ScreeningCheck, ScreeningDecision

# ------------------------------------------------------------------ metrics, alerts, stats


class MetricPoint(_Wire):
    """One metric's one minute: ``value`` is the count (counter), the average (histogram) or
    the latest sample (gauge)."""

    name: str
    value: float
    labels: dict[str, Any]
    timestamp: datetime
    kind: Literal["counter", "histogram", "gauge"]
    count: int


class MetricSeries(_Wire):
    """``GET /metrics?name=`` answer: the metric's latest per-minute rollups, newest first."""

    name: str
    metrics: list[MetricPoint]


class AlertSeverity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    """An alert is open while its condition holds, then resolved."""

    OPEN = "open"
    RESOLVED = "resolved"


class AlertView(_Wire):
    """One alert raised by the monitor."""

    id: int
    type: str
    severity: AlertSeverity
    message: str
    status: AlertStatus
    condition_key: str
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    notified_at: datetime | None


class AlertList(_Wire):
    """``GET /alerts`` answer: newest first."""

    alerts: list[AlertView]


class JobTotals(_Wire):
    """Jobs by status."""

    total: int
    queued: int
    processing: int
    retrying: int
    completed: int
    partial: int
    failed: int
    # Beside the seed's: total is every job, these included.
    awaiting_review: int = 0
    cancelled: int = 0


class StageStats(_Wire):
    """One stage: its live instances and their counters, its consumer lag and dead letters."""

    instances: int
    in_flight: int
    processed: int
    failed: int
    lag: int | None = Field(description="Messages behind (latest sample); null when unknown")
    dlq_size: int


class WorkerStats(_Wire):
    """Live instances (a heartbeat within 30 s) and silent ones, per stage."""

    running: int
    error: int
    stages: dict[str, StageStats]


class QueueStats(_Wire):
    """What waits: consumer lag summed over the stages, and dead letters not replayed."""

    lag: int | None
    dlq_size: int


class WorkerView(_Wire):
    """One service instance as its heartbeats describe it."""

    id: str
    service: str
    host: str
    pid: int
    partitions: list[str]
    status: Literal["running", "stale", "stopped"]
    last_heartbeat: datetime
    started_at: datetime
    in_flight: int
    processed: int
    failed: int


class BudgetView(_Wire):
    """A vendor's rate limit, shared by every process of the deployment that calls it."""

    name: str = Field(description="The budget's name (the account is a digest, never a key)")
    label: str = Field(description="What it limits, e.g. Printify publishes (200 per 1800 s)")
    limit: int | None = Field(description="Requests allowed per window")
    window_s: float | None
    used: int = Field(description="Requests counting against the window now")
    blocked_until: datetime | None = Field(
        description="Set while a vendor's 429 stopped every sender (its Retry-After)"
    )
    rate_limited: int = Field(description="429 answers met in all")
    waiting: int = Field(description="Messages waiting for a slot on the live instances")
    jobs_waiting: int = Field(description="Jobs those messages belong to")


class StatsView(_Wire):
    """``GET /stats`` answer: the seed's totals and ``workers`` (each instance), then the
    richer ``jobs`` by status, ``workerStats`` per stage and the ``queue``."""

    total_workers: int = Field(description="Instances heard from lately, live or silent")
    running_workers: int
    error_workers: int = Field(description="Instances whose heartbeat went silent")
    total_jobs: int
    total_completed: int = Field(description="Completed jobs, partial ones included")
    total_failed: int
    workers: list[WorkerView]
    jobs: JobTotals
    worker_stats: WorkerStats
    queue: QueueStats
    budgets: list[BudgetView] = Field(
        default_factory=list, description="Each vendor rate limit: its use and who waits on it"
    )
    sales: SalesFigures | None = Field(
        default=None, description="What sold, all time: Printify's orders not canceled"
    )


class Overview(_Wire):
    """Totals of the jobs created in the dashboard's window."""

    total_jobs: int
    queued: int
    processing: int
    retrying: int
    completed: int
    partial: int
    failed: int
    images: int
    products: int
    published: int
    success_rate: float | None = Field(
        description="Percent of finished jobs that completed (null when none finished)"
    )
    # The seed's names: partial jobs count as completed, as their status shows them.
    completed_jobs: int
    failed_jobs: int
    avg_processing_time: int | None = Field(
        description="Average time from submission to the end, in milliseconds"
    )


class DurationStats(_Wire):
    """Durations in seconds."""

    count: int
    sum: float | None = None
    avg: float | None
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class Aggregate(_Wire):
    """The seed's aggregate of a duration, in milliseconds, over ``period`` (e.g. ``24h``)."""

    count: int
    sum: float | None
    avg: float | None
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    period: str


class Performance(_Wire):
    """The seed's aggregates (ms): job duration (created to finished), image generation
    (request to image) and product creation (image to product); and per-stage durations in
    seconds (``stages``: generation, product, publish)."""

    job_duration: Aggregate
    image_generation: Aggregate
    product_creation: Aggregate
    stages: dict[str, DurationStats]


class Recent(_Wire):
    """The window's latest jobs and alerts (10 each) and how often each metric counted."""

    jobs: list[JobView]
    alerts: list[AlertView]
    metrics: dict[str, int]


class DashboardView(_Wire):
    """``GET /dashboard`` answer."""

    hours: int
    since: datetime | None = Field(
        default=None,
        description="Start of the window: the jobs created since this whole hour (UTC), "
        "the last ``hours`` hours and the current one so far",
    )
    estimated: bool = Field(
        default=False,
        description="Whether min, max and percentiles are read from 5 %-wide buckets (many "
        "jobs in the window: each within a bucket's width); counts, sums and averages are exact",
    )
    overview: Overview
    recent: Recent
    performance: Performance


# ------------------------------------------------------------------ screening (issue 29)


class ScreeningFlagCount(_Wire):
    """How many images one screening check flagged on one day (UTC), with one outcome."""

    day: date
    check: ScreeningCheck
    outcome: ScreeningDecision = Field(
        description="What the check's findings asked for: block, review, or allow (recorded)"
    )
    flagged: int = Field(description="Images (each generation once) the check flagged")


class ScreeningFlagsView(_Wire):
    """``GET /screening``: images flagged per check per day, the newest day first."""

    days: int
    since: date = Field(description="The first day counted (UTC)")
    flags: list[ScreeningFlagCount]
    by_check: dict[str, int] = Field(description="Images flagged per check over the days")
