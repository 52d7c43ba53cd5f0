"""Alert delivery: opened and resolved alerts posted to a Slack-compatible webhook.

A queue worker posts them with retries: a slow or failing webhook never delays the evaluation
(nor the fold). The webhook URL holds a token, so it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import NotRequired, TypedDict

import httpx
from psycopg_pool import AsyncConnectionPool

from services.monitor.alerts import Action, AlertRow
from shared.adapters.store import alerts as alert_store
from shared.platform.aio import cancel_and_wait
from shared.platform.http import async_client

logger = logging.getLogger(__name__)

_QUEUE_SIZE = 1000


class SlackField(TypedDict):
    title: str
    value: str
    short: bool


class SlackAttachment(TypedDict):
    color: str
    title: str
    text: str
    fields: list[SlackField]
    footer: str
    ts: NotRequired[int]


class SlackMessage(TypedDict):
    """The body of an incoming-webhook call (Slack's ``text`` with one ``attachments``)."""

    text: str
    attachments: list[SlackAttachment]


def slack_payload(alert: AlertRow, action: Action) -> SlackMessage:
    """A Slack-compatible message for an opened or resolved alert.

    Only the alert's own fields go out: no URLs, hosts of the database or credentials.
    """
    severity = str(alert["severity"])
    color = (
        "good"
        if action == "resolved"
        else {"critical": "danger", "warning": "warning"}.get(severity, "#439FE0")
    )
    title = f"[{severity.upper()}] {alert['type']} {action}"
    stamp = alert.get("resolved_at") if action == "resolved" else alert.get("created_at")
    fields: list[SlackField] = [
        {"title": "severity", "value": severity, "short": True},
        {"title": "status", "value": str(alert["status"]), "short": True},
        {"title": "alert", "value": str(alert["id"]), "short": True},
        {"title": "condition", "value": str(alert["condition_key"]), "short": True},
    ]
    fields += [
        {"title": str(k), "value": str(v), "short": True}
        for k, v in (alert.get("details") or {}).items()
    ]
    attachment: SlackAttachment = {
        "color": color,
        "title": title,
        "text": str(alert["message"]),
        "fields": fields,
        "footer": "POD Engine monitor",
    }
    if isinstance(stamp, datetime):
        attachment["ts"] = int(stamp.timestamp())
    return {"text": f"{title}: {alert['message']}", "attachments": [attachment]}


class WebhookNotifier:
    """Posts alert notices from a queue, with retries and exponential backoff.

    :meth:`notify` never waits: a full queue drops the notice with a warning. A delivered
    notice stamps the alert's ``notified_at``.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        url: str,
        *,
        attempts: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self._url = url
        self.attempts = attempts
        self.backoff_s = backoff_s
        # The project's client: an answer is freed when dropped, not at the collector's next
        # full pass (shared.platform.http.AcyclicAsyncClient).
        self._client = async_client(timeout=timeout_s)
        self._queue: asyncio.Queue[tuple[AlertRow, Action]] = asyncio.Queue(_QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the delivery worker (in the running loop)."""
        self._task = asyncio.create_task(self._run(), name="alert-webhook")

    def notify(self, alert: AlertRow, action: Action) -> None:
        """Queue a notice; never blocks."""
        try:
            self._queue.put_nowait((alert, action))
        except asyncio.QueueFull:
            logger.warning("alert notice dropped id=%s reason=queue_full", alert.get("id"))

    async def join(self) -> None:
        """Wait until every queued notice was delivered or given up."""
        await self._queue.join()

    async def close(self) -> None:
        """Stop the worker (queued notices not yet sent are dropped) and the HTTP client."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            alert, action = await self._queue.get()
            try:
                await self.deliver(alert, action)
            except Exception as exc:  # one bad notice must not end the worker
                logger.warning("alert notice failed id=%s error=%s", alert.get("id"), exc)
            finally:
                self._queue.task_done()

    async def deliver(self, alert: AlertRow, action: Action) -> bool:
        """Post one notice (retrying); True once the webhook answered 2xx."""
        body = slack_payload(alert, action)
        for attempt in range(1, self.attempts + 1):
            reason: str
            try:
                response = await self._client.post(self._url, json=body)
                if response.is_success:
                    await self._mark_notified(int(alert["id"]))
                    logger.info(
                        "alert notice sent id=%s action=%s attempt=%d", alert["id"], action, attempt
                    )
                    return True
                reason = f"status {response.status_code}"
            except httpx.HTTPError as exc:
                # The exception's class only: its text may carry the webhook URL (a secret).
                reason = type(exc).__name__
            logger.warning(
                "alert notice attempt failed id=%s action=%s attempt=%d/%d reason=%s",
                alert["id"],
                action,
                attempt,
                self.attempts,
                reason,
            )
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        logger.error("alert notice given up id=%s action=%s", alert["id"], action)
        return False

    async def _mark_notified(self, alert_id: int) -> None:
        await alert_store.mark_notified(self.pool, alert_id)
