"""Etsy's error answers (``{"error": "<message>"}``; OAuth's refusals add
``error_description``) and the exceptions the routes raise for them."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from simulators.common import error_json
from simulators.common.bodies import BodyInvalid
from simulators.etsy.oauth import OAuthError

# The statuses the contract's kinds of problem are answered with (Etsy's, in Etsy's format).
PROBLEM_STATUS = {"route": 404, "method": 405, "auth": 401, "request": 400}


class Invalid(BodyInvalid):
    """A request Etsy answers 400; ``str(exc)`` is the ``error`` message."""


def etsy_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in Etsy's format: ``{"error": "<message>"}``."""
    return error_json(status, {"error": message}, headers)


def fault(request: Request, status: int) -> Response:
    """An injected fault in Etsy's format (see :func:`simulators.common.install_faults`)."""
    if status == 429:
        return etsy_error(429, "Too many requests", {"Retry-After": "1"})
    if status >= 500:
        return etsy_error(status, "The server encountered an internal error.")
    return etsy_error(status, "There was a problem with the request data.")


def not_found(what: str) -> JSONResponse:
    return etsy_error(404, f"{what} not found")


def oauth_error(exc: OAuthError) -> JSONResponse:
    return error_json(exc.status, exc.body())
