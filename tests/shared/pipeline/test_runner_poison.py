"""Poison messages against the real broker: whatever a header, a payload or a vendor answer holds,
the message ends in the DLQ with its reason (or is processed), the partition's committed offset
moves past it, and a good message behind it on the same partition is processed."""

from __future__ import annotations

import asyncio
import json

from confluent_kafka import Producer

from shared.contract.events import JobRequested, parse_event
from shared.pipeline.runner import MessageContext, Output, StageRunner
from shared.platform.errors import PermanentError, RateLimited, RetryableError
from tests.shared.pipeline.test_runner import read_async, settings, setup_stage, wait_async
from tests.support.kafka import job, lagging
from tests.support.stages import make_echo_handler, output_topic

Headers = list[tuple[str, str | bytes | None]]


def produce_raw(
    bootstrap: str, topic: str, items: list[tuple[bytes, bytes | None, Headers]]
) -> None:
    """Produce (key, value, headers) to partition 0 and wait for the acks."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value, headers in items:
        producer.produce(topic, value, key=key, partition=0, headers=headers)
    assert producer.flush(30) == 0


def reasons(dlq: list) -> dict[bytes, str]:
    return {m.key(): dict(m.headers())["pod.error.message"].decode() for m in dlq}


async def test_poison_messages_are_dead_lettered_and_the_commit_moves_past_them(
    pipeline_topics: str,
) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    echo = make_echo_handler(name)
    seen: dict[str, int] = {}

    async def handler(event: JobRequested, ctx: MessageContext) -> list[Output]:
        seen[event.job_id] = seen.get(event.job_id, 0) + 1
        if event.job_id == "inf-wait" and ctx.attempt == 0:
            # A vendor's Retry-After: inf must neither crash the task nor delay it for ever.
            raise RateLimited("slow down", vendor="sim", status=429, retry_after=float("inf"))
        if event.job_id == "huge-retryable":
            raise RetryableError("flaky " + "x" * 3000)
        if event.job_id == "huge-permanent":
            raise PermanentError("rejected " + "y" * 3000)
        return await echo(event, ctx)

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handler,
        settings=settings(bootstrap, retry_max_delay_s=0.5, retry_attempts=2),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())

    def raw(job_id: str) -> bytes:
        return job(job_id).to_json()

    def padded(job_id: str) -> bytes:
        # Just under the producer's 1,000,000-byte limit: the copy with failure headers is over.
        event = json.loads(raw(job_id))
        event["correlation_id"] = "p" * 999_000
        return json.dumps(event).encode()

    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    inputs: list[tuple[bytes, bytes | None, Headers]] = [
        (b"bad-attempt", raw("bad-attempt"), [("pod.attempt", b"abc")]),
        (b"binary-attempt", raw("binary-attempt"), [("pod.attempt", b"\xff\xfe")]),
        (b"null-value", None, []),
        (b"not-utf8", b"\xff\xfe\xfd{", []),
        (b"deep-json", deep, []),
        (b"nul-text", raw("nul-text").replace(b'"space"', b'"sp\\u0000ace"'), []),
        (b"future", raw("future").replace(b'"occurred_at":"2', b'"occurred_at":"9'), []),
        (b"inf-wait", raw("inf-wait"), []),
        (b"huge-retryable", padded("huge-retryable"), []),
        (b"huge-permanent", padded("huge-permanent"), []),
        (b"good", raw("good"), []),
    ]
    await asyncio.to_thread(produce_raw, bootstrap, stage.inputs[0], inputs)
    # Delay-topic messages whose due time is garbage, overflowing or far in the future.
    delayed: list[tuple[bytes, bytes | None, Headers]] = [
        (b"due-garbage", raw("due-garbage"), [("pod.attempt", b"1"), ("pod.retry.due", b"soon")]),
        (
            b"due-overflow",
            raw("due-overflow"),
            [("pod.attempt", b"1"), ("pod.retry.due", b"9" * 5000)],
        ),
        (
            b"due-far",
            raw("due-far"),
            [("pod.attempt", b"1"), ("pod.retry.due", b"99999999999999")],
        ),
    ]
    await asyncio.to_thread(produce_raw, bootstrap, stage.retry_topic(1), delayed)

    out = await read_async(bootstrap, output_topic(name), 5)
    poison = {k for k, _, _ in inputs} - {b"good", b"inf-wait"}
    dlq = await read_async(bootstrap, stage.dlq, len(poison))
    topics = [stage.inputs[0], *stage.retry_topics]
    await wait_async(
        lambda: not lagging(bootstrap, runner.group_id, topics), 30, "commits past every message"
    )
    runner.request_stop()
    await asyncio.wait_for(task, 30)
    assert not task.exception()

    done = sorted(parse_event(m.value()).job_id for m in out)
    assert done == ["due-far", "due-garbage", "due-overflow", "good", "inf-wait"]
    why = reasons(dlq)
    assert set(why) == poison
    assert "pod.attempt" in why[b"bad-attempt"]
    assert "pod.attempt" in why[b"binary-attempt"]
    assert "no value" in why[b"null-value"]
    assert "recursion" in why[b"deep-json"]
    assert "payload.theme: NUL" in why[b"nul-text"]
    assert "occurred_at" in why[b"future"] and "future" in why[b"future"]
    for key in (b"huge-retryable", b"huge-permanent"):
        record = next(m for m in dlq if m.key() == key)
        assert not record.value()  # the copy was refused: recorded without its value ...
        assert dict(record.headers())["pod.value.dropped"].isdigit()  # ... saying so
        assert "dropped" in why[key]
    assert "flaky" in why[b"huge-retryable"] and "rejected" in why[b"huge-permanent"]
    assert seen["inf-wait"] == 2
