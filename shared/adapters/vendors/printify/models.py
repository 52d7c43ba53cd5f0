"""Printify's answers as the engine reads them: every field a stage uses, typed.

A model is parsed where the answer arrives (:class:`~shared.adapters.vendors.printify.client.
PrintifyClient`), so no untyped dict passes the client and mypy sees a renamed field. Printify
adds fields over time: each model keeps the ones it does not name (``extra="allow"``) and
types only those the engine reads; ones the engine can do without default to empty.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class PrintifyModel(BaseModel):
    """What every Printify answer shares: unknown fields kept, ids read as text where text."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class Shop(PrintifyModel):
    """``GET /v1/shops.json``: a shop and the sales channel it sells through."""

    id: int | str
    title: str | None = None
    sales_channel: str | None = None


class Upload(PrintifyModel):
    """``POST /v1/uploads/images.json``: the uploaded file's id (what print areas name)."""

    id: str


class Blueprint(PrintifyModel):
    """``GET /v1/catalog/blueprints.json``: one catalog product."""

    id: int
    title: str | None = None


class PrintProvider(PrintifyModel):
    """``GET .../print_providers.json``: one provider of a blueprint."""

    id: int
    title: str | None = None


class Placeholder(PrintifyModel):
    """A print area of a catalog variant and its size in pixels (0 when not told)."""

    position: str | None = None
    width: int | None = None
    height: int | None = None


class CatalogVariant(PrintifyModel):
    """``GET .../variants.json``: one variant of a blueprint at a provider."""

    id: int
    title: str | None = None
    is_available: bool = True
    options: dict[str, str | int | float | None] = Field(default_factory=dict)
    placeholders: list[Placeholder] = Field(default_factory=list)


class PlacedImage(PrintifyModel):
    """An upload placed on a product's print area."""

    id: str | None = None


class PlacedPlaceholder(PrintifyModel):
    """A product's print area at one position with the images on it."""

    position: str | None = None
    images: list[PlacedImage] = Field(default_factory=list)


class ProductPrintArea(PrintifyModel):
    """A product's print areas for some of its variants."""

    variant_ids: list[int] = Field(default_factory=list)
    placeholders: list[PlacedPlaceholder] = Field(default_factory=list)


class ProductVariant(PrintifyModel):
    """A product's variant: its price and production cost in cents (None when not told)."""

    id: int
    sku: str | None = None
    price: StrictInt | None = None
    cost: StrictInt | None = None
    is_enabled: bool = False
    options: list[int] = Field(default_factory=list)


class OptionValue(PrintifyModel):
    """One value of a product option (``{"id": 1, "title": "S"}``)."""

    id: int
    title: str


class ProductOption(PrintifyModel):
    """A product option (colour, size) and its values."""

    name: str
    values: list[OptionValue] = Field(default_factory=list)


class ProductImage(PrintifyModel):
    """A mockup of a product."""

    src: str | None = None
    is_default: bool = False


class External(PrintifyModel):
    """Where the sales channel lists the product (``external``), once it does."""

    id: str | None = None
    handle: str | None = None


class Product(PrintifyModel):
    """``GET /v1/shops/{shop}/products/{id}.json``: a product as the engine reads it."""

    id: str
    title: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    blueprint_id: int | None = None
    print_provider_id: int | None = None
    created_at: str | None = None
    is_locked: bool = False
    external: External | None = None
    options: list[ProductOption] = Field(default_factory=list)
    variants: list[ProductVariant] = Field(default_factory=list)
    images: list[ProductImage] = Field(default_factory=list)
    print_areas: list[ProductPrintArea] = Field(default_factory=list)

    def enabled_ids(self) -> set[int]:
        """The ids of the variants the product sells."""
        return {v.id for v in self.variants if v.is_enabled}


class ProductPage(PrintifyModel):
    """``GET /v1/shops/{shop}/products.json``: one page of products in Printify's envelope."""

    data: list[Product] = Field(default_factory=list)
    current_page: int | None = None
    last_page: int | None = None
    total: int | None = None


class Webhook(PrintifyModel):
    """``GET /v1/shops/{shop}/webhooks.json``: one webhook."""

    id: str
    topic: str | None = None
    url: str | None = None


class Deleted(PrintifyModel):
    """What a delete did: ``already_gone`` when Printify had no such product any more (404:
    deleted by an earlier attempt, or by the seller in Printify)."""

    product_id: str
    already_gone: bool = False


class VariantPrice(BaseModel):
    """One variant in a price update: Printify's reference asks for every variant of the
    product, each with its price (cents) and whether it is sold; the SKU is sent back as it is
    so that an update that replaces variants whole keeps it."""

    model_config = ConfigDict(frozen=True)

    id: int
    price: int = Field(ge=0)
    is_enabled: bool
    sku: str | None = None

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "price": self.price,
            "is_enabled": self.is_enabled,
        }
        if self.sku is not None:
            body["sku"] = self.sku
        return body
