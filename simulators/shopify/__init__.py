"""Shopify Admin GraphQL API simulator: a real HTTP server speaking Shopify's wire format.

It covers what a sales channel needs to list a product: ``productSet`` (create or update in one
call, synchronous), ``productByIdentifier`` / ``product``, ``publications`` / ``publication`` and
``publishablePublish`` (put the product on the Online Store), what takes a listing down or
prices it again (``productUpdate`` of its status, ``productDelete``, ``productVariantsBulkUpdate``
of its prices: all or none, userErrors with the schema's codes), and what ``pod doctor`` asks:
``shop``, ``currentAppInstallation { accessScopes }``, ``publicApiVersions``. Its schema is not
written here: it is the extract of Shopify's published schema for the pinned API version
(:mod:`simulators.contracts.shopify`, ``admin-<version>.graphql``), so every document is parsed
and validated against what Shopify would validate it against (graphql-core), and a field
Shopify does not have, a missing sub-selection (``resourcePublicationsCount`` is a ``Count``
object), a wrong argument or input type is refused with Shopify's ``errors`` list.

Behaviour copied from Shopify on purpose:

- ``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``. The versions
  served follow Shopify's calendar (a stable version each quarter, supported 12 months, the
  next quarter's as release candidate, ``unstable``), as of ``SIM_SHOPIFY_TODAY`` (default:
  today, UTC): a stable version no longer supported *falls forward* to the oldest supported one
  (as Shopify documents), a version not released yet or malformed is a 404. Every answer says
  the version served in ``X-Shopify-API-Version``. (Each version is served with the one
  extracted schema.)
- **Tokens.** ``POST /admin/oauth/access_token`` is the client credentials grant of a Dev
  Dashboard app (``grant_type=client_credentials``, ``client_id``, ``client_secret``, form or
  JSON): ``{"access_token", "scope", "expires_in"}``, the token living
  ``SIM_SHOPIFY_TOKEN_TTL_S`` (86399, as Shopify's); wrong credentials or an uninstalled app are
  a 400 ``{"error": "invalid_client", ...}``. The app is ``SIM_SHOPIFY_CLIENT_ID`` /
  ``SIM_SHOPIFY_CLIENT_SECRET`` (``sim-shopify-client`` / ``sim-shopify-secret``). An issued
  token that expired, or whose app was uninstalled, is a 401 ``{"errors": "[API] Invalid API
  key or access token ..."}``, like a missing or unknown one. Admin tokens of legacy custom
  apps (``shpat_``) never expire: any token the simulator did not issue is taken for one unless
  ``SIM_SHOPIFY_TOKENS`` lists the valid ones.
- **Access scopes.** A token carries the app's scopes (``SIM_SHOPIFY_SCOPES``, default
  ``write_products,write_publications``; a write_ scope grants the read_ one). A field or type
  whose scopes (the extract's ``.scopes.json``, from Shopify's ``offline_scopes``) the token
  lacks resolves to null with an ``ACCESS_DENIED`` error naming the required access.
- **Rate limit: a leaky bucket of query cost per shop** (``SIM_SHOPIFY_BUCKET`` points, 2000,
  restored at ``SIM_SHOPIFY_RESTORE_RATE`` per second, 100). Every answer carries
  ``extensions.cost`` with ``requestedQueryCost``, ``actualQueryCost`` and ``throttleStatus``
  (``maximumAvailable``, ``currentlyAvailable``, ``restoreRate``). A query costing more than is
  available is refused with HTTP 200 and ``errors: [{message: "Throttled", extensions: {code:
  "THROTTLED"}}]``. Cost: a mutation 10, each object 1, a connection ``first`` times its node.
- ``productSet``: upsert by ``identifier`` (``id``, ``handle`` or a ``customId`` metafield);
  list fields (``variants``, ``files``, ``productOptions``, ``metafields``) replace what was
  there. ``userErrors`` (``field``, ``message``, ``code`` from Shopify's ProductSetUserErrorCode;
  which code Shopify picks for each case is our reading) as Shopify words them: a blank title,
  more than 3 options, a variant whose option value is not declared, two variants with the same
  options, a bad price, a file that is not an http(s) URL, a handle already taken.
- Product media are processed asynchronously: ``PROCESSING`` for ``SIM_SHOPIFY_MEDIA_MS`` (500),
  then ``READY``.
- ``onlineStoreUrl`` is null until the product is ACTIVE and published to the Online Store (the
  publication whose catalog is titled "Online Store").

The shop is the request's host (``<shop>.myshopify.com``) or ``SIM_SHOPIFY_SHOP``.

Test hooks: ``GET /_sim/books`` (per shop: products with handle, status, variants, files,
publications; ``throttled`` answers; ``duplicates``: handles or markers listed twice; ``grants``
and ``unauthorized`` per app and shop), ``POST /_sim/reset``, ``GET/POST /_sim/config`` (fault
knobs, :mod:`simulators.common`), ``GET/POST /_sim/limits`` (bucket size and restore rate),
``GET/POST /_sim/app`` (the app: ``client_id``, ``client_secret``, ``scopes``, ``installed``,
``token_ttl_s``), ``POST /_sim/app/uninstall`` and ``/_sim/app/install``, ``POST
/_sim/publications`` (``{"shop": ..., "publications": [{"id", "name"}]}``: a shop's sales
channels; by default the Online Store and Point of Sale).

The package is laid out like the API: ``app`` (wiring), ``settings`` (the knobs), ``state``
(app, tokens, shops), ``versions``, ``access`` (scopes), ``cost``, ``products`` (productSet
and its userErrors), ``views``, ``resolvers`` and one ``routes_*`` module per area.
"""

from simulators.shopify.app import create_app
from simulators.shopify.state import DEFAULT_SHOP
from simulators.shopify.versions import public_api_versions, served_version, supported_versions

__all__ = [
    "DEFAULT_SHOP",
    "create_app",
    "public_api_versions",
    "served_version",
    "supported_versions",
]
