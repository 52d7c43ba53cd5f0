"""The publisher stage: with autoPublish, a created product is published to the shop's sales
channel; without it the product stays a draft and nothing is emitted.

Publishing is done once per (job, image, type) through the ledger (:mod:`shared.ledger`):

- a shop connected through the API (custom integration) has us as its channel: ``publish``,
  then ``publishing_succeeded``, and the product is published at once;
- any other channel (Etsy, Shopify, ...) lists the product itself, minutes later or never:
  ``publish``, then ``product.publishing`` and the publication goes to the watcher
  (:mod:`services.publisher.watch`), which emits ``product.published`` when the channel
  confirms it, or a failure with the reason.

An attempt whose outcome is unknown is reconciled from the product itself: ``external`` set
means published and confirmed; ``is_locked`` means publish was requested but not confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.publisher.publications import Publications
from services.publisher.settings import PublisherSettings
from services.publisher.watch import (
    PRODUCER,
    PublicationWatcher,
    publish_key,
    published_event,
    watching,
)
from shared.db import migrate, open_pool
from shared.events import (
    Event,
    ProductCreated,
    ProductPublishing,
    ProductPublishingPayload,
)
from shared.ledger import Ledger, Result
from shared.producer import EventProducer
from shared.runner import Handler, MessageContext, Output
from shared.service import closing
from shared.topics import PUBLISHED
from shared.vendors.printify import PrintifyClient, printify_client

logger = logging.getLogger(__name__)
CUSTOM_INTEGRATION = "custom_integration"


def handle_for(title: str, product_id: str) -> str:
    """A URL slug for the storefront: the title's words plus the product id (unique)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return f"{slug}-{product_id[-8:]}" if slug else product_id


class PublisherHandler:
    """ProductCreated -> ProductPublished, or ProductPublishing until the channel confirms
    (only with autoPublish)."""

    def __init__(
        self,
        *,
        client: PrintifyClient,
        ledger: Ledger,
        publications: Publications,
        storefront_base_url: str,
        confirm_timeout_s: float = 3600.0,
        first_check_s: float = 5.0,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.publications = publications
        self.storefront_base_url = storefront_base_url.rstrip("/")
        self.confirm_timeout_s = confirm_timeout_s
        self.first_check_s = first_check_s
        self._channels: dict[str, str] = {}  # shop id -> sales channel

    async def sales_channel(self, shop_id: str) -> str:
        """The sales channel of one of the account's shops (the list is read again when a
        shop is new to us)."""
        if shop_id not in self._channels:
            shops = await self.client.list_shops()
            self._channels = {str(s.get("id")): str(s.get("sales_channel")) for s in shops}
        return self._channels.get(shop_id) or "unknown"

    async def __call__(self, event: ProductCreated, ctx: MessageContext) -> list[Output]:
        p = event.payload
        if not p.auto_publish:
            logger.info("product left as draft job_id=%s product_id=%s", event.job_id, p.product_id)
            return []
        # The product's own shop decides who confirms, not whether the account has a custom
        # shop somewhere.
        channel = await self.sales_channel(p.shop_id)
        custom = channel == CUSTOM_INTEGRATION
        handle = handle_for(p.title, p.product_id) if custom else None

        async def confirm() -> Result:
            # We are a custom-integration shop's channel: we confirm it. Other channels
            # confirm themselves once Printify pushed the product to them.
            if handle is None:
                return {"external_id": None, "handle": None, "pending": True}
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
                return {"external_id": str(external["id"]), "handle": external.get("handle")}
            if product.get("is_locked"):
                logger.warning(
                    "publish requested but unconfirmed job_id=%s product_id=%s",
                    event.job_id,
                    p.product_id,
                )
                return await confirm()
            return None

        published = await self.ledger.once(publish_key(event), do, reconcile)
        out: Event
        if published.get("pending"):
            out = await self._await_channel(event, ctx, channel)
        else:
            out = _published(event, published)
        logger.info(
            "product %s job_id=%s product_id=%s channel=%s offset=%d",
            "publishing" if isinstance(out, ProductPublishing) else "published",
            event.job_id,
            p.product_id,
            channel,
            ctx.offset,
        )
        return [Output(PUBLISHED, out)]

    async def _await_channel(
        self, event: ProductCreated, ctx: MessageContext, channel: str
    ) -> Event:
        """Hand the publication to the watcher; ``product.published`` when a redelivery finds
        it confirmed already, else ``product.publishing``."""
        pub = await self.publications.watch(
            event,
            ctx,
            sales_channel=channel,
            timeout_s=self.confirm_timeout_s,
            first_check_s=self.first_check_s,
        )
        if pub.state == "published":
            return published_event(event, external_id=pub.external_id, handle=pub.handle)
        p = event.payload
        payload = ProductPublishingPayload(
            image_index=p.image_index,
            product_type=p.product_type,
            product_id=p.product_id,
            shop_id=p.shop_id,
            sales_channel=channel,
            confirm_by=pub.confirm_by,
        )
        return event.derive(ProductPublishing, payload, producer=PRODUCER, key="publishing")


def _published(event: ProductCreated, result: Result) -> Event:
    external_id = result.get("external_id")
    handle = result.get("handle")
    return published_event(
        event,
        external_id=None if external_id is None else str(external_id),
        handle=None if handle is None else str(handle),
    )


@asynccontextmanager
async def build_handler(settings: PublisherSettings) -> AsyncIterator[Handler[ProductCreated]]:
    """The handler wired to the real Printify client and the ledger, with the publication
    watcher running beside it."""
    # Idempotent and lock-serialised: a stage started on its own still finds its table.
    await asyncio.to_thread(migrate, settings.url)
    # Unchecked: a round trip saved on every use; a broken connection is retried.
    pool = await open_pool(
        settings.url, max_size=settings.db_pool_max, name="publisher", check=False
    )
    producer = EventProducer(settings, client_id=f"{settings.instance_id or 'publisher'}-watch")

    async def emit(topic: str, event: Event) -> None:
        await producer.send(topic, event.to_json(), key=event.job_id, timeout=30.0)

    try:
        client = printify_client(settings, pool)
        ledger = Ledger(pool)
        publications = Publications(pool)
        watcher = PublicationWatcher(
            publications=publications,
            client=client,
            ledger=ledger,
            emit=emit,
            check_min_s=settings.publish_check_min_s,
            check_max_s=settings.publish_check_max_s,
        )
        async with closing(client), watching(watcher):
            yield PublisherHandler(
                client=client,
                ledger=ledger,
                publications=publications,
                storefront_base_url=settings.storefront_base_url,
                confirm_timeout_s=settings.publish_confirm_timeout_s,
                first_check_s=settings.publish_check_min_s,
            )
    finally:
        await asyncio.to_thread(producer.close, 10.0)
        await pool.close()
