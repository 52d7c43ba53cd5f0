"""Prices from costs: never below cost plus the least profit, never below the list price."""

from __future__ import annotations

import pytest

from shared.domain.pricing import PricingRule, price_variants, retail_price, summarise


@pytest.mark.parametrize(
    ("cost", "rule", "price"),
    [
        (1048, PricingRule(margin_percent=40, min_profit_cents=400), 1499),  # 1467.2 -> 14.99
        (2127, PricingRule(margin_percent=40, min_profit_cents=400), 2999),  # 2977.8 -> 29.99
        (450, PricingRule(margin_percent=40, min_profit_cents=400), 899),  # profit floor: 8.50
        (1048, PricingRule(floor_cents=1999), 1999),  # the list price already ends in .99
        (1900, PricingRule(margin_percent=0, min_profit_cents=0), 1999),  # 19.00 -> 19.99
        (1999, PricingRule(margin_percent=0, min_profit_cents=0), 1999),
        (2000, PricingRule(margin_percent=0, min_profit_cents=0), 2099),
        (1000, PricingRule(margin_percent=0, min_profit_cents=0, ending_cents=0), 1000),
        (0, PricingRule(margin_percent=0, min_profit_cents=0, ending_cents=0), 100),
    ],
)
def test_retail_price(cost: int, rule: PricingRule, price: int) -> None:
    assert retail_price(cost, rule) == price


@pytest.mark.parametrize("cost", range(0, 20_000, 197))
@pytest.mark.parametrize("margin", [0.0, 12.5, 40.0, 250.0])
def test_never_below_cost_plus_profit_and_always_the_ending(cost: int, margin: float) -> None:
    rule = PricingRule(margin_percent=margin, min_profit_cents=250, floor_cents=1999)
    price = retail_price(cost, rule)
    assert price >= cost + 250
    assert price >= cost * (1 + margin / 100)
    assert price >= 1999
    assert price % 100 == 99
    assert price - 100 < max(cost * (1 + margin / 100), cost + 250, 1999)  # the least such


def test_a_product_summary() -> None:
    costs = {1: 2187, 2: 2187, 3: 3651}
    prices = price_variants(costs, PricingRule(margin_percent=40, floor_cents=3499))
    assert prices == {1: 3499, 2: 3499, 3: 5199}
    summary = summarise(costs, prices)
    assert (summary.price_min_cents, summary.price_max_cents) == (3499, 5199)
    assert (summary.cost_min_cents, summary.cost_max_cents) == (2187, 3651)
    assert summary.profit_min_cents == 1312
    assert summary.margin_min_percent == 29.8  # the 5XL: 1548 / 5199
    with pytest.raises(ValueError):
        summarise(costs, {1: 3499})
    with pytest.raises(ValueError):
        retail_price(-1, PricingRule())
