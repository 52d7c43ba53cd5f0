"""What is on the broker, for the Topics page (``/topics``): each topic's partitions and offsets,
each consumer group's committed offsets and lag, and the last messages of a topic decoded
against the event schemas.

librdkafka's calls block: they run in a worker thread that the route waits on for at most
TOPICS_TIMEOUT_S (each call carries a timeout too, so the thread ends soon after), so a slow or
gone broker is a 503, never a hung request. Messages are read by a consumer that is assigned the
partitions and never subscribes nor commits: reading joins no group and moves nobody's offsets.
Everything read is untrusted (any client may produce): sizes are capped and the page escapes it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from shared.contract.events import parse_event
from shared.contract.topics import all_topics
from shared.platform.errors import InvalidEventError

# Caps on what one message may put in an answer (the page shows them escaped).
KEY_CHARS = 200
HEADERS_MAX = 20
HEADER_CHARS = 500
RAW_CHARS = 4000
PAYLOAD_BYTES = 32_000
MAX_MESSAGES = 100


# What the consumer's group coordinator may answer: the group.id librdkafka requires is never
# joined nor committed to, so a principal needs no right on it.
_GROUP_ERRORS = frozenset(
    {
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)


class TopicNotFound(LookupError):
    """No such topic (or partition) on the broker."""


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition: its earliest and latest (next to be written) offsets."""

    partition: int
    earliest: int
    latest: int


@dataclass(frozen=True)
class GroupPartition:
    """A group's committed offset on one partition and how far behind the end it is."""

    partition: int
    committed: int
    lag: int


@dataclass(frozen=True)
class GroupOffsets:
    """One consumer group on one topic: its committed offsets and its lag in all."""

    group: str
    partitions: list[GroupPartition]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True)
class TopicOffsets:
    """One topic as the broker has it."""

    name: str
    registered: bool
    partitions: list[PartitionOffsets]
    groups: list[GroupOffsets]


@dataclass(frozen=True)
class Header:
    name: str
    value: str | None


@dataclass
class ReadMessage:
    """One message as read, decoded where it is an event of ours."""

    partition: int
    offset: int
    timestamp: datetime | None
    key: str | None
    headers: list[Header]
    size: int
    event_type: str | None = None
    event_id: str | None = None
    job_id: str | None = None
    payload: Any = None
    invalid: str | None = None
    raw: str | None = None
    truncated: bool = False
    # The job a link may lead to (the event's job id, or the key): set once it is known to exist.
    linked_job: str | None = None
    headers_cut: int = 0

    def job_candidates(self) -> list[str]:
        return [c for c in (self.job_id, self.key) if c]


@dataclass(frozen=True)
class MessagePage:
    """The last messages of a topic or partition, newest first."""

    topic: str
    messages: list[ReadMessage]
    # Pass as ``before`` (with the partition) for the older ones; None when none are older.
    next_before: int | None = field(default=None)


def _text(raw: bytes | str | None, cap: int) -> str | None:
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
    return text[:cap]


def _result(future: Future[Any], timeout: float) -> Any:
    return future.result(timeout=timeout)


def registry_names() -> set[str]:
    return {spec.name for spec in all_topics()}


def topic_offsets(
    config: dict[str, Any], *, timeout_s: float, include_internal: bool = False
) -> list[TopicOffsets]:
    """Every topic (the registry's and any other on the broker, internal ones left out), its
    partitions' offsets and each group's committed offsets on it. Blocking; raises
    KafkaException when the broker cannot answer, concurrent.futures.TimeoutError when slow."""
    admin = AdminClient(config)
    metadata = admin.list_topics(timeout=timeout_s)
    names = sorted(
        n
        for n, t in metadata.topics.items()
        if t.error is None and (include_internal or not n.startswith("__"))
    )
    parts = [TopicPartition(n, p) for n in names for p in sorted(metadata.topics[n].partitions)]
    bounds: dict[tuple[str, int], list[int]] = {(tp.topic, tp.partition): [0, 0] for tp in parts}
    specs = (OffsetSpec.earliest(), OffsetSpec.latest())  # type: ignore[no-untyped-call]
    for index, spec in enumerate(specs):
        if not parts:
            break
        found = admin.list_offsets({tp: spec for tp in parts}, request_timeout=timeout_s)
        for tp, future in found.items():
            bounds[(tp.topic, tp.partition)][index] = _result(future, timeout_s).offset
    listed = _result(admin.list_consumer_groups(request_timeout=timeout_s), timeout_s)
    group_ids = sorted(g.group_id for g in listed.valid)
    pending = {
        g: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(g)], request_timeout=timeout_s
        )[g]
        for g in group_ids
    }
    committed: dict[str, dict[str, list[GroupPartition]]] = {}
    for group, future in pending.items():
        for tp in _result(future, timeout_s).topic_partitions or ():
            if (
                tp.offset == OFFSET_INVALID
                or tp.offset < 0
                or (tp.topic, tp.partition) not in bounds
            ):
                continue
            latest = bounds[(tp.topic, tp.partition)][1]
            committed.setdefault(tp.topic, {}).setdefault(group, []).append(
                GroupPartition(tp.partition, tp.offset, max(0, latest - tp.offset))
            )
    registered = registry_names()
    return [
        TopicOffsets(
            name=n,
            registered=n in registered,
            partitions=[
                PartitionOffsets(p, *bounds[(n, p)]) for p in sorted(metadata.topics[n].partitions)
            ],
            groups=[
                GroupOffsets(g, sorted(ps, key=lambda p: p.partition))
                for g, ps in sorted(committed.get(n, {}).items())
            ],
        )
        for n in names
    ]


def read_messages(
    config: dict[str, Any],
    topic: str,
    *,
    partition: int | None,
    limit: int,
    before: int | None,
    timeout_s: float,
) -> MessagePage:
    """The last ``limit`` messages of ``topic`` (of one partition, ending before offset
    ``before`` when given), newest first. Blocking; the consumer joins no group."""
    consumer = Consumer(
        {
            **config,
            # Required by librdkafka, never used: assign() joins no group, nothing commits.
            "group.id": f"pod-api-inspect-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.message.max.bytes": 1 << 20,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise TopicNotFound(f"topic {topic} not found")
        partitions = sorted(metadata.partitions)
        if partition is not None:
            if partition not in partitions:
                raise TopicNotFound(f"topic {topic} has no partition {partition}")
            partitions = [partition]
        ranges: dict[int, tuple[int, int]] = {}
        earliest: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=timeout_s, cached=False
            )
            earliest[p] = low
            end = high if before is None else max(low, min(before, high))
            if end > low:
                ranges[p] = (max(low, end - limit), end)
        read = _read(consumer, topic, ranges, timeout_s)
    finally:
        consumer.close()
    read.sort(key=lambda m: (m.timestamp or datetime.min.replace(tzinfo=UTC), m.offset))
    newest = list(reversed(read[-limit:]))
    next_before = None
    if partition is not None and newest:
        oldest = min(m.offset for m in newest)
        next_before = oldest if oldest > earliest[partition] else None
    return MessagePage(topic=topic, messages=newest, next_before=next_before)


def _read(
    consumer: Consumer, topic: str, ranges: dict[int, tuple[int, int]], timeout_s: float
) -> list[ReadMessage]:
    if not ranges:
        return []
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])
    left = {p: end for p, (_, end) in ranges.items()}
    out: list[ReadMessage] = []
    deadline = _now() + timeout_s
    while left and _now() < deadline:
        msg = consumer.poll(min(0.5, max(0.01, deadline - _now())))
        if msg is None:
            continue
        p = msg.partition()
        error = msg.error()
        if error is not None and msg.topic() != topic:
            # The client's own errors, e.g. its unused group's coordinator refused (a principal
            # without group rights): nothing read depends on the group.
            if error.code() not in _GROUP_ERRORS:
                raise KafkaException(error)
            continue
        if p is None or p not in left:
            continue
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                left.pop(p, None)
                continue
            raise KafkaException(error)
        offset = msg.offset() or 0
        if offset < left[p]:
            out.append(decode(msg))
        if offset + 1 >= left[p]:
            left.pop(p, None)
    return out


def _now() -> float:
    return time.monotonic()


def decode(msg: Message) -> ReadMessage:
    """One message for the page: key and headers as text (capped), the value as its event when
    it is one (else why not, and its start as text)."""
    kind, stamp = msg.timestamp()
    value = msg.value()
    headers = list(msg.headers() or [])
    read = ReadMessage(
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp=datetime.fromtimestamp(stamp / 1000, UTC) if kind and stamp > 0 else None,
        key=_text(msg.key(), KEY_CHARS),
        headers=[
            Header(_text(n, HEADER_CHARS) or "", _text(v, HEADER_CHARS))
            for n, v in headers[:HEADERS_MAX]
        ],
        size=len(value or b""),
        headers_cut=max(0, len(headers) - HEADERS_MAX),
    )
    try:
        event = parse_event(value)
    except InvalidEventError as exc:
        read.invalid = str(exc)[:RAW_CHARS]
        read.raw = _text(value, RAW_CHARS)
        read.truncated = len(value or b"") > RAW_CHARS
        return read
    read.event_type = event.type
    read.event_id = str(event.event_id)
    read.job_id = event.job_id
    payload = event.payload.model_dump(mode="json")
    if len(json.dumps(payload)) <= PAYLOAD_BYTES:
        read.payload = payload
    else:
        read.raw = _text(value, RAW_CHARS)
        read.truncated = True
    return read


def candidates(messages: Iterable[ReadMessage]) -> list[str]:
    """The job ids the messages may link to (their events' job ids, or keys)."""
    return sorted({c for m in messages for c in m.job_candidates()})
