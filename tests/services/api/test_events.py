"""Live job progress over Server-Sent Events (real API, real PostgreSQL): a job's log then its
new entries as they are folded, `end` when it is over, resumed from Last-Event-ID; and every
job's events, filtered."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection

from shared.adapters.store import job_events, jobs
from shared.contract.events import JobRequested, JobRequestedPayload
from tests.support.infra import wait_for


def sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Events of a text/event-stream: {id, event, data} (data parsed as JSON)."""
    current: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "data" in current:
                current["data"] = json.loads(current["data"])
                yield current
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = value.removeprefix(" ")


class Db:
    """Rows as the monitor's fold writes them, through the store."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, work: Any) -> Any:
        async def go() -> Any:
            async with await AsyncConnection.connect(self.url, autocommit=True) as conn:
                return await work(conn)

        return asyncio.run(go())

    def job(self) -> str:
        event = JobRequested(
            job_id=f"sse-{uuid.uuid4().hex[:8]}",
            producer="api",
            payload=JobRequestedPayload(
                theme="t", style="s", niche="n", product_types=["mug"], count=1
            ),
        )
        self.run(lambda conn: jobs.open_requested(conn, event))
        return event.job_id

    def log(self, job_id: str, type_: str, level: str = "info") -> None:
        self.run(
            lambda conn: job_events.record(
                conn,
                event_id=uuid.uuid4(),
                job_id=job_id,
                type=type_,
                level=level,
                message=f"{type_} happened",
                producer="test",
                data={"n": 1},
                topic=None,
                partition=None,
                offset=None,
                occurred_at=datetime.now(UTC),
            )
        )

    def end(self, job_id: str) -> None:
        self.run(
            lambda conn: jobs.save_states(
                conn,
                [
                    jobs.JobState(
                        job_id=job_id,
                        status="completed",
                        terminal=True,
                        error=None,
                        images_done=1,
                        images_failed=0,
                        products_done=1,
                        products_failed=0,
                        publications_done=0,
                        publications_failed=0,
                    )
                ],
            )
        )


@pytest.fixture
def db(migrated_db: str) -> Db:
    return Db(migrated_db)


def read(
    api: httpx.Client,
    path: str,
    n: int,
    into: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The first ``n`` events of a stream (or all, when it ends first), each appended to
    ``into`` as it arrives."""
    got: list[dict[str, Any]] = [] if into is None else into
    with api.stream("GET", path, timeout=15, **kwargs) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for event in sse(resp.iter_lines()):
            got.append(event)
            if len(got) == n:
                break
    return got


def test_a_job_stream_gives_the_log_then_the_news_then_end(api: httpx.Client, db: Db) -> None:
    job_id = db.job()
    db.log(job_id, "job.requested")
    db.log(job_id, "image.generated")

    live: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: read(api, f"/jobs/{job_id}/events", 10, live), daemon=True
    )
    reader.start()
    wait_for(lambda: len(live) >= 2, 10, "the log so far on the stream")
    db.log(job_id, "product.created")  # folded while the client listens
    db.end(job_id)
    reader.join(20)
    assert not reader.is_alive(), "the stream did not end with the job"

    assert [e["event"] for e in live] == [
        "job.requested",
        "image.generated",
        "product.created",
        "end",
    ]
    ids = [int(e["id"]) for e in live[:-1]]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert live[2]["data"]["message"] == "product.created happened"
    assert live[-1]["data"] == {"jobId": job_id, "status": "completed"}

    # A reconnect with the last id it saw gets what came after, nothing twice.
    again = read(api, f"/jobs/{job_id}/events", 10, headers={"Last-Event-ID": str(ids[1])})
    assert [e["event"] for e in again] == ["product.created", "end"]


def test_bad_requests_are_refused_before_the_stream(api: httpx.Client, db: Db) -> None:
    assert api.get("/jobs/nobody/events").status_code == 404
    job_id = db.job()
    bad = api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "x1"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "Last-Event-ID"
    assert api.get("/events", params={"level": "loud"}).status_code == 422


def test_every_jobs_events_filtered_by_type_and_level(api: httpx.Client, db: Db) -> None:
    first, second = db.job(), db.job()
    db.log(first, "job.requested")
    start = db.run(job_events.last_seq)
    db.log(first, "product.published")
    db.log(second, "stage.failed", level="error")
    db.log(second, "product.published")

    published = read(api, "/events", 2, params={"after": start, "type": "product.published"})
    assert [(e["event"], e["data"]["jobId"]) for e in published] == [
        ("product.published", first),
        ("product.published", second),
    ]
    errors = read(api, "/events", 1, params={"after": start, "level": "error"})
    assert [(e["event"], e["data"]["jobId"]) for e in errors] == [("stage.failed", second)]


def _entry(job_id: str, type_: str) -> job_events.LogEntry:
    return {
        "event_id": uuid.uuid4(),
        "job_id": job_id,
        "type": type_,
        "level": "info",
        "message": f"{type_} happened",
        "producer": "test",
        "data": {},
        "topic": None,
        "partition": None,
        "offset": None,
        "occurred_at": datetime.now(UTC),
    }


async def _seq_of(conn: AsyncConnection[Any], job_id: str, type_: str) -> int:
    cur = await conn.execute(
        "SELECT seq FROM job_events WHERE job_id = %s AND type = %s", (job_id, type_)
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_rows_committed_out_of_seq_order_reach_every_stream_once(
    api: httpx.Client, db: Db
) -> None:
    """Three writers: A takes seq n and stays open; B takes n+1 and commits; C (whose
    transaction began before A's) takes n+2 and commits; the streams read; then A commits. A
    stream resuming from n+2 (what `seq > last` streams had seen) must still get A's and B's."""
    job_id = await asyncio.to_thread(db.job)
    start = await asyncio.to_thread(db.run, job_events.last_seq)
    whole: list[dict[str, Any]] = []
    everyone: list[dict[str, Any]] = []
    readers = [
        threading.Thread(target=lambda: read(api, f"/jobs/{job_id}/events", 4, whole), daemon=True),
        threading.Thread(
            target=lambda: read(api, "/events", 3, everyone, params={"after": start}),
            daemon=True,
        ),
    ]
    for reader in readers:
        reader.start()
    url = db.url
    async with (
        await AsyncConnection.connect(url) as a,
        await AsyncConnection.connect(url, autocommit=True) as b,
        await AsyncConnection.connect(url) as c,
    ):
        await c.execute("SELECT pg_current_xact_id()")  # C's transaction id comes first
        await job_events.record_many(a, [_entry(job_id, "a.first")])
        await job_events.record_many(b, [_entry(job_id, "b.second")])
        await job_events.record_many(c, [_entry(job_id, "c.third")])
        await c.commit()
        # C's entry is final (its transaction began before A's): both streams hand it out ...
        await asyncio.to_thread(
            wait_for,
            lambda: (
                any(e["event"] == "c.third" for e in whole)
                and any(e["event"] == "c.third" for e in everyone)
            ),
            10,
            "C's entry on both streams",
        )
        await a.commit()
    await asyncio.to_thread(db.end, job_id)
    for reader in readers:
        await asyncio.to_thread(reader.join, 20)
        assert not reader.is_alive(), "a stream did not deliver every entry"

    # ... and A's and B's come after it, each once, whatever their seq.
    entries = {"a.first", "b.second", "c.third"}
    assert sorted(e["event"] for e in whole[:-1]) == sorted(entries)
    assert whole[-1]["event"] == "end"
    assert sorted(e["event"] for e in everyone) == sorted(entries)
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        seqs = {t: await _seq_of(conn, job_id, t) for t in entries}
    assert seqs["a.first"] < seqs["b.second"] < seqs["c.third"]
    assert {int(e["id"]) for e in whole[:-1]} == set(seqs.values())

    # A client that saw only C's entry (the highest seq) resumes and gets the other two.
    resumed = await asyncio.to_thread(
        read,
        api,
        f"/jobs/{job_id}/events",
        10,
        headers={"Last-Event-ID": str(seqs["c.third"])},
    )
    assert sorted(e["event"] for e in resumed) == ["a.first", "b.second", "end"]
    again = await asyncio.to_thread(read, api, "/events", 2, params={"after": seqs["c.third"]})
    assert sorted(e["event"] for e in again) == ["a.first", "b.second"]


async def test_concurrent_writers_committing_in_any_order_lose_nothing(
    api: httpx.Client, db: Db
) -> None:
    """Four writers, each transaction sleeping a random while between its inserts and its
    commit: a live stream gets every entry once, and a resume from any point gets the rest."""
    job_id = await asyncio.to_thread(db.job)
    start = await asyncio.to_thread(db.run, job_events.last_seq)
    rng = random.Random(25)
    plan = [[rng.randint(1, 3) for _ in range(12)] for _ in range(4)]
    total = sum(map(sum, plan))
    live: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: read(api, "/events", total, live, params={"after": start}), daemon=True
    )
    reader.start()

    async def writer(batches: list[int], seed: int) -> None:
        pause = random.Random(seed)
        async with await AsyncConnection.connect(db.url) as conn:
            for size in batches:
                for _ in range(size):
                    await job_events.record_many(conn, [_entry(job_id, "image.generated")])
                # Open long enough that a stream reading every 0.5 s reads while one is open.
                await asyncio.sleep(pause.uniform(0.02, 0.25))
                await conn.commit()

    await asyncio.gather(*(writer(batches, n) for n, batches in enumerate(plan)))
    await asyncio.to_thread(reader.join, 30)
    assert not reader.is_alive(), f"the stream got {len(live)} of {total} entries"
    ids = [int(e["id"]) for e in live]
    assert len(set(ids)) == total == len(ids)

    cut = total // 3
    rest = await asyncio.to_thread(
        read, api, "/events", total - cut - 1, headers={"Last-Event-ID": str(ids[cut])}
    )
    assert [int(e["id"]) for e in rest] == ids[cut + 1 :]
