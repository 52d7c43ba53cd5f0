"""The ``job_claims`` table: a job id belongs to its first request.

The API claims the id when it accepts a job; a job produced to the topics directly is claimed by
whichever of the monitor's fold and the generator sees its request first. Each claim records a
digest of the request (:meth:`shared.contract.events.JobRequestedPayload.digest`) and the event that
made it. A later ``job.requested`` under the same id is then:

- the owner: the claiming event itself again (a redelivery, a delayed retry, a replay), or any
  event of the request for a job from before claims;
- a duplicate: the same request under another event id (a producer that sent it twice):
  nothing to do;
- a conflict: another request. It is refused (``job id in use``) and the first job is left
  untouched.

The claim is an ``INSERT ... ON CONFLICT DO NOTHING``, so of two concurrent claimers one wins
and the other reads the winner's claim.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection
from pydantic import ValidationError

from shared.contract.events import JobRequested, JobRequestedPayload
from shared.platform.errors import InvalidEventError

# A claim made by migration 0024 for a job from before claims: its digest is worked out from the
# job's stored request the first time its id is claimed again.
LEGACY = "legacy"

# Every request of the batch, in job order (so that concurrent claimers lock the unique index in
# one order and cannot deadlock), the first of a job in the batch first. The SELECT part does
# not see what this statement inserts, so the two halves together give each job's claim once;
# a claim committed by another transaction after this statement began is in neither (the
# caller asks again for those).
_CLAIM = """
WITH asked AS (
    SELECT * FROM unnest(%(jobs)s::text[], %(digests)s::text[], %(events)s::uuid[])
        WITH ORDINALITY AS a(job_id, digest, event_id, n)
), new AS (
    INSERT INTO job_claims (job_id, request_digest, event_id)
    SELECT job_id, digest, event_id FROM asked ORDER BY job_id, n
    ON CONFLICT (job_id) DO NOTHING
    RETURNING job_id, request_digest, event_id
)
SELECT job_id, request_digest, event_id FROM new
UNION ALL
SELECT job_id, request_digest, event_id FROM job_claims WHERE job_id = ANY(%(jobs)s)
"""

_LEGACY_REQUEST = "SELECT request FROM jobs WHERE job_id = %(job)s"
_SETTLE_LEGACY = """
UPDATE job_claims SET request_digest = %(digest)s
WHERE job_id = %(job)s AND request_digest = %(legacy)s
RETURNING request_digest
"""
_EXISTS = "SELECT 1 FROM job_claims WHERE job_id = %(job)s"


class Ownership(StrEnum):
    """What a ``job.requested`` is to the job id it names."""

    OWNER = "owner"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class JobIdInUse(InvalidEventError):
    """A ``job.requested`` under a job id another request owns: refused, dead-lettered."""


@dataclass(frozen=True)
class Claim:
    """Who owns a job id: the request's digest and the event that claimed it."""

    digest: str
    event_id: uuid.UUID | None

    def of(self, event: JobRequested) -> Ownership:
        """What ``event`` is to this claim."""
        if self.digest != event.payload.digest():
            return Ownership.CONFLICT
        if self.event_id is None or self.event_id == event.event_id:
            return Ownership.OWNER
        return Ownership.DUPLICATE


def refusal(event: JobRequested) -> JobIdInUse:
    """The error a conflicting request is dead-lettered with."""
    return JobIdInUse(
        f"job_id: job id in use: {event.job_id[:100]} belongs to another request "
        "(a job id is owned by its first request; submit under a new job id)"
    )


async def claim_many(conn: AsyncConnection[Any], events: list[JobRequested]) -> list[Ownership]:
    """Claim each request's job id (the first request of a job in ``events`` first); per
    request, what it is to its job's claim."""
    if not events:
        return []
    claims: dict[str, Claim] = {}
    wanted = list(events)
    while wanted:
        cur = await conn.execute(
            _CLAIM,
            {
                "jobs": [e.job_id for e in wanted],
                "digests": [e.payload.digest() for e in wanted],
                "events": [e.event_id for e in wanted],
            },
        )
        for job_id, digest, event_id in await cur.fetchall():
            claims[job_id] = Claim(digest, event_id)
        # A claim another transaction committed while this statement ran: ask again.
        wanted = [e for e in wanted if e.job_id not in claims]
    for job_id, found in list(claims.items()):
        if found.digest == LEGACY:
            claims[job_id] = await _settle_legacy(conn, job_id, found)
    return [claims[e.job_id].of(e) for e in events]


async def claim(conn: AsyncConnection[Any], event: JobRequested) -> Ownership:
    """Claim one request's job id; what the request is to the job's claim."""
    [ownership] = await claim_many(conn, [event])
    return ownership


async def claimed(conn: AsyncConnection[Any], job_id: str) -> bool:
    """Whether some request owns ``job_id`` (outputs of a job nobody requested are forged)."""
    cur = await conn.execute(_EXISTS, {"job": job_id})
    return await cur.fetchone() is not None


async def _settle_legacy(conn: AsyncConnection[Any], job_id: str, found: Claim) -> Claim:
    """A job from before claims: its digest from the request its row holds, with today's
    defaults (a request stored before a field existed reads as it does now)."""
    cur = await conn.execute(_LEGACY_REQUEST, {"job": job_id})
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return found  # no request to compare with: matches no digest, so refused
    try:
        digest = JobRequestedPayload.model_validate(row[0]).digest()
    except ValidationError:
        return found  # a stored request today's contract rejects: no request matches it
    cur = await conn.execute(_SETTLE_LEGACY, {"job": job_id, "digest": digest, "legacy": LEGACY})
    await cur.fetchone()  # settled now or by a concurrent claimer: the same digest either way
    return Claim(digest, found.event_id)
