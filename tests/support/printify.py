"""A Printify product to work on, made through the real client (against a simulator)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import httpx
from PIL import Image

from shared.adapters.vendors.printify import PrintifyClient, Product, build_product_payload

TITLE = "Moon Cat"
BLUEPRINT, PROVIDER = 6, 99  # the tee at Printify Choice


def png(width: int = 32, height: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, "PNG")
    return buf.getvalue()


async def create_product(
    client: PrintifyClient, shop: str, *, variant_count: int, price_cents: int, sku_prefix: str
) -> Product:
    """A tee titled :data:`TITLE` in ``shop``, with its first ``variant_count`` variants."""
    upload = await client.upload_image(file_name="x.png", contents=png())
    variants = (await client.list_variants(BLUEPRINT, PROVIDER))[:variant_count]
    return await client.create_product(
        shop,
        build_product_payload(
            title=TITLE,
            description="d",
            tags=["cat"],
            blueprint_id=BLUEPRINT,
            print_provider_id=PROVIDER,
            variants=variants,
            price_cents=price_cents,
            image_id=upload.id,
            sku_prefix=sku_prefix,
        ),
    )


def in_process(app: Any, token: str = "tok-test") -> PrintifyClient:
    """A client of a Printify simulator app served in process (no server spawned)."""
    return PrintifyClient(
        api_key=token, base_url="http://printify", transport=httpx.ASGITransport(app=app)
    )


@contextlib.contextmanager
def behaving(sim_url: str, **values: object) -> Iterator[None]:
    """The Printify simulator at ``sim_url`` choosing ``values`` among what Printify's reference
    leaves open (``/_sim/behaviour``), as it was again afterwards."""
    before = httpx.get(f"{sim_url}/_sim/behaviour", trust_env=False).json()
    httpx.post(f"{sim_url}/_sim/behaviour", json=values, trust_env=False).raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{sim_url}/_sim/behaviour", json=before, trust_env=False).raise_for_status()


async def reprice(
    client: PrintifyClient, shop: str, product: Product, prices: dict[int, int]
) -> Product:
    """Set some variants' ``prices``: the update names every variant, as Printify requires."""
    variants = [
        {"id": v.id, "price": prices.get(v.id, v.price), "is_enabled": v.is_enabled}
        for v in product.variants
    ]
    return await client.update_product(shop, product.id, {"variants": variants})
