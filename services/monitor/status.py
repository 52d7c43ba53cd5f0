"""The job status machine: a job's status and error from what has arrived (pure, no SQL).

``queued`` -> ``processing`` (-> ``retrying`` while a retry waits; -> ``awaiting_review`` while
a reviewed job's images, or images screening held, wait for the seller and nothing else is in
flight) -> one of the ends:
``completed`` (every image, product and, with autoPublish, publication arrived; with review,
every image decided and each approved one published), ``partial`` (it ended, something was
delivered and something failed, a blocked image's products counting as failed), ``failed``
(nothing was) or ``cancelled`` (the seller
cancelled it: whatever it made is being taken down, as its log shows). The fold counts the job's
rows (:class:`JobCounts`) and stores what :func:`job_status` says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobCounts:
    """What a job asked for and what has arrived, as counted from its rows."""

    image_count: int
    product_types: int
    auto_publish: bool
    images_done: int
    # Images a generator failure gave up on (counted when it failed).
    images_failed: int
    # Products made (in any later state: publishing, published, publish_failed) and failed.
    products_done: int
    product_rows_failed: int
    publications_done: int
    publications_failed: int
    retrying: bool = False
    last_error: str | None = None
    # Sales channels each product is published to (with autoPublish).
    channels: int = 1
    # Review (decision §41): the seller decides each image; only approved ones are published.
    review: bool = False
    cancelled: bool = False
    images_awaiting: int = 0
    images_regenerating: int = 0
    # Approved or rejected.
    images_decided: int = 0
    # Products of approved images (each published to every channel).
    products_approved: int = 0
    # Images with a product made (one whose every product failed has nothing to review).
    images_with_products: int = 0
    # Products of images with a review: every image of a job with review; in a job without,
    # those of images screening held for the seller (issue 29), published once approved.
    products_held: int = 0
    # Images screening blocked (nothing of them is made) and why, e.g. "image 1 blocked by
    # screening (deny_list: Nike)".
    images_blocked: int = 0
    blocked: str | None = None

    @property
    def publications_expected(self) -> int:
        if self.review:
            return self.products_approved * self.channels
        if not self.auto_publish:
            return 0
        # Products not held go as the job asked; held ones once the seller approves them.
        return (self.products_done - self.products_held + self.products_approved) * self.channels

    @property
    def reviews_open(self) -> bool:
        # An image awaiting the seller (or re-rendered for them) keeps any job open, whether
        # its job asked for review or screening held it.
        return (
            self.images_awaiting > 0
            or self.images_regenerating > 0
            or (self.review and self.images_decided < self.images_with_products)
        )


@dataclass(frozen=True)
class JobState:
    """Where a job stands: its status, whether it ended, the error to show, and the counters."""

    status: str
    terminal: bool
    error: str | None
    images_failed: int
    products_failed: int


def job_status(c: JobCounts) -> JobState:
    """The status of a job with counts ``c``."""
    expected_products = c.image_count * c.product_types
    # A generator failure counted the images missing then; a replay that made them since
    # takes them back off (else a replayed job would stay partial for good).
    images_failed = min(c.images_failed, max(0, c.image_count - c.images_done))
    # Products of images that were never generated, or that screening blocked, are failed too.
    products_failed = c.product_rows_failed + (images_failed + c.images_blocked) * c.product_types
    if c.cancelled:
        return JobState(
            "cancelled", True, "cancelled by the seller", images_failed, products_failed
        )
    made = (
        c.images_done + images_failed >= c.image_count
        and c.products_done + products_failed >= expected_products
    )
    published = c.publications_done + c.publications_failed >= c.publications_expected
    terminal = made and published and not c.reviews_open
    anything_failed = bool(images_failed or products_failed or c.publications_failed)
    error = None
    if terminal:
        if not anything_failed:
            status = "completed"
        elif c.products_done == 0:
            status = "failed"
        else:
            status = "partial"
        if anything_failed:
            error = _error(c, products_failed, expected_products)
    elif c.retrying:
        status = "retrying"
    elif made and published and c.images_awaiting and not c.images_regenerating:
        status = "awaiting_review"
    elif c.images_done or c.products_done or anything_failed:
        status = "processing"
    else:
        status = "queued"
    return JobState(status, terminal, error, images_failed, products_failed)


def _error(c: JobCounts, products_failed: int, expected_products: int) -> str:
    """What failed in a job that ended: the counts, the images screening blocked, the last
    error."""
    error = f"{products_failed} of {expected_products} products failed"
    if c.auto_publish or c.review:
        expected = c.publications_expected
        error += f", {c.publications_failed} of {expected} publications failed"
    if c.blocked:
        error += f"; {c.blocked}"
    if c.last_error:
        error += f"; last error: {c.last_error}"
    return error
