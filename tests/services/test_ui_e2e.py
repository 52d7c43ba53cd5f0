"""The dashboard (/ui) in headless Chromium against the whole stack: every page loads without a
console error, a job advances live on its page, and the replay button replays a dead letter.
Screenshots go to .state/test/screenshots."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack
from shared.events import JobRequested, JobRequestedPayload
from tests.support.browser import Page, chromium, chromium_path
from tests.support.infra import TEST_STATE, wait_for
from tests.support.pipeline import api, produce_job, submit

SCREENSHOTS = TEST_STATE / "screenshots"
CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium: scripts/bootstrap.sh installs Debian's where it can"
)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    assert CHROMIUM is not None
    with chromium(CHROMIUM, SCREENSHOTS) as tab:
        yield tab


@pytest.fixture(autouse=True)
def no_console_errors(page: Page) -> Iterator[None]:
    page.errors.clear()
    yield
    assert page.errors == [], page.errors


def test_a_submitted_job_appears_and_advances_live(stack: Stack, page: Page) -> None:
    theme = f"ui live {uuid.uuid4().hex[:6]}"
    job_id = submit(stack, theme=theme, autoPublish=True, productTypes=["tshirt", "mug"])
    # The list finds it by search, and links to its page.
    page.goto(f"{api(stack)}/ui/jobs?q={theme.replace(' ', '+')}")
    page.wait_for(f"document.querySelector('tr[data-job=\"{job_id}\"]') !== null", 20, "listed")
    assert page.evaluate("document.querySelectorAll('#jobs tr[data-job]').length") == 1
    page.evaluate(f"document.querySelector('tr[data-job=\"{job_id}\"] a').click()")
    page.wait_for("window.__pod && window.__pod.renders > 0", 20, "the job page drawn")
    first = page.evaluate("window.__pod.status")
    page.evaluate("window.__stayed = true")  # gone if the page reloaded
    page.screenshot("ui-job-started")
    page.wait_for("window.__pod.status === 'completed'", 120, "the job completed on the page")
    # It advanced through server-sent events, on the same page, without a reload.
    assert page.evaluate("window.__stayed") is True
    assert page.evaluate("window.__pod.events") >= 4
    assert first != "completed" or page.evaluate("window.__pod.renders") > 1
    thumbnails = "[...document.querySelectorAll('#images img')]"
    page.wait_for(
        f"{thumbnails}.some(i => i.dataset.loaded && i.naturalWidth > 0)", 20, "a thumbnail"
    )
    products = page.evaluate("document.querySelectorAll('#products tr').length")
    assert products == 2
    assert page.evaluate("document.querySelector('#products').textContent").count("published") >= 2
    assert page.evaluate("document.querySelectorAll('#log div').length") >= 5
    page.screenshot("ui-job-completed")


def test_the_replay_button_replays_a_dead_letter(stack: Stack, page: Page) -> None:
    # A job over the image limit, put on the topic directly (the API would refuse it): the
    # generator dead-letters it with the reason.
    job = JobRequested(
        job_id=f"ui-dlq-{uuid.uuid4().hex[:8]}",
        producer="tests",
        payload=JobRequestedPayload(
            theme="too many", style="flat", niche="owls", product_types=["tshirt"], count=100
        ),
    )
    produce_job(stack, job)
    base = api(stack)

    def letter() -> dict[str, object] | None:
        found = httpx.get(f"{base}/dlq", params={"jobId": job.job_id}, timeout=5).json()
        return found["deadLetters"][0] if found["deadLetters"] else None

    dead = wait_for(letter, 60, "the dead letter listed")
    assert dead is not None and dead["replayedAt"] is None
    page.goto(f"{base}/ui/dlq")
    button = f'button[data-replay="{dead["id"]}"]'
    page.wait_for(f"document.querySelector('{button}') !== null", 20, "its replay button")
    assert "MAX_IMAGES_PER_JOB" in page.evaluate(
        f"document.querySelector('tr[data-dead-letter=\"{dead['id']}\"]').textContent"
    )
    page.screenshot("ui-dlq-before-replay")
    page.evaluate(f"document.querySelector('{button}').click()")
    row = f"document.querySelector('tr[data-dead-letter=\"{dead['id']}\"]').textContent"
    page.wait_for(f"{row}.includes('replayed')", 20, "the row says replayed")
    page.screenshot("ui-dlq-replayed")
    deadline = time.monotonic() + 20
    while True:  # the API agrees (and the replayed record failed again: a new dead letter)
        again = httpx.get(f"{base}/dlq", params={"jobId": job.job_id}, timeout=5).json()
        replayed = [d for d in again["deadLetters"] if d["id"] == dead["id"]]
        if replayed and replayed[0]["replayedAt"] is not None:
            break
        assert time.monotonic() < deadline, again
        time.sleep(0.3)
    assert replayed[0]["replayCount"] == 1


def test_the_preflight_page_shows_the_doctor_of_a_correct_stack(stack: Stack, page: Page) -> None:
    """The stack as make up runs it (simulators for every vendor) passes every check it
    configures, and the page shows the same checks the API answers."""
    page.goto(f"{api(stack)}/ui/doctor")
    page.wait_for("document.querySelector('#run-doctor') !== null", 20, "the preflight page")
    page.evaluate("document.querySelector('#run-doctor').click()")
    rows = "document.querySelectorAll('#checks tr[data-check]')"
    page.wait_for(f"{rows}.length > 0", 120, "the checks shown")
    shown = page.evaluate(f"[...{rows}].map((r) => [r.dataset.check, r.dataset.status])")
    page.screenshot("ui-doctor")
    report = httpx.get(f"{api(stack)}/doctor", timeout=120).json()
    assert shown == [[c["name"], c["status"]] for c in report["checks"]]
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    assert {"platform.broker", "platform.database", "claude.model"} <= {
        c["name"] for c in report["checks"] if c["status"] == "pass"
    }


def test_the_flow_page_shows_each_vendor_budgets_use(stack: Stack, page: Page) -> None:
    """By now the jobs above took Printify's budgets: the flow page lists them as /stats does."""
    budgets = httpx.get(f"{api(stack)}/stats", timeout=10).json()["budgets"]
    assert any(b["label"].startswith("Printify requests") for b in budgets), budgets
    page.goto(f"{api(stack)}/ui/flow")
    rows = "document.querySelectorAll('#budgets tr[data-budget]')"
    page.wait_for(f"{rows}.length === {len(budgets)}", 20, "the budgets drawn")
    shown = page.evaluate("document.querySelector('#budgets').textContent")
    assert all(b["label"] in shown for b in budgets)


# Last: by now the job and the dead letter above give the pages something to draw.
PAGES = [
    ("jobs", "#jobs tr"),
    ("flow", "#flow .card"),
    ("dlq", "#dlq tr"),
    ("alerts", "#alerts tr"),
    ("charts", "#charts svg"),
]


@pytest.mark.parametrize(("name", "drawn"), PAGES)
def test_every_page_loads_without_errors(stack: Stack, page: Page, name: str, drawn: str) -> None:
    page.goto(f"{api(stack)}/ui/{name}")
    page.wait_for(f"document.querySelector({json.dumps(drawn)}) !== null", 20, f"{name} drawn")
    assert page.evaluate("document.querySelector('#error').hidden") is True
    assert page.evaluate("document.querySelector('a.active').dataset.nav") == name
    assert Path(page.screenshot(f"ui-{name}")).stat().st_size > 1000
