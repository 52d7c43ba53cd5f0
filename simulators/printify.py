"""Printify API v1 simulator: a real HTTP server speaking Printify's wire format.

It covers what POD Engine uses: shops, image uploads (base64 or URL), the catalog (blueprints,
print providers, variants), products (create / list / get / update / delete) and the publishing
handshake (``publish`` → ``publishing_succeeded`` / ``publishing_failed``).

Behaviour copied from Printify on purpose:

- ``Authorization: Bearer <token>`` is required; each token is its own account, with one shop
  per sales channel of ``SIM_PRINTIFY_SHOPS`` (default one custom-integration shop). The
  ``publishing_succeeded`` handshake is refused for a shop of any other channel.
- Product creation is validated like Printify does: prices are integer cents, variant ids must
  belong to the blueprint/provider, image ids must be uploads of the account, ...; errors use
  Printify's body ``{status, code, message, errors: {reason, code}}`` (HTTP 400, code 8150).
- Uploads by URL are fetched (any size up to 64 MiB); base64 ``contents`` over 5 MB are refused
  (Printify deprecates base64 uploads and meant them for small files).
- Art is placed by centre (``x``, ``y``) and ``scale`` (its width over the placeholder's, which
  is sized at 300 DPI); like Printify, any resolution is accepted, and the books record the
  DPI each product prints at (``print_dpi``).
- Each variant has its production cost (by size: 2XL..5XL cost more). A product may be created
  or updated at any price, but publishing refuses an enabled variant priced below its cost, and
  a product is locked (no updates, code 8252) from ``publish`` until the handshake ends.
- Publishing to a shop of another channel (Etsy, Shopify, ...) is asynchronous, as at
  Printify: ``publish`` locks the product and answers at once; the channel lists it
  ``SIM_PRINTIFY_PUBLISH_MS`` later (the product then shows ``external`` {id, handle} and is
  unlocked), or refuses it with probability ``SIM_PRINTIFY_PUBLISH_FAILURE_RATE`` (the product
  is unlocked without ``external``).
- Rate limits as documented: 600 requests per minute per account (of which 100 for the
  catalog) and 200 publish calls per 30 minutes; exceeding either gives 429 with a
  ``Retry-After`` header.

What Printify's reference leaves open is chosen by ``SIM_PRINTIFY_KEEPS_SKU`` (true),
``SIM_PRINTIFY_PRODUCTS_ORDER`` (newest_first | oldest_first), ``SIM_PRINTIFY_VARIANT_UPDATE``
(require_all | replace | merge), ``SIM_PRINTIFY_UNSENT_VARIANTS`` (disabled | enabled | absent)
and ``SIM_PRINTIFY_PUBLISH_LOCKED`` (accept | refuse), per test through ``GET/POST
/_sim/behaviour`` (see :class:`Behaviour`). ``SIM_PRINTIFY_TOKENS`` (comma-separated) makes
every other token a 401, as an unknown or revoked personal access token is.

Knobs (environment; the fault knobs of :mod:`simulators.common` apply too):
``SIM_PRINTIFY_RPM`` (600), ``SIM_PRINTIFY_CATALOG_RPM`` (100), ``SIM_PRINTIFY_RATE_WINDOW_S``
(60), ``SIM_PRINTIFY_PUBLISH_LIMIT`` (200), ``SIM_PRINTIFY_PUBLISH_WINDOW_S`` (1800),
``SIM_PRINTIFY_MAX_PRODUCTS`` (20000 per account; the oldest are evicted beyond it so long runs
stay bounded), ``SIM_PRINTIFY_PUBLISH_MS`` (3000), ``SIM_PRINTIFY_PUBLISH_FAILURE_RATE`` (0).

Test hooks: ``GET /_sim/books`` (what each account did, plus duplicate products),
``GET /_sim/request_times`` (epoch seconds of each account's accepted requests),
``POST /_sim/reset`` (forget everything, channels back to their knobs), ``GET/POST
/_sim/limits`` (change the rate limits),
``GET/POST /_sim/channels`` (change ``publish_ms`` and ``failure_rate``),
``POST /_sim/webhooks/fire`` (send a webhook call of any topic, e.g. an order's).

Webhooks: ``GET/POST /v1/shops/{id}/webhooks.json`` and ``DELETE
/v1/shops/{id}/webhooks/{webhook_id}.json``. Publishing in a custom-integration shop sends
``product:publish:started`` and deleting a product ``product:deleted`` to the shop's webhooks of
that topic, ``SIM_PRINTIFY_WEBHOOK_DELAY_MS`` (200) later, with ``X-Pfy-Signature: sha256=<hex
HMAC-SHA256 of the body>`` when the webhook has a secret; a call not answered 2xx is tried again
after 1 s, doubling, ``SIM_PRINTIFY_WEBHOOK_ATTEMPTS`` (6) times in all
(``SIM_PRINTIFY_WEBHOOK_RETRY_S``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import math
import os
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image, UnidentifiedImageError

from simulators.common import Knobs, SlidingWindowLimiter, error_json, install_faults, serve

logger = logging.getLogger(__name__)

SHOP_ID = 12345678
SHOP_TITLE = "POD Engine Shop"
SALES_CHANNEL = "custom_integration"


def shops_from_env() -> list[dict[str, Any]]:
    """Each account's shops: one per sales channel in ``SIM_PRINTIFY_SHOPS`` (comma-separated,
    default ``custom_integration``), numbered from :data:`SHOP_ID`."""
    channels = [c.strip() for c in os.environ.get("SIM_PRINTIFY_SHOPS", SALES_CHANNEL).split(",")]
    return [
        {
            "id": SHOP_ID + i,
            "title": SHOP_TITLE if i == 0 else f"{channel.replace('_', ' ').title()} Shop",
            "sales_channel": channel,
        }
        for i, channel in enumerate(c for c in channels if c)
    ]


# Printify's error codes: 8150 is what it answers for a failed validation; the others are the
# simulator's own stand-ins in the same numbering range (Printify does not document a full list).
CODE_VALIDATION = 8150
CODE_BAD_REQUEST = 8100
CODE_UNAUTHENTICATED = 8101
CODE_NOT_FOUND = 8200
CODE_LOCKED = 8252  # "Product is disabled for editing" while a publish is under way
CODE_RATE_LIMITED = 8429
CODE_SERVER = 8500

MAX_PRODUCTS_PAGE = 50  # Printify caps ``limit`` at 50 for products...
MAX_UPLOADS_PAGE = 100  # ...and at 100 for uploads.
MAX_URL_FETCH_BYTES = 64 * 1024 * 1024
MAX_BASE64_BYTES = 5 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Static catalog. Variant ids are per blueprint (shared by its providers, each offering a
# subset), option ids follow Printify's (sizes S..5XL are 14..21).

_SIZE_IDS = {
    "S": 14, "M": 15, "L": 16, "XL": 17, "2XL": 18, "3XL": 19, "4XL": 20, "5XL": 21, "11oz": 1189
}  # fmt: skip
_COLOUR_IDS = {
    "White": 521,
    "Black": 418,
    "Navy": 511,
    "Sport Grey": 358,
    "Red": 392,
    "Dark Heather": 366,
}
_APPAREL_SIZES = ("S", "M", "L", "XL", "2XL", "3XL", "4XL", "5XL")


def _apparel_costs(base: int, steps: tuple[int, ...]) -> dict[str, int]:
    """Production cost per size: ``base`` up to XL, then each larger size its own (Printify's
    costs grow with the fabric: a 5XL costs half as much again as an S, or more)."""
    return {"S": base, "M": base, "L": base, "XL": base} | dict(
        zip(("2XL", "3XL", "4XL", "5XL"), steps, strict=True)
    )


_BLUEPRINT_SPECS: list[dict[str, Any]] = [
    {
        "id": 6,
        "title": "Unisex Heavy Cotton Tee",
        "brand": "Gildan",
        "model": "5000",
        "description": "The unisex heavy cotton tee is the basic staple of any wardrobe.",
        "first_variant_id": 17390,
        "colours": ("White", "Black", "Navy", "Sport Grey", "Red"),
        "sizes": _APPAREL_SIZES,
        "placeholders": {"front": (4500, 5100), "back": (4500, 5100)},
        "costs": _apparel_costs(1048, (1382, 1721, 1949, 2127)),
        "providers": {
            99: ("Printify Choice", ("White", "Black", "Navy", "Sport Grey", "Red")),
            29: ("Monster Digital", ("White", "Black", "Navy")),
        },
    },
    {
        "id": 77,
        "title": "Unisex Heavy Blend™ Hooded Sweatshirt",
        "brand": "Gildan",
        "model": "18500",
        "description": "A cozy heavy blend hoodie with a spacious kangaroo pocket.",
        "first_variant_id": 32878,
        "colours": ("White", "Black", "Navy", "Sport Grey", "Dark Heather"),
        "sizes": _APPAREL_SIZES,
        "placeholders": {"front": (3852, 3396), "back": (4500, 5100)},
        "costs": _apparel_costs(2187, (2521, 2977, 3412, 3651)),
        "providers": {
            99: ("Printify Choice", ("White", "Black", "Navy", "Sport Grey", "Dark Heather")),
            29: ("Monster Digital", ("Black", "Navy", "Sport Grey")),
        },
    },
    {
        "id": 68,
        "title": "Mug 11oz",
        "brand": "Generic brand",
        "model": "Mug 11oz",
        "description": "A white ceramic mug, dishwasher and microwave safe.",
        "first_variant_id": 33719,
        "colours": ("White",),
        "sizes": ("11oz",),
        "placeholders": {"front": (2475, 1155)},
        "costs": {"11oz": 450},
        "providers": {1: ("SPOKE Custom Products", ("White",)), 28: ("District Photo", ("White",))},
    },
]


@dataclass(frozen=True)
class CatalogVariant:
    """One catalog variant and what products need from it (cost and option ids)."""

    id: int
    title: str
    colour: str
    size: str
    cost: int
    placeholders: tuple[tuple[str, int, int], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "options": {"color": self.colour, "size": self.size},
            "placeholders": [
                {"position": pos, "height": h, "width": w} for pos, w, h in self.placeholders
            ],
        }


def _build_catalog() -> tuple[
    dict[int, dict[str, Any]],
    dict[int, dict[int, str]],
    dict[tuple[int, int], dict[int, CatalogVariant]],
]:
    blueprints: dict[int, dict[str, Any]] = {}
    providers: dict[int, dict[int, str]] = {}
    variants: dict[tuple[int, int], dict[int, CatalogVariant]] = {}
    for spec in _BLUEPRINT_SPECS:
        bp_id = spec["id"]
        blueprints[bp_id] = {
            "id": bp_id,
            "title": spec["title"],
            "description": spec["description"],
            "brand": spec["brand"],
            "model": spec["model"],
            "images": [f"https://images.printify.com/sim/blueprint-{bp_id}.jpg"],
        }
        placeholders = tuple((pos, w, h) for pos, (w, h) in spec["placeholders"].items())
        all_variants: dict[str, CatalogVariant] = {}
        next_id = spec["first_variant_id"]
        for colour in spec["colours"]:
            for size in spec["sizes"]:
                cost = spec["costs"][size]
                all_variants[f"{colour}/{size}"] = CatalogVariant(
                    next_id, f"{colour} / {size}", colour, size, cost, placeholders
                )
                next_id += 1
        providers[bp_id] = {}
        for pp_id, (pp_title, colours) in spec["providers"].items():
            providers[bp_id][pp_id] = pp_title
            variants[(bp_id, pp_id)] = {
                v.id: v for v in all_variants.values() if v.colour in colours
            }
    return blueprints, providers, variants


BLUEPRINTS, PROVIDERS, VARIANTS = _build_catalog()


# --------------------------------------------------------------------------------------------
# State


@dataclass
class Account:
    """Everything one API token did: its uploads, products and the publishing handshake."""

    key: str
    user_id: int
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads_count: int = 0
    uploads_by_url: int = 0
    products_created: int = 0
    products_deleted: int = 0
    requests: int = 0
    rate_limited: int = 0
    # Wall-clock times of the requests the rate limit let through (the newest 100k), so that
    # tests and benchmarks can see how much of the budget was used in any window.
    accepted_at: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=100_000)
    )
    publish_calls: collections.Counter[str] = field(default_factory=collections.Counter)
    publish_succeeded: collections.Counter[str] = field(default_factory=collections.Counter)
    publish_failed: collections.Counter[str] = field(default_factory=collections.Counter)
    # Publications a non-custom channel has yet to settle: product id -> (due, refused, channel).
    channel_pending: dict[str, tuple[float, bool, str]] = field(default_factory=dict)
    channel_listed: collections.Counter[str] = field(default_factory=collections.Counter)
    channel_refused: collections.Counter[str] = field(default_factory=collections.Counter)
    # Publish calls refused because an enabled variant was priced below its production cost.
    publish_below_cost: int = 0
    # Handshake calls refused because the product's shop is not a custom integration.
    handshake_refused: int = 0
    products_updated: int = 0
    # Webhooks by id: {id, topic, url, shop_id, secret}; deliveries by topic, and failed tries.
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks_delivered: collections.Counter[str] = field(default_factory=collections.Counter)
    webhook_attempts_failed: int = 0
    webhooks_given_up: int = 0

    def forget_product(self, product_id: str) -> None:
        self.products.pop(product_id, None)
        self.channel_pending.pop(product_id, None)
        for counter in (
            self.publish_calls,
            self.publish_succeeded,
            self.publish_failed,
            self.channel_listed,
            self.channel_refused,
        ):
            counter.pop(product_id, None)

    def settle_channels(self, now: float) -> None:
        """Let the channels settle every publication due by ``now``: listed, or refused."""
        due = [pid for pid, (at, _, _) in self.channel_pending.items() if at <= now]
        for pid in due:
            _, refused, channel = self.channel_pending.pop(pid)
            product = self.products.get(pid)
            if product is None:
                continue
            product["is_locked"] = False
            if refused:
                self.channel_refused[pid] += 1
                continue
            listing = str(secrets.randbelow(9 * 10**9) + 10**9)
            product["external"] = {"id": listing, "handle": _listing_url(channel, listing)}
            self.channel_listed[pid] += 1


class PrintifyState:
    """Accounts by token; bounded so that long chaos runs do not grow without limit."""

    def __init__(self, max_products: int, max_uploads: int) -> None:
        self.max_products = max_products
        self.max_uploads = max_uploads
        self.accounts: dict[str, Account] = {}

    def account(self, token: str) -> Account:
        # Accounts are keyed by a hash so the books never show a token.
        key = hashlib.sha256(token.encode()).hexdigest()[:12]
        acct = self.accounts.get(key)
        if acct is None:
            acct = Account(key=key, user_id=int(key[:7], 16))
            self.accounts[key] = acct
        return acct

    def add_product(self, acct: Account, product: dict[str, Any]) -> None:
        acct.products[product["id"]] = product
        acct.products_created += 1
        while len(acct.products) > self.max_products:
            acct.forget_product(next(iter(acct.products)))

    def add_upload(self, acct: Account, upload: dict[str, Any]) -> None:
        acct.uploads[upload["id"]] = upload
        acct.uploads_count += 1
        while len(acct.uploads) > self.max_uploads:
            acct.uploads.pop(next(iter(acct.uploads)))

    def reset(self) -> None:
        self.accounts.clear()


@dataclass
class Limits:
    """The two documented Printify rate limits, rebuilt whenever they are changed."""

    rpm: int
    rate_window_s: float
    publish_limit: int
    publish_window_s: float
    catalog_rpm: int = 100
    requests: SlidingWindowLimiter = field(init=False)
    publishes: SlidingWindowLimiter = field(init=False)
    catalog: SlidingWindowLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        self.requests = SlidingWindowLimiter(self.rpm, self.rate_window_s)
        self.publishes = SlidingWindowLimiter(self.publish_limit, self.publish_window_s)
        self.catalog = SlidingWindowLimiter(self.catalog_rpm, self.rate_window_s)

    def as_dict(self) -> dict[str, float]:
        return {
            "rpm": self.rpm,
            "rate_window_s": self.rate_window_s,
            "publish_limit": self.publish_limit,
            "publish_window_s": self.publish_window_s,
            "catalog_rpm": self.catalog_rpm,
        }


@dataclass
class Channels:
    """How the non-custom sales channels behave: how long a listing takes, how often it fails."""

    publish_ms: float
    failure_rate: float

    def as_dict(self) -> dict[str, float]:
        return {"publish_ms": self.publish_ms, "failure_rate": self.failure_rate}


# What Printify's documentation leaves open, each possibility selectable (docs/vendor-calls.md,
# "Printify"): the engine must be right under every one, and the tests run under each.
KEEPS_SKU = (True, False)
PRODUCTS_ORDERS = ("newest_first", "oldest_first")
# "When updating variants, all variants must be present in the request": refused when some are
# missing (require_all), or the list sent replaces the product's (replace), or merged (merge).
VARIANT_UPDATES = ("require_all", "replace", "merge")
# The blueprint variants a create did not send: listed disabled, listed enabled, or not listed.
UNSENT_VARIANTS = ("disabled", "enabled", "absent")
# A publish call on a product still locked by an earlier one: accepted again, or refused (8252).
PUBLISH_LOCKED = ("accept", "refuse")


@dataclass
class Behaviour:
    """Printify's undocumented choices, as ``SIM_PRINTIFY_*`` set them and ``/_sim/behaviour``
    changes them for one test."""

    keeps_sku: bool = True
    products_order: str = "newest_first"
    variant_update: str = "require_all"
    unsent_variants: str = "disabled"
    publish_locked: str = "accept"

    @classmethod
    def from_env(cls) -> Behaviour:
        raw_sku = os.environ.get("SIM_PRINTIFY_KEEPS_SKU", "true").strip().lower()
        if raw_sku not in ("true", "false"):
            raise SystemExit(f"SIM_PRINTIFY_KEEPS_SKU: true or false, got {raw_sku!r}")
        made = cls(keeps_sku=raw_sku == "true")
        made.update(
            {
                key: os.environ[env]
                for key, env in (
                    ("products_order", "SIM_PRINTIFY_PRODUCTS_ORDER"),
                    ("variant_update", "SIM_PRINTIFY_VARIANT_UPDATE"),
                    ("unsent_variants", "SIM_PRINTIFY_UNSENT_VARIANTS"),
                    ("publish_locked", "SIM_PRINTIFY_PUBLISH_LOCKED"),
                )
                if os.environ.get(env)
            },
            error=SystemExit,
        )
        return made

    def update(self, values: dict[str, Any], error: type[BaseException] = ValueError) -> None:
        """Apply ``values`` (a partial update); ``error`` on an unknown key or value."""
        choices: dict[str, tuple[object, ...]] = {
            "keeps_sku": KEEPS_SKU,
            "products_order": PRODUCTS_ORDERS,
            "variant_update": VARIANT_UPDATES,
            "unsent_variants": UNSENT_VARIANTS,
            "publish_locked": PUBLISH_LOCKED,
        }
        for key, value in values.items():
            if key not in choices or value not in choices[key]:
                raise error(f"{key}: one of {list(choices.get(key, ()))}, got {value!r}")
        for key, value in values.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _listing_url(channel: str, listing: str) -> str:
    """Where the channel lists a product (Etsy by listing id, Shopify by handle)."""
    if channel == "etsy":
        return f"https://www.etsy.com/listing/{listing}"
    if channel == "shopify":
        return f"https://pod-engine-sim.myshopify.com/products/{listing}"
    return f"https://{channel}.example/listings/{listing}"


# --------------------------------------------------------------------------------------------
# Responses


def printify_error(
    status: int,
    message: str,
    *,
    code: int,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in Printify's format: ``{status: "error", code, message, errors?}``."""
    body: dict[str, object] = {"status": "error", "code": code, "message": message}
    if reason is not None:
        body["errors"] = {"reason": reason, "code": code}
    return error_json(status, body, headers)


def _validation_error(reason: str) -> JSONResponse:
    return printify_error(400, "Validation failed.", code=CODE_VALIDATION, reason=reason)


def _not_found(what: str) -> JSONResponse:
    return printify_error(
        404, f"{what} not found.", code=CODE_NOT_FOUND, reason=f"{what} not found"
    )


def _too_many(wait_s: float, what: str) -> JSONResponse:
    # Retry-After is whole seconds (RFC 9110); round up so an obedient client is never early.
    retry_after = str(max(1, math.ceil(wait_s)))
    return printify_error(
        429,
        "Too Many Requests.",
        code=CODE_RATE_LIMITED,
        reason=f"{what} rate limit exceeded",
        headers={"Retry-After": retry_after},
    )


def _fault(request: Request, status: int) -> Response:
    """An injected fault in Printify's format (see :func:`simulators.common.install_faults`)."""
    if status == 429:
        return _too_many(1.0, "Request")
    if status >= 500:
        return printify_error(status, "Internal server error.", code=CODE_SERVER)
    return printify_error(status, "Request failed.", code=CODE_BAD_REQUEST)


def _ok(data: object) -> JSONResponse:
    return JSONResponse(content=data)


def _now() -> datetime:
    return datetime.now(UTC)


def _paginate(items: list[dict[str, Any]], page: int, limit: int) -> dict[str, Any]:
    """Printify's (Laravel-style) pagination envelope."""
    total = len(items)
    last_page = max(1, math.ceil(total / limit))
    start = (page - 1) * limit
    data = items[start : start + limit]
    return {
        "current_page": page,
        "data": data,
        "first_page_url": "/?page=1",
        "from": start + 1 if data else None,
        "last_page": last_page,
        "last_page_url": f"/?page={last_page}",
        "next_page_url": f"/?page={page + 1}" if page < last_page else None,
        "path": "/",
        "per_page": limit,
        "prev_page_url": f"/?page={page - 1}" if page > 1 else None,
        "to": start + len(data) if data else None,
        "total": total,
    }


def _page_params(request: Request, max_limit: int, default_limit: int) -> tuple[int, int] | str:
    """``(page, limit)`` from the query, or the reason they are invalid."""
    try:
        page = int(request.query_params.get("page", "1"))
        limit = int(request.query_params.get("limit", str(default_limit)))
    except ValueError:
        return "page and limit must be integers"
    if page < 1:
        return "The page must be at least 1."
    if not 1 <= limit <= max_limit:
        return f"The limit may not be greater than {max_limit}."
    return page, limit


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# --------------------------------------------------------------------------------------------
# Uploads


class _Invalid(Exception):
    """A request that fails validation; ``str(exc)`` is Printify's ``errors.reason``."""


def _inspect_image(data: bytes) -> tuple[int, int, str]:
    """Width, height and mime type of a PNG or JPEG, or raise :class:`_Invalid`."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise _Invalid("The file is not a valid image") from exc
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}.get(fmt or "")
    if mime is None:
        raise _Invalid(f"Unsupported image format {fmt}; only PNG and JPEG are accepted")
    return width, height, mime


async def _fetch(url: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise _Invalid("url must be an http(s) URL")
    try:
        async with (
            httpx.AsyncClient(timeout=10.0, follow_redirects=True, trust_env=False) as http,
            http.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise _Invalid(f"Could not download the image: HTTP {resp.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > MAX_URL_FETCH_BYTES:
                    raise _Invalid("The image is too large")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _Invalid(f"Could not download the image: {type(exc).__name__}") from exc
    return b"".join(chunks)


async def _make_upload(body: dict[str, Any]) -> dict[str, Any]:
    file_name = body.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise _Invalid("file_name is required")
    url, contents = body.get("url"), body.get("contents")
    if (url is None) == (contents is None):
        raise _Invalid("Exactly one of url or contents is required")
    if contents is not None:
        if not isinstance(contents, str):
            raise _Invalid("contents must be a base64 string")
        try:
            data = base64.b64decode(contents, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Invalid("contents is not valid base64") from exc
        if len(data) > MAX_BASE64_BYTES:
            # Base64 uploads are deprecated and meant for small files: print files go by URL.
            raise _Invalid("contents: images over 5 MB must be uploaded by url")
    else:
        if not isinstance(url, str):
            raise _Invalid("url must be a string")
        data = await _fetch(url)
    width, height, mime = _inspect_image(data)
    upload_id = secrets.token_hex(12)
    # Only the metadata is kept: the bytes are dropped so memory stays flat on long runs.
    return {
        "id": upload_id,
        "file_name": file_name,
        "height": height,
        "width": width,
        "size": len(data),
        "mime_type": mime,
        "preview_url": f"https://images.printify.com/sim/{upload_id}",
        "upload_time": _now().strftime("%Y-%m-%d %H:%M:%S"),
    }


# --------------------------------------------------------------------------------------------
# Products


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require_int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not _is_int(value):
        raise _Invalid(f"{key} is required and must be an integer")
    return value


def _validate_variants(
    raw: object, catalog: dict[int, CatalogVariant]
) -> list[tuple[CatalogVariant, int, bool, str | None]]:
    if not isinstance(raw, list) or not raw:
        raise _Invalid("variants is required and must be a non-empty list")
    out: list[tuple[CatalogVariant, int, bool, str | None]] = []
    seen: set[int] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _Invalid(f"variants.{i} must be an object")
        vid, price = item.get("id"), item.get("price")
        if not _is_int(vid):
            raise _Invalid(f"variants.{i}.id must be an integer")
        if not _is_int(price):
            # Printify takes prices in cents: 19.99 or "19.99" is rejected, not rounded.
            raise _Invalid(f"variants.{i}.price must be an integer (price in cents)")
        if price <= 0:
            raise _Invalid(f"variants.{i}.price must be positive")
        if vid not in catalog:
            raise _Invalid(f"variants.{i}.id {vid} is not available for this print provider")
        if vid in seen:
            raise _Invalid(f"variants.{i}.id {vid} is duplicated")
        seen.add(vid)
        enabled = item.get("is_enabled", True)
        if not isinstance(enabled, bool):
            raise _Invalid(f"variants.{i}.is_enabled must be a boolean")
        sku = item.get("sku")
        if sku is not None and (not isinstance(sku, str) or not sku):
            raise _Invalid(f"variants.{i}.sku must be a non-empty string")
        out.append((catalog[vid], int(price), enabled, sku))
    return out


def _validate_print_areas(
    raw: object, variant_ids: set[int], catalog: dict[int, CatalogVariant], acct: Account
) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise _Invalid("print_areas is required and must be a non-empty list")
    areas: list[dict[str, Any]] = []
    image_count = 0
    for i, area in enumerate(raw):
        if not isinstance(area, dict):
            raise _Invalid(f"print_areas.{i} must be an object")
        vids = area.get("variant_ids")
        if not isinstance(vids, list) or not vids or not all(_is_int(v) for v in vids):
            raise _Invalid(f"print_areas.{i}.variant_ids must be a non-empty list of integers")
        unknown = [v for v in vids if v not in variant_ids]
        if unknown:
            raise _Invalid(f"print_areas.{i}.variant_ids {unknown} are not in the variants")
        positions = {p for v in vids for p, _, _ in catalog[v].placeholders}
        placeholders = area.get("placeholders")
        if not isinstance(placeholders, list) or not placeholders:
            raise _Invalid(f"print_areas.{i}.placeholders must be a non-empty list")
        clean_placeholders: list[dict[str, Any]] = []
        for j, ph in enumerate(placeholders):
            where = f"print_areas.{i}.placeholders.{j}"
            if not isinstance(ph, dict) or ph.get("position") not in positions:
                raise _Invalid(f"{where}.position must be one of {sorted(positions)}")
            images = ph.get("images")
            if not isinstance(images, list):
                raise _Invalid(f"{where}.images must be a list")
            clean_images: list[dict[str, Any]] = []
            for k, img in enumerate(images):
                if not isinstance(img, dict) or not isinstance(img.get("id"), str):
                    raise _Invalid(f"{where}.images.{k}.id is required")
                if img["id"] not in acct.uploads:
                    raise _Invalid(f"{where}.images.{k}.id {img['id']} is not an uploaded image")
                for key in ("x", "y", "scale", "angle"):
                    if not _is_number(img.get(key)):
                        raise _Invalid(f"{where}.images.{k}.{key} must be a number")
                if img["scale"] <= 0:
                    raise _Invalid(f"{where}.images.{k}.scale must be positive")
                upload = acct.uploads[img["id"]]
                clean_images.append(
                    {
                        "id": img["id"],
                        "name": upload["file_name"],
                        "type": upload["mime_type"],
                        "height": upload["height"],
                        "width": upload["width"],
                        "x": img["x"],
                        "y": img["y"],
                        "scale": img["scale"],
                        "angle": img["angle"],
                    }
                )
            image_count += len(clean_images)
            clean_placeholders.append({"position": ph["position"], "images": clean_images})
        areas.append({"variant_ids": list(vids), "placeholders": clean_placeholders})
    if image_count == 0:
        raise _Invalid("print_areas must place at least one image")
    return areas


def _build_product(
    body: dict[str, Any], acct: Account, shop_id: int, mockup_base: str, behaviour: Behaviour
) -> dict[str, Any]:
    """Validate a create-product body like Printify and return the stored product; its mockups
    are served under ``mockup_base`` (Printify's image servers are this simulator). The SKUs
    sent are kept or replaced, and the variants not sent listed, as ``behaviour`` says."""
    title, description = body.get("title"), body.get("description")
    if not isinstance(title, str) or not title.strip():
        raise _Invalid("title is required")
    if not isinstance(description, str):
        raise _Invalid("description is required")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _Invalid("tags must be a list of strings")
    bp_id = _require_int(body, "blueprint_id")
    pp_id = _require_int(body, "print_provider_id")
    if bp_id not in BLUEPRINTS:
        raise _Invalid(f"blueprint_id {bp_id} does not exist")
    if pp_id not in PROVIDERS[bp_id]:
        raise _Invalid(f"print_provider_id {pp_id} is not available for blueprint {bp_id}")
    catalog = VARIANTS[(bp_id, pp_id)]
    variants = _validate_variants(body.get("variants"), catalog)
    sent = {v.id for v, *_ in variants}
    areas = _validate_print_areas(body.get("print_areas"), sent, catalog, acct)
    # "Each variant has a print area attached to it."
    covered = {vid for area in areas for vid in area["variant_ids"]}
    bare = sorted(v.id for v, _, enabled, _ in variants if enabled and v.id not in covered)
    if bare:
        raise _Invalid(f"variants {bare} have no print area")
    if not behaviour.keeps_sku:
        variants = [(v, price, enabled, None) for v, price, enabled, _ in variants]

    product_id = secrets.token_hex(12)
    colours = list(dict.fromkeys(v.colour for v, *_ in variants))
    sizes = list(dict.fromkeys(v.size for v, *_ in variants))
    default_id = next((v.id for v, _, enabled, _ in variants if enabled), variants[0][0].id)
    highest = max(price for _, price, _, _ in variants)
    stamp = _now().strftime("%Y-%m-%d %H:%M:%S+00:00")
    mockups = [
        {
            "src": f"{mockup_base}/mockup/{product_id}/{v.id}/{pos}.jpg",
            "variant_ids": [v.id],
            "position": pos,
            "is_default": v.id == default_id and pos == "front",
        }
        for v, _, enabled, _ in variants
        if enabled
        for pos in sorted({ph["position"] for area in areas for ph in area["placeholders"]})
    ]
    return {
        "id": product_id,
        "title": title,
        "description": description,
        "tags": list(tags),
        "options": [
            {
                "name": "Colors",
                "type": "color",
                "values": [{"id": _COLOUR_IDS[c], "title": c} for c in colours],
            },
            {
                "name": "Sizes",
                "type": "size",
                "values": [{"id": _SIZE_IDS[s], "title": s} for s in sizes],
            },
        ],
        # The provider's other variants, at the highest price sent with generated SKUs: listed
        # disabled, enabled or not at all (Printify's documentation does not say which).
        "variants": [
            _variant_row(v, price, enabled, sku, default_id) for v, price, enabled, sku in variants
        ]
        + [
            _variant_row(v, highest, behaviour.unsent_variants == "enabled", None, default_id)
            for v in catalog.values()
            if v.id not in sent and behaviour.unsent_variants != "absent"
        ],
        "images": mockups,
        "created_at": stamp,
        "updated_at": stamp,
        "visible": True,
        "is_locked": False,
        "blueprint_id": bp_id,
        "user_id": acct.user_id,
        "shop_id": shop_id,
        "print_provider_id": pp_id,
        "print_areas": areas,
        "sales_channel_properties": [],
    }


def _variant_row(
    v: CatalogVariant, price: int, enabled: bool, sku: str | None, default_id: int
) -> dict[str, Any]:
    """One variant of a product as Printify returns it (a SKU generated when none was sent)."""
    return {
        "id": v.id,
        "sku": sku or _generated_sku(),
        "cost": v.cost,
        "price": price,
        "title": v.title,
        "grams": 180,
        "is_enabled": enabled,
        "is_default": v.id == default_id,
        "is_available": True,
        "options": [_COLOUR_IDS[v.colour], _SIZE_IDS[v.size]],
    }


def _generated_sku() -> str:
    """A SKU as Printify makes one (digits, e.g. "866375988")."""
    return f"{secrets.randbelow(10**11):011d}"


def _below_cost(product: dict[str, Any]) -> str | None:
    """Why ``product`` may not be published at its prices, or None."""
    for i, v in enumerate(product["variants"]):
        if v["is_enabled"] and v["price"] < v["cost"]:
            return (
                f"variants.{i}.price {v['price']} of variant {v['id']} is below its"
                f" production cost {v['cost']}"
            )
    return None


def _print_dpi(product: dict[str, Any]) -> float | None:
    """The lowest resolution any placed image prints at on the product's enabled variants:
    300 DPI x the image's width over the width it covers on the placeholder (Printify sizes
    placeholders at 300 DPI; ``scale`` is the image's width as a share of the placeholder's).
    Printify itself does not check this; the books record it so tests can."""
    catalog = VARIANTS.get((product["blueprint_id"], product["print_provider_id"]), {})
    enabled = {v["id"] for v in product["variants"] if v["is_enabled"]}
    worst: float | None = None
    for area in product["print_areas"]:
        for vid in area["variant_ids"]:
            if vid not in enabled or vid not in catalog:
                continue
            widths = {pos: w for pos, w, _ in catalog[vid].placeholders}
            for ph in area["placeholders"]:
                for img in ph["images"]:
                    covered = float(img["scale"]) * widths[ph["position"]]
                    if covered <= 0:
                        continue
                    dpi = 300 * img["width"] / covered
                    worst = dpi if worst is None else min(worst, dpi)
    return None if worst is None else round(worst, 1)


def _apply_update(product: dict[str, Any], body: dict[str, Any], behaviour: Behaviour) -> None:
    """Validate an update like Printify and apply it to ``product``; raise :class:`_Invalid`.

    ``variants``: "all variants must be present in the request". Under ``require_all`` a list
    that misses some is refused; under ``replace`` it is the product's new list (variants left
    out are disabled; a variant's fields left out take their create defaults: enabled, a new
    SKU); under ``merge`` only what is sent changes."""
    for key in ("title", "description"):
        if key in body and (not isinstance(body[key], str) or not body[key].strip()):
            raise _Invalid(f"{key} must be a non-empty string")
    if "tags" in body and (
        not isinstance(body["tags"], list) or not all(isinstance(t, str) for t in body["tags"])
    ):
        raise _Invalid("tags must be a list of strings")
    changes: list[tuple[dict[str, Any], int | None, bool | None, str | None]] = []
    if "variants" in body:
        raw = body["variants"]
        if not isinstance(raw, list) or not raw:
            raise _Invalid("variants must be a non-empty list")
        own = {v["id"]: v for v in product["variants"]}
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not _is_int(item.get("id")):
                raise _Invalid(f"variants.{i}.id must be an integer")
            variant = own.get(item["id"])
            if variant is None:
                raise _Invalid(f"variants.{i}.id {item['id']} is not a variant of this product")
            price, enabled, sku = item.get("price"), item.get("is_enabled"), item.get("sku")
            if price is not None and (not _is_int(price) or price <= 0):
                raise _Invalid(f"variants.{i}.price must be a positive integer (cents)")
            if enabled is not None and not isinstance(enabled, bool):
                raise _Invalid(f"variants.{i}.is_enabled must be a boolean")
            if sku is not None and (not isinstance(sku, str) or not sku):
                raise _Invalid(f"variants.{i}.sku must be a non-empty string")
            changes.append((variant, price, enabled, sku))
        missing = sorted(set(own) - {v["id"] for v, *_ in changes})
        if missing and behaviour.variant_update == "require_all":
            raise _Invalid(
                f"variants: all variants of the product must be present; missing {missing}"
            )
        if behaviour.variant_update == "replace":
            for vid in missing:
                own[vid]["is_enabled"] = False
            # A variant sent is replaced whole: what it leaves out takes the create defaults.
            changes = [
                (variant, price, True if enabled is None else enabled, sku)
                for variant, price, enabled, sku in changes
            ]
            for variant, _, _, sku in changes:
                if sku is None:
                    variant["sku"] = _generated_sku()
    for key in ("title", "description", "tags"):
        if key in body:
            product[key] = body[key]
    for variant, price, enabled, sku in changes:
        if price is not None:
            variant["price"] = price
        if enabled is not None:
            variant["is_enabled"] = enabled
        if sku is not None and behaviour.keeps_sku:
            variant["sku"] = sku
    product["updated_at"] = _now().strftime("%Y-%m-%d %H:%M:%S+00:00")


def _duplicates(acct: Account) -> list[dict[str, Any]]:
    """Live products sharing their first variant SKU or a ``pod:`` tag with another one."""
    by_key: dict[str, list[str]] = collections.defaultdict(list)
    for pid, product in acct.products.items():
        keys = {f"sku:{product['variants'][0]['sku']}"} if product["variants"] else set()
        keys |= {f"tag:{t}" for t in product["tags"] if t.startswith("pod:")}
        if not any(str(v["sku"]).endswith(f"-{v['id']}") for v in product["variants"]):
            # No SKU of the seller's (Printify did not keep them): the same upload on the same
            # blueprint and provider twice is one design made twice.
            art = (product["blueprint_id"], product["print_provider_id"], _image_ids(product))
            keys.add(f"art:{art}")
        for key in keys:
            by_key[key].append(pid)
    return [{"key": k, "product_ids": ids} for k, ids in by_key.items() if len(ids) > 1]


def _image_ids(product: dict[str, Any]) -> list[str]:
    """The uploads a product prints, in order."""
    return sorted(
        {
            img["id"]
            for area in product["print_areas"]
            for ph in area["placeholders"]
            for img in ph["images"]
        }
    )


def _books(state: PrintifyState, limits: Limits) -> dict[str, Any]:
    accounts: dict[str, Any] = {}
    all_duplicates: list[dict[str, Any]] = []
    for key, acct in state.accounts.items():
        duplicates = _duplicates(acct)
        all_duplicates += [{"account": key, **d} for d in duplicates]
        accounts[key] = {
            "user_id": acct.user_id,
            "requests": acct.requests,
            "rate_limited": acct.rate_limited,
            "uploads": acct.uploads_count,
            "uploads_by_url": acct.uploads_by_url,
            "products_created": acct.products_created,
            "products_deleted": acct.products_deleted,
            "products": [
                {
                    "product_id": pid,
                    "title": p["title"],
                    "tags": p["tags"],
                    "skus": [v["sku"] for v in p["variants"] if v["is_enabled"]],
                    "image_ids": _image_ids(p),
                    "blueprint_id": p["blueprint_id"],
                    "print_dpi": _print_dpi(p),
                    # Profit of each enabled variant (price - production cost), in cents.
                    "profits": {
                        str(v["id"]): v["price"] - v["cost"]
                        for v in p["variants"]
                        if v["is_enabled"]
                    },
                }
                for pid, p in acct.products.items()
            ],
            "products_updated": acct.products_updated,
            "publish_calls": dict(acct.publish_calls),
            "publish_below_cost": acct.publish_below_cost,
            "handshake_refused": acct.handshake_refused,
            "publishing_succeeded": dict(acct.publish_succeeded),
            "publishing_failed": dict(acct.publish_failed),
            # Publications the non-custom channels listed or refused, by product id.
            "channel_listed": dict(acct.channel_listed),
            "channel_refused": dict(acct.channel_refused),
            "webhooks": [_webhook_view(w) for w in acct.webhooks.values()],
            "webhooks_delivered": dict(acct.webhooks_delivered),
            "webhook_attempts_failed": acct.webhook_attempts_failed,
            "webhooks_given_up": acct.webhooks_given_up,
            "duplicates": duplicates,
        }
    return {"accounts": accounts, "duplicates": all_duplicates, "limits": limits.as_dict()}


# --------------------------------------------------------------------------------------------
# Webhooks

WEBHOOK_TOPICS = frozenset(
    {
        "shop:disconnected",
        "product:deleted",
        "product:publish:started",
        "order:created",
        "order:updated",
        "order:sent-to-production",
        "order:shipment:created",
        "order:shipment:delivered",
    }
)


def _webhook_view(hook: dict[str, Any]) -> dict[str, Any]:
    # Printify never shows a webhook's secret back.
    return {k: hook[k] for k in ("id", "topic", "url", "shop_id")}


def webhook_signature(secret: str, body: bytes) -> str:
    """``X-Pfy-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class WebhookSender:
    """Delivers webhook calls in the background, as Printify does: a short while after the
    event, signed when the webhook has a secret, and tried again with doubling waits while the
    receiver does not answer 2xx (``SIM_PRINTIFY_WEBHOOK_ATTEMPTS`` tries, the first
    ``SIM_PRINTIFY_WEBHOOK_DELAY_MS`` after the event)."""

    delay_s: float
    attempts: int
    retry_s: float
    tasks: set[Any] = field(default_factory=set)

    def send(self, acct: Account, shop_id: int, topic: str, resource: dict[str, Any]) -> None:
        for hook in list(acct.webhooks.values()):
            if hook["topic"] != topic or int(hook["shop_id"]) != shop_id:
                continue
            call = {
                "id": secrets.token_hex(12),
                "type": topic,
                "created_at": _now().strftime("%Y-%m-%d %H:%M:%S+00:00"),
                "resource": resource,
            }
            task = asyncio.get_running_loop().create_task(self._deliver(acct, hook, call))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _deliver(self, acct: Account, hook: dict[str, Any], call: dict[str, Any]) -> None:
        body = json.dumps(call).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Printify-Webhooks"}
        if hook.get("secret"):
            headers["X-Pfy-Signature"] = webhook_signature(hook["secret"], body)
        wait = self.delay_s
        async with httpx.AsyncClient(timeout=10.0) as client:
            for _ in range(self.attempts):
                await asyncio.sleep(wait)
                wait = max(self.retry_s, wait * 2)
                try:
                    resp = await client.post(hook["url"], content=body, headers=headers)
                except httpx.HTTPError as exc:
                    logger.info("webhook delivery failed url=%s error=%s", hook["url"], exc)
                    acct.webhook_attempts_failed += 1
                    continue
                if 200 <= resp.status_code < 300:
                    acct.webhooks_delivered[call["type"]] += 1
                    return
                acct.webhook_attempts_failed += 1
        acct.webhooks_given_up += 1
        logger.warning("webhook given up topic=%s url=%s", call["type"], hook["url"])


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


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("printify")``)."""
    knobs = knobs or Knobs.from_env("printify")
    app = FastAPI(title="Printify simulator", docs_url=None, redoc_url=None)
    max_products = int(_env_number("SIM_PRINTIFY_MAX_PRODUCTS", 20000))
    state = PrintifyState(max_products=max_products, max_uploads=max_products * 2)
    limits = Limits(
        rpm=int(_env_number("SIM_PRINTIFY_RPM", 600)),
        rate_window_s=_env_number("SIM_PRINTIFY_RATE_WINDOW_S", 60.0),
        publish_limit=int(_env_number("SIM_PRINTIFY_PUBLISH_LIMIT", 200)),
        publish_window_s=_env_number("SIM_PRINTIFY_PUBLISH_WINDOW_S", 1800.0),
        catalog_rpm=int(_env_number("SIM_PRINTIFY_CATALOG_RPM", 100)),
    )
    channel_defaults = Channels(
        publish_ms=_env_number("SIM_PRINTIFY_PUBLISH_MS", 3000.0),
        failure_rate=_env_number("SIM_PRINTIFY_PUBLISH_FAILURE_RATE", 0.0),
    )
    channels = dataclasses.replace(channel_defaults)
    behaviour_defaults = Behaviour.from_env()
    behaviour = dataclasses.replace(behaviour_defaults)
    webhooks = WebhookSender(
        delay_s=_env_number("SIM_PRINTIFY_WEBHOOK_DELAY_MS", 200.0) / 1000,
        attempts=int(_env_number("SIM_PRINTIFY_WEBHOOK_ATTEMPTS", 6)),
        retry_s=_env_number("SIM_PRINTIFY_WEBHOOK_RETRY_S", 1.0),
    )
    app.state.sim = state
    shops = shops_from_env()
    # The tokens Printify knows (comma-separated); unset, any token is an account of its own.
    tokens = [t for t in os.environ.get("SIM_PRINTIFY_TOKENS", "").split(",") if t.strip()]
    install_faults(app, knobs, _fault)

    # Registered after install_faults, so it runs first: a request without a token or over the
    # account's rate limit never reaches the fault injector, as at Printify.
    @app.middleware("http")
    async def _auth_and_rate_limit(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith(("/_sim", "/mockup/")):
            # Test hooks, and the mockups: public image URLs, as on Printify's image servers.
            passed: Response = await call_next(request)
            return passed
        token = _bearer(request)
        if token is None or (tokens and not any(hmac.compare_digest(token, t) for t in tokens)):
            return printify_error(401, "Unauthenticated.", code=CODE_UNAUTHENTICATED)
        acct = state.account(token)
        acct.requests += 1
        wait = limits.requests.check(acct.key)
        if wait is None and request.url.path.startswith("/v1/catalog/"):
            # The catalog has its own, lower limit on top of the account's.
            wait = limits.catalog.check(acct.key)
        if wait is not None:
            acct.rate_limited += 1
            return _too_many(wait, "Request")
        acct.accepted_at.append(time.time())
        answered: Response = await call_next(request)
        return answered

    def account_of(request: Request) -> Account:
        # The middleware guarantees a token on every /v1 route.
        return state.account(_bearer(request) or "")

    def product_of(request: Request, shop_id: str, product_id: str) -> dict[str, Any] | Response:
        if shop_of(shop_id) is None:
            return _not_found("Shop")
        acct = account_of(request)
        acct.settle_channels(time.time())
        product = acct.products.get(product_id)
        if product is None or str(product["shop_id"]) != shop_id:
            return _not_found("Product")
        return product

    def shop_of(shop_id: str) -> dict[str, Any] | None:
        return next((s for s in shops if str(s["id"]) == shop_id), None)

    # --- shops & uploads -------------------------------------------------------------------

    @app.get("/v1/shops.json")
    async def list_shops() -> Response:
        return _ok(shops)

    @app.post("/v1/uploads/images.json")
    async def upload_image(request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _validation_error("The request body must be a JSON object")
        try:
            upload = await _make_upload(body)
        except _Invalid as exc:
            return _validation_error(str(exc))
        acct = account_of(request)
        state.add_upload(acct, upload)
        acct.uploads_by_url += 1 if body.get("url") is not None else 0
        logger.info("upload account=%s id=%s size=%d", acct.key, upload["id"], upload["size"])
        return _ok(upload)

    @app.get("/v1/uploads.json")
    async def list_uploads(request: Request) -> Response:
        params = _page_params(request, MAX_UPLOADS_PAGE, 10)
        if isinstance(params, str):
            return _validation_error(params)
        uploads = list(reversed(account_of(request).uploads.values()))
        return _ok(_paginate(uploads, *params))

    @app.get("/v1/uploads/{upload_id}.json")
    async def get_upload(request: Request, upload_id: str) -> Response:
        upload = account_of(request).uploads.get(upload_id)
        return _ok(upload) if upload is not None else _not_found("Upload")

    # --- catalog -----------------------------------------------------------------------------

    @app.get("/v1/catalog/blueprints.json")
    async def list_blueprints() -> Response:
        return _ok(list(BLUEPRINTS.values()))

    @app.get("/v1/catalog/blueprints/{blueprint_id}.json")
    async def get_blueprint(blueprint_id: int) -> Response:
        bp = BLUEPRINTS.get(blueprint_id)
        return _ok(bp) if bp is not None else _not_found("Blueprint")

    @app.get("/v1/catalog/blueprints/{blueprint_id}/print_providers.json")
    async def list_print_providers(blueprint_id: int) -> Response:
        if blueprint_id not in PROVIDERS:
            return _not_found("Blueprint")
        return _ok([{"id": i, "title": t} for i, t in PROVIDERS[blueprint_id].items()])

    @app.get("/v1/catalog/blueprints/{blueprint_id}/print_providers/{provider_id}/variants.json")
    async def list_variants(blueprint_id: int, provider_id: int) -> Response:
        catalog = VARIANTS.get((blueprint_id, provider_id))
        if catalog is None:
            return _not_found("Print provider")
        return _ok(
            {
                "id": provider_id,
                "title": PROVIDERS[blueprint_id][provider_id],
                "variants": [v.as_json() for v in catalog.values()],
            }
        )

    # --- products ----------------------------------------------------------------------------

    @app.post("/v1/shops/{shop_id}/products.json")
    async def create_product(request: Request, shop_id: str) -> Response:
        if shop_of(shop_id) is None:
            return _not_found("Shop")
        body = await _json_body(request)
        if body is None:
            return _validation_error("The request body must be a JSON object")
        acct = account_of(request)
        try:
            base = str(request.base_url).rstrip("/")
            product = _build_product(body, acct, int(shop_id), base, behaviour)
        except _Invalid as exc:
            return _validation_error(str(exc))
        state.add_product(acct, product)
        logger.info("product created account=%s id=%s", acct.key, product["id"])
        return _ok(product)

    @app.get("/v1/shops/{shop_id}/products.json")
    async def list_products(request: Request, shop_id: str) -> Response:
        if shop_of(shop_id) is None:
            return _not_found("Shop")
        params = _page_params(request, MAX_PRODUCTS_PAGE, 10)
        if isinstance(params, str):
            return _validation_error(params)
        acct = account_of(request)
        acct.settle_channels(time.time())
        products = [p for p in acct.products.values() if str(p["shop_id"]) == shop_id]
        if behaviour.products_order == "newest_first":
            products.reverse()
        return _ok(_paginate(products, *params))

    @app.get("/v1/shops/{shop_id}/products/{product_id}.json")
    async def get_product(request: Request, shop_id: str, product_id: str) -> Response:
        found = product_of(request, shop_id, product_id)
        return found if isinstance(found, Response) else _ok(found)

    @app.put("/v1/shops/{shop_id}/products/{product_id}.json")
    async def update_product(request: Request, shop_id: str, product_id: str) -> Response:
        found = product_of(request, shop_id, product_id)
        if isinstance(found, Response):
            return found
        if found["is_locked"]:
            return printify_error(
                400, "Product is disabled for editing.", code=CODE_LOCKED,
                reason="the product is being published",
            )  # fmt: skip
        body = await _json_body(request)
        if body is None:
            return _validation_error("The request body must be a JSON object")
        try:
            _apply_update(found, body, behaviour)
        except _Invalid as exc:
            return _validation_error(str(exc))
        account_of(request).products_updated += 1
        return _ok(found)

    @app.delete("/v1/shops/{shop_id}/products/{product_id}.json")
    async def delete_product(request: Request, shop_id: str, product_id: str) -> Response:
        found = product_of(request, shop_id, product_id)
        if isinstance(found, Response):
            return found
        acct = account_of(request)
        acct.forget_product(product_id)
        acct.products_deleted += 1
        webhooks.send(
            acct,
            int(shop_id),
            "product:deleted",
            {"id": product_id, "type": "product", "data": {"shop_id": int(shop_id)}},
        )
        return _ok({})

    @app.post("/v1/shops/{shop_id}/products/{product_id}/publish.json")
    async def publish(request: Request, shop_id: str, product_id: str) -> Response:
        found = product_of(request, shop_id, product_id)
        if isinstance(found, Response):
            return found
        body = await _json_body(request)
        if body is None:
            return _validation_error("The request body must be a JSON object")
        for key in ("title", "description", "images", "variants", "tags"):
            if not isinstance(body.get(key), bool):
                return _validation_error(f"{key} is required and must be a boolean")
        for key in ("keyFeatures", "shipping_template"):
            if key in body and not isinstance(body[key], bool):
                return _validation_error(f"{key} must be a boolean")
        acct = account_of(request)
        wait = limits.publishes.check(acct.key)
        if wait is not None:
            acct.rate_limited += 1
            return _too_many(wait, "Publishing")
        if found["is_locked"] and behaviour.publish_locked == "refuse":
            return printify_error(
                400, "Product is disabled for editing.", code=CODE_LOCKED,
                reason="the product is being published",
            )  # fmt: skip
        below = _below_cost(found)
        if below is not None:
            acct.publish_below_cost += 1
            return _validation_error(below)
        acct.publish_calls[product_id] += 1
        found["is_locked"] = True
        channel = str((shop_of(shop_id) or {}).get("sales_channel"))
        if channel != SALES_CHANNEL:
            # Printify pushes the product to the channel, which lists it later, or refuses it.
            refused = random.random() < channels.failure_rate
            due = time.time() + channels.publish_ms / 1000
            acct.channel_pending[product_id] = (due, refused, channel)
        else:
            # A custom integration learns of the publication from this webhook, and answers
            # with publishing_succeeded or publishing_failed.
            details = {k: v for k, v in body.items() if k != "keyFeatures"}
            details["key_features"] = bool(body.get("keyFeatures", True))
            webhooks.send(
                acct,
                int(shop_id),
                "product:publish:started",
                {
                    "id": product_id,
                    "type": "product",
                    "data": {
                        "shop_id": int(shop_id),
                        "publish_details": details,
                        "action": "create",
                    },
                },
            )
        logger.info("publish account=%s product=%s", acct.key, product_id)
        return _ok({})

    @app.post("/v1/shops/{shop_id}/products/{product_id}/publishing_succeeded.json")
    async def publishing_succeeded(request: Request, shop_id: str, product_id: str) -> Response:
        found = product_of(request, shop_id, product_id)
        if isinstance(found, Response):
            return found
        channel = (shop_of(shop_id) or {}).get("sales_channel")
        if channel != SALES_CHANNEL:
            # Printify confirms publications to Etsy, Shopify, ... itself: the handshake
            # belongs to shops connected through the API (custom integration).
            account_of(request).handshake_refused += 1
            return _validation_error(
                f"publishing_succeeded is for custom integration shops; shop {shop_id} is "
                f"connected to {channel}"
            )
        body = await _json_body(request)
        external = body.get("external") if body else None
        if not isinstance(external, dict) or not all(
            isinstance(external.get(k), str) and external.get(k) for k in ("id", "handle")
        ):
            return _validation_error("external.id and external.handle are required strings")
        found["external"] = {"id": external["id"], "handle": external["handle"]}
        found["is_locked"] = False
        account_of(request).publish_succeeded[product_id] += 1
        return _ok({})

    @app.post("/v1/shops/{shop_id}/products/{product_id}/publishing_failed.json")
    async def publishing_failed(request: Request, shop_id: str, product_id: str) -> Response:
        found = product_of(request, shop_id, product_id)
        if isinstance(found, Response):
            return found
        body = await _json_body(request)
        if body is None or not isinstance(body.get("reason"), str):
            return _validation_error("reason is required and must be a string")
        found["is_locked"] = False
        account_of(request).publish_failed[product_id] += 1
        return _ok({})

    # --- mockups -----------------------------------------------------------------------------

    @app.get("/mockup/{product_id}/{variant_id}/{position}.jpg")
    async def mockup(product_id: str, variant_id: int, position: str) -> Response:
        """A product's mockup image (a small JPEG, the same bytes for the same URL)."""
        seed = hashlib.sha256(f"{product_id}:{variant_id}:{position}".encode()).digest()
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (seed[0], seed[1], seed[2])).save(buf, "JPEG")
        return Response(buf.getvalue(), media_type="image/jpeg")

    # --- webhooks ----------------------------------------------------------------------------

    @app.get("/v1/shops/{shop_id}/webhooks.json")
    async def list_webhooks(request: Request, shop_id: str) -> Response:
        if shop_of(shop_id) is None:
            return _not_found("Shop")
        hooks = account_of(request).webhooks.values()
        return _ok([_webhook_view(w) for w in hooks if str(w["shop_id"]) == shop_id])

    @app.post("/v1/shops/{shop_id}/webhooks.json")
    async def create_webhook(request: Request, shop_id: str) -> Response:
        if shop_of(shop_id) is None:
            return _not_found("Shop")
        body = await _json_body(request)
        if body is None:
            return _validation_error("The request body must be a JSON object")
        topic, url, secret = body.get("topic"), body.get("url"), body.get("secret")
        if topic not in WEBHOOK_TOPICS:
            return _validation_error(f"topic must be one of {sorted(WEBHOOK_TOPICS)}")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _validation_error("url must be an http(s) URL")
        if secret is not None and not isinstance(secret, str):
            return _validation_error("secret must be a string")
        hook = {
            "id": secrets.token_hex(12),
            "topic": topic,
            "url": url,
            "shop_id": shop_id,
            "secret": secret,
        }
        account_of(request).webhooks[hook["id"]] = hook
        return _ok(_webhook_view(hook))

    @app.delete("/v1/shops/{shop_id}/webhooks/{webhook_id}.json")
    async def delete_webhook(request: Request, shop_id: str, webhook_id: str) -> Response:
        hooks = account_of(request).webhooks
        hook = hooks.get(webhook_id)
        if hook is None or str(hook["shop_id"]) != shop_id:
            return _not_found("Webhook")
        del hooks[webhook_id]
        return _ok({"id": webhook_id})

    # --- test hooks --------------------------------------------------------------------------

    @app.post("/_sim/webhooks/fire")
    async def fire_webhook(request: Request) -> Response:
        """Send a webhook call of the token's account (e.g. an order's topics)."""
        token = _bearer(request)
        body = await _json_body(request)
        if token is None or body is None:
            return _validation_error("a bearer token and a JSON body are required")
        topic, resource = body.get("topic"), body.get("resource")
        if topic not in WEBHOOK_TOPICS or not isinstance(resource, dict):
            return _validation_error("topic (a webhook topic) and resource (an object)")
        webhooks.send(state.account(token), int(body.get("shop_id", SHOP_ID)), topic, resource)
        return _ok({"sent": True})

    @app.get("/_sim/request_times")
    async def request_times() -> dict[str, list[float]]:
        return {key: list(acct.accepted_at) for key, acct in state.accounts.items()}

    @app.get("/_sim/books")
    async def books() -> Response:
        return _ok(_books(state, limits))

    @app.post("/_sim/reset")
    async def reset() -> Response:
        state.reset()
        limits.rebuild()
        # The channels' behaviour is a test's setting: back to the environment's.
        channels.publish_ms = channel_defaults.publish_ms
        channels.failure_rate = channel_defaults.failure_rate
        behaviour.__dict__.update(behaviour_defaults.as_dict())
        return _ok({"reset": True})

    @app.get("/_sim/behaviour")
    async def get_behaviour() -> Response:
        return _ok(behaviour.as_dict())

    @app.post("/_sim/behaviour")
    async def set_behaviour(request: Request) -> Response:
        """Choose among the possibilities the documentation leaves open (see Behaviour)."""
        body = await _json_body(request)
        try:
            behaviour.update(body or {})
        except ValueError as exc:
            return _validation_error(str(exc))
        return _ok(behaviour.as_dict())

    @app.get("/_sim/limits")
    async def get_limits() -> Response:
        return _ok(limits.as_dict())

    @app.post("/_sim/limits")
    async def set_limits(request: Request) -> Response:
        body = await _json_body(request) or {}
        limits.rpm = int(body.get("rpm", limits.rpm))
        limits.rate_window_s = float(body.get("rate_window_s", limits.rate_window_s))
        limits.publish_limit = int(body.get("publish_limit", limits.publish_limit))
        limits.publish_window_s = float(body.get("publish_window_s", limits.publish_window_s))
        limits.catalog_rpm = int(body.get("catalog_rpm", limits.catalog_rpm))
        limits.rebuild()
        return _ok(limits.as_dict())

    @app.get("/_sim/channels")
    async def get_channels() -> Response:
        return _ok(channels.as_dict())

    @app.post("/_sim/channels")
    async def set_channels(request: Request) -> Response:
        body = await _json_body(request) or {}
        channels.publish_ms = float(body.get("publish_ms", channels.publish_ms))
        channels.failure_rate = float(body.get("failure_rate", channels.failure_rate))
        return _ok(channels.as_dict())

    return app


def main() -> None:
    """Entry point: ``python -m simulators.printify [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(description="Printify API v1 simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8189)
    args = parser.parse_args()
    serve(create_app(), args.host, args.port)


if __name__ == "__main__":
    main()
