"""The ``image_reviews`` table (migration 0029): where the seller's review of each image of a job
with review stands, one row per (job, image).

Two writers, each with its own statements here:

- the monitor's fold: :func:`mark_awaiting` once an image's products are all made under review
  (a regenerated image's too, as generation+1), :func:`mark_folded` when the decision's event is
  folded, :func:`cancel_open` when the job is cancelled;
- the API, which CLAIMS a decision before producing it (:func:`claim`: one compare-and-set
  statement, so two decisions about one image cannot both be produced) and puts the claim back
  when the broker does not acknowledge it (:func:`release`), or takes over a claim whose event
  never reached the broker (:func:`retake_stale`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

ReviewState = Literal["awaiting", "approved", "rejected", "regenerating", "cancelled"]
REVIEW_STATES: tuple[ReviewState, ...] = (
    "awaiting",
    "approved",
    "rejected",
    "regenerating",
    "cancelled",
)


@dataclass(frozen=True)
class ReviewRow:
    """One image's review as the table holds it."""

    job_id: str
    image_index: int
    generation: int
    state: ReviewState
    awaiting_since: datetime | None
    decision_id: uuid.UUID | None
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    decision_folded: bool
    prompt: str | None


_COLUMNS = """job_id, image_index, generation, state, awaiting_since, decision_id, decision,
    decided_by, decided_at, decision_folded, prompt"""

_GET = f"SELECT {_COLUMNS} FROM image_reviews WHERE job_id = %(job)s AND image_index = %(index)s"  # noqa: S608  # constants
_OF_JOB = f"SELECT {_COLUMNS} FROM image_reviews WHERE job_id = %(job)s ORDER BY image_index"  # noqa: S608  # constants

# The claim: only an image awaiting the seller (and, when the seller said which generation they
# looked at, that one) takes a decision; whoever changes the row first wins, the others get no
# row back. The row lock of the UPDATE serialises concurrent claims.
_CLAIM = f"""
UPDATE image_reviews SET state = %(to)s, decision = %(action)s, decision_id = %(decision_id)s,
    decided_by = %(by)s, decided_at = now(), decision_folded = FALSE, prompt = %(prompt)s
WHERE job_id = %(job)s AND image_index = %(index)s AND state = 'awaiting'
  AND (%(generation)s::int IS NULL OR generation = %(generation)s::int)
RETURNING {_COLUMNS}
"""  # noqa: S608  # constants

# A claim whose event the broker did not acknowledge: the image awaits the seller again.
_RELEASE = """
UPDATE image_reviews SET state = 'awaiting', decision = NULL, decision_id = NULL,
    decided_by = NULL, decided_at = NULL, prompt = NULL
WHERE job_id = %(job)s AND image_index = %(index)s AND decision_id = %(decision_id)s
  AND NOT decision_folded
"""

# A claim not folded after ``older_than_s``: its API may have crashed between the claim and the
# produce. One caller takes it over (decided_at moves, so the next one waits again) and produces
# the same decision again.
_RETAKE = f"""
UPDATE image_reviews SET decided_at = now()
WHERE job_id = %(job)s AND image_index = %(index)s AND decision_id = %(decision_id)s
  AND NOT decision_folded AND decided_at < now() - make_interval(secs => %(older_than_s)s)
RETURNING {_COLUMNS}
"""  # noqa: S608  # constants

# The fold: the image's products are all made under review (generation ``g``). A new row, or a
# regenerated image's new generation (the row was ``regenerating``): it waits for the seller,
# its last decision kept for the record. An older generation never overwrites a newer one.
_AWAITING = """
INSERT INTO image_reviews (job_id, image_index, generation, state, awaiting_since)
VALUES (%(job)s, %(index)s, %(generation)s, 'awaiting', %(at)s)
ON CONFLICT (job_id, image_index) DO UPDATE SET
    generation = EXCLUDED.generation, state = 'awaiting', awaiting_since = EXCLUDED.awaiting_since
WHERE image_reviews.generation < EXCLUDED.generation AND image_reviews.state <> 'cancelled'
"""

_FOLDED = """
UPDATE image_reviews SET decision_folded = TRUE
WHERE job_id = %(job)s AND image_index = %(index)s AND decision_id = %(decision_id)s
"""

_CANCEL_OPEN = """
UPDATE image_reviews SET state = 'cancelled'
WHERE job_id = %(job)s AND state IN ('awaiting', 'regenerating')
"""


async def get(pool: AsyncConnectionPool, job_id: str, image_index: int) -> ReviewRow | None:
    """One image's review, or None when its products are not all made yet (no row)."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(ReviewRow)) as cur:
        await cur.execute(_GET, {"job": job_id, "index": image_index})
        return await cur.fetchone()


async def of_job(pool: AsyncConnectionPool, job_id: str) -> list[ReviewRow]:
    """Every reviewed image of a job, by index."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(ReviewRow)) as cur:
        await cur.execute(_OF_JOB, {"job": job_id})
        return await cur.fetchall()


async def claim(
    pool: AsyncConnectionPool,
    *,
    job_id: str,
    image_index: int,
    to: ReviewState,
    action: str,
    decision_id: uuid.UUID,
    decided_by: str,
    generation: int | None = None,
    prompt: str | None = None,
) -> ReviewRow | None:
    """Claim a decision about an awaiting image (of ``generation``, when given): the row as
    claimed, or None when the image was not awaiting (then :func:`get` says why)."""
    params = {
        "job": job_id,
        "index": image_index,
        "to": to,
        "action": action,
        "decision_id": decision_id,
        "by": decided_by,
        "generation": generation,
        "prompt": prompt,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(ReviewRow)) as cur:
        await cur.execute(_CLAIM, params)
        return await cur.fetchone()


async def release(
    pool: AsyncConnectionPool, job_id: str, image_index: int, decision_id: uuid.UUID
) -> bool:
    """Put back a claim whose event was not produced; False when it was folded meanwhile or
    is not this decision's."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _RELEASE, {"job": job_id, "index": image_index, "decision_id": decision_id}
        )
        return cur.rowcount == 1


async def retake_stale(
    pool: AsyncConnectionPool,
    job_id: str,
    image_index: int,
    decision_id: uuid.UUID,
    *,
    older_than_s: float,
) -> ReviewRow | None:
    """Take over a claim not folded within ``older_than_s`` (its event may never have reached
    the broker): the row when this caller should produce the decision again, else None."""
    params = {
        "job": job_id,
        "index": image_index,
        "decision_id": decision_id,
        "older_than_s": older_than_s,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(ReviewRow)) as cur:
        await cur.execute(_RETAKE, params)
        return await cur.fetchone()


async def mark_awaiting(
    conn: AsyncConnection[Any], job_id: str, image_index: int, generation: int, at: datetime
) -> bool:
    """(The fold) The image's products of ``generation`` are all made: it awaits the seller.
    False when the row already stands at that generation or a newer one, or was cancelled."""
    cur = await conn.execute(
        _AWAITING, {"job": job_id, "index": image_index, "generation": generation, "at": at}
    )
    return cur.rowcount == 1


async def mark_folded(
    conn: AsyncConnection[Any], job_id: str, image_index: int, decision_id: uuid.UUID
) -> bool:
    """(The fold) The decision's event was folded: its claim is confirmed (never re-produced)."""
    cur = await conn.execute(
        _FOLDED, {"job": job_id, "index": image_index, "decision_id": decision_id}
    )
    return cur.rowcount == 1


async def cancel_open(conn: AsyncConnection[Any], job_id: str) -> int:
    """(The fold) The job was cancelled: its images still open (awaiting, regenerating) are
    ``cancelled``; decided ones keep their decision. How many rows changed."""
    cur = await conn.execute(_CANCEL_OPEN, {"job": job_id})
    return cur.rowcount
