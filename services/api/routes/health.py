"""``/health``: is the API able to accept jobs right now (public, no auth)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api import queries
from services.api.schemas import HealthView
from services.api.state import ApiState, State

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthView,
    responses={503: {"model": HealthView, "description": "A dependency is failing"}},
)
async def health(state: State) -> JSONResponse:
    """Kafka and PostgreSQL reachability; 503 names the failing check."""
    timeout = state.settings.health_timeout_s
    kafka, database = await asyncio.gather(state.producer.check(timeout), _database(state, timeout))
    checks = {"kafka": kafka, "database": database}
    healthy = all(v == "ok" for v in checks.values())
    view = HealthView(status="healthy" if healthy else "unhealthy", checks=checks)
    return JSONResponse(view.model_dump(), status_code=200 if healthy else 503)


async def _database(state: ApiState, timeout: float) -> str:
    try:
        await asyncio.wait_for(queries.ping(state.pool, timeout), timeout + 1)
    except Exception as exc:
        # The class name only: driver messages can carry hosts and user names.
        return f"unavailable ({type(exc).__name__})"
    return "ok"
