"""The publisher handler against the Printify simulator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from services.publisher.handler import PublisherHandler, build_handler, handle_for
from services.publisher.settings import PublisherSettings
from shared.db import open_pool
from shared.events import ProductCreated, ProductCreatedPayload, ProductPublished
from shared.ledger import EffectKey, EffectState, Ledger
from shared.runner import MessageContext
from shared.topics import PUBLISHED
from shared.vendors.printify import PrintifyClient, build_product_payload
from simulators.process import SimulatorProcess

CTX = MessageContext("products.created", 0, 3, 0, "test")
TOKEN = "tok-publisher"


@pytest.fixture
async def client(printify_sim: SimulatorProcess) -> AsyncIterator[PrintifyClient]:
    c = PrintifyClient(api_key=TOKEN, base_url=printify_sim.url)
    yield c
    await c.aclose()


@pytest.fixture
async def ledger(migrated_db: str) -> AsyncIterator[Ledger]:
    pool: AsyncConnectionPool = await open_pool(migrated_db, max_size=4)
    yield Ledger(pool)
    await pool.close()


def publisher(client: PrintifyClient, ledger: Ledger) -> PublisherHandler:
    return PublisherHandler(client=client, ledger=ledger, storefront_base_url="https://shop.test/p")


def publish_key(event: ProductCreated) -> EffectKey:
    p = event.payload
    return EffectKey(event.job_id, p.image_index, p.product_type.value, "publish")


async def make_product(
    client: PrintifyClient, auto_publish: bool, channel: str = "custom_integration"
) -> ProductCreated:
    shops = await client.list_shops()
    shop = next(str(s["id"]) for s in shops if s["sales_channel"] == channel)
    upload = await client.upload_image(file_name="x.png", contents=_png())
    variants = (await client.list_variants(6, 99))[:3]
    product = await client.create_product(
        shop,
        build_product_payload(
            title="Moon Cat",
            description="d",
            tags=["cat"],
            blueprint_id=6,
            print_provider_id=99,
            variants=variants,
            price_cents=1999,
            image_id=upload["id"],
            sku_prefix="pod-test",
        ),
    )
    return ProductCreated(
        # A fresh job per product: the publish is recorded per (job, image, type).
        job_id=f"job-pub-{uuid.uuid4().hex[:10]}",
        producer="printify",
        payload=ProductCreatedPayload(
            image_index=0,
            product_type="tshirt",
            product_id=product["id"],
            shop_id=shop,
            blueprint_id=6,
            print_provider_id=99,
            variant_count=3,
            price_cents=1999,
            title="Moon Cat",
            auto_publish=auto_publish,
        ),
    )


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    return buf.getvalue()


def publish_calls(sim: SimulatorProcess, product_id: str, counter: str = "publish_calls") -> int:
    accounts = httpx.get(f"{sim.url}/_sim/books", timeout=5).json()["accounts"]
    return sum(a[counter].get(product_id, 0) for a in accounts.values())


def confirmations(sim: SimulatorProcess, product_id: str) -> int:
    return publish_calls(sim, product_id, "publishing_succeeded")


async def test_auto_publish_publishes_and_confirms(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    handler = publisher(client, ledger)
    outputs = await handler(event, CTX)
    assert len(outputs) == 1 and outputs[0].topic == PUBLISHED
    published = outputs[0].event
    assert isinstance(published, ProductPublished)
    assert published.payload.product_id == event.payload.product_id
    assert published.payload.handle == handle_for("Moon Cat", event.payload.product_id)
    product = await client.get_product(event.payload.shop_id, event.payload.product_id)
    assert product["external"]["handle"].startswith("https://shop.test/p/moon-cat-")
    assert publish_calls(printify_sim, event.payload.product_id) == 1


async def test_without_auto_publish_the_product_stays_a_draft(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=False)
    handler = PublisherHandler(client=client, ledger=ledger, storefront_base_url="https://s")
    assert await handler(event, CTX) == []
    assert publish_calls(printify_sim, event.payload.product_id) == 0
    assert await ledger.get(publish_key(event)) is None


async def test_redelivery_publishes_once(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    handler = publisher(client, ledger)
    first = await handler(event, CTX)
    second = await handler(event, CTX)  # the same message redelivered
    assert publish_calls(printify_sim, event.payload.product_id) == 1
    assert confirmations(printify_sim, event.payload.product_id) == 1
    assert first[0].event.payload == second[0].event.payload


async def test_publish_requested_but_unconfirmed_is_only_confirmed(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    p = event.payload
    # An earlier attempt recorded `started`, asked Printify to publish, and crashed.
    await ledger.begin(publish_key(event), lease_s=0)
    await client.publish(p.shop_id, p.product_id)
    assert (await client.get_product(p.shop_id, p.product_id))["is_locked"] is True

    outputs = await publisher(client, ledger)(event, CTX)

    assert publish_calls(printify_sim, p.product_id) == 1
    assert confirmations(printify_sim, p.product_id) == 1
    published = outputs[0].event
    assert isinstance(published, ProductPublished)
    assert published.payload.external_id == p.product_id
    assert published.payload.handle == handle_for("Moon Cat", p.product_id)
    product = await client.get_product(p.shop_id, p.product_id)
    assert product["is_locked"] is False and product["external"]["id"] == p.product_id


async def test_confirmed_publication_is_recorded_without_any_call(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    p = event.payload
    # An earlier attempt did the whole handshake and crashed before recording it.
    await ledger.begin(publish_key(event), lease_s=0)
    await client.publish(p.shop_id, p.product_id)
    await client.publishing_succeeded(
        p.shop_id, p.product_id, external_id=p.product_id, handle="https://shop.test/p/x"
    )

    outputs = await publisher(client, ledger)(event, CTX)

    assert publish_calls(printify_sim, p.product_id) == 1
    assert confirmations(printify_sim, p.product_id) == 1
    published = outputs[0].event
    assert isinstance(published, ProductPublished)
    assert published.payload.external_id == p.product_id
    recorded = await ledger.get(publish_key(event))
    assert recorded is not None and recorded.state is EffectState.DONE


async def test_publish_that_never_reached_printify_is_made_on_the_next_attempt(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    await ledger.begin(publish_key(event), lease_s=0)  # crashed before the publish request left
    await publisher(client, ledger)(event, CTX)
    assert publish_calls(printify_sim, event.payload.product_id) == 1
    assert confirmations(printify_sim, event.payload.product_id) == 1


def test_handle_is_a_slug() -> None:
    assert (
        handle_for("Retro Space Cat — Tee!", "abcdef0123456789") == "retro-space-cat-tee-23456789"
    )
    assert handle_for("!!!", "id1") == "id1"


async def test_other_channels_are_published_once_and_confirmed_by_the_channel(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    # The account also has a custom-integration shop: the product's own shop decides.
    event = await make_product(client, auto_publish=True, channel="etsy")
    p = event.payload
    handler = PublisherHandler(client=client, ledger=ledger, storefront_base_url="https://s")
    await ledger.begin(
        publish_key(event), lease_s=0
    )  # an earlier attempt whose publish went through...
    await client.publish(p.shop_id, p.product_id)
    outputs = await handler(event, CTX)  # ...is recognised by the lock, not repeated
    await handler(event, CTX)
    assert publish_calls(printify_sim, p.product_id) == 1
    assert confirmations(printify_sim, p.product_id) == 0  # the channel's job, not ours
    accounts = httpx.get(f"{printify_sim.url}/_sim/books", timeout=5).json()["accounts"]
    assert all(a["handshake_refused"] == 0 for a in accounts.values())
    published = outputs[0].event
    assert isinstance(published, ProductPublished)
    assert published.payload.external_id is None and published.payload.handle is None


async def test_build_handler_wires_the_ledger_from_settings(
    client: PrintifyClient, migrated_db: str, printify_sim: SimulatorProcess
) -> None:
    settings = PublisherSettings(
        printify_api_key=TOKEN,
        printify_api_url=printify_sim.url,
        database_url=migrated_db,
    )
    event = await make_product(client, auto_publish=True)
    async with build_handler(settings) as handler:
        await handler(event, CTX)
    async with build_handler(settings) as handler:  # a restarted process
        await handler(event, CTX)
    assert publish_calls(printify_sim, event.payload.product_id) == 1
    assert confirmations(printify_sim, event.payload.product_id) == 1
