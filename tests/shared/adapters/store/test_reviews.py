"""``shared.adapters.store.reviews``: one claim wins under concurrency, the fold's statements
only move an image's review forward."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from psycopg_pool import AsyncConnectionPool

from shared.adapters.store import reviews
from shared.platform.db import open_pool


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await open_pool(migrated_db, max_size=8)
    try:
        yield p
    finally:
        await p.close()


def new_job() -> str:
    return f"review-{uuid.uuid4().hex[:10]}"


async def awaiting(pool: AsyncConnectionPool, job: str, index: int, generation: int) -> bool:
    async with pool.connection() as conn:
        return await reviews.mark_awaiting(conn, job, index, generation, datetime.now(UTC))


async def test_of_many_concurrent_claims_one_wins(pool: AsyncConnectionPool) -> None:
    job = new_job()
    assert await awaiting(pool, job, 0, 0)
    ids = [uuid.uuid4() for _ in range(8)]
    won = await asyncio.gather(
        *(
            reviews.claim(
                pool,
                job_id=job,
                image_index=0,
                to="approved" if n % 2 else "rejected",
                action="approve" if n % 2 else "reject",
                decision_id=d,
                decided_by=f"caller-{n}",
            )
            for n, d in enumerate(ids)
        )
    )
    winners = [w for w in won if w is not None]
    assert len(winners) == 1
    row = await reviews.get(pool, job, 0)
    assert row == winners[0] and row.decision_id in ids and not row.decision_folded


async def test_a_claim_names_the_generation_seen_and_is_given_back_only_unfolded(
    pool: AsyncConnectionPool,
) -> None:
    job = new_job()
    assert await awaiting(pool, job, 1, 2)

    async def claim(d: uuid.UUID, generation: int | None = None) -> reviews.ReviewRow | None:
        return await reviews.claim(
            pool,
            job_id=job,
            image_index=1,
            to="approved",
            action="approve",
            decision_id=d,
            decided_by="a",
            generation=generation,
        )

    assert await claim(uuid.uuid4(), generation=1) is None  # it is generation 2 now
    d = uuid.uuid4()
    assert await claim(d, generation=2) is not None
    assert not await reviews.release(pool, job, 1, uuid.uuid4())
    assert await reviews.release(pool, job, 1, d)
    row = await reviews.get(pool, job, 1)
    assert row is not None and row.state == "awaiting" and row.decision_id is None

    d2 = uuid.uuid4()
    assert await claim(d2) is not None
    async with pool.connection() as conn:
        assert await reviews.mark_folded(conn, job, 1, d2)
    assert not await reviews.release(pool, job, 1, d2)
    # A fresh claim is not stale; a folded one never is.
    assert await reviews.retake_stale(pool, job, 1, d2, older_than_s=0) is None


async def test_the_fold_moves_a_review_forward_only(pool: AsyncConnectionPool) -> None:
    job = new_job()
    assert await awaiting(pool, job, 0, 0)
    assert not await awaiting(pool, job, 0, 0)  # the same fold again
    d = uuid.uuid4()
    claimed = await reviews.claim(
        pool,
        job_id=job,
        image_index=0,
        to="regenerating",
        action="regenerate",
        decision_id=d,
        decided_by="a",
        prompt="a fox",
    )
    assert claimed is not None and claimed.prompt == "a fox"
    assert await awaiting(pool, job, 0, 1)  # the new image's products are made
    assert not await awaiting(pool, job, 0, 0)  # a late fold of the old one changes nothing
    row = await reviews.get(pool, job, 0)
    assert row is not None and (row.state, row.generation) == ("awaiting", 1)
    assert row.decision_id == d  # the last decision kept for the record

    assert await awaiting(pool, job, 1, 0)
    async with pool.connection() as conn:
        assert await reviews.cancel_open(conn, job) == 2
    assert not await awaiting(pool, job, 1, 1)  # cancelled stays cancelled
    assert {r.state for r in await reviews.of_job(pool, job)} == {"cancelled"}
