"""The API's reads for the seller's review: what a decision must know of its job, a job's review
as the review page shows it, and the images awaiting review across a caller's jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from services.api.schemas.review import ReviewImage, ReviewProduct, ReviewQueueItem
from shared.contract.sales_channels import DEFAULT_CHANNEL

THUMBNAIL_SIZE = 320


@dataclass(frozen=True)
class JobFacts:
    """What a decision about a job checks first: whose it is, whether it is reviewed, whether
    it was cancelled, and whether it has anything left to undo."""

    job_id: str
    submitted_by: str | None
    review: bool
    status: str
    image_count: int
    theme: str
    style: str
    niche: str
    # Who claimed its cancel (the API), when the stages learnt it (a stage, the monitor).
    cancelled_by: str | None
    cancel_claimed_at: datetime | None
    cancel_recorded: bool
    products_made: int

    @property
    def cancelled(self) -> bool:
        return self.cancelled_by is not None or self.cancel_recorded


# ``review``: the column, or the stored request (the column is the fold's, and a row the API
# wrote at submission has only the request).
_FACTS = """
SELECT j.job_id, j.submitted_by,
    (j.review OR COALESCE((j.request->>'review')::boolean, FALSE)) AS review,
    j.status, j.image_count, j.theme, j.style, j.niche, j.cancelled_by,
    CASE WHEN j.cancelled_by IS NOT NULL THEN j.updated_at END AS cancel_claimed_at,
    (j.cancelled_at IS NOT NULL
     OR EXISTS (SELECT 1 FROM job_cancellations c WHERE c.job_id = j.job_id)) AS cancel_recorded,
    (SELECT count(*) FROM products p WHERE p.job_id = j.job_id AND p.product_id IS NOT NULL
       AND p.status <> 'failed')::int AS products_made
FROM jobs j WHERE j.job_id = %(job)s
"""

# The API's claim of a job's cancel: one statement, so two cancels produce one decision.
# ``updated_at`` dates the claim (a claim whose event never reached the broker is taken over).
_CLAIM_CANCEL = """
UPDATE jobs SET cancelled_by = %(by)s, updated_at = now()
WHERE job_id = %(job)s AND cancelled_by IS NULL AND cancelled_at IS NULL
RETURNING job_id
"""
_RELEASE_CANCEL = """
UPDATE jobs SET cancelled_by = NULL
WHERE job_id = %(job)s AND cancelled_by = %(by)s AND cancelled_at IS NULL
"""
_RETAKE_CANCEL = """
UPDATE jobs SET updated_at = now()
WHERE job_id = %(job)s AND cancelled_by IS NOT NULL AND cancelled_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM job_cancellations c WHERE c.job_id = jobs.job_id)
  AND updated_at < now() - make_interval(secs => %(older_than_s)s)
RETURNING cancelled_by
"""

_IMAGES = """
SELECT i.image_index, COALESCE(r.generation, 0) AS generation,
    COALESCE(r.state, 'pending') AS state, r.awaiting_since, r.decision, r.decision_id,
    r.decided_by, r.decided_at, i.title, i.description, i.tags, i.prompt, i.screening
FROM images i
LEFT JOIN image_reviews r ON r.job_id = i.job_id AND r.image_index = i.image_index
WHERE i.job_id = %(job)s ORDER BY i.image_index
"""

_PRODUCTS = """
SELECT image_index, product_type, product_id, status, COALESCE(mockups, '{}') AS mockups,
    price_min_cents, price_max_cents, cost_min_cents, cost_max_cents, profit_min_cents,
    margin_min_percent
FROM products WHERE job_id = %(job)s ORDER BY image_index, product_type
"""

# {mine}: _MINE or nothing (an admin key, or no authentication: every job).
_QUEUE = """
SELECT r.job_id, r.image_index, r.generation, r.state, r.awaiting_since, r.decision,
    r.decided_by, r.decided_at, i.title, j.theme, j.niche,
    (SELECT count(*) FROM products p WHERE p.job_id = r.job_id
       AND p.image_index = r.image_index AND p.status <> 'failed')::int AS product_count
FROM image_reviews r
JOIN jobs j ON j.job_id = r.job_id
LEFT JOIN images i ON i.job_id = r.job_id AND i.image_index = r.image_index
WHERE r.state = %(state)s {mine}
ORDER BY r.awaiting_since NULLS LAST, r.job_id, r.image_index
LIMIT %(limit)s
"""
_QUEUE_COUNT = """
SELECT count(*) FROM image_reviews r JOIN jobs j ON j.job_id = r.job_id
WHERE r.state = %(state)s {mine}
"""
_MINE = "AND j.submitted_by = %(owner)s"


# What screening made of an image, for a decision about it: whether it has a review row (its
# products are made and wait, or waited, for the seller) and screening's decision and summary.
_SCREENED = """
SELECT EXISTS (SELECT 1 FROM image_reviews r
               WHERE r.job_id = %(job)s AND r.image_index = %(index)s) AS reviewed,
    (SELECT i.screening_decision FROM images i
     WHERE i.job_id = %(job)s AND i.image_index = %(index)s) AS decision,
    (SELECT i.screening_summary FROM images i
     WHERE i.job_id = %(job)s AND i.image_index = %(index)s) AS summary
"""


@dataclass(frozen=True)
class Screened:
    """What a decision about an image needs to know of its screening."""

    reviewed: bool
    decision: str | None
    summary: str | None

    @property
    def held(self) -> bool:
        """It waits (or will wait) for the seller though its job has no review: its review
        row, or screening's decision while its products are still being made."""
        return self.reviewed or self.decision == "review"


async def screened(pool: AsyncConnectionPool, job_id: str, image_index: int) -> Screened:
    """The image's review row and screening (nothing when it is not generated yet)."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(Screened)) as cur:
        await cur.execute(_SCREENED, {"job": job_id, "index": image_index})
        row = await cur.fetchone()
    assert row is not None  # scalar subqueries only: always one row
    return row


def thumbnail_url(job_id: str, image_index: int) -> str:
    """Where the API serves a preview of the image (services/api/thumbnails.py)."""
    return f"/jobs/{job_id}/images/{image_index}?size={THUMBNAIL_SIZE}"


async def job_facts(pool: AsyncConnectionPool, job_id: str) -> JobFacts | None:
    """What a decision about the job checks, or None when there is no such job."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(JobFacts)) as cur:
        await cur.execute(_FACTS, {"job": job_id})
        return await cur.fetchone()


async def claim_cancel(pool: AsyncConnectionPool, job_id: str, decided_by: str) -> bool:
    """Claim the job's cancel for ``decided_by``; False when it was claimed (or recorded)."""
    async with pool.connection() as conn:
        cur = await conn.execute(_CLAIM_CANCEL, {"job": job_id, "by": decided_by})
        return cur.rowcount == 1


async def release_cancel(pool: AsyncConnectionPool, job_id: str, decided_by: str) -> None:
    """Put back a cancel claim whose event the broker did not acknowledge."""
    async with pool.connection() as conn:
        await conn.execute(_RELEASE_CANCEL, {"job": job_id, "by": decided_by})


async def retake_cancel(
    pool: AsyncConnectionPool, job_id: str, *, older_than_s: float
) -> str | None:
    """Take over a cancel claim no stage has recorded within ``older_than_s``: who decided it,
    when this caller should produce it again, else None."""
    async with pool.connection() as conn:
        cur = await conn.execute(_RETAKE_CANCEL, {"job": job_id, "older_than_s": older_than_s})
        row = await cur.fetchone()
    return None if row is None else str(row[0])


async def job_review(pool: AsyncConnectionPool, job_id: str) -> list[ReviewImage]:
    """The job's images with their review and products (the review page's content)."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_IMAGES, {"job": job_id})
        images = await cur.fetchall()
        await cur.execute(_PRODUCTS, {"job": job_id})
        products = await cur.fetchall()
    by_image: dict[int, list[ReviewProduct]] = {}
    for p in products:
        index = p.pop("image_index")
        by_image.setdefault(index, []).append(ReviewProduct(**p))
    return [
        ReviewImage(
            **i,
            thumbnail_url=thumbnail_url(job_id, i["image_index"]),
            image_url=f"/jobs/{job_id}/images/{i['image_index']}",
            products=by_image.get(i["image_index"], []),
        )
        for i in images
    ]


async def review_queue(
    pool: AsyncConnectionPool, *, state: str, owner: str | None, limit: int
) -> tuple[list[ReviewQueueItem], int]:
    """Up to ``limit`` images in ``state``, the longest waiting first, of ``owner``'s jobs
    (every job when None), and how many there are in all."""
    mine = _MINE if owner is not None else ""
    params: dict[str, Any] = {"state": state, "owner": owner, "limit": limit}
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_QUEUE.format(mine=mine), params)
        rows = await cur.fetchall()
        await cur.execute(_QUEUE_COUNT.format(mine=mine), params)
        counted = await cur.fetchone()
    total = int(next(iter(counted.values()))) if counted else 0
    items = [
        ReviewQueueItem(**r, thumbnail_url=thumbnail_url(r["job_id"], r["image_index"]))
        for r in rows
    ]
    return items, total


@dataclass(frozen=True)
class JobShape:
    """What a job makes and where it sells (an after-launch decision's scope is checked
    against it)."""

    product_types: list[str]
    channels: list[str]


_SHAPE = f"""
SELECT product_types, COALESCE(channels, ARRAY['{DEFAULT_CHANNEL}']) AS channels
FROM jobs WHERE job_id = %(job)s
"""  # noqa: S608  # a constant

# Jobs with something listed (ended with products), not cancelled, of a niche / theme / owner.
_LISTED = """
SELECT job_id FROM jobs
WHERE status IN ('completed', 'partial') AND cancelled_at IS NULL AND cancelled_by IS NULL
  AND (%(niche)s::text IS NULL OR niche = %(niche)s)
  AND (%(theme)s::text IS NULL OR theme = %(theme)s)
  AND (%(owner)s::text IS NULL OR submitted_by = %(owner)s)
  AND products_done > 0
ORDER BY created_at, job_id LIMIT %(limit)s
"""


async def job_shape(pool: AsyncConnectionPool, job_id: str) -> JobShape:
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(JobShape)) as cur:
        await cur.execute(_SHAPE, {"job": job_id})
        row = await cur.fetchone()
    if row is None:
        raise LookupError(job_id)
    return row


async def listed_jobs(
    pool: AsyncConnectionPool,
    *,
    niche: str | None,
    theme: str | None,
    owner: str | None,
    limit: int,
) -> list[str]:
    """The listed jobs a reprice of a niche or theme (or every one) is about, oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _LISTED, {"niche": niche, "theme": theme, "owner": owner, "limit": limit}
        )
        return [str(r[0]) for r in await cur.fetchall()]
