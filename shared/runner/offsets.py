"""Offsets: which of a partition's messages are done, and so what may be committed."""

from __future__ import annotations

import collections


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
