"""Etsy's answers as the engine reads them: every field used, typed. Parsed where the answer
arrives (:func:`parse`), so no untyped dict passes the client; an answer without a field the
engine needs is a permanent error naming it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.adapters.vendors.answers import read_answer

VENDOR = "etsy"
M = TypeVar("M", bound=BaseModel)

# --------------------------------------------------------------------------------------------
# Etsy's answers the preflight reads (typed: only the fields used, others ignored)


class EtsyMe(BaseModel):
    """getMe: whose token it is and their shop."""

    user_id: int
    shop_id: int | None = None


class EtsyShop(BaseModel):
    """getShop (the fields the preflight shows)."""

    shop_id: int
    shop_name: str = ""
    user_id: int | None = None


class ShippingProfile(BaseModel):
    shipping_profile_id: int
    title: str | None = None


class ProcessingProfile(BaseModel):
    """A readiness state definition (Etsy's processing profile)."""

    readiness_state_id: int
    readiness_state: str
    min_processing_days: int | None = None
    max_processing_days: int | None = None


class ReturnPolicy(BaseModel):
    return_policy_id: int
    accepts_returns: bool | None = None
    accepts_exchanges: bool | None = None
    return_deadline: int | None = None


class TaxonomyNode(BaseModel):
    id: int
    name: str = ""
    children: list[TaxonomyNode] = Field(default_factory=list)

    def walk(self) -> Iterable[TaxonomyNode]:
        yield self
        for child in self.children:
            yield from child.walk()


def parse(model: type[M], value: object, what: str) -> M:
    """Etsy's answer ``value`` to ``what`` as ``model`` (:func:`~shared.adapters.vendors.answers.
    read_answer`)."""
    return read_answer(model, value, vendor=VENDOR, what=what)


# --------------------------------------------------------------------------------------------
# Etsy's listings, as the channel reads them (other fields kept, not read)


class EtsyModel(BaseModel):
    """An Etsy object of which the engine reads some fields: the others are kept."""

    model_config = ConfigDict(extra="allow")


class InventoryProduct(EtsyModel):
    """One product of a listing's inventory (a variant)."""

    sku: str | None = None


class ListingInventory(EtsyModel):
    """getListingInventory / updateListingInventory: the listing's products."""

    products: list[InventoryProduct] | None = None

    def skus(self) -> list[str]:
        return sorted(p.sku or "" for p in self.products or [])


class ListingImage(EtsyModel):
    """uploadListingImage: one image of a listing."""

    listing_image_id: int | None = None


class EtsyListing(EtsyModel):
    """getListing / createDraftListing / updateListing: a listing, with its inventory and
    images when asked for (``includes``)."""

    listing_id: int
    state: str | None = None
    tags: list[str] | None = None
    inventory: ListingInventory | None = None
    images: list[ListingImage] | None = None

    def tag_set(self) -> set[str]:
        """Its tags, lower case (Etsy compares them so)."""
        return {t.lower() for t in self.tags or []}

    def skus(self) -> list[str]:
        return self.inventory.skus() if self.inventory is not None else []


class ListingsPage(EtsyModel):
    """getListingsByShop: one page, and how many listings match in all."""

    count: int | None = None
    results: list[EtsyListing] | None = None


class Ping(EtsyModel):
    """ping: the application's id."""

    application_id: int | None = None


class ProcessingProfiles(EtsyModel):
    """getShopReadinessStateDefinitions: one page of the shop's processing profiles."""

    results: list[ProcessingProfile] | None = None
