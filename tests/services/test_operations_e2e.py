"""Operating the running stack through the API: workers, a killed worker replaced, scaling a
stage from 1 to 3 instances, a graceful restart, and a refusal past the partition count.

These tests kill, pause, restart and scale things and stop the broker: they run on a stack of
their own, so the shared one stays as the other e2e tests expect it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from shared.contract.events import ImageGenerated, parse_event
from shared.contract.topics import GENERATOR, IMAGES_GENERATED
from tests.services.conftest import e2e_stack
from tests.support.infra import read_all, wait_for
from tests.support.pipeline import api, printify_books, sim_url, submit, wait_done


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """This module's own stack (overrides the shared one)."""
    with e2e_stack("operations") as s:
        yield s


def workers(stack: Stack) -> list[dict[str, Any]]:
    resp = httpx.get(f"{api(stack)}/workers", timeout=5)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["workers"])


def inputs(worker: dict[str, Any]) -> list[str]:
    """The main-input partitions a worker owns (its delay topics aside)."""
    return [p for p in worker["partitions"] if ".retry." not in p]


def running(stack: Stack, service: str) -> list[dict[str, Any]]:
    return [w for w in workers(stack) if w["service"] == service and w["status"] == "running"]


def test_workers_lists_every_stage_instance(stack: Stack) -> None:
    def all_assigned() -> bool:
        return all(
            any(inputs(w) for w in running(stack, s))
            for s in ("generator", "printify", "publisher", "monitor")
        )

    wait_for(all_assigned, 30, "a running, assigned instance of every stage", interval=0.3)
    gen = running(stack, "generator")[0]
    assert gen["id"] == "generator-0"
    assert gen["pid"] == stack.instance("generator-0")["pid"]  # type: ignore[index]
    # One instance owns all of its stage's input partitions (3 priority topics and the seller's
    # decisions, x 3 partitions).
    assert len(inputs(gen)) == 3 * len(GENERATOR.inputs) == 12
    assert {"host", "lastHeartbeat", "processed", "failed", "inFlight"} <= set(gen)


def test_a_killed_worker_is_replaced(stack: Stack) -> None:
    before = stack.instance("publisher-0")
    assert before is not None
    old_pid = stack.kill_instance("publisher-0")
    wait_for(
        lambda: any(w["pid"] != old_pid for w in running(stack, "publisher")),
        60,
        "a replacement publisher heartbeat",
        interval=0.3,
    )
    assert stack.instance("publisher-0")["restarts"] == before["restarts"] + 1  # type: ignore[index]
    # The pool manager reported the death: an alert names the instance and how it ended.
    error = wait_for(
        lambda: [
            a
            for a in httpx.get(
                f"{api(stack)}/alerts", params={"status": "open"}, timeout=10
            ).json()["alerts"]
            if a["type"] == "worker_error" and a["details"]["instanceId"] == "publisher-0"
        ],
        30,
        "a worker_error alert for publisher-0",
        interval=0.5,
    )[0]
    assert "publisher instance publisher-0 died (signal SIGKILL); restarted" in error["message"]
    # And it does its job.
    job_id = submit(stack, theme="after the kill", autoPublish=True)
    assert wait_done(stack, [job_id])[job_id]["job"]["detailedStatus"] == "completed"


def test_graceful_restart_of_one_instance(stack: Stack) -> None:
    old_pid = stack.instance("printify-0")["pid"]  # type: ignore[index]
    resp = httpx.post(f"{api(stack)}/workers/printify-0/restart", timeout=10)
    assert resp.status_code == 202, resp.text
    assert resp.json()["action"] == "restart"
    wait_for(
        lambda: stack.instance("printify-0")["pid"] != old_pid,  # type: ignore[index]
        30,
        "printify-0 to restart",
    )
    assert httpx.post(f"{api(stack)}/workers/nope-9/restart", timeout=10).status_code == 404


def test_scale_generator_one_three_one_mid_run(stack: Stack) -> None:
    """Jobs keep coming while the generator goes 1 -> 3 -> 1: with three instances each owns
    partitions of every priority and delay topic, and no job is lost or done twice."""

    def scale(n: int) -> None:
        resp = httpx.post(
            f"{api(stack)}/scale", json={"service": "generator", "workerCount": n}, timeout=10
        )
        assert resp.status_code == 202, resp.text

    def gens() -> list[dict[str, Any]]:
        return [w for w in running(stack, "generator") if w["partitions"]]

    topics = [*GENERATOR.inputs, *GENERATOR.retry_topics]

    def every_band_on_every_instance() -> list[dict[str, Any]] | None:
        now = gens()
        if len(now) != 3:
            return None
        owned = [p for w in now for p in w["partitions"]]
        if len(owned) != len(set(owned)) or len(owned) != 3 * len(topics):
            return None
        per = {w["id"]: {p.split("[")[0] for p in w["partitions"]} for w in now}
        return now if all(set(topics) <= got for got in per.values()) else None

    ids = [submit(stack, theme=f"before scale {i}", count=2) for i in range(4)]
    scale(3)
    ids += [submit(stack, theme=f"while scaling up {i}", count=2) for i in range(4)]
    three = wait_for(every_band_on_every_instance, 60, "three generators owning every topic")
    table = {w["id"]: sorted(w["partitions"]) for w in three}
    ids += [submit(stack, theme=f"scaled {i}", count=2) for i in range(8)]
    scale(1)
    ids += [submit(stack, theme=f"while scaling down {i}", count=2) for i in range(4)]
    wait_for(
        lambda: len([i for i in stack.instances() if i["service"] == "generator"]) == 1,
        60,
        "scale back to one generator",
    )
    results = wait_done(stack, ids)
    assert {r["job"]["detailedStatus"] for r in results.values()} == {"completed"}, table
    # Each scale was reported: an info alert for the generator says where it went last.
    scaled = wait_for(
        lambda: [
            a
            for a in httpx.get(f"{api(stack)}/alerts", timeout=10).json()["alerts"]
            if a["type"] == "pool_scaled" and a["details"]["service"] == "generator"
        ],
        30,
        "a pool_scaled alert for the generator",
    )
    assert scaled[0]["severity"] == "info"
    assert "generator scaled from" in scaled[0]["message"]
    # Nothing done twice: each image once on the topic (a redelivery carries the same event
    # id, which is fine; two different ids for one image would not be) and once on Printify.
    per_image: dict[tuple[str, int], set[str]] = {}
    for m in read_all(stack.bootstrap, IMAGES_GENERATED):
        # Keyed by job id: other tests' records (the event fuzzer's poison) are not ours.
        if (m.key() or b"").decode(errors="replace") not in results:
            continue
        e = parse_event(m.value())
        if e.job_id in results:
            assert isinstance(e, ImageGenerated), e  # the topic carries only image events
            per_image.setdefault((e.job_id, e.payload.image_index), set()).add(str(e.event_id))
    assert len(per_image) == 2 * len(ids)
    assert all(len(v) == 1 for v in per_image.values())
    assert printify_books(stack)["duplicates"] == []

    too_many = httpx.post(
        f"{api(stack)}/scale", json={"service": "generator", "workerCount": 4}, timeout=10
    )
    assert too_many.status_code == 422
    assert "at most 3 instances" in too_many.text
    bad = httpx.post(
        f"{api(stack)}/scale", json={"service": "mailer", "workerCount": 1}, timeout=10
    )
    assert bad.status_code == 422


def test_health_covers_stages_and_comfyui(stack: Stack) -> None:
    def healthy() -> dict[str, Any] | None:
        resp = httpx.get(f"{api(stack)}/health", timeout=10)
        return dict(resp.json()) if resp.status_code == 200 else None

    body = wait_for(healthy, 60, "a healthy stack", interval=0.5)
    assert body["checks"] == {
        "kafka": "ok",
        "database": "ok",
        "stages": "ok",
        "comfyui": "ok",
    }


def test_killed_worker_alert_opens_then_resolves(stack: Stack) -> None:
    def alerts(status: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{api(stack)}/alerts", params={"status": status}, timeout=10)
        assert resp.status_code == 200, resp.text
        return [a for a in resp.json()["alerts"] if "monitor" not in a["message"]]

    # A hung worker: alive to the pool manager, silent to everyone else.
    pid = stack.kill_instance("printify-0", signal.SIGSTOP)
    try:

        def opened() -> list[dict[str, Any]]:
            return [a for a in alerts("open") if "printify" in a["message"]]

        found = wait_for(opened, 120, "an alert about the silent printify worker", interval=1)
        assert found[0]["severity"] == "critical"
        key = found[0]["conditionKey"]
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: any(a["conditionKey"] == key for a in alerts("resolved")),
        120,
        "the alert to resolve once printify is back",
        interval=1,
    )


def test_health_is_503_while_the_broker_is_down(stack: Stack) -> None:
    assert stack.kafka is not None
    stack.kafka.stop()
    try:
        resp = httpx.get(f"{api(stack)}/health", timeout=30)
        assert resp.status_code == 503
        assert resp.json()["status"] == "unhealthy"
        assert resp.json()["checks"]["kafka"] != "ok"
    finally:
        stack.kafka.start()
    wait_for(
        lambda: httpx.get(f"{api(stack)}/health", timeout=30).status_code == 200,
        120,
        "/health back to 200 with the broker",
        interval=1,
    )


def test_an_error_burst_opens_the_error_rate_alert(stack: Stack) -> None:
    def error_rate_alerts() -> list[dict[str, Any]]:
        resp = httpx.get(f"{api(stack)}/alerts", params={"status": "open"}, timeout=10)
        return [a for a in resp.json()["alerts"] if a["type"] == "error_rate"]

    assert error_rate_alerts() == []
    comfy = sim_url(stack, "comfyui")
    # ComfyUI rejects every request for good: each job fails at once (no retries to wait for).
    httpx.post(
        f"{comfy}/_sim/config", json={"failure_rate": 1.0, "fault_statuses": [400]}, timeout=5
    ).raise_for_status()
    try:
        # Earlier tests' completed jobs are in the window too: fail jobs in bursts until the
        # failed share passes the threshold (a bounded number of bursts).
        for burst in range(8):
            ids = [submit(stack, theme=f"burst {burst}.{i}") for i in range(8)]
            results = wait_done(stack, ids)
            assert {r["job"]["detailedStatus"] for r in results.values()} == {"failed"}
            try:
                found = wait_for(error_rate_alerts, 8, "the error rate alert", interval=1)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("no error rate alert after 64 failed jobs")
    finally:
        httpx.post(f"{comfy}/_sim/config", json={"failure_rate": 0.0}, timeout=5)
    assert found[0]["severity"] == "critical"
    assert len(found) == 1  # deduplicated: one open alert for the condition
