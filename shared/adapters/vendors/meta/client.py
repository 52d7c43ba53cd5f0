"""A client of Meta's Graph API for one Commerce catalog: the calls the channel and the doctor
make, each with the system user's token and ``appsecret_proof``, within the business's call
budget, reading ``X-Business-Use-Case-Usage`` on every answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from shared.adapters.oauth import Redactor
from shared.adapters.vendors.answers import read_answer
from shared.adapters.vendors.meta.models import (
    VENDOR,
    BatchAnswer,
    BatchStatus,
    BatchStatusPage,
    Catalog,
    GraphErrorAnswer,
    GraphErrorBody,
    Me,
    ProductItem,
    ProductPage,
    UsageEntry,
)
from shared.domain.budget import RateBudget
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
    VendorTimeout,
)
from shared.platform.http import async_client

logger = logging.getLogger("shared.adapters.vendors.meta")

# Graph's throttling codes: 4 (app), 17 (user), 32 (page), 613 (calls within a time), and the
# Business Use Case codes 80000-80014 (80009 catalog management, 80014 catalog batch).
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# Temporary service issues: "an unknown error" (1) and "service temporarily unavailable" (2).
TRANSIENT_CODES = frozenset({1, 2})
INVALID_TOKEN = 190
# Waited when Meta throttles without saying for how long (its estimate is in whole minutes).
DEFAULT_THROTTLE_WAIT_S = 60.0
PRODUCT_FIELDS = (
    "id,retailer_id,retailer_product_group_id,review_status,review_rejection_reasons,errors,url,"
    "visibility,price"
)
_USAGE = TypeAdapter(dict[str, list[UsageEntry]])


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """Meta's ``appsecret_proof``: HMAC-SHA256 of the access token keyed by the app secret, in
    hex (Graph API, "Securing Requests")."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class MetaClient:
    """The Graph API as one system user of one app (a fixed token: system-user tokens are not
    refreshed), every call paced by ``budget`` (the business's, shared through PostgreSQL when
    it is a :class:`~shared.domain.budget.SharedRateBudget`), which Meta's usage reports and
    throttling errors block for everyone."""

    def __init__(
        self,
        *,
        access_token: str,
        app_secret: str,
        budget: RateBudget,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v25.0",
        usage_block_pct: float = 95.0,
        throttle_wait_s: float = DEFAULT_THROTTLE_WAIT_S,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not access_token or not app_secret:
            raise ConfigError("META_ACCESS_TOKEN and META_APP_SECRET are required")
        self._token = access_token
        self._proof = appsecret_proof(access_token, app_secret)
        self._redact = Redactor(access_token, app_secret, self._proof)
        self.budget = budget
        self.version = api_version
        self.usage_block_pct = usage_block_pct
        self.throttle_wait_s = throttle_wait_s
        self._blocked_until = 0.0  # wall clock: the latest block this client made
        self._http = async_client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )

    # --- calls -----------------------------------------------------------------------------

    async def me(self) -> Me:
        return read_answer(Me, await self._call("GET", "me"), vendor=VENDOR, what="GET /me")

    async def catalog(self, catalog_id: str) -> Catalog:
        body = await self._call("GET", catalog_id, params={"fields": "id,name,business"})
        return read_answer(Catalog, body, vendor=VENDOR, what="GET /{catalog_id}")

    async def items_batch(self, catalog_id: str, requests: Sequence[Mapping[str, object]]) -> str:
        """Send ``requests`` (``{"method": ..., "data": {...}}``) as one batch of PRODUCT_ITEMs;
        the handle to check it by."""
        body = await self._call(
            "POST",
            f"{catalog_id}/items_batch",
            data={"item_type": "PRODUCT_ITEM", "requests": json.dumps(list(requests))},
        )
        answer = read_answer(BatchAnswer, body, vendor=VENDOR, what="POST items_batch")
        if not answer.handles:
            raise RetryableError("items_batch: Meta ingested nothing (no handle)", vendor=VENDOR)
        return answer.handles[0]

    async def batch_status(self, catalog_id: str, handle: str) -> BatchStatus:
        body = await self._call(
            "GET",
            f"{catalog_id}/check_batch_request_status",
            params={"handle": handle, "load_ids_of_invalid_requests": "true"},
        )
        page = read_answer(BatchStatusPage, body, vendor=VENDOR, what="check_batch_request_status")
        if not page.data:
            raise RetryableError("check_batch_request_status: no status yet", vendor=VENDOR)
        return page.data[0]

    async def products(self, catalog_id: str, retailer_ids: Sequence[str]) -> list[ProductItem]:
        """The catalog's items with these retailer ids."""
        rule = {"retailer_id": {"is_any": list(retailer_ids)}}
        body = await self._call(
            "GET",
            f"{catalog_id}/products",
            params={"filter": json.dumps(rule), "fields": PRODUCT_FIELDS, "limit": "500"},
        )
        return read_answer(ProductPage, body, vendor=VENDOR, what="GET products").data

    async def group_items(self, catalog_id: str, group: str) -> list[ProductItem]:
        """The catalog's items of the item group ``group`` (a product's variants)."""
        rule = {"retailer_product_group_id": {"eq": group}}
        body = await self._call(
            "GET",
            f"{catalog_id}/products",
            params={"filter": json.dumps(rule), "fields": PRODUCT_FIELDS, "limit": "500"},
        )
        return read_answer(ProductPage, body, vendor=VENDOR, what="GET products").data

    # --- plumbing --------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Any:
        url = f"/{self.version}/{path}"
        query = {**(params or {}), "appsecret_proof": self._proof}
        async with self.budget.slot():
            try:
                resp = await self._http.request(method, url, params=query, data=data)
            except httpx.TimeoutException as exc:
                raise VendorTimeout(
                    f"{method} {path}: timed out ({type(exc).__name__})", vendor=VENDOR
                ) from None
            except httpx.TransportError as exc:
                raise RetryableError(
                    self._redact(f"{method} {path}: {type(exc).__name__}: {exc}"), vendor=VENDOR
                ) from None
        regain_s = await self._observe(resp.headers)
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            body = None
        if resp.status_code < 400 and not (isinstance(body, dict) and "error" in body):
            if body is None:
                raise RetryableError(f"{method} {path}: not JSON", vendor=VENDOR)
            return body
        raise await self._error(method, path, resp.status_code, body, regain_s)

    async def _observe(self, headers: httpx.Headers) -> float | None:
        """Read the usage header; block every sender while a use case is (nearly) spent.
        Returns the wait Meta estimated, when it gave one."""
        raw = headers.get("x-business-use-case-usage")
        if not raw:
            return None
        try:
            usage = _USAGE.validate_json(raw)
        except ValidationError:
            logger.warning("meta usage header unreadable header=%s", raw[:200])
            return None
        wait: float | None = None
        for business, entries in usage.items():
            for entry in entries:
                regain = max(0.0, entry.estimated_time_to_regain_access) * 60
                if regain > 0 or entry.highest >= self.usage_block_pct:
                    wait = max(wait or 0.0, regain or self.throttle_wait_s)
                    logger.warning(
                        "meta usage high business=%s type=%s call_count=%s total_cputime=%s "
                        "total_time=%s regain_min=%s",
                        business,
                        entry.type,
                        entry.call_count,
                        entry.total_cputime,
                        entry.total_time,
                        entry.estimated_time_to_regain_access,
                    )
        if wait is not None:
            await self._block(wait)
        return wait

    async def _block(self, seconds: float) -> None:
        until = time.time() + seconds
        if until > self._blocked_until + 1:
            self._blocked_until = until
            await self.budget.block(seconds)

    async def _error(
        self, method: str, path: str, status: int, body: object, regain_s: float | None
    ) -> PodError:
        try:
            error = GraphErrorAnswer.model_validate(body).error
        except ValidationError:
            error = GraphErrorBody(message=f"HTTP {status}")
        code = error.code
        text = error.message or f"HTTP {status}"
        if error.error_subcode is not None:
            text += f" (subcode {error.error_subcode})"
        if error.fbtrace_id:
            text += f" [fbtrace_id {error.fbtrace_id}]"
        where = f"{method} {path}"
        tag = None if code is None else str(code)
        if code == INVALID_TOKEN:
            return PermanentError(
                self._redact(
                    f"{where}: Meta refused META_ACCESS_TOKEN (code 190: {text}). A system "
                    "user's token is not refreshed by the engine: generate a new one in Meta "
                    "Business Settings (System users > Generate new token, with "
                    "catalog_management for this catalog) and set META_ACCESS_TOKEN"
                ),
                vendor=VENDOR,
                status=status,
                code="190",
            )
        if code == 100 and "appsecret_proof" in error.message:
            return ConfigError(
                self._redact(
                    f"{where}: {text}: META_APP_SECRET is not the secret of the app the token "
                    "belongs to (App Dashboard > Settings > Basic > App secret)"
                ),
                vendor=VENDOR,
                status=status,
                code="100",
            )
        if code in THROTTLE_CODES:
            wait = regain_s or self.throttle_wait_s
            await self._block(wait)
            return RateLimited(
                self._redact(f"{where}: Meta throttled the call (code {code}: {text})"),
                vendor=VENDOR,
                status=status,
                code=tag,
                retry_after=wait,
            )
        cls = RetryableError if status >= 500 or code in TRANSIENT_CODES else PermanentError
        return cls(self._redact(f"{where}: {text}"), vendor=VENDOR, status=status, code=tag)

    async def aclose(self) -> None:
        await self._http.aclose()
