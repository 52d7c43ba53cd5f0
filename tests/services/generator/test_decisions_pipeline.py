"""Cancel and regenerate through the generator stage as it runs: the shared runner on the real
broker and database, the real Claude and ComfyUI clients against their simulators (one GPU).

The stage reads topics of its own (other tests share the broker), laid out as the registry lays
out the generator's: the priority bands and the seller's decisions, served first. What reached
the GPU is read from the ComfyUI simulator itself (``/history``, ``/queue``, ``/_sim/books``):
each job brings its own prompt, which names it, so a prompt on the GPU says whose it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from services.generator.handler import GeneratorHandler, seed_for_decision
from shared.adapters.storage import LocalImageStorage
from shared.adapters.store import cancellations
from shared.adapters.vendors.claude import ClaudeSettings, claude_client
from shared.adapters.vendors.comfyui import ComfyUIClient
from shared.contract.events import (
    DecisionAction,
    Event,
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    Priority,
    SellerDecision,
    SellerDecisionPayload,
    parse_event,
)
from shared.contract.topics import IMAGES_GENERATED, Stage
from shared.pipeline.runner import MessageContext, Output, RunnerSettings, StageRunner
from shared.platform.db import open_pool
from simulators.process import SimulatorProcess
from tests.support.infra import free_port, read_all, unique, until
from tests.support.kafka import create_topics, produce

CLAUDE_ENV = {
    "SIM_ANTHROPIC_FAILURE_RATE": "0",
    "SIM_ANTHROPIC_LATENCY_MS": "0",
    "SIM_ANTHROPIC_TIMEOUT_SHARE": "0",
    "SIM_ANTHROPIC_RPM": "0",
}
# One GPU, as a real ComfyUI process; each test sets the render time it needs.
logger = logging.getLogger(__name__)
COMFY_ENV = {"SIM_COMFYUI_WORKERS": "1", "SIM_COMFYUI_RENDER_MS": "300"}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, str]]:
    procs = {
        "claude": SimulatorProcess("anthropic", free_port(), env=CLAUDE_ENV),
        "comfyui": SimulatorProcess("comfyui", free_port(), env=COMFY_ENV),
    }
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.start(), procs.values()))
        yield {name: p.url for name, p in procs.items()}
    finally:
        for proc in procs.values():
            proc.stop()


@dataclass
class Gpu:
    """The ComfyUI simulator as the test reads it."""

    url: str

    async def get(self, path: str) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as http:
            resp = await http.get(path)
            resp.raise_for_status()
            return resp.json()

    async def pace(self, render_ms: float) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            (await http.post("/_sim/comfyui", json={"render_ms": render_ms})).raise_for_status()

    async def books(self) -> dict[str, int]:
        return dict(await self.get("/_sim/books"))

    async def started(self) -> int:
        """Prompts that have reached a GPU so far (finished, failed, interrupted or running)."""
        b = await self.books()
        return b["executed"] + b["failed"] + b["interrupted"] + b["running"]

    async def prompts_of(self, job_id: str) -> dict[str, list[str]]:
        """The job's prompts ComfyUI holds: {"running"|"pending"|"success"|"interrupted"|
        "error": [ids]}. The queue is read before the history, so a prompt finishing between
        the two reads is in both: its place in the history wins."""
        where: dict[str, str] = {}
        queue = await self.get("/queue")
        for state in ("running", "pending"):
            for item in queue[f"queue_{state}"]:
                if job_id in json.dumps(item[2]):
                    where[item[1]] = state
        for prompt_id, entry in (await self.get("/history")).items():
            if job_id in json.dumps(entry["prompt"][2]):
                events = [m[0] for m in entry["status"]["messages"]]
                if "execution_interrupted" in events:
                    where[prompt_id] = "interrupted"
                else:
                    where[prompt_id] = str(entry["status"]["status_str"])
        found: dict[str, list[str]] = {}
        for prompt_id, state in where.items():
            found.setdefault(state, []).append(prompt_id)
        return found


@dataclass
class Generator:
    """The generator stage on this test's topics."""

    bootstrap: str
    pool: AsyncConnectionPool
    stage: Stage
    bands: dict[Priority, str]
    decisions: str
    images: str
    runner: StageRunner[Any]
    gpu: Gpu

    async def send(self, topic: str, *events: Event) -> None:
        await asyncio.to_thread(produce, self.bootstrap, topic, list(events))

    async def images_of(self, job_id: str) -> list[ImageGenerated]:
        found = await asyncio.to_thread(read_all, self.bootstrap, self.images)
        events = [parse_event(m.value()) for m in found if m.key() == job_id.encode()]
        return [e for e in events if isinstance(e, ImageGenerated)]

    def handled(self, topic: str, count: int) -> bool:
        """Whether the stage is done with the first ``count`` messages of ``topic``."""
        _pending, position = self.runner.pending(topic, 0)
        return position is not None and position >= count

    async def cancelled(self, job_id: str) -> bool:
        return await cancellations.is_cancelled(self.pool, job_id)


def settings(bootstrap: str, prefix: str, max_in_flight: int) -> RunnerSettings:
    return RunnerSettings(
        kafka_bootstrap_servers=bootstrap,
        group_id_prefix=prefix,
        commit_interval_ms=100,
        heartbeat_interval_s=5.0,
        retry_attempts=0,
        fetch_wait_max_ms=100,
        max_in_flight=max_in_flight,
        shutdown_grace_s=1,
    )


@pytest.fixture
async def generator(
    request: pytest.FixtureRequest,
    sims: dict[str, str],
    pipeline_topics: str,
    migrated_db: str,
    tmp_path: Path,
) -> AsyncIterator[Generator]:
    """The stage; ``max_in_flight`` per band as the test parametrizes it (default 64)."""
    slots = int(getattr(request, "param", 64))
    bootstrap = pipeline_topics
    n = unique("decide")
    bands = {p: f"{n}.jobs.{p.value}" for p in Priority}
    decisions, images = f"{n}.decisions", f"{n}.images"
    # As the registry's generator: its bands, then the decisions (served first all the same).
    stage = Stage(
        "generator",
        (bands[Priority.HIGH], bands[Priority.NORMAL], bands[Priority.LOW], decisions),
        f"{n}.gen",
        served_first=(decisions,),
    )
    create_topics(bootstrap, [*bands.values(), decisions, images, stage.dlq], 1)
    pool = await open_pool(migrated_db, max_size=6)
    gpu = Gpu(sims["comfyui"])
    await gpu.pace(300)
    claude = claude_client(
        ClaudeSettings(
            claude_api_key=SecretStr("sk-ant-test-key"), anthropic_base_url=sims["claude"]
        )
    )
    comfy = ComfyUIClient(
        base_urls=[sims["comfyui"]], workflow=ComfyUIClient.load_workflow(None), timeout_s=120
    )
    handler = GeneratorHandler(
        briefs=claude,
        renderer=comfy,
        storage=LocalImageStorage(tmp_path),
        width=64,
        height=64,
        claims=pool,
        cancel_poll_s=0.2,
    )

    async def handle(event: JobRequested | SellerDecision, ctx: MessageContext) -> list[Output]:
        outputs = await handler(event, ctx)
        assert all(o.topic == IMAGES_GENERATED for o in outputs)
        return [Output(images, o.event) for o in outputs]

    runner: StageRunner[Any] = StageRunner(
        stage=stage,
        handler=handle,
        settings=settings(bootstrap, n, slots),
        accept=(JobRequested, SellerDecision),
    )
    task = asyncio.create_task(runner.run())
    try:
        yield Generator(bootstrap, pool, stage, bands, decisions, images, runner, gpu)
    finally:
        runner.request_stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        await handler.aclose()
        await comfy.aclose()
        await claude.aclose()
        await pool.close()
        await gpu.pace(300)


def job(count: int = 1, priority: Priority = Priority.NORMAL) -> JobRequested:
    job_id = unique("job")
    return JobRequested(
        job_id=job_id,
        producer="t",
        payload=JobRequestedPayload(
            theme="owls",
            style="ink",
            niche="birds",
            # Names the job on the GPU.
            prompt=f"an owl in ink, {job_id}",
            product_types=["mug"],
            count=count,
            priority=priority,
            review=True,
        ),
    )


def decide(
    job_id: str,
    action: DecisionAction,
    index: int | None = None,
    prompt: str | None = None,
) -> SellerDecision:
    return SellerDecision(
        job_id=job_id,
        producer="api",
        payload=SellerDecisionPayload(
            decision_id=uuid.uuid4(),
            action=action,
            image_index=index,
            prompt=prompt,
            decided_by="seller",
        ),
    )


async def test_a_regenerate_renders_generation_one_once_even_redelivered(
    generator: Generator,
) -> None:
    g = generator
    first = job(1)
    await g.send(g.bands[Priority.NORMAL], first)
    [made] = await until(lambda: g.images_of(first.job_id), 60, "the job's image")
    ask = decide(first.job_id, DecisionAction.REGENERATE, 0, f"a heron in ink, {first.job_id}")
    # Sent twice, as a producer retrying without idempotence (or a replay) would.
    await g.send(g.decisions, ask, ask)
    await until(lambda: g.handled(g.decisions, 2), 60, "both deliveries of the decision")
    found = [e for e in await g.images_of(first.job_id) if e.payload.generation == 1]
    assert len({e.event_id for e in found}) == 1  # a duplicate on the wire, recognisable
    again = found[0].payload
    assert again.seed == seed_for_decision(ask.payload.decision_id) != made.payload.seed
    assert again.prompt.startswith("a heron") and again.sha256 != made.payload.sha256
    on_gpu = await g.gpu.prompts_of(first.job_id)
    assert len(on_gpu["success"]) == 2  # the first render and one regenerate, not two


async def test_a_cancel_interrupts_the_jobs_render_on_the_gpu(generator: Generator) -> None:
    g = generator
    await g.gpu.pace(60_000)  # a render far longer than the test
    doomed = job(1)
    await g.send(g.bands[Priority.NORMAL], doomed)

    async def running() -> bool:
        return bool((await g.gpu.prompts_of(doomed.job_id)).get("running"))

    await until(running, 60, "the job's render to run on the GPU")
    before = await g.gpu.books()
    await g.send(g.decisions, decide(doomed.job_id, DecisionAction.CANCEL))

    async def interrupted() -> dict[str, list[str]] | None:
        found = await g.gpu.prompts_of(doomed.job_id)
        return found if "interrupted" in found else None

    found = await until(interrupted, 30, "the render to be interrupted")
    assert set(found) == {"interrupted"}, found  # not finished, nothing else sent
    after = await g.gpu.books()
    assert after["executed"] == before["executed"]
    assert after["interrupted"] == before["interrupted"] + 1
    # The request completes without output.
    await until(lambda: g.handled(g.bands[Priority.NORMAL], 1), 30, "the request to complete")
    assert await g.images_of(doomed.job_id) == []


async def test_a_cancel_skips_the_jobs_renders_queued_behind_others(generator: Generator) -> None:
    g = generator
    ahead, doomed = job(4), job(3)
    await g.send(g.bands[Priority.NORMAL], ahead, doomed)

    async def ahead_running() -> bool:
        return bool((await g.gpu.prompts_of(ahead.job_id)).get("running"))

    await until(ahead_running, 60, "the first job's renders on the GPU")
    sent_before = sum(map(len, (await g.gpu.prompts_of(doomed.job_id)).values()))
    await g.send(g.decisions, decide(doomed.job_id, DecisionAction.CANCEL))
    await until(lambda: g.cancelled(doomed.job_id), 30, "the cancel to be recorded")
    await until(lambda: g.handled(g.bands[Priority.NORMAL], 2), 60, "both requests to complete")
    made = await g.images_of(ahead.job_id)
    assert sorted(e.payload.image_index for e in made) == [0, 1, 2, 3]
    sent_after = sum(map(len, (await g.gpu.prompts_of(doomed.job_id)).values()))
    logger.info(
        "cancel of queued renders: sent before=%d after=%d of %d",
        sent_before, sent_after, doomed.payload.count,
    )  # fmt: skip
    # Its renders were waiting behind the first job's: none reached the GPU after the cancel.
    assert sent_before < doomed.payload.count
    assert sent_after == sent_before, (sent_before, await g.gpu.prompts_of(doomed.job_id))
    assert await g.images_of(doomed.job_id) == []


@pytest.mark.parametrize("generator", [2], indirect=True)
async def test_a_cancel_is_acted_on_ahead_of_a_deep_backlog(generator: Generator) -> None:
    """Forty low jobs, two worked on at a time (the rest wait in the runner's low band): the
    cancel is read from its own band at once, not behind the backlog."""
    g = generator
    backlog = [job(1, Priority.LOW) for _ in range(40)]
    await g.send(g.bands[Priority.LOW], *backlog)
    await until(lambda: g.gpu.started(), 60, "the backlog to reach the GPU")
    doomed = backlog[-1]  # the last in line
    await g.send(g.decisions, decide(doomed.job_id, DecisionAction.CANCEL))
    started_at_send = await g.gpu.started()  # the cancel is on the topic (acknowledged)
    await until(lambda: g.cancelled(doomed.job_id), 60, "the cancel to be recorded")
    started_at_effect = await g.gpu.started()
    behind = len(backlog) - started_at_effect
    logger.info(
        "cancel behind a backlog: started at produce=%d at effect=%d still waiting=%d",
        started_at_send, started_at_effect, behind,
    )  # fmt: skip
    # Renders that began between the cancel's produce and its effect: the one or two the GPU
    # was already taking, against the dozens still waiting in front of the cancelled job.
    assert started_at_effect - started_at_send <= 2, (started_at_send, started_at_effect)
    # (A backlog there was: at least half of it, on a loaded machine too.)
    assert behind >= len(backlog) // 2, behind
    # And the cancelled job, last in line, never reaches the GPU.
    await until(lambda: g.handled(g.bands[Priority.LOW], len(backlog)), 120, "the backlog")
    assert await g.gpu.prompts_of(doomed.job_id) == {}
    assert await g.images_of(doomed.job_id) == []
