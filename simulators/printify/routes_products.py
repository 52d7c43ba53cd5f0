"""Products of a shop: create, list, get, update, delete (``/v1/shops/{id}/products*``)."""

from __future__ import annotations

import logging
import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from simulators.printify.deps import Acct, Sim, product_of, shop_of
from simulators.printify.errors import locked, ok
from simulators.printify.products import apply_update, build_product
from simulators.printify.routes_shops import paginate
from simulators.printify.validation import MAX_PRODUCTS_PAGE, page_params, require_body

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/shops/{shop_id}")


@router.post("/products.json")
async def create_product(request: Request, shop_id: str, sim: Sim, acct: Acct) -> Response:
    shop_of(sim, shop_id)
    body = await require_body(request)
    base = str(request.base_url).rstrip("/")
    product_id = secrets.token_hex(12)
    product = build_product(body, acct, int(shop_id), product_id, base, sim.behaviour)
    sim.accounts.add_product(acct, product)
    logger.info("product created account=%s id=%s", acct.key, product.id)
    return ok(product.as_json())


@router.get("/products.json")
async def list_products(request: Request, shop_id: str, sim: Sim, acct: Acct) -> Response:
    shop_of(sim, shop_id)
    params = page_params(request, MAX_PRODUCTS_PAGE, 10)
    acct.settle_channels(time.time())
    products = [p.as_json() for p in acct.products.values() if str(p.shop_id) == shop_id]
    if sim.behaviour.products_order == "newest_first":
        products.reverse()
    return ok(paginate(products, *params))


@router.get("/products/{product_id}.json")
async def get_product(shop_id: str, product_id: str, sim: Sim, acct: Acct) -> Response:
    return ok(product_of(sim, acct, shop_id, product_id).as_json())


@router.put("/products/{product_id}.json")
async def update_product(
    request: Request, shop_id: str, product_id: str, sim: Sim, acct: Acct
) -> Response:
    product = product_of(sim, acct, shop_id, product_id)
    if product.is_locked:
        return locked()
    body = await require_body(request)
    apply_update(product, body, sim.behaviour)
    acct.products_updated += 1
    return ok(product.as_json())


@router.delete("/products/{product_id}.json")
async def delete_product(shop_id: str, product_id: str, sim: Sim, acct: Acct) -> Response:
    product_of(sim, acct, shop_id, product_id)
    acct.forget_product(product_id)
    acct.products_deleted += 1
    sim.webhooks.send(
        acct,
        int(shop_id),
        "product:deleted",
        {"id": product_id, "type": "product", "data": {"shop_id": int(shop_id)}},
    )
    return ok({})
