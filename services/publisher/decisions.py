"""A channel's publisher and the seller's decisions (issue 28).

- :class:`Gate`: whether a product event is published here at all: a product of a job with
  review is held (recorded, not published) until the printify stage reports it approved
  (``product.approved``); a product of a cancelled job, or one the seller took down, is not
  published, checked before the ledger claim and again right before the channel is called.
- :class:`SellerDecisions`: ``seller.decision`` (read in the publisher's own group): a cancel
  (recorded in ``job_cancellations``), an unpublish or a delete takes down this channel's
  listings of the job's products (those this publisher holds or listed, never an id the
  decision names), each once per decision through the ledger, after any publish still in flight
  (its ledger claim), and reports each as ``product.withdrawn``.
- :class:`Reprices`: ``product.repriced`` from the printify stage (Printify's prices changed):
  the listing here is priced again, once per decision, and reported as ``product.repriced``
  with this channel.

The order that makes a cancel win over a publish in flight without a half-listed product: the
publish path claims the ledger step, then looks at the job's cancellation and the product's
state; the decision path records those first, then waits for the claim. One of the two always
sees the other's write: either the publish is not made, or it is waited for and taken down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from services.publisher.holdings import Holding, Holdings
from services.publisher.publications import Publications
from services.publisher.watch import PRODUCER, product_step
from shared.adapters.store import cancellations
from shared.adapters.vendors.channels import ProductRef, SalesChannel
from shared.contract.events import (
    DecisionAction,
    Event,
    ProductApproved,
    ProductCreated,
    ProductCreatedPayload,
    ProductRepriced,
    ProductWithdrawn,
    ProductWithdrawnPayload,
    SellerDecision,
    WithdrawReason,
    channels_of,
)
from shared.contract.topics import PUBLISHED
from shared.domain.ledger import EffectState, Ledger
from shared.pipeline.runner import MessageContext, Output
from shared.platform.errors import PermanentError

logger = logging.getLogger(__name__)

# The channel a held product sells through (the printify channel: its shop's; a direct one:
# itself).
ChannelOf = Callable[[Holding], Awaitable[SalesChannel]]


class NotWanted(PermanentError):
    """A publish stopped before the channel was called: the job was cancelled, or the product
    taken down, after the publish began."""


def as_created(event: ProductCreated | ProductApproved) -> ProductCreated:
    """An approved product as the product.created it was (the same ids, so what the publish
    derives from it is the same whichever of the two asks): the publication's record and the
    watcher read product.created."""
    if isinstance(event, ProductCreated):
        return event
    payload = ProductCreatedPayload.model_validate(
        event.payload.model_dump(exclude={"decision_id", "decided_by"})
    )
    fields = event.model_dump(exclude={"type", "payload"})
    return ProductCreated.model_validate({**fields, "payload": payload})


def sells_here(event: ProductCreated | ProductApproved, channel: str) -> bool:
    """Whether ``channel``'s publisher publishes ``event``'s product: only when the job sells
    on that channel, and then an approved product always; a created one only with autoPublish
    (else it stays a draft) and never for a job with review (it is held for the seller)."""
    p = event.payload
    if channel not in channels_of(p.routing.channels):
        return False
    if isinstance(event, ProductApproved):
        return True
    if p.routing.review:
        logger.info("product held for review job_id=%s product_id=%s", event.job_id, p.product_id)
        return False
    if not p.routing.auto_publish:
        logger.info("product left as draft job_id=%s product_id=%s", event.job_id, p.product_id)
        return False
    return True


class Gate:
    """Whether a product event of a job is published on channel ``name`` (see the module)."""

    def __init__(self, name: str, pool: AsyncConnectionPool, holdings: Holdings) -> None:
        self.name = name
        self.pool = pool
        self.holdings = holdings

    async def admit(self, event: ProductCreated | ProductApproved) -> bool:
        """Whether to publish ``event``'s product here now; a held product is recorded as the
        job's (a cancel finds it)."""
        p = event.payload
        held = isinstance(event, ProductCreated) and p.routing.review
        if self.name not in channels_of(p.routing.channels):
            return False
        if not held and not sells_here(event, self.name):
            return False
        row = await self.holdings.record(event.job_id, p, held=held)
        if row is None:
            logger.info(
                "product of a cancelled job not published job_id=%s product_id=%s channel=%s",
                event.job_id,
                p.product_id,
                self.name,
            )
            return False
        if held:
            logger.info(
                "product held for review job_id=%s product_id=%s channel=%s",
                event.job_id,
                p.product_id,
                self.name,
            )
            return False
        if row.state != "active" or row.generation != p.generation:
            logger.info(
                "product not published again job_id=%s product_id=%s channel=%s state=%s "
                "generation=%d",
                event.job_id,
                p.product_id,
                self.name,
                row.state,
                row.generation,
            )
            return False
        return True

    async def wanted(self, event: ProductCreated) -> bool:
        """Whether ``event``'s product is still to be listed: no cancel of its job and no
        take-down of it came meanwhile."""
        p = event.payload
        row = await self.holdings.live(event.job_id, p.image_index, p.product_type.value)
        return row is not None and row.state == "active" and row.generation == p.generation

    async def still_wanted(self, event: ProductCreated) -> None:
        """Right before the channel is called (the ledger claim held): NotWanted when a cancel or
        a take-down came meanwhile."""
        if not await self.wanted(event):
            raise NotWanted(f"product {event.payload.product_id} was cancelled or taken down")

    async def settled_if_unwanted(self, publications: Publications, event: ProductCreated) -> bool:
        """After a pending publication was recorded: True (and the row settled) when a cancel
        or a take-down came meanwhile, whose handler may have looked for the row before it
        existed; it takes the listing down, the watcher must not report it published."""
        if await self.wanted(event):
            return False
        p = event.payload
        await publications.withdrawn(
            event.job_id, p.image_index, p.product_type.value, reason="withdrawn by the seller"
        )
        return True


class Withdrawal(BaseModel):
    """What the ledger keeps of a withdraw call."""

    was_listed: bool


class Repricing(BaseModel):
    """What the ledger keeps of a reprice call."""

    updated: bool


def _tag(decision: object) -> str:
    return str(decision).replace("-", "")[:12]


class SellerDecisions:
    """``seller.decision`` -> ``product.withdrawn`` for each of this channel's products it takes
    down (cancel, unpublish, delete); the review's decisions are the printify stage's."""

    def __init__(
        self,
        *,
        name: str,
        channel_of: ChannelOf,
        ledger: Ledger,
        holdings: Holdings,
        publications: Publications,
        pool: AsyncConnectionPool,
    ) -> None:
        self.name = name
        self.channel_of = channel_of
        self.ledger = ledger
        self.holdings = holdings
        self.publications = publications
        self.pool = pool

    async def __call__(self, event: SellerDecision, ctx: MessageContext) -> list[Output]:
        d = event.payload
        if d.action is DecisionAction.CANCEL:
            async with self.pool.connection() as conn:
                await cancellations.record(
                    conn,
                    job_id=event.job_id,
                    decision_id=d.decision_id,
                    decided_by=d.decided_by,
                    at=event.occurred_at,
                )
            targets = await self.holdings.of_job(event.job_id)
            delete = True
            reason: WithdrawReason = "cancelled"
        elif d.action in (DecisionAction.UNPUBLISH, DecisionAction.DELETE):
            if d.channels is not None and self.name not in channels_of(d.channels):
                return []
            kind = d.product_type.value if d.product_type is not None else None
            found = await self.holdings.of_job(
                event.job_id, image_index=d.image_index, product_type=kind
            )
            # A held product was never listed: its fate is the review's.
            targets = [h for h in found if h.state != "held"]
            delete = d.action is DecisionAction.DELETE
            reason = "deleted" if delete else "unpublished"
        else:
            return []
        outs = []
        for h in targets:
            if h.state == "deleted" and h.decision_id != d.decision_id:
                continue  # taken down for good before (another decision, or the vendor)
            out = await self._withdraw(event, h, delete=delete, reason=reason)
            outs.append(Output(PUBLISHED, out))
        logger.info(
            "seller decision done job_id=%s action=%s decision_id=%s channel=%s withdrawn=%d "
            "offset=%d",
            event.job_id,
            d.action.value,
            d.decision_id,
            self.name,
            len(outs),
            ctx.offset,
        )
        return outs

    async def _withdraw(
        self, event: SellerDecision, h: Holding, *, delete: bool, reason: WithdrawReason
    ) -> ProductWithdrawn:
        d = event.payload
        outcome: Literal["unpublished", "deleted"] = "deleted" if delete else "unpublished"
        was_held = h.state == "held"
        # First: a publish that starts from now on sees it and lists nothing.
        await self.holdings.take_down(h, outcome, d.decision_id)
        publish = product_step(
            "publish", h.job_id, h.image_index, h.product_type, self.name, h.generation
        )
        # A publish in flight is waited for, then taken down.
        entry = await self.ledger.settled(publish)
        await self.publications.withdrawn(
            h.job_id, h.image_index, h.product_type, reason=f"withdrawn: {reason}"
        )
        was_listed = False
        if not was_held:
            # A publication the channel was still working on (Meta's batch) may land after the
            # withdrawal: the channel is told what it was, to let it finish first.
            pending = await self.publications.pending_ref_of(
                h.job_id, h.image_index, h.product_type
            )
            ref = ProductRef(h.shop_id, h.product_id, h.title, pending_ref=pending)
            channel = await self.channel_of(h)
            step = product_step(
                "delete" if delete else "unpublish",
                h.job_id,
                h.image_index,
                h.product_type,
                self.name,
                h.generation,
                tag=_tag(d.decision_id),
            )

            async def do() -> Withdrawal:
                return Withdrawal(was_listed=await channel.withdraw(ref, delete=delete))

            done = await self.ledger.once(step, do, model=Withdrawal)
            was_listed = done.was_listed
            if not delete and entry is not None and entry.state is EffectState.DONE:
                # Unpublished, not gone: the publish step is free again, so that a re-publish
                # the seller asks for lists it; the product's state (unpublished) keeps every
                # redelivered product event from doing so on its own.
                await self.ledger.forget(publish)
        logger.info(
            "listing withdrawn job_id=%s product_id=%s channel=%s outcome=%s reason=%s "
            "was_listed=%s",
            h.job_id,
            h.product_id,
            self.name,
            outcome,
            reason,
            was_listed,
        )
        payload = ProductWithdrawnPayload(
            image_index=h.image_index,
            product_type=h.product_type,
            product_id=h.product_id,
            shop_id=h.shop_id,
            generation=h.generation,
            channel=self.name,
            outcome=outcome,
            reason=reason,
            decision_id=d.decision_id,
            was_listed=was_listed,
        )
        key = f"withdrawn:{self.name}:{h.image_index}:{h.product_type}:g{h.generation}"
        return event.derive(ProductWithdrawn, payload, producer=PRODUCER, key=key)


class Reprices:
    """``product.repriced`` in Printify (``channel`` None) -> the listing here priced again and
    ``product.repriced`` with this channel; nothing for a product not listed here."""

    def __init__(
        self, *, name: str, channel_of: ChannelOf, ledger: Ledger, holdings: Holdings
    ) -> None:
        self.name = name
        self.channel_of = channel_of
        self.ledger = ledger
        self.holdings = holdings

    async def __call__(self, event: ProductRepriced, ctx: MessageContext) -> list[Output]:
        p = event.payload
        if p.channel is not None:
            return []  # a channel's own report, not Printify's change
        h = await self.holdings.get(event.job_id, p.image_index, p.product_type.value)
        if (
            h is None
            or h.state != "active"
            or (h.product_id, h.generation)
            != (
                p.product_id,
                p.generation,
            )
        ):
            logger.info(
                "reprice of a product not listed here job_id=%s product_id=%s channel=%s",
                event.job_id,
                p.product_id,
                self.name,
            )
            return []
        publish = product_step(
            "publish", h.job_id, h.image_index, h.product_type, self.name, h.generation
        )
        entry = await self.ledger.settled(publish)
        if entry is None or entry.state is not EffectState.DONE:
            logger.info(
                "reprice before any listing job_id=%s product_id=%s channel=%s",
                event.job_id,
                p.product_id,
                self.name,
            )
            return []
        channel = await self.channel_of(h)
        ref = ProductRef(h.shop_id, h.product_id, h.title)
        step = product_step(
            "reprice",
            h.job_id,
            h.image_index,
            h.product_type,
            self.name,
            h.generation,
            tag=_tag(p.decision_id),
        )

        async def do() -> Repricing:
            return Repricing(updated=await channel.reprice(ref))

        done = await self.ledger.once(step, do, model=Repricing)
        logger.info(
            "listing repriced job_id=%s product_id=%s channel=%s updated=%s offset=%d",
            event.job_id,
            p.product_id,
            self.name,
            done.updated,
            ctx.offset,
        )
        if not done.updated:
            return []
        payload = p.model_copy(update={"channel": self.name})
        key = f"repriced:{self.name}"
        out = event.derive(ProductRepriced, payload, producer=PRODUCER, key=key)
        return [Output(PUBLISHED, out)]


async def ignored(event: Event, ctx: MessageContext) -> list[Output]:
    """What a publisher reads on its topics and has nothing to do with (the printify stage's
    product.withdrawn: Printify's own product, taken down by that stage)."""
    logger.debug("ignored %s job_id=%s offset=%d", event.type, event.job_id, ctx.offset)
    return []
