"""The GPU scheduler on its own: priority order, bounded backends, the high band's headroom."""

from __future__ import annotations

import asyncio

from shared.adapters.vendors.gpu import HIGH_BAND, BackendSlots, GpuScheduler
from shared.platform import waits

LOW, NORMAL = 2, 1


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_full_backend_grants_in_band_then_key_order() -> None:
    backend = BackendSlots("gpu", parallelism=1, depth=2)
    sched = GpuScheduler([backend])
    granted: list[str] = []

    async def render(name: str, band: int, key: tuple[int, ...]) -> None:
        got = await sched.acquire(band, key)
        granted.append(name)
        assert got is backend

    tasks = [asyncio.create_task(render(f"low-{i}", LOW, (i,))) for i in range(4)]
    await settle()
    assert granted == ["low-0", "low-1"]  # the depth: one running, one queued
    assert sched.waiting == 2
    tasks.append(asyncio.create_task(render("normal", NORMAL, (99,))))
    tasks.append(asyncio.create_task(render("high", HIGH_BAND, (100,))))
    await settle()
    # The high band may exceed the depth by one render per GPU (it goes in front).
    assert granted[-1] == "high" and backend.in_flight == 3
    sched.release(backend)
    await settle()
    assert granted[-1] == "high"  # back at the depth: still full for the other bands
    sched.release(backend)
    await settle()
    assert granted[-1] == "normal"  # before the older low renders
    sched.release(backend)
    await settle()
    assert granted[-1] == "low-2"
    sched.release(backend)
    await settle()
    assert granted[-1] == "low-3" and sched.waiting == 0
    await asyncio.gather(*tasks)


async def test_the_first_waiting_render_blocks_lower_ones() -> None:
    # A low render must not take the room a waiting normal render needs.
    a = BackendSlots("a", parallelism=1, depth=1)
    sched = GpuScheduler([a])
    first = await sched.acquire(LOW, (0,))
    normal = asyncio.create_task(sched.acquire(NORMAL, (5,)))
    low = asyncio.create_task(sched.acquire(LOW, (1,)))
    await settle()
    assert not normal.done() and not low.done()
    sched.release(first)
    await settle()
    assert normal.done() and not low.done()
    sched.release(a)
    await settle()
    assert low.done()


async def test_remote_queue_counts_other_processes_prompts_while_fresh() -> None:
    now = [100.0]
    a = BackendSlots("a", parallelism=1, depth=2)
    sched = GpuScheduler([a], remote_ttl_s=10, clock=lambda: now[0])
    sched.observe(a, 2)  # another generator filled it
    waiting = asyncio.create_task(sched.acquire(LOW))
    await settle()
    assert not waiting.done()
    sched.observe(a, 1)
    await settle()
    assert waiting.done()
    assert a.occupancy(now[0], 10) == 1
    now[0] += 11  # stale: only our own prompt counts
    assert a.occupancy(now[0], 10) == 1
    sched.forget_remote(a)
    assert a.occupancy(now[0], 10) == 1


async def test_spreads_over_backends_by_room_and_skips_unhealthy() -> None:
    a = BackendSlots("a", parallelism=1, depth=2)
    b = BackendSlots("b", parallelism=1, depth=2, unhealthy_until=float("inf"))
    sched = GpuScheduler([a, b])
    got = [await sched.acquire(NORMAL) for _ in range(3)]
    # Healthy first while it has room; the unhealthy one only when nothing else does.
    assert [g.url for g in got] == ["a", "a", "b"]


async def test_a_cancelled_waiter_leaves_no_hole() -> None:
    a = BackendSlots("a", parallelism=1, depth=1)
    sched = GpuScheduler([a])
    held = await sched.acquire(NORMAL)
    doomed = asyncio.create_task(sched.acquire(NORMAL, (0,)))
    behind = asyncio.create_task(sched.acquire(NORMAL, (1,)))
    await settle()
    doomed.cancel()
    await settle()
    sched.release(held)
    await settle()
    assert behind.done() and a.in_flight == 1


async def test_a_render_waiting_for_a_gpu_is_its_jobs_wait() -> None:
    backend = BackendSlots("gpu", parallelism=1, depth=1)
    sched = GpuScheduler([backend])
    held = await sched.acquire(LOW, (0,))

    async def render(job: str) -> BackendSlots:
        waits.working_for(job)  # as the runner does, per message
        return await sched.acquire(LOW, (1,))

    waiting = asyncio.create_task(render("job-behind-the-gpu"))
    await settle()
    assert [(w.job_id, w.kind, w.what) for w in waits.snapshot()] == [
        ("job-behind-the-gpu", "gpu", "a GPU")
    ]
    sched.release(held)
    assert await waiting is backend
    assert waits.snapshot() == []
