"""Reading dead-letter records: each becomes a StageFailed event the monitor can fold.

Every record on a stage's DLQ topic is also a *dead letter* to list and replay: the event
parsed from it carries a :class:`DeadLetter` (its coordinates, headers, and what a replay would
re-produce where), which the fold records in ``dead_letters`` in the same transaction.

Two kinds of record arrive on a DLQ:

- a raw record dead-lettered by the runner: the original value, with the reason in ``pod.*``
  headers. Even one without a parseable value or a key is recorded (its job id is then unknown);
- a ``StageFailed`` event a stage put there itself (the printify stage, per failed product type),
  whose ``input_event`` is the input narrowed to what failed: that is what a replay re-produces.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from psycopg import AsyncConnection
from pydantic import Field

from shared.adapters.store import job_claims, jobs
from shared.adapters.store.dead_letters import DeadLetter
from shared.contract.events import (
    EVENT_TYPES,
    Event,
    Priority,
    StageFailed,
    StageFailedPayload,
    as_utc,
    parse_event,
)
from shared.contract.topics import (
    GENERATOR,
    JOBS_REQUESTED,
    PIPELINE_STAGES,
    PRINTIFY_WEBHOOKS,
    SELLER_DECISIONS,
    STAGES,
    Stage,
    accepted_on,
    replay_targets_of,
)
from shared.pipeline.runner import header_int, message_headers, parse_message
from shared.pipeline.runner import headers as hdr
from shared.platform.errors import InvalidEventError

logger = logging.getLogger(__name__)

_DLQ_NS = uuid.UUID("3b0f3f55-8f0e-4c59-9a47-2f7f1d0c9e21")
# The job id of a StageFailed made from a record that names no job (no parseable value, no key);
# its dead letter keeps job_id NULL.
UNKNOWN_JOB = "unknown"
_RETRY_TOPIC = re.compile(r"(?P<family>.+)\.retry\.\d+")
_BY_FAMILY: dict[str, Stage] = {STAGES[n].family: STAGES[n] for n in PIPELINE_STAGES}
_BY_DLQ: dict[str, Stage] = {s.dlq: s for s in STAGES.values()}
# Limits of the event contract (shared/contract/events.py) that text taken from headers must
# respect.
_MAX_JOB_ID = 100
_MAX_NAME = 500


class DeadLetterFailed(StageFailed):
    """A StageFailed read off a DLQ topic, with the dead letter to record (never serialised)."""

    dead_letter: DeadLetter = Field(exclude=True)
    # Its record is an event of a type its topic never carries: listed, never folded.
    misplaced: bool = Field(default=False, exclude=True)


def parse_record(msg: Message, accept: tuple[type[Event], ...]) -> Event:
    """Parse a message of any monitor input; DLQ records become StageFailed events.

    ``accept`` is what the record's topic may carry (the runner's allow-list): an event of
    another type is never folded into a job. On a DLQ only a stage that reports there
    (``Stage.reports_on_dlq``) puts a StageFailed of its own; a record with the runner's failure
    headers is a copy of a failed input, read as what that input may carry."""
    topic = msg.topic() or ""
    retry = _RETRY_TOPIC.fullmatch(topic)
    if retry is not None and retry["family"] in _BY_FAMILY:
        return _retrying(msg, accept)
    if not topic.endswith(".dlq"):
        return parse_message(msg, accept)
    headers = _headers(msg)
    stage = _BY_DLQ.get(topic)
    if hdr.ERROR_CLASS not in headers and stage is not None and stage.reports_on_dlq:
        try:
            report = parse_event(msg.value(), (StageFailed,), topic=topic)
        except InvalidEventError:
            pass
        else:
            assert isinstance(report, StageFailed)
            if report.payload.retryable:
                # A notice that the work waits in a delay topic: nothing has been given up yet.
                return report
            return _reported(msg, report, headers)
    copied = _copied_types(topic, headers)
    try:
        original: Event | None = parse_event(msg.value(), copied)
    except InvalidEventError:
        original = None
    return _raw(msg, original, headers, misplaced=original is None and _is_event(msg.value()))


def _copied_types(dlq_topic: str, headers: dict[str, str]) -> tuple[type[Event], ...]:
    """What a runner's copy on ``dlq_topic`` may hold: what the input it was read from carries
    (its pod.original.topic, when that is an input of the DLQ's stage), else any of the stage's
    inputs' types."""
    stage = _BY_DLQ.get(dlq_topic)
    source = headers.get(hdr.ORIGINAL_TOPIC)
    if stage is not None and source in (*stage.inputs, *stage.retry_topics):
        found = accepted_on(source)
        if found is not None:
            return found
    return accepted_on(dlq_topic, ("dead_letter",)) or ()


def _is_event(value: bytes | None) -> bool:
    """True when ``value`` is a valid event of some type (then one where it does not belong)."""
    try:
        parse_event(value, EVENT_TYPES)
    except (InvalidEventError, RecursionError):
        return False
    return True


def _reported(msg: Message, event: StageFailed, headers: dict[str, str]) -> DeadLetterFailed:
    """A stage's own StageFailed report: replay its ``input_event`` onto its input topic."""
    f = event.payload
    topic = msg.topic() or ""
    replay_value = json.dumps(f.input_event).encode() if f.input_event is not None else None
    dead = DeadLetter(
        topic=topic,
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        stage=f.stage,
        job_id=event.job_id,
        error_class=f.error_class,
        message=_text(f.message),
        retryable=f.retryable,
        original_topic=f.input_topic,
        replay_topic=replay_topic(topic, f.input_topic, f.input_event),
        replay_value=replay_value,
        headers=headers,
        failed_at=event.occurred_at,
        parsed=True,
    )
    return DeadLetterFailed.model_validate({**dict(event), "dead_letter": dead})


def _raw(
    msg: Message, original: Event | None, headers: dict[str, str], *, misplaced: bool = False
) -> DeadLetterFailed:
    """A record the runner dead-lettered: the original value, the reason in headers.
    ``misplaced``: its value is an event of a type its topic does not carry (forged or
    misrouted), which tells nothing about the job its key names."""
    topic = msg.topic() or ""
    partition, offset = msg.partition() or 0, msg.offset() or 0
    value = msg.value()
    if original is not None:
        job_id: str | None = original.job_id
    else:
        job_id = _text((msg.key() or b"").decode(errors="replace"))[:_MAX_JOB_ID] or None
    original_topic = headers.get(hdr.ORIGINAL_TOPIC) or None
    stage = _clip(headers.get(hdr.STAGE) or _stage_name(topic))
    error_class = _clip(headers.get(hdr.ERROR_CLASS) or "Unknown")
    message = headers.get(hdr.ERROR_MESSAGE) or "no reason recorded"
    failed_at = _timestamp(headers.get(hdr.FAILED_AT)) or _record_time(msg)
    dead = DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        stage=stage,
        job_id=job_id,
        error_class=error_class,
        message=message,
        retryable=headers.get(hdr.ERROR_RETRYABLE) == "true",
        original_topic=original_topic,
        replay_topic=replay_topic(topic, original_topic, _json_object(value)),
        replay_value=value,
        headers=headers,
        failed_at=failed_at,
        parsed=original is not None,
    )
    payload: Any = original.payload if original else None
    failed = StageFailedPayload(
        stage=stage,
        error_class=error_class,
        message=message,
        # On the DLQ the work has been given up, whatever the error's class.
        retryable=False,
        attempt=header_int(headers, hdr.ATTEMPT) or 0,
        image_index=getattr(payload, "image_index", None),
        product_type=getattr(payload, "product_type", None),
        input_topic=original_topic,
        input_partition=header_int(headers, hdr.ORIGINAL_PARTITION),
        input_offset=header_int(headers, hdr.ORIGINAL_OFFSET),
        input_event=json.loads(original.to_json()) if original else None,
    )
    # The id comes from the record's coordinates: folding the same record twice is a no-op.
    return DeadLetterFailed(
        event_id=uuid.uuid5(_DLQ_NS, f"{topic}:{partition}:{offset}"),
        job_id=job_id or UNKNOWN_JOB,
        occurred_at=failed_at,
        producer="monitor",
        correlation_id=original.correlation_id if original else None,
        payload=failed,
        dead_letter=dead,
        misplaced=misplaced,
    )


def _retrying(msg: Message, accept: tuple[type[Event], ...]) -> StageFailed:
    """A record in another stage's delay topic: its job waits for another attempt."""
    topic = msg.topic() or ""
    headers = _headers(msg)
    try:
        original: Event | None = parse_event(msg.value(), accept)
    except InvalidEventError:
        original = None
    job_id = original.job_id if original else _text((msg.key() or b"").decode(errors="replace"))
    due_ms = header_int(headers, hdr.RETRY_DUE, max_digits=16)
    payload: Any = original.payload if original else None
    failed = StageFailedPayload(
        stage=_clip(headers.get(hdr.STAGE) or "unknown"),
        error_class=_clip(headers.get(hdr.ERROR_CLASS) or "Unknown"),
        message=headers.get(hdr.ERROR_MESSAGE) or "no reason recorded",
        retryable=True,
        attempt=header_int(headers, hdr.ATTEMPT) or 0,
        next_attempt_at=datetime.fromtimestamp(due_ms / 1000, UTC) if due_ms else None,
        image_index=getattr(payload, "image_index", None),
        product_type=getattr(payload, "product_type", None),
        input_topic=headers.get(hdr.ORIGINAL_TOPIC) or None,
    )
    return StageFailed(
        event_id=uuid.uuid5(_DLQ_NS, f"{topic}:{msg.partition()}:{msg.offset()}"),
        job_id=job_id[:_MAX_JOB_ID] or UNKNOWN_JOB,
        occurred_at=_timestamp(headers.get(hdr.FAILED_AT)) or _record_time(msg),
        producer="monitor",
        payload=failed,
    )


@dataclass(frozen=True)
class _Head:
    """What a replay's target depends on in a dead letter's value: its event type and the
    priority of its payload, read leniently (the value is whatever was dead-lettered)."""

    type: str | None = None
    priority: Priority = Priority.NORMAL

    @classmethod
    def of(cls, event: Mapping[str, object] | None) -> _Head:
        if event is None:
            return cls()
        kind = event.get("type")
        payload = event.get("payload")
        raw = payload.get("priority") if isinstance(payload, dict) else None
        try:
            priority = Priority(raw) if raw else Priority.NORMAL
        except ValueError:
            priority = Priority.NORMAL
        return cls(type=kind if isinstance(kind, str) else None, priority=priority)


def replay_topic(
    dlq_topic: str, source: str | None, event: Mapping[str, object] | None
) -> str | None:
    """The stage input a dead letter is replayed onto.

    The monitor's own dead letters go to the monitor's first delay topic. Otherwise the topic
    it was consumed from (``source``), except a retry topic ``<family>.retry.<n>``,
    which maps to the family's main input: a replay starts over, it is not a delayed retry. The
    generator's family has one input per priority: the event's own priority picks it (normal
    when it has none). Without a source, the DLQ's own family decides; None when unknown.
    """
    allowed = replay_targets_of(dlq_topic)
    if len(allowed) == 1:
        # The monitor's own letters go back to the monitor alone (its delay topic, due at once):
        # the original topic would make every other stage redo them too; and a channel's
        # publisher shares products.created with the others, so its delay topic replays a
        # letter to that channel alone.
        return allowed[0]
    stage = _BY_DLQ.get(dlq_topic)
    if source and stage is not None:
        if source in stage.inputs:
            return source
        if source in stage.retry_topics:
            return _main_input(stage.family, _Head.of(event))
    # No source, or one that is none of the stage's inputs (a producer's header copied by an
    # older runner): the DLQ's own stage decides, never the header.
    found = _main_input(dlq_topic.removesuffix(".dlq"), _Head.of(event))
    return found if found in allowed else None


def _main_input(family: str, head: _Head) -> str | None:
    if head.type == "printify.webhook":
        return PRINTIFY_WEBHOOKS  # the publisher's second input
    if head.type == "seller.decision":
        # A stage's other input: replayed there (every stage acts once per decision id).
        return SELLER_DECISIONS
    if family == GENERATOR.family:
        return JOBS_REQUESTED[head.priority]
    stage = _BY_FAMILY.get(family)
    return stage.inputs[0] if stage else None


def _stage_name(dlq_topic: str) -> str:
    family = dlq_topic.removesuffix(".dlq")
    stage = _BY_FAMILY.get(family)
    return stage.name if stage else family or "unknown"


async def unattributable(conn: AsyncConnection[Any], event: StageFailed) -> bool:
    """True when a dead letter's failure cannot be folded into a job's state.

    A record without a valid event of its topic (malformed, or a type the topic never carries)
    names its job only by its Kafka key, which is whatever its producer wrote: it never counts
    against a job (a producer allowed to submit could otherwise fail anyone's job with one bad
    record under its id). A valid event of a job nobody requested (a forged output a stage
    refused) has no job to count against. Either way its dead letter is recorded and listed.
    """
    if not isinstance(event, DeadLetterFailed):
        return False
    if event.misplaced or not event.dead_letter.parsed or event.dead_letter.job_id is None:
        return True
    if await jobs.exists(conn, event.job_id):
        return False
    return not await job_claims.claimed(conn, event.job_id)


def _headers(msg: Message) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in message_headers(msg).items()}


def _json_object(value: bytes | None) -> Mapping[str, object] | None:
    try:
        data = json.loads(value) if value else None
    except (ValueError, RecursionError):  # nested 5,000 deep is not a ValueError
        return None
    return data if isinstance(data, dict) else None


def _text(value: str) -> str:
    # PostgreSQL text and JSONB reject NUL; a record must never fail to be recorded over one.
    return value.replace("\x00", "")


def _clip(value: str) -> str:
    return value[:_MAX_NAME]


def _timestamp(value: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return as_utc(parsed) if parsed is not None else None


def _record_time(msg: Message) -> datetime:
    kind, millis = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return datetime.now(UTC)
    return datetime.fromtimestamp(millis / 1000, UTC)
