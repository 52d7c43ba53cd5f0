"""A Meta business's catalog and the system user that writes it (``META_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from shared.platform.settings import PodSettings, empty_is_unset

META_GRAPH_URL = "https://graph.facebook.com"
# The Graph API version Meta's specs name (api_specs/specs/version.txt of
# facebook-business-sdk-codegen, read 2026-12-06); each version lives about two years.
META_API_VERSION = "v25.0"


class MetaSettings(PodSettings):
    """One Commerce catalog (``META_CATALOG_ID``) written by a system user of its business."""

    meta_access_token: SecretStr = Field(
        description="The system user's access token (Business Settings > System users > "
        "Generate new token, with catalog_management); the engine never renews it"
    )
    meta_app_secret: SecretStr = Field(
        description="The app's secret: every call carries appsecret_proof made with it"
    )
    meta_catalog_id: str = Field(pattern=r"^\d{1,32}$")
    meta_business_id: str | None = Field(
        default=None,
        pattern=r"^\d{1,32}$",
        description="The business owning the catalog (pod doctor checks it; its usage header "
        "entries name it)",
    )
    meta_graph_url: str = META_GRAPH_URL
    meta_api_version: str = Field(default=META_API_VERSION, pattern=r"^v\d+\.\d+$")
    meta_brand: str = Field(default="POD Engine", min_length=1, max_length=100)
    meta_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    meta_product_url_template: str | None = Field(
        default=None,
        description="Where a buyer lands, with {handle} and/or {product_id}; unset: "
        "<STOREFRONT_BASE_URL>/{handle}, as the engine's own storefront",
    )
    storefront_base_url: str = "https://shop.example.com/products"
    meta_timeout_s: float = Field(default=30.0, gt=0)
    meta_calls_per_minute: int = Field(
        default=60, ge=1, description="Calls per minute every publisher of the business shares"
    )
    meta_usage_block_pct: float = Field(
        default=95.0,
        gt=0,
        le=100,
        description="Calls stop for every publisher when Meta reports this share of a use "
        "case's budget used",
    )

    meta_batch_wait_s: float = Field(
        default=120.0,
        gt=0,
        description="How long a seller's unpublish, delete or reprice waits for Meta to finish "
        "its batch before it is tried again (the retry reads the catalog first)",
    )

    meta_throttle_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="How long every publisher stops when Meta throttles without estimating "
        "when access comes back (its estimates are whole minutes)",
    )

    @field_validator("meta_business_id", "meta_product_url_template", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)
