"""The monitor stage: every pipeline event (and every dead letter) folded into PostgreSQL.

Besides the fold, the monitor keeps the metrics (:mod:`services.monitor.metrics`) and, in a
background task, samples the gauges and evaluates the alerts (:mod:`services.monitor.ops`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool

from services.monitor.batch import FoldBatcher
from services.monitor.fold import Folder
from services.monitor.metrics import LagProbe, MetricsRecorder
from services.monitor.notify import WebhookNotifier
from services.monitor.ops import OpsLoop
from services.monitor.settings import MonitorSettings
from shared.contract.events import Event
from shared.contract.topics import STAGES
from shared.pipeline.runner import Handler, MessageContext, Output
from shared.platform.aio import cancel_and_wait
from shared.platform.db import migrate, open_pool

logger = logging.getLogger(__name__)


class MonitorHandler:
    """Folds each event and records its metrics, in batches (:mod:`services.monitor.batch`);
    emits nothing."""

    def __init__(self, pool: AsyncConnectionPool, *, linger_s: float = 0.0) -> None:
        self.folder = Folder(pool)
        self.metrics = MetricsRecorder()
        self.batcher = FoldBatcher(pool, self.folder, self.metrics, linger_s=linger_s)

    async def __call__(self, event: Event, ctx: MessageContext) -> list[Output]:
        await self.batcher.submit(event, ctx)
        return []


@asynccontextmanager
async def build_handler(settings: MonitorSettings) -> AsyncIterator[Handler[Event]]:
    """The handler with its connection pool, and the gauge/alert task; migrates first."""
    migrate(settings.url)
    # Unchecked: a round trip saved on every use; a broken connection is retried.
    pool = await open_pool(settings.url, max_size=settings.db_pool_max, name="monitor", check=False)
    notifier: WebhookNotifier | None = None
    if settings.alert_webhook_url is not None:
        notifier = WebhookNotifier(
            pool,
            settings.alert_webhook_url.get_secret_value(),
            attempts=settings.alert_webhook_attempts,
            backoff_s=settings.alert_webhook_backoff_s,
            timeout_s=settings.alert_webhook_timeout_s,
        )
        notifier.start()
    probe = LagProbe(
        settings.client_config(),
        group_prefix=settings.group_id_prefix,
        stages=[STAGES[name] for name in settings.stages()],
    )
    ops = asyncio.create_task(
        OpsLoop(pool, settings, lag_probe=probe, notifier=notifier).run(), name="monitor-ops"
    )
    logger.info(
        "monitor ops started interval_s=%g webhook=%s",
        settings.alert_interval_s,
        "on" if notifier else "off",
    )
    try:
        yield MonitorHandler(pool, linger_s=settings.fold_linger_ms / 1000)
    finally:
        await cancel_and_wait(ops)
        if notifier is not None:
            await notifier.close()
        await asyncio.to_thread(probe.close)
        await pool.close()
