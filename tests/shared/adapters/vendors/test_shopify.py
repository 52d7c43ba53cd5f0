"""The Shopify channel against the Shopify simulator in process (its app behind
``httpx.ASGITransport``), listing products of the Printify simulator, also in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.adapters.credentials import StaticToken
from shared.adapters.vendors.channels import ProductRef
from shared.adapters.vendors.listing import draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify import (
    PRODUCT_SET,
    ShopifyChannel,
    ShopifyClient,
    product_set_input,
)
from shared.platform import waits
from shared.platform.errors import PermanentError, RetryableError
from simulators.printify import SHOP_ID
from simulators.printify import create_app as printify_app
from simulators.shopify import create_app as shopify_app
from tests.support.printify import TITLE, create_product, in_process

SHOP = "cats-and-co.myshopify.com"
TOKEN = "shpat_test_5c1d0b7e2a9f"


@pytest.fixture
async def printify() -> AsyncIterator[PrintifyClient]:
    async with in_process(printify_app()) as client:
        yield client


class Store:
    """The simulator app, a client of it and its books."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hooks = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{SHOP}"
        )

    def client(self, token: str = TOKEN) -> ShopifyClient:
        return ShopifyClient(
            shop_domain=SHOP,
            token=StaticToken(token),
            base_url=f"http://{SHOP}",
            transport=httpx.ASGITransport(app=self.app),
        )

    async def books(self) -> dict[str, Any]:
        shops: dict[str, Any] = (await self.hooks.get("/_sim/books")).json()["shops"]
        return shops.get(SHOP, {"products": [], "throttled": 0, "created": 0})

    async def duplicates(self) -> list[Any]:
        return list((await self.hooks.get("/_sim/books")).json()["duplicates"])


@pytest.fixture
async def store(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    for key, value in getattr(request, "param", {}).items():
        monkeypatch.setenv(key, value)
    s = Store(shopify_app())
    yield s
    await s.hooks.aclose()


async def a_product(printify: PrintifyClient, variants: int = 3) -> ProductRef:
    made = await create_product(
        printify, str(SHOP_ID), variant_count=variants, price_cents=2499, sku_prefix="pod-shop"
    )
    return ProductRef(str(SHOP_ID), str(made.id), TITLE)


async def test_publish_lists_the_product_with_its_variants_images_and_marker(
    store: Store, printify: PrintifyClient
) -> None:
    ref = await a_product(printify)
    channel = ShopifyChannel(store.client(), printify)
    state = await channel.publish(ref)

    assert state.listing is not None
    [made] = (await store.books())["products"]
    assert state.listing.external_id == made["id"]
    assert state.listing.handle == f"https://{SHOP}/products/{made['handle']}"
    draft = draft_from_printify(await printify.get_product(ref.shop_id, ref.product_id))
    assert made["skus"] == [v.sku for v in draft.variants]
    assert made["prices"] == [f"{v.price_cents / 100:.2f}" for v in draft.variants]
    assert made["files"] == len(draft.images) > 0
    assert (made["status"], made["published"], made["marker"]) == ("ACTIVE", True, ref.product_id)
    assert (await channel.check(ref)).listing == state.listing


async def test_a_redelivered_publish_updates_the_same_product(
    store: Store, printify: PrintifyClient
) -> None:
    ref = await a_product(printify)
    channel = ShopifyChannel(store.client(), printify)
    first = await channel.publish(ref)
    again = await ShopifyChannel(store.client(), printify).publish(ref)

    assert again.listing == first.listing
    books = await store.books()
    assert (books["created"], books["product_sets"], len(books["products"])) == (1, 2, 1)
    assert await store.duplicates() == []


async def test_reconcile_finishes_a_product_made_but_not_published(
    store: Store, printify: PrintifyClient
) -> None:
    ref = await a_product(printify)
    channel = ShopifyChannel(store.client(), printify)
    assert await channel.reconcile(ref) is None  # never happened

    # A publish that died between productSet and publishablePublish.
    draft = draft_from_printify(await printify.get_product(ref.shop_id, ref.product_id))

    handle = channel.handle(ref)
    await channel.shopify.graphql(
        "PodProductSet",
        PRODUCT_SET,
        {"input": product_set_input(draft, handle, "x"), "identifier": {"handle": handle}},
    )
    assert (await store.books())["products"][0]["published"] is False
    assert (await channel.check(ref)).pending

    state = await channel.reconcile(ref)
    assert state is not None and state.listing is not None
    assert (await store.books())["products"][0]["published"] is True
    assert len((await store.books())["products"]) == 1


async def test_check_refuses_an_archived_product(store: Store, printify: PrintifyClient) -> None:
    ref = await a_product(printify)
    channel = ShopifyChannel(store.client(), printify)
    await channel.publish(ref)
    handle = channel.handle(ref)
    await channel.shopify.graphql(
        "PodProductSet",
        PRODUCT_SET,
        {"input": {"status": "ARCHIVED"}, "identifier": {"handle": handle}},
    )
    state = await channel.check(ref)
    assert state.refused is not None and "archived" in state.refused


@pytest.mark.parametrize(
    "store", [{"SIM_SHOPIFY_BUCKET": "250", "SIM_SHOPIFY_RESTORE_RATE": "100"}], indirect=True
)
async def test_the_client_waits_for_the_bucket_instead_of_being_throttled(
    store: Store, printify: PrintifyClient
) -> None:
    # Each publish costs ~145 points of a 250-point bucket: back to back, the second and third
    # would be THROTTLED unless the client waits for the restore.
    refs = [await a_product(printify, variants=2) for _ in range(3)]
    channel = ShopifyChannel(store.client(), printify)
    seen: list[waits.WaitReport] = []

    async def watch() -> None:  # what a heartbeat would carry while the client waits
        while True:
            seen.extend(waits.snapshot())
            await asyncio.sleep(0.01)

    waits.working_for("job-on-shopify")
    watcher = asyncio.create_task(watch())
    try:
        for ref in refs:
            assert (await channel.publish(ref)).listing is not None
    finally:
        watcher.cancel()
    books = await store.books()
    assert books["throttled"] == 0
    assert sum(p["published"] for p in books["products"]) == 3
    # The job said what it waited for while the bucket refilled.
    assert {(w.job_id, w.kind) for w in seen} == {("job-on-shopify", "vendor_limit")}
    assert all("Shopify's query-cost bucket" in w.what and w.until for w in seen)


@pytest.mark.parametrize(
    "store", [{"SIM_SHOPIFY_BUCKET": "250", "SIM_SHOPIFY_RESTORE_RATE": "200"}], indirect=True
)
async def test_a_bucket_drained_by_another_process_is_waited_out(
    store: Store, printify: PrintifyClient
) -> None:
    ref = await a_product(printify)
    other = store.client()
    query = "query Drain { publications(first: 200) { nodes { id name } } }"
    await other.graphql("Drain", query, {})  # ~201 points: too little is left for productSet
    channel = ShopifyChannel(store.client(), printify)  # knows nothing of the bucket yet
    state = await channel.publish(ref)
    assert state.listing is not None
    assert (await store.books())["throttled"] >= 1


async def test_a_bad_token_is_a_permanent_error_without_the_token(
    store: Store, printify: PrintifyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_SHOPIFY_TOKENS", TOKEN)
    strict = Store(shopify_app())
    ref = await a_product(printify)
    bad = "shpat_wrong_0123456789"
    with pytest.raises(PermanentError) as caught:
        await ShopifyChannel(strict.client(bad), printify).publish(ref)
    assert caught.value.status == 401 and bad not in str(caught.value)
    await strict.hooks.aclose()


class FailingFirst(httpx.AsyncBaseTransport):
    """The store behind a gateway that answers 502 to the first ``n`` requests."""

    def __init__(self, app: Any, n: int) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.left = n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.left > 0:
            self.left -= 1
            return httpx.Response(502, json={"errors": "Bad Gateway"})
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize(("failures", "listed"), [(2, True), (3, False)])
async def test_a_server_error_is_sent_again_a_few_times(
    store: Store, printify: PrintifyClient, failures: int, listed: bool
) -> None:
    ref = await a_product(printify)
    client = ShopifyClient(
        shop_domain=SHOP,
        token=StaticToken(TOKEN),
        base_url=f"http://{SHOP}",
        transport=FailingFirst(store.app, failures),
    )
    channel = ShopifyChannel(client, printify)
    if listed:
        assert (await channel.publish(ref)).listing is not None
    else:
        with pytest.raises(RetryableError):
            await channel.publish(ref)
    assert len((await store.books())["products"]) == int(listed)


async def test_withdraw_is_harmless_twice_and_a_drafted_listing_is_listed_again(
    store: Store, printify: PrintifyClient
) -> None:
    ref = await a_product(printify)
    channel = ShopifyChannel(store.client(), printify)
    assert await channel.withdraw(ref, delete=False) is False  # never listed
    assert await channel.reprice(ref) is False
    await channel.publish(ref)

    assert await channel.withdraw(ref, delete=False) is True
    assert await channel.withdraw(ref, delete=False) is False  # a draft already: nothing live
    [drafted] = (await store.books())["products"]
    assert drafted["status"] == "DRAFT"
    # The watcher reads a draft as neither listed nor refused (the seller may list it again).
    assert (await channel.check(ref)).pending
    # Listed again by the publish path: productSet makes it ACTIVE, on the Online Store.
    again = await channel.publish(ref)
    assert again.listing is not None
    [relisted] = (await store.books())["products"]
    assert (relisted["id"], relisted["status"], relisted["published"]) == (
        drafted["id"],
        "ACTIVE",
        True,
    )

    assert await channel.withdraw(ref, delete=True) is True
    assert await channel.withdraw(ref, delete=True) is False  # gone already
    assert (await store.books())["products"] == []
