"""The printify stage's part of a seller's decisions (``seller.decisions``, issue 28).

What the stage made is in ``made_products`` (:mod:`shared.adapters.store.made_products`): each
product with its product.created payload whole. A decision acts on those rows, each external
call once through the ledger, and reports what it did on products.created:

- approve (image i, generation g): product.approved per product of the image's generation g (the
  payload as created, with the decision), which the publishers publish as they would a
  product.created with autoPublish;
- reject (i, g): the products are deleted from Printify, product.withdrawn (rejected) each;
- cancel: recorded in ``job_cancellations``; every product of the job is deleted,
  product.withdrawn (cancelled) each; an image of the job that arrives later makes nothing;
- delete (an image or all, a type or all): deleted, product.withdrawn (deleted) each;
- reprice (a margin; an image or all, a type or all): priced again from Printify's costs now,
  product.repriced each, which the publishers follow to push the prices to their channels;
- regenerate, unpublish: nothing here (the generator makes the new image, whose products
  replace the old ones when it arrives; the publishers take listings down).

An approve or reject about a generation the stage has not finished making is retried (its
products may be on their way); one about a generation the stage has since replaced is dropped
with a warning (the seller decided on an image that is gone). Neither fails the job.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from shared.adapters.store import cancellations, design_hashes, made_products
from shared.adapters.store.made_products import MadeProduct
from shared.adapters.vendors.printify import Deleted, Product, VariantPrice
from shared.adapters.vendors.protocols import ProductVendor
from shared.contract.events import (
    DecisionAction,
    Event,
    PriceSummary,
    ProductApproved,
    ProductApprovedPayload,
    ProductCreatedPayload,
    ProductRepriced,
    ProductRepricedPayload,
    ProductType,
    ProductWithdrawn,
    ProductWithdrawnPayload,
    SellerDecision,
    SellerDecisionPayload,
    WithdrawReason,
)
from shared.contract.sales_channels import DEFAULT_CHANNEL
from shared.contract.topics import PRODUCTS_CREATED
from shared.domain.catalog import CatalogEntry
from shared.domain.ledger import EffectKey, Ledger, step_name
from shared.domain.pricing import PricingRule, retail_price, summarise
from shared.pipeline.runner import Output
from shared.platform.errors import PermanentError, RetryableError

logger = logging.getLogger(__name__)

PRODUCER = "printify"
# A product.withdrawn of a product deleted from Printify has one id whatever made the stage
# delete it (a cancel and a regenerated image may both meet it): consumers see one fact.
_WITHDRAWN_NS = uuid.UUID("0b6f4a4e-8f0e-4a53-9b1f-3c7d2e5a9f61")


class Target(NamedTuple):
    """A product the stage made, as far as taking it down needs."""

    image_index: int
    generation: int
    product_type: ProductType
    product_id: str
    shop_id: str

    @classmethod
    def of(cls, made: ProductCreatedPayload) -> Target:
        return cls(
            made.image_index, made.generation, made.product_type, made.product_id, made.shop_id
        )


class Approval(BaseModel):
    """What the ledger keeps of an approval: the decision that approved the product."""

    decision_id: uuid.UUID


class Undo:
    """Deletes a product the stage made, once (ledger step ``delete``, of its generation), and
    says so as a product.withdrawn."""

    def __init__(self, client: ProductVendor, ledger: Ledger, pool: AsyncConnectionPool) -> None:
        self.client = client
        self.ledger = ledger
        self.pool = pool

    async def delete(
        self,
        parent: Event,
        target: Target,
        reason: WithdrawReason,
        decision_id: uuid.UUID | None = None,
    ) -> Output:
        """Delete ``target`` from Printify (a product already gone counts as deleted) and
        record it; the product.withdrawn (channel None: the Printify product itself)."""
        key = EffectKey(
            parent.job_id,
            target.image_index,
            target.product_type.value,
            step_name("delete", generation=target.generation),
        )

        async def do() -> Deleted:
            return await self.client.delete_product(target.shop_id, target.product_id)

        # A delete is idempotent at Printify (a second one finds it gone): an unknown outcome
        # is settled by deleting again.
        deleted = await self.ledger.once(key, do, model=Deleted)
        await made_products.mark_deleted(
            self.pool,
            parent.job_id,
            target.image_index,
            target.generation,
            target.product_type.value,
            reason,
        )
        logger.info(
            "product deleted job_id=%s image_index=%d generation=%d product_type=%s reason=%s "
            "already_gone=%s",
            parent.job_id,
            target.image_index,
            target.generation,
            target.product_type.value,
            reason,
            deleted.already_gone,
        )
        payload = ProductWithdrawnPayload(
            image_index=target.image_index,
            product_type=target.product_type,
            product_id=target.product_id,
            shop_id=target.shop_id,
            generation=target.generation,
            channel=None,
            outcome="deleted",
            reason=reason,
            decision_id=decision_id,
            was_listed=not deleted.already_gone,
        )
        event = parent.derive(
            ProductWithdrawn, payload, producer=PRODUCER, key=f"withdrawn:{target.product_id}"
        )
        event_id = uuid.uuid5(_WITHDRAWN_NS, f"{parent.job_id}:{target.product_id}")
        return Output(PRODUCTS_CREATED, event.model_copy(update={"event_id": event_id}))


class DecisionHandler:
    """The printify stage's handling of one seller.decision."""

    def __init__(
        self,
        *,
        client: ProductVendor,
        ledger: Ledger,
        pool: AsyncConnectionPool,
        catalog: dict[ProductType, CatalogEntry],
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.pool = pool
        self.catalog = catalog
        self.undo = Undo(client, ledger, pool)

    async def __call__(self, event: SellerDecision) -> list[Output]:
        outputs = await self._act(event)
        await self._forget_designs(event)
        return outputs

    async def _forget_designs(self, event: SellerDecision) -> None:
        """A design the seller rejected, deleted or cancelled is never listed: it no longer
        makes a new design a near-duplicate (screening's hashes, decision §49)."""
        d = event.payload
        whole = d.product_type is None and d.channels is None
        if d.action is DecisionAction.CANCEL:
            index = None
        elif d.action is DecisionAction.REJECT or (d.action is DecisionAction.DELETE and whole):
            index = d.image_index
        else:
            return
        async with self.pool.connection() as conn:
            forgotten = await design_hashes.forget(conn, event.job_id, index)
        if forgotten:
            logger.info(
                "designs forgotten by screening job_id=%s image_index=%s hashes=%d",
                event.job_id,
                index,
                forgotten,
            )

    async def _act(self, event: SellerDecision) -> list[Output]:
        d = event.payload
        if d.action is DecisionAction.CANCEL:
            return await self._cancel(event)
        rows = await made_products.of_job(self.pool, event.job_id)
        if d.action in (DecisionAction.APPROVE, DecisionAction.REJECT):
            if await cancellations.is_cancelled(self.pool, event.job_id):
                logger.warning(
                    "decision dropped, job cancelled job_id=%s decision_id=%s action=%s",
                    event.job_id,
                    d.decision_id,
                    d.action.value,
                )
                return []
            reviewed = self._reviewed(event, rows)
            if d.action is DecisionAction.APPROVE:
                made = [r.payload for r in reviewed if r.state == "made" and r.payload is not None]
                return await self._approve(event, made)
            return await self._delete(event, deletable(reviewed, "rejected"), "rejected")
        if d.action is DecisionAction.DELETE:
            if not _for_printify(d):
                return []
            return await self._delete(event, deletable(_scoped(d, rows), "deleted"), "deleted")
        if d.action is DecisionAction.REPRICE:
            live = [r.payload for r in _scoped(d, rows) if r.state == "made" and r.payload]
            return [await self._reprice(event, m) for m in live]
        # regenerate: the generator's (its new image replaces these products when it comes);
        # unpublish: the publishers'.
        return []

    async def _delete(
        self, event: SellerDecision, made: Sequence[ProductCreatedPayload], reason: WithdrawReason
    ) -> list[Output]:
        decision_id = event.payload.decision_id
        return [await self.undo.delete(event, Target.of(m), reason, decision_id) for m in made]

    def _reviewed(self, event: SellerDecision, rows: Sequence[MadeProduct]) -> list[MadeProduct]:
        """The products an approve or reject is about: every product made of the image's
        generation, once every type of it is settled. RetryableError while some are still
        being made; none (logged) when the stage has replaced that generation since."""
        d = event.payload
        assert d.image_index is not None  # the contract requires it of approve and reject
        image = [r for r in rows if r.image_index == d.image_index]
        newest = max((r.generation for r in image), default=None)
        if newest is not None and newest > d.generation:
            logger.warning(
                "decision dropped, image regenerated since job_id=%s image_index=%d "
                "generation=%d newest=%d decision_id=%s action=%s",
                event.job_id,
                d.image_index,
                d.generation,
                newest,
                d.decision_id,
                d.action.value,
            )
            return []
        mine = [r for r in image if r.generation == d.generation]
        made = [r.payload for r in mine if r.payload is not None]
        wanted = set(made[0].routing.product_types) if made else set()
        settled = {r.product_type for r in mine}
        if not mine or not {t.value for t in wanted} <= settled:
            raise RetryableError(
                f"products of image {d.image_index} generation {d.generation} not all made yet "
                f"(made: {', '.join(sorted(settled)) or 'none'}): the decision waits for them"
            )
        return mine

    async def _approve(
        self, event: SellerDecision, made: Sequence[ProductCreatedPayload]
    ) -> list[Output]:
        """product.approved per product, once per product whatever decisions approve it (the
        first decision's; a redelivery of it gives the same events)."""
        d = event.payload
        outputs: list[Output] = []
        for product in made:
            key = EffectKey(
                event.job_id,
                product.image_index,
                product.product_type.value,
                step_name("approve", generation=product.generation),
            )

            async def approve() -> Approval:
                return Approval(decision_id=d.decision_id)

            approval = await self.ledger.once(key, approve, model=Approval)
            if approval.decision_id != d.decision_id:
                logger.warning(
                    "product approved already job_id=%s product_id=%s by_decision=%s",
                    event.job_id,
                    product.product_id,
                    approval.decision_id,
                )
                continue
            payload = ProductApprovedPayload(
                **product.model_dump(), decision_id=d.decision_id, decided_by=d.decided_by
            )
            approved = event.derive(
                ProductApproved,
                payload,
                producer=PRODUCER,
                key=f"approved:{product.image_index}:{product.product_type.value}",
            )
            outputs.append(Output(PRODUCTS_CREATED, approved))
        logger.info(
            "image approved job_id=%s image_index=%s generation=%d products=%d",
            event.job_id,
            d.image_index,
            d.generation,
            len(outputs),
        )
        return outputs

    async def _cancel(self, event: SellerDecision) -> list[Output]:
        """Record the cancel (before reading what was made: an image whose products are being
        made records them, then looks for the cancel, so one side always finds the other) and
        delete every product the job has."""
        d = event.payload
        async with self.pool.connection() as conn:
            await cancellations.record(
                conn,
                job_id=event.job_id,
                decision_id=d.decision_id,
                decided_by=d.decided_by,
                at=event.occurred_at,
            )
        rows = await made_products.of_job(self.pool, event.job_id)
        outputs = await self._delete(event, deletable(rows, "cancelled"), "cancelled")
        logger.info("job cancelled job_id=%s deleted=%d", event.job_id, len(outputs))
        return outputs

    async def _reprice(self, event: SellerDecision, made: ProductCreatedPayload) -> Output:
        """Price the product's sold variants again from their costs now, by the decision's
        margin (once per decision: ledger step ``reprice@<decision>``)."""
        d = event.payload
        assert d.margin_percent is not None  # the contract requires it of a reprice
        margin = d.margin_percent
        key = EffectKey(
            event.job_id,
            made.image_index,
            made.product_type.value,
            step_name("reprice", generation=made.generation, tag=d.decision_id.hex[:12]),
        )

        async def do() -> PriceSummary:
            product = await self.client.get_product(made.shop_id, made.product_id)
            return await self._set_prices(product, made, margin)

        # An update is idempotent: an unknown outcome is settled by sending it again.
        prices = await self.ledger.once(key, do, model=PriceSummary)
        await made_products.set_prices(
            self.pool,
            event.job_id,
            made.image_index,
            made.generation,
            made.product_type.value,
            prices,
        )
        payload = ProductRepricedPayload(
            image_index=made.image_index,
            product_type=made.product_type,
            product_id=made.product_id,
            shop_id=made.shop_id,
            generation=made.generation,
            channel=None,
            prices=prices,
            decision_id=d.decision_id,
        )
        repriced = event.derive(
            ProductRepriced,
            payload,
            producer=PRODUCER,
            key=f"repriced:{made.image_index}:{made.product_type.value}",
        )
        return Output(PRODUCTS_CREATED, repriced)

    async def _set_prices(
        self, product: Product, made: ProductCreatedPayload, margin: float
    ) -> PriceSummary:
        sold = product.enabled_ids()
        costs = {v.id: v.cost for v in product.variants if v.id in sold and v.cost is not None}
        if not costs:
            raise PermanentError(
                f"Printify gave no production costs for product {made.product_id}",
                vendor="printify",
            )
        prices = margin_prices(costs, margin)
        # Every variant, as the create's pricing sends them (Printify's reference asks for all):
        # the sold ones at their new price, the others as they are.
        await self.client.set_prices(
            made.shop_id,
            made.product_id,
            [
                VariantPrice(
                    id=v.id,
                    price=prices.get(v.id, v.price or 0),
                    is_enabled=v.id in prices,
                    sku=v.sku or None,
                )
                for v in product.variants
                if v.price is not None or v.id in prices
            ],
        )
        logger.info(
            "product repriced product_id=%s margin_percent=%g price_min_cents=%d",
            made.product_id,
            margin,
            min(prices.values()),
        )
        return summarise(costs, prices)


def margin_prices(costs: Mapping[int, int], margin_percent: float) -> dict[int, int]:
    """``{variant id: price}`` by a seller's margin (a share of the price, as the decision
    gives it): at least cost / (1 - margin), never below cost, ending .99. Neither the type's
    list price nor its least profit applies: the seller chose this margin."""
    if not 0 <= margin_percent < 100:
        raise PermanentError(f"margin_percent {margin_percent} is not in [0, 100)")
    return {
        vid: retail_price(
            cost,
            PricingRule(
                margin_percent=0,
                min_profit_cents=0,
                floor_cents=math.ceil(cost * 100 / (100 - margin_percent)),
            ),
        )
        for vid, cost in costs.items()
    }


def _for_printify(d: SellerDecisionPayload) -> bool:
    """Whether a delete takes the Printify product itself: when it names every channel (none)
    or the Printify shop's own. A delete from some direct channels only leaves the product in
    Printify (the publishers take those listings down), since the others still sell it."""
    return d.channels is None or DEFAULT_CHANNEL in d.channels


def _scoped(d: SellerDecisionPayload, rows: Sequence[MadeProduct]) -> list[MadeProduct]:
    """The rows a delete or reprice names: one image's or all, one type's or all."""
    return [
        r
        for r in rows
        if (d.image_index is None or r.image_index == d.image_index)
        and (d.product_type is None or r.product_type == d.product_type.value)
    ]


def deletable(rows: Sequence[MadeProduct], reason: WithdrawReason) -> list[ProductCreatedPayload]:
    """The products a decision deletes for ``reason``: the live ones, and those it deleted
    already for the same reason (a redelivered decision whose answer may not have been
    handed on: its ledger steps are done, its events the same again)."""
    return [
        r.payload
        for r in rows
        if r.payload is not None
        and (r.state == "made" or (r.state == "deleted" and r.deleted_reason == reason))
    ]
