"""Shopify as a sales channel of its own: the Admin GraphQL API, ``productSet`` (synchronous).

:class:`ShopifyChannel` lists the product Printify made (:mod:`shared.vendors.listing`): one
``productSet`` sends its options, variants (SKU, price) and images (``files`` by
``originalSource``), upserting by ``identifier.handle`` so that a redelivery updates the product
it made before instead of making a second one; the Printify product id is also kept in a
``pod.printify_product_id`` metafield. ``publishablePublish`` then puts it on the Online Store.

Throttling follows Shopify's leaky bucket (``extensions.cost.throttleStatus``): the client keeps
what the last answer said was available, restores it at ``restoreRate`` per second, and waits
before a call whose cost (as last requested for that operation) is not available yet, instead
of spending a call on ``THROTTLED``. A THROTTLED answer (another process used the bucket) is
waited out and sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import Field, SecretStr

from shared.errors import (
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.handback import permission
from shared.http import async_client
from shared.settings import PodSettings
from shared.vendors.channels import (
    PENDING,
    ChannelSpec,
    Listing,
    ListingState,
    ProductRef,
    handle_for,
)
from shared.vendors.listing import ListingDraft, draft_from_printify
from shared.vendors.printify import PrintifyClient

logger = logging.getLogger(__name__)

VENDOR = "shopify"
MARKER_NAMESPACE, MARKER_KEY = "pod", "printify_product_id"
MAX_THROTTLED = 5
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF_S = 0.25

_PRODUCT_FIELDS = """
  id handle status onlineStoreUrl resourcePublicationsCount
  variants(first: 100) { nodes { id sku price } }
"""

PRODUCT_SET = f"""
mutation PodProductSet($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {{
  productSet(input: $input, identifier: $identifier, synchronous: true) {{
    product {{ {_PRODUCT_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

PRODUCT_BY_HANDLE = f"""
query PodProduct($handle: String!) {{
  productByIdentifier(identifier: {{handle: $handle}}) {{ {_PRODUCT_FIELDS} }}
}}"""

PUBLICATIONS = """
query PodPublications { publications(first: 20) { nodes { id name } } }
"""

PUBLISH = """
mutation PodPublish($id: ID!, $input: [PublicationInput!]!) {
  publishablePublish(id: $id, input: $input) {
    publishable { ... on Product { id onlineStoreUrl } }
    userErrors { field message }
  }
}
"""


class ShopifySettings(PodSettings):
    """One Shopify store (``SHOPIFY_*``)."""

    shopify_shop_domain: str = Field(description="e.g. my-shop.myshopify.com")
    shopify_access_token: SecretStr
    shopify_api_version: str = "2025-10"
    # The API's base URL; unset = https://<shop domain>. (The simulator in tests and make up.)
    shopify_api_url: str | None = None
    shopify_timeout_s: float = Field(default=30.0, gt=0)
    # Where products are published; unset = the store's "Online Store" publication.
    shopify_publication_id: str | None = None
    shopify_vendor: str = "POD Engine"


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

    def update(self, status: dict[str, Any], now: float) -> None:
        self.available = float(status.get("currentlyAvailable", 0))
        self.maximum = float(status.get("maximumAvailable", 0))
        self.restore_rate = float(status.get("restoreRate", 0))
        self.at = now


class ShopifyClient:
    """The Admin GraphQL API of one store."""

    def __init__(
        self,
        *,
        shop_domain: str,
        access_token: str,
        api_version: str = "2025-10",
        base_url: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not access_token:
            raise ValueError("access_token is required")
        self._token = access_token
        self.shop_domain = shop_domain
        self._path = f"/admin/api/{api_version}/graphql.json"
        self._http = async_client(
            base_url=(base_url or f"https://{shop_domain}").rstrip("/"),
            headers={
                "X-Shopify-Access-Token": access_token,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )
        self.throttle = Throttle()
        self._costs: dict[str, float] = {}  # operation -> requested cost last time
        self._lock = asyncio.Lock()

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    async def graphql(self, operation: str, query: str, variables: dict[str, Any]) -> Any:
        """Run one operation; its ``data``. Waits for the bucket first; raises PodError on an
        HTTP error or GraphQL ``errors`` (THROTTLED is waited out, up to MAX_THROTTLED times)."""
        for attempt in range(MAX_THROTTLED + 1):
            # Waiting for the lock or the bucket is waiting for permission to send: a stopping
            # stage hands back a message that has sent nothing yet (shared.handback).
            async with permission():
                await self._lock.acquire()
            try:
                wait = self.throttle.wait_for(self._costs.get(operation, 0), time.monotonic())
                if wait > 0:
                    logger.info(
                        "shopify waits for its bucket operation=%s wait_s=%.2f", operation, wait
                    )
                    async with permission():
                        await asyncio.sleep(wait)
                body = await self._post_again_on_5xx(operation, query, variables)
            finally:
                self._lock.release()
            cost = (body.get("extensions") or {}).get("cost") or {}
            if cost.get("throttleStatus"):
                self.throttle.update(cost["throttleStatus"], time.monotonic())
            if cost.get("requestedQueryCost") is not None:
                self._costs[operation] = float(cost["requestedQueryCost"])
            errors = body.get("errors")
            if not errors:
                return body.get("data") or {}
            codes = {((e.get("extensions") or {}).get("code")) for e in errors}
            if "THROTTLED" in codes and attempt < MAX_THROTTLED:
                logger.warning("shopify throttled operation=%s attempt=%d", operation, attempt + 1)
                continue  # the bucket state just read makes the next wait long enough
            message = "; ".join(str(e.get("message")) for e in errors)[:500]
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
        self, operation: str, query: str, variables: dict[str, Any]
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

    async def _post(self, operation: str, query: str, variables: dict[str, Any]) -> Any:
        try:
            resp = await self._http.post(
                self._path,
                json={"query": query, "variables": variables, "operationName": operation},
            )
        except httpx.TimeoutException as exc:
            raise VendorTimeout(
                f"{operation}: timed out ({type(exc).__name__})", vendor=VENDOR
            ) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                self._redact(f"{operation}: {type(exc).__name__}: {exc}"), vendor=VENDOR
            ) from None
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("errors")
            except ValueError:
                detail = resp.reason_phrase
            raise classify_http_status(resp.status_code)(
                self._redact(f"{operation}: {detail}"),
                vendor=VENDOR,
                status=resp.status_code,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        try:
            return resp.json()
        except ValueError:
            raise RetryableError(f"{operation}: answer is not JSON", vendor=VENDOR) from None

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()


def product_set_input(draft: ListingDraft, handle: str, vendor: str) -> dict[str, Any]:
    """``ProductSetInput`` of a draft: options and variants together, images by URL."""
    return {
        "title": draft.title[:255],
        "descriptionHtml": "".join(
            f"<p>{_escape(p)}</p>" for p in draft.description.split("\n") if p.strip()
        ),
        "handle": handle,
        "vendor": vendor,
        "tags": list(draft.tags),
        "status": "ACTIVE",
        "productOptions": [
            {"name": name, "position": i + 1, "values": [{"name": v} for v in values]}
            for i, (name, values) in enumerate(draft.options)
        ],
        "variants": [
            {
                "optionValues": [{"optionName": n, "name": v} for n, v in variant.options],
                "price": f"{variant.price_cents / 100:.2f}",
                "inventoryItem": {"sku": variant.sku, "tracked": False},
            }
            for variant in draft.variants
        ],
        "files": [
            {"originalSource": url, "contentType": "IMAGE", "alt": draft.title[:500]}
            for url in draft.images
        ],
        "metafields": [
            {
                "namespace": MARKER_NAMESPACE,
                "key": MARKER_KEY,
                "value": draft.marker,
                "type": "single_line_text_field",
            }
        ],
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ShopifyChannel:
    """Lists Printify's products on a Shopify store and publishes them to the Online Store."""

    name = "shopify"

    def __init__(
        self,
        shopify: ShopifyClient,
        source: PrintifyClient,
        *,
        vendor: str = "POD Engine",
        publication_id: str | None = None,
    ) -> None:
        self.shopify = shopify
        self.source = source
        self.vendor = vendor
        self._publication_id = publication_id

    async def aclose(self) -> None:
        """Close the store's client (the Printify client belongs to the caller)."""
        await self.shopify.aclose()

    def handle(self, product: ProductRef) -> str:
        """The product's handle on the store: its title's words and the Printify id (unique)."""
        return handle_for(product.title, product.product_id)

    async def publish(self, product: ProductRef) -> ListingState:
        found = await self.source.get_product(product.shop_id, product.product_id)
        try:
            draft = draft_from_printify(found)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from None
        handle = self.handle(product)
        data = await self.shopify.graphql(
            "PodProductSet",
            PRODUCT_SET,
            {
                "input": product_set_input(draft, handle, self.vendor),
                "identifier": {"handle": handle},
            },
        )
        result = data.get("productSet") or {}
        errors = result.get("userErrors") or []
        if errors or not result.get("product"):
            reason = "; ".join(
                f"{'.'.join(e.get('field') or [])}: {e.get('message')}" for e in errors
            )
            raise PermanentError(
                f"productSet refused: {reason or 'no product'}",
                vendor=VENDOR,
                code=",".join(str(e.get("code")) for e in errors) or None,
            )
        return await self._published(result["product"])

    async def _published(self, made: dict[str, Any]) -> ListingState:
        """Put the product on the Online Store (when it is not there yet): the listing."""
        url = made.get("onlineStoreUrl")
        if not url:
            data = await self.shopify.graphql(
                "PodPublish",
                PUBLISH,
                {"id": made["id"], "input": [{"publicationId": await self._publication()}]},
            )
            result = data.get("publishablePublish") or {}
            if result.get("userErrors"):
                raise PermanentError(
                    f"publishablePublish refused: {result['userErrors']}", vendor=VENDOR
                )
            url = (result.get("publishable") or {}).get("onlineStoreUrl")
        return ListingState(Listing(str(made["id"]), url or None))

    async def _publication(self) -> str:
        if self._publication_id is None:
            data = await self.shopify.graphql("PodPublications", PUBLICATIONS, {})
            nodes = (data.get("publications") or {}).get("nodes") or []
            online = next((n for n in nodes if n.get("name") == "Online Store"), None)
            if online is None:
                raise PermanentError(
                    "the store has no Online Store publication; set SHOPIFY_PUBLICATION_ID",
                    vendor=VENDOR,
                )
            self._publication_id = str(online["id"])
        return self._publication_id

    async def _find(self, product: ProductRef) -> dict[str, Any] | None:
        data = await self.shopify.graphql(
            "PodProduct", PRODUCT_BY_HANDLE, {"handle": self.handle(product)}
        )
        found: dict[str, Any] | None = data.get("productByIdentifier")
        return found

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        found = await self._find(product)
        if found is None:
            return None
        return await self._published(found)

    async def check(self, product: ProductRef) -> ListingState:
        found = await self._find(product)
        if found is None:
            return ListingState(refused="the product is no longer on the Shopify store")
        if found.get("status") == "ARCHIVED":
            return ListingState(refused="the product was archived on the Shopify store")
        if found.get("onlineStoreUrl"):
            return ListingState(Listing(str(found["id"]), str(found["onlineStoreUrl"])))
        return PENDING


def shopify_client(
    settings: ShopifySettings, transport: httpx.AsyncBaseTransport | None = None
) -> ShopifyClient:
    """The store's client from its settings."""
    return ShopifyClient(
        shop_domain=settings.shopify_shop_domain,
        access_token=settings.shopify_access_token.get_secret_value(),
        api_version=settings.shopify_api_version,
        base_url=settings.shopify_api_url,
        timeout_s=settings.shopify_timeout_s,
        transport=transport,
    )


def shopify_channel(settings: ShopifySettings, source: PrintifyClient) -> ShopifyChannel:
    """The Shopify channel of the store in ``settings``, listing products read from ``source``."""
    return ShopifyChannel(
        shopify_client(settings),
        source,
        vendor=settings.shopify_vendor,
        publication_id=settings.shopify_publication_id,
    )


# The channel as the engine registers it (shared.vendors.direct), with the simulator's shop
# (its DEFAULT_SHOP; any token is accepted unless SIM_SHOPIFY_TOKENS lists the valid ones).
SPEC = ChannelSpec(
    name="shopify",
    settings=ShopifySettings,
    build=shopify_channel,
    simulator="shopify",
    simulator_port=8191,
    credential="SHOPIFY_ACCESS_TOKEN",
    url_setting="SHOPIFY_API_URL",
    simulator_env={
        "SHOPIFY_SHOP_DOMAIN": "pod-engine-sim.myshopify.com",
        "SHOPIFY_ACCESS_TOKEN": "sim-shopify-token",
    },
)
