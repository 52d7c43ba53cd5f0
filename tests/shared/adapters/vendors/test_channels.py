"""Sales channels: the Printify-backed ones against the Printify simulator in process (its app
behind ``httpx.ASGITransport``, no server spawned), and a channel of our own plugged in by name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.adapters.vendors.channels import (
    CUSTOM_INTEGRATION,
    ChannelRegistry,
    Listing,
    ListingState,
    PrintifyChannel,
    PrintifyStorefront,
    ProductRef,
    SalesChannel,
    UndoNotSupported,
)
from shared.adapters.vendors.printify import PrintifyClient, VariantPrice
from shared.platform.errors import PermanentError
from simulators.printify import create_app
from tests.support.printify import TITLE, create_product

# The simulator's shops for SIM_PRINTIFY_SHOPS="custom_integration,etsy".
STOREFRONT, ETSY = "12345678", "12345679"


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's app in process, for its test hooks; ``client`` shares the app."""
    monkeypatch.setenv("SIM_PRINTIFY_SHOPS", "custom_integration,etsy")
    monkeypatch.setenv("SIM_PRINTIFY_PUBLISH_MS", "100")
    app = create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://printify"
    ) as hooks:
        hooks.app = app  # type: ignore[attr-defined]
        yield hooks


@pytest.fixture
async def client(sim: httpx.AsyncClient) -> AsyncIterator[PrintifyClient]:
    c = PrintifyClient(
        api_key="tok-channels",
        base_url="http://printify",
        transport=httpx.ASGITransport(app=sim.app),  # type: ignore[attr-defined]
    )
    yield c
    await c.aclose()


async def product_in(client: PrintifyClient, shop: str) -> ProductRef:
    made = await create_product(
        client, shop, variant_count=2, price_cents=2999, sku_prefix="pod-channels"
    )
    return ProductRef(shop, str(made.id), TITLE)


async def settled(channel: SalesChannel, ref: ProductRef, timeout: float = 5.0) -> ListingState:
    deadline = time.monotonic() + timeout
    while (state := await channel.check(ref)).pending:
        assert time.monotonic() < deadline, "the channel never settled"
        await asyncio.sleep(0.05)
    return state


async def test_the_engines_storefront_lists_at_once(client: PrintifyClient) -> None:
    channel = PrintifyStorefront(client, "https://shop.test/p")
    ref = await product_in(client, STOREFRONT)
    state = await channel.publish(ref)
    assert state.listing is not None and state.listing.external_id == ref.product_id
    assert (await channel.check(ref)).listing is not None
    # An attempt that published and crashed before confirming is finished by reconcile.
    other = await product_in(client, STOREFRONT)
    assert await channel.reconcile(other) is None  # never published
    await client.publish(other.shop_id, other.product_id)
    finished = await channel.reconcile(other)
    assert finished is not None and finished.listing is not None


async def test_a_printify_channel_is_pending_until_it_lists_or_refuses(
    client: PrintifyClient, sim: httpx.AsyncClient
) -> None:
    channel = PrintifyChannel(client, "etsy")
    ref = await product_in(client, ETSY)
    assert (await channel.publish(ref)).pending
    assert (await channel.reconcile(ref)) is not None  # known as published, still pending
    listed = await settled(channel, ref)
    assert listed.listing is not None
    assert (listed.listing.handle or "").startswith("https://www.etsy.com/listing/")

    (await sim.post("/_sim/channels", json={"failure_rate": 1})).raise_for_status()
    refused = await product_in(client, ETSY)
    await channel.publish(refused)
    state = await settled(channel, refused)
    assert state.refused is not None and "without a listing on etsy" in state.refused


class ListsEverything(UndoNotSupported):
    """A channel of our own: what a direct integration (or a test double) implements."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.published: list[ProductRef] = []

    async def publish(self, product: ProductRef) -> ListingState:
        self.published.append(product)
        return ListingState(Listing(f"own-{product.product_id}", "https://own.example/x"))

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        return None

    async def check(self, product: ProductRef) -> ListingState:
        return ListingState(Listing(f"own-{product.product_id}"))


async def test_a_channel_of_our_own_is_registered_by_name(client: PrintifyClient) -> None:
    registry = ChannelRegistry(client, "https://shop.test/p")
    own = ListsEverything("etsy")
    registry.register("etsy", lambda _name: own)
    # The Etsy shop now sells through our adapter; the storefront shop is untouched.
    assert await registry.for_shop(ETSY) is own
    assert isinstance(await registry.for_shop(STOREFRONT), PrintifyStorefront)
    assert registry.by_name(CUSTOM_INTEGRATION).name == CUSTOM_INTEGRATION
    # Any other Printify channel goes through Printify.
    assert isinstance(registry.by_name("shopify"), PrintifyChannel)


async def books_of(sim: httpx.AsyncClient) -> dict[str, Any]:
    """The books of the tests' one account (the simulator keys accounts by a hash)."""
    (books,) = (await sim.get("/_sim/books")).json()["accounts"].values()
    assert isinstance(books, dict)
    return books


async def test_the_storefront_unpublishes_through_printify_and_keeps_the_product(
    client: PrintifyClient, sim: httpx.AsyncClient
) -> None:
    channel = PrintifyStorefront(client, "https://shop.test/p")
    ref = await product_in(client, STOREFRONT)
    assert await channel.withdraw(ref, delete=False) is False  # never listed: nothing done
    assert (await books_of(sim))["unpublished"] == {}
    await channel.publish(ref)
    assert await channel.reprice(ref) is True  # it sells at Printify's prices: nothing to push
    assert await channel.withdraw(ref, delete=False) is True
    assert (await books_of(sim))["unpublished"] == {ref.product_id: 1}
    product = await client.get_product(ref.shop_id, ref.product_id)  # kept, unlisted
    assert product.external is None and not product.is_locked
    assert await channel.withdraw(ref, delete=False) is False  # a second time: nothing listed
    assert await channel.reprice(ref) is False


async def test_a_deleted_product_is_gone_and_a_second_delete_reads_as_already_gone(
    client: PrintifyClient, sim: httpx.AsyncClient
) -> None:
    channel = PrintifyStorefront(client, "https://shop.test/p")
    ref = await product_in(client, STOREFRONT)
    await channel.publish(ref)
    assert await channel.withdraw(ref, delete=True) is True
    with pytest.raises(PermanentError) as gone:
        await client.get_product(ref.shop_id, ref.product_id)
    assert gone.value.status == 404
    assert (await books_of(sim))["products_deleted"] == 1
    assert await channel.withdraw(ref, delete=True) is False
    again = await client.delete_product(ref.shop_id, ref.product_id)
    assert again.already_gone and again.product_id == ref.product_id
    assert (await books_of(sim))["products_deleted"] == 1


async def test_a_connected_store_is_left_only_by_deleting_and_repriced_by_publishing_variants(
    client: PrintifyClient, sim: httpx.AsyncClient
) -> None:
    channel = PrintifyChannel(client, "etsy")
    ref = await product_in(client, ETSY)
    assert await channel.reprice(ref) is False  # not listed: nothing to push
    await channel.publish(ref)
    assert (await settled(channel, ref)).listing is not None
    with pytest.raises(PermanentError, match="no call to unpublish"):
        await channel.withdraw(ref, delete=False)
    assert await channel.reprice(ref) is True
    assert (await books_of(sim))["publish_calls"] == {ref.product_id: 2}
    await settled(channel, ref)
    # Printify refuses the storefront's unpublish call for a connected shop.
    with pytest.raises(PermanentError, match="custom integration"):
        await client.unpublished(ref.shop_id, ref.product_id)
    assert await channel.withdraw(ref, delete=True) is True
    assert await channel.withdraw(ref, delete=True) is False


async def test_prices_set_again_reach_every_variant(client: PrintifyClient) -> None:
    ref = await product_in(client, STOREFRONT)
    product = await client.get_product(ref.shop_id, ref.product_id)
    enabled = [v for v in product.variants if v.is_enabled]
    assert enabled and all(v.cost is not None for v in enabled)
    prices = [
        VariantPrice(id=v.id, price=(v.cost or 0) + 777, is_enabled=v.is_enabled, sku=v.sku)
        for v in product.variants
    ]
    after = await client.set_prices(ref.shop_id, ref.product_id, prices)
    assert {v.id: v.price for v in after.variants if v.is_enabled} == {
        v.id: (v.cost or 0) + 777 for v in enabled
    }
