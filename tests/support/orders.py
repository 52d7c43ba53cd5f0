"""Printify order webhooks for tests, and a job whose products they buy (folded like the
stages' events), for the orders' fold, the sales routes and the "What sells" page."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
from shared.adapters.store import orders
from shared.contract.events import (
    JobRequested,
    JobRequestedPayload,
    PriceSummary,
    PrintifyWebhookPayload,
    PrintifyWebhookReceived,
    ProductCreated,
)
from shared.contract.topics import PRINTIFY_WEBHOOKS
from tests.support.events import image, product

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
OFFSETS = itertools.count()


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S+00:00")


def call(
    order_id: str,
    topic: str,
    at: datetime,
    status: str | None,
    lines: list[dict[str, Any]] | None,
    *,
    call_id: str | None = None,
    **data: Any,
) -> PrintifyWebhookReceived:
    body: dict[str, Any] = {"shop_id": 12345678, "id": order_id, "status": status, **data}
    if lines is not None:
        body["line_items"] = lines
    call_id = call_id or uuid.uuid4().hex
    return PrintifyWebhookReceived(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, call_id),
        job_id=f"printify:order:{order_id}",
        producer="api",
        payload=PrintifyWebhookPayload(
            webhook_event_id=call_id,
            topic=topic,
            resource_id=order_id,
            resource_type="order",
            shop_id="12345678",
            data=body,
            sent_at=stamp(at),
        ),
    )


def line(product_id: str, quantity: int, price: int, cost: int | None, **more: Any) -> Any:
    out: dict[str, Any] = {
        "product_id": product_id,
        "variant_id": 17390,
        "quantity": quantity,
        "metadata": {"price": price, "title": "x"},
        **more,
    }
    if cost is not None:
        out["cost"] = cost
    return out


class Shop:
    """A job of its own (unique theme and niche) with a tshirt per image, folded."""

    def __init__(self, folder: Folder, images: int = 2) -> None:
        tag = uuid.uuid4().hex[:8]
        self.folder = folder
        self.theme, self.niche = f"theme-{tag}", f"niche-{tag}"
        self.job = JobRequested(
            job_id=f"sells-{tag}",
            producer="api",
            payload=JobRequestedPayload(
                theme=self.theme,
                style="s",
                niche=self.niche,
                product_types=["tshirt"],
                count=images,
            ),
        )
        self.product_ids = [f"pfy-{tag}-{i}" for i in range(images)]

    async def fold_made(self, cost_max: int = 1500, art: tuple[str, str] | None = None) -> None:
        """The job, its images (``art``: each image's (sha256, uri)) and a tshirt of each."""
        await self.fold(self.job)
        for i, pid in enumerate(self.product_ids):
            made_image = image(self.job, i)
            if art is not None:
                sha, uri = art
                drawn = made_image.payload.model_copy(update={"sha256": sha, "uri": uri})
                made_image = made_image.model_copy(update={"payload": drawn})
            await self.fold(made_image)
            made = product(self.job, i, "tshirt")
            payload = made.payload.model_copy(
                update={
                    "product_id": pid,
                    "prices": PriceSummary(
                        price_min_cents=2000, cost_min_cents=900, cost_max_cents=cost_max
                    ),
                }
            )
            await self.fold(made.model_copy(update={"payload": payload}))

    async def fold(self, event: Any) -> bool:
        assert not isinstance(event, ProductCreated) or event.payload.product_id
        return await self.folder.fold(event, PRINTIFY_WEBHOOKS, 0, next(OFFSETS))

    async def by(self, pool: AsyncConnectionPool, by: orders.SalesBy) -> dict[str, Any]:
        async with pool.connection() as conn:
            rows = await orders.sales_by(conn, by, None, limit=100_000)
        return {r["key"]: r for r in rows}
