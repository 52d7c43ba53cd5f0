"""``create_app``: the Etsy simulator's wiring (state, middleware, error handlers, routers).
What it simulates is described in :mod:`simulators.etsy`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulators.common import Knobs, SimControl, install_faults, sim_router
from simulators.common.bodies import BodyInvalid
from simulators.etsy import (
    routes_images,
    routes_listings,
    routes_oauth,
    routes_shops,
    routes_sim,
)
from simulators.etsy.books import books
from simulators.etsy.deps import EtsySim
from simulators.etsy.errors import etsy_error, fault, not_found
from simulators.etsy.middleware import key_and_limits
from simulators.etsy.settings import EtsySettings


def _control(sim: EtsySim) -> SimControl:
    return SimControl(
        books=lambda: {**books(sim.state, sim.limits), "oauth": sim.oauth.as_dict()},
        reset=sim.reset,
        limits=sim.limits.as_dict,
        set_limits=sim.limits.update,
        request_times=lambda: {k: list(a.accepted_at) for k, a in sim.state.apps.items()},
    )


async def _invalid(request: Request, exc: Exception) -> Response:
    return etsy_error(400, str(exc))


async def _missing(request: Request, exc: Exception) -> Response:
    return not_found(str(exc.args[0]))


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown routes and methods answer in Etsy's format too, not FastAPI's.
    assert isinstance(exc, StarletteHTTPException)
    return etsy_error(exc.status_code, str(exc.detail))


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("etsy")``)."""
    knobs = knobs or Knobs.from_env("etsy")
    sim = EtsySim.of(EtsySettings.load())
    app = FastAPI(title="Etsy simulator", docs_url=None, redoc_url=None)
    app.state.sim = sim
    app.state.oauth = sim.oauth
    install_faults(app, knobs, fault)
    # Added after install_faults, so it runs first: a request without a valid API key, over the
    # app's limits or refused by Etsy's document never reaches the fault injector.
    app.middleware("http")(key_and_limits(sim))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Etsy's own refusals, and a body the common parsers refuse.
    app.add_exception_handler(BodyInvalid, _invalid)
    # Anything an operation looks up and does not find (a listing, a profile) is Etsy's 404.
    app.add_exception_handler(LookupError, _missing)
    for router in (
        routes_listings.router,
        routes_images.router,
        routes_shops.router,
        routes_oauth.router,
        routes_sim.router,
    ):
        app.include_router(router)
    app.include_router(sim_router(_control(sim)))
    return app
