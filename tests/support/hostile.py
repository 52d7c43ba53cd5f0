"""Hostile load against a running stack: forged events from producers that may only submit
jobs, hostile HTTP clients, and beside them normal traffic whose outcome is measured.

Used by tests/services/test_hostile_e2e.py (which asserts outcomes) and bench/hostile.py
(which prints the figures). Three parts, each started and stopped by the caller:

- :class:`NormalTraffic`: good jobs through ``POST /jobs`` at a steady rate, each followed by
  an SSE stream to its end, ``GET /jobs/{id}`` latency sampled, ``/health`` polled.
- :class:`HostileProducers`: threads producing forged events with the submitter's client
  settings (:func:`tests.support.pipeline.submitter_config`), every message counted:
  acknowledged (with its partition and offset, to find it on a dead-letter topic later) or
  refused, and why.
- :class:`HostileHttp`: asyncio clients that hold SSE streams without reading, send requests
  slowly, lie about the Host, post forms and huge bodies, probe job ids, run filters and fetch
  thumbnails, every answer counted by outcome.

Every forged event names ``FORGED_PRODUCER`` as its producer, so whatever the monitor folded
from one can be found in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shared.contract.events import (
    ControlCommand,
    ControlCommandPayload,
    Event,
    ImageGenerated,
    ImageGeneratedPayload,
    JobRequested,
    JobRequestedPayload,
    JobRouting,
    PriceSummary,
    Priority,
    ProductCreated,
    ProductCreatedPayload,
    ProductPublished,
    ProductPublishedPayload,
    StageFailed,
    StageFailedPayload,
    WorkerHeartbeat,
    WorkerHeartbeatPayload,
)
from shared.contract.topics import (
    CONTROL,
    HEARTBEATS,
    IMAGES_GENERATED,
    JOBS_REQUESTED,
    PRODUCTS_CREATED,
    PUBLISHED,
    STAGES,
)
from shared.pipeline.runner import headers as hdr

logger = logging.getLogger(__name__)

FORGED_PRODUCER = "hostile"
# Where `make up` writes the submitter principal's librdkafka settings (issue 25, item 1).
# Just under the producer's default message.max.bytes (1,000,000): accepted by the broker, too
# big for a dead letter with its failure headers, so dead-lettered without its value.
OVERSIZED_BYTES = 999_000
# Every dead-letter topic of the pipeline, from the registry.
DLQ_TOPICS = tuple(sorted({s.dlq for s in STAGES.values()}))
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# ---------------------------------------------------------------------------------------------
# Normal traffic


@dataclass
class GoodJob:
    """A job submitted through the API, and what its SSE stream saw."""

    job_id: str
    theme: str
    count: int
    product_types: list[str]
    priority: str
    # The job.requested event's id, from the stream: what the stages derive output ids from.
    request_event_id: str | None = None
    streamed: list[tuple[int, str, str]] = field(default_factory=list)  # seq, event id, type
    ended: str | None = None
    reconnects: int = 0
    stream_errors: list[str] = field(default_factory=list)


@dataclass
class Sample:
    phase: str
    seconds: float
    outcome: str  # the status code, or the exception's class


def outcome_of(resp: httpx.Response) -> str:
    """A response as a countable outcome: its status, with the error code for a 5xx (a pool
    that ran dry answers ``503 database_unavailable``)."""
    if resp.status_code < 500:
        return str(resp.status_code)
    try:
        error = resp.json().get("error", "")
    except ValueError:
        error = ""
    return f"{resp.status_code} {error}".strip()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class NormalTraffic:
    """Good jobs submitted at a steady rate through the API and followed to their end; GET
    /jobs/{id} latency and /health sampled. Runs its own event loop in a thread."""

    def __init__(self, api: str, *, submit_every: float = 2.0, seed: int = 1) -> None:
        self.api = api
        self.submit_every = submit_every
        self.phase = "baseline"
        self.jobs: list[GoodJob] = []
        self.submit_failures: list[str] = []
        self.latency: list[Sample] = []
        self.health: list[Sample] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._submitting = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="normal-traffic", daemon=True)
        self._followers: list[asyncio.Task[None]] = []

    def start(self) -> NormalTraffic:
        self._submitting.set()
        self._thread.start()
        return self

    def known(self) -> list[GoodJob]:
        with self._lock:
            return list(self.jobs)

    def stop_submitting(self) -> None:
        self._submitting.clear()

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` for every stream to end, then stop sampling."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(j.ended is None for j in self.known()):
            self._stop.wait(0.2)
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=self.api, timeout=20, limits=limits) as client:
            tasks = [
                asyncio.create_task(self._submitter(client)),
                asyncio.create_task(self._sampler(client)),
                asyncio.create_task(self._health(client)),
            ]
            while not self._stop.is_set():
                await asyncio.sleep(0.1)
            for t in [*tasks, *self._followers]:
                t.cancel()
            await asyncio.gather(*tasks, *self._followers, return_exceptions=True)

    async def _submitter(self, client: httpx.AsyncClient) -> None:
        n = 0
        bands = [p.value for p in Priority]
        kinds = [["tshirt"], ["mug"], ["hoodie", "tshirt"]]
        while True:
            started = time.monotonic()
            if self._submitting.is_set():
                n += 1
                theme = f"goodtheme{uuid.uuid4().hex[:8]}"
                body = {
                    "theme": theme,
                    "style": "retro",
                    "niche": "astronomy",
                    "productTypes": kinds[n % len(kinds)],
                    "count": 1 + n % 2,
                    "autoPublish": n % 3 == 0,
                    "priority": bands[n % len(bands)],
                }
                try:
                    resp = await client.post("/jobs", json=body)
                except httpx.HTTPError as exc:
                    self.submit_failures.append(type(exc).__name__)
                else:
                    if resp.status_code == 202:
                        job = GoodJob(
                            resp.json()["jobId"],
                            theme,
                            int(body["count"]),  # type: ignore[call-overload]
                            list(body["productTypes"]),  # type: ignore[call-overload]
                            str(body["priority"]),
                        )
                        with self._lock:
                            self.jobs.append(job)
                        self._followers.append(asyncio.create_task(self._follow(client, job)))
                    else:
                        self.submit_failures.append(f"{resp.status_code} {resp.text[:200]}")
            await asyncio.sleep(max(0.0, self.submit_every - (time.monotonic() - started)))

    async def _follow(self, client: httpx.AsyncClient, job: GoodJob) -> None:
        """Follow the job's stream to ``end``, reconnecting with Last-Event-ID as a browser
        does when the stream breaks."""
        last: int | None = None
        while job.ended is None:
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            try:
                async with client.stream(
                    "GET", f"/jobs/{job.job_id}/events", headers=headers, timeout=None
                ) as resp:
                    if resp.status_code != 200:
                        job.stream_errors.append(f"status {resp.status_code}")
                        await asyncio.sleep(0.5)
                        continue
                    event: dict[str, str] = {}
                    async for line in resp.aiter_lines():
                        if line:
                            name, _, value = line.partition(":")
                            event[name] = value.removeprefix(" ")
                            continue
                        if event.get("event") == "end":
                            job.ended = json.loads(event.get("data", "{}")).get("status", "?")
                            break
                        if "id" in event and "data" in event:
                            data = json.loads(event["data"])
                            last = int(event["id"])
                            job.streamed.append((last, data["eventId"], data["type"]))
                            if data["type"] == "job.requested" and job.request_event_id is None:
                                job.request_event_id = data["eventId"]
                        event = {}
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                job.stream_errors.append(type(exc).__name__)
            if job.ended is None:
                job.reconnects += 1
                await asyncio.sleep(0.2)

    async def _sampler(self, client: httpx.AsyncClient) -> None:
        while True:
            jobs = self.known()
            if jobs:
                job = self._rng.choice(jobs)
                phase = self.phase
                started = time.monotonic()
                try:
                    outcome = outcome_of(await client.get(f"/jobs/{job.job_id}"))
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.latency.append(Sample(phase, time.monotonic() - started, outcome))
            await asyncio.sleep(0.2)

    async def _health(self, client: httpx.AsyncClient) -> None:
        while True:
            phase = self.phase
            started = time.monotonic()
            try:
                outcome = outcome_of(await client.get("/health"))
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            self.health.append(Sample(phase, time.monotonic() - started, outcome))
            await asyncio.sleep(1.0)

    def p95(self, phase: str) -> float | None:
        """p95 of GET /jobs/{id} in ``phase`` (answered ones only), in seconds."""
        return percentile([s.seconds for s in self.latency if s.phase == phase], 0.95)


# ---------------------------------------------------------------------------------------------
# Forged events


@dataclass
class Forged:
    """One forged message and what became of it at the broker."""

    kind: str
    topic: str
    # A token in its value that identifies it on a dead-letter topic (its event id, or a
    # nonce); None where the value is not unique (a squatted id is also the real event's).
    token: str | None
    partition: int | None = None
    offset: int | None = None
    error: str | None = None  # the broker's (or the client's) refusal

    @property
    def accepted(self) -> bool:
        return self.offset is not None


@dataclass(frozen=True)
class Outgoing:
    kind: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]
    token: str | None


def _stamp(event: Event) -> tuple[bytes, str]:
    return event.to_json(), str(event.event_id)


def _job_topic(job: GoodJob) -> str:
    return JOBS_REQUESTED[Priority(job.priority)]


def _image(job: GoodJob, index: int) -> ImageGeneratedPayload:
    return ImageGeneratedPayload(
        image_index=index,
        image_count=job.count,
        sha256=f"{index:064x}",
        uri="file:///forged.png",
        width=8,
        height=8,
        prompt="forged",
        seed=index,
        title="forged art",
        description="forged",
        routing=JobRouting(product_types=job.product_types),
    )


def _product(job: GoodJob, index: int) -> ProductCreatedPayload:
    return ProductCreatedPayload(
        image_index=index,
        product_type=job.product_types[0],
        product_id=f"forged-{uuid.uuid4().hex[:8]}",
        shop_id="1",
        blueprint_id=6,
        print_provider_id=99,
        variant_count=1,
        title="forged",
        routing=JobRouting(product_types=[job.product_types[0]]),
        prices=PriceSummary(price_min_cents=100),
    )


def _event(cls: type[Event], job_id: str, payload: Any) -> Event:
    return cls(job_id=job_id, producer=FORGED_PRODUCER, payload=payload)  # type: ignore[call-arg]  # subclasses default `type`


def _on(kind: str, job: GoodJob, default: str) -> str:
    """The topic a ``kind@topic`` forgery goes to: the job's request topic or ``default``."""
    return _job_topic(job) if kind.endswith("jobs.requested") else default


def _one(kind: str, topic: str, job: GoodJob, event: Event) -> list[Outgoing]:
    """One stamped forged event on ``topic`` under the job's key."""
    value, token = _stamp(event)
    return [Outgoing(kind, topic, job.job_id.encode(), value, [], token)]


def _forge_stage_failed(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    payload = StageFailedPayload(
        stage="generator", error_class="PermanentError", message="forged failure"
    )
    event = _event(StageFailed, job.job_id, payload)
    return _one(kind, _on(kind, job, IMAGES_GENERATED), job, event)


def _forge_image(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    event = _event(ImageGenerated, job.job_id, _image(job, 999))
    return _one(kind, _on(kind, job, IMAGES_GENERATED), job, event)


def _forge_product_created(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    event = _event(ProductCreated, job.job_id, _product(job, 999))
    topic = PUBLISHED if kind.endswith("published") else PRODUCTS_CREATED
    return _one(kind, topic, job, event)


def _forge_product_published(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    published = ProductPublishedPayload(
        image_index=0,
        product_type=job.product_types[0],
        product_id="forged",
        shop_id="1",
    )
    event = _event(ProductPublished, job.job_id, published)
    return _one(kind, _on(kind, job, PUBLISHED), job, event)


def _forge_heartbeat(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    instance = f"{FORGED_PRODUCER}-{n}"
    beat = WorkerHeartbeatPayload(
        service="generator",
        instance_id=instance,
        host="evil",
        pid=1,
        started_at=datetime.now(UTC),
    )
    value, token = _stamp(_event(WorkerHeartbeat, instance, beat))
    topic = _on(kind, job, HEARTBEATS)
    return [Outgoing(kind, topic, instance.encode(), value, [], token)]


def _forge_control(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    scale = ControlCommandPayload(action="scale", service="generator", worker_count=0)
    event = _event(ControlCommand, f"{FORGED_PRODUCER}-control", scale)
    return _one(kind, _on(kind, job, CONTROL), job, event)


def _forge_second_request(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    # The victim's id with another request: must be refused, the first job untouched.
    request = JobRequestedPayload(
        theme=f"hijacked{uuid.uuid4().hex[:8]}",
        style="stolen",
        niche="nowhere",
        product_types=["mug"],
        count=job.count + 1,
        priority=Priority.HIGH,
        submitted_by="attacker",
    )
    event = _event(JobRequested, job.job_id, request)
    return _one(kind, JOBS_REQUESTED[Priority.HIGH], job, event)


def _forge_claimed_origin(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    # A control command that says it came from the control topic: once dead-lettered, a
    # replay must still go to a declared input of the stage, never to pod.control.
    scale = ControlCommandPayload(action="scale", service="generator", worker_count=0)
    event = _event(ControlCommand, f"{FORGED_PRODUCER}-replay-{uuid.uuid4().hex[:8]}", scale)
    value, token = _stamp(event)
    if n % 2:
        # Half of them break the contract too (a count below zero): the monitor records such
        # a letter at once, for no job, so it is listed and replayable straight away.
        broken = json.loads(value)
        broken["payload"]["worker_count"] = -1
        value = json.dumps(broken).encode()
    headers: list[tuple[str, str | bytes | None]] = [
        (hdr.ORIGINAL_TOPIC, CONTROL.encode()),
        (hdr.ORIGINAL_PARTITION, b"0"),
        (hdr.ORIGINAL_OFFSET, b"0"),
    ]
    return [Outgoing(kind, _job_topic(job), event.job_id.encode(), value, headers, token)]


def _forge_squat(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    # The ids the generator will give the job's images: claimed first, by someone else.
    if job.request_event_id is None:
        return []
    parent = JobRequested(
        event_id=uuid.UUID(job.request_event_id),
        job_id=job.job_id,
        producer="api",
        payload=JobRequestedPayload(
            theme=job.theme,
            style="retro",
            niche="astronomy",
            product_types=job.product_types,
            count=job.count,
        ),
    )
    topic = _on(kind, job, IMAGES_GENERATED)
    out = []
    for i in range(job.count):
        event = parent.derive(
            ImageGenerated, _image(job, i), producer=FORGED_PRODUCER, key=f"image:{i}"
        )
        out.append(Outgoing(kind, topic, job.job_id.encode(), event.to_json(), [], None))
    return out


def _forge_malformed(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    nonce = str(uuid.uuid4())
    value = b'{"event_id": "' + nonce.encode() + b'", "type": "stage.failed", "job_id": '
    topic = _on(kind, job, IMAGES_GENERATED)
    return [Outgoing(kind, topic, job.job_id.encode(), value, [], nonce)]


def _forge_oversized(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    payload = StageFailedPayload(stage="generator", error_class="PermanentError", message="")
    event = _event(StageFailed, job.job_id, payload)
    body = event.to_json()
    pad = OVERSIZED_BYTES - len(body)
    value = body.replace(b'"message":""', b'"message":"' + b"x" * pad + b'"')
    key = job.job_id.encode()
    return [Outgoing(kind, _job_topic(job), key, value, [], str(event.event_id))]


# Each forging kind's maker, by the start of the kind's name.
_FORGERS: dict[str, Callable[[str, GoodJob, int], list[Outgoing]]] = {
    "stage.failed@": _forge_stage_failed,
    "image.generated#999@": _forge_image,
    "product.created@": _forge_product_created,
    "product.published@": _forge_product_published,
    "worker.heartbeat@": _forge_heartbeat,
    "control.command@": _forge_control,
    "job.requested#second": _forge_second_request,
    "header:original-topic=pod.control": _forge_claimed_origin,
    "squat:": _forge_squat,
    "malformed@": _forge_malformed,
    "oversized@jobs.requested": _forge_oversized,
}


def forge(kind: str, job: GoodJob, n: int) -> list[Outgoing]:
    """The message(s) of one forging ``kind`` against ``job`` (``n``: the producer's number)."""
    for prefix, make in _FORGERS.items():
        if kind.startswith(prefix):
            return make(kind, job, n)
    raise ValueError(f"unknown forging kind {kind}")


FORGE_KINDS = (
    "stage.failed@jobs.requested",
    "stage.failed@images.generated",
    "image.generated#999@jobs.requested",
    "image.generated#999@images.generated",
    "product.created@published",
    "product.created@products.created",
    "product.published@published",
    "product.published@jobs.requested",
    "worker.heartbeat@workers.heartbeat",
    "worker.heartbeat@jobs.requested",
    "control.command@pod.control",
    "control.command@jobs.requested",
    "job.requested#second",
    "header:original-topic=pod.control",
    "squat:image.generated@images.generated",
    "squat:image.generated@jobs.requested",
    "malformed@jobs.requested",
    "malformed@images.generated",
)
# Each producer sends one of these once (they are heavy).
RARE_KINDS = ("oversized@jobs.requested",)


class HostileProducers:
    """``count`` producer threads forging events against the good jobs until stopped."""

    def __init__(
        self,
        config: Mapping[str, str | int | float | bool],
        targets: Callable[[], list[GoodJob]],
        *,
        count: int = 30,
        every: float = 0.5,
        kinds: tuple[str, ...] = FORGE_KINDS + RARE_KINDS,
    ) -> None:
        unknown = set(kinds) - set(FORGE_KINDS + RARE_KINDS)
        if unknown or not kinds:
            raise ValueError(f"unknown forging kinds {sorted(unknown)}")
        self.kinds = tuple(k for k in kinds if k in FORGE_KINDS)
        self.rare = tuple(k for k in kinds if k in RARE_KINDS)
        self.config = config
        self.targets = targets
        self.count = count
        self.every = every
        self.sent: list[Forged] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"hostile-producer-{n}")
            for n in range(count)
        ]

    def start(self) -> HostileProducers:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[Forged]:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        return self.sent

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        # Its own client, as 30 independent systems would have; no retries past a refusal.
        producer = Producer(
            {**self.config, "linger.ms": 5, "message.timeout.ms": 20000, "log_level": 0}
        )
        step = n  # producers start at different kinds, so every kind is sent from the start
        while not self._stop.is_set():
            jobs = self.targets()
            if jobs:
                if self.rare and (step == n + 10 or not self.kinds):
                    kind = self.rare[step % len(self.rare)]
                else:
                    kind = self.kinds[step % len(self.kinds)]
                for out in forge(kind, rng.choice(jobs), n):
                    self._produce(producer, out)
                step += 1
            producer.poll(0)
            self._stop.wait(self.every * rng.uniform(0.5, 1.5))
        producer.flush(30)

    def _produce(self, producer: Producer, out: Outgoing) -> None:
        record = Forged(out.kind, out.topic, out.token)
        with self._lock:
            self.sent.append(record)

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                record.error = err.name()
            else:
                record.partition, record.offset = msg.partition(), msg.offset()

        try:
            producer.produce(
                out.topic, out.value, key=out.key, headers=out.headers, on_delivery=delivered
            )
        except BufferError:
            record.error = "local queue full"
        except KafkaException as exc:  # refused by the client before sending
            record.error = exc.args[0].name() if exc.args else type(exc).__name__


def by_kind(sent: Iterable[Forged]) -> dict[str, Counter[str]]:
    """Per kind: how many sent, acknowledged, and refused (by error name)."""
    out: dict[str, Counter[str]] = {}
    for f in sent:
        c = out.setdefault(f.kind, Counter())
        c["sent"] += 1
        if f.accepted:
            c["accepted"] += 1
        elif f.error is not None:
            c[f"refused {f.error}"] += 1
        else:
            c["unacknowledged"] += 1
    return out


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    original: tuple[str, int, int] | None
    reason: str
    tokens: frozenset[str]


def dead_letter(msg: Message) -> DeadLetter:
    pairs = msg.headers() or []
    assert isinstance(pairs, list)  # a consumed message's headers: (name, value) pairs
    headers = {k: v.decode(errors="replace") if isinstance(v, bytes) else "" for k, v in pairs}
    original = None
    with contextlib.suppress(KeyError, ValueError):
        original = (
            headers[hdr.ORIGINAL_TOPIC],
            int(headers[hdr.ORIGINAL_PARTITION]),
            int(headers[hdr.ORIGINAL_OFFSET]),
        )
    value = msg.value() or b""
    tokens = frozenset(m.decode() for m in _UUID.findall(value[:4096]))
    return DeadLetter(str(msg.topic()), original, headers.get(hdr.ERROR_MESSAGE, ""), tokens)


def unaccounted(accepted: list[Forged], letters: list[DeadLetter]) -> list[Forged]:
    """The accepted forged messages on no dead-letter topic with a reason: matched by where
    they were produced (the dead letter's original coordinates), else by their token."""
    coords = {d.original for d in letters if d.reason and d.original is not None}
    tokens = {t for d in letters if d.reason for t in d.tokens}
    return [
        f
        for f in accepted
        if (f.topic, f.partition, f.offset) not in coords
        and (f.token is None or f.token not in tokens)
    ]


# ---------------------------------------------------------------------------------------------
# Hostile HTTP clients

HTTP_KINDS = (
    "sse-hold",
    "slowloris",
    "bad-host",
    "form-post",
    "huge-body",
    "probe-job-events",
    "filter-q",
    "filter-type",
    "thumbnail",
)
HUGE_BODY_BYTES = 4 * 1024 * 1024
# Requests the API must refuse whatever the load: another site's Host (DNS rebinding), a form
# (a cross-site post), a body over the limit, a job nobody has.
MUST_REFUSE = ("bad-host", "form-post", "huge-body", "probe-job-events")


class HostileHttp:
    """``count`` hostile clients, each doing one kind of thing (round robin over
    :data:`HTTP_KINDS`) until stopped. Runs its own event loop in a thread."""

    def __init__(self, api: str, targets: Callable[[], list[GoodJob]], *, count: int = 200) -> None:
        self.api = api
        self.targets = targets
        self.count = count
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-http", daemon=True)
        url = httpx.URL(api)
        self._host, self._port = str(url.host), int(url.port or 80)

    def start(self) -> HostileHttp:
        self._thread.start()
        return self

    def stop(self) -> Counter[tuple[str, str]]:
        self._stop.set()
        self._thread.join(60)
        return self.outcomes

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        async with httpx.AsyncClient(base_url=self.api, timeout=10, limits=limits) as client:
            tasks = [
                asyncio.create_task(self._client(client, HTTP_KINDS[i % len(HTTP_KINDS)], i))
                for i in range(self.count)
            ]
            while not self._stop.is_set():
                await asyncio.sleep(0.1)
            # Held streams and slow requests see the stop within a few seconds and count
            # themselves; whatever is still waiting for an answer then is cut off.
            _done, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _job(self, rng: random.Random) -> str:
        jobs = self.targets()
        return rng.choice(jobs).job_id if jobs else str(uuid.uuid4())

    async def _client(self, client: httpx.AsyncClient, kind: str, n: int) -> None:
        rng = random.Random(1000 + n)
        await asyncio.sleep(rng.uniform(0, 2))  # not all at once
        while not self._stop.is_set():
            try:
                outcome = await self._once(client, kind, rng)
            except (httpx.HTTPError, OSError) as exc:
                outcome = type(exc).__name__
            if outcome is not None:
                self.outcomes[(kind, outcome)] += 1
            if not self._stop.is_set():
                await asyncio.sleep(rng.uniform(1.0, 3.0))

    async def _once(self, client: httpx.AsyncClient, kind: str, rng: random.Random) -> str | None:
        """One hostile request; its outcome (None: counted already)."""
        if kind == "sse-hold":
            # Open a stream and never read it: the server's writes pile up until it gives up.
            path = "/events" if rng.random() < 0.5 else f"/jobs/{self._job(rng)}/events"
            async with client.stream("GET", path, timeout=httpx.Timeout(10, read=None)) as r:
                # Counted once open: it may be held until the attack ends.
                self.outcomes[(kind, outcome_of(r))] += 1
                while not self._stop.is_set() and r.status_code == 200:
                    await asyncio.sleep(0.5)
                return None
        if kind == "slowloris":
            return await self._slowloris()
        if kind == "bad-host":
            r = await client.get("/jobs", headers={"Host": "attacker.example"})
            return outcome_of(r)
        if kind == "form-post":
            form = {"theme": "csrf", "style": "s", "niche": "n", "productTypes": "mug"}
            return outcome_of(await client.post("/jobs", data=form))
        if kind == "huge-body":
            body = b'{"theme": "' + b"x" * HUGE_BODY_BYTES + b'"}'
            headers = {"Content-Type": "application/json"}
            return outcome_of(await client.post("/jobs", content=body, headers=headers))
        if kind == "probe-job-events":
            async with client.stream("GET", f"/jobs/{uuid.uuid4()}/events") as r:
                return outcome_of(r)
        if kind == "filter-q":
            q = uuid.uuid4().hex[: rng.randint(1, 12)]
            return outcome_of(await client.get("/jobs", params={"q": q, "limit": 100}))
        if kind == "filter-type":
            types = [f"no.such.{uuid.uuid4().hex[:6]}", "product.published"]
            async with client.stream("GET", "/events", params={"type": types, "after": 0}) as r:
                status = outcome_of(r)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        async for _ in r.aiter_bytes():
                            pass
                return status
        if kind == "thumbnail":
            return outcome_of(await client.get(f"/jobs/{self._job(rng)}/images/0"))
        raise ValueError(f"unknown client kind {kind}")

    async def _slowloris(self) -> str:
        """A request sent one header line every 2 s that never ends: ``closed`` when the
        server hung up, ``held`` when it was still waiting when the attack ended."""
        reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            writer.write(f"GET /jobs HTTP/1.1\r\nHost: {self._host}\r\n".encode())
            await writer.drain()
            i = 0
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        if not await reader.read(1024):
                            return "closed"
                        return "answered"
                writer.write(f"X-Slow-{i}: {i}\r\n".encode())
                await writer.drain()
                i += 1
            return "held"
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def http_summary(outcomes: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (kind, outcome), n in sorted(outcomes.items()):
        out.setdefault(kind, {})[outcome] = n
    return out


# ---------------------------------------------------------------------------------------------
# A whole run: baseline, attack, settle; and what it found


@dataclass
class Attack:
    """What a run sent; the traffic goes on until :func:`settle` finishes it."""

    traffic: NormalTraffic
    forged: list[Forged]
    http: Counter[tuple[str, str]]
    seconds: float


def attack(
    api: str,
    submitter: Mapping[str, str | int | float | bool],
    *,
    baseline_s: float,
    attack_s: float,
    producers: int = 30,
    clients: int = 200,
    submit_every: float = 2.0,
    kinds: tuple[str, ...] = FORGE_KINDS + RARE_KINDS,
) -> Attack:
    """Normal traffic alone for ``baseline_s``, then beside the hostile producers and
    clients for ``attack_s`` (0: no attack at all, the harness checked on its own)."""
    traffic = NormalTraffic(api, submit_every=submit_every).start()
    done = threading.Event()
    done.wait(baseline_s)  # a measured phase of fixed length, not a wait for a condition
    forged: list[Forged] = []
    http: Counter[tuple[str, str]] = Counter()
    if attack_s > 0:
        traffic.phase = "attack"
        forgers = HostileProducers(submitter, traffic.known, count=producers, kinds=kinds)
        forgers.start()
        hostile = HostileHttp(api, traffic.known, count=clients).start()
        done.wait(attack_s)
        forged = forgers.stop()
        http = hostile.stop()
    traffic.stop_submitting()
    traffic.phase = "after"
    logger.info(
        "hostile attack over good_jobs=%d forged=%d http_requests=%d",
        len(traffic.known()),
        len(forged),
        sum(http.values()),
    )
    return Attack(traffic, forged, http, attack_s)


@dataclass
class Findings:
    """What the stack made of a run: each list names what went wrong (empty: held)."""

    figures: dict[str, Any]
    unfinished: list[str]  # good jobs not completed with their own art and products
    folded: list[str]  # forged events the monitor folded, and other state they changed
    not_dead_lettered: list[str]  # accepted forged messages on no dead-letter topic
    pool: list[str]  # GET /jobs/{id} or /health answers that were not 200
    streams: list[str]  # a good job's stream missed, repeated or invented an event
    replays: list[str]  # a replay that went where the headers said

    def failed_checks(self) -> dict[str, list[str]]:
        """Each check that found something, with what it found."""
        checks = {
            "every good job completed with its own art and products": self.unfinished,
            "no forged event folded": self.folded,
            "every accepted forged message dead-lettered with a reason": self.not_dead_lettered,
            "the API answered throughout (pool never exhausted) and refused what it must": (
                self.pool
            ),
            "every stream saw each of its job's events once": self.streams,
            "replays go only to the stage's inputs": self.replays,
        }
        return {name: found for name, found in checks.items() if found}


def _job_problems(job: GoodJob, detail: dict[str, Any] | None) -> list[str]:
    if detail is None:
        return [f"job {job.job_id}: not found"]
    j = detail["job"]
    out = []
    if j["detailedStatus"] != "completed":
        out.append(f"job {job.job_id}: {j['detailedStatus']} (error: {j.get('error')})")
    if j["theme"] != job.theme:
        out.append(f"job {job.job_id}: theme {j['theme']!r} is not its own {job.theme!r}")
    images = detail["images"]
    if sorted(i["imageIndex"] for i in images) != list(range(job.count)):
        indexes = [i["imageIndex"] for i in images]
        out.append(f"job {job.job_id}: images {indexes}, asked for {job.count}")
    for i in images:
        # The simulated copywriter writes the job's theme into every brief's tags.
        if job.theme not in " ".join([i["prompt"], i["title"], *i["tags"]]):
            out.append(f"job {job.job_id}: image {i['imageIndex']} is not of its theme")
    products = detail["products"]
    want = sorted((i, t) for i in range(job.count) for t in job.product_types)
    got = sorted((p["imageIndex"], p["productType"]) for p in products)
    if got != want:
        out.append(f"job {job.job_id}: products {got}, asked for {want}")
    return out


_TERMINAL = {"completed", "partial", "failed"}


def _status_of(detail: dict[str, Any] | None) -> str | None:
    return (detail or {}).get("job", {}).get("status")


def _wait_terminal(
    client: httpx.Client, jobs: list[GoodJob], timeout: float
) -> dict[str, dict[str, Any] | None]:
    """Each good job's last answer, polled until every one has ended or ``timeout``."""
    details: dict[str, dict[str, Any] | None] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in jobs:
            if _status_of(details.get(job.job_id)) in _TERMINAL:
                continue
            resp = client.get(f"/jobs/{job.job_id}")
            details[job.job_id] = resp.json() if resp.status_code == 200 else None
        if all(_status_of(d) in _TERMINAL for d in details.values()):
            break
        time.sleep(0.5)
    return details


@dataclass
class _Folded:
    """What the monitor wrote to the database for the run."""

    forged_rows: list[tuple[str, int]]  # job_events of the forged producer: (type, count)
    workers: list[str]  # workers rows a forged heartbeat made
    stored: dict[str, dict[str, int]]  # job_id -> event_id -> seq, for the good jobs
    types: dict[str, str]  # event_id -> type

    @property
    def problems(self) -> list[str]:
        folded = [f"folded {n} forged {t} event(s)" for t, n in self.forged_rows]
        return folded + [f"forged heartbeat made worker {w}" for w in self.workers]


def _read_folded(database_url: str, jobs: list[GoodJob]) -> _Folded:
    import psycopg  # the stack's database, read as the monitor wrote it

    with psycopg.connect(database_url, autocommit=True) as db:
        forged_rows = db.execute(
            "SELECT type, count(*) FROM job_events WHERE producer = %s GROUP BY type",
            (FORGED_PRODUCER,),
        ).fetchall()
        workers = db.execute(
            "SELECT instance_id FROM workers WHERE instance_id LIKE %s",
            (f"{FORGED_PRODUCER}-%",),
        ).fetchall()
        stored: dict[str, dict[str, int]] = {}
        types: dict[str, str] = {}
        for job_id, event_id, seq, kind in db.execute(
            "SELECT job_id, event_id::text, seq, type FROM job_events WHERE job_id = ANY(%s)",
            ([j.job_id for j in jobs],),
        ).fetchall():
            stored.setdefault(job_id, {})[event_id] = seq
            types[event_id] = kind
    return _Folded([(t, n) for t, n in forged_rows], [w for (w,) in workers], stored, types)


def _undead(run: Attack, bootstrap: str, timeout: float) -> list[Forged]:
    """The accepted forged messages on no dead-letter topic once ``timeout`` has passed."""
    from tests.support.infra import read_all

    accepted = [f for f in run.forged if f.accepted]
    missing: list[Forged] = list(accepted)

    def all_dead_lettered() -> bool:
        nonlocal missing
        letters = [dead_letter(m) for t in DLQ_TOPICS for m in read_all(bootstrap, t)]
        missing = unaccounted(accepted, letters)
        return not missing

    deadline = time.monotonic() + (timeout if accepted else 0)
    while not all_dead_lettered() and time.monotonic() < deadline:
        time.sleep(1)
    return missing


def _pool_problems(run: Attack) -> list[str]:
    """Answers that were not 200 to the normal traffic, and hostile requests let through."""
    traffic = run.traffic
    pool = [
        f"GET /jobs/{{id}} answered {o} {n} time(s) ({phase})"
        for (phase, o), n in Counter(
            (s.phase, s.outcome) for s in traffic.latency if s.outcome != "200"
        ).items()
    ]
    pool += [
        f"/health answered {o} {n} time(s) ({phase})"
        for (phase, o), n in Counter(
            (s.phase, s.outcome) for s in traffic.health if s.outcome != "200"
        ).items()
    ]
    pool += [
        f"{kind} answered {o} {n} time(s): it must be refused"
        for (kind, o), n in sorted(run.http.items())
        if kind in MUST_REFUSE and o.startswith("2")
    ]
    exhausted = sum(n for (_k, o), n in run.http.items() if "database_unavailable" in o)
    if exhausted:
        pool.append(f"hostile clients got 503 database_unavailable {exhausted} time(s)")
    return pool


def _stream_problems(job: GoodJob, in_db: dict[str, int], types: dict[str, str]) -> list[str]:
    """What the job's SSE stream missed, repeated or invented against what was folded."""
    out = []
    seen = [e for _seq, e, _t in job.streamed]
    repeated = sorted({e for e in seen if seen.count(e) > 1})
    last = max((seq for seq, _e, _t in job.streamed), default=0)
    # Skipped: behind what the stream had reached (it will never come); late: folded
    # after the stream said the job was over.
    skipped = sorted(e for e, seq in in_db.items() if seq <= last and e not in seen)
    late = Counter(types[e] for e, seq in in_db.items() if seq > last)
    if job.ended is None:
        out.append(f"job {job.job_id}: stream never ended ({job.stream_errors})")
    if repeated:
        out.append(f"job {job.job_id}: stream repeated {repeated[:5]}")
    if skipped:
        out.append(f"job {job.job_id}: stream skipped {skipped[:5]}")
    if late and job.ended is not None:
        out.append(f"job {job.job_id}: folded after its stream ended: {dict(late)}")
    if set(seen) - set(in_db):
        out.append(f"job {job.job_id}: stream sent {sorted(set(seen) - set(in_db))}")
    return out


def settle(
    run: Attack,
    api: str,
    bootstrap: str,
    database_url: str,
    *,
    timeout: float = 90,
) -> Findings:
    """Wait (up to ``timeout`` each) for the good jobs to end and the forged messages to reach
    a dead-letter topic, then check everything against the database and the topics."""
    traffic = run.traffic
    jobs = traffic.known()
    with httpx.Client(base_url=api, timeout=20) as client:
        details = _wait_terminal(client, jobs, timeout)
        traffic.finish(15)

        unfinished = [p for job in jobs for p in _job_problems(job, details.get(job.job_id))]
        if traffic.submit_failures:
            unfinished.append(f"submissions refused: {Counter(traffic.submit_failures)}")
        folded = _read_folded(database_url, jobs)
        missing = _undead(run, bootstrap, timeout / 2)
        not_dead_lettered = [
            f"{n} accepted forged {kind} message(s) on no dead-letter topic"
            for kind, n in sorted(Counter(f.kind for f in missing).items())
        ]
        streams = [
            p
            for job in jobs
            for p in _stream_problems(job, folded.stored.get(job.job_id, {}), folded.types)
        ]
        replays = replay_forged_targets(client, bootstrap, database_url, run.forged)

    return Findings(
        figures=_figures(run, jobs, details, unfinished, folded, missing),
        unfinished=unfinished,
        folded=folded.problems,
        not_dead_lettered=not_dead_lettered,
        pool=_pool_problems(run),
        streams=streams,
        replays=replays,
    )


def _figures(
    run: Attack,
    jobs: list[GoodJob],
    details: dict[str, dict[str, Any] | None],
    unfinished: list[str],
    folded: _Folded,
    missing: list[Forged],
) -> dict[str, Any]:
    traffic = run.traffic
    latency = traffic.latency
    accepted = [f for f in run.forged if f.accepted]
    return {
        "attack_seconds": run.seconds,
        "good_jobs": len(jobs),
        "good_jobs_completed": sum(
            1
            for j in jobs
            if (details.get(j.job_id) or {}).get("job", {}).get("detailedStatus") == "completed"
        ),
        "good_jobs_intact": len(jobs) - len({p.split(":")[0] for p in unfinished}),
        "forged_sent": len(run.forged),
        "forged_refused_by_broker": sum(1 for f in run.forged if f.error is not None),
        "forged_accepted": len(accepted),
        "forged_dead_lettered": len(accepted) - len(missing),
        "forged_folded": sum(n for _t, n in folded.forged_rows),
        "forged_by_kind": {k: dict(c) for k, c in sorted(by_kind(run.forged).items())},
        "http_hostile_requests": sum(run.http.values()),
        "http_hostile_by_outcome": http_summary(run.http),
        "get_job_samples": {
            p: sum(1 for s in latency if s.phase == p) for p in ("baseline", "attack")
        },
        "get_job_p95_ms_baseline": _ms(traffic.p95("baseline")),
        "get_job_p95_ms_attack": _ms(traffic.p95("attack")),
        "sse_reconnects": sum(j.reconnects for j in jobs),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def replay_forged_targets(
    client: httpx.Client, bootstrap: str, database_url: str, forged: list[Forged]
) -> list[str]:
    """Replay the dead letters of the control commands that claimed to come from the control
    topic (the operator's ``pod dlq replay``), and check none of them reached it."""
    import psycopg

    from tests.support.infra import read_all

    tokens = {
        f.token for f in forged if f.kind == "header:original-topic=pod.control" and f.accepted
    }
    if not tokens:
        return []

    def letters() -> list[int]:
        with psycopg.connect(database_url, autocommit=True) as db:
            return [
                row[0]
                for row in db.execute(
                    # The generator's first: the stage whose input the forgery was produced on.
                    "SELECT id FROM dead_letters WHERE job_id LIKE %s OR original_topic = %s"
                    " ORDER BY (stage = 'generator') DESC, id LIMIT 10",
                    (f"{FORGED_PRODUCER}-replay-%", CONTROL),
                ).fetchall()
            ]

    # The monitor records a dead letter a moment after it is on the topic.
    deadline = time.monotonic() + 30
    while not (ids := letters()) and time.monotonic() < deadline:
        time.sleep(0.5)
    out = []
    if not ids:
        out.append("no dead letter recorded for the commands that claimed pod.control")
    for letter in ids:
        resp = client.post("/dlq/replay", json={"id": letter})
        logger.info("forged letter replayed id=%d status=%d answer=%s", letter, resp.status_code,
                    resp.text[:300])  # fmt: skip
        if resp.status_code >= 500:
            out.append(f"replay of dead letter {letter} answered {resp.status_code}")
    reached = [m for m in read_all(bootstrap, CONTROL) if set(dead_letter(m).tokens) & tokens]
    if reached:
        out.append(f"{len(reached)} forged control command(s) reached {CONTROL} by a replay")
    return out
