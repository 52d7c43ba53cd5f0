"""Retail prices from production costs: never below cost, with the seller's margin, ending .99.

Printify charges the seller each variant's production cost, which grows with the size (a 5XL
hoodie costs half as much again as an S) and which it only reveals on a product it has made.
A flat price per product type sells the large sizes at a loss, and Printify refuses to publish a
variant priced below its cost. So each variant is priced from its own cost: the larger of the
margin (a share of the cost) and the minimum profit, never under the type's list price, then
rounded up to the retail ending.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, Field

from shared.contract.events import PriceSummary as PriceSummary  # its home is the event contract


class PricingRule(BaseModel):
    """How one product type is priced from its variants' costs (all amounts in cents)."""

    margin_percent: float = Field(
        default=40.0, ge=0, le=1000, description="Mark-up on the production cost, in percent"
    )
    min_profit_cents: int = Field(default=400, ge=0, description="Least profit per item")
    floor_cents: int = Field(default=0, ge=0, description="List price: no variant sells below")
    ending_cents: int = Field(default=99, ge=0, le=99, description="Retail ending: 99 = x.99")


def retail_price(cost_cents: int, rule: PricingRule) -> int:
    """The retail price of one variant: cost + the rule's profit, rounded up to its ending."""
    if cost_cents < 0:
        raise ValueError(f"cost must not be negative, got {cost_cents}")
    target = max(
        math.ceil(cost_cents * (1 + rule.margin_percent / 100)),
        cost_cents + rule.min_profit_cents,
        rule.floor_cents,
        1,
    )
    price = (target // 100) * 100 + rule.ending_cents
    return price if price >= target else price + 100


def price_variants(costs: Mapping[int, int], rule: PricingRule) -> dict[int, int]:
    """``{variant id: price}`` for ``{variant id: cost}``."""
    return {vid: retail_price(cost, rule) for vid, cost in costs.items()}


def summarise(costs: Mapping[int, int], prices: Mapping[int, int]) -> PriceSummary:
    """The ranges of ``prices`` and ``costs`` (same variants) and the least profit."""
    if not costs or set(costs) != set(prices):
        raise ValueError("costs and prices must name the same, non-empty set of variants")
    return PriceSummary(
        price_min_cents=min(prices.values()),
        price_max_cents=max(prices.values()),
        cost_min_cents=min(costs.values()),
        cost_max_cents=max(costs.values()),
        profit_min_cents=min(prices[v] - costs[v] for v in costs),
        margin_min_percent=round(min(100 * (prices[v] - costs[v]) / prices[v] for v in costs), 1),
    )
