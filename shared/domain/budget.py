"""Rate budgets: how many requests a vendor account may send, shared by everyone who sends them.

A vendor's limit (Printify: 600 requests a minute, 200 publishes per 30 minutes) belongs to the
account, not to a process. :class:`SharedRateBudget` keeps one budget in PostgreSQL (the
``rate_grants`` sliding-window log of migration 0007) for every process that calls the account,
on any number of machines; :class:`LocalRateBudget` is the in-process equivalent for a single
process (tests, scripts).

A request holds a grant from the moment it may be sent until its answer; the grant counts for a
whole window after that answer, which keeps a vendor that counts arrivals over the same window
from ever seeing more than the limit. Under load one round trip grants several waiting requests
at once and carries the previous answers' releases with it; nobody holds a database connection or
a row lock while waiting for budget.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared.platform.aio import cancel_and_wait
from shared.platform.errors import RetryableError
from shared.platform.waits import for_permission

logger = logging.getLogger(__name__)


def account_key(vendor: str, secret: str) -> str:
    """A stable name for the account behind a credential, without the credential in it."""
    return f"{vendor}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


def per_window(limit: int, window_s: float) -> str:
    """``200 per 30 minutes``: a limit as people say it."""
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if window_s >= seconds and window_s % seconds == 0:
            n = int(window_s // seconds)
            return f"{limit} per {unit}" if n == 1 else f"{limit} per {n} {unit}s"
    return f"{limit} per {window_s:g} s"


class RateBudget(Protocol):
    """What a vendor client needs from a budget."""

    # Requests per window; a client may lower it to what the vendor reports.
    limit: int

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """``async with budget.slot():`` around one request: waits for budget first."""
        ...

    async def block(self, seconds: float) -> None:
        """The vendor said 429, retry after ``seconds``: stop every sender that long."""
        ...


async def aclose_budgets(*budgets: RateBudget | None) -> None:
    """Close the budgets that hold resources (a shared one's worker and its last releases)."""
    for budget in budgets:
        close = getattr(budget, "aclose", None)
        if close is not None:
            await close()


class LocalRateBudget:
    """At most ``limit`` requests in any ``window_s`` seconds within this process.

    A request occupies a slot from the moment it is sent until ``window_s`` after its answer
    arrived, the same rule as :class:`SharedRateBudget`.
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        purpose: str = "requests",
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.purpose = purpose
        self._clock = clock
        self._done: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._blocked_until = 0.0
        self._cond = asyncio.Condition()

    @property
    def label(self) -> str:
        """What a job waiting here waits for: ``Printify publishes (200 per 30 minutes)``."""
        return f"{self.purpose} ({per_window(self.limit, self.window_s)})"

    def _prune(self, now: float) -> None:
        while self._done and self._done[0] <= now - self.window_s:
            self._done.popleft()

    async def acquire(self) -> None:
        """Wait until a slot is free and take it (a stopping stage hands back a message that
        waits here having sent nothing: :mod:`shared.platform.handback`)."""
        async with for_permission("vendor_limit", self.label), self._cond:
            while True:
                now = self._clock()
                self._prune(now)
                if now >= self._blocked_until and self._in_flight + len(self._done) < self.limit:
                    self._in_flight += 1
                    return
                # Full: the oldest answered slot frees at a known time; if every slot is in
                # flight, a release will wake us instead.
                timeout = self._done[0] + self.window_s - now if self._done else None
                if now < self._blocked_until:
                    timeout = self._blocked_until - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), timeout)

    async def release(self) -> None:
        """Mark the request taken by :meth:`acquire` as answered (or failed)."""
        async with self._cond:
            self._in_flight -= 1
            self._done.append(self._clock())
            self._cond.notify_all()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with budget.slot():`` around one request."""
        await self.acquire()
        try:
            yield
        finally:
            await self.release()

    async def block(self, seconds: float) -> None:
        """Send nothing for ``seconds``."""
        async with self._cond:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)


# The functions of migration 0007 and what they keep (``rate_grants``, ``rate_budgets``).
_TAKE = """
SELECT granted, wait_s
FROM pod_rate_take(%(name)s, %(limit)s, %(window_s)s, %(want)s, %(release)s, %(hold_s)s)
"""
_BLOCK = "SELECT pod_rate_block(%(name)s, %(seconds)s)"
# What the budget is, for the people watching it (the flow page, /stats): written when it
# changes, which is once per process unless a vendor lowers the limit.
_DESCRIBE = """
INSERT INTO rate_budgets AS b (name, label, lim, window_s)
VALUES (%(name)s, %(label)s, %(limit)s, %(window_s)s)
ON CONFLICT (name) DO UPDATE SET label = EXCLUDED.label, lim = EXCLUDED.lim,
    window_s = EXCLUDED.window_s
WHERE (b.label, b.lim, b.window_s)
    IS DISTINCT FROM (EXCLUDED.label, EXCLUDED.lim, EXCLUDED.window_s)
"""
_USAGE = """
SELECT (SELECT count(*) FROM rate_grants WHERE name = %(name)s),
    COALESCE((SELECT rate_limited FROM rate_budgets WHERE name = %(name)s), 0)
"""


class SharedRateBudget:
    """One budget, ``limit`` requests per ``window_s``, kept in PostgreSQL for every process.

    One task per process talks to the database: it asks for as many grants as there are
    requests waiting (up to ``max_batch``), hands them out in arrival order, and when the
    budget is spent sleeps until the database says a slot frees (or ``poll_s`` when every
    counted grant is still in flight). Releases wait at most ``release_delay_s`` to travel with
    the next take. ``hold_s`` is how long a grant whose process died keeps counting.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        name: str,
        *,
        limit: int,
        window_s: float,
        hold_s: float = 300.0,
        max_batch: int = 50,
        poll_s: float = 0.05,
        release_delay_s: float = 0.02,
        unavailable_after_s: float = 60.0,
        db_timeout_s: float = 10.0,
        purpose: str | None = None,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.pool = pool
        self.name = name
        # What it limits, in words (``Printify publishes``); the name is an account digest.
        self.purpose = purpose or name
        self.limit = limit
        self.window_s = window_s
        self.hold_s = hold_s
        self.max_batch = max(1, min(max_batch, limit))
        self.poll_s = poll_s
        self.release_delay_s = release_delay_s
        self.unavailable_after_s = unavailable_after_s
        self.db_timeout_s = db_timeout_s
        self._waiters: collections.deque[asyncio.Future[int]] = collections.deque()
        self._released: list[int] = []
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.round_trips = 0  # for benchmarks: database calls made
        # When the database last said the next slot frees (epoch seconds), while short.
        self._free_at: float | None = None
        self._described: tuple[str, int, float] | None = None

    @property
    def label(self) -> str:
        """What a job waiting here waits for: ``Printify publishes (200 per 30 minutes)``."""
        return f"{self.purpose} ({per_window(self.limit, self.window_s)})"

    def _until(self, mine: list[asyncio.Future[int]]) -> float | None:
        """About when the waiter ``mine`` holds gets its grant: the next slot's time, plus a
        slot's share of the window for each waiter ahead (slots free as old grants age out)."""
        if not mine or self._free_at is None:
            return None
        ahead = sum(
            1
            for f in itertools.takewhile(lambda f: f is not mine[0], self._waiters)
            if not f.done()
        )
        return self._free_at + ahead * self.window_s / self.limit

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with budget.slot():`` around one request."""
        grant = await self.acquire()
        try:
            yield
        finally:
            self.release(grant)

    async def acquire(self) -> int:
        """Wait for a grant of this budget; returns its id for :meth:`release` (a stopping
        stage hands back a message that waits here having sent nothing:
        :mod:`shared.platform.handback`)."""
        mine: list[asyncio.Future[int]] = []
        async with for_permission("vendor_limit", self.label, lambda: self._until(mine)):
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            mine.append(fut)
            self._waiters.append(fut)
            self._ensure_worker()
            self._wake.set()
            try:
                return await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self.release(fut.result())  # granted as we were cancelled: hand it back
                raise

    def release(self, grant: int) -> None:
        """The request of ``grant`` was answered (or failed): its window starts now."""
        self._released.append(grant)
        self._ensure_worker()
        self._wake.set()

    async def block(self, seconds: float) -> None:
        """Stop every process's requests on this budget for ``seconds`` (a 429's Retry-After)."""
        try:
            async with self.pool.connection(timeout=self.db_timeout_s) as conn:
                await conn.execute(_BLOCK, {"name": self.name, "seconds": float(seconds)})
        except (psycopg.Error, TimeoutError) as exc:
            logger.warning("rate budget block not recorded budget=%s error=%s", self.name, exc)

    async def usage(self) -> tuple[int, int]:
        """(grants counting now, 429s recorded): for benchmarks and operators."""
        async with self.pool.connection(timeout=10) as conn:
            cur = await conn.execute(_USAGE, {"name": self.name})
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def aclose(self) -> None:
        """Flush pending releases and stop the worker."""
        if self._worker is not None:
            await cancel_and_wait(self._worker)
            self._worker = None
        if self._released:
            with contextlib.suppress(Exception):
                await self._take(0)

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"rate-budget {self.name}")

    async def _run(self) -> None:
        failing_since: float | None = None
        while True:
            # Cleared before the round trip, never after: a release or a new waiter arriving
            # while we talk to the database must cut the next sleep short.
            self._wake.clear()
            self._drop_cancelled()
            if not self._waiters:
                if not self._released:
                    await self._wake.wait()
                    continue
                # Only releases to send: let a few gather, or a take come along to carry them.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._until_waiter(), self.release_delay_s)
                self._wake.clear()
                self._drop_cancelled()
            want = min(len(self._waiters), self.max_batch)
            try:
                granted, wait_s = await self._take(want)
            except Exception as exc:  # the database is down or refusing: waiters wait, then fail
                now = time.monotonic()
                failing_since = failing_since or now
                failing_for = now - failing_since
                logger.warning(
                    "rate budget unavailable budget=%s failing_s=%.1f error=%s",
                    self.name,
                    failing_for,
                    exc,
                )
                if failing_for > self.unavailable_after_s:
                    self._fail_waiters(exc)
                    failing_since = None
                await asyncio.sleep(min(2.0, 0.1 + failing_for))
                continue
            failing_since = None
            for grant in granted:
                fut = self._next_waiter()
                if fut is None:
                    self._released.append(grant)  # its requester gave up meanwhile
                else:
                    fut.set_result(grant)
            short = bool(want) and len(granted) < want
            # Every counted grant still in flight (wait_s < 0): none frees before a whole
            # window after its answer, which is now at the earliest, so that is the estimate.
            self._free_at = (
                time.time() + (wait_s if wait_s >= 0 else self.window_s) if short else None
            )
            if short:
                delay = self.poll_s if wait_s < 0 else min(max(wait_s, 0.005), 1.0)
                # A release of our own may free a slot sooner than the database's estimate.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _until_waiter(self) -> None:
        while not self._waiters:
            await self._wake.wait()
            self._wake.clear()

    def _drop_cancelled(self) -> None:
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()

    def _next_waiter(self) -> asyncio.Future[int] | None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                return fut
        return None

    def _fail_waiters(self, exc: BaseException) -> None:
        error = RetryableError(f"rate budget {self.name} unavailable: {exc}")
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(error)

    async def _take(self, want: int) -> tuple[list[int], float]:
        release, self._released = self._released, []
        described = (self.label, self.limit, self.window_s)
        try:
            async with self.pool.connection(timeout=self.db_timeout_s) as conn:
                if described != self._described:
                    await conn.execute(
                        _DESCRIBE,
                        {
                            "name": self.name,
                            "label": self.label,
                            "limit": self.limit,
                            "window_s": self.window_s,
                        },
                    )
                    self._described = described
                cur = await conn.execute(
                    _TAKE,
                    {
                        "name": self.name,
                        "limit": self.limit,
                        "window_s": self.window_s,
                        "want": want,
                        "release": release,
                        "hold_s": self.hold_s,
                    },
                )
                row = await cur.fetchone()
        except BaseException:
            self._released = release + self._released  # not sent: send them next time
            raise
        self.round_trips += 1
        assert row is not None
        return list(row[0] or []), float(row[1])
