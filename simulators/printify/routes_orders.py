"""Test hooks that play a shop's buyers (:mod:`simulators.printify.orders`).

``POST /_sim/orders`` ``{"count": N, "lines": [{"product_id", "variant_id"?, "quantity"?}],
"shop_id"?}`` makes N orders of the token's account, each with those lines, and sends
``order:created`` for each; ``POST /_sim/orders/{id}/status`` ``{"status": "canceled"}`` moves
an order on and sends ``order:updated``; ``GET /_sim/orders`` lists the account's orders as
Printify shows them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from simulators.printify.deps import Sim
from simulators.printify.errors import Invalid, NotFound, ok
from simulators.printify.orders import ORDER_STATUSES, Order, line_of, new_order_id
from simulators.printify.state import SHOP_ID, Account, now_stamp
from simulators.printify.validation import bearer, require_body

router = APIRouter(prefix="/_sim/orders")

MAX_ORDERS = 1000  # per call


def _account(request: Request, sim: Sim) -> Account:
    token = bearer(request)
    if token is None:
        raise Invalid("a bearer token (the account whose shop sells) is required")
    return sim.accounts.account(token)


@router.get("")
async def list_orders(request: Request, sim: Sim) -> Response:
    acct = _account(request, sim)
    return ok([o.as_json() for o in sim.orders.by_account.get(acct.key, {}).values()])


@router.post("")
async def make_orders(request: Request, sim: Sim) -> Response:
    acct = _account(request, sim)
    body = await require_body(request)
    count, lines, shop = body.get("count", 1), body.get("lines"), body.get("shop_id", SHOP_ID)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_ORDERS:
        raise Invalid(f"count: an integer from 1 to {MAX_ORDERS}")
    if not isinstance(lines, list) or not lines or not all(isinstance(x, dict) for x in lines):
        raise Invalid("lines: a non-empty list of {product_id, variant_id?, quantity?}")
    shop_id = str(shop)
    if sim.shop(shop_id) is None:
        raise NotFound("Shop")
    try:
        made = [line_of(acct, wanted) for wanted in lines]
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    orders = []
    for _ in range(count):
        order = Order(new_order_id(), int(shop_id), [*made], now_stamp())
        sim.orders.add(acct, order)
        sim.webhooks.send(acct, order.shop_id, "order:created", order.resource())
        orders.append(order.as_json())
    return ok({"orders": orders})


@router.post("/{order_id}/status")
async def set_status(order_id: str, request: Request, sim: Sim) -> Response:
    acct = _account(request, sim)
    body = await require_body(request)
    status = body.get("status")
    if not isinstance(status, str) or status not in ORDER_STATUSES:
        raise Invalid(f"status: one of {sorted(ORDER_STATUSES)}")
    order = sim.orders.get(acct, order_id)
    if order is None:
        raise NotFound("Order")
    order.set_status(status)
    sim.webhooks.send(acct, order.shop_id, "order:updated", order.resource())
    return ok(order.as_json())
