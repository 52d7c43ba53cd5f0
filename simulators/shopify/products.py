"""``productSet`` as Shopify runs it: an upsert by identifier, every list field replaced,
refused with Shopify's ``userErrors`` (:class:`Invalid`)."""

from __future__ import annotations

import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators.shopify.state import (
    MediaFile,
    Metafield,
    Product,
    ProductOption,
    Store,
    Variant,
)

_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "product"


class Invalid(Exception):
    """A userError: the path of the input field and Shopify's message and code."""

    def __init__(self, path: list[str], message: str, code: str) -> None:
        super().__init__(message)
        self.path, self.message, self.code = path, message, code


def _money(raw: object, path: list[str]) -> str:
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise Invalid(path, "Price is invalid", "INVALID_VARIANT") from None
    if value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Invalid(path, "Price must be a decimal amount of at least 0", "INVALID_VARIANT")
    return f"{value:.2f}"


def _options(raw: list[dict[str, Any]] | None) -> list[ProductOption]:
    options = raw or []
    if len(options) > 3:
        raise Invalid(
            ["input", "productOptions"],
            "Options count is over the allowed limit of 3",
            "OPTIONS_OVER_LIMIT",
        )
    seen: set[str] = set()
    out: list[ProductOption] = []
    for i, option in enumerate(options):
        name = (option.get("name") or "").strip()
        if not name:
            raise Invalid(
                ["input", "productOptions", str(i), "name"],
                "Option name can't be blank",
                "INVALID_INPUT",
            )
        if name in seen:
            raise Invalid(
                ["input", "productOptions", str(i)],
                f"Duplicated option name '{name}'",
                "DUPLICATED_OPTION_NAME",
            )
        seen.add(name)
        values = [(v.get("name") or "").strip() for v in option.get("values") or []]
        if not values or not all(values):
            raise Invalid(
                ["input", "productOptions", str(i), "values"],
                "Option values can't be blank",
                "OPTION_VALUES_MISSING",
            )
        out.append(
            {
                "name": name,
                "position": option.get("position") or i + 1,
                "optionValues": [{"name": v} for v in dict.fromkeys(values)],
            }
        )
    return out


def _variants(
    raw: list[dict[str, Any]] | None, options: list[ProductOption], store: Store
) -> list[Variant]:
    declared = {o["name"]: {v["name"] for v in o["optionValues"]} for o in options}
    seen: set[tuple[tuple[str, str], ...]] = set()
    out: list[Variant] = []
    for i, variant in enumerate(raw or []):
        path = ["input", "variants", str(i)]
        chosen: dict[str, str] = {}
        for value in variant.get("optionValues") or []:
            name, val = value.get("optionName"), value.get("name")
            if name not in declared:
                raise Invalid(
                    [*path, "optionValues"],
                    f"Option '{name}' does not exist",
                    "OPTION_DOES_NOT_EXIST",
                )
            if val not in declared[name]:
                raise Invalid(
                    [*path, "optionValues"],
                    f"Option value '{val}' does not exist on option '{name}'",
                    "OPTION_VALUE_DOES_NOT_EXIST",
                )
            chosen[name] = val
        if set(chosen) != set(declared):
            raise Invalid(
                [*path, "optionValues"],
                "Variant must have a value for every product option",
                "INVALID_VARIANT",
            )
        combo = tuple(sorted(chosen.items()))
        if combo in seen:
            raise Invalid(
                path,
                f"The variant '{' / '.join(chosen.values())}' already exists.",
                "INVALID_VARIANT",
            )
        seen.add(combo)
        sku = (variant.get("inventoryItem") or {}).get("sku") or variant.get("sku")
        out.append(
            {
                "id": store.new_id("ProductVariant"),
                "title": " / ".join(chosen[o["name"]] for o in options) or "Default Title",
                "sku": sku,
                "price": _money(variant.get("price", "0"), [*path, "price"]),
                "selectedOptions": [
                    {"name": o["name"], "value": chosen[o["name"]]} for o in options
                ],
            }
        )
    return out


def _files(raw: list[dict[str, Any]] | None, store: Store, ready_at: float) -> list[MediaFile]:
    out: list[MediaFile] = []
    for i, f in enumerate(raw or []):
        source = f.get("originalSource") or ""
        if not re.match(r"^https?://[^\s/]+/\S*$", source):
            raise Invalid(
                ["input", "files", str(i), "originalSource"],
                "Original source is not a valid URL",
                "INVALID_INPUT",
            )
        out.append(
            {
                "id": store.new_id("MediaImage"),
                "alt": f.get("alt"),
                "originalSource": source,
                "ready_at": ready_at,
            }
        )
    return out


def _existing(store: Store, ident: dict[str, Any]) -> Product | None:
    """The product ``identifier`` names (by id, handle or customId metafield), or None."""
    if ident.get("id"):
        existing = store.products.get(ident["id"])
        if existing is None:
            raise Invalid(["identifier", "id"], "Product does not exist", "PRODUCT_DOES_NOT_EXIST")
        return existing
    if ident.get("handle"):
        return store.by_handle(ident["handle"])
    if ident.get("customId"):
        c = ident["customId"]
        return store.by_custom_id(c.get("namespace"), c["key"], c["value"])
    return None


def _title(data: dict[str, Any], existing: Product | None) -> str:
    title = data.get("title", existing.title if existing else None)
    if not title or not str(title).strip():
        raise Invalid(["input", "title"], "Title can't be blank", "INVALID_PRODUCT")
    if len(title) > 255:
        raise Invalid(
            ["input", "title"], "Title is too long (maximum is 255 characters)", "INVALID_PRODUCT"
        )
    return str(title)


def _handle(
    store: Store,
    data: dict[str, Any],
    ident: dict[str, Any],
    existing: Product | None,
    title: str,
) -> str:
    handle = data.get("handle") or (existing.handle if existing else None)
    if handle is None:
        handle = ident.get("handle") or _slug(title)
        base, n = handle, 1
        while store.by_handle(handle) is not None:  # generated: made unique with a suffix
            n += 1
            handle = f"{base}-{n}"
    elif not _HANDLE.match(handle):
        raise Invalid(["input", "handle"], "Handle is invalid", "INVALID_PRODUCT")
    other = store.by_handle(handle)
    if other is not None and other is not existing:
        raise Invalid(
            ["input", "handle"],
            f"Handle '{handle}' already in use. Please provide a new handle.",
            "HANDLE_NOT_UNIQUE",
        )
    return str(handle)


def _default_variant(store: Store) -> Variant:
    return {
        "id": store.new_id("ProductVariant"),
        "title": "Default Title",
        "sku": None,
        "price": "0.00",
        "selectedOptions": [],
    }


def _product_variants(
    store: Store,
    data: dict[str, Any],
    existing: Product | None,
    options: list[ProductOption],
) -> list[Variant]:
    if existing is not None and "variants" not in data:
        return list(existing.variants)
    variants = _variants(data.get("variants"), options, store)
    if variants:
        return variants
    if options:
        raise Invalid(
            ["input", "variants"],
            "Variants can't be blank when options are set",
            "VARIANTS_INPUT_MISSING",
        )
    return [_default_variant(store)]


def _metafields(data: dict[str, Any], existing: Product | None) -> list[Metafield]:
    if "metafields" not in data:
        return list(existing.metafields) if existing else []
    return [
        {
            "namespace": m.get("namespace") or "custom",
            "key": m["key"],
            "value": m["value"],
            "type": m.get("type") or "single_line_text_field",
        }
        for m in data.get("metafields") or []
    ]


def _scalars(product: Product, data: dict[str, Any]) -> None:
    """The fields productSet sets only when sent."""
    if data.get("descriptionHtml") is not None:
        product.description_html = str(data["descriptionHtml"])
    if data.get("vendor") is not None:
        product.vendor = str(data["vendor"])
    if data.get("productType") is not None:
        product.product_type = str(data["productType"])
    if data.get("status") is not None:
        product.status = str(data["status"])
    if data.get("tags") is not None:
        product.tags = sorted(dict.fromkeys(t.strip() for t in data["tags"] if t.strip()))


def product_set(store: Store, args: dict[str, Any], media_s: float) -> Product:
    """The ``productSet`` mutation: create or update, all list fields replaced."""
    data = args["input"]
    ident = args.get("identifier") or {}
    existing = _existing(store, ident)
    title = _title(data, existing)
    handle = _handle(store, data, ident, existing, title)
    options = (
        _options(data.get("productOptions"))
        if "productOptions" in data or existing is None
        else existing.options
    )
    variants = _product_variants(store, data, existing, options)
    files = (
        _files(data.get("files"), store, time.monotonic() + media_s)
        if "files" in data
        else (existing.media if existing else [])
    )
    metafields = _metafields(data, existing)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if existing is None:
        product = Product(
            id=store.new_id("Product"),
            created_at=stamp,
            updated_at=stamp,
            title=title,
            handle=handle,
            vendor=store.domain.split(".")[0],
            options=options,
            variants=variants,
            media=files,
            metafields=metafields,
        )
    else:
        product = existing
        product.title, product.handle, product.updated_at = title, handle, stamp
        product.options, product.variants = options, variants
        product.media, product.metafields = files, metafields
    _scalars(product, data)
    if existing is None:
        store.products[product.id] = product
        store.created += 1
    store.product_sets += 1
    return product
