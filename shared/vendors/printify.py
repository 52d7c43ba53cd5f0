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
import time
from collections.abc import Sequence
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
            requests_per_minute, rate_window_s
        )
        self._publishes: RateBudget = publish_budget or LocalRateBudget(
            publishes_per_window, publish_window_s
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
        self, shop_id: str | int, *, page: int = 1, limit: int = 50
    ) -> dict[str, Any]:
        """One page of products (newest first) in Printify's pagination envelope."""
        envelope: dict[str, Any] = await self._request(
            "GET", f"/v1/shops/{shop_id}/products.json?page={int(page)}&limit={int(limit)}"
        )
        return envelope

    async def find_product_by_marker(
        self, shop_id: str | int, marker: str, *, since: datetime | None = None
    ) -> dict[str, Any] | None:
        """The newest product whose every variant's SKU is ``<marker>-<variant id>``, or None.

        Used to reconcile a create call whose outcome is unknown. Printify cannot search by
        SKU, so products are listed newest first, page by page, however many the shop has;
        ``since`` (when the create was first attempted) stops the walk at the first page that
        reaches older products, so a recent create costs a page or two even in a large shop.
        """
        # Printify's clock and ours may differ a little.
        horizon = since - _CLOCK_SKEW if since is not None else None
        page = 1
        while True:
            envelope = await self.list_products(shop_id, page=page, limit=50)
            products = envelope.get("data", [])
            for product in products:
                # build_product_payload writes exactly this SKU on every variant it enables
                # (Printify may list the blueprint's other variants too, disabled).
                ours = [v for v in product.get("variants", []) if v.get("is_enabled", True)]
                if ours and all(v.get("sku") == f"{marker}-{v.get('id')}" for v in ours):
                    return dict(product)
            if not products or page >= int(envelope.get("last_page") or page):
                return None
            oldest = _created_at(products[-1])
            if horizon is not None and oldest is not None and oldest < horizon:
                return None
            page += 1

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
        )
        publishes = SharedRateBudget(
            pool,
            f"{account}:publish",
            limit=settings.printify_publishes_per_window,
            window_s=settings.printify_publish_window_s,
            hold_s=hold,
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
