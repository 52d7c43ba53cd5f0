"""What Etsy checks before any operation runs: the API key, the app's rate limits, the OAuth
token and the request against Etsy's published document."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from simulators.common import error_json
from simulators.etsy.deps import EtsySim, app_key
from simulators.etsy.errors import PROBLEM_STATUS, etsy_error, oauth_error
from simulators.etsy.oauth import OAuthError
from simulators.etsy.state import App

# Etsy's token endpoint (api.etsy.com/v3/public/oauth/token), served on the same host here.
OAUTH_PREFIX = "/v3/public/oauth/"
TOKEN_PATH = OAUTH_PREFIX + "token"  # a URL path

Next = Callable[[Request], Awaitable[Response]]


def api_key(request: Request, allowed: set[str] | None) -> str | JSONResponse:
    """The keystring of a valid ``x-api-key`` (``keystring:shared_secret``), or Etsy's 403."""
    raw = request.headers.get("x-api-key", "").strip()
    keystring, sep, secret = raw.partition(":")
    if not keystring:
        return etsy_error(
            403, "Invalid API key: should be in the format 'keystring:shared_secret'."
        )
    if not sep or not secret:
        return etsy_error(403, "Shared secret is required in x-api-key header.")
    if allowed is not None and raw not in allowed:
        return etsy_error(403, "Invalid API key")
    return keystring


def bearer(request: Request) -> str | None:
    """The bearer token of ``Authorization: Bearer <token>``, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _over_limit(sim: EtsySim, key: str, account: App) -> Response | None:
    """Etsy's 429 when the app is over this second's budget, then the day's; else None."""
    now = time.monotonic()
    wait = sim.limits.second.check(key, now)
    day = False
    if wait is None:
        wait = sim.limits.day.check(key, now)
        day = wait is not None
    if wait is None:
        return None
    if day:
        account.rate_limited_day += 1
    else:
        account.rate_limited += 1
    headers = sim.limits.headers(key, now)
    # Whole seconds (RFC 9110), rounded up so an obedient client is never early.
    headers["Retry-After"] = str(max(1, math.ceil(wait)))
    which = "per-day" if day else "per-second"
    return etsy_error(429, f"Rate limit exceeded ({which} limit)", headers)


async def _refusal(sim: EtsySim, request: Request) -> Response | None:
    """Etsy's answer to a request its token or its document refuses, else None (the token's
    user is left in ``request.state.etsy_user``)."""
    request.state.etsy_user = None
    scopes: tuple[str, ...] | None = None
    token = bearer(request)
    if token is not None:
        try:
            grant = sim.oauth.check_access(token)
        except OAuthError as exc:
            return oauth_error(exc)
        request.state.etsy_user, scopes = grant.user_id, grant.scopes
    checked = sim.checker.check_request(
        request.method,
        request.url.path,
        query=request.query_params.multi_items(),
        headers=request.headers,
        body=await request.body(),
        scopes=scopes,
    )
    kind = checked.first_kind()
    if kind is None:
        return None
    if kind == "scope":
        return error_json(
            403, {"error": "insufficient_scope", "error_description": "Insufficient scope"}
        )
    if kind == "auth":
        return etsy_error(401, "Invalid or missing OAuth access token (Authorization: Bearer)")
    return etsy_error(PROBLEM_STATUS[kind], checked.message())


def key_and_limits(sim: EtsySim) -> Callable[[Request, Next], Awaitable[Response]]:
    """The middleware: a request without a valid API key, over the app's limits or refused by
    Etsy's document never reaches an operation (nor the fault injector)."""

    async def middleware(request: Request, call_next: Next) -> Response:
        if request.url.path.startswith(("/_sim", OAUTH_PREFIX)):
            return await call_next(request)
        keystring = api_key(request, sim.allowed)
        if isinstance(keystring, Response):
            return keystring
        key = app_key(keystring)
        account = sim.state.app(key)
        account.requests += 1
        limited = _over_limit(sim, key, account)
        if limited is not None:
            return limited
        account.accepted_at.append(time.time())
        refused = await _refusal(sim, request)
        if refused is not None:
            account.refused += 1
            refused.headers.update(sim.limits.headers(key, time.monotonic()))
            return refused
        response = await call_next(request)
        response.headers.update(sim.limits.headers(key, time.monotonic()))
        return response

    return middleware
