"""``channels`` on POST /jobs: validated against the deployment's PUBLISH_CHANNELS, every channel
by default, carried on the event and shown on the job; /scale knows which publishers run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from services.monitor.fold import Folder
from shared.contract.events import Event, Priority
from shared.contract.topics import JOBS_REQUESTED
from shared.platform.db import open_pool
from tests.services.api.conftest import serve
from tests.services.api.test_api import job_body, one_event, problems
from tests.services.monitor.test_fold_channels import listed, refused
from tests.support.events import image, product


@pytest.fixture(scope="module")
def api(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        publish_channels="printify,shopify",
    ) as client:
        yield client


def test_a_job_publishes_to_every_channel_unless_it_names_some(
    api: httpx.Client, pipeline_topics: str
) -> None:
    every = api.post("/jobs", json=job_body(priority="low"))
    assert every.status_code == 202, every.text
    job = api.get(f"/jobs/{every.json()['jobId']}").json()["job"]
    assert job["channels"] == ["printify", "shopify"]
    # 3 images x 2 types x 2 channels.
    assert (job["expectedProducts"], job["expectedPublications"]) == (6, 12)
    event = one_event(pipeline_topics, JOBS_REQUESTED[Priority.LOW], every.json()["jobId"])
    assert event.payload.channels == ["printify", "shopify"]

    one = api.post("/jobs", json=job_body(priority="low", channels=["shopify"]))
    assert one.status_code == 202, one.text
    job = api.get(f"/jobs/{one.json()['jobId']}").json()["job"]
    assert (job["channels"], job["expectedPublications"]) == (["shopify"], 6)


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        (["etsy"], "etsy not enabled here; the channels are printify, shopify"),
        (["shopify", "shopify"], "twice"),
        ([], "at least 1"),
        ("shopify", "list"),
    ],
)
def test_channels_outside_the_deployment_are_refused_by_name(
    api: httpx.Client, channels: object, message: str
) -> None:
    resp = api.post("/jobs", json=job_body(channels=channels))
    assert resp.status_code == 422, resp.text
    assert message in problems(resp)["channels"]


def test_scale_refuses_a_publisher_the_deployment_does_not_run(api: httpx.Client) -> None:
    resp = api.post("/scale", json={"service": "publisher_etsy", "workerCount": 1})
    assert resp.status_code == 422, resp.text
    assert "publisher_etsy does not run" in problems(resp)["service"]


def test_each_product_shows_every_channel_of_its_job_until_the_channel_lists_it(
    api: httpx.Client, pipeline_topics: str, migrated_db: str
) -> None:
    resp = api.post("/jobs", json=job_body(priority="low", productTypes=["tshirt"], count=2))
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["jobId"]
    j = one_event(pipeline_topics, JOBS_REQUESTED[Priority.LOW], job_id)
    # What the monitor folds: two products; the first listed on printify while Shopify retries.
    events: list[Event] = [image(j, 0), image(j, 1), product(j, 0, "tshirt")]
    events += [product(j, 1, "tshirt"), listed(j, 0, "printify")]
    events += [refused(j, 0, "shopify", retryable=True)]

    async def fold() -> None:
        pool = await open_pool(migrated_db, max_size=2)
        try:
            folder = Folder(pool)
            for n, e in enumerate(events):
                await folder.fold(e, "t", 0, n)
        finally:
            await pool.close()

    asyncio.run(fold())
    products = api.get(f"/jobs/{job_id}").json()["products"]
    view = {(p["imageIndex"], e["channel"]): e for p in products for e in p["listings"]}
    assert {k: e["status"] for k, e in view.items()} == {
        (0, "printify"): "published",
        (0, "shopify"): "retrying",
        (1, "printify"): "pending",
        (1, "shopify"): "pending",
    }
    assert view[(0, "shopify")]["error"] == "shopify answered 503"
    assert view[(0, "printify")]["listingId"] == "printify-0"
