"""The printify handler against the Printify simulator (real client, real HTTP)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.printify.handler import PrintifyHandler, sku_prefix
from services.printify.settings import DEFAULT_CATALOG, CatalogEntry
from shared.events import (
    ImageGenerated,
    ImageGeneratedPayload,
    ProductCreated,
    ProductType,
    StageFailed,
)
from shared.runner import MessageContext
from shared.storage import LocalImageStorage
from shared.topics import PRINTIFY, PRODUCTS_CREATED
from shared.vendors.printify import PrintifyClient
from simulators.process import SimulatorProcess

CTX = MessageContext("images.generated", 2, 11, 0, "test")


@pytest.fixture
async def client(printify_sim: SimulatorProcess) -> AsyncIterator[PrintifyClient]:
    c = PrintifyClient(api_key="tok-printify-handler", base_url=printify_sim.url)
    yield c
    await c.aclose()


def image_event(tmp_path: Path, types: list[str], job_id: str = "job-p1") -> ImageGenerated:
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 200, 30)).save(buf, "PNG")
    stored = LocalImageStorage(tmp_path).save(buf.getvalue())
    return ImageGenerated(
        job_id=job_id,
        producer="generator",
        payload=ImageGeneratedPayload(
            image_index=1,
            image_count=2,
            sha256=stored.sha256,
            uri=stored.uri,
            width=256,
            height=256,
            prompt="green blob",
            seed=1,
            title="Green Blob Tee",
            description="A blob.",
            tags=["blob", "green"],
            product_types=types,
            auto_publish=True,
        ),
    )


def books(sim: SimulatorProcess) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{sim.url}/_sim/books", timeout=5).json()


async def test_one_product_per_type_with_seed_prices(
    tmp_path: Path, client: PrintifyClient, printify_sim: SimulatorProcess
) -> None:
    handler = PrintifyHandler(client=client, catalog=DEFAULT_CATALOG)
    outputs = await handler(image_event(tmp_path, ["tshirt", "hoodie"]), CTX)
    assert [o.topic for o in outputs] == [PRODUCTS_CREATED, PRODUCTS_CREATED]
    created = [o.event for o in outputs]
    assert all(isinstance(e, ProductCreated) for e in created)
    by_type = {e.payload.product_type: e.payload for e in created}  # type: ignore[union-attr]
    assert by_type[ProductType.TSHIRT].price_cents == 1999
    assert by_type[ProductType.HOODIE].price_cents == 3499
    assert by_type[ProductType.TSHIRT].blueprint_id == 6
    assert by_type[ProductType.HOODIE].blueprint_id == 77
    # The product on Printify has the listing copy, integer prices and the marker SKUs.
    tee = await client.get_product(
        by_type[ProductType.TSHIRT].shop_id, by_type[ProductType.TSHIRT].product_id
    )
    assert tee["title"] == "Green Blob Tee"
    assert tee["tags"] == ["blob", "green"]
    assert {v["price"] for v in tee["variants"] if v["is_enabled"]} == {1999}
    marker = sku_prefix("job-p1", 1, "tshirt")
    assert all(v["sku"].startswith(marker) for v in tee["variants"] if v["is_enabled"])
    assert tee["print_areas"][0]["placeholders"][0]["position"] == "front"


async def test_permanent_failure_of_one_type_spares_the_others(
    tmp_path: Path, client: PrintifyClient
) -> None:
    catalog = {
        **DEFAULT_CATALOG,
        # A provider that does not make this blueprint: Printify rejects it for good.
        ProductType.HOODIE: CatalogEntry(
            blueprint_id=77, print_provider_id=424242, price_cents=3499
        ),
    }
    handler = PrintifyHandler(client=client, catalog=catalog)
    outputs = await handler(image_event(tmp_path, ["tshirt", "hoodie"], job_id="job-p2"), CTX)
    assert [o.topic for o in outputs] == [PRODUCTS_CREATED, PRINTIFY.dlq]
    failed = outputs[1].event
    assert isinstance(failed, StageFailed)
    assert failed.payload.product_type == ProductType.HOODIE
    assert failed.payload.error_class == "PermanentError"
    assert failed.payload.input_offset == 11
    # The replayable input asks only for what failed.
    assert failed.payload.input_event is not None
    assert failed.payload.input_event["payload"]["product_types"] == ["hoodie"]


async def test_image_is_uploaded_once_per_process(
    tmp_path: Path, client: PrintifyClient, printify_sim: SimulatorProcess
) -> None:
    handler = PrintifyHandler(client=client, catalog=DEFAULT_CATALOG)
    event = image_event(tmp_path, ["mug"], job_id="job-p3")
    before = sum(a["uploads"] for a in books(printify_sim)["accounts"].values())
    await handler(event, CTX)
    await handler(event, CTX)
    after = sum(a["uploads"] for a in books(printify_sim)["accounts"].values())
    assert after - before == 1
