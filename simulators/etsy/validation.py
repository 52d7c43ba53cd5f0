"""The request checks Etsy documents: listing fields, inventories, images and query
parameters; each raises :class:`Invalid` with Etsy's message or returns what it read."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any, TypeGuard

from fastapi import Request
from PIL import Image, UnidentifiedImageError

from simulators.etsy.errors import Invalid
from simulators.etsy.forms import Fields
from simulators.etsy.rules import (
    CUSTOM_PROPERTIES,
    DIMENSION_UNITS,
    IMAGE_FORMATS,
    INCLUDES,
    LISTING_TYPES,
    MAX_MATERIALS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_SKU,
    MAX_TAGS,
    MIN_PRICE,
    WEIGHT_UNITS,
    WHEN_MADE,
    WHO_MADE,
    material_problem,
    tag_problem,
    title_problem,
)
from simulators.etsy.state import (
    Inventory,
    InventoryProduct,
    Listing,
    Offering,
    PropertyValue,
    money,
    new_id,
    value_id,
)


def price_cents(value: object, where: str) -> int:
    """A price in the shop's currency as cents; Etsy takes 0.20 to 50000.00."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"{where} must be a number")
    if not MIN_PRICE <= value <= MAX_PRICE:
        raise Invalid(f"{where} must be between {MIN_PRICE:.2f} and {MAX_PRICE:.2f}, got {value}")
    return round(value * 100)


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


_CHOICES = (
    ("who_made", WHO_MADE),
    ("when_made", WHEN_MADE),
    ("type", LISTING_TYPES),
    ("item_weight_unit", WEIGHT_UNITS),
    ("item_dimensions_unit", DIMENSION_UNITS),
)
_IDS = ("taxonomy_id", "shipping_profile_id", "return_policy_id", "shop_section_id",
        "readiness_state_id")  # fmt: skip
_DAYS = ("processing_min", "processing_max")
_SIZES = ("item_weight", "item_length", "item_width", "item_height")
_FLAGS = ("is_supply", "is_customizable", "should_auto_renew", "is_taxable")
_REQUIRED = ("quantity", "title", "description", "price", "who_made", "when_made",
             "taxonomy_id")  # fmt: skip


def _texts(form: Fields, out: dict[str, Any]) -> None:
    title = form.text("title")
    if title is not None:
        problem = title_problem(title)
        if problem:
            raise Invalid(problem)
        out["title"] = title
    description = form.text("description")
    if description is not None:
        if not description.strip():
            raise Invalid("description must not be empty")
        out["description"] = description


def _scalars(form: Fields, out: dict[str, Any]) -> None:
    """The enums, ids, day counts, sizes and flags a form sends."""
    read: dict[str, object] = {name: form.choice(name, allowed) for name, allowed in _CHOICES}
    read |= {name: form.integer(name, low=1) for name in _IDS}
    read |= {name: form.integer(name, low=0) for name in _DAYS}
    for name in _SIZES:
        size = form.number(name)
        if size is not None and size <= 0:
            raise Invalid(f"{name} must be greater than 0")
        read[name] = size
    read |= {name: form.boolean(name) for name in _FLAGS}
    out.update({name: value for name, value in read.items() if value is not None})


def _checked_list(
    form: Fields, name: str, most: int, too_many: str, problem: Callable[[str], str | None]
) -> list[str] | None:
    values = form.strings(name)
    if values is None:
        return None
    if len(values) > most:
        raise Invalid(too_many.format(n=len(values)))
    for value in values:
        found = problem(value)
        if found:
            raise Invalid(found)
    return values


def _lists(form: Fields, out: dict[str, Any]) -> None:
    read = {
        "tags": _checked_list(
            form, "tags", MAX_TAGS, f"A listing may have at most {MAX_TAGS} tags, got {{n}}",
            tag_problem,
        ),
        "materials": _checked_list(
            form, "materials", MAX_MATERIALS,
            f"A listing may have at most {MAX_MATERIALS} materials", material_problem,
        ),
        "styles": _checked_list(
            form, "styles", 2, "A listing may have at most 2 styles", lambda _: None
        ),
    }  # fmt: skip
    out.update({name: value for name, value in read.items() if value is not None})


def listing_fields(
    form: Fields, *, creating: bool, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The listing fields of a createDraftListing / updateListing form, validated like Etsy."""
    out: dict[str, Any] = {}
    if creating:
        for name in _REQUIRED:
            form.required(name)
    _texts(form, out)
    if creating:
        out["quantity"] = form.integer("quantity", low=1, high=MAX_QUANTITY)
        out["price_cents"] = price_cents(form.number("price"), "price")
    _scalars(form, out)
    _lists(form, out)
    merged = {**(current or {}), **out}
    physical = merged.get("type", "physical") != "download"
    if physical and not merged.get("shipping_profile_id"):
        raise Invalid("shipping_profile_id is required when the listing type is physical")
    if creating and physical and not merged.get("readiness_state_id"):
        raise Invalid("A readiness_state_id is required for physical listings.")
    return out


def property_values(raw: object, where: str) -> list[PropertyValue]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Invalid(f"{where}.property_values must be an array")
    out: list[PropertyValue] = []
    for j, pv in enumerate(raw):
        at = f"{where}.property_values[{j}]"
        if not isinstance(pv, dict):
            raise Invalid(f"{at} must be an object")
        pid = pv.get("property_id")
        if not is_int(pid) or pid < 1:
            raise Invalid(f"{at}.property_id must be a positive integer")
        values = pv.get("values")
        if (
            not isinstance(values, list)
            or len(values) != 1
            or not isinstance(values[0], str)
            or not values[0].strip()
        ):
            raise Invalid(f"{at}.values must hold exactly one non-empty string")
        if "(" in values[0] or ")" in values[0]:
            raise Invalid(f"{at}.values: parenthesis characters are not allowed")
        name = pv.get("property_name")
        if name is not None and not isinstance(name, str):
            raise Invalid(f"{at}.property_name must be a string")
        if pid in CUSTOM_PROPERTIES and not (name or "").strip():
            raise Invalid(f"{at}.property_name is required for a custom property ({pid})")
        ids = pv.get("value_ids", [])
        if not isinstance(ids, list) or not all(is_int(i) and i > 0 for i in ids):
            raise Invalid(f"{at}.value_ids must be an array of positive integers")
        scale = pv.get("scale_id")
        if scale is not None and (not is_int(scale) or scale < 1):
            raise Invalid(f"{at}.scale_id must be a positive integer")
        out.append(
            {
                "property_id": pid,
                "property_name": name,
                "scale_id": scale,
                "scale_name": None,
                "value_ids": list(ids) or [value_id(pid, values[0])],
                "values": [values[0]],
            }
        )
    return out


def _sku(where: str, product: dict[str, Any]) -> str:
    sku = product.get("sku") or ""
    if not isinstance(sku, str):
        raise Invalid(f"{where}.sku must be a string")
    if len(sku) > MAX_SKU:
        raise Invalid(f"{where}.sku must be at most {MAX_SKU} characters")
    return sku


def _offering(where: str, product: dict[str, Any], listing: Listing) -> Offering:
    offerings = product.get("offerings")
    if not isinstance(offerings, list) or len(offerings) != 1:
        raise Invalid(f"{where}.offerings must hold exactly one offering")
    offering = offerings[0]
    if not isinstance(offering, dict):
        raise Invalid(f"{where}.offerings[0] must be an object")
    price = price_cents(offering.get("price"), f"{where}.offerings[0].price")
    quantity = offering.get("quantity")
    if not is_int(quantity) or not 0 <= quantity <= MAX_QUANTITY:
        raise Invalid(f"{where}.offerings[0].quantity must be an integer from 0 to 999")
    enabled = offering.get("is_enabled", True)
    if not isinstance(enabled, bool):
        raise Invalid(f"{where}.offerings[0].is_enabled must be a boolean")
    readiness = offering.get("readiness_state_id", listing.fields.get("readiness_state_id"))
    if readiness is not None and (not is_int(readiness) or readiness < 1):
        raise Invalid(f"{where}.offerings[0].readiness_state_id must be a positive integer")
    return {
        "offering_id": new_id(),
        "quantity": quantity,
        "is_enabled": enabled,
        "is_deleted": False,
        "price": money(price),
        "readiness_state_id": readiness,
    }


class _Variations:
    """What the products of one inventory must agree on: the same properties, each
    combination of values once, at most ``most`` properties."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.property_ids: tuple[int, ...] | None = None
        self.combos: set[tuple[str, ...]] = set()

    def check(self, where: str, values: list[PropertyValue]) -> None:
        ids = tuple(v["property_id"] for v in values)
        if len(set(ids)) != len(ids):
            raise Invalid(f"{where}.property_values names a property twice")
        if len(ids) > self.most:
            raise Invalid(f"A listing may vary on at most {self.most} properties")
        if self.property_ids is None:
            self.property_ids = ids
        elif set(ids) != set(self.property_ids):
            raise Invalid(f"{where} must have values for the same properties as products[0]")
        combo = tuple(v["values"][0] for v in sorted(values, key=lambda v: v["property_id"]))
        if combo in self.combos:
            raise Invalid(f"{where} repeats the property values {list(combo)}")
        self.combos.add(combo)


def _product(i: int, product: object, listing: Listing, seen: _Variations) -> InventoryProduct:
    where = f"products[{i}]"
    if not isinstance(product, dict):
        raise Invalid(f"{where} must be an object")
    sku = _sku(where, product)
    values = property_values(product.get("property_values"), where)
    seen.check(where, values)
    offering = _offering(where, product, listing)
    return {
        "product_id": new_id(),
        "sku": sku,
        "is_deleted": False,
        "offerings": [offering],
        "property_values": values,
    }


_VARYING: tuple[tuple[str, Callable[[InventoryProduct], object]], ...] = (
    ("price_on_property", lambda p: p["offerings"][0]["price"]["amount"]),
    ("quantity_on_property", lambda p: p["offerings"][0]["quantity"]),
    ("sku_on_property", lambda p: p["sku"]),
    ("readiness_state_on_property", lambda p: p["offerings"][0]["readiness_state_id"]),
)


def _on_property(
    body: dict[str, Any],
    key: str,
    value_of: Callable[[InventoryProduct], object],
    stored: list[InventoryProduct],
    used: set[int],
) -> list[int]:
    listed = body.get(key, [])
    if not isinstance(listed, list) or not all(is_int(x) for x in listed):
        raise Invalid(f"{key} must be an array of property ids")
    unknown = sorted(set(listed) - used)
    if unknown:
        raise Invalid(f"{key} names properties {unknown} that no product has")
    # What varies between products must depend only on the properties listed.
    seen: dict[tuple[str, ...], object] = {}
    for p in stored:
        group = tuple(v["values"][0] for v in p["property_values"] if v["property_id"] in listed)
        value = value_of(p)
        if seen.setdefault(group, value) != value:
            what = key.removesuffix("_on_property")
            raise Invalid(
                f"products differ in {what} but {key} does not name the property it "
                f"depends on ({key}={listed})"
            )
    return list(listed)


def inventory(body: object, listing: Listing, max_variations: int) -> Inventory:
    """Validate an updateListingInventory body like Etsy; the inventory to store."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object")
    products = body.get("products")
    if not isinstance(products, list) or not products:
        raise Invalid("products is required and must be a non-empty array")
    seen = _Variations(max_variations)
    stored = [_product(i, p, listing, seen) for i, p in enumerate(products)]
    if not any(p["offerings"][0]["is_enabled"] for p in stored):
        raise Invalid("At least one offering must be enabled")
    used = set(seen.property_ids or ())
    on_property = {
        key: _on_property(body, key, value_of, stored, used) for key, value_of in _VARYING
    }
    return {
        "products": stored,
        "price_on_property": on_property["price_on_property"],
        "quantity_on_property": on_property["quantity_on_property"],
        "sku_on_property": on_property["sku_on_property"],
        "readiness_state_on_property": on_property["readiness_state_on_property"],
    }


ImageInfo = tuple[int, int, str, tuple[int, int, int]]


def image_info(data: bytes) -> ImageInfo:
    """Width, height, extension and average colour of an image Etsy accepts."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            r, g, b = img.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise Invalid("image is not a valid image file") from exc
    ext = IMAGE_FORMATS.get(fmt)
    if ext is None:
        raise Invalid(f"image format {fmt or 'unknown'} is not supported; use JPEG, PNG or GIF")
    return width, height, ext, (int(r), int(g), int(b))


def includes(request: Request) -> tuple[str, ...]:
    raw = request.query_params.getlist("includes") + request.query_params.getlist("includes[]")
    names = tuple(n.strip() for value in raw for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in INCLUDES]
    if unknown:
        raise Invalid(f"includes must be among {', '.join(INCLUDES)}; got {unknown}")
    return names


def positive_id(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise Invalid(f"{name} must be a positive integer, got {raw!r}")
    return value


# --------------------------------------------------------------------------------------------
# Books


def hsv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """Etsy's hue (0-360), saturation and brightness (0-100) of an average colour."""
    high, low = max(r, g, b), min(r, g, b)
    value = round(high / 255 * 100)
    saturation = 0 if high == 0 else round((high - low) / high * 100)
    if high == low:
        return 0, saturation, value
    span = high - low
    if high == r:
        hue = 60 * (((g - b) / span) % 6)
    elif high == g:
        hue = 60 * ((b - r) / span + 2)
    else:
        hue = 60 * ((r - g) / span + 4)
    return round(hue) % 360, saturation, value
