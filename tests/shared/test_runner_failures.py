"""The runner's failure rules and heartbeat, without a broker."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from shared.errors import InvalidEventError, RetryableError
from shared.runner.failures import (
    attempt_of,
    backoff,
    describe,
    is_permanent_produce_error,
    retry_due,
    without_value,
)
from shared.runner.heartbeat import RunnerStats, heartbeat_event


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempt, full in ((1, 10.0), (2, 20.0), (3, 40.0), (9, 100.0)):
        delays = [backoff(attempt, 10.0, 100.0) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays), (attempt, delays)


def test_the_attempt_header_is_a_small_integer_or_the_message_is_invalid() -> None:
    assert attempt_of({}) == 0
    assert attempt_of({"pod.attempt": "3"}) == 3
    with pytest.raises(InvalidEventError, match=r"pod\.attempt"):
        attempt_of({"pod.attempt": "-1"})
    assert attempt_of({"pod.attempt": "9" * 40}, strict=False) == 0


def test_a_hostile_due_header_never_pauses_for_ever() -> None:
    now = 1_000_000.0
    assert retry_due({"pod.retry.due": str(int((now + 30) * 1000))}, now, 60) == now + 30
    assert retry_due({"pod.retry.due": "9" * 16}, now, 60) == now  # beyond any delay: now
    assert retry_due({"pod.retry.due": "²"}, now, 60) == now
    assert retry_due({}, now, 60) == now


def test_a_refused_copy_keeps_the_reason_and_says_the_value_was_dropped() -> None:
    err = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert is_permanent_produce_error(err)
    assert not is_permanent_produce_error(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    headers = without_value([("pod.error.message", b"bad"), ("pod.stage", b"x")], 2_000_000, err)
    found = dict(headers)
    assert found["pod.value.dropped"] == b"2000000"
    message = found["pod.error.message"]
    assert isinstance(message, bytes)
    assert message.decode().startswith("bad [value of 2000000 bytes dropped")


def test_errors_are_described_with_their_vendor() -> None:
    assert describe(RetryableError("slow", vendor="printify", status=503)) == "[printify 503] slow"
    assert describe(ValueError("x")) == "ValueError: x"


def test_a_heartbeat_says_who_what_and_how() -> None:
    stats = RunnerStats(processed=7, failed=1)
    event = heartbeat_event(
        service="printify",
        instance_id="printify-0",
        partitions=["images.generated[0]"],
        in_flight=2,
        stats=stats,
    )
    p = event.payload
    assert (event.job_id, p.service, p.processed, p.failed, p.in_flight) == (
        "printify-0",
        "printify",
        7,
        1,
        2,
    )
    assert p.partitions == ["images.generated[0]"] and not p.stopping
