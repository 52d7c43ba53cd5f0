"""An Etsy shop's settings (``ETSY_*``), the refresh grant that renews its owner's token, and
the client they make."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

import httpx
from psycopg_pool import AsyncConnectionPool
from pydantic import Field, SecretStr, field_validator

from shared.adapters.credentials import (
    AccessToken,
    CredentialSettings,
    GrantRevoked,
    ManagedToken,
    StaticToken,
    TokenSet,
    TokenStore,
    expires_in,
    token_store,
)
from shared.adapters.oauth import Redactor, TokenEndpoint
from shared.adapters.vendors.etsy.client import EtsyClient, api_key_header
from shared.adapters.vendors.etsy.models import VENDOR
from shared.domain.budget import SharedRateBudget, account_key
from shared.platform.errors import (
    ConfigError,
    RetryableError,
)
from shared.platform.settings import empty_is_unset

logger = logging.getLogger("shared.adapters.vendors.etsy")  # the package's, as before the split

# Seller taxonomy nodes by product type (GET /v3/application/seller-taxonomy/nodes). 482 is
# Etsy's "T-shirts" node; the hoodie and mug ids are best guesses, not confirmed against Etsy's
# tree: check them with getSellerTaxonomyNodes and override with ETSY_TAXONOMY_IDS.
DEFAULT_TAXONOMY_IDS: dict[str, int] = {"tshirt": 482, "hoodie": 2202, "mug": 1062}

WhoMade = Literal["i_did", "someone_else", "collective"]
WhenMade = Literal[
    "made_to_order", "2020_2026", "2010_2019", "2007_2009", "before_2007", "2000_2006",
    "1990s", "1980s", "1970s", "1960s", "1950s", "1940s", "1930s", "1920s", "1910s", "1900s",
    "1800s", "1700s", "before_1700",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Settings


ETSY_API_URL = "https://openapi.etsy.com"
# Etsy's token endpoint as its authentication page gives it (the OAS's tokenUrl names
# openapi.etsy.com instead; the page's host is the one Etsy's examples and libraries use).
ETSY_TOKEN_URL = "https://api.etsy.com/v3/public/oauth/token"  # noqa: S105  # a URL
TOKEN_PATH = "/v3/public/oauth/token"  # noqa: S105  # a URL path
# A token endpoint's refusals that only the seller can undo: the grant revoked, expired or
# spent (invalid_grant), the app's keystring unknown or not allowed (invalid_client,
# unauthorized_client).
# A seed whose expiry nobody knows is treated as ending at once: renewed before its first use.
_UNKNOWN_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)


class EtsySettings(CredentialSettings):
    """One Etsy shop and the app that lists in it (``ETSY_*``); ``CREDENTIALS_KEY`` seals the
    shop owner's rotating OAuth tokens in the database."""

    etsy_api_url: str = ETSY_API_URL
    etsy_token_url: str | None = Field(
        default=None,
        description="Etsy's OAuth token endpoint; unset: Etsy's own, or <ETSY_API_URL>"
        "/v3/public/oauth/token when ETSY_API_URL points elsewhere (the simulator)",
    )
    etsy_api_key: SecretStr = Field(description="The app's keystring (x-api-key)")
    etsy_shared_secret: SecretStr | None = Field(
        default=None, description="The app's shared secret, sent as x-api-key keystring:secret"
    )
    etsy_refresh_token: SecretStr | None = Field(
        default=None,
        description="The shop owner's OAuth refresh token (from Etsy's OAuth with PKCE): the "
        "seed of tokens the engine renews, rotates and keeps in the database",
    )
    etsy_access_token: SecretStr | None = Field(
        default=None,
        description="The shop owner's OAuth access token; alone (no ETSY_REFRESH_TOKEN) it "
        "stops working an hour after Etsy issued it",
    )
    etsy_token_margin_s: float = Field(
        default=300.0, ge=0, description="An access token (1 hour) is renewed this long before"
    )
    etsy_shop_id: int = Field(ge=1)
    etsy_taxonomy_ids: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_TAXONOMY_IDS),
        description="Seller taxonomy id by product type (JSON); types not given keep defaults",
    )
    etsy_shipping_profile_id: int | None = Field(
        default=None, ge=1, description="Required: Etsy refuses physical listings without it"
    )
    etsy_readiness_state_id: int | None = Field(
        default=None,
        ge=1,
        description="Processing profile of the listings' products (Etsy requires one for a"
        " physical listing); unset, the shop's first made_to_order profile",
    )
    etsy_return_policy_id: int | None = Field(default=None, ge=1)
    etsy_who_made: WhoMade = "i_did"
    etsy_when_made: WhenMade = "made_to_order"
    etsy_quantity: int = Field(default=999, ge=1, le=999, description="Stock of each product")
    etsy_timeout_s: float = Field(default=30.0, gt=0)
    etsy_max_images: int = Field(default=10, ge=1, le=20)
    etsy_retry_after_max_s: float = Field(
        default=5.0, ge=0, description="Longest 429 Retry-After waited out; longer ones raise"
    )
    etsy_requests_per_second: int = Field(
        default=10,
        ge=1,
        description="The app's requests per second (Etsy's x-limit-per-second), shared by"
        " every publisher of the app",
    )
    etsy_day_exhausted_wait_s: float = Field(
        default=3600.0, gt=0, description="Calls stop this long once the day's budget is spent"
    )

    @field_validator(
        "etsy_shipping_profile_id",
        "etsy_readiness_state_id",
        "etsy_return_policy_id",
        "etsy_token_url",
        "etsy_shared_secret",
        "etsy_refresh_token",
        "etsy_access_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)  # compose's `ETSY_READINESS_STATE_ID=`: the shop's own

    def taxonomy_ids(self) -> dict[str, int]:
        """The defaults, overridden per product type by ETSY_TAXONOMY_IDS (JSON)."""
        return {**DEFAULT_TAXONOMY_IDS, **self.etsy_taxonomy_ids}

    def keystring(self) -> str:
        """The app's keystring (ETSY_API_KEY without a ``:secret`` given with it)."""
        return self.etsy_api_key.get_secret_value().split(":", 1)[0].strip()

    def api_key_header(self) -> str:
        """``x-api-key`` as Etsy takes it; ConfigError naming ETSY_SHARED_SECRET without one."""
        secret = self.etsy_shared_secret
        return api_key_header(
            self.etsy_api_key.get_secret_value(),
            None if secret is None else secret.get_secret_value(),
        )

    def token_url(self) -> str:
        """Where tokens are renewed: ETSY_TOKEN_URL, else Etsy's, else (ETSY_API_URL points
        elsewhere: the simulator) the same path on ETSY_API_URL."""
        if self.etsy_token_url:
            return self.etsy_token_url
        api = self.etsy_api_url.rstrip("/")
        return ETSY_TOKEN_URL if api == ETSY_API_URL else api + TOKEN_PATH

    def renews_tokens(self) -> bool:
        """True with a refresh token (the engine renews the access token); False with an
        access token alone (it stops working within the hour). ConfigError with neither."""
        if self.etsy_refresh_token is not None:
            return True
        if self.etsy_access_token is None:
            raise ConfigError(
                "no Etsy credential: set ETSY_REFRESH_TOKEN, the shop owner's OAuth refresh "
                "token from Etsy's OAuth with PKCE (README, Sales channels: Etsy)"
            )
        return False

    def account(self) -> str:
        """The name the shop owner's tokens are kept under: the app (a digest of its
        keystring, never the keystring) and the shop."""
        return f"{account_key(VENDOR, self.keystring())}:{self.etsy_shop_id}"


class EtsyRefreshGrant:
    """Etsy's refresh_token grant (developers.etsy.com, Authentication, "Requesting a Refresh
    OAuth Token"): ``POST https://api.etsy.com/v3/public/oauth/token``, form-encoded
    ``grant_type=refresh_token``, ``client_id`` (the keystring) and ``refresh_token``; the
    answer is ``access_token``, ``token_type``, ``expires_in`` (3600) and a NEW
    ``refresh_token``: the one sent is spent (Etsy's libraries report it stops working at
    once), so the caller must keep the new one before anything else (the
    :class:`~shared.adapters.credentials.TokenStore` does, under its lock).

    A refusal of the grant (400 ``invalid_grant``: revoked by the seller, expired after 90
    days, already spent) is :class:`GrantRevoked`; a server error, a timeout or a dropped
    connection is retryable and spends nothing we know of. No token, key or secret ever leaves
    this object in any text (:mod:`shared.adapters.oauth`)."""

    def __init__(
        self,
        *,
        keystring: str,
        api_key: str,
        token_url: str = ETSY_TOKEN_URL,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not keystring:
            raise ValueError("keystring is required")
        self.keystring = keystring
        self.token_url = token_url
        self._endpoint = TokenEndpoint(
            token_url,
            vendor=VENDOR,
            what="Etsy's token endpoint",
            revoked_hint="the seller must authorise the app again (Etsy's OAuth with PKCE) and "
            "set the new ETSY_REFRESH_TOKEN",
            redact=Redactor(keystring, api_key),
            # The app's key as every other call sends it (Etsy's 2026 rule is for every
            # request; the token endpoint is documented with client_id alone).
            headers={"x-api-key": api_key},
            timeout_s=timeout_s,
            transport=transport,
        )
        self.granted = 0  # refreshes made by this object (for logs and tests)

    async def __call__(self, current: TokenSet) -> TokenSet:
        refresh = current.refresh_token
        if not refresh:
            raise GrantRevoked(
                "no refresh token to renew the Etsy access token with: set ETSY_REFRESH_TOKEN",
                vendor=VENDOR,
            )
        self._endpoint.redact.remember(current.access_token)
        answer = await self._endpoint.request(
            {"grant_type": "refresh_token", "client_id": self.keystring, "refresh_token": refresh}
        )
        if answer.refresh_token is None:
            raise RetryableError(
                "Etsy's token endpoint: the answer has no refresh_token (the one sent may be "
                "spent)",
                vendor=VENDOR,
            )
        self.granted += 1
        logger.info("etsy access token renewed expires_in_s=%d", answer.expires_in)
        return TokenSet(answer.access_token, answer.refresh_token, expires_in(answer.expires_in))

    async def aclose(self) -> None:
        await self._endpoint.aclose()


def etsy_token(
    settings: EtsySettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
    revoked_poll_s: float = 30.0,
) -> tuple[AccessToken, EtsyRefreshGrant | None]:
    """The shop owner's token: renewed through the refresh grant with ETSY_REFRESH_TOKEN, kept
    in PostgreSQL when there is a ``pool`` (every publisher shares the newest refresh token;
    CREDENTIALS_KEY seals it) and in memory otherwise; or ETSY_ACCESS_TOKEN as it is (it
    stops working an hour after Etsy issued it: said at start). With the grant, which the
    caller closes."""
    if not settings.renews_tokens():
        assert settings.etsy_access_token is not None  # renews_tokens said so
        logger.warning(
            "etsy has an access token and no refresh token: Etsy's access tokens live one "
            "hour, after which every Etsy call is refused; set ETSY_REFRESH_TOKEN "
            "shop_id=%s",
            settings.etsy_shop_id,
        )
        return StaticToken(settings.etsy_access_token.get_secret_value()), None
    assert settings.etsy_refresh_token is not None
    key = settings.api_key_header()
    store = store or token_store(
        settings,
        pool,
        why="ETSY_REFRESH_TOKEN: Etsy's refresh token rotates at every renewal, so the newest "
        "is kept in the database for every publisher, sealed with it",
    )
    grant = EtsyRefreshGrant(
        keystring=settings.keystring(),
        api_key=key,
        token_url=settings.token_url(),
        timeout_s=settings.etsy_timeout_s,
        transport=transport,
    )
    access = settings.etsy_access_token
    seed = TokenSet(
        "" if access is None else access.get_secret_value(),
        settings.etsy_refresh_token.get_secret_value(),
        _UNKNOWN_EXPIRY,
    )
    token = ManagedToken(
        store,
        settings.account(),
        grant,
        vendor=VENDOR,
        seed=seed,
        margin_s=settings.etsy_token_margin_s,
        revoked_poll_s=revoked_poll_s,
    )
    return token, grant


def etsy_client(
    settings: EtsySettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
    token: AccessToken | None = None,
) -> EtsyClient:
    """The shop's client from its settings (ConfigError naming a missing setting); with a
    database pool, its per-second budget is the app's deployment-wide one in PostgreSQL (named
    after a hash of the keystring) and the owner's tokens are kept there too. ``store`` keeps
    the tokens instead (tests); ``token`` replaces them altogether."""
    key = settings.api_key_header()
    grant: EtsyRefreshGrant | None = None
    if token is None:
        token, grant = etsy_token(settings, pool=pool, transport=transport, store=store)
    budget = None
    if pool is not None:
        budget = SharedRateBudget(
            pool,
            f"{account_key(VENDOR, settings.keystring())}:requests",
            limit=settings.etsy_requests_per_second,
            window_s=1.0,
            # A grant whose holder died keeps counting this long: longer than any call lasts.
            hold_s=3 * settings.etsy_timeout_s + 10,
            purpose="Etsy requests",
        )
    return EtsyClient(
        api_key=key,
        budget=budget,
        token=token,
        base_url=settings.etsy_api_url,
        timeout_s=settings.etsy_timeout_s,
        max_retry_wait_s=settings.etsy_retry_after_max_s,
        day_wait_s=settings.etsy_day_exhausted_wait_s,
        transport=transport,
        closing=[grant] if grant is not None else [],
    )
