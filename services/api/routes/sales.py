"""What sells: ``GET /sales`` (best products, designs, themes or niches over a window) and
``GET /sales/series`` (the same, per minute, hour or day, for a chart).

Read from the orders the monitor folds from Printify's ``order:*`` webhooks; nothing here
touches Kafka.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.api.auth import Principal
from services.api.schemas.common import COMMON_ERRORS
from services.api.schemas.sales import (
    SalesBy,
    SalesPoint,
    SalesRow,
    SalesSeries,
    SalesTop,
)
from services.api.state import State
from shared.adapters.store import orders

router = APIRouter(prefix="/sales", tags=["sales"], responses=COMMON_ERRORS)

MAX_HOURS = 24 * 365
By = Annotated[SalesBy, Query(description="product, design (job and image), theme or niche")]


def bucket_for(hours: int) -> orders.Bucket:
    """A bucket that gives a chart a few dozen to a few hundred points."""
    if hours <= 6:
        return "minute"
    if hours <= 24 * 7:
        return "hour"
    return "day"


@router.get("", response_model=SalesTop)
async def get_sales(
    state: State,
    principal: Principal,
    by: By = SalesBy.DESIGN,
    hours: Annotated[
        int | None, Query(ge=1, le=MAX_HOURS, description="Orders placed in the last hours")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> SalesTop:
    """The best sellers, by revenue; orders canceled do not count."""
    async with state.pool.connection() as conn:
        rows = await orders.sales_by(conn, by.value, hours, limit)
    return SalesTop(by=by, hours=hours, rows=[SalesRow(**r) for r in rows])


@router.get("/series", response_model=SalesSeries)
async def get_sales_series(
    state: State,
    principal: Principal,
    by: By = SalesBy.THEME,
    hours: Annotated[int, Query(ge=1, le=MAX_HOURS)] = 24,
    top: Annotated[int, Query(ge=1, le=10, description="How many of the best to draw")] = 5,
) -> SalesSeries:
    """The ``top`` best sellers of the window, each per bucket of time."""
    bucket = bucket_for(hours)
    async with state.pool.connection() as conn:
        best = await orders.sales_by(conn, by.value, hours, top)
        keys = [r["key"] for r in best]
        points = await orders.series(conn, by.value, keys, hours, bucket)
    return SalesSeries(
        by=by, hours=hours, bucket=bucket, keys=keys, points=[SalesPoint(**p) for p in points]
    )
