"""Etsy Open API v3 simulator: a real HTTP server speaking Etsy's wire format for listings.

It covers what a direct Etsy channel and its preflight (``pod doctor``) need, as Etsy documents
it (developers.etsy.com, the Open API v3 reference and its authentication, listings, rate-limit
and processing-profile pages):

- ``POST /v3/application/shops/{shop_id}/listings`` (createDraftListing, form-encoded, 201),
  ``GET`` the same path (getListingsByShop: ``state``, ``limit`` 1..100 (25), ``offset``,
  ``includes``; ``{"count": <all matching>, "results": [...]}``, newest first);
- ``GET``/``DELETE /v3/application/listings/{listing_id}`` (getListing with ``includes``,
  deleteListing 204);
- ``PATCH /v3/application/shops/{shop_id}/listings/{listing_id}`` (updateListing, form-encoded);
- ``GET``/``PUT /v3/application/listings/{listing_id}/inventory`` (getListingInventory,
  updateListingInventory: JSON);
- ``POST /v3/application/shops/{shop_id}/listings/{listing_id}/images`` (uploadListingImage:
  multipart ``image`` file + ``rank``, ``overwrite``, ``alt_text``; 201) and ``GET
  /v3/application/listings/{listing_id}/images`` (getListingImages);
- what the preflight reads: ping, getMe (``/users/me``: the token's user and the shop they
  own, ``SIM_ETSY_SHOP_ID`` (51234567) unless ``/_sim/users/{id}`` says otherwise), getShop,
  getShopShippingProfiles / getShopShippingProfile (every shop has profile 9001),
  getShopReturnPolicies (``shop_id * 10 + 5``), getSellerTaxonomyNodes (a stand-in tree with the
  engine's default ids), tokenScopes (``POST /v3/application/scopes``; the document leaves the
  answer's shape open, this one answers ``{"scopes": [...]}``);
- Etsy's token endpoint, ``POST /v3/public/oauth/token`` (:mod:`simulators.etsy_oauth`).

Every request is first checked against the subset of Etsy's published OpenAPI document the
engine uses (:mod:`simulators.contracts.etsy`): what the document refuses is answered 400
``{"error": "<what is wrong>"}`` (404 for a path that is no operation, 405 for a method the path
does not take, 401 without a token where the operation needs one, 403 ``insufficient_scope``
when the token's grant lacks a scope the operation names), before any rule of its own.

Behaviour copied from Etsy on purpose:

- Every request needs ``x-api-key: <keystring>:<shared secret>`` (Etsy's format since 2026);
  without it 403 (the bare keystring: "Shared secret is required in x-api-key header.").
  ``SIM_ETSY_API_KEYS`` (comma-separated ``keystring:secret``) restricts the accepted ones;
  unset, any is accepted. Every error is Etsy's body ``{"error": "<message>"}`` (OAuth's refusals
  add ``error_description``).
- OAuth (:mod:`simulators.etsy_oauth`): access tokens end ``SIM_ETSY_TOKEN_TTL_S`` (3600) after
  they are issued (401 ``invalid_token`` "access token is expired"), refresh tokens after
  ``SIM_ETSY_REFRESH_TTL_S`` (90 days); each refresh token is good once, and a spent one
  presented again revokes the grant (``SIM_ETSY_REFRESH_REUSE``). A token it did not issue is
  taken as issued when first seen unless ``SIM_ETSY_STRICT_TOKENS=1``; ``SIM_ETSY_REFRESH_TOKENS``
  names refresh tokens known from the start; ``SIM_ETSY_SCOPES`` the scopes of a grant it did not
  make (listings_d listings_r listings_w shops_r).
- createDraftListing requires quantity, title, description, price, who_made, when_made and
  taxonomy_id (a node of its seller taxonomy), and one of the shop's shipping profiles for a
  physical listing (the default type); enums are
  checked (who_made, when_made, type, units); the title holds at most 140 characters of
  letters, numbers, punctuation, math symbols, spaces, ™ © ®, and each of ``% : & +`` once;
  at most 13 tags of at most 20 letters, numbers, spaces, ``- ' ™ © ®``; at most 13 materials;
  a price of 0.20 to 50000, a quantity of 1 to 999. A new listing is a draft with an inventory
  of one product (its price and quantity), as Etsy creates it.
- updateListingInventory replaces the inventory: each product exactly one offering (price
  0.20..50000, quantity 0..999, is_enabled), property values of at most two properties (custom
  ones, 513 and 514, need a ``property_name``), the same properties on every product, no
  combination twice, SKUs of at most 32 characters, at least one enabled offering; prices,
  quantities and SKUs that differ between products must be listed in ``price_on_property`` /
  ``quantity_on_property`` / ``sku_on_property`` and depend only on those properties.
- Processing profiles (Etsy's readiness state definitions): every shop has two, one
  ``made_to_order`` (1-3 days, id ``shop_id * 10 + 1``) and one ``ready_to_ship`` (1 day,
  ``shop_id * 10 + 2``), listed by getShopReadinessStateDefinitions (``GET
  /v3/application/shops/{shop_id}/readiness-state-definitions``, ``limit``, ``offset``). A
  physical listing must name one of its shop's: without ``readiness_state_id``
  createDraftListing answers 400 "A readiness_state_id is required for physical listings.", as
  the live API does (its reference marks it optional).
- uploadListingImage takes a JPEG, PNG or GIF (checked with PIL) at a rank (1 = first; a rank
  in use shifts the others, or is replaced with ``overwrite``); at most 20 images.
- updateListing ``state=active`` publishes: it is refused (400) without an image, without an
  enabled offering in stock, or, for a physical listing, without a shipping profile. ``inactive``
  deactivates an active listing. Listings are ``draft``, ``active``, ``inactive``, ``expired``
  or ``sold_out``; a deleted one is gone (404).
- Rate limits per app (keystring), as Etsy's are: ``SIM_ETSY_QPS`` requests per second
  (default 10) and ``SIM_ETSY_QPD`` per rolling day (default 10000; ``SIM_ETSY_DAY_S`` long,
  86400). Every answer to a known app carries ``x-limit-per-second``,
  ``x-remaining-this-second``, ``x-limit-per-day`` and ``x-remaining-today``; beyond either
  limit, 429 with ``Retry-After`` (whole seconds until the window frees a request).

Any positive shop id works: a shop is created when first used. The fault knobs of
:mod:`simulators.common` apply (``SIM_LATENCY_MS``, ``SIM_FAILURE_RATE``, ``SIM_ETSY_*``).

Test hooks: ``POST /_sim/oauth/authorize`` (the seller authorises the app: ``user_id``,
``client_id``, ``scopes``; the first tokens), ``POST /_sim/oauth/revoke`` (the seller removes the
app: ``user_id`` or ``refresh_token``), ``POST /_sim/oauth/expire`` (access tokens end now),
``GET /_sim/oauth`` (grants, refreshes, refusals, reuse detected), ``POST /_sim/users/{id}``
(``{"shop_id": ...}``: whose shop), ``POST /_sim/shops/{shop_id}`` (``processing_profiles``,
``shipping_profile_ids``, ``return_policy_ids``: a shop set up otherwise), ``GET /_sim/books``
(per shop: its listings with state, tags, SKUs and image count; listings created and activated;
per app: requests, rate-limited and refused ones; ``oauth``; ``duplicates``: markers,
a ``pod-`` tag or a SKU, on more than one live listing of a shop), ``GET /_sim/request_times``
(epoch seconds of each app's admitted requests), ``POST /_sim/reset``, ``GET/POST /_sim/limits``
(``qps``, ``qpd``, ``day_s``), ``POST /_sim/listings/{listing_id}`` ``{"state": ...}`` (what
Etsy or the seller does: expire a listing, sell it out, ...), and ``/_sim/config`` (fault knobs).
"""

from __future__ import annotations

import argparse
import collections
import email.parser
import email.policy
import hashlib
import io
import json
import logging
import math
import os
import secrets
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulators.common import Knobs, SlidingWindowLimiter, error_json, install_faults, serve
from simulators.contracts.etsy import contract
from simulators.etsy_oauth import (
    ACCESS_TTL_S,
    DEFAULT_SCOPES,
    REFRESH_TTL_S,
    OAuth,
    OAuthError,
)

logger = logging.getLogger(__name__)

WHO_MADE = ("i_did", "someone_else", "collective")
WHEN_MADE = (
    "made_to_order", "2020_2026", "2010_2019", "2007_2009", "before_2007", "2000_2006",
    "1990s", "1980s", "1970s", "1960s", "1950s", "1940s", "1930s", "1920s", "1910s", "1900s",
    "1800s", "1700s", "before_1700",
)  # fmt: skip
LISTING_TYPES = ("physical", "download", "both")
WEIGHT_UNITS = ("oz", "lb", "g", "kg")
DIMENSION_UNITS = ("in", "ft", "mm", "cm", "m", "yd", "inches")
STATES = ("active", "inactive", "sold_out", "draft", "expired")
INCLUDES = (
    "Shipping", "Images", "Shop", "User", "Translations", "Inventory", "Videos",
    "Personalization", "BuyerPrice",
)  # fmt: skip
CUSTOM_PROPERTIES = (513, 514)  # Etsy's ids for a seller's own variations

MAX_TITLE = 140
MAX_TAGS = 13
MAX_TAG_CHARS = 20
MAX_MATERIALS = 13
MAX_IMAGES = 20
MAX_SKU = 32
MAX_VARIATIONS = 2
MIN_PRICE, MAX_PRICE = 0.20, 50000.0
MAX_QUANTITY = 999
MAX_PAGE, DEFAULT_PAGE = 100, 25
RENEWAL_S = 120 * 86400  # a listing is active for four months
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}
CURRENCY = "USD"
# Etsy's token endpoint (api.etsy.com/v3/public/oauth/token), served on the same host here.
OAUTH_PREFIX = "/v3/public/oauth/"
TOKEN_PATH = OAUTH_PREFIX + "token"  # a URL path


# --------------------------------------------------------------------------------------------
# Errors and responses


class _Invalid(Exception):
    """A request Etsy answers 400; ``str(exc)`` is the ``error`` message."""


def etsy_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in Etsy's format: ``{"error": "<message>"}``."""
    return error_json(status, {"error": message}, headers)


def _fault(request: Request, status: int) -> Response:
    """An injected fault in Etsy's format (see :func:`simulators.common.install_faults`)."""
    if status == 429:
        return etsy_error(429, "Too many requests", {"Retry-After": "1"})
    if status >= 500:
        return etsy_error(status, "The server encountered an internal error.")
    return etsy_error(status, "There was a problem with the request data.")


def _not_found(what: str) -> JSONResponse:
    return etsy_error(404, f"{what} not found")


# --------------------------------------------------------------------------------------------
# Text rules


def _title_problem(title: str) -> str | None:
    """Why Etsy refuses ``title``, or None."""
    if not title.strip():
        return "title must not be empty"
    if len(title) > MAX_TITLE:
        return f"title must be at most {MAX_TITLE} characters, got {len(title)}"
    for ch in title:
        cat = unicodedata.category(ch)
        if not (cat[0] in "LP" or cat in ("Nd", "Sm", "Zs") or ch in "™©®"):
            return (
                f"title contains {ch!r}: only letters, numbers, punctuation, mathematical "
                "symbols, whitespace, ™, © and ® are allowed"
            )
    for ch in "%:&+":
        if title.count(ch) > 1:
            return f"title may use the character {ch!r} only once"
    return None


def _tag_problem(tag: str) -> str | None:
    if not tag.strip():
        return "tags must not be empty"
    if len(tag) > MAX_TAG_CHARS:
        return f"tag {tag!r} is longer than {MAX_TAG_CHARS} characters"
    for ch in tag:
        cat = unicodedata.category(ch)
        if not (cat[0] == "L" or cat in ("Nd", "Zs") or ch in "-'™©®"):
            return (
                f"tag {tag!r} contains {ch!r}: only letters, numbers, whitespace, -, ', ™, © "
                "and ® are allowed"
            )
    return None


def _material_problem(material: str) -> str | None:
    for ch in material:
        cat = unicodedata.category(ch)
        if not (cat[0] == "L" or cat in ("Nd", "Zs")):
            return f"material {material!r} contains {ch!r}: only letters, numbers and spaces"
    return None


# --------------------------------------------------------------------------------------------
# Request bodies


async def _form(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (Etsy's format for listing fields)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise _Invalid("The request body must be application/x-www-form-urlencoded")
    raw = (await request.body()).decode("utf-8", errors="replace")
    return urllib.parse.parse_qs(raw, keep_blank_values=True)


async def _multipart(request: Request) -> dict[str, tuple[bytes, str | None]]:
    """A ``multipart/form-data`` body: field name -> (content, file name or None)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise _Invalid("The request body must be multipart/form-data")
    body = await request.body()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise _Invalid("The multipart body could not be parsed")
    parts: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        parts[name] = (content, part.get_filename())
    return parts


class _Fields:
    """Typed access to form fields, with Etsy's 400 for a bad value."""

    def __init__(self, raw: dict[str, list[str]]) -> None:
        self.raw = raw

    def has(self, name: str) -> bool:
        return name in self.raw or f"{name}[]" in self.raw

    def text(self, name: str) -> str | None:
        values = self.raw.get(name)
        return None if not values else values[-1]

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise _Invalid(f"Missing required parameter: {name}")
        return value

    def integer(self, name: str, *, low: int | None = None, high: int | None = None) -> int | None:
        value = self.text(name)
        if value is None or value == "":
            return None
        try:
            number = int(value)
        except ValueError:
            raise _Invalid(f"{name} must be an integer, got {value!r}") from None
        if low is not None and number < low:
            raise _Invalid(f"{name} must be at least {low}, got {number}")
        if high is not None and number > high:
            raise _Invalid(f"{name} must be at most {high}, got {number}")
        return number

    def number(self, name: str) -> float | None:
        value = self.text(name)
        if value is None or value == "":
            return None
        try:
            number = float(value)
        except ValueError:
            raise _Invalid(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise _Invalid(f"{name} must be a finite number")
        return number

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None or value == "":
            return None
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise _Invalid(f"{name} must be a boolean, got {value!r}")

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if value not in allowed:
            raise _Invalid(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def strings(self, name: str) -> list[str] | None:
        """A list sent as repeated fields (``tags``, ``tags[]``) or comma-separated."""
        values = self.raw.get(name, []) + self.raw.get(f"{name}[]", [])
        if not values and not self.has(name):
            return None
        out = [item.strip() for value in values for item in value.split(",")]
        return [item for item in out if item]


def _price(value: object, where: str) -> int:
    """A price in the shop's currency as cents; Etsy takes 0.20 to 50000.00."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{where} must be a number")
    if not MIN_PRICE <= value <= MAX_PRICE:
        raise _Invalid(f"{where} must be between {MIN_PRICE:.2f} and {MAX_PRICE:.2f}, got {value}")
    return round(value * 100)


def _money(cents: int) -> dict[str, Any]:
    return {"amount": cents, "divisor": 100, "currency_code": CURRENCY}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# State


def _new_id() -> int:
    return secrets.randbelow(9 * 10**9) + 10**9


def _value_id(property_id: int, value: str) -> int:
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
    inventory: dict[str, Any] = field(default_factory=dict)
    images: list[dict[str, Any]] = field(default_factory=list)

    def enabled_offerings(self) -> list[dict[str, Any]]:
        return [
            p["offerings"][0]
            for p in self.inventory.get("products", [])
            if p["offerings"][0]["is_enabled"]
        ]

    def quantity(self) -> int:
        return sum(o["quantity"] for o in self.enabled_offerings())

    def price_cents(self) -> int:
        prices = [o["price"]["amount"] for o in self.enabled_offerings()]
        return min(prices) if prices else 0

    def skus(self) -> list[str]:
        return [p["sku"] for p in self.inventory.get("products", []) if p["sku"]]

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
            "price": _money(self.price_cents()),
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
    profiles: list[dict[str, Any]] = field(default_factory=list)
    shipping: list[dict[str, Any]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
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
) -> list[dict[str, Any]]:
    """A shop's processing profiles as Etsy shows them (ShopProcessingProfile): by default one
    made to order (id ``shop_id * 10 + 1``) and one ready to ship (``shop_id * 10 + 2``)."""
    out = []
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
                "primary_cost": _money(499),
                "secondary_cost": _money(199),
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
                "primary_cost": _money(1499),
                "secondary_cost": _money(499),
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


def return_policy(shop_id: int, policy_id: int) -> dict[str, Any]:
    """A 30-day returns and exchanges policy (ShopReturnPolicy)."""
    return {
        "return_policy_id": policy_id,
        "shop_id": shop_id,
        "accepts_returns": True,
        "accepts_exchanges": True,
        "return_deadline": 30,
    }


def _node(
    node_id: int, name: str, path: tuple[int, ...], children: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    return {
        "id": node_id,
        "level": len(path) - 1,
        "name": name,
        "parent_id": path[-2] if len(path) > 1 else None,
        "children": list(children),
        "full_path_taxonomy_ids": list(path),
    }


# A stand-in for Etsy's seller taxonomy (getSellerTaxonomyNodes), not a copy of it: the ids the
# engine names by default (shared.vendors.etsy.DEFAULT_TAXONOMY_IDS: 482 for T-shirts, and 2202
# and 1062, which the engine calls best guesses) under parents of this simulator's own.
TAXONOMY: tuple[dict[str, Any], ...] = (
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


def taxonomy_ids(nodes: Iterable[dict[str, Any]] = TAXONOMY) -> set[int]:
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


class _Window(SlidingWindowLimiter):
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
    second: _Window = field(init=False)
    day: _Window = field(init=False)

    def __post_init__(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        self.second = _Window(self.qps, 1.0)
        self.day = _Window(self.qpd, self.day_s)

    def headers(self, key: str, now: float) -> dict[str, str]:
        return {
            "x-limit-per-second": str(self.qps),
            "x-remaining-this-second": str(self.second.remaining(key, now)),
            "x-limit-per-day": str(self.qpd),
            "x-remaining-today": str(self.day.remaining(key, now)),
        }

    def as_dict(self) -> dict[str, float]:
        return {"qps": self.qps, "qpd": self.qpd, "day_s": self.day_s}


# --------------------------------------------------------------------------------------------
# Validation


def _listing_fields(
    form: _Fields, *, creating: bool, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The listing fields of a createDraftListing / updateListing form, validated like Etsy."""
    out: dict[str, Any] = {}
    if creating:
        for name in (
            "quantity", "title", "description", "price", "who_made", "when_made", "taxonomy_id"
        ):  # fmt: skip
            form.required(name)
    title = form.text("title")
    if title is not None:
        problem = _title_problem(title)
        if problem:
            raise _Invalid(problem)
        out["title"] = title
    description = form.text("description")
    if description is not None:
        if not description.strip():
            raise _Invalid("description must not be empty")
        out["description"] = description
    if creating:
        out["quantity"] = form.integer("quantity", low=1, high=MAX_QUANTITY)
        out["price_cents"] = _price(form.number("price"), "price")
    for name, allowed in (
        ("who_made", WHO_MADE),
        ("when_made", WHEN_MADE),
        ("type", LISTING_TYPES),
        ("item_weight_unit", WEIGHT_UNITS),
        ("item_dimensions_unit", DIMENSION_UNITS),
    ):
        value = form.choice(name, allowed)
        if value is not None:
            out[name] = value
    for name in (
        "taxonomy_id", "shipping_profile_id", "return_policy_id", "shop_section_id",
        "readiness_state_id",
    ):  # fmt: skip
        number = form.integer(name, low=1)
        if number is not None:
            out[name] = number
    for name in ("processing_min", "processing_max"):
        number = form.integer(name, low=0)
        if number is not None:
            out[name] = number
    for name in ("item_weight", "item_length", "item_width", "item_height"):
        size = form.number(name)
        if size is not None:
            if size <= 0:
                raise _Invalid(f"{name} must be greater than 0")
            out[name] = size
    for name in ("is_supply", "is_customizable", "should_auto_renew", "is_taxable"):
        flag = form.boolean(name)
        if flag is not None:
            out[name] = flag
    tags = form.strings("tags")
    if tags is not None:
        if len(tags) > MAX_TAGS:
            raise _Invalid(f"A listing may have at most {MAX_TAGS} tags, got {len(tags)}")
        for tag in tags:
            problem = _tag_problem(tag)
            if problem:
                raise _Invalid(problem)
        out["tags"] = tags
    materials = form.strings("materials")
    if materials is not None:
        if len(materials) > MAX_MATERIALS:
            raise _Invalid(f"A listing may have at most {MAX_MATERIALS} materials")
        for material in materials:
            problem = _material_problem(material)
            if problem:
                raise _Invalid(problem)
        out["materials"] = materials
    styles = form.strings("styles")
    if styles is not None:
        if len(styles) > 2:
            raise _Invalid("A listing may have at most 2 styles")
        out["styles"] = styles
    merged = {**(current or {}), **out}
    if merged.get("type", "physical") != "download" and not merged.get("shipping_profile_id"):
        raise _Invalid("shipping_profile_id is required when the listing type is physical")
    if (
        creating
        and merged.get("type", "physical") != "download"
        and not merged.get("readiness_state_id")
    ):
        raise _Invalid("A readiness_state_id is required for physical listings.")
    return out


def _property_values(raw: object, where: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _Invalid(f"{where}.property_values must be an array")
    out: list[dict[str, Any]] = []
    for j, pv in enumerate(raw):
        at = f"{where}.property_values[{j}]"
        if not isinstance(pv, dict):
            raise _Invalid(f"{at} must be an object")
        pid = pv.get("property_id")
        if not _is_int(pid) or pid < 1:
            raise _Invalid(f"{at}.property_id must be a positive integer")
        values = pv.get("values")
        if (
            not isinstance(values, list)
            or len(values) != 1
            or not isinstance(values[0], str)
            or not values[0].strip()
        ):
            raise _Invalid(f"{at}.values must hold exactly one non-empty string")
        if "(" in values[0] or ")" in values[0]:
            raise _Invalid(f"{at}.values: parenthesis characters are not allowed")
        name = pv.get("property_name")
        if name is not None and not isinstance(name, str):
            raise _Invalid(f"{at}.property_name must be a string")
        if pid in CUSTOM_PROPERTIES and not (name or "").strip():
            raise _Invalid(f"{at}.property_name is required for a custom property ({pid})")
        ids = pv.get("value_ids", [])
        if not isinstance(ids, list) or not all(_is_int(i) and i > 0 for i in ids):
            raise _Invalid(f"{at}.value_ids must be an array of positive integers")
        scale = pv.get("scale_id")
        if scale is not None and (not _is_int(scale) or scale < 1):
            raise _Invalid(f"{at}.scale_id must be a positive integer")
        out.append(
            {
                "property_id": pid,
                "property_name": name,
                "scale_id": scale,
                "scale_name": None,
                "value_ids": list(ids) or [_value_id(pid, values[0])],
                "values": [values[0]],
            }
        )
    return out


def _inventory(body: object, listing: Listing, max_variations: int) -> dict[str, Any]:
    """Validate an updateListingInventory body like Etsy; the inventory to store."""
    if not isinstance(body, dict):
        raise _Invalid("The request body must be a JSON object")
    products = body.get("products")
    if not isinstance(products, list) or not products:
        raise _Invalid("products is required and must be a non-empty array")
    stored: list[dict[str, Any]] = []
    property_ids: tuple[int, ...] | None = None
    combos: set[tuple[str, ...]] = set()
    for i, product in enumerate(products):
        where = f"products[{i}]"
        if not isinstance(product, dict):
            raise _Invalid(f"{where} must be an object")
        sku = product.get("sku") or ""
        if not isinstance(sku, str):
            raise _Invalid(f"{where}.sku must be a string")
        if len(sku) > MAX_SKU:
            raise _Invalid(f"{where}.sku must be at most {MAX_SKU} characters")
        values = _property_values(product.get("property_values"), where)
        ids = tuple(v["property_id"] for v in values)
        if len(set(ids)) != len(ids):
            raise _Invalid(f"{where}.property_values names a property twice")
        if len(ids) > max_variations:
            raise _Invalid(f"A listing may vary on at most {max_variations} properties")
        if property_ids is None:
            property_ids = ids
        elif set(ids) != set(property_ids):
            raise _Invalid(f"{where} must have values for the same properties as products[0]")
        combo = tuple(v["values"][0] for v in sorted(values, key=lambda v: v["property_id"]))
        if combo in combos:
            raise _Invalid(f"{where} repeats the property values {list(combo)}")
        combos.add(combo)
        offerings = product.get("offerings")
        if not isinstance(offerings, list) or len(offerings) != 1:
            raise _Invalid(f"{where}.offerings must hold exactly one offering")
        offering = offerings[0]
        if not isinstance(offering, dict):
            raise _Invalid(f"{where}.offerings[0] must be an object")
        price = _price(offering.get("price"), f"{where}.offerings[0].price")
        quantity = offering.get("quantity")
        if not _is_int(quantity) or not 0 <= quantity <= MAX_QUANTITY:
            raise _Invalid(f"{where}.offerings[0].quantity must be an integer from 0 to 999")
        enabled = offering.get("is_enabled", True)
        if not isinstance(enabled, bool):
            raise _Invalid(f"{where}.offerings[0].is_enabled must be a boolean")
        readiness = offering.get("readiness_state_id", listing.fields.get("readiness_state_id"))
        if readiness is not None and (not _is_int(readiness) or readiness < 1):
            raise _Invalid(f"{where}.offerings[0].readiness_state_id must be a positive integer")
        stored.append(
            {
                "product_id": _new_id(),
                "sku": sku,
                "is_deleted": False,
                "offerings": [
                    {
                        "offering_id": _new_id(),
                        "quantity": quantity,
                        "is_enabled": enabled,
                        "is_deleted": False,
                        "price": _money(price),
                        "readiness_state_id": readiness,
                    }
                ],
                "property_values": values,
            }
        )
    if not any(p["offerings"][0]["is_enabled"] for p in stored):
        raise _Invalid("At least one offering must be enabled")
    used = set(property_ids or ())
    on_property: dict[str, list[int]] = {}
    varying: tuple[tuple[str, Callable[[dict[str, Any]], object]], ...] = (
        ("price_on_property", lambda p: p["offerings"][0]["price"]["amount"]),
        ("quantity_on_property", lambda p: p["offerings"][0]["quantity"]),
        ("sku_on_property", lambda p: p["sku"]),
        ("readiness_state_on_property", lambda p: p["offerings"][0]["readiness_state_id"]),
    )
    for key, value_of in varying:
        listed = body.get(key, [])
        if not isinstance(listed, list) or not all(_is_int(x) for x in listed):
            raise _Invalid(f"{key} must be an array of property ids")
        unknown = sorted(set(listed) - used)
        if unknown:
            raise _Invalid(f"{key} names properties {unknown} that no product has")
        # What varies between products must depend only on the properties listed.
        seen: dict[tuple[str, ...], object] = {}
        for p in stored:
            group = tuple(
                v["values"][0] for v in p["property_values"] if v["property_id"] in listed
            )
            value = value_of(p)
            if seen.setdefault(group, value) != value:
                what = key.removesuffix("_on_property")
                raise _Invalid(
                    f"products differ in {what} but {key} does not name the property it "
                    f"depends on ({key}={listed})"
                )
        on_property[key] = list(listed)
    return {"products": stored, **on_property}


def _image(data: bytes) -> tuple[int, int, str, tuple[int, int, int]]:
    """Width, height, extension and average colour of an image Etsy accepts."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            r, g, b = img.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _Invalid("image is not a valid image file") from exc
    ext = IMAGE_FORMATS.get(fmt)
    if ext is None:
        raise _Invalid(f"image format {fmt or 'unknown'} is not supported; use JPEG, PNG or GIF")
    return width, height, ext, (int(r), int(g), int(b))


def _includes(request: Request) -> tuple[str, ...]:
    raw = request.query_params.getlist("includes") + request.query_params.getlist("includes[]")
    names = tuple(n.strip() for value in raw for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in INCLUDES]
    if unknown:
        raise _Invalid(f"includes must be among {', '.join(INCLUDES)}; got {unknown}")
    return names


def _positive_id(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise _Invalid(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise _Invalid(f"{name} must be a positive integer, got {raw!r}")
    return value


# --------------------------------------------------------------------------------------------
# Books


def _duplicates(state: EtsyState) -> list[dict[str, Any]]:
    """Markers (a ``pod-`` tag, or a SKU) carried by more than one live listing of a shop."""
    out: list[dict[str, Any]] = []
    for shop in state.shops.values():
        by_marker: dict[str, list[int]] = collections.defaultdict(list)
        for lid in shop.listing_ids:
            listing = state.listings[lid]
            keys = {
                f"tag:{t.lower()}"
                for t in listing.fields.get("tags") or []
                if t.lower().startswith("pod-")
            }
            keys |= {f"sku:{s}" for s in listing.skus()}
            for key in keys:
                by_marker[key].append(lid)
        out += [
            {"shop_id": shop.shop_id, "marker": k, "listing_ids": ids}
            for k, ids in by_marker.items()
            if len(ids) > 1
        ]
    return out


def _books(state: EtsyState, limits: Limits) -> dict[str, Any]:
    shops: dict[str, Any] = {}
    for shop in state.shops.values():
        listings = [state.listings[lid] for lid in shop.listing_ids]
        shops[str(shop.shop_id)] = {
            "listings": [
                {
                    "listing_id": lst.listing_id,
                    "state": lst.state,
                    "title": lst.fields["title"],
                    "tags": list(lst.fields.get("tags") or []),
                    "skus": lst.skus(),
                    "products": len(lst.inventory["products"]),
                    "images": len(lst.images),
                    "quantity": lst.quantity(),
                    "price_cents": lst.price_cents(),
                }
                for lst in listings
            ],
            "created": shop.created,
            "activated": shop.activated,
            "deleted": shop.deleted,
            "inventory_updates": shop.inventory_updates,
            "images_uploaded": shop.images_uploaded,
        }
    apps = {
        key: {
            "requests": app.requests,
            "rate_limited": app.rate_limited,
            "rate_limited_day": app.rate_limited_day,
            "refused": app.refused,
        }
        for key, app in state.apps.items()
    }
    return {
        "shops": shops,
        "apps": apps,
        "created": sum(s.created for s in state.shops.values()),
        "activated": sum(s.activated for s in state.shops.values()),
        "rate_limited": sum(a.rate_limited + a.rate_limited_day for a in state.apps.values()),
        "duplicates": _duplicates(state),
        "limits": limits.as_dict(),
    }


def _shop_json(shop: Shop, state: EtsyState) -> dict[str, Any]:
    """A shop as getShop answers it (Shop)."""
    listings = [state.listings[lid] for lid in shop.listing_ids]
    now = int(time.time())
    return {
        "shop_id": shop.shop_id,
        "user_id": shop.user_id,
        "shop_name": f"PodSimShop{shop.shop_id}",
        "create_date": now,
        "created_timestamp": now,
        "title": "Print on demand, simulated",
        "announcement": None,
        "currency_code": CURRENCY,
        "is_vacation": False,
        "vacation_message": None,
        "sale_message": None,
        "digital_sale_message": None,
        "update_date": now,
        "updated_timestamp": now,
        "listing_active_count": sum(1 for lst in listings if lst.state == "active"),
        "digital_listing_count": sum(
            1 for lst in listings if lst.fields.get("type", "physical") == "download"
        ),
        "login_name": f"podsim{shop.user_id}",
        "accepts_custom_requests": False,
        "policy_welcome": None,
        "policy_payment": None,
        "policy_shipping": None,
        "policy_refunds": None,
        "policy_additional": None,
        "policy_seller_info": None,
        "policy_update_date": now,
        "policy_has_private_receipt_info": False,
        "has_unstructured_policies": False,
        "vacation_autoreply": None,
        "url": f"https://www.etsy.com/shop/PodSimShop{shop.shop_id}",
        "image_url_760x100": None,
        "num_favorers": 0,
        "languages": ["en-US"],
        "icon_url_fullxfull": None,
        "is_using_structured_policies": True,
        "has_onboarded_structured_policies": True,
        "include_dispute_form_link": False,
        "is_direct_checkout_onboarded": True,
        "is_etsy_payments_onboarded": True,
        "is_calculated_eligible": True,
        "is_opted_in_to_buyer_promise": False,
        "is_shop_us_based": True,
        "transaction_sold_count": 0,
        "shipping_from_country_iso": "US",
        "shop_location_country_iso": "US",
        "review_count": 0,
        "review_average": None,
    }


# --------------------------------------------------------------------------------------------
# App


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name}: expected a number, got {raw!r}") from exc


def app_key(keystring: str) -> str:
    """How the books name an app: a hash of its keystring (never the key itself)."""
    return hashlib.sha256(keystring.encode()).hexdigest()[:12]


def _api_key(request: Request, allowed: set[str] | None) -> str | JSONResponse:
    """The keystring of a valid ``x-api-key`` (``keystring:shared_secret``), or Etsy's 403."""
    raw = request.headers.get("x-api-key", "").strip()
    keystring, sep, secret = raw.partition(":")
    if not keystring:
        return etsy_error(
            403, "Invalid API key: should be in the format 'keystring:shared_secret'."
        )
    if not sep or not secret:
        return etsy_error(403, "Shared secret is required in x-api-key header.")
    if allowed is not None and raw not in allowed:
        return etsy_error(403, "Invalid API key")
    return keystring


def _bearer(request: Request) -> str | None:
    """The bearer token of ``Authorization: Bearer <token>``, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _oauth_error(exc: OAuthError) -> JSONResponse:
    return error_json(exc.status, exc.body())


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _oauth_from_env() -> OAuth:
    reuse = os.environ.get("SIM_ETSY_REFRESH_REUSE", "revoke").strip() or "revoke"
    if reuse not in ("revoke", "refuse"):
        raise SystemExit(f"SIM_ETSY_REFRESH_REUSE: revoke or refuse, got {reuse!r}")
    scopes = os.environ.get("SIM_ETSY_SCOPES", "").replace(",", " ").split()
    known = os.environ.get("SIM_ETSY_REFRESH_TOKENS", "").split(",")
    return OAuth(
        access_ttl_s=_env_number("SIM_ETSY_TOKEN_TTL_S", ACCESS_TTL_S),
        refresh_ttl_s=_env_number("SIM_ETSY_REFRESH_TTL_S", REFRESH_TTL_S),
        strict=_env_flag("SIM_ETSY_STRICT_TOKENS"),
        reuse="refuse" if reuse == "refuse" else "revoke",
        scopes=scopes or DEFAULT_SCOPES,
        known_refresh_tokens=[t.strip() for t in known if t.strip()],
    )


# The statuses the contract's kinds of problem are answered with (Etsy's, in Etsy's format).
_PROBLEM_STATUS = {"route": 404, "method": 405, "auth": 401, "request": 400}


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("etsy")``)."""
    knobs = knobs or Knobs.from_env("etsy")
    app = FastAPI(title="Etsy simulator", docs_url=None, redoc_url=None)
    state = EtsyState(default_shop=int(_env_number("SIM_ETSY_SHOP_ID", 51234567)))
    oauth = _oauth_from_env()
    checker = contract()
    defaults = Limits(
        qps=int(_env_number("SIM_ETSY_QPS", 10)),
        qpd=int(_env_number("SIM_ETSY_QPD", 10000)),
        day_s=_env_number("SIM_ETSY_DAY_S", 86400.0),
    )
    limits = Limits(defaults.qps, defaults.qpd, defaults.day_s)
    keys_env = os.environ.get("SIM_ETSY_API_KEYS", "").strip()
    allowed = {k.strip() for k in keys_env.split(",") if k.strip()} if keys_env else None
    app.state.sim = state
    app.state.oauth = oauth
    install_faults(app, knobs, _fault)

    # Registered after install_faults, so it runs first: a request without a valid API key, over
    # the app's limits or refused by Etsy's document never reaches the fault injector.
    @app.middleware("http")
    async def _key_and_limits(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith(("/_sim", OAUTH_PREFIX)):
            passed: Response = await call_next(request)
            return passed
        keystring = _api_key(request, allowed)
        if isinstance(keystring, Response):
            return keystring
        key = app_key(keystring)
        account = state.app(key)
        account.requests += 1
        now = time.monotonic()
        # Evaluated in order, as Etsy does: this second's budget, then the day's.
        wait = limits.second.check(key, now)
        day = False
        if wait is None:
            wait = limits.day.check(key, now)
            day = wait is not None
        if wait is not None:
            if day:
                account.rate_limited_day += 1
            else:
                account.rate_limited += 1
            headers = limits.headers(key, now)
            # Whole seconds (RFC 9110), rounded up so an obedient client is never early.
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            which = "per-day" if day else "per-second"
            return etsy_error(429, f"Rate limit exceeded ({which} limit)", headers)
        account.accepted_at.append(time.time())
        refused = await _refusal(request)
        if refused is not None:
            account.refused += 1
            refused.headers.update(limits.headers(key, time.monotonic()))
            return refused
        response: Response = await call_next(request)
        response.headers.update(limits.headers(key, time.monotonic()))
        return response

    async def _refusal(request: Request) -> Response | None:
        """Etsy's answer to a request its token or its document refuses, else None (the
        token's user is left in ``request.state.etsy_user``)."""
        request.state.etsy_user = None
        scopes: tuple[str, ...] | None = None
        token = _bearer(request)
        if token is not None:
            try:
                grant = oauth.check_access(token)
            except OAuthError as exc:
                return _oauth_error(exc)
            request.state.etsy_user, scopes = grant.user_id, grant.scopes
        checked = checker.check_request(
            request.method,
            request.url.path,
            query=request.query_params.multi_items(),
            headers=request.headers,
            body=await request.body(),
            scopes=scopes,
        )
        kind = checked.first_kind()
        if kind is None:
            return None
        if kind == "scope":
            return error_json(
                403, {"error": "insufficient_scope", "error_description": "Insufficient scope"}
            )
        if kind == "auth":
            return etsy_error(401, "Invalid or missing OAuth access token (Authorization: Bearer)")
        return etsy_error(_PROBLEM_STATUS[kind], checked.message())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown routes and methods answer in Etsy's format too, not FastAPI's.
        return etsy_error(exc.status_code, str(exc.detail))

    def listing_of(listing_id: str, shop_id: str | None = None) -> Listing:
        lid = _positive_id(listing_id, "listing_id")
        listing = state.listings.get(lid)
        if listing is None:
            raise LookupError(f"Listing {lid}")
        if shop_id is not None and listing.shop_id != _positive_id(shop_id, "shop_id"):
            raise LookupError(f"Listing {lid} in shop {shop_id}")
        return listing

    async def guarded(request: Request, handler: Any) -> Response:
        """Run ``handler(user_id)`` (the token's user, None without a token: the operations
        Etsy's document serves on the API key alone) with Etsy's 400 / 404 answers."""
        user: int | None = getattr(request.state, "etsy_user", None)
        try:
            result: Response = await handler(user)
        except _Invalid as exc:
            return etsy_error(400, str(exc))
        except LookupError as exc:
            return _not_found(str(exc.args[0]))
        return result

    def owner(user: int | None) -> int:
        if user is None:  # the contract asks every operation that needs an owner for a token
            raise _Invalid("this operation needs the shop owner's OAuth token")
        return user

    # --- listings ------------------------------------------------------------------------------

    @app.get("/v3/application/openapi-ping")
    async def ping(request: Request) -> Response:
        keystring = request.headers.get("x-api-key", "").partition(":")[0]
        return JSONResponse({"application_id": int(app_key(keystring)[:8], 16)})

    @app.post("/v3/application/shops/{shop_id}/listings")
    async def create_draft_listing(request: Request, shop_id: str) -> Response:
        async def handle(user: int | None) -> Response:
            sid = _positive_id(shop_id, "shop_id")
            fields = _listing_fields(_Fields(await _form(request)), creating=True)
            shop = state.shop(sid)
            readiness = fields.get("readiness_state_id")
            owned = {p["readiness_state_id"] for p in shop.profiles}
            if readiness is not None and readiness not in owned:
                raise _Invalid(
                    f"readiness_state_id {readiness} is not a processing profile of shop {sid}"
                )
            shipping = fields.get("shipping_profile_id")
            if shipping is not None and shipping not in {
                p["shipping_profile_id"] for p in shop.shipping
            }:
                raise _Invalid(
                    f"shipping_profile_id {shipping} is not a shipping profile of shop {sid}"
                )
            if fields["taxonomy_id"] not in taxonomy_ids():
                raise _Invalid(
                    f"taxonomy_id {fields['taxonomy_id']} is not a node of the seller taxonomy"
                )
            quantity, price = fields.pop("quantity"), fields.pop("price_cents")
            listing = Listing(_new_id(), sid, owner(user), fields)
            listing.inventory = {
                "products": [
                    {
                        "product_id": _new_id(),
                        "sku": "",
                        "is_deleted": False,
                        "offerings": [
                            {
                                "offering_id": _new_id(),
                                "quantity": quantity,
                                "is_enabled": True,
                                "is_deleted": False,
                                "price": _money(price),
                                "readiness_state_id": fields.get("readiness_state_id"),
                            }
                        ],
                        "property_values": [],
                    }
                ],
                "price_on_property": [],
                "quantity_on_property": [],
                "sku_on_property": [],
                "readiness_state_on_property": [],
            }
            state.add(listing)
            logger.info("listing created shop_id=%d listing_id=%d", sid, listing.listing_id)
            return JSONResponse(listing.as_json(), status_code=201)

        return await guarded(request, handle)

    @app.get("/v3/application/shops/{shop_id}/listings")
    async def get_listings_by_shop(request: Request, shop_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            sid = _positive_id(shop_id, "shop_id")
            q = _Fields({k: request.query_params.getlist(k) for k in request.query_params})
            wanted = q.choice("state", STATES) or "active"
            limit = q.integer("limit", low=1, high=MAX_PAGE) or DEFAULT_PAGE
            offset = q.integer("offset", low=0) or 0
            includes = _includes(request)
            shop = state.shop(sid)
            # Newest first (Etsy sorts on ``created``, descending, by default).
            found = [
                state.listings[lid]
                for lid in reversed(shop.listing_ids)
                if state.listings[lid].state == wanted
            ]
            page = found[offset : offset + limit]
            return JSONResponse(
                {"count": len(found), "results": [lst.as_json(includes) for lst in page]}
            )

        return await guarded(request, handle)

    @app.get("/v3/application/listings/{listing_id}")
    async def get_listing(request: Request, listing_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            return JSONResponse(listing_of(listing_id).as_json(_includes(request)))

        return await guarded(request, handle)

    @app.delete("/v3/application/listings/{listing_id}")
    async def delete_listing(request: Request, listing_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            state.delete(listing_of(listing_id))
            return Response(status_code=204)

        return await guarded(request, handle)

    @app.api_route("/v3/application/shops/{shop_id}/listings/{listing_id}", methods=["PATCH"])
    async def update_listing(request: Request, shop_id: str, listing_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            listing = listing_of(listing_id, shop_id)
            form = _Fields(await _form(request))
            wanted = form.choice("state", ("active", "inactive"))
            changes = _listing_fields(form, creating=False, current=listing.fields)
            if wanted == "active" and listing.state != "active":
                merged = {**listing.fields, **changes}
                if not listing.images:
                    raise _Invalid("A listing needs at least one image to be active")
                if listing.quantity() < 1:
                    raise _Invalid("A listing needs an enabled offering in stock to be active")
                if merged.get("type", "physical") != "download" and not merged.get(
                    "shipping_profile_id"
                ):
                    raise _Invalid("An active physical listing requires a shipping_profile_id")
            if wanted == "inactive" and listing.state not in ("active", "inactive"):
                raise _Invalid(f"A {listing.state} listing cannot be deactivated")
            listing.fields.update(changes)
            listing.updated = int(time.time())
            if wanted is not None and wanted != listing.state:
                listing.set_state(wanted)
                if wanted == "active":
                    state.shop(listing.shop_id).activated += 1
                    logger.info("listing activated listing_id=%d", listing.listing_id)
            return JSONResponse(listing.as_json())

        return await guarded(request, handle)

    @app.get("/v3/application/listings/{listing_id}/inventory")
    async def get_listing_inventory(request: Request, listing_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            return JSONResponse(listing_of(listing_id).as_json(("Inventory",))["inventory"])

        return await guarded(request, handle)

    @app.put("/v3/application/listings/{listing_id}/inventory")
    async def update_listing_inventory(request: Request, listing_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            listing = listing_of(listing_id)
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise _Invalid("The request body must be JSON") from None
            q = _Fields({k: request.query_params.getlist(k) for k in request.query_params})
            most = q.integer("max_variations_supported", low=2, high=3) or MAX_VARIATIONS
            listing.inventory = _inventory(body, listing, most)
            listing.updated = int(time.time())
            state.shop(listing.shop_id).inventory_updates += 1
            return JSONResponse(listing.as_json(("Inventory",))["inventory"])

        return await guarded(request, handle)

    @app.post("/v3/application/shops/{shop_id}/listings/{listing_id}/images")
    async def upload_listing_image(request: Request, shop_id: str, listing_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            listing = listing_of(listing_id, shop_id)
            parts = await _multipart(request)
            form = _Fields(
                {
                    k: [v.decode("utf-8", errors="replace")]
                    for k, (v, f) in parts.items()
                    if f is None
                }
            )
            image = parts.get("image")
            if image is None or not image[0]:
                raise _Invalid("image (a file) or listing_image_id is required")
            rank = form.integer("rank", low=1) or 1
            overwrite = bool(form.boolean("overwrite"))
            alt_text = form.text("alt_text") or ""
            width, height, ext, (r, g, b) = _image(image[0])
            replacing = overwrite and rank <= len(listing.images)
            if not replacing and len(listing.images) >= MAX_IMAGES:
                raise _Invalid(f"A listing may have at most {MAX_IMAGES} images")
            image_id = _new_id()
            base = f"https://i.etsystatic.com/sim/{listing.listing_id}/{image_id}"
            hue, sat, val = _hsv(r, g, b)
            record: dict[str, Any] = {
                "listing_id": listing.listing_id,
                "listing_image_id": image_id,
                "hex_code": f"{r:02X}{g:02X}{b:02X}",
                "red": r,
                "green": g,
                "blue": b,
                "hue": hue,
                "saturation": sat,
                "brightness": val,
                "is_black_and_white": r == g == b,
                "creation_tsz": int(time.time()),
                "created_timestamp": int(time.time()),
                "rank": rank,
                "url_75x75": f"{base}/il_75x75.{ext}",
                "url_170x135": f"{base}/il_170x135.{ext}",
                "url_570xN": f"{base}/il_570xN.{ext}",
                "url_fullxfull": f"{base}/il_fullxfull.{ext}",
                "full_height": height,
                "full_width": width,
                "alt_text": alt_text,
            }
            if replacing:
                listing.images[rank - 1] = record
            else:
                listing.images.insert(min(rank, len(listing.images) + 1) - 1, record)
            for i, img in enumerate(listing.images, start=1):
                img["rank"] = i
            listing.updated = int(time.time())
            state.shop(listing.shop_id).images_uploaded += 1
            return JSONResponse(record, status_code=201)

        return await guarded(request, handle)

    @app.get("/v3/application/shops/{shop_id}/readiness-state-definitions")
    async def get_readiness_state_definitions(request: Request, shop_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            sid = _positive_id(shop_id, "shop_id")
            q = _Fields({k: request.query_params.getlist(k) for k in request.query_params})
            limit = q.integer("limit", low=1, high=MAX_PAGE) or DEFAULT_PAGE
            offset = q.integer("offset", low=0) or 0
            profiles = state.shop(sid).profiles
            return JSONResponse(
                {"count": len(profiles), "results": profiles[offset : offset + limit]}
            )

        return await guarded(request, handle)

    @app.get("/v3/application/listings/{listing_id}/images")
    async def get_listing_images(request: Request, listing_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            listing = listing_of(listing_id)
            return JSONResponse({"count": len(listing.images), "results": listing.images})

        return await guarded(request, handle)

    # --- what pod doctor reads ----------------------------------------------------------------

    @app.get("/v3/application/users/me")
    async def get_me(request: Request) -> Response:
        async def handle(user: int | None) -> Response:
            me = owner(user)
            return JSONResponse({"user_id": me, "shop_id": state.shop_of(me)})

        return await guarded(request, handle)

    @app.get("/v3/application/shops/{shop_id}")
    async def get_shop(request: Request, shop_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            shop = state.shop(_positive_id(shop_id, "shop_id"))
            return JSONResponse(_shop_json(shop, state))

        return await guarded(request, handle)

    @app.get("/v3/application/shops/{shop_id}/shipping-profiles")
    async def get_shipping_profiles(request: Request, shop_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            shop = state.shop(_positive_id(shop_id, "shop_id"))
            return JSONResponse({"count": len(shop.shipping), "results": shop.shipping})

        return await guarded(request, handle)

    @app.get("/v3/application/shops/{shop_id}/shipping-profiles/{shipping_profile_id}")
    async def get_shipping_profile(
        request: Request, shop_id: str, shipping_profile_id: str
    ) -> Response:
        async def handle(_user: int | None) -> Response:
            shop = state.shop(_positive_id(shop_id, "shop_id"))
            wanted = _positive_id(shipping_profile_id, "shipping_profile_id")
            for profile in shop.shipping:
                if profile["shipping_profile_id"] == wanted:
                    return JSONResponse(profile)
            raise LookupError(f"Shipping profile {wanted} of shop {shop.shop_id}")

        return await guarded(request, handle)

    @app.get("/v3/application/shops/{shop_id}/policies/return")
    async def get_return_policies(request: Request, shop_id: str) -> Response:
        async def handle(_user: int | None) -> Response:
            shop = state.shop(_positive_id(shop_id, "shop_id"))
            return JSONResponse({"count": len(shop.returns), "results": shop.returns})

        return await guarded(request, handle)

    @app.get("/v3/application/seller-taxonomy/nodes")
    async def get_seller_taxonomy_nodes(request: Request) -> Response:
        async def handle(_user: int | None) -> Response:
            return JSONResponse({"count": len(TAXONOMY), "results": list(TAXONOMY)})

        return await guarded(request, handle)

    @app.post("/v3/application/scopes")
    async def token_scopes(request: Request) -> Response:
        # The document leaves the answer's shape open (Scopes: an object, no properties
        # named); this simulator answers {"scopes": [...]}, a guess.
        async def handle(_user: int | None) -> Response:
            form = _Fields(await _form(request))
            scopes = oauth.scopes_of(form.required("token"))
            if scopes is None:
                return error_json(
                    401, {"error": "invalid_token", "error_description": "token is not valid"}
                )
            return JSONResponse({"scopes": list(scopes)})

        return await guarded(request, handle)

    # --- Etsy's token endpoint ------------------------------------------------------------------

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return error_json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "the body must be application/x-www-form-urlencoded",
                },
            )
        raw = (await request.body()).decode("utf-8", errors="replace")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
        try:
            answer = oauth.refresh_grant(form)
        except OAuthError as exc:
            logger.info("token refused error=%s reason=%s", exc.error, exc.description)
            return _oauth_error(exc)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    # --- test hooks ----------------------------------------------------------------------------

    @app.get("/_sim/books")
    async def books() -> Response:
        return JSONResponse({**_books(state, limits), "oauth": oauth.as_dict()})

    @app.get("/_sim/request_times")
    async def request_times() -> Response:
        return JSONResponse({key: list(a.accepted_at) for key, a in state.apps.items()})

    @app.post("/_sim/oauth/authorize")
    async def sim_authorize(request: Request) -> Response:
        """The seller authorises the app (Etsy's consent screen and the code exchange in one):
        ``{"user_id": 1, "client_id": <keystring>, "scopes": [...]}`` (all optional); the
        grant's first tokens, as the token endpoint answers them."""
        body = json.loads(await request.body() or b"{}")
        scopes = body.get("scopes")
        tokens = oauth.authorize(
            int(body.get("user_id", 1)),
            body.get("client_id"),
            [str(x) for x in scopes] if isinstance(scopes, list) else None,
        )
        return JSONResponse(tokens)

    @app.post("/_sim/oauth/revoke")
    async def sim_revoke(request: Request) -> Response:
        """The seller removes the app: ``{"user_id": N}`` (every grant of the user) or
        ``{"refresh_token": ...}`` (that grant); every token of the grants stops working."""
        body = json.loads(await request.body() or b"{}")
        user = body.get("user_id")
        revoked = oauth.revoke(
            user_id=None if user is None else int(user), refresh_token=body.get("refresh_token")
        )
        return JSONResponse({"revoked": revoked})

    @app.post("/_sim/oauth/expire")
    async def sim_expire(request: Request) -> Response:
        """Every access token (of ``{"user_id": N}``) ends now, before its hour is over: the
        next call with one is answered 401 invalid_token."""
        body = json.loads(await request.body() or b"{}")
        user = body.get("user_id")
        return JSONResponse({"expired": oauth.expire_access(None if user is None else int(user))})

    @app.get("/_sim/oauth")
    async def sim_oauth() -> Response:
        return JSONResponse(oauth.as_dict())

    @app.post("/_sim/users/{user_id}")
    async def sim_user(request: Request, user_id: int) -> Response:
        """Which shop a user owns (getMe): ``{"shop_id": N}``."""
        body = json.loads(await request.body() or b"{}")
        state.user_shops[user_id] = int(body["shop_id"])
        state.shop(int(body["shop_id"])).user_id = user_id
        return JSONResponse({"user_id": user_id, "shop_id": state.user_shops[user_id]})

    @app.post("/_sim/shops/{shop_id}")
    async def sim_shop(request: Request, shop_id: int) -> Response:
        """A shop set up otherwise (misconfiguration tests): ``{"processing_profiles":
        ["ready_to_ship"], "shipping_profile_ids": [9001, ...], "return_policy_ids": [...]}``,
        each optional."""
        body = json.loads(await request.body() or b"{}")
        shop = state.shop(shop_id)
        if "processing_profiles" in body:
            kinds = tuple(str(k) for k in body["processing_profiles"])
            unknown = [k for k in kinds if k not in PROFILE_KINDS]
            if unknown:
                return etsy_error(400, f"unknown processing profiles {unknown}")
            shop.profiles = processing_profiles(shop_id, kinds)
        if "shipping_profile_ids" in body:
            shop.shipping = [shipping_profile(shop, int(i)) for i in body["shipping_profile_ids"]]
        if "return_policy_ids" in body:
            shop.returns = [return_policy(shop_id, int(i)) for i in body["return_policy_ids"]]
        return JSONResponse(
            {
                "processing_profiles": shop.profiles,
                "shipping_profile_ids": [p["shipping_profile_id"] for p in shop.shipping],
                "return_policy_ids": [p["return_policy_id"] for p in shop.returns],
            }
        )

    @app.post("/_sim/reset")
    async def reset() -> Response:
        state.reset()
        oauth.reset()
        limits.qps, limits.qpd, limits.day_s = defaults.qps, defaults.qpd, defaults.day_s
        limits.rebuild()
        return JSONResponse({"reset": True})

    @app.get("/_sim/limits")
    async def get_limits() -> Response:
        return JSONResponse(limits.as_dict())

    @app.post("/_sim/limits")
    async def set_limits(request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        limits.qps = int(body.get("qps", limits.qps))
        limits.qpd = int(body.get("qpd", limits.qpd))
        limits.day_s = float(body.get("day_s", limits.day_s))
        limits.rebuild()
        return JSONResponse(limits.as_dict())

    @app.post("/_sim/listings/{listing_id}")
    async def set_listing_state(request: Request, listing_id: str) -> Response:
        body = json.loads(await request.body() or b"{}")
        wanted = body.get("state")
        if wanted not in STATES:
            return etsy_error(400, f"state must be one of {', '.join(STATES)}")
        try:
            listing = listing_of(listing_id)
        except (LookupError, _Invalid) as exc:
            return _not_found(str(exc))
        listing.set_state(wanted)
        return JSONResponse(listing.as_json())

    return app


def _hsv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """Etsy's hue (0-360), saturation and brightness (0-100) of an average colour."""
    high, low = max(r, g, b), min(r, g, b)
    value = round(high / 255 * 100)
    saturation = 0 if high == 0 else round((high - low) / high * 100)
    if high == low:
        return 0, saturation, value
    span = high - low
    if high == r:
        hue = 60 * (((g - b) / span) % 6)
    elif high == g:
        hue = 60 * ((b - r) / span + 2)
    else:
        hue = 60 * ((r - g) / span + 4)
    return round(hue) % 360, saturation, value


def main() -> None:
    """Entry point: ``python -m simulators.etsy [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(description="Etsy Open API v3 simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8192)
    args = parser.parse_args()
    serve(create_app(), args.host, args.port)


if __name__ == "__main__":
    main()
