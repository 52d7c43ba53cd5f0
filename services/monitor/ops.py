"""The monitor's periodic task: job summaries compacted, gauges sampled, alerts evaluated,
retention (old metrics, logs, idempotency keys, ledger rows and replayed dead letters expired;
partitions made ahead)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from services.monitor import metrics
from services.monitor.alerts import AlertEvaluator, Changes
from services.monitor.notify import WebhookNotifier
from services.monitor.retention import run_retention
from services.monitor.settings import MonitorSettings
from shared.adapters.store import job_summaries

logger = logging.getLogger(__name__)


class OpsLoop:
    """Every ``ALERT_INTERVAL_S``: sample the gauges, evaluate alerts; every
    ``RETENTION_INTERVAL_S``: retention."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        settings: MonitorSettings,
        *,
        lag_probe: metrics.LagProbe | None = None,
        notifier: WebhookNotifier | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.lag_probe = lag_probe
        self.evaluator = AlertEvaluator(
            pool,
            settings,
            services=settings.stages(),
            notify=notifier.notify if notifier else None,
            started_at=datetime.now(UTC),
        )
        self._last_expiry: datetime | None = None

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged and the next one tries again."""
        while True:
            try:
                await self.tick()
            except Exception as exc:
                logger.warning("monitor ops tick failed error=%s", exc)
            await asyncio.sleep(self.settings.alert_interval_s)

    async def tick(self, now: datetime | None = None) -> Changes:
        """One round: gauges (with the lag when Kafka answers), alerts, retention."""
        now = now or datetime.now(UTC)
        s = self.settings
        # First and on its own: the fold's triggers leave deltas that every /stats and
        # /dashboard read adds up, so they must not pile up because a later step failed.
        try:
            async with self.pool.connection() as conn:
                moved = await job_summaries.compact(conn)
            logger.debug("job summaries compacted deltas=%d", moved)
        except Exception as exc:
            logger.warning("job summaries not compacted error=%s", exc)
        lag: dict[str, int] | None = None
        if self.lag_probe is not None:
            try:
                lag = await self.lag_probe.measure_async()
            except Exception as exc:
                logger.warning("consumer lag unknown error=%s", exc)
        await metrics.sample_gauges(
            self.pool,
            now=now,
            live_s=s.worker_stale_s,
            forget_s=s.worker_forget_s,
            services=s.stages(),
            lag=lag,
        )
        changes = await self.evaluator.evaluate(now, lag=lag)
        due = timedelta(seconds=s.retention_interval_s)
        if self._last_expiry is None or now - self._last_expiry >= due:
            self._last_expiry = now  # a failing round waits its turn too, not every tick
            await run_retention(self.pool, s, now)
        return changes
