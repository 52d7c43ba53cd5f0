"""The shared Kafka runner: everything a stage service does besides its handler.

A stage is a typed async handler (input event -> output events, clients injected) plus settings.
The runner consumes the stage's input topics, validates each message, calls the handler, produces
the outputs with an idempotent producer (acks=all) and stores an input's offset only once that
input's outputs are acknowledged by the broker — at-least-once, nothing lost.

Concurrency: up to ``max_in_flight`` messages *per input band* are worked on at once, so a
backlog in one band never takes the slots of another (a high-priority job starts at once even
while the low band's slots are all busy). Completion may be out of order, so each partition keeps
an offset tracker (:mod:`.offsets`) and only its contiguous completed prefix is committed.
Fetched messages wait in a small buffer per band; when a band's buffer is full its partitions are
paused (backpressure), and free slots go to the highest band with work waiting (:mod:`.intake`).

Assignment: every instance must own partitions of every band, or a burst on one band lands on one
instance. Kafka 4's KIP-848 default assignor (``uniform``) hands out whole topics, so the runner
asks for ``range`` (per-topic ranges) under both group protocols.

Polling: a long poll (``poll_timeout_s``, ``fetch.wait.max.ms``) returns as soon as a message
arrives, so an idle stage costs almost nothing and a new high-priority job is still picked up at
once; pause/resume and delayed-retry wake-ups are driven from the event loop, not the poll, and
queued for the poll thread, which makes every consumer call (:mod:`.consumer`).

Failures: a message that cannot be parsed or validated goes to the stage's DLQ with the reason in
headers; a handler's permanent error too; a retryable error goes to the stage's delay topic for
its attempt and, after the last attempt, dead-lettered (:mod:`.failures`). The partition always
moves on. A delay topic's first message not yet due is held in memory while its partition is
paused, and started when due: no refetch, so the long poll never delays a retry's start.

Shutdown (SIGTERM, Ctrl+C): nothing new starts; a message that has sent nothing to a vendor and
is waiting for permission to (a rate budget, a throttle, the GPU queue) is handed back at once
(:mod:`shared.platform.handback`: cancelled, so not committed, not failed, read again by the
partition's next owner); the others get ``shutdown_grace_s`` to finish; then the finished prefix of
each partition is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from opentelemetry.trace import SpanKind

from shared.contract.events import (
    EVENT_TYPES,
    Event,
    parse_event,
)
from shared.contract.topics import HEARTBEATS, Stage, accepted_on
from shared.pipeline.runner.consumer import ConsumerCalls, consumer_config, describe_partitions
from shared.pipeline.runner.failures import (
    FailureRouter,
    attempt_of,
    coords,
    message_headers,
    retry_due,
)
from shared.pipeline.runner.heartbeat import RunnerStats, heartbeat_event
from shared.pipeline.runner.intake import Intake
from shared.pipeline.runner.model import E, Handler, MessageContext, Output, RunnerSettings
from shared.pipeline.runner.offsets import Key, OwnedPartitions
from shared.pipeline.runner.producer import close_producer, make_producer, produce_async
from shared.platform import handback, tracing, waits
from shared.platform.errors import InvalidEventError, PodError

logger = logging.getLogger(__name__)


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
        self._accepts: dict[str, tuple[type[Event], ...]] = {}
        # Band 0 is served first: the inputs the stage serves first (a seller's decisions: a
        # cancel must not wait behind a backlog), due retries (older than anything new), then
        # the inputs in their priority order. Each band has slots of its own as well.
        self.retry_topics = list(stage.retry_topics) if settings.retry_attempts else []
        self.input_topics = list(input_topics or stage.inputs)
        first = [t for t in self.input_topics if t in stage.served_first]
        bands = [
            *([t] for t in first),
            self.retry_topics,
            *([t] for t in self.input_topics if t not in first),
        ]
        self.instance_id = settings.instance_id or f"{stage.name}-{uuid.uuid4().hex[:8]}"
        self.group_id = f"{settings.group_id_prefix}.{stage.name}"
        self.stats = RunnerStats()

        self.offsets = OwnedPartitions()
        # Partitions assigned whose first message has not come yet: that message's wait is
        # logged, the one figure that tells a slow start-up fetch from a slow handler.
        self._unread: set[Key] = set()
        # Big enough that the half still buffered at a resume outlasts the refetch (up to
        # fetch.wait.max.ms) at hundreds of messages a second.
        self.intake: Intake[Message] = Intake(
            {t: i for i, group in enumerate(bands) for t in group},
            max_in_flight=settings.max_in_flight,
            buffer_max=settings.buffer_per_band or max(512, 4 * settings.max_in_flight),
        )
        self.calls = ConsumerCalls(stage.name)
        self._tasks: dict[asyncio.Task[None], int] = {}  # task -> its band
        self._deliveries: dict[asyncio.Task[None], handback.Delivery] = {}
        self._stop = asyncio.Event()
        self.failures = FailureRouter(
            stage, settings, self._produce, self.stats, stopping=self._stop.is_set
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._poll_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{stage.name}-poll")
        self._producer_thread: threading.Thread | None = None
        self._producer_stop = threading.Event()

    # --------------------------------------------------------- rebalance hooks
    # These run on the poll thread, inside consume().

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.offsets.assign(_keys(partitions))
        self._unread.update(_keys(partitions))
        self.intake.assigned()
        logger.info(
            "partitions assigned service=%s instance=%s partitions=%s",
            self.stage.name,
            self.instance_id,
            describe_partitions(partitions),
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit the finished prefix of what we give up; in-flight work on it may be redone by
        # the next owner (at-least-once), and its outputs carry the same derived event ids.
        # Stored offsets first: librdkafka's own commit on revoke must not send older ones.
        self.calls.apply(consumer)
        released = self._release(partitions)
        if released:
            try:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in released],
                    asynchronous=False,
                )
            except KafkaException as exc:
                logger.warning("commit on revoke failed error=%s", exc)
        logger.info(
            "partitions revoked service=%s instance=%s partitions=%s",
            self.stage.name,
            self.instance_id,
            describe_partitions(partitions),
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Someone else owns these now: commit nothing, forget everything.
        self._release(partitions)
        logger.warning(
            "partitions lost service=%s instance=%s partitions=%s",
            self.stage.name,
            self.instance_id,
            describe_partitions(partitions),
        )

    def _release(self, partitions: list[TopicPartition]) -> list[tuple[Key, int]]:
        keys = _keys(partitions)
        released = self.offsets.release(keys)
        self._unread.difference_update(keys)
        self.intake.forget(keys)
        self.calls.forget(keys)
        return released

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            logger.warning("offset commit failed error=%s", err)

    def _on_client_error(self, err: KafkaError) -> None:
        level = logging.ERROR if err.fatal() else logging.WARNING
        logger.log(level, "kafka client error service=%s error=%s", self.stage.name, err)

    # -------------------------------------------------------------- main loop

    def request_stop(self) -> None:
        """Ask the runner to drain and stop (safe from signal handlers on the loop). Messages
        waiting for permission to make their first vendor call are handed back now."""
        self._stop.set()
        handed = sum(1 for delivery in list(self._deliveries.values()) if delivery.hand_back())
        if handed:
            logger.info(
                "stopping: messages that sent nothing handed back service=%s count=%d",
                self.stage.name,
                handed,
            )

    async def run(self) -> None:
        """Consume until :meth:`request_stop`, then drain, commit, flush and return."""
        self._loop = asyncio.get_running_loop()
        self._start_clients()
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            while not self._stop.is_set():
                await self._poll_once()
                self._start_work()
                self._apply_backpressure()
        finally:
            heartbeat.cancel()
            await self._drain()

    def _start_clients(self) -> None:
        self._consumer = Consumer(
            consumer_config(
                self.settings,
                group_id=self.group_id,
                client_id=self.instance_id,
                on_commit=self._on_commit,
                error_cb=self._on_client_error,
            )
        )
        self._producer = make_producer(self.settings, client_id=self.instance_id)
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

    def _fetch(self, room: int, timeout: float) -> list[Message]:
        """On the poll thread: make the loop's queued consumer calls, then wait for one message
        (long poll) and take what else is ready.

        ``consume(n, t)`` would wait out its whole timeout unless ``n`` messages come; ``poll``
        returns at the first message, so the timeout is never a pickup latency.
        """
        assert self._consumer is not None
        self.calls.apply(self._consumer)
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        if room <= 1:
            return [first]
        return [first, *self._consumer.consume(min(room, 500) - 1, 0)]

    def _poll_timeout(self) -> float:
        # While a band is paused for backpressure its resume must not wait out a long poll;
        # otherwise sleep until a message comes or the next delayed retry is due.
        if self.intake.backpressured():
            return self.settings.busy_poll_s
        timeout = self.settings.poll_timeout_s
        first_due = self.intake.next_due()
        if first_due is not None:
            timeout = min(timeout, max(0.0, first_due - time.time()))
        return max(timeout, 0.001)

    async def _poll_once(self) -> None:
        assert self._consumer is not None and self._loop is not None
        # Keep polling even when full: the group needs us alive, and paused partitions
        # return nothing. librdkafka serves callbacks from this call.
        msgs = await self._loop.run_in_executor(
            self._poll_pool, self._fetch, max(1, self.intake.room()), self._poll_timeout()
        )
        now = time.time()
        released = self.intake.due(now)
        for key, head in released:
            self._accept(key, coords(head)[2], head)
        self.calls.resume([key for key, _head in released])
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume error service=%s error=%s", self.stage.name, err)
                continue
            topic, partition, offset = coords(msg)
            key = (topic, partition)
            if self.intake.is_delayed(key):
                continue  # fetched before the pause took effect: it comes again on resume
            if topic in self.retry_topics:
                due = retry_due(message_headers(msg), now, self.settings.retry_max_delay_s)
                if due > now:
                    # Wait for a delay-topic message by pausing its partition, never sleeping.
                    # The message itself is held: when due it starts at once, not a long poll
                    # later; the partition's next messages are read again after it.
                    self.calls.pause_at(key, offset + 1)
                    self.intake.delay(key, due, msg)
                    continue
            self._accept(key, offset, msg)

    def _accept(self, key: Key, offset: int, msg: Message) -> None:
        """Track a message and buffer it for its band, unless its partition was revoked since
        it was fetched (or held)."""
        if self.offsets.track(key, offset):
            self.intake.add(key, msg)
            if key in self._unread:
                self._unread.discard(key)
                _kind, stamp = msg.timestamp()
                logger.info(
                    "first message since assignment service=%s topic=%s partition=%d offset=%d "
                    "waited_ms=%d",
                    self.stage.name,
                    key[0],
                    key[1],
                    offset,
                    max(0, int(time.time() * 1000) - stamp) if stamp > 0 else -1,
                )

    def _start_work(self) -> None:
        """Start buffered work, highest band first, while its band has free slots."""
        if self._stop.is_set():
            return
        for band, msg in self.intake.take():
            task, delivery = handback.start(self._process(msg), stopping=self._stop.is_set)
            self._tasks[task] = band
            self._deliveries[task] = delivery
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        band = self._tasks.pop(task, None)
        self._deliveries.pop(task, None)
        if band is not None:
            self.intake.finished(band)
        if not task.cancelled() and task.exception() is not None:
            logger.error("runner task crashed", exc_info=task.exception())
        # A freed slot goes straight to the highest band waiting, without waiting for a poll.
        self._start_work()

    def _apply_backpressure(self) -> None:
        """Pause a band's partitions while its buffer is full; resume them once it has room."""
        to_pause, to_resume = self.intake.backpressure(self.offsets.owned)
        self.calls.pause(to_pause)
        self.calls.resume(to_resume)

    # ------------------------------------------------------------ processing

    async def _process(self, msg: Message) -> None:
        """Work on one message; whatever happens, it ends done (output, retry or dead letter)
        or, only while stopping, left for the next owner."""
        topic, partition, offset = coords(msg)
        try:
            done = await self._handle(msg)
        except asyncio.CancelledError:
            delivery = handback.current()
            if delivery is not None and delivery.handed_back:
                self.stats.handed_back += 1
                logger.info(
                    "handed back, nothing sent: left for the next owner topic=%s partition=%d "
                    "offset=%d",
                    topic,
                    partition,
                    offset,
                )
            raise
        except Exception as exc:
            # The failure path itself failed. No header, payload or vendor answer may leave
            # the offset behind for good.
            logger.exception(
                "failure handling failed topic=%s partition=%d offset=%d", topic, partition, offset
            )
            done = await self.failures.dead_letter(msg, exc, None, message_headers(msg))
        if done:
            self._mark_done(topic, partition, offset)

    async def _handle(self, msg: Message) -> bool:
        """Parse, run the handler, produce; route failures. True when the message is done."""
        headers = message_headers(msg)
        try:
            attempt = attempt_of(headers)
            event = self._parse(msg)
        except InvalidEventError as exc:
            return await self.failures.dead_letter(msg, exc, None, headers)
        ctx = MessageContext(*coords(msg), attempt, self.instance_id)
        # Whatever this message's work waits for is reported as the job's (the task is its own
        # context: nothing to reset).
        waits.working_for(event.job_id)
        try:
            # One span per message, in the trace the message carries (the job's).
            with tracing.span(
                f"{self.stage.name} handle",
                kind=SpanKind.CONSUMER,
                parent=tracing.context_from(headers),
                attributes={
                    "pod.job_id": event.job_id,
                    "pod.stage": self.stage.name,
                    "pod.attempt": attempt,
                    "messaging.destination.name": ctx.topic,
                    "messaging.kafka.partition": ctx.partition,
                    "messaging.kafka.offset": ctx.offset,
                },
            ):
                outputs = await self.handler(event, ctx)  # type: ignore[arg-type]
                await self._produce_all(outputs, tracing.headers_now())
            self.stats.processed += 1
            return True
        except Exception as exc:
            retryable = not isinstance(exc, PodError) or exc.retryable
            if retryable and self._stop.is_set():
                # Shutting down: leave it uncommitted so the next owner retries it.
                return False
            self.stats.failed += 1
            can_retry = retryable and attempt < self.settings.retry_attempts
            if can_retry and await self.failures.retry(msg, exc, event, attempt + 1, headers):
                return True
            return await self.failures.dead_letter(msg, exc, event, headers)

    def _parse(self, msg: Message) -> Event:
        """The stage's parser, with any failure of it (deep JSON's RecursionError, a bad
        encoding) turned into an invalid event rather than a crashed task."""
        try:
            return self.parse(msg, self.accepts(str(msg.topic())))
        except InvalidEventError:
            raise
        except (Exception, RecursionError) as exc:
            raise InvalidEventError(f"unreadable message: {type(exc).__name__}: {exc}") from None

    def accepts(self, topic: str) -> tuple[type[Event], ...]:
        """The event types this stage takes from ``topic``: what the registry says the topic
        carries (``shared.contract.topics.accepted_on``), narrowed to what the stage handles.
        Anything else there is forged or misrouted and is dead-lettered, never handled."""
        found = self._accepts.get(topic)
        if found is None:
            carried = accepted_on(topic)
            # A topic the registry does not know (a test's own) takes what the stage handles.
            found = (
                self.accept if carried is None else tuple(c for c in carried if c in self.accept)
            )
            self._accepts[topic] = found
        return found

    def _mark_done(self, topic: str, partition: int, offset: int) -> None:
        position = self.offsets.done((topic, partition), offset)
        if position is not None:
            # Stored by the poll thread before its next poll; auto-commit sends it.
            self.calls.store((topic, partition), position)

    async def _produce_all(
        self, outputs: Sequence[Output], headers: list[tuple[str, str | bytes | None]]
    ) -> None:
        if outputs:
            await asyncio.gather(
                *(
                    self._produce(
                        o.topic,
                        o.event.to_json(),
                        key=o.event.job_id.encode(),
                        headers=headers or None,
                    )
                    for o in outputs
                )
            )

    async def _produce(
        self,
        topic: str,
        value: bytes | None,
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
        # Delivery callbacks fire inside poll(), which returns at the first one: a long
        # timeout keeps them prompt and an idle process asleep.
        assert self._producer is not None
        while not self._producer_stop.is_set():
            self._producer.poll(1.0)

    # --------------------------------------------------------------- shutdown

    async def _drain(self) -> None:
        assert self._consumer is not None and self._producer is not None
        logger.info(
            "runner draining service=%s instance=%s in_flight=%d",
            self.stage.name,
            self.instance_id,
            len(self._tasks),
        )
        self.intake.clear()  # not started: left uncommitted for the next owner
        if self._tasks:
            _done, pending = await asyncio.wait(
                set(self._tasks), timeout=self.settings.shutdown_grace_s
            )
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("in-flight work abandoned at shutdown count=%d", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        # A last word for /workers; a broker that cannot take it must not stop the drain.
        try:
            await self._publish_heartbeat(stopping=True)
        except Exception as exc:
            logger.warning("final heartbeat not sent error=%s", type(exc).__name__)
        remaining = await asyncio.to_thread(self._producer.flush, 15)
        self._producer_stop.set()
        if self._producer_thread is not None:
            self._producer_thread.join(5)
        close_producer(self._producer, remaining)
        loop = asyncio.get_running_loop()
        # Commit and close on the poll thread: consumer calls stay on one thread.
        await loop.run_in_executor(self._poll_pool, self._commit_and_close)
        self._poll_pool.shutdown(wait=True)
        logger.info(
            "runner stopped service=%s instance=%s processed=%d failed=%d handed_back=%d "
            "unflushed=%d",
            self.stage.name,
            self.instance_id,
            self.stats.processed,
            self.stats.failed,
            self.stats.handed_back,
            remaining,
        )

    def _commit_and_close(self) -> None:
        assert self._consumer is not None
        # close() commits the stored offsets: they must be the newest, not a poll behind.
        self.calls.apply(self._consumer)
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.offsets.committable()]
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

    def pending(self, topic: str, partition: int) -> tuple[int, int | None]:
        """(offsets of the partition not yet committable, the position it may commit) — what
        ``_mark_done`` keeps; (0, None) for a partition not owned."""
        return self.offsets.pending((topic, partition))

    def paused(self) -> list[tuple[str, int]]:
        """The partitions paused for backpressure right now, sorted."""
        return self.intake.paused()

    def assignment(self) -> list[tuple[str, int]]:
        """The partitions this instance owns right now, sorted."""
        return self.offsets.owned()

    async def _publish_heartbeat(self, *, stopping: bool = False) -> None:
        event = heartbeat_event(
            service=self.stage.name,
            instance_id=self.instance_id,
            partitions=[f"{t}[{p}]" for t, p in self.assignment()],
            in_flight=len(self._tasks),
            stats=self.stats,
            stopping=stopping,
        )
        await asyncio.wait_for(
            self._produce(HEARTBEATS, event.to_json(), key=self.instance_id.encode()), 10
        )


def parse_message(msg: Message, accept: tuple[type[Event], ...]) -> Event:
    """The default parser: the message value is one event of an accepted type."""
    return parse_event(msg.value(), accept, topic=msg.topic())


def _keys(partitions: list[TopicPartition]) -> list[Key]:
    return [(tp.topic, tp.partition) for tp in partitions]


def install_signal_handlers(runner: StageRunner[Any]) -> None:
    """SIGTERM/SIGINT -> drain and stop (exit 0 once run() returns)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
