"""The request body limit, enforced in front of everything else (``MAX_BODY_BYTES``).

FastAPI reads and parses a route's body before it runs the route's dependencies, so a limit
checked in a route or after authentication would come too late: an anonymous caller could make
the API buffer and parse any amount. This ASGI middleware sits outside the app instead:

- a declared ``Content-Length`` above the limit is answered 413 at once, before a byte of the
  body is read;
- a body without one (``Transfer-Encoding: chunked``) is counted as it arrives and held, at most
  ``max_bytes`` of it, until it ends; one byte more and the answer is 413, the rest unread.

Either way the app (routes, authentication, the JSON parser) never sees an oversized request.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """Answer 413 (our error body) for a request body above ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await self._too_large(scope, send, f"declared={declared}")
                return
            # The server reads exactly Content-Length bytes (h11/httptools enforce it), so a
            # body within the declared size needs no counting.
            await self.app(scope, receive, send)
            return
        # No Content-Length: chunked, or no body at all (then one empty message arrives at once).
        pending: list[Message] = []
        total = 0
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                pending.append(message)  # the client went away; let the app see that
                break
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._too_large(scope, send, f"streamed>{self.max_bytes}")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        pending.insert(0, {"type": "http.request", "body": b"".join(chunks), "more_body": False})

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send, size: str) -> None:
        logger.warning(
            "request body too large method=%s path=%s size=%s limit=%d",
            scope.get("method"),
            scope.get("path"),
            size,
            self.max_bytes,
        )
        body = json.dumps(
            {
                "error": "too_large",
                "detail": f"the request body is larger than the limit of {self.max_bytes} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The unread rest of the body makes the connection unusable for another
                    # request; say so rather than let the client find out.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                # The HTTP server rejects such a request before it gets here; if one came
                # through, a body of unknown size is treated as too large.
                return 1 << 62
    return None
