"""TikTok Shop as a direct sales channel: a client of TikTok Shop's Partner API (versions
202309, Search Products 202502; :mod:`.client`, answers typed in :mod:`.models`, every request
signed by :mod:`.signing`, settings and the token grant in :mod:`.settings`) and the channel
built on it (:mod:`.channel`).

Every request carries ``app_key``, ``timestamp``, ``shop_cipher`` (shop operations; from Get
Authorized Shops unless ``TIKTOK_SHOP_CIPHER``) and ``sign`` (HMAC-SHA256 under the app
secret) as query parameters and the seller's token in ``x-tts-access-token``. The token is
renewed through TikTok's refresh grant before it expires (``access_token_expire_in``, a unix
time) and after TikTok refuses it (105001/105002: the call is sent once more), kept and shared
in PostgreSQL like Etsy's (ManagedToken, PgTokenStore, ``CREDENTIALS_KEY``). TikTok answers
most errors with HTTP 200 and a non-zero ``code``: the QPS limit (36009004, 429) is waited out
and shared by every publisher of the app (SharedRateBudget, ``TIKTOK_REQUESTS_PER_SECOND``), a
refused signature (106001) is a permanent error naming TIKTOK_APP_SECRET, server errors are
retryable, anything else permanent with TikTok's message.

A created product is under audit: publish answers pending with TikTok's product id, and
check() reads the product until the audit passed (listed, with its shop URL) or failed
(refused, with TikTok's ``audit_failed_reasons``). The marker is the seller SKU of the first
SKU (``pod-<Printify product id>-01``), written in the create call itself, and Search
Products finds it by ``seller_skus``: a redelivery never creates a second product.
"""

from shared.adapters.vendors.tiktok.channel import (
    MARKER_PREFIX,
    SPEC,
    TikTokChannel,
    marker_sku,
    tiktok_channel,
)
from shared.adapters.vendors.tiktok.client import (
    MAX_429_RETRIES,
    TIKTOK_API_URL,
    TikTokClient,
)
from shared.adapters.vendors.tiktok.models import VENDOR
from shared.adapters.vendors.tiktok.settings import (
    TIKTOK_AUTH_URL,
    TikTokRefreshGrant,
    TikTokSettings,
    tiktok_client,
    tiktok_token,
)
from shared.adapters.vendors.tiktok.signing import sign

__all__ = [
    "MARKER_PREFIX",
    "MAX_429_RETRIES",
    "SPEC",
    "TIKTOK_API_URL",
    "TIKTOK_AUTH_URL",
    "VENDOR",
    "TikTokChannel",
    "TikTokClient",
    "TikTokRefreshGrant",
    "TikTokSettings",
    "marker_sku",
    "sign",
    "tiktok_channel",
    "tiktok_client",
    "tiktok_token",
]
