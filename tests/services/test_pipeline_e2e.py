"""The whole pipeline end to end: the five services as separate processes, the real broker and
PostgreSQL (started by the same launcher as `make up`), and the vendor simulators."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from shared.events import JobRequested, JobRequestedPayload
from shared.stack import Stack, StackSettings
from shared.topics import JOBS_REQUESTED
from tests.support.infra import TEST_STATE, free_port, wait_for

TERMINAL = {"completed", "partial", "failed"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    state = TEST_STATE / "e2e"
    shutil.rmtree(state, ignore_errors=True)
    settings = StackSettings(
        pod_state_dir=state,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_partitions=3,
        postgres_port=free_port(),
        api_port=free_port(),
        sim_anthropic_port=free_port(),
        sim_comfyui_port=free_port(),
        sim_printify_port=free_port(),
    )
    env = {
        "MAX_IN_FLIGHT": "8",
        "HEARTBEAT_INTERVAL_S": "1",
        "IMAGE_STORAGE_DIR": str(state / "images"),
        "IMAGE_WIDTH": "256",
        "IMAGE_HEIGHT": "256",
        "SIM_LATENCY_MS": "0",
        "SIM_FAILURE_RATE": "0",
    }
    s = Stack(settings, extra_env=env).start()
    try:
        wait_for(lambda: _health_ok(s), 60, "the API to answer /health", interval=0.2)
        yield s
    finally:
        s.stop()


def _health_ok(s: Stack) -> bool:
    try:
        return httpx.get(f"{api(s)}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def api(s: Stack) -> str:
    return f"http://127.0.0.1:{s.settings.api_port}"


def sim_url(s: Stack, name: str) -> str:
    return next(sim.url for sim in s.simulators if sim.name == name)


def submit(s: Stack, **overrides: Any) -> str:
    body = {
        "theme": "space cats",
        "style": "retro",
        "niche": "astronomy",
        "productTypes": ["tshirt"],
        "count": 1,
        "autoPublish": False,
        "priority": "normal",
    } | overrides
    resp = httpx.post(f"{api(s)}/jobs", json=body, timeout=10)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "accepted"
    return str(resp.json()["jobId"])


def job(s: Stack, job_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{api(s)}/jobs/{job_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def status(s: Stack, job_id: str) -> str | None:
    """The job's status, or None while the monitor has not seen it (a directly produced job)."""
    resp = httpx.get(f"{api(s)}/jobs/{job_id}", timeout=10)
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    return str(resp.json()["job"]["status"])


def wait_done(s: Stack, job_ids: list[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}

    def all_done() -> bool:
        for jid in job_ids:
            if jid not in done and status(s, jid) in TERMINAL:
                done[jid] = job(s, jid)
        return len(done) == len(job_ids)

    wait_for(all_done, timeout, f"{len(job_ids)} jobs to finish", interval=0.2)
    return done


def printify_books(s: Stack) -> dict[str, Any]:
    return dict(httpx.get(f"{sim_url(s, 'printify')}/_sim/books", timeout=5).json())


def test_mixed_jobs_complete_with_the_right_numbers(stack: Stack) -> None:
    specs = [
        {"productTypes": ["tshirt", "hoodie"], "count": 2, "autoPublish": True, "priority": "high"},
        {"productTypes": ["hoodie"], "count": 3, "autoPublish": False, "priority": "low"},
        {"productTypes": ["tshirt", "mug"], "count": 1, "autoPublish": True, "priority": "normal"},
        {"productTypes": ["tshirt"], "count": 4, "autoPublish": False, "priority": "normal"},
        {"productTypes": ["mug", "hoodie", "tshirt"], "count": 2, "autoPublish": True},
    ]
    ids = [
        submit(stack, theme=f"theme {i} {uuid.uuid4().hex[:6]}", **spec)
        for i, spec in enumerate(specs)
    ]
    results = wait_done(stack, ids)
    books = printify_books(stack)
    all_products = {
        p["product_id"]: p for acct in books["accounts"].values() for p in acct["products"]
    }
    publish_calls = {
        pid: n for acct in books["accounts"].values() for pid, n in acct["publish_calls"].items()
    }
    for jid, spec in zip(ids, specs, strict=True):
        r = results[jid]
        j = r["job"]
        n_products = spec["count"] * len(spec["productTypes"])  # type: ignore[operator, arg-type]
        assert j["status"] == "completed", j
        assert len(r["images"]) == spec["count"]
        assert len(r["products"]) == n_products
        assert {p["productType"] for p in r["products"]} == set(spec["productTypes"])  # type: ignore[arg-type]
        # Every product exists on Printify, published exactly when autoPublish was asked for.
        for p in r["products"]:
            assert p["productId"] in all_products
            assert publish_calls.get(p["productId"], 0) == (1 if spec["autoPublish"] else 0)
            assert p["status"] == ("published" if spec["autoPublish"] else "created")
        # Each image has its own copy; the log tells the story in order.
        assert len({i["title"] for i in r["images"]}) == spec["count"]
        types = [entry["type"] for entry in r["logs"]]
        assert types[0] == "job.requested"
        assert types.count("image.generated") == spec["count"]
        assert types.count("product.created") == n_products
    assert books["duplicates"] == []


def test_a_job_produced_directly_by_another_system_is_processed(stack: Stack) -> None:
    job_id = f"external-{uuid.uuid4()}"
    event = JobRequested(
        job_id=job_id,
        producer="erp-sync",
        payload=JobRequestedPayload(
            theme="mountain sunrise",
            style="watercolor",
            niche="hiking",
            product_types=["mug"],
            count=2,
            auto_publish=True,
        ),
    )
    producer = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True})
    producer.produce(JOBS_REQUESTED[event.payload.priority], event.to_json(), key=job_id.encode())
    assert producer.flush(10) == 0
    result = wait_done(stack, [job_id])[job_id]
    assert result["job"]["status"] == "completed"
    assert result["job"]["theme"] == "mountain sunrise"
    assert len(result["products"]) == 2


def test_high_priority_overtakes_a_low_priority_backlog(stack: Stack) -> None:
    comfy = sim_url(stack, "comfyui")
    # Slow renders: the backlog takes seconds to drain (60 x 0.4 s over 4 simulated GPUs).
    httpx.post(f"{comfy}/_sim/comfyui", json={"render_ms": 400}, timeout=5).raise_for_status()
    try:
        with ThreadPoolExecutor(8) as pool:
            backlog = list(
                pool.map(
                    lambda i: submit(
                        stack, theme=f"backlog {i}", priority="low", productTypes=["mug"]
                    ),
                    range(60),
                )
            )
        urgent = submit(stack, theme="urgent", priority="high", productTypes=["mug"])
        submitted_at = time.monotonic()
        wait_done(stack, [urgent])
        urgent_took = time.monotonic() - submitted_at
        statuses = [status(stack, jid) for jid in backlog]
        unfinished = sum(1 for st in statuses if st not in TERMINAL)
        assert unfinished >= 10, (unfinished, urgent_took)
        wait_done(stack, backlog, timeout=120)
    finally:
        httpx.post(f"{comfy}/_sim/comfyui", json={"render_ms": 0}, timeout=5)
