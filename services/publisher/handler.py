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
- :class:`DirectPublisher` (the channels of :mod:`shared.adapters.vendors.direct`): lists the
  product at once (Shopify, Etsy), or hands it to its own watcher while the channel reviews it
  (TikTok's audit, Meta's catalog batch), which confirms or refuses it later.
- :class:`~services.publisher.storefront.StorefrontWebhooks`: Printify's webhooks for the
  engine's own storefront, which come to the printify channel's process beside its products
  (:class:`ByEventType` routes the two).

Publishing is done once per (job, image, type, channel) through the ledger
(:mod:`shared.domain.ledger`); an attempt whose outcome is unknown is reconciled with the channel
first.

A job with review has its products held until the printify stage reports one approved
(``product.approved``, published as a product.created with autoPublish would be); every channel's
publisher also reads the seller's decisions and Printify's reprices
(:mod:`services.publisher.decisions`): a cancel, an unpublish or a delete takes its listings
down, a reprice prices them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from services.publisher.decisions import (
    ChannelOf,
    Gate,
    NotWanted,
    Reprices,
    SellerDecisions,
    as_created,
    ignored,
)
from services.publisher.holdings import Holding, Holdings
from services.publisher.publications import Publications
from services.publisher.settings import PublisherSettings
from services.publisher.storefront import StorefrontWebhooks
from services.publisher.watch import (
    PRODUCER,
    ChannelLookup,
    OneChannel,
    PublicationRefused,
    PublicationWatcher,
    per_channel,
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
from shared.adapters.vendors.direct import direct_spec
from shared.adapters.vendors.printify import PrintifyClient, printify_client
from shared.contract.events import (
    Event,
    PrintifyWebhookReceived,
    ProductApproved,
    ProductCreated,
    ProductPublishing,
    ProductPublishingPayload,
    ProductRepriced,
    ProductWithdrawn,
    SellerDecision,
)
from shared.contract.topics import DEFAULT_CHANNEL, PUBLISHED
from shared.domain.ledger import Ledger
from shared.pipeline.runner import EventProducer, Handler, MessageContext, Output
from shared.pipeline.service import closing
from shared.platform.db import migrate, open_pool

logger = logging.getLogger(__name__)


def product_ref(event: ProductCreated | ProductApproved) -> ProductRef:
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
        gate: Gate | None = None,
    ) -> None:
        self.channels = channels
        self.ledger = ledger
        self.publications = publications
        self.confirm_timeout_s = confirm_timeout_s
        self.first_check_s = first_check_s
        self.gate = gate or Gate(
            DEFAULT_CHANNEL, ledger.pool, Holdings(ledger.pool, DEFAULT_CHANNEL)
        )

    async def __call__(
        self, event: ProductCreated | ProductApproved, ctx: MessageContext
    ) -> list[Output]:
        # Held for review, a draft, or not to be published (a cancelled job's, a product taken
        # down): see the gate.
        if not await self.gate.admit(event):
            return []
        event = as_created(event)
        # The product's own shop decides the channel (and so who confirms), not whether the
        # account has a custom shop somewhere.
        channel = await self.channels.for_shop(event.payload.shop_id)
        ref = product_ref(event)

        async def do() -> Publication:
            await self.gate.still_wanted(event)
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

        try:
            published = await self.ledger.once(publish_key(event), do, reconcile, model=Publication)
        except NotWanted as exc:
            logger.info("publish stopped job_id=%s reason=%s", event.job_id, exc.describe())
            return []
        out: Event
        if published.pending:
            out = await awaiting(
                self.publications,
                event,
                ctx,
                sales_channel=channel.name,
                timeout_s=self.confirm_timeout_s,
                first_check_s=self.first_check_s,
            )
            if await self.gate.settled_if_unwanted(self.publications, event):
                return []
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


class DirectPublisher:
    """A channel listed directly (Shopify, Etsy, TikTok Shop, the Meta catalog):
    ProductCreated -> ProductPublished once the channel lists it, or ProductPublishing while
    the channel reviews it (TikTok's audit, Meta's batch); the publication is then watched
    like the printify channel's, and confirmed or refused later."""

    def __init__(
        self,
        *,
        name: str,
        channel: SalesChannel,
        ledger: Ledger,
        publications: Publications,
        confirm_timeout_s: float = 3600.0,
        first_check_s: float = 5.0,
        gate: Gate | None = None,
    ) -> None:
        """``name``: the engine's channel this publisher serves (its consumer group)."""
        self.name = name
        self.channel = channel
        self.ledger = ledger
        self.publications = publications
        self.confirm_timeout_s = confirm_timeout_s
        self.first_check_s = first_check_s
        self.gate = gate or Gate(name, ledger.pool, Holdings(ledger.pool, name))

    async def __call__(
        self, event: ProductCreated | ProductApproved, ctx: MessageContext
    ) -> list[Output]:
        if not await self.gate.admit(event):
            return []
        event = as_created(event)
        ref = product_ref(event)

        async def do() -> Publication:
            await self.gate.still_wanted(event)
            return self._recorded(await self.channel.publish(ref))

        async def reconcile() -> Publication | None:
            state = await self.channel.reconcile(ref)
            return None if state is None else self._recorded(state)

        try:
            done = await self.ledger.once(
                publish_key(event, self.name), do, reconcile, model=Publication
            )
        except NotWanted as exc:
            logger.info("publish stopped job_id=%s reason=%s", event.job_id, exc.describe())
            return []
        out: Event
        if done.pending:
            out = await awaiting(
                self.publications,
                event,
                ctx,
                sales_channel=self.name,
                timeout_s=self.confirm_timeout_s,
                first_check_s=self.first_check_s,
                pending_ref=done.pending_ref,
            )
            if await self.gate.settled_if_unwanted(self.publications, event):
                return []
        else:
            out = _published(event, done, self.name)
        logger.info(
            "product %s job_id=%s product_id=%s channel=%s listing=%s",
            "publishing" if isinstance(out, ProductPublishing) else "published",
            event.job_id,
            ref.product_id,
            self.name,
            done.external_id,
        )
        return [Output(PUBLISHED, out)]

    def _recorded(self, state: ListingState) -> Publication:
        """What the ledger keeps of a listing, or of a publication the channel confirms later;
        raises when the channel refused it."""
        if state.refused is not None:
            raise PublicationRefused(state.refused, vendor=self.channel.name)
        return _recorded(state)


async def awaiting(
    publications: Publications,
    event: ProductCreated,
    ctx: MessageContext,
    *,
    sales_channel: str,
    timeout_s: float,
    first_check_s: float,
    pending_ref: str | None = None,
) -> Event:
    """Hand a publication the channel confirms later to the watcher of ``publications``'
    channel: ``product.published`` when a redelivery finds it confirmed already, else
    ``product.publishing``."""
    pub = await publications.watch(
        event,
        ctx,
        sales_channel=sales_channel,
        timeout_s=timeout_s,
        first_check_s=first_check_s,
        pending_ref=pending_ref,
    )
    channel = publications.channel
    if pub.state == "published":
        return published_event(
            event, external_id=pub.external_id, handle=pub.handle, channel=channel
        )
    p = event.payload
    payload = ProductPublishingPayload(
        image_index=p.image_index,
        product_type=p.product_type,
        product_id=p.product_id,
        shop_id=p.shop_id,
        sales_channel=sales_channel,
        channel=channel,
        confirm_by=pub.confirm_by,
    )
    # One id per channel, as published_event's: each channel's is folded.
    key = per_channel("publishing", channel)
    return event.derive(ProductPublishing, payload, producer=PRODUCER, key=key)


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
    """What ``channel``'s publisher reads (the runner's allow-list): its products (created,
    approved, repriced in Printify, withdrawn there), the seller's decisions, and Printify's
    webhooks, which come to the printify channel's alone (its storefront's handshake), routed
    as :func:`printify_publisher` does."""
    own = (ProductCreated, ProductApproved, ProductRepriced, ProductWithdrawn, SellerDecision)
    if channel == DEFAULT_CHANNEL:
        return (*own, PrintifyWebhookReceived)
    return own


def printify_publisher(
    *,
    channels: ChannelRegistry,
    ledger: Ledger,
    publications: Publications,
    confirm_timeout_s: float = 3600.0,
    first_check_s: float = 5.0,
) -> ByEventType:
    """The printify channel's handler: its products through their shops, the seller's
    decisions about them, and the storefront's side of Printify's webhooks."""
    holdings = Holdings(ledger.pool, DEFAULT_CHANNEL)
    shop = ShopPublisher(
        channels=channels,
        ledger=ledger,
        publications=publications,
        confirm_timeout_s=confirm_timeout_s,
        first_check_s=first_check_s,
        gate=Gate(DEFAULT_CHANNEL, ledger.pool, holdings),
    )

    async def channel_of(h: Holding) -> SalesChannel:
        return await channels.for_shop(h.shop_id)

    webhooks = StorefrontWebhooks(channels, holdings)
    return ByEventType(
        {
            ProductCreated: shop,
            ProductApproved: shop,
            **_undo_routes(DEFAULT_CHANNEL, channel_of, ledger, holdings, publications),
            PrintifyWebhookReceived: webhooks,
        }
    )


def direct_publisher(
    *,
    name: str,
    channel: SalesChannel,
    ledger: Ledger,
    publications: Publications,
    confirm_timeout_s: float = 3600.0,
    first_check_s: float = 5.0,
) -> ByEventType:
    """A direct channel's handler: its products, and the seller's decisions about them."""
    holdings = Holdings(ledger.pool, name)
    direct = DirectPublisher(
        name=name,
        channel=channel,
        ledger=ledger,
        publications=publications,
        confirm_timeout_s=confirm_timeout_s,
        first_check_s=first_check_s,
        gate=Gate(name, ledger.pool, holdings),
    )

    async def channel_of(_h: Holding) -> SalesChannel:
        return channel

    return ByEventType(
        {
            ProductCreated: direct,
            ProductApproved: direct,
            **_undo_routes(name, channel_of, ledger, holdings, publications),
        }
    )


def _undo_routes(
    name: str,
    channel_of: ChannelOf,
    ledger: Ledger,
    holdings: Holdings,
    publications: Publications,
) -> dict[type[Event], Handler[Any]]:
    decisions = SellerDecisions(
        name=name,
        channel_of=channel_of,
        ledger=ledger,
        holdings=holdings,
        publications=publications,
        pool=ledger.pool,
    )
    reprices = Reprices(name=name, channel_of=channel_of, ledger=ledger, holdings=holdings)
    return {ProductRepriced: reprices, ProductWithdrawn: ignored, SellerDecision: decisions}


class Publication(BaseModel):
    """What the ledger keeps of a publish call: the listing, or that it is pending (the JSON
    layout rows recorded before this model have; an id some channel gave as a number reads as
    the text it was published with)."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    external_id: str | None = None
    handle: str | None = None
    pending: bool = False
    # What the channel checks a pending one by (ListingState.pending_ref).
    pending_ref: str | None = None


def _recorded(state: ListingState) -> Publication:
    if state.listing is not None:
        return Publication(external_id=state.listing.external_id, handle=state.listing.handle)
    return Publication(pending=True, pending_ref=state.pending_ref)


def _published(event: ProductCreated, result: Publication, channel: str = DEFAULT_CHANNEL) -> Event:
    return published_event(
        event, external_id=result.external_id, handle=result.handle, channel=channel
    )


@asynccontextmanager
async def build_handler(
    settings: PublisherSettings,
) -> AsyncIterator[Handler[Event]]:
    """The handler of ``settings.channel``, wired to the real clients and the ledger, with the
    publication watcher of its channel running beside it."""
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
            spec = direct_spec(settings.channel)
            direct = spec.channel(client, pool)
            timeout_s = settings.confirm_timeout_for(spec.confirm_timeout_s)
            # The direct channel has its own client to close.
            async with (
                closing(client, direct),
                _direct_path(settings, direct, pool, timeout_s) as handler,
            ):
                yield handler
    finally:
        await pool.close()


@asynccontextmanager
async def _watched(
    settings: PublisherSettings,
    publications: Publications,
    channels: ChannelLookup,
    ledger: Ledger,
) -> AsyncIterator[None]:
    """The channel's publication watcher, running for the duration of the block."""
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
            yield
    finally:
        await asyncio.to_thread(producer.close, 10.0)


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
    async with _watched(settings, publications, channels, ledger):
        yield printify_publisher(
            channels=channels,
            ledger=ledger,
            publications=publications,
            confirm_timeout_s=settings.publish_confirm_timeout_s,
            first_check_s=settings.publish_check_min_s,
        )


@asynccontextmanager
async def _direct_path(
    settings: PublisherSettings,
    channel: SalesChannel,
    pool: AsyncConnectionPool,
    confirm_timeout_s: float,
) -> AsyncIterator[ByEventType]:
    """A direct channel's handler, with the watcher of the publications it confirms later."""
    ledger = Ledger(pool)
    publications = Publications(pool, settings.channel)
    async with _watched(settings, publications, OneChannel(channel), ledger):
        yield direct_publisher(
            name=settings.channel,
            channel=channel,
            ledger=ledger,
            publications=publications,
            confirm_timeout_s=confirm_timeout_s,
            first_check_s=settings.publish_check_min_s,
        )


def _emitter(producer: EventProducer) -> Callable[[str, Event], Awaitable[None]]:
    async def emit(topic: str, event: Event) -> None:
        await producer.send(topic, event.to_json(), key=event.job_id, timeout=30.0)

    return emit
