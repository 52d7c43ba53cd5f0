"""The Etsy simulator's knobs (``SIM_ETSY_*``; the fault knobs of :mod:`simulators.common` come
on top)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from simulators.common.settings import SimSettings
from simulators.etsy.oauth import ACCESS_TTL_S, DEFAULT_SCOPES, REFRESH_TTL_S, OAuth


class EtsySettings(SimSettings):
    """Whose shop a token's user owns, the per-app rate limits, the accepted API keys and how
    strictly tokens are treated (see :mod:`simulators.etsy.oauth`)."""

    model_config = SettingsConfigDict(env_prefix="SIM_ETSY_")

    shop_id: int = Field(default=51234567, ge=1)
    qps: int = Field(default=10, ge=1)
    qpd: int = Field(default=10000, ge=1)
    day_s: float = Field(default=86400.0, gt=0)
    # Comma-separated ``keystring:secret``; unset, any key is accepted.
    api_keys: str = ""
    token_ttl_s: float = Field(default=ACCESS_TTL_S, gt=0)
    refresh_ttl_s: float = Field(default=REFRESH_TTL_S, gt=0)
    strict_tokens: str = ""
    refresh_reuse: Literal["revoke", "refuse"] = "revoke"
    # Space- or comma-separated; unset, the scopes the engine needs.
    scopes: str = ""
    # Comma-separated refresh tokens known from the start.
    refresh_tokens: str = ""

    def allowed_keys(self) -> set[str] | None:
        if not self.api_keys.strip():
            return None
        return {k.strip() for k in self.api_keys.split(",") if k.strip()}

    def oauth(self) -> OAuth:
        return OAuth(
            access_ttl_s=self.token_ttl_s,
            refresh_ttl_s=self.refresh_ttl_s,
            strict=self.strict_tokens.strip().lower() in ("1", "true", "yes", "on"),
            reuse=self.refresh_reuse,
            scopes=self.scopes.replace(",", " ").split() or DEFAULT_SCOPES,
            known_refresh_tokens=[t.strip() for t in self.refresh_tokens.split(",") if t.strip()],
        )
