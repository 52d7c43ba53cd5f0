"""The monitor's fold of Printify's order webhooks: what sells, per product, design, theme and
niche; idempotent and indifferent to the order the calls arrive in."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
from shared.adapters.store import orders
from shared.contract.events import PrintifyWebhookPayload, PrintifyWebhookReceived
from shared.contract.topics import PRINTIFY_WEBHOOKS
from shared.platform.errors import InvalidEventError
from tests.support.orders import OFFSETS, T0, Shop, call, line


async def test_orders_count_per_product_design_theme_and_niche(pool: AsyncConnectionPool) -> None:
    shop = Shop(Folder(pool))
    await shop.fold_made()
    async with pool.connection() as conn:
        other_before = (await shop.by(pool, "theme")).get(orders.OTHER, {}).get("units", 0)
        totals_before = await orders.totals(conn)
    a, b = shop.product_ids
    o1, o2, o3 = (uuid.uuid4().hex[:24] for _ in range(3))
    assert await shop.fold(
        call(o1, "order:created", T0, "pending", [line(a, 2, 3000, 1200), line(b, 1, 2500, 1000)])
    )
    assert await shop.fold(call(o2, "order:created", T0, "pending", [line(a, 1, 3000, 1200)]))
    # A product we never made: kept, counted as "other".
    stranger = [line(f"not-ours-{o3}", 4, 900, 500)]
    assert await shop.fold(call(o3, "order:created", T0, "pending", stranger))

    theme = (await shop.by(pool, "theme"))[shop.theme]
    assert (theme["orders"], theme["units"]) == (2, 4)
    assert theme["revenue_cents"] == 3 * 3000 + 2500
    assert theme["cost_cents"] == 3 * 1200 + 1000
    assert theme["profit_cents"] == 11500 - 4600
    assert theme["margin_percent"] == pytest.approx(60.0)
    assert (await shop.by(pool, "niche"))[shop.niche]["revenue_cents"] == 11500

    designs = await shop.by(pool, "design")
    first, second = designs[f"{shop.job.job_id}:0"], designs[f"{shop.job.job_id}:1"]
    assert (first["orders"], first["units"], first["revenue_cents"]) == (2, 3, 9000)
    assert (second["image_index"], second["units"], second["revenue_cents"]) == (1, 1, 2500)
    products = await shop.by(pool, "product")
    assert products[a]["product_type"] == "tshirt" and products[a]["job_id"] == shop.job.job_id

    other = (await shop.by(pool, "theme"))[orders.OTHER]
    assert other["units"] - other_before == 4
    async with pool.connection() as conn:
        totals = await orders.totals(conn)
        per_image = await orders.job_designs(conn, shop.job.job_id)
    assert totals["orders"] - totals_before["orders"] == 3
    assert totals["revenue_cents"] - totals_before["revenue_cents"] == 11500 + 3600
    assert set(per_image) == {0, 1} and per_image[0]["revenue_cents"] == 9000


async def test_a_repeated_or_late_call_never_counts_twice_nor_undoes_newer_news(
    pool: AsyncConnectionPool,
) -> None:
    shop = Shop(Folder(pool), images=1)
    await shop.fold_made()
    [a] = shop.product_ids
    order = uuid.uuid4().hex[:24]
    created = call(order, "order:created", T0, "pending", [line(a, 2, 3000, 1200)])
    assert await shop.fold(created)
    # The same call delivered again (Printify retries): a new Kafka record, the same call id.
    again = created.model_copy(update={"event_id": uuid.uuid4()})
    assert not await shop.fold(again)
    assert (await shop.by(pool, "theme"))[shop.theme]["units"] == 2

    # A status change that carries no lines moves the order on and keeps its lines ...
    produced = call(order, "order:updated", T0 + timedelta(seconds=5), "in-production", None)
    assert await shop.fold(produced)
    assert (await shop.by(pool, "theme"))[shop.theme]["units"] == 2
    # ... and an older call folded after it (another partition's order) changes nothing.
    stale = call(order, "order:updated", T0 + timedelta(seconds=2), "on-hold", [line(a, 9, 1, 1)])
    assert not await shop.fold(stale)
    assert (await shop.by(pool, "theme"))[shop.theme]["units"] == 2
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status FROM orders WHERE order_id = %s", (order,))
        assert await cur.fetchone() == ("in-production",)


async def test_an_update_before_its_creation_is_the_order_s_state(
    pool: AsyncConnectionPool,
) -> None:
    shop = Shop(Folder(pool), images=1)
    await shop.fold_made()
    [a] = shop.product_ids
    order = uuid.uuid4().hex[:24]
    # The update (status only) arrives first: an order with nothing known of its lines.
    update = call(order, "order:updated", T0 + timedelta(seconds=3), "fulfilled", None)
    assert await shop.fold(update)
    assert shop.theme not in await shop.by(pool, "theme")
    # The creation, older, still tells the lines; the status stays the update's.
    assert await shop.fold(call(order, "order:created", T0, "pending", [line(a, 3, 2800, 1100)]))
    theme = (await shop.by(pool, "theme"))[shop.theme]
    assert (theme["units"], theme["revenue_cents"], theme["cost_cents"]) == (3, 8400, 3300)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, placed_at FROM orders WHERE order_id = %s", (order,)
        )
        assert await cur.fetchone() == ("fulfilled", T0)


async def test_a_canceled_order_stops_counting_even_when_told_in_the_same_second(
    pool: AsyncConnectionPool,
) -> None:
    shop = Shop(Folder(pool), images=1)
    await shop.fold_made()
    [a] = shop.product_ids
    kept, canceled = uuid.uuid4().hex[:24], uuid.uuid4().hex[:24]
    for order in (kept, canceled):
        await shop.fold(call(order, "order:created", T0, "pending", [line(a, 1, 3000, 1200)]))
    assert (await shop.by(pool, "theme"))[shop.theme]["orders"] == 2
    lines = [line(a, 1, 3000, 1200, status="canceled")]
    # Printify stamps calls to the second: a cancel in the same second is still the later news.
    assert await shop.fold(call(canceled, "order:updated", T0, "canceled", lines))
    theme = (await shop.by(pool, "theme"))[shop.theme]
    assert (theme["orders"], theme["units"], theme["revenue_cents"]) == (1, 1, 3000)


async def test_a_line_without_its_cost_is_costed_from_our_product(
    pool: AsyncConnectionPool,
) -> None:
    shop = Shop(Folder(pool), images=1)
    await shop.fold_made(cost_max=1700)
    [a] = shop.product_ids
    order = uuid.uuid4().hex[:24]
    await shop.fold(call(order, "order:created", T0, "pending", [line(a, 2, 3000, None)]))
    theme = (await shop.by(pool, "theme"))[shop.theme]
    # Our highest recorded cost: a margin is never overstated.
    assert (theme["cost_cents"], theme["profit_cents"]) == (3400, 2600)


@pytest.mark.parametrize(
    ("data", "lines", "sent_at", "where"),
    [
        ({}, [{"product_id": "p", "quantity": "many"}], True, "line_items.0.quantity"),
        ({}, [{"product_id": "p", "quantity": 0}], True, "line_items.0.quantity"),
        ({}, [{"quantity": 1}], True, "line_items.0.product_id"),
        ({"status": None}, None, True, "resource.data.status"),
        ({"total_price": -5}, None, True, "total_price"),
        ({"id": "another-order"}, None, True, "resource.data.id"),
        ({}, None, False, "created_at"),
        ({"created_at": "yesterday"}, None, True, "created_at"),
    ],
)
async def test_an_order_that_does_not_validate_is_refused_with_its_reason(
    pool: AsyncConnectionPool,
    data: dict[str, Any],
    lines: list[dict[str, Any]] | None,
    sent_at: bool,
    where: str,
) -> None:
    order = uuid.uuid4().hex[:24]
    data = dict(data)
    bad = call(order, "order:created", T0, data.pop("status", "pending"), lines, **data)
    if not sent_at:
        bad = bad.model_copy(update={"payload": bad.payload.model_copy(update={"sent_at": None})})
    with pytest.raises(InvalidEventError, match=where.replace(".", r"\.")):
        await Folder(pool).fold(bad, PRINTIFY_WEBHOOKS, 0, next(OFFSETS))
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", (order,))
        assert await cur.fetchone() == (0,)


async def test_other_calls_are_passed_over_and_logged_in_no_job(
    pool: AsyncConnectionPool,
) -> None:
    started = PrintifyWebhookReceived(
        job_id="printify:product:p1",
        producer="api",
        payload=PrintifyWebhookPayload(
            webhook_event_id=uuid.uuid4().hex,
            topic="product:publish:started",
            resource_id="p1",
            resource_type="product",
            data={"shop_id": 1, "action": "create"},
        ),
    )
    assert not await Folder(pool).fold(started, PRINTIFY_WEBHOOKS, 0, next(OFFSETS))
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM job_events WHERE event_id = %s", (started.event_id,)
        )
        assert await cur.fetchone() == (0,)
