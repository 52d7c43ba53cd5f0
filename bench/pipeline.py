"""End-to-end pipeline benchmark: jobs/s through every stage, per-hop latency (p50/p99) and
CPU milliseconds per job for each service, with the vendor simulators at zero latency, and the
raw broker baseline measured in the same run.

    python bench/pipeline.py [--jobs 500] [--workers 1] [--submit kafka|api] [--image-size 64]
                             [--print-dpi 0] [--screening on|off]

Starts its own stack (broker, PostgreSQL, simulators, the pool manager and its stages, the API)
in a temp folder. Jobs (count 1, one t-shirt, autoPublish) are produced straight onto
``jobs.requested.normal``, or posted to the API with ``--submit api``; the run ends when every
job's ``product.published`` event is on the ``published`` topic. CPU per job is each service's
own CPU time (all its instances) over the measured run, after a warm-up of 20 jobs.

By default the art stays at its 64 px sample (``--print-dpi 0``: no upscale, no DPI check), so
the figures are the pipeline's own cost. ``--print-dpi 150`` makes print-ready files (2250 px on
a tee) as production does; the ComfyUI simulator's PNG encoding then dominates this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.broker import measure, render
from bench.common import cpu_by_service, cpu_delta, table
from devstack.stack import Stack, isolated_settings
from shared.contract.events import JobRequested, JobRequestedPayload, parse_event
from shared.contract.topics import IMAGES_GENERATED, JOBS_REQUESTED, PRODUCTS_CREATED, PUBLISHED

HOPS = [
    ("request -> image", "job.requested", "image.generated"),
    ("image -> product", "image.generated", "product.created"),
    ("product -> published", "product.created", "product.published"),
    ("request -> published", "job.requested", "product.published"),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


FIVE = ("api", "generator", "printify", "publisher", "monitor")


def run(
    jobs: int, image_size: int, workers: int, submit: str, print_dpi: float, screening: bool
) -> None:
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
            # Small samples, upscaled to a print-ready size when asked (150 DPI on a tee:
            # 2250 px); else kept small, and the printify stage told not to refuse them.
            **(
                {"PRINT_DPI": str(print_dpi), "PRINT_MAX_UPSCALE": "64"}
                if print_dpi
                else {"PRINT_MAX_UPSCALE": "1", "PRINT_MIN_DPI": "0"}
            ),
            "IMAGE_STORAGE_DIR": str(state / "images"),
            "MAX_IN_FLIGHT": "128",
            # GPUs are not what this measures: enough of them, and a deep queue, that renders
            # of zero milliseconds never wait for a round trip.
            "SIM_COMFYUI_WORKERS": "8",
            "COMFYUI_QUEUE_FACTOR": "4",
            "LOG_LEVEL": "WARNING",
            # Every design screened before the printify stage (the default), or not: the two
            # runs side by side are what screening adds to a job.
            "SCREENING_ENABLED": "true" if screening else "false",
        }
        stack = Stack(settings, extra_env=env).start()
        try:
            wait_until_ready(stack)
            baseline = measure(stack.bootstrap, messages=100_000)
            pg = stack.postgres.data_dir if stack.postgres else None
            drive(stack, 20, submit)  # warm-up: connections, caches, consumer positions
            cpu_before = cpu_by_service(postgres_dir=pg)
            result = drive(stack, jobs, submit)
            cpu = cpu_delta(cpu_before, cpu_by_service(postgres_dir=pg))
        finally:
            stack.stop()
    print(render(baseline))
    print()
    elapsed, latencies = result
    rate = jobs / elapsed
    art = f"at {print_dpi:g} DPI" if print_dpi else "as sampled"
    art += ", screened" if screening else ", screening off"
    print(
        table(
            f"Pipeline ({jobs} jobs x 1 image x 1 t-shirt, autoPublish, {workers} worker(s)/stage,"
            f" submitted to {submit}, art {art})",
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
    print()
    cpu_rows = [[name, f"{cpu.get(name, 0.0):.2f}", f"{cpu.get(name, 0.0) / jobs * 1000:.2f}"]
                for name in FIVE]  # fmt: skip
    five = sum(cpu.get(name, 0.0) for name in FIVE)
    cpu_rows.append(["sum of the five", f"{five:.2f}", f"{five / jobs * 1000:.2f}"])
    others = sorted(k for k in cpu if k not in FIVE)
    cpu_rows += [[name, f"{cpu[name]:.2f}", f"{cpu[name] / jobs * 1000:.2f}"] for name in others]
    print(table("CPU per job (each process's own CPU time)", ["service", "CPU s", "ms/job"],
                cpu_rows))  # fmt: skip


def wait_until_ready(stack: Stack, timeout: float = 120.0) -> None:
    """Until the API answers /health with every stage live."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{stack.settings.api_port}/health"
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the stack did not become healthy")


def job_events(run_id: str, jobs: int) -> list[JobRequested]:
    return [
        JobRequested(
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
        for i in range(jobs)
    ]


def post_all(stack: Stack, events: list[JobRequested]) -> dict[str, str]:
    """POST every job to the API; returns the API's job id per bench job id."""
    url = f"http://127.0.0.1:{stack.settings.api_port}/jobs"

    def post(e: JobRequested) -> tuple[str, str]:
        with httpx.Client(timeout=30) as client:
            resp = client.post(url, json=e.payload.as_request())
        resp.raise_for_status()
        return e.job_id, str(resp.json()["jobId"])

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(post, events))


def submit_all(stack: Stack, events: list[JobRequested], submit: str) -> set[str]:
    """Submit the jobs through the API (``api``) or straight onto their topics; their ids."""
    if submit == "api":
        return set(post_all(stack, events).values())
    producer = Producer(
        {"bootstrap.servers": stack.bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for event in events:
        producer.produce(
            JOBS_REQUESTED[event.payload.priority], event.to_json(), key=event.job_id.encode()
        )
        producer.poll(0)
    producer.flush(30)
    return {e.job_id for e in events}


def drive(stack: Stack, jobs: int, submit: str) -> tuple[float, dict[str, list[float]]]:
    """Submit the jobs, wait for every publication; return elapsed seconds and hop latencies."""
    bootstrap = stack.bootstrap
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
    # Assigned at each partition's current end: a subscription's "latest" is resolved lazily
    # and, on a busy machine, after the first jobs were already produced (their hops lost).
    md = consumer.list_topics(timeout=10)
    consumer.assign(
        [
            TopicPartition(t, p, consumer.get_watermark_offsets(TopicPartition(t, p), 10)[1])
            for t in topics
            for p in md.topics[t].partitions
        ]
    )
    run_id = uuid.uuid4().hex[:6]
    events = job_events(run_id, jobs)
    start = time.monotonic()
    ours = submit_all(stack, events, submit)
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
            if e.job_id not in ours:
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
    parser.add_argument("--submit", choices=["kafka", "api"], default="kafka")
    parser.add_argument("--print-dpi", type=float, default=0.0)
    parser.add_argument("--screening", choices=["on", "off"], default="on")
    args = parser.parse_args()
    run(
        args.jobs,
        args.image_size,
        args.workers,
        args.submit,
        args.print_dpi,
        args.screening == "on",
    )


if __name__ == "__main__":
    main()
