"""The ``image_reviews`` table (migration 0029): where the seller's review of each image of a job
with review stands, one row per (job, image).

Two writers, each with its own statements here:

- the monitor's fold: :func:`await_decision` after each product made under review (the image
  awaits once its products of its newest generation are all made: a regenerated image's too, as
  generation+1), :func:`fold_decision` when a decision's event is folded (the API's claim
  confirmed, or the decision applied where none was claimed), cancelling the open reviews of a
  cancelled job;
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

from shared.contract.events import DecisionAction, SellerDecision

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

# After a product of a reviewed job was made: every product type of the image's generation
# settled (made or failed), one at least made, the job not cancelled. Then as _AWAITING.
_AWAIT_IF_MADE = """
INSERT INTO image_reviews (job_id, image_index, generation, state, awaiting_since)
SELECT %(job)s, %(index)s, %(generation)s, 'awaiting', %(at)s
WHERE (SELECT count(*) FILTER (WHERE status <> 'failed') FROM products
       WHERE job_id = %(job)s AND image_index = %(index)s AND generation = %(generation)s) >= 1
  AND (SELECT count(*) FROM products
       WHERE job_id = %(job)s AND image_index = %(index)s
         AND (generation = %(generation)s OR status = 'failed')) >= %(types)s
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE job_id = %(job)s AND cancelled_at IS NOT NULL)
ON CONFLICT (job_id, image_index) DO UPDATE SET
    generation = EXCLUDED.generation, state = 'awaiting', awaiting_since = EXCLUDED.awaiting_since
WHERE image_reviews.generation < EXCLUDED.generation AND image_reviews.state <> 'cancelled'
"""

# A decision the API did not claim (a topic replayed into an empty database, say): applied only
# to the image it was about, still awaiting at that generation.
_APPLY = """
UPDATE image_reviews SET state = %(state)s, decision_id = %(decision)s, decision = %(action)s,
    decided_by = %(by)s, decided_at = %(at)s, decision_folded = TRUE, prompt = %(prompt)s
WHERE job_id = %(job)s AND image_index = %(index)s AND generation = %(generation)s
  AND state = 'awaiting'
"""

# The state a decision leaves its image in.
STATE_AFTER: dict[DecisionAction, ReviewState] = {
    DecisionAction.APPROVE: "approved",
    DecisionAction.REJECT: "rejected",
    DecisionAction.REGENERATE: "regenerating",
}

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


async def await_decision(
    conn: AsyncConnection[Any],
    *,
    job_id: str,
    image_index: int,
    generation: int,
    product_types: int,
    at: datetime,
) -> None:
    """(The fold) After a product of a reviewed job was made: the image awaits the seller once
    every product type of its generation is settled, one at least made."""
    await conn.execute(
        _AWAIT_IF_MADE,
        {
            "job": job_id,
            "index": image_index,
            "generation": generation,
            "types": product_types,
            "at": at,
        },
    )


async def fold_decision(conn: AsyncConnection[Any], event: SellerDecision) -> None:
    """(The fold) A seller's decision about an image: the API's claim confirmed, or the decision
    applied where the API never claimed it. A cancel closes every review still open."""
    d = event.payload
    if d.action is DecisionAction.CANCEL:
        await cancel_open(conn, event.job_id)
        return
    state = STATE_AFTER.get(d.action)
    if state is None or d.image_index is None:
        return  # after launch: nothing of the review changes
    if await mark_folded(conn, event.job_id, d.image_index, d.decision_id):
        return
    await conn.execute(
        _APPLY,
        {
            "job": event.job_id,
            "index": d.image_index,
            "decision": d.decision_id,
            "state": state,
            "action": d.action.value,
            "by": d.decided_by,
            "at": event.occurred_at,
            "generation": d.generation,
            "prompt": d.prompt,
        },
    )


# A regenerated image screened again (issue 29), its row still ``regenerating`` from an earlier
# generation. Blocked: nothing of it is made, so nothing is left to decide (the row says so, and
# the job can end). Allowed in a job without review: no longer held, its products go as the job
# asked (the row goes: a job without review holds only the images screening holds).
_SCREENED_BLOCKED = """
UPDATE image_reviews SET state = 'rejected', generation = %(generation)s, decision = 'blocked',
    decided_by = 'screening', decided_at = %(at)s, decision_folded = TRUE
WHERE job_id = %(job)s AND image_index = %(index)s AND state = 'regenerating'
  AND generation < %(generation)s
"""
_SCREENED_RELEASED = """
DELETE FROM image_reviews r
WHERE r.job_id = %(job)s AND r.image_index = %(index)s AND r.state = 'regenerating'
  AND r.generation < %(generation)s
  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = r.job_id AND j.review)
"""


async def screened_again(
    conn: AsyncConnection[Any],
    *,
    job_id: str,
    image_index: int,
    generation: int,
    decision: str | None,
    at: datetime,
) -> None:
    """(The fold) A new generation of an image the seller asked again arrived with screening's
    ``decision`` (None: not screened): a blocked one closes its review, one allowed in a job
    without review is no longer held; one held again awaits once its products are made."""
    params = {"job": job_id, "index": image_index, "generation": generation, "at": at}
    if decision == "block":
        await conn.execute(_SCREENED_BLOCKED, params)
    elif decision != "review":
        await conn.execute(_SCREENED_RELEASED, params)


_HELD = "SELECT 1 FROM image_reviews WHERE job_id = %(job)s AND image_index = %(index)s"


async def held(conn: AsyncConnection[Any], job_id: str, image_index: int) -> bool:
    """Whether the image has a review (its job's review, or screening held it for one)."""
    cur = await conn.execute(_HELD, {"job": job_id, "index": image_index})
    return await cur.fetchone() is not None
