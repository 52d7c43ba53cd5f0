"""The client of TikTok Shop's Partner API: every request signed, the shop owner's token in
``x-tts-access-token``, the shop's cipher, TikTok's error codes mapped to the POD Engine error
classes with ``vendor="tiktok"`` and no credential in them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx

from shared.adapters.credentials import AccessToken
from shared.adapters.oauth import Redactor
from shared.adapters.vendors.answers import read_answer
from shared.adapters.vendors.tiktok.models import (
    INTERNAL_ERROR,
    INVALID_SIGN,
    INVALID_TIMESTAMP,
    TOKEN_CODES,
    TOO_MANY_REQUESTS,
    VENDOR,
    Attributes,
    Categories,
    Created,
    Envelope,
    Mutation,
    ProductDetail,
    Recommended,
    SearchPage,
    Shop,
    Shops,
    UploadedImage,
    Warehouses,
)
from shared.adapters.vendors.tiktok.signing import sign
from shared.domain.budget import LocalRateBudget, RateBudget, aclose_budgets
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
    VendorTimeout,
    parse_retry_after,
)
from shared.platform.http import async_client, json_content

logger = logging.getLogger("shared.adapters.vendors.tiktok")

TIKTOK_API_URL = "https://open-api.tiktokglobalshop.com"
MAX_429_RETRIES = 3
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF_S = 0.25
RATE_LIMIT_WAIT_S = 1.0  # TikTok's QPS answer names no wait: a second frees the window
SEARCH_PAGE = 50

M = TypeVar("M")


class TikTokClient:
    """One TikTok Shop app acting for one seller's shop.

    ``token`` gives the seller's access token (a ManagedToken renews it; a rejected one is
    renewed and the call sent once more). ``shop_cipher`` names the shop; unset, it is read
    from Get Authorized Shops (the shop ``shop_id``, else the only one). ``budget``: the app's
    requests per second, shared by every process of the app when it is a SharedRateBudget."""

    def __init__(
        self,
        *,
        app_key: str,
        app_secret: str,
        token: AccessToken,
        shop_cipher: str | None = None,
        shop_id: str | None = None,
        base_url: str = TIKTOK_API_URL,
        timeout_s: float = 30.0,
        requests_per_second: int = 10,
        budget: RateBudget | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        closing: Sequence[Any] = (),
    ) -> None:
        if not app_key or not app_secret:
            raise ValueError("app_key and app_secret are required")
        self.app_key = app_key
        self._secret = app_secret
        self._token = token
        self._cipher = shop_cipher
        self.shop_id = shop_id
        self._redact = Redactor(app_secret)
        self.budget: RateBudget = budget or LocalRateBudget(
            requests_per_second, 1.0, purpose="TikTok Shop requests"
        )
        self._closing = list(closing)
        self._cipher_lock = asyncio.Lock()
        self._http = async_client(
            base_url=base_url.rstrip("/"),
            headers={"Accept": "application/json", "User-Agent": "pod-engine"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )

    # --- plumbing ------------------------------------------------------------------------------

    async def shop_cipher(self) -> str:
        """The shop's cipher: configured, or read once from Get Authorized Shops."""
        async with self._cipher_lock:
            if self._cipher is None:
                shop = await self.authorized_shop()
                self._cipher = shop.cipher
                logger.info("tiktok shop found shop_id=%s region=%s", shop.id, shop.region)
            return self._cipher

    async def authorized_shop(self) -> Shop:
        shops = (await self.get_authorized_shops()).shops
        if self.shop_id:
            shops = [s for s in shops if s.id == self.shop_id]
        if len(shops) != 1:
            raise ConfigError(
                f"TIKTOK_SHOP_ID/TIKTOK_SHOP_CIPHER: the seller authorised {len(shops)} "
                "matching shops to the app; name the one to list in"
            )
        return shops[0]

    async def _call(
        self,
        kind: type[M],
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: object | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        shop: bool = True,
        resend: bool | None = None,
    ) -> M:
        """``resend``: whether a server error may be answered by sending the call again (a
        read, an image upload: nothing is listed twice); by default only a GET is."""
        answer = await self._request(
            method,
            path,
            query=query,
            body=body,
            files=files,
            data=data,
            shop=shop,
            resend=method == "GET" if resend is None else resend,
        )
        return read_answer(kind, answer, vendor=VENDOR, what=f"{method} {path}")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None,
        body: object | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        data: Mapping[str, str] | None,
        shop: bool,
        resend: bool,
    ) -> object:
        """One call: signed, within the budget; a rejected token renewed and the call sent
        once more; the QPS limit waited out (up to MAX_429_RETRIES); a call that may be
        (``resend``) sent again after a server error. Returns the envelope's ``data``."""
        renewed = False
        transient = limited = 0
        cipher = await self.shop_cipher() if shop else None
        content = json_content(body) if body is not None else b""
        while True:
            token = await self._token.get()
            self._redact.remember(token)
            try:
                return await self._send(method, path, query, cipher, content, files, data, token)
            except PodError as exc:
                if exc.code in {str(c) for c in TOKEN_CODES} and not renewed:
                    renewed = True
                    self._token.rejected(token)
                    if await self._token.get() == token:
                        raise  # a fixed token: nothing to renew it with
                    logger.info(
                        "tiktok refused the access token, sending again with a renewed one path=%s",
                        path,
                    )
                    continue
                if isinstance(exc, RateLimited) and limited < MAX_429_RETRIES:
                    limited += 1
                    wait = exc.retry_after or RATE_LIMIT_WAIT_S
                    await self.budget.block(wait)  # every sender of the app waits
                    logger.warning(
                        "tiktok rate limited path=%s attempt=%d wait_s=%.1f", path, limited, wait
                    )
                    await asyncio.sleep(wait)
                    continue
                if (
                    isinstance(exc, RetryableError)
                    and not isinstance(exc, RateLimited)
                    and resend
                    and transient < TRANSIENT_RETRIES
                ):
                    transient += 1
                    await asyncio.sleep(TRANSIENT_BACKOFF_S * 2 ** (transient - 1))
                    continue
                raise

    async def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int] | None,
        cipher: str | None,
        content: bytes,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        data: Mapping[str, str] | None,
        token: str,
    ) -> object:
        async with self.budget.slot():
            params = {"app_key": self.app_key, "timestamp": str(int(time.time()))}
            if cipher is not None:
                params["shop_cipher"] = cipher
            params.update({k: str(v) for k, v in (query or {}).items()})
            # A multipart upload is signed without its body, as TikTok documents.
            params["sign"] = sign(self._secret, path, params.items(), b"" if files else content)
            headers = {"x-tts-access-token": token}
            if not files:
                headers["Content-Type"] = "application/json"
            try:
                resp = await self._http.request(
                    method,
                    path,
                    params=params,
                    content=None if files else (content or None),
                    files=files,
                    data=data,
                    headers=headers,
                )
            except httpx.TimeoutException as exc:
                raise VendorTimeout(
                    f"{method} {path}: timed out ({type(exc).__name__})", vendor=VENDOR
                ) from None
            except httpx.TransportError as exc:
                raise RetryableError(
                    self._redact(f"{method} {path}: {type(exc).__name__}: {exc}"), vendor=VENDOR
                ) from None
        return self._answer(method, path, resp)

    def _answer(self, method: str, path: str, resp: httpx.Response) -> object:
        status = resp.status_code
        try:
            envelope = Envelope.model_validate(resp.json())
        except ValueError:
            cls: type[PodError] = (
                RetryableError if status >= 500 or status == 429 else PermanentError
            )
            if status == 429:
                cls = RateLimited
            raise cls(
                f"{method} {path}: HTTP {status}, no TikTok answer", vendor=VENDOR, status=status
            ) from None
        code = envelope.code
        if code == 0 and status < 400:
            return envelope.data
        said = self._redact(
            f"{method} {path}: {envelope.message or 'error'} (request_id {envelope.request_id})"
        )
        common = {"vendor": VENDOR, "status": status, "code": str(code)}
        if code == TOO_MANY_REQUESTS or status == 429:
            return_after = parse_retry_after(resp.headers.get("retry-after"))
            raise RateLimited(said, retry_after=return_after, **common)  # type: ignore[arg-type]
        if code == INVALID_SIGN:
            raise PermanentError(
                f"{said}: TikTok refused the signature; TIKTOK_APP_SECRET is not the secret of "
                "TIKTOK_APP_KEY's app",
                **common,  # type: ignore[arg-type]
            )
        if code in TOKEN_CODES:
            raise PermanentError(said, **common)  # type: ignore[arg-type]
        if code in (INVALID_TIMESTAMP, INTERNAL_ERROR) or status >= 500:
            raise RetryableError(said, **common)  # type: ignore[arg-type]
        raise PermanentError(said, **common)  # type: ignore[arg-type]

    # --- operations ----------------------------------------------------------------------------

    async def get_authorized_shops(self) -> Shops:
        return await self._call(Shops, "GET", "/authorization/202309/shops", shop=False)

    async def get_warehouses(self) -> Warehouses:
        return await self._call(Warehouses, "GET", "/logistics/202309/warehouses")

    async def get_categories(self) -> Categories:
        return await self._call(Categories, "GET", "/product/202309/categories")

    async def recommend_category(self, title: str) -> Recommended:
        return await self._call(
            Recommended,
            "POST",
            "/product/202309/categories/recommend",
            body={"product_title": title},
            resend=True,  # a read
        )

    async def get_attributes(self, category_id: str) -> Attributes:
        return await self._call(
            Attributes, "GET", f"/product/202309/categories/{category_id}/attributes"
        )

    async def upload_image(self, data: bytes, file_name: str, mime: str) -> UploadedImage:
        return await self._call(
            UploadedImage,
            "POST",
            "/product/202309/images/upload",
            files={"data": (file_name, data, mime)},
            data={"use_case": "MAIN_IMAGE"},
            shop=False,
            resend=True,  # a second upload leaves an unused image at most, never a listing
        )

    async def create_product(self, body: Mapping[str, object]) -> Created:
        return await self._call(Created, "POST", "/product/202309/products", body=dict(body))

    async def edit_product(self, product_id: str, body: Mapping[str, object]) -> Created:
        """Edit Product: TikTok takes the whole product again and audits it afresh."""
        return await self._call(
            Created,
            "PUT",
            f"/product/202309/products/{product_id}",
            body=dict(body),
            resend=True,  # the same whole product again
        )

    async def deactivate_products(self, product_ids: Sequence[str]) -> Mutation:
        """Deactivate Products: hidden from buyers, kept to be activated again."""
        return await self._call(
            Mutation,
            "POST",
            "/product/202309/products/deactivate",
            body={"product_ids": list(product_ids)},
            resend=True,  # a deactivated product deactivated again stays deactivated
        )

    async def activate_products(self, product_ids: Sequence[str]) -> Mutation:
        """Activate Product: a product the seller deactivated is on sale again."""
        return await self._call(
            Mutation,
            "POST",
            "/product/202309/products/activate",
            body={"product_ids": list(product_ids)},
            resend=True,  # an active product activated again stays active, listed once
        )

    async def delete_products(self, product_ids: Sequence[str]) -> Mutation:
        """Delete Products (a second send finds them gone: ``product_not_found`` errors)."""
        return await self._call(
            Mutation,
            "DELETE",
            "/product/202309/products",
            body={"product_ids": list(product_ids)},
            resend=True,
        )

    async def update_price(self, product_id: str, skus: Sequence[Mapping[str, object]]) -> None:
        """Update Price: ``[{"id": <TikTok's SKU id>, "price": {"amount", "currency"}}]`` (a
        live product's SKUs only)."""
        # Its data is not read (the page gives it no field the engine needs).
        await self._request(
            "POST",
            f"/product/202309/products/{product_id}/prices/update",
            query=None,
            body={"skus": [dict(s) for s in skus]},
            files=None,
            data=None,
            shop=True,
            resend=True,  # the same prices again
        )

    async def get_product(self, product_id: str) -> ProductDetail:
        return await self._call(ProductDetail, "GET", f"/product/202309/products/{product_id}")

    async def search_products(
        self, *, seller_skus: Sequence[str] = (), page_token: str = "", page_size: int = SEARCH_PAGE
    ) -> SearchPage:
        query: dict[str, str | int] = {"page_size": page_size}
        if page_token:
            query["page_token"] = page_token
        body: dict[str, object] = {}
        if seller_skus:
            body["seller_skus"] = list(seller_skus)
        return await self._call(
            SearchPage,
            "POST",
            "/product/202502/products/search",
            query=query,
            body=body,
            resend=True,  # a read
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await aclose_budgets(self.budget)
        for thing in self._closing:
            await thing.aclose()
