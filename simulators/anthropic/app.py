"""``create_app``: the Anthropic simulator's wiring. What it simulates is described in
:mod:`simulators.anthropic`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulators.anthropic.errors import ANTHROPIC_FAULT_STATUSES, fault
from simulators.anthropic.routes import router
from simulators.anthropic.settings import AnthropicSettings
from simulators.anthropic.state import AnthropicSim
from simulators.common import Knobs, SimControl, SlidingWindowLimiter, install_faults, sim_router


def create_app(knobs: Knobs | None = None, *, rpm: int | None = None) -> FastAPI:
    """The simulator app; ``rpm`` (default ``SIM_ANTHROPIC_RPM``) limits requests per API key."""
    if knobs is None:
        knobs = Knobs.from_env("anthropic")
        knobs.fault_statuses = ANTHROPIC_FAULT_STATUSES
    settings = AnthropicSettings.load()
    rpm = settings.rpm if rpm is None else rpm
    sim = AnthropicSim(
        limiter=SlidingWindowLimiter(rpm, 60.0) if rpm > 0 else None,
        valid_keys=settings.key_digests(),
        models=settings.model_table(),
        refuse_marker=settings.refuse_marker,
        ttft_ms=settings.ttft_ms,
        output_tokens_per_s=settings.output_tokens_per_s,
    )
    app = FastAPI(title="Anthropic Messages API simulator")
    app.state.sim = sim
    install_faults(app, knobs, fault)

    async def http_error(_request: Request, exc: Exception) -> Response:
        # Unknown routes and methods answer in Anthropic's format too, not FastAPI's.
        assert isinstance(exc, StarletteHTTPException)
        return sim.refuse(exc.status_code, str(exc.detail))

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.include_router(router)
    app.include_router(sim_router(SimControl(books=sim.books.as_dict)))
    return app
