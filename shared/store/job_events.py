"""The ``job_events`` table: each job's log, one row per event folded (by its event id, so a
redelivered event is recorded once) and per operator action such as a replay."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

_RECORD = """
INSERT INTO job_events (event_id, job_id, type, level, message, producer, data, topic,
                        kafka_partition, kafka_offset, occurred_at)
VALUES (%(event_id)s, %(job)s, %(type)s, %(level)s, %(message)s, %(producer)s, %(data)s,
        %(topic)s, %(partition)s, %(offset)s, %(at)s)
ON CONFLICT (event_id) DO NOTHING
"""

_JOB_OF = "SELECT job_id FROM job_events WHERE event_id = %(event_id)s"


async def record(
    conn: AsyncConnection[Any],
    *,
    event_id: uuid.UUID,
    job_id: str,
    type: str,
    level: str,
    message: str,
    producer: str,
    data: dict[str, Any],
    topic: str | None,
    partition: int | None,
    offset: int | None,
    occurred_at: datetime,
) -> bool:
    """Add one entry to a job's log; False when an entry with this event id is there already."""
    cur = await conn.execute(
        _RECORD,
        {
            "event_id": event_id,
            "job": job_id,
            "type": type,
            "level": level,
            "message": message,
            "producer": producer,
            "data": Jsonb(data),
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "at": occurred_at,
        },
    )
    return cur.rowcount == 1


async def job_of(conn: AsyncConnection[Any], event_id: uuid.UUID) -> str | None:
    """The job an event id was recorded for, if it was."""
    cur = await conn.execute(_JOB_OF, {"event_id": event_id})
    row = await cur.fetchone()
    return None if row is None else str(row[0])
