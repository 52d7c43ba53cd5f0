"""What keeps live streams (``/jobs/{id}/events``, ``/events``) cheap and bounded.

- :class:`EventFeed`: one ``LISTEN`` connection per API process. PostgreSQL notifies at commit
  (a trigger on ``job_events`` and on a job's end, migration 0025), and the feed wakes the
  streams of that job and the all-jobs streams: an idle stream costs no query, only a slow
  safety re-check.
- :class:`StreamLimits`: how many streams one caller and the whole process may hold open; past
  either, a 429 before the stream starts.
- ``reads``: a stream borrows a pooled connection only for one read, and at most half the
  pool reads at once, so streams woken together never leave the routes without connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psycopg

from services.api.errors import ApiError

logger = logging.getLogger(__name__)

CHANNEL = "pod_job_events"  # migration 0025's triggers notify here, the payload a job id


class Subscription:
    """One stream's doorbell: rung when its job (or, for an all-jobs stream, any job) changes."""

    def __init__(self, job_id: str | None) -> None:
        self.job_id = job_id
        self.waiting = False
        self._rung = asyncio.Event()

    def ring(self) -> None:
        """Wake the stream (from the feed)."""
        self._rung.set()

    async def wait(self, timeout: float) -> None:
        """Until rung or ``timeout`` s passed; then unrung. Ring-before-read is kept: a
        notification that came while the stream was reading makes this return at once."""
        self.waiting = True
        try:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._rung.wait(), timeout)
        finally:
            self.waiting = False
        self._rung.clear()


class EventFeed:
    """Notifications from PostgreSQL, fanned out to the streams of this process."""

    def __init__(self, url: str, *, retry_s: float = 1.0) -> None:
        self._url = url
        self._retry_s = retry_s
        self._by_job: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        """True while the LISTEN connection is up (else streams fall back to polling)."""
        self.notifications = 0

    def start(self) -> None:
        """Start listening (in the background; reconnects on its own)."""
        self._task = asyncio.create_task(self._listen(), name="event-feed")

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listening = False

    @contextmanager
    def subscribe(self, job_id: str | None) -> Iterator[Subscription]:
        """A doorbell for one job's stream (``job_id``) or an all-jobs stream (None)."""
        sub = Subscription(job_id)
        if job_id is None:
            self._all.add(sub)
        else:
            self._by_job.setdefault(job_id, set()).add(sub)
        try:
            yield sub
        finally:
            if job_id is None:
                self._all.discard(sub)
            else:
                subs = self._by_job.get(job_id)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_job[job_id]

    @property
    def subscribers(self) -> int:
        """Streams following the feed."""
        return len(self._all) + sum(len(subs) for subs in self._by_job.values())

    @property
    def waiting(self) -> int:
        """Streams idle now: waiting for a notification (or a re-check)."""
        subs = [*self._all, *(sub for group in self._by_job.values() for sub in group)]
        return sum(sub.waiting for sub in subs)

    def _ring(self, job_id: str) -> None:
        self.notifications += 1
        for sub in self._all:
            sub.ring()
        for sub in self._by_job.get(job_id, ()):
            sub.ring()

    def _ring_everyone(self) -> None:
        for sub in self._all:
            sub.ring()
        for subs in self._by_job.values():
            for sub in subs:
                sub.ring()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=10
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    logger.info("event feed listening channel=%s", CHANNEL)
                    # Whatever was committed while nobody listened: every stream looks again.
                    self._ring_everyone()
                    async for note in conn.notifies():
                        self._ring(note.payload)
            except psycopg.Error as exc:
                # The driver's first line names host and port, never the password.
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                logger.warning("event feed lost error=%s retry_s=%s", first, self._retry_s)
            except Exception as exc:  # the feed must outlive anything; streams poll meanwhile
                logger.error("event feed failed error=%s", type(exc).__name__)
            self.listening = False
            self._ring_everyone()  # they poll until the feed is back
            await asyncio.sleep(self._retry_s)


def too_many(detail: str, retry_after_s: int) -> ApiError:
    """The 429 of a stream over its cap."""
    return ApiError(429, "too_many_streams", detail, headers={"Retry-After": str(retry_after_s)})


@dataclass
class StreamLimits:
    """Open streams per caller and in total, for one API process."""

    total: int
    per_caller: int
    retry_after_s: int = 5
    _open: dict[str, int] = field(default_factory=dict)

    @property
    def open(self) -> int:
        """Streams open now."""
        return sum(self._open.values())

    @contextmanager
    def admit(self, caller: str) -> Iterator[None]:
        """Hold one stream slot for ``caller`` (a key's principal or a client address) while
        the block runs; a 429 with Retry-After when the caller or the process is at its cap."""
        mine = self._open.get(caller, 0)
        if mine >= self.per_caller:
            raise too_many(
                f"this caller already has {mine} open event streams (the most allowed per "
                f"caller, SSE_MAX_STREAMS_PER_CALLER); close one or retry later",
                self.retry_after_s,
            )
        if self.open >= self.total:
            raise too_many(
                f"the API is serving its most event streams ({self.total}, SSE_MAX_STREAMS); "
                "retry later",
                self.retry_after_s,
            )
        self._open[caller] = mine + 1
        try:
            yield
        finally:
            left = self._open[caller] - 1
            if left:
                self._open[caller] = left
            else:
                del self._open[caller]
