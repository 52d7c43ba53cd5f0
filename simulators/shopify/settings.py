"""The Shopify simulator's knobs (``SIM_SHOPIFY_*``; the fault knobs of
:mod:`simulators.common` come on top)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from simulators.common.settings import SimSettings

DEFAULT_CLIENT_ID = "sim-shopify-client"
DEFAULT_CLIENT_SECRET = "sim-shopify-secret"  # noqa: S105  # the simulator's own app
DEFAULT_SCOPES = "write_products,write_publications"
TOKEN_TTL_S = 86399  # Shopify's expires_in for a client credentials token (24 hours)


class ShopifySettings(SimSettings):
    """The leaky bucket, media processing time, the app and its tokens, the shop and the day
    the version calendar is read on."""

    model_config = SettingsConfigDict(env_prefix="SIM_SHOPIFY_")

    bucket: float = Field(default=2000.0, gt=0)
    restore_rate: float = Field(default=100.0, gt=0)
    media_ms: float = Field(default=500.0, ge=0)
    # Comma-separated valid admin tokens; unset, any token not issued here is a legacy one.
    tokens: str = ""
    scopes: str = DEFAULT_SCOPES
    # The shop every request is for; unset, the request's host (``<shop>.myshopify.com``).
    shop: str | None = None
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_ttl_s: float = Field(default=TOKEN_TTL_S, gt=0)
    # ISO date; unset, today (UTC). Read on every request, as the calendar moves.
    today: date | None = None

    def today_or_now(self) -> date:
        return self.today or datetime.now(UTC).date()
