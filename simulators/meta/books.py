"""``GET /_sim/books``: the catalog's items as Meta holds them, the batches and the usage."""

from __future__ import annotations

import collections
from typing import Any

from simulators.meta.state import MetaState


def books(state: MetaState) -> dict[str, Any]:
    """Per catalog: its items (retailer id, item group, review state, how often written), and
    the duplicates: two items of one item group for the same variant (size and color), which
    only an adapter that invents retailer ids can make (Meta keys items by retailer id)."""
    state.settle()
    catalogs: dict[str, Any] = {}
    for catalog_id, items in state.items.items():
        variants: dict[tuple[str, str, str], list[str]] = collections.defaultdict(list)
        for item in items.values():
            group = item.data.get("item_group_id", item.retailer_id)
            key = (group, item.data.get("size", ""), item.data.get("color", ""))
            variants[key].append(item.retailer_id)
        catalogs[catalog_id] = {
            "items": [
                {
                    "id": item.meta_id,
                    "retailer_id": item.retailer_id,
                    "item_group_id": item.data.get("item_group_id"),
                    "review_status": item.review_status,
                    "writes": item.writes,
                    "title": item.data.get("title"),
                    "price": item.data.get("price"),
                    "visibility": item.data.get("visibility", "published"),
                    "availability": item.data.get("availability"),
                    "link": item.data.get("link"),
                }
                for item in items.values()
            ],
            "duplicates": [
                {"item_group_id": g, "size": s, "color": c, "retailer_ids": ids}
                for (g, s, c), ids in variants.items()
                if len(ids) > 1
            ],
        }
    return {
        "catalogs": catalogs,
        "batches": {
            "total": len(state.batches),
            "pending": sum(1 for b in state.batches.values() if b.result is None),
            "errors": sum(
                len(b.result["errors"]) for b in state.batches.values() if b.result is not None
            ),
        },
        "usage": {
            kind: {"calls": len(u.calls), "throttled": u.throttled}
            for kind, u in state.usage.items()
        },
        "calls": state.calls,
    }
