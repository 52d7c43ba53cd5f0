"""End-to-end pipeline benchmark: jobs/s through every stage and per-hop latency (p50/p99),
with the vendor simulators at zero latency, and the raw broker baseline measured in the same run.

    python bench/pipeline.py [--jobs 500] [--image-size 64]

Starts its own stack (broker, PostgreSQL, simulators, the five services) in a temp folder.
Jobs are produced straight onto ``jobs.requested.normal`` (count 1, one t-shirt, autoPublish),
and the run ends when every job's ``product.published`` event is on the ``published`` topic.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from confluent_kafka import Consumer, Producer

from bench.broker import measure, render
from bench.common import table
from shared.events import JobRequested, JobRequestedPayload, parse_event
from shared.stack import Stack, isolated_settings
from shared.topics import IMAGES_GENERATED, JOBS_REQUESTED, PRODUCTS_CREATED, PUBLISHED

HOPS = [
    ("request -> image", "job.requested", "image.generated"),
    ("image -> product", "image.generated", "product.created"),
    ("product -> published", "product.created", "product.published"),
    ("request -> published", "job.requested", "product.published"),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(jobs: int, image_size: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pod-bench-") as tmp:
        state = Path(tmp)
        settings = isolated_settings(state, worker_count=workers)
        env = {
            "SIM_LATENCY_MS": "0",
            "SIM_FAILURE_RATE": "0",
            "SIM_PRINTIFY_RPM": "100000000",
            "PRINTIFY_REQUESTS_PER_MINUTE": "100000000",
            "PRINTIFY_PUBLISHES_PER_WINDOW": "100000000",
            "SIM_PRINTIFY_PUBLISH_LIMIT": "100000000",
            "IMAGE_WIDTH": str(image_size),
            "IMAGE_HEIGHT": str(image_size),
            "IMAGE_STORAGE_DIR": str(state / "images"),
            "MAX_IN_FLIGHT": "128",
            "LOG_LEVEL": "WARNING",
        }
        stack = Stack(settings, extra_env=env).start()
        try:
            baseline = measure(stack.bootstrap, messages=100_000)
            result = drive(stack.bootstrap, jobs)
        finally:
            stack.stop()
    print(render(baseline))
    print()
    elapsed, latencies = result
    rate = jobs / elapsed
    print(
        table(
            f"Pipeline ({jobs} jobs x 1 image x 1 t-shirt, autoPublish, {workers} worker(s)/stage)",
            ["measure", "value"],
            [
                ["jobs/s (all stages)", f"{rate:,.1f}"],
                ["events/s (4 per job)", f"{rate * 4:,.1f}"],
                ["wall time (s)", f"{elapsed:.2f}"],
                ["raw broker produce msg/s", f"{baseline.produce_rate:,.0f}"],
                ["ratio events/s : raw produce", f"1 : {baseline.produce_rate / (rate * 4):,.0f}"],
            ],
        )
    )
    print()
    rows = []
    for label, *_ in HOPS:
        vals = latencies[label]
        rows.append(
            [label, f"{percentile(vals, 0.5) * 1000:,.1f}", f"{percentile(vals, 0.99) * 1000:,.1f}"]
        )
    print(table("Per-hop latency (ms)", ["hop", "p50", "p99"], rows))


def drive(bootstrap: str, jobs: int) -> tuple[float, dict[str, list[float]]]:
    """Produce the jobs, wait for every publication; return elapsed seconds and hop latencies."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        }
    )
    topics = [JOBS_REQUESTED[p] for p in JOBS_REQUESTED] + [
        IMAGES_GENERATED,
        PRODUCTS_CREATED,
        PUBLISHED,
    ]
    consumer.subscribe(topics)
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    run_id = uuid.uuid4().hex[:6]
    start = time.monotonic()
    for i in range(jobs):
        event = JobRequested(
            job_id=f"bench-{run_id}-{i}",
            producer="bench",
            payload=JobRequestedPayload(
                theme=f"theme {i}",
                style="flat",
                niche="bench",
                product_types=["tshirt"],
                count=1,
                auto_publish=True,
            ),
        )
        producer.produce(
            JOBS_REQUESTED[event.payload.priority], event.to_json(), key=event.job_id.encode()
        )
        producer.poll(0)
    producer.flush(30)
    seen: dict[str, dict[str, float]] = {}
    published = 0
    timeout = time.monotonic() + max(120, jobs / 2)
    while published < jobs:
        if time.monotonic() > timeout:
            raise SystemExit(f"timed out: {published}/{jobs} published")
        for msg in consumer.consume(1000, 0.5):
            if msg.error():
                continue
            e = parse_event(msg.value())
            if not e.job_id.startswith(f"bench-{run_id}-"):
                continue
            seen.setdefault(e.job_id, {})[e.type] = e.occurred_at.timestamp()
            if e.type == "product.published":
                published += 1
    elapsed = time.monotonic() - start
    consumer.close()
    latencies: dict[str, list[float]] = {label: [] for label, *_ in HOPS}
    for times in seen.values():
        for label, a, b in HOPS:
            if a in times and b in times:
                latencies[label].append(times[b] - times[a])
    if statistics.fmean(len(v) for v in latencies.values()) == 0:
        raise SystemExit("no latencies recorded")
    return elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    run(args.jobs, args.image_size, args.workers)


if __name__ == "__main__":
    main()
