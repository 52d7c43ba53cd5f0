"""``/webhooks``: what a vendor's call is answered with."""

from __future__ import annotations

from typing import Literal

from services.api.schemas.common import _Wire


class WebhookAccepted(_Wire):
    """``POST /webhooks/printify`` answer: the call is durably on ``printify.webhooks``."""

    status: Literal["received"] = "received"
    event_id: str
