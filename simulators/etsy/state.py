"""What the Etsy simulator holds: shops (with their processing and shipping profiles and
return policies), listings (fields, inventory, images), the apps that called, the seller
taxonomy and Etsy's per-app rate limits."""

from __future__ import annotations

import collections
import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from simulators.common import SlidingWindowLimiter
from simulators.common.control import Json, as_float, as_int
from simulators.etsy.rules import CURRENCY, RENEWAL_S


class Money(TypedDict):
    amount: int
    divisor: int
    currency_code: str


def money(cents: int) -> Money:
    return {"amount": cents, "divisor": 100, "currency_code": CURRENCY}


class Offering(TypedDict):
    offering_id: int
    quantity: int
    is_enabled: bool
    is_deleted: bool
    price: Money
    readiness_state_id: int | None


class PropertyValue(TypedDict):
    property_id: int
    property_name: str | None
    scale_id: int | None
    scale_name: str | None
    value_ids: list[int]
    values: list[str]


class InventoryProduct(TypedDict):
    product_id: int
    sku: str
    is_deleted: bool
    offerings: list[Offering]
    property_values: list[PropertyValue]


class Inventory(TypedDict):
    products: list[InventoryProduct]
    price_on_property: list[int]
    quantity_on_property: list[int]
    sku_on_property: list[int]
    readiness_state_on_property: list[int]


def empty_inventory() -> Inventory:
    return {
        "products": [],
        "price_on_property": [],
        "quantity_on_property": [],
        "sku_on_property": [],
        "readiness_state_on_property": [],
    }


class ProcessingProfile(TypedDict):
    shop_id: int
    readiness_state_id: int
    readiness_state: str
    min_processing_days: int
    max_processing_days: int
    processing_days_display_label: str


class ReturnPolicy(TypedDict):
    return_policy_id: int
    shop_id: int
    accepts_returns: bool
    accepts_exchanges: bool
    return_deadline: int


class TaxonomyNode(TypedDict):
    id: int
    level: int
    name: str
    parent_id: int | None
    children: list[TaxonomyNode]
    full_path_taxonomy_ids: list[int]


def new_id() -> int:
    return secrets.randbelow(9 * 10**9) + 10**9


def value_id(property_id: int, value: str) -> int:
    """A stable id for a custom property value (Etsy assigns them on first use)."""
    digest = hashlib.sha256(f"{property_id}:{value}".encode()).hexdigest()
    return int(digest[:9], 16) + 1


@dataclass
class Listing:
    """One listing: its ShopListing fields, inventory and images."""

    listing_id: int
    shop_id: int
    user_id: int
    fields: dict[str, Any]
    state: str = "draft"
    created: int = field(default_factory=lambda: int(time.time()))
    updated: int = field(default_factory=lambda: int(time.time()))
    state_changed: int = field(default_factory=lambda: int(time.time()))
    # Etsy's document gives every listing an integer ending_timestamp (not nullable): for a
    # draft, when it would end if activated now; set again on activation.
    ending: int = field(default_factory=lambda: int(time.time()) + RENEWAL_S)
    inventory: Inventory = field(default_factory=empty_inventory)
    images: list[dict[str, Any]] = field(default_factory=list)

    def enabled_offerings(self) -> list[Offering]:
        return [
            p["offerings"][0] for p in self.inventory["products"] if p["offerings"][0]["is_enabled"]
        ]

    def quantity(self) -> int:
        return sum(o["quantity"] for o in self.enabled_offerings())

    def price_cents(self) -> int:
        prices = [o["price"]["amount"] for o in self.enabled_offerings()]
        return min(prices) if prices else 0

    def skus(self) -> list[str]:
        return [p["sku"] for p in self.inventory["products"] if p["sku"]]

    def set_state(self, state: str) -> None:
        now = int(time.time())
        self.state = state
        self.state_changed = self.updated = now
        if state == "active":
            self.ending = now + RENEWAL_S

    def as_json(self, includes: tuple[str, ...] = ()) -> dict[str, Any]:
        f = self.fields
        body: dict[str, Any] = {
            "listing_id": self.listing_id,
            "user_id": self.user_id,
            "shop_id": self.shop_id,
            "title": f["title"],
            "description": f["description"],
            "state": self.state,
            "creation_timestamp": self.created,
            "created_timestamp": self.created,
            "ending_timestamp": self.ending,
            "original_creation_timestamp": self.created,
            "last_modified_timestamp": self.updated,
            "updated_timestamp": self.updated,
            "state_timestamp": self.state_changed,
            "quantity": self.quantity(),
            "shop_section_id": f.get("shop_section_id"),
            "featured_rank": -1,
            "url": f"https://www.etsy.com/listing/{self.listing_id}",
            "num_favorers": 0,
            "non_taxable": not f.get("is_taxable", True),
            "is_taxable": f.get("is_taxable", True),
            "is_customizable": f.get("is_customizable", True),
            "is_personalizable": False,
            "listing_type": f.get("type", "physical"),
            "tags": list(f.get("tags") or []),
            "materials": list(f.get("materials") or []),
            "shipping_profile_id": f.get("shipping_profile_id"),
            "return_policy_id": f.get("return_policy_id"),
            "processing_min": f.get("processing_min"),
            "processing_max": f.get("processing_max"),
            "who_made": f.get("who_made"),
            "when_made": f.get("when_made"),
            "is_supply": f.get("is_supply", False),
            "item_weight": f.get("item_weight"),
            "item_weight_unit": f.get("item_weight_unit"),
            "item_length": f.get("item_length"),
            "item_width": f.get("item_width"),
            "item_height": f.get("item_height"),
            "item_dimensions_unit": f.get("item_dimensions_unit"),
            "is_private": False,
            "style": list(f.get("styles") or []),
            "file_data": "",
            "has_variations": any(p["property_values"] for p in self.inventory["products"]),
            "should_auto_renew": f.get("should_auto_renew", False),
            "language": "en-US",
            "price": money(self.price_cents()),
            "taxonomy_id": f.get("taxonomy_id"),
            "readiness_state_id": f.get("readiness_state_id"),
        }
        if "Images" in includes:
            body["images"] = [dict(i) for i in self.images]
        if "Inventory" in includes:
            body["inventory"] = json.loads(json.dumps(self.inventory))
        return body


@dataclass
class Shop:
    """A shop: its owner, its listings (in creation order), its shipping profiles, processing
    profiles and return policies, and what was done to its listings."""

    shop_id: int
    user_id: int = 1
    listing_ids: list[int] = field(default_factory=list)
    profiles: list[ProcessingProfile] = field(default_factory=list)
    shipping: list[dict[str, Any]] = field(default_factory=list)
    returns: list[ReturnPolicy] = field(default_factory=list)
    created: int = 0
    activated: int = 0
    deleted: int = 0
    inventory_updates: int = 0
    images_uploaded: int = 0


@dataclass
class App:
    """One API key (keystring): its requests and how many the rate limits refused."""

    requests: int = 0
    rate_limited: int = 0
    rate_limited_day: int = 0
    refused: int = 0  # by Etsy's document or for the token (4xx before any handler ran)
    accepted_at: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=100_000)
    )


PROFILE_KINDS = {
    "made_to_order": (1, 1, 3, "1-3 days"),
    "ready_to_ship": (2, 1, 1, "1 day"),
}


def processing_profiles(
    shop_id: int, kinds: tuple[str, ...] = ("made_to_order", "ready_to_ship")
) -> list[ProcessingProfile]:
    """A shop's processing profiles as Etsy shows them (ShopProcessingProfile): by default one
    made to order (id ``shop_id * 10 + 1``) and one ready to ship (``shop_id * 10 + 2``)."""
    out: list[ProcessingProfile] = []
    for readiness in kinds:
        n, low, high, label = PROFILE_KINDS[readiness]
        out.append(
            {
                "shop_id": shop_id,
                "readiness_state_id": shop_id * 10 + n,
                "readiness_state": readiness,
                "min_processing_days": low,
                "max_processing_days": high,
                "processing_days_display_label": label,
            }
        )
    return out


# Every shop's shipping profile unless configured otherwise (the engine's tests and `make up`
# name it in ETSY_SHIPPING_PROFILE_ID).
DEFAULT_SHIPPING_PROFILE_ID = 9001


def shipping_profile(shop: Shop, profile_id: int, title: str | None = None) -> dict[str, Any]:
    """A manual shipping profile from the US to everywhere (ShopShippingProfile)."""
    return {
        "shipping_profile_id": profile_id,
        "title": title or "Standard shipping",
        "user_id": shop.user_id,
        "origin_country_iso": "US",
        "is_deleted": False,
        "shipping_profile_destinations": [
            {
                "shipping_profile_destination_id": profile_id * 10 + 1,
                "shipping_profile_id": profile_id,
                "origin_country_iso": "US",
                "destination_country_iso": "US",
                "destination_region": "none",
                "primary_cost": money(499),
                "secondary_cost": money(199),
                "shipping_carrier_id": 0,
                "mail_class": None,
                "min_delivery_days": 3,
                "max_delivery_days": 7,
            },
            {
                "shipping_profile_destination_id": profile_id * 10 + 2,
                "shipping_profile_id": profile_id,
                "origin_country_iso": "US",
                "destination_country_iso": "",
                "destination_region": "none",
                "primary_cost": money(1499),
                "secondary_cost": money(499),
                "shipping_carrier_id": 0,
                "mail_class": None,
                "min_delivery_days": 7,
                "max_delivery_days": 21,
            },
        ],
        "shipping_profile_upgrades": [],
        "origin_postal_code": "10001",
        "profile_type": "manual",
        "domestic_handling_fee": 0,
        "international_handling_fee": 0,
    }


def return_policy(shop_id: int, policy_id: int) -> ReturnPolicy:
    """A 30-day returns and exchanges policy (ShopReturnPolicy)."""
    return {
        "return_policy_id": policy_id,
        "shop_id": shop_id,
        "accepts_returns": True,
        "accepts_exchanges": True,
        "return_deadline": 30,
    }


def _node(
    node_id: int, name: str, path: tuple[int, ...], children: tuple[TaxonomyNode, ...] = ()
) -> TaxonomyNode:
    return {
        "id": node_id,
        "level": len(path) - 1,
        "name": name,
        "parent_id": path[-2] if len(path) > 1 else None,
        "children": list(children),
        "full_path_taxonomy_ids": list(path),
    }


# A stand-in for Etsy's seller taxonomy (getSellerTaxonomyNodes), not a copy of it: the ids the
# engine names by default (shared.adapters.vendors.etsy.DEFAULT_TAXONOMY_IDS: 482 for T-shirts, and
# 2202 and 1062, which the engine calls best guesses) under parents of this simulator's own.
TAXONOMY: tuple[TaxonomyNode, ...] = (
    _node(1, "Accessories", (1,)),
    _node(
        374,
        "Clothing",
        (374,),
        (
            _node(482, "T-shirts", (374, 482)),
            _node(2202, "Hoodies & Sweatshirts", (374, 2202)),
        ),
    ),
    _node(891, "Home & Living", (891,), (_node(1062, "Mugs", (891, 1062)),)),
)


def taxonomy_ids(nodes: Iterable[TaxonomyNode] = TAXONOMY) -> set[int]:
    """Every node id of a taxonomy tree."""
    out: set[int] = set()
    for node in nodes:
        out.add(int(node["id"]))
        out |= taxonomy_ids(node["children"])
    return out


class EtsyState:
    """Shops and listings (any shop id, created on first use), the apps that called, and whose
    shop each user is (``default_shop``, unless a test said otherwise)."""

    def __init__(self, default_shop: int = 51234567) -> None:
        self.default_shop = default_shop
        self.shops: dict[int, Shop] = {}
        self.listings: dict[int, Listing] = {}
        self.apps: dict[str, App] = {}
        self.user_shops: dict[int, int] = {}

    def shop(self, shop_id: int) -> Shop:
        if shop_id not in self.shops:
            owner = next((u for u, s in self.user_shops.items() if s == shop_id), 1)
            shop = Shop(shop_id, user_id=owner, profiles=processing_profiles(shop_id))
            shop.shipping = [shipping_profile(shop, DEFAULT_SHIPPING_PROFILE_ID)]
            shop.returns = [return_policy(shop_id, shop_id * 10 + 5)]
            self.shops[shop_id] = shop
        return self.shops[shop_id]

    def shop_of(self, user_id: int) -> int:
        """The shop a user owns (getMe's ``shop_id``)."""
        return self.user_shops.get(user_id, self.default_shop)

    def app(self, key: str) -> App:
        if key not in self.apps:
            self.apps[key] = App()
        return self.apps[key]

    def add(self, listing: Listing) -> None:
        self.listings[listing.listing_id] = listing
        shop = self.shop(listing.shop_id)
        shop.listing_ids.append(listing.listing_id)
        shop.created += 1

    def delete(self, listing: Listing) -> None:
        self.listings.pop(listing.listing_id, None)
        shop = self.shop(listing.shop_id)
        shop.listing_ids.remove(listing.listing_id)
        shop.deleted += 1

    def reset(self) -> None:
        self.shops.clear()
        self.listings.clear()
        self.apps.clear()
        self.user_shops.clear()


class Window(SlidingWindowLimiter):
    """A sliding-window limit that also tells how many requests it has left."""

    def remaining(self, key: str, now: float) -> int:
        events = self._events[key]
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return max(0, self.limit - len(events))


@dataclass
class Limits:
    """Etsy's per-app limits: requests per second and per rolling day."""

    qps: int
    qpd: int
    day_s: float
    second: Window = field(init=False)
    day: Window = field(init=False)

    def __post_init__(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        self.second = Window(self.qps, 1.0)
        self.day = Window(self.qpd, self.day_s)

    def headers(self, key: str, now: float) -> dict[str, str]:
        return {
            "x-limit-per-second": str(self.qps),
            "x-remaining-this-second": str(self.second.remaining(key, now)),
            "x-limit-per-day": str(self.qpd),
            "x-remaining-today": str(self.day.remaining(key, now)),
        }

    def update(self, values: Json) -> None:
        """A partial update from ``/_sim/limits``; the windows start afresh."""
        self.qps = as_int(values.get("qps", self.qps))
        self.qpd = as_int(values.get("qpd", self.qpd))
        self.day_s = as_float(values.get("day_s", self.day_s))
        self.rebuild()

    def as_dict(self) -> dict[str, float]:
        return {"qps": self.qps, "qpd": self.qpd, "day_s": self.day_s}


# --------------------------------------------------------------------------------------------
# Validation
