"""The engine's own share of a job's time, with the simulators at the vendors' pace
(``SIM_PROFILE=realistic``, :mod:`simulators.common.profile`).

    python bench/share.py [--jobs 12] [--shop custom_integration|etsy] [--publish-s 120]
                          [--image-size 1024] [--print-dpi 0] [--screening on|off]

Starts its own stack, then submits jobs (count 1, one t-shirt, autoPublish) through the API one
at a time, so no job ever waits in a queue (the issue excludes queues) and every vendor call in
a job's window is that job's. Per job, its critical path runs from the API's 202 to the job's
final status visible in ``GET /jobs/{id}`` (polled every 2 ms once the job's last event is on
Kafka, every 0.5 s before: the wall is overstated by at most one poll). Vendor time comes from
the vendors' side: the union of the intervals the simulators log (``GET /_sim/requests``:
requests, renders, channel listings, webhooks on their way) inside that window; engine time is
the rest (Kafka hops, handlers, the fold, the API's read). Calls the simulators see while no
job runs (health probes, a pool's polling) are measured in an idle window first and left out of
the vendor time (printed).

The window is cut at the job's events (``occurred_at`` of image.generated, product.created,
product.published): per segment, the engine's time before the first vendor call (a Kafka hop
and the handler's start), between calls (the handler) and after the last one (the handler's
end and its produce); the last segment is the monitor's fold and the API's read.

``--shop etsy``: the account's shop is a Printify-managed Etsy shop, which lists a published
product ``--publish-s`` later; the publisher learns of it by polling (PUBLISH_CHECK_*), and the
time between the listing and the poll that sees it is printed as its own line.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.broker import measure, render
from bench.common import postgres_processes, service_of, table
from bench.pipeline import wait_until_ready
from devstack.stack import Stack, isolated_settings
from shared.contract.events import parse_event
from shared.contract.topics import (
    IMAGES_GENERATED,
    PRODUCTS_CREATED,
    PUBLISHED,
    TopicSpec,
    ensure_topics,
)

TERMINAL = {"completed", "partial", "failed", "cancelled"}
# The events that cut a job's path into segments, in order.
CUTS = ("image.generated", "product.created", "product.published")
SEGMENTS = (
    "202 -> image.generated (hop, generator)",
    "image.generated -> product.created (hop, printify)",
    "product.created -> product.published (hop, publisher)",
    "product.published -> GET /jobs shows it (fold, read)",
)
POLL_S = 0.002
ID_SEGMENT = re.compile(r"/(?:[0-9a-f]{16,}|[0-9a-f-]{36}|[0-9]{5,})(?=/|\.json|$)")

Interval = tuple[float, float]


@dataclass(frozen=True)
class Logged:
    """One stretch of vendor time, as a simulator logged it."""

    sim: str
    kind: str
    what: str
    start: float
    end: float

    @property
    def label(self) -> str:
        # Ids in paths (products, prompts) would make every call its own row.
        return f"{self.sim} {ID_SEGMENT.sub('/{id}', self.what)}"


@dataclass
class JobRun:
    job_id: str
    accepted: float  # the 202
    done: float  # its final status seen
    status: str
    cuts: dict[str, float]
    vendor: list[Logged]
    segments: list[dict[str, float]] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return self.done - self.accepted

    @property
    def vendor_s(self) -> float:
        return covered(clip([(v.start, v.end) for v in self.vendor], self.accepted, self.done))

    @property
    def engine_s(self) -> float:
        return self.wall - self.vendor_s


def clip(intervals: list[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi]


def union(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def covered(intervals: list[Interval]) -> float:
    return sum(b - a for a, b in union(intervals))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sim_log(stack: Stack, since: float) -> list[Logged]:
    """Every simulator's entries that ended after ``since``."""
    found = []
    for sim in stack.simulators:
        resp = httpx.get(f"{sim.url}/_sim/requests", params={"since": since}, timeout=10)
        resp.raise_for_status()
        for e in resp.json()["entries"]:
            found.append(Logged(sim.name, e["kind"], e["what"], e["start"], e["end"]))
    return found


def background(stack: Stack, idle_s: float) -> set[str]:
    """What the simulators are asked while no job runs: not any job's vendor time."""
    since = time.time()
    time.sleep(idle_s)
    return {e.label for e in sim_log(stack, since)}


def split(run: JobRun) -> None:
    """Cut the job's window at its events; per segment, the engine's time before the first
    vendor interval, between intervals and after the last."""
    bounds = [run.accepted, *(run.cuts[c] for c in CUTS), run.done]
    spans = union(clip([(v.start, v.end) for v in run.vendor], run.accepted, run.done))
    for lo, hi in itertools.pairwise(bounds):
        inside = union(clip(spans, lo, hi))
        vendor = covered(inside)
        lead = (inside[0][0] - lo) if inside else hi - lo
        tail = (hi - inside[-1][1]) if inside else 0.0
        run.segments.append(
            {
                "total": hi - lo,
                "vendor": vendor,
                "lead": lead,
                "between": (hi - lo) - vendor - lead - tail,
                "tail": tail,
            }
        )


def events_consumer(bootstrap: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-share-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    topics = [IMAGES_GENERATED, PRODUCTS_CREATED, PUBLISHED]
    md = consumer.list_topics(timeout=10)
    consumer.assign(
        [
            TopicPartition(t, p, consumer.get_watermark_offsets(TopicPartition(t, p), 10)[1])
            for t in topics
            for p in md.topics[t].partitions
        ]
    )
    return consumer


def read_cuts(consumer: Consumer, job_id: str, cuts: dict[str, float], wait_s: float) -> None:
    """Note when the job's cutting events happened (their ``occurred_at``): waits at most
    ``wait_s`` for the first message (``consume`` would wait it out for a full batch)."""
    first = consumer.poll(wait_s)
    for msg in [first, *consumer.consume(100, 0)] if first is not None else []:
        if msg.error():
            continue
        e = parse_event(msg.value())
        if e.job_id == job_id and e.type in CUTS:
            cuts.setdefault(e.type, e.occurred_at.timestamp())


def one_job(
    stack: Stack, http: httpx.Client, consumer: Consumer, i: int, timeout: float, skip: set[str]
) -> JobRun:
    body = {
        "theme": f"share bench {i} {uuid.uuid4().hex[:6]}",
        "style": "retro",
        "niche": "bench",
        "productTypes": ["tshirt"],
        "count": 1,
        "autoPublish": True,
        "priority": "normal",
    }
    since = time.time()
    resp = http.post("/jobs", json=body)
    accepted = time.time()
    if resp.status_code != 202:
        raise SystemExit(f"POST /jobs: {resp.status_code} {resp.text[:300]}")
    job_id = str(resp.json()["jobId"])
    deadline = time.monotonic() + timeout
    status = ""
    cuts: dict[str, float] = {}

    while True:
        # The API polled slowly until the job's last event is on Kafka, then every 2 ms:
        # precise where it matters (the fold) without loading the API and PostgreSQL the
        # engine shares (100 reads a second for a whole job doubled the engine's CPU).
        read_cuts(consumer, job_id, cuts, 0.0 if CUTS[-1] in cuts else 0.5)
        got = http.get(f"/jobs/{job_id}")
        done = time.time()
        if got.status_code == 200:
            status = str(got.json()["job"]["detailedStatus"])
            if status in TERMINAL:
                break
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} not done after {timeout:.0f}s (status {status!r})")
        if CUTS[-1] in cuts:
            time.sleep(POLL_S)
    deadline = time.monotonic() + 30
    while len(cuts) < len(CUTS) and time.monotonic() < deadline:
        read_cuts(consumer, job_id, cuts, 0.2)
    if len(cuts) < len(CUTS):
        raise SystemExit(f"job {job_id} ({status}): events seen {sorted(cuts)}")
    vendor = [e for e in sim_log(stack, since) if e.label not in skip]
    run = JobRun(job_id, accepted, done, status, cuts, vendor)
    split(run)
    return run


def broker_round_trip(bootstrap: str, samples: int = 50) -> list[float]:
    """One message produced and consumed at a time (acks=all, as the stages produce): the
    broker's own floor for a Kafka hop."""
    topic = f"bench.share.rtt.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    ensure_topics(admin, default_partitions=1, specs=[TopicSpec(topic, 3_600_000)])
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-rtt-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 500,
        }
    )
    consumer.subscribe([topic])

    def one(value: bytes) -> float:
        start = time.perf_counter()
        producer.produce(topic, value)
        producer.poll(0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                return time.perf_counter() - start
        raise SystemExit(f"broker round trip: nothing consumed from {topic} in 30 s")

    one(b"warm")  # the consumer's assignment and first fetch
    times = [one(str(i).encode()) for i in range(samples)]
    consumer.close()
    producer.flush(10)
    admin.delete_topics([topic])
    return times


def engine_cpu(postgres_dir: Path | None) -> dict[str, float]:
    """CPU seconds so far of each part of the engine (its services, the broker, PostgreSQL),
    the children it waited for included (Tesseract's, under the generator): what its time on
    the path would shrink to on an idle machine, less its waits on the network."""
    totals: dict[str, float] = {}
    procs = [(p, service_of(p)) for p in psutil.Process().children(recursive=True)]
    procs += [(p, "postgres") for p in postgres_processes(postgres_dir)]
    for proc, name in procs:
        if name is None or name.startswith("sim-"):
            continue
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        # A child's time counts once, under the process that waited for it.
        own = t.user + t.system
        reaped = t.children_user + t.children_system if name != "postgres" else 0.0
        totals[name] = totals.get(name, 0.0) + own + reaped
    return totals


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pod-bench-share-") as tmp:
        state = Path(tmp)
        settings = isolated_settings(state)
        env = {
            "SIM_PROFILE": "realistic",
            "SIM_FAILURE_RATE": "0",
            "IMAGE_WIDTH": str(args.image_size),
            "IMAGE_HEIGHT": str(args.image_size),
            **(
                {"PRINT_DPI": str(args.print_dpi), "PRINT_MAX_UPSCALE": "64"}
                if args.print_dpi
                else {"PRINT_MAX_UPSCALE": "1", "PRINT_MIN_DPI": "0"}
            ),
            "IMAGE_STORAGE_DIR": str(state / "images"),
            "LOG_LEVEL": "WARNING",
            "SCREENING_ENABLED": "true" if args.screening == "on" else "false",
        }
        if args.shop != "custom_integration":
            env |= {
                "SIM_PRINTIFY_SHOPS": args.shop,
                "SIM_PRINTIFY_PUBLISH_MS": str(args.publish_s * 1000),
            }
        stack = Stack(settings, extra_env=env).start()
        try:
            wait_until_ready(stack)
            baseline = measure(stack.bootstrap, messages=20_000)
            rtt = broker_round_trip(stack.bootstrap)
            api = f"http://127.0.0.1:{settings.api_port}"
            timeout = 120 + (args.publish_s * 3 if args.shop != "custom_integration" else 0)
            with httpx.Client(base_url=api, timeout=30, trust_env=False) as http:
                consumer = events_consumer(stack.bootstrap)
                one_job(stack, http, consumer, -1, timeout, set())  # warm-up
                skip = background(stack, args.idle_s)
                pg = stack.postgres.data_dir if stack.postgres else None
                cpu_before = engine_cpu(pg)
                runs = [one_job(stack, http, consumer, i, timeout, skip) for i in range(args.jobs)]
                cpu_after = engine_cpu(pg)
                cpu = {k: max(0.0, v - cpu_before.get(k, 0.0)) for k, v in cpu_after.items()}
                consumer.close()
        finally:
            stack.stop()
    report(args, baseline, rtt, skip, runs, cpu)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report(
    args: argparse.Namespace,
    baseline: object,
    rtt: list[float],
    skip: set[str],
    runs: list[JobRun],
    cpu: dict[str, float],
) -> None:
    print(render(baseline))  # type: ignore[arg-type]
    print()
    print(
        table(
            "Raw broker round trip (one message produced, acks=all, and consumed)",
            ["p50 ms", "p95 ms"],
            [[ms(percentile(rtt, 0.5)), ms(percentile(rtt, 0.95))]],
        )
    )
    print()
    rows = [
        [
            r.job_id[:12],
            r.status,
            ms(r.wall),
            ms(r.vendor_s),
            ms(r.engine_s),
            f"{r.engine_s / r.wall * 100:.2f}",
        ]
        for r in runs
    ]
    walls = [r.wall for r in runs]
    engines = [r.engine_s for r in runs]
    shares = [r.engine_s / r.wall * 100 for r in runs]
    vendors = [r.vendor_s for r in runs]
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        rows.append(
            [
                name,
                "",
                ms(percentile(walls, q)),
                ms(percentile(vendors, q)),
                ms(percentile(engines, q)),
                f"{percentile(shares, q):.2f}",
            ]
        )
    art = f"at {args.print_dpi:g} DPI" if args.print_dpi else f"{args.image_size} px as sampled"
    print(
        table(
            f"Critical path per job ({len(runs)} jobs one at a time, 1 image, 1 t-shirt, "
            f"autoPublish, shop {args.shop}, art {art}, screening {args.screening})",
            ["job", "status", "wall ms", "vendor ms", "engine ms", "engine %"],
            rows,
        )
    )
    print()
    seg_rows = []
    for k, name in enumerate(SEGMENTS):
        parts = [r.segments[k] for r in runs]
        engine = [p["total"] - p["vendor"] for p in parts]
        seg_rows.append(
            [
                name,
                ms(statistics.median(p["total"] for p in parts)),
                ms(statistics.median(p["vendor"] for p in parts)),
                ms(statistics.median(engine)),
                ms(percentile(engine, 0.95)),
                ms(statistics.median(p["lead"] for p in parts)),
                ms(statistics.median(p["between"] for p in parts)),
                ms(statistics.median(p["tail"] for p in parts)),
            ]
        )
    print(
        table(
            "Where the engine's time goes, per segment (ms; p50 unless named; lead = before the"
            " first vendor call: Kafka hop + handler start; between = handler between calls;"
            " tail = after the last: handler end + produce)",
            ["segment", "total", "vendor", "engine", "engine p95", "lead", "between", "tail"],
            seg_rows,
        )
    )
    print()
    calls: dict[str, list[float]] = {}
    for r in runs:
        for v in r.vendor:
            calls.setdefault(v.label, []).append(v.end - v.start)
    call_rows = [
        [label, str(len(d) // len(runs)), ms(statistics.median(d)), ms(max(d))]
        for label, d in sorted(calls.items())
    ]
    print(
        table(
            "Vendor time on the path, by call (from the simulators' logs)",
            ["call", "per job", "p50 ms", "max ms"],
            call_rows,
        )
    )
    print()
    gaps: dict[str, list[float]] = {}
    for r in runs:
        marks = [("202", r.accepted, r.accepted)]
        marks += sorted(((v.label, v.start, v.end) for v in r.vendor), key=lambda m: m[1])
        marks += [(f"event {c}", t, t) for c, t in r.cuts.items()]
        marks.append(("GET /jobs shows it", r.done, r.done))
        marks.sort(key=lambda m: m[1])
        reach = marks[0][2]
        for (a, _, _), (b, start, end) in itertools.pairwise(marks):
            if start > reach:
                gaps.setdefault(f"{a} -> {b}", []).append(start - reach)
            reach = max(reach, end)
    gap_rows = [
        [pair, str(len(d)), ms(statistics.median(d)), ms(max(d))]
        for pair, d in sorted(gaps.items(), key=lambda kv: -statistics.median(kv[1]))[:12]
    ]
    print(
        table(
            "The engine's largest stretches on the path (nothing of the vendor's running)",
            ["after -> before", "n", "p50 ms", "max ms"],
            gap_rows,
        )
    )
    print()
    cpu_rows = [[name, ms(sec / len(runs))] for name, sec in sorted(cpu.items())]
    cpu_rows.append(["the engine in all", ms(sum(cpu.values()) / len(runs))])
    print(
        table(
            "Engine CPU per job (ms; its processes and the children they waited for, "
            "simulators left out; every process's CPU, on the path or not)",
            ["part", "CPU ms/job"],
            cpu_rows,
        )
    )
    print()
    print("left out (seen while no job ran): " + (", ".join(sorted(skip)) or "nothing"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument(
        "--shop", choices=["custom_integration", "etsy"], default="custom_integration"
    )
    parser.add_argument("--publish-s", type=float, default=120.0)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--print-dpi", type=float, default=0.0)
    parser.add_argument("--screening", choices=["on", "off"], default="on")
    parser.add_argument("--idle-s", type=float, default=10.0)
    args = parser.parse_args()
    if args.jobs < 1:
        raise SystemExit("--jobs: at least 1")
    run(args)


if __name__ == "__main__":
    main()
