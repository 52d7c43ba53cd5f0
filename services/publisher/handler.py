"""The publisher stage: with autoPublish, a created product is published to the shop's sales
channel; without it the product stays a draft and nothing is emitted. It also answers Printify's
webhooks for the engine's own storefront (:mod:`services.publisher.storefront`).

The product's shop names its sales channel (:mod:`shared.vendors.channels`). Publishing is done
once per (job, image, type) through the ledger (:mod:`shared.ledger`); an attempt whose outcome
is unknown is reconciled with the channel first. A channel that lists at once (the engine's own
storefront) gives ``product.published``; one that confirms later (Etsy, Shopify, ...) gives
``product.publishing`` and the publication goes to the watcher (:mod:`services.publisher.watch`),
which emits ``product.published`` when the channel lists it, or a failure with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.publisher.publications import Publications
from services.publisher.settings import PublisherSettings
from services.publisher.storefront import StorefrontWebhooks
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
    PrintifyWebhookReceived,
    ProductCreated,
    ProductPublishing,
    ProductPublishingPayload,
)
from shared.ledger import Ledger, Result
from shared.runner import EventProducer, Handler, MessageContext, Output
from shared.service import closing
from shared.topics import PUBLISHED
from shared.vendors.channels import ChannelRegistry, ListingState, ProductRef, load_factory
from shared.vendors.printify import printify_client

logger = logging.getLogger(__name__)


class PublisherHandler:
    """ProductCreated -> ProductPublished, or ProductPublishing until the channel confirms
    (only with autoPublish)."""

    def __init__(
        self,
        *,
        channels: ChannelRegistry,
        ledger: Ledger,
        publications: Publications,
        confirm_timeout_s: float = 3600.0,
        first_check_s: float = 5.0,
    ) -> None:
        self.channels = channels
        self.webhooks = StorefrontWebhooks(channels)
        self.ledger = ledger
        self.publications = publications
        self.confirm_timeout_s = confirm_timeout_s
        self.first_check_s = first_check_s

    async def __call__(
        self, event: ProductCreated | PrintifyWebhookReceived, ctx: MessageContext
    ) -> list[Output]:
        if isinstance(event, PrintifyWebhookReceived):
            return await self.webhooks(event, ctx)
        p = event.payload
        if not p.auto_publish:
            logger.info("product left as draft job_id=%s product_id=%s", event.job_id, p.product_id)
            return []
        # The product's own shop decides the channel (and so who confirms), not whether the
        # account has a custom shop somewhere.
        channel = await self.channels.for_shop(p.shop_id)
        ref = ProductRef(p.shop_id, p.product_id, p.title)

        async def do() -> Result:
            return _recorded(await channel.publish(ref))

        async def reconcile() -> Result | None:
            state = await channel.reconcile(ref)
            if state is not None and state.pending:
                logger.warning(
                    "publish requested but unconfirmed job_id=%s product_id=%s",
                    event.job_id,
                    p.product_id,
                )
            return None if state is None else _recorded(state)

        published = await self.ledger.once(publish_key(event), do, reconcile)
        out: Event
        if published.get("pending"):
            out = await self._await_channel(event, ctx, channel.name)
        else:
            out = _published(event, published)
        logger.info(
            "product %s job_id=%s product_id=%s channel=%s offset=%d",
            "publishing" if isinstance(out, ProductPublishing) else "published",
            event.job_id,
            p.product_id,
            channel.name,
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


def _recorded(state: ListingState) -> Result:
    """What the ledger keeps of a publish call: the listing, or that it is pending."""
    if state.listing is not None:
        return {"external_id": state.listing.external_id, "handle": state.listing.handle}
    return {"external_id": None, "handle": None, "pending": True}


def _published(event: ProductCreated, result: Result) -> Event:
    external_id = result.get("external_id")
    handle = result.get("handle")
    return published_event(
        event,
        external_id=None if external_id is None else str(external_id),
        handle=None if handle is None else str(handle),
    )


@asynccontextmanager
async def build_handler(
    settings: PublisherSettings,
) -> AsyncIterator[Handler[ProductCreated | PrintifyWebhookReceived]]:
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
        channels = ChannelRegistry(
            client,
            settings.storefront_base_url,
            storefront_on_webhook=settings.printify_webhooks_enabled,
        )
        for name, path in settings.sales_channel_adapters.items():
            channels.register(name, load_factory(path))
        ledger = Ledger(pool)
        publications = Publications(pool)
        watcher = PublicationWatcher(
            publications=publications,
            channels=channels,
            ledger=ledger,
            emit=emit,
            check_min_s=settings.publish_check_min_s,
            check_max_s=settings.publish_check_max_s,
        )
        async with closing(client), watching(watcher):
            yield PublisherHandler(
                channels=channels,
                ledger=ledger,
                publications=publications,
                confirm_timeout_s=settings.publish_confirm_timeout_s,
                first_check_s=settings.publish_check_min_s,
            )
    finally:
        await asyncio.to_thread(producer.close, 10.0)
        await pool.close()
