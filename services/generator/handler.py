"""The generator stage: a job becomes ``count`` images with prompts and listing copy.

Claude writes one brief per image (prompt, title, description, tags) unless the job brings its own
prompt, in which case Claude still writes the copy. ComfyUI renders each image; storage keeps it
content-addressed. Seeds derive from the job id and image index, so a redelivered job renders the
same images and its output events carry the same ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from services.generator.claude import ClaudeClient, CreativeBrief
from services.generator.comfyui import ComfyUIClient, RenderedImage
from services.generator.settings import GeneratorSettings
from shared.events import ImageGenerated, ImageGeneratedPayload, JobRequested
from shared.runner import Handler, MessageContext, Output
from shared.service import closing
from shared.storage import LocalImageStorage
from shared.topics import IMAGES_GENERATED

logger = logging.getLogger(__name__)

PRODUCER = "generator"


class BriefWriter(Protocol):
    async def write_briefs(
        self,
        *,
        theme: str,
        style: str,
        niche: str,
        count: int,
        user_prompt: str | None = None,
        job_id: str | None = None,
    ) -> list[CreativeBrief]: ...


class Renderer(Protocol):
    async def render(
        self,
        *,
        prompt: str,
        negative_prompt: str,
        seed: int,
        width: int = 1024,
        height: int = 1024,
        job_id: str | None = None,
    ) -> RenderedImage: ...


def seed_for(job_id: str, image_index: int) -> int:
    """A stable 63-bit seed per (job, image)."""
    digest = hashlib.sha256(f"{job_id}:{image_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class GeneratorHandler:
    """JobRequested -> one ImageGenerated per image."""

    def __init__(
        self,
        *,
        briefs: BriefWriter,
        renderer: Renderer,
        storage: LocalImageStorage,
        width: int = 1024,
        height: int = 1024,
    ) -> None:
        self.briefs = briefs
        self.renderer = renderer
        self.storage = storage
        self.width = width
        self.height = height

    async def __call__(self, event: JobRequested, ctx: MessageContext) -> list[Output]:
        job = event.payload
        briefs = await self.briefs.write_briefs(
            theme=job.theme,
            style=job.style,
            niche=job.niche,
            count=job.count,
            user_prompt=job.prompt,
            job_id=event.job_id,
        )
        images = await asyncio.gather(
            *(
                self.renderer.render(
                    prompt=brief.prompt,
                    negative_prompt=brief.negative_prompt,
                    seed=seed_for(event.job_id, i),
                    width=self.width,
                    height=self.height,
                    job_id=event.job_id,
                )
                for i, brief in enumerate(briefs)
            )
        )
        outputs = []
        for i, (brief, image) in enumerate(zip(briefs, images, strict=True)):
            stored = await asyncio.to_thread(self.storage.save, image.data)
            payload = ImageGeneratedPayload(
                image_index=i,
                image_count=job.count,
                sha256=stored.sha256,
                uri=stored.uri,
                width=image.width,
                height=image.height,
                prompt=brief.prompt,
                negative_prompt=brief.negative_prompt,
                seed=seed_for(event.job_id, i),
                title=brief.title,
                description=brief.description,
                tags=brief.tags,
                product_types=job.product_types,
                auto_publish=job.auto_publish,
                priority=job.priority,
            )
            out = event.derive(ImageGenerated, payload, producer=PRODUCER, key=f"image:{i}")
            outputs.append(Output(IMAGES_GENERATED, out))
        logger.info(
            "images generated job_id=%s count=%d topic=%s partition=%d offset=%d",
            event.job_id,
            len(outputs),
            ctx.topic,
            ctx.partition,
            ctx.offset,
        )
        return outputs


@asynccontextmanager
async def build_handler(settings: GeneratorSettings) -> AsyncIterator[Handler[JobRequested]]:
    """The handler wired to the real clients named by ``settings``."""
    claude = ClaudeClient(
        api_key=settings.claude_api_key.get_secret_value(),
        model=settings.claude_model,
        base_url=settings.anthropic_base_url,
        timeout_s=settings.claude_timeout_s,
    )
    comfy = ComfyUIClient(
        base_urls=settings.comfyui_urls,
        workflow=ComfyUIClient.load_workflow(settings.comfyui_workflow_path),
        timeout_s=settings.comfyui_timeout_s,
        use_websocket=settings.comfyui_use_websocket,
    )
    async with closing(claude, comfy):
        yield GeneratorHandler(
            briefs=claude,
            renderer=comfy,
            storage=LocalImageStorage(settings.image_storage_dir, settings.image_public_base_url),
            width=settings.image_width,
            height=settings.image_height,
        )
