"""The uvicorn server every HTTP process runs (the API and the vendor simulators).

uvicorn's main loop wakes ten times a second to check for a stop and refresh the ``Date``
header once a second. On an idle stack that tick was most of each HTTP process's CPU (about
0.2 % of a core per process, measured with ``bench/idle.py``). :class:`QuietServer` ticks once a
second instead and is woken at once by SIGTERM/SIGINT, so a stop is as prompt as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

# uvicorn's own tick is 0.1 s and its on_tick counts in those ticks (the header every 10th).
_TICKS_PER_WAKE = 10
_WAKE_S = 1.0


class QuietServer(uvicorn.Server):
    """A uvicorn server whose idle loop wakes once a second, or at once on a stop signal."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + _TICKS_PER_WAKE) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _WAKE_S)
            self._wake.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            # A signal handler may run between any two bytecodes: hand the wake to the loop.
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)
