"""Settings of the printify stage: credentials, shop, and the product catalog per type."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.events import ProductType
from shared.pricing import PricingRule
from shared.runner import RunnerSettings
from shared.settings import DatabaseSettings
from shared.storage import ImageStorageSettings
from shared.vendors.printify import PrintifyAccountSettings


class CatalogEntry(BaseModel):
    """How one product type is made on Printify."""

    blueprint_id: int = Field(ge=1)
    print_provider_id: int = Field(ge=1)
    price_cents: int = Field(
        ge=1, description="List price in integer cents: the least any variant sells for"
    )
    # Each variant sells for its production cost plus the larger of these, rounded up to .99.
    margin_percent: float = Field(default=40.0, ge=0, le=1000)
    min_profit_cents: int = Field(default=400, ge=0)
    positions: tuple[str, ...] = ("front",)
    max_variants: int = Field(default=100, ge=1, le=100)  # Printify's per-product cap
    colours: tuple[str, ...] | None = Field(
        default=None, description="Only variants of these colours; None = all available"
    )

    def pricing(self) -> PricingRule:
        """How this type's variants are priced from their costs."""
        return PricingRule(
            margin_percent=self.margin_percent,
            min_profit_cents=self.min_profit_cents,
            floor_cents=self.price_cents,
        )


# The seed's prices (19.99 for a tee, 34.99 for a hoodie) as list prices: the sizes whose cost
# leaves less than the margin sell for more.
DEFAULT_CATALOG: dict[ProductType, CatalogEntry] = {
    ProductType.TSHIRT: CatalogEntry(blueprint_id=6, print_provider_id=99, price_cents=1999),
    ProductType.HOODIE: CatalogEntry(blueprint_id=77, print_provider_id=99, price_cents=3499),
    ProductType.MUG: CatalogEntry(blueprint_id=68, print_provider_id=1, price_cents=1499),
}


class PrintifySettings(
    RunnerSettings, DatabaseSettings, PrintifyAccountSettings, ImageStorageSettings
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
    product_catalog: dict[ProductType, CatalogEntry] = Field(default_factory=dict)

    def catalog(self) -> dict[ProductType, CatalogEntry]:
        """The defaults, overridden per type by PRODUCT_CATALOG (JSON)."""
        return {**DEFAULT_CATALOG, **self.product_catalog}
