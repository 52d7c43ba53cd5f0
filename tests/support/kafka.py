"""Kafka helpers for tests: topics, producing events, reading committed offsets."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from shared.events import Event, JobRequested, JobRequestedPayload
from shared.topics import TopicSpec, ensure_topics


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


def produce(bootstrap: str, topic: str, items: list[Event | tuple[bytes, bytes]]) -> None:
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
