"""Settings of the publisher stage."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.runner import RunnerSettings
from shared.settings import DatabaseSettings


class PublisherSettings(RunnerSettings, DatabaseSettings):
    """Printify credentials and publishing limits (PRINTIFY_API_KEY), and the database of the
    side-effect ledger (DATABASE_URL)."""

    printify_api_key: SecretStr
    printify_api_url: str = "https://api.printify.com"
    printify_requests_per_minute: int = Field(default=600, ge=1)
    printify_publishes_per_window: int = Field(default=200, ge=1)
    printify_publish_window_s: float = Field(default=1800.0, gt=0)
    printify_timeout_s: float = Field(default=30.0, gt=0)
    # For a custom-integration shop we are the sales channel: confirm the publication
    # ourselves with `publishing_succeeded`, under this storefront's base URL.
    storefront_base_url: str = "https://shop.example.com/products"
