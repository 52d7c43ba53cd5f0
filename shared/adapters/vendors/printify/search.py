"""Finding the product a create call with an unknown outcome made.

Printify cannot search a shop's products by SKU or by image, so the shop is read page by page
(:class:`ProductSearch`), in whichever order Printify lists them (found from the products'
``created_at``; unknown, every page is read), each page's envelope re-read so that products
made or deleted meanwhile cannot hide the one looked for.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.adapters.vendors.printify.models import Product, ProductPage
from shared.contract.events import as_utc
from shared.platform.errors import RetryableError

VENDOR = "printify"
# ``limit`` of GET .../products.json: at most 50 since 2024-10-03 (the reference's History).
PRODUCTS_PAGE_MAX = 50
# A walk over a shop's products that has read this many pages without settling gives up.
MAX_SCAN_PAGES = 2000
_CLOCK_SKEW = timedelta(minutes=10)

PageReader = Callable[[int], Awaitable[ProductPage]]


def created_at(product: Product) -> datetime | None:
    """A product's ``created_at`` ("2019-07-25 13:40:41+00:00"), None when absent or odd."""
    try:
        return as_utc(datetime.fromisoformat(product.created_at or ""))
    except ValueError:
        return None


def _listing_order(products: list[Product]) -> str | None:
    """``newest_first`` or ``oldest_first`` from the first and last products' ``created_at``;
    None when they do not tell (one product, equal or missing times)."""
    if len(products) < 2:
        return None
    first, last = created_at(products[0]), created_at(products[-1])
    if first is None or last is None or first == last:
        return None
    return "newest_first" if first > last else "oldest_first"


def carries_marker(product: Product, marker: str) -> bool:
    """Whether a variant's SKU is ``<marker>-<its id>`` (the SKUs build_product_payload
    writes; Printify may list the blueprint's other variants too, with SKUs of its own)."""
    return any(v.sku == f"{marker}-{v.id}" for v in product.variants)


def _marked(product: Product) -> bool:
    """Whether the product's SKUs carry some marker (``<marker>-<variant id>``)."""
    return any((v.sku or "").endswith(f"-{v.id}") for v in product.variants)


def _prints(product: Product, image_id: str, blueprint_id: int, provider_id: int) -> bool:
    """Whether ``product`` is of ``blueprint_id`` at ``provider_id`` and prints ``image_id``."""
    if product.blueprint_id != blueprint_id or product.print_provider_id != provider_id:
        return False
    return any(
        image.id == image_id
        for area in product.print_areas
        for placeholder in area.placeholders
        for image in placeholder.images
    )


@dataclass(frozen=True)
class ProductSearch:
    """One search of a shop for the product with ``marker`` in its SKUs; without them, for
    the one that prints ``art`` (upload id, blueprint, provider) and carries no other marker.
    ``horizon`` (a little before the create was first tried) stops the walk at older
    products."""

    read_page: PageReader
    marker: str
    art: tuple[str, int, int] | None
    horizon: datetime | None
    shop_id: str | int

    def ours(self, products: list[Product]) -> Product | None:
        for product in products:
            made = created_at(product)
            if self.horizon is not None and made is not None and made < self.horizon:
                continue  # older than the first attempt: not its product
            if carries_marker(product, self.marker) or (
                self.art is not None and _prints(product, *self.art) and not _marked(product)
            ):
                return product
        return None

    async def run(self) -> Product | None:
        first = await self.read_page(1)
        found = self.ours(first.data)
        last_page = first.last_page or 1
        if found is not None or last_page <= 1:
            return found
        order = _listing_order(first.data)
        if order is None:
            tail = await self.read_page(last_page)
            found = self.ours(tail.data)
            if found is not None:
                return found
            order = _listing_order([*first.data[:1], *tail.data[-1:]])
        if order == "oldest_first":
            return await self._walk_back(last_page)
        # Newest first (a horizon applies), or unknown (every page is read).
        return await self._walk_forward(first.total or 0, self.horizon if order else None)

    async def _walk_forward(self, total: int, horizon: datetime | None) -> Product | None:
        """Pages 2.. while products are listed newest first (or in an unknown order). A product
        made meanwhile pushes the others one place later (read twice, never missed); one
        deleted pulls them earlier, onto the pages already read: those are read again."""
        for page in range(2, MAX_SCAN_PAGES):
            envelope = await self.read_page(page)
            found = self.ours(envelope.data) or await self._reread(page, total, envelope)
            if found is not None:
                return found
            total = envelope.total or 0
            if not envelope.data or page >= (envelope.last_page or page):
                return None
            oldest = created_at(envelope.data[-1])
            if horizon is not None and oldest is not None and oldest < horizon:
                return None
        raise RetryableError(
            f"products of shop {self.shop_id} kept changing over {MAX_SCAN_PAGES} pages",
            vendor=VENDOR,
        )

    async def _reread(self, page: int, total: int, envelope: ProductPage) -> Product | None:
        """The pages before ``page`` that products deleted meanwhile moved others onto."""
        now_total = envelope.total or 0
        if now_total >= total:
            return None
        back = math.ceil((total - now_total) / PRODUCTS_PAGE_MAX)
        for earlier in range(max(1, page - back), page):
            found = self.ours((await self.read_page(earlier)).data)
            if found is not None:
                return found
        return None

    async def _walk_back(self, last_page: int) -> Product | None:
        """From the last page down while products are listed oldest first: a product made
        meanwhile is added after the ones looked at (nothing moves), one deleted pulls the
        others earlier, onto pages still to read."""
        for page in range(last_page, 1, -1):
            products = (await self.read_page(page)).data
            found = self.ours(products)
            if found is not None:
                return found
            oldest = created_at(products[0]) if products else None
            if self.horizon is not None and oldest is not None and oldest < self.horizon:
                return None
        return None


def horizon_of(since: datetime | None) -> datetime | None:
    """How far back a search reads: the first attempt, less the clocks' possible skew."""
    return since - _CLOCK_SKEW if since is not None else None
