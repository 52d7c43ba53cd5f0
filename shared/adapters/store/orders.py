"""The ``orders`` and ``order_lines`` tables: Printify's orders as the monitor folds them, and
what sells, read back per product, design, theme and niche.

An order's row holds its latest state only: a call replaces what the row says when its version
(:class:`shared.adapters.vendors.printify_orders.OrderUpdate`) is newer, so the same call twice
changes nothing and an order:updated folded before its order:created keeps its word. A call that
carries the order's lines replaces them when it is newer, or when no call had them yet.

Reads count the lines of orders that are not canceled (nor the line itself); revenue is the
price the buyer paid (the line's ``metadata.price``, else our product's lowest price) times the
quantity, cost what Printify charges (the line's cost, else our product's highest recorded cost,
so that a margin is never overstated). Lines are mapped to our products by Printify's product
id when read; a product we never made is "other".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from shared.adapters.vendors.printify_orders import OrderUpdate

OTHER = "other"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SalesBy = Literal["product", "design", "theme", "niche"]
Bucket = Literal["minute", "hour", "day"]

_LOCK = """
SELECT version_at, version_rank, version_event, lines_known
FROM orders WHERE order_id = %(id)s FOR UPDATE
"""
_INSERT = """
INSERT INTO orders (order_id, shop_id, status, placed_at, total_price_cents, total_shipping_cents,
                    version_at, version_rank, version_event)
VALUES (%(id)s, %(shop)s, %(status)s, %(placed)s, %(total)s, %(shipping)s,
        %(v_at)s, %(v_rank)s, %(v_event)s)
ON CONFLICT (order_id) DO NOTHING
"""
_NEWER = """
UPDATE orders SET status = %(status)s, shop_id = COALESCE(%(shop)s, shop_id),
    total_price_cents = COALESCE(%(total)s, total_price_cents),
    total_shipping_cents = COALESCE(%(shipping)s, total_shipping_cents),
    version_at = %(v_at)s, version_rank = %(v_rank)s, version_event = %(v_event)s,
    updated_at = now()
WHERE order_id = %(id)s
"""
# Whatever the call's version: the earliest placing time known.
_PLACED = """
UPDATE orders SET placed_at = %(placed)s WHERE order_id = %(id)s AND placed_at > %(placed)s
"""
_CLEAR_LINES = "DELETE FROM order_lines WHERE order_id = %(id)s"
_LINE = """
INSERT INTO order_lines (order_id, line_no, product_id, variant_id, quantity, price_cents,
                         cost_cents, shipping_cost_cents, status)
VALUES (%(id)s, %(no)s, %(product)s, %(variant)s, %(quantity)s, %(price)s, %(cost)s,
        %(shipping)s, %(status)s)
"""
_LINES_KNOWN = "UPDATE orders SET lines_known = TRUE WHERE order_id = %(id)s"


async def fold(conn: AsyncConnection[Any], order: OrderUpdate) -> bool:
    """Fold one call about an order; False when it changed nothing (seen, or older news)."""
    params = {
        "id": order.order_id,
        "shop": order.shop_id,
        "status": order.status,
        "placed": order.placed_at,
        "total": order.total_price_cents,
        "shipping": order.total_shipping_cents,
        "v_at": order.version_at,
        "v_rank": order.version_rank,
        "v_event": order.version_event,
    }
    inserted = (await conn.execute(_INSERT, params)).rowcount == 1
    cur = await conn.execute(_LOCK, params)
    row = await cur.fetchone()
    assert row is not None  # inserted above, or there already
    newer = inserted or order.version > (row[0], row[1], row[2])
    if newer and not inserted:
        await conn.execute(_NEWER, params)
    await conn.execute(_PLACED, params)
    lines_known = bool(row[3])
    if order.lines is None or not (newer or not lines_known):
        return newer
    await conn.execute(_CLEAR_LINES, params)
    for no, line in enumerate(order.lines):
        await conn.execute(
            _LINE,
            {
                "id": order.order_id,
                "no": no,
                "product": line.product_id,
                "variant": line.variant_id,
                "quantity": line.quantity,
                "price": line.metadata.price if line.metadata else None,
                "cost": line.cost,
                "shipping": line.shipping_cost,
                "status": line.status.strip().lower() if line.status else None,
            },
        )
    await conn.execute(_LINES_KNOWN, params)
    return True


# The lines that count (their order and themselves not canceled), placed since %(since)s, each
# with our product (the newest row of that Printify product id), its job, revenue and cost.
_COUNTED = """
WITH counted AS (
    SELECT o.order_id, o.placed_at, l.product_id, l.quantity AS units,
        p.job_id, p.image_index, p.product_type, j.theme, j.niche,
        l.quantity * COALESCE(l.price_cents, p.price_min_cents, 0) AS revenue,
        l.quantity * COALESCE(l.cost_cents, p.cost_max_cents, 0) AS cost
    FROM orders o
    JOIN order_lines l ON l.order_id = o.order_id
    LEFT JOIN LATERAL (
        SELECT job_id, image_index, product_type, price_min_cents, cost_max_cents
        FROM products WHERE products.product_id = l.product_id
        ORDER BY created_at DESC LIMIT 1
    ) p ON TRUE
    LEFT JOIN jobs j ON j.job_id = p.job_id
    WHERE o.status <> 'canceled' AND COALESCE(l.status, '') <> 'canceled'
      AND o.placed_at >= %(since)s
      -- A job's own: its products' lines only (found by the products' key), not every line.
      AND (%(job)s::text IS NULL OR (p.job_id = %(job)s AND l.product_id IN (
          SELECT product_id FROM products WHERE job_id = %(job)s AND product_id IS NOT NULL)))
)
"""
_FIGURES = """
    count(DISTINCT order_id) AS orders, COALESCE(sum(units), 0)::bigint AS units,
    COALESCE(sum(revenue), 0)::bigint AS revenue_cents, COALESCE(sum(cost), 0)::bigint AS cost_cents
"""
_TOTALS = f"{_COUNTED} SELECT {_FIGURES} FROM counted"  # noqa: S608  # constants only

# Per grouping: its key (``other`` for what we never made) and what describes it.
_KEYS: dict[str, tuple[str, str]] = {
    "product": (
        f"CASE WHEN job_id IS NULL THEN '{OTHER}' ELSE product_id END",
        "min(job_id) AS job_id, min(image_index) AS image_index, min(product_type) AS product_type",
    ),
    "design": (
        f"CASE WHEN job_id IS NULL THEN '{OTHER}' ELSE job_id || ':' || image_index END",
        "min(job_id) AS job_id, min(image_index) AS image_index, NULL::text AS product_type",
    ),
    "theme": (
        f"COALESCE(theme, '{OTHER}')",
        "NULL::text AS job_id, NULL::int AS image_index, NULL::text AS product_type",
    ),
    "niche": (
        f"COALESCE(niche, '{OTHER}')",
        "NULL::text AS job_id, NULL::int AS image_index, NULL::text AS product_type",
    ),
}


def _key(by: str) -> tuple[str, str]:
    if by not in _KEYS:
        raise ValueError(f"by: one of {sorted(_KEYS)}, not {by!r}")
    return _KEYS[by]


def _by_sql(by: str) -> str:
    key, described = _key(by)
    return f"""{_COUNTED}
SELECT {key} AS key, {described}, {_FIGURES}
FROM counted GROUP BY 1
ORDER BY revenue_cents DESC, units DESC, key LIMIT %(limit)s
"""  # noqa: S608  # keys from the table above, no input


def _series_sql(by: str, bucket: Bucket) -> str:
    key, _ = _key(by)
    return f"""{_COUNTED}
SELECT {key} AS key, date_trunc('{bucket}', placed_at) AS at, {_FIGURES}
FROM counted WHERE {key} = ANY(%(keys)s) GROUP BY 1, 2 ORDER BY 2, 1
"""  # noqa: S608  # keys and bucket from closed sets, no input


def _with_profit(row: dict[str, Any]) -> dict[str, Any]:
    revenue, cost = int(row["revenue_cents"]), int(row["cost_cents"])
    profit = revenue - cost
    margin = round(100.0 * profit / revenue, 2) if revenue else None
    return {**row, "profit_cents": profit, "margin_percent": margin}


def _params(hours: float | None, job_id: str | None = None, **more: Any) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(hours=hours) if hours else _EPOCH
    return {"since": since, "job": job_id, **more}


async def totals(conn: AsyncConnection[Any], hours: float | None = None) -> dict[str, Any]:
    """Orders, units, revenue, cost, profit and margin of what counts (all time by default)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_TOTALS, _params(hours))
        row = await cur.fetchone()
    assert row is not None  # an aggregate always answers
    return _with_profit(row)


async def sales_by(
    conn: AsyncConnection[Any], by: str, hours: float | None, limit: int = 20
) -> list[dict[str, Any]]:
    """The best sellers by ``by`` over the last ``hours``, by revenue."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_by_sql(by), _params(hours, limit=limit))
        return [_with_profit(r) for r in await cur.fetchall()]


async def series(
    conn: AsyncConnection[Any], by: str, keys: list[str], hours: float, bucket: Bucket
) -> list[dict[str, Any]]:
    """Per ``bucket`` of placing time, the figures of each of ``keys``."""
    if not keys:
        return []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_series_sql(by, bucket), _params(hours, keys=keys))
        return [_with_profit(r) for r in await cur.fetchall()]


async def job_designs(conn: AsyncConnection[Any], job_id: str) -> dict[int, dict[str, Any]]:
    """A job's sales per image (only the images that sold), all time."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_by_sql("design"), _params(None, job_id, limit=10_000))
        rows = await cur.fetchall()
    return {int(r["image_index"]): _with_profit(r) for r in rows if r["job_id"] == job_id}
