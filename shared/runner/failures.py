"""Failures: retry or dead letter, the backoff, and the ``pod.*`` headers that carry why and
where a message failed (the monitor and the API read them too)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message

from shared.errors import InvalidEventError, PodError
from shared.runner import headers as hdr


def backoff(attempt: int, base: float, cap: float) -> float:
    # Exponential with full jitter: spreads retries of a failed burst over time.
    return float(min(cap, base * (2 ** (attempt - 1))) * (0.5 + random.random() / 2))


def header_int(headers: dict[str, str], name: str, *, max_digits: int = 18) -> int | None:
    """A header holding a non-negative integer of at most ``max_digits`` digits (so within a
    bigint); None when it is absent or holds anything else (signs, ``²``, 5,000 digits)."""
    raw = headers.get(name, "")
    if raw.isascii() and raw.isdigit() and len(raw) <= max_digits:
        return int(raw)
    return None


def attempt_of(headers: dict[str, str], *, strict: bool = True) -> int:
    """The ``pod.attempt`` header (0 when absent). A malformed one makes the message invalid
    (dead-lettered with the reason) unless ``strict`` is off."""
    raw = headers.get(hdr.ATTEMPT, "")
    attempt = header_int(headers, hdr.ATTEMPT, max_digits=6)
    if attempt is not None:
        return attempt
    if not raw or not strict:
        return 0
    raise InvalidEventError(f"header {hdr.ATTEMPT}: not a small non-negative integer: {raw[:40]!r}")


def retry_due(headers: dict[str, str], now: float, max_delay: float) -> float:
    """When a delay-topic message is due (epoch seconds). A malformed or overflowing
    ``pod.retry.due`` is due now, and so is one further ahead than any delay the runner
    schedules: a partition is never paused for ever on a hostile header."""
    due_ms = header_int(headers, hdr.RETRY_DUE, max_digits=16)
    if due_ms is None:
        return now
    due = due_ms / 1000
    return now if due > now + max_delay + 1 else due


def is_permanent_produce_error(err: KafkaException) -> bool:
    """A produce the broker will never take as it is (too large, invalid record)."""
    code = err.args[0].code() if err.args and isinstance(err.args[0], KafkaError) else None
    return code in _REFUSED


_REFUSED = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
}


def without_value(
    headers: list[tuple[str, str | bytes | None]], size: int, err: KafkaException
) -> list[tuple[str, str | bytes | None]]:
    """Failure headers for a dead letter whose value the broker refused."""
    note = f"value of {size} bytes dropped: the broker refused the copy ({err})"
    kept = [(k, v) for k, v in headers if k != hdr.ERROR_MESSAGE]
    message = next((v for k, v in headers if k == hdr.ERROR_MESSAGE), b"") or b""
    text = message.decode() if isinstance(message, bytes) else message
    return [
        *kept,
        (hdr.ERROR_MESSAGE, f"{text} [{note}]"[:4000].encode()),
        (hdr.VALUE_DROPPED, str(size).encode()),
    ]


def describe(exc: BaseException) -> str:
    if isinstance(exc, PodError):
        return exc.describe()
    return f"{type(exc).__name__}: {exc}"


def message_headers(msg: Message) -> dict[str, str]:
    """A message's headers as text (invalid UTF-8 replaced, a null value as "")."""
    try:
        pairs: list[tuple[str, bytes | None]] = list(msg.headers() or [])  # type: ignore[arg-type]
    except (UnicodeDecodeError, ValueError, TypeError):
        # A header key that is not UTF-8 (another client's bytes): treat it as no headers.
        return {}
    return {str(k): v.decode(errors="replace") if v else "" for k, v in pairs}


def failure_headers(
    msg: Message, exc: BaseException, headers: dict[str, str], stage: str
) -> list[tuple[str, str | bytes | None]]:
    """Why and where a message failed; the original coordinates survive every retry hop."""
    topic, partition, offset = coords(msg)
    now = datetime.now(UTC).isoformat()
    return [
        (hdr.ERROR_CLASS, type(exc).__name__.encode()),
        (hdr.ERROR_MESSAGE, describe(exc)[:4000].encode()),
        (hdr.ERROR_RETRYABLE, b"true" if getattr(exc, "retryable", True) else b"false"),
        (hdr.ORIGINAL_TOPIC, headers.get(hdr.ORIGINAL_TOPIC, topic).encode()),
        (hdr.ORIGINAL_PARTITION, headers.get(hdr.ORIGINAL_PARTITION, str(partition)).encode()),
        (hdr.ORIGINAL_OFFSET, headers.get(hdr.ORIGINAL_OFFSET, str(offset)).encode()),
        (hdr.FIRST_FAILURE_AT, headers.get(hdr.FIRST_FAILURE_AT, now).encode()),
        (hdr.STAGE, stage.encode()),
        (hdr.FAILED_AT, now.encode()),
    ]


def coords(msg: Message) -> tuple[str, int, int]:
    # A consumed (non-error) message always has all three.
    return str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)
