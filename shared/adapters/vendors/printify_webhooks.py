"""Printify's webhooks: the calls Printify makes to us, how they are signed, and registering them.

Printify POSTs a JSON event to each webhook registered for its topic::

    {"id": "653b6be8...", "type": "product:publish:started",
     "created_at": "2026-11-29 10:00:00+00:00",
     "resource": {"id": "<product id>", "type": "product",
                  "data": {"shop_id": 12345678, "action": "create", "publish_details": {...}}}}

A webhook registered with a ``secret`` carries ``X-Pfy-Signature: sha256=<hex>``, the
HMAC-SHA256 of the raw body under that secret. The body is checked against it before anything
reads it; a changed byte fails the check.

For a custom-integration shop, ``product:publish:started`` is how Printify tells the storefront
(the engine) to list a product; the storefront answers with ``publishing_succeeded`` or
``publishing_failed`` (:mod:`services.publisher.storefront`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shared.adapters.vendors.printify import (
    PrintifyAccountSettings,
    PrintifyClient,
    Webhook,
    printify_client,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Pfy-Signature"
PUBLISH_STARTED = "product:publish:started"
PRODUCT_DELETED = "product:deleted"
# The topics the engine registers: the publish handshake and what happens to orders.
TOPICS = (
    PUBLISH_STARTED,
    PRODUCT_DELETED,
    "order:created",
    "order:updated",
    "order:sent-to-production",
    "order:shipment:created",
    "order:shipment:delivered",
)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Pfy-Signature`` value for ``body`` under ``secret``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of exactly ``body`` (compared in constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


class WebhookResource(BaseModel):
    """What a webhook event is about."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(min_length=1, max_length=200)]
    type: Annotated[str, Field(min_length=1, max_length=50)]
    data: dict[str, Any] | None = None


class WebhookCall(BaseModel):
    """The body of one webhook call, as Printify sends it."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(min_length=1, max_length=200)]
    type: Annotated[str, Field(min_length=1, max_length=100)]
    created_at: Annotated[str, Field(max_length=100)] | None = None
    resource: WebhookResource


async def register_webhooks(
    client: PrintifyClient,
    shop_id: str | int,
    url: str,
    secret: str,
    topics: tuple[str, ...] = TOPICS,
) -> list[Webhook]:
    """Register ``url`` for each topic of the shop, once: a topic already registered for the URL
    is left alone. Returns the shop's webhooks for the URL afterwards."""
    existing = await client.list_webhooks(shop_id)
    have = {w.topic for w in existing if w.url == url}
    for topic in topics:
        if topic in have:
            continue
        created = await client.create_webhook(shop_id, topic=topic, url=url, secret=secret)
        logger.info(
            "printify webhook registered shop_id=%s topic=%s id=%s", shop_id, topic, created.id
        )
    return [w for w in await client.list_webhooks(shop_id) if w.url == url]


class WebhookRegistrationSettings(PrintifyAccountSettings):
    """What ``pod webhooks register`` needs: the account, and the secret the API checks."""

    printify_webhook_secret: SecretStr
    printify_shop_id: str | None = None


async def register_all(
    settings: WebhookRegistrationSettings, url: str, shop_id: str | None = None
) -> dict[str, list[Webhook]]:
    """Register ``url`` for :data:`TOPICS` in ``shop_id``, else ``PRINTIFY_SHOP_ID``, else every
    custom-integration shop of the account (the ones whose publish handshake is ours)."""
    async with printify_client(settings, None) as client:
        shop = shop_id or settings.printify_shop_id
        if shop:
            shops = [shop]
        else:
            shops = [
                str(s.id)
                for s in await client.list_shops()
                if s.sales_channel == "custom_integration"
            ]
        secret = settings.printify_webhook_secret.get_secret_value()
        return {s: await register_webhooks(client, s, url, secret) for s in shops}
