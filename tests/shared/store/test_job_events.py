"""``shared.store.job_events``: a batch of entries is one statement, each event recorded once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from shared.store import job_events


def _entry(event_id: uuid.UUID, job_id: str, n: int) -> dict[str, Any]:
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
        rows = await job_events.after(conn, 0, job_id=job_id, limit=100)

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
