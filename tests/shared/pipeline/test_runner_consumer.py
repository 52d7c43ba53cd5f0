"""The consumer calls the runner's event loop queues for its poll thread, without a broker: a
fake consumer records what is made of them (the broker's side is test_runner.py's)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from shared.pipeline.runner.consumer import ConsumerCalls, consumer_config
from shared.pipeline.runner.model import RunnerSettings

Call = tuple[str, str, int, int]  # (call, topic, partition, offset)
A, B, C = ("in", 0), ("in", 1), ("in.retry.1", 0)


@dataclass
class FakeConsumer:
    """Records each call a real consumer would get; a call named in ``failing`` raises."""

    failing: set[str] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)

    def _record(self, name: str, tps: list[TopicPartition]) -> None:
        if name in self.failing:
            raise KafkaException(KafkaError(KafkaError._STATE))
        self.calls += [(name, tp.topic, tp.partition, tp.offset) for tp in tps]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._record("pause", partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._record("resume", partitions)

    def seek(self, partition: TopicPartition) -> None:
        self._record("seek", [partition])

    def store_offsets(self, *, offsets: list[TopicPartition]) -> None:
        self._record("store", offsets)


def apply(calls: ConsumerCalls, consumer: FakeConsumer | None = None) -> list[Call]:
    consumer = consumer or FakeConsumer()
    calls.apply(consumer)  # type: ignore[arg-type]
    return consumer.calls


UNSET = TopicPartition("x", 0).offset  # a TopicPartition's offset when none is given


def test_nothing_queued_makes_no_call() -> None:
    calls = ConsumerCalls("echo")
    calls.pause([])
    calls.resume([])
    assert apply(calls) == []


def test_calls_are_made_in_the_order_asked_and_offsets_stored_last() -> None:
    calls = ConsumerCalls("echo")
    calls.store(A, 10)
    calls.pause([A, B])
    calls.pause_at(C, 5)
    calls.resume([A])
    assert apply(calls) == [
        ("pause", "in", 0, UNSET),
        ("pause", "in", 1, UNSET),
        ("pause", "in.retry.1", 0, 5),
        ("seek", "in.retry.1", 0, 5),  # rewound to the delayed message, read again on resume
        ("resume", "in", 0, UNSET),
        ("store", "in", 0, 10),
    ]


def test_the_latest_position_of_a_partition_is_stored_once() -> None:
    calls = ConsumerCalls("echo")
    calls.store(A, 3)
    calls.store(B, 7)
    calls.store(A, 5)
    assert sorted(apply(calls)) == [("store", "in", 0, 5), ("store", "in", 1, 7)]


def test_a_forgotten_partitions_offsets_are_not_stored() -> None:
    calls = ConsumerCalls("echo")
    calls.store(A, 3)
    calls.store(B, 7)
    calls.forget([A, C])
    assert apply(calls) == [("store", "in", 1, 7)]


def test_applied_calls_are_made_once() -> None:
    calls = ConsumerCalls("echo")
    calls.pause([A])
    calls.store(A, 1)
    assert len(apply(calls)) == 2
    assert apply(calls) == []


def test_a_failing_call_is_logged_and_the_rest_are_still_made(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = ConsumerCalls("echo")
    calls.pause([A])
    calls.resume([B])
    calls.store(A, 4)
    made = apply(calls, FakeConsumer(failing={"pause"}))
    assert made == [("resume", "in", 1, UNSET), ("store", "in", 0, 4)]
    assert "consumer pause failed service=echo partitions=in[0]" in caplog.text

    calls.store(A, 5)
    assert apply(calls, FakeConsumer(failing={"store"})) == []
    assert "store offsets failed offsets=in[0]" in caplog.text


def test_calls_queued_from_many_threads_are_all_made() -> None:
    calls = ConsumerCalls("echo")

    def queue(n: int) -> None:
        for i in range(100):
            calls.pause([("t", n)])
            calls.store(("t", n), i)

    threads = [threading.Thread(target=queue, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = apply(calls)
    assert len([c for c in made if c[0] == "pause"]) == 800
    assert sorted(c for c in made if c[0] == "store") == [("store", "t", n, 99) for n in range(8)]


@pytest.mark.parametrize(
    ("protocol", "assignor", "expected"),
    [
        ("consumer", "range", {"group.remote.assignor": "range"}),
        ("classic", "range", {"partition.assignment.strategy": "range"}),
        ("classic", "uniform", {"partition.assignment.strategy": "cooperative-sticky"}),
    ],
)
def test_the_runner_stores_offsets_itself_and_asks_for_per_topic_ranges(
    protocol: str, assignor: str, expected: dict[str, str]
) -> None:
    settings = RunnerSettings(group_protocol=protocol, group_assignor=assignor)
    cfg = consumer_config(
        settings, group_id="pod.echo", client_id="echo-0", on_commit=print, error_cb=print
    )
    assert cfg["enable.auto.offset.store"] is False and cfg["enable.auto.commit"] is True
    assert (cfg["group.id"], cfg["group.protocol"]) == ("pod.echo", protocol)
    assert expected.items() <= cfg.items()
