"""The client of Etsy's Open API v3: both credentials on every call, the throttle, failures
mapped to the POD Engine error classes with ``vendor="etsy"`` and no credential in them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from shared.adapters.credentials import (
    AccessToken,
    StaticToken,
)
from shared.adapters.oauth import Redactor
from shared.adapters.vendors.etsy.models import (
    VENDOR,
    EtsyListing,
    EtsyMe,
    EtsyShop,
    ListingImage,
    ListingInventory,
    ListingsPage,
    Ping,
    ProcessingProfile,
    ProcessingProfiles,
    ReturnPolicy,
    ShippingProfile,
    TaxonomyNode,
    parse,
)
from shared.adapters.vendors.etsy.throttle import EtsyThrottle, header_int
from shared.adapters.vendors.images import image_type
from shared.domain.budget import RateBudget, aclose_budgets
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.platform.http import async_client

logger = logging.getLogger("shared.adapters.vendors.etsy")  # the package's, as before the split

MAX_429_RETRIES = 3
# Server errors and dropped connections on calls that are safe to send again (not POST).
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF_S = 0.25


class _TryAgain(Exception):
    """A 429 was waited out: send the call again."""


# The OAuth scopes the engine's Etsy calls need, and which calls need each: each operation's
# `security` in Etsy's OAS 3.0.0 (simulators/contracts/etsy/openapi-subset.json; a test holds
# this to it). The seller grants them when authorising the app.
ENGINE_SCOPES: dict[str, tuple[str, ...]] = {
    "listings_r": ("getListingsByShop",),
    "listings_w": (
        "createDraftListing",
        "updateListing",
        "updateListingInventory",
        "uploadListingImage",
    ),
    "listings_d": ("deleteListing",),
    "shops_r": ("getShopReadinessStateDefinitions",),
}

# --------------------------------------------------------------------------------------------
# Client


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)  # Etsy's lists: comma-separated
    return str(value)


def _form(fields: Mapping[str, object]) -> dict[str, str]:
    return {k: _form_value(v) for k, v in fields.items() if v is not None}


def api_key_header(api_key: str, shared_secret: str | None) -> str:
    """The ``x-api-key`` Etsy takes: ``keystring:shared_secret`` (required since February
    2026; a bare keystring is refused with 403). ConfigError naming ETSY_SHARED_SECRET when
    there is no secret to send."""
    keystring, sep, secret = api_key.strip().partition(":")
    if not keystring:
        raise ConfigError("ETSY_API_KEY: empty (the app's keystring, from Your Apps on Etsy)")
    if sep and secret:
        return f"{keystring}:{secret}"  # given whole, as Etsy shows it
    if not shared_secret:
        raise ConfigError(
            "ETSY_SHARED_SECRET: required: Etsy refuses every call whose x-api-key is the bare "
            "keystring (403, since February 2026); copy the app's shared secret from "
            "https://www.etsy.com/developers/your-apps (or set ETSY_API_KEY to "
            "keystring:shared_secret)"
        )
    return f"{keystring}:{shared_secret}"


class EtsyClient:
    """One Etsy app acting for one shop owner (an OAuth token)."""

    def __init__(
        self,
        *,
        api_key: str,
        access_token: str | None = None,
        token: AccessToken | None = None,
        shared_secret: str | None = None,
        base_url: str = "https://openapi.etsy.com",
        timeout_s: float = 30.0,
        max_retry_wait_s: float = 5.0,
        day_wait_s: float = 3600.0,
        user_agent: str = "pod-engine",
        budget: RateBudget | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        closing: Sequence[Any] = (),
    ) -> None:
        """``api_key`` is the app's keystring (``keystring:secret`` is accepted as it is);
        ``shared_secret`` its shared secret, sent with it as Etsy requires (ConfigError
        without one). The shop owner's OAuth token: ``token`` (renewed by it, e.g. a
        :class:`~shared.adapters.credentials.ManagedToken`), or a fixed ``access_token``. A 401
        tells ``token`` its token was refused and the call is sent once more with the renewed one.
        A 429 waiting longer than ``max_retry_wait_s`` is raised instead of waited out;
        ``day_wait_s`` is how long calls stop once Etsy reports the day's budget spent.
        ``budget``: the app's per-second budget shared with its other clients (each call takes
        a slot first). ``transport`` replaces the network (tests: the simulator's app in
        process). ``closing``: what to close with the client (the token's grant)."""
        if not api_key or (token is None and not access_token):
            raise ValueError("api_key and an access token are required")
        key = api_key_header(api_key, shared_secret)
        self._token: AccessToken = token if token is not None else StaticToken(access_token or "")
        self._redact = Redactor(key, api_key, shared_secret, access_token)
        self._closing = list(closing)
        self._max_retry_wait_s = max_retry_wait_s
        self.throttle = EtsyThrottle(day_wait_s=day_wait_s)
        self.budget = budget
        self._http = async_client(
            base_url=base_url.rstrip("/"),
            headers={
                "x-api-key": key,
                "User-Agent": user_agent,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )

    # --- plumbing ------------------------------------------------------------------------------

    def _error(self, method: str, path: str, resp: httpx.Response) -> PodError:
        message = resp.reason_phrase or "error"
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error"):
            message = str(body["error"])
            if body.get("error_description"):
                message = f"{message}: {body['error_description']}"
        cls = classify_http_status(resp.status_code)
        return cls(
            self._redact(f"{method} {path}: {message}"),
            vendor=VENDOR,
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        data: Mapping[str, str] | None = None,
        json: object | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        repeatable: bool | None = None,
        authorized: bool = True,
    ) -> Any:
        """Send one call within the budgets; wait out short 429s; map failures to PodError.
        ``authorized``: with the shop owner's token (else the app's key alone).

        A ``repeatable`` call (by default every method but POST: one that cannot make a second
        listing or image) is sent again after a server error or a dropped connection, up to
        TRANSIENT_RETRIES times: a publication is a chain of a dozen calls, and one 5xx should
        not start the whole chain over."""
        if repeatable is None:
            repeatable = method != "POST"
        transient = 0
        renewed = False
        for attempt in range(MAX_429_RETRIES + TRANSIENT_RETRIES + 2):
            # Asked outside the budgets: a token being renewed (or a grant waiting for the
            # seller) holds no request slot.
            token = await self._token.get() if authorized else None
            if token is not None:
                self._redact.remember(token)
            try:
                return await self._send(method, path, attempt, params, data, json, files, token)
            except _TryAgain:
                continue
            except PermanentError as exc:
                # Etsy refused the token (expired, revoked): renewed, the call is sent once
                # more (a 401 changed nothing, so even a POST may go again).
                if exc.status != 401 or renewed or token is None:
                    raise
                renewed = True
                self._token.rejected(token)
                if await self._token.get() == token:
                    raise  # a fixed token: nothing to renew it with
                logger.info(
                    "etsy refused the access token, sending again with a renewed one "
                    "method=%s path=%s",
                    method,
                    path,
                )
                continue
            except RetryableError as exc:
                if not repeatable or exc.status == 429 or transient >= TRANSIENT_RETRIES:
                    raise
                transient += 1
                logger.info(
                    "etsy call failed, sending again method=%s path=%s try=%d error=%s",
                    method,
                    path,
                    transient,
                    exc.describe()[:200],
                )
                await asyncio.sleep(TRANSIENT_BACKOFF_S * 2 ** (transient - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        attempt: int,
        params: Mapping[str, str | int] | None,
        data: Mapping[str, str] | None,
        json: object | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        token: str | None,
    ) -> Any:
        """One send with ``token`` (within the app's shared budget, when there is one); raises
        _TryAgain after a 429 it waited out."""
        async with self.budget.slot() if self.budget is not None else contextlib.nullcontext():
            await self.throttle.acquire()
            started = time.monotonic()
            try:
                resp = await self._http.request(
                    method,
                    path,
                    params=params,
                    data=data,
                    json=json,
                    files=files,
                    headers={"Authorization": f"Bearer {token}"} if token else None,
                )
            except httpx.TimeoutException as exc:
                self.throttle.abandon()
                raise VendorTimeout(
                    f"{method} {path}: timed out ({type(exc).__name__})", vendor=VENDOR
                ) from None
            except httpx.TransportError as exc:
                self.throttle.abandon()
                raise RetryableError(
                    self._redact(f"{method} {path}: {type(exc).__name__}: {exc}"), vendor=VENDOR
                ) from None
            self.throttle.observe(resp.headers)
            reported = self.throttle.limit
            if self.budget is not None and reported is not None and reported < self.budget.limit:
                # The app's real limit is lower than configured: the shared budget keeps to it.
                logger.warning(
                    "etsy reports a lower limit than configured limit_per_second=%d configured=%d",
                    reported,
                    self.budget.limit,
                )
                self.budget.limit = reported
            logger.debug(
                "etsy request method=%s path=%s status=%d elapsed_ms=%.0f remaining_second=%s "
                "remaining_today=%s",
                method,
                path,
                resp.status_code,
                (time.monotonic() - started) * 1000,
                resp.headers.get("x-remaining-this-second"),
                resp.headers.get("x-remaining-today"),
            )
            if resp.status_code < 400:
                return resp.json() if resp.content else {}
            error = self._error(method, path, resp)
            if resp.status_code != 429:
                raise error
            wait = error.retry_after if error.retry_after is not None else 1.0 + attempt
            error.retry_after = wait
            if header_int(resp.headers, "x-remaining-today") == 0 or wait > 60:
                self.throttle.block_day(wait)  # the day's limit: nobody sends until then
                raise error
            # Every caller of this client waits, not only this one.
            self.throttle.pause(wait, f"Etsy's rate limit (429: Retry-After {wait:.0f}s)")
            if self.budget is not None:
                await self.budget.block(wait)  # and every other client of the app
            logger.warning(
                "etsy rate limited method=%s path=%s attempt=%d retry_after_s=%.1f",
                method,
                path,
                attempt + 1,
                wait,
            )
            if wait > self._max_retry_wait_s or attempt >= MAX_429_RETRIES:
                raise error
            raise _TryAgain

    # --- listings ------------------------------------------------------------------------------

    async def create_draft_listing(self, shop_id: int, fields: Mapping[str, object]) -> EtsyListing:
        """createDraftListing: a draft listing from form fields (lists comma-separated)."""
        answer = await self._request(
            "POST", f"/v3/application/shops/{int(shop_id)}/listings", data=_form(fields)
        )
        created = parse(EtsyListing, answer, "createDraftListing")
        logger.info("etsy listing created shop_id=%s listing_id=%s", shop_id, created.listing_id)
        return created

    async def get_readiness_state_definitions(self, shop_id: int) -> list[ProcessingProfile]:
        """getShopReadinessStateDefinitions: the shop's processing profiles (first 100)."""
        page = await self._request(
            "GET",
            f"/v3/application/shops/{int(shop_id)}/readiness-state-definitions",
            params={"limit": 100},
        )
        return parse(ProcessingProfiles, page, "getShopReadinessStateDefinitions").results or []

    # --- what the preflight reads ------------------------------------------------------------

    async def ping(self) -> int:
        """ping (the app's key alone): the application id."""
        pong = await self._request("GET", "/v3/application/openapi-ping", authorized=False)
        return parse(Ping, pong, "ping").application_id or 0

    async def get_me(self) -> EtsyMe:
        """getMe: the token's user and their shop."""
        me: EtsyMe = parse(EtsyMe, await self._request("GET", "/v3/application/users/me"), "getMe")
        return me

    async def get_shop(self, shop_id: int) -> EtsyShop:
        answer = await self._request("GET", f"/v3/application/shops/{int(shop_id)}")
        shop: EtsyShop = parse(EtsyShop, answer, "getShop")
        return shop

    async def get_shipping_profiles(self, shop_id: int) -> list[ShippingProfile]:
        page = await self._request("GET", f"/v3/application/shops/{int(shop_id)}/shipping-profiles")
        results = page.get("results") if isinstance(page, dict) else None
        return [parse(ShippingProfile, p, "getShopShippingProfiles") for p in results or []]

    async def get_shipping_profile(self, shop_id: int, profile_id: int) -> ShippingProfile:
        answer = await self._request(
            "GET", f"/v3/application/shops/{int(shop_id)}/shipping-profiles/{int(profile_id)}"
        )
        profile: ShippingProfile = parse(ShippingProfile, answer, "getShopShippingProfile")
        return profile

    async def get_processing_profiles(self, shop_id: int) -> list[ProcessingProfile]:
        return await self.get_readiness_state_definitions(shop_id)

    async def get_return_policies(self, shop_id: int) -> list[ReturnPolicy]:
        page = await self._request("GET", f"/v3/application/shops/{int(shop_id)}/policies/return")
        results = page.get("results") if isinstance(page, dict) else None
        return [parse(ReturnPolicy, p, "getShopReturnPolicies") for p in results or []]

    async def get_seller_taxonomy(self) -> list[TaxonomyNode]:
        """getSellerTaxonomyNodes: the seller taxonomy's trees."""
        page = await self._request("GET", "/v3/application/seller-taxonomy/nodes")
        results = page.get("results") if isinstance(page, dict) else None
        return [parse(TaxonomyNode, n, "getSellerTaxonomyNodes") for n in results or []]

    async def token_scopes(self) -> list[str] | None:
        """tokenScopes: the scopes of the token this client sends, or None when Etsy's answer
        does not say them in a form known here (its document leaves the answer's shape open)."""
        token = await self._token.get()
        answer = await self._request(
            "POST", "/v3/application/scopes", data={"token": token}, authorized=False
        )
        found = answer.get("scopes") if isinstance(answer, dict) else answer
        if isinstance(found, str):
            found = found.replace(",", " ").split()
        if isinstance(found, list) and all(isinstance(x, str) for x in found):
            return sorted(found)
        return None

    async def get_listings_by_shop(
        self,
        shop_id: int,
        *,
        state: str = "active",
        limit: int = 25,
        offset: int = 0,
        includes: Sequence[str] = (),
    ) -> ListingsPage:
        """getListingsByShop: one page (``{"count": <all matching>, "results": [...]}``)."""
        params: dict[str, str | int] = {"state": state, "limit": limit, "offset": offset}
        if includes:
            params["includes"] = ",".join(includes)
        page = await self._request(
            "GET", f"/v3/application/shops/{int(shop_id)}/listings", params=params
        )
        return parse(ListingsPage, page, "getListingsByShop")

    async def get_listing(self, listing_id: int, *, includes: Sequence[str] = ()) -> EtsyListing:
        """getListing (``includes``: e.g. ``Images``, ``Inventory``)."""
        params: dict[str, str | int] = {"includes": ",".join(includes)} if includes else {}
        listing = await self._request(
            "GET", f"/v3/application/listings/{int(listing_id)}", params=params
        )
        return parse(EtsyListing, listing, "getListing")

    async def update_listing(
        self, shop_id: int, listing_id: int, fields: Mapping[str, object]
    ) -> EtsyListing:
        """updateListing (PATCH, form fields): e.g. ``{"state": "active"}`` publishes."""
        listing = await self._request(
            "PATCH",
            f"/v3/application/shops/{int(shop_id)}/listings/{int(listing_id)}",
            data=_form(fields),
        )
        return parse(EtsyListing, listing, "updateListing")

    async def delete_listing(self, listing_id: int) -> bool:
        """deleteListing: True when Etsy deleted it, False when it was not there (404: deleted
        already, by an earlier send whose answer was lost or by the seller)."""
        try:
            await self._request("DELETE", f"/v3/application/listings/{int(listing_id)}")
        except PermanentError as exc:
            if exc.status != 404:
                raise
            return False
        logger.info("etsy listing deleted listing_id=%s", listing_id)
        return True

    async def update_listing_inventory(
        self, listing_id: int, inventory: Mapping[str, object]
    ) -> ListingInventory:
        """updateListingInventory (PUT, JSON): replaces the listing's products."""
        stored = await self._request(
            "PUT", f"/v3/application/listings/{int(listing_id)}/inventory", json=dict(inventory)
        )
        return parse(ListingInventory, stored, "updateListingInventory")

    async def upload_listing_image(
        self,
        shop_id: int,
        listing_id: int,
        image: bytes,
        *,
        rank: int,
        file_name: str | None = None,
        overwrite: bool = False,
        alt_text: str | None = None,
    ) -> ListingImage:
        """uploadListingImage (multipart ``image`` file): the image at ``rank`` (1 = first);
        ``overwrite`` replaces the one already there."""
        ext, mime = image_type(image)
        fields = _form({"rank": rank, "overwrite": overwrite, "alt_text": alt_text})
        uploaded = await self._request(
            "POST",
            f"/v3/application/shops/{int(shop_id)}/listings/{int(listing_id)}/images",
            data=fields,
            files={"image": (file_name or f"image-{rank}.{ext}", image, mime)},
            # Overwriting its rank, a second send replaces the image instead of adding one.
            repeatable=overwrite,
        )
        return parse(ListingImage, uploaded, "uploadListingImage")

    async def aclose(self) -> None:
        """Close the HTTP connection pool (and hand back the budget's last grants)."""
        await self._http.aclose()
        for item in self._closing:
            await item.aclose()
        await aclose_budgets(self.budget)

    async def __aenter__(self) -> EtsyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
