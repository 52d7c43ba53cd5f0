"""``shared.adapters.store.job_events``: a batch of entries is one statement, each event recorded
once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from shared.adapters.store import job_events


def _entry(event_id: uuid.UUID, job_id: str, n: int) -> job_events.LogEntry:
    return {
        "event_id": event_id,
        "job_id": job_id,
        "type": "job.requested",
        "level": "info",
        "message": f"entry {n}",
        "producer": "test",
        "data": {"n": n, "nested": {"ok": True}},
        "topic": "jobs.requested.normal" if n % 2 else None,
        "partition": n if n % 2 else None,
        "offset": 10_000_000_000 + n if n % 2 else None,
        "occurred_at": datetime(2026, 11, 30, 1, n, tzinfo=UTC),
    }


async def test_a_batch_is_recorded_in_order_and_each_event_once(migrated_db: str) -> None:
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    ids = [uuid.uuid4() for _ in range(5)]
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        first = await job_events.record_many(
            conn, [_entry(i, job_id, n) for n, i in enumerate(ids)]
        )
        # A redelivery of two of them, one of them twice in the same batch, and a new one.
        again = [ids[3], ids[0], uuid.uuid4(), ids[0]]
        second = await job_events.record_many(
            conn, [_entry(i, job_id, 10 + n) for n, i in enumerate(again)]
        )
        repeat = uuid.uuid4()
        third = await job_events.record_many(
            conn, [_entry(repeat, job_id, 20), _entry(repeat, job_id, 21)]
        )
        page = await job_events.final_after(conn, job_events.START, job_id=job_id, limit=100)
        rows = page.rows

    assert first == [True] * 5
    assert second == [False, False, True, False]
    assert third == [True, False]
    assert [r["event_id"] for r in rows] == [*ids, again[2], repeat]  # in seq order
    assert [r["message"] for r in rows] == [
        *(f"entry {n}" for n in range(5)),
        "entry 12",
        "entry 20",
    ]
    assert rows[1]["data"] == {"n": 1, "nested": {"ok": True}}


async def test_an_empty_batch_records_nothing(migrated_db: str) -> None:
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        assert await job_events.record_many(conn, []) == []


async def test_a_stream_reads_in_commit_order_and_waits_for_transactions_in_flight(
    migrated_db: str,
) -> None:
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    async with (
        await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as reader,
        await psycopg.AsyncConnection.connect(migrated_db) as slow,
        await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as fast,
    ):
        start = await job_events.now(reader)
        await job_events.record_many(slow, [_entry(uuid.uuid4(), job_id, 1)])  # lower seq
        await job_events.record_many(fast, [_entry(uuid.uuid4(), job_id, 2)])  # committed

        page = await job_events.final_after(reader, start, job_id=job_id)
        assert page.rows == [] and page.held_back  # entry 2 waits for entry 1's writer

        await slow.commit()
        page = await job_events.final_after(reader, page.position, job_id=job_id)
        assert [r["message"] for r in page.rows] == ["entry 1", "entry 2"]
        assert not page.held_back and not page.full
        # A resumed stream that saw entry 2 (the higher seq) gets nothing again.
        after_two = await job_events.position_of(reader, page.rows[1]["seq"])
        assert (await job_events.final_after(reader, after_two, job_id=job_id)).rows == []


async def test_a_filtered_stream_moves_past_entries_it_does_not_match(migrated_db: str) -> None:
    job_id, other = (f"job-{uuid.uuid4().hex[:10]}" for _ in range(2))
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        start = await job_events.now(conn)
        await job_events.record_many(conn, [_entry(uuid.uuid4(), other, n) for n in range(3)])
        page = await job_events.final_after(conn, start, job_id=job_id)
        assert page.rows == []
        # The next read starts past the other job's entries instead of scanning them again.
        assert page.position > start
        cur = await conn.execute(
            "SELECT count(*) FROM job_events WHERE (xid, seq) > (%s::bigint::text::xid8, %s)"
            " AND job_id = %s",
            (page.position.xid, page.position.seq, other),
        )
        assert await cur.fetchone() == (0,)


async def test_an_event_id_is_unique_within_its_job_only(migrated_db: str) -> None:
    """Output ids are predictable: an id taken first under another job must not make this
    job's event a duplicate (event-id squatting)."""
    shared_id = uuid.uuid4()
    mine, theirs = (f"job-{uuid.uuid4().hex[:10]}" for _ in range(2))
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        assert await job_events.record_many(conn, [_entry(shared_id, theirs, 1)]) == [True]
        got = await job_events.record_many(
            conn, [_entry(shared_id, mine, 2), _entry(shared_id, mine, 3)]
        )
        assert got == [True, False]
        assert await job_events.record_many(conn, [_entry(shared_id, theirs, 4)]) == [False]
