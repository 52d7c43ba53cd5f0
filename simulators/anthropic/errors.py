"""Anthropic's error answers (``{"type": "error", "error": {"type", "message"}, "request_id"}``)
with the documented status/type pairs, and the ids it gives messages and requests."""

from __future__ import annotations

import math
import secrets
import string

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from simulators.common import error_json

# Injected faults look like what Anthropic actually sends under load.
ANTHROPIC_FAULT_STATUSES = (500, 529, 429)

# Seconds an injected 429 asks the client to wait (kept short so retries stay fast in tests).
INJECTED_RETRY_AFTER_S = 1

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

ERROR_MESSAGES = {
    429: "Number of requests has exceeded your rate limit. Please try again later.",
    500: "Internal server error",
    529: "Overloaded",
}


_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """An id in Anthropic's style (``msg_01…``, ``toolu_01…``, ``req_01…``)."""
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def error_type_for(status: int) -> str:
    """The documented ``error.type`` for an HTTP status (other 4xx/5xx fall back by class)."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def anthropic_error(
    status: int, message: str | None = None, *, retry_after: float | None = None
) -> JSONResponse:
    """An error response exactly as the Messages API documents it."""
    request_id = new_id("req_")
    headers = {"request-id": request_id}
    if retry_after is not None:
        # The header is whole seconds; round up so a client never retries too early.
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    body: dict[str, object] = {
        "type": "error",
        "error": {
            "type": error_type_for(status),
            "message": message or ERROR_MESSAGES.get(status, "Error"),
        },
        "request_id": request_id,
    }
    return error_json(status, body, headers)


def fault(_request: Request, status: int) -> Response:
    """An injected fault in Anthropic's error format (used by :func:`install_faults`)."""
    retry_after = INJECTED_RETRY_AFTER_S if status == 429 else None
    return anthropic_error(status, retry_after=retry_after)


class InvalidRequest(Exception):
    """A request the API would refuse; carries the status and the documented message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
