"""Folding events into PostgreSQL.

Each event is folded in one transaction that first records it in ``job_events`` by its job and
event id: an event seen before changes nothing, so replaying a topic from the start is harmless.
A ``job.requested`` first claims its job id (:mod:`shared.adapters.store.job_claims`): the same
request again changes nothing, another request under the id is dead-lettered (``job id in use``). A
stage's output is folded only if its job asked for it (:mod:`services.monitor.belongs`). Counters
and the job's status are recomputed from the child tables, never incremented, so the fold does
not depend on the order in which the topics are read.

What each event type does at each step (admitted, opening or locking its job, checked, written)
is its folder's (:mod:`services.monitor.folders`, a table from event type to folder); this
module runs the steps for a batch, in the order that keeps its round trips few.

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

from services.monitor.belongs import ForeignOutput, JobShape
from services.monitor.folders import folder_of
from services.monitor.status import JobCounts, job_status
from shared.adapters.store import images, job_claims, job_events, jobs
from shared.contract.events import Event, JobRequested
from shared.platform.errors import InvalidEventError, RetryableError

logger = logging.getLogger(__name__)


class JobNotYetKnown(RetryableError):
    """An event of a claimed job arrived before its request was folded; retry shortly."""


class UnknownJob(ForeignOutput):
    """An output of a job nobody requested: no request claimed its id."""


class EventNotFolded(Exception):
    """Events of a batch that could not be folded, each with why (what its handler call
    raises), so the batch can be folded again without them rather than one by one. Each
    event is that very object (a batch may hold one event twice, redelivered)."""

    def __init__(self, failed: list[tuple[Event, Exception]]) -> None:
        super().__init__("; ".join(f"{e.type} {e.event_id}: {why}" for e, why in failed))
        self.failed = failed

    @property
    def first(self) -> Exception:
        """Why the first of them failed: what a fold of that event alone raises."""
        return self.failed[0][1]


def describe(event: Event) -> tuple[str, str]:
    """(level, message) of an event for the job's log."""
    return folder_of(event).describe(event)


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
        try:
            [new] = await self.fold_many(conn, [Read(event, topic, partition, offset)], touched)
        except EventNotFolded as exc:
            raise exc.first from None
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
        answer: dict[int, bool] = {}  # theirs when the log had them already
        for i, read in enumerate(reads):
            admit = await folder_of(read.event).admit(conn, read.event)
            if admit.logged:
                logged.append(i)
                answer[i] = admit.new
            else:
                new[i] = admit.new
        logged = await _owners(conn, reads, logged)
        first = await job_events.record_many(conn, [_log_entry(reads[i]) for i in logged])
        fresh: list[Event] = []
        for i, is_new in zip(logged, first, strict=True):
            new[i] = is_new or answer[i]
            if is_new:
                fresh.append(reads[i].event)
        touched.locked |= await self._apply(conn, fresh)
        for event in fresh:
            # Progress (or a final outcome) after a retry was scheduled ends 'retrying'.
            ends = folder_of(event).ends_retrying(event)
            touched.add(event.job_id, event.occurred_at if ends else None)
        return new

    async def _apply(self, conn: AsyncConnection[Any], events: list[Event]) -> set[str]:
        """Write what each event (folded for the first time) tells into its job's rows; the
        jobs whose rows it locked."""
        # Rows first opened by these events, then every job's row locked at once.
        for event in events:
            await folder_of(event).open(conn, event)
        locking = [e for e in events if await folder_of(e).locks(conn, e)]
        # Images before what is made from them: a product read in the same batch as its image
        # (a backlog read from many topics at once) folds instead of failing the batch.
        locking.sort(key=lambda e: folder_of(e).image_made(e) is None)
        locked = {
            job_id: JobShape.of(row)
            for job_id, row in (await jobs.lock(conn, [e.job_id for e in locking])).items()
        }
        # The images the batch's products are made from, asked once; the batch's own images
        # are added as they are written.
        have = await images.existing(
            conn, [k for e in locking if (k := folder_of(e).image_needed(e)) is not None]
        )
        # Every event that does not belong is noted and the others checked on, so a batch with
        # several is folded again once, without all of them.
        failed: list[tuple[Event, Exception]] = []
        for event in locking:
            folder = folder_of(event)
            try:
                job = await _job_of(conn, event, locked)
                folder.check(event, job, have)
            except (InvalidEventError, RetryableError) as exc:
                failed.append((event, exc))
                continue
            if not failed:  # after a failure the batch is rolled back: only checks still count
                await folder.write(conn, event, job)
            if (made := folder.image_made(event)) is not None:
                have.add(made)
        if failed:
            raise EventNotFolded(failed)
        return set(locked)


async def _job_of(
    conn: AsyncConnection[Any], event: Event, locked: dict[str, JobShape]
) -> JobShape:
    """What ``event``'s job asked for, from its locked row; raises when it has none: a job
    nobody requested, or one whose request is not folded yet."""
    job = locked.get(event.job_id)
    if job is not None:
        return job
    if not await job_claims.claimed(conn, event.job_id):
        raise UnknownJob(
            f"job_id: no job {event.job_id[:100]} was requested "
            f"(a {event.type} of a job that does not exist)"
        )
    raise JobNotYetKnown(f"job {event.job_id} not folded yet")


class TouchedJobs:
    """Jobs that a batch of events changed, each refreshed once at the batch's end.

    A job's counters are recomputed from its child tables, so one refresh after all of the
    batch's events is the same as one after each; the retry that ended is the one scheduled
    before the latest event of progress.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, datetime | None] = {}
        # Rows this transaction has locked already (the fold's own writes took them).
        self.locked: set[str] = set()

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
        # Locking a row this transaction holds is a round trip on every event's path for
        # nothing (a lone event's whole fold is a dozen of them).
        if rest := [job for job in self.jobs if job not in self.locked]:
            await jobs.lock(conn, rest)
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
    owns raises :class:`shared.adapters.store.job_claims.JobIdInUse`."""
    asked = [(i, e) for i in logged if isinstance(e := reads[i].event, JobRequested)]
    owned = await job_claims.claim_many(conn, [e for _, e in asked])
    duplicates: set[int] = set()
    conflicts: list[tuple[Event, Exception]] = []
    for (i, event), ownership in zip(asked, owned, strict=True):
        if ownership is job_claims.Ownership.CONFLICT:
            conflicts.append((event, job_claims.refusal(event)))
        if ownership is job_claims.Ownership.DUPLICATE:
            logger.info("duplicate request job_id=%s event_id=%s", event.job_id, event.event_id)
            duplicates.add(i)
    if conflicts:
        raise EventNotFolded(conflicts)
    return [i for i in logged if i not in duplicates]


def _log_entry(read: Read) -> job_events.LogEntry:
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


def _log_data(event: Event) -> dict[str, object]:
    data: dict[str, object] = event.payload.model_dump(mode="json")
    data.pop("input_event", None)  # the replayable copy stays in Kafka; keep the log small
    data["attempt"] = event.attempt
    return data
