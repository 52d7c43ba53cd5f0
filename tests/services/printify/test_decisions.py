"""The printify stage acting on a seller's decisions, against the Printify simulator (real client,
real HTTP), the real ledger and the real database; the last test runs the stage on the real
broker, the decisions and images produced onto its topics."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from services.printify.handler import PrintifyHandler, sku_prefix
from shared.adapters.storage import LocalImageStorage
from shared.adapters.store import design_hashes
from shared.adapters.vendors.printify import PrintifyClient, Product
from shared.contract.events import (
    DecisionAction,
    Event,
    ImageGenerated,
    ImageGeneratedPayload,
    JobRouting,
    ProductApproved,
    ProductCreated,
    ProductRepriced,
    ProductType,
    ProductWithdrawn,
    SellerDecision,
    SellerDecisionPayload,
    parse_event,
)
from shared.contract.topics import PRODUCTS_CREATED, Stage
from shared.domain.ledger import Ledger
from shared.pipeline.runner import MessageContext, Output, RunnerSettings, StageRunner
from shared.platform.errors import PermanentError, RetryableError
from simulators.printify import SHOP_ID
from simulators.process import SimulatorProcess
from tests.services.printify.test_handler import books, make_handler
from tests.support.infra import read_all, unique, wait_for
from tests.support.kafka import create_topics, produce

CTX = MessageContext("images.generated", 0, 1, 0, "test")
DECISION_CTX = MessageContext("seller.decisions", 0, 1, 0, "test")
SIZE = 2250
TYPES = [ProductType.TSHIRT, ProductType.MUG]


@pytest.fixture
async def client(printify_sim: SimulatorProcess) -> AsyncIterator[PrintifyClient]:
    # An account of its own per test (Printify's request budget is per account).
    c = PrintifyClient(api_key=f"tok-decisions-{uuid.uuid4().hex[:8]}", base_url=printify_sim.url)
    yield c
    await c.aclose()


def job_id() -> str:
    return f"job-d-{uuid.uuid4().hex[:10]}"


def image(
    tmp_path: Path,
    job: str,
    *,
    generation: int = 0,
    index: int = 0,
    types: list[ProductType] = TYPES,
) -> ImageGenerated:
    """Image ``index`` of a reviewed job; each generation a render of its own (another colour)."""
    buf = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), (10 + 20 * generation, 120, 30 + index)).save(buf, "PNG")
    stored = LocalImageStorage(tmp_path).save(buf.getvalue())
    return ImageGenerated(
        job_id=job,
        producer="generator",
        payload=ImageGeneratedPayload(
            image_index=index,
            image_count=2,
            sha256=stored.sha256,
            uri=stored.uri,
            width=SIZE,
            height=SIZE,
            prompt="owl",
            seed=generation,
            title="Owl Tee",
            description="An owl.",
            routing=JobRouting(product_types=types, auto_publish=True, review=True),
            generation=generation,
        ),
    )


def decision(job: str, action: DecisionAction, **fields: Any) -> SellerDecision:
    return SellerDecision(
        job_id=job,
        producer="api",
        payload=SellerDecisionPayload(
            decision_id=uuid.uuid4(), action=action, decided_by="seller@test", **fields
        ),
    )


def of_type(outputs: list[Output], kind: type[Event]) -> list[Any]:
    assert all(o.topic == PRODUCTS_CREATED for o in outputs), [o.topic for o in outputs]
    return [o.event for o in outputs if isinstance(o.event, kind)]


def by_type(events: list[Any]) -> list[Any]:
    return sorted(events, key=lambda e: e.payload.product_type.value)


def ids(events: list[Any]) -> set[str]:
    return {e.payload.product_id for e in events}


def live(sim: SimulatorProcess) -> dict[str, dict[str, Any]]:
    """Every product the simulated Printify has, by id."""
    return {p["product_id"]: p for a in books(sim)["accounts"].values() for p in a["products"]}


def counted(sim: SimulatorProcess, what: str) -> int:
    return sum(int(a[what]) for a in books(sim)["accounts"].values())


async def is_gone(client: PrintifyClient, product_id: str) -> bool:
    try:
        await client.get_product(str(SHOP_ID), product_id)
    except PermanentError as exc:
        return exc.status == 404
    return False


async def test_a_reviewed_image_is_made_as_drafts_and_an_approve_hands_each_product_on_once(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    job = job_id()
    created = of_type(await handler(image(tmp_path, job), CTX), ProductCreated)
    assert [c.payload.product_type for c in created] == TYPES
    # The publishers hold them: the routing says review, whatever autoPublish says.
    assert all(c.payload.routing.review and c.payload.generation == 0 for c in created)
    assert not any(live(printify_sim)[c.payload.product_id]["listed"] for c in created)

    approve = decision(job, DecisionAction.APPROVE, image_index=0, generation=0)
    approved = of_type(await handler(approve, DECISION_CTX), ProductApproved)
    assert len(approved) == len(TYPES)
    for a, c in zip(by_type(approved), by_type(created), strict=True):
        # The product whole, as it was created, and who approved it.
        assert a.payload.model_dump(exclude={"decision_id", "decided_by"}) == c.payload.model_dump()
        assert a.payload.decision_id == approve.payload.decision_id
        assert a.payload.decided_by == "seller@test"
    # Redelivered: the same events (recognisable as duplicates downstream).
    again = of_type(await handler(approve, DECISION_CTX), ProductApproved)
    assert [e.event_id for e in again] == [e.event_id for e in approved]
    # Another approve of the same products hands nothing on a second time.
    other = decision(job, DecisionAction.APPROVE, image_index=0, generation=0)
    assert await handler(other, DECISION_CTX) == []


async def test_a_decision_on_products_not_made_yet_waits_and_one_on_a_replaced_render_is_dropped(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    job = job_id()
    early = decision(job, DecisionAction.APPROVE, image_index=0, generation=0)
    with pytest.raises(RetryableError, match="not all made yet"):
        await handler(early, DECISION_CTX)
    await handler(image(tmp_path, job), CTX)
    await handler(image(tmp_path, job, generation=1), CTX)
    # The seller decided on the render that was replaced: nothing to act on, nothing failed.
    assert await handler(early, DECISION_CTX) == []
    reject = decision(job, DecisionAction.REJECT, image_index=0, generation=0)
    assert await handler(reject, DECISION_CTX) == []
    later = decision(job, DecisionAction.APPROVE, image_index=0, generation=1)
    approved = of_type(await handler(later, DECISION_CTX), ProductApproved)
    assert [a.payload.generation for a in approved] == [1, 1]


async def test_a_reject_deletes_the_images_products_once(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    job = job_id()
    created = of_type(await handler(image(tmp_path, job), CTX), ProductCreated)
    other = of_type(await handler(image(tmp_path, job, index=1), CTX), ProductCreated)
    deleted_before = counted(printify_sim, "products_deleted")
    # Screening had hashed both designs (the generator records them).
    async with handler.pool.connection() as conn:
        for index in (0, 1):
            await design_hashes.record(conn, job, index, 0, 0x00FF00FF00FF00FF)

    reject = decision(job, DecisionAction.REJECT, image_index=0, generation=0)
    withdrawn = of_type(await handler(reject, DECISION_CTX), ProductWithdrawn)
    assert ids(withdrawn) == ids(created)
    # The rejected design no longer makes a new one a near-duplicate; the other still does.
    async with handler.pool.connection() as conn:
        near = await design_hashes.similar(conn, 0x00FF00FF00FF00FF, 0, exclude=("other", 0))
    assert [(r.job_id, r.image_index) for r in near] == [(job, 1)]
    for w in withdrawn:
        p = w.payload
        assert (p.channel, p.outcome, p.reason, p.was_listed) == (None, "deleted", "rejected", True)
        assert p.decision_id == reject.payload.decision_id
        assert await is_gone(client, p.product_id)
    assert counted(printify_sim, "products_deleted") == deleted_before + len(TYPES)
    # The other image's products are untouched.
    assert all(c.payload.product_id in live(printify_sim) for c in other)
    # Redelivered: nothing deleted again, the same events.
    again = of_type(await handler(reject, DECISION_CTX), ProductWithdrawn)
    assert [e.event_id for e in again] == [e.event_id for e in withdrawn]
    assert counted(printify_sim, "products_deleted") == deleted_before + len(TYPES)
    # The image redelivered: its rejected products are neither made nor handed on again.
    created_before = counted(printify_sim, "products_created")
    assert await handler(image(tmp_path, job), CTX) == []
    assert counted(printify_sim, "products_created") == created_before


async def test_a_regenerated_image_replaces_its_products_with_new_ones(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    job = job_id()
    first = of_type(await handler(image(tmp_path, job), CTX), ProductCreated)
    outputs = await handler(image(tmp_path, job, generation=1), CTX)
    withdrawn = of_type(outputs, ProductWithdrawn)
    assert ids(withdrawn) == ids(first)
    assert {w.payload.reason for w in withdrawn} == {"regenerated"}
    assert {w.payload.generation for w in withdrawn} == {0}
    second = of_type(outputs, ProductCreated)
    assert [c.payload.generation for c in second] == [1, 1]
    assert all(c.payload.routing.review for c in second)  # they wait for the seller again
    assert not {c.payload.product_id for c in second} & {c.payload.product_id for c in first}
    products = live(printify_sim)
    for c in first:
        assert c.payload.product_id not in products
    for c in second:
        # Another marker than the first render's, which stays as it was for generation 0.
        marker = sku_prefix(job, 0, c.payload.product_type.value, 1)
        assert marker != sku_prefix(job, 0, c.payload.product_type.value)
        assert products[c.payload.product_id]["skus"]
        assert all(s.startswith(f"{marker}-") for s in products[c.payload.product_id]["skus"])
    # Redelivered, the new render's products are the same ones; the old render's image again
    # makes nothing.
    created_before = counted(printify_sim, "products_created")
    again = of_type(await handler(image(tmp_path, job, generation=1), CTX), ProductCreated)
    assert [c.payload.product_id for c in again] == [c.payload.product_id for c in second]
    assert await handler(image(tmp_path, job), CTX) == []
    assert counted(printify_sim, "products_created") == created_before


class HeldCreates:
    """The real client, its product creations held at the door until released: a create that
    is slow at Printify, for as long as the test needs."""

    def __init__(self, client: PrintifyClient) -> None:
        self.client = client
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def create_product(self, shop_id: str | int, product: Mapping[str, object]) -> Product:
        self.entered.set()
        await self.release.wait()
        return await self.client.create_product(shop_id, product)


async def test_a_cancel_during_a_slow_create_leaves_nothing_in_printify(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    held = HeldCreates(client)
    handler = PrintifyHandler(
        client=held,
        ledger=ledger,
        catalog=make_handler(client, ledger, tmp_path).catalog,
        storage=LocalImageStorage(tmp_path),
        shop_id=str(SHOP_ID),
    )
    job = job_id()
    # A first image made before the cancel, then a second one whose create is in flight.
    held.release.set()
    made = of_type(
        await handler(image(tmp_path, job, types=[ProductType.MUG]), CTX), ProductCreated
    )
    held.entered.clear()
    held.release.clear()
    in_flight = asyncio.create_task(
        handler(image(tmp_path, job, index=1, types=[ProductType.TSHIRT]), CTX)
    )
    await asyncio.wait_for(held.entered.wait(), 30)
    cancel = decision(job, DecisionAction.CANCEL)
    cancelled = of_type(await handler(cancel, DECISION_CTX), ProductWithdrawn)
    # What was made is deleted at once; the product in flight is not made yet.
    assert [w.payload.product_id for w in cancelled] == [made[0].payload.product_id]
    assert cancelled[0].payload.reason == "cancelled"
    held.release.set()
    outputs = await asyncio.wait_for(in_flight, 30)
    # The create went through, then found the cancel: its product deleted, nothing handed on.
    assert of_type(outputs, ProductCreated) == []
    (late,) = of_type(outputs, ProductWithdrawn)
    assert late.payload.reason == "cancelled" and late.payload.product_type == ProductType.TSHIRT
    created = counted(printify_sim, "products_created")
    products = live(printify_sim)
    assert made[0].payload.product_id not in products
    assert late.payload.product_id not in products
    # An image of the cancelled job that comes later (or again) makes nothing.
    assert await handler(image(tmp_path, job, index=2), CTX) == []
    again = of_type(
        await handler(image(tmp_path, job, index=1, types=[ProductType.TSHIRT]), CTX),
        ProductWithdrawn,
    )
    assert [w.event_id for w in again] == [late.event_id]  # the same fact, once
    assert counted(printify_sim, "products_created") == created
    # Approving an image of a cancelled job does nothing.
    assert await handler(decision(job, DecisionAction.APPROVE, image_index=0), DECISION_CTX) == []


def prices_of(sim: SimulatorProcess, product_id: str) -> dict[str, tuple[int, int]]:
    """{variant: (price, cost)} of the product's sold variants in the simulated Printify."""
    return {v: (p, c) for v, (p, c) in live(sim)[product_id]["prices"].items()}


async def test_a_reprice_prices_each_variant_again_by_the_sellers_margin_never_below_cost(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    job = job_id()
    (tee, mug) = of_type(await handler(image(tmp_path, job), CTX), ProductCreated)
    before = prices_of(printify_sim, tee.payload.product_id)
    mug_before = prices_of(printify_sim, mug.payload.product_id)

    reprice = decision(
        job, DecisionAction.REPRICE, margin_percent=60, product_type=ProductType.TSHIRT
    )
    (repriced,) = of_type(await handler(reprice, DECISION_CTX), ProductRepriced)
    after = prices_of(printify_sim, tee.payload.product_id)
    assert after != before
    for price, cost in after.values():
        # A 60% margin of the price: at least cost / 0.4, rounded up to the next .99.
        assert cost / 0.4 <= price < cost / 0.4 + 100 and price % 100 == 99
    assert repriced.payload.channel is None
    assert repriced.payload.prices.price_min_cents == min(p for p, _ in after.values())
    assert repriced.payload.prices.margin_min_percent is not None
    assert repriced.payload.prices.margin_min_percent >= 60
    # Only the type named.
    assert prices_of(printify_sim, mug.payload.product_id) == mug_before
    # Redelivered: not sent again.
    updated = counted(printify_sim, "products_updated")
    again = of_type(await handler(reprice, DECISION_CTX), ProductRepriced)
    assert [e.event_id for e in again] == [repriced.event_id]
    assert counted(printify_sim, "products_updated") == updated
    # A margin of nothing: at cost, never below it.
    at_cost = decision(job, DecisionAction.REPRICE, margin_percent=0)
    assert len(of_type(await handler(at_cost, DECISION_CTX), ProductRepriced)) == 2
    for product in (tee, mug):
        for price, cost in prices_of(printify_sim, product.payload.product_id).values():
            assert cost <= price < cost + 100 and price % 100 == 99
    # An approve after the reprice hands the products on at their new prices.
    approve = decision(job, DecisionAction.APPROVE, image_index=0)
    approved = of_type(await handler(approve, DECISION_CTX), ProductApproved)
    for a in approved:
        now = prices_of(printify_sim, a.payload.product_id)
        assert a.payload.prices.price_min_cents == min(p for p, _ in now.values())


async def test_a_delete_after_launch_deletes_only_what_it_names(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    job = job_id()
    (tee, mug) = of_type(await handler(image(tmp_path, job), CTX), ProductCreated)
    # Taken off a direct channel only: the product stays in Printify for the others.
    etsy_only = decision(job, DecisionAction.DELETE, channels=["etsy"])
    assert await handler(etsy_only, DECISION_CTX) == []
    delete = decision(job, DecisionAction.DELETE, image_index=0, product_type=ProductType.MUG)
    (gone,) = of_type(await handler(delete, DECISION_CTX), ProductWithdrawn)
    assert (gone.payload.product_id, gone.payload.reason) == (mug.payload.product_id, "deleted")
    products = live(printify_sim)
    assert mug.payload.product_id not in products and tee.payload.product_id in products
    # Deleted in Printify by the seller meanwhile: read as already gone, nothing raised.
    await client.delete_product(str(SHOP_ID), tee.payload.product_id)
    everything = decision(job, DecisionAction.DELETE)
    withdrawn = {
        w.payload.product_id: w
        for w in of_type(await handler(everything, DECISION_CTX), ProductWithdrawn)
    }
    assert set(withdrawn) == {tee.payload.product_id, mug.payload.product_id}
    assert not withdrawn[tee.payload.product_id].payload.was_listed
    # The mug's deletion is the same fact again (one id), not deleted twice.
    assert withdrawn[mug.payload.product_id].event_id == gone.event_id


# ------------------------------------------------------------------ through the broker


def runner_settings(bootstrap: str, prefix: str) -> RunnerSettings:
    return RunnerSettings(
        kafka_bootstrap_servers=bootstrap,
        group_id_prefix=prefix,
        commit_interval_ms=100,
        heartbeat_interval_s=5.0,
        # A decision that comes before its products is retried soon.
        retry_attempts=5,
        retry_base_delay_s=0.3,
        retry_max_delay_s=1.0,
        fetch_wait_max_ms=100,
        shutdown_grace_s=1,
    )


def outputs_of(bootstrap: str, topic: str, job: str) -> list[Event]:
    return [
        parse_event(m.value()) for m in read_all(bootstrap, topic, 5) if m.key() == job.encode()
    ]


async def test_decisions_travel_through_the_topics(
    tmp_path: Path,
    client: PrintifyClient,
    ledger: Ledger,
    printify_sim: SimulatorProcess,
    pipeline_topics: str,
) -> None:
    """The stage reads images and decisions from their topics (a decision may come before the
    products it is about: it is retried until they are made) and writes what it did."""
    bootstrap = pipeline_topics
    n = unique("decide")
    images, decisions, products = f"{n}.images", f"{n}.decisions", f"{n}.products"
    stage = Stage("printify", (images, decisions), f"{n}.printify")
    create_topics(bootstrap, [images, decisions, products, stage.dlq, *stage.retry_topics], 1)
    handler = make_handler(client, ledger, tmp_path)

    async def to_topics(
        event: ImageGenerated | SellerDecision, ctx: MessageContext
    ) -> list[Output]:
        return [
            Output(products if o.topic == PRODUCTS_CREATED else stage.dlq, o.event)
            for o in await handler(event, ctx)
        ]

    runner: StageRunner[Any] = StageRunner(
        stage=stage,
        handler=to_topics,
        settings=runner_settings(bootstrap, n),
        accept=(ImageGenerated, SellerDecision),
    )
    task = asyncio.create_task(runner.run())
    try:
        job = job_id()
        approve = decision(job, DecisionAction.APPROVE, image_index=0)
        # The approve first (the seller cannot have seen it yet, but a replay can do this),
        # then the image, then the same approve again (a redelivery).
        await asyncio.to_thread(produce, bootstrap, decisions, [approve])
        await asyncio.to_thread(produce, bootstrap, images, [image(tmp_path, job)])
        await asyncio.to_thread(produce, bootstrap, decisions, [approve])

        def approved() -> list[ProductApproved] | None:
            found = [
                e for e in outputs_of(bootstrap, products, job) if isinstance(e, ProductApproved)
            ]
            return found if len({e.event_id for e in found}) == len(TYPES) else None

        await asyncio.to_thread(wait_for, approved, 60, "the products approved")
        cancel = decision(job, DecisionAction.CANCEL)
        await asyncio.to_thread(produce, bootstrap, decisions, [cancel])

        def withdrawn() -> list[ProductWithdrawn] | None:
            found = [
                e for e in outputs_of(bootstrap, products, job) if isinstance(e, ProductWithdrawn)
            ]
            return found if len({e.event_id for e in found}) == len(TYPES) else None

        gone = await asyncio.to_thread(wait_for, withdrawn, 60, "the products deleted")
        assert gone is not None
        for w in gone:
            assert w.payload.reason == "cancelled"
            assert await is_gone(client, w.payload.product_id)
        events = outputs_of(bootstrap, products, job)
        created = {e.payload.product_id for e in events if isinstance(e, ProductCreated)}
        assert len(created) == len(TYPES)
        # One product.approved per product, however often the decision came.
        approvals = [e for e in events if isinstance(e, ProductApproved)]
        assert len({e.event_id for e in approvals}) == len(TYPES)
        assert {e.payload.product_id for e in approvals} == created
        assert outputs_of(bootstrap, stage.dlq, job) == []
    finally:
        runner.request_stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
