"""Listings: createDraftListing, getListingsByShop, getListing, deleteListing, updateListing
and the listing's inventory (getListingInventory, updateListingInventory)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.etsy.deps import Sim, User, app_key, owner
from simulators.etsy.errors import Invalid
from simulators.etsy.forms import Fields, form_body, query_fields
from simulators.etsy.rules import DEFAULT_PAGE, MAX_PAGE, MAX_VARIATIONS, STATES
from simulators.etsy.state import (
    Inventory,
    InventoryProduct,
    Listing,
    Offering,
    Shop,
    money,
    new_id,
    taxonomy_ids,
)
from simulators.etsy.validation import includes, inventory, listing_fields, positive_id

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v3/application")


@router.get("/openapi-ping")
async def ping(request: Request) -> Response:
    keystring = request.headers.get("x-api-key", "").partition(":")[0]
    return JSONResponse({"application_id": int(app_key(keystring)[:8], 16)})


def _shop_refs(shop: Shop, fields: dict[str, Any]) -> None:
    """The profiles and taxonomy node a new listing names must be the shop's and Etsy's."""
    sid = shop.shop_id
    readiness = fields.get("readiness_state_id")
    owned = {p["readiness_state_id"] for p in shop.profiles}
    if readiness is not None and readiness not in owned:
        raise Invalid(f"readiness_state_id {readiness} is not a processing profile of shop {sid}")
    shipping = fields.get("shipping_profile_id")
    if shipping is not None and shipping not in {p["shipping_profile_id"] for p in shop.shipping}:
        raise Invalid(f"shipping_profile_id {shipping} is not a shipping profile of shop {sid}")
    if fields["taxonomy_id"] not in taxonomy_ids():
        raise Invalid(f"taxonomy_id {fields['taxonomy_id']} is not a node of the seller taxonomy")


def _first_inventory(quantity: int, price: int, readiness: int | None) -> Inventory:
    """A new listing's inventory: one product with its price and quantity, as Etsy makes it."""
    offering: Offering = {
        "offering_id": new_id(),
        "quantity": quantity,
        "is_enabled": True,
        "is_deleted": False,
        "price": money(price),
        "readiness_state_id": readiness,
    }
    product: InventoryProduct = {
        "product_id": new_id(),
        "sku": "",
        "is_deleted": False,
        "offerings": [offering],
        "property_values": [],
    }
    return {
        "products": [product],
        "price_on_property": [],
        "quantity_on_property": [],
        "sku_on_property": [],
        "readiness_state_on_property": [],
    }


@router.post("/shops/{shop_id}/listings")
async def create_draft_listing(request: Request, shop_id: str, sim: Sim, user: User) -> Response:
    sid = positive_id(shop_id, "shop_id")
    fields = listing_fields(Fields(await form_body(request)), creating=True)
    shop = sim.state.shop(sid)
    _shop_refs(shop, fields)
    quantity, price = fields.pop("quantity"), fields.pop("price_cents")
    listing = Listing(new_id(), sid, owner(user), fields)
    listing.inventory = _first_inventory(quantity, price, fields.get("readiness_state_id"))
    sim.state.add(listing)
    logger.info("listing created shop_id=%d listing_id=%d", sid, listing.listing_id)
    return JSONResponse(listing.as_json(), status_code=201)


@router.get("/shops/{shop_id}/listings")
async def get_listings_by_shop(request: Request, shop_id: str, sim: Sim) -> Response:
    sid = positive_id(shop_id, "shop_id")
    q = query_fields(request)
    wanted = q.choice("state", STATES) or "active"
    limit = q.integer("limit", low=1, high=MAX_PAGE) or DEFAULT_PAGE
    offset = q.integer("offset", low=0) or 0
    shown = includes(request)
    shop = sim.state.shop(sid)
    listings = sim.state.listings
    # Newest first (Etsy sorts on ``created``, descending, by default).
    found = [listings[lid] for lid in reversed(shop.listing_ids) if listings[lid].state == wanted]
    page = found[offset : offset + limit]
    return JSONResponse({"count": len(found), "results": [lst.as_json(shown) for lst in page]})


@router.get("/listings/{listing_id}")
async def get_listing(request: Request, listing_id: str, sim: Sim) -> Response:
    return JSONResponse(sim.listing(listing_id).as_json(includes(request)))


@router.delete("/listings/{listing_id}")
async def delete_listing(listing_id: str, sim: Sim) -> Response:
    sim.state.delete(sim.listing(listing_id))
    return Response(status_code=204)


def _may_become(listing: Listing, wanted: str | None, changes: dict[str, Any]) -> None:
    """Etsy's conditions for activating or deactivating a listing."""
    if wanted == "active" and listing.state != "active":
        merged = {**listing.fields, **changes}
        if not listing.images:
            raise Invalid("A listing needs at least one image to be active")
        if listing.quantity() < 1:
            raise Invalid("A listing needs an enabled offering in stock to be active")
        if merged.get("type", "physical") != "download" and not merged.get("shipping_profile_id"):
            raise Invalid("An active physical listing requires a shipping_profile_id")
    if wanted == "inactive" and listing.state not in ("active", "inactive"):
        raise Invalid(f"A {listing.state} listing cannot be deactivated")


@router.patch("/shops/{shop_id}/listings/{listing_id}")
async def update_listing(request: Request, shop_id: str, listing_id: str, sim: Sim) -> Response:
    listing = sim.listing(listing_id, shop_id)
    form = Fields(await form_body(request))
    wanted = form.choice("state", ("active", "inactive"))
    changes = listing_fields(form, creating=False, current=listing.fields)
    _may_become(listing, wanted, changes)
    listing.fields.update(changes)
    listing.updated = int(time.time())
    if wanted is not None and wanted != listing.state:
        listing.set_state(wanted)
        if wanted == "active":
            sim.state.shop(listing.shop_id).activated += 1
            logger.info("listing activated listing_id=%d", listing.listing_id)
    return JSONResponse(listing.as_json())


@router.get("/listings/{listing_id}/inventory")
async def get_listing_inventory(listing_id: str, sim: Sim) -> Response:
    return JSONResponse(sim.listing(listing_id).as_json(("Inventory",))["inventory"])


@router.put("/listings/{listing_id}/inventory")
async def update_listing_inventory(request: Request, listing_id: str, sim: Sim) -> Response:
    listing = sim.listing(listing_id)
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise Invalid("The request body must be JSON") from None
    most = query_fields(request).integer("max_variations_supported", low=2, high=3)
    listing.inventory = inventory(body, listing, most or MAX_VARIATIONS)
    listing.updated = int(time.time())
    sim.state.shop(listing.shop_id).inventory_updates += 1
    return JSONResponse(listing.as_json(("Inventory",))["inventory"])
