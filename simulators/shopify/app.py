"""``create_app``: the Shopify simulator's wiring (state, fault answers, routers). What it
simulates is described in :mod:`simulators.shopify`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from simulators.common import Knobs, SimControl, error_json, install_faults, sim_router
from simulators.shopify import routes_graphql, routes_oauth, routes_sim
from simulators.shopify.books import books
from simulators.shopify.deps import ShopifySim
from simulators.shopify.settings import ShopifySettings


def _fault(_request: Request, status: int) -> Response:
    """An injected fault as Shopify answers one (its REST-style ``errors`` string)."""
    return error_json(
        status,
        {"errors": "Internal Server Error" if status >= 500 else "Too Many Requests"},
        {"Retry-After": "2.0"} if status == 429 else None,
    )


def _control(sim: ShopifySim) -> SimControl:
    return SimControl(
        books=lambda: books(sim.stores, sim.grants),
        # The limits are a test's setting that outlives a reset, as they always have here.
        reset=sim.reset,
        limits=lambda: sim.limits,
        set_limits=sim.set_limits,
    )


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("shopify")``)."""
    knobs = knobs or Knobs.from_env("shopify")
    sim = ShopifySim.of(ShopifySettings.load())
    app = FastAPI(title="Shopify simulator", docs_url=None, redoc_url=None)
    app.state.sim = sim
    install_faults(app, knobs, _fault)
    for router in (routes_oauth.router, routes_graphql.router, routes_sim.router):
        app.include_router(router)
    app.include_router(sim_router(_control(sim)))
    return app
