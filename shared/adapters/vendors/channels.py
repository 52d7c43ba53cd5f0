"""Sales channels: where a created product is put up for sale, behind one small Protocol.

A channel publishes a product and says where it stands: listed (with the channel's id and URL
for it), still pending (the channel confirms later), or refused (with the reason). The
publisher drives every channel the same way (:mod:`services.publisher.handler`), and its
watcher asks :meth:`SalesChannel.check` until a pending publication settles.

Channels are looked up by name in :class:`ChannelRegistry`. Today's come through Printify:

- ``custom_integration``: a shop connected through the API, where the engine itself is the
  storefront, so it confirms the publication (``publishing_succeeded``) at once, or when
  Printify's ``product:publish:started`` webhook arrives (``PRINTIFY_WEBHOOKS_ENABLED``);
- any other Printify sales channel (``etsy``, ``shopify``, ...): Printify pushes the product and
  the channel lists it minutes later, or refuses it; the product's ``external`` field tells.

A new channel is one adapter implementing :class:`SalesChannel`, registered under its name
(``SALES_CHANNEL_ADAPTERS`` of the publisher: ``{"etsy": "mypackage.etsy:EtsyChannel"}``).

A channel the engine lists on itself, with its own publisher consumer group (Shopify, Etsy), is
described by a :class:`ChannelSpec` in its adapter module and registered in
:mod:`shared.adapters.vendors.direct`; the topics, stages, ledger steps, simulators, ``make up`` and
``deploy/k8s`` are all derived from that list.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast

from psycopg_pool import AsyncConnectionPool

from shared.adapters.vendors.printify import DEFAULT_PUBLISH_PARTS, PrintifyClient, Product
from shared.contract.events import CHANNEL_NAME_PATTERN
from shared.platform.errors import ConfigError, PermanentError
from shared.platform.settings import PodSettings, load_settings

CUSTOM_INTEGRATION = "custom_integration"


@dataclass(frozen=True)
class ProductRef:
    """A product to sell: where it was made and what it is called."""

    shop_id: str
    product_id: str
    title: str
    # What the channel said to check a pending publication by (``ListingState.pending_ref``:
    # Meta's batch handle, TikTok's product id), when the watcher has it; None after a
    # reconcile or for a channel that needs none (it finds the product by its marker).
    pending_ref: str | None = None


@dataclass(frozen=True)
class Listing:
    """A product listed on a channel: the channel's id for it and where buyers find it."""

    external_id: str
    handle: str | None = None


@dataclass(frozen=True)
class ListingState:
    """Where a publication stands: ``listing`` once listed, ``refused`` (the reason) when the
    channel will not list it, neither while it is pending."""

    listing: Listing | None = None
    refused: str | None = None
    # While pending: what the channel needs to check it later (a batch handle, the vendor's id
    # of the product under review); kept with the publication and given back as
    # ``ProductRef.pending_ref``.
    pending_ref: str | None = None

    @property
    def pending(self) -> bool:
        return self.listing is None and self.refused is None


# A publish call whose answer was "accepted, the channel confirms later".
PENDING = ListingState()


class SalesChannel(Protocol):
    """Where products are sold."""

    name: str

    async def publish(self, product: ProductRef) -> ListingState:
        """Put ``product`` up for sale: listed at once, or pending (never refused: a refusal
        at the call is an error)."""
        ...

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        """After an attempt whose outcome is unknown: the publication as the channel has it
        (finishing what the attempt left half done), or None when it never happened."""
        ...

    async def check(self, product: ProductRef) -> ListingState:
        """Where a pending publication stands now."""
        ...

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        """Take ``product``'s listing down (a seller's cancel, unpublish or delete):
        deactivated so that it can be listed again (``delete`` False) or deleted. True when a
        listing was taken down, False when there was none (never listed, already gone): a
        second call, after a crash or a redelivery, is harmless."""
        ...

    async def reprice(self, product: ProductRef) -> bool:
        """Set the listing's prices to the Printify product's prices now (its enabled
        variants; the printify stage has priced it again). True when a listing was updated,
        False when there is none."""
        ...


class UndoNotSupported:
    """What a channel answers until it can take its listings down and price them again
    (issue 28: each channel implements ``withdraw`` and ``reprice`` and drops this base)."""

    name: str

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        raise PermanentError(f"{self.name}: taking a listing down is not supported yet")

    async def reprice(self, product: ProductRef) -> bool:
        raise PermanentError(f"{self.name}: pricing a listing again is not supported yet")


def handle_for(title: str, product_id: str) -> str:
    """A URL slug for the storefront: the title's words plus the product id (unique)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return f"{slug}-{product_id[-8:]}" if slug else product_id


def listing_of(product: Product) -> Listing | None:
    """The listing a Printify product's ``external`` field records, if any."""
    external = product.external
    if external is not None and external.id:
        return Listing(external.id, external.handle)
    return None


async def _listed(client: PrintifyClient, product: ProductRef) -> bool | None:
    """Whether Printify records a listing of ``product`` (``external``); None when Printify has
    no such product any more (deleted: nothing is listed)."""
    try:
        found = await client.get_product(product.shop_id, product.product_id)
    except PermanentError as exc:
        if exc.status == 404:
            return None
        raise
    return listing_of(found) is not None


# Only the variants (their prices) are pushed to a connected store again by a reprice.
VARIANTS_ONLY = {part: part == "variants" for part in DEFAULT_PUBLISH_PARTS}


class PrintifyStorefront:
    """A custom-integration shop: the engine is the storefront, so it answers Printify's publish
    handshake itself, at once or, with ``on_webhook``, when Printify's
    ``product:publish:started`` webhook comes (:mod:`services.publisher.storefront`)."""

    name = CUSTOM_INTEGRATION

    def __init__(
        self, client: PrintifyClient, storefront_base_url: str, *, on_webhook: bool = False
    ) -> None:
        self.client = client
        self.base_url = storefront_base_url.rstrip("/")
        self.on_webhook = on_webhook

    async def publish(self, product: ProductRef) -> ListingState:
        await self.client.publish(product.shop_id, product.product_id)
        if self.on_webhook:
            return PENDING  # the webhook's handler lists it; the watcher sees the listing
        return await self.list_product(product)

    async def list_product(self, product: ProductRef) -> ListingState:
        """List the product on the storefront and tell Printify (``publishing_succeeded``)."""
        # The handle is where buyers find it, as Printify records it and other channels give it.
        url = f"{self.base_url}/{handle_for(product.title, product.product_id)}"
        await self.client.publishing_succeeded(
            product.shop_id, product.product_id, external_id=product.product_id, handle=url
        )
        return ListingState(Listing(product.product_id, url))

    async def refuse(self, product: ProductRef, reason: str) -> ListingState:
        """Tell Printify the storefront will not list the product (``publishing_failed``)."""
        await self.client.publishing_failed(product.shop_id, product.product_id, reason=reason)
        return ListingState(refused=reason)

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        found = await self.client.get_product(product.shop_id, product.product_id)
        listing = listing_of(found)
        if listing is not None:
            return ListingState(listing)
        if found.is_locked:  # publish went through, the confirmation did not
            return PENDING if self.on_webhook else await self.list_product(product)
        return None

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        """The engine is the storefront: its listing is the one Printify records. Unpublish
        tells Printify the product is off sale (``unpublish.json``: the listing is forgotten,
        the product kept, publishable again); delete deletes the Printify product, and with it
        the listing."""
        listed = await _listed(self.client, product)
        if listed is None:
            return False
        if delete:
            await self.client.delete_product(product.shop_id, product.product_id)
        elif listed:
            await self.client.unpublished(product.shop_id, product.product_id)
        return listed

    async def reprice(self, product: ProductRef) -> bool:
        """Nothing to push: the storefront sells at the Printify product's prices, which the
        printify stage has set."""
        return bool(await _listed(self.client, product))

    async def check(self, product: ProductRef) -> ListingState:
        found = await self.client.get_product(product.shop_id, product.product_id)
        listing = listing_of(found)
        if listing is not None:
            return ListingState(listing)
        if self.on_webhook and not found.is_locked:
            return ListingState(
                refused="the storefront refused the product (publishing_failed) or Printify "
                "released it unlisted"
            )
        return PENDING


class PrintifyChannel:
    """A channel Printify publishes to (Etsy, Shopify, ...): it lists the product later, or
    releases it unlisted when the channel refuses it.

    Printify's API has no call that takes a product off a connected store and keeps it:
    deleting the Printify product removes it from the store too (Printify's help centre), and
    changes reach the store when the product is published again, each part as the publish
    body selects."""

    def __init__(self, client: PrintifyClient, name: str) -> None:
        self.client = client
        self.name = name

    async def publish(self, product: ProductRef) -> ListingState:
        await self.client.publish(product.shop_id, product.product_id)
        return PENDING

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        found = await self.client.get_product(product.shop_id, product.product_id)
        listing = listing_of(found)
        if listing is not None:
            return ListingState(listing)
        return PENDING if found.is_locked else None

    async def check(self, product: ProductRef) -> ListingState:
        found = await self.client.get_product(product.shop_id, product.product_id)
        listing = listing_of(found)
        if listing is not None:
            return ListingState(listing)
        if not found.is_locked:
            return ListingState(
                refused=f"Printify released the product without a listing on {self.name}: the "
                "channel did not accept it (Printify shows the channel's reason on the product)"
            )
        return PENDING

    async def withdraw(self, product: ProductRef, *, delete: bool) -> bool:
        """Delete: the Printify product is deleted, which removes it from the connected store.
        Unpublish, keeping the product: Printify offers no call for it, so a listed product is
        refused (PermanentError saying so) rather than left listed under a false success."""
        listed = await _listed(self.client, product)
        if listed is None:
            return False
        if delete:
            await self.client.delete_product(product.shop_id, product.product_id)
            return listed
        if listed:
            raise PermanentError(
                f"{self.name}: Printify has no call to unpublish a product from a connected "
                f"{self.name} store and keep it; delete it, or unpublish it in {self.name} itself"
            )
        return False

    async def reprice(self, product: ProductRef) -> bool:
        """Push the product's new prices to the store: Printify syncs a published product's
        changes when it is published again, here its variants only (title, images, ... left as
        the store has them)."""
        listed = await _listed(self.client, product)
        if not listed:
            return False
        await self.client.publish(product.shop_id, product.product_id, parts=VARIANTS_ONLY)
        return True


# A channel's name is in events (a job's channels), topic names (publish.<name>.dlq), its ledger
# step (publish:<name>, which the side_effects table checks) and, with "_" as "-", Kubernetes
# object names.
CHANNEL_NAME = re.compile(CHANNEL_NAME_PATTERN)

SettingsT = TypeVar("SettingsT", bound=PodSettings)


@dataclass(frozen=True)
class ChannelSpec(Generic[SettingsT]):
    """A sales channel the engine lists on itself (not through a Printify shop), declared by its
    adapter module and registered in :data:`shared.contract.sales_channels.DIRECT_CHANNELS`.

    Everything else is derived from it: the channel's name in ``PUBLISH_CHANNELS`` and
    ``CHANNEL``, its publisher stage ``publisher_<name>`` (consumer group, ``publish.<name>.*``
    retry and dead-letter topics), its ledger step ``publish:<name>``, the settings its
    publisher reads (and deploy/k8s references as secrets). Its simulator, for tests and
    ``make up``, is the dev stack's knowledge (its table of channel simulators).
    """

    name: str
    # Its settings (e.g. ``SHOPIFY_*``), read by the publisher with CHANNEL=<name>.
    settings: type[SettingsT]
    # The channel from its settings, reading the products Printify made through the client.
    build: Callable[[SettingsT, PrintifyClient], SalesChannel]
    # The setting whose absence means "no account of your own" (``make up`` then starts a
    # simulator and gives the publisher its URL as ``url_setting``).
    credential: str
    url_setting: str
    # Settings that, set instead of ``credential``, also mean an account of one's own (a
    # Shopify Dev Dashboard app's client secret instead of an admin token).
    other_credentials: tuple[str, ...] = ()
    # ``build`` also takes ``pool=``: the deployment's database pool (None without one), for a
    # vendor limit shared by every process of the account (Etsy's requests per second).
    takes_pool: bool = False
    # How long the channel may take to confirm a publication it reviews (TikTok's audit takes
    # up to days): the publisher's default, unless PUBLISH_CONFIRM_TIMEOUT_S is set. None: that
    # setting's own default.
    confirm_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not CHANNEL_NAME.match(self.name):
            raise ValueError(f"channel name {self.name!r} does not match {CHANNEL_NAME.pattern}")
        fields = {f.upper() for f in self.settings.model_fields}
        named = [self.credential, *self.other_credentials, self.url_setting]
        unknown = [n for n in named if n not in fields]
        if unknown:
            raise ValueError(
                f"channel {self.name!r}: {', '.join(unknown)} not among the settings of "
                f"{self.settings.__name__}"
            )

    def channel(
        self, source: PrintifyClient, pool: AsyncConnectionPool | None = None
    ) -> SalesChannel:
        """The channel configured from the environment; ConfigError naming a bad setting."""
        settings = load_settings(self.settings)
        if self.takes_pool:
            return cast(Callable[..., SalesChannel], self.build)(settings, source, pool=pool)
        return self.build(settings, source)


ChannelFactory = Callable[[str], SalesChannel]


def load_factory(path: str) -> ChannelFactory:
    """The adapter named ``module:attribute`` (a class or function taking the channel name);
    ConfigError naming the path when it cannot be imported."""
    module_name, _, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"SALES_CHANNEL_ADAPTERS: cannot load {path!r} (module:attribute): {exc}"
        ) from None
    if not callable(factory):
        raise ConfigError(f"SALES_CHANNEL_ADAPTERS: {path!r} is not callable")
    return cast(ChannelFactory, factory)


class ChannelRegistry:
    """The sales channels by name, and which one each Printify shop sells through."""

    def __init__(
        self,
        client: PrintifyClient,
        storefront_base_url: str,
        *,
        storefront_on_webhook: bool = False,
    ) -> None:
        self.client = client
        self._factories: dict[str, ChannelFactory] = {
            CUSTOM_INTEGRATION: lambda _name: PrintifyStorefront(
                client, storefront_base_url, on_webhook=storefront_on_webhook
            )
        }
        self._channels: dict[str, SalesChannel] = {}
        self._shops: dict[str, str] = {}  # shop id -> channel name

    def _through_printify(self, name: str) -> SalesChannel:
        return PrintifyChannel(self.client, name)

    def register(self, name: str, factory: ChannelFactory) -> None:
        """Use ``factory`` for the channel ``name`` (a direct integration, a test double)."""
        self._factories[name] = factory
        self._channels.pop(name, None)

    def by_name(self, name: str) -> SalesChannel:
        """The channel called ``name``; one Printify publishes to unless registered."""
        if name not in self._channels:
            factory = self._factories.get(name, self._through_printify)
            self._channels[name] = factory(name)
        return self._channels[name]

    async def for_shop(self, shop_id: str) -> SalesChannel:
        """The channel a Printify shop sells through (the shop list is read again when a shop
        is new to us)."""
        if shop_id not in self._shops:
            shops = await self.client.list_shops()
            self._shops = {str(s.id): str(s.sales_channel) for s in shops}
        return self.by_name(self._shops.get(shop_id) or "unknown")
