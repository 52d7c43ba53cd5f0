"""The API served for real: uvicorn on a free port in a background thread, real Kafka and DB."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from services.api.__main__ import server_config
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.platform.db import open_pool
from tests.support.infra import free_port, wait_for

API_KEY = "pod-test-key-3f9c2a71e5b04d8c"
OTHER_KEY = "pod-other-key-b71d0e9a42c6f315"
ADMIN_KEY = "pod-admin-key-5e0c8d17a9b24f63"


@contextmanager
def serve(**overrides: Any) -> Iterator[httpx.Client]:
    """Run the API with these settings until the block ends; yield a client bound to it."""
    with serve_app(**overrides) as (client, _):
        yield client


@contextmanager
def serve_app(**overrides: Any) -> Iterator[tuple[httpx.Client, FastAPI]]:
    """As :func:`serve`, and the app (whose ``state.api`` the lifespan fills)."""
    # These tests run the API alone: no stage instances, no ComfyUI to require.
    settings = ApiSettings(**{"health_stages": "", "comfyui_api_url": None, **overrides})
    port = free_port()
    app = create_app(settings)
    config = server_config(
        app, settings, host="127.0.0.1", port=port, timeout_graceful_shutdown=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    try:
        # A failed lifespan ends run() at once: stop waiting then, not at the deadline.
        wait_for(lambda: server.started or not thread.is_alive(), 30, "the API to start")
        assert server.started, "the API failed to start (see the log above)"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, app
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the API did not shut down within 30 s"


@pytest.fixture(scope="module")
def api(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    """The API without authentication."""
    with serve(kafka_bootstrap_servers=pipeline_topics, database_url=migrated_db) as client:
        yield client


@pytest.fixture(scope="module")
def api_auth(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    """The API with two bearer keys configured."""
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_keys=f"{API_KEY}, {OTHER_KEY}",
    ) as client:
        yield client


@pytest.fixture(scope="module")
def api_roles(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    """The API with one normal key (API_KEY) and one admin key (ADMIN_KEY)."""
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_keys=API_KEY,
        admin_api_keys=ADMIN_KEY,
    ) as client:
        yield client


# A second owner's key, beside API_KEY: the seller's decisions are the job's owner's.
SECOND_KEY = "pod-second-key-0c9e3a5b71d24f68"


@pytest.fixture(scope="module")
def roles_api(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    """An API with two owners' keys and an admin key (the seller's decisions)."""
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_keys=f"{API_KEY}, {SECOND_KEY}",
        admin_api_keys=ADMIN_KEY,
    ) as client:
        yield client


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    """A connection pool on the session's test database."""
    p = await open_pool(migrated_db, max_size=4)
    try:
        yield p
    finally:
        await p.close()
