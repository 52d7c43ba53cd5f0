"""Orders, as Printify keeps them and tells a shop's webhooks about them.

An order is made here by a test (``POST /_sim/orders``: N orders of given products) rather than
by a buyer on a sales channel; from then on it behaves as Printify's: ``order:created`` goes to
the shop's webhooks of that topic, and each change of status (``POST
/_sim/orders/{id}/status``) sends ``order:updated``, signed as every other call
(:class:`simulators.printify.webhooks.WebhookSender`).

The order's shape is Printify's "Retrieve an order" (https://developers.printify.com/
``#retrieve-an-order``, read 2026-12-06): ``id``, ``line_items`` (``product_id``,
``variant_id``, ``quantity``, ``print_provider_id``, ``cost`` and ``shipping_cost`` in cents,
``status``, ``metadata`` {``title``, ``price``, ``variant_label``, ``sku``, ``country``}),
``metadata`` {``order_type``, ``shop_order_id``, ...}, ``total_price``, ``total_shipping``,
``total_tax``, ``status``, ``shipping_method``, ``created_at``, ``sent_to_production_at``,
``fulfilled_at``, ``shipments``. A webhook call carries it as ``resource.data`` beside
``shop_id`` (``#events``, ``#payload-examples``: ``{id, type, created_at, resource: {id, type:
"order", data: {shop_id, ...}}}``). A line's ``cost`` is what Printify charges the merchant for
one unit (the variant's production cost); ``metadata.price`` what the buyer paid for one unit
(the variant's price in the product).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from simulators.printify.state import Account, now_stamp

# Printify's order statuses (``#orders``: "pending", "on-hold", "sending-to-production",
# "in-production", "canceled", "fulfilled", "partially-fulfilled", "payment-not-received",
# "callback-received", "cost-calculation", "has-issues").
ORDER_STATUSES = frozenset(
    {
        "pending",
        "on-hold",
        "payment-not-received",
        "cost-calculation",
        "callback-received",
        "sending-to-production",
        "in-production",
        "partially-fulfilled",
        "fulfilled",
        "canceled",
        "has-issues",
    }
)
SHIPPING_COST = 400  # cents per line, Printify's standard shipping of one item


@dataclass
class OrderLine:
    product_id: str
    variant_id: int
    quantity: int
    print_provider_id: int
    cost: int
    price: int
    title: str
    variant_label: str
    sku: str

    def as_json(self, status: str, sent_at: str | None, fulfilled_at: str | None) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "quantity": self.quantity,
            "variant_id": self.variant_id,
            "print_provider_id": self.print_provider_id,
            "cost": self.cost,
            "shipping_cost": SHIPPING_COST,
            "status": status,
            "metadata": {
                "title": self.title,
                "price": self.price,
                "variant_label": self.variant_label,
                "sku": self.sku,
                "country": "United States",
            },
            "sent_to_production_at": sent_at,
            "fulfilled_at": fulfilled_at,
        }


@dataclass
class Order:
    id: str
    shop_id: int
    lines: list[OrderLine]
    created_at: str
    status: str = "pending"
    sent_to_production_at: str | None = None
    fulfilled_at: str | None = None
    shop_order_id: int = field(default_factory=lambda: secrets.randbelow(9 * 10**9) + 10**9)

    def set_status(self, status: str) -> None:
        now = now_stamp()
        if status in ("sending-to-production", "in-production") and not self.sent_to_production_at:
            self.sent_to_production_at = now
        if status == "fulfilled":
            self.sent_to_production_at = self.sent_to_production_at or now
            self.fulfilled_at = now
        self.status = status

    def as_json(self) -> dict[str, Any]:
        sent, done = self.sent_to_production_at, self.fulfilled_at
        return {
            "id": self.id,
            "address_to": {"first_name": "Sim", "last_name": "Buyer", "country": "US"},
            "line_items": [line.as_json(self.status, sent, done) for line in self.lines],
            "metadata": {
                "order_type": "external",
                "shop_order_id": self.shop_order_id,
                "shop_order_label": str(self.shop_order_id),
                "shop_fulfilled_at": done,
            },
            "total_price": sum(line.price * line.quantity for line in self.lines),
            "total_shipping": SHIPPING_COST * len(self.lines),
            "total_tax": 0,
            "status": self.status,
            "shipping_method": 1,
            "is_printify_express": False,
            "is_economy_shipping": False,
            "shipments": [],
            "created_at": self.created_at,
            "sent_to_production_at": sent,
            "fulfilled_at": done,
        }

    def resource(self) -> dict[str, Any]:
        """The order as a webhook call's ``resource``."""
        return {"id": self.id, "type": "order", "data": {"shop_id": self.shop_id, **self.as_json()}}


class OrderBook:
    """Each account's orders, by id (bounded: the oldest are forgotten beyond ``limit``)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.by_account: dict[str, dict[str, Order]] = {}

    def add(self, acct: Account, order: Order) -> None:
        orders = self.by_account.setdefault(acct.key, {})
        orders[order.id] = order
        while len(orders) > self.limit:
            orders.pop(next(iter(orders)))

    def get(self, acct: Account, order_id: str) -> Order | None:
        return self.by_account.get(acct.key, {}).get(order_id)

    def reset(self) -> None:
        self.by_account.clear()


def new_order_id() -> str:
    """An order id as Printify makes them (24 hex digits)."""
    return secrets.token_hex(12)


def line_of(acct: Account, wanted: dict[str, object]) -> OrderLine:
    """An order line for ``wanted`` ({product_id, variant_id?, quantity?, price?, cost?}): the
    product's variant (its first enabled one by default) at the product's price and the
    variant's cost. A product the account does not have (made by hand in Printify, or deleted
    since) needs variant_id, price and cost. ValueError when something is wrong."""
    product_id = wanted.get("product_id")
    if not isinstance(product_id, str) or not product_id:
        raise ValueError("product_id: a product id")
    quantity = _int(wanted.get("quantity", 1), "quantity", low=1)
    product = acct.products.get(product_id)
    if product is None:
        if not all(k in wanted for k in ("variant_id", "price", "cost")):
            raise ValueError(
                f"product {product_id} is not the account's: give variant_id, price and cost"
            )
        variant_id = _int(wanted["variant_id"], "variant_id", low=1)
        return OrderLine(
            product_id=product_id,
            variant_id=variant_id,
            quantity=quantity,
            print_provider_id=1,
            cost=_int(wanted["cost"], "cost", low=0),
            price=_int(wanted["price"], "price", low=0),
            title="A product made elsewhere",
            variant_label="",
            sku=str(variant_id),
        )
    enabled = [v for v in product.variants if v.is_enabled]
    if "variant_id" in wanted:
        variant_id = _int(wanted["variant_id"], "variant_id", low=1)
        found = next((v for v in enabled if v.id == variant_id), None)
        if found is None:
            raise ValueError(f"variant_id: {variant_id} is not an enabled variant of the product")
        variant = found
    elif enabled:
        variant = enabled[0]
    else:
        raise ValueError(f"product {product_id} has no enabled variant to sell")
    return OrderLine(
        product_id=product_id,
        variant_id=variant.id,
        quantity=quantity,
        print_provider_id=product.print_provider_id,
        cost=variant.cost,
        price=variant.price,
        title=product.title,
        variant_label=variant.title,
        sku=variant.sku,
    )


def _int(value: object, name: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: an integer of at least {low}")
    return value
