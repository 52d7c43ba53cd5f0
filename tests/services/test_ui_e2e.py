"""The dashboard (/ui) in headless Chromium against the whole stack: every page loads without a
console error, a job advances live on its page, and the replay button replays a dead letter.
Playwright drives the system Chromium (tests/support/browser.py): one browser for the session,
a fresh context (cookies, storage, tab) per test. Screenshots go to .state/test/screenshots."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypedDict
from urllib.parse import quote_plus

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from devstack.stack import Stack
from shared.contract.events import JobRequested, JobRequestedPayload
from tests.support.browser import VIEWPORT, PageErrors, chromium_path, launch, screenshot
from tests.support.infra import TEST_STATE, wait_for
from tests.support.pipeline import api, produce_job, submit

SCREENSHOTS = TEST_STATE / "screenshots"
CHROMIUM = chromium_path()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium: scripts/bootstrap.sh installs Debian's where it can"
    ),
    # The browser lives on the session's event loop: the tests must run on that loop too.
    pytest.mark.asyncio(loop_scope="session"),
]
# Waits on the page (Playwright's expect) in ms: the stack answers in well under a second, the
# slack is for a loaded CI machine.
DRAWN = 20_000


class DeadLetter(TypedDict):
    """The fields of a /dlq answer's dead letter these tests read."""

    id: int
    replayedAt: str | None  # the API's camelCase
    replayCount: int


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        chromium = await launch(playwright, CHROMIUM)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A tab in a context of its own; the test fails if the page logged an error."""
    context = await browser.new_context(viewport=VIEWPORT)
    tab = await context.new_page()
    seen = PageErrors()
    seen.watch(tab)
    yield tab
    errors = list(seen.errors)  # before closing: a closed page's aborted streams are not errors
    await context.close()
    assert errors == [], errors


async def get_json(url: str, timeout: float = 10, **params: str) -> Any:
    async with httpx.AsyncClient(timeout=timeout) as client:
        resp = await client.get(url, params=params)
        resp.raise_for_status()
        return resp.json()


async def test_a_submitted_job_appears_and_advances_live(stack: Stack, page: Page) -> None:
    theme = f"ui live {uuid.uuid4().hex[:6]}"
    job_id = submit(stack, theme=theme, autoPublish=True, productTypes=["tshirt", "mug"])
    # The list finds it by search, and links to its page.
    await page.goto(f"{api(stack)}/ui/jobs?q={quote_plus(theme)}")
    row = page.locator(f'tr[data-job="{job_id}"]')
    await expect(row).to_have_count(1, timeout=DRAWN)
    await expect(page.locator("#jobs tr[data-job]")).to_have_count(1)
    await row.locator("a").click()
    # Waits go through the page's DOM, not wait_for_function: that evaluates a string in the
    # page, which the dashboard's CSP (script-src 'self') refuses, as it should.
    status = page.locator("#job-status")  # drawn in the same step that counts a render
    await expect(status).to_be_attached(timeout=DRAWN)
    assert await page.evaluate("window.__pod.renders") > 0
    first = await page.evaluate("window.__pod.status")
    await page.evaluate("window.__stayed = true")  # gone if the page reloaded
    await screenshot(page, SCREENSHOTS, "ui-job-started")
    await expect(status).to_have_text("completed", timeout=120_000)
    assert await page.evaluate("window.__pod.status") == "completed"
    # It advanced through server-sent events, on the same page, without a reload.
    assert await page.evaluate("window.__stayed") is True
    assert await page.evaluate("window.__pod.events") >= 4
    assert first != "completed" or await page.evaluate("window.__pod.renders") > 1
    # A thumbnail drawn from the image itself (its bytes decoded), not only a tag.
    thumbnail = page.locator("#images img[data-loaded]").first
    await expect(thumbnail).to_be_attached(timeout=DRAWN)
    await expect(thumbnail).not_to_have_js_property("naturalWidth", 0)
    await expect(page.locator("#products tr")).to_have_count(2)
    assert (await page.locator("#products").text_content() or "").count("published") >= 2
    # Each listing links to where buyers find it (a web address, opened in a tab of its own).
    links = page.locator('#products a[data-listing="printify"]')
    await expect(links).to_have_count(2)
    for href in [await links.nth(i).get_attribute("href") for i in range(2)]:
        assert (href or "").startswith(("http://", "https://")), href
    assert await page.locator("#log div").count() >= 5
    await screenshot(page, SCREENSHOTS, "ui-job-completed")


async def test_the_replay_button_replays_a_dead_letter(stack: Stack, page: Page) -> None:
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

    def letters() -> list[DeadLetter]:
        found = httpx.get(f"{base}/dlq", params={"jobId": job.job_id}, timeout=5).json()
        return list(found["deadLetters"])

    listed = await asyncio.to_thread(wait_for, letters, 60, "the dead letter listed")
    dead = listed[0]
    assert dead["replayedAt"] is None
    await page.goto(f"{base}/ui/dlq")
    row = page.locator(f'tr[data-dead-letter="{dead["id"]}"]')
    button = page.locator(f'button[data-replay="{dead["id"]}"]')
    await expect(button).to_be_visible(timeout=DRAWN)
    await expect(row).to_contain_text("MAX_IMAGES_PER_JOB")
    await screenshot(page, SCREENSHOTS, "ui-dlq-before-replay")
    await button.click()
    await expect(row).to_contain_text("replayed", timeout=DRAWN)
    await screenshot(page, SCREENSHOTS, "ui-dlq-replayed")

    # The API agrees (and the replayed record failed again: a new dead letter).
    def replayed() -> DeadLetter | None:
        same = [d for d in letters() if d["id"] == dead["id"]]
        return same[0] if same and same[0]["replayedAt"] is not None else None

    again = await asyncio.to_thread(wait_for, replayed, 20, "the API to say replayed")
    assert again["replayCount"] == 1


async def test_the_preflight_page_shows_the_doctor_of_a_correct_stack(
    stack: Stack, page: Page
) -> None:
    """The stack as make up runs it (simulators for every vendor) passes every check it
    configures, and the page shows the same checks the API answers."""
    await page.goto(f"{api(stack)}/ui/doctor")
    await page.locator("#run-doctor").click(timeout=DRAWN)
    rows = page.locator("#checks tr[data-check]")
    await expect(rows.first).to_be_attached(timeout=120_000)
    shown = await rows.evaluate_all("(rs) => rs.map((r) => [r.dataset.check, r.dataset.status])")
    await screenshot(page, SCREENSHOTS, "ui-doctor")
    report = await get_json(f"{api(stack)}/doctor", timeout=120)
    assert shown == [[c["name"], c["status"]] for c in report["checks"]]
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    assert {"platform.broker", "platform.database", "claude.model"} <= {
        c["name"] for c in report["checks"] if c["status"] == "pass"
    }


async def test_the_flow_page_shows_each_vendor_budgets_use(stack: Stack, page: Page) -> None:
    """By now the jobs above took Printify's budgets: the flow page lists them as /stats does."""
    budgets = (await get_json(f"{api(stack)}/stats"))["budgets"]
    assert any(b["label"].startswith("Printify requests") for b in budgets), budgets
    await page.goto(f"{api(stack)}/ui/flow")
    await expect(page.locator("#budgets tr[data-budget]")).to_have_count(
        len(budgets), timeout=DRAWN
    )
    shown = await page.locator("#budgets").text_content() or ""
    assert all(b["label"] in shown for b in budgets)


# Last: by now the job and the dead letter above give the pages something to draw.
PAGES = [
    ("jobs", "#jobs tr"),
    ("flow", "#flow .card"),
    ("dlq", "#dlq tr"),
    ("alerts", "#alerts tr"),
    ("charts", "#charts svg"),
    ("sells", "#sells-designs tr"),
    ("screening", "#screening-flags tr"),
]


@pytest.mark.parametrize(("name", "drawn"), PAGES)
async def test_every_page_loads_without_errors(
    stack: Stack, page: Page, name: str, drawn: str
) -> None:
    await page.goto(f"{api(stack)}/ui/{name}")
    await expect(page.locator(drawn).first).to_be_attached(timeout=DRAWN)
    await expect(page.locator("#error")).to_have_js_property("hidden", True)
    await expect(page.locator("a.active")).to_have_attribute("data-nav", name)
    assert (await screenshot(page, SCREENSHOTS, f"ui-{name}")).stat().st_size > 1000
