"""Graph API error answers: ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}``, with the HTTP status Meta gives each kind."""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from simulators.common import error_json


class GraphError(Exception):
    """An error the Graph API answers with (raised by the routes)."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        kind: str = "OAuthException",
        subcode: int | None = None,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind
        self.subcode = subcode
        self.status = status
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return graph_error(
            self.status, self.message, self.code, self.kind, self.subcode, self.headers
        )


def graph_error(
    status: int,
    message: str,
    code: int,
    kind: str = "OAuthException",
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(9),
    }
    if subcode is not None:
        body["error_subcode"] = subcode
    return error_json(status, {"error": body}, headers)


def invalid_param(message: str) -> GraphError:
    return GraphError(f"(#100) {message}", code=100, kind="OAuthException")


def fault(request: Request, status: int) -> Response:
    """An injected fault as the Graph API answers one (:func:`simulators.common.install_faults`):
    a 5xx is code 2 (a temporary service issue), a 429 code 4 (the app's call limit)."""
    if status == 429:
        return graph_error(400, "(#4) Application request limit reached", 4)
    if status >= 500:
        return graph_error(
            status, "An unexpected error has occurred. Please retry your request later.", 2
        )
    return graph_error(status, "An unknown error has occurred.", 1)
