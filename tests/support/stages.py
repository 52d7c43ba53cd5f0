"""A tiny stage used to test the runner: each job becomes one image event.

Runnable as a process (``python -m tests.support.stages``) for the crash and shutdown tests.
The job's ``niche`` may say ``delay:<ms>`` to make its handling take that long.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable

from shared.contract.events import ImageGenerated, ImageGeneratedPayload, JobRequested, JobRouting
from shared.contract.topics import HEARTBEATS, Stage
from shared.pipeline.runner import (
    MessageContext,
    Output,
    RunnerSettings,
    StageRunner,
    install_signal_handlers,
)
from shared.platform.settings import load_settings
from tests.support.kafka import create_topics


def echo_stage(name: str) -> Stage:
    """A stage with its own input and DLQ topics, so tests do not share data."""
    return Stage(name, (f"{name}.in",), name)


def output_topic(name: str) -> str:
    return f"{name}.out"


def create_stage_topics(bootstrap: str, stage: Stage, partitions: int) -> None:
    """The topics a test stage reads and writes: inputs, delay topics, output, DLQ, heartbeats."""
    create_topics(
        bootstrap,
        [*stage.inputs, *stage.retry_topics, output_topic(stage.name), stage.dlq, HEARTBEATS],
        partitions,
    )


def make_echo_handler(
    name: str,
) -> Callable[[JobRequested, MessageContext], Awaitable[list[Output]]]:
    """Handler: one ImageGenerated per JobRequested, after the delay the niche asks for."""

    async def handle(event: JobRequested, ctx: MessageContext) -> list[Output]:
        niche = event.payload.niche
        if niche.startswith("delay:"):
            await asyncio.sleep(int(niche.split(":", 1)[1]) / 1000)
        payload = ImageGeneratedPayload(
            image_index=0,
            image_count=1,
            sha256="0" * 64,
            uri=f"mem://{event.job_id}",
            width=1,
            height=1,
            prompt=event.payload.theme,
            seed=ctx.offset,
            title=event.payload.theme,
            description="",
            routing=JobRouting(product_types=event.payload.product_types),
        )
        out = event.derive(ImageGenerated, payload, producer=name, key="image:0")
        return [Output(output_topic(name), out)]

    return handle


async def _main(name: str) -> None:
    settings = load_settings(RunnerSettings)
    runner: StageRunner[JobRequested] = StageRunner(
        stage=echo_stage(name),
        handler=make_echo_handler(name),
        settings=settings,
        accept=(JobRequested,),
    )
    install_signal_handlers(runner)
    await runner.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_main(os.environ.get("ECHO_STAGE", sys.argv[1] if len(sys.argv) > 1 else "echo")))
