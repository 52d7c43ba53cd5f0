"""``/health``: is the API able to accept jobs right now (public, no auth)."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api import queries
from services.api.schemas import HealthView, error_responses
from services.api.state import ApiState, State

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthView,
    responses={
        # Public, but the body limit and the text check still apply to it.
        **error_responses(413, 422),
        503: {"model": HealthView, "description": "A dependency is failing"},
    },
)
async def health(state: State) -> JSONResponse:
    """Kafka, PostgreSQL, a live instance per stage, ComfyUI; 503 names the failing check."""
    settings = state.settings
    timeout = settings.health_timeout_s
    kafka, database = await asyncio.gather(state.producer.check(timeout), _database(state, timeout))
    checks = {"kafka": kafka, "database": database}
    if settings.stage_list():
        checks["stages"] = await _stages(state, timeout) if database == "ok" else "unknown"
    if settings.comfyui_api_url:
        checks["comfyui"] = await _comfyui(settings.comfyui_api_url, timeout)
    healthy = all(v == "ok" for v in checks.values())
    view = HealthView(status="healthy" if healthy else "unhealthy", checks=checks)
    return JSONResponse(view.model_dump(), status_code=200 if healthy else 503)


async def _stages(state: ApiState, timeout: float) -> str:
    try:
        live = await asyncio.wait_for(
            queries.live_services(state.pool, state.settings.health_stale_s), timeout + 1
        )
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"
    missing = [s for s in state.settings.stage_list() if s not in live]
    return f"no live instance: {', '.join(missing)}" if missing else "ok"


async def _comfyui(urls: str, timeout: float) -> str:
    """Any backend of the pool answering /system_stats is enough to render."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        for url in (u.strip() for u in urls.split(",") if u.strip()):
            try:
                if (await client.get(f"{url.rstrip('/')}/system_stats")).status_code == 200:
                    return "ok"
            except httpx.HTTPError:
                continue
    return "unreachable"


async def _database(state: ApiState, timeout: float) -> str:
    try:
        await asyncio.wait_for(queries.ping(state.pool, timeout), timeout + 1)
    except Exception as exc:
        # The class name only: driver messages can carry hosts and user names.
        return f"unavailable ({type(exc).__name__})"
    return "ok"
