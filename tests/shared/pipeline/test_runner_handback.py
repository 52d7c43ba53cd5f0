"""Shutdown against the real broker: a message still waiting for permission to make its first
vendor call is handed back at once (not committed, not failed, not retried, redone by the next
owner); one that has sent something is finished within the grace."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from shared.contract.events import JobRequested, parse_event
from shared.domain.budget import LocalRateBudget
from shared.pipeline.runner import Handler, MessageContext, Output, StageRunner
from shared.platform.handback import mark_sent
from tests.shared.pipeline.test_runner import read_async, settings, setup_stage, wait_async
from tests.support.infra import read_all
from tests.support.kafka import committed, job, produce
from tests.support.stages import make_echo_handler, output_topic

# A grace far longer than any wait here: a stop that waited it out would fail the timing.
GRACE_S = 30.0


async def spent_budget() -> LocalRateBudget:
    """A budget whose one slot is taken by a request that never ends: nobody gets another."""
    budget = LocalRateBudget(1, 600.0)
    await budget.acquire()
    return budget


async def test_a_message_waiting_for_its_first_call_is_handed_back_at_once(
    pipeline_topics: str,
) -> None:
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    echo = make_echo_handler(name)
    sends: Counter[str] = Counter()  # the "vendor": what reached it
    parked = asyncio.Event()

    def handler_with(budget: LocalRateBudget) -> Handler[JobRequested]:
        async def handle(event: JobRequested, ctx: MessageContext) -> list[Output]:
            if event.payload.niche == "budget":
                parked.set()
                async with budget.slot():
                    mark_sent()
                    sends[event.job_id] += 1
            return await echo(event, ctx)

        return handle

    first: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handler_with(await spent_budget()),
        settings=settings(bootstrap, shutdown_grace_s=GRACE_S),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(first.run())
    await asyncio.to_thread(
        produce, bootstrap, stage.inputs[0], [job("done-first"), job("parked", niche="budget")]
    )
    await read_async(bootstrap, output_topic(name), 1)
    await asyncio.wait_for(parked.wait(), 30)

    stopped_at = time.monotonic()
    first.request_stop()
    await asyncio.wait_for(task, GRACE_S + 15)
    stop_s = time.monotonic() - stopped_at
    # The poll in progress (poll_timeout_s, 1 s) and the commit: not the grace.
    assert stop_s < 3.0, f"stop took {stop_s:.1f}s"
    assert (first.stats.handed_back, first.stats.failed, first.stats.processed) == (1, 0, 1)
    # Committed up to the handed-back message, not past it; nothing retried or dead-lettered.
    assert committed(bootstrap, first.group_id, stage.inputs[0], 1)[0] == 1
    assert sends == Counter()
    for topic in (*stage.retry_topics, stage.dlq):
        assert await asyncio.to_thread(read_all, bootstrap, topic) == []

    # The partition's next owner reads it again and, with budget, does it: once.
    second: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handler_with(LocalRateBudget(10, 1.0)),
        settings=settings(bootstrap, shutdown_grace_s=GRACE_S),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(second.run())
    out = await read_async(bootstrap, output_topic(name), 2)
    await wait_async(
        lambda: committed(bootstrap, second.group_id, stage.inputs[0], 1)[0] == 2,
        15,
        "the handed-back message committed by its next owner",
    )
    second.request_stop()
    await asyncio.wait_for(task, GRACE_S)
    assert sorted(parse_event(m.value()).job_id for m in out) == ["done-first", "parked"]
    assert sends == Counter({"parked": 1})


async def test_a_message_that_has_sent_is_finished_and_one_arriving_at_a_wait_is_not_started(
    pipeline_topics: str,
) -> None:
    """Mid-call (sent, then waiting on its next call's budget): finished within the grace.
    A message that reaches its first wait for permission only after the stop began is handed
    back there, though the budget has room: no new vendor work starts while stopping."""
    bootstrap = pipeline_topics
    name, stage = setup_stage(bootstrap, partitions=1)
    echo = make_echo_handler(name)
    sends: Counter[str] = Counter()
    mid_call = asyncio.Event()
    local_work = asyncio.Event()
    second_call = LocalRateBudget(1, 600.0)

    async def handle(event: JobRequested, ctx: MessageContext) -> list[Output]:
        if event.payload.niche == "mid-call":
            mark_sent()  # its first request went out
            sends[event.job_id] += 1
            mid_call.set()
            await asyncio.sleep(1.0)  # the vendor answers after a while
            async with second_call.slot():  # its next call waits for budget: still finished
                sends[event.job_id] += 1
        elif event.payload.niche == "late":
            local_work.set()
            await asyncio.sleep(1.0)  # work before its first call, while the stop begins
            async with LocalRateBudget(10, 1.0).slot():
                sends[event.job_id] += 1
        return await echo(event, ctx)

    runner: StageRunner[JobRequested] = StageRunner(
        stage=stage,
        handler=handle,
        settings=settings(bootstrap, shutdown_grace_s=GRACE_S),
        accept=(JobRequested,),
    )
    task = asyncio.create_task(runner.run())
    await asyncio.to_thread(
        produce,
        bootstrap,
        stage.inputs[0],
        [job("mid", niche="mid-call"), job("late", niche="late")],
    )
    await asyncio.wait_for(asyncio.gather(mid_call.wait(), local_work.wait()), 30)
    runner.request_stop()
    await asyncio.wait_for(task, GRACE_S)

    assert sends == Counter({"mid": 2})
    assert (runner.stats.processed, runner.stats.handed_back, runner.stats.failed) == (1, 1, 0)
    out = await read_async(bootstrap, output_topic(name), 1)
    assert [parse_event(m.value()).job_id for m in out] == ["mid"]
