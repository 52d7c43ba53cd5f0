"""The Meta simulator's books (``GET /_sim/books``) as the chaos test reads them.

A product listed on Meta is an item group (``item_group_id`` = the Printify product id) in the
catalog: one item per variant. It is live when one of its items is visible to shoppers (not
``staging``: a seller's unpublish) and not rejected in review; items a batch refused were never
saved, so they are not in the books at all."""

from __future__ import annotations

import collections
from typing import Any, cast


def _catalogs(books: dict[str, object]) -> dict[str, dict[str, Any]]:
    return cast(dict[str, dict[str, Any]], books.get("catalogs") or {})


def live_listings(books: dict[str, object]) -> collections.Counter[str]:
    """Printify product id -> live listings of it (item groups with a live item)."""
    counts: collections.Counter[str] = collections.Counter()
    for catalog in _catalogs(books).values():
        live_groups = {
            str(item["item_group_id"])
            for item in catalog.get("items", [])
            if item.get("item_group_id")
            and item.get("review_status") != "rejected"
            and item.get("visibility", "published") != "staging"
        }
        counts.update(live_groups)
    return counts


def duplicates(books: dict[str, object]) -> list[object]:
    """The simulator's duplicates: two items of one item group for the same variant."""
    return [d for catalog in _catalogs(books).values() for d in catalog.get("duplicates", [])]
