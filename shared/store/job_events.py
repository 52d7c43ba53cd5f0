"""The ``job_events`` table: each job's log, one row per event folded (by its job and event id,
so a redelivered event is recorded once) and per operator action such as a replay.

An event id is unique within its job only: output ids follow from input ids anyone can read on
``/events``, so an id first used under another job must never make a job's real event look
like a duplicate (migration 0024)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

# One statement for a batch; ORDINALITY keeps the rows (and so their seq) in the batch's order.
_RECORD_MANY = """
INSERT INTO job_events (event_id, job_id, type, level, message, producer, data, topic,
                        kafka_partition, kafka_offset, occurred_at)
SELECT event_id, job_id, type, level, message, producer, data, topic, kafka_partition,
       kafka_offset, occurred_at
FROM unnest(%(event_id)s::uuid[], %(job_id)s::text[], %(type)s::text[], %(level)s::text[],
            %(message)s::text[], %(producer)s::text[], %(data)s::jsonb[], %(topic)s::text[],
            %(partition)s::integer[], %(offset)s::bigint[], %(occurred_at)s::timestamptz[])
    WITH ORDINALITY AS e(event_id, job_id, type, level, message, producer, data, topic,
                         kafka_partition, kafka_offset, occurred_at, n)
ORDER BY n
ON CONFLICT (job_id, event_id) DO NOTHING
RETURNING job_id, event_id
"""
# record()'s keyword arguments, in the statement's column order.
_FIELDS = (
    "event_id",
    "job_id",
    "type",
    "level",
    "message",
    "producer",
    "data",
    "topic",
    "partition",
    "offset",
    "occurred_at",
)

# {where}: the filters of the stream, joined with AND (fixed fragments only).
_AFTER = """
SELECT seq, event_id, job_id, type, level, message, data, producer, occurred_at
FROM job_events WHERE seq > %(after)s {where}
ORDER BY seq LIMIT %(limit)s
"""
_OF_JOB = "AND job_id = %(job)s"
_OF_TYPE = "AND type = ANY(%(types)s)"
_AT_LEVEL = "AND level = %(level)s"
_LAST = "SELECT COALESCE(max(seq), 0) FROM job_events"


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
    """Add one entry to a job's log; False when the job has an entry with this event id."""
    [new] = await record_many(
        conn,
        [
            {
                "event_id": event_id,
                "job_id": job_id,
                "type": type,
                "level": level,
                "message": message,
                "producer": producer,
                "data": data,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "occurred_at": occurred_at,
            }
        ],
    )
    return new


async def record_many(conn: AsyncConnection[Any], entries: list[dict[str, Any]]) -> list[bool]:
    """Add several entries (each :func:`record`'s keyword arguments) in one statement; per
    entry, False when its job had an entry with its event id already (or earlier in
    ``entries``)."""
    if not entries:
        return []
    params = {field: [entry[field] for entry in entries] for field in _FIELDS}
    params["data"] = [Jsonb(data) for data in params["data"]]
    cur = await conn.execute(_RECORD_MANY, params)
    added = {(row[0], row[1]) for row in await cur.fetchall()}
    new = []
    for entry in entries:
        key = (entry["job_id"], entry["event_id"])
        new.append(key in added)
        added.discard(key)  # a second entry with the same id is not new
    return new


async def after(
    conn: AsyncConnection[Any],
    after_seq: int,
    *,
    job_id: str | None = None,
    types: list[str] | None = None,
    level: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Log entries folded after ``after_seq``, oldest first (a job's, of some types, at a
    level)."""
    where = " ".join(
        clause
        for clause, wanted in ((_OF_JOB, job_id), (_OF_TYPE, types), (_AT_LEVEL, level))
        if wanted
    )
    params = {"after": after_seq, "job": job_id, "types": types, "level": level, "limit": limit}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_AFTER.format(where=where), params)
        return list(await cur.fetchall())


async def last_seq(conn: AsyncConnection[Any]) -> int:
    """The sequence number of the newest entry (0: none)."""
    cur = await conn.execute(_LAST)
    row = await cur.fetchone()
    return int(row[0]) if row else 0
