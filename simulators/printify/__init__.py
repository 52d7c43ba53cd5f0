"""Printify API v1 simulator: a real HTTP server speaking Printify's wire format.

It covers what POD Engine uses: shops, image uploads (base64 or URL), the catalog (blueprints,
print providers, variants), products (create / list / get / update / delete) and the publishing
handshake (``publish`` → ``publishing_succeeded`` / ``publishing_failed``).

Behaviour copied from Printify on purpose:

- ``Authorization: Bearer <token>`` is required; each token is its own account, with one shop
  per sales channel of ``SIM_PRINTIFY_SHOPS`` (default one custom-integration shop). The
  ``publishing_succeeded`` handshake is refused for a shop of any other channel.
- Product creation is validated like Printify does: prices are integer cents, variant ids must
  belong to the blueprint/provider, image ids must be uploads of the account, ...; errors use
  Printify's body ``{status, code, message, errors: {reason, code}}`` (HTTP 400, code 8150).
- Uploads by URL are fetched (any size up to 64 MiB); base64 ``contents`` over 5 MB are refused
  (Printify deprecates base64 uploads and meant them for small files).
- Art is placed by centre (``x``, ``y``) and ``scale`` (its width over the placeholder's, which
  is sized at 300 DPI); like Printify, any resolution is accepted, and the books record the
  DPI each product prints at (``print_dpi``).
- Each variant has its production cost (by size: 2XL..5XL cost more). A product may be created
  or updated at any price, but publishing refuses an enabled variant priced below its cost, and
  a product is locked (no updates, code 8252) from ``publish`` until the handshake ends.
- Publishing to a shop of another channel (Etsy, Shopify, ...) is asynchronous, as at
  Printify: ``publish`` locks the product and answers at once; the channel lists it
  ``SIM_PRINTIFY_PUBLISH_MS`` later (the product then shows ``external`` {id, handle} and is
  unlocked), or refuses it with probability ``SIM_PRINTIFY_PUBLISH_FAILURE_RATE`` (the product
  is unlocked without ``external``).
- Rate limits as documented: 600 requests per minute per account (of which 100 for the
  catalog) and 200 publish calls per 30 minutes; exceeding either gives 429 with a
  ``Retry-After`` header.

What Printify's reference leaves open is chosen by ``SIM_PRINTIFY_KEEPS_SKU`` (true),
``SIM_PRINTIFY_PRODUCTS_ORDER`` (newest_first | oldest_first), ``SIM_PRINTIFY_VARIANT_UPDATE``
(require_all | replace | merge), ``SIM_PRINTIFY_UNSENT_VARIANTS`` (disabled | enabled | absent)
and ``SIM_PRINTIFY_PUBLISH_LOCKED`` (accept | refuse), per test through ``GET/POST
/_sim/behaviour`` (see :class:`Behaviour`). ``SIM_PRINTIFY_TOKENS`` (comma-separated) makes
every other token a 401, as an unknown or revoked personal access token is.

Knobs (environment; the fault knobs of :mod:`simulators.common` apply too):
``SIM_PRINTIFY_RPM`` (600), ``SIM_PRINTIFY_CATALOG_RPM`` (100), ``SIM_PRINTIFY_RATE_WINDOW_S``
(60), ``SIM_PRINTIFY_PUBLISH_LIMIT`` (200), ``SIM_PRINTIFY_PUBLISH_WINDOW_S`` (1800),
``SIM_PRINTIFY_MAX_PRODUCTS`` (20000 per account; the oldest are evicted beyond it so long runs
stay bounded), ``SIM_PRINTIFY_PUBLISH_MS`` (3000; 120000 with ``SIM_PROFILE=realistic``),
``SIM_PRINTIFY_PUBLISH_FAILURE_RATE`` (0). ``GET /_sim/requests`` lists each request, each
channel listing (publish call to due) and each webhook's wait, from Printify's side.

Test hooks: ``GET /_sim/books`` (what each account did, plus duplicate products),
``GET /_sim/request_times`` (epoch seconds of each account's accepted requests),
``POST /_sim/reset`` (forget everything, channels back to their knobs), ``GET/POST
/_sim/limits`` (change the rate limits),
``GET/POST /_sim/channels`` (change ``publish_ms`` and ``failure_rate``),
``POST /_sim/webhooks/fire`` (send a webhook call of any topic, e.g. an order's),
``POST /_sim/orders`` (N orders of given products: ``order:created`` for each) and ``POST
/_sim/orders/{id}/status`` (an order moves on: ``order:updated``), see :mod:`.orders`.

Webhooks: ``GET/POST /v1/shops/{id}/webhooks.json`` and ``DELETE
/v1/shops/{id}/webhooks/{webhook_id}.json``. Publishing in a custom-integration shop sends
``product:publish:started`` and deleting a product ``product:deleted`` to the shop's webhooks of
that topic, ``SIM_PRINTIFY_WEBHOOK_DELAY_MS`` (200; 2000 when realistic) later, with
``X-Pfy-Signature: sha256=<hex HMAC-SHA256 of the body>`` when the webhook has a secret; a call
not answered 2xx is tried again after 1 s, doubling, ``SIM_PRINTIFY_WEBHOOK_ATTEMPTS`` (6) times
in all (``SIM_PRINTIFY_WEBHOOK_RETRY_S``).

The package is laid out like the API: ``app`` (wiring), ``settings`` (the knobs), ``state``
(typed vendor objects and books), ``catalog``, ``validation``, ``products``, ``uploads``,
``webhooks``, ``books`` and one ``routes_*`` module per area.
"""

from simulators.printify.app import create_app
from simulators.printify.state import SALES_CHANNEL, SHOP_ID, SHOP_TITLE
from simulators.printify.webhooks import WEBHOOK_TOPICS, webhook_signature

__all__ = [
    "SALES_CHANNEL",
    "SHOP_ID",
    "SHOP_TITLE",
    "WEBHOOK_TOPICS",
    "create_app",
    "webhook_signature",
]
