"""Folding events into PostgreSQL.

Each event is folded in one transaction that first records it in ``job_events`` by its job and
event id: an event seen before changes nothing, so replaying a topic from the start is harmless.
A ``job.requested`` first claims its job id (:mod:`shared.store.job_claims`): the same request
again changes nothing, another request under the id is dead-lettered (``job id in use``). A
stage's output is folded only if its job asked for it (:mod:`services.monitor.belongs`). Counters
and the job's status are recomputed from the child tables, never incremented, so the fold does
not depend on the order in which the topics are read.

A job is ``completed`` only when every expected image, product and (with autoPublish)
publication has arrived; when something failed it ends ``partial`` (something was delivered) or
``failed`` (nothing was), with an error saying exactly what failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.monitor.belongs import ForeignOutput, JobShape, check, outside
from services.monitor.dlq import (
    UNKNOWN_JOB,
    DeadLetterFailed,
    unattributable,
)
from services.monitor.status import JobCounts, job_status
from shared.errors import RetryableError
from shared.events import (
    Event,
    ImageGenerated,
    JobRequested,
    PoolScaled,
    ProductCreated,
    ProductPublished,
    ProductPublishing,
    StageFailed,
    StageFailedPayload,
    WorkerExited,
    WorkerHeartbeat,
)
from shared.store import images, job_claims, job_events, jobs, listings, products, workers
from shared.store.dead_letters import record_dead_letter
from shared.topics import DEFAULT_CHANNEL, GENERATOR, MONITOR, channel_of

logger = logging.getLogger(__name__)


class JobNotYetKnown(RetryableError):
    """An event of a claimed job arrived before its request was folded; retry shortly."""


class UnknownJob(ForeignOutput):
    """An output of a job nobody requested: no request claimed its id."""


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
        pr = c.prices
        prices = f"{pr.price_min_cents}"
        if pr.price_max_cents is not None and pr.price_max_cents != pr.price_min_cents:
            prices += f"-{pr.price_max_cents}"
        costs = (
            f" (cost {pr.cost_min_cents}-{pr.cost_max_cents})"
            if pr.cost_min_cents is not None and pr.cost_max_cents is not None
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


@dataclass(frozen=True)
class Read:
    """An event as read: where from, so its log entry can point at the record."""

    event: Event
    topic: str
    partition: int
    offset: int


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
    ) -> bool:
        """Fold one event, and refresh its job, inside the caller's transaction; False when it
        had been folded before."""
        touched = TouchedJobs()
        [new] = await self.fold_many(conn, [Read(event, topic, partition, offset)], touched)
        await touched.refresh(conn)
        return new

    async def fold_many(
        self, conn: AsyncConnection[Any], reads: list[Read], touched: TouchedJobs
    ) -> list[bool]:
        """Fold events inside the caller's transaction; per event, False when it had been folded
        before (so that its metrics are not counted twice).

        The jobs' counters and status are not recomputed here: each job is noted in
        ``touched``, which the caller refreshes once, before it commits. The statements whose
        answers are needed (the log's, the locks) go once for the whole batch, so in pipeline
        mode a batch costs a few round trips however many events it holds.
        """
        new = [False] * len(reads)
        logged: list[int] = []  # events that go to a job's log
        dead_recorded: dict[int, bool] = {}
        for i, read in enumerate(reads):
            event = read.event
            if isinstance(event, WorkerHeartbeat):
                await workers.record_heartbeat(conn, event)
                new[i] = True
            elif isinstance(event, WorkerExited | PoolScaled):
                # Not any job's: they go to worker_events (the alerts read it).
                await workers.record_pool_report(conn, event)
                new[i] = True
            elif isinstance(event, DeadLetterFailed):
                # Recorded by its record's coordinates, before the event-id check: a stage's
                # report of the same input failing again after a replay has the same event id,
                # yet it is a new dead letter to list (and to replay again).
                recorded = await record_dead_letter(conn, event.dead_letter)
                if (
                    event.dead_letter.topic == MONITOR.dlq
                    or not event.dead_letter.parsed
                    or _refused_request(event)
                    or not await _fits_its_job(conn, event)
                ):
                    # The monitor failed to record an event, or a stage refused a record that
                    # is no event of the job its key names (malformed, or a type its topic
                    # never carries: the key is the producer's word, not the job's), a request
                    # under another's job id or an input the job never asked for (a forged
                    # image 999): listed for replay, but nothing failed in the job's
                    # pipeline, so its state (and its log) is left alone.
                    new[i] = recorded
                else:
                    dead_recorded[i] = recorded
                    logged.append(i)
            elif isinstance(event, StageFailed) and not await _fits_its_job(conn, event):
                pass  # a retry of an input the job never asked for: not the job's news
            else:
                logged.append(i)
        logged = await _owners(conn, reads, logged)
        first = await job_events.record_many(conn, [_log_entry(reads[i]) for i in logged])
        fresh: list[Event] = []
        for i, is_new in zip(logged, first, strict=True):
            if is_new:
                new[i] = True
                fresh.append(reads[i].event)
            else:
                new[i] = dead_recorded.get(i, False)
        await self._apply(conn, fresh)
        for event in fresh:
            # Progress (or a final outcome) after a retry was scheduled ends 'retrying'.
            ends_retrying = not isinstance(event, JobRequested) and not (
                isinstance(event, StageFailed) and event.payload.retryable
            )
            touched.add(event.job_id, event.occurred_at if ends_retrying else None)
        return new

    async def _apply(self, conn: AsyncConnection[Any], events: list[Event]) -> None:
        """Write what each event (folded for the first time) tells into its job's rows."""
        # Rows first opened by these events, then every job's row locked at once.
        for event in events:
            if isinstance(event, JobRequested):
                await jobs.open_or_fill_requested(conn, event)
        locking: list[Event] = []
        for event in events:
            if isinstance(event, StageFailed) and (
                event.job_id == UNKNOWN_JOB
                if event.payload.retryable
                else await unattributable(conn, event)
            ):
                continue
            if not isinstance(event, JobRequested):
                locking.append(event)
        locked = await jobs.lock(conn, [e.job_id for e in locking])
        # The images the batch's products are made from, asked once; the batch's own images
        # are added as they are written.
        have = await images.existing(
            conn,
            [(e.job_id, e.payload.image_index) for e in locking if isinstance(e, ProductCreated)],
        )
        for event in locking:
            job = locked.get(event.job_id)
            if job is None:
                if not await job_claims.claimed(conn, event.job_id):
                    raise UnknownJob(
                        f"job_id: no job {event.job_id[:100]} was requested "
                        f"(a {event.type} of a job that does not exist)"
                    )
                raise JobNotYetKnown(f"job {event.job_id} not folded yet")
            check(event, JobShape.of(job), have)
            await self._write(conn, event, job)
            if isinstance(event, ImageGenerated):
                have.add((event.job_id, event.payload.image_index))

    async def _write(self, conn: AsyncConnection[Any], e: Event, job: dict[str, Any]) -> None:
        if isinstance(e, ImageGenerated):
            await jobs.record_tokens(conn, e)
            await images.record(conn, e)
        elif isinstance(e, ProductCreated):
            await products.record_created(conn, e)
        elif isinstance(e, ProductPublishing):
            await listings.record_publishing(conn, e)
            if e.payload.channel == DEFAULT_CHANNEL:  # the product row shows Printify's
                await products.record_publishing(conn, e)
        elif isinstance(e, ProductPublished):
            await listings.record_published(conn, e)
            if e.payload.channel == DEFAULT_CHANNEL:
                await products.record_published(conn, e)
        elif isinstance(e, StageFailed) and e.payload.retryable:
            f = e.payload
            await jobs.mark_retrying(
                conn,
                e.job_id,
                attempt=f.attempt,
                next_attempt_at=f.next_attempt_at,
                at=e.occurred_at,
                error=f.message,
            )
            await self._listings_failed(conn, e, job, retrying=True)  # which channel waits
        elif isinstance(e, StageFailed):
            await self._failed(conn, e, job)

    async def _listings_failed(
        self, conn: AsyncConnection[Any], e: StageFailed, job: dict[str, Any], *, retrying: bool
    ) -> None:
        """A channel's publisher failed on a product (each of the job's, when it names none)."""
        f = e.payload
        channel = channel_of(f.stage)
        if channel is None:
            return
        for index, product_type in _products_of(f, job):
            await listings.record_failed(
                conn,
                job_id=e.job_id,
                image_index=index,
                product_type=product_type,
                channel=channel,
                error=f.message,
                at=e.occurred_at,
                retrying=retrying,
            )

    async def _failed(
        self, conn: AsyncConnection[Any], e: StageFailed, job: dict[str, Any]
    ) -> None:
        f = e.payload
        if f.stage == GENERATOR.name:
            await jobs.fail_images(conn, e.job_id, f.message)
            return
        await self._listings_failed(conn, e, job, retrying=False)
        channel = channel_of(f.stage)
        if channel in (None, DEFAULT_CHANNEL):  # the product row shows Printify's
            for index, product_type in _products_of(f, job):
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


def _products_of(f: StageFailedPayload, job: dict[str, Any]) -> list[tuple[int, str]]:
    """The (image index, product type) pairs a failure is about: its product, or each of the
    job's types when it names none."""
    types = [f.product_type.value] if f.product_type else list(job["product_types"])
    index = f.image_index if f.image_index is not None else 0
    return [(index, t) for t in types]


class TouchedJobs:
    """Jobs that a batch of events changed, each refreshed once at the batch's end.

    A job's counters are recomputed from its child tables, so one refresh after all of the
    batch's events is the same as one after each; the retry that ended is the one scheduled
    before the latest event of progress.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, datetime | None] = {}

    def add(self, job_id: str, ended_retrying_at: datetime | None) -> None:
        """Note ``job_id``; ``ended_retrying_at``: an event of that time showed progress, so a
        retry scheduled before it is over."""
        before = self.jobs.get(job_id)
        if before is None or (ended_retrying_at is not None and ended_retrying_at > before):
            self.jobs[job_id] = ended_retrying_at

    async def refresh(self, conn: AsyncConnection[Any]) -> dict[str, str]:
        """Recompute every noted job's counters and status from its rows; return the statuses."""
        if not self.jobs:
            return {}
        # The statements below change every job at once, in whatever order the plan takes:
        # the rows are locked first in job order, so concurrent monitors cannot deadlock.
        await jobs.lock(conn, list(self.jobs))
        await jobs.end_retrying(conn, {job: at for job, at in self.jobs.items() if at is not None})
        saved: list[jobs.JobState] = []
        for job_id, row in sorted((await jobs.counts(conn, list(self.jobs))).items()):
            counts = JobCounts(**row)
            state = job_status(counts)
            saved.append(
                jobs.JobState(
                    job_id=job_id,
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
            )
        await jobs.save_states(conn, saved)
        return {st.job_id: st.status for st in saved}


async def _owners(conn: AsyncConnection[Any], reads: list[Read], logged: list[int]) -> list[int]:
    """``logged`` without the requests that are duplicates of their job's first (the same
    request under another event id: nothing to fold); a request under a job id another request
    owns raises :class:`shared.store.job_claims.JobIdInUse`."""
    asked = [(i, e) for i in logged if isinstance(e := reads[i].event, JobRequested)]
    owned = await job_claims.claim_many(conn, [e for _, e in asked])
    duplicates: set[int] = set()
    for (i, event), ownership in zip(asked, owned, strict=True):
        if ownership is job_claims.Ownership.CONFLICT:
            raise job_claims.refusal(event)
        if ownership is job_claims.Ownership.DUPLICATE:
            logger.info("duplicate request job_id=%s event_id=%s", event.job_id, event.event_id)
            duplicates.add(i)
    return [i for i in logged if i not in duplicates]


async def _fits_its_job(conn: AsyncConnection[Any], event: StageFailed) -> bool:
    """Whether a stage's failure is about a part of its job the job asked for: a stage that
    fails on a forged input (an image 999, a type the job never asked for) says nothing about
    the job it names. A job without a row yet is left to the fold's own rules."""
    f = event.payload
    if f.image_index is None and f.product_type is None:
        return True
    row = await jobs.asked(conn, event.job_id)
    if row is None:
        return True
    reason = outside(
        event.job_id,
        JobShape.of(row),
        image_index=f.image_index,
        product_type=f.product_type.value if f.product_type is not None else None,
    )
    if reason is not None:
        logger.warning("failure outside its job ignored job_id=%s stage=%s reason=%s",
                       event.job_id, f.stage, reason)  # fmt: skip
        return False
    return True


def _refused_request(event: DeadLetterFailed) -> bool:
    """A stage's dead letter of a request refused because another request owns its job id."""
    return event.dead_letter.error_class == job_claims.JobIdInUse.__name__


def _log_entry(read: Read) -> dict[str, Any]:
    level, message = describe(read.event)
    e = read.event
    return {
        "event_id": e.event_id,
        "job_id": e.job_id,
        "type": e.type,
        "level": level,
        "message": message,
        "producer": e.producer,
        "data": _log_data(e),
        "topic": read.topic,
        "partition": read.partition,
        "offset": read.offset,
        "occurred_at": e.occurred_at,
    }


def _log_data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = event.payload.model_dump(mode="json")
    data.pop("input_event", None)  # the replayable copy stays in Kafka; keep the log small
    data["attempt"] = event.attempt
    return data
