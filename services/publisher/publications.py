"""The ``publications`` table: publications waiting for their sales channel's confirmation.

The publisher records one row when Printify has accepted a publish request for a shop whose
channel (Etsy, Shopify, ...) confirms on its own; the watcher (:mod:`services.publisher.watch`)
claims due rows, looks at the product and settles each as ``published`` or ``failed``. Claims
are leases taken with ``SKIP LOCKED``, so any number of publisher instances share the work and a
crashed one's rows are taken over once its lease runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.contract.events import ProductCreated
from shared.pipeline.runner import MessageContext

# A new row, or a fresh start for one that failed (a replay publishes again); a pending or
# published row is left as it is (a redelivery). Either way the row is returned.
_WATCH = """
WITH up AS (
    INSERT INTO publications AS p
        (job_id, image_index, product_type, product_id, shop_id, sales_channel, event,
         input_topic, input_partition, input_offset, confirm_by, next_check_at)
    VALUES (%(job)s, %(image)s, %(type)s, %(product)s, %(shop)s, %(channel)s, %(event)s,
            %(topic)s, %(partition)s, %(offset)s,
            now() + make_interval(secs => %(timeout)s), now() + make_interval(secs => %(first)s))
    ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET
        product_id = EXCLUDED.product_id, shop_id = EXCLUDED.shop_id,
        sales_channel = EXCLUDED.sales_channel, event = EXCLUDED.event,
        input_topic = EXCLUDED.input_topic, input_partition = EXCLUDED.input_partition,
        input_offset = EXCLUDED.input_offset, state = 'pending', requested_at = now(),
        confirm_by = EXCLUDED.confirm_by, checks = 0, next_check_at = EXCLUDED.next_check_at,
        leased_until = NULL, external_id = NULL, handle = NULL, error = NULL,
        finished_at = NULL
    WHERE p.state = 'failed'
    RETURNING job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
              input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
              external_id, handle, error
)
SELECT * FROM up
UNION ALL
SELECT job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
    input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
    external_id, handle, error
FROM publications
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND NOT EXISTS (SELECT 1 FROM up)
"""

_GET = """
SELECT job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
    input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
    external_id, handle, error
FROM publications
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
"""

_CLAIM = """
UPDATE publications SET leased_until = now() + make_interval(secs => %(lease)s),
    checks = checks + 1
WHERE (job_id, image_index, product_type) IN (
    SELECT job_id, image_index, product_type FROM publications
    WHERE state = 'pending' AND next_check_at <= now()
      AND (leased_until IS NULL OR leased_until <= now())
    ORDER BY next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
    input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
    external_id, handle, error
"""

# When the first pending publication can next be claimed (its check due and no lease held).
_NEXT_DUE = """
SELECT EXTRACT(EPOCH FROM min(GREATEST(next_check_at, COALESCE(leased_until, next_check_at)))
                          - now())::float8 AS wait
FROM publications WHERE state = 'pending'
"""

_CHECK_LATER = """
UPDATE publications SET leased_until = NULL,
    next_check_at = now() + make_interval(secs => %(delay)s)
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s AND state = 'pending'
"""

_PUBLISHED = """
UPDATE publications SET state = 'published', external_id = %(external)s, handle = %(handle)s,
    leased_until = NULL, finished_at = now()
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s AND state = 'pending'
"""

_FAILED = """
UPDATE publications SET state = 'failed', error = %(error)s, leased_until = NULL,
    finished_at = now()
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s AND state = 'pending'
"""


class _Key(TypedDict):
    job: str
    image: int
    type: str


@dataclass(frozen=True)
class Publication:
    """One row: a publication and where it stands."""

    job_id: str
    image_index: int
    product_type: str
    product_id: str
    shop_id: str
    sales_channel: str
    state: str
    event: ProductCreated
    input_topic: str | None
    input_partition: int | None
    input_offset: int | None
    requested_at: datetime
    confirm_by: datetime
    checks: int
    external_id: str | None
    handle: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Publication:
        return cls(**{**row, "event": ProductCreated.model_validate(row["event"])})

    def key(self) -> _Key:
        """The row's primary key as named SQL parameters."""
        return {"job": self.job_id, "image": self.image_index, "type": self.product_type}


class Publications:
    """The ``publications`` table behind an async pool (autocommit connections)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        # Set when this process records a publication: a sleeping watcher looks again.
        self.recorded = asyncio.Event()

    async def _rows(self, sql: str, params: Mapping[str, object]) -> list[Publication]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            rows = await cur.fetchall() if cur.description else []
        return [Publication.from_row(r) for r in rows]

    async def watch(
        self,
        event: ProductCreated,
        ctx: MessageContext,
        *,
        sales_channel: str,
        timeout_s: float,
        first_check_s: float,
    ) -> Publication:
        """Record that ``event``'s product awaits its channel (checked first after
        ``first_check_s``, given up after ``timeout_s``); return the row as it now stands."""
        p = event.payload
        params = {
            "job": event.job_id,
            "image": p.image_index,
            "type": p.product_type.value,
            "product": p.product_id,
            "shop": p.shop_id,
            "channel": sales_channel,
            "event": Jsonb(event.model_dump(mode="json")),
            "topic": ctx.topic,
            "partition": ctx.partition,
            "offset": ctx.offset,
            "timeout": timeout_s,
            "first": first_check_s,
        }
        rows = await self._rows(_WATCH, params)
        if not rows:
            # A concurrent first insert committed while this statement waited for it: its row
            # is newer than this statement's snapshot. A fresh read sees it.
            rows = await self._rows(_GET, params)
        self.recorded.set()
        return rows[0]

    async def claim_due(self, *, limit: int, lease_s: float) -> list[Publication]:
        """Lease up to ``limit`` pending publications whose next check is due."""
        return await self._rows(_CLAIM, {"limit": limit, "lease": lease_s})

    async def next_due_in(self) -> float | None:
        """Seconds until a pending publication can next be claimed (0 or less: now); None
        when none is pending."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_NEXT_DUE)
            row = await cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def check_later(self, pub: Publication, delay_s: float) -> None:
        """Release ``pub`` until its next check, ``delay_s`` from now."""
        await self._execute(
            _CHECK_LATER,
            {**pub.key(), "delay": delay_s},
        )

    async def published(self, pub: Publication, *, external_id: str, handle: str | None) -> None:
        """Settle ``pub`` as confirmed by its channel."""
        await self._execute(
            _PUBLISHED,
            {**pub.key(), "external": external_id, "handle": handle},
        )

    async def failed(self, pub: Publication, *, error: str) -> None:
        """Settle ``pub`` as refused by its channel (or never confirmed)."""
        await self._execute(
            _FAILED,
            {**pub.key(), "error": error},
        )

    async def _execute(self, sql: str, params: Mapping[str, object]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql, params)
