"""Data at scale: a year of a busy shop (a million jobs, ~20 log entries each), then every read
route's latency (p50/p95 over real HTTP to the API), the monitor's fold rate and the API's
submit rate on that database and on an empty one, the disk per table and per job, and the raw
broker in the same run.

    python bench/scale.py [--jobs 1000000] [--reuse] [--requests 50] [--fold-jobs 200]
                          [--submits 400] [--rounds 8] [--templates 2] [--no-reads]

Starts its own stack (broker, PostgreSQL, simulators at zero latency, the stages, the monitor,
the API) on the big database's folder (``.state/bench-scale/<jobs>``; ``--reuse`` keeps it and
its built database between runs, the build being the slow part), runs ``--templates`` rounds of
real jobs of every shape (1-4 images x 1-3 product types, published or not) through it, and
clones them into ``--jobs`` jobs over 365 days with set-based SQL (bench/scale_build.py). The
templates' events, recorded off the topics, are what the fold rate replays under new job ids
(``--fold-jobs`` jobs): the time from the first produce until the monitor has written every one
of their log entries. A second, empty stack measures the same writes for the ratio, both up at
once with their stages scaled to zero (the monitor and the API alone), in ``--rounds``
interleaved rounds after one for warm-up.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
import psycopg
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from bench.broker import measure, render
from bench.common import table
from bench.scale_build import NICHES, RARE_THEME, STYLES, THEMES, BuildReport, build, disk
from devstack.stack import Stack, isolated_settings
from shared.adapters.store import job_events
from shared.contract.topics import IMAGES_GENERATED, JOBS_BY_PRIORITY, MONITOR

logger = logging.getLogger("bench.scale")

ROOT = Path(__file__).resolve().parent.parent
# At most this long per read case (then fewer requests than asked, said in the table).
BUDGET_S = 20.0
TERMINAL = {"completed", "partial", "failed", "cancelled"}
# Every shape a job takes: images x product types, published or not.
SHAPES = [
    (count, types, publish)
    for count in (1, 2, 3, 4)
    for types in (["tshirt"], ["tshirt", "mug"], ["tshirt", "hoodie", "mug"])
    for publish in (True, False)
]

STACK_ENV = {
    "SIM_LATENCY_MS": "0",
    "SIM_FAILURE_RATE": "0",
    "SIM_PRINTIFY_RPM": "100000000",
    "PRINTIFY_REQUESTS_PER_MINUTE": "100000000",
    "PRINTIFY_PUBLISHES_PER_WINDOW": "100000000",
    "SIM_PRINTIFY_PUBLISH_LIMIT": "100000000",
    "IMAGE_WIDTH": "64",
    "IMAGE_HEIGHT": "64",
    "PRINT_MAX_UPSCALE": "1",
    "PRINT_MIN_DPI": "0",
    "MAX_IN_FLIGHT": "128",
    "SIM_COMFYUI_WORKERS": "8",
    "COMFYUI_QUEUE_FACTOR": "4",
    "LOG_LEVEL": "WARNING",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def running_stack(state: Path) -> Iterator[Stack]:
    settings = isolated_settings(state)
    env = {**STACK_ENV, "IMAGE_STORAGE_DIR": str(state / "images")}
    stack = Stack(settings, extra_env=env).start()
    try:
        if not stack.wait_ready(timeout=300):
            raise SystemExit("the stack did not become ready")
        yield stack
    finally:
        stack.stop()


def api(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.settings.api_port}"


# ------------------------------------------------------------------ templates: real jobs


@dataclass
class Recorded:
    """The template jobs: their ids, their log entries' count, and their events as produced."""

    job_ids: list[str]
    entries: dict[str, int]
    messages: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> Recorded:
        return cls(**json.loads(path.read_text()))


def _headers(msg: Message) -> list[tuple[str, str | bytes | None]]:
    return list(msg.headers() or [])  # type: ignore[arg-type]  # the stubs say list[str]


def _b64(value: str | bytes | None) -> str:
    raw = value if isinstance(value, bytes) else (value or "").encode()
    return base64.b64encode(raw).decode()


def run_templates(
    stack: Stack, rounds: int, shapes: list[tuple[int, list[str], bool]] = SHAPES
) -> Recorded:
    """Every shape ``rounds`` times through the stack; their events recorded off the monitor's
    topics."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"bench-scale-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    md = consumer.list_topics(timeout=10)
    topics = [t for t in MONITOR.inputs if t in md.topics]
    consumer.assign(
        [
            TopicPartition(t, p, consumer.get_watermark_offsets(TopicPartition(t, p), 10)[1])
            for t in topics
            for p in md.topics[t].partitions
        ]
    )
    ids: list[str] = []
    with httpx.Client(base_url=api(stack), timeout=30) as client:
        for r in range(rounds):
            for i, (count, types, publish) in enumerate(shapes):
                body = {
                    "theme": f"template {r} {i}",
                    "style": "flat",
                    "niche": "bench",
                    "productTypes": types,
                    "count": count,
                    "autoPublish": publish,
                }
                resp = client.post(
                    "/jobs", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
                )
                resp.raise_for_status()
                ids.append(str(resp.json()["jobId"]))
        deadline = time.monotonic() + 600
        pending = set(ids)
        while pending:
            if time.monotonic() > deadline:
                raise SystemExit(f"template jobs not finished: {sorted(pending)[:3]}")
            for job_id in list(pending):
                if client.get(f"/jobs/{job_id}").json()["job"]["status"] in TERMINAL:
                    pending.discard(job_id)
            time.sleep(0.5)
    wanted = {i.encode(): i for i in ids}
    messages: list[dict[str, Any]] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 5:
        # Until nothing of theirs came for a while (heartbeats never stop coming).
        for msg in consumer.consume(1000, 0.5):
            value = msg.value()
            if msg.error() or value is None:
                continue
            owner = next((name for raw, name in wanted.items() if raw in value), None)
            if owner is None:
                continue
            idle_since = time.monotonic()
            messages.append(
                {
                    "tmpl": owner,
                    "topic": msg.topic(),
                    "key": base64.b64encode(msg.key() or b"").decode(),
                    "value": base64.b64encode(value).decode(),
                    "headers": [[k, _b64(v)] for k, v in _headers(msg)],
                }
            )
    consumer.close()
    with psycopg.connect(stack.database_url) as conn:
        entries: dict[str, int] = dict(
            conn.execute(
                "SELECT job_id, count(*) FROM job_events WHERE job_id = ANY(%s) GROUP BY job_id",
                (ids,),
            ).fetchall()
        )
    return Recorded(job_ids=ids, entries={k: int(v) for k, v in entries.items()}, messages=messages)


# ------------------------------------------------------------------------ writes


def fold_rate(stack: Stack, recorded: Recorded, jobs: int) -> tuple[float, int]:
    """Replay the templates' events for ``jobs`` new job ids; seconds until the monitor wrote
    every one of their log entries, and how many.

    In waves, as the pipeline makes them: the requests, then the images, then the rest, each
    wave produced once the one before is folded. A product of an image not folded yet is put
    aside for a retry later (the pipeline never makes one: the image is folded while Printify
    is called); produced all at once, such retries' delays, not the fold, made the time."""
    by_tmpl: dict[str, list[dict[str, Any]]] = {}
    for m in recorded.messages:
        by_tmpl.setdefault(m["tmpl"], []).append(m)
    templates = [t for t in recorded.job_ids if t in by_tmpl and t in recorded.entries]
    plan = [(templates[i % len(templates)], str(uuid.uuid4())) for i in range(jobs)]
    expected = sum(recorded.entries[t] for t, _ in plan)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    new_ids = [n for _, n in plan]
    requests = set(JOBS_BY_PRIORITY)

    def wave(m: dict[str, Any]) -> int:
        if m["topic"] in requests:
            return 0
        return 1 if m["topic"] == IMAGES_GENERATED else 2

    images = sum(1 for t, _ in plan for m in by_tmpl[t] if wave(m) == 1)
    waits = [
        ("SELECT count(*) FROM jobs WHERE job_id = ANY(%s)", jobs),
        ("SELECT count(*) FROM images WHERE job_id = ANY(%s)", images),
        ("SELECT count(*) FROM job_events WHERE job_id = ANY(%s)", expected),
    ]
    deadline = time.monotonic() + max(300, jobs * 3)
    start = time.monotonic()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for n, (query, want) in enumerate(waits):
            for tmpl, new_id in plan:
                for m in by_tmpl[tmpl]:
                    if wave(m) == n:
                        _replay(producer, m, tmpl, new_id)
            producer.flush(60)
            _wait_count(conn, query, new_ids, want, deadline)
    return time.monotonic() - start, expected


def _wait_count(
    conn: psycopg.Connection[Any], query: str, job_ids: list[str], want: int, deadline: float
) -> None:
    """Until ``query`` (a count over ``job_ids``) reaches ``want``; SystemExit at ``deadline``."""
    while True:
        row = conn.execute(query.encode(), (job_ids,)).fetchone()
        done = int(row[0]) if row else 0
        if done >= want:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {done}/{want} ({query})")
        time.sleep(0.01)


def _replay(producer: Producer, m: dict[str, Any], tmpl: str, new_id: str) -> None:
    """One recorded message again, as another job's (its id, and so its event ids, changed)."""
    value = base64.b64decode(m["value"]).replace(tmpl.encode(), new_id.encode())
    try:
        doc = json.loads(value)
        if isinstance(doc, dict) and "event_id" in doc:
            doc["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{new_id}/{doc['event_id']}"))
            value = json.dumps(doc).encode()
    except ValueError:
        pass
    key = base64.b64decode(m["key"]).replace(tmpl.encode(), new_id.encode())
    headers: list[tuple[str, str | bytes | None]] = [
        (str(k), base64.b64decode(v)) for k, v in m["headers"]
    ]
    producer.produce(m["topic"], value, key=key or None, headers=headers)
    producer.poll(0)


def submit_rate(stack: Stack, jobs: int, concurrency: int) -> float:
    """POST /jobs ``jobs`` times with ``concurrency`` clients at once: jobs/s. Then, untimed,
    until the monitor has folded every one of them: its work would otherwise go on beside the
    next measure (the other database's, on the same cores)."""
    body = {"theme": "submit bench", "style": "flat", "niche": "bench",
            "productTypes": ["tshirt"], "count": 1, "autoPublish": False}  # fmt: skip

    def worker(n: int) -> list[str]:
        with httpx.Client(base_url=api(stack), timeout=30) as client:
            return [
                str(client.post("/jobs", json=body).raise_for_status().json()["jobId"])
                for _ in range(n)
            ]

    share = [jobs // concurrency + (1 if i < jobs % concurrency else 0) for i in range(concurrency)]
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        ids = [i for part in pool.map(worker, share) for i in part]
    rate = jobs / (time.monotonic() - start)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        logged = "SELECT count(*) FROM job_events WHERE job_id = ANY(%s)"
        _wait_count(conn, logged, ids, len(ids), time.monotonic() + 300)
    return rate


def writers_only(stack: Stack, timeout: float = 120.0) -> None:
    """Scale every stage but the monitor to zero (``POST /scale``) and wait until they stopped.

    The writes measured are the monitor's fold and the API's submit: with the stages running,
    the replayed and submitted jobs are worked on for real beside them, and on two cores that
    work, not the database's size, is what the rates measured."""
    services = {i["service"] for i in stack.instances()} - {MONITOR.name}
    with httpx.Client(base_url=api(stack), timeout=30) as client:
        for service in sorted(services):
            resp = client.post("/scale", json={"service": service, "workerCount": 0})
            resp.raise_for_status()
    deadline = time.monotonic() + timeout
    while any(i["running"] and i["service"] != MONITOR.name for i in stack.instances()):
        if time.monotonic() > deadline:
            raise SystemExit(f"stages still running after {timeout:.0f}s: {stack.instances()}")
        time.sleep(0.2)


@dataclass
class Writes:
    fold_s: float
    fold_entries: int
    fold_jobs: int
    submit_seq: float
    submit_par: float

    @property
    def fold_events_rate(self) -> float:
        return self.fold_entries / self.fold_s

    @property
    def fold_jobs_rate(self) -> float:
        return self.fold_jobs / self.fold_s


def writes_once(stack: Stack, recorded: Recorded, fold_jobs: int, submits: int) -> Writes:
    fold_s, entries = fold_rate(stack, recorded, fold_jobs)
    seq = submit_rate(stack, submits // 2, 1)
    par = submit_rate(stack, submits, 8)
    return Writes(fold_s, entries, fold_jobs, seq, par)


def writes(
    stacks: dict[str, Stack], recorded: Recorded, fold_jobs: int, submits: int, rounds: int
) -> dict[str, list[Writes]]:
    """``rounds`` rounds on every stack, interleaved (the order flips each round), so a machine
    that slows down or warms up over the run weighs on both sides alike."""
    for stack in stacks.values():
        writers_only(stack)
        writes_once(stack, recorded, fold_jobs, submits)  # warm-up: pools, caches, the planner
    out: dict[str, list[Writes]] = {name: [] for name in stacks}
    for r in range(rounds):
        order = list(stacks) if r % 2 == 0 else list(reversed(stacks))
        for name in order:
            out[name].append(writes_once(stacks[name], recorded, fold_jobs, submits))
            logger.info("writes round=%d side=%s %s", r, name, out[name][-1])
    return out


WRITE_MEASURES: list[tuple[str, Callable[[Writes], float]]] = [
    ("fold: log entries/s", lambda w: w.fold_events_rate),
    ("fold: jobs/s", lambda w: w.fold_jobs_rate),
    ("submit: jobs/s (1 client)", lambda w: w.submit_seq),
    ("submit: jobs/s (8 clients)", lambda w: w.submit_par),
]


def writes_table(results: dict[str, list[Writes]], title: str) -> str:
    """Per measure: each side's median and range over the rounds, and big/empty of the medians
    with the range of the rounds' own ratios (round i on one side against round i on the
    other)."""
    big, empty = results["big"], results.get("empty")

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f})"

    rows = []
    for label, get in WRITE_MEASURES:
        b = [get(w) for w in big]
        if not empty:
            rows.append([label, "-", spread(b), "-", "-"])
            continue
        e = [get(w) for w in empty]
        ratios = [x / y for x, y in zip(b, e, strict=True)]
        rows.append(
            [
                label,
                spread(e),
                spread(b),
                f"{statistics.median(b) / statistics.median(e):.2f}",
                f"{min(ratios):.2f}-{max(ratios):.2f}",
            ]
        )
    header = ["measure", "empty: median (range)", "big: median (range)", "big/empty", "rounds"]
    return table(title, header, rows)


# ------------------------------------------------------------------------- reads


@dataclass
class Case:
    label: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


def read_cases(stack: Stack) -> list[Case]:
    """Every read route with each of its filters, on ids and cursors of this database."""
    with psycopg.connect(stack.database_url) as conn:
        old = conn.execute("SELECT job_id FROM jobs ORDER BY created_at LIMIT 1").fetchone()
        recent = conn.execute(
            "SELECT job_id FROM jobs ORDER BY created_at DESC OFFSET 100 LIMIT 1"
        ).fetchone()
        assert old and recent
        word_row = conn.execute(
            "SELECT split_part(theme, ' ', 1), niche, style FROM jobs "
            "ORDER BY created_at DESC OFFSET 50 LIMIT 1"
        ).fetchone()
        assert word_row
    many, niche, style = word_row
    old_id, recent_id = str(old[0]), str(recent[0])
    with httpx.Client(base_url=api(stack), timeout=60) as client:
        cursor = client.get("/jobs", params={"limit": 20}).json().get("nextCursor")
        status_cursor = (
            client.get("/jobs", params={"limit": 20, "status": "completed"})
            .json()
            .get("nextCursor")
        )
    cases = [
        Case("GET /jobs", "/jobs"),
        *(
            Case(f"GET /jobs?status={s}", f"/jobs?status={s}")
            for s in (
                "queued",
                "processing",
                "retrying",
                "awaiting_review",
                "completed",
                "partial",
                "failed",
                "cancelled",
            )
        ),
        Case("GET /jobs?q= (many)", f"/jobs?q={THEMES[0]}"),
        Case("GET /jobs?q= (few)", f"/jobs?q={THEMES[0]}+{NICHES[0]}+{STYLES[0]}"),
        Case("GET /jobs?q= (newest's words)", f"/jobs?q={many}+{niche}+{style}"),
        Case("GET /jobs?q= (none)", f"/jobs?q={RARE_THEME}"),
        Case("GET /jobs?q= (id prefix)", f"/jobs?q={recent_id[:8]}"),
        Case("GET /jobs?cursor= (page 2)", f"/jobs?cursor={cursor}"),
        Case(
            "GET /jobs?status=completed&cursor=", f"/jobs?status=completed&cursor={status_cursor}"
        ),
        Case("GET /jobs/{id} (old)", f"/jobs/{old_id}"),
        Case("GET /jobs/{id} (recent)", f"/jobs/{recent_id}"),
        Case("GET /jobs/{id}/review", f"/jobs/{recent_id}/review"),
        Case("GET /stats", "/stats"),
        *(Case(f"GET /dashboard?hours={h}", f"/dashboard?hours={h}") for h in (24, 168, 720)),
        Case("GET /metrics?name=jobs_completed", "/metrics?name=jobs_completed"),
        Case("GET /metrics?name=job_duration", "/metrics?name=job_duration"),
        Case("GET /metrics (Prometheus)", "/metrics"),
        Case("GET /health", "/health"),
        Case("GET /dlq", "/dlq"),
        Case("GET /dlq?stage=printify", "/dlq?stage=printify"),
        Case("GET /dlq?jobId=", f"/dlq?jobId={recent_id}"),
        Case("GET /dlq?errorClass=PermanentError", "/dlq?errorClass=PermanentError"),
        Case("GET /alerts", "/alerts"),
        Case("GET /alerts?status=resolved", "/alerts?status=resolved"),
        Case("GET /alerts?severity=critical", "/alerts?severity=critical"),
        Case("GET /screening?days=7", "/screening?days=7"),
        Case("GET /screening?days=366", "/screening?days=366"),
        Case("GET /reviews", "/reviews"),
        Case("GET /sales", "/sales"),
        Case("GET /sales/series", "/sales/series"),
        Case("GET /workers", "/workers"),
    ]
    return cases


def time_reads(stack: Stack, cases: list[Case], requests: int) -> list[list[str]]:
    rows = []
    with httpx.Client(base_url=api(stack), timeout=120) as client:
        for case in cases:
            codes: set[int] = set()
            times: list[float] = []
            budget = time.monotonic() + BUDGET_S
            for i in range(requests + 3):
                if i > 5 and time.monotonic() > budget:
                    break  # a slow route: fewer samples rather than minutes per case
                start = time.perf_counter()
                resp = client.get(case.path, headers=case.headers)
                elapsed = time.perf_counter() - start
                codes.add(resp.status_code)
                if i >= 3:  # warm-up: connections, plans, caches
                    times.append(elapsed)
            rows.append(
                [
                    case.label + ("" if len(times) == requests else f" (n={len(times)})"),
                    ",".join(map(str, sorted(codes))),
                    f"{percentile(times, 0.5) * 1000:,.1f}",
                    f"{percentile(times, 0.95) * 1000:,.1f}",
                ]
            )
    return rows


def time_streams(stack: Stack, requests: int) -> list[list[str]]:
    """SSE: time to the first event of /events with a type or level filter, resumed a day back
    (a stream from now waits for new entries), and /jobs/{id}/events of an old job."""
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT seq FROM job_events WHERE occurred_at < now() - interval '1 day' "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        day_back = int(row[0]) if row else 0
        old = conn.execute("SELECT job_id FROM jobs ORDER BY created_at LIMIT 1").fetchone()
    cases = [
        ("SSE /events?type=product.published", f"/events?type=product.published&after={day_back}"),
        ("SSE /events?level=error", f"/events?level=error&after={day_back}"),
        ("SSE /events?type=job.failed", f"/events?type=job.failed&after={day_back}"),
        ("SSE /jobs/{id}/events (old)", f"/jobs/{old[0] if old else 'x'}/events"),
    ]
    rows = []
    # One client for every stream: making one (its TLS context) costs 10-200 ms, which the
    # first measurements here counted as the stream's.
    client = httpx.Client(base_url=api(stack), timeout=10)
    for label, path in cases:
        times = []
        code = 0
        for i in range(min(requests, 20) + 2):
            start = time.perf_counter()
            try:
                with client.stream("GET", path) as resp:
                    code = resp.status_code
                    for line in resp.iter_lines():
                        if line.startswith("data:"):
                            break
            except httpx.ReadTimeout:
                break  # no event within the timeout
            if i >= 2:
                times.append(time.perf_counter() - start)
        if not times:
            rows.append([label, "no event in 10 s", "-", "-"])
            continue
        rows.append(
            [
                label,
                str(code),
                f"{percentile(times, 0.5) * 1000:,.1f}",
                f"{percentile(times, 0.95) * 1000:,.1f}",
            ]
        )
    client.close()
    return rows


def explain_streams(stack: Stack) -> str:
    """EXPLAIN ANALYZE of the query a live /events stream re-runs (from now, by type, by level)."""
    out = []
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(job_events._NOW).fetchone()
        assert row
        horizon = int(row[0])
        for label, where, extra in (
            ("type", job_events._OF_TYPE, {"types": ["product.published"]}),
            ("level", job_events._AT_LEVEL, {"level": "error"}),
            ("type, a day back", job_events._OF_TYPE, {"types": ["job.failed"]}),
        ):
            params: dict[str, Any] = {"xid": horizon, "seq": 0, "limit": 200, **extra}
            if label.endswith("day back"):
                found = conn.execute(
                    "SELECT xid::text::bigint, seq FROM job_events "
                    "WHERE occurred_at < now() - interval '1 day' ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                if found:
                    params["xid"], params["seq"] = int(found[0]), int(found[1])
            plan = conn.execute(
                (
                    "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + job_events._AFTER.format(where=where)
                ).encode(),
                params,
            ).fetchall()
            out.append(f"-- /events ?{label}\n" + "\n".join(r[0] for r in plan))
    return "\n\n".join(out)


# --------------------------------------------------------------------------- main


def disk_table(dsn: str, jobs: int) -> str:
    sizes = disk(dsn)
    total = sum(s for _, s in sizes)
    rows = [[name, f"{size / 1e6:,.1f}", f"{size / max(jobs, 1):,.0f}"] for name, size in sizes
            if size > 1_000_000]  # fmt: skip
    rows.append(["total", f"{total / 1e6:,.1f}", f"{total / max(jobs, 1):,.0f}"])
    return table(f"Disk at {jobs:,} jobs (pg_total_relation_size)", ["table", "MB", "bytes/job"],
                 rows)  # fmt: skip


def build_or_reuse(
    stack: Stack, state: Path, jobs: int, rounds: int
) -> tuple[Recorded, BuildReport | None]:
    marker = state / "built.json"
    recorded_path = state / "templates.json"
    if recorded_path.exists():  # the templates ran (the slow part before the build)
        recorded = Recorded.load(recorded_path)
        if marker.exists():
            return recorded, None
    else:
        recorded = run_templates(stack, rounds)
        recorded.save(recorded_path)
    report = build(stack.database_url, recorded.job_ids, jobs)
    marker.write_text(json.dumps({"jobs": jobs, "seconds": report.seconds, "rows": report.rows}))
    return recorded, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the built database")
    parser.add_argument("--requests", type=int, default=50, help="per read case")
    parser.add_argument("--fold-jobs", type=int, default=200)
    parser.add_argument("--submits", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=8, help="write rounds per database")
    parser.add_argument("--templates", type=int, default=2, help="rounds of every job shape")
    parser.add_argument("--no-empty", action="store_true", help="skip the empty database")
    parser.add_argument("--no-reads", action="store_true", help="the writes only")
    parser.add_argument("--state", type=Path, help="the big database's folder (kept)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    state = args.state or ROOT / ".state" / "bench-scale" / str(args.jobs)
    if not args.reuse and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    with ExitStack() as stacks:
        stack = stacks.enter_context(running_stack(state))
        out.append(render(measure(stack.bootstrap, messages=100_000)))
        recorded, report = build_or_reuse(stack, state, args.jobs, args.templates)
        if report:
            out.append(
                table(
                    f"Build ({args.jobs:,} jobs from {len(recorded.job_ids)} real ones)",
                    ["table", "rows"],
                    [[t, f"{n:,}"] for t, n in report.rows.items()]
                    + [["build seconds", f"{report.seconds:,.0f}"]],
                )
            )
        out.append(disk_table(stack.database_url, args.jobs))
        if not args.no_reads:
            cases = read_cases(stack)
            out.append(
                table(
                    f"Reads at {args.jobs:,} jobs ({args.requests} requests each after 3 "
                    "warm-up; ms)",
                    ["route", "status", "p50", "p95"],
                    time_reads(stack, cases, args.requests) + time_streams(stack, args.requests),
                )
            )
            out.append(explain_streams(stack))
        # Both stacks up at once for the writes, measured in turns.
        sides = {"big": stack}
        if not args.no_empty:
            tmp = Path(stacks.enter_context(tempfile.TemporaryDirectory(prefix="pod-bench-scale-")))
            sides["empty"] = stacks.enter_context(running_stack(tmp))
        results = writes(sides, recorded, args.fold_jobs, args.submits, args.rounds)
    out.append(
        writes_table(
            results,
            f"Writes: empty vs {args.jobs:,} jobs, the monitor and the API alone ({args.rounds} "
            f"interleaved rounds of {args.fold_jobs} jobs' events replayed, {args.submits // 2} "
            f"submits from 1 client and {args.submits} from 8)",
        )
    )
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
