"""Hostile producers against the generator and the monitor, on the real broker and database.

Both stages run as they do in production (the shared runner, their real handlers, their DLQs),
on topics of their own so that no other test's events reach them; the images come from the
generator's handler with in-memory briefs and renders. The test plays the printify stage (it
produces the product of each image) and the hostile producers, who can write what another
system may (``job.requested``) and, for the content checks, the stages' output topics too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message
from psycopg_pool import AsyncConnectionPool

from services.generator.handler import GeneratorHandler
from services.monitor.dlq import parse_record
from services.monitor.handler import MonitorHandler
from shared.adapters.storage import LocalImageStorage
from shared.adapters.vendors.comfyui import RenderedImage
from shared.contract.events import (
    EVENT_TYPES,
    Event,
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    ProductPublished,
    ProductPublishedPayload,
    parse_event,
)
from shared.contract.topics import IMAGES_GENERATED, RETRY_LEVELS, Stage
from shared.pipeline.runner import MessageContext, Output, RunnerSettings, StageRunner
from shared.platform.db import open_pool
from tests.services.generator.test_handler import FakeBriefs, FakeRenderer
from tests.support.events import image, product
from tests.support.infra import read_all, unique
from tests.support.kafka import create_topics, produce


class HeldRenderer(FakeRenderer):
    """Never finishes a render whose prompt says "held": a job that stays unrendered."""

    async def render(self, *, prompt: str, seed: int, **kw: Any) -> RenderedImage:
        if "held" in prompt:
            self.calls.append({"seed": seed, "held": True})
            await asyncio.Event().wait()
        return await super().render(prompt=prompt, seed=seed, **kw)


@dataclass
class Pipeline:
    """The generator and the monitor running on the topics of one test."""

    bootstrap: str
    pool: AsyncConnectionPool
    jobs: str
    images: str
    products: str
    published: str
    generator: Stage
    monitor: Stage
    renderer: HeldRenderer
    briefs: FakeBriefs

    async def send(self, topic: str, *events: Event) -> None:
        await asyncio.to_thread(produce, self.bootstrap, topic, list(events))

    async def row(self, job_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM jobs WHERE job_id = %s", (job_id,))
            row = await cur.fetchone()
            if row is None or cur.description is None:
                return None
            return dict(zip([c.name for c in cur.description], row, strict=True))

    async def status(self, job_id: str) -> str | None:
        row = await self.row(job_id)
        return None if row is None else str(row["status"])

    async def log(self, job_id: str) -> list[tuple[str, str]]:
        """The job's log as SSE streams it: (type, message), in order."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT type, message FROM job_events WHERE job_id = %s ORDER BY seq", (job_id,)
            )
            return [(str(t), str(m)) for t, m in await cur.fetchall()]

    async def images_of(self, job_id: str) -> list[ImageGenerated]:
        found = await asyncio.to_thread(read_all, self.bootstrap, self.images)
        events = [parse_event(m.value()) for m in found if m.key() == job_id.encode()]
        return [e for e in events if isinstance(e, ImageGenerated)]

    async def dead_letters(self, stage: Stage, key: str) -> list[dict[str, str]]:
        """The headers of ``stage``'s dead letters of messages keyed ``key``."""
        found = await asyncio.to_thread(read_all, self.bootstrap, stage.dlq)
        return [_headers(m) for m in found if m.key() == key.encode()]


def _headers(msg: Message) -> dict[str, str]:
    pairs = msg.headers() or []
    assert isinstance(pairs, list)  # a consumed message's headers: (name, value) pairs
    return {k: v.decode(errors="replace") if isinstance(v, bytes) else "" for k, v in pairs}


async def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait until the coroutine function ``check`` returns something truthy (or fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def to_topic(
    handler: GeneratorHandler, topic: str
) -> Callable[[JobRequested, MessageContext], Any]:
    """The generator's handler with its images sent to this test's topic."""

    async def handle(event: JobRequested, ctx: MessageContext) -> list[Output]:
        outputs = await handler(event, ctx)
        assert all(o.topic == IMAGES_GENERATED for o in outputs)
        return [Output(topic, o.event) for o in outputs]

    return handle


def runner_settings(bootstrap: str, prefix: str) -> RunnerSettings:
    return RunnerSettings(
        kafka_bootstrap_servers=bootstrap,
        group_id_prefix=prefix,
        commit_interval_ms=100,
        heartbeat_interval_s=5.0,
        # An event that may only be early (a product before its image) is retried once, soon.
        retry_attempts=2,
        retry_base_delay_s=0.2,
        retry_max_delay_s=0.5,
        fetch_wait_max_ms=100,
        # A held render is given up at the end of the test.
        shutdown_grace_s=1,
    )


@pytest.fixture
async def pipeline(
    pipeline_topics: str, migrated_db: str, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    bootstrap = pipeline_topics
    n = unique("owner")
    jobs, images, products, published = (f"{n}.{t}" for t in ("jobs", "images", "products", "pub"))
    generator = Stage("generator", (jobs,), f"{n}.gen")
    monitor = Stage("monitor", (jobs, images, products, published, generator.dlq), f"{n}.mon")
    create_topics(
        bootstrap,
        [
            jobs,
            images,
            products,
            published,
            *(t for s in (generator, monitor) for t in (s.dlq, *s.retry_topics)),
        ],
        1,
    )
    assert len(monitor.retry_topics) == RETRY_LEVELS
    pool = await open_pool(migrated_db, max_size=6)
    renderer, briefs = HeldRenderer(), FakeBriefs()
    gen = GeneratorHandler(
        briefs=briefs,
        renderer=renderer,
        storage=LocalImageStorage(tmp_path),
        width=16,
        height=16,
        claims=pool,
    )
    runners: list[StageRunner[Any]] = [
        StageRunner(
            stage=generator,
            handler=to_topic(gen, images),
            settings=runner_settings(bootstrap, n),
            accept=(JobRequested,),
        ),
        StageRunner(
            stage=monitor,
            handler=MonitorHandler(pool),
            settings=runner_settings(bootstrap, n),
            accept=EVENT_TYPES,
            parse=parse_record,
        ),
    ]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        yield Pipeline(
            bootstrap, pool, jobs, images, products, published, generator, monitor, renderer, briefs
        )
    finally:
        for r in runners:
            r.request_stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await pool.close()


def request(theme: str = "owl", *, job_id: str | None = None, count: int = 1) -> JobRequested:
    return JobRequested(
        job_id=job_id or unique("job"),
        producer="other-system",
        payload=JobRequestedPayload(
            theme=theme, style="ink", niche="birds", product_types=["mug"], count=count
        ),
    )


async def complete(p: Pipeline, job: JobRequested) -> None:
    """Play the printify stage for ``job``: a product per image the generator made."""
    made = await eventually(
        lambda: _images(p, job.job_id, job.payload.count), 60, "the job's images"
    )
    await p.send(p.products, *(product(job, e.payload.image_index, "mug") for e in made))
    await eventually(lambda: _is(p, job.job_id, "completed"), 60, f"job {job.job_id} to complete")


async def _images(p: Pipeline, job_id: str, count: int) -> list[ImageGenerated] | None:
    made = await p.images_of(job_id)
    return made if len(made) >= count else None


async def _rendering(p: Pipeline) -> bool:
    return bool(p.renderer.calls)


async def _is(p: Pipeline, job_id: str, status: str) -> bool:
    return await p.status(job_id) == status


async def test_a_second_request_under_a_used_job_id_is_refused_and_the_first_job_kept(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    first = request("owl")
    await p.send(p.jobs, first)
    await eventually(lambda: p.images_of(first.job_id), 60, "the first request's image")

    # Another system sends its own request under the same id; and the first one again, as a
    # producer retrying without idempotence would (a new event id, the same request).
    hijack = request("skull", job_id=first.job_id)
    again = first.model_copy(update={"event_id": uuid.uuid4()})
    await p.send(p.jobs, hijack, again)

    async def refused() -> bool:
        by_gen = await p.dead_letters(p.generator, first.job_id)
        by_mon = await p.dead_letters(p.monitor, first.job_id)
        return bool(by_gen and by_mon)

    await eventually(refused, 60, "the hijacking request on both stages' DLQs")
    for stage in (p.generator, p.monitor):
        [letter] = await p.dead_letters(stage, first.job_id)
        assert "job id in use" in letter["pod.error.message"], (stage.name, letter)
        assert letter["pod.error.class"] == "JobIdInUse"
    await complete(p, first)

    # Rendered once, the first request's art only: neither the hijack nor the duplicate.
    prompts = [c["user_prompt"] for c in p.briefs.calls]
    themes = [c["theme"] for c in p.briefs.calls]
    assert themes == ["owl"] and prompts == [None], p.briefs.calls
    assert len(p.renderer.seeds) == 1
    assert len(await p.images_of(first.job_id)) == 1
    # The monitor's row and log are the first request's: one request, its image, its product.
    row = await p.row(first.job_id)
    assert row is not None
    assert (row["theme"], row["status"], row["error"]) == ("owl", "completed", None)
    assert [t for t, _ in await p.log(first.job_id)] == [
        "job.requested",
        "image.generated",
        "product.created",
    ]


async def test_forged_outputs_never_complete_a_job(pipeline: Pipeline) -> None:
    p = pipeline
    # A job whose render never finishes: no image of it is real.
    victim = request("held owl")
    await p.send(p.jobs, victim)
    await eventually(lambda: _is(p, victim.job_id, "queued"), 30, "the victim queued")
    await eventually(lambda: _rendering(p), 30, "the victim's render to start")

    far = image(victim, 0).model_copy(update={"event_id": uuid.uuid4()})
    far = far.model_copy(update={"payload": far.payload.model_copy(update={"image_index": 999})})
    unrendered = product(victim, 0, "mug")  # of an image that was never generated
    wrong_type = product(victim, 0, "hoodie")
    elsewhere = victim.derive(
        ProductPublished,
        ProductPublishedPayload(
            image_index=0, product_type="mug", product_id="p", shop_id="1", channel="etsy"
        ),
        producer="forger",
        key="pub",
    )
    ghost = image(request("ghost"), 0)  # of a job nobody requested
    await p.send(p.images, far, ghost)
    await p.send(p.products, unrendered, wrong_type)
    await p.send(p.published, elsewhere)

    expected = {
        far.event_id: "is outside job",
        ghost.event_id: "does not exist",
        unrendered.event_id: "was never generated",
        wrong_type.event_id: "did not ask for a hoodie",
        elsewhere.event_id: "does not publish to etsy",
    }

    async def all_refused() -> dict[uuid.UUID, str] | None:
        found = await asyncio.to_thread(read_all, p.bootstrap, p.monitor.dlq)
        reasons = {parse_event(m.value()).event_id: _headers(m) for m in found}
        got = {e: reasons[e]["pod.error.message"] for e in expected if e in reasons}
        return got if len(got) == len(expected) else None

    refused = await eventually(all_refused, 60, "every forged output on the monitor's DLQ")
    for event_id, reason in expected.items():
        assert reason in refused[event_id], (reason, refused[event_id])
    row = await p.row(victim.job_id)
    assert row is not None
    assert (row["status"], row["images_done"], row["products_done"]) == ("queued", 0, 0)
    assert [t for t, _ in await p.log(victim.job_id)] == ["job.requested"]
    assert await p.row(ghost.job_id) is None


async def test_an_event_id_claimed_under_another_job_does_not_block_the_real_one(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    victim = request("owl")
    # The forger reads the victim's request id (on /events) and works out the id the
    # generator will give its image; then claims that id first, under a job of its own.
    future = image(victim, 0).event_id
    squat = request("squat").model_copy(update={"event_id": future})
    await p.send(p.jobs, squat)
    await eventually(lambda: p.row(squat.job_id), 30, "the squatter's job folded")
    await p.send(p.jobs, victim)
    await complete(p, victim)

    made = await p.images_of(victim.job_id)
    assert [e.event_id for e in made] == [future]  # the very id the forger took
    assert [t for t, _ in await p.log(victim.job_id)] == [
        "job.requested",
        "image.generated",
        "product.created",
    ]
    assert await p.dead_letters(p.monitor, victim.job_id) == []
