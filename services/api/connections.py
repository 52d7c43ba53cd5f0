"""A deadline for each request's head: uvicorn's HTTP/1.1 protocol arms no timer until a first
response is sent, and re-arms its keep-alive timer only until the next byte arrives, so a client
that opens connections and sends nothing, or a header a byte every few seconds (slowloris), holds
a connection (and a slot of ``limit_concurrency``) for as long as it likes.

:class:`HeadDeadlineProtocol` closes a connection whose request line and headers are not all in
within ``API_HEAD_TIMEOUT_S`` of its first byte (or of the connection, for the first request).
Once a request's head is in, the deadline is off: a slow upload, a long answer and an SSE stream
are the routes' business, not this one's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request's head (``head_timeout``)."""

    head_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and self._waiting_for_head():
            self._arm()  # the next request on a kept-alive connection starts now
        super().data_received(data)
        if not self._waiting_for_head():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and (
            self.cycle is None or self.cycle.response_complete
        )

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self._waiting_for_head() or self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        logger.warning("connection closed: request head not in time client=%s timeout_s=%s",
                       client, self.head_timeout)  # fmt: skip
        self.transport.close()


def head_deadline_protocol(timeout: float) -> type[HeadDeadlineProtocol]:
    """The protocol class uvicorn instantiates per connection, with ``timeout`` as its deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout": timeout})
