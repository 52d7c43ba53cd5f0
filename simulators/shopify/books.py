"""``GET /_sim/books``: per shop, its products and what happened; duplicates; grants."""

from __future__ import annotations

import collections
from typing import Any

from simulators.shopify.state import Store


def books(stores: dict[str, Store], grants: collections.Counter[str]) -> dict[str, Any]:
    shops = {}
    duplicates = []
    for domain, store in stores.items():
        markers = collections.Counter(
            m["value"]
            for p in store.products.values()
            for m in p.metafields
            if m["key"] == "printify_product_id"
        )
        duplicates += [
            {"shop": domain, "marker": m, "count": n} for m, n in markers.items() if n > 1
        ]
        online = store.online_store()
        shops[domain] = {
            "requests": store.requests,
            "throttled": store.throttled,
            "unauthorized": store.unauthorized,
            "product_sets": store.product_sets,
            "created": store.created,
            "publishes": store.publishes,
            "updates": store.updates,
            "deletes": store.deletes,
            "variant_updates": store.variant_updates,
            "products": [
                {
                    "id": p.id,
                    "handle": p.handle,
                    "title": p.title,
                    "status": p.status,
                    "tags": p.tags,
                    "skus": [v["sku"] for v in p.variants],
                    "prices": [v["price"] for v in p.variants],
                    "files": len(p.media),
                    "published": online is not None and online in p.publications,
                    "marker": p.marker(),
                }
                for p in store.products.values()
            ],
        }
    return {"shops": shops, "duplicates": duplicates, "grants": dict(grants)}
