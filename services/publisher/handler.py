"""The publisher stage: with autoPublish, a created product is published to each sales channel
of its job, one process group per channel (``CHANNEL``); without autoPublish it stays a draft
and nothing is emitted. The printify publisher also answers Printify's webhooks for the
engine's own storefront (:mod:`services.publisher.storefront`).

A channel listed directly (shopify, etsy: :mod:`shared.vendors.direct`) lists the product at
once, through the ledger, or fails. For the printify channel, the product's shop names its sales
channel (:mod:`shared.vendors.channels`). Publishing is done
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
    PublicationRefused,
    PublicationWatcher,
    publish_key,
    published_event,
    watching,
)
from shared.db import migrate, open_pool
from shared.errors import RetryableError
from shared.events import (
    Event,
    PrintifyWebhookReceived,
    ProductCreated,
    ProductPublishing,
    ProductPublishingPayload,
    channels_of,
)
from shared.ledger import Ledger, Result
from shared.runner import EventProducer, Handler, MessageContext, Output
from shared.service import closing
from shared.topics import DEFAULT_CHANNEL, PUBLISHED
from shared.vendors.channels import (
    ChannelRegistry,
    ListingState,
    ProductRef,
    SalesChannel,
    load_factory,
)
from shared.vendors.direct import direct_channel
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
        channel: str = DEFAULT_CHANNEL,
        direct: SalesChannel | None = None,
    ) -> None:
        """``channel`` is the engine's channel this publisher serves: ``printify`` publishes
        through the product's shop (``channels``); any other lists directly through
        ``direct``, which must answer listed or fail (there is no watcher for it)."""
        self.channels = channels
        self.channel = channel
        self.direct = direct
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
        if not p.routing.auto_publish:
            logger.info("product left as draft job_id=%s product_id=%s", event.job_id, p.product_id)
            return []
        if self.channel not in channels_of(p.routing.channels):
            return []  # the job does not sell on this channel
        if self.direct is not None:
            return [Output(PUBLISHED, await self._publish_direct(event, self.direct))]
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

    async def _publish_direct(self, event: ProductCreated, channel: SalesChannel) -> Event:
        """List the product on a channel of our own, once (the ledger), and say where."""
        p = event.payload
        ref = ProductRef(p.shop_id, p.product_id, p.title)

        async def listed(state: ListingState | None) -> Result | None:
            if state is None:
                return None
            if state.refused is not None:
                raise PublicationRefused(state.refused, vendor=channel.name)
            if state.listing is None:
                # Not listed yet: the runner tries again later, and reconcile finds it.
                raise RetryableError(f"{channel.name} has not listed it yet", vendor=channel.name)
            return _recorded(state)

        async def do() -> Result:
            result = await listed(await channel.publish(ref))
            assert result is not None
            return result

        async def reconcile() -> Result | None:
            return await listed(await channel.reconcile(ref))

        done = await self.ledger.once(publish_key(event, self.channel), do, reconcile)
        logger.info(
            "product published job_id=%s product_id=%s channel=%s listing=%s",
            event.job_id,
            p.product_id,
            self.channel,
            done.get("external_id"),
        )
        return _published(event, done, self.channel)

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


def _published(event: ProductCreated, result: Result, channel: str = DEFAULT_CHANNEL) -> Event:
    external_id = result.get("external_id")
    handle = result.get("handle")
    return published_event(
        event,
        external_id=None if external_id is None else str(external_id),
        handle=None if handle is None else str(handle),
        channel=channel,
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
        direct = (
            None
            if settings.channel == DEFAULT_CHANNEL
            else direct_channel(settings.channel, client, pool)
        )
        watcher = PublicationWatcher(
            publications=publications,
            channels=channels,
            ledger=ledger,
            emit=emit,
            check_min_s=settings.publish_check_min_s,
            check_max_s=settings.publish_check_max_s,
        )
        # The direct channel (Shopify, Etsy) has its own client to close.
        async with closing(client, *filter(None, [direct])):
            handler = PublisherHandler(
                channels=channels,
                ledger=ledger,
                publications=publications,
                confirm_timeout_s=settings.publish_confirm_timeout_s,
                first_check_s=settings.publish_check_min_s,
                channel=settings.channel,
                direct=direct,
            )
            if direct is not None:
                yield handler  # lists at once: no publication to watch
            else:
                async with watching(watcher):
                    yield handler
    finally:
        await asyncio.to_thread(producer.close, 10.0)
        await pool.close()
