"""The TikTok Shop simulator's knobs (``SIM_TIKTOK_*``; the fault knobs of
:mod:`simulators.common` come on top)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from simulators.common.settings import SimSettings

APP_KEY = "sim-tiktok-app-key"
APP_SECRET = "sim-tiktok-app-secret"  # noqa: S105  # the simulator's, not a secret
REFRESH_TOKEN = "sim-tiktok-refresh-token"  # noqa: S105  # the simulator's, not a secret


class TikTokSimSettings(SimSettings):
    """The apps it knows (their secrets sign requests), the seller's shop, how long tokens
    live, the QPS limit and how the audit behaves."""

    model_config = SettingsConfigDict(env_prefix="SIM_TIKTOK_")

    # Comma-separated ``app_key:app_secret``: the apps whose signatures it can check.
    apps: str = f"{APP_KEY}:{APP_SECRET}"
    # Comma-separated refresh tokens known from the start (a grant made before it started).
    refresh_tokens: str = REFRESH_TOKEN
    # Unset: a refresh or access token it never issued is refused; set, taken as issued.
    accept_unknown_tokens: bool = True
    access_ttl_s: float = Field(default=7 * 86400.0, gt=0)  # TikTok's: about 7 days
    refresh_ttl_s: float = Field(default=365 * 86400.0, gt=0)
    shop_id: str = "7494049642642441621"
    shop_cipher: str = "ROW_sim-tiktok-cipher-1"
    shop_region: str = "US"
    warehouse_id: str = "7068517275539719942"
    qps: int = Field(default=20, ge=1)
    timestamp_window_s: float = Field(default=300.0, gt=0)
    audit_s: float = Field(default=3.0, ge=0)
    audit_failure_rate: float = Field(default=0.0, ge=0, le=1)
    # A title containing this word (case-insensitive) fails the audit.
    audit_failure_word: str = "counterfeit"
    seed: int | None = None

    def app_secrets(self) -> dict[str, str]:
        out = {}
        for pair in self.apps.split(","):
            key, sep, secret = pair.strip().partition(":")
            if key and sep and secret:
                out[key] = secret
        return out

    def known_refresh_tokens(self) -> list[str]:
        return [t.strip() for t in self.refresh_tokens.split(",") if t.strip()]
