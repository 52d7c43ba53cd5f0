"""Intake: fetched messages waiting per band, the slots each band has, and which partitions are
paused (a full band's backpressure, or a delay topic whose head message is not due yet).

Nothing here calls Kafka. The methods answer "what to start" and "what to pause or resume"; the
runner turns the answers into consumer calls on its poll thread. That keeps the scheduling rules
(band order, per-band slots, hysteresis, delayed retries) testable without a broker.

Thread safety: the runner's rebalance callbacks (poll thread) forget partitions while tasks on the
event loop take work, so every method holds the intake's lock.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

Key = tuple[str, int]  # (topic, partition)
W = TypeVar("W")


class Intake(Generic[W]):
    """Buffers per band (band 0 first), per-band in-flight slots and paused partitions.

    ``buffer_max``: a band's partitions are paused once its buffer holds this many messages and
    resumed once it is down to half (hysteresis: the refetch after a resume, up to
    ``fetch.wait.max.ms``, is hidden behind the half still buffered).
    """

    def __init__(self, band_of: dict[str, int], *, max_in_flight: int, buffer_max: int) -> None:
        self._band_of = dict(band_of)
        n_bands = max(band_of.values(), default=0) + 1
        self.max_in_flight = max_in_flight
        self.buffer_max = buffer_max
        self.buffer_low = buffer_max // 2
        self._lock = threading.Lock()
        self._buffers: list[collections.deque[tuple[Key, W]]] = [
            collections.deque() for _ in range(n_bands)
        ]
        self._in_flight = [0] * n_bands
        self._full: set[int] = set()
        self._paused: set[Key] = set()  # for backpressure
        # Delay-topic partition -> when its head message is due, and that message (held here,
        # so a due retry never waits for a refetch behind a long poll).
        self._delayed: dict[Key, tuple[float, W]] = {}
        self._assignment_changed = False

    def band(self, topic: str) -> int:
        """The band a topic's messages are served in (0 = first)."""
        return self._band_of.get(topic, 0)

    # ------------------------------------------------------------ buffers

    def room(self) -> int:
        """How many more messages the buffers take before every band is full."""
        with self._lock:
            return sum(self.buffer_max - len(b) for b in self._buffers)

    def add(self, key: Key, work: W) -> None:
        """Buffer one fetched message of partition ``key``."""
        with self._lock:
            self._buffers[self.band(key[0])].append((key, work))

    def take(self) -> list[tuple[int, W]]:
        """Work to start now, highest band first, while its band has free slots; each taken
        item holds a slot of its band until :meth:`finished`."""
        started: list[tuple[int, W]] = []
        with self._lock:
            for band, buf in enumerate(self._buffers):
                while buf and self._in_flight[band] < self.max_in_flight:
                    _key, work = buf.popleft()
                    self._in_flight[band] += 1
                    started.append((band, work))
        return started

    def finished(self, band: int) -> None:
        """A taken item of ``band`` is done: its slot is free."""
        with self._lock:
            self._in_flight[band] -= 1

    def in_flight(self) -> int:
        """Items taken and not finished, all bands."""
        with self._lock:
            return sum(self._in_flight)

    def clear(self) -> None:
        """Drop everything buffered (not started: left uncommitted for the next owner)."""
        with self._lock:
            for buf in self._buffers:
                buf.clear()

    # ---------------------------------------------------------- partitions

    def assigned(self) -> None:
        """New partitions: the next :meth:`backpressure` looks at all of them."""
        with self._lock:
            self._assignment_changed = True

    def forget(self, keys: Iterable[Key]) -> None:
        """Partitions revoked or lost: drop their buffered messages, pauses and delays."""
        gone = set(keys)
        with self._lock:
            for key in gone:
                self._paused.discard(key)
                self._delayed.pop(key, None)
            for buf in self._buffers:
                kept = [item for item in buf if item[0] not in gone]
                buf.clear()
                buf.extend(kept)

    def is_delayed(self, key: Key) -> bool:
        """True while a delay-topic partition waits for its head message."""
        with self._lock:
            return key in self._delayed

    def delay(self, key: Key, due: float, head: W) -> None:
        """Hold ``head``, the first message of ``key`` not yet due, until ``due`` (epoch
        seconds). The caller pauses the partition and rewinds it to just after ``head``."""
        with self._lock:
            self._delayed[key] = (due, head)
            self._paused.discard(key)

    def due(self, now: float) -> list[tuple[Key, W]]:
        """Delayed partitions whose head message is due now, with that message; they are no
        longer delayed, and the caller starts the message and resumes the partition."""
        with self._lock:
            ready = [(k, head) for k, (at, head) in self._delayed.items() if at <= now]
            for key, _head in ready:
                del self._delayed[key]
            return ready

    def next_due(self) -> float | None:
        """When the first delayed partition is due, if any."""
        with self._lock:
            return min((at for at, _head in self._delayed.values()), default=None)

    def backpressured(self) -> bool:
        """True while some band is full: its resume must not wait out a long poll."""
        with self._lock:
            return bool(self._full)

    def backpressure(self, assigned: Callable[[], Iterable[Key]]) -> tuple[list[Key], list[Key]]:
        """(partitions to pause, partitions to resume) so that a full band's partitions are
        paused and the others not; delayed partitions are left as they are. ``assigned`` lists
        the partitions owned, asked only when something changed."""
        with self._lock:
            full = {
                band
                for band, buf in enumerate(self._buffers)
                if len(buf) >= (self.buffer_low if band in self._full else self.buffer_max)
            }
            if full == self._full and not self._assignment_changed:
                return [], []
            self._full = full
            self._assignment_changed = False
            to_pause, to_resume = [], []
            for key in sorted(assigned()):
                if key in self._delayed:
                    continue
                is_full = self.band(key[0]) in full
                if is_full and key not in self._paused:
                    to_pause.append(key)
                    self._paused.add(key)
                elif not is_full and key in self._paused:
                    to_resume.append(key)
                    self._paused.discard(key)
            return to_pause, to_resume

    def paused(self) -> list[Key]:
        """Partitions paused for backpressure right now, sorted."""
        with self._lock:
            return sorted(self._paused)
