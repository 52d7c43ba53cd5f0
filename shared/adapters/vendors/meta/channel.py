"""The Meta catalog as a sales channel: a Printify product written as one catalog item per
enabled variant, grouped by the product, in one ``items_batch`` call; listed when Meta's batch
finished without an error for them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref

import httpx
from psycopg_pool import AsyncConnectionPool

from shared.adapters.vendors.channels import (
    ChannelSpec,
    Listing,
    ListingState,
    ProductRef,
    handle_for,
)
from shared.adapters.vendors.listing import DraftVariant, ListingDraft, draft_from_printify
from shared.adapters.vendors.meta.client import MetaClient
from shared.adapters.vendors.meta.models import VENDOR, BatchStatus, ProductItem
from shared.adapters.vendors.meta.settings import MetaSettings
from shared.adapters.vendors.printify import PrintifyClient
from shared.domain.budget import LocalRateBudget, RateBudget, SharedRateBudget, account_key
from shared.platform.errors import PermanentError, RetryableError

logger = logging.getLogger("shared.adapters.vendors.meta")

MAX_RETAILER_ID = 100  # Meta's limit on a retailer id's length
MAX_TITLE, MAX_DESCRIPTION = 200, 9999  # Meta's limits on an item's title and description
SIZE_OPTIONS, COLOR_OPTIONS = ("size", "sizes"), ("color", "colors", "colour", "colours")
# ProductItem.visibility: "staging" keeps an item in the catalog hidden from shoppers (a seller's
# unpublish), "published" shows it (Meta's default; every write of publish says it).
HIDDEN, SHOWN = "staging", "published"
# How often a seller's decision asks whether Meta finished its batch: from the first to the last.
BATCH_POLL_S = (0.2, 5.0)


def retailer_id(marker: str, variant: DraftVariant) -> str:
    """A variant's item id: the product's marker and the variant's SKU, the same on every
    attempt (so a redelivery writes the same items again, never new ones)."""
    rid = f"{marker}-{variant.sku}"
    if len(rid) <= MAX_RETAILER_ID:
        return rid
    return f"{marker}-{hashlib.sha256(variant.sku.encode()).hexdigest()[:32]}"


def _option(variant: DraftVariant, names: tuple[str, ...]) -> str | None:
    return next((v for n, v in variant.options if n.strip().lower() in names), None)


class MetaChannel:
    """Lists Printify products in a Meta Commerce catalog (a :class:`SalesChannel`)."""

    name = "meta"

    def __init__(self, meta: MetaClient, source: PrintifyClient, settings: MetaSettings) -> None:
        self.meta = meta
        self.source = source
        self.settings = settings
        self.catalog_id = settings.meta_catalog_id
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # --- SalesChannel ----------------------------------------------------------------------

    async def publish(self, product: ProductRef) -> ListingState:
        """Write the product's items in one batch (UPDATE for those already in the catalog,
        CREATE for the others, every item shown): pending on the batch's handle. Already all
        there and shown: listed (items a withdrawal hid are shown again by the batch)."""
        async with self._lock(product.product_id):
            draft = await self._draft(product)
            found = await self._items(draft)
            if (
                len(found) == len(draft.variants)
                and not self._refusal(found)
                and not any(i.hidden for i in found.values())
            ):
                return self._listed(product, draft)
            return await self._send(product, draft, set(found))

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        """The product's items in the catalog: none -> None; some -> the rest written (pending
        on that batch); all -> listed (or refused when Meta rejected one in review)."""
        async with self._lock(product.product_id):
            draft = await self._draft(product)
            found = await self._items(draft)
            if not found:
                return None
            if len(found) < len(draft.variants) or any(i.hidden for i in found.values()):
                return await self._send(product, draft, set(found))
            refused = self._refusal(found)
            return ListingState(refused=refused) if refused else self._listed(product, draft)

    async def check(self, product: ProductRef) -> ListingState:
        """With the batch's handle: pending until Meta finished it, then listed, or refused
        with Meta's message for each of the product's items it rejected. Without one: by the
        items in the catalog."""
        if product.pending_ref is not None:
            status = await self.meta.batch_status(self.catalog_id, product.pending_ref)
            if not status.finished:
                return ListingState(pending_ref=product.pending_ref)
            return await self._settled(product, await self._draft(product), status)
        draft = await self._draft(product)
        found = await self._items(draft)
        if not found:
            return ListingState(
                refused=f"no item of product {draft.marker} (item group) is in Meta catalog "
                f"{self.catalog_id}: deleted there, or never written"
            )
        refused = self._refusal(found)
        if refused:
            return ListingState(refused=refused)
        if any(i.hidden for i in found.values()):
            return ListingState(
                refused=f"the items of product {draft.marker} are hidden from shoppers "
                f"(visibility {HIDDEN}) in Meta catalog {self.catalog_id}: withdrawn"
            )
        if len(found) < len(draft.variants):
            return ListingState()  # a batch writing them may still be running
        return self._listed(product, draft)

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        """Hide the product's items from shoppers (visibility ``staging``: kept in the catalog,
        shown again by a later publish) or delete them, in one batch, waited for. The items are
        found by their item group (the Printify product id) without reading Printify, whose
        product may be gone. False when none is there to take down (never listed, deleted,
        hidden already). A publication's batch still running (``product.pending_ref``) is
        waited for first: the items it is writing would otherwise appear after the withdrawal,
        live (a cancel during publishing)."""
        async with self._lock(product.product_id):
            if product.pending_ref is not None:
                await self._finished(product.pending_ref)
            items = await self.meta.group_items(self.catalog_id, product.product_id)
            wanted = sorted(
                i.retailer_id for i in items if i.retailer_id and (delete or not i.hidden)
            )
            if not wanted:
                return False
            requests: list[dict[str, object]] = [
                {"method": "DELETE", "data": {"id": rid}}
                if delete
                else {"method": "UPDATE", "data": {"id": rid, "visibility": HIDDEN}}
                for rid in wanted
            ]
            outcome = "deleted" if delete else "hidden"
            await self._wait(
                await self.meta.items_batch(self.catalog_id, requests),
                f"{outcome} the items of product {product.product_id}",
            )
            logger.info(
                "meta product withdrawn catalog_id=%s marker=%s items=%d outcome=%s",
                self.catalog_id,
                product.product_id,
                len(wanted),
                outcome,
            )
            return True

    async def reprice(self, product: ProductRef) -> bool:
        """Each item's price set to its Printify variant's now (UPDATE ``price``; hidden items
        too, so a later publish shows them at today's prices), in one batch, waited for.
        False when the product has no item in the catalog."""
        async with self._lock(product.product_id):
            draft = await self._draft(product)
            found = await self._items(draft)
            if not found:
                return False
            requests: list[dict[str, object]] = [
                {"method": "UPDATE", "data": {"id": rid, "price": self._price(v)}}
                for v in draft.variants
                if (rid := retailer_id(draft.marker, v)) in found
            ]
            await self._wait(
                await self.meta.items_batch(self.catalog_id, requests),
                f"priced the items of product {draft.marker}",
            )
            logger.info(
                "meta product repriced catalog_id=%s marker=%s items=%d",
                self.catalog_id,
                draft.marker,
                len(requests),
            )
            return True

    async def _finished(self, handle: str) -> None:
        """Until the batch ``handle`` has finished, whatever it did to its items (a publish's:
        its refusals are that publication's news, not the withdrawal's)."""
        try:
            await self._wait(handle, "finished the publication's batch")
        except PermanentError as exc:
            logger.info("meta publication batch finished with refusals handle=%s: %s", handle, exc)

    async def _wait(self, handle: str, what: str) -> None:
        """Until Meta finished the batch ``handle`` (within META_BATCH_WAIT_S): RetryableError
        when it has not (the retry reads the catalog before writing again: every request of
        these batches is the same whatever was applied), PermanentError naming the items it
        refused."""
        deadline = time.monotonic() + self.settings.meta_batch_wait_s
        pause, longest = BATCH_POLL_S
        while True:
            status = await self.meta.batch_status(self.catalog_id, handle)
            if status.finished:
                break
            if time.monotonic() + pause > deadline:
                raise RetryableError(
                    f"Meta had not {what} after {self.settings.meta_batch_wait_s:g}s (batch "
                    f"{status.status})",
                    vendor=VENDOR,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)
        refused = max(status.errors_total_count, len(status.errors))
        if refused:
            reasons = "; ".join(f"{e.id or 'the batch'}: {e.message}" for e in status.errors)
            raise PermanentError(
                f"Meta refused {refused} request(s) of the batch that {what}: "
                f"{reasons or 'no message given'}"[:2000],
                vendor=VENDOR,
            )
        if status.status.lower() != "finished":
            raise RetryableError(f"Meta's batch that {what} ended {status.status}", vendor=VENDOR)

    # --- the product's items -----------------------------------------------------------------

    def _lock(self, product_id: str) -> asyncio.Lock:
        lock = self._locks.get(product_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[product_id] = lock
        return lock

    async def _draft(self, product: ProductRef) -> ListingDraft:
        found = await self.source.get_product(product.shop_id, product.product_id)
        try:
            return draft_from_printify(found)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from None

    async def _items(self, draft: ListingDraft) -> dict[str, ProductItem]:
        ids = [retailer_id(draft.marker, v) for v in draft.variants]
        items = await self.meta.products(self.catalog_id, ids)
        wanted = set(ids)
        return {i.retailer_id: i for i in items if i.retailer_id in wanted}

    def link(self, product: ProductRef, draft: ListingDraft) -> str:
        """Where a buyer lands: META_PRODUCT_URL_TEMPLATE, else the engine's storefront."""
        handle = handle_for(draft.title or product.title, product.product_id)
        template = self.settings.meta_product_url_template
        if template:
            return template.format(handle=handle, product_id=product.product_id)
        return f"{self.settings.storefront_base_url.rstrip('/')}/{handle}"

    def _listed(self, product: ProductRef, draft: ListingDraft) -> ListingState:
        return ListingState(Listing(draft.marker, self.link(product, draft)))

    @staticmethod
    def _refusal(found: dict[str, ProductItem]) -> str | None:
        rejected = [i for i in found.values() if (i.review_status or "") == "rejected"]
        if not rejected:
            return None
        reasons = "; ".join(
            f"{i.retailer_id}: {', '.join(i.review_rejection_reasons) or 'rejected in review'}"
            for i in rejected
        )
        return f"Meta rejected {len(rejected)} of the product's items in review: {reasons}"

    def _requests(
        self, product: ProductRef, draft: ListingDraft, existing: set[str]
    ) -> list[dict[str, object]]:
        if not draft.images:
            raise PermanentError(
                f"product {draft.marker} has no mockup: Meta lists no item without image_link",
                vendor=VENDOR,
            )
        title = (draft.title or product.title).strip()[:MAX_TITLE]
        if not title:
            raise PermanentError(f"product {draft.marker} has no title to list", vendor=VENDOR)
        link = self.link(product, draft)
        requests: list[dict[str, object]] = []
        for variant in draft.variants:
            rid = retailer_id(draft.marker, variant)
            data: dict[str, object] = {
                "id": rid,
                "item_group_id": draft.marker,
                "title": title,
                "description": (draft.description or title)[:MAX_DESCRIPTION],
                "availability": "in stock",
                "condition": "new",
                "price": self._price(variant),
                "visibility": SHOWN,
                "link": link,
                "image_link": draft.images[0],
                "brand": self.settings.meta_brand,
            }
            if len(draft.images) > 1:
                data["additional_image_link"] = ",".join(draft.images[1:11])
            size, color = _option(variant, SIZE_OPTIONS), _option(variant, COLOR_OPTIONS)
            if size:
                data["size"] = size
            if color:
                data["color"] = color
            requests.append({"method": "UPDATE" if rid in existing else "CREATE", "data": data})
        return requests

    def _price(self, variant: DraftVariant) -> str:
        return f"{variant.price_cents / 100:.2f} {self.settings.meta_currency}"

    async def _send(
        self, product: ProductRef, draft: ListingDraft, existing: set[str]
    ) -> ListingState:
        handle = await self.meta.items_batch(
            self.catalog_id, self._requests(product, draft, existing)
        )
        logger.info(
            "meta batch sent catalog_id=%s marker=%s items=%d updates=%d",
            self.catalog_id,
            draft.marker,
            len(draft.variants),
            len(existing),
        )
        return ListingState(pending_ref=handle)

    async def _settled(
        self, product: ProductRef, draft: ListingDraft, status: BatchStatus
    ) -> ListingState:
        """A finished batch's outcome. The batch holds this product's items alone, so each of
        its errors is one of them (Meta lists a sample: ``errors_total_count`` counts all)."""
        ids = {retailer_id(draft.marker, v) for v in draft.variants}
        for warning in status.warnings:
            logger.warning(
                "meta item warning marker=%s retailer_id=%s message=%s",
                draft.marker,
                warning.id,
                warning.message[:300],
            )
        refused = max(status.errors_total_count, len(status.errors))
        if refused:
            reasons = "; ".join(f"{e.id or 'the batch'}: {e.message}" for e in status.errors)
            await self._withdraw(draft, ids)
            return ListingState(
                refused=f"Meta refused {refused} of the product's {len(ids)} catalog items: "
                f"{reasons or 'no message given'}"[:2000]
            )
        if status.status.lower() != "finished":  # canceled, or ended in an error: read back
            found = await self._items(draft)
            if len(found) < len(ids):
                return ListingState(
                    refused=f"Meta's batch ended {status.status} with {len(found)} of the "
                    f"product's {len(ids)} items in the catalog"
                )
        return self._listed(product, draft)

    async def _withdraw(self, draft: ListingDraft, ids: set[str]) -> None:
        """Delete the items of a refused product that Meta did save (the valid variants of a
        batch with errors), so no part of a product the job reports refused is for sale."""
        saved = await self._items(draft)
        if not saved:
            return
        await self.meta.items_batch(
            self.catalog_id, [{"method": "DELETE", "data": {"id": rid}} for rid in sorted(saved)]
        )
        logger.info(
            "meta refused product withdrawn marker=%s items=%d of=%d",
            draft.marker,
            len(saved),
            len(ids),
        )

    async def aclose(self) -> None:
        await self.meta.aclose()


def meta_budget(settings: MetaSettings, pool: AsyncConnectionPool | None) -> RateBudget:
    """The business's call budget: in PostgreSQL with a pool (every publisher shares it and
    its blocks), in process without."""
    if pool is None:
        return LocalRateBudget(settings.meta_calls_per_minute, 60.0, purpose="Meta Graph calls")
    owner = settings.meta_business_id or settings.meta_catalog_id
    return SharedRateBudget(
        pool,
        f"{account_key(VENDOR, owner)}:calls",
        limit=settings.meta_calls_per_minute,
        window_s=60.0,
        hold_s=3 * settings.meta_timeout_s + 10,
        purpose="Meta Graph calls",
    )


def meta_client(
    settings: MetaSettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> MetaClient:
    return MetaClient(
        access_token=settings.meta_access_token.get_secret_value(),
        app_secret=settings.meta_app_secret.get_secret_value(),
        budget=meta_budget(settings, pool),
        base_url=settings.meta_graph_url,
        api_version=settings.meta_api_version,
        usage_block_pct=settings.meta_usage_block_pct,
        throttle_wait_s=settings.meta_throttle_wait_s,
        timeout_s=settings.meta_timeout_s,
        transport=transport,
    )


def meta_channel(
    settings: MetaSettings,
    source: PrintifyClient,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> MetaChannel:
    """The Meta channel of ``settings``' catalog, reading products through ``source``."""
    return MetaChannel(meta_client(settings, pool=pool, transport=transport), source, settings)


# The channel as the engine registers it (shared.contract.sales_channels).
SPEC = ChannelSpec(
    name="meta",
    settings=MetaSettings,
    build=meta_channel,
    takes_pool=True,
    credential="META_ACCESS_TOKEN",
    url_setting="META_GRAPH_URL",
)
