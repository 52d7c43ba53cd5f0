"""Failures: retry or dead letter, the backoff, and the ``pod.*`` headers that carry why and
where a message failed (the monitor and the API read them too).

:class:`FailureRouter` sends a failed message on: to the delay topic of its next attempt, or to
the stage's DLQ. It produces through the runner's acked send, so it is tested with a fake one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from shared.contract.events import Event
from shared.contract.topics import RETRY_LEVELS, Stage
from shared.pipeline.runner import headers as hdr
from shared.pipeline.runner.heartbeat import RunnerStats
from shared.pipeline.runner.model import RunnerSettings
from shared.platform.errors import InvalidEventError, PodError

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]


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


def without_value(headers: Headers, size: int, err: KafkaException) -> Headers:
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
    msg: Message, exc: BaseException, headers: dict[str, str], stage: Stage
) -> Headers:
    """Why and where a message failed; the original coordinates survive every retry hop."""
    now = datetime.now(UTC).isoformat()
    topic, partition, offset = coords(msg)
    first = now
    if topic in stage.retry_topics and headers.get(hdr.ORIGINAL_TOPIC) in stage.inputs:
        # A retry hop: where the stage first read it, as the hop before this one wrote it.
        topic = headers[hdr.ORIGINAL_TOPIC]
        partition = _int_or(header_int(headers, hdr.ORIGINAL_PARTITION), partition)
        offset = _int_or(header_int(headers, hdr.ORIGINAL_OFFSET), offset)
        first = headers.get(hdr.FIRST_FAILURE_AT, now)
    # Otherwise the topic it was consumed from, whatever a producer's headers claim: the replay
    # target is derived from it (a forged pod.original.topic must not aim a replay at another
    # topic, pod.control say).
    return [
        (hdr.ERROR_CLASS, type(exc).__name__.encode()),
        (hdr.ERROR_MESSAGE, describe(exc)[:4000].encode()),
        (hdr.ERROR_RETRYABLE, b"true" if getattr(exc, "retryable", True) else b"false"),
        (hdr.ORIGINAL_TOPIC, topic.encode()),
        (hdr.ORIGINAL_PARTITION, str(partition).encode()),
        (hdr.ORIGINAL_OFFSET, str(offset).encode()),
        (hdr.FIRST_FAILURE_AT, first.encode()),
        (hdr.STAGE, stage.name.encode()),
        (hdr.FAILED_AT, now.encode()),
    ]


def _int_or(value: int | None, default: int) -> int:
    return default if value is None else value


def coords(msg: Message) -> tuple[str, int, int]:
    # A consumed (non-error) message always has all three.
    return str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)


def retry_delay(exc: BaseException, attempt: int, base: float, cap: float) -> float:
    """How long before ``attempt``: the backoff, or the vendor's wait (``retry_after``) when
    longer, up to the longest delay ever scheduled (``cap``)."""
    delay = backoff(attempt, base, cap)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and math.isfinite(retry_after):
        delay = min(max(delay, float(retry_after)), cap)
    return delay


def retry_headers(
    msg: Message,
    exc: BaseException,
    headers: dict[str, str],
    stage: Stage,
    *,
    attempt: int,
    due: float,
) -> Headers:
    """A delay-topic copy's headers: why and where it failed, its attempt, when it is due."""
    return [
        *failure_headers(msg, exc, headers, stage),
        (hdr.ATTEMPT, str(attempt).encode()),
        (hdr.RETRY_DUE, str(int(due * 1000)).encode()),
    ]


def dead_letter_headers(
    msg: Message, exc: BaseException, headers: dict[str, str], stage: Stage
) -> Headers:
    """A dead letter's headers: why and where it failed, and the retries it had."""
    return [
        *failure_headers(msg, exc, headers, stage),
        (hdr.ATTEMPT, str(attempt_of(headers, strict=False)).encode()),
    ]


class Produce(Protocol):
    """The runner's send: produce one record and wait for the broker's ack."""

    def __call__(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Headers | None = None,
    ) -> Awaitable[None]: ...


class FailureRouter:
    """Sends a stage's failed messages on: to a delay topic, or to the stage's DLQ.

    Each call returns True once the copy is acknowledged, when the runner may mark the input
    done. ``stopping`` says the runner is shutting down; ``sleep`` and ``clock`` are there for
    tests.
    """

    def __init__(
        self,
        stage: Stage,
        settings: RunnerSettings,
        produce: Produce,
        stats: RunnerStats,
        *,
        stopping: Callable[[], bool],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = stage
        self.settings = settings
        self.produce = produce
        self.stats = stats
        self.stopping = stopping
        self.sleep = sleep
        self.clock = clock

    async def retry(
        self,
        msg: Message,
        exc: BaseException,
        event: Event,
        attempt: int,
        headers: dict[str, str],
    ) -> bool:
        """Hand the message to the delay topic of ``attempt``; the partition moves on.

        False when the copy cannot be produced (e.g. larger than the broker takes once the
        failure headers are added): the caller dead-letters it instead.
        """
        s = self.settings
        delay = retry_delay(exc, attempt, s.retry_base_delay_s, s.retry_max_delay_s)
        retry_topic = self.stage.retry_topic(min(attempt, RETRY_LEVELS))
        out = retry_headers(
            msg, exc, headers, self.stage, attempt=attempt, due=self.clock() + delay
        )
        logger.warning(
            "retry scheduled job_id=%s topic=%s partition=%d offset=%d attempt=%d "
            "delay_s=%.2f retry_topic=%s error=%s",
            event.job_id,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            attempt,
            delay,
            retry_topic,
            describe(exc)[:500],
        )
        try:
            await self.produce(retry_topic, msg.value() or b"", key=msg.key(), headers=out)
        except KafkaException as err:
            if is_permanent_produce_error(err):
                logger.error(
                    "retry copy refused job_id=%s topic=%s partition=%d offset=%d error=%s",
                    event.job_id,
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    err,
                )
                return False
            raise
        return True

    async def dead_letter(
        self,
        msg: Message,
        exc: BaseException,
        event: Event | None,
        headers: dict[str, str],
    ) -> bool:
        """Put the message on the stage's DLQ with why it failed. True once it is there.

        A copy the broker refuses (too large once the reason is added) goes without its value,
        saying so; a broker that cannot be reached is retried until it can, or until shutdown
        (False: left uncommitted for the next owner) - never marked done without a record.
        """
        topic, partition, offset = coords(msg)
        if topic == self.stage.dlq:
            # A record of our own DLQ (the monitor reads its own): it already is a dead letter,
            # and copying it there again would loop.
            logger.error(
                "dead letter not recorded, left on the dlq topic=%s partition=%d offset=%d "
                "error=%s",
                topic,
                partition,
                offset,
                describe(exc)[:500],
            )
            return True
        self.stats.dead_lettered += 1
        out = dead_letter_headers(msg, exc, headers, self.stage)
        logger.error(
            "dead-lettered job_id=%s topic=%s partition=%d offset=%d dlq=%s attempts=%s error=%s",
            event.job_id if event else "-",
            topic,
            partition,
            offset,
            self.stage.dlq,
            headers.get(hdr.ATTEMPT, "0")[:20],
            describe(exc)[:500],
        )
        value: bytes | None = msg.value() or b""
        wait = 1.0
        while True:
            try:
                await self.produce(self.stage.dlq, value, key=msg.key(), headers=out)
                return True
            except KafkaException as err:
                if is_permanent_produce_error(err) and value:
                    size = len(value)
                    logger.error(
                        "dead letter too large, value dropped topic=%s partition=%d offset=%d "
                        "bytes=%d",
                        topic,
                        partition,
                        offset,
                        size,
                    )
                    value = None
                    out = without_value(out, size, err)
                    continue
                if self.stopping():
                    return False
                logger.warning(
                    "dead letter not produced, retrying topic=%s partition=%d offset=%d "
                    "wait_s=%.0f error=%s",
                    topic,
                    partition,
                    offset,
                    wait,
                    err,
                )
            await self.sleep(wait)
            wait = min(wait * 2, 30.0)
