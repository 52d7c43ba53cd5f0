"""Helpers of the publisher tests: a product to publish and the simulator's books."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from services.publisher.handler import ShopPublisher
from services.publisher.publications import Publications
from shared.adapters.vendors.channels import ChannelRegistry
from shared.adapters.vendors.printify import PrintifyClient
from shared.contract.events import JobRouting, PriceSummary, ProductCreated, ProductCreatedPayload
from shared.domain.ledger import Ledger
from shared.pipeline.runner import MessageContext
from simulators.process import SimulatorProcess
from tests.support.printify import BLUEPRINT, PROVIDER, TITLE, create_product

CTX = MessageContext("products.created", 0, 3, 0, "test")
TOKEN = "tok-publisher"


def channels_of(client: PrintifyClient) -> ChannelRegistry:
    return ChannelRegistry(client, "https://shop.test/p")


def publisher(client: PrintifyClient, ledger: Ledger, **kwargs: Any) -> ShopPublisher:
    kwargs.setdefault("publications", Publications(ledger.pool))
    return ShopPublisher(channels=channels_of(client), ledger=ledger, **kwargs)


async def make_product(
    client: PrintifyClient, auto_publish: bool, channel: str = "custom_integration"
) -> ProductCreated:
    shops = await client.list_shops()
    shop = next(str(s.id) for s in shops if s.sales_channel == channel)
    product = await create_product(
        client, shop, variant_count=3, price_cents=1999, sku_prefix="pod-test"
    )
    return ProductCreated(
        # A fresh job per product: the publish is recorded per (job, image, type).
        job_id=f"job-pub-{uuid.uuid4().hex[:10]}",
        producer="printify",
        payload=ProductCreatedPayload(
            image_index=0,
            product_type="tshirt",
            product_id=product.id,
            shop_id=shop,
            blueprint_id=BLUEPRINT,
            print_provider_id=PROVIDER,
            variant_count=3,
            title=TITLE,
            routing=JobRouting(product_types=["tshirt"], auto_publish=auto_publish),
            prices=PriceSummary(price_min_cents=1999),
        ),
    )


def publish_calls(sim: SimulatorProcess, product_id: str, counter: str = "publish_calls") -> int:
    accounts = httpx.get(f"{sim.url}/_sim/books", timeout=5).json()["accounts"]
    return sum(a[counter].get(product_id, 0) for a in accounts.values())


def confirmations(sim: SimulatorProcess, product_id: str) -> int:
    return publish_calls(sim, product_id, "publishing_succeeded")
