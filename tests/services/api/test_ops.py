"""``/metrics``, ``/alerts``, ``/stats``, ``/dashboard``: served for real, on the monitor's rows."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from psycopg.types.json import Jsonb

from services.monitor.handler import MonitorHandler
from shared.adapters.store import retention
from shared.contract.events import (
    Event,
    JobRequested,
    JobRequestedPayload,
    JobRouting,
    PriceSummary,
    ProductCreated,
    ProductCreatedPayload,
)
from shared.pipeline.runner import MessageContext
from shared.platform.db import open_pool
from tests.support.events import image
from tests.support.infra import unique

_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
SAMPLE = re.compile(
    rf"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{{{_LABEL}(,{_LABEL})*\}})?"
    r" (?P<value>[-+]?(\d+(\.\d+)?([eE][-+]?\d+)?|Inf|NaN))$"
)


async def fold_job(database_url: str) -> str:
    """A one-image, one-product job folded by the monitor's handler (metrics included)."""
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    job = JobRequested(
        job_id=unique("ops"),
        producer="api",
        occurred_at=t0,
        payload=JobRequestedPayload(
            theme="t", style="s", niche="n", product_types=["mug"], count=1
        ),
    )
    img = image(job).model_copy(update={"occurred_at": t0 + timedelta(seconds=4)})
    created = job.derive(
        ProductCreated,
        ProductCreatedPayload(
            image_index=0,
            product_type="mug",
            product_id="p1",
            shop_id="1",
            blueprint_id=1,
            print_provider_id=1,
            variant_count=1,
            title="x",
            routing=JobRouting(product_types=["mug"]),
            prices=PriceSummary(price_min_cents=100),
        ),
        producer="printify",
        key="product",
    ).model_copy(update={"occurred_at": t0 + timedelta(seconds=9)})
    pool = await open_pool(database_url, max_size=2)
    try:
        handler = MonitorHandler(pool)
        events: list[Event] = [job, img, created]
        for n, e in enumerate(events):
            ctx = MessageContext(topic="t", partition=0, offset=n, attempt=0, instance_id="t")
            await handler(e, ctx)
    finally:
        await pool.close()
    return job.job_id


def test_metrics_json_and_prometheus(api: httpx.Client, migrated_db: str) -> None:
    asyncio.run(fold_job(migrated_db))
    stage = unique("stage")
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO metrics_minute (name, labels, minute, kind, count, sum, min, max, last)"
            " VALUES ('consumer_lag', %s, date_trunc('minute', now()), 'gauge', 1, 42, 42, 42,"
            " 42)",
            (Jsonb({"stage": stage}),),
        )

    r = api.get("/metrics", params={"name": "jobs_completed", "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "jobs_completed"
    assert 1 <= len(body["metrics"]) <= 5
    point = body["metrics"][0]
    assert {"name", "value", "labels", "timestamp"} <= set(point)
    assert point["name"] == "jobs_completed" and point["value"] >= 1

    r = api.get("/metrics", params={"name": "job_duration"})
    assert r.status_code == 200 and r.json()["metrics"][0]["kind"] == "histogram"
    assert api.get("/metrics", params={"name": "no_such_metric"}).json()["metrics"] == []

    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not an exposition line: {line!r}"
        samples[line.rsplit(" ", 1)[0]] = float(m["value"].replace("Inf", "inf"))
    assert samples["pod_jobs_completed_total"] >= 1
    assert samples['pod_jobs_submitted_total{priority="normal"}'] >= 1
    assert (
        samples['pod_job_duration_seconds_bucket{le="+Inf"}']
        == samples["pod_job_duration_seconds_count"]
    )
    assert samples['pod_job_duration_seconds_bucket{le="15"}'] >= 1  # this job: 9 s
    assert samples['pod_stage_duration_seconds_count{stage="generation"}'] >= 1
    assert samples[f'pod_consumer_lag{{stage="{stage}"}}'] == 42
    assert "# TYPE pod_job_duration_seconds histogram" in r.text


def test_metrics_rejects_bad_params(api: httpx.Client) -> None:
    for params in ({"limit": 0}, {"limit": "x"}, {"limit": 5000}, {"name": "bad name!"}):
        r = api.get("/metrics", params=params)
        assert r.status_code == 422, params
        assert r.json()["error"] == "validation_failed"


def test_alerts(api: httpx.Client, migrated_db: str) -> None:
    key = unique("test-alert")
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alerts (condition_key, type, severity, message, details, status,"
            " created_at, updated_at, resolved_at) VALUES"
            " (%s, 'lag', 'warning', 'old', '{}', 'resolved', now() - interval '2 hours',"
            "  now() - interval '2 hours', now() - interval '1 hour'),"
            " (%s, 'worker_down', 'critical', 'new', '{\"x\": 1}', 'open', now(), now(), NULL)",
            (key + ":old", key + ":new"),
        )
    try:
        r = api.get("/alerts")
        assert r.status_code == 200
        alerts = r.json()["alerts"]
        times = [a["createdAt"] for a in alerts]
        assert times == sorted(times, reverse=True)
        mine = [a for a in alerts if a["conditionKey"].startswith(key)]
        assert [a["message"] for a in mine] == ["new", "old"]
        assert {"id", "type", "severity", "message", "status", "createdAt", "resolvedAt"} <= set(
            mine[0]
        )
        assert mine[0]["details"] == {"x": 1} and mine[1]["resolvedAt"] is not None

        critical = api.get("/alerts", params={"severity": "critical", "status": "open"}).json()
        assert all(
            a["severity"] == "critical" and a["status"] == "open" for a in critical["alerts"]
        )
        assert any(a["conditionKey"] == key + ":new" for a in critical["alerts"])
        since = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
        recent = api.get("/alerts", params={"since": since}).json()["alerts"]
        assert not any(a["conditionKey"] == key + ":old" for a in recent)

        for params in ({"severity": "loud"}, {"since": "yesterday"}, {"status": "x"}):
            r = api.get("/alerts", params=params)
            assert r.status_code == 422, params
            assert r.json()["error"] == "validation_failed"
    finally:
        with psycopg.connect(migrated_db, autocommit=True) as conn:
            conn.execute("DELETE FROM alerts WHERE starts_with(condition_key, %s)", (key,))


def test_stats(api: httpx.Client, migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workers (instance_id, service, host, pid, in_flight, processed, failed,"
            " status, started_at, last_heartbeat)"
            " VALUES (%s, 'publisher', 'h', 1, 2, 30, 1, 'running', now(), now())",
            (unique("publisher"),),
        )
    r = api.get("/stats")
    assert r.status_code == 200
    body = r.json()
    jobs = body["jobs"]
    assert {"total", "queued", "processing", "completed", "failed"} <= set(jobs)
    assert jobs["total"] == sum(v for k, v in jobs.items() if k != "total")
    publisher = body["workerStats"]["stages"]["publisher"]
    assert publisher["instances"] >= 1 and publisher["inFlight"] >= 2
    assert publisher["processed"] >= 30
    assert {"instances", "inFlight", "processed", "failed", "lag", "dlqSize"} == set(publisher)
    assert set(body["workerStats"]["stages"]) >= {"generator", "printify", "publisher", "monitor"}
    assert {"lag", "dlqSize"} == set(body["queue"])
    # The seed's totals, consistent with the richer figures.
    assert body["totalJobs"] == jobs["total"]
    assert body["totalCompleted"] == jobs["completed"] + jobs["partial"]
    assert body["totalFailed"] == jobs["failed"]
    assert body["runningWorkers"] == body["workerStats"]["running"] >= 1
    assert body["errorWorkers"] == body["workerStats"]["error"]
    assert body["totalWorkers"] == body["runningWorkers"] + body["errorWorkers"]
    assert any(w["service"] == "publisher" and w["processed"] >= 30 for w in body["workers"])


def test_dashboard(api: httpx.Client, migrated_db: str) -> None:
    job_id = asyncio.run(fold_job(migrated_db))
    r = api.get("/dashboard", params={"hours": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["hours"] == 1
    overview = body["overview"]
    assert overview["totalJobs"] >= 1 and overview["completed"] >= 1
    assert 0 <= overview["successRate"] <= 100
    assert overview["completedJobs"] == overview["completed"] + overview["partial"]
    assert overview["failedJobs"] == overview["failed"]
    recent = body["recent"]
    assert set(recent) == {"jobs", "alerts", "metrics"}
    assert len(recent["jobs"]) <= 10 and len(recent["alerts"]) <= 10
    assert all(
        {"jobId", "id", "status", "createdAt", "created_at"} <= set(j) for j in recent["jobs"]
    )
    assert job_id in {j["jobId"] for j in recent["jobs"]} or len(recent["jobs"]) == 10
    duration = body["performance"]["jobDuration"]
    keys = {"count", "sum", "avg", "min", "max", "p50", "p95", "p99", "period"}
    assert set(duration) == keys and duration["period"] == "1h"
    assert duration["count"] >= 1
    assert duration["min"] <= duration["p50"] <= duration["p95"] <= duration["p99"]
    assert duration["p99"] <= duration["max"]
    assert duration["sum"] >= duration["max"]
    stages = body["performance"]["stages"]
    assert set(stages) == {"generation", "product", "publish"}
    assert stages["generation"]["count"] >= 1 and stages["product"]["count"] >= 1
    # The seed's aggregates are in milliseconds; the stages stay in seconds.
    generation = body["performance"]["imageGeneration"]
    assert set(generation) == keys and generation["count"] == stages["generation"]["count"]
    assert generation["max"] == round(stages["generation"]["max"] * 1000, 1)
    assert body["performance"]["productCreation"]["count"] == stages["product"]["count"]
    # Both are the same average: whole milliseconds there, a tenth here (rounded once each).
    assert abs(overview["avgProcessingTime"] - duration["avg"]) <= 0.55
    assert api.get("/dashboard").json()["hours"] == 24

    for hours in (0, 721, "x"):
        r = api.get("/dashboard", params={"hours": hours})
        assert r.status_code == 422, hours


def exposition(api: httpx.Client) -> dict[str, float]:
    """``GET /metrics`` (Prometheus text) as ``{series: value}``."""
    r = api.get("/metrics")
    assert r.status_code == 200
    samples: dict[str, float] = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, f"not an exposition line: {line!r}"
            samples[line.rsplit(" ", 1)[0]] = float(m["value"].replace("Inf", "inf"))
    return samples


async def fold_old_jobs(database_url: str, t0: datetime, n: int) -> None:
    """``n`` low-priority jobs requested at ``t0``, each completed 9 s later, folded twice (a
    redelivery: the fold counts an event once)."""
    events: list[Event] = []
    for _ in range(n):
        job = JobRequested(
            job_id=unique("old"),
            producer="api",
            occurred_at=t0,
            payload=JobRequestedPayload(
                theme="t", style="s", niche="n", product_types=["mug"], count=1, priority="low"
            ),
        )
        img = image(job).model_copy(update={"occurred_at": t0 + timedelta(seconds=4)})
        created = job.derive(
            ProductCreated,
            ProductCreatedPayload(
                image_index=0,
                product_type="mug",
                product_id="p1",
                shop_id="1",
                blueprint_id=68,
                print_provider_id=1,
                variant_count=1,
                title="x",
                routing=JobRouting(product_types=["mug"]),
                prices=PriceSummary(price_min_cents=1499),
            ),
            producer="printify",
            key="product:0:mug",
        ).model_copy(update={"occurred_at": t0 + timedelta(seconds=9)})
        events += [job, img, created]
    pool = await open_pool(database_url, max_size=2)
    try:
        async with pool.connection() as conn:
            await conn.execute("SELECT pod_ensure_partitions('metrics_minute', %s, %s)", (t0, t0))
        handler = MonitorHandler(pool)
        for offset, event in enumerate([*events, *events]):
            ctx = MessageContext(topic="t", partition=0, offset=offset, attempt=0, instance_id="t")
            await handler(event, ctx)
        # The monitor's own retention, as if two days later: t0's day partition is dropped
        # whole (and a minute past its midnight, in the DEFAULT partition, deleted).
        before = t0 + timedelta(days=2)
        async with pool.connection() as conn:
            gone = await retention.drop_expired(conn, "metrics_minute", before, 10.0)
            await retention.delete_default_expired(conn, "metrics_minute", before, 5000)
        assert f"metrics_minute_p{t0:%Y%m%d}" in gone.dropped
    finally:
        await pool.close()


def test_prometheus_counters_never_fall_when_old_minutes_expire(
    api: httpx.Client, migrated_db: str
) -> None:
    """Counters and histogram counts on /metrics equal every event ever folded (each once,
    though delivered twice), and stay so after retention deleted the minutes they were
    counted in: Prometheus must never see them fall."""
    watched = (
        'pod_jobs_submitted_total{priority="low"}',
        "pod_jobs_completed_total",
        "pod_job_duration_seconds_count",
        'pod_job_duration_seconds_bucket{le="15"}',
        'pod_stage_duration_seconds_count{stage="product"}',
    )
    before = exposition(api)
    # A minute of a past year, its own: the rollups written for it are these jobs' alone.
    t0 = datetime(1995, 1, 1, tzinfo=UTC) + timedelta(minutes=int(uuid.uuid4().int % 10**6))
    asyncio.run(fold_old_jobs(migrated_db, t0, 3))
    with psycopg.connect(migrated_db) as conn:
        left = conn.execute(
            "SELECT count(*) FROM metrics_minute WHERE minute = %s", (t0,)
        ).fetchone()
    assert left == (0,), "retention left the minute's rows"
    after = exposition(api)
    for series in watched:
        assert after.get(series, 0) == before.get(series, 0) + 3, series
    # No counter nor histogram on /metrics fell (gauges may: they are samples).
    counted = re.compile(r"^pod_\w+(_total|_bucket|_count|_sum)(\{|$)")
    for series, value in before.items():
        if counted.match(series):
            assert after.get(series, 0) >= value, series
