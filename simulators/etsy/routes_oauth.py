"""Etsy's token endpoint, ``POST /v3/public/oauth/token`` (:mod:`simulators.etsy.oauth`)."""

from __future__ import annotations

import logging
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.common import error_json
from simulators.etsy.deps import Sim
from simulators.etsy.errors import oauth_error
from simulators.etsy.middleware import TOKEN_PATH
from simulators.etsy.oauth import OAuthError

logger = logging.getLogger(__name__)

router = APIRouter()


@router.post(TOKEN_PATH)
async def token(request: Request, sim: Sim) -> Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return error_json(
            400,
            {
                "error": "invalid_request",
                "error_description": "the body must be application/x-www-form-urlencoded",
            },
        )
    raw = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
    try:
        answer = sim.oauth.refresh_grant(form)
    except OAuthError as exc:
        logger.info("token refused error=%s reason=%s", exc.error, exc.description)
        return oauth_error(exc)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})
