"""The generator stage: a job becomes ``count`` images with prompts and listing copy.

Claude writes one brief per image (prompt, title, description, tags) unless the job brings its own
prompt, in which case Claude still writes the copy. ComfyUI renders each image, in priority order
at the GPUs; storage keeps it content-addressed. Seeds derive from the job id and image index, so a
redelivered job renders the same images and its output events carry the same ids.

A job id belongs to its first request (:mod:`shared.adapters.store.job_claims`): before anything is
written or rendered the request claims its id, so another request under the same id is
dead-lettered (``job id in use``) instead of rendered under the first job's id, and the same
request sent again under another event id is not rendered twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.generator.progress import ImageNote, JobProgress, fingerprint
from services.generator.settings import GeneratorSettings
from shared.adapters.storage import ImageStore, LocalImageStorage
from shared.adapters.store import job_claims
from shared.adapters.vendors.claude import MAX_BRIEFS, CreativeBrief, TokenUsage, claude_client
from shared.adapters.vendors.comfyui import comfyui_client
from shared.adapters.vendors.printify import PrintifyAccountSettings, printify_client
from shared.adapters.vendors.protocols import BriefWriter, ImageBackend
from shared.contract.events import (
    ImageGenerated,
    ImageGeneratedPayload,
    JobRequested,
    Priority,
    ProductType,
    TokenCounts,
)
from shared.contract.topics import IMAGES_GENERATED
from shared.domain.catalog import read_print_areas
from shared.domain.printsize import PrintArea, PrintSizing
from shared.pipeline.runner import Handler, MessageContext, Output
from shared.pipeline.service import closing
from shared.platform.db import open_pool
from shared.platform.errors import InvalidEventError, PodError

logger = logging.getLogger(__name__)

PRODUCER = "generator"
T = TypeVar("T")


# Where each priority stands at the GPU queue (0 is served first).
BANDS = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


def seed_for(job_id: str, image_index: int) -> int:
    """A stable 63-bit seed per (job, image)."""
    digest = hashlib.sha256(f"{job_id}:{image_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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
    ) -> None:
        self.briefs = briefs
        # Where job ids are claimed (None: no check, for tests of the rendering alone).
        self.claims = claims
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

    async def __call__(self, event: JobRequested, ctx: MessageContext) -> list[Output]:
        job = event.payload
        if job.count > self.max_images_per_job:
            # The API's limit, for jobs produced to the topics directly: dead-lettered with the
            # reason, not half made.
            raise InvalidEventError(
                f"payload.count: must be at most {self.max_images_per_job} "
                f"(MAX_IMAGES_PER_JOB), got {job.count}"
            )
        if not await self._owns(event):
            return []
        progress = JobProgress(self.progress_dir, event.job_id, fingerprint(job))
        earlier = await asyncio.to_thread(progress.exists)
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
        except BaseException:
            # Keep what this attempt paid for: the next one starts from there.
            notes = [b.model_dump() for b in briefs]
            await asyncio.shield(asyncio.to_thread(progress.save, notes, done))
            raise
        outputs = []
        for i, (brief, image) in enumerate(zip(briefs, images, strict=True)):
            payload = ImageGeneratedPayload(
                image_index=i,
                image_count=job.count,
                sha256=image["sha256"],
                uri=image["uri"],
                width=image["width"],
                height=image["height"],
                prompt=brief.prompt,
                negative_prompt=brief.negative_prompt,
                seed=seed_for(event.job_id, i),
                title=brief.title,
                description=brief.description,
                tags=brief.tags,
                routing=job.routing,
                tokens=TokenCounts(**asdict(usage)) if i == 0 else None,
            )
            out = event.derive(ImageGenerated, payload, producer=PRODUCER, key=f"image:{i}")
            outputs.append(Output(IMAGES_GENERATED, out))
        if earlier:
            await asyncio.to_thread(progress.clear)
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
        # Within a band: the higher number first (a seed client's 1-10), then older jobs, then
        # the images of one job in order.
        order = (-event.payload.rank, event.occurred_at.timestamp(), event.job_id, index)
        output_size = self.print_sizing.output_size(
            self.width, self.height, (t.value for t in event.payload.product_types)
        )
        attempt = 1
        while True:
            try:
                rendered = await self.renderer.render(
                    prompt=brief.prompt,
                    negative_prompt=brief.negative_prompt,
                    seed=seed_for(event.job_id, index),
                    width=self.width,
                    height=self.height,
                    output_size=output_size,
                    job_id=event.job_id,
                    band=band,
                    order=order,
                )
                break
            except PodError as exc:
                if not exc.retryable or attempt >= self.render_attempts:
                    raise
                delay = self.render_retry_delay_s * 2 ** (attempt - 1)
                logger.warning(
                    "render retried job_id=%s image_index=%d attempt=%d delay_s=%.1f error=%s",
                    event.job_id, index, attempt, delay, exc.describe(),
                )  # fmt: skip
                await asyncio.sleep(delay)
                attempt += 1
        stored = await asyncio.to_thread(self.storage.save, rendered.data)
        image: ImageNote = {
            "sha256": stored.sha256,
            "uri": stored.uri,
            "width": rendered.width,
            "height": rendered.height,
        }
        done[index] = image
        return image


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
async def build_handler(settings: GeneratorSettings) -> AsyncIterator[Handler[JobRequested]]:
    """The handler wired to the real clients named by ``settings``."""
    claude = claude_client(settings)
    comfy = comfyui_client(settings)
    async with closing(claude, comfy):
        # A model, node or checkpoint the vendor lacks is a configuration error, said at start.
        await claude.check_model()
        await comfy.check_workflow()
        catalog_areas = await catalog_print_areas(settings)
        # Unchecked: a round trip saved on every use; a broken connection is retried.
        claims = await open_pool(settings.url, max_size=2, name="generator-claims", check=False)
        try:
            yield GeneratorHandler(
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
            )
        finally:
            await claims.close()
