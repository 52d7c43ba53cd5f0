"""The ``publications`` table: publications waiting for their sales channel's confirmation.

A publisher records one row when its channel has taken a publish request and confirms it
later: Printify for a shop whose channel (Etsy, Shopify, ...) lists on its own; TikTok Shop,
whose audit reviews a new product; Meta's catalog, which finishes a batch later. The watcher
(:mod:`services.publisher.watch`) of the same channel claims due rows, asks the channel and
settles each as ``published`` or ``failed``. Each channel's publisher sees only its own rows
(``channel``). Claims are leases taken with ``SKIP LOCKED``, so any number of instances share
the work and a crashed one's rows are taken over once its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from shared.contract.events import ProductCreated
from shared.contract.sales_channels import DEFAULT_CHANNEL
from shared.pipeline.runner import MessageContext

logger = logging.getLogger(__name__)

# A new row, or a fresh start for one that failed (a replay publishes again); a pending or
# published row is left as it is (a redelivery). Either way the row is returned.
_WATCH = """
WITH up AS (
    INSERT INTO publications AS p
        (job_id, image_index, product_type, channel, product_id, shop_id, sales_channel, event,
         input_topic, input_partition, input_offset, confirm_by, next_check_at, pending_ref)
    VALUES (%(job)s, %(image)s, %(type)s, %(engine)s, %(product)s, %(shop)s, %(channel)s,
            %(event)s, %(topic)s, %(partition)s, %(offset)s,
            now() + make_interval(secs => %(timeout)s), now() + make_interval(secs => %(first)s),
            %(ref)s)
    ON CONFLICT (job_id, image_index, product_type, channel) DO UPDATE SET
        product_id = EXCLUDED.product_id, shop_id = EXCLUDED.shop_id,
        sales_channel = EXCLUDED.sales_channel, event = EXCLUDED.event,
        input_topic = EXCLUDED.input_topic, input_partition = EXCLUDED.input_partition,
        input_offset = EXCLUDED.input_offset, state = 'pending', requested_at = now(),
        confirm_by = EXCLUDED.confirm_by, checks = 0, next_check_at = EXCLUDED.next_check_at,
        leased_until = NULL, external_id = NULL, handle = NULL, error = NULL,
        finished_at = NULL, pending_ref = EXCLUDED.pending_ref
    WHERE p.state = 'failed'
    RETURNING job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
              input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
              external_id, handle, error, channel, pending_ref
)
SELECT * FROM up
UNION ALL
SELECT job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
    input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
    external_id, handle, error, channel, pending_ref
FROM publications
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(engine)s
  AND NOT EXISTS (SELECT 1 FROM up)
"""

_GET = """
SELECT job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
    input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
    external_id, handle, error, channel, pending_ref
FROM publications
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(engine)s
"""

_CLAIM = """
UPDATE publications SET leased_until = now() + make_interval(secs => %(lease)s),
    checks = checks + 1
WHERE channel = %(engine)s AND (job_id, image_index, product_type) IN (
    SELECT job_id, image_index, product_type FROM publications
    WHERE channel = %(engine)s AND state = 'pending' AND next_check_at <= now()
      AND (leased_until IS NULL OR leased_until <= now())
    ORDER BY next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING job_id, image_index, product_type, product_id, shop_id, sales_channel, state, event,
    input_topic, input_partition, input_offset, requested_at, confirm_by, checks,
    external_id, handle, error, channel, pending_ref
"""

# When the first pending publication can next be claimed (its check due and no lease held).
_NEXT_DUE = """
SELECT EXTRACT(EPOCH FROM min(GREATEST(next_check_at, COALESCE(leased_until, next_check_at)))
                          - now())::float8 AS wait
FROM publications WHERE channel = %(engine)s AND state = 'pending'
"""

_CHECK_LATER = """
UPDATE publications SET leased_until = NULL,
    next_check_at = now() + make_interval(secs => %(delay)s)
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(engine)s AND state = 'pending'
"""

_PUBLISHED = """
UPDATE publications SET state = 'published', external_id = %(external)s, handle = %(handle)s,
    leased_until = NULL, finished_at = now()
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(engine)s AND state = 'pending'
"""

_FAILED = """
UPDATE publications SET state = 'failed', error = %(error)s, leased_until = NULL,
    finished_at = now()
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(engine)s AND state = 'pending'
"""

# What the channel said to check the publication by, whatever became of it since.
_PENDING_REF = """
SELECT pending_ref FROM publications
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(engine)s
"""

_STATE = """
SELECT state FROM publications
WHERE job_id = %(job)s AND image_index = %(image)s AND product_type = %(type)s
  AND channel = %(engine)s
"""


class _Key(TypedDict):
    job: str
    image: int
    type: str
    engine: str


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
    # The engine's channel whose publisher watches it (its consumer group).
    channel: str
    # What the channel checks it by (ListingState.pending_ref), when it said.
    pending_ref: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Publication:
        return cls(**{**row, "event": ProductCreated.model_validate(row["event"])})

    def key(self) -> _Key:
        """The row's primary key as named SQL parameters."""
        return {
            "job": self.job_id,
            "image": self.image_index,
            "type": self.product_type,
            "engine": self.channel,
        }


class Publications:
    """The ``publications`` table behind an async pool (autocommit connections): the rows of
    one engine channel (``channel``: its publisher's)."""

    def __init__(self, pool: AsyncConnectionPool, channel: str = DEFAULT_CHANNEL) -> None:
        self.pool = pool
        self.channel = channel
        # Set when this process records a publication: a sleeping watcher looks again.
        self.recorded = asyncio.Event()

    async def _rows(self, sql: str, params: Mapping[str, object]) -> list[Publication]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            rows = await cur.fetchall() if cur.description else []
        found = []
        for row in rows:
            try:
                found.append(Publication.from_row(row))
            except ValidationError as exc:
                # A row this version cannot read (written by hand, or by a version whose event
                # shape is gone) must not stop the watcher from settling every other one.
                await self._unreadable(row, exc)
        return found

    async def _unreadable(self, row: dict[str, Any], exc: ValidationError) -> None:
        error = f"the publication's recorded event cannot be read: {exc.error_count()} errors"
        logger.error(
            "publication unreadable, settled as failed job_id=%s product_id=%s channel=%s error=%s",
            row.get("job_id"),
            row.get("product_id"),
            self.channel,
            exc.errors(include_url=False, include_input=False)[:3],
        )
        key = {"job": row["job_id"], "image": row["image_index"], "type": row["product_type"]}
        await self._execute(_FAILED, {**key, "engine": self.channel, "error": error})

    async def watch(
        self,
        event: ProductCreated,
        ctx: MessageContext,
        *,
        sales_channel: str,
        timeout_s: float,
        first_check_s: float,
        pending_ref: str | None = None,
    ) -> Publication:
        """Record that ``event``'s product awaits its channel (checked first after
        ``first_check_s``, given up after ``timeout_s``; ``pending_ref``: what the channel
        checks it by); return the row as it now stands."""
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
            "engine": self.channel,
            "ref": pending_ref,
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
        return await self._rows(_CLAIM, {"limit": limit, "lease": lease_s, "engine": self.channel})

    async def next_due_in(self) -> float | None:
        """Seconds until a pending publication can next be claimed (0 or less: now); None
        when none is pending."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_NEXT_DUE, {"engine": self.channel})
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

    async def withdrawn(
        self, job_id: str, image_index: int, product_type: str, *, reason: str
    ) -> None:
        """Settle a pending publication the seller took back (a cancel, an unpublish): the
        watcher no longer reports it published (its listing is taken down by the caller)."""
        key = {"job": job_id, "image": image_index, "type": product_type, "engine": self.channel}
        await self._execute(_FAILED, {**key, "error": reason})

    async def pending_ref_of(self, job_id: str, image_index: int, product_type: str) -> str | None:
        """What the channel said to check this channel's publication of the product by (Meta's
        batch handle, TikTok's product id), if it ever answered "pending"."""
        key = {"job": job_id, "image": image_index, "type": product_type, "engine": self.channel}
        async with self.pool.connection() as conn:
            cur = await conn.execute(_PENDING_REF, key)
            row = await cur.fetchone()
        return None if row is None or row[0] is None else str(row[0])

    async def still_pending(self, pub: Publication) -> bool:
        """Whether ``pub`` is still pending (not settled meanwhile by a seller's decision)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_STATE, pub.key())
            row = await cur.fetchone()
        return row is not None and row[0] == "pending"

    async def _execute(self, sql: str, params: Mapping[str, object]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql, params)
