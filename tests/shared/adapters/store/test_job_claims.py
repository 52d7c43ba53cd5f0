"""``shared.adapters.store.job_claims``: a job id belongs to its first request, under concurrency
too."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared.adapters.store import job_claims, jobs
from shared.adapters.store.job_claims import Ownership
from shared.contract.events import JobRequested, JobRequestedPayload


def request(job_id: str, theme: str = "owl", **kw: Any) -> JobRequested:
    return JobRequested(
        job_id=job_id,
        producer="test",
        payload=JobRequestedPayload(
            theme=theme, style="ink", niche="birds", product_types=["mug"], count=2, **kw
        ),
    )


def new_id() -> str:
    return f"claim-{uuid.uuid4().hex[:10]}"


def test_the_digest_is_the_payload_not_the_envelope() -> None:
    first = request("j")
    again = first.model_copy(update={"event_id": uuid.uuid4(), "attempt": 3, "producer": "x"})
    assert again.payload.digest() == first.payload.digest()
    # A value given as its default is the same request; any other field changes it.
    explicit = request("j", auto_publish=False, priority="normal")
    assert explicit.payload.digest() == first.payload.digest()
    for changed in (request("j", theme="skull"), request("j", priority="high")):
        assert changed.payload.digest() != first.payload.digest()


async def test_owner_duplicate_and_conflict(migrated_db: str) -> None:
    job_id = new_id()
    first = request(job_id)
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        assert await job_claims.claim(conn, first) is Ownership.OWNER
        # Its redelivery, a retry or a replay: the same event.
        assert await job_claims.claim(conn, first.model_copy(update={"attempt": 1})) is (
            Ownership.OWNER
        )
        again = first.model_copy(update={"event_id": uuid.uuid4()})
        assert await job_claims.claim(conn, again) is Ownership.DUPLICATE
        # Another request, even under the first one's event id.
        other = request(job_id, theme="skull")
        assert await job_claims.claim(conn, other) is Ownership.CONFLICT
        same_id = other.model_copy(update={"event_id": first.event_id})
        assert await job_claims.claim(conn, same_id) is Ownership.CONFLICT
        # Within one batch the first request of a job wins.
        fresh = new_id()
        got = await job_claims.claim_many(
            conn, [request(fresh, theme="a"), request(fresh, theme="b"), first]
        )
        assert got == [Ownership.OWNER, Ownership.CONFLICT, Ownership.OWNER]


async def test_of_two_concurrent_claimers_one_owns_the_id(migrated_db: str) -> None:
    """The second claim waits on the first's uncommitted row; once that commits it reads the
    first request's claim (the statement that waited does not see it: asked again)."""
    job_id = new_id()
    mine, theirs = request(job_id, theme="owl"), request(job_id, theme="skull")
    async with (
        await psycopg.AsyncConnection.connect(migrated_db) as a,
        await psycopg.AsyncConnection.connect(migrated_db) as b,
    ):
        assert await job_claims.claim(a, mine) is Ownership.OWNER  # a's transaction is open
        second = asyncio.ensure_future(job_claims.claim(b, theirs))
        await asyncio.sleep(0.3)
        assert not second.done()  # waiting for a's row
        await a.commit()
        assert await asyncio.wait_for(second, 10) is Ownership.CONFLICT
        await b.commit()


async def test_a_job_from_before_claims_belongs_to_the_request_it_holds(migrated_db: str) -> None:
    """Migration 0024 claims every job that holds a request; the digest is settled from the
    stored request with today's defaults (the stored one lacks fields added since)."""
    job_id = new_id()
    old = request(job_id)
    stored = old.payload.model_dump(mode="json")
    del stored["priority_level"], stored["channels"]  # a request from before those fields
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        await jobs.open_requested(conn, old)
        await conn.execute(
            "UPDATE jobs SET request = %s WHERE job_id = %s", (Jsonb(stored), job_id)
        )
        await conn.execute(
            "INSERT INTO job_claims (job_id, request_digest, event_id) VALUES (%s, %s, NULL)",
            (job_id, job_claims.LEGACY),
        )
        assert await job_claims.claim(conn, request(job_id, theme="skull")) is (Ownership.CONFLICT)
        # Any event of its own request (its event id was not kept) is the owner.
        assert await job_claims.claim(conn, old) is Ownership.OWNER
        cur = await conn.execute(
            "SELECT request_digest FROM job_claims WHERE job_id = %s", (job_id,)
        )
        assert await cur.fetchone() == (old.payload.digest(),)
