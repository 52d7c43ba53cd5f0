"""Printify's own test hooks, beside the shared ones of :mod:`simulators.common.control`:
``GET/POST /_sim/behaviour`` (the undocumented choices), ``GET/POST /_sim/channels`` (how the
non-custom channels behave) and ``POST /_sim/webhooks/fire`` (a webhook call of any topic)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from simulators.common.control import as_float
from simulators.printify.deps import Sim
from simulators.printify.errors import Invalid, ok
from simulators.printify.state import SHOP_ID
from simulators.printify.validation import bearer, json_body
from simulators.printify.webhooks import WEBHOOK_TOPICS

router = APIRouter(prefix="/_sim")


@router.post("/webhooks/fire")
async def fire_webhook(request: Request, sim: Sim) -> Response:
    """Send a webhook call of the token's account (e.g. an order's topics)."""
    token = bearer(request)
    body = await json_body(request)
    if token is None or body is None:
        raise Invalid("a bearer token and a JSON body are required")
    topic, resource = body.get("topic"), body.get("resource")
    if not isinstance(topic, str) or topic not in WEBHOOK_TOPICS or not isinstance(resource, dict):
        raise Invalid("topic (a webhook topic) and resource (an object)")
    shop_id = int(str(body.get("shop_id", SHOP_ID)))
    sim.webhooks.send(sim.accounts.account(token), shop_id, topic, resource)
    return ok({"sent": True})


@router.get("/behaviour")
async def get_behaviour(sim: Sim) -> Response:
    return ok(sim.behaviour.as_dict())


@router.post("/behaviour")
async def set_behaviour(request: Request, sim: Sim) -> Response:
    """Choose among the possibilities the documentation leaves open (see Behaviour)."""
    body = await json_body(request)
    try:
        sim.behaviour.update(body or {})
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    return ok(sim.behaviour.as_dict())


@router.get("/channels")
async def get_channels(sim: Sim) -> Response:
    return ok(sim.channels.as_dict())


@router.post("/channels")
async def set_channels(request: Request, sim: Sim) -> Response:
    body = await json_body(request) or {}
    sim.channels.publish_ms = as_float(body.get("publish_ms", sim.channels.publish_ms))
    sim.channels.failure_rate = as_float(body.get("failure_rate", sim.channels.failure_rate))
    return ok(sim.channels.as_dict())
