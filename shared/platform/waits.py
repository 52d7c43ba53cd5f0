"""Why a job waits: what this process's in-flight work is waiting for, and until when.

A stage's message can sit for minutes without anything failing: behind a vendor's rate limit
(Printify's 200 publishes per 30 minutes), for a GPU, for a credential the seller must renew.
Whoever makes it wait says so with ``with waiting(kind, what, until):`` around the wait; the
runner sets whose work it is (:func:`working_for`, a context variable, so a budget deep in a
vendor client needs no job id passed down), and the instance's heartbeat carries
:func:`snapshot` to the monitor, which keeps it on the instance's row. ``GET /jobs/{id}`` joins
those with what the database already knows (a retry's delay, a channel's pending confirmation).

A wait that ends is forgotten at once; a process that dies takes its waits with it (its row
goes stale), so nothing here can claim a job waits when it does not.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from shared.platform import handback

WaitKind = Literal["vendor_limit", "gpu", "credential"]

# At most this many waits go in one heartbeat (the oldest first): a backlog of thousands waiting
# on one budget says the same thing a few hundred times.
MAX_REPORTED = 500

_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("pod_job", default=None)


def working_for(job_id: str) -> contextvars.Token[str | None]:
    """From here on (in this task and those it starts), the work is ``job_id``'s."""
    return _job.set(job_id)


def stop_working(token: contextvars.Token[str | None]) -> None:
    _job.reset(token)


def current_job() -> str | None:
    return _job.get()


@dataclass(frozen=True)
class WaitReport:
    """One wait in progress, as a heartbeat carries it."""

    job_id: str
    kind: WaitKind
    what: str
    since: datetime
    until: datetime | None


@dataclass
class _Wait:
    job_id: str
    kind: WaitKind
    what: str
    since: float  # wall clock
    until: Callable[[], float | None]  # wall clock, asked when reported (estimates move)


_waits: dict[int, _Wait] = {}
_ids = itertools.count()


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


@contextlib.contextmanager
def waiting(
    kind: WaitKind, what: str, until: Callable[[], float | None] | float | None = None
) -> Iterator[None]:
    """Record that the current job's work waits for ``what`` (e.g. "Printify publishes: 200
    per 30 min") until about ``until`` (epoch seconds, or a function giving the current
    estimate; None when nobody can know). Outside a job's work, records nothing."""
    job = _job.get()
    if job is None:
        yield
        return
    estimate: Callable[[], float | None] = until if callable(until) else (lambda: until)
    key = next(_ids)
    _waits[key] = _Wait(job, kind, what, time.time(), estimate)
    try:
        yield
    finally:
        _waits.pop(key, None)


@contextlib.asynccontextmanager
async def for_permission(
    kind: WaitKind, what: str, until: Callable[[], float | None] | float | None = None
) -> AsyncIterator[None]:
    """:func:`waiting` around a wait for permission to make a vendor call (a budget's slot, a
    throttle, a GPU's turn): the job says what it waits for, and a stopping stage hands back a
    message waiting here that has sent nothing yet (:func:`shared.platform.handback.permission`)."""
    with waiting(kind, what, until):
        async with handback.permission():
            yield


def snapshot(limit: int = MAX_REPORTED) -> list[WaitReport]:
    """The waits in progress, oldest first (at most ``limit``)."""
    oldest = sorted(_waits.values(), key=lambda w: w.since)[:limit]
    return [
        WaitReport(w.job_id, w.kind, w.what, datetime.fromtimestamp(w.since, UTC), _at(w.until()))
        for w in oldest
    ]
