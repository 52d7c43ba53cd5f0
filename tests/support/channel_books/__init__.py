"""What each direct channel's simulator holds, as the chaos and end-to-end tests count it.

Every channel simulator serves its own books (``GET /_sim/books``) in its vendor's terms; each
module here, named after the channel, reads them the same two ways:

- ``live_listings(books) -> Counter[str]``: how many live listings (active, approved, in the
  catalog without errors) each product has, keyed by ``marker(product_id)``;
- ``duplicates(books) -> list[object]``: what the simulator itself found listed twice;
- optionally ``marker(product_id) -> str``: the key a product is counted under (its Printify
  product id unless the module says otherwise).
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Books = dict[str, Any]


@dataclass(frozen=True)
class ChannelBooks:
    """One channel's reading of its simulator's books."""

    live_listings: Callable[[Books], Counter[str]]
    duplicates: Callable[[Books], list[object]]
    marker: Callable[[str], str]


def _same(product_id: str) -> str:
    return product_id


def books_of(channel: str) -> ChannelBooks:
    """The reader of ``channel``'s books (``tests/support/channel_books/<channel>.py``)."""
    module = importlib.import_module(f"{__name__}.{channel}")
    return ChannelBooks(module.live_listings, module.duplicates, getattr(module, "marker", _same))
