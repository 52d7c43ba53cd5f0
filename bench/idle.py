"""What the stack costs at rest, and how fast it still picks up an urgent job.

    python bench/idle.py [--settle 20] [--measure 30] [--jobs 10]

Starts the whole stack as ``make up`` does (its defaults: one instance per stage, simulators),
waits until it is healthy and has settled, then measures the CPU time of every process over a
quiet period and prints it per service and in all, as a share of one core. Then it produces
lone high-priority jobs onto ``jobs.requested.high``, one at a time on the idle stack, and prints
the time from each request to its image (zero-latency simulators, so this is pickup plus the
generator's own work).
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

import httpx
from confluent_kafka import Consumer, Producer

from bench.common import cpu_by_service, cpu_delta, table
from devstack.stack import Stack, isolated_settings
from shared.contract.events import JobRequested, JobRequestedPayload, Priority, parse_event
from shared.contract.topics import IMAGES_GENERATED, JOBS_REQUESTED


def healthy(stack: Stack) -> bool:
    try:
        url = f"http://127.0.0.1:{stack.settings.api_port}/health"
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def pickup(stack: Stack, jobs: int) -> list[float]:
    """Seconds from request to image for ``jobs`` lone high-priority jobs."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "latest",
        }
    )
    consumer.subscribe([IMAGES_GENERATED])
    while not consumer.assignment():
        consumer.poll(0.1)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 0})
    latencies = []
    for i in range(jobs):
        time.sleep(2.0)  # idle again: every consumer back in its long poll
        event = JobRequested(
            job_id=f"urgent-{uuid.uuid4().hex[:8]}",
            producer="bench",
            payload=JobRequestedPayload(
                theme=f"urgent {i}",
                style="flat",
                niche="bench",
                product_types=["mug"],
                count=1,
                priority=Priority.HIGH,
            ),
        )
        producer.produce(JOBS_REQUESTED[Priority.HIGH], event.to_json(), key=event.job_id.encode())
        producer.flush(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            image = parse_event(msg.value())
            if image.job_id == event.job_id:
                latencies.append((image.occurred_at - event.occurred_at).total_seconds())
                break
    consumer.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--measure", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pod-idle-") as tmp:
        state = Path(tmp)
        env = {"IMAGE_STORAGE_DIR": str(state / "images"), "LOG_LEVEL": "WARNING"}
        stack = Stack(isolated_settings(state), extra_env=env).start()
        try:
            deadline = time.monotonic() + 120
            while not healthy(stack):
                if time.monotonic() > deadline:
                    raise SystemExit("the stack did not become healthy")
                time.sleep(0.5)
            time.sleep(args.settle)
            pg = stack.postgres.data_dir if stack.postgres else None
            before = cpu_by_service(postgres_dir=pg)
            time.sleep(args.measure)
            used = cpu_delta(before, cpu_by_service(postgres_dir=pg))
            latencies = pickup(stack, args.jobs)
        finally:
            stack.stop()
    rows = [
        [name, f"{secs:.2f}", f"{100 * secs / args.measure:.2f} %"]
        for name, secs in sorted(used.items(), key=lambda kv: -kv[1])
    ]
    total = sum(used.values())
    rows.append(["all", f"{total:.2f}", f"{100 * total / args.measure:.2f} %"])
    print(table(f"CPU at rest over {args.measure:.0f} s", ["process", "CPU s", "of a core"], rows))
    print()
    if latencies:
        ms = sorted(x * 1000 for x in latencies)
        print(
            table(
                f"Lone high-priority job on the idle stack ({len(ms)} jobs)",
                ["request -> image", "ms"],
                [
                    ["p50", f"{statistics.median(ms):.1f}"],
                    ["max", f"{ms[-1]:.1f}"],
                    ["min", f"{ms[0]:.1f}"],
                ],
            )
        )


if __name__ == "__main__":
    main()
