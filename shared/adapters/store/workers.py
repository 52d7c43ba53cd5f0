"""The ``workers`` table (one row per service instance, from its heartbeats) and
``worker_events`` (what the worker pools report). The monitor writes both; the API and the
alerts read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.contract.events import PoolScaled, WorkerExited, WorkerExitedPayload, WorkerHeartbeat

# A late heartbeat (an older event read after a newer one) never moves a row back.
_RECORD = """
INSERT INTO workers (instance_id, service, host, pid, partitions, in_flight, processed, failed,
                     status, started_at, last_heartbeat, waits)
VALUES (%(instance)s, %(service)s, %(host)s, %(pid)s, %(partitions)s, %(in_flight)s,
        %(processed)s, %(failed)s, %(status)s, %(started)s, %(at)s, %(waits)s)
ON CONFLICT (instance_id) DO UPDATE SET partitions = EXCLUDED.partitions, pid = EXCLUDED.pid,
    host = EXCLUDED.host, started_at = EXCLUDED.started_at, in_flight = EXCLUDED.in_flight,
    processed = EXCLUDED.processed, failed = EXCLUDED.failed, status = EXCLUDED.status,
    last_heartbeat = EXCLUDED.last_heartbeat, waits = EXCLUDED.waits
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
            "waits": Jsonb([w.model_dump(mode="json") for w in p.waits]),
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


class WorkerRecord(TypedDict):
    """An instance as :func:`list_workers` reads it (``status`` from the heartbeat's age)."""

    id: str
    service: str
    host: str
    pid: int
    partitions: list[str]
    in_flight: int
    processed: int
    failed: int
    started_at: datetime
    last_heartbeat: datetime
    status: str  # running, stale or stopped


class JobWaitRecord(TypedDict):
    """One kind of wait of a job's messages on one stage (:func:`job_waits`)."""

    stage: str
    kind: str
    what: str
    count: int
    since: datetime | None
    until: datetime | None


class WaitingRecord(TypedDict):
    """Messages waiting on the live instances for one kind and what (:func:`waiting`)."""

    kind: str
    what: str
    waiting: int
    jobs: int


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
) -> list[WorkerRecord]:
    """Instances heard from within ``forget_after_s``, with a status from the heartbeat's age."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(WorkerRecord)) as cur:
        await cur.execute(_LIST_WORKERS, {"stale_s": stale_after_s, "forget_s": forget_after_s})
        return list(await cur.fetchall())


# A job's waits on the live instances, one row per stage and kind of wait: how many of its
# messages wait there, since when, and until about when.
_JOB_WAITS = """
SELECT w.service AS stage, x.kind, x.what, count(*) AS count, min(x.since) AS since,
    max(x.until) AS until
FROM workers w, jsonb_to_recordset(w.waits) AS x(job_id TEXT, kind TEXT, what TEXT,
                                                 since TIMESTAMPTZ, until TIMESTAMPTZ)
WHERE w.status = 'running' AND w.last_heartbeat >= now() - make_interval(secs => %(stale_s)s)
    AND w.waits <> '[]'::jsonb AND x.job_id = %(job)s
GROUP BY w.service, x.kind, x.what
ORDER BY min(x.since)
"""

# Every live instance's waits per kind and what: the dashboard's "who waits on which budget".
_WAITING = """
SELECT x.kind, x.what, count(*) AS waiting, count(DISTINCT x.job_id) AS jobs
FROM workers w, jsonb_to_recordset(w.waits) AS x(job_id TEXT, kind TEXT, what TEXT)
WHERE w.status = 'running' AND w.last_heartbeat >= now() - make_interval(secs => %(stale_s)s)
    AND w.waits <> '[]'::jsonb
GROUP BY x.kind, x.what
"""


async def job_waits(
    pool: AsyncConnectionPool, job_id: str, stale_after_s: float
) -> list[JobWaitRecord]:
    """What the job's messages wait for on the live instances (stage, kind, what, count,
    since, until)."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(JobWaitRecord)) as cur:
        await cur.execute(_JOB_WAITS, {"job": job_id, "stale_s": stale_after_s})
        return list(await cur.fetchall())


async def waiting(pool: AsyncConnectionPool, stale_after_s: float) -> list[WaitingRecord]:
    """Messages waiting on the live instances, per kind and what (with how many jobs)."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(WaitingRecord)) as cur:
        await cur.execute(_WAITING, {"stale_s": stale_after_s})
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
