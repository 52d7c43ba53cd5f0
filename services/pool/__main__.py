"""``python -m services.pool``: the worker-pool manager of one deployment.

Runs WORKER_COUNT instances of every stage as child processes, restarts one that dies, and
carries out the ``/scale`` and ``/workers/{id}/restart`` commands the API puts on the control
topic. ``make up`` runs it; so does compose (the stage processes live in its container). It
reports itself with a heartbeat (service ``pool``), which is how the API knows a manager is
there to act on a command. SIGTERM stops every instance gracefully, then the manager.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from types import FrameType

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from services.pool.settings import PoolSettings
from services.pool.supervisor import WorkerPool
from shared.contract.events import (
    ControlCommand,
    PoolScaled,
    PoolScaledPayload,
    WorkerExited,
    WorkerExitedPayload,
    WorkerHeartbeat,
    WorkerHeartbeatPayload,
    parse_event,
)
from shared.contract.topics import CONTROL, HEARTBEATS, accepted_on
from shared.pipeline.acls import POOL_GROUP_PREFIX
from shared.pipeline.runner import make_producer
from shared.platform.errors import ConfigError, InvalidEventError
from shared.platform.lifecycle import bind_to_parent, parent_gone, watch_parent
from shared.platform.logs import setup_logging
from shared.platform.settings import load_settings

logger = logging.getLogger("services.pool")

SERVICE = "pool"


def _partitions(consumer: Consumer, stop: threading.Event) -> list[int]:
    """The control topic's partitions, once the broker knows the topic (or [] when stopped)."""
    while not stop.is_set():
        try:
            topic = consumer.list_topics(CONTROL, timeout=5.0).topics.get(CONTROL)
        except KafkaException as exc:
            logger.warning("control topic unknown yet error=%s", exc)
            topic = None
        if topic is not None and topic.error is None and topic.partitions:
            return sorted(topic.partitions)
        stop.wait(1.0)
    return []


# What the control topic carries (the registry's): anything else there is ignored, said why.
_CONTROL_EVENTS = accepted_on(CONTROL) or ()


def listen(
    settings: PoolSettings, commands: queue.Queue[ControlCommand], stop: threading.Event
) -> None:
    """Put the control topic's commands on ``commands`` (sent while this manager runs)."""
    consumer = Consumer(
        {
            **settings.client_config(),
            # Required by the client, never joined: the partitions are assigned, not subscribed
            # to, so an idle manager sends no group heartbeats (a third of its requests).
            "group.id": f"{POOL_GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            # Commands are rare: a long poll still returns at once when one comes, and an idle
            # manager's empty fetches (librdkafka's default: two a second) cost the broker.
            "fetch.wait.max.ms": 5000,
        }
    )
    # From the end: only commands sent from now on.
    consumer.assign([TopicPartition(CONTROL, p, OFFSET_END) for p in _partitions(consumer, stop)])
    try:
        while not stop.is_set():
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            try:
                command = parse_event(msg.value(), _CONTROL_EVENTS, topic=CONTROL)
            except InvalidEventError as exc:
                logger.warning("control message ignored error=%s", exc)
                continue
            commands.put(command)  # type: ignore[arg-type]
    finally:
        consumer.close()


def heartbeat(producer: Producer, pool: WorkerPool, instance_id: str, started: datetime) -> None:
    """Tell the monitor (and so the API) that this manager is alive, and what it runs."""
    status = pool.status()["instances"]
    payload = WorkerHeartbeatPayload(
        service=SERVICE,
        instance_id=instance_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        partitions=[],
        in_flight=sum(1 for s in status if s["running"]),
        processed=sum(int(s["restarts"]) for s in status),
        failed=sum(1 for s in status if s["failed"]),
        started_at=started,
        stopping=pool.stopping,
    )
    event = WorkerHeartbeat(job_id=instance_id, producer=instance_id, payload=payload)
    producer.produce(HEARTBEATS, event.to_json(), key=instance_id.encode())
    producer.poll(0)


def report(
    producer: Producer,
    event_cls: type[WorkerExited] | type[PoolScaled],
    payload: WorkerExitedPayload | PoolScaledPayload,
    instance_id: str,
) -> None:
    """Tell the monitor what happened to the pool (a death, a scale): it raises the alerts."""
    event = event_cls(job_id=instance_id, producer=instance_id, payload=payload)
    # On the workers' topic, keyed by the pool: in order with the pool's own heartbeats.
    producer.produce(HEARTBEATS, event.to_json(), key=instance_id.encode())
    producer.poll(0)


def main() -> int:
    """Run the pool until SIGTERM/SIGINT; 2 = invalid configuration."""
    setup_logging(SERVICE)
    bind_to_parent()
    watch_parent()
    try:
        settings = load_settings(PoolSettings)
    except ConfigError as exc:
        logger.error("cannot start service=pool error=%s", exc)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    instance_id = f"pool-{settings.pool_id or socket.gethostname()}"
    pool = WorkerPool(settings)
    commands: queue.Queue[ControlCommand] = queue.Queue()
    listener = threading.Thread(
        target=listen, args=(settings, commands, stop), name="pool-control", daemon=True
    )
    producer = make_producer(settings, client_id=instance_id)
    started = datetime.now(UTC)
    try:
        pool.start()
        listener.start()
        logger.info(
            "pool manager running instance=%s instances=%d", instance_id, len(pool.instances)
        )
        next_beat = 0.0
        while not stop.wait(0.5):
            for death in pool.supervise_once():
                report(producer, WorkerExited, death, instance_id)
            while not commands.empty():
                pool.apply(commands.get_nowait())
            for scaled in pool.scaled:
                report(producer, PoolScaled, scaled, instance_id)
            pool.scaled.clear()
            now = time.monotonic()
            if now >= next_beat:
                heartbeat(producer, pool, instance_id, started)
                next_beat = now + settings.heartbeat_interval_s
    finally:
        logger.info("pool manager stopping instances=%d", len(pool.instances))
        orphaned = parent_gone()
        if orphaned:
            logger.warning(
                "supervisor gone: stopping the stages without a full drain timeout_s=%g",
                settings.orphan_stop_timeout_s,
            )
            pool.stop(settings.orphan_stop_timeout_s)
        else:
            pool.stop()
        heartbeat(producer, pool, instance_id, started)
        producer.flush(1 if orphaned else 5)
        stop.set()
        listener.join(5)
        logger.info("pool manager stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
