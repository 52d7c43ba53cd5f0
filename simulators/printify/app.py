"""``create_app``: the Printify simulator's wiring (state, middleware, error handlers, routers).
What it simulates is described in :mod:`simulators.printify`."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from simulators.common import Knobs, SimControl, install_faults, sim_router
from simulators.common.requestlog import RequestLog
from simulators.printify import (
    routes_catalog,
    routes_orders,
    routes_products,
    routes_publishing,
    routes_shops,
    routes_sim,
    routes_webhooks,
)
from simulators.printify.books import books
from simulators.printify.deps import PrintifySim
from simulators.printify.errors import (
    CODE_UNAUTHENTICATED,
    Invalid,
    NotFound,
    fault,
    not_found,
    printify_error,
    too_many,
    validation_error,
)
from simulators.printify.settings import PrintifySettings
from simulators.printify.validation import bearer

Next = Callable[[Request], Awaitable[Response]]


def _auth_and_rate_limit(sim: PrintifySim) -> Callable[[Request, Next], Awaitable[Response]]:
    async def middleware(request: Request, call_next: Next) -> Response:
        if request.url.path.startswith(("/_sim", "/mockup/")):
            # Test hooks, and the mockups: public image URLs, as on Printify's image servers.
            return await call_next(request)
        token = bearer(request)
        if token is None or (
            sim.tokens and not any(hmac.compare_digest(token, t) for t in sim.tokens)
        ):
            return printify_error(401, "Unauthenticated.", code=CODE_UNAUTHENTICATED)
        acct = sim.accounts.account(token)
        acct.requests += 1
        wait = sim.limits.requests.check(acct.key)
        if wait is None and request.url.path.startswith("/v1/catalog/"):
            # The catalog has its own, lower limit on top of the account's.
            wait = sim.limits.catalog.check(acct.key)
        if wait is not None:
            acct.rate_limited += 1
            return too_many(wait, "Request")
        acct.accepted_at.append(time.time())
        return await call_next(request)

    return middleware


def _control(sim: PrintifySim) -> SimControl:
    return SimControl(
        books=lambda: books(sim.accounts, sim.limits),
        reset=sim.reset,
        limits=sim.limits.as_dict,
        set_limits=sim.limits.update,
        request_times=lambda: {k: list(a.accepted_at) for k, a in sim.accounts.by_key.items()},
    )


async def _invalid(request: Request, exc: Exception) -> Response:
    return validation_error(str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return not_found(str(exc))


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("printify")``)."""
    knobs = knobs or Knobs.from_env("printify")
    settings = PrintifySettings.load()
    sim = PrintifySim.of(settings)
    app = FastAPI(title="Printify simulator", docs_url=None, redoc_url=None)
    app.state.sim = sim
    sim.webhooks.log = RequestLog()
    install_faults(app, knobs, fault, log=sim.webhooks.log)
    # Added after install_faults, so it runs first: a request without a token or over the
    # account's rate limit never reaches the fault injector, as at Printify.
    app.middleware("http")(_auth_and_rate_limit(sim))
    app.add_exception_handler(Invalid, _invalid)
    app.add_exception_handler(NotFound, _not_found)
    for router in (
        routes_shops.router,
        routes_catalog.router,
        routes_products.router,
        routes_publishing.router,
        routes_webhooks.router,
        routes_sim.router,
        routes_orders.router,
    ):
        app.include_router(router)
    app.include_router(sim_router(_control(sim)))
    return app
