"""Jobs summarised ahead of time (migration 0038): jobs per status, and per creation hour jobs
per status, their images/products/publications done and duration histograms.

Triggers on ``jobs``, ``images`` and ``products`` append what each change adds or takes to
``job_summary_deltas`` in the change's own transaction; :func:`compact` moves the deltas into
the summary tables (the monitor calls it every tick). Every read here adds the pending deltas
to the summaries in one statement, so it is exact whenever it runs.

Durations are counted in log-spaced buckets :data:`BUCKET_RATIO` wide (bucket ``b`` holds
``[RATIO**b, RATIO**(b+1))`` seconds, everything under :data:`BUCKET_FLOOR_S` in the lowest):
a percentile read from them (:meth:`Histogram.percentile`) is within one bucket's width of
the exact one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row

# As pod_duration_bucket() in migration 0038: change both or neither.
BUCKET_RATIO = 1.05
BUCKET_FLOOR_S = 0.001
_LOWEST = math.floor(math.log(BUCKET_FLOOR_S) / math.log(BUCKET_RATIO))

# Durations the summaries keep: job (created -> finished), generation (request -> image),
# product (image -> product), publish (product -> published).
METRICS = ("job", "generation", "product", "publish")

_STATUS_COUNTS = """
SELECT status, sum(jobs)::bigint AS jobs FROM (
    SELECT status, jobs FROM job_status_counts
    UNION ALL
    SELECT status, jobs FROM job_summary_deltas WHERE status IS NOT NULL
) s GROUP BY status
"""

_WINDOW_STATUSES = """
SELECT status, sum(jobs)::bigint AS jobs, sum(images)::bigint AS images,
       sum(products)::bigint AS products, sum(published)::bigint AS published
FROM (
    SELECT status, jobs, images, products, published FROM job_hours WHERE hour >= %(since)s
    UNION ALL
    SELECT status, jobs, images, products, published FROM job_summary_deltas
    WHERE status IS NOT NULL AND hour >= %(since)s
) s GROUP BY status
"""

# Whole days (UTC) of the window from their day rows, its first and last part days from their
# hours. %(since)s is a whole hour; the current day is read by the hour (its rows still grow).
_WINDOW_DURATIONS = """
WITH span AS (
    SELECT CASE WHEN date_trunc('day', %(since)s::timestamptz, 'UTC') = %(since)s
                THEN %(since)s::timestamptz
                ELSE date_trunc('day', %(since)s::timestamptz, 'UTC') + interval '24 hours'
           END AS first_day,
           date_trunc('day', now(), 'UTC') AS today
)
SELECT metric, bucket, sum(n)::bigint AS n, sum(sum) AS sum, min(min) AS min, max(max) AS max
FROM (
    SELECT metric, bucket, n, sum, min, max FROM job_hour_durations, span
    WHERE hour >= %(since)s AND hour < span.first_day
    UNION ALL
    SELECT metric, bucket, n, sum, min, max FROM job_hour_durations, span
    WHERE hour >= GREATEST(span.today, span.first_day)
    UNION ALL
    SELECT metric, bucket, n, sum, min, max FROM job_day_durations, span
    WHERE day >= span.first_day AND day < span.today
    UNION ALL
    SELECT metric, bucket, n, sum, min, max FROM job_summary_deltas
    WHERE metric IS NOT NULL AND hour >= %(since)s
) d GROUP BY metric, bucket HAVING sum(n) > 0 ORDER BY metric, bucket
"""

_COMPACT = "SELECT pod_compact_job_summaries()"
_REBUILD = "SELECT pod_rebuild_job_summaries()"


class StatusTotals(TypedDict):
    """Jobs of one status created in a window, and their images, products and publications."""

    status: str
    jobs: int
    images: int
    products: int
    published: int


class _StatusCount(TypedDict):
    status: str
    jobs: int


class _BucketRow(TypedDict):
    metric: str
    bucket: int
    n: int
    sum: float
    min: float | None
    max: float | None


def bucket_of(seconds: float) -> int:
    """The bucket a duration falls in (as the database computes it)."""
    clamped = min(max(seconds, BUCKET_FLOOR_S), 1e12)
    return math.floor(math.log(clamped) / math.log(BUCKET_RATIO))


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """``[low, high)`` of a bucket in seconds (the lowest starts at 0)."""
    low = 0.0 if bucket <= _LOWEST else BUCKET_RATIO**bucket
    return low, BUCKET_RATIO ** (bucket + 1)


@dataclass
class Histogram:
    """One duration's buckets over a window: count and sum exact, min, max and percentiles
    within a bucket's width."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    sum: float = 0.0
    low: float | None = None  # the least counted in the lowest non-empty bucket
    high: float | None = None  # the greatest counted in the highest non-empty bucket

    @property
    def min(self) -> float | None:
        if not self.buckets:
            return None
        lo, hi = bucket_bounds(min(self.buckets))
        # A bucket's recorded least is not raised when a duration leaves it: keep it inside.
        return lo if self.low is None else min(max(self.low, lo), hi)

    @property
    def max(self) -> float | None:
        if not self.buckets:
            return None
        lo, hi = bucket_bounds(max(self.buckets))
        return hi if self.high is None else max(min(self.high, hi), lo)

    @property
    def avg(self) -> float | None:
        return self.sum / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) as ``percentile_cont`` gives it (interpolated between the
        two durations around its rank), each of those read from its bucket: within a bucket's
        width (5 %) of the exact one."""
        if not self.count:
            return None
        rank = q * (self.count - 1)
        below = math.floor(rank)
        low = self._ranked(below)
        high = self._ranked(min(below + 1, self.count - 1))
        return low + (high - low) * (rank - below)

    def _ranked(self, k: int) -> float:
        """The ``k``-th duration (0-based, ascending): the ``n`` of a bucket spread evenly over
        it, kept within the least and greatest counted."""
        seen = 0
        least, greatest = self.min, self.max
        assert least is not None and greatest is not None  # only called with buckets
        for bucket in sorted(self.buckets):
            n = self.buckets[bucket]
            if k < seen + n:
                lo, hi = bucket_bounds(bucket)
                return min(max(lo + (hi - lo) * (k - seen + 0.5) / n, least), greatest)
            seen += n
        return greatest


async def status_counts(conn: AsyncConnection[Any]) -> dict[str, int]:
    """Jobs per status, the whole table."""
    async with conn.cursor(row_factory=class_row(_StatusCount)) as cur:
        await cur.execute(_STATUS_COUNTS)
        return {r["status"]: int(r["jobs"]) for r in await cur.fetchall() if r["jobs"]}


async def window_statuses(conn: AsyncConnection[Any], since: datetime) -> list[StatusTotals]:
    """Per status, the jobs created in the hours from ``since`` (a whole hour) on."""
    async with conn.cursor(row_factory=class_row(StatusTotals)) as cur:
        await cur.execute(_WINDOW_STATUSES, {"since": since})
        return [r for r in await cur.fetchall() if r["jobs"]]


async def window_durations(conn: AsyncConnection[Any], since: datetime) -> dict[str, Histogram]:
    """Each duration's histogram over the jobs created in the hours from ``since`` on."""
    out = {metric: Histogram() for metric in METRICS}
    async with conn.cursor(row_factory=class_row(_BucketRow)) as cur:
        await cur.execute(_WINDOW_DURATIONS, {"since": since})
        rows = await cur.fetchall()
    for r in rows:
        h = out.setdefault(r["metric"], Histogram())
        h.buckets[int(r["bucket"])] = int(r["n"])
        h.count += int(r["n"])
        h.sum += float(r["sum"])
    # Rows come by bucket: the first and last of each metric hold its least and greatest.
    for r in rows:
        h = out[r["metric"]]
        if int(r["bucket"]) == min(h.buckets) and h.low is None:
            h.low = r["min"]
        if int(r["bucket"]) == max(h.buckets):
            h.high = r["max"]
    return out


async def compact(conn: AsyncConnection[Any]) -> int:
    """Move the pending deltas into the summaries; how many moved (0 while another monitor
    compacts)."""
    cur = await conn.execute(_COMPACT)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def rebuild(conn: AsyncConnection[Any]) -> int:
    """Recount every summary from the rows (writes to jobs wait meanwhile); the number of
    (hour, status) rows."""
    cur = await conn.execute(_REBUILD)
    row = await cur.fetchone()
    return int(row[0]) if row else 0
