"""The publication watcher: settles publications the sales channel confirms on its own.

Etsy, Shopify, ... list a product Printify published minutes later, or refuse it; TikTok Shop
audits a new product, Meta's catalog finishes a batch later. The watcher of a channel's
publisher asks the publication's channel
(:meth:`shared.adapters.vendors.channels.SalesChannel.check`) about each of its publications
in :mod:`services.publisher.publications` with a growing interval
(``PUBLISH_CHECK_MIN_S`` doubling up to ``PUBLISH_CHECK_MAX_S``) and

- emits ``product.published`` once the listing is there;
- reports ``stage.failed`` on the publisher's DLQ (with the ProductCreated, for a replay) when
  the channel refused it (released without a listing, a failed audit, an item the catalog
  rejected), it was deleted, or it was not confirmed by ``confirm_by``; the ledger forgets the
  publish call, so a replay publishes again.

Each instance of the publisher runs one; rows are leased, so they share the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from services.publisher.publications import Publication, Publications
from shared.adapters.vendors.channels import ProductRef, SalesChannel
from shared.contract.events import (
    Event,
    ProductCreated,
    ProductPublished,
    ProductPublishedPayload,
    StageFailed,
    StageFailedPayload,
)
from shared.contract.topics import DEFAULT_CHANNEL, PUBLISHED, PUBLISHERS
from shared.domain.ledger import EffectKey, Ledger, step_name
from shared.platform.aio import cancel_and_wait
from shared.platform.errors import PermanentError, PodError

logger = logging.getLogger(__name__)

PRODUCER = "publisher"

# Produce one event to a topic and return once the broker has it.
Emit = Callable[[str, Event], Awaitable[None]]


class PublicationRefused(PermanentError):
    """The sales channel did not list a product published to it."""


class ChannelLookup(Protocol):
    """Where the watcher finds a publication's channel by its name: the printify channel's
    registry (each shop's channel), or a direct channel's one adapter."""

    def by_name(self, name: str) -> SalesChannel: ...


class OneChannel:
    """A direct channel's publisher: every publication it watches is on its one channel."""

    def __init__(self, channel: SalesChannel) -> None:
        self.channel = channel

    def by_name(self, name: str) -> SalesChannel:
        return self.channel


def per_channel(name: str, channel: str) -> str:
    """``name`` for the printify channel, ``name:<channel>`` for another: the event keys and
    ledger steps of a publication, one per channel, so that each channel's is counted (the
    printify channel's keep the names they had before there were others)."""
    return name if channel == DEFAULT_CHANNEL else f"{name}:{channel}"


def published_event(
    event: ProductCreated,
    *,
    external_id: str | None,
    handle: str | None,
    channel: str = DEFAULT_CHANNEL,
) -> ProductPublished:
    """The ``product.published`` of ``event``'s product on ``channel``: one event id however
    often (and by whichever path) it is confirmed, so the monitor counts it once; another id
    per channel, so that each channel's counts."""
    p = event.payload
    payload = ProductPublishedPayload(
        image_index=p.image_index,
        product_type=p.product_type,
        product_id=p.product_id,
        shop_id=p.shop_id,
        external_id=external_id,
        handle=handle,
        channel=channel,
    )
    return event.derive(
        ProductPublished, payload, producer=PRODUCER, key=per_channel("published", channel)
    )


def publish_key(event: ProductCreated, channel: str = DEFAULT_CHANNEL) -> EffectKey:
    """The ledger key of ``event``'s publish call to ``channel``: one per product of an image's
    generation (a regenerated image's products are new publications; generation 0 keeps the
    names from before generations)."""
    p = event.payload
    return product_step(
        "publish", event.job_id, p.image_index, p.product_type.value, channel, p.generation
    )


def product_step(
    verb: str,
    job_id: str,
    image_index: int,
    product_type: str,
    channel: str,
    generation: int,
    *,
    tag: str = "",
) -> EffectKey:
    """The ledger key of ``verb`` (publish, unpublish, delete, reprice) of one product on
    ``channel``; ``tag``: the decision's, for a step each decision does again. The printify
    channel's publish carries no channel name, as before there were others; its undo steps do,
    since the printify stage's own steps of a decision (``reprice@<tag>``, ``delete``) share the
    ledger's key space and must never be taken for the channel's."""
    own = None if channel == DEFAULT_CHANNEL and verb == "publish" else channel
    step = step_name(verb, channel=own, generation=generation, tag=tag)
    return EffectKey(job_id, image_index, product_type, step)


class PublicationWatcher:
    """Checks due publications until each is confirmed or refused."""

    def __init__(
        self,
        *,
        publications: Publications,
        channels: ChannelLookup,
        ledger: Ledger,
        emit: Emit,
        check_min_s: float = 5.0,
        check_max_s: float = 300.0,
        batch: int = 20,
        lease_s: float = 60.0,
        error_wait_s: float = 1.0,
        idle_max_s: float = 30.0,
    ) -> None:
        self.publications = publications
        self.channels = channels
        self.ledger = ledger
        self.emit = emit
        self.check_min_s = check_min_s
        self.check_max_s = check_max_s
        self.batch = batch
        self.lease_s = lease_s
        self.error_wait_s = error_wait_s
        self.idle_max_s = idle_max_s

    async def run(self) -> None:
        """Check due publications until cancelled; a failing database is waited out.

        Between rounds it sleeps until the first pending publication falls due, or this
        process records a new one, or ``idle_max_s`` passed (another instance's rows, should
        that instance die): asking the table every second was most of an idle publisher's
        CPU and a share of PostgreSQL's."""
        recorded = self.publications.recorded
        while True:
            recorded.clear()  # before looking: a row recorded from now on wakes the sleep
            try:
                if await self.run_once() >= self.batch:
                    continue  # more may be due at once
                wait = await self.publications.next_due_in()
            except Exception as exc:  # the database or the broker is away: try again later
                logger.warning("publication watch failed error=%s", exc)
                wait = self.error_wait_s
            # Never a busy loop on a row another instance holds for a moment.
            seconds = self.idle_max_s if wait is None else min(self.idle_max_s, max(0.05, wait))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorded.wait(), seconds)

    async def run_once(self) -> int:
        """Claim and check the publications due now; return how many."""
        due = await self.publications.claim_due(limit=self.batch, lease_s=self.lease_s)
        await asyncio.gather(*(self.check(pub) for pub in due))
        return len(due)

    async def check(self, pub: Publication) -> None:
        """Ask the publication's channel where it stands and settle it, or schedule its next
        check."""
        channel = self.channels.by_name(pub.sales_channel)
        ref = ProductRef(
            pub.shop_id, pub.product_id, pub.event.payload.title, pending_ref=pub.pending_ref
        )
        try:
            state = await channel.check(ref)
        except PermanentError as exc:  # deleted, or the shop is gone
            await self._fail(pub, f"the product can no longer be read: {exc.describe()}")
            return
        except PodError as exc:
            logger.warning(
                "publication check failed job_id=%s product_id=%s error=%s",
                pub.job_id,
                pub.product_id,
                exc.describe(),
            )
            await self._later(pub)
            return
        if state.listing is not None:
            await self._confirm(pub, state.listing.external_id, state.listing.handle)
        elif state.refused is not None:
            await self._fail(pub, state.refused)
        elif datetime.now(UTC) >= pub.confirm_by:
            waited = (pub.confirm_by - pub.requested_at).total_seconds()
            await self._fail(
                pub, f"{pub.sales_channel} did not confirm the publication within {waited:.0f}s"
            )
        else:
            await self._later(pub)

    async def _later(self, pub: Publication) -> None:
        delay = min(self.check_max_s, self.check_min_s * 2 ** max(0, pub.checks - 1))
        # Never past the deadline: the last check is the one that gives up.
        remaining = (pub.confirm_by - datetime.now(UTC)).total_seconds()
        await self.publications.check_later(pub, max(0.0, min(delay, remaining)))

    async def _confirm(self, pub: Publication, external_id: str, handle: str | None) -> None:
        if not await self.publications.still_pending(pub):
            # Taken back by the seller while it was checked (a cancel): the decision's handler
            # takes the listing down; reporting it published now would undo that in the view.
            logger.info(
                "publication withdrawn while checked job_id=%s product_id=%s channel=%s",
                pub.job_id,
                pub.product_id,
                pub.channel,
            )
            return
        await self.emit(
            PUBLISHED,
            published_event(pub.event, external_id=external_id, handle=handle, channel=pub.channel),
        )
        await self.publications.published(pub, external_id=external_id, handle=handle)
        logger.info(
            "publication confirmed job_id=%s product_id=%s channel=%s external_id=%s checks=%d",
            pub.job_id,
            pub.product_id,
            pub.sales_channel,
            external_id,
            pub.checks,
        )

    async def _fail(self, pub: Publication, reason: str) -> None:
        event = pub.event
        # Printify released it (the printify channel), or the direct channel refused it.
        exc = PublicationRefused(reason, vendor=pub.channel)
        stage = PUBLISHERS[pub.channel]
        payload = StageFailedPayload(
            stage=stage.name,
            error_class=exc.error_class,
            message=exc.describe(),
            retryable=False,
            image_index=event.payload.image_index,
            product_type=event.payload.product_type,
            input_topic=pub.input_topic,
            input_partition=pub.input_partition,
            input_offset=pub.input_offset,
            input_event=event.model_dump(mode="json"),
        )
        # One id per channel, as published_event's: each channel's refusal is counted.
        key = per_channel("publication-failed", pub.channel)
        failed = event.derive(StageFailed, payload, producer=PRODUCER, key=key)
        await self.emit(stage.dlq, failed)
        # Forgotten before the row is settled: a crash in between checks again, never leaves
        # a refused publication recorded as done.
        await self.ledger.forget(publish_key(event, pub.channel))
        await self.publications.failed(pub, error=reason)
        logger.error(
            "publication failed job_id=%s product_id=%s channel=%s error=%s",
            pub.job_id,
            pub.product_id,
            pub.sales_channel,
            reason,
        )


@contextlib.asynccontextmanager
async def watching(watcher: PublicationWatcher) -> AsyncIterator[PublicationWatcher]:
    """Run ``watcher`` in the background for the duration of the block."""
    task = asyncio.create_task(watcher.run(), name="publication-watcher")
    try:
        yield watcher
    finally:
        await cancel_and_wait(task)
