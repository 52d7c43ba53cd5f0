"""``create_app``: the TikTok Shop simulator's wiring. What it simulates is described in
:mod:`simulators.tiktok`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulators.common import Knobs, SimControl, SlidingWindowLimiter, install_faults, sim_router
from simulators.common.control import as_float, as_int, json_object
from simulators.tiktok import routes
from simulators.tiktok.errors import fault, tiktok_error
from simulators.tiktok.middleware import checks
from simulators.tiktok.settings import TikTokSimSettings
from simulators.tiktok.state import LIVE, TikTokState


def _own_hooks(state: TikTokState) -> APIRouter:
    router = APIRouter(prefix="/_sim")

    @router.post("/tokens/expire")
    async def expire() -> Response:
        """Every access token ends now (the next call with one: 105002)."""
        return JSONResponse({"expired": state.expire_access()})

    @router.post("/audit")
    async def audit(request: Request) -> Response:
        """``{"audit_s": 0.5, "failure_rate": 0.2, "failure_word": "..."}``, each optional."""
        body = await json_object(request)
        s = state.settings
        if "audit_s" in body:
            s.audit_s = as_float(body["audit_s"])
        if "failure_rate" in body:
            s.audit_failure_rate = as_float(body["failure_rate"])
        if "failure_word" in body:
            s.audit_failure_word = str(body["failure_word"])
        return JSONResponse(
            {
                "audit_s": s.audit_s,
                "failure_rate": s.audit_failure_rate,
                "failure_word": s.audit_failure_word,
            }
        )

    @router.post("/products/{product_id}")
    async def set_status(request: Request, product_id: str) -> Response:
        """What TikTok or the seller does to a product: ``{"status": "DELETED"}``, ..."""
        body = await json_object(request)
        product = state.products.get(product_id)
        wanted = str(body.get("status"))
        if product is None or wanted not in (*LIVE, "DELETED", "FREEZE"):
            return tiktok_error("invalid_params", f"no product {product_id} or bad status {wanted}")
        product.status = wanted
        return JSONResponse({"product_id": product_id, "status": wanted})

    return router


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("tiktok")``)."""
    knobs = knobs or Knobs.from_env("tiktok")
    settings = TikTokSimSettings.load()
    state = TikTokState(settings)
    limiter = SlidingWindowLimiter(settings.qps, 1.0)
    app = FastAPI(title="TikTok Shop simulator", docs_url=None, redoc_url=None)
    app.state.tiktok = state
    install_faults(app, knobs, fault)
    # Added after install_faults, so it runs first: a request TikTok refuses (signature, token,
    # QPS, contract) never reaches the fault injector.
    app.middleware("http")(checks(state, limiter))

    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return tiktok_error("invalid_params", str(exc.detail), exc.status_code)

    app.add_exception_handler(StarletteHTTPException, _http_error)

    def set_limits(values: object) -> None:
        if isinstance(values, dict) and "qps" in values:
            limiter.limit = settings.qps = as_int(values["qps"])

    app.include_router(routes.router)
    app.include_router(_own_hooks(state))
    app.include_router(
        sim_router(
            SimControl(
                books=state.books,
                reset=state.reset,
                limits=lambda: {"qps": limiter.limit},
                set_limits=set_limits,
                request_times=lambda: {k: list(v) for k, v in state.accepted_at.items()},
            )
        )
    )
    return app
