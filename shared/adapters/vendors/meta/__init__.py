"""The Meta Commerce catalog (Facebook and Instagram Shopping) as a direct sales channel.

:class:`MetaClient` (:mod:`.client`) calls Meta's Graph API (:data:`META_API_VERSION`) as a
system user of the business: ``Authorization: Bearer <token>`` and ``appsecret_proof`` (HMAC-SHA256
of the token keyed by the app secret) on every call. A system user's token is not refreshed: a
code 190 is a permanent error saying to generate a new one. Every answer's
``X-Business-Use-Case-Usage`` is read: when a use case nears its budget, or Meta throttles
(codes 4, 17, 32, 613, 80000-80014), every publisher of the business stops for Meta's
``estimated_time_to_regain_access`` (a block of the shared budget in PostgreSQL, or of the
process's own without a database) and the call raises :class:`RateLimited` with that wait.

:class:`MetaChannel` (:mod:`.channel`) writes one item per enabled variant of a Printify
product in one ``items_batch`` call, grouped by the product (``item_group_id`` = the Printify
product id, the marker); each item's id is the marker and the variant's SKU, so a redelivery
writes the same items again (UPDATE), never new ones. The batch is asynchronous: publish()
answers pending on its handle, check() polls ``check_batch_request_status`` until it finished,
then lists the product (external id: the item group; URL: the product page) or refuses it with
Meta's message for each rejected item.
"""

from shared.adapters.vendors.meta.channel import (
    SPEC,
    MetaChannel,
    meta_budget,
    meta_channel,
    meta_client,
    retailer_id,
)
from shared.adapters.vendors.meta.client import (
    DEFAULT_THROTTLE_WAIT_S,
    THROTTLE_CODES,
    MetaClient,
    appsecret_proof,
)
from shared.adapters.vendors.meta.models import VENDOR, BatchStatus, ProductItem, UsageEntry
from shared.adapters.vendors.meta.settings import META_API_VERSION, META_GRAPH_URL, MetaSettings

__all__ = [
    "DEFAULT_THROTTLE_WAIT_S",
    "META_API_VERSION",
    "META_GRAPH_URL",
    "SPEC",
    "THROTTLE_CODES",
    "VENDOR",
    "BatchStatus",
    "MetaChannel",
    "MetaClient",
    "MetaSettings",
    "ProductItem",
    "UsageEntry",
    "appsecret_proof",
    "meta_budget",
    "meta_channel",
    "meta_client",
    "retailer_id",
]
