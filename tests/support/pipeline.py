"""Helpers for tests that drive a whole stack through its API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from devstack.stack import Stack
from shared.contract.events import JobRequested
from shared.contract.topics import JOBS_REQUESTED
from tests.support.infra import wait_for

TERMINAL = {"completed", "partial", "failed", "cancelled"}


def stack_env(state: Path, image_size: int) -> dict[str, str]:
    """What every end-to-end stack of the tests sets: fast heartbeats, images under ``state``,
    and small samples (for speed) upscaled to a print-ready size (150 DPI) as in production."""
    return {
        "HEARTBEAT_INTERVAL_S": "1",
        "IMAGE_STORAGE_DIR": str(state / "images"),
        "IMAGE_WIDTH": str(image_size),
        "IMAGE_HEIGHT": str(image_size),
        "PRINT_DPI": "150",
        "PRINT_MAX_UPSCALE": "64",
    }


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
    return str(resp.json()["job"]["detailedStatus"])


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


def api_up(s: Stack) -> bool:
    """Whether the stack's API answers /health with 200."""
    try:
        return httpx.get(f"{api(s)}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def submitter_config(s: Stack) -> dict[str, str | int | float | bool]:
    """The client settings in the stack's ``submitter.properties`` (the bootstrap servers
    alone for a stack on a given broker)."""
    path = s.submitter_properties_path
    if s.kafka is None or not path.exists():
        return {"bootstrap.servers": s.bootstrap}
    lines = [ln for ln in path.read_text().splitlines() if "=" in ln and not ln.startswith("#")]
    return {k.strip(): v.strip() for k, v in (ln.split("=", 1) for ln in lines)}


def produce_job(s: Stack, event: JobRequested) -> None:
    """Put a job on its priority topic as another system would (keyed by its job id), with
    the settings `make up` gives other systems (the ``submitter`` principal's) when the stack
    runs its own broker."""
    producer = Producer({**submitter_config(s), "enable.idempotence": True})
    producer.produce(
        JOBS_REQUESTED[event.payload.priority], event.to_json(), key=event.job_id.encode()
    )
    assert producer.flush(10) == 0
