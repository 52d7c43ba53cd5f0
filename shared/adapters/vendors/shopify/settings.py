"""A Shopify store's settings (``SHOPIFY_*``), its token and the client they make."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from psycopg_pool import AsyncConnectionPool
from pydantic import Field, SecretStr, field_validator

from shared.adapters.credentials import (
    AccessToken,
    CredentialSettings,
    ManagedToken,
    StaticToken,
    TokenSet,
    TokenStore,
    token_store,
)
from shared.adapters.vendors.shopify.client import (
    API_VERSION_PATTERN,
    ClientCredentialsGrant,
    ShopifyClient,
)
from shared.adapters.vendors.shopify.models import VENDOR
from shared.adapters.vendors.shopify_contract import API_VERSION
from shared.platform.errors import (
    ConfigError,
)
from shared.platform.settings import empty_is_unset

logger = logging.getLogger("shared.adapters.vendors.shopify")  # the package's, as before the split


class ShopifySettings(CredentialSettings):
    """One Shopify store (``SHOPIFY_*``); ``CREDENTIALS_KEY`` when a Dev Dashboard app's tokens
    are kept in the database."""

    shopify_shop_domain: str = Field(description="e.g. my-shop.myshopify.com")
    shopify_access_token: SecretStr | None = Field(
        default=None, description="A legacy custom app's admin API token (shpat_...)"
    )
    shopify_client_id: str | None = Field(
        default=None, description="A Dev Dashboard app's client id (with its client secret)"
    )
    shopify_client_secret: SecretStr | None = Field(
        default=None, description="A Dev Dashboard app's client secret (shpss_...)"
    )
    shopify_api_version: str = Field(default=API_VERSION, pattern=API_VERSION_PATTERN)
    # The API's base URL; unset = https://<shop domain>. (The simulator in tests and make up.)
    shopify_api_url: str | None = None
    shopify_timeout_s: float = Field(default=30.0, gt=0)
    # A client-credentials token (24 h) is renewed this long before it ends.
    shopify_token_margin_s: float = Field(default=300.0, ge=0)
    # Where products are published; unset = the store's "Online Store" publication.
    shopify_publication_id: str | None = None
    shopify_vendor: str = "POD Engine"

    @field_validator(
        "shopify_access_token",
        "shopify_client_id",
        "shopify_client_secret",
        "shopify_api_url",
        "shopify_publication_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)  # compose's `SHOPIFY_CLIENT_ID=`: not configured

    def uses_client_credentials(self) -> bool:
        """True for a Dev Dashboard app, False for an admin token; ConfigError naming the
        settings when neither or both are configured, or half of the app's pair."""
        app = {
            "SHOPIFY_CLIENT_ID": self.shopify_client_id,
            "SHOPIFY_CLIENT_SECRET": self.shopify_client_secret,
        }
        given = [name for name, value in app.items() if value is not None]
        if self.shopify_access_token is not None and given:
            raise ConfigError(
                f"SHOPIFY_ACCESS_TOKEN and {' and '.join(given)} are both set: set either "
                "SHOPIFY_ACCESS_TOKEN (a legacy custom app's admin token, shpat_...) or "
                "SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET (a Dev Dashboard app), not both"
            )
        if self.shopify_access_token is not None:
            return False
        if not given:
            raise ConfigError(
                "no Shopify credential: set SHOPIFY_ACCESS_TOKEN (a legacy custom app's admin "
                "token, shpat_...) or SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET (a Dev "
                "Dashboard app: its Settings page)"
            )
        missing = [name for name, value in app.items() if value is None]
        if missing:
            raise ConfigError(
                f"{missing[0]} is not set: a Dev Dashboard app needs both SHOPIFY_CLIENT_ID "
                "and SHOPIFY_CLIENT_SECRET (its Settings page)"
            )
        return True

    def account(self) -> str:
        """The name the app's tokens are kept under (store and app, no secret)."""
        return f"{VENDOR}:{self.shopify_shop_domain}:{self.shopify_client_id}"


# A token that was never issued: renewed on first use (client credentials have no seed token).
_UNISSUED = TokenSet("", None, datetime(1970, 1, 1, tzinfo=UTC))


def shopify_token(
    settings: ShopifySettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
    revoked_poll_s: float = 30.0,
) -> tuple[AccessToken, ClientCredentialsGrant | None]:
    """The store's credential: its admin token as is, or the Dev Dashboard app's tokens from
    the client credentials grant, kept in PostgreSQL when there is a ``pool`` (every publisher
    of the app shares one token; CREDENTIALS_KEY seals it) and in memory otherwise. With the
    grant, which the caller closes."""
    if not settings.uses_client_credentials():
        assert settings.shopify_access_token is not None  # uses_client_credentials said so
        return StaticToken(settings.shopify_access_token.get_secret_value()), None
    assert settings.shopify_client_id and settings.shopify_client_secret
    store = store or token_store(
        settings,
        pool,
        why="SHOPIFY_CLIENT_ID/SHOPIFY_CLIENT_SECRET: the app's tokens are shared by every "
        "publisher through the database, sealed with it",
    )
    grant = ClientCredentialsGrant(
        shop_domain=settings.shopify_shop_domain,
        client_id=settings.shopify_client_id,
        client_secret=settings.shopify_client_secret.get_secret_value(),
        base_url=settings.shopify_api_url,
        timeout_s=settings.shopify_timeout_s,
        transport=transport,
    )
    token = ManagedToken(
        store,
        settings.account(),
        grant,
        vendor=VENDOR,
        seed=_UNISSUED,
        margin_s=settings.shopify_token_margin_s,
        revoked_poll_s=revoked_poll_s,
        # Nothing rotates: while refused, ask again (the app reinstalled, the secret fixed).
        regrant_revoked=True,
    )
    return token, grant


def shopify_client(
    settings: ShopifySettings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    pool: AsyncConnectionPool | None = None,
    store: TokenStore | None = None,
) -> ShopifyClient:
    """The store's client from its settings (ConfigError naming a missing or conflicting
    credential); ``pool``: where a Dev Dashboard app's tokens are shared."""
    token, grant = shopify_token(settings, pool=pool, transport=transport, store=store)
    return ShopifyClient(
        shop_domain=settings.shopify_shop_domain,
        token=token,
        api_version=settings.shopify_api_version,
        base_url=settings.shopify_api_url,
        timeout_s=settings.shopify_timeout_s,
        transport=transport,
        grant=grant,
    )
