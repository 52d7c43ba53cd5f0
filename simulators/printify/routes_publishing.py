"""The publishing handshake: ``publish``, then ``publishing_succeeded`` or
``publishing_failed`` (custom integration), or the channel's own answer later (Etsy, Shopify,
... : :meth:`simulators.printify.state.Account.settle_channels`); ``unpublish`` when the
storefront takes a product off sale again."""

from __future__ import annotations

import logging
import random
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from simulators.printify.deps import Acct, PrintifySim, Sim, product_of, shop_of
from simulators.printify.errors import Invalid, locked, ok, too_many
from simulators.printify.products import below_cost
from simulators.printify.state import SALES_CHANNEL, Account, PendingListing
from simulators.printify.validation import external, json_body, publish_body, require_body

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/shops/{shop_id}/products/{product_id}")


@router.post("/publish.json")
async def publish(
    request: Request, shop_id: str, product_id: str, sim: Sim, acct: Acct
) -> Response:
    product = product_of(sim, acct, shop_id, product_id)
    body = await require_body(request)
    publish_body(body)
    wait = sim.limits.publishes.check(acct.key)
    if wait is not None:
        acct.rate_limited += 1
        return too_many(wait, "Publishing")
    if product.is_locked and sim.behaviour.publish_locked == "refuse":
        return locked()
    below = below_cost(product)
    if below is not None:
        acct.publish_below_cost += 1
        raise Invalid(below)
    acct.publish_calls[product_id] += 1
    product.is_locked = True
    channel = shop_of(sim, shop_id).sales_channel
    if channel != SALES_CHANNEL:
        # Printify pushes the product to the channel, which lists it later, or refuses it.
        refused = random.random() < sim.channels.failure_rate
        now = time.time()
        due = now + sim.channels.publish_ms / 1000
        acct.channel_pending[product_id] = PendingListing(due, refused, channel)
        request.app.state.request_log.work(f"listing on {channel}", now, due, product_id)
    else:
        _publish_started(sim, acct, int(shop_id), product_id, body)
    logger.info("publish account=%s product=%s", acct.key, product_id)
    return ok({})


def _publish_started(
    sim: PrintifySim, acct: Account, shop_id: int, product_id: str, body: dict[str, object]
) -> None:
    """A custom integration learns of the publication from this webhook, and answers with
    publishing_succeeded or publishing_failed."""
    details = {k: v for k, v in body.items() if k != "keyFeatures"}
    details["key_features"] = bool(body.get("keyFeatures", True))
    sim.webhooks.send(
        acct,
        shop_id,
        "product:publish:started",
        {
            "id": product_id,
            "type": "product",
            "data": {"shop_id": shop_id, "publish_details": details, "action": "create"},
        },
    )


@router.post("/publishing_succeeded.json")
async def publishing_succeeded(
    request: Request, shop_id: str, product_id: str, sim: Sim, acct: Acct
) -> Response:
    product = product_of(sim, acct, shop_id, product_id)
    channel = shop_of(sim, shop_id).sales_channel
    if channel != SALES_CHANNEL:
        # Printify confirms publications to Etsy, Shopify, ... itself: the handshake belongs
        # to shops connected through the API (custom integration).
        acct.handshake_refused += 1
        raise Invalid(
            f"publishing_succeeded is for custom integration shops; shop {shop_id} is "
            f"connected to {channel}"
        )
    product.external = external(await json_body(request))
    product.is_locked = False
    acct.publish_succeeded[product_id] += 1
    return ok({})


@router.post("/publishing_failed.json")
async def publishing_failed(
    request: Request, shop_id: str, product_id: str, sim: Sim, acct: Acct
) -> Response:
    product = product_of(sim, acct, shop_id, product_id)
    body = await json_body(request)
    if body is None or not isinstance(body.get("reason"), str):
        raise Invalid("reason is required and must be a string")
    product.is_locked = False
    acct.publish_failed[product_id] += 1
    return ok({})


@router.post("/unpublish.json")
async def unpublish(shop_id: str, product_id: str, sim: Sim, acct: Acct) -> Response:
    """Printify's "notify that a product has been unpublished": the storefront took the
    product off sale, so Printify forgets the listing (``external``) and unlocks the product;
    it stays in the shop, and may be published again. A handshake call, like
    publishing_succeeded: the storefront's (custom integration); Printify's own channels unlist
    a product themselves."""
    product = product_of(sim, acct, shop_id, product_id)
    channel = shop_of(sim, shop_id).sales_channel
    if channel != SALES_CHANNEL:
        acct.handshake_refused += 1
        raise Invalid(
            f"unpublish is for custom integration shops; shop {shop_id} is connected to {channel}"
        )
    product.external = None
    product.is_locked = False
    acct.unpublished[product_id] += 1
    return ok({})
