"""Raw broker baseline: produce and consume rates for 1 KiB messages with the project's producer
settings (idempotent, acks=all, lz4, ``KAFKA_LINGER_MS``), on this machine; and a lone message's
hop (produced after an idle gap, as each event of a job is, to a consumer in a long poll) at
several ``linger.ms``, with the flat-out produce rate at each.

    python bench/broker.py [--messages 200000] [--size 1024] [--hops 40] [--gap-s 0.2]

Later benchmarks run :func:`measure` in the same run and report their ratio to it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
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


def _topic(bootstrap: str, prefix: str) -> str:
    topic = f"{prefix}.{uuid.uuid4().hex[:8]}"
    ensure_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        default_partitions=6,
        specs=[TopicSpec(topic, 3_600_000)],
    )
    return topic


def measure(
    bootstrap: str, messages: int = 200_000, size: int = 1024, *, linger_ms: int | None = None
) -> BrokerRates:
    """Produce, then consume, ``messages`` values of ``size`` bytes via a new 6-partition topic
    (``linger_ms``: the producer's, else ``KAFKA_LINGER_MS``'s default)."""
    topic = _topic(bootstrap, "bench.broker")
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap)
    if linger_ms is not None:
        settings = settings.model_copy(update={"kafka_linger_ms": linger_ms})
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


class _LoneHops:
    """One producer (the engine's settings at one ``linger.ms``) and one consumer in a long poll
    (a stage's ``fetch.wait.max.ms``) on a topic of their own."""

    def __init__(self, bootstrap: str, linger_ms: int) -> None:
        self.linger_ms = linger_ms
        self.topic = _topic(bootstrap, "bench.hop")
        settings = KafkaSettings(kafka_bootstrap_servers=bootstrap, kafka_linger_ms=linger_ms)
        self.producer = make_producer(settings, client_id=f"bench-hop-{linger_ms}")
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-hop-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "latest",
                "fetch.wait.max.ms": 500,
            }
        )
        self.consumer.subscribe([self.topic])
        self.hops: list[float] = []
        self.acks: list[float] = []
        self._seen = threading.Event()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> None:
        self._poller.start()
        # Assigned and positioned at the end: a message of its own comes through.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._seen.clear()
            self.producer.produce(self.topic, b"warm")
            self.producer.poll(0)
            if self._seen.wait(1.0):
                return
        raise SystemExit(f"lone hops: nothing consumed from {self.topic} in 30 s")

    def _poll(self) -> None:
        while not self._stop.is_set():
            m = self.consumer.poll(0.5)
            if m is not None and m.error() is None:
                self.seen_at = time.perf_counter()
                self._seen.set()

    def one(self) -> None:
        self._seen.clear()
        acked: list[float] = []
        sent = time.perf_counter()
        self.producer.produce(
            self.topic, b"x" * 1024, on_delivery=lambda err, msg: acked.append(time.perf_counter())
        )
        if not self._seen.wait(10):
            raise SystemExit(f"lone hops: a message on {self.topic} not consumed in 10 s")
        self.hops.append((self.seen_at - sent) * 1000)
        self.producer.flush(10)
        if acked:
            self.acks.append((acked[0] - sent) * 1000)

    def close(self) -> None:
        self._stop.set()
        self._poller.join(2)
        self.consumer.close()
        self.producer.flush(10)


def lone_hops(
    bootstrap: str, lingers: list[int], samples: int = 40, gap_s: float = 0.2
) -> dict[int, tuple[list[float], list[float]]]:
    """Per ``linger.ms``: (hop ms, ack ms) of ``samples`` lone messages, each after ``gap_s``
    of quiet; the settings take turns, so the machine's drift is shared among them."""
    clients = [_LoneHops(bootstrap, linger) for linger in lingers]
    try:
        for c in clients:
            c.start()
        for _ in range(samples):
            for c in clients:
                time.sleep(gap_s)
                c.one()
    finally:
        for c in clients:
            c.close()
    return {c.linger_ms: (c.hops, c.acks) for c in clients}


def render_hops(
    hops: dict[int, tuple[list[float], list[float]]], rates: dict[int, BrokerRates], gap_s: float
) -> str:
    """The lone hops and the flat-out produce rate per ``linger.ms``."""

    def pct(values: list[float], q: float) -> str:
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"

    rows = [
        [
            f"{linger}",
            f"{statistics.median(hop):.1f}",
            pct(hop, 0.95),
            f"{statistics.median(ack):.1f}" if ack else "-",
            f"{rates[linger].produce_rate:,.0f}" if linger in rates else "-",
        ]
        for linger, (hop, ack) in hops.items()
    ]
    n = min(len(h) for h, _ in hops.values())
    return table(
        f"A lone message's hop (produced after {gap_s:g} s of quiet, consumed from a long poll; "
        f"{n} each, the settings taking turns) and the flat-out produce rate",
        ["linger.ms", "hop p50 ms", "hop p95 ms", "ack p50 ms", "produce msg/s"],
        rows,
    )


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
    parser.add_argument("--hops", type=int, default=40, help="lone messages per linger.ms")
    parser.add_argument("--gap-s", type=float, default=0.2)
    parser.add_argument("--lingers", default="0,2,5", help="linger.ms values to compare")
    args = parser.parse_args()
    lingers = [int(v) for v in args.lingers.split(",")]
    with broker() as bootstrap:
        print(render(measure(bootstrap, args.messages, args.size)))
        if args.hops > 0:
            hops = lone_hops(bootstrap, lingers, args.hops, args.gap_s)
            rates = {
                linger: measure(bootstrap, args.messages, args.size, linger_ms=linger)
                for linger in lingers
            }
            print()
            print(render_hops(hops, rates, args.gap_s))


if __name__ == "__main__":
    main()
