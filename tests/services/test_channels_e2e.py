"""Sales channels end to end: a stack selling on printify (through its Printify-connected Etsy
shop) and on every direct channel (Shopify, Etsy, TikTok Shop, the Meta catalog), each channel
its own publisher consumer group.

Every product is listed exactly once on each channel (the simulators' books); with Shopify
failing every call, only Shopify's publications wait and dead-letter while the others complete,
the job shows each channel's outcome, and a replay of Shopify's dead letters completes it. The
tests that make a channel refuse run here, on this module's own stack, never on the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from shared.contract.topics import CHANNELS as REGISTERED
from shared.contract.topics import DEFAULT_CHANNEL
from shared.tools.cli import main
from tests.services.conftest import e2e_stack
from tests.support.channel_books import books_of
from tests.support.infra import wait_for
from tests.support.pipeline import api, job, printify_books, sim_url, submit, wait_done

CHANNELS = list(REGISTERED)
DIRECT = [c for c in CHANNELS if c != DEFAULT_CHANNEL]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {"RETRY_ATTEMPTS": "1", "RETRY_BASE_DELAY_S": "0.3", "RETRY_MAX_DELAY_S": "1"}
    with e2e_stack("channels", env=env, publish_channels=CHANNELS) as s:
        yield s


def books(s: Stack, channel: str) -> dict[str, Any]:
    return dict(httpx.get(f"{sim_url(s, channel)}/_sim/books", timeout=5).json())


def shopify_books(s: Stack) -> dict[str, Any]:
    return books(s, "shopify")


def etsy_books(s: Stack) -> dict[str, Any]:
    return books(s, "etsy")


def listings(detail: dict[str, Any]) -> dict[tuple[int, str, str], dict[str, Any]]:
    return {
        (p["imageIndex"], p["productType"], entry["channel"]): entry
        for p in detail["products"]
        for entry in p["listings"]
    }


def test_every_product_is_listed_once_on_every_channel(stack: Stack) -> None:
    job_id = submit(
        stack, theme="two channels", productTypes=["tshirt", "mug"], count=2, autoPublish=True
    )
    detail = wait_done(stack, [job_id], timeout=120)[job_id]

    assert detail["job"]["detailedStatus"] == "completed", detail["job"]["error"]
    assert detail["job"]["channels"] == CHANNELS
    expected = 4 * len(CHANNELS)
    assert detail["job"]["publicationsDone"] == detail["job"]["expectedPublications"] == expected
    found = listings(detail)
    assert len(found) == expected and {e["status"] for e in found.values()} == {"published"}
    products = {p["productId"] for p in detail["products"]}
    # Every direct channel: one live listing per product in the vendor's own books, none twice,
    # and the job shows where buyers find it.
    for channel in DIRECT:
        reader, held = books_of(channel), books(stack, channel)
        live = reader.live_listings(held)
        assert {pid: live[reader.marker(pid)] for pid in products} == dict.fromkeys(products, 1), (
            channel
        )
        assert reader.duplicates(held) == [], channel
        assert all(v["url"] for k, v in found.items() if k[2] == channel), channel

    # Shopify: one product per Printify product, published, never twice.
    shop = next(iter(shopify_books(stack)["shops"].values()))
    mine = [p for p in shop["products"] if p["marker"] in products]
    assert sorted(p["marker"] for p in mine) == sorted(products)
    assert all(p["published"] and p["status"] == "ACTIVE" for p in mine)
    assert shopify_books(stack)["duplicates"] == []
    for p in mine:
        entry = found[next(k for k, v in found.items() if v["listingId"] == p["id"])]
        assert entry["url"].endswith(f"/products/{p['handle']}")
    # Etsy, directly: one active listing per product, with its images and every variant.
    etsy = etsy_books(stack)
    assert etsy["duplicates"] == [] and etsy["rate_limited"] == 0
    mine_on_etsy = {
        str(lst["listing_id"]): lst
        for shop in etsy["shops"].values()
        for lst in shop["listings"]
        if any(
            t.startswith("pod-") and any(pid.endswith(t[4:]) for pid in products)
            for t in lst["tags"]
        )
    }
    assert len(mine_on_etsy) == 4
    assert all(lst["state"] == "active" and lst["images"] > 0 for lst in mine_on_etsy.values())
    etsy_listings = [v for k, v in found.items() if k[2] == "etsy"]
    assert {v["listingId"] for v in etsy_listings} == set(mine_on_etsy)
    # Printify: each product published once to its shop's channel (Etsy), and listed.
    account = next(iter(printify_books(stack)["accounts"].values()))
    assert {pid: account["publish_calls"].get(pid) for pid in products} == dict.fromkeys(
        products, 1
    )
    assert {found[(i, t, "printify")]["salesChannel"] for i, t, _ in found} == {"etsy"}


def test_a_failing_channel_waits_alone_and_a_replay_completes_it(stack: Stack) -> None:
    config = f"{sim_url(stack, 'shopify')}/_sim/config"
    httpx.post(config, json={"failure_rate": 1.0}, timeout=5).raise_for_status()
    try:
        job_id = submit(
            stack, theme="shopify down", productTypes=["tshirt"], count=2, autoPublish=True
        )
        detail = wait_done(stack, [job_id], timeout=120)[job_id]
    finally:
        httpx.post(config, json={"failure_rate": 0.0}, timeout=5).raise_for_status()

    found = listings(detail)
    assert {v["status"] for k, v in found.items() if k[2] != "shopify"} == {"published"}
    assert len([k for k in found if k[2] != "shopify"]) == 2 * (len(CHANNELS) - 1)
    shopify = [v for k, v in found.items() if k[2] == "shopify"]
    assert len(shopify) == 2 and {v["status"] for v in shopify} == {"publish_failed"}
    assert all(v["error"] for v in shopify)
    assert detail["job"]["detailedStatus"] == "partial"
    assert f"2 of {2 * len(CHANNELS)} publications failed" in detail["job"]["error"]

    letters = wait_for(
        lambda: httpx.get(
            f"{api(stack)}/dlq", params={"jobId": job_id, "stage": "publisher_shopify"}, timeout=5
        ).json()["deadLetters"],
        30,
        "Shopify's dead letters",
    )
    assert len(letters) == 2
    replay = httpx.post(f"{api(stack)}/dlq/replay", json={"jobId": job_id}, timeout=10)
    assert replay.status_code == 202, replay.text
    wait_for(lambda: job(stack, job_id)["job"]["detailedStatus"] == "completed", 60, "the replay")
    done = listings(job(stack, job_id))
    assert {v["status"] for v in done.values()} == {"published"}
    # The replay went to Shopify's publisher alone: Printify published each product once.
    account = next(iter(printify_books(stack)["accounts"].values()))
    products = {p["productId"] for p in detail["products"]}
    assert all(account["publish_calls"].get(pid) == 1 for pid in products)


def test_a_publication_the_channel_refuses_reaches_the_job_and_a_replay_completes_it(
    stack: Stack,
) -> None:
    channels = f"{sim_url(stack, 'printify')}/_sim/channels"
    httpx.post(channels, json={"failure_rate": 1}, timeout=5).raise_for_status()
    try:
        job_id = submit(
            stack,
            theme="refused",
            productTypes=["tshirt", "mug"],
            autoPublish=True,
            channels=["printify"],
        )
        refused = wait_done(stack, [job_id])[job_id]
    finally:
        httpx.post(channels, json={"failure_rate": 0}, timeout=5).raise_for_status()
    # Created on Printify, refused by Etsy: the job says so, product by product.
    # A seed client sees it ended (`completed`, with what failed in `error`); `partial` is in
    # detailedStatus.
    assert refused["job"]["status"] == "completed"
    assert refused["job"]["detailedStatus"] == "partial"
    assert "2 of 2 publications failed" in refused["job"]["error"]
    assert "without a listing on etsy" in refused["job"]["error"]
    for p in refused["products"]:
        assert p["status"] == "publish_failed" and "without a listing on etsy" in p["error"]
    types = [entry["type"] for entry in refused["logs"]]
    assert types.count("product.publishing") == 2 and "product.published" not in types

    # Listed for the operator, and replayed once the channel takes it: published this time.
    letters = wait_for(
        lambda: httpx.get(f"{api(stack)}/dlq", params={"jobId": job_id}, timeout=5).json()[
            "deadLetters"
        ],
        30,
        "the refusals among the dead letters",
    )
    assert {d["errorClass"] for d in letters} == {"PublicationRefused"}
    replay = httpx.post(f"{api(stack)}/dlq/replay", json={"jobId": job_id}, timeout=10)
    assert replay.status_code == 202, replay.text
    wait_for(lambda: job(stack, job_id)["job"]["detailedStatus"] == "completed", 60, "the replay")
    done = job(stack, job_id)
    assert {p["status"] for p in done["products"]} == {"published"}
    assert done["job"]["error"] is None


def test_a_job_that_ends_partial_exits_1(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_API_URL", api(stack))
    channels = f"{sim_url(stack, 'printify')}/_sim/channels"
    httpx.post(channels, json={"failure_rate": 1}, timeout=5).raise_for_status()
    try:
        code = main(["--text", "submit", "--theme", "cli refused", "--style", "flat", "--niche",
                     "owls", "--auto-publish", "--wait", "--timeout", "120"])  # fmt: skip
    finally:
        httpx.post(channels, json={"failure_rate": 0}, timeout=5).raise_for_status()
    out = capsys.readouterr().out
    assert code == 1
    # Printify's channel refused; every direct channel listed it.
    assert "partial" in out and f"1 of {len(CHANNELS)} publications failed" in out


# Each channel that reviews what it is given, made to refuse: its simulator's control, the body
# that makes it refuse and the body that makes it take, and the words of its reason.
REVIEWS = {
    "meta": ("behaviour", {"reject_share": 1.0}, {"reject_share": 0.0}, "could not be downloaded"),
    "tiktok": ("audit", {"failure_rate": 1.0}, {"failure_rate": 0.0}, "does not clearly show"),
}


@pytest.mark.parametrize("channel", list(REVIEWS))
def test_a_listing_the_channel_refuses_after_review_reaches_the_job_and_a_replay_lists_it(
    stack: Stack, channel: str
) -> None:
    """Meta takes the batch and rejects the items later; TikTok audits the product and fails
    it: the listing waits (publishing), then fails with the vendor's reason on that channel
    alone; replayed once the channel takes it, it is listed, once."""
    route, refuse, take, reason = REVIEWS[channel]
    control = f"{sim_url(stack, channel)}/_sim/{route}"
    httpx.post(control, json=refuse, timeout=5).raise_for_status()
    try:
        job_id = submit(
            stack,
            theme="refused after review",
            productTypes=["mug"],
            autoPublish=True,
            channels=["printify", channel],
        )
        detail = wait_done(stack, [job_id], timeout=120)[job_id]
    finally:
        httpx.post(control, json=take, timeout=5).raise_for_status()

    found = listings(detail)
    assert found[(0, "mug", "printify")]["status"] == "published"
    refused = found[(0, "mug", channel)]
    assert refused["status"] == "publish_failed"
    assert reason in refused["error"]
    assert detail["job"]["detailedStatus"] == "partial"
    types = [entry["type"] for entry in detail["logs"]]
    assert "product.publishing" in types  # it waited for the review before the refusal

    letters = wait_for(
        lambda: httpx.get(
            f"{api(stack)}/dlq",
            params={"jobId": job_id, "stage": f"publisher_{channel}"},
            timeout=5,
        ).json()["deadLetters"],
        30,
        f"{channel}'s refusal among the dead letters",
    )
    assert {d["errorClass"] for d in letters} == {"PublicationRefused"}
    replay = httpx.post(f"{api(stack)}/dlq/replay", json={"jobId": job_id}, timeout=10)
    assert replay.status_code == 202, replay.text
    wait_for(lambda: job(stack, job_id)["job"]["detailedStatus"] == "completed", 60, "the replay")
    done = listings(job(stack, job_id))
    assert done[(0, "mug", channel)]["status"] == "published"
    assert done[(0, "mug", channel)]["url"]
    # Listed once in the vendor's books, whatever was refused and written again.
    reader, held = books_of(channel), books(stack, channel)
    product_id = detail["products"][0]["productId"]
    assert reader.live_listings(held)[reader.marker(product_id)] == 1
    assert reader.duplicates(held) == []
