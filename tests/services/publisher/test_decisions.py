"""A channel's publisher and the seller's decisions (issue 28), against the Printify simulator,
the Shopify simulator and the real ledger: a reviewed job's products are held, an approved one
is listed once, a cancel wins over a publish in flight, an unpublish then a delete take the
listing down on the store, a reprice in Printify reaches the store's prices, and Printify's
product:deleted of a product we made is reported (and of another product, nothing)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.publisher.handler import ByEventType, direct_publisher, printify_publisher
from services.publisher.holdings import Holdings
from services.publisher.publications import Publications
from services.publisher.watch import OneChannel, PublicationWatcher, product_step, publish_key
from shared.adapters.store import cancellations
from shared.adapters.vendors.channels import Listing, ListingState, ProductRef
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify import ShopifyChannel
from shared.contract.events import (
    DecisionAction,
    PrintifyWebhookPayload,
    PrintifyWebhookReceived,
    ProductPublished,
    ProductPublishing,
    ProductRepriced,
    ProductRepricedPayload,
    ProductWithdrawn,
)
from shared.contract.topics import DEFAULT_CHANNEL, PUBLISHED
from shared.domain.ledger import EffectKey, Ledger, step_name
from tests.services.publisher.support import (
    CTX,
    Store,
    approved,
    channels_of,
    decision,
    make_product,
    product_of,
    until,
)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = Store()
    yield s
    await s.aclose()


@pytest.fixture
async def slow_store() -> AsyncIterator[Store]:
    # Every call to the store takes 400 ms: a publish (productSet, then publishablePublish)
    # is in flight for most of a second.
    s = Store(latency_ms=400)
    yield s
    await s.aclose()


def shopify_handler(ledger: Ledger, client: PrintifyClient, store: Store) -> ByEventType:
    return direct_publisher(
        name="shopify",
        channel=ShopifyChannel(store.client, client),
        ledger=ledger,
        publications=Publications(ledger.pool, "shopify"),
        first_check_s=0,
    )


def withdrawn(outputs: list[Any]) -> list[ProductWithdrawn]:
    found = [o.event for o in outputs if isinstance(o.event, ProductWithdrawn)]
    assert all(o.topic == PUBLISHED for o in outputs)
    return found


async def test_a_reviewed_product_is_held_then_listed_once_when_approved(
    client: PrintifyClient, ledger: Ledger, store: Store
) -> None:
    handler = shopify_handler(ledger, client, store)
    created = await product_of(client, review=True)

    assert await handler(created, CTX) == []  # held, whatever autoPublish says
    assert await store.products() == []
    held = await Holdings(ledger.pool, "shopify").get(created.job_id, 0, "tshirt")
    assert held is not None and held.state == "held"

    approval = approved(created)
    [first] = await handler(approval, CTX)
    again = await handler(approval, CTX)  # the same approval delivered twice
    other = await handler(approved(created), CTX)  # a second approval event of the product
    await handler(created, CTX)  # and the product.created again: still held, nothing new

    assert isinstance(first.event, ProductPublished) and first.event.payload.channel == "shopify"
    assert [o.event.event_id for o in again] == [first.event.event_id]
    assert [type(o.event) for o in other] == [ProductPublished]
    book = await store.book()
    assert (len(book["products"]), book["product_sets"]) == (1, 1)
    assert book["products"][0]["published"] is True


async def test_a_regenerated_images_products_are_new_publications(
    client: PrintifyClient, ledger: Ledger, store: Store
) -> None:
    handler = shopify_handler(ledger, client, store)
    created = await product_of(client, review=True)
    await handler(approved(created), CTX)
    # Generation 1 of the same image: a new Printify product, a new ledger key.
    fresh = await make_product(client, auto_publish=True)
    payload = created.payload.model_copy(
        update={"generation": 1, "product_id": fresh.payload.product_id}
    )
    regenerated = created.model_copy(update={"payload": payload, "event_id": uuid.uuid4()})
    assert publish_key(regenerated, "shopify").step == "publish:shopify@g1"
    [out] = await handler(approved(regenerated), CTX)
    assert isinstance(out.event, ProductPublished)
    assert len(await store.products()) == 2


async def test_a_cancel_during_a_slow_publish_leaves_nothing_live(
    client: PrintifyClient, ledger: Ledger, slow_store: Store
) -> None:
    handler = shopify_handler(ledger, client, slow_store)
    created = await product_of(client, review=False)
    key = publish_key(created, "shopify")

    publishing = asyncio.create_task(handler(created, CTX))
    # The publish holds its ledger claim and is talking to the store.
    await until(lambda: ledger.get(key), timeout=10, what="the publish's ledger claim")
    cancel = decision(created.job_id, DecisionAction.CANCEL)
    outs = await handler(cancel, CTX)
    published = await publishing

    assert [type(o.event) for o in published] == [ProductPublished]  # it finished first ...
    [gone] = withdrawn(outs)  # ... and was taken down after
    assert (gone.payload.outcome, gone.payload.reason) == ("deleted", "cancelled")
    assert gone.payload.channel == "shopify" and gone.payload.was_listed is True
    assert await slow_store.products() == []  # nothing live for the job
    assert await cancellations.is_cancelled(ledger.pool, created.job_id)

    # The cancel again (a redelivery): the same event, no second call to the store.
    deletes = (await slow_store.book())["deletes"]
    assert [o.event.event_id for o in await handler(cancel, CTX)] == [gone.event_id]
    assert (await slow_store.book())["deletes"] == deletes
    # A product of the job arriving after the cancel is not listed.
    assert await handler(created, CTX) == []
    assert await slow_store.products() == []


async def test_a_product_of_a_cancelled_job_is_never_listed(
    client: PrintifyClient, ledger: Ledger, store: Store
) -> None:
    handler = shopify_handler(ledger, client, store)
    created = await product_of(client, review=True)
    await handler(created, CTX)  # held
    [out] = await handler(decision(created.job_id, DecisionAction.CANCEL), CTX)
    assert isinstance(out.event, ProductWithdrawn) and out.event.payload.was_listed is False
    assert await handler(approved(created), CTX) == []  # an approval that crossed the cancel
    assert await store.products() == []


async def test_a_product_arriving_after_its_jobs_cancel_is_neither_recorded_nor_listed(
    client: PrintifyClient, ledger: Ledger, store: Store
) -> None:
    # The cancel check, the holding's write and its read go in one round trip: the write must
    # still not happen for a cancelled job (its cancel, handled already, would not find it).
    handler = shopify_handler(ledger, client, store)
    created = await product_of(client, review=False)
    assert await handler(decision(created.job_id, DecisionAction.CANCEL), CTX) == []
    assert await handler(created, CTX) == []
    holdings = Holdings(ledger.pool, "shopify")
    assert await holdings.get(created.job_id, 0, created.payload.product_type.value) is None
    assert await store.products() == []


async def test_unpublish_then_delete_on_shopify(
    client: PrintifyClient, ledger: Ledger, store: Store
) -> None:
    handler = shopify_handler(ledger, client, store)
    created = await product_of(client, review=False)
    await handler(created, CTX)
    [listed] = await store.products()
    assert (listed["status"], listed["published"]) == ("ACTIVE", True)

    # Another channel's unpublish is not this one's.
    elsewhere = decision(created.job_id, DecisionAction.UNPUBLISH, channels=["etsy"])
    assert await handler(elsewhere, CTX) == []
    unpublish = decision(created.job_id, DecisionAction.UNPUBLISH, image_index=0)
    [down] = withdrawn(await handler(unpublish, CTX))
    assert (down.payload.outcome, down.payload.was_listed) == ("unpublished", True)
    [kept] = await store.products()
    assert kept["status"] == "DRAFT"  # off the store, kept
    # A redelivered product.created does not list it again on its own.
    assert await handler(created, CTX) == []
    assert [p["status"] for p in await store.products()] == ["DRAFT"]

    delete = decision(created.job_id, DecisionAction.DELETE, product_type="tshirt")
    [gone] = withdrawn(await handler(delete, CTX))
    assert (gone.payload.outcome, gone.payload.reason) == ("deleted", "deleted")
    assert gone.payload.was_listed is True
    assert await store.products() == []
    # Once deleted, a later unpublish has nothing to take down.
    assert withdrawn(await handler(decision(created.job_id, DecisionAction.UNPUBLISH), CTX)) == []


async def test_a_reprice_in_printify_reaches_the_store(
    client: PrintifyClient, ledger: Ledger, store: Store
) -> None:
    handler = shopify_handler(ledger, client, store)
    created = await product_of(client, review=False)
    await handler(created, CTX)
    [listed] = await store.products()
    assert set(listed["prices"]) == {"19.99"}

    # The printify stage priced it again in Printify, and says so.
    p = created.payload
    product = await client.get_product(p.shop_id, p.product_id)
    # Printify takes every variant of the product in one update.
    changes = [
        {"id": v.id, "price": 2450 if v.is_enabled else v.price, "is_enabled": v.is_enabled}
        for v in product.variants
    ]
    await client.update_product(p.shop_id, p.product_id, {"variants": changes})
    payload = ProductRepricedPayload(
        image_index=0,
        product_type="tshirt",
        product_id=p.product_id,
        shop_id=p.shop_id,
        prices=p.prices.model_copy(update={"price_min_cents": 2450}),
        decision_id=uuid.uuid4(),
    )
    repriced = ProductRepriced(job_id=created.job_id, producer="printify", payload=payload)
    [out] = await handler(repriced, CTX)
    assert isinstance(out.event, ProductRepriced) and out.event.payload.channel == "shopify"
    [now] = await store.products()
    assert set(now["prices"]) == {"24.50"}
    updates = (await store.book())["variant_updates"]
    assert [o.event.event_id for o in await handler(repriced, CTX)] == [out.event.event_id]
    assert (await store.book())["variant_updates"] == updates  # once per decision

    # A channel's own report, or a product this channel does not list: nothing.
    own = repriced.model_copy(update={"payload": payload.model_copy(update={"channel": "etsy"})})
    assert await handler(own, CTX) == []
    stranger = payload.model_copy(update={"product_id": "not-ours", "image_index": 7})
    assert await handler(repriced.model_copy(update={"payload": stranger}), CTX) == []


def webhook(topic: str, product_id: str, shop_id: str) -> PrintifyWebhookReceived:
    payload = PrintifyWebhookPayload(
        webhook_event_id=uuid.uuid4().hex,
        topic=topic,
        resource_id=product_id,
        resource_type="product",
        shop_id=shop_id,
        data={},
    )
    return PrintifyWebhookReceived(
        job_id=f"printify:product:{product_id}", producer="api", payload=payload
    )


async def test_a_product_deleted_in_printify_is_withdrawn_only_when_it_is_ours(
    client: PrintifyClient, ledger: Ledger
) -> None:
    handler = printify_publisher(
        channels=channels_of(client), ledger=ledger, publications=Publications(ledger.pool)
    )
    created = await make_product(client, auto_publish=True)
    [published] = await handler(created, CTX)  # listed on the engine's storefront
    assert isinstance(published.event, ProductPublished)
    p = created.payload

    [out] = await handler(webhook("product:deleted", p.product_id, p.shop_id), CTX)
    event = out.event
    assert isinstance(event, ProductWithdrawn) and event.job_id == created.job_id
    assert (event.payload.channel, event.payload.outcome, event.payload.reason) == (
        "printify",
        "deleted",
        "vendor",
    )
    assert event.payload.was_listed is True
    assert await handler(created, CTX) == []  # never listed again by a redelivery

    # A product we never made, or ours claimed in another shop: nothing changes.
    assert (
        await handler(webhook("product:deleted", "5f" + uuid.uuid4().hex[:22], p.shop_id), CTX)
        == []
    )
    other = await make_product(client, auto_publish=True)
    await handler(other, CTX)
    assert await handler(webhook("product:deleted", other.payload.product_id, "999999"), CTX) == []
    row = await Holdings(ledger.pool, "printify").get(other.job_id, 0, "tshirt")
    assert row is not None and row.state == "active"


class Reviewing:
    """A channel that reviews what it is given (TikTok's audit, Meta's batch): pending until
    it would list it; it records what it was asked to take down."""

    name = "reviewing"

    def __init__(self) -> None:
        self.withdrawn: list[tuple[str, bool]] = []

    async def publish(self, product: ProductRef) -> ListingState:
        return ListingState(pending_ref=f"audit-{product.product_id}")

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        return None

    async def check(self, product: ProductRef) -> ListingState:
        return ListingState(Listing(f"live-{product.product_id}"))  # the audit passed

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        self.withdrawn.append((product.product_id, delete))
        return True

    async def reprice(self, product: ProductRef) -> bool:
        return False


async def test_a_publication_under_review_of_a_cancelled_job_is_settled_never_reported(
    client: PrintifyClient, ledger: Ledger
) -> None:
    channel = Reviewing()
    publications = Publications(ledger.pool, "tiktok")
    handler = direct_publisher(
        name="tiktok", channel=channel, ledger=ledger, publications=publications
    )
    created = await make_product(client, auto_publish=True)
    routing = created.payload.routing.model_copy(update={"channels": ["tiktok"]})
    created = created.model_copy(
        update={"payload": created.payload.model_copy(update={"routing": routing})}
    )
    [publishing] = await handler(created, CTX)
    assert isinstance(publishing.event, ProductPublishing)

    [out] = await handler(decision(created.job_id, DecisionAction.CANCEL), CTX)
    assert isinstance(out.event, ProductWithdrawn) and out.event.payload.channel == "tiktok"
    assert channel.withdrawn == [(created.payload.product_id, True)]

    # The audit passes afterwards: the watcher reports nothing of this job's.
    reported: list[Any] = []

    async def emit(topic: str, event: Any) -> None:
        if event.job_id == created.job_id:
            reported.append(event)

    watcher = PublicationWatcher(
        publications=publications, channels=OneChannel(channel), ledger=ledger, emit=emit
    )
    async with ledger.pool.connection() as conn:
        # Due now, as if the audit's first check came.
        await conn.execute(
            "UPDATE publications SET next_check_at = now() WHERE job_id = %s", (created.job_id,)
        )
        cur = await conn.execute(
            "SELECT state, error FROM publications WHERE job_id = %s", (created.job_id,)
        )
        assert await cur.fetchall() == [("failed", "withdrawn: cancelled")]
    await watcher.run_once()
    assert reported == []


async def test_a_product_we_made_for_other_channels_deleted_in_printify_is_reported(
    client: PrintifyClient, ledger: Ledger
) -> None:
    handler = printify_publisher(
        channels=channels_of(client), ledger=ledger, publications=Publications(ledger.pool)
    )
    # A job that sells on Shopify alone: the printify channel holds nothing of it; the printify
    # stage's ledger records the product it created (generation 2 of the image).
    made = await make_product(client, auto_publish=True)
    p = made.payload
    create = EffectKey(made.job_id, 0, "tshirt", step_name("create", generation=2))

    async def created() -> dict[str, Any]:
        return {"product_id": p.product_id, "variant_count": 3}

    await ledger.once(create, created)

    elsewhere = webhook("product:deleted", p.product_id, "999999")  # not the account's shop
    assert await handler(elsewhere, CTX) == []
    [out] = await handler(webhook("product:deleted", p.product_id, p.shop_id), CTX)
    event = out.event
    assert isinstance(event, ProductWithdrawn) and event.job_id == made.job_id
    assert (event.payload.channel, event.payload.reason, event.payload.was_listed) == (
        "printify",
        "vendor",
        False,
    )
    assert event.payload.generation == 2


@pytest.mark.parametrize("verb", ["unpublish", "delete", "reprice"])
@pytest.mark.parametrize("generation", [0, 2])
def test_the_printify_channels_undo_steps_are_never_the_printify_stages(
    verb: str, generation: int
) -> None:
    # Both write the ledger for one (job, image, type) and one decision: a publisher's reprice
    # of the printify channel once read the printify stage's recorded prices as its own.
    tag = uuid.uuid4().hex[:12]
    stage_steps = {
        step_name(verb, generation=generation),
        step_name(verb, generation=generation, tag=tag),
    }
    channel_step = product_step(verb, "job", 0, "mug", DEFAULT_CHANNEL, generation, tag=tag)
    assert channel_step.step not in stage_steps
    # ... while the channel's publish keeps the name it always had.
    assert product_step("publish", "job", 0, "mug", DEFAULT_CHANNEL, 0).step == "publish"
