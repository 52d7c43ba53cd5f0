"""The Meta simulator's knobs (``SIM_META_*``; the fault knobs of :mod:`simulators.common` come
on top)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from simulators.common.settings import SimSettings

DEFAULT_TOKEN = "sim-meta-system-user-token"  # noqa: S105  # the simulator's, not a secret
DEFAULT_APP_SECRET = "sim-meta-app-secret"  # noqa: S105  # the simulator's, not a secret
DEFAULT_CATALOG = "1234567890123456"
DEFAULT_BUSINESS = "987654321098765"


class MetaSettings(SimSettings):
    """The business, its catalog, the app and its system user's tokens, and how Meta answers."""

    model_config = SettingsConfigDict(env_prefix="SIM_META_")

    business_id: str = DEFAULT_BUSINESS
    catalog_id: str = DEFAULT_CATALOG
    # Comma-separated access tokens Meta issued (system-user tokens).
    tokens: str = DEFAULT_TOKEN
    # A token stops working this long after the simulator first saw it (0: never, as a
    # system-user token generated "never expire"; Meta's 60-day ones do expire).
    token_ttl_s: float = Field(default=0.0, ge=0)
    app_secret: str = DEFAULT_APP_SECRET
    # The app's "Require App Secret" setting (every call must carry appsecret_proof).
    require_proof: bool = True
    # How long a batch takes before check_batch_request_status says finished.
    batch_delay_s: float = Field(default=2.0, ge=0)
    # Share of valid items Meta rejects anyway (an image it cannot fetch, a policy reason).
    reject_share: float = Field(default=0.0, ge=0, le=1)
    # Every Nth valid item is rejected too (0: none): a deterministic share, for tests.
    reject_every: int = Field(default=0, ge=0)
    reject_reason: str = (
        "image_link: the image could not be downloaded (Meta's crawler got no image at this URL)"
    )
    # The business's call budget per use case type, in calls per window.
    call_budget: int = Field(default=600, ge=1)
    window_s: float = Field(default=3600.0, gt=0)
    seed: int | None = None

    def token_list(self) -> list[str]:
        return [t.strip() for t in self.tokens.split(",") if t.strip()]
