"""GET /dashboard and GET /stats at scale (issue 30): latency from the summaries (migration
0038) against the exact SQL they replaced, and what the summaries' triggers cost the fold.

    python -m bench.dashboard [--jobs 1000000] [--days 365] [--rounds 30] [--fold-jobs 300]

Starts its own PostgreSQL (``DATABASE_URL`` to use another) in a temp folder, migrates it and
builds ``--jobs`` jobs spread evenly over ``--days`` days, each with one image and one product
(published for most), by set-based SQL with the summary triggers off, then recounts the
summaries once (``pod_rebuild_job_summaries``, as migration 0038 does on a deployment). It
then times ``ops_queries.dashboard`` (the route's body, without HTTP) for several windows and
``ops_queries.stats`` ``--rounds`` times each, p50 and p95, and the exact SQL of before 0038
for comparison (fewer rounds: it takes seconds). Last, it folds ``--fold-jobs`` jobs (request,
image, product, published: 4 events each) through the monitor's handler, with and without the
summary triggers, and prints the fold rate of each and the CPU time per event of PostgreSQL
and of the monitor's code (steadier than the rate on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
from psycopg_pool import AsyncConnectionPool

from bench.common import table
from devstack.launch.postgres import LocalPostgres
from services.api import ops_queries
from shared.platform.db import migrate, open_pool

# Jobs spread evenly from %(end)s back over %(days)s days: most completed after a few minutes,
# some partial, failed or cancelled, the newest ones still queued or processing.
_JOBS = """
INSERT INTO jobs (job_id, status, theme, style, niche, product_types, image_count,
                  expected_products, expected_publications, images_done, products_done,
                  publications_done, created_at, started_at, updated_at, finished_at)
SELECT 'bulk-' || %(tag)s || '-' || g, s.status, 'theme ' || (g %% 97), 'style', 'niche',
       ARRAY['mug'], 1, 1, 1,
       CASE WHEN s.status IN ('completed', 'partial') THEN 1 ELSE 0 END,
       CASE WHEN s.status IN ('completed', 'partial') THEN 1 ELSE 0 END,
       CASE WHEN s.status = 'completed' THEN 1 ELSE 0 END,
       t.created, t.created, t.created + t.took,
       CASE WHEN s.status IN ('completed', 'partial', 'failed', 'cancelled')
            THEN t.created + t.took END
FROM generate_series(1, %(n)s) g
CROSS JOIN LATERAL (
    SELECT %(end)s::timestamptz - make_interval(secs => g * %(days)s * 86400.0 / %(n)s)
               AS created,
           make_interval(secs => exp(ln(240) + 0.5 * random_normal())) AS took,
           random() AS r
) t
CROSS JOIN LATERAL (
    SELECT CASE WHEN g <= %(n)s / 5000 THEN (ARRAY['queued', 'processing'])[1 + g %% 2]
                WHEN t.r < 0.86 THEN 'completed' WHEN t.r < 0.92 THEN 'partial'
                WHEN t.r < 0.97 THEN 'failed' ELSE 'cancelled' END AS status
) s
"""
# An image some seconds after each job that has one, its product some seconds later, published
# a minute or more after that.
_IMAGES = """
INSERT INTO images (job_id, image_index, sha256, uri, width, height, prompt, title,
                    description, created_at)
SELECT job_id, 0, md5(job_id), 'file:///bulk.png', 8, 8, 'p', 't', 'd',
       created_at + make_interval(secs => exp(ln(25) + 0.4 * random_normal()))
FROM jobs WHERE job_id LIKE 'bulk-' || %(tag)s || '-%%' AND images_done > 0
"""
_PRODUCTS = """
INSERT INTO products (job_id, image_index, product_type, status, product_id, created_at,
                      published_at)
SELECT i.job_id, 0, 'mug', CASE WHEN j.publications_done > 0 THEN 'published' ELSE 'created' END,
       'p-' || i.job_id, p.at,
       CASE WHEN j.publications_done > 0
            THEN p.at + make_interval(secs => exp(ln(90) + 0.8 * random_normal())) END
FROM images i JOIN jobs j USING (job_id)
CROSS JOIN LATERAL (
    SELECT i.created_at + make_interval(secs => exp(ln(6) + 0.3 * random_normal())) AS at
) p
WHERE i.job_id LIKE 'bulk-' || %(tag)s || '-%%'
"""
_TRIGGERS = [
    f"ALTER TABLE {t} {{}} TRIGGER {t}_summary_{kind}"
    for t, kinds in (
        ("jobs", ("ins", "upd", "del")),
        ("images", ("ins_del", "upd")),
        ("products", ("ins_del", "upd")),
    )
    for kind in kinds
]


def set_triggers(conn: psycopg.Connection[object], enabled: bool) -> None:
    """Switch the summaries' row triggers on or off (the tables' owner may)."""
    for sql in _TRIGGERS:
        conn.execute(sql.format("ENABLE" if enabled else "DISABLE").encode())


def build(url: str, jobs: int, days: float, *, tag: str = "b", end: datetime | None = None) -> None:
    """Add ``jobs`` jobs (with images and products) over ``days`` days up to ``end``, then
    recount the summaries: set-based, triggers off meanwhile."""
    with psycopg.connect(url, autocommit=True) as conn:
        set_triggers(conn, False)
        try:
            params = {"tag": tag, "n": jobs, "days": days, "end": end or datetime.now(UTC)}
            for sql in (_JOBS, _IMAGES, _PRODUCTS):
                conn.execute(sql.encode(), params)
        finally:
            set_triggers(conn, True)
        conn.execute("SELECT pod_rebuild_job_summaries()")
        conn.execute("ANALYZE jobs, images, products, job_hours, job_hour_durations")


def _ms(samples: list[float]) -> tuple[str, str]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:.1f}", f"{p95 * 1000:.1f}"


async def _time(call: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    await call()  # warm the cache and the plans
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


async def reads(url: str, rounds: int, exact_rounds: int) -> list[list[str]]:
    pool = await open_pool(url, max_size=2)
    rows: list[list[str]] = []
    try:
        for hours in (1, 24, 168, 720):
            samples = await _time(functools.partial(ops_queries.dashboard, pool, hours), rounds)
            view = await ops_queries.dashboard(pool, hours)
            rows.append([f"/dashboard?hours={hours}", str(view.overview.total_jobs), *_ms(samples)])
            exact = await _time(
                functools.partial(ops_queries.dashboard, pool, hours, exact_max_jobs=10**9),
                exact_rounds,
            )
            rows.append(["  durations exact from the rows", "", *_ms(exact)])
        samples = await _time(lambda: ops_queries.stats(pool, 30.0, [], []), rounds)
        view_stats = await ops_queries.stats(pool, 30.0, [], [])
        rows.append(["/stats", str(view_stats.total_jobs), *_ms(samples)])
        async with pool.connection() as conn:
            old = await _time(
                lambda: conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"),
                exact_rounds,
            )
        rows.append(["  jobs GROUP BY status (before 0038)", "", *_ms(old)])
    finally:
        await pool.close()
    return rows


_BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
"""


async def _cpu(pool: AsyncConnectionPool, local: bool) -> tuple[float, float]:
    """CPU seconds so far of the database's client backends (the fold's connections: the
    triggers run in them; only when PostgreSQL runs on this machine) and of this process."""
    own = psutil.Process().cpu_times()
    pg = 0.0
    if local:
        async with pool.connection() as conn:
            pids = [r[0] for r in await (await conn.execute(_BACKENDS)).fetchall()]
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            pg += t.user + t.system
    return pg, own.user + own.system


async def _fold_rate(url: str, jobs: int, local: bool) -> tuple[float, float, float]:
    """Events folded per second, and CPU ms per event in PostgreSQL and in the monitor's code:
    ``jobs`` jobs of 4 events (request, image, product, published), through its handler."""
    from services.monitor.handler import MonitorHandler
    from shared.contract.events import (
        Event,
        JobRequested,
        JobRequestedPayload,
        ProductPublished,
        ProductPublishedPayload,
    )
    from shared.pipeline.runner import MessageContext
    from tests.support.events import image, product

    events: list[Event] = []
    for n in range(jobs):
        job = JobRequested(
            job_id=f"fold-{time.time_ns()}-{n}",
            producer="api",
            payload=JobRequestedPayload(
                theme="t", style="s", niche="n", product_types=["mug"], count=1,
                auto_publish=True,
            ),
        )  # fmt: skip
        published = ProductPublished(
            job_id=job.job_id,
            producer="publisher",
            payload=ProductPublishedPayload(
                image_index=0, product_type="mug", product_id="prod-0-mug", shop_id="1"
            ),
        )
        events += [job, image(job, 0), product(job, 0, "mug"), published]
    pool = await open_pool(url, max_size=4)
    try:
        handler = MonitorHandler(pool)

        async def one(n: int, e: Event) -> None:
            ctx = MessageContext(topic="t", partition=0, offset=n, attempt=0, instance_id="b")
            await handler(e, ctx)

        # The connections are open before the first reading, so their CPU counts whole.
        await asyncio.gather(*(one(i, e) for i, e in enumerate(events[:8])))
        pg0, own0 = await _cpu(pool, local)
        t0 = time.perf_counter()
        # The runner's slots: many events in flight, which the batcher folds together.
        for start in range(8, len(events), 64):
            chunk = events[start : start + 64]
            await asyncio.gather(*(one(start + i, e) for i, e in enumerate(chunk)))
        took = time.perf_counter() - t0
        pg1, own1 = await _cpu(pool, local)
        folded = len(events) - 8
        return folded / took, (pg1 - pg0) * 1000 / folded, (own1 - own0) * 1000 / folded
    finally:
        await pool.close()


def fold_rates(url: str, jobs: int, local: bool = False) -> list[list[str]]:
    """The fold with the summary triggers off and on, twice each, alternating."""
    rows = []
    with psycopg.connect(url, autocommit=True) as conn:
        for label, enabled in (("triggers off", False), ("triggers on", True)) * 2:
            set_triggers(conn, enabled)
            rate, pg_ms, own_ms = asyncio.run(_fold_rate(url, jobs, local))
            rows.append([f"fold, summary {label}", f"{rate:.0f}", f"{pg_ms:.2f}", f"{own_ms:.2f}"])
        set_triggers(conn, True)
    return rows


@contextmanager
def _database() -> Iterator[tuple[str, bool]]:
    """The database's URL, and whether this started it (on this machine: its CPU is read)."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given, False
        return
    with tempfile.TemporaryDirectory(prefix="pod-bench-dash-") as tmp:
        pg = LocalPostgres(Path(tmp), port=int(os.environ.get("BENCH_PG_PORT", "25199"))).start()
        try:
            yield pg.url, True
        finally:
            pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--exact-rounds", type=int, default=3)
    ap.add_argument("--fold-jobs", type=int, default=300)
    args = ap.parse_args()
    with _database() as (url, local):
        migrate(url)
        t0 = time.perf_counter()
        build(url, args.jobs, args.days)
        built_s = time.perf_counter() - t0
        rows = asyncio.run(reads(url, args.rounds, args.exact_rounds))
        fold = fold_rates(url, args.fold_jobs, local)
    load = os.getloadavg()[0]
    print(f"built {args.jobs} jobs over {args.days:g} days in {built_s:.0f} s (load {load:.1f})")
    print(table("reads (ms)", ["route", "jobs", "p50", "p95"], rows))
    print(
        table("fold", ["case", "events/s", "postgres CPU ms/event", "monitor CPU ms/event"], fold)
    )


if __name__ == "__main__":
    main()
