"""The whole pipeline end to end: the five services as separate processes, the real broker and
PostgreSQL (started by the same launcher as `make up`), and the vendor simulators."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from devstack.stack import Stack
from shared.adapters.ocr import usable_cpus
from shared.contract.events import JobRequested, JobRequestedPayload, parse_event
from shared.contract.topics import IMAGES_GENERATED
from tests.support.infra import read_all, wait_for
from tests.support.pipeline import (
    printify_books,
    produce_job,
    sim_url,
    submit,
    wait_done,
)


def test_mixed_jobs_complete_with_the_right_numbers(stack: Stack) -> None:
    specs: list[dict[str, Any]] = [  # request bodies (JSON)
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
    # The stack's shop is on Etsy, which lists each published product on its own, later.
    listed = {
        pid: n for acct in books["accounts"].values() for pid, n in acct["channel_listed"].items()
    }
    for jid, spec in zip(ids, specs, strict=True):
        r = results[jid]
        j = r["job"]
        n_products = spec["count"] * len(spec["productTypes"])
        assert j["detailedStatus"] == "completed", j
        assert j["claudeInputTokens"] > 0 and j["claudeOutputTokens"] > 0  # the briefs' cost
        assert len(r["images"]) == spec["count"]
        assert all(i["width"] > 256 for i in r["images"])  # not the sampled size
        assert len(r["products"]) == n_products
        assert {p["productType"] for p in r["products"]} == set(spec["productTypes"])
        # Every product exists on Printify, published exactly when autoPublish was asked for.
        for p in r["products"]:
            assert p["productId"] in all_products
            assert publish_calls.get(p["productId"], 0) == (1 if spec["autoPublish"] else 0)
            assert p["status"] == ("published" if spec["autoPublish"] else "created")
            # Published means Etsy listed it (the job waited for that), not that Printify
            # accepted the request.
            assert listed.get(p["productId"], 0) == (1 if spec["autoPublish"] else 0)
            if spec["autoPublish"]:
                assert p["externalId"] and p["externalId"] != p["productId"]
            # Priced from Printify's costs: every variant above its cost, the range shown.
            on_printify = all_products[p["productId"]]
            assert min(on_printify["profits"].values()) == p["profitMinCents"] > 0
            assert p["costMinCents"] <= p["costMaxCents"] < p["priceMaxCents"]
            assert p["priceCents"] <= p["priceMaxCents"] and p["marginMinPercent"] > 0
            # Print-ready: upscaled from the 256 px sample, placed to print at >= 150 DPI
            # (as Printify would compute it from the upload and the placement).
            assert p["printDpi"] == on_printify["print_dpi"] >= 150
            # Printify's mockups (the simulator serves them), shown to the seller as they are.
            assert p["mockups"] and all(
                m.startswith(sim_url(stack, "printify") + "/mockup/") for m in p["mockups"]
            )
        # Each image has its own copy; the log tells the story in order.
        assert len({i["title"] for i in r["images"]}) == spec["count"]
        types = [entry["type"] for entry in r["logs"]]
        assert types[0] == "job.requested"
        assert types.count("image.generated") == spec["count"]
        assert types.count("product.created") == n_products
        if spec["autoPublish"]:
            assert types.count("product.publishing") == types.count("product.published")
            assert types.count("product.published") == n_products
    assert books["duplicates"] == []
    assert all(not a["publishing_succeeded"] for a in books["accounts"].values())
    assert sum(acct["publish_below_cost"] for acct in books["accounts"].values()) == 0


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
    produce_job(stack, event)
    result = wait_done(stack, [job_id])[job_id]
    assert result["job"]["detailedStatus"] == "completed"
    assert result["job"]["theme"] == "mountain sunrise"
    assert len(result["products"]) == 2


def test_a_high_job_waits_only_for_the_gpu_not_the_low_backlog(stack: Stack) -> None:
    """One simulated GPU with a queue of low renders on it: the high job's image arrives before
    all but at most (GPUs + 1) of the low backlog that was still unfinished when it came, plus
    the designs already on screening's CPUs (one per CPU: screening serves the most urgent next,
    decision §49; served in arrival order it let the backlog's designs overtake)."""
    comfy = sim_url(stack, "comfyui")
    gpus = len(httpx.get(f"{comfy}/system_stats", timeout=5).json()["devices"])
    assert gpus == 1
    httpx.post(f"{comfy}/_sim/comfyui", json={"render_ms": 400}, timeout=5).raise_for_status()
    try:
        with ThreadPoolExecutor(8) as pool:
            backlog = list(
                pool.map(
                    lambda i: submit(
                        stack, theme=f"backlog {i}", priority="low", productTypes=["mug"]
                    ),
                    range(25),
                )
            )

        def gpu_queue_busy() -> bool:
            books = httpx.get(f"{comfy}/_sim/books", timeout=5).json()
            return bool(books["running"] >= 1 and books["pending"] >= 1)

        wait_for(gpu_queue_busy, 30, "low renders running and queued at ComfyUI", interval=0.05)
        came_at = datetime.now(UTC)
        urgent = submit(stack, theme="urgent", priority="high", productTypes=["mug"])
        wait_done(stack, [urgent, *backlog], timeout=120)
    finally:
        httpx.post(f"{comfy}/_sim/comfyui", json={"render_ms": 0}, timeout=5)

    ours = {urgent, *backlog}
    images = {
        e.job_id: e.occurred_at
        for m in read_all(stack.bootstrap, IMAGES_GENERATED)
        # Keyed by job id: other tests' records (the event fuzzer's poison) are not ours.
        if (m.key() or b"").decode(errors="replace") in ours
        and (e := parse_event(m.value())).job_id in ours
    }
    assert set(images) == ours
    unfinished_then = [jid for jid in backlog if images[jid] > came_at]
    overtook = [jid for jid in unfinished_then if images[jid] < images[urgent]]
    assert len(unfinished_then) >= 10, "the backlog must still be there when the high job comes"
    screening_slots = usable_cpus()  # the generator's, on this machine
    assert len(overtook) <= gpus + 1 + screening_slots, (len(overtook), len(unfinished_then))


def test_a_job_of_more_images_than_one_claude_call_completes(stack: Stack) -> None:
    # Between one Claude call's 25 briefs and the API's 50: accepted, so it must be made.
    job_id = submit(
        stack, theme=f"tide pools {uuid.uuid4().hex[:6]}", productTypes=["mug"], count=30
    )
    result = wait_done(stack, [job_id])[job_id]
    assert result["job"]["detailedStatus"] == "completed", result["job"]
    assert len(result["images"]) == 30
    assert len({i["title"] for i in result["images"]}) == 30
    assert len(result["products"]) == 30
