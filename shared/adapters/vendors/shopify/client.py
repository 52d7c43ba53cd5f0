"""The client of Shopify's Admin GraphQL API: the query-cost bucket, the token (static or
renewed by the client credentials grant), failures mapped to the POD Engine error classes."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shared.adapters.credentials import (
    AccessToken,
    TokenSet,
    expires_in,
)
from shared.adapters.oauth import Redactor, TokenEndpoint
from shared.adapters.vendors.shopify.models import (
    VENDOR,
    Envelope,
    M,
    ThrottleStatus,
    parse,
)
from shared.adapters.vendors.shopify_contract import API_VERSION
from shared.platform.errors import (
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.platform.handback import permission
from shared.platform.http import async_client
from shared.platform.waits import for_permission

logger = logging.getLogger("shared.adapters.vendors.shopify")  # the package's, as before the split

MAX_THROTTLED = 5
# Shopify's API versions: a quarter's first month (or the development version).
API_VERSION_PATTERN = r"^(\d{4}-(01|04|07|10)|unstable)$"
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF_S = 0.25

TOKEN_PATH = "/admin/oauth/access_token"  # noqa: S105  # a URL path


@dataclass
class Throttle:
    """What Shopify last said about the shop's bucket, restored over time."""

    available: float = 0.0
    maximum: float = 0.0
    restore_rate: float = 0.0
    at: float = 0.0

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` points are available (0 when unknown or available)."""
        if self.restore_rate <= 0:
            return 0.0
        now_available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        return max(0.0, (cost - now_available) / self.restore_rate)

    def update(self, status: ThrottleStatus, now: float) -> None:
        self.available = status.currently_available
        self.maximum = status.maximum_available
        self.restore_rate = status.restore_rate
        self.at = now


class ClientCredentialsGrant:
    """Shopify's client credentials grant for a Dev Dashboard app installed on the store:
    ``POST https://{shop}/admin/oauth/access_token`` with ``grant_type=client_credentials``,
    ``client_id`` and ``client_secret`` (form-encoded); the answer is ``access_token``,
    ``scope`` and ``expires_in`` (86399). No refresh token: the same request makes the next
    token. A refusal of the credentials (400 ``invalid_client``: wrong secret, app uninstalled;
    Shopify also answers 401/403) is :class:`GrantRevoked`; the secret never leaves this object
    in any text (:mod:`shared.adapters.oauth`)."""

    def __init__(
        self,
        *,
        shop_domain: str,
        client_id: str,
        client_secret: str,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        self.client_id = client_id
        self._secret = client_secret
        self._endpoint = TokenEndpoint(
            (base_url or f"https://{shop_domain}").rstrip("/") + TOKEN_PATH,
            vendor=VENDOR,
            what="Shopify's token endpoint",
            revoked_hint="check SHOPIFY_CLIENT_ID / SHOPIFY_CLIENT_SECRET and that the app is "
            "installed on the store",
            redact=Redactor(client_secret),
            revoked_statuses=(401, 403),
            timeout_s=timeout_s,
            transport=transport,
        )
        # What the last grant gave (for the doctor and the logs; not secret).
        self.granted_scopes: list[str] = []

    async def __call__(self, current: TokenSet) -> TokenSet:
        answer = await self._endpoint.request(
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret,
            }
        )
        self.granted_scopes = [s for s in answer.scope.split(",") if s]
        logger.info(
            "shopify token granted client_id=%s expires_in_s=%d scopes=%s",
            self.client_id,
            answer.expires_in,
            answer.scope,
        )
        return TokenSet(answer.access_token, None, expires_in(answer.expires_in))

    async def aclose(self) -> None:
        await self._endpoint.aclose()


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


class ShopifyClient:
    """The Admin GraphQL API of one store."""

    def __init__(
        self,
        *,
        shop_domain: str,
        token: AccessToken,
        api_version: str = API_VERSION,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        grant: ClientCredentialsGrant | None = None,
    ) -> None:
        if not re.match(API_VERSION_PATTERN, api_version):
            raise ValueError(f"{api_version!r} is not a Shopify API version (YYYY-MM)")
        self._token = token
        self._grant = grant  # closed with the client
        self.shop_domain = shop_domain
        self.api_version = api_version
        self._path = f"/admin/api/{api_version}/graphql.json"
        self._http = async_client(
            base_url=(base_url or f"https://{shop_domain}").rstrip("/"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )
        self._redact = Redactor()
        self.throttle = Throttle()
        self._costs: dict[str, float] = {}  # operation -> requested cost last time
        self._lock = asyncio.Lock()
        # The version Shopify last said it served (X-Shopify-API-Version): another one than
        # asked means the asked one is no longer supported and Shopify fell forward.
        self.served_version: str | None = None

    async def query(
        self, model: type[M], operation: str, query: str, variables: Mapping[str, object]
    ) -> M:
        """:meth:`graphql`, its ``data`` read as ``model``."""
        return parse(model, await self.graphql(operation, query, variables), operation)

    async def graphql(self, operation: str, query: str, variables: Mapping[str, object]) -> Any:
        """Run one operation; its ``data`` (JSON: :meth:`query` reads it as a model). Waits for
        the bucket first; raises PodError on an HTTP error or GraphQL ``errors`` (THROTTLED is
        waited out, up to MAX_THROTTLED times)."""
        for attempt in range(MAX_THROTTLED + 1):
            # Waiting for the lock or the bucket is waiting for permission to send: a stopping
            # stage hands back a message that has sent nothing yet (shared.platform.handback).
            async with permission():
                await self._lock.acquire()
            try:
                wait = self.throttle.wait_for(self._costs.get(operation, 0), time.monotonic())
                if wait > 0:
                    logger.info(
                        "shopify waits for its bucket operation=%s wait_s=%.2f", operation, wait
                    )
                    bucket = (
                        f"Shopify's query-cost bucket ({self.throttle.maximum:g} points, "
                        f"{self.throttle.restore_rate:g} per second)"
                    )
                    async with for_permission("vendor_limit", bucket, time.time() + wait):
                        await asyncio.sleep(wait)
                answer = await self._post_again_on_5xx(operation, query, variables)
            finally:
                self._lock.release()
            body = parse(Envelope, answer, operation)
            cost = body.extensions.cost if body.extensions is not None else None
            if cost is not None and cost.throttle_status is not None:
                self.throttle.update(cost.throttle_status, time.monotonic())
            if cost is not None and cost.requested_query_cost is not None:
                self._costs[operation] = cost.requested_query_cost
            errors = body.errors
            if not errors:
                return body.data or {}
            codes = {e.extensions.code if e.extensions else None for e in errors}
            if "THROTTLED" in codes and attempt < MAX_THROTTLED:
                logger.warning("shopify throttled operation=%s attempt=%d", operation, attempt + 1)
                continue  # the bucket state just read makes the next wait long enough
            message = "; ".join(str(e.message) for e in errors)[:500]
            cls: type[PodError] = RateLimited if "THROTTLED" in codes else PermanentError
            retry = self.throttle.wait_for(self._costs.get(operation, 0), time.monotonic())
            raise cls(
                self._redact(f"{operation}: {message}"),
                vendor=VENDOR,
                code=",".join(sorted(c for c in codes if c)) or None,
                retry_after=retry if cls is RateLimited else None,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_again_on_5xx(
        self, operation: str, query: str, variables: Mapping[str, object]
    ) -> Any:
        """:meth:`_post`, sent again after a server error or a dropped connection (up to
        TRANSIENT_RETRIES times): every operation here is a read or an upsert by handle, so a
        second send never makes a second product."""
        for transient in range(TRANSIENT_RETRIES + 1):
            try:
                return await self._post(operation, query, variables)
            except RetryableError as exc:
                if isinstance(exc, RateLimited) or transient == TRANSIENT_RETRIES:
                    raise
                logger.info(
                    "shopify call failed, sending again operation=%s error=%s",
                    operation,
                    exc.describe()[:200],
                )
                await asyncio.sleep(TRANSIENT_BACKOFF_S * 2**transient)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, operation: str, query: str, variables: Mapping[str, object]) -> Any:
        """One call; a 401 renews the token (when it can be renewed) and sends it once more."""
        token = await self._token.get()
        resp = await self._send(operation, query, variables, token)
        if resp.status_code == 401:
            self._token.rejected(token)
            renewed = await self._token.get()
            if renewed != token:
                logger.info("shopify refused the token, sent again with a renewed one")
                resp = await self._send(operation, query, variables, renewed)
        self._note_version(resp)
        if resp.status_code >= 400:
            found = _json_or_none(resp)
            detail = found.get("errors") if isinstance(found, dict) else None
            raise classify_http_status(resp.status_code)(
                self._redact(f"{operation}: {detail or resp.reason_phrase}"),
                vendor=VENDOR,
                status=resp.status_code,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        try:
            return resp.json()
        except ValueError:
            raise RetryableError(f"{operation}: answer is not JSON", vendor=VENDOR) from None

    async def _send(
        self, operation: str, query: str, variables: Mapping[str, object], token: str
    ) -> httpx.Response:
        self._redact.remember(token)
        try:
            return await self._http.post(
                self._path,
                json={"query": query, "variables": variables, "operationName": operation},
                headers={"X-Shopify-Access-Token": token},
            )
        except httpx.TimeoutException as exc:
            raise VendorTimeout(
                f"{operation}: timed out ({type(exc).__name__})", vendor=VENDOR
            ) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                self._redact(f"{operation}: {type(exc).__name__}: {exc}"), vendor=VENDOR
            ) from None

    def _note_version(self, resp: httpx.Response) -> None:
        served = resp.headers.get("x-shopify-api-version")
        if not served or served == self.served_version:
            return
        self.served_version = served
        if served != self.api_version:
            logger.warning(
                "shopify no longer serves the API version asked for, it answered with "
                "another requested=%s served=%s: set SHOPIFY_API_VERSION to a supported one",
                self.api_version,
                served,
            )

    async def aclose(self) -> None:
        """Close the HTTP connection pools."""
        await self._http.aclose()
        if self._grant is not None:
            await self._grant.aclose()
