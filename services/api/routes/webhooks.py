"""``POST /webhooks/printify``: Printify's webhook calls, checked and put on ``printify.webhooks``.

Printify cannot send our API keys, so this route takes none: the ``X-Pfy-Signature`` header
(``sha256=`` + HMAC-SHA256 of the raw body under ``PRINTIFY_WEBHOOK_SECRET``) is the only proof
of origin. It is checked in constant time before the body is parsed; a missing or wrong
signature is a 401 and nothing is produced. A valid call becomes one ``printify.webhook`` event
whose id derives from Printify's event id, so a call Printify repeats is recognised downstream.
The answer is 200 only once the broker acknowledged the event; otherwise 503, and Printify
calls again.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import ValidationError

from services.api.errors import ApiError, field_name
from services.api.schemas.common import error_responses
from services.api.schemas.webhooks import WebhookAccepted
from services.api.state import State
from shared.adapters.vendors.printify_webhooks import SIGNATURE_HEADER, WebhookCall, signature_ok
from shared.contract.events import PrintifyWebhookPayload, PrintifyWebhookReceived
from shared.contract.topics import PRINTIFY_WEBHOOKS
from shared.pipeline.runner import BrokerUnavailable

logger = logging.getLogger(__name__)

# Printify's event id -> our event id, the same for every delivery of one call.
_WEBHOOK_NS = uuid.UUID("3f0c9a52-8d1e-4b7a-9e26-5c4d8b1a7f03")

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/printify",
    response_model=WebhookAccepted,
    responses=error_responses(400, 401, 404, 413, 503),
    summary="Receive a Printify webhook call (signed with X-Pfy-Signature)",
)
async def printify_webhook(
    request: Request,
    state: State,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> WebhookAccepted:
    """Check the call's signature, then produce it as a ``printify.webhook`` event."""
    secret = state.settings.printify_webhook_secret
    if secret is None:
        raise ApiError(404, "not_found", "Printify webhooks are not enabled here")
    body = await request.body()
    if not signature_ok(secret.get_secret_value(), body, signature):
        logger.warning(
            "printify webhook refused reason=%s bytes=%d",
            "no signature" if not signature else "signature mismatch",
            len(body),
        )
        raise ApiError(401, "unauthorized", f"{SIGNATURE_HEADER} is missing or does not match")
    try:
        call = WebhookCall.model_validate_json(body)
    except ValidationError as exc:
        detail = [
            {"field": field_name(e.get("loc", ())) or "body", "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        raise ApiError(400, "invalid_webhook", detail) from None
    data = call.resource.data or {}
    shop = data.get("shop_id")
    event = PrintifyWebhookReceived(
        event_id=uuid.uuid5(_WEBHOOK_NS, call.id),
        job_id=f"printify:{call.resource.type}:{call.resource.id}"[:100],
        producer="api",
        payload=PrintifyWebhookPayload(
            webhook_event_id=call.id,
            topic=call.type,
            resource_id=call.resource.id,
            resource_type=call.resource.type,
            shop_id=None if shop is None else str(shop),
            data=data,
            sent_at=call.created_at,
        ),
    )
    try:
        await state.producer.send(
            PRINTIFY_WEBHOOKS,
            event.to_json(),
            key=event.job_id,
            timeout=state.settings.produce_timeout_s,
        )
    except BrokerUnavailable as exc:
        logger.error("printify webhook not accepted topic=%s reason=%s", call.type, exc)
        raise ApiError(503, "kafka_unavailable", f"not accepted: {exc}; call again") from None
    logger.info(
        "printify webhook received topic=%s resource=%s:%s event_id=%s",
        call.type,
        call.resource.type,
        call.resource.id,
        event.event_id,
    )
    return WebhookAccepted(event_id=str(event.event_id))
