"""Stopping a background asyncio task, on Python 3.11 too.

On Python 3.11 ``asyncio.wait_for`` returns the inner result when a cancellation arrives at the
moment the inner awaitable completes, and the cancellation is lost (CPython gh-86296, fixed in
3.12 and not backported). psycopg_pool waits for a free connection with ``wait_for``: a task
cancelled just as the pool hands it a connection carries on as if never cancelled (psycopg
#1345, #1413). A background loop that sleeps for minutes between rounds then holds up its
owner's shutdown for those minutes, and loops on afterwards. Measured: 1 stop in about 10 of
the publication watcher's test hung this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

logger = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[object], *, recancel_s: float = 1.0) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again every ``recancel_s``
    while a cancellation was lost. Its cancellation is swallowed, any other failure raised."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=recancel_s)
        if not task.done():
            logger.warning("cancellation lost, cancelling again task=%s", task.get_name())
    with contextlib.suppress(asyncio.CancelledError):
        await task
