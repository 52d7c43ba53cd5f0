"""Raw broker baseline: produce and consume rates for 1 KiB messages with the project's producer
settings (idempotent, acks=all, lz4, linger 2 ms), on this machine.

    python bench/broker.py [--messages 200000] [--size 1024]

Later benchmarks run :func:`measure` in the same run and report their ratio to it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from bench.common import broker, table
from shared.contract.topics import TopicSpec, ensure_topics
from shared.pipeline.runner import make_producer
from shared.platform.settings import KafkaSettings


@dataclass
class BrokerRates:
    messages: int
    size: int
    produce_s: float
    consume_s: float

    @property
    def produce_rate(self) -> float:
        return self.messages / self.produce_s

    @property
    def consume_rate(self) -> float:
        return self.messages / self.consume_s

    def rows(self) -> list[list[str]]:
        mb = self.size / 1e6
        return [
            [
                "produce (acks=all)",
                f"{self.messages}",
                f"{self.produce_rate:,.0f}",
                f"{self.produce_rate * mb:,.1f}",
            ],
            [
                "consume",
                f"{self.messages}",
                f"{self.consume_rate:,.0f}",
                f"{self.consume_rate * mb:,.1f}",
            ],
        ]


def measure(bootstrap: str, messages: int = 200_000, size: int = 1024) -> BrokerRates:
    """Produce, then consume, ``messages`` values of ``size`` bytes via a new 6-partition topic."""
    topic = f"bench.broker.{uuid.uuid4().hex[:8]}"
    ensure_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        default_partitions=6,
        specs=[TopicSpec(topic, 3_600_000)],
    )
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap)
    producer = make_producer(settings, client_id="bench")
    # Random-ish bytes so compression does not flatter the figure.
    payload = os.urandom(size // 2).hex().encode()[:size]
    start = time.perf_counter()
    for i in range(messages):
        while True:
            try:
                producer.produce(topic, payload, key=str(i % 1000).encode())
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    produce_s = time.perf_counter() - start

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got = 0
    start = 0.0
    while got < messages:
        batch = consumer.consume(1000, 1.0)
        if batch and not start:
            start = time.perf_counter()
        got += sum(1 for m in batch if m.error() is None)
    consume_s = time.perf_counter() - start
    consumer.close()
    AdminClient({"bootstrap.servers": bootstrap}).delete_topics([topic])
    return BrokerRates(messages, size, produce_s, consume_s)


def render(rates: BrokerRates) -> str:
    """The baseline as a table."""
    return table(
        f"Raw broker baseline ({rates.size} B messages, 6 partitions)",
        ["operation", "messages", "msg/s", "MB/s"],
        rates.rows(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    with broker() as bootstrap:
        print(render(measure(bootstrap, args.messages, args.size)))


if __name__ == "__main__":
    main()
