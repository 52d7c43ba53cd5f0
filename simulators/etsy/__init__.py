"""Etsy Open API v3 simulator: a real HTTP server speaking Etsy's wire format for listings.

It covers what a direct Etsy channel and its preflight (``pod doctor``) need, as Etsy documents
it (developers.etsy.com, the Open API v3 reference and its authentication, listings, rate-limit
and processing-profile pages):

- ``POST /v3/application/shops/{shop_id}/listings`` (createDraftListing, form-encoded, 201),
  ``GET`` the same path (getListingsByShop: ``state``, ``limit`` 1..100 (25), ``offset``,
  ``includes``; ``{"count": <all matching>, "results": [...]}``, newest first);
- ``GET``/``DELETE /v3/application/listings/{listing_id}`` (getListing with ``includes``,
  deleteListing 204; a seller's delete decision, and a seller deleting on Etsy);
- ``PATCH /v3/application/shops/{shop_id}/listings/{listing_id}`` (updateListing, form-encoded);
- ``GET``/``PUT /v3/application/listings/{listing_id}/inventory`` (getListingInventory,
  updateListingInventory: JSON);
- ``POST /v3/application/shops/{shop_id}/listings/{listing_id}/images`` (uploadListingImage:
  multipart ``image`` file + ``rank``, ``overwrite``, ``alt_text``; 201) and ``GET
  /v3/application/listings/{listing_id}/images`` (getListingImages);
- what the preflight reads: ping, getMe (``/users/me``: the token's user and the shop they
  own, ``SIM_ETSY_SHOP_ID`` (51234567) unless ``/_sim/users/{id}`` says otherwise), getShop,
  getShopShippingProfiles / getShopShippingProfile (every shop has profile 9001),
  getShopReturnPolicies (``shop_id * 10 + 5``), getSellerTaxonomyNodes (a stand-in tree with the
  engine's default ids), tokenScopes (``POST /v3/application/scopes``; the document leaves the
  answer's shape open, this one answers ``{"scopes": [...]}``);
- Etsy's token endpoint, ``POST /v3/public/oauth/token`` (:mod:`simulators.etsy.oauth`).

Every request is first checked against the subset of Etsy's published OpenAPI document the
engine uses (:mod:`simulators.contracts.etsy`): what the document refuses is answered 400
``{"error": "<what is wrong>"}`` (404 for a path that is no operation, 405 for a method the path
does not take, 401 without a token where the operation needs one, 403 ``insufficient_scope``
when the token's grant lacks a scope the operation names), before any rule of its own.

Behaviour copied from Etsy on purpose:

- Every request needs ``x-api-key: <keystring>:<shared secret>`` (Etsy's format since 2026);
  without it 403 (the bare keystring: "Shared secret is required in x-api-key header.").
  ``SIM_ETSY_API_KEYS`` (comma-separated ``keystring:secret``) restricts the accepted ones;
  unset, any is accepted. Every error is Etsy's body ``{"error": "<message>"}`` (OAuth's refusals
  add ``error_description``).
- OAuth (:mod:`simulators.etsy.oauth`): access tokens end ``SIM_ETSY_TOKEN_TTL_S`` (3600) after
  they are issued (401 ``invalid_token`` "access token is expired"), refresh tokens after
  ``SIM_ETSY_REFRESH_TTL_S`` (90 days); each refresh token is good once, and a spent one
  presented again revokes the grant (``SIM_ETSY_REFRESH_REUSE``). A token it did not issue is
  taken as issued when first seen unless ``SIM_ETSY_STRICT_TOKENS=1``; ``SIM_ETSY_REFRESH_TOKENS``
  names refresh tokens known from the start; ``SIM_ETSY_SCOPES`` the scopes of a grant it did not
  make (listings_d listings_r listings_w shops_r).
- createDraftListing requires quantity, title, description, price, who_made, when_made and
  taxonomy_id (a node of its seller taxonomy), and one of the shop's shipping profiles for a
  physical listing (the default type); enums are
  checked (who_made, when_made, type, units); the title holds at most 140 characters of
  letters, numbers, punctuation, math symbols, spaces, ™ © ®, and each of ``% : & +`` once;
  at most 13 tags of at most 20 letters, numbers, spaces, ``- ' ™ © ®``; at most 13 materials;
  a price of 0.20 to 50000, a quantity of 1 to 999. A new listing is a draft with an inventory
  of one product (its price and quantity), as Etsy creates it.
- updateListingInventory replaces the inventory: each product exactly one offering (price
  0.20..50000, quantity 0..999, is_enabled), property values of at most two properties (custom
  ones, 513 and 514, need a ``property_name``), the same properties on every product, no
  combination twice, SKUs of at most 32 characters, at least one enabled offering; prices,
  quantities and SKUs that differ between products must be listed in ``price_on_property`` /
  ``quantity_on_property`` / ``sku_on_property`` and depend only on those properties.
- Processing profiles (Etsy's readiness state definitions): every shop has two, one
  ``made_to_order`` (1-3 days, id ``shop_id * 10 + 1``) and one ``ready_to_ship`` (1 day,
  ``shop_id * 10 + 2``), listed by getShopReadinessStateDefinitions (``GET
  /v3/application/shops/{shop_id}/readiness-state-definitions``, ``limit``, ``offset``). A
  physical listing must name one of its shop's: without ``readiness_state_id``
  createDraftListing answers 400 "A readiness_state_id is required for physical listings.", as
  the live API does (its reference marks it optional).
- uploadListingImage takes a JPEG, PNG or GIF (checked with PIL) at a rank (1 = first; a rank
  in use shifts the others, or is replaced with ``overwrite``); at most 20 images.
- updateListing ``state=active`` publishes: it is refused (400) without an image, without an
  enabled offering in stock, or, for a physical listing, without a shipping profile. ``inactive``
  deactivates an active listing. Listings are ``draft``, ``active``, ``inactive``, ``expired``
  or ``sold_out``; a deleted one is gone (404).
- Rate limits per app (keystring), as Etsy's are: ``SIM_ETSY_QPS`` requests per second
  (default 10) and ``SIM_ETSY_QPD`` per rolling day (default 10000; ``SIM_ETSY_DAY_S`` long,
  86400). Every answer to a known app carries ``x-limit-per-second``,
  ``x-remaining-this-second``, ``x-limit-per-day`` and ``x-remaining-today``; beyond either
  limit, 429 with ``Retry-After`` (whole seconds until the window frees a request).

Any positive shop id works: a shop is created when first used. The fault knobs of
:mod:`simulators.common` apply (``SIM_LATENCY_MS``, ``SIM_FAILURE_RATE``, ``SIM_ETSY_*``).

Test hooks: ``POST /_sim/oauth/authorize`` (the seller authorises the app: ``user_id``,
``client_id``, ``scopes``; the first tokens), ``POST /_sim/oauth/revoke`` (the seller removes the
app: ``user_id`` or ``refresh_token``), ``POST /_sim/oauth/expire`` (access tokens end now),
``GET /_sim/oauth`` (grants, refreshes, refusals, reuse detected), ``POST /_sim/users/{id}``
(``{"shop_id": ...}``: whose shop), ``POST /_sim/shops/{shop_id}`` (``processing_profiles``,
``shipping_profile_ids``, ``return_policy_ids``: a shop set up otherwise), ``GET /_sim/books``
(per shop: its listings with state, tags, SKUs and image count; listings created and activated;
per app: requests, rate-limited and refused ones; ``oauth``; ``duplicates``: markers,
a ``pod-`` tag or a SKU, on more than one live listing of a shop), ``GET /_sim/request_times``
(epoch seconds of each app's admitted requests), ``POST /_sim/reset``, ``GET/POST /_sim/limits``
(``qps``, ``qpd``, ``day_s``), ``POST /_sim/listings/{listing_id}`` ``{"state": ...}`` (what
Etsy or the seller does: expire a listing, sell it out, ...), and ``/_sim/config`` (fault knobs).

The package is laid out like the API: ``app`` (wiring), ``settings`` (the knobs), ``state``
(shops, listings, apps, limits), ``rules`` and ``validation`` (what Etsy documents),
``forms``, ``middleware`` (API key, rate limits, token, document), ``oauth`` and one
``routes_*`` module per area.
"""

from simulators.etsy.app import create_app
from simulators.etsy.deps import app_key
from simulators.etsy.rules import tag_problem, title_problem
from simulators.etsy.state import Listing
from simulators.etsy.validation import inventory

# The names tests have used for the vendor rules they check directly.
_inventory = inventory
_tag_problem = tag_problem
_title_problem = title_problem

__all__ = [
    "Listing",
    "app_key",
    "create_app",
    "inventory",
    "tag_problem",
    "title_problem",
]
