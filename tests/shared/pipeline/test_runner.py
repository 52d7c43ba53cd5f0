"""The shared runner against the real broker: delivery, DLQ, ordering of commits, backpressure,
priority bands."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable

import pytest

from shared.contract.events import ImageGenerated, JobRequested, parse_event
from shared.contract.topics import Stage
from shared.pipeline.runner import MessageContext, Output, RunnerSettings, StageRunner
from shared.platform.errors import PermanentError, RetryableError
from tests.support.infra import read_topic, unique
from tests.support.kafka import committed, job, produce
from tests.support.stages import (
    create_stage_topics,
    echo_stage,
    make_echo_handler,
    output_topic,
)


def settings(bootstrap: str, **kw: object) -> RunnerSettings:
    base: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap,
        "commit_interval_ms": 100,
        "heartbeat_interval_s": 1.0,
        "retry_base_delay_s": 0.01,
        "shutdown_grace_s": 10,
        # Small test buffers resume often; each resume waits for a refetch (up to this).
        "fetch_wait_max_ms": 100,
    }
    base.update(kw)
    return RunnerSettings(**base)  # type: ignore[arg-type]


def setup_stage(bootstrap: str, partitions: int = 3) -> tuple[str, Stage]:
    name = unique("echo")
    stage = echo_stage(name)
    create_stage_topics(bootstrap, stage, partitions)
    return name, stage


async def wait_async(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def read_async(bootstrap: str, topic: str, n: int, timeout: float = 60.0) -> list:
    return await asyncio.to_thread(
        read_topic, bootstrap, topic, until=lambda m: len(m) >= n, timeout=timeout
    )


async def test_every_input_gets_its_output_exactly_once(pipeline_topics: str) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap)
    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=make_echo_handler(name),
        settings=settings(bootstrap, max_in_flight=16),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    jobs = [job(f"job-{i}") for i in range(300)]
    await asyncio.to_thread(produce, bootstrap, stage.inputs[0], jobs)

    out = await read_async(bootstrap, output_topic(name), 300)
    runner.request_stop()
    await asyncio.wait_for(task, 30)

    per_job = Counter(parse_event(m.value()).job_id for m in out)
    assert set(per_job) == {j.job_id for j in jobs}
    assert max(per_job.values()) == 1
    offsets = committed(bootstrap, runner.group_id, stage.inputs[0], 3)
    assert sum(offsets.values()) == 300  # everything committed on a clean stop
    # Each output is keyed by its job, so one job's events stay on one partition.
    assert all(m.key() == parse_event(m.value()).job_id.encode() for m in out)


async def test_malformed_messages_go_to_dlq_and_the_partition_moves_on(
    pipeline_topics: str,
) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=make_echo_handler(name),
        settings=settings(bootstrap),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    wrong_type = json.loads(job("x").to_json())
    wrong_type["payload"]["count"] = 0
    await asyncio.to_thread(
        produce,
        bootstrap,
        stage.inputs[0],
        [
            job("good-1"),
            (b"bad-json", b"{not json"),
            (b"bad-schema", json.dumps(wrong_type).encode()),
            job("good-2"),
        ],
    )
    out = await read_async(bootstrap, output_topic(name), 2)
    dlq = await read_async(bootstrap, stage.dlq, 2)
    runner.request_stop()
    await asyncio.wait_for(task, 30)

    assert sorted(parse_event(m.value()).job_id for m in out) == ["good-1", "good-2"]
    assert [m.key() for m in dlq] == [b"bad-json", b"bad-schema"]
    reasons = [dict(m.headers())["pod.error.message"].decode() for m in dlq]
    assert "Invalid JSON" in reasons[0]
    assert "payload.count" in reasons[1]
    headers = dict(dlq[1].headers())
    assert headers["pod.original.topic"].decode() == stage.inputs[0]
    assert headers["pod.original.offset"] == b"2"
    assert headers["pod.error.class"] == b"InvalidEventError"
    assert dlq[0].value() == b"{not json"  # the original bytes, for replay
    assert committed(bootstrap, runner.group_id, stage.inputs[0], 1) == {0: 4}


async def test_permanent_handler_error_is_dead_lettered_without_retry(
    pipeline_topics: str,
) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    calls: Counter[str] = Counter()

    async def handler(event: JobRequested, ctx: MessageContext) -> list[Output]:
        calls[event.job_id] += 1
        if event.job_id == "rejected":
            raise PermanentError("content rejected", vendor="printify", status=400, code="8150")
        return await make_echo_handler(name)(event, ctx)

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage, handler=handler, settings=settings(bootstrap), accept=(JobRequested,)
    )
    task = asyncio.create_task(runner.run())
    await asyncio.to_thread(produce, bootstrap, stage.inputs[0], [job("rejected"), job("after")])
    dlq = await read_async(bootstrap, stage.dlq, 1)
    await read_async(bootstrap, output_topic(name), 1)
    runner.request_stop()
    await asyncio.wait_for(task, 30)
    assert calls["rejected"] == 1
    assert b"[printify 400 8150] content rejected" in dict(dlq[0].headers())["pod.error.message"]


async def test_out_of_order_completion_commits_only_the_contiguous_prefix(
    pipeline_topics: str,
) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    gate = asyncio.Event()
    echo = make_echo_handler(name)

    async def handler(event: JobRequested, ctx: MessageContext) -> list[Output]:
        if ctx.offset == 0:
            await gate.wait()
        return await echo(event, ctx)

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage, handler=handler, settings=settings(bootstrap), accept=(JobRequested,)
    )
    task = asyncio.create_task(runner.run())
    await asyncio.to_thread(produce, bootstrap, stage.inputs[0], [job(f"j{i}") for i in range(5)])

    out = await read_async(bootstrap, output_topic(name), 4)
    assert {parse_event(m.value()).job_id for m in out} == {"j1", "j2", "j3", "j4"}
    # Offsets 1..4 are finished; offset 0 is not, so nothing may be committed yet.
    await wait_async(
        lambda: runner.pending(stage.inputs[0], 0)[0] == 5, 10, "four finished offsets recorded"
    )
    assert runner.pending(stage.inputs[0], 0)[1] is None
    assert committed(bootstrap, runner.group_id, stage.inputs[0], 1)[0] < 0

    gate.set()
    await wait_async(
        lambda: committed(bootstrap, runner.group_id, stage.inputs[0], 1)[0] == 5,
        15,
        "offset 5 committed once offset 0 finished",
    )
    runner.request_stop()
    await asyncio.wait_for(task, 30)


async def test_in_flight_is_bounded(pipeline_topics: str) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap)
    echo = make_echo_handler(name)
    running = 0
    peak = 0

    async def handler(event: JobRequested, ctx: MessageContext) -> list[Output]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.02)
            return await echo(event, ctx)
        finally:
            running -= 1

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handler,
        settings=settings(bootstrap, max_in_flight=5, buffer_per_band=10),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    await asyncio.to_thread(produce, bootstrap, stage.inputs[0], [job(f"b{i}") for i in range(200)])
    paused_seen = False

    def progress() -> bool:
        nonlocal paused_seen
        paused_seen = paused_seen or bool(runner.paused())
        return runner.stats.processed >= 200

    await wait_async(progress, 60, "200 processed")
    runner.request_stop()
    await asyncio.wait_for(task, 30)
    assert peak == 5
    assert paused_seen, "a full buffer should pause its partitions"


async def test_high_priority_overtakes_a_low_priority_backlog(pipeline_topics: str) -> None:
    bootstrap = pipeline_topics
    name = unique("prio")
    stage = Stage(name, (f"{name}.high", f"{name}.low"), name)
    create_stage_topics(bootstrap, stage, 2)
    in_flight = 2
    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=make_echo_handler(name),
        settings=settings(bootstrap, max_in_flight=in_flight, buffer_per_band=4),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    backlog = [job(f"low-{i}", niche="delay:100") for i in range(40)]
    await asyncio.to_thread(produce, bootstrap, f"{name}.low", backlog)
    await wait_async(lambda: runner.stats.processed >= 4, 30, "backlog started")

    await asyncio.to_thread(produce, bootstrap, f"{name}.high", [job("urgent", niche="delay:100")])
    done_before = runner.stats.processed  # the urgent job is in Kafka from here on
    out = await asyncio.to_thread(
        read_topic,
        bootstrap,
        output_topic(name),
        until=lambda ms: any(parse_event(m.value()).job_id == "urgent" for m in ms),
        timeout=30,
    )
    runner.request_stop()
    await asyncio.wait_for(task, 30)

    order = [parse_event(m.value()).job_id for m in out]
    lows_before_urgent = order.index("urgent")
    assert lows_before_urgent < 40, "the backlog must not drain first"
    # Only what was in flight (plus one poll's worth of completions) may finish first.
    assert lows_before_urgent <= done_before + 2 * in_flight + 2, order


@pytest.mark.parametrize("protocol", ["classic"])
async def test_classic_group_protocol_also_works(pipeline_topics: str, protocol: str) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=2)
    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=make_echo_handler(name),
        settings=settings(bootstrap, group_protocol=protocol),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    await asyncio.to_thread(produce, bootstrap, stage.inputs[0], [job(f"c{i}") for i in range(20)])
    out = await read_async(bootstrap, output_topic(name), 20)
    runner.request_stop()
    await asyncio.wait_for(task, 30)
    assert len({parse_event(m.value()).job_id for m in out}) == 20
    assert all(isinstance(parse_event(m.value()), ImageGenerated) for m in out)


async def test_retryable_failures_wait_in_delay_topics_without_blocking(
    pipeline_topics: str,
) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    echo = make_echo_handler(name)
    calls: Counter[str] = Counter()
    seen_attempts: dict[str, list[int]] = {}
    seen_at: dict[str, list[float]] = {}

    async def handler(event: JobRequested, ctx: MessageContext) -> list[Output]:
        calls[event.job_id] += 1
        seen_attempts.setdefault(event.job_id, []).append(ctx.attempt)
        seen_at.setdefault(event.job_id, []).append(asyncio.get_running_loop().time())
        if event.job_id == "flaky" and calls["flaky"] <= 2:
            raise RetryableError("503 from vendor", vendor="comfyui", status=503)
        if event.job_id == "doomed":
            raise RetryableError("still down", vendor="printify", status=502)
        return await echo(event, ctx)

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handler,
        settings=settings(bootstrap, retry_attempts=3, retry_base_delay_s=0.4),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    await asyncio.to_thread(
        produce, bootstrap, stage.inputs[0], [job("flaky"), job("behind"), job("doomed")]
    )
    out = await read_async(bootstrap, output_topic(name), 2)
    dlq = await read_async(bootstrap, stage.dlq, 1)
    runner.request_stop()
    await asyncio.wait_for(task, 30)

    order = [parse_event(m.value()).job_id for m in out]
    # The message behind the failing one went first: the partition was not held up.
    assert order == ["behind", "flaky"]
    assert seen_attempts["flaky"] == [0, 1, 2]
    assert seen_attempts["doomed"] == [0, 1, 2, 3]
    # Each retry waited for its delay: base 0.4 s doubling per attempt, jitter down to half.
    t = seen_at["flaky"]
    assert t[1] - t[0] >= 0.2 and t[2] - t[1] >= 0.4, t
    headers = {k: v.decode() for k, v in dlq[0].headers()}
    assert headers["pod.attempt"] == "3"
    assert headers["pod.original.topic"] == stage.inputs[0]
    assert headers["pod.original.offset"] == "2"
    assert headers["pod.error.class"] == "RetryableError"
    assert "[printify 502] still down" in headers["pod.error.message"]
    assert "pod.first.failure.at" in headers
    assert committed(bootstrap, runner.group_id, stage.inputs[0], 1) == {0: 3}


async def test_a_due_retry_starts_without_waiting_out_the_long_poll(
    pipeline_topics: str,
) -> None:
    """Each retry is due 0.1-0.2 s after its failure while the consumer long-polls 5 s (the
    default). Had the due message to be fetched again, it would wait for the fetch in flight,
    which nothing else arrives to end: about 5 s. The message behind it in the delay topic is
    read again after it (one long poll later): every job is done once and the delay topic's
    offsets are all committed."""
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    echo = make_echo_handler(name)
    seen_at: dict[str, list[float]] = {}

    async def handler(event: JobRequested, ctx: MessageContext) -> list[Output]:
        seen_at.setdefault(event.job_id, []).append(asyncio.get_running_loop().time())
        if ctx.attempt == 0:
            raise RetryableError("503 from vendor", vendor="comfyui", status=503)
        return await echo(event, ctx)

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handler,
        settings=settings(
            bootstrap, retry_attempts=1, retry_base_delay_s=0.2, fetch_wait_max_ms=5000
        ),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    await asyncio.to_thread(produce, bootstrap, stage.inputs[0], [job("first"), job("second")])
    out = await read_async(bootstrap, output_topic(name), 2)
    first_retry = seen_at["first"][1] - seen_at["first"][0]
    await wait_async(
        lambda: committed(bootstrap, runner.group_id, stage.retry_topics[0], 1) == {0: 2},
        30,
        "the delay topic's offsets committed",
    )
    runner.request_stop()
    await asyncio.wait_for(task, 30)

    assert sorted(parse_event(m.value()).job_id for m in out) == ["first", "second"]
    assert {job_id: len(t) for job_id, t in seen_at.items()} == {"first": 2, "second": 2}
    assert first_retry < 2.5, f"the due retry waited {first_retry:.1f} s"


@pytest.mark.parametrize("protocol", ["consumer", "classic"])
async def test_three_instances_each_own_every_band(pipeline_topics: str, protocol: str) -> None:
    """With the range assignor each instance gets partitions of every input and delay topic;
    KIP-848's default `uniform` handed whole topics to single members (measured)."""
    bootstrap = pipeline_topics
    name = unique("bands")
    stage = Stage(name, (f"{name}.high", f"{name}.normal", f"{name}.low"), name)
    create_stage_topics(bootstrap, stage, 6)
    runners: list[StageRunner[JobRequested]] = [
        StageRunner(
            stage=stage,
            handler=make_echo_handler(name),
            settings=settings(bootstrap, group_protocol=protocol),
            accept=(JobRequested,),
        )
        for _ in range(3)
    ]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    topics = [*stage.inputs, *stage.retry_topics]

    def settled() -> bool:
        owned = [tp for r in runners for tp in r.assignment()]
        every_member = all(r.assignment() for r in runners)
        return every_member and len(owned) == 6 * len(topics) == len(set(owned))

    try:
        await wait_async(settled, 60, "36 partitions owned once each, by all three instances")
        for r in runners:
            per_topic = Counter(t for t, _ in r.assignment())
            assert set(per_topic) == set(topics), (r.instance_id, per_topic)
            assert all(n == 2 for n in per_topic.values()), (r.instance_id, per_topic)
    finally:
        for r in runners:
            r.request_stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def test_a_high_job_starts_while_every_low_slot_is_busy(pipeline_topics: str) -> None:
    """Slots are per band: low work stuck on a slow vendor cannot keep a high job waiting."""
    bootstrap = pipeline_topics
    name = unique("slots")
    stage = Stage(name, (f"{name}.high", f"{name}.low"), name)
    create_stage_topics(bootstrap, stage, 1)
    gate = asyncio.Event()
    echo = make_echo_handler(name)
    started: list[str] = []

    async def handler(event: JobRequested, ctx: MessageContext) -> list[Output]:
        started.append(event.job_id)
        if event.job_id.startswith("low"):
            await gate.wait()
        return await echo(event, ctx)

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handler,
        settings=settings(bootstrap, max_in_flight=2),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.to_thread(
            produce, bootstrap, f"{name}.low", [job(f"low-{i}") for i in range(5)]
        )
        await wait_async(lambda: len(started) == 2, 30, "both low slots busy")
        await asyncio.to_thread(produce, bootstrap, f"{name}.high", [job("urgent")])
        out = await read_async(bootstrap, output_topic(name), 1)
        assert [parse_event(m.value()).job_id for m in out] == ["urgent"]
        assert started.count("urgent") == 1 and len(started) == 3  # no third low slot
    finally:
        gate.set()
        runner.request_stop()
        await asyncio.wait_for(task, 30)
