"""The storefront's side of Printify's publish handshake, driven by Printify's webhooks.

For a custom-integration shop the engine is the sales channel. With
``PRINTIFY_WEBHOOKS_ENABLED``, the publisher only asks Printify to publish; Printify then calls
our ``product:publish:started`` webhook (the API checks its signature and puts it on
``printify.webhooks``), and this handler lists the product and answers ``publishing_succeeded``
or, when the storefront cannot sell it, ``publishing_failed`` with the reason. The publication
watcher then sees the listing (or the refusal) on the product and settles the job.

``product:deleted`` (the seller deleted the product in Printify) of a product the engine made and
this publisher holds or listed (found by its Printify id in ``channel_products``, never trusted
from the call alone) is reported as ``product.withdrawn`` on the printify channel (outcome
deleted, reason vendor); one we never made changes nothing and is logged.

Other topics (orders) are logged: the event on ``printify.webhooks`` is their record.
"""

from __future__ import annotations

import logging

from services.publisher.holdings import Holdings
from services.publisher.watch import PRODUCER
from shared.adapters.vendors.channels import (
    ChannelRegistry,
    PrintifyStorefront,
    ProductRef,
    listing_of,
)
from shared.adapters.vendors.printify import Product
from shared.adapters.vendors.printify_webhooks import PRODUCT_DELETED, PUBLISH_STARTED
from shared.contract.events import (
    PrintifyWebhookReceived,
    ProductWithdrawn,
    ProductWithdrawnPayload,
)
from shared.contract.topics import PUBLISHED
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
    """``printify.webhook`` -> the storefront's answer to Printify; ``product.withdrawn`` for a
    product of ours deleted in Printify."""

    def __init__(self, channels: ChannelRegistry, holdings: Holdings | None = None) -> None:
        self.channels = channels
        self.holdings = holdings

    async def __call__(self, event: PrintifyWebhookReceived, ctx: MessageContext) -> list[Output]:
        p = event.payload
        if p.topic == PRODUCT_DELETED and p.resource_type == "product" and self.holdings:
            return await self._deleted(event)
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

    async def _deleted(self, event: PrintifyWebhookReceived) -> list[Output]:
        """The seller deleted a product in Printify: our record of it follows, once."""
        assert self.holdings is not None
        p = event.payload
        found = [
            h
            for h in await self.holdings.by_product(p.resource_id)
            # The call names the shop: a product of ours is in the shop we made it in.
            if p.shop_id is None or h.shop_id == p.shop_id
        ]
        if not found:
            return await self._deleted_elsewhere(event)
        outs = []
        for h in found:
            if h.state == "deleted" and h.decision_id is not None:
                continue  # the seller's decision deleted it, and said so
            # Deleted by the vendor before: said again (a redelivery after a crash between the
            # row and the event must not lose the event; the monitor's fold is idempotent).
            await self.holdings.take_down(h, "deleted", None)
            payload = ProductWithdrawnPayload(
                image_index=h.image_index,
                product_type=h.product_type,
                product_id=h.product_id,
                shop_id=h.shop_id,
                generation=h.generation,
                channel=self.holdings.channel,
                outcome="deleted",
                reason="vendor",
                was_listed=h.state == "active",
            )
            # Derived from the webhook's event: Printify's redelivery of the same call (another
            # event) finds the row deleted and says nothing again.
            withdrawn = event.derive(
                ProductWithdrawn,
                payload,
                producer=PRODUCER,
                key=f"withdrawn:{h.job_id}:{h.image_index}:{h.product_type}",
            )
            withdrawn = withdrawn.model_copy(update={"job_id": h.job_id})
            outs.append(Output(PUBLISHED, withdrawn))
            logger.info(
                "product deleted in printify job_id=%s product_id=%s image_index=%d type=%s",
                h.job_id,
                h.product_id,
                h.image_index,
                h.product_type,
            )
        return outs

    async def _deleted_elsewhere(self, event: PrintifyWebhookReceived) -> list[Output]:
        """A product this channel neither held nor listed (its job sells elsewhere): reported
        when the engine made it (the printify stage's ledger says so), as nothing taken down
        here; otherwise not ours, and nothing changes."""
        assert self.holdings is not None
        p = event.payload
        made = await self.holdings.made(p.resource_id) if p.shop_id else []
        if made:
            # The ledger does not say the shop: the call's must be one of the account's.
            shops = {str(s.id) for s in await self.channels.client.list_shops()}
            made = made if p.shop_id in shops else []
        if not made or p.shop_id is None:
            logger.info(
                "product deleted webhook for a product not ours product_id=%s shop_id=%s",
                p.resource_id,
                p.shop_id,
            )
            return []
        outs = []
        for job_id, image_index, product_type, generation in made:
            payload = ProductWithdrawnPayload(
                image_index=image_index,
                product_type=product_type,
                product_id=p.resource_id,
                shop_id=p.shop_id,
                generation=generation,
                channel=self.holdings.channel,
                outcome="deleted",
                reason="vendor",
                was_listed=False,
            )
            withdrawn = event.derive(
                ProductWithdrawn,
                payload,
                producer=PRODUCER,
                key=f"withdrawn:{job_id}:{image_index}:{product_type}",
            )
            outs.append(Output(PUBLISHED, withdrawn.model_copy(update={"job_id": job_id})))
            logger.info(
                "product deleted in printify job_id=%s product_id=%s listed_here=false",
                job_id,
                p.resource_id,
            )
        return outs
