"""Retention of what grows with every job (migration 0039): the tables partitioned by time
(``job_events`` by month, ``metrics_minute`` by day) lose whole partitions; the small ones
whose unique key holds no time (``api_idempotency``, ``side_effects``, ``dead_letters``) lose
rows by batched ``DELETE`` along an index. Job summaries (``jobs``, ``images``, ``products``...)
are kept.

Locks: a partition is made by CREATE TABLE + ATTACH PARTITION (SHARE UPDATE EXCLUSIVE on the
parent: inserts and reads go on). DETACH ... CONCURRENTLY is refused on a table with a DEFAULT
partition, so a partition goes by a plain DETACH + DROP, which takes ACCESS EXCLUSIVE on the
parent for a few milliseconds; ``lock_timeout`` bounds the wait behind running statements (and
so how long later statements queue behind it); a timed-out drop is tried again next round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection, errors, sql

logger = logging.getLogger(__name__)

Partitioned = Literal["job_events", "metrics_minute"]
PARTITIONED: tuple[Partitioned, ...] = ("job_events", "metrics_minute")
# Any constant; held by the one monitor instance maintaining partitions at a time.
MAINTENANCE_LOCK = 0x504F4439

_TRY_LOCK = "SELECT pg_try_advisory_lock(%(key)s)"
_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"

# The partitions from the one holding `now` to `periods` periods ahead.
_ENSURE = """
SELECT pod_ensure_partitions(
    p.parent::regclass, %(now)s,
    date_add(%(now)s, ('1 ' || p.period)::interval * %(periods)s::int, 'UTC'))
FROM pod_partitioning p WHERE p.parent = %(table)s
"""
# Partitions wholly before `before` (the DEFAULT one never: its rows are deleted by time).
_EXPIRED = """
SELECT part::text FROM pod_partitions(%(table)s::regclass)
WHERE NOT is_default AND upper_bound <= %(before)s ORDER BY upper_bound
"""
_DEFAULT_OF = "SELECT part::text FROM pod_partitions(%(table)s::regclass) WHERE is_default"
_COLUMN_OF = "SELECT part_column FROM pod_partitioning WHERE parent = %(table)s"

# Rows of a DEFAULT partition (rows whose claimed time has no partition) older than `before`.
_DELETE_DEFAULT = """
DELETE FROM {part} WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {part} WHERE {column} < %(before)s LIMIT %(batch)s))
"""

# The small tables, oldest first along an index each (migrations 0002, 0039).
_DELETE_IDEMPOTENCY = """
DELETE FROM api_idempotency WHERE key = ANY(ARRAY(
    SELECT key FROM api_idempotency WHERE created_at < %(before)s
    ORDER BY created_at LIMIT %(batch)s))
"""
# A job with a dead letter still to replay keeps its ledger: the replay must not call the vendor
# a second time.
_DELETE_LEDGER = """
DELETE FROM side_effects s USING (
    SELECT job_id, image_index, product_type, step FROM side_effects e
    WHERE state = 'done' AND updated_at < %(before)s
      AND NOT EXISTS (SELECT 1 FROM dead_letters d
                      WHERE d.job_id = e.job_id AND d.replayed_at IS NULL)
    ORDER BY updated_at LIMIT %(batch)s) AS old
WHERE (s.job_id, s.image_index, s.product_type, s.step)
    = (old.job_id, old.image_index, old.product_type, old.step)
"""
_DELETE_REPLAYED = """
DELETE FROM dead_letters WHERE id = ANY(ARRAY(
    SELECT id FROM dead_letters WHERE replayed_at < %(before)s
    ORDER BY replayed_at LIMIT %(batch)s))
"""
SMALL_TABLES: dict[str, str] = {
    "api_idempotency": _DELETE_IDEMPOTENCY,
    "side_effects": _DELETE_LEDGER,
    "dead_letters": _DELETE_REPLAYED,
}


@dataclass(frozen=True)
class Dropped:
    """What one table's partition retention did."""

    table: str
    dropped: list[str]
    waited_out: str | None  # the partition whose lock was not had in time (tried next round)


async def try_lock(conn: AsyncConnection[Any]) -> bool:
    """Take the maintenance lock on this session, if no other instance holds it."""
    cur = await conn.execute(_TRY_LOCK, {"key": MAINTENANCE_LOCK})
    row = await cur.fetchone()
    return bool(row and row[0])


async def unlock(conn: AsyncConnection[Any]) -> None:
    await conn.execute(_UNLOCK, {"key": MAINTENANCE_LOCK})


async def ensure_ahead(
    conn: AsyncConnection[Any],
    table: Partitioned,
    now: datetime,
    periods: int,
    lock_timeout_s: float,
) -> int | None:
    """Make the partitions from the one holding ``now`` to ``periods`` periods ahead; return
    how many were missing (None: a lock was not had in time, see :func:`drop_expired`;
    ATTACH locks the DEFAULT partition, which every read of the whole log touches)."""
    try:
        async with conn.transaction():
            await _set_lock_timeout(conn, lock_timeout_s)
            cur = await conn.execute(_ENSURE, {"table": table, "now": now, "periods": periods})
            row = await cur.fetchone()
    except errors.LockNotAvailable:
        return None
    return int(row[0]) if row else 0


async def _set_lock_timeout(conn: AsyncConnection[Any], seconds: float) -> None:
    await conn.execute(
        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(seconds * 1000)}ms"))
    )


async def drop_expired(
    conn: AsyncConnection[Any], table: Partitioned, before: datetime, lock_timeout_s: float
) -> Dropped:
    """Detach and drop every partition of ``table`` whose rows are all older than ``before``
    (``conn`` in autocommit: each one in a transaction of its own)."""
    cur = await conn.execute(_EXPIRED, {"table": table, "before": before})
    parts = [str(r[0]) for r in await cur.fetchall()]
    dropped: list[str] = []
    for part in parts:
        try:
            async with conn.transaction():
                await _set_lock_timeout(conn, lock_timeout_s)
                # A name pod_partitions gave (regclass text, quoted as needed): not user input.
                await conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(table), sql.SQL(part)
                    )
                )
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.SQL(part)))
        except errors.LockNotAvailable:
            return Dropped(table, dropped, part)
        dropped.append(part)
    return Dropped(table, dropped, None)


async def delete_default_expired(
    conn: AsyncConnection[Any], table: Partitioned, before: datetime, batch: int
) -> int:
    """Delete the rows of ``table``'s DEFAULT partition older than ``before``, ``batch`` per
    statement; return how many went."""
    cur = await conn.execute(_DEFAULT_OF, {"table": table})
    row = await cur.fetchone()
    cur = await conn.execute(_COLUMN_OF, {"table": table})
    col = await cur.fetchone()
    if row is None or col is None:
        return 0
    statement = sql.SQL(_DELETE_DEFAULT).format(
        part=sql.SQL(str(row[0])), column=sql.Identifier(col[0])
    )
    return await _delete_batches(conn, statement, before, batch)


async def delete_small(conn: AsyncConnection[Any], table: str, before: datetime, batch: int) -> int:
    """Delete ``table``'s (one of :data:`SMALL_TABLES`) expired rows, ``batch`` per statement."""
    return await _delete_batches(conn, sql.SQL(SMALL_TABLES[table]), before, batch)


async def _delete_batches(
    conn: AsyncConnection[Any], statement: sql.SQL | sql.Composed, before: datetime, batch: int
) -> int:
    # Each batch commits on its own (autocommit): short locks, little WAL at a time, and what
    # one round left is taken by the next.
    total = 0
    while True:
        cur = await conn.execute(statement, {"before": before, "batch": batch})
        n = int(cur.rowcount)
        total += n
        if n < batch:
            return total
