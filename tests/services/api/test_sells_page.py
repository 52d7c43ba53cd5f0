"""The dashboard's "What sells" page, and a design's sales on its job page, in headless Chromium
(tests/support/browser.py) against the API, on orders the monitor folded."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright, expect
from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
from shared.adapters.storage import LocalImageStorage
from shared.platform.db import open_pool
from tests.services.api.conftest import serve
from tests.support.browser import VIEWPORT, PageErrors, chromium_path, launch, screenshot
from tests.support.infra import TEST_STATE
from tests.support.orders import Shop, call, line

SCREENSHOTS = TEST_STATE / "screenshots"
CHROMIUM = chromium_path()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium: scripts/bootstrap.sh installs Debian's where it can"
    ),
    pytest.mark.asyncio(loop_scope="module"),
]
DRAWN = 20_000  # ms


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def api(pipeline_topics: str, migrated_db: str, images: Path) -> Iterator[httpx.Client]:
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        image_storage_dir=images,
        thumbnail_dir=images / "thumbnails",
    ) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        chromium = await launch(playwright, CHROMIUM)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[tuple[Page, PageErrors]]:
    """A tab in a context of its own, and the errors it logs."""
    context = await browser.new_context(viewport=VIEWPORT)
    tab = await context.new_page()
    seen = PageErrors()
    seen.watch(tab)
    yield tab, seen
    await context.close()


def errors_but_other_tests_art(seen: PageErrors, job_id: str) -> list[str]:
    """The page's errors, but the 404 of a thumbnail of another test's design: those tests
    fold designs without storing their art (the session's database is shared)."""
    return [e for e in seen.errors if "/images/" not in e or "404" not in e or job_id in e]


@pytest_asyncio.fixture(loop_scope="module")
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await open_pool(migrated_db, max_size=4)
    yield p
    await p.close()


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (uuid.uuid4().int % 256, 90, 160)).save(buf, "PNG")
    return buf.getvalue()


async def test_the_page_shows_the_best_design_with_its_thumbnail_and_the_job_its_sales(
    api: httpx.Client,
    pool: AsyncConnectionPool,
    page: tuple[Page, PageErrors],
    images: Path,
) -> None:
    tab, seen = page
    stored = LocalImageStorage(images).save(png())
    shop = Shop(Folder(pool))
    await shop.fold_made(art=(stored.sha256, stored.uri))
    a, b = shop.product_ids
    now = datetime.now(UTC)
    # Far more than any other test's orders: this design tops the list.
    for lines in ([line(a, 900, 5000, 2000)], [line(a, 100, 5000, 2000), line(b, 3, 4000, 1500)]):
        await shop.fold(call(uuid.uuid4().hex[:24], "order:created", now, "pending", lines))

    await tab.goto(f"{api.base_url}/ui/sells")
    await expect(tab.locator("a.active")).to_have_attribute("data-nav", "sells")
    top = tab.locator("#sells-designs tbody tr").first
    await expect(top).to_have_attribute("data-key", f"{shop.job.job_id}:0", timeout=DRAWN)
    await expect(top).to_contain_text("$50000.00", timeout=DRAWN)
    await expect(top).to_contain_text("60.0%")
    await expect(top.locator("img")).to_have_attribute("data-loaded", "1", timeout=DRAWN)
    await expect(tab.locator(f'#sells-themes tr[data-key="{shop.theme}"]')).to_contain_text("1003")
    await expect(tab.locator(f'#sells-niches tr[data-key="{shop.niche}"]')).to_be_attached()
    await expect(tab.locator("#s-chart svg polyline").first).to_be_attached(timeout=DRAWN)
    await expect(tab.locator("#s-chart .legend")).to_contain_text(shop.theme)
    await expect(tab.locator("#error")).to_have_js_property("hidden", True)
    assert (await screenshot(tab, SCREENSHOTS, "ui-sells")).stat().st_size > 1000

    # The design's job page says what each design sold.
    await top.locator("a").click()
    await expect(tab).to_have_url(f"{api.base_url}/ui/jobs/{shop.job.job_id}")
    sold = tab.locator('figure[data-image="0"] .sales')
    await expect(sold).to_contain_text("1000 sold · $50000.00 · 60% margin", timeout=DRAWN)
    await expect(tab.locator('figure[data-image="1"] .sales')).to_contain_text("3 sold")
    assert (await screenshot(tab, SCREENSHOTS, "ui-job-sales")).stat().st_size > 1000
    assert errors_but_other_tests_art(seen, shop.job.job_id) == []
