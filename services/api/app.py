"""The FastAPI application: clients opened in the lifespan, routes, error handlers, guards."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from psycopg import Error as DbError
from psycopg_pool import AsyncConnectionPool

from services.api import labels
from services.api.auth import KeyRing, authenticate
from services.api.errors import install_error_handlers
from services.api.feed import EventFeed, StreamLimits
from services.api.guards import BrowserGuardMiddleware, HostPolicy, document_guards
from services.api.limits import BodyLimitMiddleware
from services.api.producer import JobProducer
from services.api.routes import (
    bulk,
    dlq,
    doctor,
    events,
    health,
    jobs,
    listings,
    ops,
    review,
    sales,
    topics,
    webhooks,
    workers,
)
from services.api.routes.ui import add_ui
from services.api.settings import ApiSettings
from services.api.state import ApiState
from services.api.text import reject_unsafe_params
from shared.pipeline.asyncapi import render_asyncapi
from shared.platform.db import open_pool

logger = logging.getLogger(__name__)


def create_app(settings: ApiSettings) -> FastAPI:
    """A ready-to-serve app; Kafka and PostgreSQL clients live as long as its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = JobProducer(settings)
        try:
            pool = await open_pool(
                settings.url,
                max_size=settings.db_pool_max,
                name="api",
                acquire_timeout=settings.db_acquire_timeout_s,
                statement_timeout_s=settings.db_statement_timeout_s,
            )
        except BaseException:
            await asyncio.to_thread(producer.close, 0)
            raise
        try:
            secret = await _label_secret(settings, pool)
        except BaseException:
            await asyncio.to_thread(producer.close, 0)
            await pool.close()
            raise
        app.state.keyring = keys = KeyRing.from_settings(settings, secret)
        feed = EventFeed(settings.url)
        feed.start()
        app.state.api = state = ApiState(
            settings=settings,
            producer=producer,
            pool=pool,
            feed=feed,
            streams=StreamLimits(
                total=settings.sse_max_streams, per_caller=settings.sse_max_streams_per_caller
            ),
            stream_reads=asyncio.Semaphore(max(1, settings.db_pool_max // 2)),
        )
        # Counts only: the keys themselves are never logged.
        logger.info(
            "api ready bootstrap=%s auth=%s keys=%d admin_keys=%d max_body_bytes=%d",
            settings.bootstrap,
            "on" if keys.enabled else "off",
            len(keys.keys),
            len(keys.admin_keys),
            settings.max_body_bytes,
        )
        try:
            yield
        finally:
            # Requests have finished (uvicorn waits for them); deliver anything still queued.
            await asyncio.to_thread(producer.close, settings.shutdown_flush_s)
            await asyncio.to_thread(state.close)
            await state.aclose()
            await feed.close()
            await pool.close()
            logger.info("api stopped")

    app = FastAPI(
        title="POD Engine API",
        version="1.0",
        description="Submit print-on-demand design jobs and follow them through the pipeline.",
        lifespan=lifespan,
        # Served below behind authenticate(): with keys configured the schema is not public.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Path and query parameters of every route: no NUL, no lone surrogate (a 422).
        dependencies=[Depends(reject_unsafe_params)],
    )
    install_error_handlers(app)
    # Inside the body limit (it reads nothing, so a body too large is a 413 whatever its type):
    # a foreign Host, Origin or form body is refused before any route runs.
    app.add_middleware(BrowserGuardMiddleware, policy=HostPolicy(settings))
    # Outermost of the app's own layers: an oversized body is refused before anything reads it.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    origins = settings.cors_origin_list()
    if origins:
        # Outside the body limit: a preflight is answered before anything else runs, and an
        # error answer still carries the headers a browser needs to read it.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    _add_docs(app)
    # /jobs/bulk before /jobs/{job_id}.
    for module in (health, bulk, jobs, review, listings, events, dlq, ops, workers, topics,
                   doctor, webhooks, sales):  # fmt: skip
        app.include_router(module.router)
    add_ui(app)
    document_guards(app)
    return app


async def _label_secret(settings: ApiSettings, pool: AsyncConnectionPool) -> bytes:
    """The deployment's label secret, once legacy labels are replaced (services/api/labels.py).

    Without keys the API may start while PostgreSQL is down (nothing to label yet); with keys
    it cannot name its callers without the secret, so it does not start."""
    try:
        secret = await labels.load_secret(pool)
        await labels.relabel(pool, settings, secret)
    except (DbError, OSError) as exc:
        if settings.auth_enabled():
            raise
        logger.warning("caller labels not checked error=%s", type(exc).__name__)
        return b""
    return secret


# Swagger UI's and ReDoc's files, from the fastapi-offline wheel: nothing the API serves loads
# from a CDN (FastAPI's defaults do), so /docs works on a network without one.
DOCS_ASSETS = "/docs-assets"


def _add_docs(app: FastAPI) -> None:
    """``/openapi.json``, ``/asyncapi.json``, ``/docs`` and ``/redoc``, open only to a valid key
    when auth is on;
    their scripts and styles under ``/docs-assets`` (public: the same files for everyone)."""
    guarded = [Depends(authenticate)]
    assets = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # The topics and events (AsyncAPI 3.0, docs/asyncapi.yaml), rendered once on first use.
    asyncapi_document = functools.cache(render_asyncapi)

    @app.get("/asyncapi.json", include_in_schema=False, dependencies=guarded)
    async def asyncapi() -> JSONResponse:
        return JSONResponse(asyncapi_document())

    # The pages load /openapi.json from the browser, which sends no bearer key: with auth on
    # they are for a client that adds the header (or fetch the schema with curl instead).
    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            # Swagger UI would fetch a badge from validator.swagger.io for every schema.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False, dependencies=guarded)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
