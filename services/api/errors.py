"""Error answers: one JSON shape for every 4xx/5xx, and field-level validation messages.

Every error body is ``{"error": <code>, "detail": <message or list of {field, message}>}``.
Bad input must always end as a 4xx naming the field, never as a 5xx, so the handlers here
translate FastAPI's and pydantic's errors instead of letting them through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.logs import redact_urls

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


def _message(err: Mapping[str, Any]) -> str:
    # Short, stable messages for the common cases; pydantic's own text for the rest.
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    loc = tuple(err.get("loc", ()))
    if kind == "missing":
        return "request body is required (a JSON object)" if loc == ("body",) else "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "must be a JSON object"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        word = "at least" if kind == "too_short" else "at most"
        return f"must have {word} {bound} item(s)"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "enum":
        return f"must be one of: {ctx.get('expected')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_unicode":
        # JSON may escape a lone surrogate (\ud800); no UTF-8 text can carry it.
        return "must be valid Unicode text"
    if kind == "list_type":
        return "must be a list"
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", "is invalid")))
    return str(err.get("msg", "is invalid"))


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
    detail = [{"field": field_name(e.get("loc", ())), "message": _message(e)} for e in errors]
    return ApiError(422, "validation_failed", detail).response()


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
