"""The publisher stage: with autoPublish, a created product is published to the shop's sales
channel; without it the product stays a draft and nothing is emitted."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.publisher.settings import PublisherSettings
from shared.events import ProductCreated, ProductPublished, ProductPublishedPayload
from shared.runner import Handler, MessageContext, Output
from shared.service import closing
from shared.topics import PUBLISHED
from shared.vendors.printify import PrintifyClient

logger = logging.getLogger(__name__)

PRODUCER = "publisher"


def handle_for(title: str, product_id: str) -> str:
    """A URL slug for the storefront: the title's words plus the product id (unique)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return f"{slug}-{product_id[-8:]}" if slug else product_id


class PublisherHandler:
    """ProductCreated -> ProductPublished (only with autoPublish)."""

    def __init__(
        self, *, client: PrintifyClient, custom_channel: bool, storefront_base_url: str
    ) -> None:
        self.client = client
        self.custom_channel = custom_channel
        self.storefront_base_url = storefront_base_url.rstrip("/")

    async def __call__(self, event: ProductCreated, ctx: MessageContext) -> list[Output]:
        p = event.payload
        if not p.auto_publish:
            logger.info("product left as draft job_id=%s product_id=%s", event.job_id, p.product_id)
            return []
        await self.client.publish(p.shop_id, p.product_id)
        external_id = handle = None
        if self.custom_channel:
            handle = handle_for(p.title, p.product_id)
            external_id = p.product_id
            await self.client.publishing_succeeded(
                p.shop_id,
                p.product_id,
                external_id=external_id,
                handle=f"{self.storefront_base_url}/{handle}",
            )
        payload = ProductPublishedPayload(
            image_index=p.image_index,
            product_type=p.product_type,
            product_id=p.product_id,
            shop_id=p.shop_id,
            external_id=external_id,
            handle=handle,
        )
        logger.info(
            "product published job_id=%s product_id=%s offset=%d",
            event.job_id,
            p.product_id,
            ctx.offset,
        )
        return [
            Output(
                PUBLISHED,
                event.derive(ProductPublished, payload, producer=PRODUCER, key="published"),
            )
        ]


@asynccontextmanager
async def build_handler(settings: PublisherSettings) -> AsyncIterator[Handler[ProductCreated]]:
    """The handler wired to the real Printify client; learns whether the shop is custom."""
    client = PrintifyClient(
        api_key=settings.printify_api_key.get_secret_value(),
        base_url=settings.printify_api_url,
        timeout_s=settings.printify_timeout_s,
        requests_per_minute=settings.printify_requests_per_minute,
        publishes_per_window=settings.printify_publishes_per_window,
        publish_window_s=settings.printify_publish_window_s,
    )
    async with closing(client):
        shops = await client.list_shops()
        custom = any(s.get("sales_channel") == "custom_integration" for s in shops)
        yield PublisherHandler(
            client=client, custom_channel=custom, storefront_base_url=settings.storefront_base_url
        )
