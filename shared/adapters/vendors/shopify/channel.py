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
    handle_for,
)
from shared.adapters.vendors.listing import ListingDraft, draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify.client import ShopifyClient
from shared.adapters.vendors.shopify.documents import (
    PRODUCT_BY_HANDLE,
    PRODUCT_DELETE,
    PRODUCT_SET,
    PRODUCT_STATUS,
    PUBLICATIONS,
    PUBLISH,
    VARIANT_PRICES,
)
from shared.adapters.vendors.shopify.models import (
    VENDOR,
    ProductData,
    ProductDeleteData,
    ProductDeleteResult,
    ProductSetData,
    ProductSetResult,
    ProductStatusData,
    ProductUpdateResult,
    PublicationsData,
    PublishData,
    PublishResult,
    ShopifyProduct,
    UserError,
    VariantPricesData,
    VariantPricesResult,
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


class ShopifyChannel:
    """Lists Printify's products on a Shopify store and publishes them to the Online Store;
    takes a listing down (status DRAFT: off every sales channel, kept to be listed again) or
    deletes it, and prices its variants again from the Printify product."""

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

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        found = await self._find(product)
        if found is None:
            return False  # never listed, or deleted already
        if delete:
            data = await self.shopify.query(
                ProductDeleteData, "PodProductDelete", PRODUCT_DELETE, {"input": {"id": found.id}}
            )
            deleted = data.product_delete or ProductDeleteResult()
            _refused("productDelete", deleted.user_errors)
            return True
        if found.status != "ACTIVE":
            return False  # a draft or archived product is on no sales channel already
        # DRAFT, not ARCHIVED: a draft is what a product not for sale yet is, and the publish
        # path (productSet with status ACTIVE) lists it again as it is; an archived product
        # is one the merchant retired (and the watcher reads ARCHIVED as refused).
        status = await self.shopify.query(
            ProductStatusData,
            "PodProductStatus",
            PRODUCT_STATUS,
            {"product": {"id": found.id, "status": "DRAFT"}},
        )
        updated = status.product_update or ProductUpdateResult()
        _refused("productUpdate", updated.user_errors)
        return True

    async def reprice(self, product: ProductRef) -> bool:
        found = await self._find(product)
        if found is None:
            return False
        source = await self.source.get_product(product.shop_id, product.product_id)
        try:
            draft = draft_from_printify(source)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from None
        prices = {v.sku: f"{v.price_cents / 100:.2f}" for v in draft.variants}
        # Matched by SKU (the Printify variant's, set when it was listed): a variant disabled
        # in Printify since keeps its price; it is not for sale through the engine.
        changes = [
            {"id": v.id, "price": prices[v.sku]}
            for v in found.listed_variants()
            if v.sku in prices and _money(v.price) != prices[v.sku]
        ]
        if changes:
            data = await self.shopify.query(
                VariantPricesData,
                "PodVariantPrices",
                VARIANT_PRICES,
                {"productId": found.id, "variants": changes},
            )
            result = data.bulk_update or VariantPricesResult()
            _refused("productVariantsBulkUpdate", result.user_errors)
        logger.info(
            "shopify listing repriced product_id=%s shopify_id=%s variants_changed=%d",
            product.product_id,
            found.id,
            len(changes),
        )
        return True


def _money(raw: str | None) -> str | None:
    """Shopify's Money as the engine writes it (two decimals), to compare."""
    try:
        return f"{float(raw):.2f}" if raw is not None else None
    except ValueError:
        return None


def _refused(operation: str, errors: list[UserError]) -> None:
    if errors:
        reason = "; ".join(e.describe() for e in errors)
        raise PermanentError(
            f"{operation} refused: {reason}",
            vendor=VENDOR,
            code=",".join(str(e.code) for e in errors if e.code) or None,
        )


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
