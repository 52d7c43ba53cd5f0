"""TikTok Shop Partner API simulator: a real HTTP server speaking TikTok Shop's wire format for
what a direct TikTok channel and its preflight need, built from the Partner Center pages named
in ``simulators/contracts/tiktok/contract.json`` (versions 202309, Search Products 202502):

- Get Authorized Shops (``GET /authorization/202309/shops``: the shop and its ``cipher``);
- Upload Product Image (``POST /product/202309/images/upload``, multipart ``data`` +
  ``use_case``; a JPG/PNG/WEBP/BMP checked with PIL; answers the ``uri`` to create with);
- Get Categories, Recommend Category, Get Attributes (a small tree whose leaves are tees,
  hoodies and mugs; each leaf has REQUIRED product attributes, ``is_requried`` as TikTok spells
  it), Get Warehouse List (one default sales warehouse);
- Create Product (``POST /product/202309/products``): the fields the contract marks required,
  its enums, every required category attribute, uploaded images only, the shop's warehouse,
  at most 3 sales attributes, no two SKUs alike, seller SKUs of at most 50 characters. A new
  product is ``PENDING`` (under audit) for ``SIM_TIKTOK_AUDIT_S`` (3 s), then ``ACTIVATE``, or
  ``FAILED`` with ``audit_failed_reasons`` when its title holds ``SIM_TIKTOK_AUDIT_FAILURE_WORD``
  ("counterfeit") or for a share ``SIM_TIKTOK_AUDIT_FAILURE_RATE`` of products;
- Get Product (``GET /product/202309/products/{id}``), Search Products (``POST
  /product/202502/products/search``, ``page_size`` 1..100 required, body filter
  ``seller_skus``, ``status``; newest first, ``page_token``);
- a seller's decisions: Deactivate Products (``POST /product/202309/products/deactivate``: a
  live or audited product becomes ``SELLER_DEACTIVATED``), Activate Product (``POST
  /product/202309/products/activate``: a deactivated one is ``ACTIVATE`` again), Delete
  Products (``DELETE /product/202309/products``), each ``product_ids`` (1..20) answered with
  ``data.errors[]`` per product it failed for (a deleted or unknown one: 12052048); Update
  Price (``POST /product/202309/products/{id}/prices/update``: ``skus[]`` by TikTok's SKU id,
  a live product only, all or nothing);
- the token endpoints of auth.tiktok-shops.com on the same host (``GET /api/v2/token/refresh``:
  ``app_key``, ``app_secret``, ``refresh_token``, ``grant_type=refresh_token``; the refresh token
  ROTATES: the one sent is spent; ``access_token_expire_in`` is a unix time).

Checked before any operation, as TikTok does: the ``app_key`` is known
(``SIM_TIKTOK_APPS``, ``key:secret,...``), ``timestamp`` within 5 minutes (106002), the ``sign``
(HMAC-SHA256, :func:`simulators.tiktok.middleware.signature`; 106001, HTTP 401), the app's QPS
(``SIM_TIKTOK_QPS``, 20 per second; 429 with code 36009004), ``x-tts-access-token`` (105001
invalid, 105002 expired; access tokens live ``SIM_TIKTOK_ACCESS_TTL_S``), ``shop_cipher`` for
shop operations (106011), then the contract (36009001, HTTP 200). Answers are TikTok's envelope
``{"code", "message", "request_id", "data"}``. The fault knobs of :mod:`simulators.common` apply.

Test hooks: ``GET /_sim/books`` (products of the shop with status, seller SKUs and each SKU's
price, counts (deactivated, reactivated, deleted, price_updates among them),
refusals by code, ``duplicates``: a seller SKU on two products neither deleted nor refused),
``POST /_sim/reset``, ``GET/POST /_sim/limits`` (``qps``), ``GET /_sim/request_times``,
``POST /_sim/tokens/expire``, ``POST /_sim/audit`` (``audit_s``, ``failure_rate``,
``failure_word``), ``POST /_sim/products/{id}`` (``{"status": ...}``), ``/_sim/config``.
"""

from simulators.tiktok.app import create_app
from simulators.tiktok.middleware import signature

__all__ = ["create_app", "signature"]
