"""Etsy's documented request limits, kept per app: per second and per rolling day, as every
answer reports them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

import httpx

from shared.adapters.vendors.etsy.models import VENDOR
from shared.platform.errors import (
    RateLimited,
)
from shared.platform.handback import permission
from shared.platform.waits import for_permission

# --------------------------------------------------------------------------------------------
# Throttling


def header_int(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    try:
        return None if raw is None else int(raw.strip())
    except ValueError:
        return None


class EtsyThrottle:
    """Keeps one client within the app's limits, as Etsy reports them on each answer.

    Sends pass one at a time through an asyncio lock, which sleeps (never spins) while:
    the last ``limit`` sends happened within a second, plus ``margin_s`` (the limit Etsy
    reports; until it has reported one, a single request is in flight); Etsy said this second's
    budget is spent (``x-remaining-this-second: 0``, which counts the app's other clients too)
    less than that ago; or a 429's ``Retry-After`` has not passed. When Etsy says the day's
    budget is spent, :meth:`acquire` raises :class:`RateLimited` for ``day_wait_s``.

    It paces one client (one process); several processes of one app share Etsy's budget and
    see each other only through ``x-remaining-this-second``."""

    def __init__(
        self, *, day_wait_s: float = 3600.0, window_s: float = 1.0, margin_s: float = 0.1
    ) -> None:
        self.day_wait_s = day_wait_s
        # Etsy counts requests when they arrive, we when they leave: sends are spaced a little
        # more than a second apart, so that uneven travel times never bunch them up at Etsy.
        self.window_s = window_s + margin_s
        self.limit: int | None = None  # x-limit-per-second, once Etsy has said it
        self._lock = asyncio.Lock()
        self._answered = asyncio.Event()
        self._sent: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._paused_until = 0.0  # monotonic: a spent second or a 429's Retry-After
        self._pause_reason: str | None = None
        self._day_until = 0.0  # wall clock: the day's budget is spent until then

    def day_blocked_for(self) -> float:
        """Seconds left before calls may be sent again after the day's budget ran out."""
        return max(0.0, self._day_until - time.time())

    def describe(self) -> str:
        """What a call waiting here waits for (``shared.platform.waits``: why a job waits)."""
        if time.monotonic() < self._paused_until and self._pause_reason:
            return self._pause_reason
        if self.limit is None:
            return "Etsy requests (one at a time until Etsy reports the app's limit)"
        return f"Etsy requests ({self.limit} per second)"

    def _free_at(self) -> float:
        """About when (epoch seconds) the next send may leave."""
        now = time.monotonic()
        wait = max(0.0, self._paused_until - now)
        if self.limit is not None and len(self._sent) >= self.limit:
            wait = max(wait, self._sent[0] + self.window_s - now)
        return time.time() + wait

    async def acquire(self) -> None:
        """Wait for the right to send one request (raises RateLimited for the day's limit).

        A call that waits says so, and while the stage stops is handed back having sent nothing
        (:func:`shared.platform.waits.for_permission`): behind the sends before it, for a spent
        second, or for a 429's Retry-After."""
        behind = (
            for_permission("vendor_limit", self.describe(), until=self._free_at)
            if self._lock.locked()
            else permission()
        )
        async with behind:
            await self._lock.acquire()
        try:
            while True:
                left = self.day_blocked_for()
                if left > 0:
                    raise RateLimited(
                        f"Etsy's daily request budget is spent (x-remaining-today: 0); no "
                        f"calls for {left:.0f}s",
                        vendor=VENDOR,
                        status=429,
                        retry_after=left,
                    )
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self.window_s:
                    self._sent.popleft()
                if self.limit is None and self._in_flight > 0:
                    # Etsy has not told us the app's limit yet: one request at a time.
                    self._answered.clear()
                    async with for_permission("vendor_limit", self.describe()):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._answered.wait(), timeout=self.window_s)
                    continue
                wait = self._paused_until - now
                if self.limit is not None and len(self._sent) >= self.limit:
                    wait = max(wait, self._sent[0] + self.window_s - now)
                if wait <= 0:
                    break
                async with for_permission(
                    "vendor_limit", self.describe(), until=time.time() + wait
                ):
                    await asyncio.sleep(wait)
            self._sent.append(time.monotonic())
            self._in_flight += 1
        finally:
            self._lock.release()

    def observe(self, headers: httpx.Headers) -> None:
        """Take in what an answer says of the budgets (call once per acquired request)."""
        self._in_flight = max(0, self._in_flight - 1)
        limit = header_int(headers, "x-limit-per-second")
        if limit is not None and limit > 0:
            self.limit = limit
        if header_int(headers, "x-remaining-this-second") == 0:
            self.pause(
                self.window_s,
                "Etsy requests: this second's budget of the app is spent "
                "(x-remaining-this-second: 0)",
            )
        if header_int(headers, "x-remaining-today") == 0:
            self.block_day(self.day_wait_s)
        self._answered.set()

    def abandon(self) -> None:
        """The acquired request got no answer (timeout, dropped connection)."""
        self._in_flight = max(0, self._in_flight - 1)
        self._answered.set()

    def pause(self, seconds: float, reason: str | None = None) -> None:
        """No sends for ``seconds`` (a spent second, a 429's Retry-After); ``reason`` is what
        the calls held back wait for."""
        until = time.monotonic() + seconds
        if until >= self._paused_until:
            self._paused_until = until
            self._pause_reason = reason

    def block_day(self, seconds: float) -> None:
        """The day's budget is spent: calls raise RateLimited for ``seconds``."""
        self._day_until = max(self._day_until, time.time() + seconds)
