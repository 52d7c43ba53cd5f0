"""Retention, run by the monitor's periodic task (:mod:`services.monitor.ops`): partitions made
ahead of time and dropped once expired, the DEFAULT partitions' and the small tables' expired
rows deleted in batches (:mod:`shared.adapters.store.retention`).

Several monitor instances may run it at once: an advisory lock lets one do a round and the
others skip it (none waits, so a slow drop never stalls another instance's tick).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from services.monitor.settings import MonitorSettings
from shared.adapters.store import retention as store

logger = logging.getLogger(__name__)


@dataclass
class Round:
    """What one round of retention did (``ran`` False: another instance held the lock)."""

    ran: bool
    created: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)


def horizons(settings: MonitorSettings, now: datetime) -> dict[str, datetime]:
    """Per table, the time before which its rows expire."""
    days = timedelta(days=1)
    return {
        "job_events": now - settings.job_events_retention_days * days,
        "metrics_minute": now - timedelta(hours=settings.metrics_retention_hours),
        "api_idempotency": now - settings.idempotency_retention_days * days,
        "side_effects": now - settings.ledger_retention_days * days,
        "dead_letters": now - settings.dead_letters_retention_days * days,
    }


async def run_retention(
    pool: AsyncConnectionPool, settings: MonitorSettings, now: datetime
) -> Round:
    """One round: make partitions ahead, drop expired ones, delete expired rows."""
    before = horizons(settings, now)
    async with pool.connection() as conn:
        if not await store.try_lock(conn):
            logger.info("retention skipped reason=another_instance")
            return Round(ran=False)
        try:
            done = Round(ran=True)
            for table in store.PARTITIONED:
                # Ahead first: a failure further on must not leave the fold without a partition.
                created = await store.ensure_ahead(
                    conn, table, now, settings.partitions_ahead, settings.retention_lock_timeout_s
                )
                if created is None:
                    logger.warning(
                        "retention partition busy table=%s action=create lock_timeout_s=%g",
                        table,
                        settings.retention_lock_timeout_s,
                    )
                done.created[table] = created or 0
                outcome = await store.drop_expired(
                    conn, table, before[table], settings.retention_lock_timeout_s
                )
                done.dropped[table] = outcome.dropped
                if outcome.waited_out:
                    logger.warning(
                        "retention partition busy table=%s action=drop partition=%s"
                        " lock_timeout_s=%g",
                        table,
                        outcome.waited_out,
                        settings.retention_lock_timeout_s,
                    )
                done.deleted[f"{table}_default"] = await store.delete_default_expired(
                    conn, table, before[table], settings.retention_batch_rows
                )
            for small in store.SMALL_TABLES:
                done.deleted[small] = await store.delete_small(
                    conn, small, before[small], settings.retention_batch_rows
                )
        finally:
            await store.unlock(conn)
    for name, parts in done.dropped.items():
        for part in parts:
            logger.info("retention dropped table=%s partition=%s", name, part)
    for name, n in done.created.items():
        if n:
            logger.info("retention created table=%s partitions=%d", name, n)
    for name, n in done.deleted.items():
        if n:
            logger.info("retention deleted table=%s rows=%d", name, n)
    return done
