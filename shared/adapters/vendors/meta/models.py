"""Meta's Graph answers as the engine reads them (fields per Meta's SDK codegen specs:
CheckBatchRequestStatus, ProductItem, ProductItemError, ProductCatalog)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

VENDOR = "meta"


class MetaModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GraphErrorBody(MetaModel):
    message: str = ""
    type: str | None = None
    code: int | None = None
    error_subcode: int | None = None
    fbtrace_id: str | None = None


class GraphErrorAnswer(MetaModel):
    error: GraphErrorBody


class BatchAnswer(MetaModel):
    """``POST /{catalog}/items_batch``: the handle to check the batch by."""

    handles: list[str]


class BatchMessage(MetaModel):
    """One item's error or warning in a batch's status."""

    line: int | None = None
    id: str | None = None
    message: str = ""


class BatchStatus(MetaModel):
    handle: str | None = None
    status: str
    errors: list[BatchMessage] = []
    warnings: list[BatchMessage] = []
    errors_total_count: int = 0
    warnings_total_count: int = 0
    ids_of_invalid_requests: list[str] = []

    @property
    def finished(self) -> bool:
        return self.status.lower() in ("finished", "canceled", "error")


class BatchStatusPage(MetaModel):
    data: list[BatchStatus]


class ProductItemError(MetaModel):
    title: str | None = None
    description: str | None = None
    error_type: str | None = None
    error_priority: str | None = None


class ProductItem(MetaModel):
    id: str
    retailer_id: str | None = None
    retailer_product_group_id: str | None = None
    review_status: str | None = None
    review_rejection_reasons: list[str] = []
    errors: list[ProductItemError] = []
    url: str | None = None
    # "staging": hidden from shoppers (a seller's unpublish); "published" (Meta's default).
    visibility: str | None = None
    price: str | None = None

    @property
    def hidden(self) -> bool:
        return (self.visibility or "published") == "staging"


class ProductPage(MetaModel):
    data: list[ProductItem]


class BusinessRef(MetaModel):
    id: str
    name: str | None = None


class Catalog(MetaModel):
    id: str
    name: str | None = None
    business: BusinessRef | None = None


class Me(MetaModel):
    id: str
    name: str | None = None


class UsageEntry(MetaModel):
    """One use case's entry of ``X-Business-Use-Case-Usage`` (percentages; minutes)."""

    type: str | None = None
    call_count: float = 0
    total_cputime: float = 0
    total_time: float = 0
    estimated_time_to_regain_access: float = 0

    @property
    def highest(self) -> float:
        return max(self.call_count, self.total_cputime, self.total_time)
