"""``POST /admin/oauth/access_token``: the client credentials grant of a Dev Dashboard app."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.shopify.deps import Sim, store_of
from simulators.shopify.state import Issued

router = APIRouter()


def _token_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


async def _form(request: Request) -> dict[str, str]:
    """The token request's parameters: form-encoded (Shopify's docs) or JSON (its libraries)."""
    raw = await request.body()
    if "json" in (request.headers.get("content-type") or ""):
        try:
            body = json.loads(raw)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return {k: v[-1] for k, v in parse_qs(raw.decode(errors="replace")).items()}


@router.post("/admin/oauth/access_token")
async def access_token(request: Request, sim: Sim) -> Response:
    form = await _form(request)
    if form.get("grant_type") != "client_credentials":
        return _token_error(
            "unsupported_grant_type", "The authorization grant type is not supported"
        )
    if not form.get("client_id") or not form.get("client_secret"):
        return _token_error("invalid_request", "client_id and client_secret are required")
    current = sim.app
    known = hmac.compare_digest(form["client_id"], current.client_id) and hmac.compare_digest(
        form["client_secret"], current.client_secret
    )
    if not known or not current.installed:
        return _token_error("invalid_client", "Client authentication failed")
    token = secrets.token_hex(16)
    sim.issued[token] = Issued(
        current.client_id, current.scopes, time.monotonic() + current.token_ttl_s
    )
    sim.grants[f"{current.client_id}@{store_of(request, sim).domain}"] += 1
    return JSONResponse(
        {
            "access_token": token,
            "scope": ",".join(sorted(current.scopes)),
            "expires_in": int(current.token_ttl_s),
        }
    )
