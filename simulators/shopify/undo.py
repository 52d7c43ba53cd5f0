"""productUpdate (a product's status and copy), productDelete and productVariantsBulkUpdate (its
variants' prices), as Shopify's Admin API answers them: the schema's payloads, with userErrors
for what Shopify refuses (an unknown product or variant, a bad price) and nothing changed then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from simulators.shopify.products import Invalid, _money
from simulators.shopify.state import Product, Store, Variant

MISSING = "Product does not exist"
# What productUpdate's ProductUpdateInput sets here; Shopify's other fields (SEO, collections,
# metafields, ...) are not simulated and refused as such, never silently dropped.
_UPDATABLE = {"id", "status", "title", "tags", "descriptionHtml", "vendor", "productType"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def product_update(store: Store, product: dict[str, Any] | None) -> Product:
    """Apply ``ProductUpdateInput`` to the product it names; Invalid as Shopify's userError."""
    given = product or {}
    found = store.products.get(str(given.get("id") or ""))
    if found is None:
        raise Invalid(["id"], MISSING, "")
    # The schema's defaults (deleteConflictingConstrainedMetafields: false) come filled in.
    unknown = sorted(k for k, v in given.items() if k not in _UPDATABLE and v not in (None, False))
    if unknown:
        raise Invalid(["product", unknown[0]], "not simulated", "")
    if "title" in given and not str(given["title"] or "").strip():
        raise Invalid(["title"], "Title can't be blank", "")
    for attr, key in (
        ("status", "status"),
        ("title", "title"),
        ("tags", "tags"),
        ("description_html", "descriptionHtml"),
        ("vendor", "vendor"),
        ("product_type", "productType"),
    ):
        if key in given and given[key] is not None:
            setattr(found, attr, given[key])
    found.updated_at = _now()
    store.updates += 1
    return found


def product_delete(store: Store, product_id: str) -> str:
    """Delete the product; its id, or Invalid when there is none."""
    if store.products.pop(product_id, None) is None:
        raise Invalid(["id"], MISSING, "")
    store.deletes += 1
    return product_id


def variants_bulk_update(
    store: Store, product_id: str, variants: list[dict[str, Any]]
) -> tuple[Product, list[Variant]]:
    """Set the variants' prices, all or none (``allowPartialUpdates`` false, its default):
    Invalid with Shopify's code for the first bad one."""
    found = store.products.get(product_id)
    if found is None:
        raise Invalid(["productId"], MISSING, "PRODUCT_DOES_NOT_EXIST")
    by_id = {v["id"]: v for v in found.variants}
    changes: list[tuple[Variant, str]] = []
    for i, given in enumerate(variants):
        path = ["variants", str(i)]
        if not given.get("id"):
            raise Invalid(
                [*path, "id"], "Product variant id is missing", "PRODUCT_VARIANT_ID_MISSING"
            )
        variant = by_id.get(given["id"])
        if variant is None:
            raise Invalid(
                [*path, "id"], "Product variant does not exist", "PRODUCT_VARIANT_DOES_NOT_EXIST"
            )
        unknown = sorted(set(given) - {"id", "price"})
        if unknown:
            raise Invalid([*path, unknown[0]], "not simulated", "INVALID_INPUT")
        if "price" in given:
            raw = given["price"]
            try:
                price = _money(raw, [*path, "price"])
            except Invalid as exc:
                code = (
                    "NEGATIVE_PRICE_VALUE" if str(raw).strip().startswith("-") else "INVALID_INPUT"
                )
                raise Invalid(exc.path, exc.message, code) from None
            changes.append((variant, price))
    for variant, price in changes:
        variant["price"] = price
    found.updated_at = _now()
    store.variant_updates += 1
    return found, [v for v, _ in changes]
