"""Async client for the Printify API v1, used by the printify and publisher stages.

It keeps the account inside Printify's documented limits (600 requests per minute, 200 publish
calls per 30 minutes) through two rate budgets (:mod:`shared.budget`): in production one budget
per account shared by every process that calls it, in PostgreSQL; by default an in-process one.
A 429 stops the whole budget for its ``Retry-After`` (capped), and every failure is mapped onto
the POD Engine error classes (:mod:`shared.errors`) with ``vendor="printify"``.

Product creation is not idempotent at Printify. When a create call ends in an unknown outcome
(timeout, dropped connection) the caller reconciles with
:meth:`PrintifyClient.find_product_by_marker` using the deterministic SKUs that
:func:`build_product_payload` writes.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
from psycopg_pool import AsyncConnectionPool
from pydantic import Field, SecretStr

from shared.budget import (
    LocalRateBudget,
    RateBudget,
    SharedRateBudget,
    account_key,
    aclose_budgets,
)
from shared.errors import (
    ConfigError,
    PodError,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.events import as_utc
from shared.http import JSON_HEADERS, async_client, json_content, json_of
from shared.printsize import Placement, PrintArea, place
from shared.settings import PodSettings

logger = logging.getLogger(__name__)

VENDOR = "printify"
MAX_429_RETRIES = 3
# ``limit`` of GET .../products.json: at most 50 since 2024-10-03 (the reference's History).
PRODUCTS_PAGE_MAX = 50
# A walk over a shop's products that has read this many pages without settling gives up.
MAX_SCAN_PAGES = 2000
DEFAULT_PUBLISH_PARTS = {
    "title": True,
    "description": True,
    "images": True,
    "variants": True,
    "tags": True,
    "keyFeatures": True,
    "shipping_template": True,
}


@dataclass(frozen=True)
class AreaPlan:
    """Variants that share their placeholders' sizes, and the art's placement on each."""

    variant_ids: tuple[int, ...]
    placements: tuple[tuple[str, Placement], ...]  # (position, placement)

    @property
    def min_dpi(self) -> float:
        """The lowest resolution the art prints at on these variants."""
        return min(p.dpi for _, p in self.placements)


# Centred at the area's full width: the placement when the placeholders are not known.
FULL_WIDTH = Placement(scale=1.0, dpi=0.0)


def plan_print_areas(
    variants: Sequence[dict[str, Any]],
    positions: Sequence[str],
    art_width: int,
    art_height: int,
) -> list[AreaPlan]:
    """Place the art on each of ``positions`` of each variant, from the catalog's placeholders
    (``variants.json``): centred, as large as it fits inside. Variants whose placeholders have
    the same sizes share one print area. A position a variant lacks is left out for it; a
    variant with none of the positions is an error (ValueError)."""
    groups: dict[tuple[tuple[str, int, int], ...], list[int]] = {}
    for v in variants:
        sizes = {
            str(ph.get("position")): (int(ph.get("width") or 0), int(ph.get("height") or 0))
            for ph in v.get("placeholders") or []
            if isinstance(ph, dict)
        }
        key = tuple((pos, *sizes[pos]) for pos in positions if min(sizes.get(pos, (0, 0))) > 0)
        if not key:
            raise ValueError(f"variant {v.get('id')} has no print area at {list(positions)}")
        groups.setdefault(key, []).append(int(v["id"]))
    return [
        AreaPlan(
            tuple(ids),
            tuple(
                (pos, place(art_width, art_height, PrintArea(width=w, height=h)))
                for pos, w, h in key
            ),
        )
        for key, ids in groups.items()
    ]


class ShopLister(Protocol):
    """What :func:`choose_shop` needs of a client."""

    async def list_shops(self) -> list[dict[str, Any]]: ...


async def choose_shop(client: ShopLister, configured: str | None) -> dict[str, Any]:
    """The shop products go to: ``configured`` (PRINTIFY_SHOP_ID), or the account's only shop.

    Raises :class:`~shared.errors.ConfigError` listing the account's shops when the configured
    one is not among them, or when there are several and none is configured (the first one
    could be the Etsy shop when the seller meant the custom one)."""
    configured = (configured or "").strip() or None  # compose passes an unset one as ""
    shops = await client.list_shops()
    listing = "; ".join(
        f"{s.get('id')} ({s.get('title')}, {s.get('sales_channel')})" for s in shops
    )
    if configured is not None:
        found = next((s for s in shops if str(s.get("id")) == str(configured)), None)
        if found is None:
            raise ConfigError(
                f"PRINTIFY_SHOP_ID: {configured} is not a shop of this account; "
                f"its shops: {listing or 'none'}"
            )
        return found
    if not shops:
        raise ConfigError("PRINTIFY_API_KEY: the account has no shop; connect one in Printify")
    if len(shops) > 1:
        raise ConfigError(
            f"PRINTIFY_SHOP_ID: the account has {len(shops)} shops, set the one to use: {listing}"
        )
    return shops[0]


def build_product_payload(
    *,
    title: str,
    description: str,
    tags: Sequence[str],
    blueprint_id: int,
    print_provider_id: int,
    variants: list[dict[str, Any]],
    price_cents: int,
    image_id: str,
    positions: tuple[str, ...] = ("front",),
    sku_prefix: str,
    areas: Sequence[AreaPlan] | None = None,
) -> dict[str, Any]:
    """Build a valid create-product body: every given variant enabled at ``price_cents``.

    Each variant gets the SKU ``f"{sku_prefix}-{variant_id}"`` so a product whose creation had
    an unknown outcome can be found again. The image goes where ``areas``
    (:func:`plan_print_areas`) places it; without them, centred at full width on every position.
    Raises ValueError on a non-integer price (Printify wants cents) or empty inputs.
    """
    if not isinstance(price_cents, int) or isinstance(price_cents, bool):
        raise ValueError(f"price_cents must be an int (cents), got {price_cents!r}")
    if price_cents <= 0:
        raise ValueError(f"price_cents must be positive, got {price_cents}")
    if not variants:
        raise ValueError("variants must not be empty")
    if not positions:
        raise ValueError("positions must not be empty")
    if not sku_prefix:
        raise ValueError("sku_prefix must not be empty")
    variant_ids = [int(v["id"]) for v in variants]
    if areas is None:
        areas = [AreaPlan(tuple(variant_ids), tuple((p, FULL_WIDTH) for p in positions))]
    return {
        "title": title,
        "description": description,
        "tags": list(tags),
        "blueprint_id": blueprint_id,
        "print_provider_id": print_provider_id,
        "variants": [
            {"id": vid, "price": price_cents, "is_enabled": True, "sku": f"{sku_prefix}-{vid}"}
            for vid in variant_ids
        ],
        "print_areas": [
            {
                "variant_ids": list(area.variant_ids),
                "placeholders": [
                    {
                        "position": position,
                        "images": [
                            {"id": image_id, "x": at.x, "y": at.y, "scale": at.scale, "angle": 0}
                        ],
                    }
                    for position, at in area.placements
                ],
            }
            for area in areas
        ],
    }


_CLOCK_SKEW = timedelta(minutes=10)


def _created_at(product: dict[str, Any]) -> datetime | None:
    """A product's ``created_at`` ("2019-07-25 13:40:41+00:00"), None when absent or odd."""
    try:
        return as_utc(datetime.fromisoformat(str(product.get("created_at") or "")))
    except ValueError:
        return None


def _page_data(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    data = envelope.get("data")
    return [p for p in data if isinstance(p, dict)] if isinstance(data, list) else []


def _listing_order(products: list[dict[str, Any]]) -> str | None:
    """``newest_first`` or ``oldest_first`` from the first and last products' ``created_at``;
    None when they do not tell (one product, equal or missing times)."""
    if len(products) < 2:
        return None
    first, last = _created_at(products[0]), _created_at(products[-1])
    if first is None or last is None or first == last:
        return None
    return "newest_first" if first > last else "oldest_first"


def _marker_skus(product: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (str(v.get("sku") or ""), int(v["id"]))
        for v in product.get("variants") or []
        if isinstance(v, dict) and isinstance(v.get("id"), int)
    ]


def _carries_marker(product: dict[str, Any], marker: str) -> bool:
    """Whether a variant's SKU is ``<marker>-<its id>`` (the SKUs build_product_payload
    writes; Printify may list the blueprint's other variants too, with SKUs of its own)."""
    return any(sku == f"{marker}-{vid}" for sku, vid in _marker_skus(product))


def _marked(product: dict[str, Any]) -> bool:
    """Whether the product's SKUs carry some marker (``<marker>-<variant id>``)."""
    return any(sku.endswith(f"-{vid}") for sku, vid in _marker_skus(product))


def _prints(product: dict[str, Any], image_id: str, blueprint_id: int, provider_id: int) -> bool:
    """Whether ``product`` is of ``blueprint_id`` at ``provider_id`` and prints ``image_id``."""
    if product.get("blueprint_id") != blueprint_id:
        return False
    if product.get("print_provider_id") != provider_id:
        return False
    return any(
        isinstance(image, dict) and image.get("id") == image_id
        for area in product.get("print_areas") or []
        if isinstance(area, dict)
        for placeholder in area.get("placeholders") or []
        if isinstance(placeholder, dict)
        for image in placeholder.get("images") or []
    )


def _retry_after(resp: httpx.Response) -> float | None:
    return parse_retry_after(resp.headers.get("retry-after"))


class PrintifyClient:
    """One Printify account. Give every client of the account the same shared budgets
    (:func:`shared.budget.account_key` names them); without them each client allows the full
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
        self._variants_cache: dict[tuple[int, int], list[dict[str, Any]]] = {}

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

    async def list_shops(self) -> list[dict[str, Any]]:
        """The shops of the account."""
        return list(await self._request("GET", "/v1/shops.json"))

    async def upload_image(
        self, *, file_name: str, url: str | None = None, contents: bytes | None = None
    ) -> dict[str, Any]:
        """Upload an image by public URL or raw bytes; returns Printify's upload object."""
        if (url is None) == (contents is None):
            raise ValueError("give exactly one of url or contents")
        body: dict[str, str] = {"file_name": file_name}
        if url is not None:
            body["url"] = url
        else:
            assert contents is not None
            body["contents"] = base64.b64encode(contents).decode("ascii")
        upload: dict[str, Any] = await self._request("POST", "/v1/uploads/images.json", body)
        logger.info("printify image uploaded id=%s file_name=%s", upload.get("id"), file_name)
        return upload

    async def list_blueprints(self) -> list[dict[str, Any]]:
        """Every catalog blueprint."""
        return list(await self._request("GET", "/v1/catalog/blueprints.json"))

    async def list_print_providers(self, blueprint_id: int) -> list[dict[str, Any]]:
        """The print providers offering ``blueprint_id``."""
        path = f"/v1/catalog/blueprints/{int(blueprint_id)}/print_providers.json"
        return list(await self._request("GET", path))

    async def list_variants(
        self, blueprint_id: int, print_provider_id: int
    ) -> list[dict[str, Any]]:
        """Variants of a blueprint at one provider; cached for the life of the client."""
        key = (int(blueprint_id), int(print_provider_id))
        cached = self._variants_cache.get(key)
        if cached is not None:
            return cached
        path = f"/v1/catalog/blueprints/{key[0]}/print_providers/{key[1]}/variants.json"
        body = await self._request("GET", path)
        variants = list(body.get("variants", [])) if isinstance(body, dict) else list(body)
        self._variants_cache[key] = variants
        return variants

    # --- products ----------------------------------------------------------------------------

    async def create_product(self, shop_id: str | int, product: dict[str, Any]) -> dict[str, Any]:
        """Create a product (not idempotent: reconcile unknown outcomes by SKU)."""
        created: dict[str, Any] = await self._request(
            "POST", f"/v1/shops/{shop_id}/products.json", product
        )
        logger.info("printify product created shop_id=%s product_id=%s", shop_id, created.get("id"))
        return created

    async def get_product(self, shop_id: str | int, product_id: str) -> dict[str, Any]:
        """One product."""
        product: dict[str, Any] = await self._request(
            "GET", f"/v1/shops/{shop_id}/products/{product_id}.json"
        )
        return product

    async def update_product(
        self, shop_id: str | int, product_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """Change a product (only the fields in ``changes``); idempotent. Refused (8252) while
        the product is being published."""
        product: dict[str, Any] = await self._request(
            "PUT", f"/v1/shops/{shop_id}/products/{product_id}.json", changes
        )
        return product

    async def list_products(
        self, shop_id: str | int, *, page: int = 1, limit: int = PRODUCTS_PAGE_MAX
    ) -> dict[str, Any]:
        """One page of products in Printify's pagination envelope (in Printify's order, which
        its documentation does not give)."""
        envelope: dict[str, Any] = await self._request(
            "GET", f"/v1/shops/{shop_id}/products.json?page={int(page)}&limit={int(limit)}"
        )
        return envelope

    async def find_product_by_marker(
        self,
        shop_id: str | int,
        marker: str,
        *,
        image_id: str | None = None,
        blueprint_id: int | None = None,
        print_provider_id: int | None = None,
        since: datetime | None = None,
    ) -> dict[str, Any] | None:
        """The product a create call with an unknown outcome made, or None.

        It is the product with a variant whose SKU is ``<marker>-<variant id>``
        (:func:`build_product_payload`); when Printify did not keep the SKUs, the one that prints
        upload ``image_id`` on ``blueprint_id`` at ``print_provider_id`` (an upload is made once
        per image, so only this product's attempts print it there), unless its SKUs carry
        another marker. Printify cannot search by either, so the shop's products are read page
        by page, in whichever order Printify lists them (found from the products' ``created_at``;
        unknown, every page is read), each page's envelope re-read so that products made or
        deleted meanwhile cannot hide the one looked for. ``since`` (when the create was first
        tried) stops the walk at products older than that.
        """
        horizon = since - _CLOCK_SKEW if since is not None else None
        art = (
            (image_id, int(blueprint_id), int(print_provider_id))
            if image_id is not None and blueprint_id is not None and print_provider_id is not None
            else None
        )

        def ours(products: list[dict[str, Any]]) -> dict[str, Any] | None:
            for product in products:
                made = _created_at(product)
                if horizon is not None and made is not None and made < horizon:
                    continue  # older than the first attempt: not its product
                if _carries_marker(product, marker) or (
                    art is not None and _prints(product, *art) and not _marked(product)
                ):
                    return dict(product)
            return None

        first = await self.list_products(shop_id, page=1)
        first_page = _page_data(first)
        found = ours(first_page)
        last_page = int(first.get("last_page") or 1)
        if found is not None or last_page <= 1:
            return found
        order = _listing_order(first_page)
        if order is None:
            tail = await self.list_products(shop_id, page=last_page)
            found = ours(_page_data(tail))
            if found is not None:
                return found
            order = _listing_order([*first_page[:1], *_page_data(tail)[-1:]])
        if order == "oldest_first":
            return await self._walk_back(shop_id, last_page, ours, horizon)
        # Newest first (a horizon applies), or unknown (every page is read).
        return await self._walk_forward(
            shop_id, int(first.get("total") or 0), ours, horizon if order else None
        )

    async def _walk_forward(
        self,
        shop_id: str | int,
        total: int,
        ours: Callable[[list[dict[str, Any]]], dict[str, Any] | None],
        horizon: datetime | None,
    ) -> dict[str, Any] | None:
        """Pages 2.. while products are listed newest first (or in an unknown order). A product
        made meanwhile pushes the others one place later (read twice, never missed); one
        deleted pulls them earlier, onto the pages already read: those are read again."""
        for page in range(2, MAX_SCAN_PAGES):
            envelope = await self.list_products(shop_id, page=page)
            products = _page_data(envelope)
            found = ours(products)
            if found is not None:
                return found
            now_total = int(envelope.get("total") or 0)
            if now_total < total:
                # Deleted meanwhile: as many products moved back onto the pages before this one.
                back = math.ceil((total - now_total) / PRODUCTS_PAGE_MAX)
                for earlier in range(max(1, page - back), page):
                    found = ours(_page_data(await self.list_products(shop_id, page=earlier)))
                    if found is not None:
                        return found
            total = now_total
            if not products or page >= int(envelope.get("last_page") or page):
                return None
            oldest = _created_at(products[-1])
            if horizon is not None and oldest is not None and oldest < horizon:
                return None
        raise RetryableError(
            f"products of shop {shop_id} kept changing over {MAX_SCAN_PAGES} pages", vendor=VENDOR
        )

    async def _walk_back(
        self,
        shop_id: str | int,
        last_page: int,
        ours: Callable[[list[dict[str, Any]]], dict[str, Any] | None],
        horizon: datetime | None,
    ) -> dict[str, Any] | None:
        """From the last page down while products are listed oldest first: a product made
        meanwhile is added after the ones looked at (nothing moves), one deleted pulls the
        others earlier, onto pages still to read."""
        for page in range(last_page, 1, -1):
            products = _page_data(await self.list_products(shop_id, page=page))
            found = ours(products)
            if found is not None:
                return found
            oldest = _created_at(products[0]) if products else None
            if horizon is not None and oldest is not None and oldest < horizon:
                return None
        return None

    async def delete_product(self, shop_id: str | int, product_id: str) -> None:
        """Delete a product."""
        await self._request("DELETE", f"/v1/shops/{shop_id}/products/{product_id}.json")

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

    async def publishing_failed(self, shop_id: str | int, product_id: str, *, reason: str) -> None:
        """Tell Printify publishing failed (unlocks the product)."""
        path = f"/v1/shops/{shop_id}/products/{product_id}/publishing_failed.json"
        await self._request("POST", path, {"reason": reason})

    # --- webhooks ----------------------------------------------------------------------------

    async def list_webhooks(self, shop_id: str | int) -> list[dict[str, Any]]:
        """The shop's webhooks (``id``, ``topic``, ``url``, ``shop_id``)."""
        found = await self._request("GET", f"/v1/shops/{shop_id}/webhooks.json")
        return list(found) if isinstance(found, list) else []

    async def create_webhook(
        self, shop_id: str | int, *, topic: str, url: str, secret: str | None = None
    ) -> dict[str, Any]:
        """Have Printify POST the shop's ``topic`` events to ``url``, signed with ``secret``."""
        body: dict[str, Any] = {"topic": topic, "url": url}
        if secret:
            body["secret"] = secret
        created: dict[str, Any] = await self._request(
            "POST", f"/v1/shops/{shop_id}/webhooks.json", body
        )
        return created

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


class PrintifyAccountSettings(PodSettings):
    """One Printify account and its documented limits (``PRINTIFY_*``); every stage that calls
    the account reads the same settings and so shares the same budgets."""

    printify_api_key: SecretStr
    printify_api_url: str = "https://api.printify.com"
    printify_timeout_s: float = Field(default=30.0, gt=0)
    printify_requests_per_minute: int = Field(
        default=600, ge=1, description="Requests per PRINTIFY_RATE_WINDOW_S, for the account"
    )
    printify_rate_window_s: float = Field(default=60.0, gt=0)
    printify_publishes_per_window: int = Field(default=200, ge=1)
    printify_publish_window_s: float = Field(default=1800.0, gt=0)
    printify_retry_after_max_s: float = Field(
        default=120.0, gt=0, description="Longest Retry-After honoured; longer ones are capped"
    )


def printify_client(
    settings: PrintifyAccountSettings, pool: AsyncConnectionPool | None
) -> PrintifyClient:
    """The account's client; with a database pool its budgets are the deployment-wide ones
    in PostgreSQL (named after a hash of the API key), else in-process ones."""
    key = settings.printify_api_key.get_secret_value()
    requests: RateBudget | None = None
    publishes: RateBudget | None = None
    if pool is not None:
        account = account_key(VENDOR, key)
        # A grant whose holder died keeps counting this long: longer than any request lasts.
        hold = 3 * settings.printify_timeout_s + 10
        requests = SharedRateBudget(
            pool,
            f"{account}:requests",
            limit=settings.printify_requests_per_minute,
            window_s=settings.printify_rate_window_s,
            hold_s=hold,
            purpose="Printify requests",
        )
        publishes = SharedRateBudget(
            pool,
            f"{account}:publish",
            limit=settings.printify_publishes_per_window,
            window_s=settings.printify_publish_window_s,
            hold_s=hold,
            purpose="Printify publishes",
        )
    return PrintifyClient(
        api_key=key,
        base_url=settings.printify_api_url,
        timeout_s=settings.printify_timeout_s,
        requests_per_minute=settings.printify_requests_per_minute,
        rate_window_s=settings.printify_rate_window_s,
        publishes_per_window=settings.printify_publishes_per_window,
        publish_window_s=settings.printify_publish_window_s,
        max_retry_wait_s=settings.printify_retry_after_max_s,
        requests_budget=requests,
        publish_budget=publishes,
    )
