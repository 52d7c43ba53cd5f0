"""A Meta Graph API simulator (the Commerce catalog of one business), for the engine's Meta
channel: ``python -m simulators.meta`` (port 8194).

It serves the calls the channel and ``pod doctor`` make, at ``/{version}/...`` (or without a
version, as Graph allows), with the contract taken from Meta's SDK codegen specs
(:mod:`simulators.contracts.meta`):

- every call needs a system user's access token (``Authorization: Bearer`` or
  ``access_token``): unknown -> code 190; expired (``SIM_META_TOKEN_TTL_S`` after first use, or
  ``POST /_sim/behaviour {"expire_tokens": true}``) -> 190 subcode 463; with the app's "Require
  App Secret" (``SIM_META_REQUIRE_PROOF``, on) every call needs ``appsecret_proof``
  (HMAC-SHA256 of the token keyed by the app secret, hex): missing or wrong -> code 100;
- ``GET /me``; ``GET /{catalog_id}`` (its business); an unknown id -> 100 subcode 33;
- ``POST /{catalog_id}/items_batch`` (``item_type=PRODUCT_ITEM``, ``requests`` of up to 5000
  ``{method: CREATE|UPDATE|DELETE, data: {...}}``): answers a handle at once; the batch
  finishes ``SIM_META_BATCH_DELAY_S`` later, item by item: a missing required field, a value
  outside its enum, a malformed price or URL, or a rejection (``SIM_META_REJECT_SHARE`` of the
  valid items at random, or every ``SIM_META_REJECT_EVERY``-th, with ``SIM_META_REJECT_REASON``:
  an image Meta cannot fetch, a policy) is an error of that item (not saved), not a
  refusal of the call, as Meta does; unknown fields are warnings; an UPDATE keeps the fields
  it does not name (``visibility`` ``staging`` hides an item, kept; a DELETE removes it);
- ``GET /{catalog_id}/check_batch_request_status?handle=``: ``started`` until then, then
  ``finished`` with ``errors``/``warnings`` (``line``, ``id``, ``message``);
- ``GET /{catalog_id}/products?filter=`` (``retailer_id`` / ``retailer_product_group_id``,
  ``eq`` / ``is_any``): the ProductItems;
- ``X-Business-Use-Case-Usage`` on every catalog answer (``catalog_batch`` for items_batch,
  ``catalog_management`` for the rest): call_count etc. in percent of
  ``SIM_META_CALL_BUDGET`` calls per ``SIM_META_WINDOW_S``; over it, code 80014 (batch) or
  80009, with ``estimated_time_to_regain_access`` in minutes;
- ``GET /_sim/books`` (items per catalog, duplicates, batches, usage), ``/_sim/reset``,
  ``/_sim/limits``, ``/_sim/behaviour`` and the common fault knobs.
"""

from simulators.meta.app import create_app
from simulators.meta.settings import (
    DEFAULT_APP_SECRET,
    DEFAULT_BUSINESS,
    DEFAULT_CATALOG,
    DEFAULT_TOKEN,
    MetaSettings,
)

__all__ = [
    "DEFAULT_APP_SECRET",
    "DEFAULT_BUSINESS",
    "DEFAULT_CATALOG",
    "DEFAULT_TOKEN",
    "MetaSettings",
    "create_app",
]
