"""The entry point shared by the stage services: settings, logging, clients, runner, signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from shared.contract.events import Event
from shared.contract.topics import Stage
from shared.pipeline.runner import Handler, RunnerSettings, StageRunner, install_signal_handlers
from shared.platform import tracing
from shared.platform.errors import ConfigError
from shared.platform.lifecycle import bind_to_parent, watch_parent
from shared.platform.logs import setup_logging
from shared.platform.memory import settle_after_startup
from shared.platform.settings import load_settings

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=RunnerSettings)


async def serve_stage(
    stage: Stage,
    settings: S,
    handler_factory: Callable[[S], AbstractAsyncContextManager[Handler[Any]]],
    *,
    accept: tuple[type[Event], ...],
    **runner_kwargs: Any,
) -> None:
    """Build the handler (with its clients), run the stage until SIGTERM/SIGINT, close clients."""
    async with handler_factory(settings) as handler:
        runner: StageRunner[Any] = StageRunner(
            stage=stage, handler=handler, settings=settings, accept=accept, **runner_kwargs
        )
        install_signal_handlers(runner)
        settle_after_startup()
        await runner.run()


def main(
    stage: Stage,
    settings_cls: type[S],
    handler_factory: Callable[[S], AbstractAsyncContextManager[Handler[Any]]],
    *,
    accept: tuple[type[Event], ...],
    **runner_kwargs: Any,
) -> None:
    """Process entry point: exit 2 with a clear message on bad configuration, else 0 on stop."""
    setup_logging(stage.name)
    tracing.setup(stage.name)
    bind_to_parent()
    watch_parent()
    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        logger.error("cannot start service=%s error=%s", stage.name, exc)
        sys.exit(2)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(
                serve_stage(stage, settings, handler_factory, accept=accept, **runner_kwargs)
            )
    except ConfigError as exc:  # found while building the handler (a vendor refused a setting)
        logger.error("cannot start service=%s error=%s", stage.name, exc)
        sys.exit(2)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (every round trip to the broker's client, the
    database and the vendors costs less CPU on it), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # not on Windows
        return None
    return uvloop.new_event_loop


@contextlib.asynccontextmanager
async def closing(*clients: Any) -> AsyncIterator[None]:
    """Close each client's ``aclose()`` on exit, even if building the handler failed later."""
    try:
        yield
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
