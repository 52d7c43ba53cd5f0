"""The whole pipeline end to end: the five services as separate processes, the real broker and
PostgreSQL (started by the same launcher as `make up`), and the vendor simulators."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from confluent_kafka import Producer

from shared.events import JobRequested, JobRequestedPayload
from shared.stack import Stack
from shared.topics import JOBS_REQUESTED
from tests.support.pipeline import TERMINAL, printify_books, sim_url, status, submit, wait_done


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
    # Slow renders: the backlog takes ~12 s to drain (60 x 0.8 s over 4 simulated GPUs).
    httpx.post(f"{comfy}/_sim/comfyui", json={"render_ms": 800}, timeout=5).raise_for_status()
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
