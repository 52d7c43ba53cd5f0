"""What a browser page on another site could make the API do, refused before any route runs.

Three checks, in one ASGI layer in front of every route (the dashboard, SSE and admin ones too):

- ``Host``: with no API keys (the default ``make up``) anything the operator's browser can reach
  is an open door, and DNS rebinding lets a page on ``evil.example`` reach ``127.0.0.1:3000``
  under its own name. Only localhost, IP literals (a rebinding page's origin is always a name)
  and the names in ``API_ALLOWED_HOSTS`` are answered; any other ``Host`` is a 400.
- ``Origin`` on a state-changing request: a browser names the page that sent it; a page that
  is neither this API's own origin nor one of ``CORS_ORIGINS`` gets a 403 before anything runs.
- ``Content-Type`` on a state-changing request: JSON only (and text/csv on the routes of
  :data:`OTHER_BODIES`). Forms (urlencoded, multipart) and text/plain are the "simple" requests
  a page may send cross-site without a CORS preflight; a body without a type is one too (a
  Blob). Those are a 415, naming the header.

Vendors' signed calls (``/webhooks/``) are exempt from the ``Host`` and type checks (see
:data:`VENDOR_CALLS`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.settings import ApiSettings

logger = logging.getLogger(__name__)

# Requests a page could use to change something (GET, HEAD and OPTIONS must not).
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_NAMES = frozenset({"localhost", "localhost."})
# Vendors' calls (Printify's webhooks): they come from the internet under the public name the
# webhook was registered with, in whatever type the vendor sends, and prove themselves by their
# signature over the body, which no page can make. Host and Content-Type do not apply to them.
VENDOR_CALLS = ("/webhooks/",)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Routes that take a body other than JSON. text/csv is not one of the types a page may send
# cross-site unasked (only forms and text/plain are): a browser asks first (a CORS preflight),
# which only CORS_ORIGINS pass.
OTHER_BODIES: dict[str, frozenset[str]] = {"/jobs/bulk": frozenset({"text/csv"})}


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[v6]:port`` -> (lower-case name, port); None when malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, _, port_text = value.partition(":")
        port_text = port_text if ":" in value else None
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        return None
    if not name or any(c.isspace() or c in "/\\@?#" for c in name):
        return None
    return name, int(port_text) if port_text is not None else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` names are answered (None: any) and which origins may change state."""

    def __init__(self, settings: ApiSettings) -> None:
        configured = settings.allowed_host_list()
        self.names: frozenset[str] | None
        if "*" in configured or (settings.auth_enabled() and not configured):
            # With keys a foreign page cannot act without one; a deployment behind its own
            # names needs no list unless it asks for one.
            self.names = None
        else:
            self.names = LOCAL_NAMES | {n.lower().rstrip(".") for n in configured}
        self.cors = frozenset(settings.cors_origin_list())

    def host_allowed(self, host: str | None) -> bool:
        """An HTTP/1.0 request without ``Host`` comes from no browser: nothing to rebind."""
        if self.names is None or host is None:
            return True
        parsed = split_host(host)
        if parsed is None:
            return False
        name = parsed[0]
        return _is_ip(name) or name.rstrip(".") in self.names or name in self.names

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """The API's own origin (same authority as ``Host``, or a name of API_ALLOWED_HOSTS:
        behind a proxy that rewrites ``Host`` the page's name is one of those) or one of
        ``CORS_ORIGINS``."""
        if "*" in self.cors or origin in self.cors:
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return False  # "null" (a sandboxed frame, a file) is nobody's origin
        named = self.names is not None and parts.hostname.lower() in self.names - LOCAL_NAMES
        if named or host is None:
            return named
        own = split_host(host)
        if own is None:
            return False
        given_port = port or _DEFAULT_PORTS[parts.scheme]
        own_port = own[1] or _DEFAULT_PORTS[parts.scheme]
        return parts.hostname.lower() == own[0] and given_port == own_port


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<x>+json``, whatever its parameters."""
    media = _media(content_type)
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() != "0"
    return _header(scope, b"transfer-encoding") is not None


class BrowserGuardMiddleware:
    """Answer 400 (Host), 403 (Origin) or 415 (Content-Type) before the app sees a request."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, error, detail = refusal
        # Host and Origin are the caller's text: logged by length, never echoed raw.
        logger.warning(
            "request refused reason=%s method=%s path=%s", error, scope.get("method"), scope["path"]
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": error, "detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _refusal(self, scope: Scope) -> tuple[int, str, Any] | None:
        host = _header(scope, b"host")
        vendor_call = str(scope.get("path", "")).startswith(VENDOR_CALLS)
        if not vendor_call and not self.policy.host_allowed(host):
            return (
                400,
                "host_not_allowed",
                [
                    {
                        "field": "Host",
                        "message": "this API answers only to localhost, IP addresses and the "
                        "names in API_ALLOWED_HOSTS (a guard against DNS rebinding)",
                    }
                ],
            )
        if scope.get("method", "GET") not in STATE_CHANGING:
            return None
        origin = _header(scope, b"origin")
        if origin is not None and not self.policy.origin_allowed(origin.strip(), host):
            return (
                403,
                "origin_not_allowed",
                [
                    {
                        "field": "Origin",
                        "message": "a page of another origin may not change anything here "
                        "(add it to CORS_ORIGINS to allow it)",
                    }
                ],
            )
        content_type = _header(scope, b"content-type")
        if vendor_call or (content_type is None and not _has_body(scope)):
            return None  # a vendor's signed call, or nothing sent a form could have forged
        other = OTHER_BODIES.get(str(scope.get("path", "")), frozenset())
        if content_type is not None and _media(content_type) in other:
            return None
        if content_type is None or not is_json(content_type):
            got = "none" if content_type is None else content_type.split(";", 1)[0].strip()[:50]
            return (
                415,
                "unsupported_media_type",
                [
                    {
                        "field": "Content-Type",
                        "message": f"must be application/json (got {got!r}): form and text "
                        "bodies are refused, a page on another site can send those unasked",
                    }
                ],
            )
        return None


# The answers every route may give from this layer, in the OpenAPI document.
_ERROR_REF = "#/components/schemas/ErrorBody"
_GUARD_DESCRIPTIONS = {
    400: "Malformed JSON, not JSON, a bad parameter, or a Host this API does not answer to",
    403: "A valid key without the role this operation needs, or a page of another origin",
    415: "A state-changing request whose body is not application/json (text/csv on "
    "POST /jobs/bulk)",
}


def document_guards(app: FastAPI) -> None:
    """Add the guard's answers to every operation of the app's OpenAPI document (403 and 415 to
    the state-changing ones), the way the routes' own error answers are described."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for operations in document.get("paths", {}).values():
            for method, operation in operations.items():
                codes = [400, 403, 415] if method.upper() in STATE_CHANGING else [400]
                responses = operation.setdefault("responses", {})
                for code in codes:
                    responses.setdefault(
                        str(code),
                        {
                            "description": _GUARD_DESCRIPTIONS[code],
                            "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
                        },
                    )
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
