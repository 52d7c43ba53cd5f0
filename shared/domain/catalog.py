"""The product catalog: how each product type is made on Printify, and its print areas.

``PRODUCT_CATALOG`` names a blueprint and print provider per type (with its pricing and the
positions printed). Printify's catalog (``variants.json``) holds each variant's placeholders:
the print areas, in pixels at 300 DPI. The printify stage places the art on them; the generator
reads them at start to size its renders (:func:`read_print_areas`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from pydantic import BaseModel, Field

from shared.contract.events import ProductType
from shared.domain.pricing import PricingRule
from shared.domain.printsize import PrintArea
from shared.platform.settings import PodSettings

logger = logging.getLogger(__name__)


class PlaceholderLike(Protocol):
    """A print area of a catalog variant, as a vendor model has it."""

    @property
    def position(self) -> str | None: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...


class VariantLike(Protocol):
    """What the catalog reads of a catalog variant
    (:class:`shared.adapters.vendors.printify.CatalogVariant`)."""

    @property
    def is_available(self) -> bool: ...
    @property
    def options(self) -> Mapping[str, object]: ...
    @property
    def placeholders(self) -> Sequence[PlaceholderLike]: ...


V = TypeVar("V", bound=VariantLike)


class CatalogEntry(BaseModel):
    """How one product type is made on Printify."""

    blueprint_id: int = Field(ge=1)
    print_provider_id: int = Field(ge=1)
    price_cents: int = Field(
        ge=1, description="List price in integer cents: the least any variant sells for"
    )
    # Each variant sells for its production cost plus the larger of these, rounded up to .99.
    margin_percent: float = Field(default=40.0, ge=0, le=1000)
    min_profit_cents: int = Field(default=400, ge=0)
    positions: tuple[str, ...] = ("front",)
    max_variants: int = Field(default=100, ge=1, le=100)  # Printify's per-product cap
    colours: tuple[str, ...] | None = Field(
        default=None, description="Only variants of these colours; None = all available"
    )

    def pricing(self) -> PricingRule:
        """How this type's variants are priced from their costs."""
        return PricingRule(
            margin_percent=self.margin_percent,
            min_profit_cents=self.min_profit_cents,
            floor_cents=self.price_cents,
        )

    def select(self, variants: Sequence[V]) -> list[V]:
        """The variants a product of this type offers: available, of the chosen colours, at
        most ``max_variants`` (possibly none)."""
        chosen = [v for v in variants if v.is_available]
        if self.colours:
            chosen = [v for v in chosen if v.options.get("color") in self.colours]
        return chosen[: self.max_variants]


# The seed's prices (19.99 for a tee, 34.99 for a hoodie) as list prices: the sizes whose cost
# leaves less than the margin sell for more.
DEFAULT_CATALOG: dict[ProductType, CatalogEntry] = {
    ProductType.TSHIRT: CatalogEntry(blueprint_id=6, print_provider_id=99, price_cents=1999),
    ProductType.HOODIE: CatalogEntry(blueprint_id=77, print_provider_id=99, price_cents=3499),
    ProductType.MUG: CatalogEntry(blueprint_id=68, print_provider_id=1, price_cents=1499),
}


class CatalogSettings(PodSettings):
    """``PRODUCT_CATALOG``: JSON per product type, over :data:`DEFAULT_CATALOG`."""

    product_catalog: dict[ProductType, CatalogEntry] = Field(default_factory=dict)

    def catalog(self) -> dict[ProductType, CatalogEntry]:
        """The defaults, overridden per type by PRODUCT_CATALOG (JSON)."""
        return {**DEFAULT_CATALOG, **self.product_catalog}


def print_area(variants: Sequence[VariantLike], positions: Sequence[str]) -> PrintArea | None:
    """The smallest area that covers every placeholder at ``positions`` of ``variants``: art
    sized for it prints at least as sharp on each of them. None when they have none."""
    sizes = [
        (ph.width or 0, ph.height or 0)
        for v in variants
        for ph in v.placeholders
        if ph.position in positions
    ]
    sizes = [(w, h) for w, h in sizes if w > 0 and h > 0]
    if not sizes:
        return None
    return PrintArea(width=max(w for w, _ in sizes), height=max(h for _, h in sizes))


class CatalogReader(Protocol):
    """What :func:`read_print_areas` needs of a Printify client."""

    async def list_variants(
        self, blueprint_id: int, print_provider_id: int
    ) -> Sequence[VariantLike]: ...


async def read_print_areas(
    client: CatalogReader, catalog: Mapping[ProductType, CatalogEntry]
) -> dict[ProductType, PrintArea]:
    """Each type's print area as Printify's catalog has it (types without placeholders at
    their positions are left out)."""
    areas: dict[ProductType, PrintArea] = {}
    for product_type, entry in catalog.items():
        variants = entry.select(
            await client.list_variants(entry.blueprint_id, entry.print_provider_id)
        )
        area = print_area(variants, entry.positions)
        if area is None:
            logger.warning(
                "no print area in the catalog product_type=%s blueprint_id=%d positions=%s",
                product_type.value,
                entry.blueprint_id,
                ",".join(entry.positions),
            )
            continue
        areas[product_type] = area
    return areas
