"""What the Shopify simulator holds: the app whose client credentials the token endpoint
takes, the tokens it issued, and each shop's products, publications and leaky bucket."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict

DEFAULT_SHOP = "pod-engine-sim.myshopify.com"
ONLINE_STORE_NAME = "Online Store"
DEFAULT_PUBLICATIONS = (
    {"id": "gid://shopify/Publication/1", "name": ONLINE_STORE_NAME},
    {"id": "gid://shopify/Publication/2", "name": "Point of Sale"},
)


@dataclass
class App:
    """The Dev Dashboard app whose client credentials the token endpoint takes."""

    client_id: str
    client_secret: str
    scopes: frozenset[str]
    token_ttl_s: float
    installed: bool = True

    def view(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "scopes": sorted(self.scopes),
            "installed": self.installed,
            "token_ttl_s": self.token_ttl_s,
        }


@dataclass(frozen=True)
class Issued:
    """A token the token endpoint gave."""

    client_id: str
    scopes: frozenset[str]
    expires_at: float  # time.monotonic()


@dataclass
class Bucket:
    """Shopify's leaky bucket of query cost for one shop."""

    maximum: float
    restore_rate: float
    available: float
    at: float = field(default_factory=time.monotonic)

    def refill(self) -> float:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        self.at = now
        return self.available

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": round(self.available, 1),
            "restoreRate": self.restore_rate,
        }


class OptionValue(TypedDict):
    name: str


class ProductOption(TypedDict):
    name: str
    position: int
    optionValues: list[OptionValue]  # the schema's names, camelCase


class SelectedOption(TypedDict):
    name: str
    value: str


class Variant(TypedDict):
    id: str
    title: str
    sku: str | None
    price: str
    selectedOptions: list[SelectedOption]


class MediaFile(TypedDict):
    id: str
    alt: str | None
    originalSource: str
    ready_at: float  # time.monotonic() when processing ends


class Metafield(TypedDict):
    namespace: str
    key: str
    value: str
    type: str


@dataclass
class Product:
    """A product of a shop, as productSet made it."""

    id: str
    created_at: str
    updated_at: str
    title: str
    handle: str
    vendor: str
    options: list[ProductOption]
    variants: list[Variant]
    media: list[MediaFile]
    metafields: list[Metafield]
    product_type: str = ""
    description_html: str = ""
    tags: list[str] = field(default_factory=list)
    status: str = "ACTIVE"
    publications: set[str] = field(default_factory=set)

    def marker(self) -> str | None:
        """The engine's marker metafield (the Printify product it came from), if any."""
        return next(
            (m["value"] for m in self.metafields if m["key"] == "printify_product_id"), None
        )


@dataclass
class Store:
    """One shop: its products, and what happened to it."""

    domain: str
    bucket: Bucket
    products: dict[str, Product] = field(default_factory=dict)  # gid -> product
    next_id: int = 1000
    requests: int = 0
    throttled: int = 0
    product_sets: int = 0
    created: int = 0
    publishes: int = 0
    unauthorized: int = 0
    updates: int = 0  # productUpdate
    deletes: int = 0  # productDelete
    variant_updates: int = 0  # productVariantsBulkUpdate
    publications: list[dict[str, str]] = field(
        default_factory=lambda: [dict(p) for p in DEFAULT_PUBLICATIONS]
    )

    def online_store(self) -> str | None:
        """The id of the shop's Online Store publication (products on it have a URL)."""
        return next((p["id"] for p in self.publications if p["name"] == ONLINE_STORE_NAME), None)

    def new_id(self, kind: str) -> str:
        self.next_id += 1
        return f"gid://shopify/{kind}/{self.next_id}{secrets.randbelow(1000):03d}"

    def by_handle(self, handle: str) -> Product | None:
        return next((p for p in self.products.values() if p.handle == handle), None)

    def by_custom_id(self, namespace: str | None, key: str, value: str) -> Product | None:
        for p in self.products.values():
            for m in p.metafields:
                if (m["namespace"], m["key"], m["value"]) == (namespace or "custom", key, value):
                    return p
        return None
