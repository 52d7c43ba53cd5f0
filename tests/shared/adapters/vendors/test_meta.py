"""The Meta channel against the Meta simulator's app in process (``httpx.ASGITransport``), with
the Printify simulator's app as the source of products."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.adapters.vendors.channels import ListingState, ProductRef
from shared.adapters.vendors.listing import draft_from_printify
from shared.adapters.vendors.meta import (
    MetaChannel,
    MetaSettings,
    meta_channel,
    meta_client,
    retailer_id,
)
from shared.adapters.vendors.printify import PrintifyClient
from shared.platform.db import open_pool
from shared.platform.errors import ConfigError, PermanentError, RateLimited, RetryableError
from simulators import meta as meta_sim
from simulators import printify as printify_sim
from tests.support.channel_books import meta as channel_books
from tests.support.printify import TITLE, create_product, in_process, reprice

PRINTIFY_SHOP = str(printify_sim.SHOP_ID)
CATALOG = meta_sim.DEFAULT_CATALOG
TOKEN, SECRET = meta_sim.DEFAULT_TOKEN, meta_sim.DEFAULT_APP_SECRET
BATCH_DELAY_S = 0.3


def settings(**over: Any) -> MetaSettings:
    values: dict[str, Any] = {
        "meta_graph_url": "http://graph",
        "meta_access_token": TOKEN,
        "meta_app_secret": SECRET,
        "meta_catalog_id": CATALOG,
        "meta_business_id": meta_sim.DEFAULT_BUSINESS,
        "storefront_base_url": "https://shop.example.com/products",
    }
    return MetaSettings(**{**values, **over})


@pytest.fixture
async def source() -> AsyncIterator[PrintifyClient]:
    client = in_process(printify_sim.create_app())
    yield client
    await client.aclose()


@pytest.fixture
def meta_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("SIM_META_BATCH_DELAY_S", str(BATCH_DELAY_S))
    return meta_sim.create_app()


@pytest.fixture
async def channel(meta_app: FastAPI, source: PrintifyClient) -> AsyncIterator[MetaChannel]:
    made = meta_channel(settings(), source, transport=httpx.ASGITransport(app=meta_app))
    yield made
    await made.aclose()


def hooks(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://graph")


async def books(app: FastAPI) -> dict[str, Any]:
    async with hooks(app) as http:
        return dict((await http.get("/_sim/books")).json())


async def behave(app: FastAPI, **values: object) -> None:
    async with hooks(app) as http:
        (await http.post("/_sim/behaviour", json=values)).raise_for_status()


async def catalog_items(app: FastAPI) -> list[dict[str, Any]]:
    return list((await books(app))["catalogs"][CATALOG]["items"])


async def new_product(source: PrintifyClient, variant_count: int = 3) -> ProductRef:
    made = await create_product(
        source,
        PRINTIFY_SHOP,
        variant_count=variant_count,
        price_cents=2499,
        sku_prefix=f"pod-{uuid.uuid4().hex[:16]}",
    )
    enabled = [v for v in made.variants if v.is_enabled]
    await reprice(source, PRINTIFY_SHOP, made, {enabled[-1].id: 2999})  # one variant dearer
    return ProductRef(PRINTIFY_SHOP, str(made.id), TITLE)


async def settled(channel: MetaChannel, ref: ProductRef, timeout: float = 10.0) -> ListingState:
    """check() until it is no longer pending (the batch finished), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        state = await channel.check(ref)
        if not state.pending:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"still pending after {timeout}s: {state}")
        await asyncio.sleep(0.05)


def with_ref(ref: ProductRef, state: ListingState) -> ProductRef:
    return ProductRef(ref.shop_id, ref.product_id, ref.title, pending_ref=state.pending_ref)


async def test_publish_is_pending_on_the_batch_then_listed_one_item_per_variant(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    state = await channel.publish(ref)

    assert state.pending and state.pending_ref
    assert await catalog_items(meta_app) == []  # Meta has not ingested the batch yet
    listed = await settled(channel, with_ref(ref, state))

    assert listed.listing is not None
    assert listed.listing.external_id == ref.product_id
    assert listed.listing.handle is not None
    assert listed.listing.handle.startswith("https://shop.example.com/products/moon-cat-")
    draft = draft_from_printify(await source.get_product(PRINTIFY_SHOP, ref.product_id))
    items = await catalog_items(meta_app)
    assert sorted(i["retailer_id"] for i in items) == sorted(
        retailer_id(ref.product_id, v) for v in draft.variants
    )
    assert {i["item_group_id"] for i in items} == {ref.product_id}
    prices = {i["retailer_id"]: i["price"] for i in items}
    for variant in draft.variants:
        assert prices[retailer_id(ref.product_id, variant)] == (
            f"{variant.price_cents / 100:.2f} USD"
        )
    assert {"24.99 USD", "29.99 USD"} <= set(prices.values())


async def test_an_item_meta_rejects_reaches_the_refusal_with_its_reason(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    await behave(meta_app, reject_share=1.0, reject_reason="image_link: policy: not allowed")
    ref = await new_product(source, 2)
    state = await settled(channel, with_ref(ref, await channel.publish(ref)))

    assert state.refused is not None
    assert "Meta refused 2 of the product's 2 catalog items" in state.refused
    assert "image_link: policy: not allowed" in state.refused
    assert await catalog_items(meta_app) == []


async def test_a_redelivery_before_the_batch_finished_writes_the_same_items(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    """The attempt that sent the batch died before recording its handle; the redelivery sends
    another: the catalog still holds one item per variant."""
    ref = await new_product(source)
    first = await channel.publish(ref)
    second = await channel.publish(ref)
    assert first.pending_ref != second.pending_ref

    assert (await settled(channel, with_ref(ref, second))).listing is not None
    assert (await settled(channel, with_ref(ref, first))).listing is not None
    shelf = (await books(meta_app))["catalogs"][CATALOG]
    assert len(shelf["items"]) == 3
    assert shelf["duplicates"] == []
    # Once listed, a redelivery sends nothing.
    before = (await books(meta_app))["batches"]["total"]
    again = await channel.publish(ref)
    assert again.listing is not None
    assert (await books(meta_app))["batches"]["total"] == before


async def test_reconcile_finds_nothing_then_finishes_a_half_written_product(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    assert await channel.reconcile(ref) is None  # never written

    state = await channel.publish(ref)
    await settled(channel, with_ref(ref, state))
    # One item disappears (deleted in Commerce Manager, or a batch cut short).
    draft = draft_from_printify(await source.get_product(PRINTIFY_SHOP, ref.product_id))
    gone = retailer_id(ref.product_id, draft.variants[0])
    await channel.meta.items_batch(CATALOG, [{"method": "DELETE", "data": {"id": gone}}])
    deadline = time.monotonic() + 5
    while gone in {i["retailer_id"] for i in await catalog_items(meta_app)}:
        assert time.monotonic() < deadline, "the delete never finished"
        await asyncio.sleep(0.05)

    finishing = await channel.reconcile(ref)
    assert finishing is not None and finishing.pending_ref
    assert (await settled(channel, with_ref(ref, finishing))).listing is not None
    assert len(await catalog_items(meta_app)) == 3
    # Without a handle (after a reconcile), check() reads the items.
    assert (await channel.check(ref)).listing is not None


async def test_check_without_a_handle_refuses_a_product_meta_does_not_hold(
    channel: MetaChannel, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    state = await channel.check(ref)
    assert state.refused is not None and "never written" in state.refused


async def test_an_expired_token_is_a_permanent_error_saying_what_to_do_without_the_token(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    await behave(meta_app, expire_tokens=True)
    with pytest.raises(PermanentError) as caught:
        await channel.publish(ref)
    assert caught.value.code == "190"
    assert "META_ACCESS_TOKEN" in caught.value.message
    assert "not refreshed" in caught.value.message
    assert TOKEN not in str(caught.value)


async def test_a_wrong_app_secret_is_refused_as_meta_refuses_the_proof(
    meta_app: FastAPI,
) -> None:
    client = meta_client(
        settings(meta_app_secret="not-the-app-secret"), transport=httpx.ASGITransport(app=meta_app)
    )
    right = meta_client(settings(), transport=httpx.ASGITransport(app=meta_app))
    try:
        with pytest.raises(ConfigError) as caught:
            await client.catalog(CATALOG)
        assert "META_APP_SECRET" in caught.value.message
        assert "not-the-app-secret" not in str(caught.value)
        assert (await right.catalog(CATALOG)).id == CATALOG
    finally:
        await client.aclose()
        await right.aclose()


async def test_throttling_raises_with_metas_wait(meta_app: FastAPI) -> None:
    async with hooks(meta_app) as http:
        await http.post("/_sim/limits", json={"call_budget": 1, "window_s": 120})
    client = meta_client(settings(), transport=httpx.ASGITransport(app=meta_app))
    other = meta_client(settings(), transport=httpx.ASGITransport(app=meta_app))
    try:
        await client.products(CATALOG, ["x"])
        with pytest.raises(RateLimited) as caught:
            await other.products(CATALOG, ["x"])  # a budget of its own: it sends, Meta refuses
    finally:
        await client.aclose()
        await other.aclose()
    assert caught.value.code == "80009"
    assert caught.value.retry_after is not None and caught.value.retry_after >= 60


async def test_a_spent_business_budget_stops_every_publisher_on_the_database(
    meta_app: FastAPI, migrated_db: str
) -> None:
    """One publisher's answer says the business's catalog budget is spent: another publisher
    (another process, the same database) sends nothing for Meta's estimated time."""
    async with hooks(meta_app) as http:
        await http.post("/_sim/limits", json={"call_budget": 1, "window_s": 120})
    business = str(uuid.uuid4().int)[:15]  # a budget of its own in the session's database
    pools = [await open_pool(migrated_db, max_size=2) for _ in range(2)]
    clients = [
        meta_client(
            settings(meta_business_id=business),
            pool=pool,
            transport=httpx.ASGITransport(app=meta_app),
        )
        for pool in pools
    ]
    try:
        await clients[0].products(CATALOG, ["x"])  # usage now 100%: Meta's header says so
        calls = (await books(meta_app))["calls"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(clients[1].products(CATALOG, ["x"]), 1.5)
        assert (await books(meta_app))["calls"] == calls  # it never reached Meta
        async with pools[1].connection() as conn:
            cur = await conn.execute(
                "SELECT extract(epoch FROM blocked_until - now()) FROM rate_budgets "
                "WHERE name LIKE %s",
                ["meta:%:calls"],
            )
            waits = [float(row[0]) for row in await cur.fetchall()]
        assert any(55 < w <= 120 for w in waits)
    finally:
        for client in clients:
            await client.aclose()
        for pool in pools:
            await pool.close()


async def test_the_chaos_tests_reading_of_the_books_counts_one_listing_per_product(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    refs = [await new_product(source), await new_product(source, 2)]
    for ref in refs:
        first = await channel.publish(ref)
        await channel.publish(ref)  # a redelivery
        await settled(channel, with_ref(ref, first))
    shelf = await books(meta_app)
    assert channel_books.live_listings(shelf) == {ref.product_id: 1 for ref in refs}
    assert channel_books.duplicates(shelf) == []


async def test_a_product_meta_refuses_in_part_is_withdrawn_whole(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    """Meta saves a batch's valid items and refuses the others: the product is refused, and the
    variants Meta did save are deleted, so no part of it stays for sale."""
    await behave(meta_app, reject_every=2)
    ref = await new_product(source, 3)
    state = await settled(channel, with_ref(ref, await channel.publish(ref)))

    assert state.refused is not None and "Meta refused 1 of the product's 3" in state.refused
    deadline = time.monotonic() + 5
    while await catalog_items(meta_app):
        assert time.monotonic() < deadline, "the saved variants were never withdrawn"
        await asyncio.sleep(0.05)
    assert channel_books.live_listings(await books(meta_app)) == {}


async def test_a_server_fault_is_retryable_and_the_retry_lists_once(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    async with hooks(meta_app) as http:
        await http.post("/_sim/config", json={"failure_rate": 1.0, "fault_statuses": [500, 503]})
    with pytest.raises(RetryableError):
        await channel.publish(ref)
    async with hooks(meta_app) as http:
        await http.post("/_sim/config", json={"failure_rate": 0.0})
    state = await settled(channel, with_ref(ref, await channel.publish(ref)))
    assert state.listing is not None
    shelf = await books(meta_app)
    assert channel_books.live_listings(shelf) == {ref.product_id: 1}
    assert len(shelf["catalogs"][CATALOG]["items"]) == 3


async def test_throttling_without_an_estimate_waits_the_configured_time(meta_app: FastAPI) -> None:
    async with hooks(meta_app) as http:
        await http.post("/_sim/config", json={"failure_rate": 1.0, "fault_statuses": [429]})
    client = meta_client(
        settings(meta_throttle_wait_s=7), transport=httpx.ASGITransport(app=meta_app)
    )
    try:
        with pytest.raises(RateLimited) as caught:
            await client.products(CATALOG, ["x"])
        # Every later call of this budget waits too, without reaching Meta.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.products(CATALOG, ["x"]), 0.5)
    finally:
        await client.aclose()
    assert (caught.value.code, caught.value.retry_after) == ("4", 7)
    async with hooks(meta_app) as http:
        assert (await http.get("/_sim/faults")).json() == {"429": 1}


async def test_reconcile_after_a_crash_that_lost_the_handle_finds_the_listing(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    """The attempt sent the batch and died before recording its handle: once Meta ingested
    it, reconcile reports the product listed and writes nothing more."""
    ref = await new_product(source)
    await channel.publish(ref)  # its answer (the handle) lost with the process
    deadline = time.monotonic() + 5
    while len(await catalog_items(meta_app)) < 3:
        assert time.monotonic() < deadline, "Meta never ingested the batch"
        await asyncio.sleep(0.05)
    batches = (await books(meta_app))["batches"]["total"]

    state = await channel.reconcile(ref)

    assert state is not None and state.listing is not None
    assert state.listing.external_id == ref.product_id
    assert (await books(meta_app))["batches"]["total"] == batches


# --- taking a product down, pricing it again (a seller's decisions) ---------------------------


async def listed(channel: MetaChannel, source: PrintifyClient, variants: int = 3) -> ProductRef:
    ref = await new_product(source, variants)
    assert (await settled(channel, with_ref(ref, await channel.publish(ref)))).listing is not None
    return ref


def live(shelf: dict[str, Any], ref: ProductRef) -> int:
    return channel_books.live_listings(shelf)[ref.product_id]


async def test_a_withdrawn_product_is_hidden_kept_shown_again_then_deleted(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    ref = await listed(channel, source)
    assert live(await books(meta_app), ref) == 1

    assert await channel.withdraw(ref, delete=False) is True
    items = await catalog_items(meta_app)
    # Kept whole (three items, their prices), hidden from shoppers.
    assert len(items) == 3 and {i["visibility"] for i in items} == {"staging"}
    assert live(await books(meta_app), ref) == 0
    assert await channel.withdraw(ref, delete=False) is False  # twice: nothing more to hide
    assert "hidden from shoppers" in str((await channel.check(ref)).refused)

    # Published again: the same items shown, none new.
    again = await settled(channel, with_ref(ref, await channel.publish(ref)))
    assert again.listing is not None and again.listing.external_id == ref.product_id
    shelf = await books(meta_app)
    assert live(shelf, ref) == 1 and len(shelf["catalogs"][CATALOG]["items"]) == 3
    assert {i["visibility"] for i in shelf["catalogs"][CATALOG]["items"]} == {"published"}
    assert shelf["catalogs"][CATALOG]["duplicates"] == []

    assert await channel.withdraw(ref, delete=True) is True
    assert await catalog_items(meta_app) == []
    assert await channel.withdraw(ref, delete=True) is False
    assert await channel.withdraw(ref, delete=False) is False
    assert await channel.reprice(ref) is False


async def test_withdrawing_a_product_never_listed_changes_nothing(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    other = await listed(channel, source, 1)  # another product's items stay as they are
    ref = await new_product(source)
    batches = (await books(meta_app))["batches"]["total"]
    assert await channel.withdraw(ref, delete=False) is False
    assert await channel.withdraw(ref, delete=True) is False
    assert await channel.reprice(ref) is False
    shelf = await books(meta_app)
    assert shelf["batches"]["total"] == batches and live(shelf, other) == 1


async def test_reprice_sets_each_items_price_to_its_variants(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    ref = await listed(channel, source)
    product = await source.get_product(PRINTIFY_SHOP, ref.product_id)
    enabled = [v for v in product.variants if v.is_enabled]
    await reprice(
        source, PRINTIFY_SHOP, product, {v.id: 3100 + 100 * i for i, v in enumerate(enabled)}
    )
    draft = draft_from_printify(await source.get_product(PRINTIFY_SHOP, ref.product_id))
    expected = {
        retailer_id(ref.product_id, v): f"{v.price_cents / 100:.2f} USD" for v in draft.variants
    }
    assert len(set(expected.values())) == 3

    assert await channel.reprice(ref) is True
    items = await catalog_items(meta_app)
    assert {i["retailer_id"]: i["price"] for i in items} == expected
    assert {i["visibility"] for i in items} == {"published"}
    # A hidden product is priced too, and shown again at those prices.
    assert await channel.withdraw(ref, delete=False) is True
    await reprice(source, PRINTIFY_SHOP, product, {v.id: 4000 for v in enabled})
    assert await channel.reprice(ref) is True
    items = await catalog_items(meta_app)
    assert {i["price"] for i in items} == {"40.00 USD"}
    assert {i["visibility"] for i in items} == {"staging"}


async def test_a_fault_during_a_withdrawal_is_retryable_and_the_retry_reads_first(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient
) -> None:
    """Meta's client sends nothing twice itself: a 5xx (or a throttle) fails the attempt, and
    the retry reads the catalog before it writes."""
    ref = await listed(channel, source)
    async with hooks(meta_app) as http:
        await http.post("/_sim/config", json={"failure_rate": 1.0, "fault_statuses": [503]})
    with pytest.raises(RetryableError):
        await channel.withdraw(ref, delete=False)
    async with hooks(meta_app) as http:
        await http.post("/_sim/config", json={"failure_rate": 0.0})
    assert live(await books(meta_app), ref) == 1
    assert await channel.withdraw(ref, delete=False) is True
    assert live(await books(meta_app), ref) == 0


async def test_a_throttled_withdrawal_is_rate_limited(
    meta_app: FastAPI, source: PrintifyClient
) -> None:
    made = meta_channel(settings(), source, transport=httpx.ASGITransport(app=meta_app))
    ref = await listed(made, source, 1)
    async with hooks(meta_app) as http:
        await http.post("/_sim/config", json={"failure_rate": 1.0, "fault_statuses": [429]})
    with pytest.raises(RateLimited):
        await made.withdraw(ref, delete=True)
    await made.aclose()
    assert len(await catalog_items(meta_app)) == 1


async def test_a_batch_meta_has_not_finished_in_time_is_tried_again(
    meta_app: FastAPI, source: PrintifyClient
) -> None:
    made = meta_channel(settings(), source, transport=httpx.ASGITransport(app=meta_app))
    ref = await listed(made, source, 2)
    await made.aclose()
    hasty = meta_channel(
        settings(meta_batch_wait_s=0.05), source, transport=httpx.ASGITransport(app=meta_app)
    )
    with pytest.raises(RetryableError, match="had not hidden"):
        await hasty.withdraw(ref, delete=False)
    # The batch finishes later; the retry finds the items hidden and has nothing to do.
    deadline = time.monotonic() + 5
    while live(await books(meta_app), ref):
        assert time.monotonic() < deadline, "Meta never ran the batch"
        await asyncio.sleep(0.05)
    assert await hasty.withdraw(ref, delete=False) is False
    await hasty.aclose()


@pytest.mark.parametrize("delete", [True, False])
async def test_a_withdrawal_during_the_publications_batch_waits_for_it_and_leaves_nothing_live(
    channel: MetaChannel, meta_app: FastAPI, source: PrintifyClient, delete: bool
) -> None:
    # A cancel lands while Meta still runs the publish's batch: the items it writes would
    # appear after the withdrawal (live) unless the withdrawal lets the batch finish first.
    ref = await new_product(source)
    state = await channel.publish(ref)
    assert state.pending and state.pending_ref is not None
    assert await channel.withdraw(with_ref(ref, state), delete=delete) is True
    await asyncio.sleep(BATCH_DELAY_S * 2)  # past the publish's batch, had it been left running
    assert live(await books(meta_app), ref) == 0
    items = await catalog_items(meta_app)
    assert items == [] if delete else {i["visibility"] for i in items} == {"staging"}
