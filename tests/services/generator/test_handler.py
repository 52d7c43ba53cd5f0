"""The generator handler without a broker: briefs and renders come from in-memory fakes."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from services.generator.handler import GeneratorHandler, seed_for
from services.generator.settings import GeneratorSettings
from shared.adapters.storage import LocalImageStorage
from shared.adapters.vendors.claude import CreativeBrief
from shared.adapters.vendors.comfyui import RenderedImage
from shared.contract.events import ImageGenerated, JobRequested, JobRequestedPayload, ProductType
from shared.contract.topics import IMAGES_GENERATED
from shared.pipeline.runner import MessageContext
from shared.platform.errors import InvalidEventError, PermanentError, RetryableError

CTX = MessageContext("jobs.requested.normal", 0, 7, 0, "test")


class FakeBriefs:
    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    async def write_briefs(self, **kw: object) -> list[CreativeBrief]:
        self.calls.append(kw)
        n = int(kw["count"])  # type: ignore[call-overload]
        prompt = kw.get("user_prompt")
        return [
            CreativeBrief(
                prompt=str(prompt or f"{kw['theme']} art {i}"),
                negative_prompt="blurry",
                title=f"{kw['theme']} tee {i}",
                description="soft cotton",
                tags=["space", f"t{i}"],
            )
            for i in range(n)
        ]


class FakeRenderer:
    """Renders a PNG from the seed; ``failures`` says how often each seed fails first
    (-1: always), with ``error`` (retryable unless said otherwise)."""

    def __init__(
        self,
        fail: bool = False,
        failures: dict[int, int] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.seeds: list[int] = []
        self.calls: list[dict[str, object]] = []
        self.fail = fail
        self.failures = dict(failures or {})
        self.error = error or RetryableError("GPU out of memory", vendor="comfyui")

    async def render(
        self, *, prompt: str, seed: int, width: int = 1024, height: int = 1024, **kw: object
    ) -> RenderedImage:
        self.calls.append({"seed": seed, **kw})
        left = self.failures.get(seed, 0)
        if self.fail or left:
            self.failures[seed] = left - 1 if left > 0 else left
            raise self.error
        self.seeds.append(seed)
        buf = io.BytesIO()
        Image.new("RGB", (width, height), (seed % 256, len(prompt) % 256, 9)).save(buf, "PNG")
        return RenderedImage(buf.getvalue(), width, height, "fake", f"p{seed}")


def job(count: int = 3, prompt: str | None = None) -> JobRequested:
    return JobRequested(
        job_id="job-42",
        producer="t",
        payload=JobRequestedPayload(
            theme="space cats",
            style="retro",
            niche="astronomy",
            prompt=prompt,
            product_types=["tshirt", "hoodie"],
            count=count,
            auto_publish=True,
            priority="high",
        ),
    )


def handler(
    tmp_path: Path, renderer: FakeRenderer | None = None, briefs: FakeBriefs | None = None
) -> GeneratorHandler:
    return GeneratorHandler(
        briefs=briefs or FakeBriefs(),
        renderer=renderer or FakeRenderer(),
        storage=LocalImageStorage(tmp_path),
        width=64,
        height=48,
        render_attempts=3,
        render_retry_delay_s=0.001,
    )


async def test_one_image_event_per_image(tmp_path: Path) -> None:
    outputs = await handler(tmp_path)(job(3), CTX)
    assert [o.topic for o in outputs] == [IMAGES_GENERATED] * 3
    events = [o.event for o in outputs]
    assert all(isinstance(e, ImageGenerated) for e in events)
    payloads = [e.payload for e in events]
    assert [p.image_index for p in payloads] == [0, 1, 2]
    assert {p.image_count for p in payloads} == {3}
    routing = payloads[0].routing
    assert routing.product_types == ["tshirt", "hoodie"]
    assert routing.auto_publish is True and routing.priority == "high"
    assert (payloads[0].width, payloads[0].height) == (64, 48)
    # The job's Claude tokens ride on its first image only, so images add up to the job.
    assert payloads[0].tokens is not None and {p.tokens for p in payloads[1:]} == {None}
    assert len({p.sha256 for p in payloads}) == 3
    for p in payloads:  # stored content-addressed, readable at its URI
        assert Path(p.uri.removeprefix("file://")).name == f"{p.sha256}.png"


async def test_renders_are_sized_for_the_jobs_print_areas(tmp_path: Path) -> None:
    renderer = FakeRenderer()
    gen = GeneratorHandler(
        briefs=FakeBriefs(),
        renderer=renderer,
        storage=LocalImageStorage(tmp_path),
        width=1024,
        height=1024,
        print_sizing=GeneratorSettings(claude_api_key="k", print_dpi=150).print_sizing(),
    )
    await gen(job(1), CTX)  # a tee and a hoodie: the tee's 4500 px front decides
    assert renderer.calls[-1]["output_size"] == (2250, 2250)
    tee = job(1)
    payload = tee.payload.model_copy(update={"product_types": [ProductType.MUG]})
    mugs = tee.model_copy(update={"job_id": "job-mugs", "payload": payload})
    await gen(mugs, CTX)  # the mug's 1155 px high wrap needs less than the sample has
    assert renderer.calls[-1]["output_size"] == (1024, 1024)


async def test_redelivery_yields_the_same_ids_and_images(tmp_path: Path) -> None:
    h = handler(tmp_path)
    first = await h(job(2), CTX)
    again = await h(job(2).model_copy(update={"event_id": first[0].event.correlation_id}), CTX)
    a = [(o.event.event_id, o.event.payload.sha256) for o in first]
    b = [(o.event.event_id, o.event.payload.sha256) for o in again]
    assert a == b
    assert len(list(tmp_path.rglob("*.png"))) == 2  # identical images stored once


async def test_user_prompt_is_used_for_every_image(tmp_path: Path) -> None:
    outputs = await handler(tmp_path)(job(2, prompt="a cat astronaut, vector"), CTX)
    assert {o.event.payload.prompt for o in outputs} == {"a cat astronaut, vector"}


async def test_seeds_differ_per_image_and_job() -> None:
    assert seed_for("a", 0) != seed_for("a", 1) != seed_for("b", 0)
    assert seed_for("a", 0) == seed_for("a", 0)
    assert 0 <= seed_for("a", 0) < 2**63


async def test_render_failure_propagates_as_retryable(tmp_path: Path) -> None:
    with pytest.raises(RetryableError):
        await handler(tmp_path, FakeRenderer(fail=True))(job(1), CTX)


async def test_a_failed_render_is_retried_alone(tmp_path: Path) -> None:
    flaky = seed_for("job-42", 1)
    renderer = FakeRenderer(failures={flaky: 2})
    outputs = await handler(tmp_path, renderer)(job(3), CTX)
    assert len(outputs) == 3
    seeds = [c["seed"] for c in renderer.calls]
    assert seeds.count(flaky) == 3  # two failures, then done
    assert all(seeds.count(seed_for("job-42", i)) == 1 for i in (0, 2))


async def test_renders_go_to_the_gpu_queue_under_the_jobs_band_and_age(tmp_path: Path) -> None:
    renderer = FakeRenderer()
    event = job(2)  # priority high
    await handler(tmp_path, renderer)(event, CTX)
    assert {c["band"] for c in renderer.calls} == {0}
    orders = sorted(c["order"] for c in renderer.calls)  # type: ignore[type-var]
    # A job that named its band stands at the band's default number (high: 9).
    assert orders == [(-9, event.occurred_at.timestamp(), "job-42", i) for i in (0, 1)]


async def test_within_a_band_a_higher_number_renders_first_then_the_older_job(
    tmp_path: Path,
) -> None:
    def numbered(job_id: str, level: int | None) -> JobRequested:
        base = job(1)
        payload = base.payload.model_copy(update={"priority_level": level})
        return base.model_copy(update={"job_id": job_id, "payload": payload})

    older_8, newer_10, named = numbered("job-8", 8), numbered("job-10", 10), numbered("job-h", None)
    renderer = FakeRenderer()
    for event in (older_8, newer_10, named):
        await handler(tmp_path, renderer)(event, CTX)
    ranked = sorted(renderer.calls, key=lambda c: c["order"])  # type: ignore[arg-type, return-value]
    assert [c["job_id"] for c in ranked] == ["job-10", "job-h", "job-8"]


async def test_a_permanent_failure_cancels_the_siblings(tmp_path: Path) -> None:
    cancelled: list[int] = []
    siblings: list[int] = []
    both_started = asyncio.Event()

    class Blocking(FakeRenderer):
        async def render(self, *, prompt: str, seed: int, **kw: object) -> RenderedImage:
            if seed == seed_for("job-42", 0):
                await both_started.wait()
                raise PermanentError("content rejected", vendor="comfyui", status=400)
            siblings.append(seed)
            if len(siblings) == 2:
                both_started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(seed)
                raise
            raise AssertionError("not cancelled")

    with pytest.raises(PermanentError, match="content rejected"):
        await asyncio.wait_for(handler(tmp_path, Blocking())(job(3), CTX), 10)
    assert sorted(cancelled) == sorted(seed_for("job-42", i) for i in (1, 2))


async def test_the_next_attempt_keeps_briefs_and_finished_images(tmp_path: Path) -> None:
    briefs = FakeBriefs()
    doomed = seed_for("job-42", 2)
    first = FakeRenderer(failures={doomed: -1})
    with pytest.raises(RetryableError):
        await handler(tmp_path, first, briefs)(job(3), CTX)
    second = FakeRenderer()
    outputs = await handler(tmp_path, second, briefs)(job(3), CTX)
    assert len(outputs) == 3
    assert len(briefs.calls) == 1  # Claude was asked once
    assert second.seeds == [doomed]  # only the image that had failed is rendered again
    # The images handed on are those of the first attempt.
    done_first = {seed_for("job-42", i) for i in (0, 1)}
    assert set(first.seeds) == done_first
    # Once handed on, nothing is kept: a changed request would start afresh anyway.
    assert not any((tmp_path / ".progress").iterdir())


async def test_a_changed_request_does_not_reuse_old_notes(tmp_path: Path) -> None:
    briefs = FakeBriefs()
    with pytest.raises(RetryableError):
        await handler(tmp_path, FakeRenderer(failures={seed_for("job-42", 0): -1}), briefs)(
            job(2), CTX
        )
    changed = job(2, prompt="a different picture")
    renderer = FakeRenderer()
    await handler(tmp_path, renderer, briefs)(changed, CTX)
    assert len(briefs.calls) == 2
    assert len(renderer.seeds) == 2


async def test_a_job_larger_than_one_claude_call_is_written_in_batches(tmp_path: Path) -> None:
    briefs = FakeBriefs()
    gen = GeneratorHandler(
        briefs=briefs,
        renderer=FakeRenderer(),
        storage=LocalImageStorage(tmp_path),
        width=8,
        height=8,
        max_images_per_job=100,
    )
    outputs = await gen(job(60), CTX)
    assert len(outputs) == 60
    assert [c["count"] for c in briefs.calls] == [25, 25, 10]
    # Each batch is told what the batches before it wrote.
    assert [len(c["avoid"]) for c in briefs.calls] == [0, 25, 50]  # type: ignore[arg-type]


async def test_a_job_over_the_image_limit_is_refused_before_any_work(tmp_path: Path) -> None:
    briefs, renderer = FakeBriefs(), FakeRenderer()
    gen = GeneratorHandler(
        briefs=briefs, renderer=renderer, storage=LocalImageStorage(tmp_path), max_images_per_job=5
    )
    with pytest.raises(InvalidEventError, match=r"payload.count: must be at most 5"):
        await gen(job(6), CTX)
    assert briefs.calls == [] and renderer.calls == []
