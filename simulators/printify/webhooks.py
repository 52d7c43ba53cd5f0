"""Printify's webhooks: the topics, the signature and the background sender."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulators.common.requestlog import RequestLog
from simulators.printify.state import Account, Webhook, now_stamp

logger = logging.getLogger(__name__)

WEBHOOK_TOPICS = frozenset(
    {
        "shop:disconnected",
        "product:deleted",
        "product:publish:started",
        "order:created",
        "order:updated",
        "order:sent-to-production",
        "order:shipment:created",
        "order:shipment:delivered",
    }
)


def webhook_signature(secret: str, body: bytes) -> str:
    """``X-Pfy-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class WebhookSender:
    """Delivers webhook calls in the background, as Printify does: a short while after the
    event, signed when the webhook has a secret, and tried again with doubling waits while the
    receiver does not answer 2xx (``SIM_PRINTIFY_WEBHOOK_ATTEMPTS`` tries, the first
    ``SIM_PRINTIFY_WEBHOOK_DELAY_MS`` after the event)."""

    delay_s: float
    attempts: int
    retry_s: float
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # One client for every delivery: making one costs ~50-90 ms of the event loop (its TLS
    # context), which a burst of calls (N orders at once) would spend in a row, stalling the
    # whole simulator.
    _client: httpx.AsyncClient | None = None
    # Each delivered call's interval, event to its last sending, for GET /_sim/requests.
    log: RequestLog | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # A call waiting for a free connection of the pool is not a failed delivery.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, pool=60.0))
        return self._client

    def send(self, acct: Account, shop_id: int, topic: str, resource: dict[str, Any]) -> None:
        for hook in list(acct.webhooks.values()):
            if hook.topic != topic or int(hook.shop_id) != shop_id:
                continue
            call = {
                "id": secrets.token_hex(12),
                "type": topic,
                "created_at": now_stamp(),
                "resource": resource,
            }
            task = asyncio.get_running_loop().create_task(self._deliver(acct, hook, call))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _deliver(self, acct: Account, hook: Webhook, call: dict[str, Any]) -> None:
        body = json.dumps(call).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Printify-Webhooks"}
        if hook.secret:
            headers["X-Pfy-Signature"] = webhook_signature(hook.secret, body)
        wait, began = self.delay_s, time.time()
        for _ in range(self.attempts):
            await asyncio.sleep(wait)
            wait = max(self.retry_s, wait * 2)
            sent = time.time()
            try:
                resp = await self._http().post(hook.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                logger.info("webhook delivery failed url=%s error=%s", hook.url, exc)
                acct.webhook_attempts_failed += 1
                continue
            if 200 <= resp.status_code < 300:
                acct.webhooks_delivered[call["type"]] += 1
                if self.log is not None:
                    ref = str(call["resource"].get("id", ""))
                    # Until it left Printify: the receiver's handling is the receiver's time.
                    self.log.work(f"webhook {call['type']}", began, sent, ref)
                return
            acct.webhook_attempts_failed += 1
        acct.webhooks_given_up += 1
        logger.warning("webhook given up topic=%s url=%s", call["type"], hook.url)
