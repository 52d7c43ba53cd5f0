"""A seller's first bulk run meets Printify's publish limit: the job that waits says so, until
about when, on GET /jobs/{id} and in `pod status`, and the flow's budgets show the limit spent
with a job waiting on it. (Printify's 200 publishes per 30 minutes, shrunk to 2 per 10.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from shared.tools.cli import main
from tests.services.conftest import e2e_stack
from tests.support.infra import wait_for
from tests.support.pipeline import api, submit

LABEL = "Printify publishes (2 per 10 minutes)"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {
        "PRINTIFY_PUBLISHES_PER_WINDOW": "2",
        "PRINTIFY_PUBLISH_WINDOW_S": "600",
        "SIM_PRINTIFY_PUBLISH_LIMIT": "2",
        "SIM_PRINTIFY_PUBLISH_WINDOW_S": "600",
    }
    with e2e_stack("waits", env=env) as s:
        yield s


def job(stack: Stack, job_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{api(stack)}/jobs/{job_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_job_behind_the_publish_limit_says_what_it_waits_for_and_until_when(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = [submit(stack, autoPublish=True, theme=f"limit {i}") for i in range(3)]

    def waiting_job() -> tuple[str, dict[str, Any]] | None:
        for job_id in jobs:
            for wait in job(stack, job_id)["waits"]:
                if wait["kind"] == "vendor_limit" and wait["what"] == LABEL:
                    return job_id, wait
        return None

    waiting_id, wait = wait_for(waiting_job, 120, "a job waiting for the publish limit", 0.5)
    assert wait["stage"] == "publisher" and wait["count"] == 1
    until = datetime.fromisoformat(wait["until"]).timestamp()
    assert time.time() < until <= time.time() + 601  # the oldest publish leaves the window
    # The other two completed: the limit, not a failure, holds this one.
    others = [j for j in jobs if j != waiting_id]
    done = wait_for(
        lambda: all(job(stack, j)["job"]["detailedStatus"] == "completed" for j in others),
        120,
        "the two jobs within the limit to complete",
        0.5,
    )
    assert done and job(stack, waiting_id)["job"]["detailedStatus"] == "processing"

    budgets = httpx.get(f"{api(stack)}/stats", timeout=10).json()["budgets"]
    (publishes,) = [b for b in budgets if b["label"] == LABEL]
    assert (publishes["used"], publishes["limit"]) == (2, 2)
    assert (publishes["waiting"], publishes["jobsWaiting"]) == (1, 1)

    monkeypatch.setenv("POD_API_URL", api(stack))
    assert main(["--text", "status", waiting_id]) == 0
    shown = capsys.readouterr().out
    assert "waiting for" in shown and "Printify publishes" in shown
