"""Settings of the printify stage: credentials, shop, and the product catalog per type."""

from __future__ import annotations

from pydantic import Field

from shared.adapters.storage import ImageStorageSettings
from shared.adapters.vendors.printify import PrintifyAccountSettings
from shared.domain.catalog import DEFAULT_CATALOG, CatalogEntry, CatalogSettings
from shared.pipeline.runner import RunnerSettings
from shared.platform.settings import DatabaseSettings

__all__ = ["DEFAULT_CATALOG", "CatalogEntry", "PrintifySettings"]


class PrintifySettings(
    RunnerSettings, DatabaseSettings, PrintifyAccountSettings, ImageStorageSettings, CatalogSettings
):
    """The Printify account (PRINTIFY_API_KEY, its limits), shop and catalog (PRINTIFY_SHOP_ID,
    PRODUCT_CATALOG), the database of the ledger and the shared budgets (DATABASE_URL), and the
    image storage that uploads are read from (IMAGE_STORAGE_DIR, IMAGE_MAX_BYTES)."""

    print_min_dpi: float = Field(
        default=150, ge=0, le=1200, description="Refuse a product whose art prints below this"
    )
    printify_shop_id: str | None = Field(
        default=None, description="Unset = the account's only shop (required when it has several)"
    )
