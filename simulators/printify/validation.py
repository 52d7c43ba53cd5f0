"""The request checks Printify documents (or answers with): each raises :class:`Invalid` with
the reason Printify's ``errors.reason`` carries, or returns what it read, typed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from fastapi import Request

from simulators.printify.catalog import BLUEPRINTS, PROVIDERS, CatalogVariant
from simulators.printify.errors import Invalid
from simulators.printify.state import External, PlacedImage, Placeholder, PrintArea, Upload
from simulators.printify.webhooks import WEBHOOK_TOPICS

MAX_PRODUCTS_PAGE = 50  # Printify caps ``limit`` at 50 for products...
MAX_UPLOADS_PAGE = 100  # ...and at 100 for uploads.


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_int(body: dict[str, object], key: str) -> int:
    value = body.get(key)
    if not is_int(value):
        raise Invalid(f"{key} is required and must be an integer")
    return value


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def json_body(request: Request) -> dict[str, object] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def require_body(request: Request) -> dict[str, object]:
    body = await json_body(request)
    if body is None:
        raise Invalid("The request body must be a JSON object")
    return body


def page_params(request: Request, max_limit: int, default_limit: int) -> tuple[int, int]:
    """``(page, limit)`` from the query."""
    try:
        page = int(request.query_params.get("page", "1"))
        limit = int(request.query_params.get("limit", str(default_limit)))
    except ValueError as exc:
        raise Invalid("page and limit must be integers") from exc
    if page < 1:
        raise Invalid("The page must be at least 1.")
    if not 1 <= limit <= max_limit:
        raise Invalid(f"The limit may not be greater than {max_limit}.")
    return page, limit


@dataclass(frozen=True)
class ProductHeader:
    """A create body's fields besides its variants and print areas."""

    title: str
    description: str
    tags: list[str]
    blueprint_id: int
    print_provider_id: int


def product_header(body: dict[str, object]) -> ProductHeader:
    title, description = body.get("title"), body.get("description")
    if not isinstance(title, str) or not title.strip():
        raise Invalid("title is required")
    if not isinstance(description, str):
        raise Invalid("description is required")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise Invalid("tags must be a list of strings")
    bp_id = require_int(body, "blueprint_id")
    pp_id = require_int(body, "print_provider_id")
    if bp_id not in BLUEPRINTS:
        raise Invalid(f"blueprint_id {bp_id} does not exist")
    if pp_id not in PROVIDERS[bp_id]:
        raise Invalid(f"print_provider_id {pp_id} is not available for blueprint {bp_id}")
    return ProductHeader(title, description, list(tags), bp_id, pp_id)


@dataclass(frozen=True)
class SentVariant:
    """A variant as a create body sends it."""

    variant: CatalogVariant
    price: int
    enabled: bool
    sku: str | None


def _id_and_price(i: int, item: dict[str, object], catalog: dict[int, CatalogVariant]) -> int:
    vid, price = item.get("id"), item.get("price")
    if not is_int(vid):
        raise Invalid(f"variants.{i}.id must be an integer")
    if not is_int(price):
        # Printify takes prices in cents: 19.99 or "19.99" is rejected, not rounded.
        raise Invalid(f"variants.{i}.price must be an integer (price in cents)")
    if price <= 0:
        raise Invalid(f"variants.{i}.price must be positive")
    if vid not in catalog:
        raise Invalid(f"variants.{i}.id {vid} is not available for this print provider")
    return vid


def _enabled_and_sku(i: int, item: dict[str, object]) -> tuple[bool, str | None]:
    enabled = item.get("is_enabled", True)
    if not isinstance(enabled, bool):
        raise Invalid(f"variants.{i}.is_enabled must be a boolean")
    sku = item.get("sku")
    if sku is not None and (not isinstance(sku, str) or not sku):
        raise Invalid(f"variants.{i}.sku must be a non-empty string")
    return enabled, sku


def validate_variants(raw: object, catalog: dict[int, CatalogVariant]) -> list[SentVariant]:
    if not isinstance(raw, list) or not raw:
        raise Invalid("variants is required and must be a non-empty list")
    out: list[SentVariant] = []
    seen: set[int] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise Invalid(f"variants.{i} must be an object")
        vid = _id_and_price(i, item, catalog)
        if vid in seen:
            raise Invalid(f"variants.{i}.id {vid} is duplicated")
        seen.add(vid)
        enabled, sku = _enabled_and_sku(i, item)
        out.append(SentVariant(catalog[vid], int(item["price"]), enabled, sku))
    return out


def _placed_image(where: str, k: int, img: object, uploads: dict[str, Upload]) -> PlacedImage:
    if not isinstance(img, dict) or not isinstance(img.get("id"), str):
        raise Invalid(f"{where}.images.{k}.id is required")
    upload = uploads.get(img["id"])
    if upload is None:
        raise Invalid(f"{where}.images.{k}.id {img['id']} is not an uploaded image")
    numbers: dict[str, float] = {}
    for key in ("x", "y", "scale", "angle"):
        value = img.get(key)
        if not is_number(value):
            raise Invalid(f"{where}.images.{k}.{key} must be a number")
        numbers[key] = value
    if numbers["scale"] <= 0:
        raise Invalid(f"{where}.images.{k}.scale must be positive")
    return {
        "id": upload.id,
        "name": upload.file_name,
        "type": upload.mime_type,
        "height": upload.height,
        "width": upload.width,
        "x": numbers["x"],
        "y": numbers["y"],
        "scale": numbers["scale"],
        "angle": numbers["angle"],
    }


def _placeholder(
    where: str, ph: object, positions: set[str], uploads: dict[str, Upload]
) -> Placeholder:
    if not isinstance(ph, dict) or ph.get("position") not in positions:
        raise Invalid(f"{where}.position must be one of {sorted(positions)}")
    images = ph.get("images")
    if not isinstance(images, list):
        raise Invalid(f"{where}.images must be a list")
    placed = [_placed_image(where, k, img, uploads) for k, img in enumerate(images)]
    return {"position": str(ph["position"]), "images": placed}


def _print_area(
    i: int,
    area: object,
    variant_ids: set[int],
    catalog: dict[int, CatalogVariant],
    uploads: dict[str, Upload],
) -> PrintArea:
    if not isinstance(area, dict):
        raise Invalid(f"print_areas.{i} must be an object")
    vids = area.get("variant_ids")
    if not isinstance(vids, list) or not vids or not all(is_int(v) for v in vids):
        raise Invalid(f"print_areas.{i}.variant_ids must be a non-empty list of integers")
    unknown = [v for v in vids if v not in variant_ids]
    if unknown:
        raise Invalid(f"print_areas.{i}.variant_ids {unknown} are not in the variants")
    positions = {p for v in vids for p, _, _ in catalog[v].placeholders}
    placeholders = area.get("placeholders")
    if not isinstance(placeholders, list) or not placeholders:
        raise Invalid(f"print_areas.{i}.placeholders must be a non-empty list")
    return {
        "variant_ids": list(vids),
        "placeholders": [
            _placeholder(f"print_areas.{i}.placeholders.{j}", ph, positions, uploads)
            for j, ph in enumerate(placeholders)
        ],
    }


def validate_print_areas(
    raw: object,
    variant_ids: set[int],
    catalog: dict[int, CatalogVariant],
    uploads: dict[str, Upload],
) -> list[PrintArea]:
    if not isinstance(raw, list) or not raw:
        raise Invalid("print_areas is required and must be a non-empty list")
    areas = [_print_area(i, a, variant_ids, catalog, uploads) for i, a in enumerate(raw)]
    if not any(ph["images"] for area in areas for ph in area["placeholders"]):
        raise Invalid("print_areas must place at least one image")
    return areas


@dataclass(frozen=True)
class VariantChange:
    """A variant as an update body sends it; None is a field left out."""

    id: int
    price: int | None
    enabled: bool | None
    sku: str | None


def update_fields(body: dict[str, object]) -> None:
    """The title, description and tags of an update body."""
    for key in ("title", "description"):
        value = body.get(key)
        if key in body and (not isinstance(value, str) or not value.strip()):
            raise Invalid(f"{key} must be a non-empty string")
    tags = body.get("tags")
    if "tags" in body and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise Invalid("tags must be a list of strings")


def _variant_change(i: int, item: object, own: set[int]) -> VariantChange:
    if not isinstance(item, dict) or not is_int(item.get("id")):
        raise Invalid(f"variants.{i}.id must be an integer")
    vid = int(item["id"])
    if vid not in own:
        raise Invalid(f"variants.{i}.id {vid} is not a variant of this product")
    price, enabled, sku = item.get("price"), item.get("is_enabled"), item.get("sku")
    if price is not None and (not is_int(price) or price <= 0):
        raise Invalid(f"variants.{i}.price must be a positive integer (cents)")
    if enabled is not None and not isinstance(enabled, bool):
        raise Invalid(f"variants.{i}.is_enabled must be a boolean")
    if sku is not None and (not isinstance(sku, str) or not sku):
        raise Invalid(f"variants.{i}.sku must be a non-empty string")
    return VariantChange(vid, price, enabled, sku)


def variant_changes(raw: object, own: set[int]) -> list[VariantChange]:
    """The ``variants`` of an update body, each a variant of the product (ids ``own``)."""
    if not isinstance(raw, list) or not raw:
        raise Invalid("variants must be a non-empty list")
    return [_variant_change(i, item, own) for i, item in enumerate(raw)]


def publish_body(body: dict[str, object]) -> None:
    """A publish call says which parts to publish, each a boolean."""
    for key in ("title", "description", "images", "variants", "tags"):
        if not isinstance(body.get(key), bool):
            raise Invalid(f"{key} is required and must be a boolean")
    for key in ("keyFeatures", "shipping_template"):
        if key in body and not isinstance(body[key], bool):
            raise Invalid(f"{key} must be a boolean")


def external(body: dict[str, object] | None) -> External:
    """The ``external`` of a publishing_succeeded call."""
    raw = body.get("external") if body else None
    if not isinstance(raw, dict):
        raise Invalid("external.id and external.handle are required strings")
    ext_id, handle = raw.get("id"), raw.get("handle")
    if not isinstance(ext_id, str) or not ext_id or not isinstance(handle, str) or not handle:
        raise Invalid("external.id and external.handle are required strings")
    return {"id": ext_id, "handle": handle}


@dataclass(frozen=True)
class WebhookRequest:
    topic: str
    url: str
    secret: str | None


def webhook_request(body: dict[str, object]) -> WebhookRequest:
    topic, url, secret = body.get("topic"), body.get("url"), body.get("secret")
    if not isinstance(topic, str) or topic not in WEBHOOK_TOPICS:
        raise Invalid(f"topic must be one of {sorted(WEBHOOK_TOPICS)}")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise Invalid("url must be an http(s) URL")
    if secret is not None and not isinstance(secret, str):
        raise Invalid("secret must be a string")
    return WebhookRequest(topic, url, secret)
