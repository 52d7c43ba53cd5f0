"""The monitor's retention (services/monitor/retention.py) on a database of its own: expired
partitions dropped and the current one kept, partitions made ahead, the DEFAULT partition's and
the small tables' expired rows deleted, one instance at a time, a partition in use waited for
no longer than ``RETENTION_LOCK_TIMEOUT_S``; a stream across a dropped partition."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.retention import run_retention
from services.monitor.settings import MonitorSettings
from shared.adapters.store import job_events
from shared.adapters.store import retention as store
from shared.platform.db import open_pool
from tests.support.infra import migrated_database

DAY = timedelta(days=1)


@pytest.fixture
def own_db(database_url: str) -> Iterator[str]:
    """A migrated database of its own: retention here drops what it finds expired."""
    with migrated_database(database_url, "pod_retention") as url:
        yield url


@pytest.fixture
async def own_pool(own_db: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await open_pool(own_db, max_size=4)
    yield p
    await p.close()


def _month(t: datetime, ahead: int = 0) -> datetime:
    n = t.year * 12 + t.month - 1 + ahead
    return datetime(n // 12, n % 12 + 1, 1, tzinfo=UTC)


def _entry(job_id: str, at: datetime, message: str = "m") -> job_events.LogEntry:
    return {
        "event_id": uuid.uuid4(),
        "job_id": job_id,
        "type": "image.generated",
        "level": "info",
        "message": message,
        "producer": "test",
        "data": {},
        "topic": None,
        "partition": None,
        "offset": None,
        "occurred_at": at,
    }


async def _parts(pool: AsyncConnectionPool, table: str) -> set[str]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT part::text FROM pod_partitions(%s)", (table,))
        return {str(r[0]) for r in await cur.fetchall()}


async def _count(pool: AsyncConnectionPool, query: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(query)
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def test_a_round_drops_expired_partitions_and_rows_and_keeps_the_rest(
    own_db: str, own_pool: AsyncConnectionPool
) -> None:
    now = datetime.now(UTC)
    settings = MonitorSettings(
        database_url=own_db,
        job_events_retention_days=40,
        metrics_retention_hours=48,
        idempotency_retention_days=7,
        ledger_retention_days=60,
        dead_letters_retention_days=20,
        retention_batch_rows=2,  # several batches
    )
    async with own_pool.connection() as conn:
        await conn.execute(
            "SELECT pod_ensure_partitions('job_events', %s, %s)", (_month(now, -4), now)
        )
        await conn.execute(
            "SELECT pod_ensure_partitions('metrics_minute', %s, %s)", (now - 5 * DAY, now)
        )
        for age in (0, 35, 50, 80, 110):
            await job_events.record_many(conn, [_entry("j", now - age * DAY, f"{age}")])
        # Claimed long ago, before every partition: the DEFAULT partition's, deleted by age.
        await job_events.record_many(conn, [_entry("j", now - 400 * DAY, "400")])
        for age_h in (1, 30, 100):
            await conn.execute(
                "INSERT INTO metrics_minute (name, minute, kind, count)"
                " VALUES ('m', date_trunc('minute', %s::timestamptz), 'counter', %s)",
                (now - timedelta(hours=age_h), age_h),
            )
        for age in (1, 3, 10, 12):
            await conn.execute(
                "INSERT INTO api_idempotency (key, request_hash, job_id, created_at)"
                " VALUES (%s, 'h', 'j', %s)",
                (f"k{age}", now - age * DAY),
            )
        for job, state, age in (
            ("a", "done", 10), ("b", "done", 70), ("c", "started", 70), ("d", "done", 70),
            ("e", "done", 71), ("f", "done", 72),
        ):  # fmt: skip
            await conn.execute(
                "INSERT INTO side_effects (job_id, image_index, step, state, result, updated_at)"
                " VALUES (%s, 0, 'upload', %s, CASE WHEN %s = 'done' THEN '{}'::jsonb END, %s)",
                (job, state, state, now - age * DAY),
            )
        for n, (job, replayed) in enumerate(
            (("d", None), ("x", now - 30 * DAY), ("y", now - 5 * DAY), ("z", None))
        ):
            await conn.execute(
                "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, stage, job_id,"
                " error_class, message, failed_at, replayed_at)"
                " VALUES ('t', 0, %s, 'printify', %s, 'E', 'm', %s, %s)",
                (n, job, now - 90 * DAY, replayed),
            )

    done = await run_retention(own_pool, settings, now)

    assert done.ran
    expired_before = now - 40 * DAY
    jobs_parts = await _parts(own_pool, "job_events")
    async with own_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT upper_bound FROM pod_partitions('job_events') WHERE NOT is_default"
        )
        bounds = sorted(r[0] for r in await cur.fetchall())
    assert bounds[0] > expired_before  # every expired month went ...
    assert f"job_events_p{_month(now):%Y%m%d}" in jobs_parts  # ... not the current one
    assert f"job_events_p{_month(now, 2):%Y%m%d}" in jobs_parts  # two months ahead made
    assert "job_events_default" in jobs_parts
    assert done.dropped["job_events"]
    async with own_pool.connection() as conn:
        cur = await conn.execute("SELECT message, occurred_at FROM job_events ORDER BY seq")
        kept = await cur.fetchall()
    # What is left is what a month's granularity keeps: everything in a partition not yet
    # wholly expired, and none of the DEFAULT partition's expired rows.
    for message, at in kept:
        assert at >= _month(expired_before), message
    assert {"0", "35"} <= {m for m, _ in kept}
    assert "400" not in {m for m, _ in kept}

    assert await _count(own_pool, "SELECT sum(count) FROM metrics_minute") == 1 + 30
    assert await _count(own_pool, "SELECT count(*) FROM api_idempotency") == 2
    async with own_pool.connection() as conn:
        cur = await conn.execute("SELECT job_id FROM side_effects ORDER BY job_id")
        ledger = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute("SELECT job_id FROM dead_letters ORDER BY job_id")
        letters = [r[0] for r in await cur.fetchall()]
    # Recent, still in doubt, or its job has a dead letter to replay: kept.
    assert ledger == ["a", "c", "d"]
    assert letters == ["d", "y", "z"]
    assert done.deleted["side_effects"] == 3 and done.deleted["api_idempotency"] == 2

    again = await run_retention(own_pool, settings, now)
    assert again.ran and not any(again.dropped.values()) and not any(again.deleted.values())
    assert not any(again.created.values())


async def test_one_instance_at_a_time(own_db: str, own_pool: AsyncConnectionPool) -> None:
    settings = MonitorSettings(database_url=own_db)
    now = datetime.now(UTC)
    async with own_pool.connection() as holder:
        assert await store.try_lock(holder)
        skipped = await run_retention(own_pool, settings, now)
        await store.unlock(holder)
    assert not skipped.ran

    # Two at once: whichever runs, both end well and the partitions are made once.
    later = now + 100 * DAY
    rounds = await asyncio.gather(
        run_retention(own_pool, settings, later), run_retention(own_pool, settings, later)
    )
    assert any(r.ran for r in rounds)
    assert sum(r.created.get("job_events", 0) for r in rounds) >= 1
    parts = await _parts(own_pool, "job_events")
    assert f"job_events_p{_month(later, 2):%Y%m%d}" in parts
    assert f"job_events_p{_month(now):%Y%m%d}" not in parts  # expired by then


async def test_a_partition_in_use_is_waited_for_briefly_then_next_round(
    own_db: str, own_pool: AsyncConnectionPool
) -> None:
    """A transaction reading the log holds a lock that DETACH must wait for: retention gives up
    after its lock timeout (the fold and the streams queue behind a waiting DETACH) and drops
    the partition in a later round."""
    settings = MonitorSettings(database_url=own_db, retention_lock_timeout_s=0.2)
    now = datetime.now(UTC)
    later = now + 100 * DAY
    async with await psycopg.AsyncConnection.connect(own_db) as reader:
        await reader.execute("SELECT count(*) FROM job_events")  # its transaction stays open
        busy = await run_retention(own_pool, settings, later)
        await reader.rollback()
    assert busy.ran and busy.dropped["job_events"] == []
    assert f"job_events_p{_month(now):%Y%m%d}" in await _parts(own_pool, "job_events")

    free = await run_retention(own_pool, settings, later)
    assert f"job_events_p{_month(now):%Y%m%d}" in free.dropped["job_events"]


async def test_a_stream_resumes_across_a_dropped_partition(
    own_db: str, own_pool: AsyncConnectionPool
) -> None:
    """A client's last entry was in a partition since dropped: resuming from it hands out every
    entry left after it, once, in order; a job whose log expired reads as an empty log."""
    now = datetime.now(UTC)
    old_month = _month(now, -3)
    async with own_pool.connection() as conn:
        await conn.execute("SELECT pod_ensure_partitions('job_events', %s, %s)", (old_month, now))
        await job_events.record_many(conn, [_entry("s", _month(old_month, 1), "before")])
        await job_events.record_many(conn, [_entry("old", old_month + DAY, "gone")])
        await job_events.record_many(conn, [_entry("s", old_month + DAY, "seen")])
        last_seen = await job_events.last_seq(conn)
        await job_events.record_many(conn, [_entry("s", old_month + 2 * DAY, "gone too")])
        await job_events.record_many(conn, [_entry("s", _month(old_month, 2), "after")])
        await job_events.record_many(conn, [_entry("s", now, "new 1"), _entry("s", now, "new 2")])
        gone = await store.drop_expired(conn, "job_events", _month(old_month, 1), 5.0)
        assert gone.dropped == [f"job_events_p{old_month:%Y%m%d}"]

        position = await job_events.position_of(conn, last_seen)
        page = await job_events.final_after(conn, position, job_id="s")
        everyone = await job_events.final_after(conn, position)
        expired = await job_events.final_after(conn, job_events.START, job_id="old")

    # Each from its own partition, in the log's order.
    assert [r["message"] for r in page.rows] == ["after", "new 1", "new 2"]
    assert [r["message"] for r in everyone.rows] == ["after", "new 1", "new 2"]
    assert expired.rows == []
