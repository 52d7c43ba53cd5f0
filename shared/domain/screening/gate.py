"""The order in which designs get the CPUs screening needs.

Screening's CPU-bound work (OCR, the perceptual hash, the classifier) is a queue of its own in
front of the printify stage, fed by the GPUs. Served first come, first served, a high job's design
waited behind every backlog design rendered before it (measured: the priority e2e test saw three
low jobs overtake a high one with one GPU). :class:`PriorityGate` admits at most ``capacity``
designs at once, the lowest key first, with the key the GPU queue orders renders by (band, then
the job's place in it), so a high job waits at most for the designs already on the CPUs.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class _Waiter:
    key: tuple[Any, ...]
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class PriorityGate:
    """At most ``capacity`` holders at once; waiters are let in lowest key first (in arrival
    order within a key). A waiter cancelled while it waits leaves no slot taken."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._free = capacity
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._heap if not w.future.done())

    @asynccontextmanager
    async def slot(self, key: tuple[Any, ...] = ()) -> AsyncIterator[None]:
        """Hold one of the slots, in ``key``'s turn."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(key, next(self._seq), loop.create_future())
        heapq.heappush(self._heap, waiter)
        self._dispatch()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._release()  # granted in the same tick it was cancelled: give it back
            raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self._free += 1
        self._dispatch()

    def _dispatch(self) -> None:
        while self._free and self._heap:
            waiter = heapq.heappop(self._heap)
            if waiter.future.done():  # cancelled while waiting
                continue
            self._free -= 1
            waiter.future.set_result(None)
