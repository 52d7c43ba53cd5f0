"""The publisher stage: with autoPublish, a created product is published to each sales channel
of its job, one process group per channel (``CHANNEL``); without autoPublish it stays a draft
and nothing is emitted.

Each channel's process runs one of three handlers, chosen in :func:`build_handler`:

- :class:`ShopPublisher` (the printify channel): the product's shop names its sales channel
  (:mod:`shared.adapters.vendors.channels`). A channel that lists at once (the engine's own
  storefront) gives ``product.published``; one that confirms later (Etsy, Shopify, ...) gives
  ``product.publishing`` and the publication goes to the watcher
  (:mod:`services.publisher.watch`), which emits ``product.published`` when the channel lists
  it, or a failure with the reason.
- :class:`DirectPublisher` (shopify, etsy: :mod:`shared.adapters.vendors.direct`): lists the product
  at once, or fails; there is no watcher.
- :class:`~services.publisher.storefront.StorefrontWebhooks`: Printify's webhooks for the
  engine's own storefront, which come to the printify channel's process beside its products
  (:class:`ByEventType` routes the two).

Publishing is done once per (job, image, type, channel) through the ledger
(:mod:`shared.domain.ledger`); an attempt whose outcome is unknown is reconciled with the channel
first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

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
from shared.adapters.vendors.channels import (
    ChannelRegistry,
    ListingState,
    ProductRef,
    SalesChannel,
    load_factory,
)
from shared.adapters.vendors.direct import direct_channel
from shared.adapters.vendors.printify import PrintifyClient, printify_client
from shared.contract.events import (
    Event,
    PrintifyWebhookReceived,
    ProductCreated,
    ProductPublishing,
    ProductPublishingPayload,
    channels_of,
)
from shared.contract.topics import DEFAULT_CHANNEL, PUBLISHED
from shared.domain.ledger import Ledger
from shared.pipeline.runner import EventProducer, Handler, MessageContext, Output
from shared.pipeline.service import closing
from shared.platform.db import migrate, open_pool
from shared.platform.errors import RetryableError

logger = logging.getLogger(__name__)


def sells_here(event: ProductCreated, channel: str) -> bool:
    """Whether ``channel``'s publisher publishes ``event``'s product: only with autoPublish
    (else it stays a draft), and only when the job sells on that channel."""
    p = event.payload
    if not p.routing.auto_publish:
        logger.info("product left as draft job_id=%s product_id=%s", event.job_id, p.product_id)
        return False
    return channel in channels_of(p.routing.channels)


def product_ref(event: ProductCreated) -> ProductRef:
    p = event.payload
    return ProductRef(p.shop_id, p.product_id, p.title)


class ShopPublisher:
    """The printify channel: ProductCreated -> ProductPublished, or ProductPublishing until
    the channel of the product's shop confirms (only with autoPublish)."""

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
        self.ledger = ledger
        self.publications = publications
        self.confirm_timeout_s = confirm_timeout_s
        self.first_check_s = first_check_s

    async def __call__(self, event: ProductCreated, ctx: MessageContext) -> list[Output]:
        if not sells_here(event, DEFAULT_CHANNEL):
            return []
        # The product's own shop decides the channel (and so who confirms), not whether the
        # account has a custom shop somewhere.
        channel = await self.channels.for_shop(event.payload.shop_id)
        ref = product_ref(event)

        async def do() -> Publication:
            return _recorded(await channel.publish(ref))

        async def reconcile() -> Publication | None:
            state = await channel.reconcile(ref)
            if state is not None and state.pending:
                logger.warning(
                    "publish requested but unconfirmed job_id=%s product_id=%s",
                    event.job_id,
                    ref.product_id,
                )
            return None if state is None else _recorded(state)

        published = await self.ledger.once(publish_key(event), do, reconcile, model=Publication)
        out: Event
        if published.pending:
            out = await self._await_channel(event, ctx, channel.name)
        else:
            out = _published(event, published)
        logger.info(
            "product %s job_id=%s product_id=%s channel=%s offset=%d",
            "publishing" if isinstance(out, ProductPublishing) else "published",
            event.job_id,
            ref.product_id,
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


class DirectPublisher:
    """A channel listed directly (Shopify, Etsy): ProductCreated -> ProductPublished once the
    channel lists it, or a failure; the channel must answer listed or fail (there is no
    watcher for it)."""

    def __init__(self, *, name: str, channel: SalesChannel, ledger: Ledger) -> None:
        """``name``: the engine's channel this publisher serves (its consumer group)."""
        self.name = name
        self.channel = channel
        self.ledger = ledger

    async def __call__(self, event: ProductCreated, ctx: MessageContext) -> list[Output]:
        if not sells_here(event, self.name):
            return []
        ref = product_ref(event)

        async def do() -> Publication:
            result = self._listed(await self.channel.publish(ref))
            assert result is not None
            return result

        async def reconcile() -> Publication | None:
            return self._listed(await self.channel.reconcile(ref))

        done = await self.ledger.once(
            publish_key(event, self.name), do, reconcile, model=Publication
        )
        logger.info(
            "product published job_id=%s product_id=%s channel=%s listing=%s",
            event.job_id,
            ref.product_id,
            self.name,
            done.external_id,
        )
        return [Output(PUBLISHED, _published(event, done, self.name))]

    def _listed(self, state: ListingState | None) -> Publication | None:
        """What the ledger keeps of a listing; raises when the channel refused it or has not
        listed it yet (the runner tries again later, and reconcile finds it)."""
        if state is None:
            return None
        vendor = self.channel.name
        if state.refused is not None:
            raise PublicationRefused(state.refused, vendor=vendor)
        if state.listing is None:
            raise RetryableError(f"{vendor} has not listed it yet", vendor=vendor)
        return _recorded(state)


class ByEventType:
    """One handler for a process that reads several event types: each type to its own
    handler (the printify channel's products and Printify's webhooks)."""

    def __init__(self, routes: Mapping[type[Event], Handler[Any]]) -> None:
        self.routes = dict(routes)

    async def __call__(self, event: Event, ctx: MessageContext) -> list[Output]:
        handler = self.routes.get(type(event))
        if handler is None:  # the runner's allow-list is the same table: a wiring error
            raise TypeError(f"no handler for {event.type} (have: {self.accepts()})")
        return list(await handler(event, ctx))

    def accepts(self) -> tuple[type[Event], ...]:
        return tuple(self.routes)


def accepts(channel: str) -> tuple[type[Event], ...]:
    """What ``channel``'s publisher reads (the runner's allow-list): Printify's webhooks come
    to the printify channel's alone (its storefront's handshake), routed as
    :func:`printify_publisher` does."""
    if channel == DEFAULT_CHANNEL:
        return (ProductCreated, PrintifyWebhookReceived)
    return (ProductCreated,)


def printify_publisher(
    *,
    channels: ChannelRegistry,
    ledger: Ledger,
    publications: Publications,
    confirm_timeout_s: float = 3600.0,
    first_check_s: float = 5.0,
) -> ByEventType:
    """The printify channel's handler: its products through their shops, and the storefront's
    side of Printify's publish webhooks."""
    shop = ShopPublisher(
        channels=channels,
        ledger=ledger,
        publications=publications,
        confirm_timeout_s=confirm_timeout_s,
        first_check_s=first_check_s,
    )
    webhooks = StorefrontWebhooks(channels)
    return ByEventType({ProductCreated: shop, PrintifyWebhookReceived: webhooks})


class Publication(BaseModel):
    """What the ledger keeps of a publish call: the listing, or that it is pending (the JSON
    layout rows recorded before this model have; an id some channel gave as a number reads as
    the text it was published with)."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    external_id: str | None = None
    handle: str | None = None
    pending: bool = False


def _recorded(state: ListingState) -> Publication:
    if state.listing is not None:
        return Publication(external_id=state.listing.external_id, handle=state.listing.handle)
    return Publication(pending=True)


def _published(event: ProductCreated, result: Publication, channel: str = DEFAULT_CHANNEL) -> Event:
    return published_event(
        event, external_id=result.external_id, handle=result.handle, channel=channel
    )


@asynccontextmanager
async def build_handler(
    settings: PublisherSettings,
) -> AsyncIterator[Handler[ProductCreated] | Handler[Event]]:
    """The handler of ``settings.channel``, wired to the real clients and the ledger; the
    printify channel's with the publication watcher running beside it."""
    # Idempotent and lock-serialised: a stage started on its own still finds its table.
    await asyncio.to_thread(migrate, settings.url)
    # Unchecked: a round trip saved on every use; a broken connection is retried.
    pool = await open_pool(
        settings.url, max_size=settings.db_pool_max, name="publisher", check=False
    )
    try:
        client = printify_client(settings, pool)
        if settings.channel == DEFAULT_CHANNEL:
            async with closing(client), _shop_path(settings, client, pool) as handler:
                yield handler
        else:
            direct = direct_channel(settings.channel, client, pool)
            # The direct channel (Shopify, Etsy) has its own client to close.
            async with closing(client, direct):
                yield DirectPublisher(name=settings.channel, channel=direct, ledger=Ledger(pool))
    finally:
        await pool.close()


@asynccontextmanager
async def _shop_path(
    settings: PublisherSettings, client: PrintifyClient, pool: AsyncConnectionPool
) -> AsyncIterator[ByEventType]:
    """The printify channel's handler, with the watcher that emits what channels confirm."""
    channels = ChannelRegistry(
        client,
        settings.storefront_base_url,
        storefront_on_webhook=settings.printify_webhooks_enabled,
    )
    for name, path in settings.sales_channel_adapters.items():
        channels.register(name, load_factory(path))
    ledger = Ledger(pool)
    publications = Publications(pool)
    producer = EventProducer(settings, client_id=f"{settings.instance_id or 'publisher'}-watch")
    try:
        watcher = PublicationWatcher(
            publications=publications,
            channels=channels,
            ledger=ledger,
            emit=_emitter(producer),
            check_min_s=settings.publish_check_min_s,
            check_max_s=settings.publish_check_max_s,
        )
        async with watching(watcher):
            yield printify_publisher(
                channels=channels,
                ledger=ledger,
                publications=publications,
                confirm_timeout_s=settings.publish_confirm_timeout_s,
                first_check_s=settings.publish_check_min_s,
            )
    finally:
        await asyncio.to_thread(producer.close, 10.0)


def _emitter(producer: EventProducer) -> Callable[[str, Event], Awaitable[None]]:
    async def emit(topic: str, event: Event) -> None:
        await producer.send(topic, event.to_json(), key=event.job_id, timeout=30.0)

    return emit
