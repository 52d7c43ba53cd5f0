"""The dashboard's New job and Topics pages in headless Chromium, against the API alone (a real
broker and database, no stages): the form shows the API's own field errors by their fields and
a good submit lands on the job's page; a CSV upload answers per line; the Topics page shows a
group's lag and a topic's messages escaped, with a link from an event to its job.
Screenshots go to .state/test/screenshots."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from confluent_kafka import Producer
from playwright.async_api import Browser, FilePayload, Page, async_playwright, expect

from tests.services.api.test_api import job_body
from tests.support.browser import VIEWPORT, PageErrors, chromium_path, launch, screenshot
from tests.support.infra import TEST_STATE, unique
from tests.support.kafka import create_topics, job

SCREENSHOTS = TEST_STATE / "screenshots"
CHROMIUM = chromium_path()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium: scripts/bootstrap.sh installs Debian's where it can"
    ),
    pytest.mark.asyncio(loop_scope="module"),
]
DRAWN = 20_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        chromium = await launch(playwright, CHROMIUM)
        yield chromium
        await chromium.close()


@pytest.fixture
def expected_errors() -> list[str]:
    """What a test expects the page to log (Chromium logs every 4xx answer as an error)."""
    return []


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, expected_errors: list[str]) -> AsyncIterator[Page]:
    """A tab in a context of its own; the test fails if the page logged an error it did not
    expect."""
    context = await browser.new_context(viewport=VIEWPORT)
    tab = await context.new_page()
    seen = PageErrors()
    seen.watch(tab)
    yield tab
    errors = [e for e in seen.errors if not any(x in e for x in expected_errors)]
    await context.close()
    assert errors == [], errors


def base(api: httpx.Client) -> str:
    return str(api.base_url).rstrip("/")


async def fill_form(page: Page, theme: str, count: str) -> None:
    await page.fill("#f-theme", theme)
    await page.fill("#f-style", "linocut")
    await page.fill("#f-niche", "owl lovers")
    await page.fill("#f-count", count)


async def test_the_form_shows_the_apis_errors_by_their_fields_then_lands_on_the_job(
    api: httpx.Client, page: Page, expected_errors: list[str]
) -> None:
    expected_errors.append(f"status of 422 (Unprocessable Entity) {base(api)}/jobs")
    theme = unique("ui form")
    await page.goto(f"{base(api)}/ui/new")
    await expect(page.locator("a.active")).to_have_attribute("data-nav", "new")
    await fill_form(page, theme, "0")
    await page.fill("#f-style", "")
    await page.locator("#submit-job").click()
    count = page.locator('.field[data-field="count"] .problem')
    # The API's own messages for the same body, each by its field.
    said = api.post(
        "/jobs",
        json={
            "theme": theme,
            "style": "",
            "niche": "owl lovers",
            "count": 0,
            "productTypes": ["tshirt"],
        },
    ).json()["detail"]
    by_field = {p["field"]: p["message"] for p in said}
    await expect(count).to_have_text(by_field["count"], timeout=DRAWN)
    await expect(page.locator('.field[data-field="style"] .problem')).to_have_text(
        by_field["style"]
    )
    await expect(page.locator('.field[data-field="theme"] .problem')).to_have_text("")
    # A bound only the deployment knows (MAX_IMAGES_PER_JOB): the API's message again.
    await page.fill("#f-style", "linocut")
    await page.fill("#f-count", "999")
    await page.locator("#submit-job").click()
    await expect(count).to_have_text("must be at most 50", timeout=DRAWN)
    await expect(page.locator('.field[data-field="style"] .problem')).to_have_text("")
    await screenshot(page, SCREENSHOTS, "ui-new-job-errors")

    await page.fill("#f-count", "2")
    await page.check('input[name="productTypes"][value="mug"]')
    await page.select_option("#f-priority", "9")
    await page.select_option("#f-review", "true")
    await page.locator("#submit-job").click()
    await expect(page.locator("#job-status")).to_be_attached(timeout=DRAWN)
    job_id = page.url.rsplit("/", 1)[-1]
    assert page.url.startswith(f"{base(api)}/ui/jobs/")
    shown = api.get(f"/jobs/{job_id}").json()["job"]
    assert (shown["theme"], shown["count"], shown["priority"], shown["band"]) == (
        theme,
        2,
        9,
        "high",
    )
    assert shown["productTypes"] == ["tshirt", "mug"] and shown["request"]["review"] is True
    await screenshot(page, SCREENSHOTS, "ui-new-job-submitted")


async def test_a_csv_upload_answers_per_line_and_again_accepts_nothing_twice(
    api: httpx.Client, page: Page
) -> None:
    theme = unique("ui csv")
    text = "\n".join(
        [
            "theme,style,niche,types,count,priority,channels",
            f"{theme},flat,owls,tshirt|mug,1,high,",
            f"{theme},flat,owls,sock,1,high,",
        ]
    )
    upload = FilePayload(name="jobs.csv", mimeType="text/csv", buffer=text.encode())
    await page.goto(f"{base(api)}/ui/new")
    for expected in ("accepted", "already_accepted"):
        await page.set_input_files("#csv-file", files=[upload])
        await page.locator("#submit-csv").click()
        good = page.locator(f'#csv-lines tr[data-line="2"][data-status="{expected}"]')
        await expect(good).to_have_count(1, timeout=DRAWN)
        bad = page.locator('#csv-lines tr[data-line="3"][data-status="invalid"]')
        await expect(bad).to_contain_text("types[0]")
    await screenshot(page, SCREENSHOTS, "ui-new-job-csv")
    await good.locator("a").click()
    await expect(page.locator("#job-status")).to_be_attached(timeout=DRAWN)


@pytest.fixture(scope="module")
def topic(api: httpx.Client, pipeline_topics: str) -> dict[str, Any]:
    """A topic with a job's event, a hostile non-event, and an event of an unknown job."""
    name = f"test.ui.{uuid.uuid4().hex[:8]}"
    create_topics(pipeline_topics, [name], 1)
    known = api.post("/jobs", json=job_body()).json()["jobId"]
    producer = Producer({"bootstrap.servers": pipeline_topics})
    producer.produce(name, job(known).to_json(), key=known.encode(), headers=[("origin", b"ui")])
    producer.produce(name, b'<img src=x id="injected">', key=b"<b>key</b>")
    producer.produce(name, job("nobody-here").to_json(), key=b"nobody-here")
    assert producer.flush(30) == 0
    return {"name": name, "known": known}


async def test_the_topics_page_lists_topics_and_escapes_their_messages(
    api: httpx.Client, page: Page, topic: dict[str, Any]
) -> None:
    await page.goto(f"{base(api)}/ui/topics")
    row = page.locator(f'tr[data-topic="{topic["name"]}"]')
    await expect(page.locator('tr[data-topic="jobs.requested.high"]')).to_have_count(
        1, timeout=DRAWN
    )
    await expect(row).to_have_count(0)  # not the engine's: shown when asked
    await page.locator("#f-mine").uncheck()
    await expect(row).to_contain_text("3", timeout=DRAWN)
    await screenshot(page, SCREENSHOTS, "ui-topics")
    await row.locator("a").click()
    rows = page.locator("#messages tr[data-offset]")
    await expect(rows).to_have_count(3, timeout=DRAWN)
    assert await rows.evaluate_all("(rs) => rs.map((r) => r.dataset.offset)") == [
        "0:2",
        "0:1",
        "0:0",
    ]
    # Untrusted text is shown as text: no element came from a message.
    hostile = page.locator('tr[data-offset="0:1"]')
    await expect(hostile.locator("[data-raw]")).to_have_text('<img src=x id="injected">')
    await expect(hostile).to_contain_text("<b>key</b>")
    assert await page.locator("#injected, #messages b").count() == 0
    await expect(page.locator('tr[data-offset="0:2"] [data-job-link]')).to_have_count(0)
    await expect(page.locator('tr[data-offset="0:0"]')).to_contain_text("origin ui")
    await screenshot(page, SCREENSHOTS, "ui-topic-messages")
    await page.locator('tr[data-offset="0:0"] [data-job-link]').click()
    await expect(page.locator("#job-status")).to_be_attached(timeout=DRAWN)
    assert page.url == f"{base(api)}/ui/jobs/{topic['known']}"
