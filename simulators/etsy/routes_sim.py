"""Etsy's own test hooks, beside the shared ones of :mod:`simulators.common.control`: the
seller's side of OAuth (authorise, revoke, expire), whose shop a user owns, a shop set up
otherwise, and a listing's state changed by Etsy or the seller."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.common.control import as_int, json_object
from simulators.etsy.deps import Sim
from simulators.etsy.errors import Invalid, etsy_error, not_found
from simulators.etsy.rules import STATES
from simulators.etsy.state import (
    PROFILE_KINDS,
    processing_profiles,
    return_policy,
    shipping_profile,
)

router = APIRouter(prefix="/_sim")


def _user(body: dict[str, object]) -> int | None:
    user = body.get("user_id")
    return None if user is None else as_int(user)


@router.post("/oauth/authorize")
async def sim_authorize(request: Request, sim: Sim) -> Response:
    """The seller authorises the app (Etsy's consent screen and the code exchange in one):
    ``{"user_id": 1, "client_id": <keystring>, "scopes": [...]}`` (all optional); the grant's
    first tokens, as the token endpoint answers them."""
    body = await json_object(request)
    scopes, client_id = body.get("scopes"), body.get("client_id")
    tokens = sim.oauth.authorize(
        as_int(body.get("user_id", 1)),
        None if client_id is None else str(client_id),
        [str(x) for x in scopes] if isinstance(scopes, list) else None,
    )
    return JSONResponse(tokens)


@router.post("/oauth/revoke")
async def sim_revoke(request: Request, sim: Sim) -> Response:
    """The seller removes the app: ``{"user_id": N}`` (every grant of the user) or
    ``{"refresh_token": ...}`` (that grant); every token of the grants stops working."""
    body = await json_object(request)
    refresh = body.get("refresh_token")
    revoked = sim.oauth.revoke(
        user_id=_user(body), refresh_token=None if refresh is None else str(refresh)
    )
    return JSONResponse({"revoked": revoked})


@router.post("/oauth/expire")
async def sim_expire(request: Request, sim: Sim) -> Response:
    """Every access token (of ``{"user_id": N}``) ends now, before its hour is over: the next
    call with one is answered 401 invalid_token."""
    body = await json_object(request)
    return JSONResponse({"expired": sim.oauth.expire_access(_user(body))})


@router.get("/oauth")
async def sim_oauth(sim: Sim) -> Response:
    return JSONResponse(sim.oauth.as_dict())


@router.post("/users/{user_id}")
async def sim_user(request: Request, user_id: int, sim: Sim) -> Response:
    """Which shop a user owns (getMe): ``{"shop_id": N}``."""
    body = await json_object(request)
    shop_id = as_int(body["shop_id"])
    sim.state.user_shops[user_id] = shop_id
    sim.state.shop(shop_id).user_id = user_id
    return JSONResponse({"user_id": user_id, "shop_id": sim.state.user_shops[user_id]})


def _ints(value: object) -> list[int]:
    return [as_int(i) for i in value] if isinstance(value, list) else []


@router.post("/shops/{shop_id}")
async def sim_shop(request: Request, shop_id: int, sim: Sim) -> Response:
    """A shop set up otherwise (misconfiguration tests): ``{"processing_profiles":
    ["ready_to_ship"], "shipping_profile_ids": [9001, ...], "return_policy_ids": [...]}``,
    each optional."""
    body = await json_object(request)
    shop = sim.state.shop(shop_id)
    if "processing_profiles" in body:
        raw = body["processing_profiles"]
        kinds = tuple(str(k) for k in raw) if isinstance(raw, list) else ()
        unknown = [k for k in kinds if k not in PROFILE_KINDS]
        if unknown:
            return etsy_error(400, f"unknown processing profiles {unknown}")
        shop.profiles = processing_profiles(shop_id, kinds)
    if "shipping_profile_ids" in body:
        shop.shipping = [shipping_profile(shop, i) for i in _ints(body["shipping_profile_ids"])]
    if "return_policy_ids" in body:
        shop.returns = [return_policy(shop_id, i) for i in _ints(body["return_policy_ids"])]
    return JSONResponse(
        {
            "processing_profiles": shop.profiles,
            "shipping_profile_ids": [p["shipping_profile_id"] for p in shop.shipping],
            "return_policy_ids": [p["return_policy_id"] for p in shop.returns],
        }
    )


@router.post("/listings/{listing_id}")
async def set_listing_state(request: Request, listing_id: str, sim: Sim) -> Response:
    """What Etsy or the seller does to a listing: ``{"state": "expired"}``, ..."""
    body = await json_object(request)
    wanted = body.get("state")
    if not isinstance(wanted, str) or wanted not in STATES:
        return etsy_error(400, f"state must be one of {', '.join(STATES)}")
    try:
        listing = sim.listing(listing_id)
    except (LookupError, Invalid) as exc:
        return not_found(str(exc))
    listing.set_state(wanted)
    return JSONResponse(listing.as_json())
