"""The seed's API reference, example by example, against the whole running pipeline.

The seed's README is the contract its clients were written against: each request below is its
example as written, and each answer is checked for the seed's field names and types (the richer
fields beside them are tested elsewhere)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.support.infra import wait_for
from tests.support.pipeline import api, wait_done

SEED_STATUSES = {"pending", "queued", "processing", "retrying", "completed", "failed"}
AGGREGATE = {"count", "sum", "avg", "min", "max", "p50", "p95", "p99", "period"}


def is_time(value: object) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value) is not None


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def seed_job(stack: Stack) -> dict[str, Any]:
    """The seed's `POST /jobs` example, submitted as written and run to its end."""
    body = {
        "theme": "Cyber Punk",
        "style": "Neon Art",
        "niche": "Gaming",
        "productTypes": ["tshirt", "hoodie"],
        "count": 2,
        "autoPublish": False,
        "priority": 10,
    }
    resp = httpx.post(f"{api(stack)}/jobs", json=body, timeout=10)
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert set(answer) == {"jobId", "status"} and answer["status"] == "accepted"
    assert isinstance(answer["jobId"], str)
    wait_done(stack, [answer["jobId"]])
    return {"id": answer["jobId"], "body": body}


def test_get_job_status(stack: Stack, seed_job: dict[str, Any]) -> None:
    resp = httpx.get(f"{api(stack)}/jobs/{seed_job['id']}", timeout=10)
    assert resp.status_code == 200
    detail = resp.json()
    assert {"job", "images", "products", "logs"} <= set(detail)
    job = detail["job"]
    assert job["id"] == seed_job["id"]
    assert job["status"] in SEED_STATUSES and job["status"] == "completed"
    assert job["priority"] == 10  # as it was given
    request = job["request"]
    assert {k: request[k] for k in seed_job["body"]} == seed_job["body"]
    assert is_time(job["created_at"]) and is_time(job["completed_at"])
    assert job["completed_at"] >= job["created_at"]
    result = job["result"]
    assert len(result["images"]) == 2 and len(result["products"]) == 4
    assert result["publications"] == []  # autoPublish false: drafts
    assert all(isinstance(x, list) for x in (detail["images"], detail["products"], detail["logs"]))


def test_list_jobs(stack: Stack, seed_job: dict[str, Any]) -> None:
    resp = httpx.get(f"{api(stack)}/jobs", params={"status": "completed", "limit": 50}, timeout=10)
    assert resp.status_code == 200
    jobs = resp.json()["jobs"]
    assert len(jobs) <= 50 and all(j["status"] == "completed" for j in jobs)
    assert seed_job["id"] in {j["id"] for j in jobs}


def test_health_check(stack: Stack) -> None:
    resp = httpx.get(f"{api(stack)}/health", timeout=10)
    body = resp.json()
    assert body["healthy"] is True and resp.status_code == 200
    workers = body["workers"]
    # Every stage's instance, each with the seed's checks.
    assert {"generator", "printify", "publisher", "monitor"} <= {w["service"] for w in workers}
    for w in workers:
        assert isinstance(w["id"], str) and isinstance(w["index"], int)
        assert isinstance(w["healthy"], bool)
        assert set(w["health"]) == {"healthy", "worker", "queue", "database", "orchestrator"}
        assert all(isinstance(v, bool) for v in w["health"].values())
        assert w["healthy"] is w["health"]["healthy"]


def test_get_statistics(stack: Stack, seed_job: dict[str, Any]) -> None:
    body = httpx.get(f"{api(stack)}/stats", timeout=10).json()
    for key in (
        "totalWorkers",
        "runningWorkers",
        "errorWorkers",
        "totalJobs",
        "totalCompleted",
        "totalFailed",
    ):
        assert isinstance(body[key], int) and body[key] >= 0, key
    assert body["totalJobs"] >= body["totalCompleted"] >= 1
    assert body["runningWorkers"] >= 4
    assert isinstance(body["workers"], list) and len(body["workers"]) >= body["runningWorkers"]


def test_dashboard_data(stack: Stack, seed_job: dict[str, Any]) -> None:
    body = httpx.get(f"{api(stack)}/dashboard", params={"hours": 24}, timeout=10).json()
    overview = body["overview"]
    for key in ("totalJobs", "completedJobs", "failedJobs", "successRate", "avgProcessingTime"):
        assert number(overview[key]), key
    assert overview["completedJobs"] >= 1
    # Milliseconds: a job of this stack takes well over 100 ms and under an hour.
    assert 100 < overview["avgProcessingTime"] < 3_600_000
    recent = body["recent"]
    assert isinstance(recent["jobs"], list) and isinstance(recent["alerts"], list)
    assert isinstance(recent["metrics"], dict) and recent["metrics"]["jobs_submitted"] >= 1
    for name in ("jobDuration", "imageGeneration", "productCreation"):
        aggregate = body["performance"][name]
        assert set(aggregate) == AGGREGATE and aggregate["period"] == "24h"
        assert aggregate["count"] >= 1 and number(aggregate["p95"])


def test_scale_worker_pool(stack: Stack) -> None:
    resp = httpx.post(f"{api(stack)}/scale", json={"workerCount": 1}, timeout=10)
    assert resp.status_code == 202, resp.text


def test_the_other_endpoints_of_the_table(stack: Stack, seed_job: dict[str, Any]) -> None:
    workers = httpx.get(f"{api(stack)}/workers", timeout=10).json()["workers"]
    assert workers and all(isinstance(w["id"], str) for w in workers)
    metrics = httpx.get(
        f"{api(stack)}/metrics", params={"name": "job_duration", "limit": 100}, timeout=10
    )
    assert metrics.status_code == 200

    def job_duration_folded() -> bool:
        got = httpx.get(
            f"{api(stack)}/metrics", params={"name": "job_duration", "limit": 100}, timeout=10
        ).json()
        return len(got["metrics"]) >= 1

    wait_for(job_duration_folded, 30, "a job_duration metric")
    alerts = httpx.get(f"{api(stack)}/alerts", timeout=10)
    assert alerts.status_code == 200 and isinstance(alerts.json()["alerts"], list)
