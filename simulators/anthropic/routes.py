"""The Messages API's routes: ``POST /v1/messages``, ``GET /v1/models`` and
``GET /v1/models/{id}``."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.anthropic.errors import ERROR_MESSAGES, InvalidRequest, new_id
from simulators.anthropic.messages import build_message, cached_prefix, tokens
from simulators.anthropic.models import model_info
from simulators.anthropic.state import MIN_CACHEABLE_TOKENS, Sim, credential
from simulators.anthropic.validation import validate_body

router = APIRouter(prefix="/v1")


@router.post("/messages")
async def messages(request: Request, sim: Sim) -> Response:
    api_key = credential(request)
    if (refused := sim.unauthorized(api_key)) is not None:
        return refused
    if not request.headers.get("anthropic-version", "").strip():
        return sim.refuse(400, "anthropic-version: header is required")
    if sim.limiter is not None:
        wait = sim.limiter.check(api_key)
        if wait is not None:
            return sim.refuse(429, ERROR_MESSAGES[429], retry_after=wait)
    try:
        body = validate_body(json.loads(await request.body() or b"null"), sim.models)
    except json.JSONDecodeError:
        return sim.refuse(400, "body: the request body is not valid JSON")
    except InvalidRequest as exc:
        return sim.refuse(exc.status, exc.message)
    message = build_message(body, sim.refuse_marker)
    prefix = cached_prefix(body)
    if prefix is not None and tokens(prefix) >= MIN_CACHEABLE_TOKENS:
        usage, size = message["usage"], tokens(prefix)
        hit = sim.cache.use(api_key, body["model"], prefix)
        usage["cache_read_input_tokens" if hit else "cache_creation_input_tokens"] = size
        usage["input_tokens"] = max(0, usage["input_tokens"] - size)
    sim.books.requests += 1
    sim.books.input_tokens += message["usage"]["input_tokens"]
    sim.books.output_tokens += message["usage"]["output_tokens"]
    # Unstreamed, the whole answer comes once the model has written it.
    if (writing := sim.answer_seconds(message["usage"]["output_tokens"])) > 0:
        await asyncio.sleep(writing)
    return JSONResponse(message, headers={"request-id": new_id("req_")})


@router.get("/models")
async def list_models(request: Request, sim: Sim) -> Response:
    if (refused := sim.unauthorized(credential(request))) is not None:
        return refused
    data = [model_info(sim.models, m) for m in sim.models]
    return JSONResponse(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@router.get("/models/{model_id}")
async def get_model(request: Request, model_id: str, sim: Sim) -> Response:
    if (refused := sim.unauthorized(credential(request))) is not None:
        return refused
    if model_id not in sim.models:
        return sim.refuse(404, f"model: {model_id}")
    return JSONResponse(model_info(sim.models, model_id), headers={"request-id": new_id("req_")})
