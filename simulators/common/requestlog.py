"""When the vendor was busy, seen from the vendor's side: every request a simulator answered
(its start and end, the injected latency included) and the work it did outside any request
(a ComfyUI render, a Printify channel listing a product, a webhook on its way), so a bench
measures a job's vendor time without trusting the engine's own clocks.

``GET /_sim/requests?since=<unix seconds>`` lists the entries that ended after ``since``. Paths
are kept without their query string (it may hold a key); the log keeps the last
:data:`MAX_ENTRIES`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.types import ASGIApp

MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class Entry:
    """One stretch of vendor time: ``kind`` is ``http`` (a request) or ``work`` (done on its
    own: ``what`` names it); ``ref`` the vendor's id it concerns (a prompt, a product)."""

    kind: str
    what: str
    start: float
    end: float
    status: int = 0
    ref: str = ""


class RequestLog:
    """The last :data:`MAX_ENTRIES` entries, oldest first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: collections.deque[Entry] = collections.deque(maxlen=max_entries)

    def add(self, entry: Entry) -> None:
        self._entries.append(entry)

    def work(self, what: str, start: float, end: float, ref: str = "") -> None:
        """Record vendor work done outside a request (its ``end`` may lie in the future: a
        channel listing a product when it is due)."""
        self.add(Entry("work", what, start, end, 0, ref))

    def since(self, since: float) -> list[Entry]:
        return [e for e in self._entries if e.end >= since]

    def clear(self) -> None:
        self._entries.clear()


def install_request_log(
    app: FastAPI, log: RequestLog, *, exempt_prefixes: tuple[str, ...] = ("/_sim",)
) -> None:
    """Log every request of ``app`` but ``exempt_prefixes``; mount ``GET /_sim/requests``.

    The log is the outermost middleware, whatever a simulator adds after this call (Etsy's and
    TikTok's key checks, Printify's rate limit): a refused request is vendor time too."""

    async def _log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(exempt_prefixes):
            return await call_next(request)
        start = time.time()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            log.add(Entry("http", f"{request.method} {path}", start, time.time(), status))

    build = app.build_middleware_stack

    def outermost() -> ASGIApp:
        # Starlette builds the stack at the first call, from user_middleware, first outermost.
        app.user_middleware.insert(0, Middleware(BaseHTTPMiddleware, dispatch=_log))
        return build()

    setattr(app, "build_middleware_stack", outermost)  # noqa: B010 (mypy: a method)

    router = APIRouter(prefix="/_sim")

    @router.get("/requests")
    async def requests(since: float = 0.0) -> dict[str, list[dict[str, object]]]:
        if since < 0:
            raise HTTPException(400, "since: expected unix seconds >= 0")
        return {"entries": [asdict(e) for e in log.since(since)]}

    app.include_router(router)
