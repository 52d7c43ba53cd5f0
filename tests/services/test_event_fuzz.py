"""Hostile events on every input topic of the running stack.

For each topic a stage or the monitor consumes, a set of poison messages is produced onto one
partition: bad headers, non-UTF-8 bytes, a null value, JSON nested 5,000 deep, a value too large
to dead-letter whole, NUL characters, a far-future timestamp, a second job under a used
event_id. Then a good job whose every event lands on that same partition. Each poison must end
in the DLQ of every group that reads it (with its reason), every group's committed offset must
move past it, and the good job must complete.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from devstack.stack import Stack
from shared.contract.events import (
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
)
from shared.contract.topics import (
    GENERATOR,
    IMAGES_GENERATED,
    JOBS_REQUESTED,
    MONITOR,
    PRINTIFY,
    PRODUCTS_CREATED,
    PUBLISHED,
    PUBLISHER,
    Stage,
)
from tests.support.infra import read_all, unique, wait_for
from tests.support.kafka import committed, create_topics
from tests.support.pipeline import produce_job, status, wait_done

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

# Who reads each input topic (besides the monitor, which reads them all).
READERS: dict[str, Stage] = {
    JOBS_REQUESTED[Priority.HIGH]: GENERATOR,
    JOBS_REQUESTED[Priority.NORMAL]: GENERATOR,
    JOBS_REQUESTED[Priority.LOW]: GENERATOR,
    IMAGES_GENERATED: PRINTIFY,
    PRODUCTS_CREATED: PUBLISHER,
    PUBLISHED: MONITOR,
}


@dataclass(frozen=True)
class Poison:
    name: str
    value: bytes | None
    headers: Headers
    reason: str  # a fragment of the reason recorded with the dead letter
    # Groups that must dead-letter it (None: every reader of the topic).
    dead_lettered_by: tuple[str, ...] | None = None


def valid_event(topic: str, job_id: str) -> bytes:
    """A valid event of the type ``topic`` carries, for a job nobody knows."""
    if topic in JOBS_REQUESTED.values():
        return JobRequested(
            job_id=job_id,
            producer="fuzz",
            payload=JobRequestedPayload(
                theme="fuzz", style="s", niche="n", product_types=["mug"], count=1
            ),
        ).to_json()
    if topic == IMAGES_GENERATED:
        return ImageGenerated(
            job_id=job_id,
            producer="fuzz",
            payload=ImageGeneratedPayload(
                image_index=0,
                image_count=1,
                sha256="0" * 64,
                uri="file:///nowhere.png",
                width=8,
                height=8,
                prompt="p",
                seed=1,
                title="t",
                description="d",
                routing=JobRouting(product_types=["mug"]),
            ),
        ).to_json()
    if topic == PRODUCTS_CREATED:
        return ProductCreated(
            job_id=job_id,
            producer="fuzz",
            payload=ProductCreatedPayload(
                image_index=0,
                product_type="mug",
                product_id="nope",
                shop_id="1",
                blueprint_id=1,
                print_provider_id=1,
                variant_count=1,
                title="t",
                routing=JobRouting(product_types=["mug"]),
                prices=PriceSummary(price_min_cents=100),
            ),
        ).to_json()
    return ProductPublished(
        job_id=job_id,
        producer="fuzz",
        payload=ProductPublishedPayload(
            image_index=0, product_type="mug", product_id="nope", shop_id="1"
        ),
    ).to_json()


def poisons(topic: str) -> list[Poison]:
    tag = uuid.uuid4().hex[:8]
    good = valid_event(topic, f"fuzz-{tag}")
    event = json.loads(good)
    nul = dict(event, producer="fu\x00zz")
    future = dict(event, occurred_at="2999-01-01T00:00:00Z")
    # Too long for the contract, and just under the producer's 1,000,000 bytes: the DLQ copy
    # with its failure headers is over, so it is dead-lettered without its value.
    oversize = dict(event, producer="")
    pad = 999_700 - len(json.dumps(oversize))
    oversize["producer"] = "x" * pad
    out = [
        Poison("bad-attempt", good, [("pod.attempt", b"many")], "pod.attempt"),
        Poison("binary-attempt", good, [("pod.attempt", b"\xff\xfe")], "pod.attempt"),
        Poison("not-utf8", b"\xff\xfe\xfd{", [], "Invalid JSON"),
        Poison("null-value", None, [], "no value"),
        Poison("deep-json", b'{"a":' * 5000 + b"1" + b"}" * 5000, [], "recursion"),
        Poison("nul-text", json.dumps(nul).encode(), [], "NUL"),
        Poison("far-future", json.dumps(future).encode(), [], "future"),
        Poison("oversize", json.dumps(oversize).encode(), [], "dropped"),
    ]
    if topic == JOBS_REQUESTED[Priority.NORMAL]:
        # A second job under a used event_id: an event id is unique within its job only (else
        # a producer could claim another job's future ids), so both jobs are made and folded.
        first = JobRequested.model_validate_json(valid_event(topic, f"fuzz-a-{tag}"))
        second = first.model_copy(update={"job_id": f"fuzz-b-{tag}"})
        out.append(Poison("first-of-pair", first.to_json(), [], "", dead_lettered_by=()))
        out.append(Poison("duplicate-event-id", second.to_json(), [], "", dead_lettered_by=()))
    return out


def partition_of(bootstrap: str, key: bytes, partitions: int = 3) -> int:
    """The partition the producers' partitioner picks for ``key`` among ``partitions`` (found
    on a scratch topic: every topic of the stack has as many, so each event of the job with
    that key lands on this partition number of its topic)."""
    scratch = unique("probe")
    create_topics(bootstrap, [scratch], partitions)
    found: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap})

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        partition = msg.partition()
        assert partition is not None  # a delivered message has its partition
        found.append(partition)

    producer.produce(scratch, b"{}", key=key, on_delivery=on_delivery)
    producer.flush(10)
    return found[0]


def produce_at(bootstrap: str, topic: str, partition: int, items: list[Poison]) -> list[int]:
    """Produce the poisons in order onto one partition; return their offsets."""
    offsets: dict[str, int] = {}
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    def delivered(name: str) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            assert err is None, err
            offset = msg.offset()
            assert offset is not None  # a delivered message has its offset
            offsets[name] = offset

        return on_delivery

    for p in items:
        producer.produce(
            topic,
            p.value,
            key=f"poison-{p.name}".encode(),
            partition=partition,
            headers=p.headers,
            on_delivery=delivered(p.name),
        )
        producer.flush(30)  # one at a time: their order on the partition is the list's
    return [offsets[p.name] for p in items]


def good_job(s: Stack, job_id: str, priority: Priority) -> None:
    """A job produced directly (as another system would), auto-published, on its key's
    partition of every topic."""
    event = JobRequested(
        job_id=job_id,
        producer="fuzz",
        payload=JobRequestedPayload(
            theme="after the poison",
            style="s",
            niche="n",
            product_types=["mug"],
            count=1,
            auto_publish=True,
            priority=priority,
        ),
    )
    produce_job(s, event)


def dead_letters_of(s: Stack, stage: Stage) -> dict[tuple[str, int], dict[str, str]]:
    """The DLQ records of ``stage``, by the (topic, offset) they came from."""
    out: dict[tuple[str, int], dict[str, str]] = {}
    for m in read_all(s.bootstrap, stage.dlq):
        pairs = m.headers() or []
        assert isinstance(pairs, list)  # a consumed message's headers: (name, value) pairs
        headers = {
            k: v.decode(errors="replace") if isinstance(v, bytes) else v or "" for k, v in pairs
        }
        if "pod.original.topic" in headers:
            key = (headers["pod.original.topic"], int(headers["pod.original.offset"]))
            out[key] = headers
    return out


# A poison planted on a topic: where it went and what it was.
Planted = tuple[str, int, int, Poison]  # topic, partition, offset, poison
# One DLQ record owed: the group that must dead-letter the poison.
Owed = tuple[str, str, int, Poison]  # group, topic, offset, poison


def plant_poisons(s: Stack, goods: dict[Priority, str]) -> list[Planted]:
    """Every topic's poisons on the partition its band's good job will use."""
    planted: list[Planted] = []
    for topic, reader in READERS.items():
        band = next((p for p, t in JOBS_REQUESTED.items() if t == topic), Priority.NORMAL)
        partition = partition_of(s.bootstrap, goods[band].encode())
        items = poisons(topic)
        offsets = produce_at(s.bootstrap, topic, partition, items)
        planted += [(topic, partition, o, p) for o, p in zip(offsets, items, strict=True)]
        logger.info("poisoned topic=%s partition=%d count=%d reader=%s", topic, partition,
                    len(items), reader.name)  # fmt: skip
    return planted


def owed_dead_letters(planted: list[Planted]) -> list[Owed]:
    """Each (group, poison) pair that must end on the group's DLQ."""
    owed: list[Owed] = []
    for topic, _partition, offset, poison in planted:
        groups = poison.dead_lettered_by
        if groups is None:
            groups = tuple({READERS[topic].name, MONITOR.name})
        owed += [(group, topic, offset, poison) for group in groups]
    return owed


def assert_dead_lettered(s: Stack, owed: list[Owed]) -> None:
    """Every owed poison is on its group's DLQ, with its reason."""
    stages = {st.name: st for st in (GENERATOR, PRINTIFY, PUBLISHER, MONITOR)}
    letters: dict[str, dict[tuple[str, int], dict[str, str]]] = {}

    def all_dead_lettered() -> bool:
        for name in {g for g, *_ in owed}:
            letters[name] = dead_letters_of(s, stages[name])
        return all((t, o) in letters[g] for g, t, o, _ in owed)

    wait_for(all_dead_lettered, 60, "every poison on its readers' DLQs", interval=0.5)
    for group, topic, offset, poison in owed:
        record = letters[group][(topic, offset)]
        assert poison.reason in record["pod.error.message"], (poison.name, group, record)


def assert_commits_past(s: Stack, planted: list[Planted]) -> None:
    """Every reading group's committed offset passes every poison of its topics."""

    def commits_past() -> bool:
        for topic, partition, offset, _poison in planted:
            for group in {READERS[topic].name, MONITOR.name}:
                done = committed(s.bootstrap, f"pod.{group}", topic, 3).get(partition, -1)
                if done <= offset:
                    return False
        return True

    wait_for(commits_past, 60, "every group's commit past every poison", interval=0.5)


def test_every_poison_is_dead_lettered_and_every_group_moves_past_it(stack: Stack) -> None:
    s = stack
    # Every event of a good job lands on its key's partition: poison that partition.
    goods = {p: f"good-{p.value}-{uuid.uuid4().hex[:8]}" for p in Priority}
    planted = plant_poisons(s, goods)
    for band, job_id in goods.items():
        good_job(s, job_id, band)

    results = wait_done(s, list(goods.values()), timeout=120)
    for job_id, result in results.items():
        assert result["job"]["detailedStatus"] == "completed", (job_id, result["job"])

    # Every poison is in the DLQ of each group that reads it, with its reason ...
    owed = owed_dead_letters(planted)
    assert_dead_lettered(s, owed)
    # ... and every group's committed offset is past every poison of its topics.
    assert_commits_past(s, planted)
    logger.info(
        "event fuzz poison=%d dead_lettered=%d good_jobs=%d", len(planted), len(owed), len(goods)
    )
    # The second job under a used event_id was still made (outputs of its own ids).
    pair = [p for _t, _pa, _o, p in planted if p.name == "duplicate-event-id"]
    assert pair and pair[0].value is not None
    second = JobRequested.model_validate_json(pair[0].value).job_id
    made = [m for m in read_all(s.bootstrap, IMAGES_GENERATED) if m.key() == second.encode()]
    assert made, "the generator skipped the second job of the pair"
    wait_for(lambda: status(s, second), 30, "the monitor to fold the second job of the pair")
