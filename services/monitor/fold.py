"""Folding events into PostgreSQL.

Each event is folded in one transaction that first records it in ``job_events`` by its event id:
an event seen before changes nothing, so replaying a topic from the start is harmless. Counters
and the job's status are recomputed from the child tables, never incremented, so the fold does
not depend on the order in which the topics are read.

A job is ``completed`` only when every expected image, product and (with autoPublish)
publication has arrived; when something failed it ends ``partial`` (something was delivered) or
``failed`` (nothing was), with an error saying exactly what failed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.monitor.dlq import (
    UNKNOWN_JOB,
    DeadLetterFailed,
    unattributable,
)
from services.monitor.status import JobCounts, job_status
from shared.errors import InvalidEventError, RetryableError
from shared.events import (
    Event,
    ImageGenerated,
    JobRequested,
    PoolScaled,
    ProductCreated,
    ProductPublished,
    ProductPublishing,
    StageFailed,
    WorkerExited,
    WorkerExitedPayload,
    WorkerHeartbeat,
)
from shared.store import jobs, workers
from shared.store.dead_letters import record_dead_letter
from shared.topics import GENERATOR, MONITOR

logger = logging.getLogger(__name__)


class JobNotYetKnown(RetryableError):
    """A product event arrived before its job's first event; retry shortly."""


def describe(event: Event) -> tuple[str, str]:
    """(level, message) of an event for the job's log."""
    if isinstance(event, JobRequested):
        p = event.payload
        types = ",".join(t.value for t in p.product_types)
        return "info", (
            f"job accepted: {p.count} image(s) x {types}, priority "
            f"{p.priority.value if p.priority_level is None else p.priority_level} "
            f"({p.priority.value} band), "
            f"autoPublish {'on' if p.auto_publish else 'off'}"
        )
    if isinstance(event, ImageGenerated):
        q = event.payload
        return "info", f"image {q.image_index + 1}/{q.image_count} generated: {q.title}"
    if isinstance(event, ProductCreated):
        c = event.payload
        prices = f"{c.price_cents}"
        if c.price_max_cents is not None and c.price_max_cents != c.price_cents:
            prices += f"-{c.price_max_cents}"
        costs = (
            f" (cost {c.cost_min_cents}-{c.cost_max_cents})"
            if c.cost_min_cents is not None and c.cost_max_cents is not None
            else ""
        )
        return "info", (
            f"{c.product_type.value} created for image {c.image_index + 1}: "
            f"product {c.product_id}, {c.variant_count} variants at {prices} cents{costs}"
        )
    if isinstance(event, ProductPublishing):
        w = event.payload
        return "info", (
            f"{w.product_type.value} for image {w.image_index + 1} sent to {w.sales_channel}, "
            f"awaiting its confirmation (until {w.confirm_by:%Y-%m-%d %H:%M} UTC)"
        )
    if isinstance(event, ProductPublished):
        u = event.payload
        return "info", f"{u.product_type.value} for image {u.image_index + 1} published"
    if isinstance(event, StageFailed):
        f = event.payload
        where = f" ({f.product_type.value})" if f.product_type else ""
        return "error", f"{f.stage} failed{where}: {f.message}"
    return "info", event.type


class Folder:
    """Folds events into the monitor's tables."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def fold(self, event: Event, topic: str, partition: int, offset: int) -> bool:
        """Fold one event in a transaction of its own; False when it had been folded before."""
        async with self.pool.connection() as conn, conn.transaction():
            return await self.fold_in(conn, event, topic, partition, offset)

    async def fold_in(
        self,
        conn: AsyncConnection[Any],
        event: Event,
        topic: str,
        partition: int,
        offset: int,
        touched: TouchedJobs | None = None,
    ) -> bool:
        """Fold one event inside the caller's transaction; False when it had been folded
        before (so that its metrics are not counted twice).

        With ``touched`` the job's counters and status are not recomputed here: the job is
        noted there, and the caller refreshes each noted job once, before it commits.
        """
        if isinstance(event, WorkerHeartbeat):
            await workers.record_heartbeat(conn, event)
            return True
        if isinstance(event, WorkerExited | PoolScaled):
            await self._pool_report(conn, event)
            return True
        level, message = describe(event)
        # A dead letter is recorded by its record's coordinates, before the event-id check: a
        # stage's report of the same input failing again after a replay has the same event
        # id, yet it is a new dead letter to list (and to replay again).
        recorded = isinstance(event, DeadLetterFailed) and await record_dead_letter(
            conn, event.dead_letter
        )
        if isinstance(event, DeadLetterFailed) and event.dead_letter.topic == MONITOR.dlq:
            # The monitor failed to record an event: listed for replay, but nothing failed in
            # the pipeline, so the job's state is left alone.
            return recorded
        cur = await conn.execute(
            "INSERT INTO job_events (event_id, job_id, type, level, message, producer, data,"
            " topic, kafka_partition, kafka_offset, occurred_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            (
                event.event_id,
                event.job_id,
                event.type,
                level,
                message,
                event.producer,
                Jsonb(_log_data(event)),
                topic,
                partition,
                offset,
                event.occurred_at,
            ),
        )
        if cur.rowcount == 0:
            await _same_job(conn, event)
            return recorded
        if isinstance(event, JobRequested):
            await self._job(conn, event)
        elif isinstance(event, ImageGenerated):
            await self._image(conn, event)
        elif isinstance(event, ProductCreated):
            await self._product(conn, event)
        elif isinstance(event, ProductPublishing):
            await self._publishing(conn, event)
        elif isinstance(event, ProductPublished):
            await self._published(conn, event)
        elif isinstance(event, StageFailed) and event.payload.retryable:
            await self._retrying(conn, event)
        elif isinstance(event, StageFailed):
            await self._failed(conn, event)
        # Progress (or a final outcome) after a retry was scheduled ends 'retrying'.
        ends_retrying = not isinstance(event, JobRequested) and not (
            isinstance(event, StageFailed) and event.payload.retryable
        )
        ended_retrying_at = event.occurred_at if ends_retrying else None
        if touched is None:
            await refresh_job(conn, event.job_id, ended_retrying_at=ended_retrying_at)
        else:
            touched.add(event.job_id, ended_retrying_at)
        return True

    async def _job(self, conn: AsyncConnection[Any], e: JobRequested) -> None:
        await jobs.open_or_fill_requested(conn, e)

    async def _image(self, conn: AsyncConnection[Any], e: ImageGenerated) -> None:
        p = e.payload
        await jobs.open_from_image(conn, e)
        await _lock_job(conn, e.job_id)
        if p.tokens is not None:  # the job's first image carries what its briefs cost
            await conn.execute(
                "UPDATE jobs SET claude_input_tokens = %s, claude_output_tokens = %s,"
                " claude_cache_read_tokens = %s, claude_cache_write_tokens = %s"
                " WHERE job_id = %s",
                (
                    p.tokens.input,
                    p.tokens.output,
                    p.tokens.cache_read,
                    p.tokens.cache_write,
                    e.job_id,
                ),
            )
        await conn.execute(
            "INSERT INTO images (job_id, image_index, sha256, uri, width, height, prompt, title,"
            " description, tags, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (job_id, image_index) DO NOTHING",
            (
                e.job_id,
                p.image_index,
                p.sha256,
                p.uri,
                p.width,
                p.height,
                p.prompt,
                p.title,
                p.description,
                p.tags,
                e.occurred_at,
            ),
        )

    async def _product(self, conn: AsyncConnection[Any], e: ProductCreated) -> None:
        p = e.payload
        await _lock_job(conn, e.job_id)
        # A later success (a replay) overrides an earlier failure; nothing downgrades 'published'.
        prices = (
            p.price_cents,
            p.price_max_cents,
            p.cost_min_cents,
            p.cost_max_cents,
            p.profit_min_cents,
            p.margin_min_percent,
            p.print_dpi,
            p.mockups or None,
            p.title,
        )
        await conn.execute(
            "INSERT INTO products (job_id, image_index, product_type, status, product_id,"
            " shop_id, price_cents, price_max_cents, cost_min_cents, cost_max_cents,"
            " profit_min_cents, margin_min_percent, print_dpi, mockups, title, created_at)"
            " VALUES (%s, %s, %s, 'created', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET"
            " status = 'created', product_id = EXCLUDED.product_id, shop_id = EXCLUDED.shop_id,"
            " price_cents = EXCLUDED.price_cents, price_max_cents = EXCLUDED.price_max_cents,"
            " cost_min_cents = EXCLUDED.cost_min_cents, cost_max_cents = EXCLUDED.cost_max_cents,"
            " profit_min_cents = EXCLUDED.profit_min_cents,"
            " margin_min_percent = EXCLUDED.margin_min_percent, print_dpi = EXCLUDED.print_dpi,"
            " mockups = EXCLUDED.mockups,"
            " title = EXCLUDED.title,"
            " error = NULL"
            " WHERE products.status = 'failed'",
            (
                e.job_id,
                p.image_index,
                p.product_type.value,
                p.product_id,
                p.shop_id,
                *prices,
                e.occurred_at,
            ),
        )
        # The publication may have been folded first; fill in what only creation knows.
        await conn.execute(
            "UPDATE products SET price_cents = %s, price_max_cents = %s, cost_min_cents = %s,"
            " cost_max_cents = %s, profit_min_cents = %s, margin_min_percent = %s,"
            " print_dpi = %s, mockups = %s, title = %s"
            " WHERE job_id = %s AND image_index = %s AND product_type = %s"
            " AND price_cents IS NULL",
            (*prices, e.job_id, p.image_index, p.product_type.value),
        )

    async def _publishing(self, conn: AsyncConnection[Any], e: ProductPublishing) -> None:
        p = e.payload
        await _lock_job(conn, e.job_id)
        # Only a created product moves on to 'publishing': a confirmation or a refusal folded
        # first (another topic) is the later news.
        await conn.execute(
            "INSERT INTO products (job_id, image_index, product_type, status, product_id,"
            " shop_id, created_at) VALUES (%s, %s, %s, 'publishing', %s, %s, %s)"
            " ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET"
            " status = 'publishing' WHERE products.status = 'created'",
            (
                e.job_id,
                p.image_index,
                p.product_type.value,
                p.product_id,
                p.shop_id,
                e.occurred_at,
            ),
        )

    async def _published(self, conn: AsyncConnection[Any], e: ProductPublished) -> None:
        p = e.payload
        await _lock_job(conn, e.job_id)
        await conn.execute(
            "INSERT INTO products (job_id, image_index, product_type, status, product_id,"
            " shop_id, external_id, created_at, published_at)"
            " VALUES (%s, %s, %s, 'published', %s, %s, %s, %s, %s)"
            " ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET"
            " status = 'published', external_id = EXCLUDED.external_id,"
            " published_at = EXCLUDED.published_at, error = NULL",
            (
                e.job_id,
                p.image_index,
                p.product_type.value,
                p.product_id,
                p.shop_id,
                p.external_id,
                e.occurred_at,
                e.occurred_at,
            ),
        )

    async def _retrying(self, conn: AsyncConnection[Any], e: StageFailed) -> None:
        f = e.payload
        if e.job_id == UNKNOWN_JOB:
            return
        await _lock_job(conn, e.job_id)
        await conn.execute(
            "UPDATE jobs SET retry_attempt = GREATEST(retry_attempt, %s), next_retry_at = %s,"
            " retrying_since = GREATEST(retrying_since, %s), last_error = %s WHERE job_id = %s",
            (f.attempt, f.next_attempt_at, e.occurred_at, f.message, e.job_id),
        )

    async def _failed(self, conn: AsyncConnection[Any], e: StageFailed) -> None:
        f = e.payload
        if await unattributable(conn, e):
            return
        job = await _lock_job(conn, e.job_id)
        if f.stage == GENERATOR.name:
            # The whole request failed: every image not generated is lost.
            await conn.execute(
                "UPDATE jobs SET images_failed = image_count -"
                " (SELECT count(*) FROM images WHERE job_id = %s), error = %s WHERE job_id = %s",
                (e.job_id, f.message, e.job_id),
            )
            return
        types = [f.product_type.value] if f.product_type else list(job["product_types"])
        status = "publish_failed" if f.stage == "publisher" else "failed"
        downgradable = ("created", "publishing") if status == "publish_failed" else ("failed",)
        for product_type in types:
            await conn.execute(
                "INSERT INTO products (job_id, image_index, product_type, status, error,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (job_id, image_index, product_type) DO UPDATE SET"
                " status = EXCLUDED.status, error = EXCLUDED.error"
                " WHERE products.status = ANY(%s)",
                (
                    e.job_id,
                    f.image_index if f.image_index is not None else 0,
                    product_type,
                    status,
                    f.message,
                    e.occurred_at,
                    list(downgradable),
                ),
            )
        await conn.execute("UPDATE jobs SET error = %s WHERE job_id = %s", (f.message, e.job_id))

    async def _pool_report(self, conn: AsyncConnection[Any], e: WorkerExited | PoolScaled) -> None:
        # The pool's reports are not any job's: they go to worker_events (the alerts read it).
        p = e.payload
        await conn.execute(
            "INSERT INTO worker_events (event_id, kind, service, instance_id, pool_id, data,"
            " occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            (
                e.event_id,
                "exited" if isinstance(e, WorkerExited) else "scaled",
                p.service,
                p.instance_id if isinstance(p, WorkerExitedPayload) else None,
                e.producer,
                Jsonb(p.model_dump(mode="json")),
                e.occurred_at,
            ),
        )


class TouchedJobs:
    """Jobs that a batch of events changed, each refreshed once at the batch's end.

    A job's counters are recomputed from its child tables, so one refresh after all of the
    batch's events is the same as one after each; the retry that ended is the one scheduled
    before the latest event of progress.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, datetime | None] = {}

    def add(self, job_id: str, ended_retrying_at: datetime | None) -> None:
        """Note ``job_id``; ``ended_retrying_at`` as for :func:`refresh_job`."""
        before = self.jobs.get(job_id)
        if before is None or (ended_retrying_at is not None and ended_retrying_at > before):
            self.jobs[job_id] = ended_retrying_at

    async def refresh(self, conn: AsyncConnection[Any]) -> None:
        """Refresh every noted job (in a stable order: concurrent monitors lock alike)."""
        for job_id in sorted(self.jobs):
            await refresh_job(conn, job_id, ended_retrying_at=self.jobs[job_id])


async def _same_job(conn: AsyncConnection[Any], event: Event) -> None:
    """A seen event_id is a redelivery only if it was seen for the same job; another job's
    event under a used id is a producer's mistake, dead-lettered rather than silently lost."""
    cur = await conn.execute("SELECT job_id FROM job_events WHERE event_id = %s", (event.event_id,))
    row = await cur.fetchone()
    if row is not None and row[0] != event.job_id:
        raise InvalidEventError(
            f"event_id: {event.event_id} was already used by another job ({row[0][:100]})"
        )


async def _lock_job(conn: AsyncConnection[Any], job_id: str) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT job_id, product_types, image_count FROM jobs WHERE job_id = %s FOR UPDATE",
        (job_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise JobNotYetKnown(f"job {job_id} not folded yet")
    return {"job_id": row[0], "product_types": row[1], "image_count": row[2]}


async def refresh_job(
    conn: AsyncConnection[Any], job_id: str, *, ended_retrying_at: datetime | None = None
) -> str | None:
    """Recompute a job's counters and status from its images and products; return the status.

    ``ended_retrying_at``: an event of that time showed progress, so a retry scheduled before
    it is over.
    """
    if ended_retrying_at is not None:
        await conn.execute(
            "UPDATE jobs SET retrying_since = NULL WHERE job_id = %s AND retrying_since <= %s",
            (job_id, ended_retrying_at),
        )
    cur = await conn.execute(
        "SELECT image_count, cardinality(product_types), auto_publish, images_failed, error,"
        " retrying_since IS NOT NULL,"
        " (SELECT count(*) FROM images i WHERE i.job_id = j.job_id),"
        " (SELECT count(*) FILTER"
        "    (WHERE status IN ('created', 'publishing', 'published', 'publish_failed'))"
        "    FROM products p WHERE p.job_id = j.job_id),"
        " (SELECT count(*) FILTER (WHERE status = 'failed') FROM products p"
        "    WHERE p.job_id = j.job_id),"
        " (SELECT count(*) FILTER (WHERE status = 'published') FROM products p"
        "    WHERE p.job_id = j.job_id),"
        " (SELECT count(*) FILTER (WHERE status = 'publish_failed') FROM products p"
        "    WHERE p.job_id = j.job_id)"
        " FROM jobs j WHERE job_id = %s",
        (job_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    (
        image_count,
        n_types,
        auto_publish,
        images_failed,
        last_error,
        retrying,
        images_done,
        products_done,
        product_rows_failed,
        pubs_done,
        pubs_failed,
    ) = row
    state = job_status(
        JobCounts(
            image_count=image_count,
            product_types=n_types,
            auto_publish=auto_publish,
            images_done=images_done,
            images_failed=images_failed,
            products_done=products_done,
            product_rows_failed=product_rows_failed,
            publications_done=pubs_done,
            publications_failed=pubs_failed,
            retrying=retrying,
            last_error=last_error,
        )
    )
    status = state.status
    await conn.execute(
        "UPDATE jobs SET status = %s, images_done = %s, images_failed = %s,"
        " products_done = %s, products_failed = %s, publications_done = %s,"
        " publications_failed = %s,"
        # A job that completed (after a replay, say) carries no error from before.
        " error = CASE WHEN %s = 'completed' THEN NULL ELSE COALESCE(%s, error) END,"
        " updated_at = now(),"
        " started_at = CASE WHEN %s <> 'queued' THEN COALESCE(started_at, now()) END,"
        " finished_at = CASE WHEN %s THEN COALESCE(finished_at, now()) END"
        " WHERE job_id = %s",
        (
            status,
            images_done,
            state.images_failed,
            products_done,
            state.products_failed,
            pubs_done,
            pubs_failed,
            status,
            state.error,
            status,
            state.terminal,
            job_id,
        ),
    )
    return str(status)


def _log_data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = event.payload.model_dump(mode="json")
    data.pop("input_event", None)  # the replayable copy stays in Kafka; keep the log small
    data["attempt"] = event.attempt
    return data
