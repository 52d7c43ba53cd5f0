"""Migration 0039 on a deployment with a log and metrics from before: the old tables become
legacy partitions (rows still readable, in the same order), new rows go to new partitions, a
redelivered event is still recorded once across the legacy partition and the new ones, and the
streams' reads keep using indexes."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from shared.adapters.store import job_events
from shared.platform.db import migrate
from tests.shared.adapters.store.conftest import DatabaseBefore

_OLD_EVENT = """
INSERT INTO job_events (event_id, job_id, type, level, message, producer, data, occurred_at)
VALUES (%s, %s, 'job.requested', 'info', %s, 'test', '{}', %s)
"""
_OLD_MINUTE = """
INSERT INTO metrics_minute (name, labels, minute, kind, count) VALUES ('m', '{}', %s, 'counter', 1)
"""
_WHERE = "SELECT tableoid::regclass::text FROM job_events WHERE event_id = %s"


def _month(t: datetime, ahead: int = 0) -> datetime:
    """The start of ``t``'s month, ``ahead`` months on (UTC)."""
    n = t.year * 12 + t.month - 1 + ahead
    return datetime(n // 12, n % 12 + 1, 1, tzinfo=UTC)


def _entry(event_id: uuid.UUID, job_id: str, at: datetime) -> job_events.LogEntry:
    return {
        "event_id": event_id,
        "job_id": job_id,
        "type": "image.generated",
        "level": "info",
        "message": "new",
        "producer": "test",
        "data": {},
        "topic": None,
        "partition": None,
        "offset": None,
        "occurred_at": at,
    }


async def test_a_log_from_before_becomes_the_legacy_partition(
    database_before: DatabaseBefore,
) -> None:
    url = database_before(39)
    now = datetime.now(UTC)
    old, recent = uuid.uuid4(), uuid.uuid4()
    ahead = uuid.uuid4()  # claimed a time past the legacy partition's bound: moved out
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_OLD_EVENT, (old, "j1", "old", now - timedelta(days=70)))
        conn.execute(_OLD_EVENT, (recent, "j1", "recent", now))
        conn.execute(_OLD_EVENT, (ahead, "j1", "ahead", _month(now, 1) + timedelta(hours=1)))
        conn.execute(_OLD_MINUTE, (now - timedelta(days=3),))
        old_seqs = [r[0] for r in conn.execute("SELECT seq FROM job_events ORDER BY seq")]

    assert migrate(url)[0] == "0039_partitions.sql"

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        page = await job_events.final_after(conn, job_events.START, job_id="j1")
        assert [r["message"] for r in page.rows] == ["old", "recent", "ahead"]
        assert [r["seq"] for r in page.rows] == old_seqs
        cur = await conn.execute(_WHERE, (old,))
        assert await cur.fetchone() == ("job_events_legacy",)
        cur = await conn.execute(_WHERE, (ahead,))
        assert await cur.fetchone() == (f"job_events_p{_month(now, 1):%Y%m%d}",)
        cur = await conn.execute(
            "SELECT upper_bound FROM pod_partitions('job_events') WHERE part::text = %s",
            ("job_events_legacy",),
        )
        assert await cur.fetchone() == (_month(now, 1),)

        # A new event of next month goes to next month's partition, and seq goes on.
        new = uuid.uuid4()
        assert await job_events.record_many(conn, [_entry(new, "j1", _month(now, 1))]) == [True]
        cur = await conn.execute(_WHERE, (new,))
        assert await cur.fetchone() == (f"job_events_p{_month(now, 1):%Y%m%d}",)
        # An old event again, re-derived with another time (its partition would differ), and
        # the same event with its own time: each recorded once.
        again = [_entry(old, "j1", _month(now, 1) + timedelta(days=3)), _entry(ahead, "j1", now)]
        assert await job_events.record_many(conn, again) == [False, False]
        cur = await conn.execute("SELECT count(*), max(seq) FROM job_events WHERE job_id = 'j1'")
        count, last = await cur.fetchone() or (0, 0)
        assert count == 4 and last > max(old_seqs)

        cur = await conn.execute("SELECT count(*) FROM metrics_minute")
        assert await cur.fetchone() == (1,)
        cur = await conn.execute("SELECT tableoid::regclass::text FROM metrics_minute")
        assert await cur.fetchone() == ("metrics_minute_legacy",)


async def test_an_empty_log_gets_partitions_of_its_own_for_the_past(migrated_db: str) -> None:
    """A fresh install has no legacy partition: a past month gets its own partition, made by
    pod_ensure_partitions, and a row claiming a time before every partition is kept in the
    DEFAULT partition and moved out when its month gets one."""
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT part::text FROM pod_partitions('job_events') WHERE part::text LIKE '%legacy'"
        )
        assert await cur.fetchall() == []
        # A month of its own in a past year (the tests' database is shared).
        year = 1990 + uuid.uuid4().int % 5
        month = datetime(year, 1 + uuid.uuid4().int % 12, 1, tzinfo=UTC)
        early, late = uuid.uuid4(), uuid.uuid4()
        job = f"job-{uuid.uuid4().hex[:8]}"
        await job_events.record_many(conn, [_entry(early, job, month + timedelta(days=2))])
        cur = await conn.execute(_WHERE, (early,))
        before = await cur.fetchone()

        cur = await conn.execute(
            "SELECT pod_ensure_partitions('job_events', %s, %s)",
            (month, month + timedelta(days=10)),
        )
        created = await cur.fetchone()
        await job_events.record_many(conn, [_entry(late, job, month + timedelta(days=20))])
        cur = await conn.execute(_WHERE, (early,))
        after = await cur.fetchone()
        cur = await conn.execute(_WHERE, (late,))
        later = await cur.fetchone()
        cur = await conn.execute(
            "SELECT pod_ensure_partitions('job_events', %s, %s)", (month, month)
        )
        again = await cur.fetchone()

    assert before == ("job_events_default",)
    assert created == (1,) and again == (0,)
    assert after == later == (f"job_events_p{month:%Y%m%d}",)


async def test_pod_ensure_partitions_refuses_a_table_it_does_not_manage(migrated_db: str) -> None:
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="not a table partitioned"):
            await conn.execute("SELECT pod_ensure_partitions('jobs', %s, %s)", (now, now))
        with pytest.raises(psycopg.errors.RaiseException, match="bad range"):
            await conn.execute(
                "SELECT pod_ensure_partitions('job_events', %s, %s)",
                (now, now - timedelta(days=1)),
            )


async def test_the_streams_read_the_partitions_along_their_indexes(
    database_before: DatabaseBefore,
) -> None:
    """With rows in several partitions, a stream's read from a position, all jobs', by type and
    one job's, is a Merge Append of index scans (no Seq Scan of a partition)."""
    url = database_before(40)  # everything, in a database of its own (ANALYZE, plans)
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "SELECT pod_ensure_partitions('job_events', %s, %s)",
            (_month(now, -3), now),
        )
        await conn.execute(
            """
            INSERT INTO job_events (event_id, job_id, type, level, message, producer, data,
                                    occurred_at)
            SELECT gen_random_uuid(), 'job-' || mod(n, 2000), 'image.generated', 'info', 'm',
                   't', '{}', %s - mod(n, 100) * interval '1 day'
            FROM generate_series(1, 40000) AS n
            """,
            (now,),
        )
        await conn.execute("ANALYZE job_events")
        cur = await conn.execute("SELECT count(*) FROM pod_partitions('job_events')")
        parts = await cur.fetchone()
        assert parts is not None and parts[0] >= 5
        cur = await conn.execute("SELECT max(xid::text::bigint), max(seq) FROM job_events")
        xid, seq = await cur.fetchone() or (0, 0)
        params = {"xid": xid, "seq": seq - 50, "limit": 200, "job": "job-7",
                  "types": ["image.generated"], "level": None}  # fmt: skip
        for where in ("", job_events._OF_JOB, job_events._OF_TYPE):
            query = job_events._AFTER.format(where=where)
            cur = await conn.execute(("EXPLAIN " + query).encode(), params)
            plan = "\n".join(str(r[0]) for r in await cur.fetchall())
            # The planner may scan an empty partition (no pages): a scan of one with rows is
            # what would grow with the log.
            scanned = re.findall(r"Seq Scan on (\w+)", plan)
            for part in scanned:
                cur = await conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(part))
                )
                assert await cur.fetchone() == (False,), plan
            assert "Index Scan using job_events_p" in plan, plan
