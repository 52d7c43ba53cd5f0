"""Who renders next, and where: priority order all the way to the GPUs.

ComfyUI runs its queue in its own order (by ``number``, FIFO for ordinary submissions), so a
render handed to it early is a render whose place is no longer ours to choose. The scheduler keeps
every render that waits in its own heap, ordered by priority band, then by the key the caller
gives (the job's age, the image index), and hands one to a backend only while that backend has
room: a bounded queue depth per backend (its parallelism times a small factor, learned from
``/system_stats`` or configured). A high-priority render therefore waits for the renders already
on the GPUs and at most the few queued behind them, never for a backlog.

The high band may go past a full backend by one render per GPU: it is submitted with ComfyUI's
``front`` flag, so it runs as soon as a GPU frees instead of behind the backend's queue.

Several generator processes may share a backend: its occupancy is the larger of what this
process put there and the ``queue_remaining`` ComfyUI last broadcast to everyone.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.platform.waits import for_permission

HIGH_BAND = 0


@dataclass
class BackendSlots:
    """The capacity bookkeeping of one ComfyUI server."""

    url: str
    parallelism: int = 1  # prompts the server runs at once (1 for a real ComfyUI process)
    depth: int = 2  # prompts we let it hold: running + queued
    in_flight: int = 0  # our prompts submitted and not yet finished there
    remote_remaining: int = 0  # queue_remaining from its last status broadcast
    remote_seen_at: float = 0.0  # monotonic time of that broadcast; 0 = never or stale
    unhealthy_until: float = 0.0  # refused connections lately: try others first

    def occupancy(self, now: float, remote_ttl_s: float) -> int:
        """Prompts on the server as best we know: ours, or everyone's while fresh."""
        remote = self.remote_remaining if now - self.remote_seen_at <= remote_ttl_s else 0
        return max(self.in_flight, remote)

    def room(self, band: int, now: float, remote_ttl_s: float) -> int:
        """How many more renders of ``band`` it may take now."""
        limit = self.depth + (self.parallelism if band == HIGH_BAND else 0)
        return limit - self.occupancy(now, remote_ttl_s)


@dataclass(order=True)
class _Ticket:
    key: tuple[Any, ...]
    seq: int
    band: int = field(compare=False)
    future: asyncio.Future[BackendSlots] = field(compare=False)


class GpuScheduler:
    """A priority heap of waiting renders in front of a pool of bounded backends."""

    def __init__(
        self,
        backends: Sequence[BackendSlots],
        *,
        remote_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not backends:
            raise ValueError("GpuScheduler needs at least one backend")
        self.backends = list(backends)
        self.remote_ttl_s = remote_ttl_s
        self._clock = clock
        self._heap: list[_Ticket] = []
        self._seq = itertools.count()
        self._rr = itertools.count()

    @property
    def waiting(self) -> int:
        """Renders waiting for a backend."""
        return sum(1 for t in self._heap if not t.future.done())

    async def acquire(self, band: int, key: tuple[Any, ...] = ()) -> BackendSlots:
        """Wait for this render's turn and a backend with room; the slot is taken on return
        and must be given back with :meth:`release`. A stopping stage hands back a message
        waiting here with nothing sent yet (:mod:`shared.platform.handback`)."""
        async with for_permission("gpu", "a GPU"):
            loop = asyncio.get_running_loop()
            ticket = _Ticket((band, *key), next(self._seq), band, loop.create_future())
            heapq.heappush(self._heap, ticket)
            self.dispatch()
            try:
                return await ticket.future
            except asyncio.CancelledError:
                if ticket.future.done() and not ticket.future.cancelled():
                    # Granted in the same tick we were cancelled: give the slot back.
                    self.release(ticket.future.result())
                raise

    def release(self, backend: BackendSlots) -> None:
        """A render left the backend (finished, failed or abandoned)."""
        backend.in_flight = max(0, backend.in_flight - 1)
        self.dispatch()

    def observe(self, backend: BackendSlots, queue_remaining: int) -> None:
        """ComfyUI broadcast its queue length (it counts every client's prompts)."""
        backend.remote_remaining = max(0, queue_remaining)
        backend.remote_seen_at = self._clock()
        self.dispatch()

    def forget_remote(self, backend: BackendSlots) -> None:
        """Its broadcasts stopped (websocket down): count only our own prompts."""
        backend.remote_seen_at = 0.0
        self.dispatch()

    def dispatch(self) -> None:
        """Grant slots in priority order while the first waiting render fits somewhere.

        Strict: when the first render does not fit, nothing behind it is granted, so a lower
        band can never take the room a higher one is waiting for.
        """
        while self._heap:
            ticket = self._heap[0]
            if ticket.future.done():  # cancelled while waiting
                heapq.heappop(self._heap)
                continue
            backend = self._pick(ticket.band)
            if backend is None:
                return
            heapq.heappop(self._heap)
            backend.in_flight += 1
            ticket.future.set_result(backend)

    def _pick(self, band: int) -> BackendSlots | None:
        """The healthy backend with the most room (round-robin among equals), else None."""
        now = self._clock()
        best: list[BackendSlots] = []
        best_key: tuple[bool, int] | None = None
        for b in self.backends:
            room = b.room(band, now, self.remote_ttl_s)
            if room <= 0:
                continue
            key = (b.unhealthy_until <= now, room)
            if best_key is None or key > best_key:
                best, best_key = [b], key
            elif key == best_key:
                best.append(b)
        if not best:
            return None
        return best[next(self._rr) % len(best)]
