"""The one entry point of every simulator: ``python -m simulators.<vendor> [--host H] [--port N]``
builds the vendor's app and serves it with uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

import uvicorn
from fastapi import FastAPI

from shared.platform.httpserver import QuietServer

logger = logging.getLogger(__name__)


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run ``app`` with uvicorn until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logger.info("simulator listening host=%s port=%d", host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    QuietServer(config).run()


def main(
    create_app: Callable[[], FastAPI],
    *,
    description: str,
    port: int,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse ``--host``/``--port`` (defaulting to the vendor's ``port``), build, serve."""
    # create_app lives in simulators.<vendor>.app: name the package the user runs.
    package = create_app.__module__.rpartition(".")[0]
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    args = parser.parse_args(argv)
    serve(create_app(), args.host, args.port)
