"""Error answers: one JSON shape for every 4xx/5xx, and field-level validation messages.

Every error body is ``{"error": <code>, "detail": <message or list of {field, message}>}``.
Bad input must always end as a 4xx naming the field, never as a 5xx, so the handlers here
translate FastAPI's and pydantic's errors instead of letting them through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.platform.logs import redact_urls

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer raised from a route or dependency."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str | list[dict[str, str]] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON answer for this error."""
        body: dict[str, Any] = {"error": self.error}
        if isinstance(self.detail, str):
            body["detail"] = redact_urls(self.detail)
        elif self.detail is not None:
            body["detail"] = self.detail
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(field: str, message: str) -> ApiError:
    """A 422 for one bad field (checks that depend on settings, made in the routes)."""
    return ApiError(422, "validation_failed", [{"field": field, "message": message}])


def field_name(loc: Sequence[int | str]) -> str:
    """``("body", "productTypes", 0)`` -> ``productTypes[0]``; the bare body -> ``body``."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


# Short, stable messages for the common cases; pydantic's own text for the rest.
_FIXED_MESSAGES: dict[str, str] = {
    "extra_forbidden": "unknown field",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "string_too_short": "must not be empty",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    # JSON may escape a lone surrogate (\ud800); no UTF-8 text can carry it.
    "string_unicode": "must be valid Unicode text",
    "list_type": "must be a list",
}

# Messages that name the bound pydantic reports in the error's context.
_BOUND_MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "string_too_long": lambda ctx: f"must be at most {ctx.get('max_length')} characters",
    "too_short": lambda ctx: f"must have at least {ctx.get('min_length')} item(s)",
    "too_long": lambda ctx: f"must have at most {ctx.get('max_length')} item(s)",
    "greater_than_equal": lambda ctx: f"must be at least {ctx.get('ge')}",
    "less_than_equal": lambda ctx: f"must be at most {ctx.get('le')}",
    "enum": lambda ctx: f"must be one of: {ctx.get('expected')}",
}


def _message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        body_missing = tuple(err.get("loc", ())) == ("body",)
        return "request body is required (a JSON object)" if body_missing else "is required"
    if kind in _FIXED_MESSAGES:
        return _FIXED_MESSAGES[kind]
    if kind in _BOUND_MESSAGES:
        return _BOUND_MESSAGES[kind](ctx)
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", "is invalid")))
    return str(err.get("msg", "is invalid"))


def problems(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic's errors as the answers' ``[{field, message}]`` (a body's or a CSV line's)."""
    return [{"field": field_name(e.get("loc", ())), "message": _message(e)} for e in errors]


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype == "application/json" or (
        ctype.startswith("application/") and ctype.endswith("+json")
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        reason = (malformed[0].get("ctx") or {}).get("error", "JSON decode error")
        where = malformed[0]["loc"][-1]
        problem = {"field": "body", "message": f"malformed JSON at position {where}: {reason}"}
        return ApiError(400, "malformed_json", [problem]).response()
    # FastAPI hands a non-JSON body on as raw bytes; say what it should have been.
    has_body = any(tuple(e.get("loc", ())) == ("body",) for e in errors)
    if has_body and request.headers.get("content-type") and not _is_json(request):
        problem = {"field": "body", "message": "Content-Type must be application/json"}
        return ApiError(400, "unsupported_content_type", [problem]).response()
    return ApiError(422, "validation_failed", problems(errors)).response()


async def _on_json_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, json.JSONDecodeError)
    problem = {"field": "body", "message": f"malformed JSON: {exc.msg}"}
    return ApiError(400, "malformed_json", [problem]).response()


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
    }
    error = codes.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    return ApiError(exc.status_code, error, detail, headers=exc.headers).response()


async def _on_database_down(request: Request, exc: Exception) -> JSONResponse:
    # Not the caller's fault and usually brief; the message carries no connection details.
    # OperationalError covers a refused or broken connection, the pool's PoolTimeout (no
    # connection within DB_ACQUIRE_TIMEOUT_S) and QueryCanceled (DB_STATEMENT_TIMEOUT_S).
    logger.warning(
        "database unavailable method=%s path=%s error=%s",
        request.method,
        request.url.path,
        type(exc).__name__,
    )
    return ApiError(
        503,
        "database_unavailable",
        "the database is unavailable; retry shortly",
        headers={"Retry-After": "5"},
    ).response()


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not bad input: log it with the traceback, tell the caller nothing internal.
    logger.error(
        "unhandled error method=%s path=%s", request.method, request.url.path, exc_info=exc
    )
    return ApiError(500, "internal_error", "unexpected server error").response()


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the common JSON shape."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(json.JSONDecodeError, _on_json_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(OperationalError, _on_database_down)
    # A connection closed under a request (PostgreSQL restarted) is the same outage.
    app.add_exception_handler(InterfaceError, _on_database_down)
    app.add_exception_handler(Exception, _on_unexpected)
