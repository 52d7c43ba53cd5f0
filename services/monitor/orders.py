"""Printify's webhook calls, as the monitor folds them: the orders (what sells).

A call is no job's event (its job id names the resource, ``printify:order:<id>``), so nothing
goes to a job's log (the fold's row is :class:`services.monitor.folders.PrintifyCallFolder`):
``order:created`` and ``order:updated`` are folded into ``orders`` / ``order_lines``
(:mod:`shared.adapters.store.orders`, idempotent and order-insensitive), every other topic is
someone else's (the storefront's publish handshake) and is passed over. A call whose order does
not validate raises :class:`shared.platform.errors.InvalidEventError`: the runner dead-letters
it with the reason (listed and replayable like any dead letter).
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from shared.adapters.store import orders
from shared.adapters.vendors.printify_orders import ORDER_TOPICS, order_of
from shared.contract.events import PrintifyWebhookReceived

logger = logging.getLogger(__name__)


async def fold_call(conn: AsyncConnection[Any], event: PrintifyWebhookReceived) -> bool | None:
    """Fold a Printify call if it is about an order: whether it changed the order (False: seen
    before, or older news); None when it is no order's call."""
    p = event.payload
    if p.topic not in ORDER_TOPICS:
        return None
    if p.resource_type != "order":
        logger.warning(
            "order webhook about a %s ignored topic=%s resource=%s",
            p.resource_type,
            p.topic,
            p.resource_id,
        )
        return None
    order = order_of(
        resource_id=p.resource_id, data=p.data, sent_at=p.sent_at, call_id=p.webhook_event_id
    )
    changed = await orders.fold(conn, order)
    if changed:
        logger.info(
            "order folded order=%s status=%s lines=%s",
            order.order_id,
            order.status,
            "-" if order.lines is None else len(order.lines),
        )
    return changed


def is_order_call(event: PrintifyWebhookReceived) -> bool:
    return event.payload.topic in ORDER_TOPICS
