"""The vendor interfaces the stages are written against; each real client implements one, and a
test passes a fake (or the real client over a simulator's app in process).

Sales channels have theirs in :mod:`shared.adapters.vendors.channels`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from shared.adapters.vendors.claude import CreativeBrief, TokenUsage
from shared.adapters.vendors.comfyui import RenderedImage
from shared.adapters.vendors.printify.models import (
    CatalogVariant,
    Deleted,
    Product,
    Shop,
    Upload,
    VariantPrice,
)


class BriefWriter(Protocol):
    """Writes the creative briefs of a job (Claude:
    :class:`shared.adapters.vendors.claude.ClaudeClient`)."""

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
    :class:`shared.adapters.vendors.comfyui.ComfyUIClient`)."""

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


class ProductVendor(Protocol):
    """Makes the products: uploads art, reads the catalog, creates and prices products, and
    finds one an earlier attempt made (Printify:
    :class:`shared.adapters.vendors.printify.PrintifyClient`).
    """

    async def list_shops(self) -> list[Shop]: ...

    async def upload_image(
        self, *, file_name: str, url: str | None = None, contents: bytes | None = None
    ) -> Upload: ...

    async def list_variants(
        self, blueprint_id: int, print_provider_id: int
    ) -> list[CatalogVariant]: ...

    async def create_product(
        self, shop_id: str | int, product: Mapping[str, object]
    ) -> Product: ...

    async def get_product(self, shop_id: str | int, product_id: str) -> Product: ...

    async def update_product(
        self, shop_id: str | int, product_id: str, changes: Mapping[str, object]
    ) -> Product: ...

    async def find_product_by_marker(
        self,
        shop_id: str | int,
        marker: str,
        *,
        image_id: str | None = None,
        blueprint_id: int | None = None,
        print_provider_id: int | None = None,
        since: datetime | None = None,
    ) -> Product | None: ...

    async def delete_product(self, shop_id: str | int, product_id: str) -> Deleted: ...

    async def set_prices(
        self, shop_id: str | int, product_id: str, variants: list[VariantPrice]
    ) -> Product: ...
