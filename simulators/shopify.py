"""Shopify Admin GraphQL API simulator: a real HTTP server speaking Shopify's wire format.

It covers what a sales channel needs to list a product: ``productSet`` (create or update in one
call, synchronous), ``productByIdentifier`` / ``product``, ``publications`` / ``publication`` and
``publishablePublish`` (put the product on the Online Store), and what ``pod doctor`` asks:
``shop``, ``currentAppInstallation { accessScopes }``, ``publicApiVersions``. Its schema is not
written here: it is the extract of Shopify's published schema for the pinned API version
(:mod:`simulators.contracts.shopify`, ``admin-<version>.graphql``), so every document is parsed
and validated against what Shopify would validate it against (graphql-core), and a field
Shopify does not have, a missing sub-selection (``resourcePublicationsCount`` is a ``Count``
object), a wrong argument or input type is refused with Shopify's ``errors`` list.

Behaviour copied from Shopify on purpose:

- ``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``. The versions
  served follow Shopify's calendar (a stable version each quarter, supported 12 months, the
  next quarter's as release candidate, ``unstable``), as of ``SIM_SHOPIFY_TODAY`` (default:
  today, UTC): a stable version no longer supported *falls forward* to the oldest supported one
  (as Shopify documents), a version not released yet or malformed is a 404. Every answer says
  the version served in ``X-Shopify-API-Version``. (Each version is served with the one
  extracted schema.)
- **Tokens.** ``POST /admin/oauth/access_token`` is the client credentials grant of a Dev
  Dashboard app (``grant_type=client_credentials``, ``client_id``, ``client_secret``, form or
  JSON): ``{"access_token", "scope", "expires_in"}``, the token living
  ``SIM_SHOPIFY_TOKEN_TTL_S`` (86399, as Shopify's); wrong credentials or an uninstalled app are
  a 400 ``{"error": "invalid_client", ...}``. The app is ``SIM_SHOPIFY_CLIENT_ID`` /
  ``SIM_SHOPIFY_CLIENT_SECRET`` (``sim-shopify-client`` / ``sim-shopify-secret``). An issued
  token that expired, or whose app was uninstalled, is a 401 ``{"errors": "[API] Invalid API
  key or access token ..."}``, like a missing or unknown one. Admin tokens of legacy custom
  apps (``shpat_``) never expire: any token the simulator did not issue is taken for one unless
  ``SIM_SHOPIFY_TOKENS`` lists the valid ones.
- **Access scopes.** A token carries the app's scopes (``SIM_SHOPIFY_SCOPES``, default
  ``write_products,write_publications``; a write_ scope grants the read_ one). A field or type
  whose scopes (the extract's ``.scopes.json``, from Shopify's ``offline_scopes``) the token
  lacks resolves to null with an ``ACCESS_DENIED`` error naming the required access.
- **Rate limit: a leaky bucket of query cost per shop** (``SIM_SHOPIFY_BUCKET`` points, 2000,
  restored at ``SIM_SHOPIFY_RESTORE_RATE`` per second, 100). Every answer carries
  ``extensions.cost`` with ``requestedQueryCost``, ``actualQueryCost`` and ``throttleStatus``
  (``maximumAvailable``, ``currentlyAvailable``, ``restoreRate``). A query costing more than is
  available is refused with HTTP 200 and ``errors: [{message: "Throttled", extensions: {code:
  "THROTTLED"}}]``. Cost: a mutation 10, each object 1, a connection ``first`` times its node.
- ``productSet``: upsert by ``identifier`` (``id``, ``handle`` or a ``customId`` metafield);
  list fields (``variants``, ``files``, ``productOptions``, ``metafields``) replace what was
  there. ``userErrors`` (``field``, ``message``, ``code`` from Shopify's ProductSetUserErrorCode;
  which code Shopify picks for each case is our reading) as Shopify words them: a blank title,
  more than 3 options, a variant whose option value is not declared, two variants with the same
  options, a bad price, a file that is not an http(s) URL, a handle already taken.
- Product media are processed asynchronously: ``PROCESSING`` for ``SIM_SHOPIFY_MEDIA_MS`` (500),
  then ``READY``.
- ``onlineStoreUrl`` is null until the product is ACTIVE and published to the Online Store (the
  publication whose catalog is titled "Online Store").

The shop is the request's host (``<shop>.myshopify.com``) or ``SIM_SHOPIFY_SHOP``.

Test hooks: ``GET /_sim/books`` (per shop: products with handle, status, variants, files,
publications; ``throttled`` answers; ``duplicates``: handles or markers listed twice; ``grants``
and ``unauthorized`` per app and shop), ``POST /_sim/reset``, ``GET/POST /_sim/config`` (fault
knobs, :mod:`simulators.common`), ``GET/POST /_sim/limits`` (bucket size and restore rate),
``GET/POST /_sim/app`` (the app: ``client_id``, ``client_secret``, ``scopes``, ``installed``,
``token_ttl_s``), ``POST /_sim/app/uninstall`` and ``/_sim/app/install``, ``POST
/_sim/publications`` (``{"shop": ..., "publications": [{"id", "name"}]}``: a shop's sales
channels; by default the Online Store and Point of Sale).
"""

from __future__ import annotations

import argparse
import collections
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    get_named_type,
    parse,
    validate,
)
from graphql.language import (
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)

from shared.vendors.shopify_contract import API_VERSION
from simulators.common import Knobs, error_json, install_faults, serve
from simulators.contracts.shopify import load_scopes, sdl_path

logger = logging.getLogger(__name__)

DEFAULT_SHOP = "pod-engine-sim.myshopify.com"
ONLINE_STORE_NAME = "Online Store"
DEFAULT_PUBLICATIONS = (
    {"id": "gid://shopify/Publication/1", "name": ONLINE_STORE_NAME},
    {"id": "gid://shopify/Publication/2", "name": "Point of Sale"},
)
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
DEFAULT_CLIENT_ID = "sim-shopify-client"
DEFAULT_CLIENT_SECRET = "sim-shopify-secret"  # noqa: S105  # the simulator's own app
DEFAULT_SCOPES = "write_products,write_publications"
TOKEN_TTL_S = 86399  # Shopify's expires_in for a client credentials token (24 hours)
ACCESS_SCOPES_DOC = "https://shopify.dev/api/usage/access-scopes"
QUARTERS = (1, 4, 7, 10)

_VERSION = re.compile(r"^(\d{4})-(01|04|07|10)$")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# ------------------------------------------------------------------------------- versions


def _release(version: str) -> date:
    year, month = version.split("-")
    return date(int(year), int(month), 1)


def _version(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def _next(version: str) -> str:
    day = _release(version)
    return _version(date(day.year + (day.month == 10), day.month + 3 if day.month < 10 else 1, 1))


def _previous(version: str) -> str:
    day = _release(version)
    return _version(date(day.year - (day.month == 1), (day.month - 4) % 12 + 1, 1))


def supported_versions(today: date) -> list[str]:
    """The stable versions Shopify supports on ``today``, oldest first: each quarter's, for 12
    months from its release (Shopify's versioning page: "supported for a minimum of 12
    months", its 2023 example ending each on the same day a year later)."""
    out = [_version(date(today.year, max(m for m in QUARTERS if m <= today.month), 1))]
    while True:
        older = _previous(out[-1])
        release = _release(older)
        if today >= release.replace(year=release.year + 1):
            return out[::-1]
        out.append(older)


def served_version(requested: str, today: date) -> str | None:
    """The version Shopify answers a request for ``requested`` with: itself when supported, the
    release candidate or ``unstable``; the oldest supported one for an older stable version (it
    falls forward); None (404) for a version not released yet or not a version."""
    if requested == "unstable":
        return requested
    if not _VERSION.match(requested):
        return None
    stable = supported_versions(today)
    if requested in stable or requested == _next(stable[-1]):
        return requested
    if requested < stable[0]:
        return stable[0]
    return None


def public_api_versions(today: date) -> list[dict[str, Any]]:
    """``publicApiVersions``: the supported versions, the release candidate and unstable."""
    stable = supported_versions(today)
    candidate = _next(stable[-1])
    return [
        *({"handle": v, "displayName": v, "supported": True} for v in stable),
        {
            "handle": candidate,
            "displayName": f"{candidate} (Release candidate)",
            "supported": False,
        },
        {"handle": "unstable", "displayName": "unstable", "supported": False},
    ]


# --------------------------------------------------------------------------------- scopes


def _scopes(raw: str | Iterable[str]) -> frozenset[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(s.strip() for s in items if s.strip())


def has_access(granted: frozenset[str], any_of: Iterable[str]) -> bool:
    """Whether ``granted`` holds one of ``any_of``: a write_ scope also grants its read_ one
    (Shopify's access-scopes page: "any scope that writes a resource also grants read access
    to it")."""
    implied = granted | {"read_" + s[len("write_") :] for s in granted if s.startswith("write_")}
    return any(s in implied for s in any_of)


class Requirements:
    """The access each type and field of the extract requires (its ``.scopes.json``)."""

    def __init__(self, items: Iterable[dict[str, Any]]) -> None:
        self.fields: dict[tuple[str, str], dict[str, Any]] = {}
        self.types: dict[str, dict[str, Any]] = {}
        for item in items:
            if item["field"]:
                self.fields[(item["type"], item["field"])] = item
            else:
                self.types[item["type"]] = item

    def denied(
        self, info: GraphQLResolveInfo[Any], granted: frozenset[str]
    ) -> dict[str, Any] | None:
        """The requirement resolving this field breaks, if any: the field's own, the type it
        belongs to, or the (object) type it returns."""
        returns = get_named_type(info.return_type).name
        for item in (
            self.fields.get((info.parent_type.name, info.field_name)),
            self.types.get(info.parent_type.name),
            self.types.get(returns),
        ):
            if item is not None and not has_access(granted, item["anyOf"]):
                return item
        return None

    def guard(self) -> Callable[..., Any]:
        """graphql-core middleware: a field the token may not read resolves to an
        ACCESS_DENIED error, as Shopify answers it."""

        def middleware(
            next_: Callable[..., Any], root: Any, info: GraphQLResolveInfo[Any], **args: Any
        ) -> Any:
            denied = self.denied(info, info.context["scopes"])
            if denied is not None:
                raise GraphQLError(
                    f"Access denied for {info.field_name} field. Required access: "
                    f"{denied['requiredAccess']}",
                    extensions={
                        "code": "ACCESS_DENIED",
                        "documentation": ACCESS_SCOPES_DOC,
                        "requiredAccess": denied["requiredAccess"],
                    },
                )
            return next_(root, info, **args)

        return middleware


# ---------------------------------------------------------------------------------- tokens


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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "product"


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


@dataclass
class Store:
    """One shop: its products, and what happened to it."""

    domain: str
    bucket: Bucket
    products: dict[str, dict[str, Any]] = field(default_factory=dict)  # gid -> product
    next_id: int = 1000
    requests: int = 0
    throttled: int = 0
    product_sets: int = 0
    created: int = 0
    publishes: int = 0
    unauthorized: int = 0
    publications: list[dict[str, str]] = field(
        default_factory=lambda: [dict(p) for p in DEFAULT_PUBLICATIONS]
    )

    def online_store(self) -> str | None:
        """The id of the shop's Online Store publication (products on it have a URL)."""
        return next((p["id"] for p in self.publications if p["name"] == ONLINE_STORE_NAME), None)

    def new_id(self, kind: str) -> str:
        self.next_id += 1
        return f"gid://shopify/{kind}/{self.next_id}{secrets.randbelow(1000):03d}"

    def by_handle(self, handle: str) -> dict[str, Any] | None:
        return next((p for p in self.products.values() if p["handle"] == handle), None)

    def by_custom_id(self, namespace: str | None, key: str, value: str) -> dict[str, Any] | None:
        for p in self.products.values():
            for m in p["metafields"]:
                if (m["namespace"], m["key"], m["value"]) == (namespace or "custom", key, value):
                    return p
        return None


class Invalid(Exception):
    """A userError: the path of the input field and Shopify's message and code."""

    def __init__(self, path: list[str], message: str, code: str) -> None:
        super().__init__(message)
        self.path, self.message, self.code = path, message, code


# ---------------------------------------------------------------------------------- cost


def query_cost(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> int:
    """Shopify's requested cost, simplified: a mutation 10, an object 1, a connection ``first``
    (default 10) times the cost of its node; scalars free."""

    def selection_cost(selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.selection_set is None:
                    continue
                first = next(
                    (
                        int(getattr(a.value, "value", 10))
                        for a in sel.arguments or ()
                        if a.name.value == "first"
                    ),
                    None,
                )
                inner = selection_cost(sel.selection_set)
                total += (first or 1) * max(inner, 1) if first is not None else 1 + inner
            elif isinstance(sel, InlineFragmentNode):
                total += selection_cost(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                frag = fragments.get(sel.name.value)
                total += selection_cost(frag.selection_set if frag else None)
        return total

    cost = selection_cost(operation.selection_set)
    if operation.operation == OperationType.MUTATION:
        cost += 10
    return max(cost, 1)


# ------------------------------------------------------------------------------ products


def _money(raw: object, path: list[str]) -> str:
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise Invalid(path, "Price is invalid", "INVALID_VARIANT") from None
    if value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Invalid(path, "Price must be a decimal amount of at least 0", "INVALID_VARIANT")
    return f"{value:.2f}"


def _options(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    options = raw or []
    if len(options) > 3:
        raise Invalid(
            ["input", "productOptions"],
            "Options count is over the allowed limit of 3",
            "OPTIONS_OVER_LIMIT",
        )
    seen: set[str] = set()
    out = []
    for i, option in enumerate(options):
        name = (option.get("name") or "").strip()
        if not name:
            raise Invalid(
                ["input", "productOptions", str(i), "name"],
                "Option name can't be blank",
                "INVALID_INPUT",
            )
        if name in seen:
            raise Invalid(
                ["input", "productOptions", str(i)],
                f"Duplicated option name '{name}'",
                "DUPLICATED_OPTION_NAME",
            )
        seen.add(name)
        values = [(v.get("name") or "").strip() for v in option.get("values") or []]
        if not values or not all(values):
            raise Invalid(
                ["input", "productOptions", str(i), "values"],
                "Option values can't be blank",
                "OPTION_VALUES_MISSING",
            )
        out.append(
            {
                "name": name,
                "position": option.get("position") or i + 1,
                "optionValues": [{"name": v} for v in dict.fromkeys(values)],
            }
        )
    return out


def _variants(
    raw: list[dict[str, Any]] | None, options: list[dict[str, Any]], store: Store
) -> list[dict[str, Any]]:
    declared = {o["name"]: {v["name"] for v in o["optionValues"]} for o in options}
    seen: set[tuple[tuple[str, str], ...]] = set()
    out = []
    for i, variant in enumerate(raw or []):
        path = ["input", "variants", str(i)]
        chosen: dict[str, str] = {}
        for value in variant.get("optionValues") or []:
            name, val = value.get("optionName"), value.get("name")
            if name not in declared:
                raise Invalid(
                    [*path, "optionValues"],
                    f"Option '{name}' does not exist",
                    "OPTION_DOES_NOT_EXIST",
                )
            if val not in declared[name]:
                raise Invalid(
                    [*path, "optionValues"],
                    f"Option value '{val}' does not exist on option '{name}'",
                    "OPTION_VALUE_DOES_NOT_EXIST",
                )
            chosen[name] = val
        if set(chosen) != set(declared):
            raise Invalid(
                [*path, "optionValues"],
                "Variant must have a value for every product option",
                "INVALID_VARIANT",
            )
        combo = tuple(sorted(chosen.items()))
        if combo in seen:
            raise Invalid(
                path,
                f"The variant '{' / '.join(chosen.values())}' already exists.",
                "INVALID_VARIANT",
            )
        seen.add(combo)
        sku = (variant.get("inventoryItem") or {}).get("sku") or variant.get("sku")
        out.append(
            {
                "id": store.new_id("ProductVariant"),
                "title": " / ".join(chosen[o["name"]] for o in options) or "Default Title",
                "sku": sku,
                "price": _money(variant.get("price", "0"), [*path, "price"]),
                "selectedOptions": [
                    {"name": o["name"], "value": chosen[o["name"]]} for o in options
                ],
            }
        )
    return out


def _files(raw: list[dict[str, Any]] | None, store: Store, ready_at: float) -> list[dict[str, Any]]:
    out = []
    for i, f in enumerate(raw or []):
        source = f.get("originalSource") or ""
        if not re.match(r"^https?://[^\s/]+/\S*$", source):
            raise Invalid(
                ["input", "files", str(i), "originalSource"],
                "Original source is not a valid URL",
                "INVALID_INPUT",
            )
        out.append(
            {
                "id": store.new_id("MediaImage"),
                "alt": f.get("alt"),
                "originalSource": source,
                "ready_at": ready_at,
            }
        )
    return out


def product_set(store: Store, args: dict[str, Any], media_s: float) -> dict[str, Any]:
    """The ``productSet`` mutation: create or update, all list fields replaced."""
    data = args["input"]
    ident = args.get("identifier") or {}
    existing: dict[str, Any] | None = None
    if ident.get("id"):
        existing = store.products.get(ident["id"])
        if existing is None:
            raise Invalid(["identifier", "id"], "Product does not exist", "PRODUCT_DOES_NOT_EXIST")
    elif ident.get("handle"):
        existing = store.by_handle(ident["handle"])
    elif ident.get("customId"):
        c = ident["customId"]
        existing = store.by_custom_id(c.get("namespace"), c["key"], c["value"])
    title = data.get("title", existing["title"] if existing else None)
    if not title or not str(title).strip():
        raise Invalid(["input", "title"], "Title can't be blank", "INVALID_PRODUCT")
    if len(title) > 255:
        raise Invalid(
            ["input", "title"], "Title is too long (maximum is 255 characters)", "INVALID_PRODUCT"
        )
    handle = data.get("handle") or (existing["handle"] if existing else None)
    if handle is None:
        handle = ident.get("handle") or _slug(title)
        base, n = handle, 1
        while store.by_handle(handle) is not None:  # generated: made unique with a suffix
            n += 1
            handle = f"{base}-{n}"
    elif not _HANDLE.match(handle):
        raise Invalid(["input", "handle"], "Handle is invalid", "INVALID_PRODUCT")
    other = store.by_handle(handle)
    if other is not None and other is not existing:
        raise Invalid(
            ["input", "handle"],
            f"Handle '{handle}' already in use. Please provide a new handle.",
            "HANDLE_NOT_UNIQUE",
        )
    options = (
        _options(data.get("productOptions"))
        if "productOptions" in data or existing is None
        else existing["options"]
    )
    if "variants" in data or existing is None:
        variants = _variants(data.get("variants"), options, store)
        if not variants:
            if options:
                raise Invalid(
                    ["input", "variants"],
                    "Variants can't be blank when options are set",
                    "VARIANTS_INPUT_MISSING",
                )
            variants = [
                {
                    "id": store.new_id("ProductVariant"),
                    "title": "Default Title",
                    "sku": None,
                    "price": "0.00",
                    "selectedOptions": [],
                }
            ]
    else:
        variants = existing["variants"]
    files = (
        _files(data.get("files"), store, time.monotonic() + media_s)
        if "files" in data
        else (existing["media"] if existing else [])
    )
    metafields = (
        [
            {
                "namespace": m.get("namespace") or "custom",
                "key": m["key"],
                "value": m["value"],
                "type": m.get("type") or "single_line_text_field",
            }
            for m in data.get("metafields") or []
        ]
        if "metafields" in data
        else (existing["metafields"] if existing else [])
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    product = existing or {
        "id": store.new_id("Product"),
        "createdAt": stamp,
        "publications": set(),
        "vendor": store.domain.split(".")[0],
        "productType": "",
        "descriptionHtml": "",
        "tags": [],
        "status": "ACTIVE",
    }
    product.update(
        {
            "title": str(title),
            "handle": handle,
            "options": options,
            "variants": variants,
            "media": files,
            "metafields": metafields,
            "updatedAt": stamp,
        }
    )
    for key in ("descriptionHtml", "vendor", "productType", "status"):
        if data.get(key) is not None:
            product[key] = data[key]
    if data.get("tags") is not None:
        product["tags"] = sorted(dict.fromkeys(t.strip() for t in data["tags"] if t.strip()))
    if existing is None:
        store.products[product["id"]] = product
        store.created += 1
    store.product_sets += 1
    return product


def _count(n: int) -> dict[str, Any]:
    return {"count": n, "precision": "EXACT"}


def publication_view(publication: dict[str, str]) -> dict[str, Any]:
    """A publication as the schema resolves it: its title on its (app) catalog."""
    return {
        "id": publication["id"],
        "name": publication["name"],
        "catalog": {
            "__typename": "AppCatalog",
            "id": publication["id"].replace("Publication", "AppCatalog"),
            "title": publication["name"],
        },
    }


def product_view(store: Store, product: dict[str, Any] | None) -> dict[str, Any] | None:
    """The product as the schema resolves it."""
    if product is None:
        return None
    now = time.monotonic()
    online = store.online_store()
    published = online in product["publications"] and product["status"] == "ACTIVE"
    metafields = product["metafields"]
    publications = _count(len(product["publications"]))
    return {
        "__typename": "Product",
        **{
            k: product[k]
            for k in (
                "id",
                "handle",
                "title",
                "descriptionHtml",
                "vendor",
                "productType",
                "tags",
                "status",
                "createdAt",
                "updatedAt",
                "options",
            )
        },
        "onlineStoreUrl": f"https://{store.domain}/products/{product['handle']}"
        if published
        else None,
        "variants": {
            "nodes": [{**v, "resourcePublicationsCount": publications} for v in product["variants"]]
        },
        "media": {
            "nodes": [
                {
                    "__typename": "MediaImage",
                    "id": m["id"],
                    "alt": m["alt"],
                    "status": "READY" if now >= m["ready_at"] else "PROCESSING",
                }
                for m in product["media"]
            ]
        },
        "metafield": lambda _info, key, namespace=None: next(
            (
                m
                for m in metafields
                if m["key"] == key and m["namespace"] == (namespace or "custom")
            ),
            None,
        ),
        "resourcePublicationsCount": publications,
    }


# ----------------------------------------------------------------------------------- app


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _today() -> date:
    raw = os.environ.get("SIM_SHOPIFY_TODAY")
    return date.fromisoformat(raw) if raw else datetime.now(UTC).date()


class Root:
    """Resolvers of QueryRoot and Mutation for one request's shop and token."""

    def __init__(self, store: Store, media_s: float, scopes: frozenset[str], today: date) -> None:
        self.store = store
        self.media_s = media_s
        self.scopes = scopes
        self.today = today

    def shop(self, _info: Any) -> dict[str, str]:
        return {"name": self.store.domain.split(".")[0], "myshopifyDomain": self.store.domain}

    def currentAppInstallation(self, _info: Any) -> dict[str, Any]:
        return {
            "id": "gid://shopify/AppInstallation/1",
            "accessScopes": [{"handle": s} for s in sorted(self.scopes)],
        }

    def publicApiVersions(self, _info: Any) -> list[dict[str, Any]]:
        return public_api_versions(self.today)

    def product(self, _info: Any, id: str) -> dict[str, Any] | None:
        return product_view(self.store, self.store.products.get(id))

    def productByIdentifier(self, _info: Any, identifier: dict[str, Any]) -> dict[str, Any] | None:
        found = None
        if identifier.get("id"):
            found = self.store.products.get(identifier["id"])
        elif identifier.get("handle"):
            found = self.store.by_handle(identifier["handle"])
        elif identifier.get("customId"):
            c = identifier["customId"]
            found = self.store.by_custom_id(c.get("namespace"), c["key"], c["value"])
        return product_view(self.store, found)

    def publications(self, _info: Any, first: int | None = None, **_: Any) -> dict[str, Any]:
        chosen = self.store.publications[: first if first is not None else None]
        return {"nodes": [publication_view(p) for p in chosen]}

    def publication(self, _info: Any, id: str) -> dict[str, Any] | None:
        found = next((p for p in self.store.publications if p["id"] == id), None)
        return publication_view(found) if found else None

    def productSet(
        self,
        _info: Any,
        input: dict[str, Any],
        synchronous: bool = True,
        identifier: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not synchronous:
            # The engine always asks for the product back; the asynchronous mode is not served.
            return {
                "product": None,
                "userErrors": [
                    {
                        "field": ["synchronous"],
                        "message": "asynchronous mode is not simulated",
                        "code": "GENERIC_ERROR",
                    }
                ],
            }
        try:
            product = product_set(
                self.store, {"input": input, "identifier": identifier}, self.media_s
            )
        except Invalid as exc:
            return {
                "product": None,
                "userErrors": [{"field": exc.path, "message": exc.message, "code": exc.code}],
            }
        return {"product": product_view(self.store, product), "userErrors": []}

    def publishablePublish(
        self, _info: Any, id: str, input: list[dict[str, Any]]
    ) -> dict[str, Any]:
        product = self.store.products.get(id)
        if product is None:
            return {
                "publishable": None,
                "userErrors": [{"field": ["id"], "message": "Product does not exist"}],
            }
        known = {p["id"] for p in self.store.publications}
        for i, pub in enumerate(input):
            if pub.get("publicationId") not in known:
                return {
                    "publishable": None,
                    "userErrors": [
                        {
                            "field": ["input", str(i), "publicationId"],
                            "message": "Publication does not exist",
                        }
                    ],
                }
        product["publications"] |= {p["publicationId"] for p in input}
        self.store.publishes += 1
        return {"publishable": product_view(self.store, product), "userErrors": []}


def _books(stores: dict[str, Store], grants: collections.Counter[str]) -> dict[str, Any]:
    shops = {}
    duplicates = []
    for domain, store in stores.items():
        markers = collections.Counter(
            m["value"]
            for p in store.products.values()
            for m in p["metafields"]
            if m["key"] == "printify_product_id"
        )
        duplicates += [
            {"shop": domain, "marker": m, "count": n} for m, n in markers.items() if n > 1
        ]
        online = store.online_store()
        shops[domain] = {
            "requests": store.requests,
            "throttled": store.throttled,
            "unauthorized": store.unauthorized,
            "product_sets": store.product_sets,
            "created": store.created,
            "publishes": store.publishes,
            "products": [
                {
                    "id": p["id"],
                    "handle": p["handle"],
                    "title": p["title"],
                    "status": p["status"],
                    "tags": p["tags"],
                    "skus": [v["sku"] for v in p["variants"]],
                    "prices": [v["price"] for v in p["variants"]],
                    "files": len(p["media"]),
                    "published": online is not None and online in p["publications"],
                    "marker": next(
                        (m["value"] for m in p["metafields"] if m["key"] == "printify_product_id"),
                        None,
                    ),
                }
                for p in store.products.values()
            ],
        }
    return {"shops": shops, "duplicates": duplicates, "grants": dict(grants)}


def _token_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


async def _form(request: Request) -> dict[str, str]:
    """The token request's parameters: form-encoded (Shopify's docs) or JSON (its libraries)."""
    raw = await request.body()
    if "json" in (request.headers.get("content-type") or ""):
        try:
            body = json.loads(raw)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return {k: v[-1] for k, v in parse_qs(raw.decode(errors="replace")).items()}


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("shopify")``)."""
    knobs = knobs or Knobs.from_env("shopify")
    app = FastAPI(title="Shopify simulator", docs_url=None, redoc_url=None)
    schema: GraphQLSchema = build_schema(sdl_path(API_VERSION).read_text())
    requirements = Requirements(load_scopes(API_VERSION)["requirements"])
    guard = requirements.guard()
    limits = {
        "bucket": _env_number("SIM_SHOPIFY_BUCKET", 2000.0),
        "restore_rate": _env_number("SIM_SHOPIFY_RESTORE_RATE", 100.0),
    }
    media_s = _env_number("SIM_SHOPIFY_MEDIA_MS", 500.0) / 1000
    static_tokens = _scopes(os.environ.get("SIM_SHOPIFY_TOKENS", ""))
    shop_scopes = _scopes(os.environ.get("SIM_SHOPIFY_SCOPES") or DEFAULT_SCOPES)
    fixed_shop = os.environ.get("SIM_SHOPIFY_SHOP") or None

    def default_app() -> App:
        return App(
            client_id=os.environ.get("SIM_SHOPIFY_CLIENT_ID") or DEFAULT_CLIENT_ID,
            client_secret=os.environ.get("SIM_SHOPIFY_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET,
            scopes=shop_scopes,
            token_ttl_s=_env_number("SIM_SHOPIFY_TOKEN_TTL_S", TOKEN_TTL_S),
        )

    state: dict[str, Any] = {"app": default_app(), "static_scopes": shop_scopes}
    stores: dict[str, Store] = {}
    issued: dict[str, Issued] = {}
    grants: collections.Counter[str] = collections.Counter()

    def store_for(request: Request) -> Store:
        host = (request.headers.get("host") or "").split(":")[0]
        domain = fixed_shop or (host if host.endswith(".myshopify.com") else DEFAULT_SHOP)
        if domain not in stores:
            size = limits["bucket"]
            stores[domain] = Store(domain, Bucket(size, limits["restore_rate"], size))
        return stores[domain]

    def scopes_of(token: str | None) -> frozenset[str] | None:
        """The scopes a token carries; None when Shopify would refuse it (401)."""
        if not token:
            return None
        found = issued.get(token)
        if found is not None:
            app_now: App = state["app"]
            alive = time.monotonic() < found.expires_at
            if alive and app_now.installed and found.client_id == app_now.client_id:
                return found.scopes
            return None
        if static_tokens and not any(hmac.compare_digest(token, t) for t in static_tokens):
            return None
        scopes: frozenset[str] = state["static_scopes"]
        return scopes

    install_faults(
        app,
        knobs,
        lambda _r, status: error_json(
            status,
            {"errors": "Internal Server Error" if status >= 500 else "Too Many Requests"},
            {"Retry-After": "2.0"} if status == 429 else None,
        ),
    )

    @app.post("/admin/oauth/access_token")
    async def access_token(request: Request) -> Response:
        form = await _form(request)
        if form.get("grant_type") != "client_credentials":
            return _token_error(
                "unsupported_grant_type", "The authorization grant type is not supported"
            )
        if not form.get("client_id") or not form.get("client_secret"):
            return _token_error("invalid_request", "client_id and client_secret are required")
        current: App = state["app"]
        known = hmac.compare_digest(form["client_id"], current.client_id) and hmac.compare_digest(
            form["client_secret"], current.client_secret
        )
        if not known or not current.installed:
            return _token_error("invalid_client", "Client authentication failed")
        token = secrets.token_hex(16)
        issued[token] = Issued(
            current.client_id, current.scopes, time.monotonic() + current.token_ttl_s
        )
        grants[f"{current.client_id}@{store_for(request).domain}"] += 1
        return JSONResponse(
            {
                "access_token": token,
                "scope": ",".join(sorted(current.scopes)),
                "expires_in": int(current.token_ttl_s),
            }
        )

    @app.post("/admin/api/{version}/graphql.json")
    async def graphql(request: Request, version: str) -> Response:
        today = _today()
        served = served_version(version, today)
        if served is None:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        headers = {"X-Shopify-API-Version": served}
        store = store_for(request)
        scopes = scopes_of(request.headers.get("x-shopify-access-token"))
        if scopes is None:
            store.unauthorized += 1
            return JSONResponse({"errors": UNAUTHORIZED}, status_code=401, headers=headers)
        store.requests += 1
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}},
                status_code=400,
                headers=headers,
            )
        variables = body.get("variables") or {} if isinstance(body, dict) else {}
        try:
            document = parse(query)
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]}, headers=headers)
        problems = validate(schema, document)
        if problems:
            return JSONResponse({"errors": [p.formatted for p in problems]}, headers=headers)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        operation = operations[0]
        cost = query_cost(operation, fragments)
        bucket = store.bucket
        available = bucket.refill()
        if available < cost:
            store.throttled += 1
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": {
                        "cost": {
                            "requestedQueryCost": cost,
                            "actualQueryCost": None,
                            "throttleStatus": bucket.status(),
                        }
                    },
                },
                headers=headers,
            )
        bucket.available -= cost
        result = execute_sync(
            schema,
            document,
            root_value=Root(store, media_s, scopes, today),
            context_value={"scopes": scopes},
            variable_values=variables,
            operation_name=body.get("operationName") if isinstance(body, dict) else None,
            middleware=[guard],
        )
        answer: dict[str, Any] = {}
        if result.errors:
            answer["errors"] = [e.formatted for e in result.errors]
        if result.data is not None or not result.errors:
            answer["data"] = result.data  # a request error (bad variables) has no data
        # The real cost of a mutation may be lower than requested: Shopify refunds the rest.
        answer["extensions"] = {
            "cost": {
                "requestedQueryCost": cost,
                "actualQueryCost": cost,
                "throttleStatus": bucket.status(),
            }
        }
        return JSONResponse(answer, headers=headers)

    @app.get("/_sim/books")
    async def books() -> dict[str, Any]:
        return _books(stores, grants)

    @app.post("/_sim/reset")
    async def reset() -> dict[str, bool]:
        stores.clear()
        issued.clear()
        grants.clear()
        state["app"] = default_app()
        state["static_scopes"] = shop_scopes
        return {"reset": True}

    @app.get("/_sim/limits")
    async def get_limits() -> dict[str, float]:
        return limits

    @app.post("/_sim/limits")
    async def set_limits(request: Request) -> dict[str, float]:
        body = await request.json()
        for key in ("bucket", "restore_rate"):
            if key in body:
                limits[key] = float(body[key])
        for store in stores.values():
            store.bucket = Bucket(limits["bucket"], limits["restore_rate"], limits["bucket"])
        return limits

    @app.get("/_sim/app")
    async def get_app() -> dict[str, Any]:
        current: App = state["app"]
        return current.view()

    @app.post("/_sim/app")
    async def set_app(request: Request) -> dict[str, Any]:
        """Change the app (and the admin tokens' scopes with ``scopes``)."""
        body = await request.json()
        current: App = state["app"]
        for key in ("client_id", "client_secret"):
            if key in body:
                setattr(current, key, str(body[key]))
        if "scopes" in body:
            current.scopes = _scopes(body["scopes"])
            state["static_scopes"] = current.scopes
        if "token_ttl_s" in body:
            current.token_ttl_s = float(body["token_ttl_s"])
        if "installed" in body:
            current.installed = bool(body["installed"])
        return current.view()

    @app.post("/_sim/app/uninstall")
    async def uninstall() -> dict[str, Any]:
        """The merchant uninstalls the app: its tokens stop working, its grant is refused."""
        current: App = state["app"]
        current.installed = False
        return current.view()

    @app.post("/_sim/app/install")
    async def install() -> dict[str, Any]:
        current: App = state["app"]
        current.installed = True
        return current.view()

    @app.post("/_sim/publications")
    async def set_publications(request: Request) -> dict[str, Any]:
        body = await request.json()
        domain = str(body.get("shop") or fixed_shop or DEFAULT_SHOP)
        if domain not in stores:
            stores[domain] = Store(
                domain, Bucket(limits["bucket"], limits["restore_rate"], limits["bucket"])
            )
        stores[domain].publications = [
            {"id": str(p["id"]), "name": str(p["name"])} for p in body["publications"]
        ]
        return {"shop": domain, "publications": stores[domain].publications}

    return app


def main() -> None:
    """``python -m simulators.shopify --port 8191``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8191)
    args = parser.parse_args()
    serve(create_app(), args.host, args.port)


if __name__ == "__main__":
    main()
