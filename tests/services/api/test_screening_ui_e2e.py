"""Screening on the dashboard (issue 29) in headless Chromium, against the API alone (a real
broker and database, the job's events folded by the monitor's own Folder): the job's page shows
a blocked image's badge and reason and a held image's resembled design linked to its job; the
Screening page counts what each check flagged today. Screenshots go to .state/test/screenshots."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from services.monitor.fold import Folder
from shared.contract.events import JobRequested, Priority
from shared.contract.topics import JOBS_REQUESTED
from shared.platform.db import open_pool
from tests.services.api.test_api import job_body, one_event
from tests.services.monitor.test_fold_screening import (
    REVIEW,
    held,
    nike,
    screened,
    screening,
    twin,
)
from tests.support.browser import VIEWPORT, PageErrors, chromium_path, launch, screenshot
from tests.support.infra import TEST_STATE

SCREENSHOTS = TEST_STATE / "screenshots"
CHROMIUM = chromium_path()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium: scripts/bootstrap.sh installs Debian's where it can"
    ),
    pytest.mark.asyncio(loop_scope="module"),
]
DRAWN = 20_000
TYPES = ("tshirt", "mug")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        chromium = await launch(playwright, CHROMIUM)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A tab of its own; the test fails if the page logged an error other than its thumbnails'
    (these images were never stored: their previews answer 404)."""
    context = await browser.new_context(viewport=VIEWPORT)
    tab = await context.new_page()
    seen = PageErrors()
    seen.watch(tab)
    yield tab
    errors = [e for e in seen.errors if "/images/" not in e]
    await context.close()
    assert errors == [], errors


async def screened_job(api: httpx.Client, bootstrap: str, migrated_db: str) -> JobRequested:
    """A job (without review) whose image 1 screening blocked and image 2 it held."""
    resp = api.post("/jobs", json=job_body(count=2, productTypes=list(TYPES), autoPublish=True))
    assert resp.status_code == 202, resp.text
    job = one_event(bootstrap, JOBS_REQUESTED[Priority.HIGH], resp.json()["jobId"])
    pool = await open_pool(migrated_db, max_size=2)
    try:
        folder = Folder(pool)
        events = [
            screened(job, 0, screening(nike())),
            screened(job, 1, screening(twin("job-of-the-original", 2, distance=4), nike(REVIEW))),
            *[held(job, 1, t) for t in TYPES],
        ]
        for n, e in enumerate(events):
            await folder.fold(e, "t", 0, n)
    finally:
        await pool.close()
    return job


async def test_the_job_page_shows_why_an_image_was_blocked_or_held(
    api: httpx.Client, pipeline_topics: str, migrated_db: str, page: Page
) -> None:
    job = await screened_job(api, pipeline_topics, migrated_db)
    base = str(api.base_url).rstrip("/")
    await page.goto(f"{base}/ui/jobs/{job.job_id}")
    blocked = page.locator('figure[data-image="0"] .screening')
    await expect(blocked.locator("[data-screening]")).to_have_text(
        "screening: block", timeout=DRAWN
    )
    reason = blocked.locator('li[data-check="deny_list"]')
    await expect(reason).to_have_attribute("data-outcome", "block")
    await expect(reason).to_contain_text("'NIKE' in the title matches the protected term Nike")
    held_image = page.locator('figure[data-image="1"] .screening')
    await expect(held_image.locator("[data-screening]")).to_have_text("screening: review")
    original = held_image.locator('a[data-resembles="job-of-the-original"]')
    await expect(original).to_have_text("job job-of-t image 3")
    await expect(original).to_have_attribute("href", "/ui/jobs/job-of-the-original")
    await expect(held_image).to_contain_text("(distance 4)")
    await expect(page.locator("#review-link")).to_be_visible()  # a job without review
    log = page.locator("#log div.error")
    await expect(log).to_contain_text("image 1 blocked by screening: deny_list — 'Nike' in title")
    await screenshot(page, SCREENSHOTS, "ui-job-screening")

    # The Screening page counts today's flags (this job's among them).
    await page.goto(f"{base}/ui/screening")
    await expect(page.locator("a.active")).to_have_attribute("data-nav", "screening")
    today = page.locator("#screening-flags tbody tr").first
    await expect(today.locator(".screened-block").first).to_be_attached(timeout=DRAWN)
    counted = api.get("/screening", params={"days": 7}).json()
    first_day = counted["flags"][0]["day"]
    await expect(today).to_have_attribute("data-day", first_day)
    await expect(page.locator("#error")).to_have_js_property("hidden", True)
    await screenshot(page, SCREENSHOTS, "ui-screening")
