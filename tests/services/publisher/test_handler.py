"""The publisher handler against the Printify simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.publisher.handler import PublisherHandler, handle_for
from shared.events import ProductCreated, ProductCreatedPayload, ProductPublished
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


async def make_product(client: PrintifyClient, auto_publish: bool) -> ProductCreated:
    shop = str((await client.list_shops())[0]["id"])
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
        job_id="job-pub",
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


def publish_calls(sim: SimulatorProcess, product_id: str) -> int:
    accounts = httpx.get(f"{sim.url}/_sim/books", timeout=5).json()["accounts"]
    return sum(a["publish_calls"].get(product_id, 0) for a in accounts.values())


async def test_auto_publish_publishes_and_confirms(
    client: PrintifyClient, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    handler = PublisherHandler(
        client=client, custom_channel=True, storefront_base_url="https://shop.test/p"
    )
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
    client: PrintifyClient, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=False)
    handler = PublisherHandler(client=client, custom_channel=True, storefront_base_url="https://s")
    assert await handler(event, CTX) == []
    assert publish_calls(printify_sim, event.payload.product_id) == 0


def test_handle_is_a_slug() -> None:
    assert (
        handle_for("Retro Space Cat — Tee!", "abcdef0123456789") == "retro-space-cat-tee-23456789"
    )
    assert handle_for("!!!", "id1") == "id1"
