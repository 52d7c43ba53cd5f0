"""Alert conditions against the real PostgreSQL: open once, stay deduplicated, resolve; webhook.

Each test evaluates at a random instant of a past year (its rows are the only ones in its
windows) with its own key namespace (its alerts are the only ones it reconciles).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.alerts import AlertEvaluator, AlertRow
from services.monitor.fold import Folder
from services.monitor.notify import WebhookNotifier, slack_payload
from services.monitor.settings import MonitorSettings
from shared.contract.events import PoolScaled, PoolScaledPayload, WorkerExited, WorkerExitedPayload
from tests.support.infra import unique

HOUR = timedelta(hours=1)


@pytest.fixture
def settings(migrated_db: str) -> MonitorSettings:
    return MonitorSettings(database_url=migrated_db)


@pytest.fixture
def now() -> datetime:
    base = datetime(1990, 1, 1, tzinfo=UTC)
    return base + timedelta(seconds=random.randrange(20 * 365 * 24 * 3600))


@pytest.fixture
async def namespace(pool: AsyncConnectionPool) -> AsyncIterator[str]:
    ns = unique("alerts") + "/"
    yield ns
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM alerts WHERE starts_with(condition_key, %s)", (ns,))


async def alerts(pool: AsyncConnectionPool, ns: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM alerts WHERE starts_with(condition_key, %s) ORDER BY id", (ns,)
        )
        assert cur.description is not None
        names = [c.name for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]


async def insert_job(
    pool: AsyncConnectionPool, status: str, finished_at: datetime, error: str | None = None
) -> str:
    job_id = unique("alertjob")
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO jobs (job_id, status, theme, style, niche, product_types, image_count,"
            " expected_products, expected_publications, error, created_at, finished_at)"
            " VALUES (%s, %s, 't', 's', 'n', '{tshirt}', 1, 1, 0, %s, %s, %s)",
            (job_id, status, error, finished_at - timedelta(seconds=30), finished_at),
        )
    return job_id


async def insert_worker(
    pool: AsyncConnectionPool,
    service: str,
    last_heartbeat: datetime,
    *,
    status: str = "running",
    failed: int = 0,
) -> str:
    instance = unique(service)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO workers (instance_id, service, host, pid, status, failed, started_at,"
            " last_heartbeat) VALUES (%s, %s, 'h', 1, %s, %s, %s, %s)",
            (instance, service, status, failed, last_heartbeat - HOUR, last_heartbeat),
        )
    return instance


def kinds(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["type"] == kind]


async def test_worker_failure_and_missing_stage(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    service = unique("stage")
    dead = await insert_worker(pool, service, now - timedelta(seconds=60))
    await insert_worker(pool, service, now - timedelta(seconds=60), status="stopped")
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[service])
    for _ in range(2):  # the second evaluation finds them open: no duplicates
        await ev.evaluate(now)
        rows = await alerts(pool, namespace)
        down = kinds(rows, "worker_down")
        assert [r["condition_key"] for r in down] == [f"{namespace}worker_down:{dead}"]
        assert down[0]["severity"] == "critical" and down[0]["status"] == "open"
        stage = kinds(rows, "stage_down")
        assert [r["condition_key"] for r in stage] == [f"{namespace}stage_down:{service}"]
    # The instance comes back: both clear.
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE workers SET last_heartbeat = %s WHERE instance_id = %s", (now, dead)
        )
    changes = await ev.evaluate(now + timedelta(seconds=1))
    # With the stage's only instance silent, no worker ran and all were in error.
    assert {r["type"] for r in changes.resolved} == {
        "worker_down",
        "stage_down",
        "no_workers_running",
        "high_worker_errors",
    }
    rows = await alerts(pool, namespace)
    assert all(r["status"] == "resolved" and r["resolved_at"] is not None for r in rows)


async def test_no_liveness_alerts_right_after_start(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    ev = AlertEvaluator(
        pool, settings, namespace=namespace, services=[unique("stage")], started_at=now
    )
    await ev.evaluate(now + timedelta(seconds=5))
    assert await alerts(pool, namespace) == []
    await ev.evaluate(now + timedelta(seconds=settings.worker_stale_s + 1))
    assert [r["type"] for r in await alerts(pool, namespace)] == [
        "stage_down",
        "no_workers_running",
    ]


async def report(pool: AsyncConnectionPool, event: WorkerExited | PoolScaled, at: datetime) -> None:
    """Fold one of the pool manager's reports, as the monitor does."""
    await Folder(pool).fold(event.model_copy(update={"occurred_at": at}), "workers.heartbeat", 0, 0)


def died(service: str, instance: str, restarts: int, restarting: bool) -> WorkerExited:
    return WorkerExited(
        job_id="pool-test",
        producer="pool-test",
        payload=WorkerExitedPayload(
            service=service,
            instance_id=instance,
            exit="signal SIGKILL",
            exit_code=-9,
            restarts=restarts,
            restarting=restarting,
            max_restarts=3,
        ),
    )


async def test_a_worker_that_died_is_an_alert_naming_it_until_the_window_passes(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    service = unique("stage")
    alive = [await insert_worker(pool, service, now) for _ in range(3)]
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[service])
    await report(pool, died(service, alive[0], 0, True), now - timedelta(seconds=5))
    await ev.evaluate(now)
    [error] = kinds(await alerts(pool, namespace), "worker_error")
    assert error["condition_key"] == f"{namespace}worker_error:{alive[0]}"
    assert error["severity"] == "warning"
    assert (
        f"instance {alive[0]} died (signal SIGKILL); restarted (restart 1 of 3)"
        in (error["message"])
    )
    assert error["details"]["exitCode"] == -9
    # Given up on: the same alert, now critical and saying so.
    await report(pool, died(service, alive[0], 3, False), now + timedelta(seconds=1))
    await ev.evaluate(now + timedelta(seconds=2))
    [error] = kinds(await alerts(pool, namespace), "worker_error")
    assert "not restarted: it died 4 times" in error["message"]
    # 1 of 3 in error is not "high"; the window passing resolves it.
    assert kinds(await alerts(pool, namespace), "high_worker_errors") == []
    later = now + timedelta(seconds=settings.worker_event_window_s + 2)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE workers SET last_heartbeat = %s WHERE instance_id = ANY(%s)", (later, alive)
        )
    changes = await ev.evaluate(later)
    assert [r["type"] for r in changes.resolved] == ["worker_error"]


async def test_more_than_half_in_error_and_none_running(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    service = unique("stage")
    a, b, c = [await insert_worker(pool, service, now) for _ in range(3)]
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[service])
    await report(pool, died(service, a, 0, True), now)
    await ev.evaluate(now)
    assert kinds(await alerts(pool, namespace), "high_worker_errors") == []
    await report(pool, died(service, b, 0, True), now)
    await ev.evaluate(now + timedelta(seconds=1))
    [high] = kinds(await alerts(pool, namespace), "high_worker_errors")
    assert high["severity"] == "critical" and "2 of 3 worker instances" in high["message"]
    assert kinds(await alerts(pool, namespace), "no_workers_running") == []
    # Every instance silent: nothing runs at all.
    silent = now + timedelta(seconds=settings.worker_stale_s + 5)
    await ev.evaluate(silent)
    [none] = kinds(await alerts(pool, namespace), "no_workers_running")
    assert none["severity"] == "critical" and none["status"] == "open"
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE workers SET last_heartbeat = %s WHERE instance_id = ANY(%s)", (silent, [c])
        )
    changes = await ev.evaluate(silent + timedelta(seconds=1))
    assert "no_workers_running" in {r["type"] for r in changes.resolved}


async def test_a_scale_is_an_info_alert_for_the_window(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    service = unique("stage")
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[])
    scaled = PoolScaled(
        job_id="pool-test",
        producer="pool-test",
        payload=PoolScaledPayload(service=service, from_count=1, to_count=3),
    )
    await report(pool, scaled, now)
    await ev.evaluate(now + timedelta(seconds=1))
    [info] = kinds(await alerts(pool, namespace), "pool_scaled")
    assert info["severity"] == "info" and f"{service} scaled from 1 to 3" in info["message"]
    changes = await ev.evaluate(now + timedelta(seconds=settings.worker_event_window_s + 1))
    assert [r["type"] for r in changes.resolved] == ["pool_scaled"]


async def test_job_failure_alert_per_job_expires(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    failed = await insert_job(pool, "failed", now - timedelta(seconds=10), "printify said no")
    partial = await insert_job(pool, "partial", now - timedelta(seconds=20))
    await insert_job(pool, "completed", now - timedelta(seconds=20))
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[])
    await ev.evaluate(now)
    await ev.evaluate(now + timedelta(seconds=1))
    rows = kinds(await alerts(pool, namespace), "job_failed")
    assert sorted(r["condition_key"] for r in rows) == sorted(
        f"{namespace}job_failed:{j}" for j in (failed, partial)
    )
    assert all(r["severity"] == "warning" and r["status"] == "open" for r in rows)
    assert any("printify said no" in r["message"] for r in rows)
    # Past JOB_ALERT_TTL_S they resolve by themselves.
    await ev.evaluate(now + timedelta(seconds=settings.job_alert_ttl_s))
    rows = kinds(await alerts(pool, namespace), "job_failed")
    assert [r["status"] for r in rows] == ["resolved", "resolved"]


async def test_error_rate(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[])
    # Below the minimum number of jobs: no alert, whatever the rate.
    for _ in range(2):
        await insert_job(pool, "failed", now - timedelta(seconds=5))
    await ev.evaluate(now)
    assert kinds(await alerts(pool, namespace), "error_rate") == []
    for _ in range(3):
        await insert_job(pool, "completed", now - timedelta(seconds=5))
    for _ in range(2):
        await ev.evaluate(now)  # 2 of 5 failed = 40% > 20%
    rows = kinds(await alerts(pool, namespace), "error_rate")
    assert len(rows) == 1 and rows[0]["severity"] == "critical"
    assert rows[0]["details"] == {"rate": 0.4, "failed": 2, "completed": 3}
    # The window slides past those jobs: resolved.
    await ev.evaluate(now + timedelta(seconds=settings.error_rate_window_s + 1))
    rows = kinds(await alerts(pool, namespace), "error_rate")
    assert [r["status"] for r in rows] == ["resolved"]


async def test_dlq_growth(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    stage = unique("dlqstage")
    topic = unique("dlqtopic")
    async with pool.connection() as conn:
        for n in range(settings.dlq_growth_threshold):
            await conn.execute(
                "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, stage,"
                " error_class, message, failed_at) VALUES (%s, 0, %s, %s, 'E', 'm', %s)",
                (topic, n, stage, now - timedelta(seconds=n)),
            )
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[])
    await ev.evaluate(now)
    await ev.evaluate(now)
    rows = kinds(await alerts(pool, namespace), "dlq_growth")
    assert [r["condition_key"] for r in rows] == [f"{namespace}dlq_growth:{stage}"]
    assert rows[0]["details"]["grown"] == settings.dlq_growth_threshold
    # Replayed letters no longer count as growth.
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE dead_letters SET replayed_at = now() WHERE topic = %s AND kafka_offset = 0",
            (topic,),
        )
    await ev.evaluate(now)
    assert [r["status"] for r in kinds(await alerts(pool, namespace), "dlq_growth")] == ["resolved"]


async def test_consumer_lag(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[])
    over = settings.lag_threshold + 1
    await ev.evaluate(now, lag={"printify": over, "publisher": 3})
    await ev.evaluate(now, lag={"printify": over + 5, "publisher": 3})
    rows = kinds(await alerts(pool, namespace), "consumer_lag")
    assert [r["condition_key"] for r in rows] == [f"{namespace}consumer_lag:printify"]
    assert rows[0]["details"]["lag"] == over + 5  # kept current while open
    # Lag unknown (Kafka away): nothing changes.
    await ev.evaluate(now, lag=None)
    assert kinds(await alerts(pool, namespace), "consumer_lag")[0]["status"] == "open"
    await ev.evaluate(now, lag={"printify": 0})
    assert kinds(await alerts(pool, namespace), "consumer_lag")[0]["status"] == "resolved"


async def test_worker_failures_growing(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime, namespace: str
) -> None:
    instance = await insert_worker(pool, "generator", now, failed=4)
    ev = AlertEvaluator(pool, settings, namespace=namespace, services=[])
    await ev.evaluate(now)  # first sighting: the baseline
    assert kinds(await alerts(pool, namespace), "worker_errors") == []
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE workers SET failed = 6, last_heartbeat = %s WHERE instance_id = %s",
            (now + timedelta(seconds=5), instance),
        )
    await ev.evaluate(now + timedelta(seconds=10))
    await ev.evaluate(now + timedelta(seconds=20))
    rows = kinds(await alerts(pool, namespace), "worker_errors")
    assert [r["condition_key"] for r in rows] == [f"{namespace}worker_errors:{instance}"]
    assert rows[0]["details"]["failed"] == 6
    later = now + timedelta(seconds=settings.error_rate_window_s + 15)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE workers SET last_heartbeat = %s WHERE instance_id = %s", (later, instance)
        )
    await ev.evaluate(later)
    assert [r["status"] for r in kinds(await alerts(pool, namespace), "worker_errors")] == [
        "resolved"
    ]


class _Hook(BaseHTTPRequestHandler):
    """Fails the first call with a 500, then accepts; keeps every body."""

    bodies: list[dict[str, Any]]
    statuses: list[int]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        code = 500 if not self.statuses else 200
        self.bodies.append(body)
        self.statuses.append(code)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"bodies": [], "statuses": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def test_webhook_retries_and_notifies_open_and_resolve(
    pool: AsyncConnectionPool,
    settings: MonitorSettings,
    now: datetime,
    namespace: str,
    webhook: tuple[str, type[_Hook]],
) -> None:
    url, hook = webhook
    notifier = WebhookNotifier(pool, url, attempts=3, backoff_s=0.01, timeout_s=5)
    notifier.start()
    try:
        ev = AlertEvaluator(
            pool, settings, namespace=namespace, services=[], notify=notifier.notify
        )
        await ev.evaluate(now, lag={"publisher": settings.lag_threshold + 1})
        await asyncio.wait_for(notifier.join(), 30)
        assert hook.statuses == [500, 200]  # the first call failed, the retry delivered
        opened = hook.bodies[-1]
        assert "consumer_lag opened" in opened["text"]
        assert opened["attachments"][0]["color"] == "warning"
        rows = await alerts(pool, namespace)
        assert rows[0]["notified_at"] is not None

        await ev.evaluate(now, lag={"publisher": 0})
        await asyncio.wait_for(notifier.join(), 30)
        assert hook.statuses == [500, 200, 200]
        resolved = hook.bodies[-1]
        assert "resolved" in resolved["text"] and resolved["attachments"][0]["color"] == "good"
    finally:
        await notifier.close()


async def test_webhook_gives_up_after_its_attempts(pool: AsyncConnectionPool) -> None:
    # Nothing listens on this port: every attempt fails, deliver() says so without raising.
    notifier = WebhookNotifier(pool, "http://127.0.0.1:9/hook", attempts=2, backoff_s=0.01)
    try:
        alert: AlertRow = {
            "id": -1,
            "condition_key": "x",
            "type": "t",
            "severity": "critical",
            "message": "m",
            "status": "open",
            "details": {},
        }
        assert await notifier.deliver(alert, "opened") is False
    finally:
        await notifier.close()


def test_slack_payload_has_no_secrets() -> None:
    alert: AlertRow = {
        "id": 7,
        "condition_key": "worker_down:gen-1",
        "type": "worker_down",
        "severity": "critical",
        "message": "generator instance gen-1 stopped",
        "status": "open",
        "details": {"instanceId": "gen-1"},
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    body = slack_payload(alert, "opened")
    assert body["text"].startswith("[CRITICAL] worker_down opened")
    attachment = body["attachments"][0]
    assert attachment["color"] == "danger" and attachment["ts"] == 1767225600
    assert {"title": "instanceId", "value": "gen-1", "short": True} in attachment["fields"]
    assert "http" not in json.dumps(body)
