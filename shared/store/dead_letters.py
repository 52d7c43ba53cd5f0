"""The ``dead_letters`` table: every record of a DLQ topic, as the monitor records it (one row per
record, by its coordinates), and the API's listing, locking and marking around a replay."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from shared.store import job_events

logger = logging.getLogger(__name__)

# The job-log marker of a replay has an id derived from (dead letter, replay number): recording
# the same replay twice is a no-op.
_REPLAY_NS = uuid.UUID("9d2f6c1e-5a4b-4e0f-8b7a-1c3d5e7f9a20")


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
        "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, stage, job_id,"
        " error_class, message, retryable, original_topic, replay_topic, replay_value, headers,"
        " failed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING",
        (
            dead.topic,
            dead.partition,
            dead.offset,
            dead.stage,
            dead.job_id,
            dead.error_class,
            dead.message.replace("\x00", ""),  # PostgreSQL text rejects NUL
            dead.retryable,
            dead.original_topic,
            dead.replay_topic,
            dead.replay_value,
            Jsonb(dead.headers),
            dead.failed_at,
        ),
    )
    if cur.rowcount == 0:
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


_COLUMNS = """
    id, stage, job_id, error_class, message, retryable, topic,
    kafka_partition AS "partition", kafka_offset AS "offset", original_topic,
    failed_at, replayed_at, replay_count
"""


async def list_dead_letters(
    pool: AsyncConnectionPool,
    *,
    stage: str | None,
    job_id: str | None,
    error_class: str | None,
    limit: int,
    after: tuple[datetime, int] | None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` dead letters, newest first, strictly after the keyset position ``after``."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("stage", stage), ("job_id", job_id), ("error_class", error_class)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if after is not None:
        # Keyset pagination on (failed_at DESC, id DESC), as for jobs: stable under inserts.
        where.append("(failed_at, id) < (%s, %s)")
        params.extend(after)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    params.append(limit)
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM dead_letters {clause} "  # noqa: S608  # fixed fragments only
            "ORDER BY failed_at DESC, id DESC LIMIT %s",
            params,
        )
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
    cur = await conn.execute("SELECT 1 FROM dead_letters WHERE id = %s", (dead_letter_id,))
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
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("id", dead_letter_id), ("job_id", job_id), ("stage", stage)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if not include_replayed:
        where.append("replayed_at IS NULL")
    params.append(limit)
    # Oldest first: a job's letters go back in the order they failed.
    columns = "id, topic, kafka_partition, kafka_offset, job_id, replay_topic, replay_value"
    cur = await conn.execute(
        f"SELECT {columns} FROM dead_letters WHERE {' AND '.join(where)}"  # noqa: S608  # fixed fragments
        " ORDER BY failed_at, id LIMIT %s FOR UPDATE",
        params,
    )
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
        cur = await conn.execute(
            "UPDATE dead_letters SET replayed_at = now(), replay_count = replay_count + 1"
            " WHERE id = %s RETURNING replay_count",
            (letter.id,),
        )
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
