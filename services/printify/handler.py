"""The printify stage: an image becomes one Printify product per requested product type.

The image is uploaded once (by URL when Printify can fetch it from storage: a presigned S3 URL or
the served folder; else as base64, under 5 MB only), the catalog
entry of each type is resolved to a blueprint, print provider and variants, and each product is
created with the image on every print area, then each variant is priced from the production
cost Printify reports for it (:mod:`shared.domain.pricing`: never below cost, the type's margin,
.99). A type that fails permanently is reported on the stage's DLQ (with its input, for replay)
while the other types still go through; anything retryable fails the whole message so the runner
retries it.

Delivery is at-least-once, so every external side effect goes through the ledger
(:mod:`shared.domain.ledger`): the upload once per (job, image), the create and the pricing once per
(job, image, type).
A create whose outcome is unknown (crash or timeout after the call) is reconciled by looking the
product up by its deterministic marker SKU, so a redelivery names the same product id.

A regenerated image (generation g > 0) is a new render: its steps and markers are its
generation's, and the products of the generations before it are deleted first. What the stage
made is recorded per (job, image, generation, type) for the seller's decisions, which the stage
also reads (:mod:`services.printify.decisions`). A cancelled job makes nothing: each create asks
for the cancel before its call, and each image records what it made before it looks for the
cancel again, while the cancel is recorded before it reads what was made, so whichever comes
second deletes the product.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple, NotRequired, TypedDict

from pydantic import BaseModel, Field

from services.printify.decisions import DecisionHandler, Target, Undo, deletable
from services.printify.settings import CatalogEntry, PrintifySettings
from shared.adapters.storage import ImageReadError, ImageStore
from shared.adapters.store import cancellations, made_products
from shared.adapters.vendors.printify import (
    AreaPlan,
    CatalogVariant,
    Product,
    build_product_payload,
    choose_shop,
    plan_print_areas,
    printify_client,
)
from shared.adapters.vendors.protocols import ProductVendor
from shared.contract.events import (
    MAX_MOCKUPS,
    ImageGenerated,
    ProductCreated,
    ProductCreatedPayload,
    ProductType,
    ScreeningDecision,
    SellerDecision,
    StageFailed,
    StageFailedPayload,
)
from shared.contract.topics import PRINTIFY, PRODUCTS_CREATED
from shared.domain.ledger import EffectKey, EffectState, Ledger, Steps, step_name
from shared.domain.pricing import PriceSummary, price_variants, summarise
from shared.pipeline.runner import Handler, MessageContext, Output
from shared.pipeline.service import closing
from shared.platform.db import migrate, open_pool
from shared.platform.errors import PermanentError, PodError, RetryableError

logger = logging.getLogger(__name__)

PRODUCER = "printify"
# Printify takes base64 uploads (deprecated) for small files only; larger ones go by URL.
BASE64_MAX_BYTES = 5 * 1024 * 1024


def sku_prefix(job_id: str, image_index: int, product_type: str, generation: int = 0) -> str:
    """Deterministic per (job, image, type, generation), to find a product whose create outcome
    is unknown. A regenerated image's products are new ones, so their marker differs from the
    earlier generations' (generation 0 keeps the marker products had before generations)."""
    name = f"{job_id}:{image_index}:{product_type}"
    if generation:
        name = f"{name}:g{generation}"
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"pod-{digest[:16]}"


class _Cancelled(Exception):
    """The job was cancelled before a product was created: nothing is created."""


class PrintifyHandler:
    """ImageGenerated -> ProductCreated per product type (+ StageFailed for permanent failures);
    SellerDecision -> what the decision asks of the products made (:mod:`.decisions`)."""

    def __init__(
        self,
        *,
        client: ProductVendor,
        ledger: Ledger,
        catalog: dict[ProductType, CatalogEntry],
        storage: ImageStore,
        image_max_bytes: int = 64 * 1024 * 1024,
        shop_id: str | None = None,
        min_dpi: float = 150,
    ) -> None:
        self.client = client
        self.min_dpi = min_dpi
        self.ledger = ledger
        self.catalog = catalog
        self.storage = storage
        self.image_max_bytes = image_max_bytes
        self._configured_shop = shop_id
        self._shop: str | None = None  # chosen (and checked against the account) on first use
        self.pool = ledger.pool
        self.undo = Undo(client, ledger, self.pool)
        self.decisions = DecisionHandler(
            client=client, ledger=ledger, pool=self.pool, catalog=catalog
        )

    async def shop_id(self) -> str:
        """The configured shop, else the account's only one (checked once: a ConfigError
        names the shops when the account has several)."""
        if self._shop is None:
            self._shop = str((await choose_shop(self.client, self._configured_shop)).id)
        return self._shop

    async def _upload(self, image: ImageGenerated, steps: Steps) -> str:
        """The image's upload id; uploaded once per (job, image) however often redelivered."""
        p = image.payload

        async def do() -> Uploaded:
            name = f"{p.sha256}.png"
            try:
                url = (
                    p.uri
                    if p.uri.startswith(("http://", "https://"))
                    else await asyncio.to_thread(self.storage.fetch_url, p.uri)
                )
                if url is not None:  # Printify fetches it: any size
                    upload = await self.client.upload_image(file_name=name, url=url)
                    return Uploaded(image_id=upload.id)
                data = await asyncio.to_thread(
                    self.storage.read, p.uri, sha256=p.sha256, max_bytes=self.image_max_bytes
                )
            except ImageReadError as exc:
                # Nothing is uploaded: the URI may name a secret (/proc/self/environ).
                raise PermanentError(f"image {p.sha256[:12]} not readable: {exc}") from None
            if len(data) > BASE64_MAX_BYTES:
                raise PermanentError(
                    f"image {p.sha256[:12]} is {len(data)} bytes: Printify takes base64 uploads "
                    f"under {BASE64_MAX_BYTES} bytes only (and deprecates them); store images "
                    f"where Printify can fetch them: IMAGE_STORAGE_URL (S3) or "
                    f"IMAGE_PUBLIC_BASE_URL",
                    vendor="printify",
                )
            upload = await self.client.upload_image(file_name=name, contents=data)
            return Uploaded(image_id=upload.id)

        # No reconcile: a duplicate upload is an orphan file, not a duplicate listing, so an
        # unknown outcome is settled by uploading again.
        result = await steps.once(_upload_key(image), do, model=Uploaded)
        return result.image_id

    async def _variants(self, entry: CatalogEntry) -> list[CatalogVariant]:
        variants = await self.client.list_variants(entry.blueprint_id, entry.print_provider_id)
        chosen = entry.select(variants)
        if not chosen:
            raise PermanentError(
                f"no available variants for blueprint {entry.blueprint_id} "
                f"at provider {entry.print_provider_id}",
                vendor="printify",
            )
        return chosen

    async def _create(
        self,
        event: ImageGenerated,
        product_type: ProductType,
        image_id: str,
        shop: str,
        steps: Steps,
    ) -> ProductCreated:
        p = event.payload
        entry = self.catalog.get(product_type)
        if entry is None:
            raise PermanentError(f"no catalog entry for product type {product_type.value}")
        variants = await self._variants(entry)
        areas = self._place(p.width, p.height, product_type, entry, variants)
        marker = sku_prefix(event.job_id, p.image_index, product_type.value, p.generation)
        body = build_product_payload(
            title=p.title,
            description=p.description,
            tags=p.tags,
            blueprint_id=entry.blueprint_id,
            print_provider_id=entry.print_provider_id,
            variants=variants,
            price_cents=entry.price_cents,
            image_id=image_id,
            positions=entry.positions,
            sku_prefix=marker,
            areas=areas,
        )

        chosen = {v.id for v in variants}

        async def do() -> Created:
            # A cancel wins over work in flight: asked before the call, not only on arrival.
            if await cancellations.is_cancelled(self.pool, event.job_id):
                raise _Cancelled
            return _created(await self.client.create_product(shop, body), chosen)

        key = _create_key(event, product_type)

        async def reconcile() -> Created | None:
            # Every attempt printed the same upload (made once per image) on the same blueprint
            # with the marker in its SKUs (when Printify keeps them), and the product cannot be
            # older than the first attempt.
            since = await self.ledger.started_at(key)
            found = await self.client.find_product_by_marker(
                shop,
                marker,
                image_id=image_id,
                blueprint_id=entry.blueprint_id,
                print_provider_id=entry.print_provider_id,
                since=since,
            )
            if found is None:
                return None
            # The variants the earlier attempt chose, where its SKUs say; else this attempt's.
            marked = {v.id for v in found.variants if v.sku == f"{marker}-{v.id}"}
            return _created(found, marked or chosen)

        created = await steps.once(key, do, reconcile, model=Created)
        product_id = created.product_id
        price = await self._price(key, entry, shop, product_id, created, steps)
        payload = ProductCreatedPayload(
            image_index=p.image_index,
            product_type=product_type,
            product_id=product_id,
            shop_id=shop,
            blueprint_id=entry.blueprint_id,
            print_provider_id=entry.print_provider_id,
            variant_count=created.variant_count,
            prices=price,
            print_dpi=min(a.min_dpi for a in areas),
            mockups=list(created.mockups),
            title=p.title,
            routing=p.routing,
            generation=p.generation,
        )
        return event.derive(
            ProductCreated, payload, producer=PRODUCER, key=f"product:{product_type.value}"
        )

    def _place(
        self,
        width: int,
        height: int,
        product_type: ProductType,
        entry: CatalogEntry,
        variants: list[CatalogVariant],
    ) -> list[AreaPlan]:
        """The art's placement on each print area of the catalog's variants; a permanent error
        when it would print below ``min_dpi`` anywhere (Printify does not check: the seller
        would pay for the returns of blurry prints)."""
        try:
            areas = plan_print_areas(variants, entry.positions, width, height)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor="printify") from None
        for area in areas:
            for position, at in area.placements:
                if at.dpi < self.min_dpi:
                    raise PermanentError(
                        f"art {width}x{height} would print at {at.dpi:g} DPI on the "
                        f"{product_type.value} {position}, below PRINT_MIN_DPI {self.min_dpi:g}: "
                        f"render it larger (PRINT_DPI, PRINT_MAX_UPSCALE)",
                        vendor="printify",
                    )
        return areas

    async def _price(
        self,
        created_key: EffectKey,
        entry: CatalogEntry,
        shop: str,
        product_id: str,
        created: Created,
        steps: Steps,
    ) -> PriceSummary:
        """Price each chosen variant from its production cost (once per product): Printify
        reveals costs only on a product it has made, and refuses to publish below them.

        The update names every variant of the product with its whole state (price, enabled or
        not, SKU): Printify's reference says all variants must be present, and does not say
        whether a list that misses some is refused, replaces the product's (disabling the rest,
        resetting what a variant leaves out) or is merged into it; sent whole, it means the same
        under each. It is also what disables the variants the create did not choose, whether
        Printify listed them disabled, enabled or not at all."""

        async def do() -> PriceSummary:
            known = {int(v): c for v, c in created.costs.items()}
            rows = [_VariantRow(*row) for row in created.variants]
            if not known or not rows:  # recorded by an older version: read what Printify has
                product = await self.client.get_product(shop, product_id)
                rows = _variant_rows(product)
                known = known or _costs(product, product.enabled_ids())
            if not known:
                raise PermanentError(
                    f"Printify gave no production costs for product {product_id}",
                    vendor="printify",
                )
            prices = price_variants(known, entry.pricing())
            changes = [_variant_change(row, prices.get(row.id)) for row in rows]
            await self.client.update_product(shop, product_id, {"variants": changes})
            return summarise(known, prices)

        # An update is idempotent: an unknown outcome is settled by sending it again.
        return await steps.once(_price_key(created_key), do, model=PriceSummary)

    async def __call__(
        self, event: ImageGenerated | SellerDecision, ctx: MessageContext
    ) -> list[Output]:
        if isinstance(event, SellerDecision):
            await self.shop_id()  # the account is checked before anything is acted on
            return await self.decisions(event)
        return await self._image(event, ctx)

    async def _image(self, event: ImageGenerated, ctx: MessageContext) -> list[Output]:
        shop = await self.shop_id()
        p = event.payload
        # Both read at once: two round trips on every image's path otherwise.
        cancelled, rows = await asyncio.gather(
            cancellations.is_cancelled(self.pool, event.job_id),
            made_products.of_job(self.pool, event.job_id),
        )
        if cancelled:
            return await self._clear_cancelled(event, shop)
        image = [r for r in rows if r.image_index == p.image_index]
        newer = max((r.generation for r in image), default=-1)
        if newer > p.generation:
            # A redelivery of an image since regenerated: its products were replaced.
            logger.warning(
                "image dropped, regenerated since job_id=%s image_index=%d generation=%d newest=%d",
                event.job_id,
                p.image_index,
                p.generation,
                newer,
            )
            return []
        # A regenerated image replaces the generations before it: their products go first.
        earlier = deletable([r for r in image if r.generation < p.generation], "regenerated")
        outputs: list[Output] = [
            await self.undo.delete(event, Target.of(m), "regenerated") for m in earlier
        ]
        if p.screening is not None and p.screening.decision is ScreeningDecision.BLOCK:
            # Screening blocked this design: nothing of it reaches Printify (the monitor shows
            # the job's image blocked, with the reasons, from the image.generated itself).
            logger.info(
                "image blocked by screening, nothing made job_id=%s image_index=%d "
                "generation=%d checks=%s",
                event.job_id,
                p.image_index,
                p.generation,
                ",".join(sorted({r.check.value for r in p.screening.reasons})),
            )
            return outputs
        made: list[ProductCreated] = []
        # A product of this render deleted since (rejected, deleted after launch) is not made
        # or handed on again by a redelivery.
        gone = {
            r.product_type for r in image if r.generation == p.generation and r.state == "deleted"
        }
        # Every call this image may take, claimed in one round trip and recorded in another.
        types = [t for t in p.routing.product_types if t.value not in gone]
        creates = [_create_key(event, t) for t in types]
        keys = [_upload_key(event), *creates, *(_price_key(k) for k in creates)]
        async with self.ledger.steps(keys) as steps:
            image_id = await self._upload(event, steps)
            for product_type in types:
                try:
                    created = await self._create(event, product_type, image_id, shop, steps)
                except _Cancelled:
                    continue
                except PodError as exc:
                    if exc.retryable:
                        raise
                    await made_products.record_failed(
                        self.pool,
                        event.job_id,
                        p.image_index,
                        p.generation,
                        product_type.value,
                        exc.describe(),
                    )
                    failure = self._failure(event, product_type, exc, ctx)
                    outputs.append(Output(PRINTIFY.dlq, failure))
                    continue
                made.append(created)
                outputs.append(Output(PRODUCTS_CREATED, created))
        if made and await self._record_made(event.job_id, made):
            # Cancelled while these were being made: nothing of the job is left behind.
            outputs = [o for o in outputs if o.topic != PRODUCTS_CREATED]
            for c in made:
                outputs.append(await self.undo.delete(event, Target.of(c.payload), "cancelled"))
            made = []
        logger.info(
            "products created job_id=%s image_index=%d generation=%d created=%d failed=%d",
            event.job_id,
            p.image_index,
            p.generation,
            len(made),
            sum(1 for o in outputs if o.topic == PRINTIFY.dlq),
        )
        return outputs

    async def _record_made(self, job_id: str, made: list[ProductCreated]) -> bool:
        """Record the products made, then look for a cancel again (True: the job was cancelled
        meanwhile). Recorded first, on the same connection: a cancel that read the table
        before this sees them, or this sees the cancel; one round trip (a pipeline) for all."""
        async with self.pool.connection() as conn, conn.pipeline():
            for created in made:
                await made_products.record_made(conn, job_id, created.payload)
            return await cancellations.is_cancelled_in(conn, job_id)

    async def _clear_cancelled(self, event: ImageGenerated, shop: str) -> list[Output]:
        """An image of a cancelled job makes nothing; whatever an earlier attempt made of it
        (recorded by the ledger, or found by its marker after an attempt whose outcome is
        unknown) is deleted."""
        p = event.payload
        outputs: list[Output] = []
        for product_type in p.routing.product_types:
            key = _create_key(event, product_type)
            entry = await self.ledger.get(key)
            if entry is None:
                continue
            product_id: str | None = None
            if entry.state is EffectState.DONE and entry.result is not None:
                product_id = Created.model_validate(entry.result).product_id
            else:
                marker = sku_prefix(event.job_id, p.image_index, product_type.value, p.generation)
                found = await self.client.find_product_by_marker(
                    shop, marker, since=await self.ledger.started_at(key)
                )
                product_id = None if found is None else found.id
            if product_id is not None:
                target = Target(p.image_index, p.generation, product_type, product_id, shop)
                outputs.append(await self.undo.delete(event, target, "cancelled"))
        logger.info(
            "image of a cancelled job job_id=%s image_index=%d deleted=%d",
            event.job_id,
            p.image_index,
            len(outputs),
        )
        return outputs

    def _failure(
        self,
        event: ImageGenerated,
        product_type: ProductType,
        exc: PodError,
        ctx: MessageContext,
    ) -> StageFailed:
        logger.error(
            "product failed job_id=%s image_index=%d product_type=%s error=%s",
            event.job_id,
            event.payload.image_index,
            product_type.value,
            exc.describe(),
        )
        # The input narrowed to the failed type: replaying it redoes only what failed.
        routing = event.payload.routing.model_copy(update={"product_types": [product_type]})
        replay = event.model_copy(
            update={"payload": event.payload.model_copy(update={"routing": routing})}
        )
        payload = StageFailedPayload(
            stage=PRODUCER,
            error_class=exc.error_class,
            message=exc.describe(),
            retryable=False,
            image_index=event.payload.image_index,
            product_type=product_type,
            input_topic=ctx.topic,
            input_partition=ctx.partition,
            input_offset=ctx.offset,
            input_event=replay.model_dump(mode="json"),
        )
        return event.derive(
            StageFailed, payload, producer=PRODUCER, key=f"failed:{product_type.value}"
        )


class _VariantRow(NamedTuple):
    """A variant as the product lists it: what an update must send back unchanged."""

    id: int
    price: int
    sku: str | None
    chosen: bool


class Uploaded(BaseModel):
    """What the ledger keeps of an upload."""

    image_id: str


class Created(BaseModel):
    """What the ledger keeps of a created product: its id, every variant it lists (to send them
    all back when pricing), the chosen ones' costs (by variant id, as JSON keys them), and its
    mockups. Rows recorded by an older version lack costs and variants: pricing reads them."""

    product_id: str
    variant_count: int
    costs: dict[str, int] = Field(default_factory=dict)
    variants: list[tuple[int, int, str | None, bool]] = Field(default_factory=list)
    mockups: list[str] = Field(default_factory=list)


def _costs(product: Product, chosen: set[int]) -> dict[int, int]:
    """``{variant id: production cost}`` of the ``chosen`` variants of a product."""
    return {v.id: v.cost for v in product.variants if v.id in chosen and v.cost is not None}


def _variant_rows(product: Product, chosen: set[int] | None = None) -> list[_VariantRow]:
    """Every variant the product lists; ``chosen`` (default: the enabled ones) are sold."""
    chosen = product.enabled_ids() if chosen is None else chosen
    return [
        _VariantRow(v.id, v.price, v.sku or None, v.id in chosen)
        for v in product.variants
        if v.price is not None
    ]


class _VariantChange(TypedDict):
    """A variant in an update's body."""

    id: int
    price: int
    is_enabled: bool
    sku: NotRequired[str]


def _variant_change(row: _VariantRow, price: int | None) -> _VariantChange:
    """A variant's whole state for an update: sold at ``price``, or left as it is, disabled."""
    change: _VariantChange = {
        "id": row.id,
        "price": price if row.chosen and price is not None else row.price,
        "is_enabled": row.chosen and price is not None,
    }
    if row.sku is not None:
        change["sku"] = row.sku
    return change


def _created(product: Product, chosen: set[int]) -> Created:
    """What the ledger keeps of a created product. The ``chosen`` variants are the ones sold,
    whatever Printify made of the others (disabled, enabled or absent)."""
    rows = _variant_rows(product, chosen)
    costs = _costs(product, chosen)
    images = [i for i in product.images if i.src]
    images.sort(key=lambda i: not i.is_default)  # the default mockup first
    return Created(
        product_id=product.id,
        variant_count=sum(1 for r in rows if r.chosen),
        costs={str(v): c for v, c in costs.items()},
        variants=[(r.id, r.price, r.sku, r.chosen) for r in rows],
        mockups=[str(i.src) for i in images[:MAX_MOCKUPS]],
    )


@asynccontextmanager
async def build_handler(
    settings: PrintifySettings,
) -> AsyncIterator[Handler[ImageGenerated | SellerDecision]]:
    """The handler wired to the real Printify client and the ledger named by ``settings``."""
    # Idempotent and lock-serialised: a stage started on its own still finds its table.
    await asyncio.to_thread(migrate, settings.url)
    # Unchecked: a round trip saved on every use; a broken connection is retried.
    pool = await open_pool(
        settings.url, max_size=settings.db_pool_max, name="printify", check=False
    )
    try:
        client = printify_client(settings, pool)
        async with closing(client):
            handler = PrintifyHandler(
                client=client,
                ledger=Ledger(pool),
                catalog=settings.catalog(),
                storage=settings.image_store(),
                image_max_bytes=settings.image_max_bytes,
                shop_id=settings.printify_shop_id,
                min_dpi=settings.print_min_dpi,
            )
            try:
                await handler.shop_id()  # a shop that cannot be chosen stops the start
            except RetryableError as exc:  # Printify unreachable: checked on the first image
                logger.warning("printify shop not checked error=%s", exc.describe())
            yield handler
    finally:
        await pool.close()


# A regenerated image's steps are its generation's (``create@g1``): its upload and products are
# new ones; generation 0 keeps the names steps had before generations.
def _upload_key(image: ImageGenerated) -> EffectKey:
    p = image.payload
    return EffectKey(image.job_id, p.image_index, "", step_name("upload", generation=p.generation))


def _create_key(image: ImageGenerated, product_type: ProductType) -> EffectKey:
    p = image.payload
    step = step_name("create", generation=p.generation)
    return EffectKey(image.job_id, p.image_index, product_type.value, step)


def _price_key(created: EffectKey) -> EffectKey:
    _, _, tag = created.step.partition("@")
    step = f"price@{tag}" if tag else "price"
    return EffectKey(created.job_id, created.image_index, created.product_type, step)
