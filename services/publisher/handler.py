"""The publisher stage: with autoPublish, a created product is published to the shop's sales
channel; without it the product stays a draft and nothing is emitted.

Publishing is a handshake (``publish``, then ``publishing_succeeded`` when we are the channel)
done once per (job, image, type) through the ledger (:mod:`shared.ledger`). An attempt whose
outcome is unknown is reconciled from the product itself: ``external`` set means published and
confirmed; ``is_locked`` means publish was requested but not confirmed, so only the
confirmation is sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.publisher.settings import PublisherSettings
from shared.db import migrate, open_pool
from shared.events import ProductCreated, ProductPublished, ProductPublishedPayload
from shared.ledger import EffectKey, Ledger, Result
from shared.runner import Handler, MessageContext, Output
from shared.service import closing
from shared.topics import PUBLISHED
from shared.vendors.printify import PrintifyClient, printify_client

logger = logging.getLogger(__name__)

PRODUCER = "publisher"


def handle_for(title: str, product_id: str) -> str:
    """A URL slug for the storefront: the title's words plus the product id (unique)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return f"{slug}-{product_id[-8:]}" if slug else product_id


class PublisherHandler:
    """ProductCreated -> ProductPublished (only with autoPublish)."""

    def __init__(
        self,
        *,
        client: PrintifyClient,
        ledger: Ledger,
        storefront_base_url: str,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.storefront_base_url = storefront_base_url.rstrip("/")
        self._channels: dict[str, str] = {}  # shop id -> sales channel

    async def sales_channel(self, shop_id: str) -> str | None:
        """The sales channel of one of the account's shops (the list is read again when a
        shop is new to us)."""
        if shop_id not in self._channels:
            shops = await self.client.list_shops()
            self._channels = {str(s.get("id")): str(s.get("sales_channel")) for s in shops}
        return self._channels.get(shop_id)

    async def __call__(self, event: ProductCreated, ctx: MessageContext) -> list[Output]:
        p = event.payload
        if not p.auto_publish:
            logger.info("product left as draft job_id=%s product_id=%s", event.job_id, p.product_id)
            return []
        # Only a shop connected through the API (custom integration) is confirmed by us; the
        # product's own shop decides, not whether the account has such a shop somewhere.
        custom = await self.sales_channel(p.shop_id) == "custom_integration"
        handle = handle_for(p.title, p.product_id) if custom else None

        async def confirm() -> Result:
            # Only a custom-integration shop (the one with a handle) is confirmed by us; other
            # channels confirm themselves once Printify pushed the product to them.
            if handle is None:
                return {"external_id": None, "handle": None}
            await self.client.publishing_succeeded(
                p.shop_id,
                p.product_id,
                external_id=p.product_id,
                handle=f"{self.storefront_base_url}/{handle}",
            )
            return {"external_id": p.product_id, "handle": handle}

        async def do() -> Result:
            await self.client.publish(p.shop_id, p.product_id)
            return await confirm()

        async def reconcile() -> Result | None:
            product = await self.client.get_product(p.shop_id, p.product_id)
            external = product.get("external")
            if isinstance(external, dict) and external.get("id"):
                return {"external_id": str(external["id"]), "handle": handle}
            if product.get("is_locked"):
                logger.warning(
                    "publish requested but unconfirmed job_id=%s product_id=%s",
                    event.job_id,
                    p.product_id,
                )
                return await confirm()
            return None

        key = EffectKey(event.job_id, p.image_index, p.product_type.value, "publish")
        published = await self.ledger.once(key, do, reconcile)
        external_id = published.get("external_id")
        recorded_handle = published.get("handle")
        payload = ProductPublishedPayload(
            image_index=p.image_index,
            product_type=p.product_type,
            product_id=p.product_id,
            shop_id=p.shop_id,
            external_id=None if external_id is None else str(external_id),
            handle=None if recorded_handle is None else str(recorded_handle),
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
    """The handler wired to the real Printify client and the ledger."""
    # Idempotent and lock-serialised: a stage started on its own still finds its table.
    await asyncio.to_thread(migrate, settings.url)
    # Unchecked: a round trip saved on every use; a broken connection is retried.
    pool = await open_pool(
        settings.url, max_size=settings.db_pool_max, name="publisher", check=False
    )
    try:
        client = printify_client(settings, pool)
        async with closing(client):
            yield PublisherHandler(
                client=client,
                ledger=Ledger(pool),
                storefront_base_url=settings.storefront_base_url,
            )
    finally:
        await pool.close()
