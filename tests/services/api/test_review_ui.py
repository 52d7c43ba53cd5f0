"""The review page in headless Chromium, against the real API, PostgreSQL and broker: the seller
finds the images awaiting review, opens a job's review, decides from the keyboard, and each
decision reaches the API (and the topic) and shows its result, or the API's reason for a 409.

With ``POD_SCREENSHOTS=1`` the page before and after the decisions is saved to
``docs/img/review-before.png`` and ``docs/img/review-after.png`` (the closing note shows them).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect
from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
from shared.adapters.storage import LocalImageStorage
from shared.adapters.store import reviews
from shared.contract.topics import SELLER_DECISIONS
from shared.platform.db import open_pool
from tests.services.api.conftest import serve
from tests.services.api.test_review import decisions, reviewed_job
from tests.support.browser import VIEWPORT, PageErrors, chromium_path, launch, screenshot

CHROMIUM = chromium_path()
DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium: scripts/bootstrap.sh installs Debian's where it can"
    ),
    pytest.mark.asyncio(loop_scope="module"),
]
DRAWN = 20_000
# The mockups' sizes: the API's previews of the image stand for Printify's mockups.
SIZES = {"mug": 160, "tshirt": 320}


@pytest.fixture(scope="module")
def ui_api(
    pipeline_topics: str, migrated_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, LocalImageStorage]]:
    """The API without keys (the page's <img> tags send none), its images in a store of its own."""
    stored = tmp_path_factory.mktemp("review-images")
    with serve(
        kafka_bootstrap_servers=pipeline_topics, database_url=migrated_db, image_storage_dir=stored
    ) as client:
        yield client, LocalImageStorage(stored)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        chromium = await launch(playwright, CHROMIUM)
        yield chromium
        await chromium.close()


async def test_a_seller_reviews_from_the_keyboard(
    ui_api: tuple[httpx.Client, LocalImageStorage],
    browser: Browser,
    pipeline_topics: str,
    migrated_db: str,
) -> None:
    client, store = ui_api
    base = str(client.base_url)
    pool = await open_pool(migrated_db, max_size=2)
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    seen = PageErrors()
    seen.watch(page)
    try:
        # The mockups: the API's own previews of the image, by absolute URL as Printify's are.
        job = await reviewed_job(
            client,
            pipeline_topics,
            pool,
            store=store,
            mockup=lambda job_id, i, t: (
                f"{base}/jobs/{job_id}/images/{i}?size={160 if t == 'mug' else 320}"
            ),
        )
        await run_review(page, base, job.job_id, pipeline_topics)
        await the_new_image_arrives(page, job.job_id, pipeline_topics, pool)
        # The job's own page links to its review.
        await page.goto(f"{base}/ui/jobs/{job.job_id}")
        await expect(page.locator("#review-link")).to_be_visible(timeout=DRAWN)
        errors = list(seen.errors)
    finally:
        await context.close()
        await pool.close()
    # The one line a browser logs of itself for the 409 the test provoked (its network log of a
    # refused request); anything else is the page's fault.
    refused = [e for e in errors if "409" in e and "/images/1/approve" in e]
    # The review queue lists every job's images awaiting review in the session's database: other
    # tests' jobs name images this API's store does not hold, whose previews answer 404.
    foreign = [e for e in errors if "404" in e and "/jobs/" in e and job.job_id not in e]
    assert [e for e in errors if e not in refused + foreign] == [], errors


async def run_review(page: Page, base: str, job_id: str, bootstrap: str) -> None:
    # The Review page lists the job's two images awaiting review and links to the job's review.
    await page.goto(f"{base}/ui/review")
    rows = page.locator(f'tr[data-queue^="{job_id}:"]')
    await expect(rows).to_have_count(2, timeout=DRAWN)
    await expect(page.locator('a[data-nav="review"]')).to_have_class("active")
    await rows.first.locator("a").click()
    await expect(page).to_have_url(f"{base}/ui/jobs/{job_id}/review")

    items = page.locator(".review-item")
    await expect(items).to_have_count(2, timeout=DRAWN)
    first, second = items.nth(0), items.nth(1)
    await expect(first).to_have_class("review-item focused")
    # Per image: the mockups side by side (drawn: decoded), the title, tags, price and margin.
    await expect(first.locator(".mockup")).to_have_count(2)
    for mock in await first.locator(".mockup img").all():
        await expect(mock).not_to_have_js_property("naturalWidth", 0, timeout=DRAWN)
    await expect(first.locator("img[data-thumb][data-loaded]")).to_be_attached(timeout=DRAWN)
    await expect(first.locator("h3")).to_contain_text("Autumn cat 0")
    await expect(first.locator(".tags")).to_contain_text("variant-0")
    await expect(first.locator('[data-product="mug"] [data-price]')).to_have_text(
        "price $24.99\u2013$29.99"
    )
    await expect(first.locator('[data-product="mug"] [data-margin]')).to_contain_text("44.0%")
    if os.environ.get("POD_SCREENSHOTS") == "1":
        await screenshot(page, DOCS_IMG, "review-before")

    # a: approve the focused image. The POST reaches the API, which produces the decision.
    await page.keyboard.press("a")
    await expect(first.locator("[data-result]")).to_have_text(
        "approved by anonymous", timeout=DRAWN
    )
    await expect(first.locator("[data-review-state]")).to_have_text("approved")

    # j: the next image, shown; g: a prompt box with its prompt, Enter sends the regenerate.
    await page.keyboard.press("j")
    await expect(second).to_have_class("review-item focused")
    await expect(second).to_be_in_viewport()
    await page.keyboard.press("g")
    prompt = second.locator("input[name=prompt]")
    await expect(prompt).to_be_focused()
    await expect(prompt).to_have_value("a cat in autumn leaves, variant 1")
    await prompt.fill("a cat in autumn leaves, in the rain")
    await prompt.press("Enter")
    await expect(second.locator("[data-result]")).to_have_text(
        "sent back to regenerate by anonymous", timeout=DRAWN
    )
    await expect(second.locator("[data-review-state]")).to_have_text("regenerating")

    # a on an image whose regenerate is in flight: the API's 409, its reason on the page.
    await page.keyboard.press("a")
    await expect(second.locator("[data-result]")).to_have_text(
        "a regenerate of image 1 is in flight; wait for the new image", timeout=DRAWN
    )
    await expect(second.locator("[data-result]")).to_have_class("result refused")
    # k: back to the first; a again: already approved, the same decision (nothing produced).
    await page.keyboard.press("k")
    await expect(first).to_have_class("review-item focused")
    await page.keyboard.press("a")
    await expect(first.locator("[data-result]")).to_have_text(
        "already approved by anonymous", timeout=DRAWN
    )
    if os.environ.get("POD_SCREENSHOTS") == "1":
        await screenshot(page, DOCS_IMG, "review-after")

    made = await asyncio.to_thread(decisions, bootstrap, job_id)
    assert [(e.payload.action, e.payload.image_index) for e in made] == [
        ("approve", 0),
        ("regenerate", 1),
    ]
    assert made[1].payload.prompt == "a cat in autumn leaves, in the rain"
    assert made[0].payload.decided_by == "anonymous"


async def the_new_image_arrives(
    page: Page, job_id: str, bootstrap: str, pool: AsyncConnectionPool
) -> None:
    made = await asyncio.to_thread(decisions, bootstrap, job_id)
    # The new image's products are made (its review awaits again, as generation 1) and the job's
    # log moves: the page draws the image anew, live, and the seller approves the new one.
    async with pool.connection() as conn:
        assert await reviews.mark_awaiting(conn, job_id, 1, 1, made[1].occurred_at)
    await Folder(pool).fold(made[1], SELLER_DECISIONS, 0, 0)
    second = page.locator('.review-item[data-review="1"]')
    await expect(second.locator("figcaption")).to_have_text("image 1 · generation 1", timeout=DRAWN)
    await expect(second).to_have_attribute("data-state", "awaiting")
    await page.keyboard.press("j")
    await expect(second).to_have_class("review-item focused")
    await page.keyboard.press("a")
    await expect(second.locator("[data-result]")).to_have_text(
        "approved by anonymous", timeout=DRAWN
    )
    last = (await asyncio.to_thread(decisions, bootstrap, job_id))[-1]
    assert (last.payload.action, last.payload.image_index, last.payload.generation) == (
        "approve",
        1,
        1,
    )
