"""TikTok Shop as a sales channel: a Printify product created as a TikTok product (its mockups
uploaded, its category and that category's required attributes, one SKU per enabled variant),
which TikTok audits; found again by the seller SKU that marks it."""

from __future__ import annotations

import asyncio
import html
import logging
import weakref
from collections.abc import Mapping

import httpx
from psycopg_pool import AsyncConnectionPool

from shared.adapters.vendors.channels import (
    ChannelSpec,
    Listing,
    ListingState,
    ProductRef,
)
from shared.adapters.vendors.images import HttpImageFetcher, ImageFetcher, image_type
from shared.adapters.vendors.listing import ListingDraft, draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient, Product
from shared.adapters.vendors.tiktok.client import TikTokClient
from shared.adapters.vendors.tiktok.models import (
    PRODUCT_NOT_FOUND,
    VENDOR,
    Attribute,
    Mutation,
    ProductDetail,
)
from shared.adapters.vendors.tiktok.settings import TikTokSettings, tiktok_client
from shared.contract.events import ProductType
from shared.domain.catalog import DEFAULT_CATALOG, CatalogEntry
from shared.platform.errors import ConfigError, PermanentError

logger = logging.getLogger("shared.adapters.vendors.tiktok")

MARKER_PREFIX = "pod-"
MAX_TITLE = 255
# Printify's option names as TikTok's sales attributes name them.
SALES_ATTRIBUTE_NAMES = {"colors": "Color", "color": "Color", "sizes": "Size", "size": "Size"}
# Under audit (or kept as a draft): the watcher asks again later.
PENDING_STATUSES = frozenset({"PENDING", "DRAFT"})
# On sale, or on its way there (an audit that passes lists it): what a withdrawal deactivates.
SELLABLE_STATUSES = frozenset({"ACTIVATE", "PENDING"})
# Deactivated by the seller (the engine's withdrawal is the seller's act on TikTok): a later
# publish activates it again.
SELLER_DEACTIVATED = "SELLER_DEACTIVATED"


def marker_sku(product_id: str, n: int = 1) -> str:
    """The seller SKU of a product's ``n``-th SKU: the Printify product id in it, so Search
    Products (``seller_skus``) finds the product by its first one. Written with the product
    in the one call that creates it."""
    return f"{MARKER_PREFIX}{product_id}-{n:02d}"


class TikTokChannel:
    """Lists Printify products in a TikTok shop (a :class:`SalesChannel`); a new product is
    pending until TikTok's audit passes (listed) or fails (refused with TikTok's reasons)."""

    name = "tiktok"

    def __init__(
        self,
        tiktok: TikTokClient,
        source: PrintifyClient,
        settings: TikTokSettings,
        *,
        catalog: Mapping[ProductType, CatalogEntry] | None = None,
        fetch_image: ImageFetcher | None = None,
    ) -> None:
        self.tiktok = tiktok
        self.source = source
        self.settings = settings
        self.catalog = dict(catalog if catalog is not None else DEFAULT_CATALOG)
        self._own_fetcher: HttpImageFetcher | None = None
        if fetch_image is None:
            self._own_fetcher = fetch_image = HttpImageFetcher(settings.tiktok_timeout_s)
        self.fetch_image: ImageFetcher = fetch_image
        self._warehouse: str | None = settings.tiktok_warehouse_id
        self._attributes: dict[str, list[Attribute]] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # --- SalesChannel ----------------------------------------------------------------------------

    async def publish(self, product: ProductRef) -> ListingState:
        """Create the product, or take the one a previous attempt made (found by its marker):
        pending while TikTok audits it. A product whose audit failed is submitted again
        (Edit Product: a replay after the seller fixed the cause, and TikTok audits it afresh);
        one the seller deactivated (a withdrawal) is activated again at today's prices; raises
        PermanentError when TikTok took it down otherwise (deactivated by the platform,
        frozen)."""
        async with self._lock(product.product_id):
            found = await self.find(product.product_id)
            if found is None:
                created = await self.tiktok.create_product(await self._body(product))
                logger.info(
                    "tiktok product created, under audit product_id=%s marker=%s",
                    created.product_id,
                    marker_sku(product.product_id),
                )
                return ListingState(pending_ref=created.product_id)
            if found.status == "FAILED":
                await self.tiktok.edit_product(found.id, await self._body(product))
                logger.info(
                    "tiktok product submitted again after a failed audit product_id=%s marker=%s",
                    found.id,
                    marker_sku(product.product_id),
                )
                return ListingState(pending_ref=found.id)
            if found.status == SELLER_DEACTIVATED:
                return await self._activate(product, found)
            state = self._state(found)
            if state.refused is not None:
                raise PermanentError(state.refused, vendor=VENDOR)
            return state

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        """Deactivate the product (Deactivate Products: hidden from buyers, kept for a later
        publish) or delete it (Delete Products). False when there is none to take down: never
        made, deleted, or not on sale (deactivated already, refused in audit, frozen)."""
        async with self._lock(product.product_id):
            found = await self.find(product.product_id)
            if found is None:
                return False
            if delete:
                done = await self.tiktok.delete_products([found.id])
                self._raise_failed(done, found.id, "delete", gone_is_done=True)
            elif found.status in SELLABLE_STATUSES:
                done = await self.tiktok.deactivate_products([found.id])
                self._raise_failed(done, found.id, "deactivate")
            else:
                return False
            logger.info(
                "tiktok product withdrawn product_id=%s marker=%s outcome=%s status_was=%s",
                found.id,
                marker_sku(product.product_id),
                "deleted" if delete else "deactivated",
                found.status,
            )
            return True

    async def reprice(self, product: ProductRef) -> bool:
        """Set each SKU's price to its Printify variant's (Update Price). TikTok prices only a
        live product: False when there is none on sale (a deactivated one is priced when it is
        published again; one under audit keeps the prices it was created with)."""
        async with self._lock(product.product_id):
            found = await self.find(product.product_id)
            if found is None or found.status != "ACTIVATE":
                return False
            await self._price(product, found)
            return True

    async def _activate(self, product: ProductRef, found: ProductDetail) -> ListingState:
        """A product the seller deactivated, on sale again at the Printify prices now."""
        done = await self.tiktok.activate_products([found.id])
        self._raise_failed(done, found.id, "activate")
        again = await self.tiktok.get_product(found.id)
        if again.status == "ACTIVATE":
            await self._price(product, again)
        logger.info(
            "tiktok product activated again product_id=%s marker=%s status=%s",
            found.id,
            marker_sku(product.product_id),
            again.status,
        )
        return self._state(again)

    async def _price(self, product: ProductRef, found: ProductDetail) -> None:
        draft, _ = await self._draft(product)
        # The n-th variant is the SKU the product was created with as marker_sku(id, n).
        prices = {
            marker_sku(product.product_id, n): v.price_cents
            for n, v in enumerate(draft.variants, 1)
        }
        skus = [
            {
                "id": sku.id,
                "price": {
                    "amount": f"{prices[sku.seller_sku] / 100:.2f}",
                    "currency": self.settings.tiktok_currency,
                },
            }
            for sku in found.skus
            if sku.id and sku.seller_sku in prices
        ]
        if not skus:
            raise PermanentError(
                f"the TikTok product {found.id} has none of the SKUs of Printify product "
                f"{product.product_id}",
                vendor=VENDOR,
            )
        await self.tiktok.update_price(found.id, skus)
        logger.info(
            "tiktok product repriced product_id=%s marker=%s skus=%d",
            found.id,
            marker_sku(product.product_id),
            len(skus),
        )

    @staticmethod
    def _raise_failed(
        done: Mutation, product_id: str, what: str, *, gone_is_done: bool = False
    ) -> None:
        """PermanentError with TikTok's reason when the call failed for the product (a
        product already gone counts as deleted when ``gone_is_done``: an earlier send whose
        answer was lost)."""
        for error in done.errors:
            if error.product_id not in ("", product_id):
                continue
            if gone_is_done and error.code == PRODUCT_NOT_FOUND:
                continue
            raise PermanentError(
                f"tiktok could not {what} product {product_id}: {error.message or 'no reason'} "
                f"(code {error.code})",
                vendor=VENDOR,
                code=str(error.code),
            )

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        """The product with the marker as TikTok has it, or None when none was created (the
        create call is the only one that makes anything: there is nothing half made)."""
        found = await self.find(product.product_id)
        return None if found is None else self._state(found)

    async def check(self, product: ProductRef) -> ListingState:
        """Listed once the audit passed, refused with TikTok's reasons when it failed (or the
        product was deactivated, frozen or deleted), pending while under audit."""
        found: ProductDetail | None = None
        if product.pending_ref:
            try:
                found = await self.tiktok.get_product(product.pending_ref)
            except PermanentError as exc:
                if exc.code is None:
                    raise
                found = None  # gone (deleted): look for the marker
        if found is None:
            found = await self.find(product.product_id)
        if found is None:
            return ListingState(
                refused=f"no TikTok product carries the seller SKU "
                f"{marker_sku(product.product_id)}: it was deleted on TikTok, or never made"
            )
        return self._state(found)

    # --- finding and reading ----------------------------------------------------------------------

    async def find(self, product_id: str) -> ProductDetail | None:
        """The product whose first SKU is the marker's (not deleted), or None; if a fault ever
        left two, the one furthest along (listed, then under audit, then refused)."""
        page = await self.tiktok.search_products(seller_skus=[marker_sku(product_id)])
        rank = {"ACTIVATE": 0, "PENDING": 1, "DRAFT": 2}
        candidates = sorted(
            (p for p in page.products if p.status != "DELETED"),
            key=lambda p: rank.get(p.status, 3),
        )
        if not candidates:
            return None
        if len(candidates) > 1:
            logger.error(
                "tiktok has several products with one marker marker=%s product_ids=%s",
                marker_sku(product_id),
                [p.id for p in candidates],
            )
        return await self.tiktok.get_product(candidates[0].id)

    def _state(self, found: ProductDetail) -> ListingState:
        status = found.status
        if status == "ACTIVATE":
            url = self.settings.tiktok_product_url.format(found.id)
            return ListingState(Listing(found.id, url))
        if status in PENDING_STATUSES:
            return ListingState(pending_ref=found.id)
        if status == "FAILED":
            reasons = "; ".join(
                f"{r.position + ': ' if r.position else ''}{' '.join(r.reasons)}"
                + (f" (TikTok suggests: {' '.join(r.suggestions)})" if r.suggestions else "")
                for r in found.audit_failed_reasons
            )
            return ListingState(
                refused=f"TikTok's audit refused product {found.id}: {reasons or 'no reason given'}"
            )
        return ListingState(
            refused=f"the TikTok product {found.id} is {status} (by TikTok or the seller)"
        )

    def _lock(self, product_id: str) -> asyncio.Lock:
        lock = self._locks.get(product_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[product_id] = lock
        return lock

    # --- creating ------------------------------------------------------------------------------

    async def _draft(self, product: ProductRef) -> tuple[ListingDraft, Product]:
        found = await self.source.get_product(product.shop_id, product.product_id)
        try:
            return draft_from_printify(found), found
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from None

    async def category(self, printify_product: Product, title: str) -> str:
        """TIKTOK_CATEGORY_IDS' leaf for the product's type, else TikTok's recommendation for
        the title."""
        ids = self.settings.tiktok_category_ids
        for product_type, entry in self.catalog.items():
            if entry.blueprint_id == printify_product.blueprint_id and product_type.value in ids:
                return ids[product_type.value]
        return (await self.tiktok.recommend_category(title)).leaf_category_id

    async def warehouse(self) -> str:
        """TIKTOK_WAREHOUSE_ID, else the shop's default enabled sales warehouse (read once)."""
        if self._warehouse is None:
            found = [
                w
                for w in (await self.tiktok.get_warehouses()).warehouses
                if w.type == "SALES_WAREHOUSE" and w.effect_status in ("ENABLED", "")
            ]
            if not found:
                raise ConfigError("TIKTOK_WAREHOUSE_ID: the shop has no enabled sales warehouse")
            self._warehouse = next((w for w in found if w.is_default), found[0]).id
        return self._warehouse

    async def required_attributes(self, category_id: str) -> list[dict[str, object]]:
        """A value for each product attribute the category requires: TIKTOK_ATTRIBUTE_VALUES'
        by name, else the first TikTok lists. ConfigError naming one that has neither."""
        if category_id not in self._attributes:
            self._attributes[category_id] = (
                await self.tiktok.get_attributes(category_id)
            ).attributes
        out: list[dict[str, object]] = []
        wanted = self.settings.tiktok_attribute_values
        for attr in self._attributes[category_id]:
            if attr.type != "PRODUCT_PROPERTY" or not attr.required:
                continue
            name = wanted.get(attr.name)
            value: dict[str, str] | None = None
            if name is not None:
                match = next((v for v in attr.values if v.name.lower() == name.lower()), None)
                if match is not None:
                    value = {"id": match.id, "name": match.name}
                elif attr.is_customizable or not attr.values:
                    value = {"name": name}
                else:
                    raise ConfigError(
                        f"TIKTOK_ATTRIBUTE_VALUES: {name!r} is not a value of {attr.name} in "
                        f"category {category_id} ({', '.join(v.name for v in attr.values)})"
                    )
            elif attr.values:
                value = {"id": attr.values[0].id, "name": attr.values[0].name}
            if value is None:
                raise ConfigError(
                    f"TIKTOK_ATTRIBUTE_VALUES: category {category_id} requires {attr.name} "
                    f"({attr.id}), which lists no values: give one by name"
                )
            out.append({"id": attr.id, "values": [value]})
        return out

    async def _images(self, draft: ListingDraft) -> list[dict[str, str]]:
        wanted = draft.images[: self.settings.tiktok_max_images]
        if not wanted:
            raise PermanentError(
                f"product {draft.marker} has no mockup: TikTok creates no product without an image",
                vendor=VENDOR,
            )
        uris = []
        for n, url in enumerate(wanted, 1):
            data = await self.fetch_image(url)
            ext, mime = image_type(data)
            uploaded = await self.tiktok.upload_image(
                data, f"{marker_sku(draft.marker, n)}.{ext}", mime
            )
            uris.append({"uri": uploaded.uri})
        return uris

    async def _body(self, product: ProductRef) -> dict[str, object]:
        """The whole product as Create Product (and Edit Product) take it."""
        s = self.settings
        draft, printify_product = await self._draft(product)
        title = draft.title.strip()[:MAX_TITLE]
        if not title:
            raise PermanentError(f"product {draft.marker} has no title to list", vendor=VENDOR)
        category = await self.category(printify_product, title)
        attributes = await self.required_attributes(category)
        warehouse = await self.warehouse()
        images = await self._images(draft)
        skus = []
        for n, variant in enumerate(draft.variants, 1):
            sku: dict[str, object] = {
                "seller_sku": marker_sku(product.product_id, n),
                "price": {
                    "amount": f"{variant.price_cents / 100:.2f}",
                    "currency": s.tiktok_currency,
                },
                "inventory": [{"warehouse_id": warehouse, "quantity": s.tiktok_quantity}],
            }
            if len(draft.variants) > 1:
                sku["sales_attributes"] = [
                    {"name": SALES_ATTRIBUTE_NAMES.get(name.lower(), name), "value_name": value}
                    for name, value in variant.options[:3]
                ]
            skus.append(sku)
        length, width, height = s.tiktok_package_dimensions_cm
        body: dict[str, object] = {
            "title": title,
            "description": f"<p>{html.escape(draft.description or title)}</p>",
            "category_id": category,
            "main_images": images,
            "product_attributes": attributes,
            "skus": skus,
            "package_weight": {"value": f"{s.tiktok_package_weight_kg:g}", "unit": "KILOGRAM"},
            "package_dimensions": {
                "length": str(length),
                "width": str(width),
                "height": str(height),
                "unit": "CENTIMETER",
            },
            "save_mode": "LISTING",
        }
        return body

    async def aclose(self) -> None:
        await self.tiktok.aclose()
        if self._own_fetcher is not None:
            await self._own_fetcher.aclose()


def tiktok_channel(
    settings: TikTokSettings,
    source: PrintifyClient,
    *,
    catalog: Mapping[ProductType, CatalogEntry] | None = None,
    fetch_image: ImageFetcher | None = None,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TikTokChannel:
    """The TikTok channel of ``settings``' shop; ``pool`` holds the app's shared request budget
    and the seller's tokens."""
    return TikTokChannel(
        tiktok_client(settings, pool=pool, transport=transport),
        source,
        settings,
        catalog=catalog,
        fetch_image=fetch_image,
    )


SPEC = ChannelSpec(
    name="tiktok",
    settings=TikTokSettings,
    build=tiktok_channel,
    takes_pool=True,
    credential="TIKTOK_REFRESH_TOKEN",
    other_credentials=("TIKTOK_ACCESS_TOKEN",),
    url_setting="TIKTOK_API_URL",
    # TikTok's audit of a new product takes minutes to days: the watcher waits three days
    # for it (PUBLISH_CONFIRM_TIMEOUT_S overrides), where a publication through Printify
    # waits an hour.
    confirm_timeout_s=3 * 86400.0,
)
