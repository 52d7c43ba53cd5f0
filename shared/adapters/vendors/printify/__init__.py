"""Printify: the client (:mod:`.client`), its answers typed (:mod:`.models`), the product the
engine makes (:mod:`.products`), the search for a lost create (:mod:`.search`), the shop
choice (:mod:`.shops`) and the account's settings (:mod:`.settings`). What other modules import
is re-exported here."""

from shared.adapters.vendors.printify.client import (
    DEFAULT_PUBLISH_PARTS,
    MAX_429_RETRIES,
    PrintifyClient,
)
from shared.adapters.vendors.printify.models import (
    Blueprint,
    CatalogVariant,
    Deleted,
    External,
    PrintProvider,
    Product,
    ProductImage,
    ProductPage,
    ProductVariant,
    Shop,
    Upload,
    VariantPrice,
    Webhook,
)
from shared.adapters.vendors.printify.products import (
    FULL_WIDTH,
    AreaPlan,
    build_product_payload,
    plan_print_areas,
)
from shared.adapters.vendors.printify.search import MAX_SCAN_PAGES, PRODUCTS_PAGE_MAX, VENDOR
from shared.adapters.vendors.printify.settings import PrintifyAccountSettings, printify_client
from shared.adapters.vendors.printify.shops import ShopLister, choose_shop

__all__ = [
    "DEFAULT_PUBLISH_PARTS",
    "FULL_WIDTH",
    "MAX_429_RETRIES",
    "MAX_SCAN_PAGES",
    "PRODUCTS_PAGE_MAX",
    "VENDOR",
    "AreaPlan",
    "Blueprint",
    "CatalogVariant",
    "Deleted",
    "External",
    "PrintProvider",
    "PrintifyAccountSettings",
    "PrintifyClient",
    "Product",
    "ProductImage",
    "ProductPage",
    "ProductVariant",
    "Shop",
    "ShopLister",
    "Upload",
    "VariantPrice",
    "Webhook",
    "build_product_payload",
    "choose_shop",
    "plan_print_areas",
    "printify_client",
]
