"""``create_app``: the ComfyUI simulator's wiring (state, its GPUs' workers, the proxy's
login, fault answers, routers). What it simulates is described in :mod:`simulators.comfyui`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import Response

from simulators.comfyui import routes_prompt, routes_sim, routes_system, routes_ws
from simulators.comfyui.auth import BasicAuthProxy
from simulators.comfyui.settings import ComfySettings
from simulators.comfyui.state import ComfyConfig, SimState
from simulators.comfyui.validation import error
from simulators.common import Knobs, SimControl, error_json, install_faults, sim_router
from simulators.common.requestlog import RequestLog


def _fault(request: Request, status: int) -> Response:
    """An injected failure the way ComfyUI's aiohttp server answers it."""
    headers = {"Retry-After": "1"} if status == 429 else None
    body: dict[str, object] = {
        "error": error("server_error", f"{status}: simulated failure", request.url.path),
        "node_errors": {},
    }
    return error_json(status, body, headers)


def create_app(knobs: Knobs | None = None, config: ComfyConfig | None = None) -> FastAPI:
    """Build the simulator app (fault knobs from ``SIM_COMFYUI_*`` unless given)."""
    knobs = knobs or Knobs.from_env("comfyui")
    settings = ComfySettings.load()
    sim = SimState(config or settings.config(), knobs.rng, settings.folders())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(sim.worker(i)) for i in range(sim.config.workers)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(title="ComfyUI simulator", lifespan=lifespan)
    app.state.sim = sim
    if settings.basic_auth:
        app.add_middleware(BasicAuthProxy, credentials=settings.basic_auth)
    sim.log = RequestLog()
    install_faults(app, knobs, _fault, exempt_prefixes=("/_sim", "/ws"), log=sim.log)
    for router in (
        routes_prompt.router,
        routes_system.router,
        routes_ws.router,
        routes_sim.router,
    ):
        app.include_router(router)
    app.include_router(sim_router(SimControl(books=lambda: routes_sim.books(sim))))
    return app
