"""The ``channel_products`` table: the products a channel's publisher holds (a job with review)
or put up for sale, one row per (job, image, product type, channel).

A seller's cancel, unpublish, delete and reprice act on what is here, never on an id the
decision names; a Printify webhook about a product changes something only when the product is
here. A row's state only moves as the docstring of migration 0034 says: a product event can
hold a product or make it active, but never bring back one a seller (or the vendor) took down;
a later generation of the image (a regenerate) replaces the row whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from shared.adapters.store import cancellations
from shared.contract.events import ProductCreatedPayload

State = Literal["held", "active", "unpublished", "deleted"]

# A held product becomes active when approved; a taken-down one stays down whatever product
# event comes again (a redelivery, a replay); a newer generation starts over. Nothing is
# recorded for a cancelled job: its cancel has been handled, and would not find the row.
_RECORD = """
INSERT INTO channel_products AS c
    (job_id, image_index, product_type, channel, generation, product_id, shop_id, title, state)
SELECT %(job)s, %(image)s, %(type)s, %(channel)s, %(generation)s, %(product)s, %(shop)s,
       %(title)s, %(state)s
WHERE NOT EXISTS (SELECT 1 FROM job_cancellations WHERE job_id = %(job)s)
ON CONFLICT (job_id, image_index, product_type, channel) DO UPDATE SET
    generation = EXCLUDED.generation, product_id = EXCLUDED.product_id,
    shop_id = EXCLUDED.shop_id, title = EXCLUDED.title, decision_id = NULL,
    state = CASE
        WHEN c.generation < EXCLUDED.generation THEN EXCLUDED.state
        WHEN c.state = 'held' THEN EXCLUDED.state
        ELSE c.state
    END,
    updated_at = now()
WHERE c.generation < EXCLUDED.generation
   OR (c.generation = EXCLUDED.generation AND c.state = 'held')
"""

_COLUMNS = (
    "job_id, image_index, product_type, channel, generation, product_id, shop_id, title, state, "
    "decision_id"
)

_GET = f"""
SELECT {_COLUMNS} FROM channel_products
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(channel)s
"""  # noqa: S608  # a constant column list, no input

_OF_JOB = f"""
SELECT {_COLUMNS} FROM channel_products
WHERE job_id = %(job)s AND channel = %(channel)s
  AND (%(image)s::int IS NULL OR image_index = %(image)s)
  AND (%(type)s::text IS NULL OR product_type = %(type)s)
ORDER BY image_index, product_type
"""  # noqa: S608  # a constant column list, no input

_BY_PRODUCT = f"""
SELECT {_COLUMNS} FROM channel_products
WHERE channel = %(channel)s AND product_id = %(product)s
"""  # noqa: S608  # a constant column list, no input

# The products the printify stage created with this Printify id (its ledger's create steps;
# generation from the step's tag): what the engine made, whichever channels it sells on.
_MADE = """
SELECT job_id, image_index, product_type,
       COALESCE(substring(step from '^create@g([0-9]+)$')::int, 0) AS generation
FROM side_effects
WHERE step ~ '^create(@|$)' AND state = 'done' AND result ->> 'product_id' = %(product)s
ORDER BY job_id, image_index, product_type
"""

# Down, and never back up by a product event: an unpublish may be followed by a delete, a
# delete is final.
_TAKE_DOWN = """
UPDATE channel_products SET state = %(state)s, decision_id = %(decision)s, updated_at = now()
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(channel)s AND generation = %(generation)s AND state <> 'deleted'
"""


@dataclass(frozen=True)
class Holding:
    """One row: a product of a job on one channel and where it stands."""

    job_id: str
    image_index: int
    product_type: str
    channel: str
    generation: int
    product_id: str
    shop_id: str
    title: str
    state: State
    # The decision that last took it down.
    decision_id: uuid.UUID | None


class Holdings:
    """The ``channel_products`` rows of one engine channel (its publisher's)."""

    def __init__(self, pool: AsyncConnectionPool, channel: str) -> None:
        self.pool = pool
        self.channel = channel

    async def record(self, job_id: str, p: ProductCreatedPayload, *, held: bool) -> Holding | None:
        """Record ``p`` as held or active (see the module); return the row as it now stands, or
        None when the job was cancelled (nothing recorded).

        The cancel check, the write and the read go in one round trip (a pipeline): this runs
        on every publish's path."""
        params = {
            "job": job_id,
            "image": p.image_index,
            "type": p.product_type.value,
            "channel": self.channel,
            "generation": p.generation,
            "product": p.product_id,
            "shop": p.shop_id,
            "title": p.title,
            "state": "held" if held else "active",
        }
        async with self.pool.connection() as conn, conn.pipeline():
            await conn.execute(_RECORD, params)
            # None as well when a cancel came after the write's check (its handler may have
            # looked for the row before it existed).
            return await self._unless_cancelled(conn, params)

    async def get(self, job_id: str, image_index: int, product_type: str) -> Holding | None:
        params = {"job": job_id, "image": image_index, "type": product_type}
        rows = await self._rows(_GET, {**params, "channel": self.channel})
        return rows[0] if rows else None

    async def live(self, job_id: str, image_index: int, product_type: str) -> Holding | None:
        """The row, or None when there is none or the job was cancelled (one round trip: this
        runs right before every publish's channel call)."""
        params = {"job": job_id, "image": image_index, "type": product_type}
        async with self.pool.connection() as conn, conn.pipeline():
            return await self._unless_cancelled(conn, {**params, "channel": self.channel})

    async def _unless_cancelled(
        self, conn: AsyncConnection[Any], params: Mapping[str, object]
    ) -> Holding | None:
        """The row ``params`` names, read after what the caller queued on ``conn``; None when
        there is none or the job is cancelled. In a pipeline the read and the cancel check go
        with the caller's statements in one round trip."""
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_GET, params)
        if await cancellations.is_cancelled_in(conn, str(params["job"])):
            return None
        rows: list[dict[str, Any]] = await cur.fetchall()
        return Holding(**rows[0]) if rows else None

    async def of_job(
        self, job_id: str, *, image_index: int | None = None, product_type: str | None = None
    ) -> list[Holding]:
        """The job's products on this channel (one image's, one type's when given)."""
        params = {"job": job_id, "image": image_index, "type": product_type}
        return await self._rows(_OF_JOB, {**params, "channel": self.channel})

    async def by_product(self, product_id: str) -> list[Holding]:
        """The rows of the Printify product ``product_id`` on this channel (none: not ours)."""
        return await self._rows(_BY_PRODUCT, {"channel": self.channel, "product": product_id})

    async def made(self, product_id: str) -> list[tuple[str, int, str, int]]:
        """(job, image, type, generation) of each product the engine created with the Printify
        id ``product_id``, as the printify stage's ledger recorded it (none: not ours)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_MADE, {"product": product_id})
            rows = await cur.fetchall()
        return [(str(j), int(i), str(t), int(g)) for j, i, t, g in rows]

    async def take_down(
        self, h: Holding, state: Literal["unpublished", "deleted"], decision: uuid.UUID | None
    ) -> None:
        """Record ``h`` taken down (before the channel is asked: a publish that starts from now
        on sees it and does not list it)."""
        params = {
            "job": h.job_id,
            "image": h.image_index,
            "type": h.product_type,
            "channel": self.channel,
            "generation": h.generation,
            "state": state,
            "decision": decision,
        }
        await self._execute(_TAKE_DOWN, params)

    async def _rows(self, sql: str, params: Mapping[str, object]) -> list[Holding]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            rows: list[dict[str, Any]] = await cur.fetchall()
        return [Holding(**row) for row in rows]

    async def _execute(self, sql: str, params: Mapping[str, object]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql, params)
