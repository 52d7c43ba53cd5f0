"""Folding many events in one transaction.

Every event the monitor reads would otherwise cost a pooled connection, a transaction for its
fold and another for its metrics. Handler calls instead queue their event here; one task folds
whatever is queued (up to ``max_batch``) in a single transaction, the metrics of newly folded
events in the same one, so an event's counters are written exactly when the event is. If the
batch fails, it is rolled back and each event is folded alone, so one bad event fails only its
own handler call (which the runner retries or dead-letters) and the others go through.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
from services.monitor.metrics import MetricsRecorder
from shared.events import Event
from shared.runner import MessageContext

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
    ) -> None:
        self.pool = pool
        self.folder = folder
        self.metrics = metrics
        self.max_batch = max_batch
        self._queue: list[_Item] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # for tests and benchmarks

    async def submit(self, event: Event, ctx: MessageContext) -> None:
        """Fold ``event`` (in some batch); returns once it is committed, raises if it failed."""
        item = _Item(event, ctx)
        self._queue.append(item)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="monitor-fold-batches")
        await asyncio.shield(item.done)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                try:
                    await self._fold(batch)
                except psycopg.OperationalError:
                    # A connection broken by a server restart: once more on a fresh one.
                    await self._fold(batch)
            except Exception as exc:
                logger.warning(
                    "fold batch failed, folding one by one events=%d error=%s",
                    len(batch),
                    exc,
                )
                for item in batch:
                    await self._fold_alone(item)
            else:
                for item in batch:
                    if not item.done.done():
                        item.done.set_result(None)
            self.batches += 1

    async def _fold(self, batch: list[_Item]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            for item in batch:
                await self._fold_one(conn, item)

    async def _fold_alone(self, item: _Item) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await self._fold_one(conn, item)
        except Exception as exc:
            if not item.done.done():
                item.done.set_exception(exc)
        else:
            if not item.done.done():
                item.done.set_result(None)

    async def _fold_one(self, conn: AsyncConnection[Any], item: _Item) -> None:
        ctx = item.ctx
        new = await self.folder.fold_in(conn, item.event, ctx.topic, ctx.partition, ctx.offset)
        # Metrics only for events folded for the first time: a replayed topic counts nothing.
        if new:
            await self.metrics.record_in(conn, item.event)
