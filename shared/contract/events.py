"""The event contract: one envelope for every event, and a payload model per event type.

Every message on a POD Engine topic is a JSON object with the envelope fields of :class:`Event`;
``type`` selects the payload model. Other systems may produce these directly (the JSON Schemas
are exported to ``docs/events/`` by ``python -m shared.contract.schemas``). The key of every message
is the job id, so one job's events stay ordered within a topic.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from shared.contract.sales_channels import DEFAULT_CHANNEL
from shared.platform.errors import InvalidEventError

SCHEMA_VERSION = 1

# Namespace for event ids derived from a parent event, so a redelivered input yields outputs
# with the same event_id and consumers can recognise the duplicate.
_DERIVED_NS = uuid.UUID("6f1c1f6e-3d2a-4b7e-9a51-2f0e8d7c4b10")


class Priority(StrEnum):
    """Priority band of a job; each band has its own topic."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def default_level(self) -> int:
        """Where a job given only its band stands among numbered ones (1-10) in the band."""
        return {Priority.HIGH: 9, Priority.NORMAL: 5, Priority.LOW: 2}[self]


MIN_LEVEL, MAX_LEVEL = 1, 10

# The channel of a job that names none (jobs from before channels): Printify's own shop.


class ProductType(StrEnum):
    """Product types the engine knows how to create."""

    TSHIRT = "tshirt"
    HOODIE = "hoodie"
    MUG = "mug"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NonEmpty = Annotated[str, Field(min_length=1, max_length=500)]


def as_utc(value: datetime) -> datetime:
    """A timestamp without a zone read as UTC (compared with aware ones it would raise)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
# How far ahead of our clock an event's occurred_at may be (clock skew between producers).
MAX_CLOCK_SKEW = timedelta(hours=1)

# A sales channel's name (shared.contract.topics.CHANNELS holds the ones this engine knows).
CHANNEL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,29}$"
ChannelName = Annotated[str, Field(pattern=CHANNEL_NAME_PATTERN)]
Channels = Annotated[list[ChannelName], Field(min_length=1, max_length=10)]


def channels_of(channels: list[str] | None) -> list[str]:
    """A payload's channels: the named ones, else the default channel alone (events from
    before channels)."""
    return list(channels) if channels else [DEFAULT_CHANNEL]


class JobRouting(_Model):
    """Where a job's work goes after the generator: the part of its request every later stage
    reads (product types, publishing, channels, band), carried whole on every later event."""

    product_types: Annotated[list[ProductType], Field(min_length=1, max_length=10)]
    auto_publish: bool = False
    # The sales channels to publish to (autoPublish): None = DEFAULT_CHANNEL only (events from
    # before channels; the API always names them).
    channels: Channels | None = None
    priority: Priority = Priority.NORMAL
    # The seller reviews each image before anything of it is listed: its products are created
    # as drafts and wait for a seller.decision (approve, reject, regenerate) instead of being
    # published, whatever auto_publish says. An approved image is published to ``channels``.
    review: bool = False

    @staticmethod
    def lift(data: Any) -> Any:
        """An output payload as it was before routing was one field (flat product_types,
        auto_publish, channels, priority): those fields moved into ``routing``. Events of that
        shape stay on the topics across an upgrade."""
        if not isinstance(data, dict) or "routing" in data:
            return data
        flat = {k: data[k] for k in JobRouting.model_fields if k in data}
        if not flat:
            return data
        rest = {k: v for k, v in data.items() if k not in flat}
        return {**rest, "routing": flat}


class JobDesign(_Model):
    """What a job makes: the designs' subject and how many (the generator's part of a spec)."""

    theme: NonEmpty
    style: NonEmpty
    niche: NonEmpty
    prompt: Annotated[str, Field(min_length=1, max_length=4000)] | None = None
    count: Annotated[int, Field(ge=1, le=100)]


class JobSpec(JobRouting, JobDesign):
    """One job as it is asked for: what to design, how many, where it goes, how urgent. The
    single list of a job's fields: the API's request is this model with camelCase names
    (``services.api.schemas.jobs.JobRequest``), job.requested carries it flat, the store keeps it
    whole (``jobs.request``) and GET /jobs/{id} shows it back (dumped by alias)."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(serialization_alias=to_camel), serialize_by_alias=False
    )

    # The priority as a number (1-10, higher is more urgent) when it was given as one (the
    # seed's API): the band comes from it, and within the band it goes first.
    priority_level: Annotated[int, Field(ge=MIN_LEVEL, le=MAX_LEVEL)] | None = None

    @property
    def rank(self) -> int:
        """The job's place within its band (higher first): its number, or the band's default."""
        return self.priority_level or self.priority.default_level

    @classmethod
    def request_body(cls, **fields: object) -> dict[str, object]:
        """A ``POST /jobs`` body of spec fields given by their names here: under the request's
        (camelCase) names, fields given as None left out. Not checked: the API says what is
        wrong (``priority`` may be a band or a number there)."""
        unknown = sorted(set(fields) - set(cls.model_fields))
        if unknown:
            raise TypeError(f"not fields of a job: {', '.join(unknown)}")
        return {
            cls.model_fields[name].serialization_alias or name: value
            for name, value in fields.items()
            if value is not None
        }

    def as_request(self) -> dict[str, object]:
        """The ``POST /jobs`` body that asks for this spec (its priority as given)."""
        fields = self.model_dump(mode="json", include=set(JobSpec.model_fields))
        level = fields.pop("priority_level")
        if not fields["review"]:  # the seed's body, for a job without review
            del fields["review"]
        return JobSpec.request_body(**fields | {"priority": level or fields["priority"]})

    @property
    def routing(self) -> JobRouting:
        """What the later stages carry of it."""
        return JobRouting.model_validate(self.model_dump(include=set(JobRouting.model_fields)))


class JobRequestedPayload(JobSpec):
    """A design job (flat on the wire, as other systems produce it): its spec and who asked."""

    submitted_by: str | None = None

    @property
    def spec(self) -> JobSpec:
        """The job's request without who made it."""
        return JobSpec.model_validate(self.model_dump(exclude={"submitted_by"}))

    def digest(self) -> str:
        """What makes two requests under one job id the same request (the job id belongs to
        the first): every field of the payload, defaults filled in, as canonical JSON. The
        envelope (event_id, occurred_at, producer, attempt) does not count, so a redelivery, a
        delayed retry or a replay of the request is the same request."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class _Routed(_Model):
    """An output of a job's later stages: its routing as one field (``JobRouting.lift`` reads
    the flat shape of events from before)."""

    routing: JobRouting

    @model_validator(mode="before")
    @classmethod
    def _lift_routing(cls, data: Any) -> Any:
        return JobRouting.lift(data)


class TokenCounts(_Model):
    """Claude tokens a job's briefs cost (the API's ``usage``, summed over its calls)."""

    input: Annotated[int, Field(ge=0)] = 0
    output: Annotated[int, Field(ge=0)] = 0
    cache_read: Annotated[int, Field(ge=0)] = 0
    cache_write: Annotated[int, Field(ge=0)] = 0


class ScreeningCheck(StrEnum):
    """The checks every design goes through before anything of it reaches Printify."""

    # A protected term (brand, character, franchise, celebrity, team) in the title, tags,
    # description or prompt, from the deployment's deny list.
    DENY_LIST = "deny_list"
    # Claude's review of the copy and the image's text for intellectual-property risk.
    RISK_REVIEW = "risk_review"
    # A protected term in the text rendered into the art (read by OCR).
    RENDERED_TEXT = "rendered_text"
    # A design within the configured Hamming distance of an earlier one (perceptual hash).
    NEAR_DUPLICATE = "near_duplicate"
    # Adult or violent content, from a local image classifier.
    UNSAFE_IMAGE = "unsafe_image"


class ScreeningDecision(StrEnum):
    """What screening decided about an image, from the policy of the checks that flagged it."""

    # Nothing flagged, or only checks whose policy is to allow and record.
    ALLOW = "allow"
    # Its products are made as drafts and wait for the seller (the review of decision §41).
    REVIEW = "review"
    # Nothing of it is made: no call to Printify for it.
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {ScreeningDecision.ALLOW: 0, ScreeningDecision.REVIEW: 1, ScreeningDecision.BLOCK: 2}

ScreenedField = Literal["title", "tags", "description", "prompt", "image_text", "image"]


class DesignRef(_Model):
    """An earlier design a new one resembles (near_duplicate)."""

    job_id: Annotated[str, Field(min_length=1, max_length=200)]
    image_index: Annotated[int, Field(ge=0)]
    generation: Annotated[int, Field(ge=0, le=MAX_GENERATION)] = 0
    # Bits that differ between the two perceptual hashes (0 = the same picture to the hash).
    distance: Annotated[int, Field(ge=0, le=64)]


class ScreeningReason(_Model):
    """One finding of one check, and what the policy makes of it."""

    check: ScreeningCheck
    # The decision this finding asks for under the deployment's policy for its check.
    outcome: ScreeningDecision
    # For people: what was found, where, and why it matters.
    detail: Annotated[str, Field(min_length=1, max_length=1000)]
    # Where it was found (deny_list, risk_review, rendered_text): the field of the design.
    field: ScreenedField | None = None
    # The protected terms involved (deny_list, rendered_text: the deny list's canonical term;
    # risk_review: the terms Claude named).
    terms: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=20)] = Field(
        default_factory=list
    )
    # risk_review: Claude's risk level (low, medium, high).
    level: Literal["low", "medium", "high"] | None = None
    # near_duplicate: the earlier design it resembles.
    resembles: DesignRef | None = None
    # unsafe_image: the classifier's label and confidence (0-1).
    label: Annotated[str, Field(max_length=100)] | None = None
    score: Annotated[float, Field(ge=0, le=1)] | None = None


class Screening(_Model):
    """What screening found in one image and decided (the strictest outcome of its reasons)."""

    decision: ScreeningDecision
    reasons: Annotated[list[ScreeningReason], Field(max_length=100)] = Field(default_factory=list)
    # The checks that ran (a check turned off, or without what it needs, is not listed).
    checks: list[ScreeningCheck] = Field(default_factory=list)
    # The design's perceptual hash (64 bits as 16 hex digits), stored with it.
    phash: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None
    # Claude tokens the risk review of this image cost (part of the job's cost).
    tokens: TokenCounts | None = None

    @model_validator(mode="after")
    def _decision_of_reasons(self) -> Screening:
        strictest = max(
            (r.outcome for r in self.reasons),
            key=lambda d: d.severity,
            default=ScreeningDecision.ALLOW,
        )
        if strictest is not self.decision:
            raise ValueError(
                f"decision: {self.decision.value} is not the strictest outcome of the reasons "
                f"({strictest.value})"
            )
        return self


class ImageGeneratedPayload(_Routed):
    """One finished image of a job, with the listing copy written for it."""

    image_index: Annotated[int, Field(ge=0)]
    image_count: Annotated[int, Field(ge=1)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    uri: NonEmpty
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]
    prompt: str
    negative_prompt: str = ""
    seed: int
    title: NonEmpty
    description: str
    tags: list[str] = Field(default_factory=list)
    # The job's Claude tokens, on its first image only (so that images add up to the job).
    tokens: TokenCounts | None = None
    # 0 for the image first made; each regenerate the seller asks for makes the next one, which
    # replaces the one before it (its products are deleted, new ones made).
    generation: Annotated[int, Field(ge=0, le=MAX_GENERATION)] = 0
    # What screening found and decided (None: not screened, an event from before screening).
    # ``review``: the generator also sets ``routing.review`` on this image when its job
    # publishes, so its products wait for the seller; ``block``: the printify stage makes
    # nothing of it.
    screening: Screening | None = None


MAX_MOCKUPS = 8
# How many times one image may be regenerated.
MAX_GENERATION = 50

# The flat names product.created used for its prices before PriceSummary was one field.
_FLAT_PRICES = {
    "price_cents": "price_min_cents",
    "price_max_cents": "price_max_cents",
    "cost_min_cents": "cost_min_cents",
    "cost_max_cents": "cost_max_cents",
    "profit_min_cents": "profit_min_cents",
    "margin_min_percent": "margin_min_percent",
}


class PriceSummary(_Model):
    """The range of a product's prices and costs over its enabled variants, and its least
    profit and margin (cents). Only the lowest price from producers that priced flat, before
    costs were read."""

    price_min_cents: Annotated[int, Field(ge=0)]
    price_max_cents: Annotated[int, Field(ge=0)] | None = None
    cost_min_cents: Annotated[int, Field(ge=0)] | None = None
    cost_max_cents: Annotated[int, Field(ge=0)] | None = None
    profit_min_cents: int | None = None
    margin_min_percent: float | None = Field(
        default=None, description="Least gross margin (profit / price), in %"
    )

    @staticmethod
    def lift(data: Any) -> Any:
        """A product.created payload from before ``prices`` (flat, ``price_cents`` the lowest):
        its price fields moved into ``prices`` under these names."""
        if not isinstance(data, dict) or "prices" in data or "price_cents" not in data:
            return data
        prices = {new: data[old] for old, new in _FLAT_PRICES.items() if old in data}
        rest = {k: v for k, v in data.items() if k not in _FLAT_PRICES}
        return {**rest, "prices": prices}


class ProductCreatedPayload(_Routed):
    """One product created on Printify for one image and one product type."""

    image_index: Annotated[int, Field(ge=0)]
    product_type: ProductType
    product_id: NonEmpty
    shop_id: NonEmpty
    blueprint_id: int
    print_provider_id: int
    variant_count: Annotated[int, Field(ge=1)]
    title: str
    # Price and cost ranges over the enabled variants, and the least profit and margin.
    prices: PriceSummary

    @model_validator(mode="before")
    @classmethod
    def _lift_routing(cls, data: Any) -> Any:
        # The flat shape carried no product types: the product's own is the one it knew of.
        if isinstance(data, dict) and "routing" not in data and "product_type" in data:
            data = {"product_types": [data["product_type"]], **data}
        return JobRouting.lift(data)

    @model_validator(mode="before")
    @classmethod
    def _lift_prices(cls, data: Any) -> Any:
        return PriceSummary.lift(data)

    # The lowest resolution the art prints at on any of the product's print areas.
    print_dpi: float | None = None
    # Printify's mockup images of the product (its default first), for the seller to review.
    mockups: list[str] = Field(default_factory=list, max_length=MAX_MOCKUPS)
    # The generation of the image it was made from (ImageGeneratedPayload.generation).
    generation: Annotated[int, Field(ge=0, le=MAX_GENERATION)] = 0


class DecisionAction(StrEnum):
    """What a seller decided about a job, an image or a product."""

    # Review (an image of a job with review): publish its products to the job's channels ...
    APPROVE = "approve"
    # ... delete its products from Printify, list nothing ...
    REJECT = "reject"
    # ... or make a new image (a new seed, optionally an edited prompt) that replaces it.
    REGENERATE = "regenerate"
    # The whole job: no stage starts new work for it; what it made is unlisted and deleted.
    CANCEL = "cancel"
    # After launch, one product (or every product of an image, or of the job) on some or every
    # channel: take the listing down (it stays in Printify) ...
    UNPUBLISH = "unpublish"
    # ... take it down and delete it from Printify ...
    DELETE = "delete"
    # ... or price it again by a new margin (Printify, then every channel it is listed on).
    REPRICE = "reprice"


# The actions that name one image of the job (and its generation the seller saw).
IMAGE_ACTIONS = frozenset(
    {DecisionAction.APPROVE, DecisionAction.REJECT, DecisionAction.REGENERATE}
)


class SellerDecisionPayload(_Model):
    """A seller's decision about a job (``seller.decisions``): only the API produces these, after
    checking who asks and that the decision is still possible; every stage it concerns acts on it
    once (``decision_id``) and reports what it did as its own events (product.approved,
    product.withdrawn, product.repriced, a new image.generated)."""

    decision_id: uuid.UUID
    action: DecisionAction
    # approve, reject, regenerate: the image (required); unpublish, delete, reprice: one image's
    # products, or every product of the job when None. cancel: None.
    image_index: Annotated[int, Field(ge=0)] | None = None
    # The image's generation the decision is about (approve/reject/regenerate): a stage that has
    # a newer one refuses it (the seller decided on an image that is gone).
    generation: Annotated[int, Field(ge=0, le=MAX_GENERATION)] = 0
    # unpublish, delete, reprice: one product type only (None: every type).
    product_type: ProductType | None = None
    # unpublish, delete, reprice: these channels only (None: every channel it is listed on).
    channels: Channels | None = None
    # regenerate: the prompt to render instead of the image's own (None: the same prompt).
    prompt: Annotated[str, Field(min_length=1, max_length=4000)] | None = None
    # reprice: the margin to price by (percent of the price), instead of the configured one.
    margin_percent: Annotated[float, Field(ge=0, lt=95)] | None = None
    # Who decided (the API key's principal, or "anonymous" without authentication).
    decided_by: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(max_length=500)] | None = None

    @model_validator(mode="after")
    def _fields_of_action(self) -> SellerDecisionPayload:
        a = self.action
        if a in IMAGE_ACTIONS and self.image_index is None:
            raise ValueError(f"image_index: required to {a.value}")
        if a is DecisionAction.CANCEL and self.image_index is not None:
            raise ValueError("image_index: a cancel is for the whole job")
        if self.prompt is not None and a is not DecisionAction.REGENERATE:
            raise ValueError("prompt: only a regenerate takes a prompt")
        if self.margin_percent is not None and a is not DecisionAction.REPRICE:
            raise ValueError("margin_percent: only a reprice takes a margin")
        if a is DecisionAction.REPRICE and self.margin_percent is None:
            raise ValueError("margin_percent: required to reprice")
        scoped = (DecisionAction.UNPUBLISH, DecisionAction.DELETE, DecisionAction.REPRICE)
        if (self.product_type is not None or self.channels is not None) and a not in scoped:
            raise ValueError(f"product_type, channels: not for a {a.value}")
        return self


class ProductApprovedPayload(ProductCreatedPayload):
    """A product of a reviewed image the seller approved (on ``products.created``, from the
    printify stage): the product whole, as it was created, and the decision. The publishers
    publish it to the job's channels as they would a product created with autoPublish."""

    decision_id: uuid.UUID
    decided_by: Annotated[str, Field(min_length=1, max_length=200)]


WithdrawReason = Literal["rejected", "regenerated", "cancelled", "unpublished", "deleted", "vendor"]


class ProductWithdrawnPayload(_Model):
    """A product taken down: from one sales channel (``channel``: on ``published``, from that
    channel's publisher) or deleted from Printify itself (``channel`` None: on
    ``products.created``, from the printify stage). ``reason`` says why: the seller's decision
    (rejected, regenerated, cancelled, unpublished, deleted) or ``vendor`` (the seller removed it
    in Printify or on the channel, as its webhook said)."""

    image_index: Annotated[int, Field(ge=0)]
    product_type: ProductType
    product_id: NonEmpty
    shop_id: NonEmpty
    generation: Annotated[int, Field(ge=0, le=MAX_GENERATION)] = 0
    channel: ChannelName | None = None
    # unpublished: the listing is down, the product kept; deleted: gone.
    outcome: Literal["unpublished", "deleted"]
    reason: WithdrawReason
    decision_id: uuid.UUID | None = None
    # False when there was nothing to take down (never listed, already gone).
    was_listed: bool = True


class ProductRepricedPayload(_Model):
    """A product priced again (a seller's reprice): in Printify (``channel`` None, on
    ``products.created``, from the printify stage, which the channels' publishers follow) or on
    one sales channel (on ``published``, from its publisher)."""

    image_index: Annotated[int, Field(ge=0)]
    product_type: ProductType
    product_id: NonEmpty
    shop_id: NonEmpty
    generation: Annotated[int, Field(ge=0, le=MAX_GENERATION)] = 0
    channel: ChannelName | None = None
    prices: PriceSummary
    decision_id: uuid.UUID


class ProductPublishingPayload(_Model):
    """Printify accepted a product's publish request; the sales channel (Etsy, Shopify, ...)
    has not confirmed the listing yet. ``product.published`` or a ``stage.failed`` follows."""

    image_index: Annotated[int, Field(ge=0)]
    product_type: ProductType
    product_id: NonEmpty
    shop_id: NonEmpty
    sales_channel: NonEmpty
    # The engine's channel that published it (printify: through the shop's sales_channel).
    channel: ChannelName = DEFAULT_CHANNEL
    # When the publisher stops waiting and reports the publication failed.
    confirm_by: UtcDatetime


class ProductPublishedPayload(_Model):
    """A product published to the shop's sales channel, confirmed by the channel."""

    image_index: Annotated[int, Field(ge=0)]
    product_type: ProductType
    product_id: NonEmpty
    shop_id: NonEmpty
    external_id: str | None = None
    handle: str | None = None
    channel: ChannelName = DEFAULT_CHANNEL


class StageFailedPayload(_Model):
    """A stage gave up on part of a job (permanent error or retries exhausted)."""

    stage: NonEmpty
    error_class: NonEmpty
    message: str
    # True while the work is waiting in a delay topic for another attempt; False once given up.
    retryable: bool = False
    attempt: Annotated[int, Field(ge=0)] = 0
    next_attempt_at: UtcDatetime | None = None
    image_index: int | None = None
    product_type: ProductType | None = None
    input_topic: str | None = None
    input_partition: int | None = None
    input_offset: int | None = None
    # The input event as it was consumed, so the failed part can be replayed.
    input_event: dict[str, Any] | None = None


class JobWait(_Model):
    """One message of a job waiting inside an instance (for a vendor's limit, a GPU, a
    credential the seller must renew), and until about when."""

    job_id: NonEmpty
    kind: Literal["vendor_limit", "gpu", "credential"]
    what: NonEmpty
    since: UtcDatetime
    until: UtcDatetime | None = None


class WorkerHeartbeatPayload(_Model):
    """Periodic liveness and progress report of one service instance."""

    service: NonEmpty
    instance_id: NonEmpty
    host: str
    pid: int
    partitions: list[str] = Field(default_factory=list)
    in_flight: int = 0
    processed: int = 0
    failed: int = 0
    started_at: UtcDatetime
    stopping: bool = False
    # What its in-flight work waits for, oldest first (shared.platform.waits.MAX_REPORTED at most).
    waits: list[JobWait] = Field(default_factory=list, max_length=500)


class WorkerExitedPayload(_Model):
    """The pool manager saw one of its instances die (not a stop it asked for)."""

    service: NonEmpty
    instance_id: NonEmpty
    # How it ended: "exit 1" or "signal SIGKILL", and the raw return code.
    exit: NonEmpty
    exit_code: int | None = None
    # Restarts before this death, and whether it will be restarted (False: given up on).
    restarts: Annotated[int, Field(ge=0)] = 0
    restarting: bool = True
    max_restarts: Annotated[int, Field(ge=0)] = 0


class PoolScaledPayload(_Model):
    """The pool manager changed how many instances of a stage it runs."""

    service: NonEmpty
    from_count: Annotated[int, Field(ge=0)]
    to_count: Annotated[int, Field(ge=0)]


EventT = TypeVar("EventT", bound="Event")


class PrintifyWebhookPayload(_Model):
    """One call of a Printify webhook, checked against its signature by the API."""

    webhook_event_id: Annotated[str, Field(min_length=1, max_length=200)]
    topic: Annotated[str, Field(min_length=1, max_length=100)]  # e.g. product:publish:started
    resource_id: Annotated[str, Field(min_length=1, max_length=200)]
    resource_type: Annotated[str, Field(min_length=1, max_length=50)]
    shop_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    sent_at: Annotated[str, Field(max_length=100)] | None = None


class ControlCommandPayload(_Model):
    """An operator's instruction to the worker-pool manager (``pod.control``)."""

    action: Literal["scale", "restart"]
    service: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    worker_count: Annotated[int, Field(ge=0, le=1000)] | None = None
    instance_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    requested_by: str | None = None


class Event(_Model):
    """The envelope shared by every event."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = SCHEMA_VERSION
    job_id: Annotated[str, Field(min_length=1, max_length=100)]
    occurred_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: Annotated[str, Field(min_length=1, max_length=200)]
    correlation_id: str | None = None
    attempt: Annotated[int, Field(ge=0)] = 0
    payload: Any

    def to_json(self) -> bytes:
        """The wire form of this event."""
        return self.model_dump_json().encode()

    def derive(
        self, event_cls: builtins.type[EventT], payload: BaseModel, *, producer: str, key: str
    ) -> EventT:
        """A child event of this one, with an event_id derived from this event's id and ``key``.

        Deriving the id makes processing idempotent on the wire: re-processing the same input
        produces outputs with the same ids, so a duplicate from a redelivery is recognisable.
        """
        return event_cls(  # type: ignore[call-arg]  # subclasses default `type`
            # The job id too: two jobs sent under one event_id (a producer's mistake) must not
            # make outputs that look like duplicates of each other.
            event_id=uuid.uuid5(_DERIVED_NS, f"{self.event_id}:{self.job_id}:{key}"),
            job_id=self.job_id,
            producer=producer,
            correlation_id=self.correlation_id or str(self.event_id),
            payload=payload,
        )


class JobRequested(Event):
    type: Literal["job.requested"] = "job.requested"
    payload: JobRequestedPayload


class ImageGenerated(Event):
    type: Literal["image.generated"] = "image.generated"
    payload: ImageGeneratedPayload


class ProductCreated(Event):
    type: Literal["product.created"] = "product.created"
    payload: ProductCreatedPayload


class ProductApproved(Event):
    type: Literal["product.approved"] = "product.approved"
    payload: ProductApprovedPayload


class ProductWithdrawn(Event):
    type: Literal["product.withdrawn"] = "product.withdrawn"
    payload: ProductWithdrawnPayload


class ProductRepriced(Event):
    type: Literal["product.repriced"] = "product.repriced"
    payload: ProductRepricedPayload


class SellerDecision(Event):
    type: Literal["seller.decision"] = "seller.decision"
    payload: SellerDecisionPayload


class ProductPublished(Event):
    type: Literal["product.published"] = "product.published"
    payload: ProductPublishedPayload


class ProductPublishing(Event):
    type: Literal["product.publishing"] = "product.publishing"
    payload: ProductPublishingPayload


class StageFailed(Event):
    type: Literal["stage.failed"] = "stage.failed"
    payload: StageFailedPayload


class WorkerHeartbeat(Event):
    type: Literal["worker.heartbeat"] = "worker.heartbeat"
    payload: WorkerHeartbeatPayload


class WorkerExited(Event):
    type: Literal["worker.exited"] = "worker.exited"
    payload: WorkerExitedPayload


class PoolScaled(Event):
    type: Literal["pool.scaled"] = "pool.scaled"
    payload: PoolScaledPayload


class PrintifyWebhookReceived(Event):
    """Not a job's event: ``job_id`` names the resource (``printify:<type>:<id>``), so that every
    call about one product or order lands on one partition, in order."""

    type: Literal["printify.webhook"] = "printify.webhook"
    payload: PrintifyWebhookPayload


class ControlCommand(Event):
    type: Literal["control.command"] = "control.command"
    payload: ControlCommandPayload


AnyEvent = (
    ControlCommand
    | JobRequested
    | ImageGenerated
    | ProductCreated
    | ProductApproved
    | ProductWithdrawn
    | ProductRepriced
    | SellerDecision
    | ProductPublishing
    | ProductPublished
    | StageFailed
    | WorkerHeartbeat
    | WorkerExited
    | PoolScaled
    | PrintifyWebhookReceived
)
EVENT_TYPES: tuple[type[Event], ...] = (
    ControlCommand,
    JobRequested,
    ImageGenerated,
    ProductCreated,
    ProductApproved,
    ProductWithdrawn,
    ProductRepriced,
    SellerDecision,
    ProductPublishing,
    ProductPublished,
    StageFailed,
    WorkerHeartbeat,
    WorkerExited,
    PoolScaled,
    PrintifyWebhookReceived,
)
_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Annotated[AnyEvent, Field(discriminator="type")])


_TYPE_NAMES = {cls.model_fields["type"].default for cls in EVENT_TYPES}


def _location(loc: tuple[int | str, ...]) -> str:
    # pydantic puts the discriminator value first; the field path is what helps a producer.
    if loc and loc[0] in _TYPE_NAMES:
        loc = loc[1:]
    return ".".join(str(p) for p in loc)


def parse_event(
    raw: bytes | str | None,
    accept: tuple[type[Event], ...] = EVENT_TYPES,
    *,
    topic: str | None = None,
) -> AnyEvent:
    """Parse and validate one message value; raise InvalidEventError saying what is wrong
    (``topic``: where it was read, named in the reason for a type that does not belong there)."""
    if raw is None:
        raise InvalidEventError("message has no value")
    try:
        event = _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_location(e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise InvalidEventError(f"invalid event: {problems}") from None
    if not isinstance(event, accept):
        names = ", ".join(sorted(c.model_fields["type"].default for c in accept))
        place = f"on {topic}" if topic else "here"
        raise InvalidEventError(f"unexpected event type {event.type!r} {place} (accepts: {names})")
    if event.schema_version > SCHEMA_VERSION:
        raise InvalidEventError(
            f"schema_version {event.schema_version} is newer than supported {SCHEMA_VERSION}"
        )
    if event.occurred_at > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise InvalidEventError(
            f"occurred_at: {event.occurred_at.isoformat()} is in the future "
            f"(more than {MAX_CLOCK_SKEW} ahead)"
        )
    # JSON can only carry NUL escaped; PostgreSQL text cannot hold it at all. Cheap test first.
    marker: bytes | str = b"\\u0000" if isinstance(raw, bytes) else "\\u0000"
    if marker in raw:  # type: ignore[operator]
        where = _nul_path(event.model_dump(mode="python"))
        if where is not None:
            raise InvalidEventError(f"{where or '<root>'}: NUL characters are not allowed")
    return event


def _nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string holding a NUL, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            key_path = f"{path}.{k}" if path else str(k)
            if "\x00" in str(k):
                return key_path
            found = _nul_path(v, key_path)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _nul_path(v, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None
