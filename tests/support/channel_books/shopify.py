"""The Shopify simulator's books: products carrying the engine's marker metafield (the
Printify product id), live when they are active (a seller's unpublish leaves a DRAFT, a delete
nothing)."""

from __future__ import annotations

from collections import Counter

from tests.support.channel_books import Books


def live_listings(books: Books) -> Counter[str]:
    return Counter(
        str(p["marker"])
        for shop in books["shops"].values()
        for p in shop["products"]
        if p.get("marker") is not None and p.get("status") == "ACTIVE"
    )


def duplicates(books: Books) -> list[object]:
    return list(books["duplicates"])
