"""What TikTok checks before any operation runs, in its order: the operation exists, the app
is known, the timestamp is recent, the signature is right, the app is within its QPS limit,
the access token is good, the shop cipher names the authorised shop, and the request carries
what the operation requires (``simulators/contracts/tiktok/contract.json``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from simulators.common import SlidingWindowLimiter
from simulators.common.bodies import BodyInvalid, multipart_body
from simulators.contracts.tiktok import Operation, bad_enums, find, missing
from simulators.tiktok.errors import tiktok_error
from simulators.tiktok.state import TikTokState

Next = Callable[[Request], Awaitable[Response]]
TOKEN_PREFIX = "/api/v2/token/"  # noqa: S105  # a path: auth.tiktok-shops.com, served on the same host here
UNSIGNED = ("sign", "access_token")


def signature(secret: str, path: str, query: list[tuple[str, str]], body: bytes) -> str:
    """TikTok's request signature ("Sign your API request"): HMAC-SHA256 under the app secret
    of secret + path + each query parameter but sign and access_token, sorted by name, as
    name+value + the body (none for multipart) + secret, in hex."""
    params = "".join(f"{k}{v}" for k, v in sorted(q for q in query if q[0] not in UNSIGNED))
    plain = secret.encode() + path.encode() + params.encode() + body + secret.encode()
    return hmac.new(secret.encode(), plain, hashlib.sha256).hexdigest()


async def multipart_parts(request: Request) -> dict[str, tuple[bytes, str | None]] | None:
    """A multipart body's parts (name -> content, file name), or None when it does not parse
    (the parser is the Etsy simulator's: the MIME rules are the same)."""
    try:
        return await multipart_body(request)
    except BodyInvalid:
        return None


def checks(
    state: TikTokState, limiter: SlidingWindowLimiter
) -> Callable[[Request, Next], Awaitable[Response]]:
    async def middleware(request: Request, call_next: Next) -> Response:
        path = request.url.path
        if path.startswith(("/_sim", TOKEN_PREFIX)):
            return await call_next(request)
        state.counts["requests"] += 1
        refused = await _refusal(state, limiter, request)
        if refused is not None:
            body = json.loads(bytes(refused.body))
            state.counts[f"refused:{body['code']}"] += 1
            return refused
        return await call_next(request)

    return middleware


async def _refusal(
    state: TikTokState, limiter: SlidingWindowLimiter, request: Request
) -> Response | None:
    settings = state.settings
    found = find(request.method, request.url.path)
    if found is None:
        return tiktok_error(
            "invalid_params", f"Path or method not found: {request.method} {request.url.path}", 404
        )
    op, params = found
    request.state.op, request.state.path_params = op, params
    query = request.query_params
    app_key = query.get("app_key", "")
    secret = state.secrets.get(app_key)
    if secret is None:
        return tiktok_error(
            "invalid_app_key", "Invalid credentials. The 'app_key' is invalid.", 401
        )
    try:
        ts = int(query.get("timestamp", ""))
    except ValueError:
        ts = 0
    if abs(time.time() - ts) > settings.timestamp_window_s:
        return tiktok_error(
            "invalid_timestamp",
            "Invalid timestamp. The request timestamp has expired or is malformed; it must be "
            "within 5 minutes of the server's time.",
            401,
        )
    content_type = request.headers.get("content-type", "")
    multipart = content_type.startswith("multipart/form-data")
    raw = await request.body()
    expected = signature(secret, request.url.path, query.multi_items(), b"" if multipart else raw)
    if not hmac.compare_digest(expected, query.get("sign", "")):
        return tiktok_error(
            "invalid_sign", "Invalid credentials. The 'sign' query parameter is invalid.", 401
        )
    wait = limiter.check(app_key)
    if wait is not None:
        state.counts["rate_limited"] += 1
        return tiktok_error(
            "too_many_requests",
            "Too many requests: the app's QPS limit is exceeded. Please retry later.",
            429,
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )
    state.accepted_at[app_key].append(time.time())
    return await _token_and_request(state, request, op, raw)


async def _token_and_request(
    state: TikTokState, request: Request, op: Operation, raw: bytes
) -> Response | None:
    """The access token, the shop cipher, then what the operation requires."""
    settings, query = state.settings, request.query_params
    app_key = query.get("app_key", "")
    content_type = request.headers.get("content-type", "")
    multipart = content_type.startswith("multipart/form-data")
    token = request.headers.get("x-tts-access-token", "")
    problem = state.check_access(app_key, token) if token else "invalid"
    if problem == "expired":
        return tiktok_error(
            "expired_access_token", "Expired credentials. The access token has expired.", 401
        )
    if problem is not None:
        return tiktok_error(
            "invalid_access_token", "Invalid credentials. The access token is invalid.", 401
        )
    if op.shop_cipher and not hmac.compare_digest(
        query.get("shop_cipher", ""), settings.shop_cipher
    ):
        return tiktok_error(
            "invalid_shop_cipher",
            "Invalid shop_cipher: it is required and must name a shop authorised to the app.",
        )
    lacking = [q for q in op.query_required if not query.get(q)]
    if multipart:
        form = await multipart_parts(request)
        if form is None:
            return tiktok_error(
                "invalid_params", "Invalid params: the multipart body could not be parsed."
            )
        request.state.form = form
        lacking += [f for f in op.multipart_required if f not in form]
    elif op.body_required or raw.strip():
        if not content_type.startswith("application/json"):
            return tiktok_error(
                "invalid_params", "Invalid params: content-type must be application/json."
            )
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return tiktok_error("invalid_params", "Invalid params: the body is not JSON.")
        lacking += missing(op, body)
        wrong = bad_enums(op, body)
        if wrong:
            return tiktok_error("invalid_params", f"Invalid params: {'; '.join(wrong)}")
        request.state.body = body
    if lacking:
        return tiktok_error("invalid_params", f"Invalid params: required {', '.join(lacking)}.")
    return None
