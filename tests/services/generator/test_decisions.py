"""The generator's part of the seller's decisions, on the real PostgreSQL: regenerate and cancel.

Briefs and renders are the in-memory fakes of test_handler (the broker and the simulators are
in test_decisions_pipeline); what the generator records and reads back is the real database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from services.generator.handler import GeneratorHandler, seed_for, seed_for_decision
from shared.adapters.storage import LocalImageStorage
from shared.adapters.store import cancellations
from shared.adapters.vendors.comfyui import RenderedImage
from shared.contract.events import (
    DecisionAction,
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    SellerDecision,
    SellerDecisionPayload,
)
from shared.pipeline.runner import MessageContext
from shared.platform.db import open_pool
from shared.platform.errors import InvalidEventError, PermanentError
from tests.services.generator.test_handler import FakeBriefs, FakeRenderer
from tests.support.infra import unique, until

CTX = MessageContext("jobs.requested.normal", 0, 7, 0, "test")
DECIDED = MessageContext("seller.decisions", 0, 3, 0, "test")


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(migrated_db, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


def make(
    tmp_path: Path,
    pool: AsyncConnectionPool,
    renderer: FakeRenderer | None = None,
    briefs: FakeBriefs | None = None,
) -> GeneratorHandler:
    return GeneratorHandler(
        briefs=briefs or FakeBriefs(),
        renderer=renderer or FakeRenderer(),
        storage=LocalImageStorage(tmp_path),
        width=32,
        height=32,
        claims=pool,
        cancel_poll_s=0.1,
    )


def request(count: int = 2, priority: str = "low") -> JobRequested:
    return JobRequested(
        job_id=unique("job"),
        producer="t",
        payload=JobRequestedPayload(
            theme="space cats",
            style="retro",
            niche="astronomy",
            product_types=["tshirt"],
            count=count,
            priority=priority,
            review=True,
        ),
    )


def decision(
    job_id: str,
    action: DecisionAction,
    *,
    index: int | None = None,
    generation: int = 0,
    prompt: str | None = None,
) -> SellerDecision:
    return SellerDecision(
        job_id=job_id,
        producer="api",
        payload=SellerDecisionPayload(
            decision_id=uuid.uuid4(),
            action=action,
            image_index=index,
            generation=generation,
            prompt=prompt,
            decided_by="seller@example.com",
        ),
    )


def images(outputs: Any) -> list[ImageGenerated]:
    found = [o.event for o in outputs]
    assert all(isinstance(e, ImageGenerated) for e in found)
    return found


async def test_a_regenerate_makes_the_next_generation_with_a_new_seed_and_the_edited_prompt(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    briefs, renderer = FakeBriefs(), FakeRenderer()
    gen = make(tmp_path, pool, renderer, briefs)
    job = request(2)
    first = images(await gen(job, CTX))
    ask = decision(job.job_id, DecisionAction.REGENERATE, index=1, prompt="a cat in a nebula")
    [again] = images(await gen(ask, DECIDED))

    was, now = first[1].payload, again.payload
    assert (now.image_index, now.generation, now.image_count) == (1, 1, 2)
    assert now.seed == seed_for_decision(ask.payload.decision_id) != was.seed
    assert now.prompt == "a cat in a nebula" != was.prompt
    assert now.negative_prompt == was.negative_prompt
    assert now.sha256 != was.sha256  # another render, stored beside the first
    # The job's routing comes from the generator's record of the request, not the decision.
    assert now.routing == job.payload.routing and now.routing.review
    # The GPU queue: the job's band (low) and place, as its first render.
    assert renderer.calls[-1]["band"] == 2
    assert renderer.calls[-1]["order"] == (
        -job.payload.rank,
        job.occurred_at.timestamp(),
        job.job_id,
        1,
    )
    # A new prompt, a new listing copy: one brief for this image, told the old title.
    assert briefs.calls[-1]["count"] == 1
    assert briefs.calls[-1]["user_prompt"] == "a cat in a nebula"
    assert briefs.calls[-1]["avoid"] == [was.title]
    assert (
        again.event_id == ask.derive(ImageGenerated, now, producer="g", key="image:1@g1").event_id
    )


async def test_a_regenerate_without_a_prompt_keeps_the_prompt_and_the_copy(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    briefs = FakeBriefs()
    gen = make(tmp_path, pool, briefs=briefs)
    job = request(1)
    [first] = images(await gen(job, CTX))
    [again] = images(await gen(decision(job.job_id, DecisionAction.REGENERATE, index=0), DECIDED))
    assert len(briefs.calls) == 1  # Claude was not asked again
    kept = ("prompt", "negative_prompt", "title", "description", "tags")
    assert again.payload.model_dump(include=set(kept)) == first.payload.model_dump(
        include=set(kept)
    )
    assert again.payload.seed != first.payload.seed
    assert again.payload.generation == 1


async def test_a_redelivered_regenerate_renders_once_and_makes_the_same_event(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    renderer = FakeRenderer()
    gen = make(tmp_path, pool, renderer)
    job = request(1)
    await gen(job, CTX)
    ask = decision(job.job_id, DecisionAction.REGENERATE, index=0, prompt="owl")
    [first] = images(await gen(ask, DECIDED))
    # The same decision again (a redelivery), through another instance with no memory of it.
    [second] = images(await make(tmp_path, pool, renderer)(ask, DECIDED))
    assert (second.event_id, second.payload) == (first.event_id, first.payload)
    assert renderer.seeds.count(seed_for_decision(ask.payload.decision_id)) == 1


async def test_a_regenerate_of_a_replaced_generation_does_nothing(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    renderer = FakeRenderer()
    gen = make(tmp_path, pool, renderer)
    job = request(1)
    await gen(job, CTX)
    await gen(decision(job.job_id, DecisionAction.REGENERATE, index=0), DECIDED)
    renders = len(renderer.seeds)
    # Another decision about generation 0, which generation 1 has replaced.
    late = decision(job.job_id, DecisionAction.REGENERATE, index=0, generation=0)
    assert await gen(late, DECIDED) == []
    assert len(renderer.seeds) == renders
    # Generation 1 may be regenerated: generation 2.
    [third] = images(
        await gen(decision(job.job_id, DecisionAction.REGENERATE, index=0, generation=1), DECIDED)
    )
    assert third.payload.generation == 2


async def test_a_regenerate_of_an_image_never_made_or_a_generation_never_seen_is_refused(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    gen = make(tmp_path, pool)
    job = request(1)
    with pytest.raises(PermanentError, match="never made by the generator"):
        await gen(decision(job.job_id, DecisionAction.REGENERATE, index=0), DECIDED)
    await gen(job, CTX)
    with pytest.raises(InvalidEventError, match="no generation 3"):
        await gen(decision(job.job_id, DecisionAction.REGENERATE, index=0, generation=3), DECIDED)


async def test_other_decisions_are_not_the_generators(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    renderer = FakeRenderer()
    gen = make(tmp_path, pool, renderer)
    job = request(1)
    await gen(job, CTX)
    for action in (DecisionAction.APPROVE, DecisionAction.REJECT):
        assert await gen(decision(job.job_id, action, index=0), DECIDED) == []
    assert len(renderer.calls) == 1


async def test_a_cancel_is_recorded_and_a_request_after_it_makes_nothing(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    briefs, renderer = FakeBriefs(), FakeRenderer()
    gen = make(tmp_path, pool, renderer, briefs)
    job = request(2)
    cancel = decision(job.job_id, DecisionAction.CANCEL)
    assert await gen(cancel, DECIDED) == []
    assert await cancellations.is_cancelled(pool, job.job_id)
    # The request arrives after its cancel (another topic), at another instance.
    assert await make(tmp_path, pool, renderer, briefs)(job, CTX) == []
    assert briefs.calls == [] and renderer.calls == []


class Held(FakeRenderer):
    """Renders of the job whose id is ``held`` wait until cancelled (as on a busy GPU)."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.waiting = 0
        self.stopped = 0

    async def render(self, *, prompt: str, seed: int, **kw: Any) -> RenderedImage:
        if kw.get("job_id") == self.held:
            self.calls.append({"seed": seed, **kw})
            self.waiting += 1
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.stopped += 1
                raise
        return await super().render(prompt=prompt, seed=seed, **kw)


async def test_a_cancel_stops_the_jobs_renders_and_nothing_of_it_is_handed_on(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    job = request(3)
    renderer = Held(job.job_id)
    gen = make(tmp_path, pool, renderer)
    working = asyncio.create_task(gen(job, CTX))
    await until(lambda: renderer.waiting == 3, 10, "the job's renders to wait for the GPU")
    assert await gen(decision(job.job_id, DecisionAction.CANCEL), DECIDED) == []
    assert await asyncio.wait_for(working, 10) == []  # the request completes, without output
    assert renderer.stopped == 3
    await gen.aclose()


async def test_a_cancel_read_by_another_instance_stops_the_renders_here(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    job = request(2)
    renderer = Held(job.job_id)
    here, there = make(tmp_path, pool, renderer), make(tmp_path, pool)
    working = asyncio.create_task(here(job, CTX))
    await until(lambda: renderer.waiting == 2, 10, "the job's renders to wait for the GPU")
    await there(decision(job.job_id, DecisionAction.CANCEL), DECIDED)
    assert await asyncio.wait_for(working, 10) == []
    assert renderer.stopped == 2
    await here.aclose()


async def test_a_regenerate_of_a_cancelled_job_does_nothing(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    renderer = FakeRenderer()
    gen = make(tmp_path, pool, renderer)
    job = request(1)
    await gen(job, CTX)
    await gen(decision(job.job_id, DecisionAction.CANCEL), DECIDED)
    assert await gen(decision(job.job_id, DecisionAction.REGENERATE, index=0), DECIDED) == []
    assert renderer.seeds == [seed_for(job.job_id, 0)]
