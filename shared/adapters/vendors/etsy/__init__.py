"""Etsy as a direct sales channel: a client for Etsy's Open API v3 (:mod:`.client`, its
throttle :mod:`.throttle`, its answers typed in :mod:`.models`, its settings :mod:`.settings`)
and the channel built on it (:mod:`.channel`, with :mod:`.inventory`, the mockups of
:mod:`shared.adapters.vendors.images` and the
text rules of :mod:`.text`). What other modules import is re-exported here.

:class:`EtsyClient` makes the listing calls a channel needs (createDraftListing,
getListingsByShop, getListing, updateListing, updateListingInventory, uploadListingImage), with
Etsy's two credentials on every call: ``x-api-key: <keystring>:<shared secret>`` (the app; Etsy
refuses the bare keystring since February 2026, so the client does not start without the
secret) and ``Authorization: Bearer <token>`` (the shop owner's OAuth token, scopes
:data:`ENGINE_SCOPES`), and the reads ``pod doctor`` makes. Failures become the POD Engine error
classes (:mod:`shared.platform.errors`) with ``vendor="etsy"`` and never carry a credential.

The shop owner's access token lives an hour. With ``ETSY_REFRESH_TOKEN`` it is renewed before
it ends, and after a 401 (the call is then sent once more), by :class:`EtsyRefreshGrant`
(Etsy's refresh_token grant, which replaces the refresh token at every renewal) through a
:class:`~shared.adapters.credentials.ManagedToken`; with a database the tokens live in
``vendor_credentials`` (:class:`~shared.adapters.credentials.PgTokenStore`, sealed with
``CREDENTIALS_KEY``), so every publisher shares the newest refresh token, a renewal happens
under a row lock (no refresh token is spent twice), and a restart keeps it. A grant Etsy
refuses (the seller removed the app) makes the work wait and raises ``credential_revoked``.
``ETSY_ACCESS_TOKEN`` alone still works, until its hour is over (said at start).

Throttling follows Etsy's documented limits, per app: requests per second and per rolling day,
reported on every answer (``x-limit-per-second``, ``x-remaining-this-second``,
``x-limit-per-day``, ``x-remaining-today``). The client keeps to the per-second limit Etsy
reports (sends are spaced under one lock, waiting, never spinning) and, when Etsy says this
second's budget is spent (other processes of the app count too), waits a full second before the
next call. When Etsy says the day's budget is spent, calls raise :class:`RateLimited` without
being sent, for ``ETSY_DAY_EXHAUSTED_WAIT_S`` (Etsy frees the daily budget bucket by bucket
over a rolling 24 hours, so no exact reset time exists). A 429 blocks every caller for its
``Retry-After``; a short one is waited out and the call sent again, a long one (the day's
limit) is raised. The per-second limit belongs to the app, not to a process: with a database, every
publisher of the app (any number of instances, on any machine) also takes each call from one
budget in PostgreSQL (:class:`~shared.domain.budget.SharedRateBudget`, ``ETSY_REQUESTS_PER_SECOND``,
lowered to the ``x-limit-per-second`` Etsy reports when that is less), so two instances never
send twice the app's limit and learn of it from 429s.

:class:`EtsyChannel` lists a Printify product on Etsy (:class:`~shared.adapters.vendors.channels.
SalesChannel`): a draft listing, its inventory (one product per enabled variant, with its SKU,
option values and price), its mockups as images, then activation. The marker that finds a
listing again is a tag: ``pod-`` and the last 15 characters of the Printify product id. It is
written with the draft itself, in the one call that creates the listing, so even a listing whose
creation was the last thing a crashed attempt did is found (a SKU marker would not be: the SKUs
come one call later, with the inventory); it is searched in every state, so a redelivery never
makes a second listing, and a half-made one is finished (inventory, images, activation).

Etsy cannot search a shop by tag or SKU, so looking for a marker reads the shop's listings,
state by state: a product never listed costs five getListingsByShop calls, plus one per further
hundred listings in a state. A listing the channel made or saw is remembered (in process), so a
redelivery to the same process costs one getListing.
"""

from shared.adapters.vendors.etsy.channel import (
    LISTING_URL,
    PAGE_LIMIT,
    SCAN_STATES,
    SPEC,
    EtsyChannel,
    etsy_channel,
)
from shared.adapters.vendors.etsy.client import (
    ENGINE_SCOPES,
    MAX_429_RETRIES,
    TRANSIENT_BACKOFF_S,
    TRANSIENT_RETRIES,
    EtsyClient,
    api_key_header,
)
from shared.adapters.vendors.etsy.inventory import (
    CUSTOM_PROPERTY_IDS,
    InventoryBody,
    OfferingBody,
    ProductBody,
    PropertyValueBody,
    inventory_for,
)
from shared.adapters.vendors.etsy.models import (
    VENDOR,
    EtsyListing,
    EtsyMe,
    EtsyModel,
    EtsyShop,
    InventoryProduct,
    ListingImage,
    ListingInventory,
    ListingsPage,
    Ping,
    ProcessingProfile,
    ProcessingProfiles,
    ReturnPolicy,
    ShippingProfile,
    TaxonomyNode,
    parse,
)
from shared.adapters.vendors.etsy.settings import (
    DEFAULT_TAXONOMY_IDS,
    ETSY_API_URL,
    ETSY_TOKEN_URL,
    TOKEN_PATH,
    EtsyRefreshGrant,
    EtsySettings,
    WhenMade,
    WhoMade,
    etsy_client,
    etsy_token,
)
from shared.adapters.vendors.etsy.text import (
    MARKER_CHARS,
    MARKER_PREFIX,
    MAX_SKU,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE,
    ONCE_IN_TITLE,
    etsy_tag,
    etsy_tags,
    etsy_title,
    marker_tag,
    variation_value,
)
from shared.adapters.vendors.etsy.throttle import EtsyThrottle, header_int
from shared.adapters.vendors.images import HttpImageFetcher, ImageFetcher, image_type

__all__ = [
    "CUSTOM_PROPERTY_IDS",
    "DEFAULT_TAXONOMY_IDS",
    "ENGINE_SCOPES",
    "ETSY_API_URL",
    "ETSY_TOKEN_URL",
    "LISTING_URL",
    "MARKER_CHARS",
    "MARKER_PREFIX",
    "MAX_429_RETRIES",
    "MAX_SKU",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "MAX_TITLE",
    "ONCE_IN_TITLE",
    "PAGE_LIMIT",
    "SCAN_STATES",
    "SPEC",
    "TOKEN_PATH",
    "TRANSIENT_BACKOFF_S",
    "TRANSIENT_RETRIES",
    "VENDOR",
    "EtsyChannel",
    "EtsyClient",
    "EtsyListing",
    "EtsyMe",
    "EtsyModel",
    "EtsyRefreshGrant",
    "EtsySettings",
    "EtsyShop",
    "EtsyThrottle",
    "HttpImageFetcher",
    "ImageFetcher",
    "InventoryBody",
    "InventoryProduct",
    "ListingImage",
    "ListingInventory",
    "ListingsPage",
    "OfferingBody",
    "Ping",
    "ProcessingProfile",
    "ProcessingProfiles",
    "ProductBody",
    "PropertyValueBody",
    "ReturnPolicy",
    "ShippingProfile",
    "TaxonomyNode",
    "WhenMade",
    "WhoMade",
    "api_key_header",
    "etsy_channel",
    "etsy_client",
    "etsy_tag",
    "etsy_tags",
    "etsy_title",
    "etsy_token",
    "header_int",
    "image_type",
    "inventory_for",
    "marker_tag",
    "parse",
    "variation_value",
]
