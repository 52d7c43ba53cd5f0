"""A Printify product as the engine makes it: the art placed on each print area of the chosen
catalog variants (:func:`plan_print_areas`) and the create-product body
(:func:`build_product_payload`) with the deterministic SKUs a lost create is found again by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.adapters.vendors.printify.models import CatalogVariant
from shared.domain.printsize import Placement, PrintArea, place


@dataclass(frozen=True)
class AreaPlan:
    """Variants that share their placeholders' sizes, and the art's placement on each."""

    variant_ids: tuple[int, ...]
    placements: tuple[tuple[str, Placement], ...]  # (position, placement)

    @property
    def min_dpi(self) -> float:
        """The lowest resolution the art prints at on these variants."""
        return min(p.dpi for _, p in self.placements)


# Centred at the area's full width: the placement when the placeholders are not known.
FULL_WIDTH = Placement(scale=1.0, dpi=0.0)


def plan_print_areas(
    variants: Sequence[CatalogVariant],
    positions: Sequence[str],
    art_width: int,
    art_height: int,
) -> list[AreaPlan]:
    """Place the art on each of ``positions`` of each variant, from the catalog's placeholders
    (``variants.json``): centred, as large as it fits inside. Variants whose placeholders have
    the same sizes share one print area. A position a variant lacks is left out for it; a
    variant with none of the positions is an error (ValueError)."""
    groups: dict[tuple[tuple[str, int, int], ...], list[int]] = {}
    for v in variants:
        sizes = {str(ph.position): (ph.width or 0, ph.height or 0) for ph in v.placeholders}
        key = tuple((pos, *sizes[pos]) for pos in positions if min(sizes.get(pos, (0, 0))) > 0)
        if not key:
            raise ValueError(f"variant {v.id} has no print area at {list(positions)}")
        groups.setdefault(key, []).append(v.id)
    return [
        AreaPlan(
            tuple(ids),
            tuple(
                (pos, place(art_width, art_height, PrintArea(width=w, height=h)))
                for pos, w, h in key
            ),
        )
        for key, ids in groups.items()
    ]


def build_product_payload(
    *,
    title: str,
    description: str,
    tags: Sequence[str],
    blueprint_id: int,
    print_provider_id: int,
    variants: Sequence[CatalogVariant],
    price_cents: int,
    image_id: str,
    positions: tuple[str, ...] = ("front",),
    sku_prefix: str,
    areas: Sequence[AreaPlan] | None = None,
) -> dict[str, Any]:
    """Build a valid create-product body: every given variant enabled at ``price_cents``.

    Each variant gets the SKU ``f"{sku_prefix}-{variant_id}"`` so a product whose creation had
    an unknown outcome can be found again. The image goes where ``areas``
    (:func:`plan_print_areas`) places it; without them, centred at full width on every position.
    Raises ValueError on a non-integer price (Printify wants cents) or empty inputs.
    """
    if not isinstance(price_cents, int) or isinstance(price_cents, bool):
        raise ValueError(f"price_cents must be an int (cents), got {price_cents!r}")
    if price_cents <= 0:
        raise ValueError(f"price_cents must be positive, got {price_cents}")
    if not variants:
        raise ValueError("variants must not be empty")
    if not positions:
        raise ValueError("positions must not be empty")
    if not sku_prefix:
        raise ValueError("sku_prefix must not be empty")
    variant_ids = [v.id for v in variants]
    if areas is None:
        areas = [AreaPlan(tuple(variant_ids), tuple((p, FULL_WIDTH) for p in positions))]
    return {
        "title": title,
        "description": description,
        "tags": list(tags),
        "blueprint_id": blueprint_id,
        "print_provider_id": print_provider_id,
        "variants": [
            {"id": vid, "price": price_cents, "is_enabled": True, "sku": f"{sku_prefix}-{vid}"}
            for vid in variant_ids
        ],
        "print_areas": [
            {
                "variant_ids": list(area.variant_ids),
                "placeholders": [
                    {
                        "position": position,
                        "images": [
                            {"id": image_id, "x": at.x, "y": at.y, "scale": at.scale, "angle": 0}
                        ],
                    }
                    for position, at in area.placements
                ],
            }
            for area in areas
        ],
    }
