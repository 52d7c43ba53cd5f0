"""The runner's Kafka consumer: its configuration, and the calls the event loop queues for it.

Every consumer call happens on the runner's poll thread, between polls: librdkafka's Python
client blocks any other call on a consumer while a ``poll`` is in progress (measured: a
``store_offsets`` from the event loop waited out the whole poll). So the loop queues what it wants
(:class:`ConsumerCalls`) and the poll thread applies it just before it polls again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from shared.pipeline.runner.model import RunnerSettings

logger = logging.getLogger(__name__)

Key = tuple[str, int]  # (topic, partition)


def consumer_config(
    settings: RunnerSettings,
    *,
    group_id: str,
    client_id: str,
    on_commit: Callable[[KafkaError | None, list[TopicPartition]], None],
    error_cb: Callable[[KafkaError], None],
) -> dict[str, object]:
    """The consumer's librdkafka configuration: offsets stored by the runner, per-topic ranges."""
    cfg: dict[str, object] = {
        **settings.client_config(),
        "group.id": group_id,
        "group.protocol": settings.group_protocol,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        # Offsets are stored by the runner once outputs are acked; librdkafka commits them.
        "enable.auto.commit": True,
        "auto.commit.interval.ms": settings.commit_interval_ms,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        # A new message on an idle partition (a high-priority job) is seen within this.
        "fetch.wait.max.ms": settings.fetch_wait_max_ms,
        "on_commit": on_commit,
        "error_cb": error_cb,
    }
    if settings.group_protocol == "classic":
        # The classic protocol's range assignor is also per topic (but eager: a rebalance
        # revokes everything, which the runner's revoke hook commits). cooperative-sticky
        # balances the total count only, so it may leave an instance without a band.
        cfg["partition.assignment.strategy"] = (
            "range" if settings.group_assignor == "range" else "cooperative-sticky"
        )
        cfg["session.timeout.ms"] = 10_000
    else:
        cfg["group.remote.assignor"] = settings.group_assignor
    return cfg


class ConsumerCalls:
    """Offsets to store and partitions to pause, rewind or resume, queued by the event loop and
    made by the poll thread (:meth:`apply`) in the order they were asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._stores: dict[Key, int] = {}
        self._ops: list[tuple[str, list[TopicPartition]]] = []

    def store(self, key: Key, position: int) -> None:
        """Store ``position`` as the partition's next offset to commit (auto-commit sends it)."""
        with self._lock:
            self._stores[key] = position

    def pause(self, keys: Iterable[Key]) -> None:
        """Stop fetching these partitions."""
        self._queue("pause", [TopicPartition(t, p) for t, p in keys])

    def resume(self, keys: Iterable[Key]) -> None:
        """Fetch these partitions again."""
        self._queue("resume", [TopicPartition(t, p) for t, p in keys])

    def pause_at(self, key: Key, offset: int) -> None:
        """Pause a partition and rewind it to ``offset``, read again once resumed."""
        tp = TopicPartition(key[0], key[1], offset)
        with self._lock:
            self._ops += [("pause", [tp]), ("seek", [tp])]

    def forget(self, keys: Iterable[Key]) -> None:
        """Partitions given up: their offsets are no longer ours to store."""
        with self._lock:
            for key in keys:
                self._stores.pop(key, None)

    def _queue(self, op: str, tps: list[TopicPartition]) -> None:
        if tps:
            with self._lock:
                self._ops.append((op, tps))

    def apply(self, consumer: Consumer) -> None:
        """On the poll thread: make the queued calls, then store the offsets."""
        with self._lock:
            stores = [TopicPartition(t, p, o) for (t, p), o in self._stores.items()]
            self._stores.clear()
            ops, self._ops = self._ops, []
        for op, tps in ops:
            try:
                if op == "pause":
                    consumer.pause(tps)
                elif op == "seek":
                    for tp in tps:
                        consumer.seek(tp)
                else:
                    consumer.resume(tps)
            except KafkaException as exc:
                logger.warning(
                    "consumer %s failed service=%s partitions=%s error=%s",
                    op,
                    self.name,
                    describe_partitions(tps),
                    exc,
                )
        if stores:
            try:
                consumer.store_offsets(offsets=stores)
            except KafkaException as exc:
                # A partition revoked meanwhile: its new owner starts from the last commit.
                logger.warning(
                    "store offsets failed offsets=%s error=%s", describe_partitions(stores), exc
                )


def describe_partitions(partitions: Iterable[TopicPartition]) -> str:
    """``topic[partition]`` list for logs."""
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
