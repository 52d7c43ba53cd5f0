"""What the Printify simulator holds: the vendor's objects (shops, uploads, products and their
variants, webhooks) as typed records, each account's books, the rate limits, the channels'
behaviour and the undocumented choices, gathered in one :class:`PrintifySim` that every route
gets as a dependency."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from simulators.common import SlidingWindowLimiter
from simulators.common.control import as_float, as_int
from simulators.printify.catalog import CatalogVariant
from simulators.printify.settings import PrintifySettings

SHOP_ID = 12345678
SHOP_TITLE = "POD Engine Shop"
SALES_CHANNEL = "custom_integration"


def now_stamp() -> str:
    """Printify's timestamp of products and webhook calls."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


@dataclass(frozen=True)
class Shop:
    id: int
    title: str
    sales_channel: str

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def shops_for(channels: list[str]) -> list[Shop]:
    """Each account's shops: one per sales channel, numbered from :data:`SHOP_ID`."""
    return [
        Shop(
            id=SHOP_ID + i,
            title=SHOP_TITLE if i == 0 else f"{channel.replace('_', ' ').title()} Shop",
            sales_channel=channel,
        )
        for i, channel in enumerate(channels)
    ]


@dataclass(frozen=True)
class Upload:
    """An uploaded image: only the metadata is kept (the bytes are dropped so memory stays flat
    on long runs)."""

    id: str
    file_name: str
    height: int
    width: int
    size: int
    mime_type: str
    preview_url: str
    upload_time: str

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class PlacedImage(TypedDict):
    id: str
    name: str
    type: str
    height: int
    width: int
    x: float
    y: float
    scale: float
    angle: float


class Placeholder(TypedDict):
    position: str
    images: list[PlacedImage]


class PrintArea(TypedDict):
    variant_ids: list[int]
    placeholders: list[Placeholder]


class Mockup(TypedDict):
    src: str
    variant_ids: list[int]
    position: str
    is_default: bool


class External(TypedDict):
    id: str
    handle: str


@dataclass
class ProductVariant:
    """One variant of a product as Printify returns it."""

    id: int
    sku: str
    cost: int
    price: int
    title: str
    grams: int
    is_enabled: bool
    is_default: bool
    is_available: bool
    options: list[int]

    @classmethod
    def of(
        cls, v: CatalogVariant, price: int, enabled: bool, sku: str | None, default_id: int
    ) -> ProductVariant:
        """The catalog variant ``v`` in a product (a SKU generated when none was sent)."""
        return cls(
            id=v.id,
            sku=sku or generated_sku(),
            cost=v.cost,
            price=price,
            title=v.title,
            grams=180,
            is_enabled=enabled,
            is_default=v.id == default_id,
            is_available=True,
            options=v.option_ids,
        )


def generated_sku() -> str:
    """A SKU as Printify makes one (digits, e.g. "866375988")."""
    return f"{secrets.randbelow(10**11):011d}"


class OptionValue(TypedDict):
    id: int
    title: str


class ProductOption(TypedDict):
    name: str
    type: str
    values: list[OptionValue]


class ProductJson(TypedDict):
    id: str
    title: str
    description: str
    tags: list[str]
    options: list[ProductOption]
    variants: list[dict[str, Any]]
    images: list[Mockup]
    created_at: str
    updated_at: str
    visible: bool
    is_locked: bool
    blueprint_id: int
    user_id: int
    shop_id: int
    print_provider_id: int
    print_areas: list[PrintArea]
    sales_channel_properties: list[object]
    external: NotRequired[External]


@dataclass
class Product:
    """A product of a shop; ``external`` is set once a channel lists it."""

    id: str
    title: str
    description: str
    tags: list[str]
    options: list[ProductOption]
    variants: list[ProductVariant]
    images: list[Mockup]
    created_at: str
    updated_at: str
    blueprint_id: int
    user_id: int
    shop_id: int
    print_provider_id: int
    print_areas: list[PrintArea]
    is_locked: bool = False
    external: External | None = None

    def as_json(self) -> ProductJson:
        out: ProductJson = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "options": self.options,
            "variants": [dataclasses.asdict(v) for v in self.variants],
            "images": self.images,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "visible": True,
            "is_locked": self.is_locked,
            "blueprint_id": self.blueprint_id,
            "user_id": self.user_id,
            "shop_id": self.shop_id,
            "print_provider_id": self.print_provider_id,
            "print_areas": self.print_areas,
            "sales_channel_properties": [],
        }
        if self.external is not None:
            out["external"] = self.external
        return out

    def image_ids(self) -> list[str]:
        """The uploads the product prints, in order."""
        return sorted(
            {
                img["id"]
                for area in self.print_areas
                for ph in area["placeholders"]
                for img in ph["images"]
            }
        )


@dataclass
class Webhook:
    id: str
    topic: str
    url: str
    # As the path named it (Printify answers it back as given).
    shop_id: str
    secret: str | None

    def view(self) -> dict[str, object]:
        # Printify never shows a webhook's secret back.
        return {"id": self.id, "topic": self.topic, "url": self.url, "shop_id": self.shop_id}


@dataclass(frozen=True)
class PendingListing:
    """A publication a non-custom channel has yet to settle."""

    due: float
    refused: bool
    channel: str


def listing_url(channel: str, listing: str) -> str:
    """Where the channel lists a product (Etsy by listing id, Shopify by handle)."""
    if channel == "etsy":
        return f"https://www.etsy.com/listing/{listing}"
    if channel == "shopify":
        return f"https://pod-engine-sim.myshopify.com/products/{listing}"
    return f"https://{channel}.example/listings/{listing}"


@dataclass
class Account:
    """Everything one API token did: its uploads, products and the publishing handshake."""

    key: str
    user_id: int
    uploads: dict[str, Upload] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    uploads_count: int = 0
    uploads_by_url: int = 0
    products_created: int = 0
    products_deleted: int = 0
    requests: int = 0
    rate_limited: int = 0
    # Wall-clock times of the requests the rate limit let through (the newest 100k), so that
    # tests and benchmarks can see how much of the budget was used in any window.
    accepted_at: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=100_000)
    )
    publish_calls: collections.Counter[str] = field(default_factory=collections.Counter)
    publish_succeeded: collections.Counter[str] = field(default_factory=collections.Counter)
    publish_failed: collections.Counter[str] = field(default_factory=collections.Counter)
    # Unpublish notifications (the storefront took the product off sale), by product id.
    unpublished: collections.Counter[str] = field(default_factory=collections.Counter)
    channel_pending: dict[str, PendingListing] = field(default_factory=dict)
    channel_listed: collections.Counter[str] = field(default_factory=collections.Counter)
    channel_refused: collections.Counter[str] = field(default_factory=collections.Counter)
    # Publish calls refused because an enabled variant was priced below its production cost.
    publish_below_cost: int = 0
    # Handshake calls refused because the product's shop is not a custom integration.
    handshake_refused: int = 0
    products_updated: int = 0
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    # Deliveries by topic, and failed tries.
    webhooks_delivered: collections.Counter[str] = field(default_factory=collections.Counter)
    webhook_attempts_failed: int = 0
    webhooks_given_up: int = 0

    def forget_product(self, product_id: str) -> None:
        self.products.pop(product_id, None)
        self.channel_pending.pop(product_id, None)
        for counter in (
            self.publish_calls,
            self.publish_succeeded,
            self.publish_failed,
            self.unpublished,
            self.channel_listed,
            self.channel_refused,
        ):
            counter.pop(product_id, None)

    def settle_channels(self, now: float) -> None:
        """Let the channels settle every publication due by ``now``: listed, or refused."""
        due = [pid for pid, pending in self.channel_pending.items() if pending.due <= now]
        for pid in due:
            pending = self.channel_pending.pop(pid)
            product = self.products.get(pid)
            if product is None:
                continue
            product.is_locked = False
            if pending.refused:
                self.channel_refused[pid] += 1
                continue
            listing = str(secrets.randbelow(9 * 10**9) + 10**9)
            product.external = {"id": listing, "handle": listing_url(pending.channel, listing)}
            self.channel_listed[pid] += 1


class Accounts:
    """Accounts by token; bounded so that long chaos runs do not grow without limit."""

    def __init__(self, max_products: int, max_uploads: int) -> None:
        self.max_products = max_products
        self.max_uploads = max_uploads
        self.by_key: dict[str, Account] = {}

    def account(self, token: str) -> Account:
        # Accounts are keyed by a hash so the books never show a token.
        key = hashlib.sha256(token.encode()).hexdigest()[:12]
        acct = self.by_key.get(key)
        if acct is None:
            acct = Account(key=key, user_id=int(key[:7], 16))
            self.by_key[key] = acct
        return acct

    def add_product(self, acct: Account, product: Product) -> None:
        acct.products[product.id] = product
        acct.products_created += 1
        while len(acct.products) > self.max_products:
            acct.forget_product(next(iter(acct.products)))

    def add_upload(self, acct: Account, upload: Upload) -> None:
        acct.uploads[upload.id] = upload
        acct.uploads_count += 1
        while len(acct.uploads) > self.max_uploads:
            acct.uploads.pop(next(iter(acct.uploads)))

    def reset(self) -> None:
        self.by_key.clear()


@dataclass
class Limits:
    """The two documented Printify rate limits, rebuilt whenever they are changed."""

    rpm: int
    rate_window_s: float
    publish_limit: int
    publish_window_s: float
    catalog_rpm: int = 100
    requests: SlidingWindowLimiter = field(init=False)
    publishes: SlidingWindowLimiter = field(init=False)
    catalog: SlidingWindowLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        self.requests = SlidingWindowLimiter(self.rpm, self.rate_window_s)
        self.publishes = SlidingWindowLimiter(self.publish_limit, self.publish_window_s)
        self.catalog = SlidingWindowLimiter(self.catalog_rpm, self.rate_window_s)

    def update(self, values: collections.abc.Mapping[str, object]) -> None:
        """A partial update from ``/_sim/limits``; the limiters start afresh."""
        self.rpm = as_int(values.get("rpm", self.rpm))
        self.rate_window_s = as_float(values.get("rate_window_s", self.rate_window_s))
        self.publish_limit = as_int(values.get("publish_limit", self.publish_limit))
        self.publish_window_s = as_float(values.get("publish_window_s", self.publish_window_s))
        self.catalog_rpm = as_int(values.get("catalog_rpm", self.catalog_rpm))
        self.rebuild()

    def as_dict(self) -> dict[str, float]:
        return {
            "rpm": self.rpm,
            "rate_window_s": self.rate_window_s,
            "publish_limit": self.publish_limit,
            "publish_window_s": self.publish_window_s,
            "catalog_rpm": self.catalog_rpm,
        }


@dataclass
class Channels:
    """How the non-custom sales channels behave: how long a listing takes, how often it fails."""

    publish_ms: float
    failure_rate: float

    def as_dict(self) -> dict[str, float]:
        return {"publish_ms": self.publish_ms, "failure_rate": self.failure_rate}


# What Printify's documentation leaves open, each possibility selectable (docs/vendor-calls.md,
# "Printify"): the engine must be right under every one, and the tests run under each.
KEEPS_SKU = (True, False)
PRODUCTS_ORDERS = ("newest_first", "oldest_first")
# "When updating variants, all variants must be present in the request": refused when some are
# missing (require_all), or the list sent replaces the product's (replace), or merged (merge).
VARIANT_UPDATES = ("require_all", "replace", "merge")
# The blueprint variants a create did not send: listed disabled, listed enabled, or not listed.
UNSENT_VARIANTS = ("disabled", "enabled", "absent")
# A publish call on a product still locked by an earlier one: accepted again, or refused (8252).
PUBLISH_LOCKED = ("accept", "refuse")


@dataclass
class Behaviour:
    """Printify's undocumented choices, as ``SIM_PRINTIFY_*`` set them and ``/_sim/behaviour``
    changes them for one test."""

    keeps_sku: bool = True
    products_order: str = "newest_first"
    variant_update: str = "require_all"
    unsent_variants: str = "disabled"
    publish_locked: str = "accept"

    @classmethod
    def of(cls, settings: PrintifySettings) -> Behaviour:
        return cls(
            keeps_sku=settings.keeps_sku,
            products_order=settings.products_order,
            variant_update=settings.variant_update,
            unsent_variants=settings.unsent_variants,
            publish_locked=settings.publish_locked,
        )

    def update(self, values: dict[str, object]) -> None:
        """Apply ``values`` (a partial update); ValueError on an unknown key or value."""
        choices: dict[str, tuple[object, ...]] = {
            "keeps_sku": KEEPS_SKU,
            "products_order": PRODUCTS_ORDERS,
            "variant_update": VARIANT_UPDATES,
            "unsent_variants": UNSENT_VARIANTS,
            "publish_locked": PUBLISH_LOCKED,
        }
        for key, value in values.items():
            if key not in choices or value not in choices[key]:
                raise ValueError(f"{key}: one of {list(choices.get(key, ()))}, got {value!r}")
        for key, value in values.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)
