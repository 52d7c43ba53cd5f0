"""The seller's review and cancel: the decisions' bodies and answers, and the review as shown."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from services.api.schemas.common import PromptText, _Wire
from services.api.schemas.jobs import ImageScreeningView
from services.api.text import SAFE_TEXT
from shared.contract.events import MAX_GENERATION, ChannelName, ProductType

Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), SAFE_TEXT
]
Generation = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=MAX_GENERATION,
        description="The image's generation the seller looked at: refused (409) when the image "
        "has been regenerated since",
    ),
]


class _Body(_Wire):
    # Only the documented names; an unknown field is a 422 naming it.
    model_config = ConfigDict(
        alias_generator=_Wire.model_config.get("alias_generator"),
        validate_by_alias=True,
        validate_by_name=False,
        extra="forbid",
    )


class DecisionRequest(_Body):
    """``POST /jobs/{id}/images/{index}/approve|reject`` body (optional)."""

    generation: Generation | None = None


class RegenerateRequest(DecisionRequest):
    """``POST /jobs/{id}/images/{index}/regenerate`` body (optional)."""

    prompt: PromptText | None = Field(
        default=None, description="The prompt to render instead of the image's own"
    )


class CancelRequest(_Body):
    """``POST /jobs/{id}/cancel`` body (optional)."""

    reason: Reason | None = None


class ListingChange(_Body):
    """``POST /jobs/{id}/unpublish`` and ``/delete`` body (optional): which of the job's
    products, on which channels; nothing given: every product on every channel."""

    image_index: Annotated[int, Field(strict=True, ge=0, le=1000)] | None = None
    product_type: ProductType | None = None
    channels: Annotated[list[ChannelName], Field(min_length=1, max_length=10)] | None = None
    reason: Reason | None = None


Margin = Annotated[
    float,
    Field(
        strict=False,
        ge=0,
        lt=95,
        description="Gross margin to price by, in % of the price (never below cost)",
    ),
]


class RepriceRequest(ListingChange):
    """``POST /jobs/{id}/reprice`` body: a new margin for the job's products (or some)."""

    margin_percent: Margin


class RepriceMany(_Body):
    """``POST /reprice`` body: a new margin for every listed job of a niche, of a theme, or
    (neither given, with ``all``) every one."""

    margin_percent: Margin
    niche: Reason | None = None
    theme: Reason | None = None
    all: Annotated[bool, Field(strict=True)] = False
    reason: Reason | None = None


class ListingChangeAccepted(_Wire):
    """An after-launch decision, produced (202)."""

    job_id: str
    decision_id: uuid.UUID
    action: str
    decided_by: str


class RepriceManyAccepted(_Wire):
    """``POST /reprice`` answer: one decision per job."""

    decisions: list[ListingChangeAccepted]


ReviewStateName = Literal[
    "pending", "awaiting", "approved", "rejected", "regenerating", "cancelled"
]


class DecisionAccepted(_Wire):
    """A decision about an image: produced (202), or the one already taken (200)."""

    job_id: str
    image_index: int
    action: Literal["approve", "reject", "regenerate"]
    decision_id: uuid.UUID
    generation: int = Field(description="The image's generation the decision is about")
    state: ReviewStateName = Field(description="The image's review state after the decision")
    decided_by: str
    decided_at: datetime | None


class CancelAccepted(_Wire):
    """``POST /jobs/{id}/cancel``: produced (202), or the cancel already taken (200)."""

    job_id: str
    decision_id: uuid.UUID
    detailed_status: Literal["cancelled"] = "cancelled"
    decided_by: str


class ReviewProduct(_Wire):
    """One product of an image under review: what the seller judges it by."""

    product_type: str
    product_id: str | None
    status: str
    mockups: list[str] = Field(description="Printify's mockup images, its default first")
    price_min_cents: int | None
    price_max_cents: int | None
    cost_min_cents: int | None
    cost_max_cents: int | None
    profit_min_cents: int | None = Field(description="Least profit of any variant (cents)")
    margin_min_percent: float | None = Field(description="Least gross margin, in percent")


class ReviewImage(_Wire):
    """One image of a job with review, and where its review stands."""

    image_index: int
    generation: int
    state: ReviewStateName = Field(
        description="pending (its products are still being made), awaiting (the seller's turn), "
        "approved, rejected, regenerating (a new image is being made) or cancelled"
    )
    awaiting_since: datetime | None
    decision: str | None = Field(description="The last decision about it")
    decision_id: uuid.UUID | None
    decided_by: str | None
    decided_at: datetime | None
    title: str
    description: str
    tags: list[str]
    prompt: str
    thumbnail_url: str = Field(description="A preview of the image (WebP)")
    image_url: str = Field(description="The image as stored")
    products: list[ReviewProduct]
    screening: ImageScreeningView | None = Field(
        default=None,
        description="What screening decided of the image and why (held for review: why the "
        "seller is asked); null for an image from before screening",
    )


class JobReview(_Wire):
    """``GET /jobs/{id}/review``: every image of the job with what the seller decides by."""

    job_id: str
    review: bool = Field(description="Whether the job was submitted with review")
    cancelled: bool
    detailed_status: str
    theme: str
    style: str
    niche: str
    images: list[ReviewImage]


class ReviewQueueItem(_Wire):
    """One image in ``GET /reviews``."""

    job_id: str
    image_index: int
    generation: int
    state: ReviewStateName
    awaiting_since: datetime | None
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    title: str | None
    theme: str
    niche: str
    thumbnail_url: str
    product_count: int


class ReviewQueue(_Wire):
    """``GET /reviews``: images of the caller's jobs in one review state, oldest first."""

    reviews: list[ReviewQueueItem]
    total: int = Field(description="How many images are in that state in all")
