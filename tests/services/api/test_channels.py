"""``channels`` on POST /jobs: validated against the deployment's PUBLISH_CHANNELS, every channel
by default, carried on the event and shown on the job; /scale knows which publishers run."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.events import Priority
from shared.topics import JOBS_REQUESTED
from tests.services.api.conftest import serve
from tests.services.api.test_api import job_body, one_event, problems


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
