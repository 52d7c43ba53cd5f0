"""Folding in batches: one transaction for many events, and a bad event fails alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from devstack.launch.postgres import LocalPostgres
from services.monitor.fold import UnknownJob
from services.monitor.handler import MonitorHandler
from shared.contract.events import Event, JobRequested, JobRequestedPayload
from shared.pipeline.runner import MessageContext
from shared.platform.db import migrate, open_pool
from tests.support.events import image, product
from tests.support.infra import free_port


def job() -> JobRequested:
    return JobRequested(
        job_id=f"batch-{uuid.uuid4().hex[:8]}",
        producer="api",
        payload=JobRequestedPayload(
            theme="t", style="s", niche="n", product_types=["mug"], count=1, auto_publish=False
        ),
    )


def ctx(n: int) -> MessageContext:
    return MessageContext("t", 0, n, 0, "test")


async def submitted_status(pool: AsyncConnectionPool, job_id: str) -> str | None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status FROM jobs WHERE job_id = %s", (job_id,))
        row = await cur.fetchone()
    return None if row is None else str(row[0])


async def test_many_events_one_transaction_and_a_bad_one_fails_alone(
    pool: AsyncConnectionPool,
) -> None:
    handler = MonitorHandler(pool)
    jobs = [job() for _ in range(20)]
    orphan = job()  # never requested: its product is refused
    events: list[Event] = [e for j in jobs for e in (j, image(j, 0), product(j, 0, "mug"))]
    calls = [handler(e, ctx(n)) for n, e in enumerate(events)]
    calls.insert(30, handler(product(orphan, 0, "mug"), ctx(999)))
    results = await asyncio.gather(*calls, return_exceptions=True)

    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], UnknownJob)
    assert [await submitted_status(pool, j.job_id) for j in jobs] == ["completed"] * 20
    assert await submitted_status(pool, orphan.job_id) is None
    # Many events per transaction: far fewer batches than events (and a retry alone).
    assert handler.batcher.batches < len(events) / 4, handler.batcher.batches


async def test_a_product_read_before_its_image_in_one_batch_folds(
    pool: AsyncConnectionPool,
) -> None:
    """A backlog read from many topics at once: products ahead of their images in the queue."""
    handler = MonitorHandler(pool)
    jobs = [job() for _ in range(10)]
    events: list[Event] = [
        *jobs,
        *(product(j, 0, "mug") for j in jobs),
        *(image(j, 0) for j in jobs),
    ]
    results = await asyncio.gather(
        *(handler(e, ctx(n)) for n, e in enumerate(events)), return_exceptions=True
    )

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert [await submitted_status(pool, j.job_id) for j in jobs] == ["completed"] * 10
    assert handler.batcher.transactions <= 2, handler.batcher.transactions


async def test_bad_events_are_set_aside_and_the_batch_folded_again_once(
    pool: AsyncConnectionPool,
) -> None:
    handler = MonitorHandler(pool)
    await handler(job(), ctx(0))  # a batch of its own, so the next one is queued whole
    before = handler.batcher.transactions
    jobs = [job() for _ in range(20)]
    orphans = [job() for _ in range(3)]  # never requested: their products are refused
    early = [job() for _ in range(3)]  # requested; their images never come
    events: list[Event] = [
        *jobs,
        *early,
        *(product(j, 0, "mug") for j in orphans),
        *(product(j, 0, "mug") for j in early),
        *(e for j in jobs for e in (image(j, 0), product(j, 0, "mug"))),
    ]
    results = await asyncio.gather(
        *(handler(e, ctx(n)) for n, e in enumerate(events)), return_exceptions=True
    )

    failed = {type(r).__name__ for r in results if isinstance(r, BaseException)}
    assert failed == {"UnknownJob", "ImageNotYetKnown"}
    assert sum(isinstance(r, BaseException) for r in results) == 6
    assert [await submitted_status(pool, j.job_id) for j in jobs] == ["completed"] * 20
    assert [await submitted_status(pool, j.job_id) for j in early] == ["queued"] * 3
    # Once with the six, once without them: not a transaction per event.
    assert handler.batcher.transactions - before == 2, handler.batcher.transactions - before


async def test_counters_are_written_with_the_fold(pool: AsyncConnectionPool) -> None:
    """A replayed event changes neither the tables nor the counters."""
    handler = MonitorHandler(pool)
    j = job()

    async def submitted() -> int:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT COALESCE(sum(count), 0) FROM metrics_minute WHERE name = 'jobs_submitted'"
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    before = await submitted()
    for _ in range(3):
        await handler(j, ctx(0))
    assert await submitted() == before + 1


async def metric_counts(pool: AsyncConnectionPool) -> dict[tuple[str, str], int]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, COALESCE(labels ->> 'stage', ''), sum(count) FROM metrics_minute"
            " WHERE name IN ('jobs_submitted', 'jobs_completed', 'job_duration',"
            " 'stage_duration') GROUP BY 1, 2"
        )
        return {(name, stage): int(n) for name, stage, n in await cur.fetchall()}


async def test_a_batch_counts_each_job_and_each_stage_once(pool: AsyncConnectionPool) -> None:
    """Whole jobs in a few batches: each job refreshed and counted once, however many of its
    events share the batch; folding them all again counts nothing."""
    handler = MonitorHandler(pool)
    jobs = [job() for _ in range(20)]
    events: list[Event] = [e for j in jobs for e in (j, image(j, 0), product(j, 0, "mug"))]
    before = await metric_counts(pool)
    await asyncio.gather(*(handler(e, ctx(n)) for n, e in enumerate(events)))
    assert handler.batcher.batches < len(events) / 4, handler.batcher.batches
    after = await metric_counts(pool)
    # Only what this batch added: other tests of the session may have counted other stages.
    delta = {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}
    assert delta == {
        ("jobs_submitted", ""): 20,
        ("jobs_completed", ""): 20,
        ("job_duration", ""): 20,
        ("stage_duration", "generation"): 20,
        ("stage_duration", "product"): 20,
    }
    assert [await submitted_status(pool, j.job_id) for j in jobs] == ["completed"] * 20
    await asyncio.gather(*(handler(e, ctx(n)) for n, e in enumerate(events)))
    assert await metric_counts(pool) == after


async def test_a_lone_event_is_folded_at_once(pool: AsyncConnectionPool) -> None:
    handler = MonitorHandler(pool)
    j = job()
    await asyncio.wait_for(handler(j, ctx(0)), 5)
    assert await submitted_status(pool, j.job_id) == "queued"


async def test_a_lone_event_does_not_wait_for_company(pool: AsyncConnectionPool) -> None:
    """At a trickle (a job's last event, seconds after its others) nothing would share the
    batch: the linger would only delay the job's status."""
    handler = MonitorHandler(pool, linger_s=30)
    j = job()
    # A deadline far below the linger: folded at once, not after a wait for company.
    await asyncio.wait_for(handler(j, ctx(0)), 10)
    assert handler.batcher.lingered == 0
    assert await submitted_status(pool, j.job_id) == "queued"


async def test_a_stream_of_events_lingers_to_share_a_batch(pool: AsyncConnectionPool) -> None:
    handler = MonitorHandler(pool, linger_s=0.05)
    jobs = [job() for _ in range(10)]
    first, *rest = [e for j in jobs for e in (j, image(j, 0))]
    folding = asyncio.ensure_future(handler(first, ctx(0)))
    calls = []
    for n, e in enumerate(rest, start=1):
        calls.append(asyncio.ensure_future(handler(e, ctx(n))))
        await asyncio.sleep(0.002)  # a stream: each within the linger of the one before
    await asyncio.gather(folding, *calls)
    assert handler.batcher.lingered >= 1
    assert handler.batcher.batches < len(rest) / 2, handler.batcher.batches


@pytest.mark.integration  # its own PostgreSQL, stopped and started
async def test_a_database_outage_is_waited_out_not_failed(tmp_path: Path) -> None:
    """PostgreSQL stops with events in flight: the fold waits (however long), nothing fails,
    and once the server is back every event is folded."""
    pg = LocalPostgres(tmp_path, port=free_port()).start()
    try:
        await asyncio.to_thread(migrate, pg.url)
        pool = await open_pool(pg.url, max_size=2, check=False)
        handler = MonitorHandler(pool)
        handler.batcher.max_wait_s = handler.batcher.acquire_timeout_s = 0.5
        first = job()
        await handler(first, ctx(0))

        await asyncio.to_thread(pg.stop, "fast")
        jobs = [job() for _ in range(5)]
        calls = [asyncio.ensure_future(handler(j, ctx(n + 1))) for n, j in enumerate(jobs)]
        await wait_until(lambda: handler.batcher.unavailable_since is not None, 30)
        # Through several backoff rounds (each a failed connect): none of them fails an event.
        rounds = handler.batcher.unavailable_rounds
        await wait_until(lambda: handler.batcher.unavailable_rounds >= rounds + 5, 30)
        assert not any(c.done() for c in calls)

        await asyncio.to_thread(pg.start)
        await asyncio.wait_for(asyncio.gather(*calls), 60)
        assert handler.batcher.unavailable_since is None
        for j in jobs:
            assert await submitted_status(pool, j.job_id) == "queued"
        await pool.close()
    finally:
        pg.stop("immediate")


async def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
