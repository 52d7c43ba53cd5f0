"""The publisher of a channel of our own (CHANNEL=shopify): it lists each product of a job that
sells there once, whatever the redeliveries, and leaves the other channels' products alone."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.publisher.handler import DirectPublisher
from services.publisher.publications import Publications
from services.publisher.settings import PublisherSettings
from services.publisher.watch import (
    OneChannel,
    PublicationRefused,
    PublicationWatcher,
    published_event,
)
from shared.adapters.credentials import StaticToken
from shared.adapters.vendors.channels import PENDING, Listing, ListingState, ProductRef
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify import ShopifyChannel, ShopifyClient
from shared.contract.events import (
    Event,
    ProductCreated,
    ProductPublished,
    ProductPublishing,
    StageFailed,
)
from shared.contract.topics import PUBLISHED, PUBLISHERS
from shared.domain.ledger import Ledger
from simulators.shopify import create_app as shopify_app
from tests.services.publisher.support import CTX, make_product

SHOP = "direct-test.myshopify.com"


@pytest.fixture
async def shopify() -> AsyncIterator[tuple[httpx.AsyncClient, ShopifyClient]]:
    app = shopify_app()
    hooks = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{SHOP}")
    client = ShopifyClient(
        shop_domain=SHOP,
        token=StaticToken("shpat_direct"),
        base_url=f"http://{SHOP}",
        transport=httpx.ASGITransport(app=app),
    )
    yield hooks, client
    await client.aclose()
    await hooks.aclose()


def handler_for(ledger: Ledger, channel: str, direct: Any) -> DirectPublisher:
    return DirectPublisher(
        name=channel,
        channel=direct,
        ledger=ledger,
        publications=Publications(ledger.pool, channel),
        first_check_s=0,
    )


def selling_on(event: ProductCreated, channels: list[str]) -> ProductCreated:
    routing = event.payload.routing.model_copy(update={"channels": channels})
    payload = event.payload.model_copy(update={"routing": routing})
    return event.model_copy(update={"payload": payload, "job_id": f"job-{uuid.uuid4().hex[:8]}"})


async def test_a_product_is_listed_once_on_shopify_with_its_own_event(
    client: PrintifyClient,
    ledger: Ledger,
    shopify: tuple[httpx.AsyncClient, ShopifyClient],
) -> None:
    hooks, store = shopify
    event = selling_on(await make_product(client, auto_publish=True), ["printify", "shopify"])
    handler = handler_for(ledger, "shopify", ShopifyChannel(store, client))

    [out] = await handler(event, CTX)
    again = await handler(event, CTX)  # a redelivery

    assert isinstance(out.event, ProductPublished)
    assert out.event.payload.channel == "shopify"
    assert (out.event.payload.handle or "").startswith(f"https://{SHOP}/products/")
    assert [(o.event.event_id, o.event.payload) for o in again] == [
        (out.event.event_id, out.event.payload)
    ]
    # Not the printify channel's event: the monitor counts both.
    printify = published_event(event, external_id="x", handle=None)
    assert out.event.event_id != printify.event_id
    books = (await hooks.get("/_sim/books")).json()["shops"][SHOP]
    assert (books["product_sets"], len(books["products"])) == (1, 1)  # the ledger held it


async def test_a_job_that_does_not_sell_on_the_channel_is_left_alone(
    client: PrintifyClient,
    ledger: Ledger,
    shopify: tuple[httpx.AsyncClient, ShopifyClient],
) -> None:
    hooks, store = shopify
    event = selling_on(await make_product(client, auto_publish=True), ["printify"])
    handler = handler_for(ledger, "shopify", ShopifyChannel(store, client))
    assert await handler(event, CTX) == []
    assert (await hooks.get("/_sim/books")).json()["shops"] == {}


class Stub:
    """A channel that answers what it is told (the outcomes Shopify and Etsy do not give):
    ``publish`` the first state, ``check`` the next ones in turn; the refs check() was given."""

    name = "stub"

    def __init__(self, *states: ListingState) -> None:
        self.states = list(states)
        self.published = 0
        self.checked: list[str | None] = []

    async def publish(self, product: ProductRef) -> ListingState:
        self.published += 1
        return self.states[0]

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        return None

    async def check(self, product: ProductRef) -> ListingState:
        self.checked.append(product.pending_ref)
        return self.states[min(len(self.checked), len(self.states) - 1)]


class Emitted:
    """What a watcher produced for one job, by topic (an in-process stand-in for the broker;
    the watcher also settles other tests' publications of its channel, left in the shared
    database)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.events: list[tuple[str, Event]] = []

    async def __call__(self, topic: str, event: Event) -> None:
        if event.job_id == self.job_id:
            self.events.append((topic, event))


def watcher_of(handler: DirectPublisher, emitted: Emitted) -> PublicationWatcher:
    return PublicationWatcher(
        publications=handler.publications,
        channels=OneChannel(handler.channel),
        ledger=handler.ledger,
        emit=emitted,
        check_min_s=0.01,
        check_max_s=0.05,
    )


async def settle(watcher: PublicationWatcher, emitted: Emitted, what: str) -> None:
    """Run the watcher's rounds until it has emitted something, or fail naming ``what``."""
    deadline = time.monotonic() + 10
    while not emitted.events:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if await watcher.run_once() == 0:
            await asyncio.sleep(0.02)


async def test_a_refusal_at_the_call_fails_the_publication(
    client: PrintifyClient, ledger: Ledger
) -> None:
    event = selling_on(await make_product(client, auto_publish=True), ["etsy"])
    handler = handler_for(ledger, "etsy", Stub(ListingState(refused="no cats")))
    with pytest.raises(PublicationRefused, match="no cats"):
        await handler(event, CTX)


async def test_a_publication_under_review_is_confirmed_by_the_channels_own_watcher(
    client: PrintifyClient, ledger: Ledger
) -> None:
    """TikTok's audit, Meta's batch: publishing until the channel says; then published on the
    channel, checked by the ref the channel gave, and a redelivery publishes nothing again."""
    event = selling_on(await make_product(client, auto_publish=True), ["etsy"])
    listed = ListingState(Listing("tt-1", "https://shop.example/tt-1"))
    stub = Stub(ListingState(pending_ref="audit-7"), PENDING, listed)
    handler = handler_for(ledger, "etsy", stub)

    [out] = await handler(event, CTX)
    [again] = await handler(event, CTX)
    # Kept as the channel's own publication, with the ref the channel checks it by.
    async with ledger.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT channel, sales_channel, pending_ref FROM publications WHERE job_id = %s",
            (event.job_id,),
        )
        assert await cur.fetchall() == [("etsy", "etsy", "audit-7")]
    emitted = Emitted(event.job_id)
    await settle(watcher_of(handler, emitted), emitted, "the confirmation")

    assert isinstance(out.event, ProductPublishing)
    assert (out.event.payload.channel, out.event.payload.sales_channel) == ("etsy", "etsy")
    assert again.event.event_id == out.event.event_id
    assert stub.published == 1
    assert stub.checked == ["audit-7", "audit-7"]
    [(topic, confirmed)] = emitted.events
    assert topic == PUBLISHED
    assert isinstance(confirmed, ProductPublished)
    assert (confirmed.payload.channel, confirmed.payload.external_id) == ("etsy", "tt-1")


async def test_a_refused_review_reaches_the_channels_dead_letters_and_can_be_replayed(
    client: PrintifyClient, ledger: Ledger
) -> None:
    event = selling_on(await make_product(client, auto_publish=True), ["etsy"])
    refused = ListingState(refused="audit failed: the image shows a brand logo")
    stub = Stub(ListingState(pending_ref="audit-8"), refused)
    handler = handler_for(ledger, "etsy", stub)
    await handler(event, CTX)

    emitted = Emitted(event.job_id)
    await settle(watcher_of(handler, emitted), emitted, "the refusal")

    [(topic, failed)] = emitted.events
    assert topic == PUBLISHERS["etsy"].dlq
    assert isinstance(failed, StageFailed)
    assert failed.payload.stage == PUBLISHERS["etsy"].name
    assert "brand logo" in failed.payload.message
    # The ledger forgot the call: a replay publishes again.
    await handler(event, CTX)
    assert stub.published == 2


def test_a_channel_that_reviews_for_days_is_waited_for_unless_the_seller_says_otherwise() -> None:
    """A channel's own confirmation time (TikTok's audit) is the default; the setting wins."""
    default = PublisherSettings(channel="etsy", printify_api_key="k")
    chosen = PublisherSettings(channel="etsy", printify_api_key="k", publish_confirm_timeout_s=600)
    assert default.confirm_timeout_for(259200.0) == 259200.0
    assert default.confirm_timeout_for(None) == default.publish_confirm_timeout_s
    assert chosen.confirm_timeout_for(259200.0) == 600
