"""The ``dead_letters`` table: every record of a DLQ topic, as the monitor records it (one row per
record, by its coordinates), and the API's listing, locking and marking around a replay."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from shared.adapters.store import job_events

logger = logging.getLogger(__name__)

# The job-log marker of a replay has an id derived from (dead letter, replay number): recording
# the same replay twice is a no-op.
_REPLAY_NS = uuid.UUID("9d2f6c1e-5a4b-4e0f-8b7a-1c3d5e7f9a20")


_RECORD = """
INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, stage, job_id, error_class,
                          message, retryable, original_topic, replay_topic, replay_value,
                          headers, failed_at)
VALUES (%(topic)s, %(partition)s, %(offset)s, %(stage)s, %(job)s, %(error_class)s, %(message)s,
        %(retryable)s, %(original_topic)s, %(replay_topic)s, %(replay_value)s, %(headers)s,
        %(at)s)
ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING
RETURNING 1
"""


# {where}: the filters asked for (from _LIST_FILTERS, and _AFTER), or nothing.
class DeadLetterRecord(TypedDict):
    """A dead letter as :func:`list_dead_letters` reads it."""

    id: int
    stage: str
    job_id: str | None
    error_class: str
    message: str
    retryable: bool
    topic: str
    partition: int
    offset: int
    original_topic: str | None
    replay_topic: str | None
    failed_at: datetime
    replayed_at: datetime | None
    replay_count: int


_LIST_DEAD_LETTERS = """
SELECT id, stage, job_id, error_class, message, retryable, topic,
    kafka_partition AS "partition", kafka_offset AS "offset", original_topic, replay_topic,
    failed_at, replayed_at, replay_count
FROM dead_letters {where}
ORDER BY failed_at DESC, id DESC LIMIT %(limit)s
"""
_LIST_FILTERS = {
    "stage": "stage = %(stage)s",
    "job": "job_id = %(job)s",
    "error_class": "error_class = %(error_class)s",
}
# Keyset pagination on (failed_at DESC, id DESC), as for jobs: stable under inserts.
_AFTER = "(failed_at, id) < (%(after_at)s, %(after_id)s)"

_EXISTS = "SELECT 1 FROM dead_letters WHERE id = %(id)s"

# {where}: the filters asked for (from _LOCK_FILTERS, and _NOT_REPLAYED).
# Oldest first: a job's letters go back in the order they failed.
_LOCK_FOR_REPLAY = """
SELECT id, topic, kafka_partition, kafka_offset, job_id, replay_topic, replay_value
FROM dead_letters WHERE {where}
ORDER BY failed_at, id LIMIT %(limit)s
FOR UPDATE
"""
_LOCK_FILTERS = {
    "id": "id = %(id)s",
    "job": "job_id = %(job)s",
    "stage": "stage = %(stage)s",
}
_NOT_REPLAYED = "replayed_at IS NULL"

_MARK_REPLAYED = """
UPDATE dead_letters SET replayed_at = now(), replay_count = replay_count + 1
WHERE id = %(id)s
RETURNING replay_count
"""


class DeadLetter(BaseModel):
    """One DLQ record as the ``dead_letters`` table holds it."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    stage: str
    job_id: str | None
    error_class: str
    message: str
    # The error's own class (header ``pod.error.retryable``), not whether work is still waiting.
    retryable: bool
    original_topic: str | None
    replay_topic: str | None
    replay_value: bytes | None
    headers: dict[str, str]
    failed_at: datetime
    # False when the value was not a valid event: nothing in it can be attributed to a product.
    parsed: bool


async def record_dead_letter(conn: AsyncConnection[Any], dead: DeadLetter) -> bool:
    """Insert the dead letter unless its record was seen before; True when it was new."""
    cur = await conn.execute(
        _RECORD,
        {
            "topic": dead.topic,
            "partition": dead.partition,
            "offset": dead.offset,
            "stage": dead.stage,
            "job": dead.job_id,
            "error_class": dead.error_class,
            "message": dead.message.replace("\x00", ""),  # PostgreSQL text rejects NUL
            "retryable": dead.retryable,
            "original_topic": dead.original_topic,
            "replay_topic": dead.replay_topic,
            "replay_value": dead.replay_value,
            "headers": Jsonb(dead.headers),
            "at": dead.failed_at,
        },
    )
    if await cur.fetchone() is None:  # (a fetch, not rowcount: the fold may be pipelined)
        return False
    logger.info(
        "dead letter recorded topic=%s partition=%d offset=%d stage=%s job_id=%s error_class=%s",
        dead.topic,
        dead.partition,
        dead.offset,
        dead.stage,
        dead.job_id or "-",
        dead.error_class,
    )
    return True


async def list_dead_letters(
    pool: AsyncConnectionPool,
    *,
    stage: str | None,
    job_id: str | None,
    error_class: str | None,
    limit: int,
    after: tuple[datetime, int] | None,
) -> list[DeadLetterRecord]:
    """Up to ``limit`` dead letters, newest first, strictly after the keyset position ``after``."""
    params: dict[str, object] = {
        "stage": stage,
        "job": job_id,
        "error_class": error_class,
        "limit": limit,
    }
    where = [clause for name, clause in _LIST_FILTERS.items() if params[name] is not None]
    if after is not None:
        where.append(_AFTER)
        params["after_at"], params["after_id"] = after
    sql = _LIST_DEAD_LETTERS.format(where=f"WHERE {' AND '.join(where)}" if where else "")
    rows = class_row(DeadLetterRecord)
    async with pool.connection() as conn, conn.cursor(row_factory=rows) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


@dataclass(frozen=True)
class ReplayCandidate:
    """A dead letter locked for replay: where it is, and what to re-produce where."""

    id: int
    topic: str
    partition: int
    offset: int
    job_id: str | None
    replay_topic: str | None
    replay_value: bytes | None

    @property
    def coordinates(self) -> str:
        """``topic:partition:offset`` of the DLQ record (the ``pod.replay.of`` header)."""
        return f"{self.topic}:{self.partition}:{self.offset}"


async def dead_letter_exists(conn: AsyncConnection[Any], dead_letter_id: int) -> bool:
    """Whether a dead letter with this id was recorded."""
    cur = await conn.execute(_EXISTS, {"id": dead_letter_id})
    return await cur.fetchone() is not None


async def lock_for_replay(
    conn: AsyncConnection[Any],
    *,
    dead_letter_id: int | None,
    job_id: str | None,
    stage: str | None,
    include_replayed: bool,
    limit: int,
) -> list[ReplayCandidate]:
    """Lock the matching dead letters (oldest first) until the caller's transaction ends.

    Call inside a transaction. A concurrent replay of the same letters waits for this one and
    then, unless it includes replayed letters, finds them replayed: one request, one replay.
    """
    params: dict[str, object] = {
        "id": dead_letter_id,
        "job": job_id,
        "stage": stage,
        "limit": limit,
    }
    where = [clause for name, clause in _LOCK_FILTERS.items() if params[name] is not None]
    if not include_replayed:
        where.append(_NOT_REPLAYED)
    cur = await conn.execute(_LOCK_FOR_REPLAY.format(where=" AND ".join(where)), params)
    return [
        ReplayCandidate(
            id=row[0],
            topic=row[1],
            partition=row[2],
            offset=row[3],
            job_id=row[4],
            replay_topic=row[5],
            replay_value=bytes(row[6]) if row[6] is not None else None,
        )
        for row in await cur.fetchall()
    ]


@dataclass(frozen=True)
class Replayed:
    """A dead letter re-produced, and where the broker put the copy."""

    candidate: ReplayCandidate
    partition: int
    offset: int
    # The letter's job, or the one its bytes name when the record's key did not.
    job_id: str | None


async def mark_replayed(conn: AsyncConnection[Any], replayed: list[Replayed]) -> None:
    """Stamp each letter as replayed and add a ``dlq.replayed`` entry to its job's log."""
    for item in replayed:
        letter = item.candidate
        cur = await conn.execute(_MARK_REPLAYED, {"id": letter.id})
        row = await cur.fetchone()
        if item.job_id is None or row is None:
            continue  # no job to log it under
        await job_events.record(
            conn,
            event_id=uuid.uuid5(_REPLAY_NS, f"{letter.id}:{row[0]}"),
            job_id=item.job_id,
            type="dlq.replayed",
            level="info",
            message=f"replayed from {letter.topic} (dead letter {letter.id})",
            producer="api",
            data={
                "dead_letter_id": letter.id,
                "dlq": letter.coordinates,
                "replay_topic": letter.replay_topic,
                "replay_count": row[0],
            },
            topic=letter.replay_topic,
            partition=item.partition,
            offset=item.offset,
            occurred_at=datetime.now(UTC),
        )
