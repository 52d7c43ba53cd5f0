"""The vendor interfaces the stages are written against; each real client implements one, and a
test passes a fake (or the real client over a simulator's app in process).

Sales channels have theirs in :mod:`shared.vendors.channels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shared.vendors.claude import CreativeBrief, TokenUsage
from shared.vendors.comfyui import RenderedImage


class BriefWriter(Protocol):
    """Writes the creative briefs of a job (Claude:
    :class:`shared.vendors.claude.ClaudeClient`)."""

    async def write_briefs(
        self,
        *,
        theme: str,
        style: str,
        niche: str,
        count: int,
        user_prompt: str | None = None,
        job_id: str | None = None,
        avoid: Sequence[str] = (),
        usage: TokenUsage | None = None,
    ) -> list[CreativeBrief]: ...


class ImageBackend(Protocol):
    """Renders one image, in priority order (ComfyUI:
    :class:`shared.vendors.comfyui.ComfyUIClient`)."""

    async def render(
        self,
        *,
        prompt: str,
        negative_prompt: str,
        seed: int,
        width: int = 1024,
        height: int = 1024,
        output_size: tuple[int, int] | None = None,
        job_id: str | None = None,
        band: int = 1,
        order: tuple[Any, ...] = (),
    ) -> RenderedImage: ...
