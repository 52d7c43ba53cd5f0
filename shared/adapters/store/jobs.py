"""The ``jobs`` table's rows as they are opened: by the API when it accepts a job, by the
monitor when it folds the request (its images wait for it).

Whoever comes first writes the row; the API's insert and the monitor's fold of the same
JobRequested write it alike (created_at = the event's time, request = the payload), so the row
reads the same whichever came first. Counters and status are the monitor's
(:mod:`services.monitor.fold`, rules in :mod:`services.monitor.status`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from shared.contract.events import ImageGenerated, JobRequested, channels_of

_INSERT_REQUESTED = """
INSERT INTO jobs (job_id, status, band, priority_level, theme, style, niche, prompt,
                  product_types, image_count, auto_publish, channels, expected_products,
                  expected_publications, submitted_by, request, created_at, review)
VALUES (%(job)s, 'queued', %(band)s, %(level)s, %(theme)s, %(style)s, %(niche)s, %(prompt)s,
        %(types)s, %(count)s, %(auto)s, %(channels)s, %(expected)s, %(publications)s, %(by)s,
        %(request)s, %(at)s, %(review)s)
"""
_OPEN_REQUESTED = _INSERT_REQUESTED + "ON CONFLICT (job_id) DO NOTHING"
# A row opened before claims from one of its images (migration 0024) gets the request's fields;
# a row that holds a request is never overwritten (a job id belongs to its first request).
_OPEN_OR_FILL_REQUESTED = (
    _INSERT_REQUESTED
    + """ON CONFLICT (job_id) DO UPDATE SET
    theme = EXCLUDED.theme, style = EXCLUDED.style, niche = EXCLUDED.niche,
    prompt = EXCLUDED.prompt, band = EXCLUDED.band,
    priority_level = EXCLUDED.priority_level, submitted_by = EXCLUDED.submitted_by,
    request = EXCLUDED.request, review = EXCLUDED.review
    WHERE jobs.request IS NULL"""
)


def _requested(event: JobRequested) -> dict[str, object]:
    p = event.payload
    expected = p.count * len(p.product_types)
    return {
        "job": event.job_id,
        "band": p.priority.value,
        "level": p.priority_level,
        "theme": p.theme,
        "style": p.style,
        "niche": p.niche,
        "prompt": p.prompt,
        "types": [t.value for t in p.product_types],
        "count": p.count,
        "auto": p.auto_publish,
        "channels": channels_of(p.channels),
        "expected": expected,
        # With review, at most this many: each image the seller approves is published.
        "publications": (
            expected * len(channels_of(p.channels)) if p.auto_publish or p.review else 0
        ),
        "review": p.review,
        "by": p.submitted_by,
        "request": Jsonb(p.model_dump(mode="json")),
        "at": event.occurred_at,
    }


async def open_requested(conn: AsyncConnection[Any], event: JobRequested) -> bool:
    """Open the job's row as ``queued`` from its request; False if a row was there already."""
    cur = await conn.execute(_OPEN_REQUESTED, _requested(event))
    return cur.rowcount == 1


async def open_or_fill_requested(conn: AsyncConnection[Any], event: JobRequested) -> None:
    """Open the job's row from its request, or give a row opened from an image (before claims)
    the request's fields; a row holding a request is left as it is."""
    await conn.execute(_OPEN_OR_FILL_REQUESTED, _requested(event))


# ---------------------------------------------------------------- the monitor's fold

_EXISTS = "SELECT 1 FROM jobs WHERE job_id = %(job)s"
_ASKED = """
SELECT product_types, image_count, auto_publish, channels, review FROM jobs WHERE job_id = %(job)s
"""

# In one order for every transaction, so two monitors locking overlapping jobs cannot deadlock.
_LOCK = """
SELECT job_id, product_types, image_count, auto_publish, channels, review FROM jobs
WHERE job_id = ANY(%(jobs)s) ORDER BY job_id FOR UPDATE
"""

_RECORD_TOKENS = """
UPDATE jobs SET claude_input_tokens = %(input)s, claude_output_tokens = %(output)s,
    claude_cache_read_tokens = %(cache_read)s, claude_cache_write_tokens = %(cache_write)s
WHERE job_id = %(job)s
"""

_MARK_RETRYING = """
UPDATE jobs SET retry_attempt = GREATEST(retry_attempt, %(attempt)s),
    next_retry_at = %(next_at)s, retrying_since = GREATEST(retrying_since, %(at)s),
    last_error = %(error)s
WHERE job_id = %(job)s
"""

_END_RETRYING = """
UPDATE jobs j SET retrying_since = NULL
FROM unnest(%(jobs)s::text[], %(ats)s::timestamptz[]) AS e(job_id, at)
WHERE j.job_id = e.job_id AND j.retrying_since <= e.at
"""

# The whole request failed: every image not generated is lost.
_FAIL_IMAGES = """
UPDATE jobs SET images_failed = image_count - (SELECT count(*) FROM images WHERE job_id = %(job)s),
    error = %(error)s
WHERE job_id = %(job)s
"""

_SET_ERROR = "UPDATE jobs SET error = %(error)s WHERE job_id = %(job)s"

# Named as services.monitor.status.JobCounts's fields, with the job's id.
_COUNTS = """
SELECT job_id, image_count, cardinality(product_types) AS product_types, auto_publish,
    images_failed, error AS last_error, retrying_since IS NOT NULL AS retrying,
    (SELECT count(*) FROM images i WHERE i.job_id = j.job_id) AS images_done,
    (SELECT count(*) FILTER
        (WHERE status IN ('created', 'publishing', 'published', 'publish_failed', 'deleted'))
        FROM products p WHERE p.job_id = j.job_id) AS products_done,
    (SELECT count(*) FILTER (WHERE status = 'failed')
        FROM products p WHERE p.job_id = j.job_id) AS product_rows_failed,
    (SELECT count(*) FILTER (WHERE status IN ('published', 'withdrawn'))
        FROM listings l WHERE l.job_id = j.job_id) AS publications_done,
    (SELECT count(*) FILTER (WHERE status = 'publish_failed')
        FROM listings l WHERE l.job_id = j.job_id) AS publications_failed,
    COALESCE(cardinality(channels), 1) AS channels,
    review, cancelled_at IS NOT NULL AS cancelled,
    (SELECT count(*) FILTER (WHERE r.state = 'awaiting') FROM image_reviews r
        WHERE r.job_id = j.job_id) AS images_awaiting,
    (SELECT count(*) FILTER (WHERE r.state = 'regenerating') FROM image_reviews r
        WHERE r.job_id = j.job_id) AS images_regenerating,
    (SELECT count(*) FILTER (WHERE r.state IN ('approved', 'rejected')) FROM image_reviews r
        WHERE r.job_id = j.job_id) AS images_decided,
    (SELECT count(*) FROM products p JOIN image_reviews r
        ON r.job_id = p.job_id AND r.image_index = p.image_index AND r.state = 'approved'
        WHERE p.job_id = j.job_id AND p.status <> 'failed') AS products_approved,
    (SELECT count(DISTINCT p.image_index) FROM products p
        WHERE p.job_id = j.job_id AND p.status <> 'failed') AS images_with_products,
    (SELECT count(*) FROM products p JOIN image_reviews r
        ON r.job_id = p.job_id AND r.image_index = p.image_index
        WHERE p.job_id = j.job_id AND p.status <> 'failed') AS products_held,
    (SELECT count(*) FROM images i
        WHERE i.job_id = j.job_id AND i.screening_decision = 'block') AS images_blocked,
    (SELECT string_agg(format('image %%s blocked by screening (%%s)', i.image_index + 1,
            COALESCE(i.screening_summary, 'no reason given')), '; ' ORDER BY i.image_index)
        FROM images i WHERE i.job_id = j.job_id AND i.screening_decision = 'block') AS blocked
FROM jobs j WHERE job_id = ANY(%(jobs)s)
"""

# A job that completed (after a replay, say) carries no error from before.
# One row per job of JobState's fields, in its order.
_SAVE_STATES = """
UPDATE jobs j SET status = s.status, images_done = s.images_done,
    images_failed = s.images_failed, products_done = s.products_done,
    products_failed = s.products_failed, publications_done = s.publications_done,
    publications_failed = s.publications_failed,
    error = CASE WHEN s.status = 'completed' THEN NULL ELSE COALESCE(s.error, j.error) END,
    updated_at = now(),
    started_at = CASE WHEN s.status <> 'queued' THEN COALESCE(j.started_at, now()) END,
    finished_at = CASE WHEN s.terminal THEN COALESCE(j.finished_at, now()) END
FROM unnest(%(job_id)s::text[], %(status)s::text[], %(terminal)s::bool[], %(error)s::text[],
    %(images_done)s::int[], %(images_failed)s::int[], %(products_done)s::int[],
    %(products_failed)s::int[], %(publications_done)s::int[], %(publications_failed)s::int[])
    AS s(job_id, status, terminal, error, images_done, images_failed, products_done,
        products_failed, publications_done, publications_failed)
WHERE j.job_id = s.job_id
"""

# Once per job, whichever event ended it and however often the events are re-read; the UPDATE
# locks the row, so concurrent monitors agree.
_STAMP_METRICS = """
UPDATE jobs SET metrics_recorded_at = now()
WHERE job_id = ANY(%(jobs)s) AND status = ANY(%(terminal)s) AND metrics_recorded_at IS NULL
RETURNING job_id, status, created_at
"""


class Asked(TypedDict):
    """What a job asked for, as its row holds it."""

    product_types: list[str]
    image_count: int
    auto_publish: bool
    channels: list[str] | None  # None: the default channel
    review: bool


class _LockedRow(Asked):
    job_id: str


class Counted(TypedDict):
    """What a job asked for and what has arrived, counted from its rows (:data:`_COUNTS`)."""

    image_count: int
    product_types: int
    auto_publish: bool
    images_failed: int
    last_error: str | None
    retrying: bool
    images_done: int
    products_done: int
    product_rows_failed: int
    publications_done: int
    publications_failed: int
    channels: int
    review: bool
    cancelled: bool
    images_awaiting: int
    images_regenerating: int
    images_decided: int
    products_approved: int
    images_with_products: int
    products_held: int
    images_blocked: int
    blocked: str | None


class _CountedRow(Counted):
    job_id: str


async def exists(conn: AsyncConnection[Any], job_id: str) -> bool:
    """Whether the job has a row (the API or the fold opened it)."""
    cur = await conn.execute(_EXISTS, {"job": job_id})
    return await cur.fetchone() is not None


async def asked(conn: AsyncConnection[Any], job_id: str) -> Asked | None:
    """What the job asked for, as :func:`lock` gives it, without the lock (None: no row yet)."""
    async with conn.cursor(row_factory=class_row(Asked)) as cur:
        await cur.execute(_ASKED, {"job": job_id})
        return await cur.fetchone()


async def lock(conn: AsyncConnection[Any], job_ids: list[str]) -> dict[str, Asked]:
    """Lock the rows of ``job_ids`` for this transaction; by job, what it asked for (its
    product types, image count, autoPublish and channels; jobs without a row are left out)."""
    async with conn.cursor(row_factory=class_row(_LockedRow)) as cur:
        await cur.execute(_LOCK, {"jobs": sorted(set(job_ids))})
        return {
            row["job_id"]: Asked(
                product_types=row["product_types"],
                image_count=row["image_count"],
                auto_publish=row["auto_publish"],
                channels=row["channels"],
                review=row["review"],
            )
            for row in await cur.fetchall()
        }


async def record_tokens(conn: AsyncConnection[Any], event: ImageGenerated) -> None:
    """What the job's briefs cost in Claude tokens (carried by its first image)."""
    tokens = event.payload.tokens
    if tokens is not None:
        await conn.execute(
            _RECORD_TOKENS,
            {
                "job": event.job_id,
                "input": tokens.input,
                "output": tokens.output,
                "cache_read": tokens.cache_read,
                "cache_write": tokens.cache_write,
            },
        )


async def mark_retrying(
    conn: AsyncConnection[Any],
    job_id: str,
    *,
    attempt: int,
    next_attempt_at: datetime | None,
    at: datetime,
    error: str,
) -> None:
    """A stage scheduled a retry of the job's work at ``at``."""
    await conn.execute(
        _MARK_RETRYING,
        {"job": job_id, "attempt": attempt, "next_at": next_attempt_at, "at": at, "error": error},
    )


async def end_retrying(conn: AsyncConnection[Any], ended: dict[str, datetime]) -> None:
    """Progress at ``ended[job]`` ends each job's retry scheduled before it (one statement,
    whose row order is the plan's: the caller locks the rows first, :func:`lock`)."""
    if ended:
        await conn.execute(_END_RETRYING, {"jobs": list(ended), "ats": list(ended.values())})


async def fail_images(conn: AsyncConnection[Any], job_id: str, error: str) -> None:
    """The generator gave the request up: every image not generated yet is failed."""
    await conn.execute(_FAIL_IMAGES, {"job": job_id, "error": error})


async def set_error(conn: AsyncConnection[Any], job_id: str, error: str) -> None:
    """The latest failure, shown on the job."""
    await conn.execute(_SET_ERROR, {"job": job_id, "error": error})


async def counts(conn: AsyncConnection[Any], job_ids: list[str]) -> dict[str, Counted]:
    """What each job asked for and what has arrived, counted from its rows (the fields of
    :class:`services.monitor.status.JobCounts`), by job; jobs without a row are left out."""
    async with conn.cursor(row_factory=class_row(_CountedRow)) as cur:
        await cur.execute(_COUNTS, {"jobs": sorted(set(job_ids))})
        return {row["job_id"]: _counted(row) for row in await cur.fetchall()}


def _counted(row: _CountedRow) -> Counted:
    return Counted(
        image_count=row["image_count"],
        product_types=row["product_types"],
        auto_publish=row["auto_publish"],
        images_failed=row["images_failed"],
        last_error=row["last_error"],
        retrying=row["retrying"],
        images_done=row["images_done"],
        products_done=row["products_done"],
        product_rows_failed=row["product_rows_failed"],
        publications_done=row["publications_done"],
        publications_failed=row["publications_failed"],
        channels=row["channels"],
        review=row["review"],
        cancelled=row["cancelled"],
        images_awaiting=row["images_awaiting"],
        images_regenerating=row["images_regenerating"],
        images_decided=row["images_decided"],
        products_approved=row["products_approved"],
        images_with_products=row["images_with_products"],
        products_held=row["products_held"],
        images_blocked=row["images_blocked"],
        blocked=row["blocked"],
    )


@dataclass(frozen=True)
class JobState:
    """A job's status and counters as the status machine gave them."""

    job_id: str
    status: str
    terminal: bool
    error: str | None
    images_done: int
    images_failed: int
    products_done: int
    products_failed: int
    publications_done: int
    publications_failed: int


async def save_states(conn: AsyncConnection[Any], states: list[JobState]) -> None:
    """Store each job's status and counters (one statement, whose row order is the plan's: the
    caller locks the rows first, :func:`lock`)."""
    if not states:
        return
    names = [f.name for f in fields(JobState)]
    await conn.execute(_SAVE_STATES, {name: [getattr(st, name) for st in states] for name in names})


async def stamp_metrics(
    conn: AsyncConnection[Any], job_ids: list[str], terminal: list[str]
) -> dict[str, tuple[str, datetime]]:
    """Mark the jobs that ended as counted in the metrics; (status, created_at) by job, for
    those stamped now (not ended, or counted already: left out)."""
    cur = await conn.execute(_STAMP_METRICS, {"jobs": sorted(set(job_ids)), "terminal": terminal})
    return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}


_CANCEL = """
UPDATE jobs SET cancelled_at = %(at)s, cancelled_by = COALESCE(cancelled_by, %(by)s)
WHERE job_id = %(job)s AND cancelled_at IS NULL
"""


async def record_cancelled(
    conn: AsyncConnection[Any], job_id: str, *, by: str, at: datetime
) -> None:
    """The seller cancelled the job (its decision folded); the first cancel's time stays.
    ``cancelled_by`` may have been set by the API's claim already."""
    await conn.execute(_CANCEL, {"job": job_id, "by": by, "at": at})
