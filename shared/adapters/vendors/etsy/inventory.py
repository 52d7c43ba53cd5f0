"""updateListingInventory's body for a listing draft: one product per variant."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypedDict

from shared.adapters.vendors.etsy.models import VENDOR
from shared.adapters.vendors.etsy.text import MAX_SKU, variation_value
from shared.adapters.vendors.listing import DraftVariant, ListingDraft
from shared.platform.errors import PermanentError


class OfferingBody(TypedDict):
    """A product's offering: its price (in the shop's currency), quantity, processing profile."""

    price: float
    quantity: int
    is_enabled: bool
    readiness_state_id: int


class PropertyValueBody(TypedDict):
    """A product's value of one variation."""

    property_id: int
    property_name: str
    value_ids: list[int]
    values: list[str]


class ProductBody(TypedDict):
    """One product (variant) of the inventory."""

    sku: str
    property_values: list[PropertyValueBody]
    offerings: list[OfferingBody]


class InventoryBody(TypedDict):
    """updateListingInventory's JSON body."""

    products: list[ProductBody]
    price_on_property: list[int]
    quantity_on_property: list[int]
    sku_on_property: list[int]


# A seller's own variations: Etsy's two custom property ids.
CUSTOM_PROPERTY_IDS = (513, 514)

# --------------------------------------------------------------------------------------------
# Listing a draft


def _depends_on(
    variants: Sequence[DraftVariant],
    props: Mapping[str, int],
    value: Callable[[DraftVariant], object],
) -> list[int]:
    """The fewest properties ``value`` depends on across ``variants`` (Etsy's
    ``*_on_property``): none when it is the same for all."""
    names = list(props)
    candidates: list[list[str]] = [[], *([n] for n in names)]
    if len(names) > 1:
        candidates.append(names)
    for chosen in candidates:
        seen: dict[tuple[str | None, ...], object] = {}
        if all(
            seen.setdefault(tuple(v.option(n) for n in chosen), value(v)) == value(v)
            for v in variants
        ):
            return [props[n] for n in chosen]
    return [props[n] for n in names]


def inventory_for(draft: ListingDraft, *, quantity: int, readiness_state_id: int) -> InventoryBody:
    """updateListingInventory's body for ``draft``: one product per variant with its SKU, its
    option values on Etsy's custom properties (513, 514), its price and its processing profile
    (each offering's ``readiness_state_id``, which Etsy's document requires).

    Raises PermanentError when Etsy cannot take it (more than two options, a SKU too long)."""
    if len(draft.options) > len(CUSTOM_PROPERTY_IDS):
        raise PermanentError(
            f"product {draft.marker} has {len(draft.options)} options; Etsy lists at most "
            f"{len(CUSTOM_PROPERTY_IDS)} variations",
            vendor=VENDOR,
        )
    props = {name: CUSTOM_PROPERTY_IDS[i] for i, (name, _) in enumerate(draft.options)}
    products: list[ProductBody] = []
    for v in draft.variants:
        if len(v.sku) > MAX_SKU:
            raise PermanentError(
                f"SKU {v.sku!r} of product {draft.marker} is longer than Etsy's {MAX_SKU}",
                vendor=VENDOR,
            )
        offering: OfferingBody = {
            "price": round(v.price_cents / 100, 2),
            "quantity": quantity,
            "is_enabled": True,
            "readiness_state_id": readiness_state_id,
        }
        products.append(
            {
                "sku": v.sku,
                "property_values": [
                    {
                        "property_id": props[name],
                        "property_name": name,
                        "value_ids": [],
                        "values": [variation_value(value)],
                    }
                    for name, value in v.options
                    if name in props
                ],
                "offerings": [offering],
            }
        )
    return {
        "products": products,
        "price_on_property": _depends_on(draft.variants, props, lambda v: v.price_cents),
        "quantity_on_property": [],
        "sku_on_property": _depends_on(draft.variants, props, lambda v: v.sku),
    }
