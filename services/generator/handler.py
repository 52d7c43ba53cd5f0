"""The generator stage: a job becomes ``count`` images with prompts and listing copy.

Claude writes one brief per image (prompt, title, description, tags) unless the job brings its own
prompt, in which case Claude still writes the copy. ComfyUI renders each image, in priority order
at the GPUs; storage keeps it content-addressed. Seeds derive from the job id and image index, so a
redelivered job renders the same images and its output events carry the same ids.

A job id belongs to its first request (:mod:`shared.adapters.store.job_claims`): before anything is
written or rendered the request claims its id, so another request under the same id is
dead-lettered (``job id in use``) instead of rendered under the first job's id, and the same
request sent again under another event id is not rendered twice.

The seller's decisions (``seller.decisions``, read in the generator's own group, ahead of the
priority bands) reach it too. A ``regenerate`` renders one image again with a seed drawn from the
decision and, optionally, the seller's prompt, as the image's next generation; what it renders
comes from the generator's own record of what it made (:mod:`shared.adapters.store.
generated_images`), never from the decision beyond its fields. A ``cancel`` is recorded
(:mod:`shared.adapters.store.cancellations`) and stops the job here: renders not yet started
are never sent, running ones are taken off the GPU (ComfyUI's ``/queue`` delete and
``/interrupt``), and nothing of the job is handed on after it.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.generator.progress import ImageNote, JobProgress, fingerprint
from services.generator.screening import Screener, build_screener
from services.generator.settings import GeneratorSettings
from shared.adapters.storage import ImageStore, LocalImageStorage
from shared.adapters.store import cancellations, generated_images, job_claims
from shared.adapters.store.generated_images import GeneratedImage
from shared.adapters.vendors.claude import MAX_BRIEFS, CreativeBrief, TokenUsage, claude_client
from shared.adapters.vendors.comfyui import comfyui_client
from shared.adapters.vendors.printify import PrintifyAccountSettings, printify_client
from shared.adapters.vendors.protocols import BriefWriter, ImageBackend
from shared.contract.events import (
    MAX_GENERATION,
    DecisionAction,
    Event,
    ImageGenerated,
    ImageGeneratedPayload,
    JobRequested,
    Priority,
    ProductType,
    ScreeningDecision,
    SellerDecision,
    TokenCounts,
)
from shared.contract.topics import IMAGES_GENERATED
from shared.domain.catalog import read_print_areas
from shared.domain.printsize import PrintArea, PrintSizing
from shared.pipeline.runner import Handler, MessageContext, Output
from shared.pipeline.service import closing
from shared.platform.db import open_pool
from shared.platform.errors import ConfigError, InvalidEventError, PermanentError, PodError

logger = logging.getLogger(__name__)

PRODUCER = "generator"
T = TypeVar("T")


# Where each priority stands at the GPU queue (0 is served first).
BANDS = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


def seed_for(job_id: str, image_index: int) -> int:
    """A stable 63-bit seed per (job, image)."""
    digest = hashlib.sha256(f"{job_id}:{image_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seed_for_decision(decision_id: uuid.UUID) -> int:
    """The 63-bit seed of a regenerate: new for each decision, the same for its redelivery."""
    digest = hashlib.sha256(f"regenerate:{decision_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class JobCancelled(Exception):
    """The job was cancelled while its render waited or ran: nothing more of it is made."""


Render = tuple[str, str, int]  # (prompt, negative prompt, seed)


class GeneratorHandler:
    """JobRequested -> one ImageGenerated per image.

    Briefs are written first (they may run ahead of the GPUs); then every image's render waits
    in the renderer's priority queue under the job's band and age. A render that fails with a
    retryable error is tried again on its own (``render_attempts``), keeping its place; when an
    image fails for good its siblings are cancelled (their GPU time would be wasted) and the
    job fails, with its briefs and finished images kept for the next attempt.
    """

    def __init__(
        self,
        *,
        briefs: BriefWriter,
        renderer: ImageBackend,
        storage: ImageStore,
        width: int = 1024,
        height: int = 1024,
        progress_dir: Path | None = None,
        render_attempts: int = 3,
        render_retry_delay_s: float = 1.0,
        max_images_per_job: int = 50,
        print_sizing: PrintSizing | None = None,
        claims: AsyncConnectionPool | None = None,
        cancel_poll_s: float = 2.0,
        screener: Screener | None = None,
    ) -> None:
        self.briefs = briefs
        # Every image is screened before it is handed on (None: screening off).
        self.screener = screener
        # Where job ids are claimed, cancels recorded and what was made kept (None: no check,
        # no record, no decisions, for tests of the rendering alone).
        self.claims = claims
        # How often a job rendering here is looked up among the cancelled: its cancel may be
        # read by another instance (the decisions' partitions are not the jobs').
        self.cancel_poll_s = cancel_poll_s
        self._renders: dict[str, set[asyncio.Task[Any]]] = {}
        self._cancelled: set[str] = set()
        self._watch: asyncio.Task[None] | None = None
        # Regenerates of one image, one at a time: a decision delivered twice at once (both
        # copies in flight) renders once, the second finding the first's record.
        self._regenerating: dict[tuple[str, int], _Turns] = {}
        # None: art is kept at the sampled size (no print areas known).
        self.print_sizing = print_sizing or PrintSizing()
        self.max_images_per_job = max_images_per_job
        self.renderer = renderer
        self.storage = storage
        self.width = width
        self.height = height
        if progress_dir is None:
            if not isinstance(storage, LocalImageStorage):
                raise ValueError("progress_dir is required when images are kept in a bucket")
            progress_dir = storage.root / ".progress"
        self.progress_dir = progress_dir
        self.render_attempts = max(1, render_attempts)
        self.render_retry_delay_s = render_retry_delay_s

    async def __call__(
        self, event: JobRequested | SellerDecision, ctx: MessageContext
    ) -> list[Output]:
        if isinstance(event, SellerDecision):
            return await self._decision(event)
        return await self._job(event, ctx)

    async def _job(self, event: JobRequested, ctx: MessageContext) -> list[Output]:
        job = event.payload
        if job.count > self.max_images_per_job:
            # The API's limit, for jobs produced to the topics directly: dead-lettered with the
            # reason, not half made.
            raise InvalidEventError(
                f"payload.count: must be at most {self.max_images_per_job} "
                f"(MAX_IMAGES_PER_JOB), got {job.count}"
            )
        progress = JobProgress(self.progress_dir, event.job_id, fingerprint(job))
        # Asked at once, not one after another on every job's path: whether this request owns
        # its id, whether its cancel came first (another topic, another order), and what an
        # earlier attempt left.
        owns, cancelled, earlier = await asyncio.gather(
            self._owns(event), self._is_cancelled(event.job_id), asyncio.to_thread(progress.exists)
        )
        if not owns:
            return []
        if cancelled:
            logger.info("job cancelled, nothing rendered job_id=%s", event.job_id)
            return []
        usage = TokenUsage()
        briefs = await self._briefs(event, progress if earlier else None, usage)
        band = BANDS[job.priority]
        done: dict[int, ImageNote] = {}
        try:
            images = await _all_or_cancel(
                [
                    self._image(event, i, brief, band, progress if earlier else None, done)
                    for i, brief in enumerate(briefs)
                ]
            )
        except JobCancelled:
            await asyncio.to_thread(progress.clear)
            logger.info("job cancelled, renders stopped job_id=%s", event.job_id)
            return []
        except BaseException:
            # Keep what this attempt paid for: the next one starts from there.
            notes = [b.model_dump() for b in briefs]
            await asyncio.shield(asyncio.to_thread(progress.save, notes, done))
            raise
        made = [
            GeneratedImage(
                job_id=event.job_id,
                image_index=i,
                generation=0,
                seed=seed_for(event.job_id, i),
                prompt=brief.prompt,
                negative_prompt=brief.negative_prompt,
                title=brief.title,
                description=brief.description,
                tags=brief.tags,
                request=job,
                requested_at=event.occurred_at,
                **image,
            )
            for i, (brief, image) in enumerate(zip(briefs, images, strict=True))
        ]
        if earlier:
            await asyncio.to_thread(progress.clear)
        # Checked before anything is handed on: a cancel read while the last render finished.
        if await self._is_cancelled(event.job_id):
            logger.info("job cancelled, images not handed on job_id=%s", event.job_id)
            return []
        made = await self._screened(made)
        if self.claims is not None:
            async with self.claims.connection() as conn:
                await generated_images.record(conn, made)
        tokens = TokenCounts(**asdict(usage))
        outputs = [_output(event, m, tokens if m.image_index == 0 else None) for m in made]
        logger.info(
            "images generated job_id=%s count=%d topic=%s partition=%d offset=%d",
            event.job_id,
            len(outputs),
            ctx.topic,
            ctx.partition,
            ctx.offset,
        )
        return outputs

    async def _owns(self, event: JobRequested) -> bool:
        """Whether ``event`` is its job id's own request (False: a duplicate, nothing to do);
        raise :class:`shared.adapters.store.job_claims.JobIdInUse` when another request owns the
        id."""
        if self.claims is None:
            return True
        async with self.claims.connection() as conn:
            ownership = await job_claims.claim(conn, event)
        if ownership is job_claims.Ownership.CONFLICT:
            logger.warning("request refused, job id in use job_id=%s", event.job_id)
            raise job_claims.refusal(event)
        if ownership is job_claims.Ownership.DUPLICATE:
            logger.info("duplicate request job_id=%s event_id=%s", event.job_id, event.event_id)
            return False
        return True

    async def _briefs(
        self, event: JobRequested, progress: JobProgress | None, usage: TokenUsage
    ) -> list[CreativeBrief]:
        """The job's briefs: from an earlier attempt when it wrote them, else from Claude
        (its tokens added to ``usage``)."""
        kept = await asyncio.to_thread(progress.briefs) if progress is not None else None
        if kept is not None and len(kept) == event.payload.count:
            logger.info("briefs reused job_id=%s count=%d", event.job_id, len(kept))
            return [CreativeBrief.model_validate(b) for b in kept]
        job = event.payload
        # One call asks for at most MAX_BRIEFS (the answer must fit max_tokens); a larger job
        # is written in batches, each told the titles before it so the designs stay distinct.
        briefs: list[CreativeBrief] = []
        while len(briefs) < job.count:
            briefs += await self.briefs.write_briefs(
                theme=job.theme,
                style=job.style,
                niche=job.niche,
                count=min(MAX_BRIEFS, job.count - len(briefs)),
                user_prompt=job.prompt,
                job_id=event.job_id,
                avoid=[b.title for b in briefs],
                usage=usage,
            )
        return briefs

    async def _image(
        self,
        event: JobRequested,
        index: int,
        brief: CreativeBrief,
        band: int,
        progress: JobProgress | None,
        done: dict[int, ImageNote],
    ) -> ImageNote:
        """One stored image: kept from an earlier attempt, or rendered (retried on its own)."""
        kept = await asyncio.to_thread(progress.image, index) if progress is not None else None
        if kept is not None and await asyncio.to_thread(self.storage.exists, kept["sha256"]):
            done[index] = kept
            return kept
        image = await self._render(
            event.job_id,
            index,
            (brief.prompt, brief.negative_prompt, seed_for(event.job_id, index)),
            band,
            # Within a band: the higher number first (a seed client's 1-10), then older jobs,
            # then the images of one job in order.
            (-event.payload.rank, event.occurred_at.timestamp(), event.job_id, index),
            event.payload.product_types,
        )
        done[index] = image
        return image

    async def _render(
        self,
        job_id: str,
        index: int,
        what: Render,
        band: int,
        order: tuple[Any, ...],
        product_types: list[ProductType],
    ) -> ImageNote:
        """One image rendered (a failed render retried on its own) and stored; raises
        :class:`JobCancelled` when the job is cancelled before or while it renders."""
        prompt, negative_prompt, seed = what
        output_size = self.print_sizing.output_size(
            self.width, self.height, (t.value for t in product_types)
        )
        attempt = 1
        while True:
            # Before each call to ComfyUI: a cancelled job sends nothing more.
            if await self._is_cancelled(job_id):
                raise JobCancelled(job_id)
            try:
                rendered = await self._tracked(
                    job_id,
                    self.renderer.render(
                        prompt=prompt,
                        negative_prompt=negative_prompt,
                        seed=seed,
                        width=self.width,
                        height=self.height,
                        output_size=output_size,
                        job_id=job_id,
                        band=band,
                        order=order,
                    ),
                )
                break
            except PodError as exc:
                if not exc.retryable or attempt >= self.render_attempts:
                    raise
                delay = self.render_retry_delay_s * 2 ** (attempt - 1)
                logger.warning(
                    "render retried job_id=%s image_index=%d attempt=%d delay_s=%.1f error=%s",
                    job_id, index, attempt, delay, exc.describe(),
                )  # fmt: skip
                await asyncio.sleep(delay)
                attempt += 1
        stored = await asyncio.to_thread(self.storage.save, rendered.data)
        return {
            "sha256": stored.sha256,
            "uri": stored.uri,
            "width": rendered.width,
            "height": rendered.height,
        }

    # ------------------------------------------------------------------ screening

    async def _screened(self, made: list[GeneratedImage]) -> list[GeneratedImage]:
        """``made`` with each image's screening: the one recorded for the same image when this
        is a redelivery (screened once: Claude's answer may differ and its tokens are spent),
        else screened now, every image side by side."""
        if self.screener is None:
            return made
        screener = self.screener

        async def one(image: GeneratedImage) -> GeneratedImage:
            if image.screening is not None:
                return image
            if self.claims is not None:
                async with self.claims.connection() as conn:
                    kept = await generated_images.of_generation(
                        conn, image.job_id, image.image_index, image.generation
                    )
                if kept is not None and kept.screening is not None and kept.sha256 == image.sha256:
                    return image.model_copy(update={"screening": kept.screening})
            # The design's turn for screening's CPUs: the GPU queue's order (band, the job's
            # number, its age, the image), so a high job does not wait behind a low backlog.
            request = image.request
            order = (
                BANDS[request.priority],
                -request.rank,
                image.requested_at.timestamp(),
                image.job_id,
                image.image_index,
            )
            return image.model_copy(update={"screening": await screener.screen(image, order)})

        return await _all_or_cancel([one(m) for m in made])

    # ------------------------------------------------------------------ cancels

    async def _tracked(self, job_id: str, render: Coroutine[Any, Any, T]) -> T:
        """Run ``render`` as a task a cancel of its job stops: waiting for the GPU, it is never
        sent; on ComfyUI, the client deletes it from the queue or interrupts it."""
        task = asyncio.ensure_future(render)
        self._renders.setdefault(job_id, set()).add(task)
        if job_id in self._cancelled:
            # Cancelled while this render was being asked for (its check awaited the
            # database): it has not run a step yet, so it sends nothing.
            task.cancel("job cancelled")
        self._watch_cancels()
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            # Our own cancellation (a failed sibling, a shutdown) goes on as it is.
            if job_id in self._cancelled and (current is None or not current.cancelling()):
                raise JobCancelled(job_id) from None
            raise
        finally:
            running = self._renders.get(job_id)
            if running is not None:
                running.discard(task)
                if not running:
                    del self._renders[job_id]

    def _stop_job(self, job_id: str) -> int:
        """The job is cancelled: stop its renders in this process; how many were stopped."""
        self._cancelled.add(job_id)
        running = [t for t in self._renders.get(job_id, ()) if not t.done()]
        for task in running:
            task.cancel("job cancelled")
        return len(running)

    async def _is_cancelled(self, job_id: str) -> bool:
        if job_id in self._cancelled:
            return True
        if self.claims is None or not await cancellations.is_cancelled(self.claims, job_id):
            return False
        self._cancelled.add(job_id)
        return True

    def _watch_cancels(self) -> None:
        if self.claims is None or (self._watch is not None and not self._watch.done()):
            return
        # A context of its own: it is no message's work (nor handed back with one).
        self._watch = asyncio.get_running_loop().create_task(
            self._watch_loop(self.claims), context=contextvars.Context()
        )

    async def _watch_loop(self, pool: AsyncConnectionPool) -> None:
        """While jobs render here, stop those another instance recorded cancelled."""
        while self._renders:
            await asyncio.sleep(self.cancel_poll_s)
            try:
                found = await cancellations.cancelled_among(pool, list(self._renders))
            except (psycopg.Error, OSError) as exc:
                logger.warning("cancels not looked up error=%s", type(exc).__name__)
                continue
            for job_id in found - self._cancelled:
                stopped = self._stop_job(job_id)
                logger.info("job cancelled elsewhere job_id=%s renders_stopped=%d", job_id, stopped)

    async def aclose(self) -> None:
        """Stop watching for cancels (the stage stops)."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)

    # --------------------------------------------------------------- decisions

    def _pool(self, action: str) -> AsyncConnectionPool:
        if self.claims is None:
            raise ConfigError(f"{action}: the generator has no database to act on decisions")
        return self.claims

    async def _decision(self, event: SellerDecision) -> list[Output]:
        action = event.payload.action
        if action is DecisionAction.CANCEL:
            await self._cancel(event)
            return []
        if action is DecisionAction.REGENERATE:
            return await self._regenerate(event)
        return []  # the other stages' decisions

    async def _cancel(self, event: SellerDecision) -> None:
        d = event.payload
        async with self._pool("cancel").connection() as conn:
            first = await cancellations.record(
                conn,
                job_id=event.job_id,
                decision_id=d.decision_id,
                decided_by=d.decided_by,
                at=event.occurred_at,
            )
        stopped = self._stop_job(event.job_id)
        logger.info(
            "job cancelled job_id=%s decision_id=%s decided_by=%s first=%s renders_stopped=%d",
            event.job_id, d.decision_id, d.decided_by, first, stopped,
        )  # fmt: skip

    async def _regenerate(self, event: SellerDecision) -> list[Output]:
        """Image ``image_index`` again as its next generation, once per decision."""
        d = event.payload
        job_id, index = event.job_id, d.image_index
        assert index is not None  # the payload's validator requires it to regenerate
        pool = self._pool("regenerate")
        if await self._is_cancelled(job_id):
            logger.info("regenerate of a cancelled job ignored job_id=%s", job_id)
            return []
        turns = self._regenerating.setdefault((job_id, index), _Turns())
        turns.users += 1
        try:
            async with turns.lock:
                return await self._regenerate_now(event, pool)
        finally:
            turns.users -= 1
            if not turns.users:
                del self._regenerating[(job_id, index)]

    async def _regenerate_now(
        self, event: SellerDecision, pool: AsyncConnectionPool
    ) -> list[Output]:
        d = event.payload
        job_id, index = event.job_id, d.image_index
        assert index is not None
        async with pool.connection() as conn:
            made = await generated_images.of_decision(conn, job_id, index, d.decision_id)
            newest = made or await generated_images.newest(conn, job_id, index)
        if made is not None:
            # A redelivery: the render it made is handed on again, under the same event id.
            logger.info(
                "regenerate already made job_id=%s image_index=%d generation=%d",
                job_id, index, made.generation,
            )  # fmt: skip
            return [_output(event, made, None)]
        if newest is None:
            raise PermanentError(
                f"regenerate: image {index} of job {job_id} was never made by the generator"
            )
        if newest.generation > d.generation:
            logger.info(
                "regenerate of a replaced generation ignored job_id=%s image_index=%d "
                "generation=%d newest=%d",
                job_id, index, d.generation, newest.generation,
            )  # fmt: skip
            return []
        if newest.generation < d.generation or d.generation >= MAX_GENERATION:
            raise InvalidEventError(
                f"payload.generation: image {index} of job {job_id} has no generation "
                f"{d.generation} to regenerate (the newest is {newest.generation}, at most "
                f"{MAX_GENERATION})"
            )
        return await self._render_again(event, newest)

    async def _render_again(self, event: SellerDecision, was: GeneratedImage) -> list[Output]:
        d = event.payload
        request = was.request
        prompt = d.prompt or was.prompt
        copy = {"title": was.title, "description": was.description, "tags": was.tags}
        if prompt != was.prompt:
            # A new picture wants its own listing copy: one brief, for this image alone.
            usage = TokenUsage()
            if await self._is_cancelled(event.job_id):
                return []
            brief = (
                await self.briefs.write_briefs(
                    theme=request.theme,
                    style=request.style,
                    niche=request.niche,
                    count=1,
                    user_prompt=prompt,
                    job_id=event.job_id,
                    avoid=[was.title],
                    usage=usage,
                )
            )[0]
            copy = {"title": brief.title, "description": brief.description, "tags": brief.tags}
            logger.info(
                "regenerate copy written job_id=%s image_index=%d input_tokens=%d "
                "output_tokens=%d",
                event.job_id, was.image_index, usage.input, usage.output,
            )  # fmt: skip
        seed = seed_for_decision(d.decision_id)
        try:
            image = await self._render(
                event.job_id,
                was.image_index,
                (prompt, was.negative_prompt, seed),
                # The seller waits for it: the job's band and place, not behind newer jobs.
                BANDS[request.priority],
                (-request.rank, was.requested_at.timestamp(), event.job_id, was.image_index),
                request.product_types,
            )
        except JobCancelled:
            logger.info("job cancelled, regenerate stopped job_id=%s", event.job_id)
            return []
        generation = d.generation + 1
        record = was.model_copy(
            update={
                "generation": generation,
                "decision_id": d.decision_id,
                "seed": seed,
                "prompt": prompt,
                "screening": None,
                **copy,
                **image,
            }
        )
        # The new picture (and its copy, with a new prompt) is screened like the first.
        [record] = await self._screened([record])
        async with self._pool("regenerate").connection() as conn:
            await generated_images.record(conn, [record])
            kept = await generated_images.of_generation(
                conn, event.job_id, was.image_index, generation
            )
        if kept is None or kept.decision_id != d.decision_id:
            logger.info(
                "regenerate lost to another decision job_id=%s image_index=%d generation=%d",
                event.job_id, was.image_index, generation,
            )  # fmt: skip
            return []
        if await self._is_cancelled(event.job_id):
            logger.info("job cancelled, regenerated image not handed on job_id=%s", event.job_id)
            return []
        logger.info(
            "image regenerated job_id=%s image_index=%d generation=%d prompt_changed=%s",
            event.job_id, was.image_index, generation, prompt != was.prompt,
        )  # fmt: skip
        return [_output(event, kept, None)]


@dataclass
class _Turns:
    """One image's regenerates waiting for their turn."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _held(made: GeneratedImage) -> bool:
    """Whether the image's products wait for the seller whatever the job asked: screening sent
    it to review and the job publishes (a job that only makes drafts lists nothing anyway: its
    screening is shown, nothing is held), or it is a regenerate (only a held image is
    regenerated, and its next generation waits again)."""
    if made.generation > 0:
        return True
    routing = made.request.routing
    screened = made.screening is not None and made.screening.decision is ScreeningDecision.REVIEW
    return screened and (routing.auto_publish or routing.review)


def _output(event: Event, made: GeneratedImage, tokens: TokenCounts | None) -> Output:
    """The image.generated of one made image, its id derived from the event that asked for it
    (the job's request, or the regenerate decision): a redelivery makes the same id."""
    routing = made.request.routing
    if _held(made) and not routing.review:
        routing = routing.model_copy(update={"review": True})
    payload = ImageGeneratedPayload(
        image_index=made.image_index,
        image_count=made.request.count,
        sha256=made.sha256,
        uri=made.uri,
        width=made.width,
        height=made.height,
        prompt=made.prompt,
        negative_prompt=made.negative_prompt,
        seed=made.seed,
        title=made.title,
        description=made.description,
        tags=made.tags,
        routing=routing,
        tokens=tokens,
        generation=made.generation,
        screening=made.screening,
    )
    key = f"image:{made.image_index}"
    if made.generation:
        key += f"@g{made.generation}"
    out = event.derive(ImageGenerated, payload, producer=PRODUCER, key=key)
    return Output(IMAGES_GENERATED, out)


async def _all_or_cancel(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run all; on the first failure cancel the others and raise that failure itself."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    failed = next((t for t in tasks if t in done and t.exception() is not None), None)
    if failed is not None:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise failed.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]


async def catalog_print_areas(settings: GeneratorSettings) -> dict[ProductType, PrintArea]:
    """Each product type's print area from Printify's catalog; none (so the defaults) when no
    Printify account is configured or the catalog cannot be read now.

    The reads count against the account's deployment-wide budget (in PostgreSQL), like every
    other Printify call: a few requests at start must not push the others over the limit.
    """
    if settings.printify_api_key is None:
        return {}
    # The account's limits (PRINTIFY_*) as every other caller of the account reads them.
    account = PrintifyAccountSettings(
        printify_api_key=settings.printify_api_key, printify_api_url=settings.printify_api_url
    )
    try:
        pool = await open_pool(settings.url, max_size=2, name="generator-catalog", check=False)
    except (psycopg.Error, OSError) as exc:
        logger.warning("print areas not read from the catalog error=%s", exc)
        return {}
    try:
        client = printify_client(account, pool)
        async with closing(client):
            areas = await read_print_areas(client, settings.catalog())
    except PodError as exc:
        # Not fatal: the printify stage checks the real placeholders on every product.
        logger.warning("print areas not read from the catalog error=%s", exc.describe())
        return {}
    finally:
        await pool.close()
    logger.info(
        "print areas from the catalog %s",
        " ".join(f"{t.value}={a.width}x{a.height}" for t, a in areas.items()),
    )
    return areas


@asynccontextmanager
async def build_handler(
    settings: GeneratorSettings,
) -> AsyncIterator[Handler[JobRequested | SellerDecision]]:
    """The handler wired to the real clients named by ``settings``."""
    claude = claude_client(settings)
    comfy = comfyui_client(settings)
    async with closing(claude, comfy):
        # A model, node or checkpoint the vendor lacks is a configuration error, said at start.
        await claude.check_model()
        await comfy.check_workflow()
        catalog_areas = await catalog_print_areas(settings)
        # Unchecked: a round trip saved on every use; a broken connection is retried.
        claims = await open_pool(settings.url, max_size=4, name="generator-claims", check=False)
        handler: GeneratorHandler | None = None
        try:
            handler = GeneratorHandler(
                briefs=claude,
                renderer=comfy,
                storage=settings.image_store(),
                # A job's briefs and finished images between attempts: always on local disk.
                progress_dir=settings.image_storage_dir / ".progress",
                width=settings.image_width,
                height=settings.image_height,
                print_sizing=settings.print_sizing(catalog_areas),
                render_attempts=settings.render_attempts,
                max_images_per_job=settings.max_images_per_job,
                claims=claims,
                screener=build_screener(
                    settings,
                    storage=settings.image_store(),
                    reviewer=claude,
                    pool=claims,
                    image_max_bytes=settings.image_max_bytes,
                ),
            )
            yield handler
        finally:
            if handler is not None:
                await handler.aclose()
            await claims.close()
