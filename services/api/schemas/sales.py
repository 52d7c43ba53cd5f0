"""What sells: Printify's orders as the monitor folds them (shared.adapters.store.orders)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from services.api.schemas.common import _Wire


class SalesBy(StrEnum):
    PRODUCT = "product"
    DESIGN = "design"
    THEME = "theme"
    NICHE = "niche"


class SalesFigures(_Wire):
    """Orders that count (not canceled), their units, revenue, cost, profit and margin."""

    orders: int
    units: int
    revenue_cents: int = Field(description="What the buyers paid (price x quantity)")
    cost_cents: int = Field(description="What Printify charges (the lines' cost, else ours)")
    profit_cents: int
    margin_percent: float | None = Field(description="Profit / revenue, in %; null with none")


class SalesRow(SalesFigures):
    """One product, design (job and image), theme or niche; ``key`` is ``other`` for what the
    engine never made."""

    key: str
    job_id: str | None = None
    image_index: int | None = None
    product_type: str | None = None


class SalesTop(_Wire):
    """``GET /sales`` answer: best first (by revenue)."""

    by: SalesBy
    hours: int | None = Field(description="The window, in hours (null: all time)")
    rows: list[SalesRow]


class SalesPoint(SalesFigures):
    key: str
    at: datetime = Field(description="Start of the bucket (orders placed in it)")


class SalesSeries(_Wire):
    """``GET /sales/series`` answer: the top ``keys`` per ``bucket``, oldest first."""

    by: SalesBy
    hours: int
    bucket: str = Field(description="minute, hour or day")
    keys: list[str]
    points: list[SalesPoint]
