"""The shared Kafka runner: everything a stage service does besides its handler.

A stage is a typed async handler (input event -> output events, clients injected) plus settings.
The runner consumes the stage's input topics, validates each message, calls the handler, produces
the outputs with an idempotent producer (acks=all) and stores an input's offset only once that
input's outputs are acknowledged by the broker — at-least-once, nothing lost.

Concurrency: up to ``max_in_flight`` messages are worked on at once. Completion may be out of
order, so each partition keeps an :class:`OffsetTracker` and only its contiguous completed prefix
is committed. Fetched messages wait in a small buffer per input band; when a band's buffer is full
its partitions are paused (backpressure), and a free slot always goes to the highest band with
work waiting (priority topics: a backlog in a low band never holds back a high one by more than
the work already in flight).

Failures: a message that cannot be parsed or validated goes to the stage's DLQ with the reason in
headers; a handler's permanent error too; a retryable error is retried with backoff (issue #4
moves this onto delay topics) and then dead-lettered. The partition always moves on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import Field

from shared.errors import InvalidEventError, PodError
from shared.events import (
    EVENT_TYPES,
    Event,
    WorkerHeartbeat,
    WorkerHeartbeatPayload,
    parse_event,
)
from shared.settings import KafkaSettings
from shared.topics import HEARTBEATS, RETRY_LEVELS, Stage

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Output:
    """One event a handler wants produced, and the topic it goes to."""

    topic: str
    event: Event


@dataclass(frozen=True)
class MessageContext:
    """Where the input came from; handlers use it for logs and idempotency keys."""

    topic: str
    partition: int
    offset: int
    attempt: int
    instance_id: str


Handler = Callable[[E, MessageContext], Awaitable[Sequence[Output]]]


class RunnerSettings(KafkaSettings):
    """Knobs of the shared runner (each service's settings extend this)."""

    max_in_flight: int = Field(default=64, ge=1, le=10_000)
    buffer_per_band: int = Field(default=0, ge=0, description="0 = max_in_flight")
    # Non-blocking retries through the stage's delay topics (the seed's 3 retries, 60 s base).
    retry_attempts: int = Field(default=3, ge=0, le=50)
    retry_base_delay_s: float = Field(default=60.0, ge=0)
    retry_max_delay_s: float = Field(default=3600.0, ge=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    commit_interval_ms: int = Field(default=500, ge=50)
    fetch_wait_max_ms: int = Field(default=50, ge=1, le=5000)
    instance_id: str | None = None
    group_id_prefix: str = "pod"
    # The KIP-848 protocol (`consumer`) rebalances incrementally; `classic` for older brokers.
    group_protocol: str = Field(default="consumer", pattern="^(consumer|classic)$")


class OffsetTracker:
    """Offsets of one partition that are in flight; tells the committable position."""

    def __init__(self) -> None:
        self._pending: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self.committable: int | None = None  # next offset to consume after the done prefix

    def add(self, offset: int) -> None:
        self._pending[offset] = False

    def done(self, offset: int) -> int | None:
        """Mark ``offset`` finished; return the new committable position if it advanced."""
        if offset not in self._pending:
            return None
        self._pending[offset] = True
        advanced = None
        while self._pending:
            first, finished = next(iter(self._pending.items()))
            if not finished:
                break
            self._pending.popitem(last=False)
            advanced = first + 1
        if advanced is not None:
            self.committable = advanced
        return advanced

    def __len__(self) -> int:
        return len(self._pending)


@dataclass
class _Work:
    message: Message
    band: int


@dataclass
class RunnerStats:
    """Counters reported in heartbeats."""

    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class StageRunner(Generic[E]):
    """Runs one stage handler against Kafka until stopped."""

    def __init__(
        self,
        *,
        stage: Stage,
        handler: Handler[E],
        settings: RunnerSettings,
        accept: tuple[type[Event], ...] = EVENT_TYPES,
        input_topics: Sequence[str] | None = None,
        parse: Callable[[Message, tuple[type[Event], ...]], Event] | None = None,
    ) -> None:
        self.stage = stage
        # How a message becomes an event; the monitor reads DLQ records (headers + raw value).
        self.parse = parse or parse_message
        self.handler = handler
        self.settings = settings
        self.accept = accept
        # Band 0 is served first: due retries (older than anything new), then the inputs in
        # their priority order.
        self.retry_topics = list(stage.retry_topics) if settings.retry_attempts else []
        self.input_topics = list(input_topics or stage.inputs)
        bands = [self.retry_topics, *([t] for t in self.input_topics)]
        self._band = {t: i for i, group in enumerate(bands) for t in group}
        self._n_bands = len(bands)
        self.instance_id = settings.instance_id or f"{stage.name}-{uuid.uuid4().hex[:8]}"
        self.group_id = f"{settings.group_id_prefix}.{stage.name}"
        self.stats = RunnerStats()

        self._lock = threading.Lock()  # guards trackers/assignment across poll and loop threads
        self._trackers: dict[tuple[str, int], OffsetTracker] = {}
        self._assigned: set[tuple[str, int]] = set()
        self._paused: set[tuple[str, int]] = set()
        self._buffers: list[collections.deque[_Work]] = [
            collections.deque() for _ in range(self._n_bands)
        ]
        # Delay-topic partitions paused until their head message is due (epoch seconds).
        self._delayed: dict[tuple[str, int], float] = {}
        self._buffer_max = settings.buffer_per_band or settings.max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._poll_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{stage.name}-poll")
        self._producer_thread: threading.Thread | None = None
        self._producer_stop = threading.Event()

    # ------------------------------------------------------------------ clients

    def _make_consumer(self) -> Consumer:
        cfg: dict[str, Any] = {
            **self.settings.client_config(),
            "group.id": self.group_id,
            "group.protocol": self.settings.group_protocol,
            "client.id": self.instance_id,
            "auto.offset.reset": "earliest",
            # Offsets are stored by us once outputs are acked; librdkafka commits what is stored.
            "enable.auto.commit": True,
            "auto.commit.interval.ms": self.settings.commit_interval_ms,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            # A new message on an idle partition (a high-priority job) is seen within this.
            "fetch.wait.max.ms": self.settings.fetch_wait_max_ms,
            "on_commit": self._on_commit,
            "error_cb": self._on_client_error,
        }
        if self.settings.group_protocol == "classic":
            cfg["partition.assignment.strategy"] = "cooperative-sticky"
            cfg["session.timeout.ms"] = 10_000
        return Consumer(cfg)

    def _make_producer(self) -> Producer:
        return make_producer(self.settings, client_id=self.instance_id)

    # --------------------------------------------------------- rebalance hooks
    # These run on the poll thread, inside consume().

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                key = (tp.topic, tp.partition)
                self._assigned.add(key)
                self._trackers[key] = OffsetTracker()
        logger.info(
            "partitions assigned service=%s instance=%s partitions=%s",
            self.stage.name,
            self.instance_id,
            _fmt(partitions),
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit the finished prefix of what we give up; in-flight work on it may be redone by
        # the next owner (at-least-once), and its outputs carry the same derived event ids.
        to_commit = []
        with self._lock:
            for tp in partitions:
                key = (tp.topic, tp.partition)
                tracker = self._trackers.pop(key, None)
                self._assigned.discard(key)
                self._paused.discard(key)
                self._delayed.pop(key, None)
                if tracker is not None and tracker.committable is not None:
                    to_commit.append(TopicPartition(tp.topic, tp.partition, tracker.committable))
            self._drop_buffered(partitions)
        if to_commit:
            try:
                consumer.commit(offsets=to_commit, asynchronous=False)
            except KafkaException as exc:
                logger.warning("commit on revoke failed error=%s", exc)
        logger.info(
            "partitions revoked service=%s instance=%s partitions=%s",
            self.stage.name,
            self.instance_id,
            _fmt(partitions),
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Someone else owns these now: commit nothing, forget everything.
        with self._lock:
            for tp in partitions:
                key = (tp.topic, tp.partition)
                self._trackers.pop(key, None)
                self._assigned.discard(key)
                self._paused.discard(key)
                self._delayed.pop(key, None)
            self._drop_buffered(partitions)
        logger.warning(
            "partitions lost service=%s instance=%s partitions=%s",
            self.stage.name,
            self.instance_id,
            _fmt(partitions),
        )

    def _drop_buffered(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for buf in self._buffers:
            kept = [w for w in buf if (w.message.topic(), w.message.partition()) not in gone]
            buf.clear()
            buf.extend(kept)

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            logger.warning("offset commit failed error=%s", err)

    def _on_client_error(self, err: KafkaError) -> None:
        level = logging.ERROR if err.fatal() else logging.WARNING
        logger.log(level, "kafka client error service=%s error=%s", self.stage.name, err)

    # -------------------------------------------------------------- main loop

    def request_stop(self) -> None:
        """Ask the runner to drain and stop (safe from signal handlers on the loop)."""
        self._stop.set()

    async def run(self) -> None:
        """Consume until :meth:`request_stop`, then drain, commit, flush and return."""
        self._loop = asyncio.get_running_loop()
        self._consumer = self._make_consumer()
        self._producer = self._make_producer()
        self._producer_thread = threading.Thread(
            target=self._pump_producer, name=f"{self.stage.name}-producer", daemon=True
        )
        self._producer_thread.start()
        self._consumer.subscribe(
            [*self.retry_topics, *self.input_topics],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        logger.info(
            "runner started service=%s instance=%s group=%s topics=%s max_in_flight=%d",
            self.stage.name,
            self.instance_id,
            self.group_id,
            ",".join(self.input_topics),
            self.settings.max_in_flight,
        )
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            while not self._stop.is_set():
                self._resume_due()
                await self._poll_once()
                self._start_work()
                self._apply_backpressure()
        finally:
            heartbeat.cancel()
            await self._drain()

    async def _poll_once(self) -> None:
        assert self._consumer is not None and self._loop is not None
        room = sum(self._buffer_max - len(b) for b in self._buffers)
        # Keep polling even when full: the group needs us alive, and paused partitions
        # return nothing. librdkafka serves callbacks from this call.
        msgs: list[Message] = await self._loop.run_in_executor(
            self._poll_pool, self._consumer.consume, max(1, min(room, 500)), 0.05
        )
        now = time.time()
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume error service=%s error=%s", self.stage.name, err)
                continue
            topic, partition, offset = _coords(msg)
            if (topic, partition) in self._delayed:
                continue  # fetched before the pause took effect: it comes again on resume
            if self._band.get(topic) == 0 and self.retry_topics:
                due = int(_headers(msg).get("pod.retry.due", "0") or 0) / 1000
                if due > now:
                    self._delay_partition(topic, partition, offset, due)
                    continue
            with self._lock:
                tracker = self._trackers.get((topic, partition))
                if tracker is None:  # revoked between fetch and now
                    continue
                tracker.add(offset)
                band = self._band.get(topic, 0)
                self._buffers[band].append(_Work(msg, band))

    def _start_work(self) -> None:
        while len(self._tasks) < self.settings.max_in_flight and not self._stop.is_set():
            with self._lock:
                work = next((buf.popleft() for buf in self._buffers if buf), None)
            if work is None:
                return
            task = asyncio.create_task(self._process(work.message))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("runner task crashed", exc_info=task.exception())
        # A freed slot goes straight to the highest band waiting, without waiting for a poll.
        self._start_work()

    def _delay_partition(self, topic: str, partition: int, offset: int, due: float) -> None:
        """Wait for a delay-topic message by pausing its partition, never by sleeping."""
        assert self._consumer is not None
        tp = TopicPartition(topic, partition, offset)
        try:
            self._consumer.pause([tp])
            self._consumer.seek(tp)  # read it again once resumed
        except KafkaException as exc:
            logger.warning(
                "delay pause failed topic=%s partition=%d error=%s", topic, partition, exc
            )
            return
        with self._lock:
            self._delayed[(topic, partition)] = due
            self._paused.discard((topic, partition))

    def _resume_due(self) -> None:
        if not self._delayed:
            return
        assert self._consumer is not None
        now = time.time()
        with self._lock:
            due = [k for k, at in self._delayed.items() if at <= now]
            for key in due:
                del self._delayed[key]
        if due:
            try:
                self._consumer.resume([TopicPartition(t, p) for t, p in due])
            except KafkaException as exc:
                logger.warning("delay resume failed error=%s", exc)

    def _apply_backpressure(self) -> None:
        assert self._consumer is not None
        to_pause, to_resume = [], []
        with self._lock:
            for key in self._assigned:
                if key in self._delayed:
                    continue
                band = self._band.get(key[0], 0)
                full = len(self._buffers[band]) >= self._buffer_max
                if full and key not in self._paused:
                    to_pause.append(TopicPartition(*key))
                    self._paused.add(key)
                elif not full and key in self._paused:
                    to_resume.append(TopicPartition(*key))
                    self._paused.discard(key)
        if to_pause:
            self._consumer.pause(to_pause)
        if to_resume:
            self._consumer.resume(to_resume)

    # ------------------------------------------------------------ processing

    async def _process(self, msg: Message) -> None:
        topic, partition, offset = _coords(msg)
        headers = _headers(msg)
        attempt = int(headers.get("pod.attempt", "0") or 0)
        try:
            event = self.parse(msg, self.accept)
        except InvalidEventError as exc:
            await self._dead_letter(msg, exc, None, headers)
            self._mark_done(topic, partition, offset)
            return
        ctx = MessageContext(topic, partition, offset, attempt, self.instance_id)
        try:
            outputs = await self.handler(event, ctx)  # type: ignore[arg-type]
            await self._produce_all(outputs)
            self.stats.processed += 1
        except Exception as exc:
            retryable = not isinstance(exc, PodError) or exc.retryable
            if retryable and self._stop.is_set():
                # Shutting down: leave it uncommitted so the next owner retries it.
                return
            self.stats.failed += 1
            if retryable and attempt < self.settings.retry_attempts:
                await self._schedule_retry(msg, exc, event, attempt + 1, headers)
            else:
                await self._dead_letter(msg, exc, event, headers)
        self._mark_done(topic, partition, offset)

    async def _schedule_retry(
        self,
        msg: Message,
        exc: BaseException,
        event: Event,
        attempt: int,
        headers: dict[str, str],
    ) -> None:
        """Hand the message to the delay topic of its next attempt; the partition moves on."""
        delay = _backoff(attempt, self.settings.retry_base_delay_s, self.settings.retry_max_delay_s)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        due = datetime.now(UTC).timestamp() + delay
        level = min(attempt, RETRY_LEVELS)
        retry_topic = self.stage.retry_topic(level)
        out = _failure_headers(msg, exc, headers, self.stage.name)
        out += [
            ("pod.attempt", str(attempt).encode()),
            ("pod.retry.due", str(int(due * 1000)).encode()),
        ]
        logger.warning(
            "retry scheduled job_id=%s topic=%s partition=%d offset=%d attempt=%d "
            "delay_s=%.2f retry_topic=%s error=%s",
            event.job_id,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            attempt,
            delay,
            retry_topic,
            _describe(exc),
        )
        await self._produce(retry_topic, msg.value() or b"", key=msg.key(), headers=out)

    def _mark_done(self, topic: str, partition: int, offset: int) -> None:
        assert self._consumer is not None
        with self._lock:
            tracker = self._trackers.get((topic, partition))
            if tracker is None:
                return  # revoked or lost meanwhile: the new owner takes it from the last commit
            position = tracker.done(offset)
            if position is not None:
                try:
                    self._consumer.store_offsets(
                        offsets=[TopicPartition(topic, partition, position)]
                    )
                except KafkaException as exc:
                    logger.warning(
                        "store offset failed topic=%s partition=%d offset=%d error=%s",
                        topic,
                        partition,
                        position,
                        exc,
                    )

    async def _dead_letter(
        self,
        msg: Message,
        exc: BaseException,
        event: Event | None,
        headers: dict[str, str],
    ) -> None:
        self.stats.dead_lettered += 1
        out = _failure_headers(msg, exc, headers, self.stage.name)
        out.append(("pod.attempt", headers.get("pod.attempt", "0").encode()))
        topic, partition, offset = _coords(msg)
        logger.error(
            "dead-lettered job_id=%s topic=%s partition=%d offset=%d dlq=%s attempts=%s error=%s",
            event.job_id if event else "-",
            topic,
            partition,
            offset,
            self.stage.dlq,
            headers.get("pod.attempt", "0"),
            _describe(exc),
        )
        await self._produce(self.stage.dlq, msg.value() or b"", key=msg.key(), headers=out)

    async def _produce_all(self, outputs: Sequence[Output]) -> None:
        if outputs:
            await asyncio.gather(
                *(
                    self._produce(o.topic, o.event.to_json(), key=o.event.job_id.encode())
                    for o in outputs
                )
            )

    async def _produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Produce one message and wait until the broker acknowledged it (acks=all)."""
        assert self._producer is not None and self._loop is not None
        fut = await produce_async(
            self._producer, self._loop, topic, value, key=key, headers=headers
        )
        await fut

    def _pump_producer(self) -> None:
        # Delivery callbacks fire inside poll(); a dedicated thread keeps them prompt.
        assert self._producer is not None
        while not self._producer_stop.is_set():
            self._producer.poll(0.05)

    # --------------------------------------------------------------- shutdown

    async def _drain(self) -> None:
        assert self._consumer is not None and self._producer is not None
        logger.info(
            "runner draining service=%s instance=%s in_flight=%d",
            self.stage.name,
            self.instance_id,
            len(self._tasks),
        )
        with self._lock:
            for buf in self._buffers:
                buf.clear()  # not started: left uncommitted for the next owner
        if self._tasks:
            _done, pending = await asyncio.wait(
                set(self._tasks), timeout=self.settings.shutdown_grace_s
            )
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("in-flight work abandoned at shutdown count=%d", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        await self._publish_heartbeat(stopping=True)
        remaining = await asyncio.to_thread(self._producer.flush, 15)
        self._producer_stop.set()
        if self._producer_thread is not None:
            self._producer_thread.join(5)
        loop = asyncio.get_running_loop()
        # Commit and close on the poll thread: consumer calls stay on one thread.
        await loop.run_in_executor(self._poll_pool, self._commit_and_close)
        self._poll_pool.shutdown(wait=True)
        logger.info(
            "runner stopped service=%s instance=%s processed=%d failed=%d unflushed=%d",
            self.stage.name,
            self.instance_id,
            self.stats.processed,
            self.stats.failed,
            remaining,
        )

    def _commit_and_close(self) -> None:
        assert self._consumer is not None
        with self._lock:
            offsets = [
                TopicPartition(t, p, tr.committable)
                for (t, p), tr in self._trackers.items()
                if tr.committable is not None
            ]
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                logger.warning("final commit failed error=%s", exc)
        self._consumer.close()

    # -------------------------------------------------------------- heartbeat

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self._publish_heartbeat()
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def _publish_heartbeat(self, *, stopping: bool = False) -> None:
        with self._lock:
            partitions = sorted(f"{t}[{p}]" for t, p in self._assigned)
        payload = WorkerHeartbeatPayload(
            service=self.stage.name,
            instance_id=self.instance_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            partitions=partitions,
            in_flight=len(self._tasks),
            processed=self.stats.processed,
            failed=self.stats.failed,
            started_at=self.stats.started_at,
            stopping=stopping,
        )
        event = WorkerHeartbeat(job_id=self.instance_id, producer=self.instance_id, payload=payload)
        await asyncio.wait_for(
            self._produce(HEARTBEATS, event.to_json(), key=self.instance_id.encode()), 10
        )


# ------------------------------------------------------------------- helpers


def parse_message(msg: Message, accept: tuple[type[Event], ...]) -> Event:
    """The default parser: the message value is one event of an accepted type."""
    return parse_event(msg.value(), accept)


def make_producer(settings: KafkaSettings, *, client_id: str) -> Producer:
    """An idempotent producer (acks=all) tuned for low latency; shared by runner and API."""
    return Producer(
        {
            **settings.client_config(),
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
            "delivery.timeout.ms": 120_000,
            "error_cb": lambda err: logger.warning("kafka producer error error=%s", err),
        }
    )


async def produce_async(
    producer: Producer,
    loop: asyncio.AbstractEventLoop,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> asyncio.Future[Message]:
    """Enqueue one message; the returned future resolves when the broker acknowledged it.

    Someone must call ``producer.poll()`` for the delivery callback to fire (the runner has a
    thread for it). Waits, rather than fails, while the local queue is full.
    """
    fut: asyncio.Future[Message] = loop.create_future()

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            loop.call_soon_threadsafe(_set_exception, fut, KafkaException(err))
        else:
            loop.call_soon_threadsafe(_set_result, fut, msg)

    while True:
        try:
            producer.produce(topic, value, key=key, headers=headers, on_delivery=on_delivery)
            return fut
        except BufferError:
            await asyncio.sleep(0.01)


def _set_result(fut: asyncio.Future[Message], msg: Message) -> None:
    if not fut.done():
        fut.set_result(msg)


def _set_exception(fut: asyncio.Future[Message], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _backoff(attempt: int, base: float, cap: float) -> float:
    # Exponential with full jitter: spreads retries of a failed burst over time.
    return float(min(cap, base * (2 ** (attempt - 1))) * (0.5 + random.random() / 2))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PodError):
        return exc.describe()
    return f"{type(exc).__name__}: {exc}"


def _headers(msg: Message) -> dict[str, str]:
    pairs: list[tuple[str, bytes | None]] = list(msg.headers() or [])  # type: ignore[arg-type]
    return {k: v.decode(errors="replace") if v else "" for k, v in pairs}


def _failure_headers(
    msg: Message, exc: BaseException, headers: dict[str, str], stage: str
) -> list[tuple[str, str | bytes | None]]:
    """Why and where a message failed; the original coordinates survive every retry hop."""
    topic, partition, offset = _coords(msg)
    now = datetime.now(UTC).isoformat()
    return [
        ("pod.error.class", type(exc).__name__.encode()),
        ("pod.error.message", _describe(exc)[:4000].encode()),
        ("pod.error.retryable", b"true" if getattr(exc, "retryable", True) else b"false"),
        ("pod.original.topic", headers.get("pod.original.topic", topic).encode()),
        ("pod.original.partition", headers.get("pod.original.partition", str(partition)).encode()),
        ("pod.original.offset", headers.get("pod.original.offset", str(offset)).encode()),
        ("pod.first.failure.at", headers.get("pod.first.failure.at", now).encode()),
        ("pod.stage", stage.encode()),
        ("pod.failed.at", now.encode()),
    ]


def _coords(msg: Message) -> tuple[str, int, int]:
    # A consumed (non-error) message always has all three.
    return str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)


def _fmt(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


def install_signal_handlers(runner: StageRunner[Any]) -> None:
    """SIGTERM/SIGINT -> drain and stop (exit 0 once run() returns)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
