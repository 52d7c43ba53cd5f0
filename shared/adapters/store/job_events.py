"""The ``job_events`` table: each job's log, one row per event folded (by its job and event id,
so a redelivered event is recorded once) and per operator action such as a replay.

An event id is unique within its job only: output ids follow from input ids anyone can read on
``/events``, so an id first used under another job must never make a job's real event look
like a duplicate (migration 0024)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import kwargs_row
from psycopg.types.json import Jsonb

# The log is partitioned by occurred_at (migration 0039), so its unique key holds occurred_at
# too. A redelivered record repeats it, but an input processed again derives its outputs' ids
# afresh with a new occurred_at: a duplicate is then recognised by (job_id, event_id) in any
# partition (the key's first two columns: one index probe per partition), and among the batch
# by DISTINCT ON. Two writers of the same new event are serialised first (_LOCK_IDS), or both
# would see it absent and insert it under two times. ON CONFLICT names no key: it backs up an exact
# redelivery under whichever key the schema has (a database before 0039 too).
_LOCK_IDS = """
SELECT count(pg_advisory_xact_lock(k))
FROM (SELECT DISTINCT hashtextextended(j || ':' || e::text, 39) AS k
      FROM unnest(%(job_id)s::text[], %(event_id)s::uuid[]) AS u(j, e) ORDER BY k) AS ks
"""
# One statement for a batch; ORDINALITY keeps the rows (and so their seq) in the batch's order.
_RECORD_MANY = """
INSERT INTO job_events (event_id, job_id, type, level, message, producer, data, topic,
                        kafka_partition, kafka_offset, occurred_at)
SELECT event_id, job_id, type, level, message, producer, data, topic, kafka_partition,
       kafka_offset, occurred_at
FROM (SELECT DISTINCT ON (job_id, event_id) *
      FROM unnest(%(event_id)s::uuid[], %(job_id)s::text[], %(type)s::text[], %(level)s::text[],
                  %(message)s::text[], %(producer)s::text[], %(data)s::jsonb[],
                  %(topic)s::text[], %(partition)s::integer[], %(offset)s::bigint[],
                  %(occurred_at)s::timestamptz[])
          WITH ORDINALITY AS u(event_id, job_id, type, level, message, producer, data, topic,
                               kafka_partition, kafka_offset, occurred_at, n)
      ORDER BY job_id, event_id, n) AS e
WHERE NOT EXISTS (SELECT 1 FROM job_events o WHERE o.job_id = e.job_id AND o.event_id = e.event_id)
ORDER BY n
ON CONFLICT DO NOTHING
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

# Streams read in (xid, seq) order, the order in which entries become final (migration
# 0025): {where} holds the stream's filters, joined with AND (fixed fragments only). The
# horizon comes from the statement's own snapshot, so a row below it is visible to the same
# read, and so is every row that will ever sort before it; it comes back even with no row.
_AFTER = """
SELECT h.horizon, e.*
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon) AS h
LEFT JOIN LATERAL (
    SELECT seq, xid::text::bigint AS xid_n, event_id, job_id, type, level, message, data,
           producer, occurred_at
    FROM job_events
    WHERE (xid, seq) > (%(xid)s::bigint::text::xid8, %(seq)s) {where}
    ORDER BY job_events.xid, job_events.seq LIMIT %(limit)s
) AS e ON true
"""
_OF_JOB = "AND job_id = %(job)s"
_OF_TYPE = "AND type = ANY(%(types)s)"
_AT_LEVEL = "AND level = %(level)s"
_LAST = "SELECT COALESCE(max(seq), 0) FROM job_events"
# Where the entry a client last saw stands in that order; for an id that is not (or no longer)
# in the log, the entry before it.
_POSITION_OF = """
SELECT xid::text::bigint, seq FROM job_events WHERE seq <= %(seq)s ORDER BY seq DESC LIMIT 1
"""
# Now: past everything already final. Entries still in flight are ahead of it.
_NOW = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


class LogEntry(TypedDict):
    """One entry to record (:func:`record`'s keyword arguments)."""

    event_id: uuid.UUID
    job_id: str
    type: str
    level: str
    message: str
    producer: str
    data: dict[str, object]  # stored whole (JSONB), shown whole
    topic: str | None
    partition: int | None
    offset: int | None
    occurred_at: datetime


class LogRow(TypedDict):
    """One entry as a stream reads it (:func:`final_after`)."""

    seq: int
    xid_n: int  # the writing transaction: the order entries become final in
    event_id: uuid.UUID
    job_id: str
    type: str
    level: str
    message: str
    data: object  # the JSONB as stored
    producer: str
    occurred_at: datetime


def _after_row(*, horizon: int, **entry: object) -> tuple[int, LogRow | None]:
    """A row of :data:`_AFTER`: the horizon, and the entry (None in the LEFT JOIN's one row
    when nothing matched). The entry's columns are the ones :data:`_AFTER` names."""
    return int(horizon), cast(LogRow, entry) if entry["seq"] is not None else None


@dataclass(frozen=True, order=True)
class Position:
    """A place in the log's delivery order: after the entry (xid, seq)."""

    xid: int
    seq: int


START = Position(0, 0)
"""Before every entry."""


@dataclass(frozen=True)
class Page:
    """What a stream may hand out now, and whether more is held back behind a transaction
    still in flight (then it is worth looking again soon: no notification may say so)."""

    rows: list[LogRow]
    position: Position
    held_back: bool
    full: bool


async def record(
    conn: AsyncConnection[Any],
    *,
    event_id: uuid.UUID,
    job_id: str,
    type: str,
    level: str,
    message: str,
    producer: str,
    data: dict[str, object],
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


async def record_many(conn: AsyncConnection[Any], entries: list[LogEntry]) -> list[bool]:
    """Add several entries (each :func:`record`'s keyword arguments) in one statement; per
    entry, False when its job had an entry with its event id already (or earlier in
    ``entries``)."""
    if not entries:
        return []
    columns = [dict(entry) for entry in entries]
    params = {field: [column[field] for column in columns] for field in _FIELDS}
    params["data"] = [Jsonb(entry["data"]) for entry in entries]
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        # The lock lasts until the transaction ends: an autocommit caller gets one for both.
        async with conn.transaction():
            await conn.execute(_LOCK_IDS, params)
            cur = await conn.execute(_RECORD_MANY, params)
            got = await cur.fetchall()
    else:
        await conn.execute(_LOCK_IDS, params)
        cur = await conn.execute(_RECORD_MANY, params)
        got = await cur.fetchall()
    added = {(row[0], row[1]) for row in got}
    new = []
    for entry in entries:
        key = (entry["job_id"], entry["event_id"])
        new.append(key in added)
        added.discard(key)  # a second entry with the same id is not new
    return new


async def final_after(
    conn: AsyncConnection[Any],
    position: Position,
    *,
    job_id: str | None = None,
    types: list[str] | None = None,
    level: str | None = None,
    limit: int = 200,
) -> Page:
    """Log entries after ``position`` (a job's, of some types, at a level) that are final:
    no entry can later appear before them, so a stream that hands them out in this order and
    resumes from the last one never skips one."""
    where = " ".join(
        clause
        for clause, wanted in ((_OF_JOB, job_id), (_OF_TYPE, types), (_AT_LEVEL, level))
        if wanted
    )
    params = {
        "xid": position.xid,
        "seq": position.seq,
        "job": job_id,
        "types": types,
        "level": level,
        "limit": limit,
    }
    async with conn.cursor(row_factory=kwargs_row(_after_row)) as cur:
        await cur.execute(_AFTER.format(where=where), params)
        got = await cur.fetchall()
    horizon = got[0][0]  # the LEFT JOIN's one row when no entry matched
    fetched = [row for _, row in got if row is not None]
    rows = []
    for row in fetched:
        if row["xid_n"] >= horizon:
            break  # its writer (or an older one) may still be in flight
        rows.append(row)
    full = len(fetched) == limit and len(rows) == len(fetched)
    if rows:
        position = Position(rows[-1]["xid_n"], rows[-1]["seq"])
    if not full:
        # Every entry of this stream below the horizon is handed out, and any to come sorts
        # after it: the next read starts there, not back at the last entry it matched.
        position = max(position, Position(horizon, 0))
    return Page(rows=rows, position=position, held_back=len(rows) < len(fetched), full=full)


async def position_of(conn: AsyncConnection[Any], seq: int) -> Position:
    """The position just after the entry numbered ``seq`` (an SSE id a client saw)."""
    cur = await conn.execute(_POSITION_OF, {"seq": seq})
    row = await cur.fetchone()
    return START if row is None else Position(int(row[0]), int(row[1]))


async def now(conn: AsyncConnection[Any]) -> Position:
    """A position past every entry already final: what a stream "from now" starts after."""
    cur = await conn.execute(_NOW)
    row = await cur.fetchone()
    assert row is not None
    # Entries of the oldest running transaction come next: (horizon, 0) sorts before them.
    return Position(int(row[0]), 0)


async def last_seq(conn: AsyncConnection[Any]) -> int:
    """The sequence number of the newest entry (0: none)."""
    cur = await conn.execute(_LAST)
    row = await cur.fetchone()
    return int(row[0]) if row else 0
