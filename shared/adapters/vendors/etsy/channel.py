"""Etsy as a sales channel: a Printify product listed as a draft listing, its inventory, its
mockups, then activated; found again by its marker tag."""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from collections.abc import Mapping

import httpx
from psycopg_pool import AsyncConnectionPool

from shared.adapters.vendors.channels import (
    PENDING,
    ChannelSpec,
    Listing,
    ListingState,
    ProductRef,
)
from shared.adapters.vendors.etsy.client import EtsyClient
from shared.adapters.vendors.etsy.inventory import inventory_for
from shared.adapters.vendors.etsy.models import VENDOR, EtsyListing
from shared.adapters.vendors.etsy.settings import EtsySettings, etsy_client
from shared.adapters.vendors.etsy.text import (
    MARKER_PREFIX,
    MAX_TAGS,
    etsy_tags,
    etsy_title,
    marker_tag,
)
from shared.adapters.vendors.images import HttpImageFetcher, ImageFetcher, image_type
from shared.adapters.vendors.listing import ListingDraft, draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient, Product
from shared.contract.events import ProductType
from shared.domain.catalog import DEFAULT_CATALOG, CatalogEntry
from shared.platform.errors import (
    ConfigError,
    PermanentError,
)

logger = logging.getLogger("shared.adapters.vendors.etsy")  # the package's, as before the split

# Every state a listing can be in, the half-made (draft) first: where a marker is looked for.
SCAN_STATES = ("draft", "active", "inactive", "expired", "sold_out")
PAGE_LIMIT = 100
LISTING_URL = "https://www.etsy.com/listing/{}"
# The tag a listing the engine deactivated (a seller's unpublish or cancel) carries while
# inactive: such a listing is the engine's to list again, where one deactivated on Etsy (by the
# seller there, or by Etsy) is a human's decision that publish respects. Not "pod-": it is not a
# marker.
WITHDRAWN_TAG = "podengine withdrawn"


class EtsyChannel:
    """Lists Printify products in an Etsy shop (a :class:`SalesChannel`).

    ``source`` reads the product (its draft:
    :func:`~shared.adapters.vendors.listing.draft_from_printify`); its Printify blueprint gives the
    product type (``catalog``, the default catalog unless given), whose Etsy taxonomy is
    ``ETSY_TAXONOMY_IDS``'s. ``fetch_image`` gets a mockup's bytes by URL (Etsy takes image files,
    the draft has URLs)."""

    name = "etsy"

    def __init__(
        self,
        etsy: EtsyClient,
        source: PrintifyClient,
        settings: EtsySettings,
        *,
        catalog: Mapping[ProductType, CatalogEntry] | None = None,
        fetch_image: ImageFetcher | None = None,
    ) -> None:
        self.etsy = etsy
        self.source = source
        self.settings = settings
        self.shop_id = settings.etsy_shop_id
        self.catalog = dict(catalog if catalog is not None else DEFAULT_CATALOG)
        self._own_fetcher: HttpImageFetcher | None = None
        if fetch_image is None:
            self._own_fetcher = fetch_image = HttpImageFetcher(settings.etsy_timeout_s)
        self.fetch_image: ImageFetcher = fetch_image
        # Marker tag -> listing id, for listings seen or made: a redelivery costs one getListing.
        self._known: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._readiness: int | None = settings.etsy_readiness_state_id

    # --- SalesChannel ----------------------------------------------------------------------------

    async def publish(self, product: ProductRef) -> ListingState:
        """List the product: the listing with its marker if there is one (finished when half
        made), else a new one; one the engine withdrew is activated again. Raises
        PermanentError when its listing was deactivated or expired on Etsy (a human decides
        whether to list it again)."""
        async with self._lock(product.product_id):
            found = await self.find_listing(product.product_id)
            if found is None:
                return await self._create(product)
            state = await self._settle(product, found)
            if state.refused is not None:
                raise PermanentError(state.refused, vendor=VENDOR)
            return state

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        """The listing with the product's marker (finished when half made), or None."""
        async with self._lock(product.product_id):
            found = await self.find_listing(product.product_id)
            return None if found is None else await self._settle(product, found)

    async def check(self, product: ProductRef) -> ListingState:
        """Listed when the listing is active (or sold out); refused when it was deleted,
        deactivated or expired on Etsy; pending while it is a draft."""
        found = await self.find_listing(product.product_id)
        if found is None:
            return ListingState(
                refused=f"no Etsy listing carries the marker {marker_tag(product.product_id)}: "
                "it was deleted on Etsy, or never made"
            )
        refused = self._refusal(found)
        if refused is not None:
            return ListingState(refused=refused)
        if found.state == "draft":
            return PENDING
        return self._listed(found.listing_id)

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        """Deactivate the product's listing (Etsy's ``inactive``: hidden from buyers, kept with
        its inventory and images, tagged :data:`WITHDRAWN_TAG` so that a later publish lists
        it again) or delete it (deleteListing). False when there is none to take down: never
        made, deleted, or not on sale (a draft, expired, inactive already)."""
        async with self._lock(product.product_id):
            found = await self.find_listing(product.product_id)
            if found is None:
                return False
            tag = marker_tag(product.product_id)
            if delete:
                # Gone either way; a 404 is an earlier send whose answer was lost, or the seller.
                await self.etsy.delete_listing(found.listing_id)
                self._known.pop(tag, None)
                logger.info(
                    "etsy listing withdrawn listing_id=%s marker=%s outcome=deleted state=%s",
                    found.listing_id,
                    tag,
                    found.state,
                )
                return True
            if found.state != "active":
                return False  # not on sale; Etsy deactivates only an active listing
            others = [t for t in found.tags or [] if t.lower() not in (tag, WITHDRAWN_TAG)]
            await self.etsy.update_listing(
                self.shop_id,
                found.listing_id,
                {"state": "inactive", "tags": [tag, WITHDRAWN_TAG, *others][:MAX_TAGS]},
            )
            logger.info(
                "etsy listing withdrawn listing_id=%s marker=%s outcome=deactivated",
                found.listing_id,
                tag,
            )
            return True

    async def reprice(self, product: ProductRef) -> bool:
        """Write the Printify product's variant prices into the listing's inventory
        (updateListingInventory, per SKU). False when the product has no listing."""
        async with self._lock(product.product_id):
            found = await self.find_listing(product.product_id)
            if found is None:
                return False
            draft, _ = await self._draft(product)
            await self.etsy.update_listing_inventory(
                found.listing_id,
                inventory_for(
                    draft,
                    quantity=self.settings.etsy_quantity,
                    readiness_state_id=await self.readiness_state_id(),
                ),
            )
            logger.info(
                "etsy listing repriced listing_id=%s marker=%s products=%d",
                found.listing_id,
                marker_tag(product.product_id),
                len(draft.variants),
            )
            return True

    # --- finding -------------------------------------------------------------------------------

    async def find_listing(self, marker: str) -> EtsyListing | None:
        """The shop's listing tagged with ``marker``'s tag, in any state, or None.

        A listing seen before is read again (one call); otherwise the shop's listings are read,
        state by state (drafts first), a page of 100 at a time."""
        tag = marker_tag(marker)
        known = self._known.get(tag)
        if known is not None:
            try:
                listing = await self.etsy.get_listing(known)
            except PermanentError as exc:
                if exc.status != 404:
                    raise
                listing = None
            if listing is not None and tag in listing.tag_set():
                return listing
            self._known.pop(tag, None)
        for state in SCAN_STATES:
            offset = 0
            while True:
                page = await self.etsy.get_listings_by_shop(
                    self.shop_id, state=state, limit=PAGE_LIMIT, offset=offset
                )
                results = page.results or []
                found = None
                for listing in results:
                    self._remember(listing)
                    if found is None and tag in listing.tag_set():
                        found = listing
                if found is not None:
                    logger.info(
                        "etsy listing found marker=%s listing_id=%s state=%s",
                        tag,
                        found.listing_id,
                        found.state,
                    )
                    return found
                offset += len(results)
                if not results or offset >= (page.count or 0):
                    break
        return None

    def _remember(self, listing: EtsyListing) -> None:
        for tag in listing.tag_set():
            if tag.startswith(MARKER_PREFIX):
                self._known[tag] = listing.listing_id
                self._known.move_to_end(tag)
        while len(self._known) > 50_000:
            self._known.popitem(last=False)

    def _lock(self, product_id: str) -> asyncio.Lock:
        # One publication of a product at a time in this process.
        lock = self._locks.get(product_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[product_id] = lock
        return lock

    # --- listing -------------------------------------------------------------------------------

    def _listed(self, listing_id: int) -> ListingState:
        return ListingState(Listing(str(listing_id), LISTING_URL.format(listing_id)))

    @staticmethod
    def _withdrawn(listing: EtsyListing) -> bool:
        return listing.state == "inactive" and WITHDRAWN_TAG in listing.tag_set()

    @staticmethod
    def _refusal(listing: EtsyListing) -> str | None:
        state, lid = listing.state, listing.listing_id
        if state == "inactive" and WITHDRAWN_TAG in listing.tag_set():
            return f"the Etsy listing {lid} was withdrawn by the engine (a seller's decision)"
        if state == "inactive":
            return f"the Etsy listing {lid} was deactivated (by the seller or by Etsy)"
        if state == "expired":
            return f"the Etsy listing {lid} expired and was not renewed"
        return None

    async def _draft(self, product: ProductRef) -> tuple[ListingDraft, Product]:
        found = await self.source.get_product(product.shop_id, product.product_id)
        try:
            return draft_from_printify(found), found
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from None

    def _taxonomy(self, printify_product: Product) -> int:
        blueprint = printify_product.blueprint_id
        ids = self.settings.taxonomy_ids()
        for product_type, entry in self.catalog.items():
            if entry.blueprint_id == blueprint and product_type.value in ids:
                return ids[product_type.value]
        raise ConfigError(
            f"ETSY_TAXONOMY_IDS: no Etsy taxonomy for Printify blueprint {blueprint} (product "
            f"types with a taxonomy: {sorted(ids)})"
        )

    async def readiness_state_id(self) -> int:
        """The processing profile of the listings' products: ``ETSY_READINESS_STATE_ID``, else
        the shop's first ``made_to_order`` profile (print on demand is made to order), read
        once. Etsy refuses a physical listing without one."""
        if self._readiness is None:
            profiles = await self.etsy.get_readiness_state_definitions(self.shop_id)
            made = [p for p in profiles if p.readiness_state == "made_to_order"]
            if not made:
                raise ConfigError(
                    f"ETSY_READINESS_STATE_ID: Etsy shop {self.shop_id} has no made_to_order "
                    "processing profile; create one in Shop Manager or set the id"
                )
            self._readiness = made[0].readiness_state_id
            logger.info(
                "etsy processing profile shop_id=%s readiness_state_id=%s days=%s-%s",
                self.shop_id,
                self._readiness,
                made[0].min_processing_days,
                made[0].max_processing_days,
            )
        return self._readiness

    async def _create(self, product: ProductRef) -> ListingState:
        settings = self.settings
        if settings.etsy_shipping_profile_id is None:
            raise ConfigError(
                "ETSY_SHIPPING_PROFILE_ID: Etsy lists physical products only with one"
            )
        readiness = await self.readiness_state_id()
        draft, printify_product = await self._draft(product)
        title = etsy_title(draft.title)
        if not title:
            raise PermanentError(f"product {draft.marker} has no title to list", vendor=VENDOR)
        tag = marker_tag(draft.marker)
        fields: dict[str, object] = {
            "quantity": settings.etsy_quantity,
            "title": title,
            "description": draft.description or title,
            "price": f"{draft.min_price_cents / 100:.2f}",
            "who_made": settings.etsy_who_made,
            "when_made": settings.etsy_when_made,
            "taxonomy_id": self._taxonomy(printify_product),
            "shipping_profile_id": settings.etsy_shipping_profile_id,
            "readiness_state_id": readiness,
            "return_policy_id": settings.etsy_return_policy_id,
            "is_supply": False,
            "type": "physical",
            # The marker first, so the product's own tags never push it out.
            "tags": [tag, *etsy_tags(draft.tags, MAX_TAGS - 1)],
        }
        created = await self.etsy.create_draft_listing(self.shop_id, fields)
        listing_id = created.listing_id
        self._known[tag] = listing_id
        await self._finish(listing_id, draft, images=0, skus=created.skus())
        return self._listed(listing_id)

    async def _settle(self, product: ProductRef, found: EtsyListing) -> ListingState:
        """A found listing as it stands; a draft is finished first, one the engine withdrew
        is activated again."""
        if self._withdrawn(found):
            return await self._relist(product, found)
        refused = self._refusal(found)
        if refused is not None:
            return ListingState(refused=refused)
        listing_id = found.listing_id
        if found.state != "draft":
            return self._listed(listing_id)
        draft, _ = await self._draft(product)
        full = await self.etsy.get_listing(listing_id, includes=("Images", "Inventory"))
        if full.state != "draft":  # finished meanwhile
            return await self._settle(product, full)
        logger.info("etsy listing half made, finishing listing_id=%s", listing_id)
        await self._finish(listing_id, draft, images=len(full.images or []), skus=full.skus())
        return self._listed(listing_id)

    async def _relist(self, product: ProductRef, found: EtsyListing) -> ListingState:
        """Activate a listing the engine withdrew, with the product's tags back."""
        draft, _ = await self._draft(product)
        tags = [marker_tag(draft.marker), *etsy_tags(draft.tags, MAX_TAGS - 1)]
        await self.etsy.update_listing(
            self.shop_id, found.listing_id, {"state": "active", "tags": tags}
        )
        logger.info("etsy listing active again listing_id=%s marker=%s", found.listing_id, tags[0])
        return self._listed(found.listing_id)

    async def _finish(
        self, listing_id: int, draft: ListingDraft, *, images: int, skus: list[str]
    ) -> None:
        """Give a draft listing what it lacks (inventory, images from rank ``images + 1``),
        then publish it."""
        settings = self.settings
        if skus != sorted(v.sku for v in draft.variants):
            await self.etsy.update_listing_inventory(
                listing_id,
                inventory_for(
                    draft,
                    quantity=settings.etsy_quantity,
                    readiness_state_id=await self.readiness_state_id(),
                ),
            )
        wanted = draft.images[: settings.etsy_max_images]
        if not wanted and images == 0:
            raise PermanentError(
                f"product {draft.marker} has no mockup: Etsy publishes no listing without an image",
                vendor=VENDOR,
            )
        # Ranks in order, each overwritten if there: an upload that landed before a crash is
        # replaced, not doubled.
        for rank in range(images + 1, len(wanted) + 1):
            data = await self.fetch_image(wanted[rank - 1])
            ext, _ = image_type(data)
            await self.etsy.upload_listing_image(
                self.shop_id,
                listing_id,
                data,
                rank=rank,
                overwrite=True,
                file_name=f"{marker_tag(draft.marker)}-{rank}.{ext}",
            )
        await self.etsy.update_listing(self.shop_id, listing_id, {"state": "active"})
        logger.info(
            "etsy listing active listing_id=%s marker=%s products=%d images=%d",
            listing_id,
            marker_tag(draft.marker),
            len(draft.variants),
            max(images, len(wanted)),
        )

    async def aclose(self) -> None:
        """Close the Etsy client and the image fetcher it made (not ``source``)."""
        await self.etsy.aclose()
        if self._own_fetcher is not None:
            await self._own_fetcher.aclose()


def etsy_channel(
    settings: EtsySettings,
    source: PrintifyClient,
    *,
    catalog: Mapping[ProductType, CatalogEntry] | None = None,
    fetch_image: ImageFetcher | None = None,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EtsyChannel:
    """The Etsy channel of ``settings``' shop, reading products through ``source``; ``pool``
    holds the app's shared request budget."""
    return EtsyChannel(
        etsy_client(settings, pool=pool, transport=transport),
        source,
        settings,
        catalog=catalog,
        fetch_image=fetch_image,
    )


# The channel as the engine registers it (shared.contract.sales_channels).
SPEC = ChannelSpec(
    name="etsy",
    settings=EtsySettings,
    build=etsy_channel,
    takes_pool=True,
    credential="ETSY_REFRESH_TOKEN",
    # An access token alone is an account of one's own too (for an hour).
    other_credentials=("ETSY_ACCESS_TOKEN",),
    url_setting="ETSY_API_URL",
)
