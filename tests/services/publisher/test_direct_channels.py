"""The publisher of a channel of our own (CHANNEL=shopify): it lists each product of a job that
sells there once, whatever the redeliveries, and leaves the other channels' products alone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.publisher.handler import DirectPublisher
from services.publisher.watch import PublicationRefused, published_event
from shared.adapters.credentials import StaticToken
from shared.adapters.vendors.channels import PENDING, ListingState, ProductRef
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify import ShopifyChannel, ShopifyClient
from shared.contract.events import ProductCreated, ProductPublished
from shared.domain.ledger import Ledger
from shared.platform.errors import RetryableError
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
    return DirectPublisher(name=channel, channel=direct, ledger=ledger)


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
    """A channel that answers what it is told (the outcomes Shopify and Etsy do not give)."""

    name = "stub"

    def __init__(self, state: ListingState) -> None:
        self.state = state

    async def publish(self, product: ProductRef) -> ListingState:
        return self.state

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        return None

    async def check(self, product: ProductRef) -> ListingState:
        return self.state


@pytest.mark.parametrize(
    ("state", "error"),
    [(PENDING, RetryableError), (ListingState(refused="no cats"), PublicationRefused)],
)
async def test_a_direct_channel_must_list_or_fail(
    client: PrintifyClient, ledger: Ledger, state: ListingState, error: type[Exception]
) -> None:
    event = selling_on(await make_product(client, auto_publish=True), ["etsy"])
    handler = handler_for(ledger, "etsy", Stub(state))
    with pytest.raises(error):
        await handler(event, CTX)
