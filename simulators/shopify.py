"""Shopify Admin GraphQL API simulator: a real HTTP server speaking Shopify's wire format.

It covers what a sales channel needs to list a product: ``productSet`` (create or update in one
call, synchronous), ``productByIdentifier`` / ``product``, ``publications`` and
``publishablePublish`` (put the product on the Online Store). Queries are parsed and validated
against a GraphQL schema (graphql-core), so an unknown field or a wrong argument type is refused
with Shopify's ``errors`` list, as the real API does.

Behaviour copied from Shopify on purpose:

- ``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``; a missing or
  unknown token is a 401 ``{"errors": "[API] Invalid API key or access token ..."}``; a version
  older than 2024-07 (``productSet`` became synchronous-capable then) or malformed is a 404.
- **Rate limit: a leaky bucket of query cost per shop** (``SIM_SHOPIFY_BUCKET`` points, 2000,
  restored at ``SIM_SHOPIFY_RESTORE_RATE`` per second, 100). Every answer carries
  ``extensions.cost`` with ``requestedQueryCost``, ``actualQueryCost`` and ``throttleStatus``
  (``maximumAvailable``, ``currentlyAvailable``, ``restoreRate``). A query costing more than is
  available is refused with HTTP 200 and ``errors: [{message: "Throttled", extensions: {code:
  "THROTTLED"}}]``. Cost: a mutation 10, each object 1, a connection ``first`` times its node.
- ``productSet``: upsert by ``identifier`` (``id``, ``handle`` or a ``customId`` metafield);
  list fields (``variants``, ``files``, ``productOptions``, ``metafields``) replace what was
  there. ``userErrors`` (``field``, ``message``, ``code``) as Shopify words them: a blank title,
  more than 3 options, a variant whose option value is not declared, two variants with the same
  options, a bad price, a file that is not an http(s) URL, a handle already taken.
- Product media are processed asynchronously: ``PROCESSING`` for ``SIM_SHOPIFY_MEDIA_MS`` (500),
  then ``READY``.
- ``onlineStoreUrl`` is null until the product is ACTIVE and published to the Online Store.

Tokens: any non-empty token is accepted unless ``SIM_SHOPIFY_TOKENS`` lists the valid ones. The
shop is the request's host (``<shop>.myshopify.com``) or ``SIM_SHOPIFY_SHOP``.

Test hooks: ``GET /_sim/books`` (per shop: products with handle, status, variants, files,
publications; ``throttled`` answers; ``duplicates``: handles or markers listed twice),
``POST /_sim/reset``, ``GET/POST /_sim/config`` (fault knobs, :mod:`simulators.common`),
``GET/POST /_sim/limits`` (bucket size and restore rate).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    parse,
    validate,
)
from graphql.language import (
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)

from simulators.common import Knobs, error_json, install_faults, serve

logger = logging.getLogger(__name__)

DEFAULT_SHOP = "pod-engine-sim.myshopify.com"
ONLINE_STORE = "gid://shopify/Publication/1"
MIN_VERSION = "2024-07"
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"

SCHEMA_SDL = """
scalar Money
scalar URL

enum ProductStatus { ACTIVE ARCHIVED DRAFT }
enum FileContentType { IMAGE FILE VIDEO EXTERNAL_VIDEO MODEL_3D }
enum MediaStatus { UPLOADED PROCESSING READY FAILED }

input UniqueMetafieldValueInput { namespace: String, key: String!, value: String! }
input ProductIdentifierInput { id: ID, handle: String, customId: UniqueMetafieldValueInput }
input ProductSetIdentifiers { id: ID, handle: String, customId: UniqueMetafieldValueInput }
input OptionValueSetInput { name: String }
input OptionSetInput { name: String, position: Int, values: [OptionValueSetInput!] }
input VariantOptionValueInput { optionName: String, name: String }
input InventoryItemInput { sku: String, tracked: Boolean, requiresShipping: Boolean }
input ProductVariantSetInput {
  optionValues: [VariantOptionValueInput!]!
  price: Money
  compareAtPrice: Money
  sku: String
  inventoryItem: InventoryItemInput
}
input FileSetInput {
  originalSource: String
  contentType: FileContentType
  alt: String
  filename: String
}
input MetafieldInput { namespace: String, key: String!, value: String!, type: String }
input ProductSetInput {
  title: String
  descriptionHtml: String
  handle: String
  productType: String
  vendor: String
  tags: [String!]
  status: ProductStatus
  productOptions: [OptionSetInput!]
  variants: [ProductVariantSetInput!]
  files: [FileSetInput!]
  metafields: [MetafieldInput!]
}
input PublicationInput { publicationId: ID }

type UserError { field: [String!], message: String! }
type ProductSetUserError { field: [String!], message: String!, code: String }
type Metafield { namespace: String!, key: String!, value: String!, type: String! }
type ProductOptionValue { name: String! }
type ProductOption { name: String!, position: Int!, optionValues: [ProductOptionValue!]! }
type SelectedOption { name: String!, value: String! }
type ProductVariant {
  id: ID!
  title: String!
  sku: String
  price: Money!
  selectedOptions: [SelectedOption!]!
}
type ProductVariantConnection { nodes: [ProductVariant!]! }
type MediaImage { id: ID!, alt: String, status: MediaStatus!, originalSource: String }
type MediaConnection { nodes: [MediaImage!]! }
type Publication { id: ID!, name: String! }
type PublicationConnection { nodes: [Publication!]! }
type Product {
  id: ID!
  handle: String!
  title: String!
  descriptionHtml: String!
  vendor: String!
  productType: String!
  tags: [String!]!
  status: ProductStatus!
  onlineStoreUrl: URL
  createdAt: String!
  updatedAt: String!
  options: [ProductOption!]!
  variants(first: Int, after: String): ProductVariantConnection!
  media(first: Int, after: String): MediaConnection!
  metafield(namespace: String, key: String!): Metafield
  resourcePublicationsCount: Int!
}
type ProductSetPayload { product: Product, userErrors: [ProductSetUserError!]! }
type PublishablePublishPayload { publishable: Product, userErrors: [UserError!]! }
type Shop { name: String!, myshopifyDomain: String! }

type Query {
  shop: Shop!
  product(id: ID!): Product
  productByIdentifier(identifier: ProductIdentifierInput!): Product
  publications(first: Int): PublicationConnection!
}
type Mutation {
  productSet(
    input: ProductSetInput!
    synchronous: Boolean = true
    identifier: ProductSetIdentifiers
  ): ProductSetPayload
  publishablePublish(id: ID!, input: [PublicationInput!]!): PublishablePublishPayload
}
"""

_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$|^unstable$")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


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
        raise Invalid(path, "Price is invalid", "INVALID") from None
    if value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Invalid(path, "Price must be a decimal amount of at least 0", "INVALID")
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
                ["input", "productOptions", str(i), "name"], "Option name can't be blank", "BLANK"
            )
        if name in seen:
            raise Invalid(
                ["input", "productOptions", str(i)],
                f"Duplicated option name '{name}'",
                "OPTION_ALREADY_EXISTS",
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
                "VARIANT_ALREADY_EXISTS",
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
                "INVALID",
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
        raise Invalid(["input", "title"], "Title can't be blank", "BLANK")
    if len(title) > 255:
        raise Invalid(
            ["input", "title"], "Title is too long (maximum is 255 characters)", "INVALID"
        )
    handle = data.get("handle") or (existing["handle"] if existing else None)
    if handle is None:
        handle = ident.get("handle") or _slug(title)
        base, n = handle, 1
        while store.by_handle(handle) is not None:  # generated: made unique with a suffix
            n += 1
            handle = f"{base}-{n}"
    elif not _HANDLE.match(handle):
        raise Invalid(["input", "handle"], "Handle is invalid", "INVALID")
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
                    ["input", "variants"], "Variants can't be blank when options are set", "INVALID"
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


def product_view(store: Store, product: dict[str, Any] | None) -> dict[str, Any] | None:
    """The product as the schema resolves it."""
    if product is None:
        return None
    now = time.monotonic()
    published = ONLINE_STORE in product["publications"] and product["status"] == "ACTIVE"
    metafields = product["metafields"]
    return {
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
        "variants": {"nodes": product["variants"]},
        "media": {
            "nodes": [
                {
                    "id": m["id"],
                    "alt": m["alt"],
                    "originalSource": m["originalSource"],
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
        "resourcePublicationsCount": len(product["publications"]),
    }


# ----------------------------------------------------------------------------------- app


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


class Root:
    """Resolvers of Query and Mutation for one request's shop."""

    def __init__(self, store: Store, media_s: float) -> None:
        self.store = store
        self.media_s = media_s

    def shop(self, _info: Any) -> dict[str, str]:
        return {"name": self.store.domain.split(".")[0], "myshopifyDomain": self.store.domain}

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

    def publications(self, _info: Any, first: int | None = None) -> dict[str, Any]:
        return {
            "nodes": [
                {"id": ONLINE_STORE, "name": "Online Store"},
                {"id": "gid://shopify/Publication/2", "name": "Point of Sale"},
            ]
        }

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
                        "code": "INVALID",
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
        known = {ONLINE_STORE, "gid://shopify/Publication/2"}
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


def _books(stores: dict[str, Store]) -> dict[str, Any]:
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
        shops[domain] = {
            "requests": store.requests,
            "throttled": store.throttled,
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
                    "published": ONLINE_STORE in p["publications"],
                    "marker": next(
                        (m["value"] for m in p["metafields"] if m["key"] == "printify_product_id"),
                        None,
                    ),
                }
                for p in store.products.values()
            ],
        }
    return {"shops": shops, "duplicates": duplicates}


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("shopify")``)."""
    knobs = knobs or Knobs.from_env("shopify")
    app = FastAPI(title="Shopify simulator", docs_url=None, redoc_url=None)
    schema: GraphQLSchema = build_schema(SCHEMA_SDL)
    limits = {
        "bucket": _env_number("SIM_SHOPIFY_BUCKET", 2000.0),
        "restore_rate": _env_number("SIM_SHOPIFY_RESTORE_RATE", 100.0),
    }
    media_s = _env_number("SIM_SHOPIFY_MEDIA_MS", 500.0) / 1000
    tokens = {t.strip() for t in os.environ.get("SIM_SHOPIFY_TOKENS", "").split(",") if t.strip()}
    fixed_shop = os.environ.get("SIM_SHOPIFY_SHOP") or None
    stores: dict[str, Store] = {}

    def store_for(request: Request) -> Store:
        host = (request.headers.get("host") or "").split(":")[0]
        domain = fixed_shop or (host if host.endswith(".myshopify.com") else DEFAULT_SHOP)
        if domain not in stores:
            size = limits["bucket"]
            stores[domain] = Store(domain, Bucket(size, limits["restore_rate"], size))
        return stores[domain]

    install_faults(
        app,
        knobs,
        lambda _r, status: error_json(
            status,
            {"errors": "Internal Server Error" if status >= 500 else "Too Many Requests"},
            {"Retry-After": "2.0"} if status == 429 else None,
        ),
    )

    @app.post("/admin/api/{version}/graphql.json")
    async def graphql(request: Request, version: str) -> Response:
        if not _VERSION.match(version) or (version != "unstable" and version < MIN_VERSION):
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        token = request.headers.get("x-shopify-access-token")
        if not token or (tokens and token not in tokens):
            return JSONResponse({"errors": UNAUTHORIZED}, status_code=401)
        store = store_for(request)
        store.requests += 1
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}}, status_code=400
            )
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}}, status_code=400
            )
        variables = body.get("variables") or {}
        try:
            document = parse(query)
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]})
        problems = validate(schema, document)
        if problems:
            return JSONResponse({"errors": [p.formatted for p in problems]})
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
                }
            )
        bucket.available -= cost
        result = execute_sync(
            schema,
            document,
            root_value=Root(store, media_s),
            variable_values=variables,
            operation_name=body.get("operationName"),
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
        return JSONResponse(answer)

    @app.get("/_sim/books")
    async def books() -> dict[str, Any]:
        return _books(stores)

    @app.post("/_sim/reset")
    async def reset() -> dict[str, bool]:
        stores.clear()
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
