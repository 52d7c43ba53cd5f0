"""The fault knobs, the fault-injection middleware and a sliding-window rate limiter every
vendor simulator shares.

Knobs come from the environment and can be changed at run time through ``POST /_sim/config``
(tests use that to inject a burst of faults without restarting the simulator):

- ``SIM_LATENCY_MS`` / ``SIM_FAILURE_RATE`` apply to every simulator;
- ``SIM_<NAME>_LATENCY_MS`` / ``SIM_<NAME>_FAILURE_RATE`` override them for one
  (NAME is ANTHROPIC, COMFYUI or PRINTIFY).

Unset, the latency is the profile's (``SIM_PROFILE``, :mod:`.profile`): none when flat, the
vendor's usual round trip when realistic. Every request and its latency is logged
(:mod:`.requestlog`, ``GET /_sim/requests``).

An injected failure is answered in the vendor's own error format by the ``fault`` callable that
each simulator hands to :func:`install_faults`, so clients see exactly what the vendor would send.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.common.profile import pace
from simulators.common.requestlog import RequestLog, install_request_log

logger = logging.getLogger(__name__)

# A fault is a vendor-formatted error response for the given request and injected status.
FaultFactory = Callable[[Request, int], Response]

# Statuses an injected fault picks from: mostly server errors, some rate limits.
DEFAULT_FAULT_STATUSES = (500, 502, 503, 429)


def _env_float(names: list[str], default: float) -> float:
    for name in names:
        raw = os.environ.get(name)
        if raw not in (None, ""):
            try:
                return float(raw)
            except ValueError as exc:
                raise SystemExit(f"{name}: expected a number, got {raw!r}") from exc
    return default


@dataclass
class Knobs:
    """Fault knobs of one simulator; mutable at run time through ``/_sim/config``."""

    latency_ms: float = 0.0
    failure_rate: float = 0.0
    # Share of injected faults that are a hang (timeout) rather than an error status.
    timeout_share: float = 0.0
    timeout_s: float = 30.0
    fault_statuses: tuple[int, ...] = DEFAULT_FAULT_STATUSES
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_env(cls, name: str) -> Knobs:
        """Read ``SIM_*`` and ``SIM_<NAME>_*`` variables (the per-simulator ones win)."""
        up = name.upper()
        knobs = cls(
            latency_ms=_env_float(
                [f"SIM_{up}_LATENCY_MS", "SIM_LATENCY_MS"], pace(name.lower()).call_ms
            ),
            failure_rate=_env_float([f"SIM_{up}_FAILURE_RATE", "SIM_FAILURE_RATE"], 0.0),
            timeout_share=_env_float([f"SIM_{up}_TIMEOUT_SHARE", "SIM_TIMEOUT_SHARE"], 0.0),
        )
        seed = os.environ.get("SIM_SEED")
        if seed:
            knobs.seed = int(seed)
            knobs.rng.seed(knobs.seed)
        return knobs

    def update(self, values: dict[str, object]) -> None:
        """Apply a partial update from ``/_sim/config``."""
        for key in ("latency_ms", "failure_rate", "timeout_share", "timeout_s"):
            if key in values:
                setattr(self, key, float(values[key]))  # type: ignore[arg-type]
        if "fault_statuses" in values:
            self.fault_statuses = tuple(int(s) for s in values["fault_statuses"])  # type: ignore[attr-defined]

    def as_dict(self) -> dict[str, object]:
        return {
            "latency_ms": self.latency_ms,
            "failure_rate": self.failure_rate,
            "timeout_share": self.timeout_share,
            "timeout_s": self.timeout_s,
            "fault_statuses": list(self.fault_statuses),
        }


@dataclass
class FaultBook:
    """What the simulator injected, so chaos tests can report it."""

    injected: collections.Counter[str] = field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, int]:
        return dict(self.injected)


def install_faults(
    app: FastAPI,
    knobs: Knobs,
    fault: FaultFactory,
    *,
    exempt_prefixes: tuple[str, ...] = ("/_sim",),
    log: RequestLog | None = None,
) -> FaultBook:
    """Add latency and random faults to every route of ``app`` except ``exempt_prefixes``.

    Also mounts ``GET/POST /_sim/config`` (read / change the knobs) and ``GET /_sim/faults``,
    and logs every request in ``log`` (a new one unless given; ``app.state.request_log``).
    """
    book = FaultBook()

    @app.middleware("http")
    async def _inject(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith(exempt_prefixes):
            return await call_next(request)
        if knobs.latency_ms > 0:
            await asyncio.sleep(knobs.latency_ms / 1000.0)
        if knobs.failure_rate > 0 and knobs.rng.random() < knobs.failure_rate:
            if knobs.timeout_share > 0 and knobs.rng.random() < knobs.timeout_share:
                book.injected["timeout"] += 1
                await asyncio.sleep(knobs.timeout_s)
            status = knobs.rng.choice(knobs.fault_statuses)
            book.injected[str(status)] += 1
            return fault(request, status)
        return await call_next(request)

    app.include_router(_fault_routes(knobs, book))
    # Outermost: its interval holds the injected latency.
    app.state.request_log = log = log or RequestLog()
    install_request_log(app, log, exempt_prefixes=exempt_prefixes)
    return book


def _fault_routes(knobs: Knobs, book: FaultBook) -> APIRouter:
    """``GET/POST /_sim/config`` (read / change the knobs) and ``GET /_sim/faults``."""
    router = APIRouter(prefix="/_sim")

    @router.get("/config")
    async def get_config() -> dict[str, object]:
        return knobs.as_dict()

    @router.post("/config")
    async def set_config(request: Request) -> dict[str, object]:
        knobs.update(await request.json())
        return knobs.as_dict()

    @router.get("/faults")
    async def faults() -> dict[str, int]:
        return book.as_dict()

    return router


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window_s`` seconds per key (e.g. per API token)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )

    def check(self, key: str, now: float | None = None) -> float | None:
        """Record one event for ``key``; return None if allowed, else seconds until allowed."""
        now = time.monotonic() if now is None else now
        q = self._events[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return max(0.0, q[0] + self.window_s - now)
        q.append(now)
        return None


def error_json(
    status: int, body: dict[str, object], headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error response with the given status and body."""
    return JSONResponse(status_code=status, content=body, headers=headers)
