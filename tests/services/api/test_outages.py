"""Bounded answers when a dependency is down: 503 with the error body, never a hang or a 500."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.launch.postgres import LocalPostgres
from shared.platform.db import migrate
from tests.services.api.conftest import serve
from tests.services.api.test_api import job_body
from tests.support.infra import free_port

ACQUIRE_S = 1.0
# Whatever a route does with the database down, it answers within this.
BOUND_S = 6.0

ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/jobs", None),
    ("GET", f"/jobs/{uuid.uuid4()}", None),
    ("GET", "/dlq", None),
    ("POST", "/dlq/replay", {"stage": "printify"}),
    ("GET", "/stats", None),
    ("GET", "/dashboard?hours=24", None),
    ("GET", "/metrics?name=jobs_completed", None),
    ("GET", "/metrics", None),
    ("GET", "/alerts", None),
    ("GET", "/workers", None),
    ("POST", "/workers/generator-0/restart", None),
    ("POST", "/scale", {"workerCount": 1}),
]


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test's own, so that stopping it disturbs no other test."""
    server = LocalPostgres(tmp_path, port=free_port()).start()
    try:
        migrate(server.url)
        yield server
    finally:
        server.stop("immediate")


def test_database_down_every_route_answers_503_in_bounded_time(
    own_postgres: LocalPostgres, pipeline_topics: str
) -> None:
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=own_postgres.url,
        db_acquire_timeout_s=ACQUIRE_S,
        health_timeout_s=1,
    ) as api:
        assert api.get("/jobs").status_code == 200
        own_postgres.stop("immediate")

        for method, path, body in ROUTES:
            started = time.monotonic()
            resp = api.request(method, path, json=body)
            took = time.monotonic() - started
            assert resp.status_code == 503, (path, resp.text)
            assert resp.json()["error"] == "database_unavailable", (path, resp.text)
            assert resp.headers["Retry-After"] == "5"
            assert took < BOUND_S, (path, took)

        started = time.monotonic()
        health = api.get("/health")
        assert health.status_code == 503 and health.json()["checks"]["database"] != "ok"
        assert time.monotonic() - started < BOUND_S

        # A keyed submission needs its ledger row first: refused, nothing produced.
        keyed = api.post("/jobs", json=job_body(), headers={"Idempotency-Key": "k-db-down"})
        assert keyed.status_code == 503, keyed.text
        assert keyed.json()["error"] == "database_unavailable"

        # Without a key the job goes to Kafka, which is up: accepted (the monitor writes its
        # row when PostgreSQL is back), after at most the acquire timeout for the queued row.
        started = time.monotonic()
        plain = api.post("/jobs", json=job_body())
        assert plain.status_code == 202, plain.text
        assert time.monotonic() - started < BOUND_S


def test_a_stuck_statement_is_cancelled_and_answers_503(
    own_postgres: LocalPostgres, pipeline_topics: str
) -> None:
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=own_postgres.url,
        db_statement_timeout_s=1,
    ) as api:
        assert api.get("/jobs").status_code == 200
        # Another session holds the jobs table: the API's SELECT waits until its own statement
        # timeout cancels it.
        with psycopg.connect(own_postgres.url) as blocker:
            blocker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            resp = api.get("/jobs")
            took = time.monotonic() - started
            blocker.rollback()
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"] == "database_unavailable"
        assert 0.9 < took < BOUND_S, took
        assert api.get("/jobs").status_code == 200


def test_scale_with_the_broker_down_is_503(migrated_db: str) -> None:
    # A live pool manager (as its heartbeat says), so /scale gets as far as asking Kafka.
    manager = f"pool-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workers (instance_id, service, host, pid, started_at, last_heartbeat)"
            " VALUES (%s, 'pool', 'test', 1, now(), now() + interval '1 hour')",
            (manager,),
        )
    try:
        with serve(
            kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
            database_url=migrated_db,
            produce_timeout_s=1,
            shutdown_flush_s=0,
        ) as down:
            started = time.monotonic()
            resp = down.post("/scale", json={"service": "printify", "workerCount": 2})
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"] == "kafka_unavailable"
            assert time.monotonic() - started < 10
    finally:
        with psycopg.connect(migrated_db, autocommit=True) as conn:
            conn.execute("DELETE FROM workers WHERE instance_id = %s", (manager,))


def test_dashboard_window_is_capped(api: httpx.Client) -> None:
    assert api.get("/dashboard", params={"hours": 720}).status_code == 200
    resp = api.get("/dashboard", params={"hours": 721})
    assert resp.status_code == 422
    assert resp.json()["detail"] == [{"field": "hours", "message": "must be at most 720"}]
