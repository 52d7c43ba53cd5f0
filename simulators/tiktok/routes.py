"""The operations, once :mod:`simulators.tiktok.middleware` let the request through, and the
token endpoints (auth.tiktok-shops.com's, served here on the same host)."""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image, UnidentifiedImageError

from simulators.contracts.tiktok import error_code
from simulators.tiktok.errors import ok, tiktok_error
from simulators.tiktok.state import ATTRIBUTES, CATEGORIES, Product, TikTokState

router = APIRouter()


def _state(request: Request) -> TikTokState:
    state: TikTokState = request.app.state.tiktok
    return state


# --- tokens ------------------------------------------------------------------------------------


@router.get("/api/v2/token/refresh")
async def refresh_token(request: Request) -> Response:
    state = _state(request)
    q = request.query_params
    app_key, secret = q.get("app_key", ""), q.get("app_secret", "")
    known = state.secrets.get(app_key)
    if known is None or not secret or known != secret:
        return tiktok_error("invalid_app_key", "Invalid app_key or app_secret.")
    if q.get("grant_type") != "refresh_token":
        return tiktok_error("invalid_params", "Invalid params: grant_type must be refresh_token.")
    grant = state.grant_of_refresh(app_key, q.get("refresh_token", ""))
    if grant is None or grant.refresh_expires < time.time():
        state.counts["refreshes_refused"] += 1
        return tiktok_error(
            "invalid_refresh_token", "Invalid refresh_token: expired, revoked or already used."
        )
    return ok(state.issue(grant))


@router.get("/api/v2/token/get")
async def get_token(request: Request) -> Response:
    return tiktok_error(
        "invalid_params", "Invalid auth_code: the simulator issues none (use a refresh token)."
    )


# --- shops, warehouses, categories ---------------------------------------------------------------


@router.get("/authorization/202309/shops")
async def shops(request: Request) -> Response:
    s = _state(request).settings
    shop = {
        "id": s.shop_id,
        "name": "POD Engine simulated shop",
        "region": s.shop_region,
        "seller_type": "LOCAL",
        "cipher": s.shop_cipher,
        "code": "USLCSIM001",
    }
    return ok({"shops": [shop]})


@router.get("/logistics/202309/warehouses")
async def warehouses(request: Request) -> Response:
    s = _state(request).settings
    warehouse = {
        "id": s.warehouse_id,
        "name": "Simulated sales warehouse",
        "effect_status": "ENABLED",
        "type": "SALES_WAREHOUSE",
        "sub_type": "DOMESTIC_WAREHOUSE",
        "is_default": True,
        "address": {"region_code": s.shop_region},
    }
    return ok({"warehouses": [warehouse]})


@router.get("/product/202309/categories")
async def categories(request: Request) -> Response:
    return ok(
        {
            "categories": [
                {
                    "id": cid,
                    "parent_id": parent,
                    "local_name": name,
                    "is_leaf": leaf,
                    "permission_statuses": ["AVAILABLE"],
                }
                for cid, parent, name, leaf in CATEGORIES
            ]
        }
    )


@router.post("/product/202309/categories/recommend")
async def recommend(request: Request) -> Response:
    title = str(request.state.body.get("product_title", "")).lower()
    leaf = "600024" if "mug" in title else "601213" if "hoodie" in title else "601226"
    name = next(n for c, _, n, _ in CATEGORIES if c == leaf)
    return ok(
        {
            "leaf_category_id": leaf,
            "categories": [{"id": leaf, "name": name, "level": 2, "is_leaf": True}],
        }
    )


@router.get("/product/202309/categories/{category_id}/attributes")
async def attributes(request: Request, category_id: str) -> Response:
    attrs = ATTRIBUTES.get(category_id)
    if attrs is None:
        return tiktok_error(
            "invalid_params", f"Invalid params: category {category_id} is not a leaf category."
        )
    return ok(
        {
            "attributes": [
                {
                    "id": aid,
                    "name": name,
                    "type": kind,
                    # TikTok's spelling in the 202309 answer.
                    "is_requried": required,
                    "is_customizable": kind == "SALES_PROPERTY",
                    "is_multiple_selection": False,
                    "values": [
                        {"id": str(int(hashlib.sha256(v.encode()).hexdigest()[:8], 16)), "name": v}
                        for v in values
                    ],
                }
                for aid, name, kind, required, values in attrs
            ]
        }
    )


# --- images --------------------------------------------------------------------------------------


@router.post("/product/202309/images/upload")
async def upload_image(request: Request) -> Response:
    state = _state(request)
    form: dict[str, tuple[bytes, str | None]] = request.state.form
    raw, file_name = form["data"]
    if file_name is None:
        return tiktok_error("invalid_params", "Invalid params: data must be an image file.")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            width, height = img.size
            kind = (img.format or "").lower()
    except (UnidentifiedImageError, OSError):
        return tiktok_error(
            "invalid_params", "Invalid params: data is not a JPG, PNG, WEBP or BMP image."
        )
    if kind not in ("jpeg", "png", "webp", "bmp"):
        return tiktok_error(
            "invalid_params", f"Invalid params: image format {kind} is not supported."
        )
    uri = f"tos-maliva-i-o3syd03w52-us/{hashlib.sha256(raw).hexdigest()[:32]}"
    state.images[uri] = raw
    state.counts["images_uploaded"] += 1
    return ok(
        {
            "uri": uri,
            "url": f"https://p16-oec-va.ibyteimg.com/{uri}~tplv-o3syd03w52-origin-jpeg.jpeg",
            "width": width,
            "height": height,
            "use_case": form.get("use_case", (b"MAIN_IMAGE", None))[0].decode(errors="replace"),
        }
    )


# --- products ------------------------------------------------------------------------------------


def _attribute_problem(category: str, body: dict[str, Any]) -> str | None:
    """A required attribute of the category missing, or a value it does not list."""
    given = {
        str(a.get("id")): a for a in body.get("product_attributes") or [] if isinstance(a, dict)
    }
    for aid, name, kind, required, values in ATTRIBUTES[category]:
        if kind != "PRODUCT_PROPERTY":
            continue
        attr = given.get(aid)
        chosen = attr.get("values") if attr else None
        if required and not chosen:
            return (
                f"product_attributes: the category's required attribute {name} ({aid}) is missing"
            )
        for value in chosen or []:
            named = value.get("name") if isinstance(value, dict) else None
            if values and named not in values:
                return f"product_attributes: {named!r} is not a value of {name}"
    return None


def _sku_problem(state: TikTokState, skus: list[dict[str, Any]]) -> str | None:
    """What TikTok refuses in the SKUs: long or repeated seller SKUs, a bad price, another
    warehouse, more than 3 sales attributes, two SKUs alike."""
    seen_sku: set[str] = set()
    combos: set[tuple[tuple[str, str], ...]] = set()
    for sku in skus:
        seller_sku = str(sku.get("seller_sku") or "")
        if len(seller_sku) > 50 or (seller_sku and seller_sku in seen_sku):
            return f"skus.seller_sku: {seller_sku!r} is longer than 50 characters or used twice"
        seen_sku.add(seller_sku)
        try:
            amount = float(sku["price"]["amount"])
        except (TypeError, ValueError, KeyError):
            amount = 0.0
        if amount <= 0:
            return "skus.price.amount: must be a positive decimal string"
        for inv in sku["inventory"]:
            if str(inv["warehouse_id"]) != state.settings.warehouse_id:
                return f"skus.inventory.warehouse_id: {inv['warehouse_id']} is not the shop's"
            if not isinstance(inv["quantity"], int) or not 0 <= inv["quantity"] <= 999999:
                return "skus.inventory.quantity: an integer of 0 to 999999"
        attrs = sku.get("sales_attributes") or []
        if len(attrs) > 3:
            return "skus.sales_attributes: at most 3"
        combo = tuple(
            sorted(
                (str(a.get("name") or a.get("id")), str(a.get("value_name") or a.get("value_id")))
                for a in attrs
            )
        )
        if combo in combos:
            return f"skus.sales_attributes: the combination {combo} is used twice"
        combos.add(combo)
    if len(skus) > 1 and not all(s.get("sales_attributes") for s in skus):
        return "skus.sales_attributes: required when a product has more than one SKU"
    return None


def _product_problem(state: TikTokState, body: dict[str, Any]) -> str | None:
    """What TikTok refuses in a create call beyond missing fields, else None."""
    if len(str(body["title"])) > 255:
        return "title: at most 255 characters"
    category = str(body["category_id"])
    if category not in ATTRIBUTES:
        return f"category_id: {category} is not a leaf category of the shop"
    for image in body["main_images"]:
        if image.get("uri") not in state.images:
            return f"main_images: {image.get('uri')!r} was not uploaded"
    if len(body["skus"]) > 300:
        return "skus: at most 300"
    return _attribute_problem(category, body) or _sku_problem(state, body["skus"])


def _product_json(p: Product, shop: str) -> dict[str, Any]:
    body = p.body
    return {
        "id": p.id,
        "status": p.status,
        "title": body.get("title"),
        "description": body.get("description"),
        "category_chains": [{"id": body.get("category_id"), "is_leaf": True}],
        "create_time": int(p.created),
        "update_time": int(p.created),
        "main_images": [{"uri": i.get("uri")} for i in body.get("main_images") or []],
        "audit_failed_reasons": p.reasons if p.status == "FAILED" else [],
        "skus": [
            {
                "id": str(int(p.id) + i + 1),
                "seller_sku": s.get("seller_sku", ""),
                "price": s.get("price"),
                "inventory": s.get("inventory"),
                "sales_attributes": s.get("sales_attributes") or [],
            }
            for i, s in enumerate(body.get("skus") or [])
        ],
    }


@router.post("/product/202309/products")
async def create_product(request: Request) -> Response:
    state = _state(request)
    body: dict[str, Any] = request.state.body
    problem = _product_problem(state, body)
    if problem is not None:
        kind = "category_attribute_missing" if "required attribute" in problem else "invalid_params"
        return tiktok_error(kind, f"Invalid params: {problem}")
    return _saved(state, state.create(body))


@router.put("/product/202309/products/{product_id}")
async def edit_product(request: Request, product_id: str) -> Response:
    """Edit Product: the whole product again (as created), which TikTok audits afresh."""
    state = _state(request)
    product = state.products.get(product_id)
    if product is None or product.status == "DELETED":
        return tiktok_error("product_not_found", f"Product {product_id} does not exist.")
    body: dict[str, Any] = request.state.body
    problem = _product_problem(state, body)
    if problem is not None:
        kind = "category_attribute_missing" if "required attribute" in problem else "invalid_params"
        return tiktok_error(kind, f"Invalid params: {problem}")
    return _saved(state, state.resubmit(product, body))


def _saved(state: TikTokState, product: Product) -> Response:
    """Create and Edit Product's answer: the product's id and its SKUs' ids."""
    shown = _product_json(product, state.settings.shop_id)
    skus = [
        {"id": s["id"], "seller_sku": s["seller_sku"], "sales_attributes": s["sales_attributes"]}
        for s in shown["skus"]
    ]
    return ok({"product_id": product.id, "skus": skus, "warnings": []})


@router.get("/product/202309/products/{product_id}")
async def get_product(request: Request, product_id: str) -> Response:
    state = _state(request)
    product = state.products.get(product_id)
    if product is None or product.status == "DELETED":
        return tiktok_error("product_not_found", f"Product {product_id} does not exist.")
    return ok(_product_json(state.settled(product), state.settings.shop_id))


@router.post("/product/202502/products/search")
async def search_products(request: Request) -> Response:
    state = _state(request)
    body: dict[str, Any] = getattr(request.state, "body", {})
    try:
        size = int(request.query_params["page_size"])
    except ValueError:
        size = 0
    if not 1 <= size <= 100:
        return tiktok_error("invalid_params", "Invalid params: page_size must be 1 to 100.")
    wanted = body.get("seller_skus")
    status = body.get("status", "ALL")
    found = []
    for product in sorted(state.products.values(), key=lambda p: -p.created):
        state.settled(product)
        if product.status == "DELETED" and status != "DELETED":
            continue
        if status not in ("ALL", product.status):
            continue
        if wanted and not set(map(str, wanted)) & set(product.seller_skus()):
            continue
        found.append(product)
    start = int(request.query_params.get("page_token") or 0)
    page = found[start : start + size]
    nxt = start + size if start + size < len(found) else None
    products = []
    for p in page:
        shown = _product_json(p, state.settings.shop_id)
        products.append(
            {k: shown[k] for k in ("id", "title", "status", "skus", "create_time", "update_time")}
        )
    return ok(
        {
            "products": products,
            "next_page_token": "" if nxt is None else str(nxt),
            "total_count": len(found),
        }
    )


# --- a seller's decisions: deactivate, activate, delete, price again ---------------------------

MAX_IDS = 20  # product_ids per call (Deactivate Products, Activate Product, Delete Products)


def _ids(body: dict[str, Any]) -> list[str] | Response:
    ids = body["product_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        return tiktok_error("invalid_params", "Invalid params: product_ids must be strings.")
    if len(ids) > MAX_IDS:
        return tiktok_error("invalid_params", f"Invalid params: at most {MAX_IDS} product_ids.")
    return ids


def _failure(kind: str, product_id: str, message: str) -> dict[str, Any]:
    """One entry of a mutation's ``data.errors``: the product it failed for and why."""
    return {"code": error_code(kind), "message": message, "detail": {"product_id": product_id}}


def _mutate(request: Request, allowed: tuple[str, ...], to: str, count: str) -> Response:
    """Move each product of ``product_ids`` in one of the ``allowed`` statuses (or in ``to``
    already: nothing to do) to ``to``; the others are answered in ``data.errors``."""
    state = _state(request)
    ids = _ids(request.state.body)
    if isinstance(ids, Response):
        return ids
    errors = []
    for pid in ids:
        product = state.products.get(pid)
        if product is None or product.status == "DELETED":
            errors.append(_failure("product_not_found", pid, f"Product {pid} does not exist."))
            continue
        state.settled(product)
        if product.status == to:
            continue
        if product.status not in allowed:
            errors.append(
                _failure(
                    "invalid_params",
                    pid,
                    f"Product {pid} is {product.status}: the operation needs {', '.join(allowed)}.",
                )
            )
            continue
        product.status = to
        state.counts[count] += 1
    return ok({"errors": errors})


@router.post("/product/202309/products/deactivate")
async def deactivate_products(request: Request) -> Response:
    """Deactivate Products: hidden from buyers, kept (SELLER_DEACTIVATED) for Activate."""
    return _mutate(request, ("ACTIVATE", "PENDING"), "SELLER_DEACTIVATED", "deactivated")


@router.post("/product/202309/products/activate")
async def activate_products(request: Request) -> Response:
    """Activate Product: a product the seller deactivated is on sale again (it passed its
    audit before and is unchanged)."""
    return _mutate(request, ("SELLER_DEACTIVATED",), "ACTIVATE", "reactivated")


@router.delete("/product/202309/products")
async def delete_products(request: Request) -> Response:
    """Delete Products: gone for good (search and Get Product no longer find it)."""
    return _mutate(
        request,
        ("ACTIVATE", "PENDING", "FAILED", "DRAFT", "SELLER_DEACTIVATED", "PLATFORM_DEACTIVATED"),
        "DELETED",
        "deleted",
    )


@router.post("/product/202309/products/{product_id}/prices/update")
async def update_price(request: Request, product_id: str) -> Response:
    """Update Price: new prices for some of a live product's SKUs (by TikTok's SKU id)."""
    state = _state(request)
    product = state.products.get(product_id)
    if product is None or product.status == "DELETED":
        return tiktok_error("product_not_found", f"Product {product_id} does not exist.")
    if state.settled(product).status != "ACTIVATE":
        return tiktok_error(
            "invalid_params",
            f"Invalid params: product {product_id} is {product.status}; the SKU prices can be "
            "updated only for a live product.",
        )
    skus = product.body.get("skus") or []
    by_id = {str(int(product.id) + i + 1): sku for i, sku in enumerate(skus)}
    wanted: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for given in request.state.body["skus"]:
        sku = by_id.get(str(given.get("id")))
        if sku is None:
            return tiktok_error(
                "invalid_params", f"Invalid params: SKU {given.get('id')} is not the product's."
            )
        price = given["price"]
        try:
            amount = float(price["amount"])
        except (TypeError, ValueError):
            amount = 0.0
        if amount <= 0:
            return tiktok_error(
                "invalid_params", "Invalid params: skus.price.amount must be a positive decimal."
            )
        if price["currency"] != sku["price"]["currency"]:
            return tiktok_error(
                "invalid_params", f"Invalid params: the shop sells in {sku['price']['currency']}."
            )
        wanted.append((sku, {"amount": str(price["amount"]), "currency": price["currency"]}))
    for sku, price in wanted:  # all or nothing
        sku["price"] = price
    state.counts["price_updates"] += 1
    return ok({})
