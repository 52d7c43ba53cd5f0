"""The storefront's side of Printify's publish handshake, driven by Printify's webhooks.

For a custom-integration shop the engine is the sales channel. With
``PRINTIFY_WEBHOOKS_ENABLED``, the publisher only asks Printify to publish; Printify then calls
our ``product:publish:started`` webhook (the API checks its signature and puts it on
``printify.webhooks``), and this handler lists the product and answers ``publishing_succeeded``
or, when the storefront cannot sell it, ``publishing_failed`` with the reason. The publication
watcher then sees the listing (or the refusal) on the product and settles the job.

Other topics (orders, deletions) are logged: the event on ``printify.webhooks`` is their record.
"""

from __future__ import annotations

import logging

from shared.adapters.vendors.channels import (
    ChannelRegistry,
    PrintifyStorefront,
    ProductRef,
    listing_of,
)
from shared.adapters.vendors.printify import Product
from shared.adapters.vendors.printify_webhooks import PUBLISH_STARTED
from shared.contract.events import PrintifyWebhookReceived
from shared.pipeline.runner import MessageContext, Output
from shared.platform.errors import PermanentError

logger = logging.getLogger(__name__)


def storefront_refusal(product: Product) -> str | None:
    """Why the storefront cannot sell a product, or None: it needs a title, an enabled variant
    with a price, and an image to show."""
    if not (product.title or "").strip():
        return "the product has no title"
    variants = [v for v in product.variants if v.is_enabled]
    if not variants:
        return "the product has no enabled variant"
    if not all(v.price is not None and v.price > 0 for v in variants):
        return "an enabled variant has no price"
    if not product.images:
        return "the product has no images to show"
    return None


class StorefrontWebhooks:
    """``printify.webhook`` -> the storefront's answer to Printify; no events out."""

    def __init__(self, channels: ChannelRegistry) -> None:
        self.channels = channels

    async def __call__(self, event: PrintifyWebhookReceived, ctx: MessageContext) -> list[Output]:
        p = event.payload
        if p.topic != PUBLISH_STARTED or p.resource_type != "product":
            logger.info(
                "printify webhook topic=%s resource=%s:%s shop_id=%s offset=%d",
                p.topic,
                p.resource_type,
                p.resource_id,
                p.shop_id,
                ctx.offset,
            )
            return []
        if p.data.get("action", "create") != "create" or p.shop_id is None:
            logger.info(
                "printify publish webhook ignored action=%s product_id=%s",
                p.data.get("action"),
                p.resource_id,
            )
            return []
        channel = await self.channels.for_shop(p.shop_id)
        if not isinstance(channel, PrintifyStorefront):
            # Printify itself publishes to Etsy, Shopify, ...: nothing for us to answer.
            logger.info(
                "publish webhook for a shop sold through %s shop_id=%s product_id=%s",
                channel.name,
                p.shop_id,
                p.resource_id,
            )
            return []
        try:
            product = await channel.client.get_product(p.shop_id, p.resource_id)
        except PermanentError as exc:
            if exc.status == 404:
                logger.warning("publish webhook for a product gone product_id=%s", p.resource_id)
                return []
            raise
        if listing_of(product) is not None or not product.is_locked:
            # Answered before (listed, or refused: Printify unlocks the product either way), a
            # redelivered call: Printify is told once.
            logger.info("publish webhook answered before product_id=%s", p.resource_id)
            return []
        ref = ProductRef(p.shop_id, p.resource_id, product.title or "")
        reason = storefront_refusal(product)
        if reason is None:
            await channel.list_product(ref)
        else:
            await channel.refuse(ref, reason)
        logger.info(
            "storefront answered publish product_id=%s listed=%s reason=%s",
            p.resource_id,
            reason is None,
            reason or "-",
        )
        return []
