"""The job status machine with screening (issue 29), without a database: a blocked image's
products count as failed, an image screening held keeps a job without review open until the
seller decides, and its products are published only once approved."""

from __future__ import annotations

from dataclasses import replace

from services.monitor.status import JobCounts, job_status

# Four images x two types, autoPublish to one channel: 8 products, 8 publications.
NOTHING = JobCounts(
    image_count=4,
    product_types=2,
    auto_publish=True,
    images_done=0,
    images_failed=0,
    products_done=0,
    product_rows_failed=0,
    publications_done=0,
    publications_failed=0,
)
BLOCKED = "image 1 blocked by screening (deny_list: Nike)"


def test_a_blocked_image_makes_the_job_partial_and_the_error_says_why() -> None:
    # Images 2-4 made and published; image 1 blocked: nothing of it will ever come.
    c = replace(
        NOTHING,
        images_done=4,
        products_done=6,
        publications_done=6,
        images_blocked=1,
        blocked=BLOCKED,
    )
    state = job_status(c)
    assert (state.status, state.terminal, state.products_failed) == ("partial", True, 2)
    assert state.error == f"2 of 8 products failed, 0 of 6 publications failed; {BLOCKED}"


def test_without_the_blocked_count_the_job_would_wait_for_products_that_never_come() -> None:
    c = replace(NOTHING, images_done=4, products_done=6, publications_done=6)
    assert job_status(c).status == "processing"


def test_every_image_blocked_fails_the_job() -> None:
    both = f"{BLOCKED}; image 2 blocked by screening (unsafe_image)"
    c = replace(NOTHING, image_count=2, images_done=2, images_blocked=2, blocked=both)
    state = job_status(c)
    assert (state.status, state.terminal) == ("failed", True)
    assert state.error is not None and state.error.endswith(both)
    assert state.error.startswith("4 of 4 products failed")


# Two images x two types, autoPublish, no review: image 1 held by screening (its review row).
MADE = replace(
    NOTHING, image_count=2, images_done=2, products_done=4, images_with_products=2, products_held=2
)


def test_an_image_held_by_screening_keeps_a_job_without_review_awaiting_the_seller() -> None:
    # Image 0's products published as the job asked; image 1's wait for the seller.
    c = replace(MADE, publications_done=2, images_awaiting=1)
    assert c.publications_expected == 2
    state = job_status(c)
    assert (state.status, state.terminal) == ("awaiting_review", False)


def test_approved_held_products_are_published_before_the_job_ends() -> None:
    c = replace(MADE, publications_done=2, images_decided=1, products_approved=2)
    assert c.publications_expected == 4
    assert (job_status(c).status, job_status(c).terminal) == ("processing", False)
    done = replace(c, publications_done=4)
    assert (job_status(done).status, job_status(done).error) == ("completed", None)


def test_a_rejected_held_image_ends_the_job_with_what_was_not_held() -> None:
    c = replace(MADE, publications_done=2, images_decided=1)
    assert c.publications_expected == 2
    assert (job_status(c).status, job_status(c).terminal) == ("completed", True)


def test_a_held_image_regenerating_keeps_the_job_open() -> None:
    c = replace(MADE, publications_done=2, images_regenerating=1)
    assert (job_status(c).status, job_status(c).terminal) == ("processing", False)


def test_a_job_with_review_counts_as_before() -> None:
    # Every image held (the job's review): only approved products are published.
    c = replace(MADE, review=True, products_held=4, images_decided=1, products_approved=2)
    assert c.publications_expected == 2
    assert job_status(c).status == "processing"  # image 1 not decided yet
    assert job_status(replace(c, images_decided=2, publications_done=2)).status == "completed"
