"""What ``pod doctor`` and the channel read of a shop: getMe, getShop, its processing
profiles (readiness state definitions), shipping profiles and return policies, the seller
taxonomy and tokenScopes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.common import error_json
from simulators.etsy.books import shop_json
from simulators.etsy.deps import Sim, User, owner
from simulators.etsy.forms import Fields, form_body, query_fields
from simulators.etsy.rules import DEFAULT_PAGE, MAX_PAGE
from simulators.etsy.state import TAXONOMY
from simulators.etsy.validation import positive_id

router = APIRouter(prefix="/v3/application")


@router.get("/shops/{shop_id}/readiness-state-definitions")
async def get_readiness_state_definitions(request: Request, shop_id: str, sim: Sim) -> Response:
    sid = positive_id(shop_id, "shop_id")
    q = query_fields(request)
    limit = q.integer("limit", low=1, high=MAX_PAGE) or DEFAULT_PAGE
    offset = q.integer("offset", low=0) or 0
    profiles = sim.state.shop(sid).profiles
    return JSONResponse({"count": len(profiles), "results": profiles[offset : offset + limit]})


@router.get("/users/me")
async def get_me(sim: Sim, user: User) -> Response:
    me = owner(user)
    return JSONResponse({"user_id": me, "shop_id": sim.state.shop_of(me)})


@router.get("/shops/{shop_id}")
async def get_shop(shop_id: str, sim: Sim) -> Response:
    shop = sim.state.shop(positive_id(shop_id, "shop_id"))
    return JSONResponse(shop_json(shop, sim.state))


@router.get("/shops/{shop_id}/shipping-profiles")
async def get_shipping_profiles(shop_id: str, sim: Sim) -> Response:
    shop = sim.state.shop(positive_id(shop_id, "shop_id"))
    return JSONResponse({"count": len(shop.shipping), "results": shop.shipping})


@router.get("/shops/{shop_id}/shipping-profiles/{shipping_profile_id}")
async def get_shipping_profile(shop_id: str, shipping_profile_id: str, sim: Sim) -> Response:
    shop = sim.state.shop(positive_id(shop_id, "shop_id"))
    wanted = positive_id(shipping_profile_id, "shipping_profile_id")
    for profile in shop.shipping:
        if profile["shipping_profile_id"] == wanted:
            return JSONResponse(profile)
    raise LookupError(f"Shipping profile {wanted} of shop {shop.shop_id}")


@router.get("/shops/{shop_id}/policies/return")
async def get_return_policies(shop_id: str, sim: Sim) -> Response:
    shop = sim.state.shop(positive_id(shop_id, "shop_id"))
    return JSONResponse({"count": len(shop.returns), "results": shop.returns})


@router.get("/seller-taxonomy/nodes")
async def get_seller_taxonomy_nodes() -> Response:
    return JSONResponse({"count": len(TAXONOMY), "results": list(TAXONOMY)})


@router.post("/scopes")
async def token_scopes(request: Request, sim: Sim) -> Response:
    # The document leaves the answer's shape open (Scopes: an object, no properties named);
    # this simulator answers {"scopes": [...]}, a guess.
    form = Fields(await form_body(request))
    scopes = sim.oauth.scopes_of(form.required("token"))
    if scopes is None:
        return error_json(
            401, {"error": "invalid_token", "error_description": "token is not valid"}
        )
    return JSONResponse({"scopes": list(scopes)})
