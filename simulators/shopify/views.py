"""Products and publications as the schema resolves them."""

from __future__ import annotations

import time
from typing import Any

from simulators.shopify.state import MediaFile, Product, Store


def _count(n: int) -> dict[str, Any]:
    return {"count": n, "precision": "EXACT"}


def publication_view(publication: dict[str, str]) -> dict[str, Any]:
    """A publication as the schema resolves it: its title on its (app) catalog."""
    return {
        "id": publication["id"],
        "name": publication["name"],
        "catalog": {
            "__typename": "AppCatalog",
            "id": publication["id"].replace("Publication", "AppCatalog"),
            "title": publication["name"],
        },
    }


def _media_view(m: MediaFile, now: float) -> dict[str, Any]:
    status = "READY" if now >= m["ready_at"] else "PROCESSING"
    return {"__typename": "MediaImage", "id": m["id"], "alt": m["alt"], "status": status}


def product_view(store: Store, product: Product | None) -> dict[str, Any] | None:
    """The product as the schema resolves it."""
    if product is None:
        return None
    now = time.monotonic()
    online = store.online_store()
    published = online in product.publications and product.status == "ACTIVE"
    metafields = product.metafields
    publications = _count(len(product.publications))
    return {
        "__typename": "Product",
        "id": product.id,
        "handle": product.handle,
        "title": product.title,
        "descriptionHtml": product.description_html,
        "vendor": product.vendor,
        "productType": product.product_type,
        "tags": product.tags,
        "status": product.status,
        "createdAt": product.created_at,
        "updatedAt": product.updated_at,
        "options": product.options,
        "onlineStoreUrl": f"https://{store.domain}/products/{product.handle}"
        if published
        else None,
        "variants": {
            "nodes": [{**v, "resourcePublicationsCount": publications} for v in product.variants]
        },
        "media": {"nodes": [_media_view(m, now) for m in product.media]},
        "metafield": lambda _info, key, namespace=None: next(
            (
                m
                for m in metafields
                if m["key"] == key and m["namespace"] == (namespace or "custom")
            ),
            None,
        ),
        "resourcePublicationsCount": publications,
    }
