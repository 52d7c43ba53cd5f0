"""The monitor stage: every pipeline event (and every dead letter) folded into PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
from services.monitor.settings import MonitorSettings
from shared.db import migrate, open_pool
from shared.events import Event
from shared.runner import Handler, MessageContext, Output

logger = logging.getLogger(__name__)


class MonitorHandler:
    """Folds each event; emits nothing."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.folder = Folder(pool)

    async def __call__(self, event: Event, ctx: MessageContext) -> list[Output]:
        await self.folder.fold(event, ctx.topic, ctx.partition, ctx.offset)
        return []


@asynccontextmanager
async def build_handler(settings: MonitorSettings) -> AsyncIterator[Handler[Event]]:
    """The handler with its connection pool; applies migrations first."""
    migrate(settings.url)
    pool = await open_pool(settings.url, max_size=settings.db_pool_max, name="monitor")
    try:
        yield MonitorHandler(pool)
    finally:
        await pool.close()
