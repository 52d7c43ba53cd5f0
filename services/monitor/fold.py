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
    WorkerHeartbeat,
)
from shared.store import images, job_events, jobs, listings, products, workers
from shared.store.dead_letters import record_dead_letter
from shared.topics import DEFAULT_CHANNEL, GENERATOR, MONITOR, channel_of

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
        new = await job_events.record(
            conn,
            event_id=event.event_id,
            job_id=event.job_id,
            type=event.type,
            level=level,
            message=message,
            producer=event.producer,
            data=_log_data(event),
            topic=topic,
            partition=partition,
            offset=offset,
            occurred_at=event.occurred_at,
        )
        if not new:
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
        await jobs.open_from_image(conn, e)
        await _lock_job(conn, e.job_id)
        await jobs.record_tokens(conn, e)
        await images.record(conn, e)

    async def _product(self, conn: AsyncConnection[Any], e: ProductCreated) -> None:
        await _lock_job(conn, e.job_id)
        await products.record_created(conn, e)

    async def _publishing(self, conn: AsyncConnection[Any], e: ProductPublishing) -> None:
        await _lock_job(conn, e.job_id)
        await listings.record_publishing(conn, e)
        if e.payload.channel == DEFAULT_CHANNEL:  # the product row shows Printify's publication
            await products.record_publishing(conn, e)

    async def _published(self, conn: AsyncConnection[Any], e: ProductPublished) -> None:
        await _lock_job(conn, e.job_id)
        await listings.record_published(conn, e)
        if e.payload.channel == DEFAULT_CHANNEL:
            await products.record_published(conn, e)

    async def _retrying(self, conn: AsyncConnection[Any], e: StageFailed) -> None:
        f = e.payload
        if e.job_id == UNKNOWN_JOB:
            return
        await _lock_job(conn, e.job_id)
        await jobs.mark_retrying(
            conn,
            e.job_id,
            attempt=f.attempt,
            next_attempt_at=f.next_attempt_at,
            at=e.occurred_at,
            error=f.message,
        )

    async def _failed(self, conn: AsyncConnection[Any], e: StageFailed) -> None:
        f = e.payload
        if await unattributable(conn, e):
            return
        job = await _lock_job(conn, e.job_id)
        if f.stage == GENERATOR.name:
            await jobs.fail_images(conn, e.job_id, f.message)
            return
        types = [f.product_type.value] if f.product_type else list(job["product_types"])
        channel = channel_of(f.stage)
        for product_type in types:
            index = f.image_index if f.image_index is not None else 0
            if channel is not None:
                await listings.record_failed(
                    conn,
                    job_id=e.job_id,
                    image_index=index,
                    product_type=product_type,
                    channel=channel,
                    error=f.message,
                    at=e.occurred_at,
                )
            if channel in (None, DEFAULT_CHANNEL):
                await products.record_failed(
                    conn,
                    job_id=e.job_id,
                    image_index=index,
                    product_type=product_type,
                    publishing=channel is not None,
                    error=f.message,
                    at=e.occurred_at,
                )
        await jobs.set_error(conn, e.job_id, f.message)

    async def _pool_report(self, conn: AsyncConnection[Any], e: WorkerExited | PoolScaled) -> None:
        # The pool's reports are not any job's: they go to worker_events (the alerts read it).
        await workers.record_pool_report(conn, e)


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
    other = await job_events.job_of(conn, event.event_id)
    if other is not None and other != event.job_id:
        raise InvalidEventError(
            f"event_id: {event.event_id} was already used by another job ({other[:100]})"
        )


async def _lock_job(conn: AsyncConnection[Any], job_id: str) -> dict[str, Any]:
    job = await jobs.lock(conn, job_id)
    if job is None:
        raise JobNotYetKnown(f"job {job_id} not folded yet")
    return job


async def refresh_job(
    conn: AsyncConnection[Any], job_id: str, *, ended_retrying_at: datetime | None = None
) -> str | None:
    """Recompute a job's counters and status from its images and products; return the status.

    ``ended_retrying_at``: an event of that time showed progress, so a retry scheduled before
    it is over.
    """
    if ended_retrying_at is not None:
        await jobs.end_retrying(conn, job_id, ended_retrying_at)
    row = await jobs.counts(conn, job_id)
    if row is None:
        return None
    counts = JobCounts(**row)
    state = job_status(counts)
    await jobs.save_state(
        conn,
        job_id,
        status=state.status,
        terminal=state.terminal,
        error=state.error,
        images_done=counts.images_done,
        images_failed=state.images_failed,
        products_done=counts.products_done,
        products_failed=state.products_failed,
        publications_done=counts.publications_done,
        publications_failed=counts.publications_failed,
    )
    return state.status


def _log_data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = event.payload.model_dump(mode="json")
    data.pop("input_event", None)  # the replayable copy stays in Kafka; keep the log small
    data["attempt"] = event.attempt
    return data
