"""Settings of the publisher stage."""

from __future__ import annotations

from pydantic import Field

from shared.adapters.vendors.printify import PrintifyAccountSettings
from shared.contract.topics import CHANNELS, DEFAULT_CHANNEL
from shared.pipeline.runner import RunnerSettings
from shared.platform.settings import DatabaseSettings


class PublisherSettings(RunnerSettings, DatabaseSettings, PrintifyAccountSettings):
    """The Printify account and its limits (PRINTIFY_API_KEY, ...), and the database of the
    ledger and the shared budgets (DATABASE_URL)."""

    # The sales channel this process publishes to (one consumer group per channel): printify
    # (through the product's Printify shop) or a channel listed directly (one registered in
    # shared.adapters.vendors.direct, e.g. shopify, with its own settings: SHOPIFY_*).
    channel: str = Field(default=DEFAULT_CHANNEL, pattern="^(" + "|".join(CHANNELS) + ")$")

    # For a custom-integration shop we are the sales channel: confirm the publication
    # ourselves with `publishing_succeeded`, under this storefront's base URL.
    storefront_base_url: str = "https://shop.example.com/products"
    # Confirm only when Printify's product:publish:started webhook comes (registered with
    # `pod webhooks register`), as Printify expects of a custom integration; off = at once.
    printify_webhooks_enabled: bool = False

    # Etsy, Shopify, ... confirm a publication on their own, minutes later or never: the
    # product is checked after PUBLISH_CHECK_MIN_S, then at doubling intervals up to
    # PUBLISH_CHECK_MAX_S, and the publication fails when unconfirmed after
    # PUBLISH_CONFIRM_TIMEOUT_S.
    publish_check_min_s: float = Field(default=5.0, gt=0)
    publish_check_max_s: float = Field(default=300.0, gt=0)
    publish_confirm_timeout_s: float = Field(default=3600.0, gt=0)

    def confirm_timeout_for(self, channel_default: float | None) -> float:
        """How long a publication may await its channel: PUBLISH_CONFIRM_TIMEOUT_S when set,
        else the channel's own (its spec's ``confirm_timeout_s``), else the setting's default."""
        if "publish_confirm_timeout_s" in self.model_fields_set or channel_default is None:
            return self.publish_confirm_timeout_s
        return channel_default

    # Sales channels of our own, by the name a Printify shop's sales_channel gives (e.g.
    # {"etsy": "mypackage.etsy:EtsyChannel"}): a class or function taking the channel's name
    # and returning a shared.adapters.vendors.channels.SalesChannel. Unlisted channels go through
    # Printify.
    sales_channel_adapters: dict[str, str] = Field(default_factory=dict)
