"""Printify's orders as its ``order:created`` / ``order:updated`` webhook calls carry them.

The call's ``resource`` is ``{id, type: "order", data: {shop_id, ...the order...}}``; the order
is Printify's "Retrieve an order" shape (https://developers.printify.com/ ``#retrieve-an-order``,
``#events``, read 2026-12-06): ``status``, ``line_items`` (``product_id``, ``variant_id``,
``quantity``, ``cost`` and ``shipping_cost`` in cents, ``status``, ``metadata.price`` in
cents), ``total_price``, ``total_shipping``, ``created_at``. A call passed the signature check,
yet what it says is still checked here: :func:`order_of` gives a typed :class:`OrderUpdate` or
raises :class:`shared.platform.errors.InvalidEventError` saying which field is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.platform.errors import InvalidEventError

ORDER_TOPICS = frozenset({"order:created", "order:updated"})
CANCELED = "canceled"

# How far along an order's status is: of two calls sent in the same second, the one further
# along is the later news (a cancel last of all).
_STATUS_RANK = {
    "pending": 0,
    "on-hold": 1,
    "payment-not-received": 1,
    "cost-calculation": 1,
    "callback-received": 1,
    "has-issues": 1,
    "sending-to-production": 2,
    "in-production": 3,
    "partially-fulfilled": 4,
    "fulfilled": 5,
    CANCELED: 6,
}
_CENTS = Annotated[int, Field(ge=0, le=10**9)]
_TEXT = Annotated[str, Field(max_length=200)]


class LineMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    price: _CENTS | None = None
    title: _TEXT | None = None
    sku: _TEXT | None = None


class LineItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(extra="ignore")

    product_id: Annotated[str, Field(min_length=1, max_length=200)]
    variant_id: Annotated[int, Field(ge=0, le=2**62)] | None = None
    quantity: Annotated[int, Field(ge=1, le=100_000)]
    cost: _CENTS | None = None
    shipping_cost: _CENTS | None = None
    status: Annotated[str, Field(max_length=50)] | None = None
    metadata: LineMetadata | None = None


class OrderData(BaseModel):
    """The order in a call's ``resource.data``."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    shop_id: int | Annotated[str, Field(max_length=50)] | None = None
    status: Annotated[str, Field(min_length=1, max_length=50)]
    # None: the call said nothing of the lines (a status change alone).
    line_items: Annotated[list[LineItem], Field(max_length=1000)] | None = None
    total_price: _CENTS | None = None
    total_shipping: _CENTS | None = None
    created_at: Annotated[str, Field(max_length=100)] | None = None


@dataclass(frozen=True)
class OrderUpdate:
    """What one call says of an order, and where it stands among the order's calls."""

    order_id: str
    shop_id: str | None
    status: str
    placed_at: datetime
    total_price_cents: int | None
    total_shipping_cents: int | None
    lines: list[LineItem] | None
    version_at: datetime
    version_rank: int
    version_event: str

    @property
    def version(self) -> tuple[datetime, int, str]:
        return self.version_at, self.version_rank, self.version_event


def printify_time(value: str) -> datetime:
    """A Printify timestamp ("2026-12-06 18:00:00+00:00"; ISO 8601 too) as an aware datetime;
    ValueError when it is none."""
    stamp = datetime.fromisoformat(value.strip())
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def order_of(
    *, resource_id: str, data: dict[str, Any], sent_at: str | None, call_id: str
) -> OrderUpdate:
    """The order a webhook call carries; InvalidEventError naming the field when it is none."""
    try:
        order = OrderData.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidEventError(
            f"resource.data.{where}: {first.get('msg', 'invalid')}"
            f" ({exc.error_count()} problem(s) in the order)"
        ) from None
    if order.id is not None and order.id != resource_id:
        raise InvalidEventError(f"resource.data.id: {order.id!r} is not the resource's id")
    if sent_at is None:
        raise InvalidEventError("created_at: a call without its time cannot be ordered")
    try:
        version_at = printify_time(sent_at)
        placed_at = printify_time(order.created_at) if order.created_at else version_at
    except ValueError as exc:
        raise InvalidEventError(f"created_at: not a time ({exc})") from None
    status = order.status.strip().lower()
    return OrderUpdate(
        order_id=resource_id,
        shop_id=None if order.shop_id is None else str(order.shop_id),
        status=status,
        placed_at=min(placed_at, version_at),
        total_price_cents=order.total_price,
        total_shipping_cents=order.total_shipping,
        lines=order.line_items,
        version_at=version_at,
        version_rank=_STATUS_RANK.get(status, 1),
        version_event=call_id,
    )
