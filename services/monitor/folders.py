"""The fold's table: each event type the monitor reads, and how it is folded (:data:`FOLDERS`).

A folder handles one event type and says what its fold needs at each step of
:class:`services.monitor.fold.Folder` (admitting it, opening or locking its job's row, checking
it against the job, writing it, what it tells the metrics); the defaults are those of a job's
event with nothing of its own to write. Adding an event type is one row here: the drift test
(tests/services/monitor/test_folders.py) checks that every type the monitor reads, from the
registry (:mod:`shared.contract.topics`), has exactly one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from psycopg import AsyncConnection

from services.monitor.belongs import (
    ForeignOutput,
    JobShape,
    check_image,
    check_product,
    check_publication,
    outside,
)
from services.monitor.dlq import UNKNOWN_JOB, DeadLetterFailed, unattributable
from services.monitor.orders import fold_call, is_order_call
from shared.adapters.store import (
    images,
    jobs,
    listings,
    products,
    reviews,
    screening_flags,
    workers,
)
from shared.adapters.store.dead_letters import record_dead_letter
from shared.adapters.store.job_claims import JobIdInUse
from shared.contract.events import (
    IMAGE_ACTIONS,
    DecisionAction,
    Event,
    ImageGenerated,
    JobRequested,
    PoolScaled,
    PrintifyWebhookReceived,
    ProductApproved,
    ProductCreated,
    ProductPublished,
    ProductPublishing,
    ProductRepriced,
    ProductWithdrawn,
    ScreeningDecision,
    SellerDecision,
    StageFailed,
    WorkerExited,
    WorkerHeartbeat,
    channels_of,
)
from shared.contract.topics import DEFAULT_CHANNEL, GENERATOR, MONITOR, channel_of
from shared.domain.screening import explain
from shared.platform.errors import InvalidEventError

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
F = TypeVar("F", bound=StageFailed)

# The stages of a job whose durations are measured (label ``stage`` of ``stage_duration``).
GENERATION, PRODUCT, PUBLISH = "generation", "product", "publish"
# A stage an event ends, and what finds when it started: its job, image index, product type.
StageQuery = tuple[str, str, int | None, str | None]
# A counter to add to: its name, labels and amount.
Count = tuple[str, dict[str, str], int]


def counter(name: str, labels: dict[str, str], n: int = 1) -> Count:
    """``n`` to add to the counter ``name`` (tests/test_compose.py finds the names by this)."""
    return name, labels, n


@dataclass(frozen=True)
class Admit:
    """What the fold does with an event before the job's log. ``logged``: it goes to the log
    (and, the first time it is seen there, into its job's rows); ``new``: the fold's answer
    (whether it was folded for the first time) when it does not, or when the log had it."""

    logged: bool = True
    new: bool = False


LOGGED = Admit()


@dataclass(frozen=True)
class Measure:
    """What an event folded for the first time tells the metrics. ``progress``: it may end its
    job (a request or a retry's notice does not); ``stage``: the stage it ends, if any."""

    counts: tuple[Count, ...] = ()
    progress: bool = True
    stage: StageQuery | None = None


class EventFolder(Generic[E]):
    """How one event type is folded; these defaults are those of a job's event that writes
    nothing of its own."""

    async def admit(self, conn: AsyncConnection[Any], event: E) -> Admit:
        """Anything done before the job's log (and whether the event goes there)."""
        return LOGGED

    def describe(self, event: E) -> tuple[str, str]:
        """(level, message) of the event for the job's log."""
        return "info", event.type

    async def open(self, conn: AsyncConnection[Any], event: E) -> None:
        """Open the job's row, before the batch's rows are locked (a request only)."""

    async def locks(self, conn: AsyncConnection[Any], event: E) -> bool:
        """Whether the event is written to its job's (locked) row."""
        return True

    def image_needed(self, event: E) -> tuple[str, int] | None:
        """The (job id, image index) of the image the event is made from, if any."""
        return None

    def check(self, event: E, job: JobShape, images: set[tuple[str, int]]) -> None:
        """Raise unless the event is one its job asked for (:mod:`services.monitor.belongs`)."""

    async def write(self, conn: AsyncConnection[Any], event: E, job: JobShape) -> None:
        """Write what the event tells into its job's rows."""

    def image_made(self, event: E) -> tuple[str, int] | None:
        """The (job id, image index) of the image the event adds, if any."""
        return None

    def ends_retrying(self, event: E) -> bool:
        """Whether the event shows progress, so that a retry scheduled before it is over."""
        return True

    def measure(self, event: E) -> Measure:
        return Measure()


class HeartbeatFolder(EventFolder[WorkerHeartbeat]):
    """Not any job's: the worker's row."""

    async def admit(self, conn: AsyncConnection[Any], event: WorkerHeartbeat) -> Admit:
        await workers.record_heartbeat(conn, event)
        return Admit(logged=False, new=True)

    def measure(self, event: WorkerHeartbeat) -> Measure:
        return Measure(progress=False)


class PoolReportFolder(EventFolder[WorkerExited | PoolScaled]):
    """Not any job's: they go to worker_events (the alerts read it)."""

    async def admit(self, conn: AsyncConnection[Any], event: WorkerExited | PoolScaled) -> Admit:
        await workers.record_pool_report(conn, event)
        return Admit(logged=False, new=True)

    def measure(self, event: WorkerExited | PoolScaled) -> Measure:
        return Measure(progress=False)


class RequestFolder(EventFolder[JobRequested]):
    """A job's request; its job id is claimed before (services.monitor.fold ``_owners``)."""

    def describe(self, event: JobRequested) -> tuple[str, str]:
        p = event.payload
        types = ",".join(t.value for t in p.product_types)
        return "info", (
            f"job accepted: {p.count} image(s) x {types}, priority "
            f"{p.priority.value if p.priority_level is None else p.priority_level} "
            f"({p.priority.value} band), "
            f"autoPublish {'on' if p.auto_publish else 'off'}"
        )

    async def open(self, conn: AsyncConnection[Any], event: JobRequested) -> None:
        await jobs.open_or_fill_requested(conn, event)

    async def locks(self, conn: AsyncConnection[Any], event: JobRequested) -> bool:
        return False  # its row was opened (or filled) by open()

    def ends_retrying(self, event: JobRequested) -> bool:
        return False

    def measure(self, event: JobRequested) -> Measure:
        submitted = counter("jobs_submitted", {"priority": event.payload.priority.value})
        return Measure(counts=(submitted,), progress=False)


# The log's level of an image screening held or blocked.
_SCREENED_LEVEL = {ScreeningDecision.REVIEW: "warning", ScreeningDecision.BLOCK: "error"}


class ImageFolder(EventFolder[ImageGenerated]):
    def describe(self, event: ImageGenerated) -> tuple[str, str]:
        q = event.payload
        line = f"image {q.image_index + 1}/{q.image_count} generated: {q.title}"
        screened = explain.log_line(q.image_index, q.screening) if q.screening else None
        if q.screening is None or screened is None:
            return "info", line
        # The screening's line first: the log shows it however long the title.
        return _SCREENED_LEVEL[q.screening.decision], f"{screened} ({line})"

    def check(self, event: ImageGenerated, job: JobShape, images: set[tuple[str, int]]) -> None:
        check_image(event, job)

    async def write(self, conn: AsyncConnection[Any], event: ImageGenerated, job: JobShape) -> None:
        await jobs.record_tokens(conn, event)
        await images.record(conn, event)
        await screening_flags.record(conn, event)
        p = event.payload
        if p.generation > 0:
            await reviews.screened_again(
                conn,
                job_id=event.job_id,
                image_index=p.image_index,
                generation=p.generation,
                decision=p.screening.decision.value if p.screening else None,
                at=event.occurred_at,
            )

    def image_made(self, event: ImageGenerated) -> tuple[str, int] | None:
        return event.job_id, event.payload.image_index

    def measure(self, event: ImageGenerated) -> Measure:
        p = event.payload
        # The briefs' tokens (on the job's first image) and this image's risk review's.
        spent: dict[str, int] = {}
        for tokens in (p.tokens, p.screening.tokens if p.screening else None):
            for kind, n in tokens.model_dump().items() if tokens is not None else ():
                spent[kind] = spent.get(kind, 0) + n
        counts = tuple(counter("claude_tokens", {"kind": k}, n) for k, n in spent.items() if n)
        return Measure(counts=counts, stage=(GENERATION, event.job_id, None, None))


class ProductFolder(EventFolder[ProductCreated]):
    def describe(self, event: ProductCreated) -> tuple[str, str]:
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

    def image_needed(self, event: ProductCreated) -> tuple[str, int] | None:
        return event.job_id, event.payload.image_index

    def check(self, event: ProductCreated, job: JobShape, images: set[tuple[str, int]]) -> None:
        check_product(event, job, images)

    async def write(self, conn: AsyncConnection[Any], event: ProductCreated, job: JobShape) -> None:
        await products.record_created(conn, event)
        p = event.payload
        if p.routing.review:
            await reviews.await_decision(
                conn,
                job_id=event.job_id,
                image_index=p.image_index,
                generation=p.generation,
                product_types=len(job.product_types),
                at=event.occurred_at,
            )

    def measure(self, event: ProductCreated) -> Measure:
        return Measure(stage=(PRODUCT, event.job_id, event.payload.image_index, None))


class PublishingFolder(EventFolder[ProductPublishing]):
    def describe(self, event: ProductPublishing) -> tuple[str, str]:
        w = event.payload
        return "info", (
            f"{w.product_type.value} for image {w.image_index + 1} sent to {w.sales_channel}, "
            f"awaiting its confirmation (until {w.confirm_by:%Y-%m-%d %H:%M} UTC)"
        )

    def check(self, event: ProductPublishing, job: JobShape, images: set[tuple[str, int]]) -> None:
        check_publication(event, job)

    async def write(
        self, conn: AsyncConnection[Any], event: ProductPublishing, job: JobShape
    ) -> None:
        await listings.record_publishing(conn, event)
        if event.payload.channel == DEFAULT_CHANNEL:  # the product row shows Printify's
            await products.record_publishing(conn, event)


class PublishedFolder(EventFolder[ProductPublished]):
    def describe(self, event: ProductPublished) -> tuple[str, str]:
        u = event.payload
        return "info", f"{u.product_type.value} for image {u.image_index + 1} published"

    def check(self, event: ProductPublished, job: JobShape, images: set[tuple[str, int]]) -> None:
        check_publication(event, job)

    async def write(
        self, conn: AsyncConnection[Any], event: ProductPublished, job: JobShape
    ) -> None:
        await listings.record_published(conn, event)
        if event.payload.channel == DEFAULT_CHANNEL:  # the product row shows Printify's
            await products.record_published(conn, event)

    def measure(self, event: ProductPublished) -> Measure:
        p = event.payload
        return Measure(stage=(PUBLISH, event.job_id, p.image_index, p.product_type.value))


class FailureFolder(EventFolder[F]):
    """A stage's failure: a retry scheduled (from a delay topic), or work given up."""

    async def admit(self, conn: AsyncConnection[Any], event: F) -> Admit:
        if not await _fits_its_job(conn, event):
            return Admit(logged=False)  # a retry of an input the job never asked for
        return LOGGED

    def describe(self, event: F) -> tuple[str, str]:
        f = event.payload
        where = f" ({f.product_type.value})" if f.product_type else ""
        return "error", f"{f.stage} failed{where}: {f.message}"

    async def locks(self, conn: AsyncConnection[Any], event: F) -> bool:
        if event.payload.retryable:
            return event.job_id != UNKNOWN_JOB
        return not await unattributable(conn, event)

    async def write(self, conn: AsyncConnection[Any], event: F, job: JobShape) -> None:
        f = event.payload
        if not f.retryable:
            await _failed(conn, event, job)
            return
        await jobs.mark_retrying(
            conn,
            event.job_id,
            attempt=f.attempt,
            next_attempt_at=f.next_attempt_at,
            at=event.occurred_at,
            error=f.message,
        )
        await _listings_failed(conn, event, job, retrying=True)  # which channel waits

    def ends_retrying(self, event: F) -> bool:
        return not event.payload.retryable

    def measure(self, event: F) -> Measure:
        if event.payload.retryable:
            retried = counter("jobs_retried", {"stage": event.payload.stage})
            return Measure(counts=(retried,), progress=False)
        return Measure()


class DeadLetterFolder(FailureFolder[DeadLetterFailed]):
    """A record of a stage's DLQ: a dead letter to list and replay and, when it is the job's
    news, the stage's failure."""

    async def admit(self, conn: AsyncConnection[Any], event: DeadLetterFailed) -> Admit:
        # Recorded by its record's coordinates, before the event-id check: a stage's report of
        # the same input failing again after a replay has the same event id, yet it is a new
        # dead letter to list (and to replay again).
        recorded = await record_dead_letter(conn, event.dead_letter)
        letter = event.dead_letter
        if (
            letter.topic == MONITOR.dlq
            or not letter.parsed
            or letter.error_class == JobIdInUse.__name__
            or not await _fits_its_job(conn, event)
        ):
            # The monitor failed to record an event, or a stage refused a record that is no
            # event of the job its key names (malformed, or a type its topic never carries:
            # the key is the producer's word, not the job's), a request under another's job
            # id or an input the job never asked for (a forged image 999): listed for
            # replay, but nothing failed in the job's pipeline, so its state (and its log) is
            # left alone.
            return Admit(logged=False, new=recorded)
        return Admit(logged=True, new=recorded)


class DecisionFolder(EventFolder[SellerDecision]):
    """A seller's decision (decision §41): in the job's log with who decided; the review of its
    image (the API's claim confirmed); a cancel ends the job."""

    def describe(self, event: SellerDecision) -> tuple[str, str]:
        d = event.payload
        what = d.action.value
        if d.image_index is not None:
            what += f" image {d.image_index + 1}"
        if d.product_type is not None:
            what += f" ({d.product_type.value})"
        if d.channels:
            what += f" on {', '.join(d.channels)}"
        if d.margin_percent is not None:
            what += f" at a {d.margin_percent:g}% margin"
        if d.prompt is not None:
            what += " with an edited prompt"
        level = "warning" if d.action is DecisionAction.CANCEL else "info"
        return level, f"{d.decided_by} decided: {what}"

    def check(self, event: SellerDecision, job: JobShape, images: set[tuple[str, int]]) -> None:
        d = event.payload
        _refuse_outside(
            event.job_id,
            job,
            d.image_index,
            d.product_type.value if d.product_type is not None else None,
        )

    async def write(self, conn: AsyncConnection[Any], event: SellerDecision, job: JobShape) -> None:
        d = event.payload
        # In a job without review, only an image screening held (its review row) is decided.
        if (
            d.action in IMAGE_ACTIONS
            and not job.review
            and (d.image_index is None or not await reviews.held(conn, event.job_id, d.image_index))
        ):
            raise ForeignOutput(
                f"payload.action: job {event.job_id[:100]} is not reviewed and screening held "
                f"none of its images for review; there is nothing to {d.action.value}"
            )
        if d.action is DecisionAction.CANCEL:
            await jobs.record_cancelled(conn, event.job_id, by=d.decided_by, at=event.occurred_at)
        await reviews.fold_decision(conn, event)


class ProductApprovedFolder(EventFolder[ProductApproved]):
    """An approved product, on its way to the job's channels (their listings follow)."""

    def describe(self, event: ProductApproved) -> tuple[str, str]:
        p = event.payload
        return "info", (
            f"{p.product_type.value} for image {p.image_index + 1} approved by {p.decided_by}: "
            f"publishing to {', '.join(channels_of(p.routing.channels))}"
        )

    def check(self, event: ProductApproved, job: JobShape, images: set[tuple[str, int]]) -> None:
        _refuse_outside(event.job_id, job, event.payload.image_index, event.payload.product_type)


class WithdrawnFolder(EventFolder[ProductWithdrawn]):
    """A product deleted from Printify, or its listing taken down on a channel."""

    def describe(self, event: ProductWithdrawn) -> tuple[str, str]:
        p = event.payload
        where = p.channel or "Printify"
        done = p.outcome if p.was_listed else f"nothing to take down ({p.outcome})"
        return "info", (
            f"{p.product_type.value} for image {p.image_index + 1} on {where}: {done} ({p.reason})"
        )

    def check(self, event: ProductWithdrawn, job: JobShape, images: set[tuple[str, int]]) -> None:
        p = event.payload
        _refuse_outside(event.job_id, job, p.image_index, p.product_type)
        if p.channel is not None and p.channel not in job.publishes_to:
            raise ForeignOutput(
                f"payload.channel: job {event.job_id[:100]} does not publish to {p.channel}"
            )

    async def write(
        self, conn: AsyncConnection[Any], event: ProductWithdrawn, job: JobShape
    ) -> None:
        if event.payload.channel is None:
            await products.record_deleted(conn, event)
        else:
            await listings.record_withdrawn(conn, event)


class RepricedFolder(EventFolder[ProductRepriced]):
    """A product priced again: in Printify (its row's prices), or on a channel (the log)."""

    def describe(self, event: ProductRepriced) -> tuple[str, str]:
        p = event.payload
        pr = p.prices
        prices = f"{pr.price_min_cents / 100:.2f}"
        if pr.price_max_cents is not None and pr.price_max_cents != pr.price_min_cents:
            prices += f"-{pr.price_max_cents / 100:.2f}"
        return "info", (
            f"{p.product_type.value} for image {p.image_index + 1} repriced on "
            f"{p.channel or 'Printify'}: {prices}"
        )

    def check(self, event: ProductRepriced, job: JobShape, images: set[tuple[str, int]]) -> None:
        _refuse_outside(event.job_id, job, event.payload.image_index, event.payload.product_type)

    async def write(
        self, conn: AsyncConnection[Any], event: ProductRepriced, job: JobShape
    ) -> None:
        if event.payload.channel is None:
            await products.record_repriced(conn, event)


def _refuse_outside(
    job_id: str, job: JobShape, image_index: int | None, product_type: str | None
) -> None:
    reason = outside(job_id, job, image_index=image_index, product_type=product_type)
    if reason is not None:
        raise ForeignOutput(reason)


class PrintifyCallFolder(EventFolder[PrintifyWebhookReceived]):
    """A Printify webhook call: no job's (nothing in a job's log); an order's is folded into the
    orders tables (:mod:`services.monitor.orders`), any other topic passed over."""

    async def admit(self, conn: AsyncConnection[Any], event: PrintifyWebhookReceived) -> Admit:
        return Admit(logged=False, new=bool(await fold_call(conn, event)))

    def describe(self, event: PrintifyWebhookReceived) -> tuple[str, str]:
        p = event.payload
        return "info", f"Printify {p.topic} about {p.resource_type} {p.resource_id}"

    def measure(self, event: PrintifyWebhookReceived) -> Measure:
        orders = (counter("orders_folded", {}),) if is_order_call(event) else ()
        return Measure(counts=orders, progress=False)


# Every event type the monitor folds, exactly (the type, not a subclass: a dead letter is a
# StageFailed with a row of its own).
FOLDERS: dict[type[Event], EventFolder[Any]] = {
    JobRequested: RequestFolder(),
    ImageGenerated: ImageFolder(),
    ProductCreated: ProductFolder(),
    ProductPublishing: PublishingFolder(),
    ProductPublished: PublishedFolder(),
    StageFailed: FailureFolder[StageFailed](),
    DeadLetterFailed: DeadLetterFolder(),
    WorkerHeartbeat: HeartbeatFolder(),
    WorkerExited: PoolReportFolder(),
    PoolScaled: PoolReportFolder(),
    PrintifyWebhookReceived: PrintifyCallFolder(),
    SellerDecision: DecisionFolder(),
    ProductApproved: ProductApprovedFolder(),
    ProductWithdrawn: WithdrawnFolder(),
    ProductRepriced: RepricedFolder(),
}


def folder_of(event: Event) -> EventFolder[Any]:
    """The folder of ``event``'s type; a type the monitor does not fold is refused."""
    folder = FOLDERS.get(type(event))
    if folder is None:
        raise InvalidEventError(f"type: the monitor does not fold {event.type} events")
    return folder


async def _listings_failed(
    conn: AsyncConnection[Any], e: StageFailed, job: JobShape, *, retrying: bool
) -> None:
    """A channel's publisher failed on a product (each of the job's, when it names none)."""
    f = e.payload
    channel = channel_of(f.stage)
    if channel is None:
        return
    for index, product_type in _products_of(e, job):
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


async def _failed(conn: AsyncConnection[Any], e: StageFailed, job: JobShape) -> None:
    f = e.payload
    if f.stage == GENERATOR.name:
        await jobs.fail_images(conn, e.job_id, f.message)
        return
    await _listings_failed(conn, e, job, retrying=False)
    channel = channel_of(f.stage)
    if channel in (None, DEFAULT_CHANNEL):  # the product row shows Printify's
        for index, product_type in _products_of(e, job):
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


def _products_of(e: StageFailed, job: JobShape) -> list[tuple[int, str]]:
    """The (image index, product type) pairs a failure is about: its product, or each of the
    job's types when it names none."""
    f = e.payload
    types = [f.product_type.value] if f.product_type else list(job.product_types)
    index = f.image_index if f.image_index is not None else 0
    return [(index, t) for t in types]


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
