"""Printify's error answers (``{status: "error", code, message, errors?}``) and the exception
validation raises."""

from __future__ import annotations

import math

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from simulators.common import error_json

# Printify's error codes: 8150 is what it answers for a failed validation; the others are the
# simulator's own stand-ins in the same numbering range (Printify does not document a full list).
CODE_VALIDATION = 8150
CODE_BAD_REQUEST = 8100
CODE_UNAUTHENTICATED = 8101
CODE_NOT_FOUND = 8200
CODE_LOCKED = 8252  # "Product is disabled for editing" while a publish is under way
CODE_RATE_LIMITED = 8429
CODE_SERVER = 8500


class Invalid(Exception):
    """A request that fails validation; ``str(exc)`` is Printify's ``errors.reason``."""


def printify_error(
    status: int,
    message: str,
    *,
    code: int,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in Printify's format: ``{status: "error", code, message, errors?}``."""
    body: dict[str, object] = {"status": "error", "code": code, "message": message}
    if reason is not None:
        body["errors"] = {"reason": reason, "code": code}
    return error_json(status, body, headers)


def validation_error(reason: str) -> JSONResponse:
    return printify_error(400, "Validation failed.", code=CODE_VALIDATION, reason=reason)


def not_found(what: str) -> JSONResponse:
    return printify_error(
        404, f"{what} not found.", code=CODE_NOT_FOUND, reason=f"{what} not found"
    )


def locked() -> JSONResponse:
    return printify_error(
        400,
        "Product is disabled for editing.",
        code=CODE_LOCKED,
        reason="the product is being published",
    )


def too_many(wait_s: float, what: str) -> JSONResponse:
    # Retry-After is whole seconds (RFC 9110); round up so an obedient client is never early.
    retry_after = str(max(1, math.ceil(wait_s)))
    return printify_error(
        429,
        "Too Many Requests.",
        code=CODE_RATE_LIMITED,
        reason=f"{what} rate limit exceeded",
        headers={"Retry-After": retry_after},
    )


def fault(request: Request, status: int) -> Response:
    """An injected fault in Printify's format (see :func:`simulators.common.install_faults`)."""
    if status == 429:
        return too_many(1.0, "Request")
    if status >= 500:
        return printify_error(status, "Internal server error.", code=CODE_SERVER)
    return printify_error(status, "Request failed.", code=CODE_BAD_REQUEST)


class NotFound(Exception):
    """A shop, product, upload, ... the account does not have; ``str(exc)`` names what."""


def ok(data: object) -> JSONResponse:
    return JSONResponse(content=data)
