"""The runner's failure rules and heartbeat, without a broker: the failure router produces
through a fake send."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from shared.contract.topics import RETRY_LEVELS, Stage
from shared.pipeline.runner import headers as hdr
from shared.pipeline.runner.failures import (
    FailureRouter,
    Headers,
    attempt_of,
    backoff,
    describe,
    is_permanent_produce_error,
    retry_due,
    without_value,
)
from shared.pipeline.runner.heartbeat import RunnerStats, heartbeat_event
from shared.pipeline.runner.model import RunnerSettings
from shared.platform.errors import InvalidEventError, PermanentError, RateLimited, RetryableError
from tests.support.kafka import job


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


# ------------------------------------------------------------------ the failure router

STAGE = Stage("echo", ("echo.in",), "echo.in")
NOW = 1_000_000.0
TOO_LARGE = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
UNREACHABLE = KafkaException(KafkaError(KafkaError._TRANSPORT))


@dataclass
class Sent:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: dict[str, str]


@dataclass
class FakeSend:
    """The runner's acked send: records what it was given, or raises the next queued error."""

    errors: list[KafkaException] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    tried: int = 0

    async def __call__(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        self.tried += 1
        if self.errors:
            raise self.errors.pop(0)
        text = {k: v.decode() if isinstance(v, bytes) else v or "" for k, v in headers or []}
        self.sent.append(Sent(topic, value, key, text))


@dataclass
class Router:
    router: FailureRouter
    send: FakeSend
    stats: RunnerStats
    slept: list[float]
    stopping: list[bool]


def make_router(*errors: KafkaException) -> Router:
    send = FakeSend(list(errors))
    stats = RunnerStats()
    slept: list[float] = []
    stopping = [False]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    config = RunnerSettings(retry_base_delay_s=10.0, retry_max_delay_s=100.0)
    router = FailureRouter(
        STAGE, config, send, stats, stopping=lambda: stopping[0], sleep=sleep, clock=lambda: NOW
    )
    return Router(router, send, stats, slept, stopping)


def message(
    topic: str = "echo.in", value: bytes = b'{"x": 1}', headers: Headers | None = None
) -> Message:
    return Message(
        topic=topic, partition=2, offset=41, key=b"job-1", value=value, headers=headers or []
    )


async def test_a_retry_goes_to_its_attempts_delay_topic_with_why_and_when() -> None:
    r = make_router()
    assert await r.router.retry(message(), RetryableError("down"), job("job-1"), 2, {})
    [sent] = r.send.sent
    assert (sent.topic, sent.value, sent.key) == ("echo.in.retry.2", b'{"x": 1}', b"job-1")
    h = sent.headers
    assert h[hdr.ATTEMPT] == "2"
    due = int(h[hdr.RETRY_DUE]) / 1000
    assert NOW + 10 <= due <= NOW + 20  # attempt 2: 20 s, half of it jittered away at most
    assert (h[hdr.ORIGINAL_TOPIC], h[hdr.ORIGINAL_PARTITION], h[hdr.ORIGINAL_OFFSET]) == (
        "echo.in",
        "2",
        "41",
    )
    assert (h[hdr.ERROR_CLASS], h[hdr.ERROR_RETRYABLE], h[hdr.STAGE]) == (
        "RetryableError",
        "true",
        "echo",
    )
    assert h[hdr.ERROR_MESSAGE] == "down"
    assert h[hdr.FIRST_FAILURE_AT] == h[hdr.FAILED_AT]


async def test_a_retry_hop_keeps_where_the_message_first_failed() -> None:
    r = make_router()
    first = {
        hdr.ORIGINAL_TOPIC: "echo.in",
        hdr.ORIGINAL_PARTITION: "0",
        hdr.ORIGINAL_OFFSET: "7",
        hdr.FIRST_FAILURE_AT: "2026-01-01T00:00:00+00:00",
        hdr.ATTEMPT: "1",
    }
    hop = message("echo.in.retry.1", headers=[(k, v.encode()) for k, v in first.items()])
    assert await r.router.retry(hop, RetryableError("again"), job("job-1"), 2, first)
    h = r.send.sent[0].headers
    assert {k: h[k] for k in first if k != hdr.ATTEMPT} == {
        k: v for k, v in first.items() if k != hdr.ATTEMPT
    }
    assert h[hdr.ATTEMPT] == "2"


async def test_attempts_past_the_last_delay_topic_use_the_last() -> None:
    r = make_router()
    assert await r.router.retry(message(), RetryableError("x"), job("j"), RETRY_LEVELS + 2, {})
    assert r.send.sent[0].topic == STAGE.retry_topic(RETRY_LEVELS)


async def test_a_vendors_wait_is_honoured_up_to_the_longest_delay() -> None:
    r = make_router()
    await r.router.retry(message(), RateLimited("429", retry_after=70.0), job("j"), 1, {})
    await r.router.retry(message(), RateLimited("429", retry_after=5000.0), job("j"), 1, {})
    await r.router.retry(message(), RateLimited("429", retry_after=float("inf")), job("j"), 1, {})
    dues = [int(s.headers[hdr.RETRY_DUE]) / 1000 - NOW for s in r.send.sent]
    assert dues[0] == 70.0 and dues[1] == 100.0
    assert 5.0 <= dues[2] <= 10.0  # not a number of seconds: the backoff


async def test_a_refused_retry_copy_is_left_to_the_dead_letter_and_an_outage_raises() -> None:
    r = make_router(TOO_LARGE)
    assert not await r.router.retry(message(), RetryableError("x"), job("j"), 1, {})
    r = make_router(UNREACHABLE)
    with pytest.raises(KafkaException):
        await r.router.retry(message(), RetryableError("x"), job("j"), 1, {})


async def test_a_dead_letter_goes_to_the_dlq_with_why_and_its_retries() -> None:
    r = make_router()
    headers = {hdr.ATTEMPT: "3", hdr.ORIGINAL_TOPIC: "echo.in", hdr.ORIGINAL_OFFSET: "5"}
    msg = message("echo.in.retry.3")
    assert await r.router.dead_letter(msg, PermanentError("no"), job("job-1"), headers)
    [sent] = r.send.sent
    assert (sent.topic, sent.value, sent.key) == ("echo.in.dlq", b'{"x": 1}', b"job-1")
    h = sent.headers
    assert (h[hdr.ATTEMPT], h[hdr.ERROR_RETRYABLE], h[hdr.ERROR_CLASS]) == (
        "3",
        "false",
        "PermanentError",
    )
    assert (h[hdr.ORIGINAL_TOPIC], h[hdr.ORIGINAL_PARTITION], h[hdr.ORIGINAL_OFFSET]) == (
        "echo.in",
        "2",
        "5",
    )
    assert hdr.RETRY_DUE not in h
    assert r.stats.dead_lettered == 1


async def test_a_malformed_attempt_header_is_dead_lettered_as_no_retries() -> None:
    r = make_router()
    err = InvalidEventError("header pod.attempt: bad")
    assert await r.router.dead_letter(message(), err, None, {hdr.ATTEMPT: "many"})
    assert r.send.sent[0].headers[hdr.ATTEMPT] == "0"


async def test_a_record_of_the_stages_own_dlq_is_not_copied_there_again() -> None:
    r = make_router()
    assert await r.router.dead_letter(message("echo.in.dlq"), PermanentError("x"), None, {})
    assert r.send.tried == 0 and r.stats.dead_lettered == 0


async def test_a_dead_letter_too_large_goes_without_its_value_saying_so() -> None:
    r = make_router(TOO_LARGE)
    assert await r.router.dead_letter(message(value=b"v" * 10), PermanentError("x"), None, {})
    [sent] = r.send.sent
    assert sent.value is None and sent.headers[hdr.VALUE_DROPPED] == "10"
    assert "[value of 10 bytes dropped" in sent.headers[hdr.ERROR_MESSAGE]
    assert r.send.tried == 2 and not r.slept


async def test_a_dead_letter_waits_out_an_outage_with_growing_pauses() -> None:
    r = make_router(*[UNREACHABLE] * 7)
    assert await r.router.dead_letter(message(), PermanentError("x"), None, {})
    assert r.slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert len(r.send.sent) == 1


async def test_a_dead_letter_not_produced_by_shutdown_is_left_for_the_next_owner() -> None:
    r = make_router(UNREACHABLE)
    r.stopping[0] = True
    assert not await r.router.dead_letter(message(), PermanentError("x"), None, {})
    assert not r.send.sent and not r.slept


async def test_a_producers_original_topic_header_is_ignored_on_an_input() -> None:
    # Replays are aimed by pod.original.topic: a producer must not choose it (pod.control).
    r = make_router()
    forged = {
        hdr.ORIGINAL_TOPIC: "pod.control",
        hdr.ORIGINAL_PARTITION: "0",
        hdr.ORIGINAL_OFFSET: "1",
        hdr.FIRST_FAILURE_AT: "2000-01-01T00:00:00+00:00",
    }
    msg = message("echo.in", headers=[(k, v.encode()) for k, v in forged.items()])
    assert await r.router.dead_letter(msg, PermanentError("no"), job("job-1"), forged)
    h = r.send.sent[0].headers
    assert (h[hdr.ORIGINAL_TOPIC], h[hdr.ORIGINAL_PARTITION], h[hdr.ORIGINAL_OFFSET]) == (
        "echo.in",
        "2",
        "41",
    )
    assert h[hdr.FIRST_FAILURE_AT] == h[hdr.FAILED_AT]


async def test_a_retry_hops_header_naming_no_input_of_the_stage_is_ignored() -> None:
    r = make_router()
    forged = {hdr.ORIGINAL_TOPIC: "pod.control", hdr.ORIGINAL_OFFSET: "1", hdr.ATTEMPT: "1"}
    hop = message("echo.in.retry.1", headers=[(k, v.encode()) for k, v in forged.items()])
    assert await r.router.retry(hop, RetryableError("again"), job("job-1"), 2, forged)
    h = r.send.sent[0].headers
    assert (h[hdr.ORIGINAL_TOPIC], h[hdr.ORIGINAL_OFFSET]) == ("echo.in.retry.1", "41")
