"""Garbage-collector settings for a long-running service process.

CPython's cyclic collector runs a young-generation pass every 700 net allocations of tracked
objects and, every 10 of those, an older one, up to a full pass that walks every tracked object:
the imported modules (the Anthropic SDK, pydantic's models, psycopg) included. A stage allocates
thousands of short-lived objects per job (JSON bodies, events, HTTP requests), so on the
pipeline benchmark the collector took 3.5-9 % of each service's CPU (``perf``). Nearly all that
is alive once startup is done stays alive for the life of the process: frozen, no pass walks it
again. A larger young generation makes the passes rarer; the cycles it may hold between two
passes are a few megabytes at most.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000


def settle_after_startup() -> None:
    """Collect once, freeze what startup left alive, and space out the collector's passes."""
    gc.collect()
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    logger.info("gc settled frozen=%d thresholds=%s", gc.get_freeze_count(), gc.get_threshold())
