"""The ``workers`` table (one row per service instance, from its heartbeats) and
``worker_events`` (what the worker pools report). The monitor writes both; the API and the
alerts read them."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.events import PoolScaled, WorkerExited, WorkerExitedPayload, WorkerHeartbeat

# A late heartbeat (an older event read after a newer one) never moves a row back.
_RECORD = """
INSERT INTO workers (instance_id, service, host, pid, partitions, in_flight, processed, failed,
                     status, started_at, last_heartbeat)
VALUES (%(instance)s, %(service)s, %(host)s, %(pid)s, %(partitions)s, %(in_flight)s,
        %(processed)s, %(failed)s, %(status)s, %(started)s, %(at)s)
ON CONFLICT (instance_id) DO UPDATE SET partitions = EXCLUDED.partitions, pid = EXCLUDED.pid,
    host = EXCLUDED.host, started_at = EXCLUDED.started_at, in_flight = EXCLUDED.in_flight,
    processed = EXCLUDED.processed, failed = EXCLUDED.failed, status = EXCLUDED.status,
    last_heartbeat = EXCLUDED.last_heartbeat
WHERE workers.last_heartbeat <= EXCLUDED.last_heartbeat
"""


async def record_heartbeat(conn: AsyncConnection[Any], event: WorkerHeartbeat) -> None:
    """Upsert the instance's row from one of its heartbeats."""
    p = event.payload
    await conn.execute(
        _RECORD,
        {
            "instance": p.instance_id,
            "service": p.service,
            "host": p.host,
            "pid": p.pid,
            "partitions": p.partitions,
            "in_flight": p.in_flight,
            "processed": p.processed,
            "failed": p.failed,
            "status": "stopped" if p.stopping else "running",
            "started": p.started_at,
            "at": event.occurred_at,
        },
    )


_RECORD_POOL_REPORT = """
INSERT INTO worker_events (event_id, kind, service, instance_id, pool_id, data, occurred_at)
VALUES (%(event_id)s, %(kind)s, %(service)s, %(instance)s, %(pool)s, %(data)s, %(at)s)
ON CONFLICT (event_id) DO NOTHING
"""


async def record_pool_report(conn: AsyncConnection[Any], event: WorkerExited | PoolScaled) -> None:
    """A worker pool's report (an instance exited, the pool scaled) in ``worker_events``."""
    p = event.payload
    await conn.execute(
        _RECORD_POOL_REPORT,
        {
            "event_id": event.event_id,
            "kind": "exited" if isinstance(event, WorkerExited) else "scaled",
            "service": p.service,
            "instance": p.instance_id if isinstance(p, WorkerExitedPayload) else None,
            "pool": event.producer,
            "data": Jsonb(p.model_dump(mode="json")),
            "at": event.occurred_at,
        },
    )


_LIST_WORKERS = """
SELECT instance_id AS id, service, host, pid, partitions, in_flight, processed, failed,
    started_at, last_heartbeat,
    CASE WHEN status = 'stopped' THEN 'stopped'
         WHEN last_heartbeat < now() - make_interval(secs => %(stale_s)s) THEN 'stale'
         ELSE 'running' END AS status
FROM workers WHERE last_heartbeat > now() - make_interval(secs => %(forget_s)s)
ORDER BY service, instance_id
"""

_WORKER_EXISTS = "SELECT 1 FROM workers WHERE instance_id = %(instance)s"

_LIVE_POOL_MANAGER = """
SELECT instance_id FROM workers
WHERE service = 'pool' AND status = 'running'
  AND last_heartbeat > now() - make_interval(secs => %(stale_s)s)
ORDER BY last_heartbeat DESC LIMIT 1
"""

_LIVE_SERVICES = """
SELECT DISTINCT service FROM workers
WHERE status = 'running' AND last_heartbeat > now() - make_interval(secs => %(stale_s)s)
"""


async def list_workers(
    pool: AsyncConnectionPool, stale_after_s: float, forget_after_s: float = 3600.0
) -> list[dict[str, Any]]:
    """Instances heard from within ``forget_after_s``, with a status from the heartbeat's age."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_LIST_WORKERS, {"stale_s": stale_after_s, "forget_s": forget_after_s})
        return list(await cur.fetchall())


async def worker_exists(pool: AsyncConnectionPool, instance_id: str) -> bool:
    """Whether an instance with this id has ever sent a heartbeat."""
    async with pool.connection() as conn:
        cur = await conn.execute(_WORKER_EXISTS, {"instance": instance_id})
        return await cur.fetchone() is not None


async def live_pool_manager(pool: AsyncConnectionPool, stale_after_s: float) -> str | None:
    """The instance id of a worker-pool manager heard from within ``stale_after_s``."""
    async with pool.connection() as conn:
        cur = await conn.execute(_LIVE_POOL_MANAGER, {"stale_s": stale_after_s})
        row = await cur.fetchone()
    return None if row is None else str(row[0])


async def live_services(pool: AsyncConnectionPool, stale_after_s: float) -> set[str]:
    """Services with at least one running instance whose heartbeat is recent."""
    async with pool.connection() as conn:
        cur = await conn.execute(_LIVE_SERVICES, {"stale_s": stale_after_s})
        return {row[0] for row in await cur.fetchall()}
