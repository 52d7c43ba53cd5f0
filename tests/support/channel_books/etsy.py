"""The Etsy simulator's books: active listings, found by the engine's marker tag."""

from __future__ import annotations

from collections import Counter

from shared.adapters.vendors.etsy import MARKER_PREFIX, marker_tag
from tests.support.channel_books import Books

marker = marker_tag


def live_listings(books: Books) -> Counter[str]:
    return Counter(
        tag
        for shop in books["shops"].values()
        for listing in shop["listings"]
        if listing["state"] == "active"
        for tag in listing["tags"]
        if tag.startswith(MARKER_PREFIX)
    )


def duplicates(books: Books) -> list[object]:
    return list(books["duplicates"])
