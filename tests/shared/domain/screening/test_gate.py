"""Screening's CPUs go to the most urgent design first, and a waiter that gives up leaves no
slot taken."""

from __future__ import annotations

import asyncio

import pytest

from shared.domain.screening.gate import PriorityGate


async def test_waiters_enter_lowest_key_first_then_in_arrival_order() -> None:
    gate = PriorityGate(1)
    entered: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, key: tuple[int, ...]) -> None:
        async with gate.slot(key):
            entered.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(hold("first", (2,)))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(hold(name, key))
        for name, key in [("low-a", (2,)), ("low-b", (2,)), ("high", (0,)), ("normal", (1,))]
    ]
    await asyncio.sleep(0)
    assert entered == ["first"] and gate.waiting == 4
    release.set()
    await asyncio.gather(first, *waiting)
    assert entered == ["first", "high", "normal", "low-a", "low-b"]


async def test_a_cancelled_waiter_leaves_no_slot_taken() -> None:
    gate = PriorityGate(2)
    held = asyncio.Event()
    done = asyncio.Event()

    async def hold() -> None:
        async with gate.slot((0,)):
            held.set()
            await done.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await held.wait()
    gone = asyncio.create_task(hold())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    done.set()
    await asyncio.gather(*holders)
    # Both slots are free again: two holders enter at once.
    entered = 0

    async def enter() -> None:
        nonlocal entered
        async with gate.slot():
            entered += 1
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(enter(), enter()), 1)
    assert entered == 2 and gate.waiting == 0


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PriorityGate(0)
