"""Stage outputs checked against their job before the monitor folds them.

Anyone who can produce onto a topic could otherwise finish someone else's job: an
``image.generated`` with ``image_index`` 999 plus a ``product.created`` would mark a job that
never rendered ``completed``. So an output counts only if it is one the job asked for: an image
within the job's count, a product of a type the job asked for made from an image the job really
got, a publication on a channel the job publishes to. What does not fit is dead-lettered with
the reason (:class:`ForeignOutput`, permanent) and never folded; what may simply not have been
folded yet (events of one job come on several topics, read in no fixed order) is retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.adapters.store.jobs import Asked
from shared.contract.events import (
    ImageGenerated,
    ProductCreated,
    ProductCreatedPayload,
    ProductPublished,
    ProductPublishedPayload,
    ProductPublishing,
    ProductPublishingPayload,
    channels_of,
)
from shared.platform.errors import InvalidEventError, RetryableError

_MAX_ID = 100  # of a job id in a message (the contract's limit)
# A payload about one product of a job (an output's, or a publication's).
ProductPart = ProductCreatedPayload | ProductPublishingPayload | ProductPublishedPayload


class ForeignOutput(InvalidEventError):
    """An output that is not one its job asked for."""


class ImageNotYetKnown(RetryableError):
    """A product of an image not folded yet (or never generated: retried, then dead-lettered
    with this reason)."""


@dataclass(frozen=True)
class JobShape:
    """What a job asked for, as its row holds it (the fields :func:`check` needs)."""

    image_count: int
    product_types: list[str]
    auto_publish: bool
    channels: list[str] | None
    review: bool = False

    @classmethod
    def of(cls, row: Asked) -> JobShape:
        return cls(
            image_count=row["image_count"],
            product_types=list(row["product_types"]),
            auto_publish=row["auto_publish"],
            channels=row["channels"],
            review=row.get("review", False),
        )

    @property
    def publishes_to(self) -> list[str]:
        """The channels the job's products are published to (none without autoPublish, or
        those of the images the seller approves with review)."""
        return channels_of(self.channels) if self.auto_publish or self.review else []


def check_image(event: ImageGenerated, job: JobShape) -> None:
    """Raise unless the image is one ``job`` asked for: within its count, of its count."""
    image = event.payload
    _refuse(outside(event.job_id, job, image_index=image.image_index))
    if image.image_count != job.image_count:
        raise ForeignOutput(
            f"payload.image_count: {image.image_count}, but job {event.job_id[:_MAX_ID]} "
            f"asked for {job.image_count} image(s)"
        )


def check_product(event: ProductCreated, job: JobShape, images: set[tuple[str, int]]) -> None:
    """Raise unless the product is of a type ``job`` asked for, made from an image it got;
    ``images``: the (job id, image index) of the images folded so far."""
    _refuse_part(event.job_id, job, event.payload)
    p = event.payload
    if (event.job_id, p.image_index) not in images:
        raise ImageNotYetKnown(
            f"payload.image_index: image {p.image_index} of job "
            f"{event.job_id[:_MAX_ID]} was never generated (or not folded yet)"
        )


def check_publication(event: ProductPublishing | ProductPublished, job: JobShape) -> None:
    """Raise unless the publication is of a product ``job`` asked for, on a channel it
    publishes to."""
    _refuse_part(event.job_id, job, event.payload)
    channel = event.payload.channel
    if channel not in job.publishes_to:
        where = ", ".join(job.publishes_to) or "no channel (autoPublish is off)"
        raise ForeignOutput(
            f"payload.channel: job {event.job_id[:_MAX_ID]} does not publish to "
            f"{channel} (it publishes to {where})"
        )


def _refuse_part(job_id: str, job: JobShape, part: ProductPart) -> None:
    _refuse(
        outside(job_id, job, image_index=part.image_index, product_type=part.product_type.value)
    )


def outside(
    job_id: str,
    job: JobShape,
    *,
    image_index: int | None = None,
    product_type: str | None = None,
) -> str | None:
    """Why a part of a job (an image, a product type) is not one ``job`` asked for, or None:
    an output's check here, and the fold's for a stage's failure of such a part."""
    if image_index is not None and not 0 <= image_index < job.image_count:
        return (
            f"payload.image_index: {image_index} is outside job {job_id[:_MAX_ID]}'s "
            f"{job.image_count} image(s)"
        )
    if product_type is not None and product_type not in job.product_types:
        return (
            f"payload.product_type: job {job_id[:_MAX_ID]} did not ask for a "
            f"{product_type} (it asked for {', '.join(job.product_types)})"
        )
    return None


def _refuse(reason: str | None) -> None:
    if reason is not None:
        raise ForeignOutput(reason)
