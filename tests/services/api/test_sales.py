"""``GET /sales``, ``GET /sales/series``, ``/stats``' sales and a job's designs' sales, read
from orders the monitor folded (the fold itself: tests/services/monitor/test_orders.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
from tests.support.orders import Shop, call, line


def rows(api: httpx.Client, by: str, **params: int) -> dict[str, dict[str, Any]]:
    resp = api.get("/sales", params={"by": by, "limit": 200, **params})
    assert resp.status_code == 200, resp.text
    assert resp.json()["by"] == by
    return {r["key"]: r for r in resp.json()["rows"]}


async def test_sales_by_design_theme_and_niche_with_the_job_s_designs(
    api: httpx.Client, pool: AsyncConnectionPool
) -> None:
    shop = Shop(Folder(pool))
    await shop.fold_made()
    a, b = shop.product_ids
    now = datetime.now(UTC)
    stats_before = api.get("/stats").json()["sales"]
    # Two orders now; one two days ago (outside a 24-hour window); one canceled.
    for at, lines in (
        (now, [line(a, 2, 3000, 1200)]),
        (now, [line(a, 1, 3000, 1200), line(b, 1, 2600, 1000)]),
        (now - timedelta(days=2), [line(b, 5, 2600, 1000)]),
    ):
        await shop.fold(call(uuid.uuid4().hex[:24], "order:created", at, "pending", lines))
    gone = uuid.uuid4().hex[:24]
    await shop.fold(call(gone, "order:created", now, "pending", [line(b, 7, 2600, 1000)]))
    await shop.fold(call(gone, "order:updated", now + timedelta(seconds=1), "canceled", None))

    theme = rows(api, "theme")[shop.theme]
    assert (theme["orders"], theme["units"]) == (3, 9)
    assert theme["revenueCents"] == 3 * 3000 + 6 * 2600
    recent = rows(api, "theme", hours=24)[shop.theme]
    assert (recent["orders"], recent["units"], recent["revenueCents"]) == (2, 4, 11600)
    assert recent["costCents"] == 3 * 1200 + 1000
    assert recent["profitCents"] == 11600 - 4600
    assert recent["marginPercent"] == pytest.approx(round(100 * 7000 / 11600, 2))
    assert rows(api, "niche", hours=24)[shop.niche]["units"] == 4

    designs = rows(api, "design", hours=24)
    first = designs[f"{shop.job.job_id}:0"]
    assert (first["jobId"], first["imageIndex"], first["units"]) == (shop.job.job_id, 0, 3)
    product = rows(api, "product", hours=24)[a]
    assert (product["productType"], product["revenueCents"]) == ("tshirt", 9000)

    stats = api.get("/stats").json()["sales"]
    assert stats["units"] - stats_before["units"] == 9
    assert stats["revenueCents"] - stats_before["revenueCents"] == 24600

    detail = api.get(f"/jobs/{shop.job.job_id}").json()
    sold = {i["imageIndex"]: i["sales"] for i in detail["images"]}
    assert sold[0]["units"] == 3 and sold[0]["revenueCents"] == 9000
    assert sold[1]["units"] == 6 and sold[1]["orders"] == 2

    series = api.get("/sales/series", params={"by": "theme", "hours": 1, "top": 10}).json()
    assert series["bucket"] == "minute"
    assert shop.theme in series["keys"]
    mine = [p for p in series["points"] if p["key"] == shop.theme]
    assert sum(p["units"] for p in mine) == 4
    assert sum(p["revenueCents"] for p in mine) == 11600


def test_bad_sales_queries_are_400(api: httpx.Client) -> None:
    for params in (
        {"by": "color"},
        {"hours": 0},
        {"hours": 24 * 365 + 1},
        {"limit": 0},
        {"limit": 201},
    ):
        resp = api.get("/sales", params=params)
        assert resp.status_code in (400, 422), (params, resp.text)
    assert api.get("/sales/series", params={"top": 11}).status_code in (400, 422)
