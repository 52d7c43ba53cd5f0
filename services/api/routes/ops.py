"""Operations: ``/metrics`` (JSON or Prometheus text), ``/alerts``, ``/stats``, ``/dashboard``,
``/screening``.

Everything is read from what the monitor folds and samples; nothing here touches Kafka.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.api import ops_queries
from services.api.auth import Principal
from services.api.schemas.common import COMMON_ERRORS
from services.api.schemas.ops import (
    AlertList,
    AlertSeverity,
    AlertStatus,
    AlertView,
    DashboardView,
    MetricPoint,
    MetricSeries,
    ScreeningFlagsView,
    StatsView,
)
from services.api.schemas.sales import SalesFigures
from services.api.state import State
from services.api.text import IsoDateTime
from shared.adapters.store import alerts as alert_store
from shared.adapters.store import metrics as metric_store
from shared.adapters.store import orders as order_store
from shared.adapters.store import workers as worker_store

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["operations"], responses=COMMON_ERRORS)


@router.get(
    "/metrics",
    response_model=MetricSeries,
    responses={
        200: {
            "description": "JSON rollups with `name`; the Prometheus text format without",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def get_metrics(
    state: State,
    principal: Principal,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
            description="e.g. jobs_completed, job_duration, consumer_lag; omit for Prometheus",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Rows (minutes x label sets)")] = 100,
) -> MetricSeries | Response:
    """One metric's latest per-minute rollups as JSON, or every metric for Prometheus."""
    if name is None:
        text = ops_queries.prometheus_text(await metric_store.exposition_series(state.pool))
        return Response(text, media_type=PROMETHEUS_CONTENT_TYPE)
    rows = await metric_store.metric_points(state.pool, name, limit)
    return MetricSeries(name=name, metrics=[MetricPoint(**r) for r in rows])


@router.get("/alerts", response_model=AlertList)
async def get_alerts(
    state: State,
    principal: Principal,
    severity: Annotated[AlertSeverity | None, Query(description="Only this severity")] = None,
    status: Annotated[AlertStatus | None, Query(description="open or resolved")] = None,
    since: Annotated[
        IsoDateTime | None,
        Query(description="Created at or after (ISO 8601, e.g. 2026-01-31T12:00Z)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertList:
    """Alerts, newest first."""
    rows = await alert_store.list_alerts(
        state.pool,
        severity=severity.value if severity else None,
        status=status.value if status else None,
        since=since,
        limit=limit,
    )
    return AlertList(alerts=[AlertView(**r) for r in rows])


@router.get("/stats", response_model=StatsView)
async def get_stats(state: State, principal: Principal) -> StatsView:
    """Jobs by status; per stage: live instances, in flight, processed, failed, lag, DLQ; what
    sold (``sales``)."""
    s = state.settings
    workers = await worker_store.list_workers(state.pool, s.worker_stale_s, s.worker_forget_s)
    view = await ops_queries.stats(state.pool, s.worker_stale_s, s.stages(), workers)
    async with state.pool.connection() as conn:
        view.sales = SalesFigures(**await order_store.totals(conn))
    return view


@router.get("/dashboard", response_model=DashboardView)
async def get_dashboard(
    state: State,
    principal: Principal,
    hours: Annotated[int, Query(ge=1, le=720, description="Window in hours")] = 24,
) -> DashboardView:
    """Overview with success rate, the 10 latest jobs, and job and stage durations."""
    return await ops_queries.dashboard(
        state.pool, hours, exact_max_jobs=state.settings.dashboard_exact_max_jobs
    )


@router.get("/screening", response_model=ScreeningFlagsView)
async def get_screening(
    state: State,
    principal: Principal,
    days: Annotated[int, Query(ge=1, le=366, description="Days back, today (UTC) included")] = 7,
) -> Response:
    """Images screening flagged per check per day (UTC) and per outcome (block, review, or
    allow and record), the newest day first."""
    body = await ops_queries.screening(state.pool, days)
    return Response(content=body, media_type="application/json")
