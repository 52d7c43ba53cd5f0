"""Helpers of the publisher tests: a product to publish, the simulators' books, the seller's
decisions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.publisher.handler import ShopPublisher
from services.publisher.publications import Publications
from shared.adapters.credentials import StaticToken
from shared.adapters.vendors.channels import ChannelRegistry
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify import ShopifyClient
from shared.contract.events import (
    DecisionAction,
    JobRouting,
    PriceSummary,
    ProductApproved,
    ProductApprovedPayload,
    ProductCreated,
    ProductCreatedPayload,
    SellerDecision,
    SellerDecisionPayload,
)
from shared.domain.ledger import Ledger
from shared.pipeline.runner import MessageContext
from simulators.common import Knobs
from simulators.process import SimulatorProcess
from simulators.shopify import create_app as shopify_app
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


SHOP = "decisions-test.myshopify.com"


async def until(check: Callable[[], Awaitable[object]], *, timeout: float, what: str) -> None:
    """Wait until ``check()`` gives something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class Store:
    """The Shopify simulator in process, and the channel listing on it."""

    def __init__(self, latency_ms: float = 0.0) -> None:
        app = shopify_app(Knobs(latency_ms=latency_ms))
        self.books_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{SHOP}"
        )
        self.client = ShopifyClient(
            shop_domain=SHOP,
            token=StaticToken("shpat_decisions"),
            base_url=f"http://{SHOP}",
            transport=httpx.ASGITransport(app=app),
        )

    async def products(self) -> list[dict[str, Any]]:
        shops = (await self.books_client.get("/_sim/books")).json()["shops"]
        return list(shops.get(SHOP, {}).get("products", []))

    async def book(self) -> dict[str, Any]:
        return dict((await self.books_client.get("/_sim/books")).json()["shops"].get(SHOP, {}))

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.books_client.aclose()


async def product_of(client: PrintifyClient, *, review: bool) -> ProductCreated:
    event = await make_product(client, auto_publish=True)
    routing = event.payload.routing.model_copy(
        update={"channels": ["printify", "shopify"], "review": review}
    )
    return event.model_copy(
        update={"payload": event.payload.model_copy(update={"routing": routing})}
    )


def approved(event: ProductCreated) -> ProductApproved:
    payload = ProductApprovedPayload(
        **event.payload.model_dump(), decision_id=uuid.uuid4(), decided_by="seller@test"
    )
    return ProductApproved(job_id=event.job_id, producer="printify", payload=payload)


def decision(job_id: str, action: DecisionAction, **fields: Any) -> SellerDecision:
    payload = SellerDecisionPayload(
        decision_id=uuid.uuid4(), action=action, decided_by="seller@test", **fields
    )
    return SellerDecision(job_id=job_id, producer="api", payload=payload)
