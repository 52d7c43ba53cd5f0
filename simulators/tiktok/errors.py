"""TikTok's answers: ``{"code", "message", "request_id", "data"}``, ``code`` 0 for success."""

from __future__ import annotations

import secrets
import time

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from simulators.contracts.tiktok import error_code


def request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(10).upper()


def ok(data: object) -> JSONResponse:
    return JSONResponse({"code": 0, "message": "Success", "request_id": request_id(), "data": data})


def tiktok_error(
    kind: str, message: str, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error as TikTok answers it: most with HTTP 200 and a non-zero ``code``; refused
    credentials with 401, the QPS limit with 429."""
    return JSONResponse(
        {"code": error_code(kind), "message": message, "request_id": request_id(), "data": None},
        status_code=status,
        headers=headers,
    )


def fault(request: Request, status: int) -> Response:
    """An injected fault in TikTok's format (see :func:`simulators.common.install_faults`)."""
    if status == 429:
        return tiktok_error(
            "too_many_requests", "Too many requests. Please retry later.", 429, {"Retry-After": "1"}
        )
    return tiktok_error("internal_error", "Internal error. Please retry later.", status)
