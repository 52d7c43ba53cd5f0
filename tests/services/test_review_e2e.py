"""The seller's review and cancel end to end (decision §41), on a stack selling on Printify's
channel and on Shopify: the review loop as a seller lives it, and the races the issue names
(approve twice, approve while a regenerate is in flight, cancel while a publish is in flight).

Every outcome is read where it lands: the API's answers, the job's detail, and the vendors' own
books (Printify's products, Shopify's listings), never our own record of what we asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.services.conftest import e2e_stack
from tests.support.infra import wait_for
from tests.support.pipeline import api, job, printify_books, sim_url, status, submit, wait_done

CHANNELS = ["printify", "shopify"]
TYPES = ["tshirt", "mug"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {"RETRY_ATTEMPTS": "2", "RETRY_BASE_DELAY_S": "0.3", "RETRY_MAX_DELAY_S": "1"}
    with e2e_stack("review", env=env, publish_channels=CHANNELS) as s:
        yield s


def reviewed(s: Stack, count: int = 2, **extra: Any) -> str:
    return submit(s, theme="review loop", productTypes=TYPES, count=count, review=True, **extra)


def wait_status(s: Stack, job_id: str, wanted: str, timeout: float = 120) -> dict[str, Any]:
    wait_for(lambda: status(s, job_id) == wanted, timeout, f"job {job_id} {wanted}", interval=0.2)
    return job(s, job_id)


def review(s: Stack, job_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{api(s)}/jobs/{job_id}/review", timeout=10)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def decide(s: Stack, job_id: str, index: int, action: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{api(s)}/jobs/{job_id}/images/{index}/{action}", json=body or None, timeout=10
    )


def shopify_live(s: Stack, product_ids: set[str]) -> dict[str, int]:
    """Printify product id -> Shopify products of it that buyers see (ACTIVE and published)."""
    books = httpx.get(f"{sim_url(s, 'shopify')}/_sim/books", timeout=5).json()
    live: dict[str, int] = {}
    for shop in books["shops"].values():
        for p in shop["products"]:
            if p["marker"] in product_ids and p["published"] and p["status"] == "ACTIVE":
                live[p["marker"]] = live.get(p["marker"], 0) + 1
    return live


def printify_products(s: Stack) -> set[str]:
    """The ids of the products Printify holds now (a deleted one is gone from its books)."""
    account = next(iter(printify_books(s)["accounts"].values()))
    return {p["product_id"] for p in account["products"]}


def products_of(detail: dict[str, Any], index: int | None = None) -> set[str]:
    return {p["productId"] for p in detail["products"] if index is None or p["imageIndex"] == index}


def test_the_review_loop_as_a_seller_lives_it(stack: Stack) -> None:
    job_id = reviewed(stack, count=2, autoPublish=True)
    detail = wait_status(stack, job_id, "awaiting_review")
    # autoPublish too, yet nothing is listed before an approval.
    assert detail["job"]["status"] == "processing"
    made = products_of(detail)
    assert len(made) == 4 and shopify_live(stack, made) == {}
    shown = review(stack, job_id)
    assert [i["state"] for i in shown["images"]] == ["awaiting", "awaiting"]
    assert all(len(i["products"]) == 2 and i["title"] for i in shown["images"])

    first = decide(stack, job_id, 0, "approve")
    assert first.status_code == 202, first.text
    again = decide(stack, job_id, 0, "approve")
    assert again.status_code == 200, again.text
    assert again.json()["decisionId"] == first.json()["decisionId"]
    refused = decide(stack, job_id, 0, "reject")
    assert refused.status_code == 409 and "approved" in refused.text
    assert decide(stack, job_id, 1, "reject").status_code == 202

    detail = wait_done(stack, [job_id], timeout=120)[job_id]
    assert detail["job"]["detailedStatus"] == "completed", detail["job"]["error"]
    approved, rejected = products_of(detail, 0), products_of(detail, 1)
    # Image 0's products: listed once on Shopify, published once through Printify's channel.
    wait_for(lambda: len(shopify_live(stack, approved)) == 2, 30, "Shopify to list image 0")
    assert shopify_live(stack, approved) == dict.fromkeys(approved, 1)
    calls = next(iter(printify_books(stack)["accounts"].values()))["publish_calls"]
    assert {pid: calls.get(pid) for pid in approved} == dict.fromkeys(approved, 1)
    # Image 1's: deleted from Printify, never listed anywhere.
    assert rejected.isdisjoint(printify_products(stack))
    assert shopify_live(stack, rejected) == {} and not (rejected & set(calls))
    # The job's log says who decided what.
    said = [entry["message"] for entry in detail["logs"]]
    assert any("decided: approve image 1" in m for m in said), said
    assert any("decided: reject image 2" in m for m in said), said


def test_approve_while_a_regenerate_is_in_flight_is_refused_and_the_new_image_is_reviewed(
    stack: Stack,
) -> None:
    job_id = reviewed(stack, count=1)
    wait_status(stack, job_id, "awaiting_review")
    before = review(stack, job_id)["images"][0]
    assert before["generation"] == 0
    asked = decide(stack, job_id, 0, "regenerate", prompt="a cat in a spacesuit, line art")
    assert asked.status_code == 202, asked.text
    refused = decide(stack, job_id, 0, "approve")
    assert refused.status_code == 409 and "regenerat" in refused.text
    wait_for(
        lambda: (
            review(stack, job_id)["images"][0]["generation"] == 1
            and review(stack, job_id)["images"][0]["state"] == "awaiting"
        ),
        120,
        "the regenerated image to wait for review",
    )
    after = review(stack, job_id)["images"][0]
    assert after["prompt"] != before["prompt"] or "spacesuit" in after["prompt"]
    old = {p["productId"] for p in before["products"]}
    new = {p["productId"] for p in after["products"]}
    assert old.isdisjoint(new) and old.isdisjoint(printify_products(stack))
    # A decision about the generation that is gone is refused; about the new one, taken.
    stale = decide(stack, job_id, 0, "approve", generation=0)
    assert stale.status_code == 409, stale.text
    assert decide(stack, job_id, 0, "approve", generation=1).status_code == 202
    detail = wait_done(stack, [job_id], timeout=120)[job_id]
    assert detail["job"]["detailedStatus"] == "completed", detail["job"]["error"]
    wait_for(lambda: len(shopify_live(stack, new)) == 2, 30, "Shopify to list the new image")
    assert shopify_live(stack, old) == {}


def test_two_approvals_at_once_make_one_decision(stack: Stack) -> None:
    job_id = reviewed(stack, count=1)
    wait_status(stack, job_id, "awaiting_review")

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api(stack), timeout=10) as client:
            url = f"/jobs/{job_id}/images/0/approve"
            return list(await asyncio.gather(*(client.post(url) for _ in range(5))))

    answers = asyncio.run(both())
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 200, 200, 200, 202], [r.text for r in answers]
    assert len({r.json()["decisionId"] for r in answers}) == 1
    detail = wait_done(stack, [job_id], timeout=120)[job_id]
    made = products_of(detail)
    wait_for(lambda: len(shopify_live(stack, made)) == 2, 30, "Shopify to list the approved image")
    assert shopify_live(stack, made) == dict.fromkeys(made, 1)


def test_a_cancel_during_publishing_leaves_nothing_listed(stack: Stack) -> None:
    # Shopify answers slowly: the cancel lands while its publications are in flight.
    config = f"{sim_url(stack, 'shopify')}/_sim/config"
    httpx.post(config, json={"latency_ms": 1500}, timeout=5).raise_for_status()
    try:
        job_id = submit(stack, theme="cancel me", productTypes=TYPES, count=1, autoPublish=True)
        wait_for(
            lambda: job(stack, job_id)["job"]["productsDone"] == 2, 120, "the products to be made"
        )
        made = products_of(job(stack, job_id))
        cancelled = httpx.post(f"{api(stack)}/jobs/{job_id}/cancel", timeout=10)
        assert cancelled.status_code == 202, cancelled.text
        detail = wait_done(stack, [job_id], timeout=120)[job_id]
        assert detail["job"]["detailedStatus"] == "cancelled"
        assert detail["job"]["status"] == "failed"
        # Whatever was in flight ends taken down: nothing of the job is live on Shopify, and
        # its products are gone from Printify.
        wait_for(
            lambda: shopify_live(stack, made) == {} and made.isdisjoint(printify_products(stack)),
            60,
            "the cancelled job's listings and products to be gone",
        )
    finally:
        httpx.post(config, json={"latency_ms": 0}, timeout=5).raise_for_status()


def shopify_products(s: Stack, product_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Printify product id -> its Shopify product (status, prices), for those still there."""
    books = httpx.get(f"{sim_url(s, 'shopify')}/_sim/books", timeout=5).json()
    return {
        p["marker"]: p
        for shop in books["shops"].values()
        for p in shop["products"]
        if p["marker"] in product_ids
    }


def printify_prices(s: Stack, product_id: str) -> list[tuple[int, int]]:
    """(price, cost) of each enabled variant of the product, in cents, as Printify holds it."""
    account = next(iter(printify_books(s)["accounts"].values()))
    found = next(p for p in account["products"] if p["product_id"] == product_id)
    return [(int(pc[0]), int(pc[1])) for pc in found["prices"].values()]


def test_after_launch_a_seller_reprices_unpublishes_and_deletes(stack: Stack) -> None:
    job_id = submit(stack, theme="after launch", productTypes=TYPES, count=1, autoPublish=True)
    detail = wait_done(stack, [job_id], timeout=120)[job_id]
    assert detail["job"]["detailedStatus"] == "completed", detail["job"]["error"]
    made = products_of(detail)
    wait_for(lambda: len(shopify_live(stack, made)) == 2, 30, "Shopify to list the products")
    mug = next(p["productId"] for p in detail["products"] if p["productType"] == "mug")
    before = printify_prices(stack, mug)

    # A 70 % margin: Printify's prices first, then every channel follows.
    asked = httpx.post(
        f"{api(stack)}/jobs/{job_id}/reprice", json={"marginPercent": 70}, timeout=10
    )
    assert asked.status_code == 202, asked.text

    def repriced() -> bool:
        now = printify_prices(stack, mug)
        on_shopify = shopify_products(stack, {mug}).get(mug)
        return (
            now != before
            and on_shopify is not None
            and sorted(round(float(x) * 100) for x in on_shopify["prices"])
            == sorted(price for price, _ in now)
        )

    wait_for(repriced, 60, "Printify and Shopify to hold the new prices")
    for price, cost in printify_prices(stack, mug):
        # Never below cost, at least the margin asked for, and a .99 ending.
        assert price >= cost and (price - cost) * 100 >= 70 * price - 100 and price % 100 == 99

    # Unpublish on Shopify only: kept there as a draft, gone from buyers; Printify untouched.
    off = httpx.post(
        f"{api(stack)}/jobs/{job_id}/unpublish", json={"channels": ["shopify"]}, timeout=10
    )
    assert off.status_code == 202, off.text
    wait_for(lambda: shopify_live(stack, made) == {}, 60, "Shopify to take the listings down")
    assert set(shopify_products(stack, made)) == made  # kept, as drafts
    assert made <= printify_products(stack)

    # Delete: gone everywhere.
    gone = httpx.post(f"{api(stack)}/jobs/{job_id}/delete", timeout=10)
    assert gone.status_code == 202, gone.text
    wait_for(
        lambda: shopify_products(stack, made) == {} and made.isdisjoint(printify_products(stack)),
        60,
        "the products to be deleted from Shopify and Printify",
    )
    said = [entry["message"] for entry in job(stack, job_id)["logs"]]
    assert any("decided: reprice at a 70% margin" in m for m in said), said
    # Every channel's publisher and the printify stage took every decision: no dead letter
    # (the printify channel's reprice once took the printify stage's ledger row for its own).
    letters = httpx.get(f"{api(stack)}/dlq", params={"jobId": job_id}, timeout=10).json()
    assert letters["deadLetters"] == [], letters
    assert not [m for m in said if "failed" in m], said
    # Bad scopes are refused with the field.
    bad = httpx.post(
        f"{api(stack)}/jobs/{job_id}/unpublish", json={"channels": ["etsy"]}, timeout=10
    )
    assert bad.status_code == 422 and "channels" in bad.text, bad.text
