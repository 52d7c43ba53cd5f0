"""Disk per job, measured on real rows, and the disk each retention setting implies.

    python bench/retention.py [--jobs 200] [--jobs-per-day 3000]

Starts its own stack (as bench/pipeline.py does, simulators at zero latency), submits jobs
through the API (each with an Idempotency-Key, as a careful client sends them), waits until
they are published and folded, then reads each table's size on disk (heap, TOAST and indexes,
every partition: ``pg_total_relation_size`` over ``pg_partition_tree``) and its rows, and prints
bytes per row, rows per job, and the disk each retention setting of the monitor implies at
``--jobs-per-day``. A partitioned table keeps up to one period more than its retention (a
partition goes once all of it has expired): that margin is in the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
import psycopg

from bench.common import table
from bench.pipeline import job_events, wait_until_ready
from devstack.stack import Stack, isolated_settings
from services.monitor.settings import MonitorSettings

_SIZE = """
SELECT (SELECT count(*) FROM {table}),
       COALESCE((SELECT sum(pg_total_relation_size(relid))
                 FROM pg_partition_tree(%(table)s::regclass) WHERE isleaf),
                pg_total_relation_size(%(table)s::regclass)),
       COALESCE((SELECT sum(pg_relation_size(relid))
                 FROM pg_partition_tree(%(table)s::regclass) WHERE isleaf),
                pg_relation_size(%(table)s::regclass))
"""
# A plain table is no partition tree: its own size then.
# Distinct series written per minute: what metrics_minute grows by each minute at a steady rate.
_SERIES_PER_MINUTE = """
SELECT avg(n) FROM (SELECT minute, count(*) AS n FROM metrics_minute GROUP BY minute) m
"""
TABLES = ("job_events", "metrics_minute", "side_effects", "api_idempotency", "dead_letters",
          "jobs", "images", "products")  # fmt: skip


def submit(stack: Stack, jobs: int) -> set[str]:
    url = f"http://127.0.0.1:{stack.settings.api_port}/jobs"
    events = job_events(uuid.uuid4().hex[:6], jobs)

    def post(n: int) -> str:
        with httpx.Client(timeout=30) as client:
            body = events[n].payload.as_request()
            resp = client.post(url, json=body, headers={"Idempotency-Key": f"k-{n}-{url}"})
        resp.raise_for_status()
        return str(resp.json()["jobId"])

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(post, range(jobs)))


def settle(url: str, ids: set[str], timeout: float) -> int:
    """Until every job has ended in the database and the log stops growing, or ``timeout``;
    how many ended (the figures are per job submitted: say so when some did not end)."""
    deadline = time.monotonic() + timeout
    last = -1
    ended = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('completed', 'partial', 'failed')),"
                " (SELECT count(*) FROM job_events) FROM jobs WHERE job_id = ANY(%s)",
                (list(ids),),
            ).fetchone()
            assert row is not None
            ended = int(row[0])
            if ended == len(ids) and row[1] == last:
                break
            last = row[1]
            time.sleep(2.0)
    return ended


def measure(url: str) -> tuple[dict[str, tuple[int, int, int]], float]:
    """Per table (rows, total bytes, heap bytes), and metrics series per minute."""
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        for name in TABLES:
            query = _SIZE.format(table=name)
            row = conn.execute(query.encode(), {"table": name}).fetchone()
            assert row is not None
            out[name] = (int(row[0]), int(row[1] or 0), int(row[2] or 0))
        series = conn.execute(_SERIES_PER_MINUTE).fetchone()
    return out, float(series[0] if series and series[0] else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--jobs-per-day", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=1200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pod-bench-") as tmp:
        state = Path(tmp)
        env = {
            "SIM_LATENCY_MS": "0",
            "SIM_FAILURE_RATE": "0",
            "PRINT_MAX_UPSCALE": "1",
            "PRINT_MIN_DPI": "0",
            "IMAGE_WIDTH": "64",
            "IMAGE_HEIGHT": "64",
            "IMAGE_STORAGE_DIR": str(state / "images"),
            "LOG_LEVEL": "WARNING",
        }
        stack = Stack(isolated_settings(state), extra_env=env).start()
        try:
            wait_until_ready(stack)
            started = time.monotonic()
            ids = submit(stack, args.jobs)
            ended = settle(stack.database_url, ids, args.timeout)
            minutes = (time.monotonic() - started) / 60
            sizes, series = measure(stack.database_url)
        finally:
            stack.stop()
    jobs: int = args.jobs
    rows = []
    for name, (n, total, heap) in sizes.items():
        rows.append([name, f"{n:,}", f"{n / jobs:.2f}", f"{total / max(n, 1):,.0f}",
                     f"{heap / max(n, 1):,.0f}", f"{total / jobs:,.0f}"])  # fmt: skip
    print(table(f"Disk per job ({jobs} jobs x 1 image x 1 t-shirt, autoPublish, {ended} ended,"
                f" {minutes:.1f} min)",
                ["table", "rows", "rows/job", "B/row", "heap B/row", "B/job"], rows))  # fmt: skip
    print()
    s = MonitorSettings()
    day: int = args.jobs_per_day
    gib = 1024**3

    def per_job(name: str) -> float:
        return float(sizes[name][1]) / jobs

    events_days = s.job_events_retention_days + 31  # a month's partition goes once all expired
    metric_row = sizes["metrics_minute"][1] / max(sizes["metrics_minute"][0], 1)
    metric_days = s.metrics_retention_hours / 24 + 1
    kept = [
        ["JOB_EVENTS_RETENTION_DAYS", f"{s.job_events_retention_days:g}",
         f"{events_days:g} d x {day} x {per_job('job_events'):,.0f} B",
         f"{events_days * day * per_job('job_events') / gib:.2f}"],
        ["METRICS_RETENTION_HOURS", f"{s.metrics_retention_hours:g}",
         f"{metric_days:g} d x 1440 min x {series:.0f} series x {metric_row:,.0f} B",
         f"{metric_days * 1440 * series * metric_row / gib:.2f}"],
        ["LEDGER_RETENTION_DAYS", f"{s.ledger_retention_days:g}",
         f"{s.ledger_retention_days:g} d x {day} x {per_job('side_effects'):,.0f} B",
         f"{s.ledger_retention_days * day * per_job('side_effects') / gib:.2f}"],
        ["IDEMPOTENCY_RETENTION_DAYS", f"{s.idempotency_retention_days:g}",
         f"{s.idempotency_retention_days:g} d x {day} x {per_job('api_idempotency'):,.0f} B",
         f"{s.idempotency_retention_days * day * per_job('api_idempotency') / gib:.2f}"],
        ["summaries (jobs, images, products: kept)", "forever",
         f"365 d x {day} x {sum(per_job(t) for t in ('jobs', 'images', 'products')):,.0f} B",
         f"{365 * day * sum(per_job(t) for t in ('jobs', 'images', 'products')) / gib:.2f}"],
    ]  # fmt: skip
    print(table(f"Disk each setting implies at {day:,} jobs a day (defaults)",
                ["setting", "value", "computed as", "GiB"], kept))  # fmt: skip


if __name__ == "__main__":
    main()
