"""Shopify's Admin GraphQL answers as the engine reads them: the envelope (data, errors, the
query-cost extension) and the ``data`` of each operation the engine sends, typed. A field the
engine does not read is kept (``extra="allow"``) and not looked at; one it needs that is
missing or of another shape is a permanent error naming it (:func:`parse`).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.adapters.vendors.answers import read_answer

VENDOR = "shopify"
M = TypeVar("M", bound=BaseModel)


class ShopifyModel(BaseModel):
    """A Shopify object of which the engine reads some fields: the others are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def parse(model: type[M], value: object, what: str) -> M:
    """Shopify's answer ``value`` to ``what`` as ``model`` (:func:`~shared.adapters.vendors.answers.
    read_answer`)."""
    return read_answer(model, value, vendor=VENDOR, what=what)


# --- the envelope --------------------------------------------------------------------------


class ThrottleStatus(ShopifyModel):
    """The query-cost bucket as Shopify reports it after a call."""

    maximum_available: float = Field(0.0, alias="maximumAvailable")
    currently_available: float = Field(0.0, alias="currentlyAvailable")
    restore_rate: float = Field(0.0, alias="restoreRate")


class Cost(ShopifyModel):
    requested_query_cost: float | None = Field(None, alias="requestedQueryCost")
    throttle_status: ThrottleStatus | None = Field(None, alias="throttleStatus")


class Extensions(ShopifyModel):
    cost: Cost | None = None


class ErrorExtensions(ShopifyModel):
    code: str | None = None


class GraphQLError(ShopifyModel):
    message: str | None = None
    extensions: ErrorExtensions | None = None


class Envelope(ShopifyModel):
    """A GraphQL answer: ``data`` (read per operation), ``errors`` and the cost extension."""

    data: object = None
    errors: list[GraphQLError] | None = None
    extensions: Extensions | None = None


# --- the operations' data -------------------------------------------------------------------


class UserError(ShopifyModel):
    field: list[str] | None = None
    message: str | None = None
    code: str | None = None

    def describe(self) -> str:
        return f"{'.'.join(self.field or [])}: {self.message}"


class ShopifyVariant(ShopifyModel):
    id: str
    sku: str | None = None
    price: str | None = None


class Variants(ShopifyModel):
    nodes: list[ShopifyVariant] = Field(default_factory=list)


class ShopifyProduct(ShopifyModel):
    """A product as productSet and productByIdentifier answer it."""

    id: str
    status: str | None = None
    online_store_url: str | None = Field(None, alias="onlineStoreUrl")
    variants: Variants | None = None

    def listed_variants(self) -> list[ShopifyVariant]:
        return self.variants.nodes if self.variants is not None else []


class ProductUpdateResult(ShopifyModel):
    product: ShopifyProduct | None = None
    user_errors: list[UserError] = Field(default_factory=list, alias="userErrors")


class ProductStatusData(ShopifyModel):
    """PodProductStatus (productUpdate)."""

    product_update: ProductUpdateResult | None = Field(None, alias="productUpdate")


class ProductDeleteResult(ShopifyModel):
    deleted_product_id: str | None = Field(None, alias="deletedProductId")
    user_errors: list[UserError] = Field(default_factory=list, alias="userErrors")


class ProductDeleteData(ShopifyModel):
    """PodProductDelete."""

    product_delete: ProductDeleteResult | None = Field(None, alias="productDelete")


class VariantPricesResult(ShopifyModel):
    product_variants: list[ShopifyVariant] | None = Field(None, alias="productVariants")
    user_errors: list[UserError] = Field(default_factory=list, alias="userErrors")


class VariantPricesData(ShopifyModel):
    """PodVariantPrices (productVariantsBulkUpdate)."""

    bulk_update: VariantPricesResult | None = Field(None, alias="productVariantsBulkUpdate")


class ProductSetResult(ShopifyModel):
    product: ShopifyProduct | None = None
    user_errors: list[UserError] = Field(default_factory=list, alias="userErrors")


class ProductSetData(ShopifyModel):
    """PodProductSet."""

    product_set: ProductSetResult | None = Field(None, alias="productSet")


class Publishable(ShopifyModel):
    online_store_url: str | None = Field(None, alias="onlineStoreUrl")


class PublishResult(ShopifyModel):
    publishable: Publishable | None = None
    user_errors: list[UserError] = Field(default_factory=list, alias="userErrors")


class PublishData(ShopifyModel):
    """PodPublish."""

    publishable_publish: PublishResult | None = Field(None, alias="publishablePublish")


class ProductData(ShopifyModel):
    """PodProduct (productByIdentifier: null when there is no such product)."""

    product: ShopifyProduct | None = Field(None, alias="productByIdentifier")


class Catalog(ShopifyModel):
    title: str | None = None


class Publication(ShopifyModel):
    id: str
    catalog: Catalog | None = None

    @property
    def title(self) -> str | None:
        return self.catalog.title if self.catalog is not None else None


class Publications(ShopifyModel):
    nodes: list[Publication | None] | None = None


class PublicationsData(ShopifyModel):
    """PodPublications."""

    publications: Publications | None = None

    def listed(self) -> list[Publication]:
        return [n for n in (self.publications.nodes or []) if n] if self.publications else []


class PublicationData(ShopifyModel):
    """PodPublication (null when the id names none)."""

    publication: Publication | None = None


class ApiVersion(ShopifyModel):
    handle: str | None = None
    supported: bool = False


class AccessScope(ShopifyModel):
    handle: str | None = None


class Installation(ShopifyModel):
    access_scopes: list[AccessScope] | None = Field(None, alias="accessScopes")


class InstallationData(ShopifyModel):
    """PodInstallation: the versions Shopify serves and the app's granted scopes."""

    public_api_versions: list[ApiVersion] | None = Field(None, alias="publicApiVersions")
    installation: Installation | None = Field(None, alias="currentAppInstallation")
