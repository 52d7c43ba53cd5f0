"""The job summaries (migration 0038) against an exact recount of the rows: after the monitor
folds a mixed run, after row changes the fold never makes, and when built by the migration on a
database that already has jobs."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from services.monitor.handler import MonitorHandler
from shared.adapters.store import job_summaries
from shared.adapters.store.job_summaries import Histogram, bucket_bounds, bucket_of
from shared.contract.events import (
    DecisionAction,
    Event,
    JobRequested,
    JobRequestedPayload,
    ProductPublished,
    ProductPublishedPayload,
    SellerDecision,
    SellerDecisionPayload,
    StageFailed,
    StageFailedPayload,
)
from shared.pipeline.runner import MessageContext
from shared.platform.db import migrate, open_pool
from tests.shared.adapters.store.conftest import DatabaseBefore
from tests.support.events import image, product
from tests.support.infra import unique

# The exact figures, recounted from the rows as the dashboard computed them before 0038.
_RECOUNT_HOURS = """
SELECT date_trunc('hour', created_at, 'UTC') AS hour, status, count(*) AS jobs,
       sum(images_done) AS images, sum(products_done) AS products,
       sum(publications_done) AS published
FROM jobs GROUP BY 1, 2
"""
_RECOUNT_DURATIONS = """
SELECT hour, metric, pod_duration_bucket(d) AS bucket, count(*) AS n, sum(d) AS sum
FROM (
    SELECT date_trunc('hour', created_at, 'UTC') AS hour, 'job' AS metric,
           GREATEST(0, extract(epoch FROM finished_at - created_at))::float8 AS d
    FROM jobs WHERE finished_at IS NOT NULL
    UNION ALL
    SELECT date_trunc('hour', j.created_at, 'UTC'), 'generation',
           GREATEST(0, extract(epoch FROM i.created_at - j.created_at))::float8
    FROM images i JOIN jobs j USING (job_id)
    UNION ALL
    SELECT date_trunc('hour', j.created_at, 'UTC'), 'product',
           GREATEST(0, extract(epoch FROM p.created_at - i.created_at))::float8
    FROM products p JOIN images i USING (job_id, image_index) JOIN jobs j USING (job_id)
    WHERE p.product_id IS NOT NULL
    UNION ALL
    SELECT date_trunc('hour', j.created_at, 'UTC'), 'publish',
           GREATEST(0, extract(epoch FROM p.published_at - p.created_at))::float8
    FROM products p JOIN jobs j USING (job_id) WHERE p.published_at IS NOT NULL
) d GROUP BY 1, 2, 3
"""
# The summaries as they stand: compacted rows plus pending deltas.
_SUMMARY_HOURS = """
SELECT hour, status, sum(jobs) AS jobs, sum(images) AS images, sum(products) AS products,
       sum(published) AS published
FROM (SELECT hour, status, jobs, images, products, published FROM job_hours
      UNION ALL
      SELECT hour, status, jobs, images, products, published FROM job_summary_deltas
      WHERE status IS NOT NULL) s
GROUP BY 1, 2
"""
_SUMMARY_DURATIONS = """
SELECT hour, metric, bucket, sum(n) AS n, sum(sum) AS sum
FROM (SELECT hour, metric, bucket, n, sum FROM job_hour_durations
      UNION ALL
      SELECT hour, metric, bucket, n, sum FROM job_summary_deltas WHERE metric IS NOT NULL) d
GROUP BY 1, 2, 3
"""


_SUMMARY_DAYS = """
SELECT day, metric, bucket, sum(n) AS n, sum(sum) AS sum
FROM (SELECT day, metric, bucket, n, sum FROM job_day_durations
      UNION ALL
      SELECT date_trunc('day', hour, 'UTC'), metric, bucket, n, sum FROM job_summary_deltas
      WHERE metric IS NOT NULL) d
GROUP BY 1, 2, 3
"""


def _hours(conn: psycopg.Connection[Any], sql: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """(hour, status) -> (jobs, images, products, published), without rows of nothing."""
    out = {(r[0], r[1]): tuple(int(v) for v in r[2:]) for r in conn.execute(sql)}
    return {k: v for k, v in out.items() if any(v)}


def _durations(conn: psycopg.Connection[Any], sql: str) -> dict[tuple[Any, ...], list[float]]:
    """(hour or day, metric, bucket) -> [n, sum], without empty buckets."""
    return {(r[0], r[1], r[2]): [int(r[3]), float(r[4])] for r in conn.execute(sql) if r[3]}


def _by_day(hours: dict[tuple[Any, ...], list[float]]) -> dict[tuple[Any, ...], list[float]]:
    out: dict[tuple[Any, ...], list[float]] = {}
    for (hour, metric, bucket), (n, total) in hours.items():
        day = hour.astimezone(UTC).replace(hour=0)
        got = out.setdefault((day, metric, bucket), [0, 0.0])
        got[0] += n
        got[1] += total
    return {k: v for k, v in out.items() if v[0]}


def assert_exact(url: str) -> None:
    """The summaries equal a recount of the rows, pending deltas included and then compacted."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(2):
            assert _hours(conn, _SUMMARY_HOURS) == _hours(conn, _RECOUNT_HOURS)
            recount = _durations(conn, _RECOUNT_DURATIONS)
            for summary, exact in (
                (_durations(conn, _SUMMARY_DURATIONS), recount),
                (_durations(conn, _SUMMARY_DAYS), _by_day(recount)),
            ):
                assert summary.keys() == exact.keys()
                assert {k: v[0] for k, v in summary.items()} == {k: v[0] for k, v in exact.items()}
                sums = {k: v[1] for k, v in summary.items()}
                assert sums == pytest.approx({k: v[1] for k, v in exact.items()}, abs=1e-6)
            by_status: dict[str, int] = dict(
                conn.execute("SELECT status, count(*) FROM jobs GROUP BY status")
            )
            counted: dict[str, int] = dict(
                conn.execute(
                    "SELECT status, sum(jobs) FROM (SELECT status, jobs FROM job_status_counts"
                    " UNION ALL SELECT status, jobs FROM job_summary_deltas"
                    " WHERE status IS NOT NULL) s GROUP BY status HAVING sum(jobs) <> 0"
                )
            )
            assert counted == by_status
            conn.execute("SELECT pod_compact_job_summaries()")
        assert conn.execute("SELECT count(*) FROM job_summary_deltas").fetchone() == (0,)


def _request(t0: datetime, count: int = 2, **more: Any) -> JobRequested:
    return JobRequested(
        job_id=unique("sum"),
        producer="api",
        occurred_at=t0,
        payload=JobRequestedPayload(
            theme="t", style="s", niche="n", product_types=["mug"], count=count, **more
        ),
    )


def _at(event: Event, t: datetime) -> Event:
    return event.model_copy(update={"occurred_at": t})


def _mixed_run(t0: datetime) -> list[Event]:
    """Jobs created in three hours: completed with a product published, one image failed (a
    partial), one failed, one cancelled, one left queued, one image regenerated."""
    events: list[Event] = []
    for h, base in enumerate((t0 - timedelta(hours=2), t0 - timedelta(hours=1), t0)):
        done = _request(base, auto_publish=True)
        events += [done, _at(image(done, 0), base + timedelta(seconds=3 + h))]
        events += [_at(image(done, 1), base + timedelta(seconds=5))]
        events += [_at(product(done, 0, "mug"), base + timedelta(seconds=9))]
        events += [_at(product(done, 1, "mug"), base + timedelta(seconds=11.5))]
        published = ProductPublished(
            job_id=done.job_id,
            producer="publisher",
            payload=ProductPublishedPayload(
                image_index=0, product_type="mug", product_id="prod-0-mug", shop_id="1"
            ),
        )
        events.append(_at(published, base + timedelta(seconds=70)))
        partial = _request(base + timedelta(minutes=5))
        events += [partial, _at(image(partial, 0), base + timedelta(minutes=5, seconds=2))]
        events += [_at(product(partial, 0, "mug"), base + timedelta(minutes=5, seconds=8))]
        events.append(
            _at(
                partial.derive(
                    StageFailed,
                    StageFailedPayload(
                        stage="generator", error_class="Refused", message="x", image_index=1
                    ),
                    producer="generator",
                    key="failed:1",
                ),
                base + timedelta(minutes=6),
            )
        )
        failed = _request(base + timedelta(minutes=7), count=1)
        events += [
            failed,
            _at(
                failed.derive(
                    StageFailed,
                    StageFailedPayload(stage="generator", error_class="Refused", message="x"),
                    producer="generator",
                    key="failed",
                ),
                base + timedelta(minutes=8),
            ),
        ]
        cancelled = _request(base + timedelta(minutes=9), count=1)
        decision = SellerDecision(
            job_id=cancelled.job_id,
            producer="api",
            payload=SellerDecisionPayload(
                decision_id=uuid.uuid4(), action=DecisionAction.CANCEL, decided_by="t"
            ),
        )
        events += [cancelled, _at(decision, base + timedelta(minutes=10))]
        events.append(_request(base + timedelta(minutes=11)))  # stays queued
        regenerated = _request(base + timedelta(minutes=12), count=1)
        events += [regenerated, _at(image(regenerated, 0), base + timedelta(minutes=12, seconds=4))]
        events += [_at(product(regenerated, 0, "mug"), base + timedelta(minutes=12, seconds=6))]
        events += [_at(image(regenerated, 0, 1), base + timedelta(minutes=13))]
    return events


async def _fold(url: str, events: list[Event], batches: int) -> None:
    pool = await open_pool(url, max_size=4)
    try:
        handler = MonitorHandler(pool)
        for n, e in enumerate(events):
            ctx = MessageContext(topic="t", partition=0, offset=n, attempt=0, instance_id="t")
            await handler(e, ctx)
            if batches and n % batches == 0:
                async with pool.connection() as conn:
                    await job_summaries.compact(conn)
    finally:
        await pool.close()


def test_summaries_equal_a_recount_after_a_mixed_run(migrated_db: str) -> None:
    events = _mixed_run(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))
    # A redelivery: part of the run folded again (the fold counts an event once).
    asyncio.run(_fold(migrated_db, events, batches=7))
    asyncio.run(_fold(migrated_db, events[5:20], batches=0))
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        statuses = {
            r[0]
            for r in conn.execute(
                "SELECT status FROM jobs WHERE job_id = ANY(%s)",
                ([e.job_id for e in events],),
            )
        }
    assert {"completed", "partial", "failed", "queued"} <= statuses, statuses
    assert_exact(migrated_db)


def test_summaries_follow_changes_the_fold_never_makes(migrated_db: str) -> None:
    """A job's creation time moved, an image's time changed, a product deleted, a job deleted
    (its images and products go with it): each moves or removes what it counted."""
    events = _mixed_run(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8))
    asyncio.run(_fold(migrated_db, events, batches=0))
    ids = sorted({e.job_id for e in events})
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        # Jobs with images and products (published ones first), then the others.
        made = [
            r[0]
            for r in conn.execute(
                "SELECT job_id FROM jobs WHERE job_id = ANY(%s) AND products_done > 0"
                " ORDER BY publications_done DESC, job_id",
                (ids,),
            )
        ]
        others = [i for i in ids if i not in made]
        assert len(made) >= 5, made
        conn.execute(
            "UPDATE jobs SET created_at = created_at - interval '3 hours' WHERE job_id = %s",
            (made[0],),
        )
        conn.execute(
            "UPDATE images SET created_at = created_at + interval '7 minutes' WHERE job_id = %s",
            (made[1],),
        )
        conn.execute(
            "UPDATE products SET published_at = NULL WHERE job_id = %s AND published_at"
            " IS NOT NULL",
            (made[2],),
        )
        conn.execute("DELETE FROM products WHERE job_id = %s", (made[3],))
        conn.execute("DELETE FROM images WHERE job_id = %s", (made[4],))
        conn.execute("DELETE FROM jobs WHERE job_id = ANY(%s)", ([*made[5:], *others[:3]],))
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE job_id = %s", (others[4],))
    assert_exact(migrated_db)


def test_the_migration_summarises_the_jobs_already_there(
    database_before: DatabaseBefore,
) -> None:
    url = database_before(38)
    asyncio.run(_fold(url, _mixed_run(datetime.now(UTC) - timedelta(days=2)), batches=0))
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (18,)
    assert "0038_job_summaries.sql" in migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM job_summary_deltas").fetchone() == (0,)
        assert conn.execute("SELECT sum(jobs) FROM job_status_counts").fetchone() == (18,)
    assert_exact(url)
    # A rebuild from the rows gives the same; a TRUNCATE (no row triggers) recounts.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pod_rebuild_job_summaries()")
    assert_exact(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE products")
    assert_exact(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs CASCADE")
        assert conn.execute("SELECT sum(jobs) FROM job_status_counts").fetchone() == (None,)
    assert_exact(url)


@pytest.mark.parametrize("shape", ["lognormal", "bimodal", "uniform"])
def test_percentiles_from_buckets_are_within_a_bucket_of_exact(shape: str) -> None:
    rnd = random.Random(shape)
    if shape == "lognormal":
        values = [rnd.lognormvariate(3, 1.2) for _ in range(200_000)]
    elif shape == "bimodal":
        values = [
            rnd.gauss(8, 1) if rnd.random() < 0.7 else rnd.gauss(600, 60) for _ in range(200_000)
        ]
    else:
        values = [rnd.uniform(0, 5) for _ in range(200_000)]
    values = [max(0.0, v) for v in values]
    h = Histogram()
    for v in values:
        b = bucket_of(v)
        h.buckets[b] = h.buckets.get(b, 0) + 1
    h.count, h.sum = len(values), sum(values)
    h.low, h.high = min(values), max(values)
    ordered = sorted(values)

    def exact(q: float) -> float:  # percentile_cont
        rank = q * (len(ordered) - 1)
        lo = int(rank)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)

    for q in (0.5, 0.95, 0.99):
        want = exact(q)
        low, high = bucket_bounds(bucket_of(want))
        got = h.percentile(q)
        assert got is not None
        assert abs(got - want) <= high - low, (q, got, want)
    assert h.min == min(values) and h.max == max(values)
