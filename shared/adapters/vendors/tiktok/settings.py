"""A TikTok Shop seller's settings (``TIKTOK_*``), the refresh grant that renews their token,
and the client they make."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from psycopg_pool import AsyncConnectionPool
from pydantic import Field, SecretStr, ValidationError, field_validator

from shared.adapters.credentials import (
    AccessToken,
    CredentialSettings,
    GrantRevoked,
    ManagedToken,
    StaticToken,
    TokenSet,
    TokenStore,
    token_store,
)
from shared.adapters.oauth import Redactor
from shared.adapters.vendors.tiktok.client import TIKTOK_API_URL, TikTokClient
from shared.adapters.vendors.tiktok.models import (
    INTERNAL_ERROR,
    TOO_MANY_REQUESTS,
    VENDOR,
    Envelope,
    TokenData,
)
from shared.domain.budget import SharedRateBudget, account_key
from shared.platform.errors import ConfigError, RateLimited, RetryableError, VendorTimeout
from shared.platform.http import async_client
from shared.platform.settings import empty_is_unset

logger = logging.getLogger("shared.adapters.vendors.tiktok")

TIKTOK_AUTH_URL = "https://auth.tiktok-shops.com"
REFRESH_PATH = "/api/v2/token/refresh"
# A seed whose expiry nobody knows is treated as ending at once: renewed before its first use.
_UNKNOWN_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)
SHOP_URL = "https://shop.tiktok.com/view/product/{}"


class TikTokSettings(CredentialSettings):
    """One TikTok Shop seller and the app that lists in their shop (``TIKTOK_*``);
    ``CREDENTIALS_KEY`` seals the seller's rotating tokens in the database."""

    tiktok_api_url: str = TIKTOK_API_URL
    tiktok_auth_url: str | None = Field(
        default=None,
        description="TikTok's token host; unset: auth.tiktok-shops.com, or TIKTOK_API_URL when "
        "that points elsewhere (the simulator)",
    )
    tiktok_app_key: SecretStr = Field(description="The app's key (Partner Center)")
    tiktok_app_secret: SecretStr = Field(description="The app's secret: signs every request")
    tiktok_refresh_token: SecretStr | None = Field(
        default=None,
        description="The seller's refresh token (from the authorisation's token/get): the seed "
        "of the tokens the engine renews and keeps in the database",
    )
    tiktok_access_token: SecretStr | None = Field(
        default=None, description="The seller's access token; alone it stops when it expires"
    )
    tiktok_token_margin_s: float = Field(default=3600.0, ge=0)
    tiktok_shop_cipher: str | None = Field(
        default=None, description="The shop's cipher; unset, read from Get Authorized Shops"
    )
    tiktok_shop_id: str | None = Field(
        default=None, description="Which authorised shop, when the seller authorised several"
    )
    tiktok_category_ids: dict[str, str] = Field(
        default_factory=dict,
        description="TikTok leaf category by product type (JSON); a type not given: TikTok's "
        "category recommendation for the title",
    )
    tiktok_attribute_values: dict[str, str] = Field(
        default_factory=dict,
        description="Value of a category's required attribute by attribute name (JSON); not "
        "given: the first value TikTok lists for it",
    )
    tiktok_warehouse_id: str | None = Field(
        default=None, description="Unset: the shop's default sales warehouse"
    )
    tiktok_quantity: int = Field(default=999, ge=1, le=99999)
    tiktok_currency: str = Field(default="USD", min_length=3, max_length=3)
    tiktok_package_weight_kg: float = Field(default=0.4, gt=0)
    tiktok_package_dimensions_cm: tuple[int, int, int] = (30, 25, 4)
    tiktok_max_images: int = Field(default=5, ge=1, le=9)
    tiktok_requests_per_second: int = Field(
        default=10, ge=1, description="The app's requests per second, shared by its publishers"
    )
    tiktok_timeout_s: float = Field(default=30.0, gt=0)
    tiktok_product_url: str = SHOP_URL

    @field_validator(
        "tiktok_auth_url",
        "tiktok_refresh_token",
        "tiktok_access_token",
        "tiktok_shop_cipher",
        "tiktok_shop_id",
        "tiktok_warehouse_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)

    def auth_url(self) -> str:
        if self.tiktok_auth_url:
            return self.tiktok_auth_url.rstrip("/")
        api = self.tiktok_api_url.rstrip("/")
        return TIKTOK_AUTH_URL if api == TIKTOK_API_URL else api

    def renews_tokens(self) -> bool:
        if self.tiktok_refresh_token is not None:
            return True
        if self.tiktok_access_token is None:
            raise ConfigError(
                "no TikTok credential: set TIKTOK_REFRESH_TOKEN, the seller's refresh token "
                "from the app's authorisation (README, Sales channels: TikTok Shop)"
            )
        return False

    def account(self) -> str:
        """The name the seller's tokens are kept under: a digest of the app key, and the shop
        when TIKTOK_SHOP_ID names one (a token is the seller's, whichever cipher is used)."""
        app = account_key(VENDOR, self.app_key())
        return f"{app}:{self.tiktok_shop_id}" if self.tiktok_shop_id else app

    def app_key(self) -> str:
        """The app's key; ConfigError when empty."""
        key = self.tiktok_app_key.get_secret_value().strip()
        if not key:
            raise ConfigError("TIKTOK_APP_KEY: empty (the app's key, from TikTok Partner Center)")
        return key


class TikTokRefreshGrant:
    """TikTok's refresh grant: ``GET https://auth.tiktok-shops.com/api/v2/token/refresh`` with
    ``app_key``, ``app_secret``, ``refresh_token`` and ``grant_type=refresh_token``; the answer's
    ``data`` has the new ``access_token``, ``access_token_expire_in`` (a unix time) and a
    ``refresh_token`` (kept: TikTok may rotate it). A non-zero ``code`` refuses the grant
    (expired or revoked refresh token): :class:`GrantRevoked`. No secret leaves it in a text."""

    def __init__(
        self,
        *,
        app_key: str,
        app_secret: str,
        auth_url: str = TIKTOK_AUTH_URL,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app_key = app_key
        self._secret = app_secret
        self.url = auth_url.rstrip("/") + REFRESH_PATH
        self.redact = Redactor(app_secret)
        self._http = async_client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)), transport=transport
        )
        self.granted = 0

    @staticmethod
    def _busy(resp: httpx.Response, envelope: Envelope | None) -> RetryableError | None:
        """A refusal that says nothing of the refresh token: TikTok's QPS limit (429,
        36009004) or a server error (5xx, 36009003). The renewal is tried again later; only a
        refusal of the token itself is the seller's to fix (:class:`GrantRevoked`)."""
        code = envelope.code if envelope is not None else None
        if resp.status_code == 429 or code == TOO_MANY_REQUESTS:
            retry_after = resp.headers.get("retry-after", "")
            return RateLimited(
                "TikTok's token endpoint: too many requests",
                vendor=VENDOR,
                status=resp.status_code,
                code=str(code) if code is not None else None,
                retry_after=float(retry_after) if retry_after.isdigit() else None,
            )
        if resp.status_code >= 500 or code == INTERNAL_ERROR:
            return RetryableError(
                f"TikTok's token endpoint: HTTP {resp.status_code}"
                + (f" ({code})" if code is not None else ""),
                vendor=VENDOR,
                status=resp.status_code,
            )
        return None

    async def __call__(self, current: TokenSet) -> TokenSet:
        refresh = current.refresh_token
        if not refresh:
            raise GrantRevoked("no TikTok refresh token: set TIKTOK_REFRESH_TOKEN", vendor=VENDOR)
        self.redact.remember(refresh)
        self.redact.remember(current.access_token)
        params = {
            "app_key": self.app_key,
            "app_secret": self._secret,
            "refresh_token": refresh,
            "grant_type": "refresh_token",
        }
        try:
            resp = await self._http.get(self.url, params=params)
        except httpx.TimeoutException:
            raise VendorTimeout("TikTok's token endpoint: timed out", vendor=VENDOR) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                self.redact(f"TikTok's token endpoint: {type(exc).__name__}"), vendor=VENDOR
            ) from None
        try:
            envelope: Envelope | None = Envelope.model_validate(resp.json())
        except (ValueError, ValidationError):
            envelope = None
        busy = self._busy(resp, envelope)
        if busy is not None:
            raise busy
        if envelope is None:
            raise RetryableError("TikTok's token endpoint: no TikTok answer", vendor=VENDOR)
        if envelope.code != 0:
            raise GrantRevoked(
                self.redact(
                    f"TikTok's token endpoint refused the refresh token ({envelope.code}: "
                    f"{envelope.message}): the seller must authorise the app again and set the "
                    "new TIKTOK_REFRESH_TOKEN"
                ),
                vendor=VENDOR,
                code=str(envelope.code),
            )
        try:
            data = TokenData.model_validate(envelope.data)
        except ValidationError:
            raise RetryableError(
                "TikTok's token endpoint: the answer has no usable access_token/refresh_token",
                vendor=VENDOR,
            ) from None
        self.redact.remember(data.access_token)
        self.redact.remember(data.refresh_token)
        self.granted += 1
        expires = datetime.fromtimestamp(data.access_token_expire_in, UTC)
        logger.info("tiktok access token renewed expires_at=%s", expires.isoformat())
        return TokenSet(data.access_token, data.refresh_token, expires)

    async def aclose(self) -> None:
        await self._http.aclose()


def tiktok_token(
    settings: TikTokSettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
) -> tuple[AccessToken, TikTokRefreshGrant | None]:
    """The seller's token: renewed through the refresh grant with TIKTOK_REFRESH_TOKEN, kept in
    PostgreSQL with a ``pool`` (every publisher shares the newest refresh token, sealed with
    CREDENTIALS_KEY), else in memory; or TIKTOK_ACCESS_TOKEN as it is."""
    if not settings.renews_tokens():
        assert settings.tiktok_access_token is not None
        logger.warning(
            "tiktok has an access token and no refresh token: every call is refused once it "
            "expires; set TIKTOK_REFRESH_TOKEN"
        )
        return StaticToken(settings.tiktok_access_token.get_secret_value()), None
    assert settings.tiktok_refresh_token is not None
    store = store or token_store(
        settings,
        pool,
        why="TIKTOK_REFRESH_TOKEN: the seller's tokens are renewed and kept in the database for "
        "every publisher, sealed with it",
    )
    grant = TikTokRefreshGrant(
        app_key=settings.app_key(),
        app_secret=settings.tiktok_app_secret.get_secret_value(),
        auth_url=settings.auth_url(),
        timeout_s=settings.tiktok_timeout_s,
        transport=transport,
    )
    access = settings.tiktok_access_token
    seed = TokenSet(
        "" if access is None else access.get_secret_value(),
        settings.tiktok_refresh_token.get_secret_value(),
        _UNKNOWN_EXPIRY,
    )
    token = ManagedToken(
        store,
        settings.account(),
        grant,
        vendor=VENDOR,
        seed=seed,
        margin_s=settings.tiktok_token_margin_s,
    )
    return token, grant


def tiktok_client(
    settings: TikTokSettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
    token: AccessToken | None = None,
) -> TikTokClient:
    """The seller's client from its settings; with a database pool, the app's requests per
    second are one budget in PostgreSQL for every publisher, and the tokens are kept there."""
    grant: TikTokRefreshGrant | None = None
    if token is None:
        token, grant = tiktok_token(settings, pool=pool, transport=transport, store=store)
    budget = None
    if pool is not None:
        budget = SharedRateBudget(
            pool,
            f"{account_key(VENDOR, settings.app_key())}:requests",
            limit=settings.tiktok_requests_per_second,
            window_s=1.0,
            hold_s=3 * settings.tiktok_timeout_s + 10,
            purpose="TikTok Shop requests",
        )
    return TikTokClient(
        app_key=settings.app_key(),
        app_secret=settings.tiktok_app_secret.get_secret_value(),
        token=token,
        shop_cipher=settings.tiktok_shop_cipher,
        shop_id=settings.tiktok_shop_id,
        base_url=settings.tiktok_api_url,
        timeout_s=settings.tiktok_timeout_s,
        requests_per_second=settings.tiktok_requests_per_second,
        budget=budget,
        transport=transport,
        closing=[grant] if grant is not None else [],
    )
