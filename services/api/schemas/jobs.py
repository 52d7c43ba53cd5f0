"""``/jobs``: the request (the job's spec under camelCase names) and the job as it is shown."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from services.api.schemas.common import PromptText, Text, _Wire
from shared.contract.events import (
    MAX_LEVEL,
    MIN_LEVEL,
    JobRequestedPayload,
    JobSpec,
    Priority,
    ProductType,
    ScreeningCheck,
    ScreeningDecision,
)
from shared.contract.sales_channels import DEFAULT_CHANNEL
from shared.contract.topics import CHANNELS


class JobStatus(StrEnum):
    """The states of ``jobs.status`` (the CHECK constraint of migration 0001)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    RETRYING = "retrying"
    AWAITING_REVIEW = "awaiting_review"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobRequest(JobSpec):
    """``POST /jobs`` body: what to design, for which products, how many, how urgent."""

    # The job's spec (shared.contract.events.JobSpec holds the field list) under its camelCase
    # names. The front door is stricter than the topic where people type: text is stripped and
    # bounded, numbers and booleans are not read from strings, and the priority is a band or a
    # number (the band the settings give a number comes at submission).

    # Only the documented camelCase names; anything else is an unknown field.
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="forbid",
    )

    theme: Text
    style: Text
    niche: Text
    prompt: PromptText | None = None
    # Strict: a JSON API should not read "5" or 5.5 as five images, nor "yes" as true.
    # The upper bound is a setting (MAX_IMAGES_PER_JOB), checked at submission.
    count: Annotated[
        int, Field(strict=True, ge=1, description="Images to make (at most MAX_IMAGES_PER_JOB)")
    ]
    auto_publish: Annotated[bool, Field(strict=True)] = False
    # Unset: the deployment's REVIEW_DEFAULT (decided at submission).
    review: Annotated[
        bool | None,
        Field(
            strict=True,
            description="Hold every image's products for the seller's review (approve, reject "
            "or regenerate) before anything is listed; unset: the deployment's REVIEW_DEFAULT",
        ),
    ] = None  # type: ignore[assignment]  # wider than the spec's: unset is a choice
    # Any names here: they are checked against the deployment's channels at submission.
    channels: Annotated[
        list[str] | None,
        Field(
            min_length=1,
            max_length=10,
            description="Sales channels to publish to with autoPublish (a subset of "
            "PUBLISH_CHANNELS); unset: every channel of the deployment",
        ),
    ] = None
    # As given: the spec's band and level are made of it at submission (a band by the rule).
    priority: Annotated[
        Priority | int,
        Field(description="high, normal or low; or a number 1-10 (higher is more urgent)"),
    ] = Priority.NORMAL  # type: ignore[assignment]  # wider than the spec's: a band or a number
    # Not the request's: a number goes in `priority` (the spec's level is made of it).
    priority_level: SkipJsonSchema[int | None] = Field(default=None, exclude=True)

    @field_validator("priority_level", mode="before")
    @classmethod
    def _not_given(cls, value: object) -> object:
        raise PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> object:
        # Exactly a band name or an integer 1-10: not "10", 9.5 or true.
        if isinstance(value, int) and not isinstance(value, bool):
            if MIN_LEVEL <= value <= MAX_LEVEL:
                return value
        elif isinstance(value, str) and value in {p.value for p in Priority}:
            return Priority(value)
        raise ValueError(
            f"must be one of 'high', 'normal' or 'low', or a number {MIN_LEVEL}-{MAX_LEVEL} "
            "(higher is more urgent)"
        )

    @field_validator("product_types")
    @classmethod
    def _distinct(cls, value: list[ProductType]) -> list[ProductType]:
        if len(set(value)) != len(value):
            raise ValueError("must not list a product type twice")
        return value

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("must not list a channel twice")
        return value

    def canonical(self) -> dict[str, object]:
        """The request as stored and hashed: normalised values, camelCase keys (without
        ``channels`` when not given, so that requests hash as they did before channels)."""
        dumped: dict[str, object] = self.model_dump(mode="json")
        for unset in ("channels", "review"):  # as requests hashed before these fields
            if dumped.get(unset) is None:
                dumped.pop(unset, None)
        return dumped

    def spec(self, band: Priority, channels: list[str], *, review: bool = False) -> JobSpec:
        """The job's spec: its band and level (``priority`` as a band, or a number in the band
        the settings give it), the channels it publishes to, and whether it is reviewed
        (``review``: the deployment's default, when the request leaves it unset)."""
        given = self.priority
        return JobSpec.model_validate(
            {
                **self.model_dump(by_alias=False, exclude={"priority", "channels", "review"}),
                "priority": band,
                "priority_level": None if isinstance(given, Priority) else given,
                "channels": channels,
                "review": review if self.review is None else self.review,
            }
        )


class JobAccepted(_Wire):
    """``POST /jobs`` answer: the job is durably on its Kafka topic."""

    job_id: str
    status: Literal["accepted"] = "accepted"


class DeliveredImage(_Wire):
    """An image the job made."""

    image_index: int
    uri: str
    title: str


class DeliveredProduct(_Wire):
    """A product made on Printify (a draft unless published)."""

    image_index: int
    product_type: str
    product_id: str
    status: str


class DeliveredPublication(_Wire):
    """A product listed on its sales channel."""

    image_index: int
    product_type: str
    product_id: str
    external_id: str | None


class JobResult(_Wire):
    """What a job delivered: its images, products and publications (the seed's ``result``)."""

    images: list[DeliveredImage]
    products: list[DeliveredProduct]
    publications: list[DeliveredPublication]


# The seed's job states: a job that ended with only part of its work delivered is shown to a
# seed client as `completed` (it ended, and delivered something: `result` lists what and
# `error` says what not); `detailedStatus` says `partial`.
SeedJobStatus = Literal["queued", "processing", "retrying", "completed", "failed"]


class JobView(_Wire):
    """One job as the monitor's fold (or the API's own insert) knows it; with the seed's
    fields (``id``, ``status``, ``priority``, ``request``, ``result``, ``created_at``,
    ``completed_at``) beside the richer ones."""

    job_id: str
    status: SeedJobStatus = Field(
        description="The seed's states; a partial job is `completed` here, one awaiting review "
        "`processing`, a cancelled one `failed` (see detailedStatus)"
    )
    detailed_status: JobStatus = Field(
        description="Also tells `partial` from `completed`, and says `awaiting_review` and "
        "`cancelled`"
    )
    priority: Priority | int = Field(description="As it was given: a band, or a number 1-10")
    band: Priority = Field(description="The priority band the job runs in")
    theme: str
    style: str
    niche: str
    prompt: str | None
    product_types: list[str]
    count: int
    auto_publish: bool
    channels: list[str] = Field(
        default_factory=lambda: [DEFAULT_CHANNEL], description="Sales channels it publishes to"
    )
    expected_products: int
    expected_publications: int
    images_done: int
    images_failed: int
    products_done: int
    products_failed: int
    publications_done: int
    publications_failed: int
    error: str | None
    # While retrying: the attempt waiting, when it is due, and the error that caused it.
    retry_attempt: int
    next_retry_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # What the job cost at Claude: its briefs and screening's risk review of each image (None
    # until its first image is folded).
    claude_input_tokens: int | None = None
    claude_output_tokens: int | None = None
    claude_cache_read_tokens: int | None = None
    claude_cache_write_tokens: int | None = None
    # The job.requested payload as the row keeps it (None for a row written without one). Not
    # an answer's field (`request` shows it): typed loosely so that the documented schema does
    # not list the payload's model; the validator below makes it one.
    spec: SkipJsonSchema[object] = Field(default=None, exclude=True)

    # Set by GET /jobs/{id}: what the job delivered (None in lists).
    result: JobResult | None = None

    @field_validator("spec", mode="before")
    @classmethod
    def _stored(cls, value: object) -> JobRequestedPayload | None:
        # What an older version stored is read by today's fields (one since dropped is left
        # out); a row written by hand without a whole request ('{}') shows none, and its own
        # fields are still shown: one such row must not fail a whole list.
        if isinstance(value, JobRequestedPayload) or not isinstance(value, dict) or not value:
            return value if isinstance(value, JobRequestedPayload) else None
        known = {k: v for k, v in value.items() if k in JobRequestedPayload.model_fields}
        try:
            return JobRequestedPayload.model_validate(known)
        except ValidationError:
            return None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """The seed's name of ``jobId``."""
        return self.job_id

    @computed_field(alias="created_at")  # type: ignore[prop-decorator]
    @property
    def seed_created_at(self) -> datetime:
        """The seed's ``created_at`` (``createdAt``)."""
        return self.created_at

    @computed_field(alias="completed_at")  # type: ignore[prop-decorator]
    @property
    def completed_at(self) -> datetime | None:
        """The seed's ``completed_at``: when the job ended (``finishedAt``)."""
        return self.finished_at

    @computed_field  # type: ignore[prop-decorator]
    @property
    def request(self) -> dict[str, Any]:
        """The job as it was asked for, in the request's own shape: its stored spec by the
        request's names, the priority as given (empty for a row without a readable one)."""
        if not isinstance(self.spec, JobRequestedPayload):
            return {}
        shown = self.spec.model_dump(
            mode="json", by_alias=True, exclude={"priority_level", "submitted_by"}
        )
        shown["priority"] = self.priority
        return shown


class ImageSales(_Wire):
    """A design's sales: orders not canceled of its products, all time."""

    orders: int
    units: int
    revenue_cents: int
    cost_cents: int
    profit_cents: int
    margin_percent: float | None


class ResemblesView(_Wire):
    """The earlier design a new one resembles (near_duplicate)."""

    job_id: str
    image_index: int
    generation: int = 0
    distance: int = Field(description="Bits that differ between the perceptual hashes (0-64)")


class ScreeningReasonView(_Wire):
    """One finding of one check, and the decision it asked for under the deployment's policy."""

    check: ScreeningCheck
    outcome: ScreeningDecision
    detail: str = Field(description="What was found, where, and why it matters")
    field: str | None = Field(
        default=None,
        description="Where it was found: title, tags, description, prompt, image_text or image",
    )
    terms: list[str] = Field(default_factory=list, description="The protected terms involved")
    level: Literal["low", "medium", "high"] | None = Field(
        default=None, description="risk_review: Claude's risk level"
    )
    resembles: ResemblesView | None = None
    label: str | None = Field(default=None, description="unsafe_image: the classifier's label")
    score: float | None = Field(default=None, description="unsafe_image: its confidence (0-1)")


class ImageScreeningView(_Wire):
    """What screening found in an image and decided: ``allow``, ``review`` (its products wait
    for the seller) or ``block`` (nothing of it is made)."""

    decision: ScreeningDecision
    reasons: list[ScreeningReasonView] = Field(default_factory=list)
    checks: list[ScreeningCheck] = Field(default_factory=list, description="The checks that ran")


class ImageView(_Wire):
    """One generated image of a job."""

    image_index: int
    sha256: str
    uri: str
    width: int
    height: int
    prompt: str
    title: str
    description: str
    tags: list[str]
    created_at: datetime
    sales: ImageSales | None = Field(
        default=None, description="What the design sold (Printify's orders); null until it sells"
    )
    screening: ImageScreeningView | None = Field(
        default=None,
        description="What screening decided of the image's latest generation, and why; null "
        "for an image from before screening",
    )


# The engine's channels as a phrase: "printify, shopify or etsy".
_CHANNELS = " or ".join(filter(None, (", ".join(CHANNELS[:-1]), CHANNELS[-1])))


class ListingView(_Wire):
    """A product on one sales channel."""

    channel: str = Field(description=f"The engine's channel: {_CHANNELS}")
    status: str = Field(
        description="pending (not sent yet), publishing (sent, awaiting the channel's"
        " confirmation), retrying (the channel's publisher will try again; error says why),"
        " published or publish_failed"
    )
    listing_id: str | None = Field(description="The channel's id of the listing")
    url: str | None = Field(description="Where buyers find it")
    sales_channel: str | None = Field(
        description="For printify: the shop's own channel (etsy, shopify, custom_integration)"
    )
    error: str | None
    published_at: datetime | None


class ProductView(_Wire):
    """One product of a job (one image x one product type)."""

    image_index: int
    product_type: str
    status: str = Field(
        description="created, publishing (sent to its sales channel, awaiting the channel's"
        " confirmation), published, failed or publish_failed"
    )
    product_id: str | None
    shop_id: str | None
    # Stored as PriceSummary names it (price_min_cents); shown by the seed's name.
    price_cents: int | None = Field(
        validation_alias=AliasChoices("price_min_cents", "priceCents"),
        description="Lowest retail price of its variants (cents)",
    )
    price_max_cents: int | None = Field(description="Highest retail price (cents)")
    cost_min_cents: int | None = Field(description="Lowest production cost (cents)")
    cost_max_cents: int | None = Field(description="Highest production cost (cents)")
    profit_min_cents: int | None = Field(description="Least profit of any variant (cents)")
    margin_min_percent: float | None = Field(
        description="Least gross margin of any variant (profit / price), in percent"
    )
    print_dpi: float | None = Field(
        description="Resolution the art prints at (the lowest over the print areas)"
    )
    mockups: list[str] | None = Field(
        description="Printify's mockup images of the product, its default first"
    )
    title: str | None
    external_id: str | None
    error: str | None
    created_at: datetime
    published_at: datetime | None
    listings: list[ListingView] = Field(
        default_factory=list, description="Its publication on each of the job's channels"
    )


class LogView(_Wire):
    """One entry of a job's event log."""

    type: str
    level: str
    message: str
    data: Any
    occurred_at: datetime


class WaitView(_Wire):
    """Something the job is waiting for right now, and until about when."""

    kind: Literal["vendor_limit", "gpu", "credential", "retry", "confirmation"] = Field(
        description="vendor_limit (a vendor's rate limit shared by the deployment), gpu (a "
        "render waits for a GPU), credential (a vendor refused the engine's authorisation: "
        "the seller must authorise again), retry (a failed step waits for its next try), "
        "confirmation (a sales channel has not confirmed the listing yet)"
    )
    stage: str | None = Field(description="The stage whose work waits")
    what: str = Field(description="What it waits for, in words")
    count: int = Field(description="How many of the job's messages wait for it")
    since: datetime | None = Field(description="Since when (the oldest of them)")
    until: datetime | None = Field(
        description="About when it ends (an estimate; null when nobody can know)"
    )
    deadline: datetime | None = Field(
        default=None, description="When waiting stops and the step fails (confirmations)"
    )


class JobDetail(_Wire):
    """``GET /jobs/{id}`` answer."""

    job: JobView
    images: list[ImageView]
    products: list[ProductView]
    logs: list[LogView]
    waits: list[WaitView] = Field(
        default_factory=list,
        description="What the job waits for right now: empty when it is moving (or ended)",
    )


class JobPage(_Wire):
    """``GET /jobs`` answer: newest first; pass ``nextCursor`` back for the next page."""

    jobs: list[JobView]
    next_cursor: str | None
