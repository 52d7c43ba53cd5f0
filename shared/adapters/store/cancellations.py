"""The ``job_cancellations`` table: the jobs a seller cancelled, as the stages learned it.

Every stage reads the cancel decision (``seller.decisions``) in its own group and records it
here before acting on it; a stage that meets a job's work (an input, an output about to be made,
an external call about to be sent) asks :func:`is_cancelled` first. The first record of a job
wins; the same decision again, or another cancel of the same job, changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

_RECORD = """
INSERT INTO job_cancellations (job_id, decision_id, decided_by, cancelled_at)
VALUES (%(job)s, %(decision)s, %(by)s, %(at)s)
ON CONFLICT (job_id) DO NOTHING
"""
_IS_CANCELLED = "SELECT 1 FROM job_cancellations WHERE job_id = %(job)s"
_CANCELLED_AMONG = "SELECT job_id FROM job_cancellations WHERE job_id = ANY(%(jobs)s)"


async def record(
    conn: AsyncConnection[Any],
    *,
    job_id: str,
    decision_id: uuid.UUID,
    decided_by: str,
    at: datetime,
) -> bool:
    """Record the job cancelled; False when it was already."""
    cur = await conn.execute(
        _RECORD, {"job": job_id, "decision": decision_id, "by": decided_by, "at": at}
    )
    return cur.rowcount == 1


async def is_cancelled(pool: AsyncConnectionPool, job_id: str) -> bool:
    """Whether the job was cancelled (as far as any stage has read the decision)."""
    async with pool.connection() as conn:
        return await is_cancelled_in(conn, job_id)


async def is_cancelled_in(conn: AsyncConnection[Any], job_id: str) -> bool:
    """:func:`is_cancelled` on ``conn`` (after what the caller queued on it, in a pipeline)."""
    cur = await conn.execute(_IS_CANCELLED, {"job": job_id})
    return await cur.fetchone() is not None


async def cancelled_among(pool: AsyncConnectionPool, job_ids: Collection[str]) -> set[str]:
    """Which of ``job_ids`` were cancelled (one round trip, for a batch of inputs)."""
    if not job_ids:
        return set()
    async with pool.connection() as conn:
        cur = await conn.execute(_CANCELLED_AMONG, {"jobs": list(job_ids)})
        return {str(r[0]) for r in await cur.fetchall()}
