"""Shopify as a sales channel: a Printify product set on the store (productSet by handle) and
published to the Online Store."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from shared.adapters.vendors.channels import (
    PENDING,
    ChannelSpec,
    Listing,
    ListingState,
    ProductRef,
    UndoNotSupported,
    handle_for,
)
from shared.adapters.vendors.listing import ListingDraft, draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify.client import ShopifyClient
from shared.adapters.vendors.shopify.documents import (
    PRODUCT_BY_HANDLE,
    PRODUCT_SET,
    PUBLICATIONS,
    PUBLISH,
)
from shared.adapters.vendors.shopify.models import (
    VENDOR,
    ProductData,
    ProductSetData,
    ProductSetResult,
    PublicationsData,
    PublishData,
    PublishResult,
    ShopifyProduct,
)
from shared.adapters.vendors.shopify.settings import ShopifySettings, shopify_client
from shared.platform.errors import (
    PermanentError,
)

logger = logging.getLogger("shared.adapters.vendors.shopify")  # the package's, as before the split

MARKER_NAMESPACE, MARKER_KEY = "pod", "printify_product_id"

# The publication a product goes to unless SHOPIFY_PUBLICATION_ID names another: the title of
# its catalog (Publication.name is deprecated for Catalog.title).
ONLINE_STORE = "Online Store"


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


class ShopifyChannel(UndoNotSupported):
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
        data = await self.shopify.query(
            ProductSetData,
            "PodProductSet",
            PRODUCT_SET,
            {
                "input": product_set_input(draft, handle, self.vendor),
                "identifier": {"handle": handle},
            },
        )
        result = data.product_set or ProductSetResult()
        errors = result.user_errors
        if errors or result.product is None:
            reason = "; ".join(e.describe() for e in errors)
            raise PermanentError(
                f"productSet refused: {reason or 'no product'}",
                vendor=VENDOR,
                code=",".join(str(e.code) for e in errors) or None,
            )
        return await self._published(result.product)

    async def _published(self, made: ShopifyProduct) -> ListingState:
        """Put the product on the Online Store (when it is not there yet): the listing."""
        url = made.online_store_url
        if not url:
            data = await self.shopify.query(
                PublishData,
                "PodPublish",
                PUBLISH,
                {"id": made.id, "input": [{"publicationId": await self._publication()}]},
            )
            result = data.publishable_publish or PublishResult()
            if result.user_errors:
                shown = [e.model_dump(exclude_none=True) for e in result.user_errors]
                raise PermanentError(f"publishablePublish refused: {shown}", vendor=VENDOR)
            url = result.publishable.online_store_url if result.publishable else None
        return ListingState(Listing(made.id, url or None))

    async def _publication(self) -> str:
        if self._publication_id is None:
            data = await self.shopify.query(PublicationsData, "PodPublications", PUBLICATIONS, {})
            found = online_store(data)
            if found is None:
                raise PermanentError(
                    f"the store has no {ONLINE_STORE} publication; set SHOPIFY_PUBLICATION_ID",
                    vendor=VENDOR,
                )
            self._publication_id = found
        return self._publication_id

    async def _find(self, product: ProductRef) -> ShopifyProduct | None:
        data = await self.shopify.query(
            ProductData, "PodProduct", PRODUCT_BY_HANDLE, {"handle": self.handle(product)}
        )
        return data.product

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        found = await self._find(product)
        if found is None:
            return None
        return await self._published(found)

    async def check(self, product: ProductRef) -> ListingState:
        found = await self._find(product)
        if found is None:
            return ListingState(refused="the product is no longer on the Shopify store")
        if found.status == "ARCHIVED":
            return ListingState(refused="the product was archived on the Shopify store")
        if found.online_store_url:
            return ListingState(Listing(found.id, found.online_store_url))
        return PENDING


def online_store(data: PublicationsData) -> str | None:
    """The id of the "Online Store" publication in a PodPublications answer, if any."""
    for node in data.listed():
        if node.title == ONLINE_STORE:
            return node.id
    return None


def shopify_channel(
    settings: ShopifySettings,
    source: PrintifyClient,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ShopifyChannel:
    """The Shopify channel of the store in ``settings``, listing products read from ``source``;
    ``pool`` keeps a Dev Dashboard app's tokens for every publisher."""
    return ShopifyChannel(
        shopify_client(settings, transport, pool=pool),
        source,
        vendor=settings.shopify_vendor,
        publication_id=settings.shopify_publication_id,
    )


# The channel as the engine registers it (shared.contract.sales_channels).
SPEC = ChannelSpec(
    name="shopify",
    settings=ShopifySettings,
    build=shopify_channel,
    takes_pool=True,
    credential="SHOPIFY_ACCESS_TOKEN",
    # A Dev Dashboard app instead of an admin token: an account of one's own too.
    other_credentials=("SHOPIFY_CLIENT_SECRET",),
    url_setting="SHOPIFY_API_URL",
)
