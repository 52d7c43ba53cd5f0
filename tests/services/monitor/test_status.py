"""The job status machine, without a database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.monitor.status import JobCounts, job_status

# Two images x two types, autoPublish: 4 products, 4 publications.
NOTHING = JobCounts(
    image_count=2,
    product_types=2,
    auto_publish=True,
    images_done=0,
    images_failed=0,
    products_done=0,
    product_rows_failed=0,
    publications_done=0,
    publications_failed=0,
)
ALL = replace(NOTHING, images_done=2, products_done=4, publications_done=4)


@pytest.mark.parametrize(
    ("counts", "status", "terminal"),
    [
        (NOTHING, "queued", False),
        (replace(NOTHING, retrying=True), "retrying", False),
        (replace(NOTHING, images_done=1), "processing", False),
        # Every product made, one publication still awaited (the channel has not confirmed).
        (replace(ALL, publications_done=3), "processing", False),
        (ALL, "completed", True),
        (replace(ALL, auto_publish=False, publications_done=0), "completed", True),
        (replace(ALL, publications_done=3, publications_failed=1), "partial", True),
        (replace(NOTHING, images_failed=2), "failed", True),
        # A retry pending does not hide that everything arrived meanwhile.
        (replace(ALL, retrying=True), "completed", True),
    ],
)
def test_status(counts: JobCounts, status: str, terminal: bool) -> None:
    state = job_status(counts)
    assert (state.status, state.terminal) == (status, terminal)


def test_the_error_says_what_failed_and_the_last_reason() -> None:
    state = job_status(
        replace(
            ALL,
            images_done=1,
            images_failed=1,
            products_done=2,
            publications_done=1,
            publications_failed=1,
            last_error="etsy refused it",
        )
    )
    assert state.status == "partial"
    # The image never made counts as its two products failed.
    assert state.products_failed == 2
    assert state.error == (
        "2 of 4 products failed, 1 of 2 publications failed; last error: etsy refused it"
    )


def test_a_replay_that_made_the_missing_images_takes_the_failure_back() -> None:
    # The generator failed (2 images lost), then a replay made both and all that follows.
    state = job_status(replace(ALL, images_failed=2))
    assert (state.status, state.images_failed, state.error) == ("completed", 0, None)
