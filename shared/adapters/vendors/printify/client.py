"""Async client for the Printify API v1, used by the printify and publisher stages.

It keeps the account inside Printify's documented limits (600 requests per minute, 200 publish
calls per 30 minutes) through two rate budgets (:mod:`shared.domain.budget`): in production one
budget per account shared by every process that calls it, in PostgreSQL; by default an in-process
one. A 429 stops the whole budget for its ``Retry-After`` (capped), and every failure is mapped onto
the POD Engine error classes (:mod:`shared.platform.errors`) with ``vendor="printify"``.

Product creation is not idempotent at Printify. When a create call ends in an unknown outcome
(timeout, dropped connection) the caller reconciles with
:meth:`PrintifyClient.find_product_by_marker` using the deterministic SKUs that
:func:`build_product_payload` writes.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from shared.adapters.vendors.answers import T, read_answer
from shared.adapters.vendors.printify.models import (
    Blueprint,
    CatalogVariant,
    Deleted,
    PrintProvider,
    Product,
    ProductPage,
    Shop,
    Upload,
    VariantPrice,
    Webhook,
)
from shared.adapters.vendors.printify.search import (
    PRODUCTS_PAGE_MAX,
    VENDOR,
    ProductSearch,
    horizon_of,
)
from shared.domain.budget import LocalRateBudget, RateBudget, aclose_budgets
from shared.platform.errors import (
    PodError,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.platform.http import JSON_HEADERS, async_client, json_content, json_of

logger = logging.getLogger("shared.adapters.vendors.printify")  # the package's, as before the split

MAX_429_RETRIES = 3
DEFAULT_PUBLISH_PARTS = {
    "title": True,
    "description": True,
    "images": True,
    "variants": True,
    "tags": True,
    "keyFeatures": True,
    "shipping_template": True,
}


def _retry_after(resp: httpx.Response) -> float | None:
    return parse_retry_after(resp.headers.get("retry-after"))


def parse(kind: type[T], body: object, what: str) -> T:
    """Printify's answer ``body`` to ``what`` as ``kind`` (:func:`~shared.adapters.vendors.answers.
    read_answer`)."""
    return read_answer(kind, body, vendor=VENDOR, what=what)


class PrintifyClient:
    """One Printify account. Give every client of the account the same shared budgets
    (:func:`shared.domain.budget.account_key` names them); without them each client allows the full
    rate on its own."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.printify.com",
        timeout_s: float = 30.0,
        requests_per_minute: int = 600,
        publishes_per_window: int = 200,
        publish_window_s: float = 1800.0,
        user_agent: str = "pod-engine",
        rate_window_s: float = 60.0,
        max_retry_wait_s: float = 120.0,
        requests_budget: RateBudget | None = None,
        publish_budget: RateBudget | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``rate_window_s`` is the window of ``requests_per_minute`` (60 s; tests shrink it).
        ``requests_budget`` / ``publish_budget`` replace the in-process limits built from those
        numbers. A 429's ``Retry-After`` is capped at ``max_retry_wait_s``: the budget is
        blocked that long, and past MAX_429_RETRIES the error is raised (retryable).
        ``transport`` replaces the network (tests: the simulator's app in process)."""
        if not api_key:
            raise ValueError("api_key is required")
        self._api_key = api_key
        self._max_retry_wait_s = max_retry_wait_s
        self._http = async_client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": user_agent,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )
        self._requests: RateBudget = requests_budget or LocalRateBudget(
            requests_per_minute, rate_window_s, purpose="Printify requests"
        )
        self._publishes: RateBudget = publish_budget or LocalRateBudget(
            publishes_per_window, publish_window_s, purpose="Printify publishes"
        )
        self._variants_cache: dict[tuple[int, int], list[CatalogVariant]] = {}

    # --- plumbing ------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        # Belt and braces: nothing we raise or log may carry the key, even if echoed back.
        return text.replace(self._api_key, "***")

    def _error_from_response(self, method: str, path: str, resp: httpx.Response) -> PodError:
        code: str | None = None
        message = resp.reason_phrase or "error"
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            if body.get("code") is not None:
                code = str(body["code"])
            message = str(body.get("message") or message)
            errors = body.get("errors")
            if isinstance(errors, dict) and errors.get("reason"):
                message = f"{message} {errors['reason']}"
            elif errors:
                message = f"{message} {errors}"
        cls = classify_http_status(resp.status_code)
        return cls(
            self._redact(f"{method} {path}: {message}"),
            vendor=VENDOR,
            status=resp.status_code,
            code=code,
            retry_after=_retry_after(resp),
        )

    async def _send(self, method: str, path: str, json: object | None) -> httpx.Response:
        started = time.monotonic()
        try:
            async with self._requests.slot():
                if json is None:
                    resp = await self._http.request(method, path)
                else:
                    content = json_content(json)
                    resp = await self._http.request(
                        method, path, content=content, headers=JSON_HEADERS
                    )
        except httpx.TimeoutException as exc:
            raise VendorTimeout(
                f"{method} {path}: timed out ({type(exc).__name__})", vendor=VENDOR
            ) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                self._redact(f"{method} {path}: {type(exc).__name__}: {exc}"), vendor=VENDOR
            ) from None
        logger.debug(
            "printify request method=%s path=%s status=%d elapsed_ms=%.0f",
            method,
            path,
            resp.status_code,
            (time.monotonic() - started) * 1000,
        )
        return resp

    async def _request(self, method: str, path: str, json: object | None = None) -> Any:
        """Send one call; wait out 429s (up to 3 retries), map every failure to PodError."""
        for attempt in range(MAX_429_RETRIES + 1):
            resp = await self._send(method, path, json)
            if resp.status_code < 400:
                return json_of(resp) if resp.content else {}
            error = self._error_from_response(method, path, resp)
            if resp.status_code != 429:
                raise error
            wait = min(
                error.retry_after if error.retry_after is not None else 1.0 + attempt,
                self._max_retry_wait_s,
            )
            logger.warning(
                "printify rate limited method=%s path=%s attempt=%d retry_after_s=%.1f",
                method,
                path,
                attempt + 1,
                wait,
            )
            # Every sender of the account waits, not only this one.
            await self._requests.block(wait)
            if attempt == MAX_429_RETRIES:
                error.retry_after = wait
                raise error
        raise AssertionError("unreachable")  # pragma: no cover

    # --- shops, uploads, catalog -------------------------------------------------------------

    async def list_shops(self) -> list[Shop]:
        """The shops of the account."""
        return parse(list[Shop], await self._request("GET", "/v1/shops.json"), "shops")

    async def upload_image(
        self, *, file_name: str, url: str | None = None, contents: bytes | None = None
    ) -> Upload:
        """Upload an image by public URL or raw bytes; returns Printify's upload object."""
        if (url is None) == (contents is None):
            raise ValueError("give exactly one of url or contents")
        body: dict[str, str] = {"file_name": file_name}
        if url is not None:
            body["url"] = url
        else:
            assert contents is not None
            body["contents"] = base64.b64encode(contents).decode("ascii")
        answer = await self._request("POST", "/v1/uploads/images.json", body)
        upload = parse(Upload, answer, "image upload")
        logger.info("printify image uploaded id=%s file_name=%s", upload.id, file_name)
        return upload

    async def list_blueprints(self) -> list[Blueprint]:
        """Every catalog blueprint."""
        answer = await self._request("GET", "/v1/catalog/blueprints.json")
        return parse(list[Blueprint], answer, "blueprints")

    async def list_print_providers(self, blueprint_id: int) -> list[PrintProvider]:
        """The print providers offering ``blueprint_id``."""
        path = f"/v1/catalog/blueprints/{int(blueprint_id)}/print_providers.json"
        return parse(list[PrintProvider], await self._request("GET", path), "print providers")

    async def list_variants(
        self, blueprint_id: int, print_provider_id: int
    ) -> list[CatalogVariant]:
        """Variants of a blueprint at one provider; cached for the life of the client."""
        key = (int(blueprint_id), int(print_provider_id))
        cached = self._variants_cache.get(key)
        if cached is not None:
            return cached
        path = f"/v1/catalog/blueprints/{key[0]}/print_providers/{key[1]}/variants.json"
        body = await self._request("GET", path)
        listed = body.get("variants", []) if isinstance(body, dict) else body
        variants = parse(list[CatalogVariant], listed, f"variants of blueprint {key[0]}")
        self._variants_cache[key] = variants
        return variants

    # --- products ----------------------------------------------------------------------------

    async def create_product(self, shop_id: str | int, product: Mapping[str, object]) -> Product:
        """Create a product (not idempotent: reconcile unknown outcomes by SKU)."""
        answer = await self._request("POST", f"/v1/shops/{shop_id}/products.json", product)
        created = parse(Product, answer, "created product")
        logger.info("printify product created shop_id=%s product_id=%s", shop_id, created.id)
        return created

    async def get_product(self, shop_id: str | int, product_id: str) -> Product:
        """One product."""
        answer = await self._request("GET", f"/v1/shops/{shop_id}/products/{product_id}.json")
        return parse(Product, answer, f"product {product_id}")

    async def update_product(
        self, shop_id: str | int, product_id: str, changes: Mapping[str, object]
    ) -> Product:
        """Change a product (only the fields in ``changes``); idempotent. Refused (8252) while
        the product is being published."""
        path = f"/v1/shops/{shop_id}/products/{product_id}.json"
        return parse(Product, await self._request("PUT", path, changes), f"product {product_id}")

    async def list_products(
        self, shop_id: str | int, *, page: int = 1, limit: int = PRODUCTS_PAGE_MAX
    ) -> ProductPage:
        """One page of products in Printify's pagination envelope (in Printify's order, which
        its documentation does not give)."""
        path = f"/v1/shops/{shop_id}/products.json?page={int(page)}&limit={int(limit)}"
        return parse(ProductPage, await self._request("GET", path), f"products page {page}")

    async def find_product_by_marker(
        self,
        shop_id: str | int,
        marker: str,
        *,
        image_id: str | None = None,
        blueprint_id: int | None = None,
        print_provider_id: int | None = None,
        since: datetime | None = None,
    ) -> Product | None:
        """The product a create call with an unknown outcome made, or None.

        It is the product with a variant whose SKU is ``<marker>-<variant id>``
        (:func:`build_product_payload`); when Printify did not keep the SKUs, the one that prints
        upload ``image_id`` on ``blueprint_id`` at ``print_provider_id`` (an upload is made once
        per image, so only this product's attempts print it there), unless its SKUs carry
        another marker. The shop is read page by page
        (:class:`~shared.adapters.vendors.printify.search. ProductSearch`); ``since`` (when the
        create was first tried) stops the walk at products older than that.
        """
        art = (
            (image_id, int(blueprint_id), int(print_provider_id))
            if image_id is not None and blueprint_id is not None and print_provider_id is not None
            else None
        )

        async def read_page(page: int) -> ProductPage:
            return await self.list_products(shop_id, page=page)

        return await ProductSearch(read_page, marker, art, horizon_of(since), shop_id).run()

    async def delete_product(self, shop_id: str | int, product_id: str) -> Deleted:
        """Delete a product (``DELETE .../products/{id}.json``). A product Printify no longer
        has (404) was deleted already, by an earlier attempt or by the seller: that is the
        outcome asked for, answered as ``already_gone`` rather than raised."""
        path = f"/v1/shops/{shop_id}/products/{product_id}.json"
        try:
            await self._request("DELETE", path)
        except PodError as exc:
            if exc.status != 404:
                raise
            logger.info(
                "printify product already gone shop_id=%s product_id=%s", shop_id, product_id
            )
            return Deleted(product_id=product_id, already_gone=True)
        logger.info("printify product deleted shop_id=%s product_id=%s", shop_id, product_id)
        return Deleted(product_id=product_id, already_gone=False)

    async def set_prices(
        self, shop_id: str | int, product_id: str, variants: list[VariantPrice]
    ) -> Product:
        """Price the product's variants again (``PUT .../products/{id}.json`` with
        ``variants``: every variant of the product, as Printify's reference asks, each with its
        price and whether it is sold). Refused (8252) while the product is being published."""
        body = {"variants": [v.as_json() for v in variants]}
        return await self.update_product(shop_id, product_id, body)

    # --- publishing --------------------------------------------------------------------------

    async def publish(
        self, shop_id: str | int, product_id: str, *, parts: dict[str, bool] | None = None
    ) -> None:
        """Ask Printify to publish the product to the shop's sales channel.

        ``parts`` chooses what is pushed (title, description, images, ...; all by default).
        Also waits for the publishing limit (200 per 30 minutes by default).
        """
        body = {**DEFAULT_PUBLISH_PARTS, **(parts or {})}
        async with self._publishes.slot():
            await self._request(
                "POST", f"/v1/shops/{shop_id}/products/{product_id}/publish.json", body
            )
        logger.info("printify publish requested shop_id=%s product_id=%s", shop_id, product_id)

    async def publishing_succeeded(
        self, shop_id: str | int, product_id: str, *, external_id: str, handle: str
    ) -> None:
        """Tell Printify the product is live on the channel (unlocks it, records the link)."""
        path = f"/v1/shops/{shop_id}/products/{product_id}/publishing_succeeded.json"
        await self._request("POST", path, {"external": {"id": external_id, "handle": handle}})

    async def unpublished(self, shop_id: str | int, product_id: str) -> bool:
        """Tell Printify the product was taken off the storefront (``POST .../unpublish.json``,
        "notify that a product has been unpublished": the custom-integration storefront's side;
        Printify unlinks the listing). False when Printify has no such product (404): there is
        nothing to unlink."""
        path = f"/v1/shops/{shop_id}/products/{product_id}/unpublish.json"
        try:
            await self._request("POST", path)
        except PodError as exc:
            if exc.status != 404:
                raise
            return False
        logger.info("printify product unpublished shop_id=%s product_id=%s", shop_id, product_id)
        return True

    async def publishing_failed(self, shop_id: str | int, product_id: str, *, reason: str) -> None:
        """Tell Printify publishing failed (unlocks the product)."""
        path = f"/v1/shops/{shop_id}/products/{product_id}/publishing_failed.json"
        await self._request("POST", path, {"reason": reason})

    # --- webhooks ----------------------------------------------------------------------------

    async def list_webhooks(self, shop_id: str | int) -> list[Webhook]:
        """The shop's webhooks (``id``, ``topic``, ``url``, ``shop_id``)."""
        found = await self._request("GET", f"/v1/shops/{shop_id}/webhooks.json")
        return parse(list[Webhook], found, "webhooks") if isinstance(found, list) else []

    async def create_webhook(
        self, shop_id: str | int, *, topic: str, url: str, secret: str | None = None
    ) -> Webhook:
        """Have Printify POST the shop's ``topic`` events to ``url``, signed with ``secret``."""
        body = {"topic": topic, "url": url}
        if secret:
            body["secret"] = secret
        answer = await self._request("POST", f"/v1/shops/{shop_id}/webhooks.json", body)
        return parse(Webhook, answer, "created webhook")

    async def delete_webhook(self, shop_id: str | int, webhook_id: str) -> None:
        """Stop a webhook."""
        await self._request("DELETE", f"/v1/shops/{shop_id}/webhooks/{webhook_id}.json")

    async def aclose(self) -> None:
        """Close the HTTP connection pool (and hand back the budgets' last grants)."""
        await self._http.aclose()
        await aclose_budgets(self._requests, self._publishes)

    async def __aenter__(self) -> PrintifyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
