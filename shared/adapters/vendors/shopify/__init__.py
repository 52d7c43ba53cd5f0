"""Shopify as a sales channel of its own: the Admin GraphQL API, ``productSet`` (synchronous).

The package: the client (:mod:`.client`), its answers typed (:mod:`.models`), the documents it
sends (:mod:`.documents`), the store's settings and token (:mod:`.settings`) and the channel
(:mod:`.channel`); what other modules import is re-exported here.

:class:`ShopifyChannel` lists the product Printify made (:mod:`shared.adapters.vendors.listing`):
one ``productSet`` sends its options, variants (SKU, price) and images (``files`` by
``originalSource``), upserting by ``identifier.handle`` so that a redelivery updates the product
it made before instead of making a second one; the Printify product id is also kept in a
``pod.printify_product_id`` metafield. ``publishablePublish`` then puts it on the Online Store.

Every GraphQL document the client sends is in :data:`DOCUMENTS`; the tests validate each one
against the schema Shopify publishes for the pinned API version
(:mod:`simulators.contracts.shopify`), and the simulator serves that schema, so a document
Shopify would refuse is refused in the tests too. The version, and the access scopes each
document needs, come from :mod:`shared.adapters.vendors.shopify_contract` (generated from that
extract).

Credentials: a legacy custom app's admin token (``SHOPIFY_ACCESS_TOKEN``, ``shpat_``, never
expires), or a Dev Dashboard app's client id and secret (``SHOPIFY_CLIENT_ID``,
``SHOPIFY_CLIENT_SECRET``), exchanged by :class:`ClientCredentialsGrant` for tokens that live
24 hours, renewed before they end (:class:`shared.adapters.credentials.ManagedToken`). A 401 renews
the token once and sends the call again; a grant Shopify refuses (wrong secret, app uninstalled)
marks the account revoked and the work waits (:class:`shared.adapters.credentials.GrantRevoked`).

Throttling follows Shopify's leaky bucket (``extensions.cost.throttleStatus``): the client keeps
what the last answer said was available, restores it at ``restoreRate`` per second, and waits
before a call whose cost (as last requested for that operation) is not available yet, instead
of spending a call on ``THROTTLED``. A THROTTLED answer (another process used the bucket) is
waited out and sent again.
"""

from shared.adapters.vendors.shopify.channel import (
    MARKER_KEY,
    MARKER_NAMESPACE,
    ONLINE_STORE,
    SPEC,
    ShopifyChannel,
    online_store,
    product_set_input,
    shopify_channel,
)
from shared.adapters.vendors.shopify.client import (
    API_VERSION_PATTERN,
    MAX_THROTTLED,
    TOKEN_PATH,
    TRANSIENT_BACKOFF_S,
    TRANSIENT_RETRIES,
    ClientCredentialsGrant,
    ShopifyClient,
    Throttle,
)
from shared.adapters.vendors.shopify.documents import (
    DOCUMENTS,
    INSTALLATION,
    PRODUCT_BY_HANDLE,
    PRODUCT_SET,
    PUBLICATION,
    PUBLICATIONS,
    PUBLISH,
)
from shared.adapters.vendors.shopify.models import (
    VENDOR,
    AccessScope,
    ApiVersion,
    Catalog,
    Cost,
    Envelope,
    ErrorExtensions,
    Extensions,
    GraphQLError,
    Installation,
    InstallationData,
    ProductData,
    ProductSetData,
    ProductSetResult,
    Publication,
    PublicationData,
    Publications,
    PublicationsData,
    Publishable,
    PublishData,
    PublishResult,
    ShopifyModel,
    ShopifyProduct,
    ThrottleStatus,
    UserError,
    parse,
)
from shared.adapters.vendors.shopify.settings import ShopifySettings, shopify_client, shopify_token

__all__ = [
    "API_VERSION_PATTERN",
    "DOCUMENTS",
    "INSTALLATION",
    "MARKER_KEY",
    "MARKER_NAMESPACE",
    "MAX_THROTTLED",
    "ONLINE_STORE",
    "PRODUCT_BY_HANDLE",
    "PRODUCT_SET",
    "PUBLICATION",
    "PUBLICATIONS",
    "PUBLISH",
    "SPEC",
    "TOKEN_PATH",
    "TRANSIENT_BACKOFF_S",
    "TRANSIENT_RETRIES",
    "VENDOR",
    "AccessScope",
    "ApiVersion",
    "Catalog",
    "ClientCredentialsGrant",
    "Cost",
    "Envelope",
    "ErrorExtensions",
    "Extensions",
    "GraphQLError",
    "Installation",
    "InstallationData",
    "ProductData",
    "ProductSetData",
    "ProductSetResult",
    "Publication",
    "PublicationData",
    "Publications",
    "PublicationsData",
    "PublishData",
    "PublishResult",
    "Publishable",
    "ShopifyChannel",
    "ShopifyClient",
    "ShopifyModel",
    "ShopifyProduct",
    "ShopifySettings",
    "Throttle",
    "ThrottleStatus",
    "UserError",
    "online_store",
    "parse",
    "product_set_input",
    "shopify_channel",
    "shopify_client",
    "shopify_token",
]
