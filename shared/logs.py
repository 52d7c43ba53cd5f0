"""Logging setup shared by every process: one line per record, key=value fields in the message."""

from __future__ import annotations

import faulthandler
import logging
import os
import sys


def setup_logging(service: str) -> None:
    """Configure the root logger once for a service process (level from ``LOG_LEVEL``)."""
    # A crash inside a C extension (librdkafka) then leaves a Python stack in the log.
    faulthandler.enable()
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s service={service} %(name)s %(message)s",
    )
    # Client libraries are chatty at INFO; their warnings still show.
    for noisy in ("httpx", "httpcore", "aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
