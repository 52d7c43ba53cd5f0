"""What a sales channel lists: a product as a channel-neutral draft, read from Printify.

Printify makes the product (art, variants, production costs, prices, mockups). A channel the
engine sells on directly (Shopify, Etsy) lists that product under its own model; each adapter
turns a :class:`ListingDraft` into its API's calls. The draft's ``marker`` names the product on
every channel (a Shopify handle / metafield, an Etsy SKU), so an adapter finds a listing it made
before instead of making a second one on a redelivery.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DraftVariant:
    """One purchasable variant: its SKU, price and option values (option name -> value)."""

    sku: str
    price_cents: int
    options: tuple[tuple[str, str], ...]

    def option(self, name: str) -> str | None:
        """This variant's value of option ``name``."""
        return next((v for n, v in self.options if n == name), None)


@dataclass(frozen=True)
class ListingDraft:
    """A product ready to list: copy, options, enabled variants and images."""

    marker: str  # the Printify product id: stable, unique, the same on every channel
    title: str
    description: str  # plain text
    tags: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]  # (name, values in order)
    variants: tuple[DraftVariant, ...]
    images: tuple[str, ...]  # URLs, the default first

    @property
    def min_price_cents(self) -> int:
        return min(v.price_cents for v in self.variants)


def _plain(text: str) -> str:
    # Printify descriptions may hold HTML; channels get text (and escape it themselves).
    return html.unescape(re.sub(r"<[^>]+>", " ", text)).strip()


def draft_from_printify(product: dict[str, Any]) -> ListingDraft:
    """The draft of a Printify product (``GET /v1/shops/{shop}/products/{id}.json``): its enabled
    variants with their option values, and its mockups (the default first).

    Raises ValueError when the product has nothing to sell (no enabled variant)."""
    names: dict[int, tuple[str, str]] = {}  # option value id -> (option name, value title)
    options: list[tuple[str, tuple[str, ...]]] = []
    enabled = [v for v in product.get("variants") or [] if v.get("is_enabled")]
    used = {vid for v in enabled for vid in v.get("options") or []}
    for option in product.get("options") or []:
        values = [val for val in option.get("values") or [] if val.get("id") in used]
        for val in values:
            names[val["id"]] = (str(option["name"]), str(val["title"]))
        if values:
            options.append((str(option["name"]), tuple(str(val["title"]) for val in values)))
    variants = tuple(
        DraftVariant(
            sku=str(v.get("sku") or v["id"]),
            price_cents=int(v["price"]),
            options=tuple(names[o] for o in v.get("options") or [] if o in names),
        )
        for v in enabled
    )
    if not variants:
        raise ValueError(f"product {product.get('id')} has no enabled variant to sell")
    images = sorted(product.get("images") or [], key=lambda i: not i.get("is_default"))
    return ListingDraft(
        marker=str(product["id"]),
        title=str(product.get("title") or "").strip(),
        description=_plain(str(product.get("description") or "")),
        tags=tuple(str(t) for t in product.get("tags") or []),
        options=tuple(options),
        variants=variants,
        images=tuple(dict.fromkeys(str(i["src"]) for i in images if i.get("src"))),
    )
