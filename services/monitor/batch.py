"""Folding many events in one transaction.

Every event the monitor reads would otherwise cost a pooled connection, a transaction for its
fold and another for its metrics. Handler calls instead queue their event here; one task folds
whatever is queued (up to ``max_batch``) in a single transaction, the metrics of newly folded
events in the same one, so an event's counters are written exactly when the event is. The
transaction runs in pipeline mode: a statement whose result the fold does not read is sent
without waiting for the server, which makes most of a batch's statements cost a fraction of a
round trip. If the batch fails, it is rolled back: events that failed it on their own account
(not their job's yet, not ones their job asked for) fail their handler calls (which the runner
retries or dead-letters) and the rest is folded again together; on any other failure each event
is folded alone, so one bad event fails only its own call and the others go through.

A database that cannot be reached is not a bad event: the fold waits it out, retrying with
backoff for as long as it takes, so good events are never dead-lettered over an outage. The
handler calls stay pending meanwhile, the runner's slots and buffers fill and it pauses its
partitions (backpressure); when the database is back everything resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import EventNotFolded, Folder, Read, TouchedJobs
from services.monitor.metrics import MetricBatch, MetricsRecorder
from shared.contract.events import Event
from shared.pipeline.runner import MessageContext
from shared.platform.db import db_unavailable

logger = logging.getLogger(__name__)


@dataclass
class _Item:
    event: Event
    ctx: MessageContext
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class FoldBatcher:
    """Queues events and folds them (with their metrics) a batch per transaction."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        folder: Folder,
        metrics: MetricsRecorder,
        *,
        max_batch: int = 200,
        max_wait_s: float = 30.0,
        acquire_timeout_s: float = 5.0,
        linger_s: float = 0.0,
    ) -> None:
        self.pool = pool
        self.folder = folder
        self.metrics = metrics
        self.max_batch = max_batch
        self._queue: list[_Item] = []
        self._worker: asyncio.Task[None] | None = None
        self.max_wait_s = max_wait_s
        # How long a batch that is not full waits for more events: a batch costs a few round
        # trips however many events it holds, so while events stream in a short wait makes
        # each cost a fraction (and delays a job's status by no more than this). An event
        # that comes alone, after a quiet linger_s, is folded at once: no other is coming to
        # share its batch, and with vendors' seconds between a job's events that is every
        # job's last event at a trickle (bench/share.py: the wait was a fifth of the engine's
        # share of the fold).
        self.linger_s = linger_s
        self._last_submit = -float("inf")
        self._streaming = False
        self.lingered = 0  # batches that waited, for tests and benchmarks
        # A short wait for a connection: during an outage the pool has none to give.
        self.acquire_timeout_s = acquire_timeout_s
        self.batches = 0  # for tests and benchmarks
        self.transactions = 0  # folds tried, a batch's again without its bad events included
        # Monotonic time the database became unreachable; None while it answers.
        self.unavailable_since: float | None = None
        self.unavailable_rounds = 0  # failed tries while unavailable, for tests

    async def submit(self, event: Event, ctx: MessageContext) -> None:
        """Fold ``event`` (in some batch); returns once it is committed, raises if it failed."""
        item = _Item(event, ctx)
        now = time.monotonic()
        self._streaming = now - self._last_submit < self.linger_s
        self._last_submit = now
        self._queue.append(item)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="monitor-fold-batches")
        await asyncio.shield(item.done)

    async def _run(self) -> None:
        while self._queue:
            if self.linger_s and self._streaming and len(self._queue) < self.max_batch:
                self.lingered += 1
                await asyncio.sleep(self.linger_s)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            await self._fold_batch(batch)
            self.batches += 1

    async def _fold_batch(self, batch: list[_Item]) -> None:
        """Fold ``batch``; events that fail it on their own account (not their job's yet, not
        ones their job asked for) fail alone and the rest is folded again together. In a
        backlog read from many topics at once such events are common (a product read before
        its image), and folding the rest one by one made every one of them cost a
        transaction."""
        while batch:
            try:
                await self._fold(batch)
            except EventNotFolded as exc:
                failed = [(i, why) for e, why in exc.failed for i in batch if i.event is e]
                if not failed:  # not ours: nothing to set aside
                    await self._fold_one_by_one(batch, exc)
                    return
                for item, why in failed:
                    logger.info(
                        "event set aside from its batch job_id=%s topic=%s partition=%d "
                        "offset=%d error=%s",
                        item.event.job_id,
                        item.ctx.topic,
                        item.ctx.partition,
                        item.ctx.offset,
                        why,
                    )
                    if not item.done.done():
                        item.done.set_exception(why)
                batch = [i for i in batch if not i.done.done()]
            except Exception as exc:
                await self._fold_one_by_one(batch, exc)
                return
            else:
                for item in batch:
                    if not item.done.done():
                        item.done.set_result(None)
                return

    async def _fold_one_by_one(self, batch: list[_Item], error: Exception) -> None:
        logger.warning(
            "fold batch failed, folding one by one events=%d error=%s", len(batch), error
        )
        for item in batch:
            await self._fold_alone(item)

    async def _fold(self, batch: list[_Item]) -> None:
        """Fold ``batch`` in one transaction; while the database is unreachable, wait and try
        again (for ever). Any other failure is raised."""
        wait = 0.2
        while True:
            self.transactions += 1
            try:
                async with (
                    self.pool.connection(self.acquire_timeout_s) as conn,
                    conn.pipeline(),
                    conn.transaction(),
                ):
                    await self._fold_all(conn, batch)
            except Exception as exc:
                if not db_unavailable(exc):
                    raise
                self.unavailable_rounds += 1
                if self.unavailable_since is None:
                    self.unavailable_since = time.monotonic()
                    logger.error("database unavailable, folding paused error=%s", exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.max_wait_s)
                continue
            if self.unavailable_since is not None:
                logger.warning(
                    "database back, folding resumed paused_s=%.1f",
                    time.monotonic() - self.unavailable_since,
                )
                self.unavailable_since = None
            return

    async def _fold_alone(self, item: _Item) -> None:
        try:
            await self._fold([item])
        except EventNotFolded as exc:
            if not item.done.done():
                item.done.set_exception(exc.first)
        except Exception as exc:
            if not item.done.done():
                item.done.set_exception(exc)
        else:
            if not item.done.done():
                item.done.set_result(None)

    async def _fold_all(self, conn: AsyncConnection[Any], batch: list[_Item]) -> None:
        """Fold every item, then refresh each job they changed once, count the jobs that
        ended, and write the batch's metrics: all in the caller's transaction."""
        touched = TouchedJobs()
        metrics = MetricBatch()
        reads = [Read(i.event, i.ctx.topic, i.ctx.partition, i.ctx.offset) for i in batch]
        new = await self.folder.fold_many(conn, reads, touched)
        # Metrics only for events folded for the first time: a replay counts nothing.
        fresh = [read.event for read, is_new in zip(reads, new, strict=True) if is_new]
        ended_at = await self.metrics.record_in(conn, fresh, metrics)
        statuses = await touched.refresh(conn)
        await self.metrics.record_terminal(conn, ended_at, statuses, metrics)
        await metrics.flush(conn)
