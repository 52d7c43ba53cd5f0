"""``/dashboard`` and ``/stats`` from the job summaries (migration 0038): the same answers as
the exact SQL on small data, estimates within a bucket's width when the window holds many jobs,
and plans that read no big table on a database of many jobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from bench.dashboard import build
from services.api import ops_queries
from shared.adapters.store import alerts, job_summaries, metrics
from shared.platform.db import open_pool
from tests.services.api.conftest import serve
from tests.shared.adapters.store.test_job_summaries import _fold, _mixed_run
from tests.support.infra import migrated_database


@pytest.fixture(scope="module")
def folded(migrated_db: str) -> str:
    """A mixed run folded by the monitor: jobs in this hour and the two before."""
    asyncio.run(_fold(migrated_db, _mixed_run(datetime.now(UTC) - timedelta(minutes=30)), 5))
    return migrated_db


def _exact_stats(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())


def test_stats_counts_every_job_by_status(api: httpx.Client, folded: str) -> None:
    body = api.get("/stats").json()
    exact = _exact_stats(folded)
    assert body["totalJobs"] == sum(exact.values())
    by_status = {k: v for k, v in body["jobs"].items() if k != "total" and v}
    assert by_status == {
        k.replace("awaiting_review", "awaitingReview"): v for k, v in exact.items()
    }
    assert body["totalCompleted"] == exact.get("completed", 0) + exact.get("partial", 0)


def _overview_exact(url: str, since: datetime) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed'),"
            " count(*) FILTER (WHERE status = 'failed'),"
            " sum(images_done), sum(products_done), sum(publications_done)"
            " FROM jobs WHERE created_at >= %s",
            (since,),
        ).fetchone()
    assert row is not None
    keys = ("totalJobs", "completed", "failed", "images", "products", "published")
    return dict(zip(keys, (int(v or 0) for v in row), strict=True))


@pytest.fixture(scope="module")
def estimating(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    """The API reading durations from the buckets whatever the window holds."""
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        dashboard_exact_max_jobs=0,
    ) as client:
        yield client


def test_dashboard_exact_and_from_buckets(
    api: httpx.Client, estimating: httpx.Client, folded: str
) -> None:
    exact = api.get("/dashboard", params={"hours": 3}).json()
    estimated = estimating.get("/dashboard", params={"hours": 3}).json()
    assert exact["estimated"] is False and estimated["estimated"] is True
    since = datetime.fromisoformat(exact["since"])
    # The window starts on a whole hour, 3 hours before the current one began.
    assert since.minute == since.second == since.microsecond == 0
    assert timedelta(hours=3) <= datetime.now(UTC) - since < timedelta(hours=4, minutes=1)
    assert estimated["since"] == exact["since"]
    counted = _overview_exact(folded, since)
    for body in (exact, estimated):
        overview = body["overview"]
        assert {k: overview[k] for k in counted} == counted
    e_avg = exact["overview"].pop("avgProcessingTime")
    assert abs(estimated["overview"].pop("avgProcessingTime") - e_avg) <= 1
    assert exact["overview"] == estimated["overview"]
    # Counts, sums and averages are exact either way; the rest within a bucket's width (5 %).
    for name in ("generation", "product", "publish"):
        e, b = exact["performance"]["stages"][name], estimated["performance"]["stages"][name]
        assert e["count"] == b["count"] > 0, name
        assert b["sum"] == pytest.approx(e["sum"], abs=1e-6)
        assert b["avg"] == pytest.approx(e["avg"], abs=1e-6)
        for key in ("min", "max", "p50", "p95", "p99"):
            assert abs(b[key] - e[key]) <= 0.05 * e[key] + 0.001, (name, key, b[key], e[key])
    e, b = exact["performance"]["jobDuration"], estimated["performance"]["jobDuration"]
    assert e["count"] == b["count"] > 0 and b["sum"] == pytest.approx(e["sum"], abs=0.1)


def test_metric_counts_per_hour_equal_the_minutes(folded: str) -> None:
    """The window's counts of each counter, from the hourly rows, as the minutes sum them."""

    async def both(since: datetime) -> tuple[dict[str, int], dict[str, int]]:
        async with await psycopg.AsyncConnection.connect(folded) as conn:
            return (
                await metrics.counts_since(conn, since),
                await metrics.counts_since_hour(conn, since),
            )

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for since in (hour, hour - timedelta(hours=2), hour - timedelta(days=3)):
        minutes, hours = asyncio.run(both(since))
        assert hours == minutes and (since < hour - timedelta(hours=1)) <= bool(minutes)


def test_the_window_holds_the_jobs_created_since_its_first_hour(
    estimating: httpx.Client, folded: str
) -> None:
    for hours in (1, 2, 5):
        body = estimating.get("/dashboard", params={"hours": hours}).json()
        since = datetime.fromisoformat(body["since"])
        assert body["overview"]["totalJobs"] == _overview_exact(folded, since)["totalJobs"]


# ------------------------------------------------------------------ plans on many jobs

# Every statement GET /dashboard and GET /stats run with their parameters (the exact durations
# are not here: they run only on a window of few jobs).
_SINCE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=720)
_READS: dict[str, tuple[str, dict[str, Any]]] = {
    "stats: jobs by status": (job_summaries._STATUS_COUNTS, {}),
    "dashboard: window statuses": (job_summaries._WINDOW_STATUSES, {"since": _SINCE}),
    "dashboard: window durations": (job_summaries._WINDOW_DURATIONS, {"since": _SINCE}),
    "dashboard: recent jobs": (ops_queries._RECENT_JOBS, {"since": _SINCE}),
    "dashboard: recent alerts": (alerts._RECENT, {"since": _SINCE, "limit": 10}),
    "dashboard: metrics": (metrics._COUNTS_SINCE_HOUR, {"since": _SINCE}),
    "stats: instances": (ops_queries._INSTANCES_BY_STAGE, {"live_s": 30.0}),
    "stats: dead letters": (ops_queries._DEAD_LETTERS_BY_STAGE, {}),
    "stats: budgets": (ops_queries._BUDGETS, {}),
}
_BIG = {"jobs", "images", "products", "job_events", "metrics_minute"}


def _scans(plan: dict[str, Any], limited: bool = False) -> Iterator[tuple[str, str, bool]]:
    """(node type, relation, under a Limit) of every node that reads a relation."""
    if "Relation Name" in plan:
        yield plan["Node Type"], plan["Relation Name"], limited
    for child in plan.get("Plans", []):
        yield from _scans(child, limited or plan["Node Type"] == "Limit")


@pytest.fixture(scope="module")
def many_jobs(database_url: str) -> Iterator[str]:
    """A database of its own with 60,000 jobs over a year (an image and a product each)."""
    with migrated_database(database_url, "pod_many") as url:
        build(url, 60_000, 365)
        yield url


def _plan(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> dict[str, Any]:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}".encode(), params).fetchone()
    assert row is not None
    doc = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    plan: dict[str, Any] = doc[0]["Plan"]
    return plan


def test_dashboard_and_stats_read_no_big_table_whole(many_jobs: str) -> None:
    with psycopg.connect(many_jobs) as conn:
        for what, (sql, params) in _READS.items():
            for node, relation, limited in _scans(_plan(conn, sql, params)):
                if relation in _BIG:
                    # Only the 10 latest jobs, by the index, stopped by the LIMIT.
                    assert what == "dashboard: recent jobs", (what, node, relation)
                    assert node.startswith("Index") and limited, (what, node, relation)
                assert not (relation.startswith("job_h") and node == "Seq Scan"), (what, relation)
        # What /stats and /dashboard ran before 0038 does read the whole of jobs: the check
        # above can fail.
        before = [
            relation
            for _, relation, limited in _scans(
                _plan(conn, "SELECT status, count(*) FROM jobs GROUP BY status", {})
            )
            if not limited
        ]
        assert before == ["jobs"]


async def _both(url: str, hours: int) -> tuple[Any, Any]:
    pool = await open_pool(url, max_size=2)
    try:
        exact = await ops_queries.dashboard(pool, hours, exact_max_jobs=10**9)
        estimated = await ops_queries.dashboard(pool, hours, exact_max_jobs=0)
    finally:
        await pool.close()
    return exact, estimated


@pytest.mark.parametrize("hours", [30, 200, 720])
def test_windows_of_days_read_from_the_day_rows(many_jobs: str, hours: int) -> None:
    """A window of whole days and part days (day rows and hour rows) against the exact SQL
    over thousands of jobs: counts and sums equal, the rest within 5 %."""
    exact, estimated = _both_sync(many_jobs, hours)
    assert estimated.estimated and not exact.estimated
    assert estimated.overview.model_dump(exclude={"avg_processing_time"}) == (
        exact.overview.model_dump(exclude={"avg_processing_time"})
    )
    assert exact.overview.total_jobs > 60_000 * hours / (365 * 24) * 0.9
    for name, e in exact.performance.stages.items():
        b = estimated.performance.stages[name]
        assert b.count == e.count > 0, name
        assert b.sum == pytest.approx(e.sum, rel=1e-9)
        for key in ("min", "max", "p50", "p95", "p99"):
            want, got = getattr(e, key), getattr(b, key)
            assert abs(got - want) <= 0.05 * want + 0.001, (name, key, got, want)


def _both_sync(url: str, hours: int) -> tuple[Any, Any]:
    return asyncio.run(_both(url, hours))
