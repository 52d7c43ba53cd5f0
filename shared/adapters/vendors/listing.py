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

from shared.adapters.vendors.printify.models import Product, ProductVariant


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


def draft_from_printify(product: Product) -> ListingDraft:
    """The draft of a Printify product (``GET /v1/shops/{shop}/products/{id}.json``): its enabled
    variants with their option values, and its mockups (the default first).

    Raises ValueError when the product has nothing to sell (no enabled variant)."""
    names: dict[int, tuple[str, str]] = {}  # option value id -> (option name, value title)
    options: list[tuple[str, tuple[str, ...]]] = []
    enabled = [v for v in product.variants if v.is_enabled]
    used = {vid for v in enabled for vid in v.options}
    for option in product.options:
        values = [val for val in option.values if val.id in used]
        for val in values:
            names[val.id] = (option.name, val.title)
        if values:
            options.append((option.name, tuple(val.title for val in values)))
    variants = tuple(
        DraftVariant(
            sku=v.sku or str(v.id),
            price_cents=_price(product, v),
            options=tuple(names[o] for o in v.options if o in names),
        )
        for v in enabled
    )
    if not variants:
        raise ValueError(f"product {product.id} has no enabled variant to sell")
    images = sorted(product.images, key=lambda i: not i.is_default)
    return ListingDraft(
        marker=product.id,
        title=(product.title or "").strip(),
        description=_plain(product.description or ""),
        tags=tuple(product.tags),
        options=tuple(options),
        variants=variants,
        images=tuple(dict.fromkeys(i.src for i in images if i.src)),
    )


def _price(product: Product, variant: ProductVariant) -> int:
    if variant.price is None:
        raise ValueError(f"product {product.id}: enabled variant {variant.id} has no price")
    return variant.price
