"""Stopping background tasks whose cancellation gets lost (Python 3.11's ``wait_for``)."""

from __future__ import annotations

import asyncio

import pytest

from shared.platform.aio import cancel_and_wait


async def _loses_one_cancellation(rounds: list[str]) -> None:
    """Carries on once after a cancellation, as a loop does whose ``wait_for`` returned the
    inner result instead of raising: then sleeps for an hour."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        rounds.append("lost")
    rounds.append("sleeping again")
    await asyncio.sleep(3600)


async def test_a_lost_cancellation_is_repeated_until_the_task_ends() -> None:
    rounds: list[str] = []
    task = asyncio.create_task(_loses_one_cancellation(rounds), name="loses-one")
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(task, recancel_s=0.05))
    done, _ = await asyncio.wait({stopper}, timeout=10)
    assert stopper in done, "cancel_and_wait waited on a task that had lost its cancellation"
    assert task.cancelled()
    assert rounds == ["lost", "sleeping again"]


async def test_a_task_that_failed_raises_its_failure() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="broken"):
        await cancel_and_wait(task)


async def test_the_callers_own_cancellation_propagates() -> None:
    rounds: list[str] = []
    task = asyncio.create_task(_loses_one_cancellation(rounds))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(task, recancel_s=3600))
    await asyncio.sleep(0.05)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done()
