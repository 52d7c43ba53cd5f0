"""The TikTok simulator's ``GET /_sim/books`` as the chaos test reads it: live products per
Printify product (the marker is the first SKU's seller SKU, ``pod-<Printify id>-01``) and the
simulator's own duplicate detection."""

from __future__ import annotations

import collections
from typing import Any

from shared.adapters.vendors.tiktok import MARKER_PREFIX

# Listed: TikTok's audit passed and the product is on sale (not under audit, refused,
# deactivated, frozen or deleted).
LIVE = "ACTIVATE"


def _printify_id(seller_skus: list[str]) -> str | None:
    for sku in seller_skus:
        if sku.startswith(MARKER_PREFIX) and sku.endswith("-01"):
            return sku[len(MARKER_PREFIX) : -len("-01")]
    return None


def live_listings(books: dict[str, object]) -> collections.Counter[str]:
    """Printify product id -> how many LIVE TikTok products carry it."""
    found: collections.Counter[str] = collections.Counter()
    shops: dict[str, Any] = books["shops"]  # type: ignore[assignment]
    for shop in shops.values():
        for product in shop["products"]:
            pid = _printify_id(list(product["seller_skus"]))
            if pid is not None and product["status"] == LIVE:
                found[pid] += 1
    return found


def duplicates(books: dict[str, object]) -> list[object]:
    """Seller SKUs on more than one product that is neither deleted nor refused."""
    return list(books["duplicates"])  # type: ignore[call-overload]
