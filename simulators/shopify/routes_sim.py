"""Shopify's own test hooks, beside the shared ones of :mod:`simulators.common.control`: the
app (``GET/POST /_sim/app``, uninstall, install) and a shop's publications."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from simulators.common.control import as_float, json_object
from simulators.shopify.access import scope_set
from simulators.shopify.deps import Sim
from simulators.shopify.state import DEFAULT_SHOP, Store

router = APIRouter(prefix="/_sim")


@router.get("/app")
async def get_app(sim: Sim) -> dict[str, Any]:
    return sim.app.view()


@router.post("/app")
async def set_app(request: Request, sim: Sim) -> dict[str, Any]:
    """Change the app (and the admin tokens' scopes with ``scopes``)."""
    body = await json_object(request)
    current = sim.app
    for key in ("client_id", "client_secret"):
        if key in body:
            setattr(current, key, str(body[key]))
    scopes = body.get("scopes")
    if isinstance(scopes, str | list):
        current.scopes = scope_set(scopes if isinstance(scopes, str) else map(str, scopes))
        sim.static_scopes = current.scopes
    if "token_ttl_s" in body:
        current.token_ttl_s = as_float(body["token_ttl_s"])
    if "installed" in body:
        current.installed = bool(body["installed"])
    return current.view()


@router.post("/app/uninstall")
async def uninstall(sim: Sim) -> dict[str, Any]:
    """The merchant uninstalls the app: its tokens stop working, its grant is refused."""
    sim.app.installed = False
    return sim.app.view()


@router.post("/app/install")
async def install(sim: Sim) -> dict[str, Any]:
    sim.app.installed = True
    return sim.app.view()


@router.post("/publications")
async def set_publications(request: Request, sim: Sim) -> dict[str, Any]:
    body = await json_object(request)
    domain = str(body.get("shop") or sim.settings.shop or DEFAULT_SHOP)
    if domain not in sim.stores:
        sim.stores[domain] = Store(domain, sim.new_bucket())
    wanted = body["publications"]
    sim.stores[domain].publications = [
        {"id": str(p["id"]), "name": str(p["name"])}
        for p in (wanted if isinstance(wanted, list) else [])
    ]
    return {"shop": domain, "publications": sim.stores[domain].publications}
