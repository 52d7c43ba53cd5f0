"""Offsets: which of a partition's messages are done, and so what may be committed, for every
partition this instance owns."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable


class OffsetTracker:
    """Offsets of one partition that are in flight; tells the committable position."""

    def __init__(self) -> None:
        self._pending: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self.committable: int | None = None  # next offset to consume after the done prefix

    def add(self, offset: int) -> None:
        self._pending[offset] = False

    def done(self, offset: int) -> int | None:
        """Mark ``offset`` finished; return the new committable position if it advanced."""
        if offset not in self._pending:
            return None
        self._pending[offset] = True
        advanced = None
        while self._pending:
            first, finished = next(iter(self._pending.items()))
            if not finished:
                break
            self._pending.popitem(last=False)
            advanced = first + 1
        if advanced is not None:
            self.committable = advanced
        return advanced

    def __len__(self) -> int:
        return len(self._pending)


Key = tuple[str, int]  # (topic, partition)


class OwnedPartitions:
    """The partitions this instance owns and, for each, the tracker of its offsets.

    Rebalance callbacks (poll thread) assign and release partitions while tasks on the event loop
    finish offsets, so every method holds the table's lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trackers: dict[Key, OffsetTracker] = {}

    def assign(self, keys: Iterable[Key]) -> None:
        """New partitions, each starting with nothing in flight."""
        with self._lock:
            for key in keys:
                self._trackers[key] = OffsetTracker()

    def release(self, keys: Iterable[Key]) -> list[tuple[Key, int]]:
        """Forget partitions (revoked or lost); their committable positions, for a revoke to
        commit before it gives them up."""
        released = []
        with self._lock:
            for key in keys:
                tracker = self._trackers.pop(key, None)
                if tracker is not None and tracker.committable is not None:
                    released.append((key, tracker.committable))
        return released

    def track(self, key: Key, offset: int) -> bool:
        """Record a fetched offset as in flight; False when the partition is no longer ours."""
        with self._lock:
            tracker = self._trackers.get(key)
            if tracker is None:
                return False
            tracker.add(offset)
            return True

    def done(self, key: Key, offset: int) -> int | None:
        """Mark an offset finished; the new committable position when it advanced. None too
        when the partition was revoked meanwhile (its new owner starts from the last commit)."""
        with self._lock:
            tracker = self._trackers.get(key)
            return None if tracker is None else tracker.done(offset)

    def committable(self) -> list[tuple[Key, int]]:
        """Each owned partition's committable position, where it has one."""
        with self._lock:
            return [
                (k, t.committable) for k, t in self._trackers.items() if t.committable is not None
            ]

    def pending(self, key: Key) -> tuple[int, int | None]:
        """(offsets not yet committable, the position it may commit); (0, None) if not owned."""
        with self._lock:
            tracker = self._trackers.get(key)
            return (0, None) if tracker is None else (len(tracker), tracker.committable)

    def owned(self) -> list[Key]:
        """The partitions owned right now, sorted."""
        with self._lock:
            return sorted(self._trackers)
