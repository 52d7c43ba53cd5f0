"""Reads for the worker endpoints: instances from the monitor's fold of the heartbeats."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


async def list_workers(
    pool: AsyncConnectionPool, stale_after_s: float, forget_after_s: float = 3600.0
) -> list[dict[str, Any]]:
    """Instances heard from within ``forget_after_s``, with a status from the heartbeat's age."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT instance_id AS id, service, host, pid, partitions, in_flight, processed,"
            " failed, started_at, last_heartbeat,"
            " CASE WHEN status = 'stopped' THEN 'stopped'"
            "      WHEN last_heartbeat < now() - make_interval(secs => %s) THEN 'stale'"
            "      ELSE 'running' END AS status"
            " FROM workers WHERE last_heartbeat > now() - make_interval(secs => %s)"
            " ORDER BY service, instance_id",
            (stale_after_s, forget_after_s),
        )
        return list(await cur.fetchall())


async def worker_exists(pool: AsyncConnectionPool, instance_id: str) -> bool:
    """Whether an instance with this id has ever sent a heartbeat."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM workers WHERE instance_id = %s", (instance_id,))
        return await cur.fetchone() is not None


async def live_pool_manager(pool: AsyncConnectionPool, stale_after_s: float) -> str | None:
    """The instance id of a worker-pool manager heard from within ``stale_after_s``."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT instance_id FROM workers WHERE service = 'pool' AND status = 'running'"
            " AND last_heartbeat > now() - make_interval(secs => %s)"
            " ORDER BY last_heartbeat DESC LIMIT 1",
            (stale_after_s,),
        )
        row = await cur.fetchone()
    return None if row is None else str(row[0])
