"""The register of what in-flight work waits for: per job, only while it waits."""

from __future__ import annotations

import asyncio
import time

from shared.platform import waits


def test_nothing_is_recorded_outside_a_jobs_work() -> None:
    with waits.waiting("vendor_limit", "Printify publishes"):
        assert waits.snapshot() == []


async def test_a_wait_is_the_jobs_only_while_it_lasts_with_its_current_estimate() -> None:
    estimate = [time.time() + 60]
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def work(job: str, what: str) -> None:
        waits.working_for(job)  # as the runner does, per message task
        with waits.waiting("vendor_limit", what, until=lambda: estimate[0]):
            inside.set()
            await leave.wait()

    first = asyncio.create_task(work("job-a", "Printify publishes"))
    await inside.wait()
    inside.clear()
    second = asyncio.create_task(work("job-b", "Etsy requests"))
    await inside.wait()
    seen = waits.snapshot()
    assert [(w.job_id, w.what) for w in seen] == [
        ("job-a", "Printify publishes"),
        ("job-b", "Etsy requests"),
    ]
    estimate[0] += 120  # the budget's estimate moved: the next report says so
    assert waits.snapshot()[0].until is not None
    # (to the microsecond a datetime holds)
    assert abs(waits.snapshot()[0].until.timestamp() - estimate[0]) < 1e-5  # type: ignore[union-attr]
    assert waits.current_job() is None  # the tasks' job ids stayed in their tasks
    leave.set()
    await asyncio.gather(first, second)
    assert waits.snapshot() == []


def test_a_report_is_bounded_and_oldest_first() -> None:
    token = waits.working_for("job-c")
    try:
        with waits.waiting("gpu", "a GPU"), waits.waiting("gpu", "another GPU"):
            assert [w.what for w in waits.snapshot(limit=1)] == ["a GPU"]
    finally:
        waits.stop_working(token)
