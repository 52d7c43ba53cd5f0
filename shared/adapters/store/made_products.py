"""The ``made_products`` table: what the printify stage made, per (job, image, generation, type).

The stage records each product it made with its product.created payload whole, and each type
that failed for good, so that a seller's decision can be acted on at any later time: approve
re-emits the payload as product.approved, reject, cancel and delete delete the products,
reprice prices them again. Each statement only moves a row forward (failed -> made by a replay,
made -> deleted), so redeliveries and concurrent attempts change nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.contract.events import PriceSummary, ProductCreatedPayload

State = Literal["made", "failed", "deleted"]

_MADE = """
INSERT INTO made_products (job_id, image_index, generation, product_type, state, product_id,
                           payload)
VALUES (%(job)s, %(image)s, %(generation)s, %(type)s, 'made', %(product_id)s, %(payload)s)
ON CONFLICT (job_id, image_index, generation, product_type) DO UPDATE SET
    state = 'made', product_id = EXCLUDED.product_id, payload = EXCLUDED.payload, error = NULL,
    made_at = now()
WHERE made_products.state = 'failed'
"""

_FAILED = """
INSERT INTO made_products (job_id, image_index, generation, product_type, state, error)
VALUES (%(job)s, %(image)s, %(generation)s, %(type)s, 'failed', %(error)s)
ON CONFLICT (job_id, image_index, generation, product_type) DO NOTHING
"""

_OF_JOB = """
SELECT image_index, generation, product_type, state, payload, deleted_reason
FROM made_products WHERE job_id = %(job)s
ORDER BY image_index, generation, product_type
"""

_DELETED = """
UPDATE made_products SET state = 'deleted', deleted_at = now(), deleted_reason = %(reason)s
WHERE job_id = %(job)s AND image_index = %(image)s AND generation = %(generation)s
  AND product_type = %(type)s AND state = 'made'
"""

_PRICED = """
UPDATE made_products SET payload = jsonb_set(payload, '{prices}', %(prices)s)
WHERE job_id = %(job)s AND image_index = %(image)s AND generation = %(generation)s
  AND product_type = %(type)s AND state = 'made'
"""


@dataclass(frozen=True)
class MadeProduct:
    """One row: a product made (``payload``; kept after it is deleted) or a type that failed."""

    image_index: int
    generation: int
    product_type: str
    state: State
    payload: ProductCreatedPayload | None
    deleted_reason: str | None = None


def _key(job_id: str, image_index: int, generation: int, product_type: str) -> dict[str, Any]:
    return {"job": job_id, "image": image_index, "generation": generation, "type": product_type}


async def record_made(conn: AsyncConnection[Any], job_id: str, made: ProductCreatedPayload) -> None:
    """Record a product made (a replay of a type that had failed makes its row ``made``)."""
    params = _key(job_id, made.image_index, made.generation, made.product_type.value)
    payload = Jsonb(made.model_dump(mode="json"))
    await conn.execute(_MADE, {**params, "product_id": made.product_id, "payload": payload})


async def record_failed(
    pool: AsyncConnectionPool,
    job_id: str,
    image_index: int,
    generation: int,
    product_type: str,
    error: str,
) -> None:
    """Record that a type failed for good (nothing made); a made product stays made."""
    params = _key(job_id, image_index, generation, product_type)
    async with pool.connection() as conn:
        await conn.execute(_FAILED, {**params, "error": error[:2000]})


async def of_job(pool: AsyncConnectionPool, job_id: str) -> list[MadeProduct]:
    """Every row of the job, by image, generation and type."""
    async with pool.connection() as conn:
        cur = await conn.execute(_OF_JOB, {"job": job_id})
        rows: Sequence[tuple[Any, ...]] = await cur.fetchall()
    return [
        MadeProduct(
            image_index=int(image),
            generation=int(generation),
            product_type=str(ptype),
            state=state,
            payload=None if payload is None else ProductCreatedPayload.model_validate(payload),
            deleted_reason=reason,
        )
        for image, generation, ptype, state, payload, reason in rows
    ]


async def mark_deleted(
    pool: AsyncConnectionPool,
    job_id: str,
    image_index: int,
    generation: int,
    product_type: str,
    reason: str,
) -> bool:
    """Record the product deleted; False when it was already (or never recorded made)."""
    params = _key(job_id, image_index, generation, product_type)
    async with pool.connection() as conn:
        cur = await conn.execute(_DELETED, {**params, "reason": reason})
        return cur.rowcount == 1


async def set_prices(
    pool: AsyncConnectionPool,
    job_id: str,
    image_index: int,
    generation: int,
    product_type: str,
    prices: PriceSummary,
) -> None:
    """Record the product's new prices (a reprice), so that a later approve carries them."""
    params = _key(job_id, image_index, generation, product_type)
    async with pool.connection() as conn:
        await conn.execute(_PRICED, {**params, "prices": Jsonb(prices.model_dump(mode="json"))})
