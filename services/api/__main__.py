"""``python -m services.api``: migrate the database, then serve the API until SIGTERM/Ctrl+C."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import Any

import psycopg
import uvicorn
from fastapi import FastAPI

from services.api.app import create_app
from services.api.connections import head_deadline_protocol
from services.api.settings import ApiSettings
from shared.platform import tracing
from shared.platform.db import migrate
from shared.platform.errors import ConfigError
from shared.platform.httpserver import QuietServer
from shared.platform.lifecycle import bind_to_parent, watch_parent
from shared.platform.logs import setup_logging
from shared.platform.memory import settle_after_startup
from shared.platform.settings import load_settings

logger = logging.getLogger("services.api")


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def server_config(app: FastAPI, settings: ApiSettings, **overrides: Any) -> uvicorn.Config:
    """How uvicorn serves the API (``overrides``: the tests' own host, port, shutdown)."""
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,  # keep setup_logging's format
        "timeout_graceful_shutdown": 30,
        "lifespan": "on",
        # Past this many connections and requests at once, a new request gets a 503 at once
        # rather than a share of an exhausted process (its pool, its memory).
        "limit_concurrency": settings.api_limit_concurrency,
        # A connection must send its request's head in time (slowloris; services/api/connections).
        "http": head_deadline_protocol(settings.api_head_timeout_s),
        **overrides,
    }
    return uvicorn.Config(app, **options)


def main() -> int:
    """Run the API; returns the process exit code (2 = invalid configuration)."""
    setup_logging("api")
    tracing.setup("api")
    bind_to_parent()
    watch_parent()
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it
    # found; this one makes that an exit 0 instead of death by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    try:
        settings = load_settings(ApiSettings)
    except ConfigError as exc:
        logger.error("%s", exc.message)
        return 2
    try:
        migrate(settings.url)
    except psycopg.OperationalError as exc:
        # The driver's first line names host and port, never the password.
        logger.error("database unreachable error=%s", str(exc).splitlines()[0] if str(exc) else "")
        return 1
    config = server_config(create_app(settings), settings)
    settle_after_startup()
    # uvicorn turns SIGTERM/SIGINT into a graceful stop: no new connections, in-flight
    # requests finish, then the lifespan flushes the producer and closes the pool.
    QuietServer(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
