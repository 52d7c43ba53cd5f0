"""TikTok Shop's answers as the engine reads them (Partner API 202309 / 202502): every answer
is the envelope ``{"code", "message", "request_id", "data"}``; these are the ``data`` parts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

VENDOR = "tiktok"

# TikTok's codes (Partner Center, common error codes) the client acts on.
INVALID_ACCESS_TOKEN = 105001
EXPIRED_ACCESS_TOKEN = 105002
TOKEN_CODES = frozenset({INVALID_ACCESS_TOKEN, EXPIRED_ACCESS_TOKEN})
INVALID_SIGN = 106001
INVALID_TIMESTAMP = 106002
TOO_MANY_REQUESTS = 36009004
INTERNAL_ERROR = 36009003
PRODUCT_NOT_FOUND = 12052048


class TikTokModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Envelope(TikTokModel):
    code: int
    message: str = ""
    request_id: str = ""
    data: object = None


class TokenData(TikTokModel):
    access_token: str = Field(min_length=1)
    access_token_expire_in: int  # a unix time, not a duration
    refresh_token: str = Field(min_length=1)
    refresh_token_expire_in: int = 0


class Shop(TikTokModel):
    id: str
    name: str = ""
    region: str = ""
    cipher: str = Field(min_length=1)


class Shops(TikTokModel):
    shops: list[Shop] = []


class Warehouse(TikTokModel):
    id: str
    name: str = ""
    effect_status: str = ""
    type: str = ""
    is_default: bool = False


class Warehouses(TikTokModel):
    warehouses: list[Warehouse] = []


class UploadedImage(TikTokModel):
    uri: str = Field(min_length=1)
    url: str = ""


class Category(TikTokModel):
    id: str
    parent_id: str = ""
    local_name: str = ""
    is_leaf: bool = False


class Categories(TikTokModel):
    categories: list[Category] = []


class Recommended(TikTokModel):
    leaf_category_id: str = Field(min_length=1)


class AttributeValue(TikTokModel):
    id: str
    name: str = ""


class Attribute(TikTokModel):
    id: str
    name: str = ""
    type: str = ""
    # TikTok's spelling in the 202309 answer; the correct one is read too, in case a later
    # version fixes it (not seen in a live answer here).
    is_requried: bool = False
    is_required: bool = False
    is_customizable: bool = False
    values: list[AttributeValue] = []

    @property
    def required(self) -> bool:
        return self.is_requried or self.is_required


class Attributes(TikTokModel):
    attributes: list[Attribute] = []


class Created(TikTokModel):
    product_id: str = Field(min_length=1)


class AuditFailure(TikTokModel):
    position: str = ""
    reasons: list[str] = []
    suggestions: list[str] = []


class Sku(TikTokModel):
    id: str = ""
    seller_sku: str = ""


class ProductDetail(TikTokModel):
    id: str
    status: str
    title: str = ""
    audit_failed_reasons: list[AuditFailure] = []
    skus: list[Sku] = []


class ProductSummary(TikTokModel):
    id: str
    status: str
    skus: list[Sku] = []


class SearchPage(TikTokModel):
    products: list[ProductSummary] = []
    next_page_token: str = ""
    total_count: int = 0


class MutationError(TikTokModel):
    """One product a bulk call (Deactivate, Activate, Delete Products) failed for."""

    code: int = 0
    message: str = ""
    detail: dict[str, object] = {}

    @property
    def product_id(self) -> str:
        return str(self.detail.get("product_id") or "")


class Mutation(TikTokModel):
    """A bulk call's answer: the products it failed for (none: done for all)."""

    errors: list[MutationError] = []
