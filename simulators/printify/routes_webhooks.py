"""A shop's webhooks: ``GET/POST /v1/shops/{id}/webhooks.json`` and ``DELETE
/v1/shops/{id}/webhooks/{webhook_id}.json``."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response

from simulators.printify.deps import Acct, Sim, shop_of
from simulators.printify.errors import NotFound, ok
from simulators.printify.state import Webhook
from simulators.printify.validation import require_body, webhook_request

router = APIRouter(prefix="/v1/shops/{shop_id}")


@router.get("/webhooks.json")
async def list_webhooks(shop_id: str, sim: Sim, acct: Acct) -> Response:
    shop_of(sim, shop_id)
    return ok([w.view() for w in acct.webhooks.values() if str(w.shop_id) == shop_id])


@router.post("/webhooks.json")
async def create_webhook(request: Request, shop_id: str, sim: Sim, acct: Acct) -> Response:
    shop_of(sim, shop_id)
    wanted = webhook_request(await require_body(request))
    hook = Webhook(secrets.token_hex(12), wanted.topic, wanted.url, shop_id, wanted.secret)
    acct.webhooks[hook.id] = hook
    return ok(hook.view())


@router.delete("/webhooks/{webhook_id}.json")
async def delete_webhook(shop_id: str, webhook_id: str, acct: Acct) -> Response:
    hook = acct.webhooks.get(webhook_id)
    if hook is None or str(hook.shop_id) != shop_id:
        raise NotFound("Webhook")
    del acct.webhooks[webhook_id]
    return ok({"id": webhook_id})
