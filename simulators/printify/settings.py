"""The Printify simulator's knobs (``SIM_PRINTIFY_*``; the fault knobs of
:mod:`simulators.common` come on top)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from simulators.common.profile import pace
from simulators.common.settings import SimSettings


class PrintifySettings(SimSettings):
    """Rate limits as Printify documents them, how the non-custom channels behave, the webhook
    sender's timing, the accounts' shops and tokens, and the undocumented choices
    (:class:`simulators.printify.state.Behaviour`)."""

    model_config = SettingsConfigDict(env_prefix="SIM_PRINTIFY_")

    rpm: int = Field(default=600, ge=1)
    catalog_rpm: int = Field(default=100, ge=1)
    rate_window_s: float = Field(default=60.0, gt=0)
    publish_limit: int = Field(default=200, ge=1)
    publish_window_s: float = Field(default=1800.0, gt=0)
    # Per account; the oldest are evicted beyond it so long runs stay bounded.
    max_products: int = Field(default=20000, ge=1)
    # A managed channel (Etsy, Shopify, ...) lists a published product this long after the
    # call; a webhook leaves this long after its event. Unset, the profile's (SIM_PROFILE,
    # simulators.common.profile) when realistic, else 3 s and 200 ms.
    publish_ms: float = Field(default_factory=lambda: pace("printify").publish_ms or 3000.0, ge=0)
    publish_failure_rate: float = Field(default=0.0, ge=0, le=1)
    webhook_delay_ms: float = Field(
        default_factory=lambda: pace("printify").webhook_delay_ms or 200.0, ge=0
    )
    webhook_attempts: int = Field(default=6, ge=1)
    webhook_retry_s: float = Field(default=1.0, ge=0)
    # One shop per sales channel (comma-separated).
    shops: str = "custom_integration"
    # The tokens Printify knows (comma-separated); unset, any token is an account of its own.
    tokens: str = ""
    keeps_sku: bool = True
    products_order: Literal["newest_first", "oldest_first"] = "newest_first"
    variant_update: Literal["require_all", "replace", "merge"] = "require_all"
    unsent_variants: Literal["disabled", "enabled", "absent"] = "disabled"
    publish_locked: Literal["accept", "refuse"] = "accept"

    def token_list(self) -> list[str]:
        return [t for t in self.tokens.split(",") if t.strip()]

    def channel_list(self) -> list[str]:
        return [c for c in (c.strip() for c in self.shops.split(",")) if c]
