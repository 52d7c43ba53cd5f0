"""Kafka helpers for tests: topics, producing events, reading committed offsets."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from shared.contract.events import Event, JobRequested, JobRequestedPayload
from shared.contract.topics import TopicSpec, ensure_topics


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create the given topics (idempotent)."""
    ensure_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        default_partitions=partitions,
        specs=[TopicSpec(n, 3_600_000) for n in names],
    )


def job(job_id: str, *, niche: str = "cats", theme: str = "space", count: int = 1) -> JobRequested:
    """A valid job event."""
    return JobRequested(
        job_id=job_id,
        producer="tests",
        payload=JobRequestedPayload(
            theme=theme, style="retro", niche=niche, product_types=["tshirt"], count=count
        ),
    )


def produce(bootstrap: str, topic: str, items: Sequence[Event | tuple[bytes, bytes]]) -> None:
    """Produce events (keyed by job id) or raw (key, value) pairs, and wait for the acks."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for item in items:
        if isinstance(item, Event):
            producer.produce(topic, item.to_json(), key=item.job_id.encode())
        else:
            producer.produce(topic, item[1], key=item[0])
    assert producer.flush(30) == 0


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 = none)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    result = admin.list_consumer_group_offsets([req])[group].result()
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset (the next offset to be written) right now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets"})
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                md = consumer.list_topics(topic, timeout=10)
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in md.topics[topic].partitions
                }
            except KafkaException:
                # A topic created a moment ago may not have its leaders elected yet.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def lagging(bootstrap: str, group: str, topics: list[str]) -> dict[str, dict[int, int]]:
    """Partitions of ``topics`` where ``group``'s commit is behind the end: {topic: {p: lag}}.
    Empty partitions count as caught up without a commit."""
    behind: dict[str, dict[int, int]] = {}
    for topic in topics:
        ends = end_offsets(bootstrap, topic)
        done = committed(bootstrap, group, topic, len(ends))
        lag = {p: end - max(done.get(p, 0), 0) for p, end in ends.items() if end > 0}
        lag = {p: n for p, n in lag.items() if n > 0}
        if lag:
            behind[topic] = lag
    return behind
