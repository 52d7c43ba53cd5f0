"""The FastAPI application: clients opened in the lifespan, routes, error handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.api.errors import install_error_handlers
from services.api.producer import JobProducer
from services.api.routes import dlq, health, jobs, ops, workers
from services.api.settings import ApiSettings
from services.api.state import ApiState
from shared.db import open_pool

logger = logging.getLogger(__name__)


def create_app(settings: ApiSettings) -> FastAPI:
    """A ready-to-serve app; Kafka and PostgreSQL clients live as long as its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = JobProducer(settings)
        try:
            pool = await open_pool(settings.url, max_size=settings.db_pool_max, name="api")
        except BaseException:
            await asyncio.to_thread(producer.close, 0)
            raise
        app.state.api = ApiState(
            settings=settings, producer=producer, pool=pool, keys=settings.key_list()
        )
        logger.info(
            "api ready bootstrap=%s auth=%s",
            settings.bootstrap,
            "on" if app.state.api.keys else "off",
        )
        try:
            yield
        finally:
            # Requests have finished (uvicorn waits for them); deliver anything still queued.
            await asyncio.to_thread(producer.close, settings.shutdown_flush_s)
            await pool.close()
            logger.info("api stopped")

    app = FastAPI(
        title="POD Engine API",
        version="1.0",
        description="Submit print-on-demand design jobs and follow them through the pipeline.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(dlq.router)
    app.include_router(ops.router)
    app.include_router(workers.router)
    return app
