"""Reading dead-letter records: each becomes a StageFailed event the monitor can fold."""

from __future__ import annotations

import json
import uuid
from typing import Any

from confluent_kafka import Message

from shared.errors import InvalidEventError
from shared.events import (
    EVENT_TYPES,
    Event,
    StageFailed,
    StageFailedPayload,
    parse_event,
)
from shared.runner import parse_message

_DLQ_NS = uuid.UUID("3b0f3f55-8f0e-4c59-9a47-2f7f1d0c9e21")


def _headers(msg: Message) -> dict[str, str]:
    pairs: list[tuple[str, bytes | None]] = list(msg.headers() or [])  # type: ignore[arg-type]
    return {k: (v.decode(errors="replace") if v else "") for k, v in pairs}


def parse_record(msg: Message, accept: tuple[type[Event], ...]) -> Event:
    """Parse a message of any monitor input; DLQ records become StageFailed events."""
    topic = msg.topic() or ""
    if not topic.endswith(".dlq"):
        return parse_message(msg, accept)
    try:
        original: Event | None = parse_event(msg.value(), EVENT_TYPES)
    except InvalidEventError:
        original = None
    if isinstance(original, StageFailed):
        return original  # a stage reported part of a job as failed, already in our form
    headers = _headers(msg)
    job_id = original.job_id if original else (msg.key() or b"").decode(errors="replace")
    if not job_id:
        raise InvalidEventError("dead letter without a job id (no parseable value, no key)")
    payload: Any = original.payload if original else None
    failed = StageFailedPayload(
        stage=headers.get("pod.stage") or topic.removesuffix(".dlq"),
        error_class=headers.get("pod.error.class") or "Unknown",
        message=headers.get("pod.error.message") or "no reason recorded",
        retryable=headers.get("pod.error.retryable") == "true",
        image_index=getattr(payload, "image_index", None),
        product_type=getattr(payload, "product_type", None),
        input_topic=headers.get("pod.original.topic"),
        input_partition=_int(headers.get("pod.original.partition")),
        input_offset=_int(headers.get("pod.original.offset")),
        input_event=json.loads(original.to_json()) if original else None,
    )
    # The id comes from the record's coordinates: folding the same record twice is a no-op.
    return StageFailed(
        event_id=uuid.uuid5(_DLQ_NS, f"{topic}:{msg.partition()}:{msg.offset()}"),
        job_id=job_id,
        producer="monitor",
        correlation_id=original.correlation_id if original else None,
        payload=failed,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
