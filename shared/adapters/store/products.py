"""The ``products`` table: one row per (job, image, product type), from the product's creation
on Printify to its publication (the monitor writes it; the API lists it with the job).

Events about one product come from different topics, so they are folded in any order. Each
statement therefore only moves a row forward: a later success (a replay) overrides an earlier
failure, nothing downgrades ``published``, and a publication folded before the creation keeps
its status while creation fills in what only it knows (prices, DPI, mockups).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from shared.contract.events import (
    PriceSummary,
    ProductCreated,
    ProductPublished,
    ProductPublishing,
    ProductRepriced,
    ProductWithdrawn,
)

# What creation alone knows of a product: its prices (shared.contract.events.PriceSummary's fields,
# by the same names), print resolution, mockups and title. Read back by the API in this order.
CREATED_COLUMNS = (*PriceSummary.model_fields, "print_dpi", "mockups", "title")
_CREATED_LIST = ", ".join(CREATED_COLUMNS)
_CREATED_VALUES = ", ".join(f"%({c})s" for c in CREATED_COLUMNS)

# A product of a later generation of its image (a regenerate) replaces the row: a new product,
# its publication not begun.
_CREATED = f"""
INSERT INTO products (job_id, image_index, product_type, status, product_id, shop_id,
                      {_CREATED_LIST}, created_at, generation)
VALUES (%(job)s, %(index)s, %(type)s, 'created', %(product_id)s, %(shop_id)s, {_CREATED_VALUES},
        %(at)s, %(generation)s)
ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET
    status = 'created', product_id = EXCLUDED.product_id, shop_id = EXCLUDED.shop_id,
    ({_CREATED_LIST}) = ROW({", ".join(f"EXCLUDED.{c}" for c in CREATED_COLUMNS)}), error = NULL,
    generation = EXCLUDED.generation, created_at = EXCLUDED.created_at, external_id = NULL,
    published_at = NULL, withdrawn_reason = NULL
WHERE products.status = 'failed' OR products.generation < EXCLUDED.generation
"""  # noqa: S608  # column names from the model, no input

# The publication was folded first: fill in what only creation knows.
_FILL_CREATED = f"""
UPDATE products SET ({_CREATED_LIST}) = ROW({_CREATED_VALUES})
WHERE job_id = %(job)s AND image_index = %(index)s AND product_type = %(type)s
  AND price_min_cents IS NULL
"""  # noqa: S608  # column names from the model, no input

# Only a created product moves on to 'publishing': a confirmation or a refusal folded first
# (another topic) is the later news.
_PUBLISHING = """
INSERT INTO products (job_id, image_index, product_type, status, product_id, shop_id,
                      created_at)
VALUES (%(job)s, %(index)s, %(type)s, 'publishing', %(product_id)s, %(shop_id)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET status = 'publishing'
WHERE products.status = 'created'
"""

# A product deleted since (a cancel, a delete) stays deleted whatever publication is folded
# after it (its listing was made before, on another topic).
_PUBLISHED = """
INSERT INTO products (job_id, image_index, product_type, status, product_id, shop_id,
                      external_id, created_at, published_at)
VALUES (%(job)s, %(index)s, %(type)s, 'published', %(product_id)s, %(shop_id)s,
        %(external_id)s, %(at)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET
    status = 'published', external_id = EXCLUDED.external_id,
    published_at = EXCLUDED.published_at, error = NULL
WHERE products.status <> 'deleted' OR products.product_id IS DISTINCT FROM EXCLUDED.product_id
"""

_FAILED = """
INSERT INTO products (job_id, image_index, product_type, status, error, created_at)
VALUES (%(job)s, %(index)s, %(type)s, %(status)s, %(error)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET
    status = EXCLUDED.status, error = EXCLUDED.error
WHERE products.status = ANY(%(from)s)
"""


async def record_created(conn: AsyncConnection[Any], event: ProductCreated) -> None:
    """The product exists on Printify, with its prices and print resolution."""
    p = event.payload
    params = {
        "job": event.job_id,
        "index": p.image_index,
        "type": p.product_type.value,
        "product_id": p.product_id,
        "shop_id": p.shop_id,
        **p.prices.model_dump(),
        "print_dpi": p.print_dpi,
        "mockups": p.mockups or None,
        "title": p.title,
        "at": event.occurred_at,
        "generation": p.generation,
    }
    await conn.execute(_CREATED, params)
    await conn.execute(_FILL_CREATED, params)


async def record_publishing(conn: AsyncConnection[Any], event: ProductPublishing) -> None:
    """Sent to the sales channel, which has not confirmed the listing yet."""
    p = event.payload
    await conn.execute(
        _PUBLISHING,
        {
            "job": event.job_id,
            "index": p.image_index,
            "type": p.product_type.value,
            "product_id": p.product_id,
            "shop_id": p.shop_id,
            "at": event.occurred_at,
        },
    )


async def record_published(conn: AsyncConnection[Any], event: ProductPublished) -> None:
    """Listed on the sales channel."""
    p = event.payload
    await conn.execute(
        _PUBLISHED,
        {
            "job": event.job_id,
            "index": p.image_index,
            "type": p.product_type.value,
            "product_id": p.product_id,
            "shop_id": p.shop_id,
            "external_id": p.external_id,
            "at": event.occurred_at,
        },
    )


async def record_failed(
    conn: AsyncConnection[Any],
    *,
    job_id: str,
    image_index: int,
    product_type: str,
    publishing: bool,
    error: str,
    at: datetime,
) -> None:
    """Creation failed (``failed``) or the publication did (``publish_failed``): a later
    success is never undone by it."""
    status = "publish_failed" if publishing else "failed"
    await conn.execute(
        _FAILED,
        {
            "job": job_id,
            "index": image_index,
            "type": product_type,
            "status": status,
            "error": error,
            "at": at,
            "from": ["created", "publishing"] if publishing else ["failed"],
        },
    )


# Only the product the event names (a regenerated image's old product is not the row's now).
# Its creation may be folded after it (the monitor retries a product whose image it has not
# folded yet): the row is then made deleted, and the creation of that same product leaves it so.
_DELETED = """
INSERT INTO products (job_id, image_index, product_type, status, product_id, shop_id,
                      created_at, generation, withdrawn_reason)
VALUES (%(job)s, %(index)s, %(type)s, 'deleted', %(product_id)s, %(shop_id)s, %(at)s,
        %(generation)s, %(reason)s)
ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET
    status = 'deleted', product_id = EXCLUDED.product_id,
    withdrawn_reason = EXCLUDED.withdrawn_reason
WHERE products.product_id = EXCLUDED.product_id
   OR (products.product_id IS NULL AND products.generation <= EXCLUDED.generation)
"""

_REPRICED = f"""
UPDATE products SET ({", ".join(PriceSummary.model_fields)}) =
    ROW({", ".join(f"%({c})s" for c in PriceSummary.model_fields)})
WHERE job_id = %(job)s AND image_index = %(index)s AND product_type = %(type)s
  AND product_id = %(product_id)s
"""  # noqa: S608  # column names from the model, no input


async def record_deleted(conn: AsyncConnection[Any], event: ProductWithdrawn) -> None:
    """The product was deleted from Printify (``channel`` None): rejected, cancelled, deleted
    after launch, replaced by a regenerated image's, or deleted by the seller in Printify."""
    p = event.payload
    await conn.execute(
        _DELETED,
        {
            "job": event.job_id,
            "index": p.image_index,
            "type": p.product_type.value,
            "product_id": p.product_id,
            "shop_id": p.shop_id,
            "at": event.occurred_at,
            "generation": p.generation,
            "reason": p.reason,
        },
    )


async def record_repriced(conn: AsyncConnection[Any], event: ProductRepriced) -> None:
    """The product was priced again in Printify."""
    p = event.payload
    await conn.execute(
        _REPRICED,
        {
            "job": event.job_id,
            "index": p.image_index,
            "type": p.product_type.value,
            "product_id": p.product_id,
            **p.prices.model_dump(),
        },
    )
