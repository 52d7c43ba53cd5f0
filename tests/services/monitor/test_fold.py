"""The monitor's fold against the real PostgreSQL: completion rules, partial outcomes, replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder, JobNotYetKnown
from shared.adapters.store import job_claims
from shared.contract.events import (
    Event,
    JobRequested,
    JobRequestedPayload,
    ProductPublished,
    ProductPublishedPayload,
    ProductPublishing,
    ProductPublishingPayload,
    StageFailed,
    StageFailedPayload,
)
from tests.support.events import image, product


def new_job(
    count: int = 2, types: tuple[str, ...] = ("tshirt", "hoodie"), auto: bool = True
) -> JobRequested:
    return JobRequested(
        job_id=f"fold-{uuid.uuid4().hex[:8]}",
        producer="api",
        payload=JobRequestedPayload(
            theme="t",
            style="s",
            niche="n",
            product_types=list(types),
            count=count,
            auto_publish=auto,
        ),
    )


def published(job: JobRequested, i: int, t: str) -> ProductPublished:
    return job.derive(
        ProductPublished,
        ProductPublishedPayload(
            image_index=i, product_type=t, product_id=f"prod-{i}-{t}", shop_id="1"
        ),
        producer="publisher",
        key=f"pub:{i}:{t}",
    )


def failed(
    job: JobRequested, stage: str, i: int | None = None, t: str | None = None
) -> StageFailed:
    return job.derive(
        StageFailed,
        StageFailedPayload(
            stage=stage,
            error_class="PermanentError",
            message=f"{stage} said no",
            image_index=i,
            product_type=t,
        ),
        producer=stage,
        key=f"failed:{stage}:{i}:{t}",
    )


async def fold_all(pool: AsyncConnectionPool, events: list[Event]) -> None:
    folder = Folder(pool)
    for n, e in enumerate(events):
        await folder.fold(e, "t", 0, n)


async def job_row(pool: AsyncConnectionPool, job_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM jobs WHERE job_id = %s", (job_id,))
        row = await cur.fetchone()
        assert row is not None and cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


def full_run(job: JobRequested) -> list[Event]:
    events: list[Event] = [job]
    for i in range(job.payload.count):
        events.append(image(job, i))
        for t in job.payload.product_types:
            events.append(product(job, i, t.value))
            if job.payload.auto_publish:
                events.append(published(job, i, t.value))
    return events


async def test_completed_only_when_everything_arrived(pool: AsyncConnectionPool) -> None:
    job = new_job()
    events = full_run(job)
    await fold_all(pool, events[:-1])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "processing"
    assert (row["images_done"], row["products_done"], row["publications_done"]) == (2, 4, 3)
    await fold_all(pool, events[-1:])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "completed"
    assert row["finished_at"] is not None and row["error"] is None


async def test_without_auto_publish_products_complete_the_job(pool: AsyncConnectionPool) -> None:
    job = new_job(count=1, types=("mug",), auto=False)
    await fold_all(pool, full_run(job))
    row = await job_row(pool, job.job_id)
    assert row["status"] == "completed"
    assert row["expected_publications"] == 0


async def test_replaying_everything_changes_nothing(pool: AsyncConnectionPool) -> None:
    job = new_job()
    events = full_run(job)
    await fold_all(pool, events)
    before = await job_row(pool, job.job_id)
    folder = Folder(pool)
    assert [await folder.fold(e, "t", 0, 0) for e in events] == [False] * len(events)
    after = await job_row(pool, job.job_id)
    before.pop("updated_at"), after.pop("updated_at")
    assert before == after
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM job_events WHERE job_id = %s", (job.job_id,))
        assert (await cur.fetchone()) == (len(events),)


async def test_one_failed_product_makes_a_partial_job(pool: AsyncConnectionPool) -> None:
    job = new_job(count=2, types=("tshirt", "hoodie"), auto=False)
    events: list[Event] = [job, image(job, 0), image(job, 1)]
    events += [product(job, 0, "tshirt"), product(job, 0, "hoodie"), product(job, 1, "tshirt")]
    events.append(failed(job, "printify", 1, "hoodie"))
    await fold_all(pool, events)
    row = await job_row(pool, job.job_id)
    assert row["status"] == "partial"
    assert row["products_done"] == 3 and row["products_failed"] == 1
    assert row["error"].startswith("1 of 4 products failed")
    assert "printify said no" in row["error"]


async def test_generator_failure_fails_the_job(pool: AsyncConnectionPool) -> None:
    job = new_job(count=3)
    await fold_all(pool, [job, failed(job, "generator")])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "failed"
    assert row["images_failed"] == 3 and row["products_failed"] == 6


async def claim(pool: AsyncConnectionPool, job: JobRequested) -> None:
    """Claim the job's id, as the generator does before it renders (ahead of the monitor)."""
    async with pool.connection() as conn:
        assert await job_claims.claim(conn, job) is job_claims.Ownership.OWNER


async def test_events_out_of_topic_order_still_fold(pool: AsyncConnectionPool) -> None:
    job = new_job(count=1, types=("tshirt",), auto=True)
    await claim(pool, job)
    # The image is read before the request: it waits for it (retried), then folds.
    with pytest.raises(JobNotYetKnown):
        await fold_all(pool, [image(job, 0)])
    await fold_all(pool, [job, image(job, 0)])
    assert (await job_row(pool, job.job_id))["status"] == "processing"
    # The publication is read before the creation: a publication proves its product exists.
    await fold_all(pool, [published(job, 0, "tshirt")])
    assert (await job_row(pool, job.job_id))["status"] == "completed"
    await fold_all(pool, [product(job, 0, "tshirt")])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "completed"
    assert row["theme"] == "t"
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, price_min_cents FROM products WHERE job_id = %s", (job.job_id,)
        )
        assert await cur.fetchall() == [("published", 1999)]


async def test_a_product_before_its_job_is_retried(pool: AsyncConnectionPool) -> None:
    job = new_job()
    await claim(pool, job)
    with pytest.raises(JobNotYetKnown):
        await Folder(pool).fold(product(job, 0, "tshirt"), "t", 0, 0)
    # Nothing half-written: the event is not recorded as seen.
    assert await Folder(pool).fold(job, "t", 0, 1) is True
    assert await Folder(pool).fold(image(job, 0), "t", 0, 2) is True
    assert await Folder(pool).fold(product(job, 0, "tshirt"), "t", 0, 0) is True


async def test_retrying_shows_the_attempt_and_clears_on_progress(pool: AsyncConnectionPool) -> None:
    from datetime import UTC, datetime, timedelta

    job = new_job(count=1, types=("tshirt",), auto=False)
    due = datetime.now(UTC) + timedelta(seconds=60)
    retry = job.derive(
        StageFailed,
        StageFailedPayload(
            stage="generator",
            error_class="RetryableError",
            message="[comfyui 503] busy",
            retryable=True,
            attempt=2,
            next_attempt_at=due,
        ),
        producer="monitor",
        key="retry:1",
    )
    await fold_all(pool, [job, retry])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "retrying"
    assert row["retry_attempt"] == 2
    assert row["next_retry_at"] == due
    assert row["last_error"] == "[comfyui 503] busy"
    assert row["error"] is None  # nothing has failed for good

    await fold_all(pool, [image(job, 0), product(job, 0, "tshirt")])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "completed"


async def test_a_replayed_generator_failure_completes_the_job(pool: AsyncConnectionPool) -> None:
    job = new_job(count=2, types=("mug",), auto=False)
    await fold_all(pool, [job, failed(job, "generator")])
    assert (await job_row(pool, job.job_id))["status"] == "failed"
    # The dead letter is replayed and the generator makes both images this time.
    events: list[Event] = [image(job, 0), image(job, 1), product(job, 0, "mug")]
    await fold_all(pool, events)
    assert (await job_row(pool, job.job_id))["status"] == "processing"
    await fold_all(pool, [product(job, 1, "mug")])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "completed", row
    assert row["images_failed"] == 0 and row["products_failed"] == 0
    assert row["error"] is None


async def test_a_replayed_product_failure_completes_the_job(pool: AsyncConnectionPool) -> None:
    job = new_job(count=1, types=("tshirt", "hoodie"), auto=False)
    events: list[Event] = [job, image(job, 0), product(job, 0, "tshirt")]
    await fold_all(pool, [*events, failed(job, "printify", 0, "hoodie")])
    assert (await job_row(pool, job.job_id))["status"] == "partial"
    await fold_all(pool, [product(job, 0, "hoodie")])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "completed" and row["error"] is None


def publishing(job: JobRequested, i: int, t: str) -> ProductPublishing:
    return job.derive(
        ProductPublishing,
        ProductPublishingPayload(
            image_index=i,
            product_type=t,
            product_id=f"prod-{i}-{t}",
            shop_id="2",
            sales_channel="etsy",
            confirm_by=datetime.now(UTC) + timedelta(hours=1),
        ),
        producer="publisher",
        key=f"publishing:{i}:{t}",
    )


async def product_statuses(pool: AsyncConnectionPool, job_id: str) -> dict[str, str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT product_type, status FROM products WHERE job_id = %s", (job_id,)
        )
        return dict(await cur.fetchall())


async def test_a_publication_the_channel_has_not_confirmed_keeps_the_job_open(
    pool: AsyncConnectionPool,
) -> None:
    job = new_job(count=1, types=("tshirt", "mug"))
    created = [job, image(job, 0), product(job, 0, "tshirt"), product(job, 0, "mug")]
    await fold_all(pool, [*created, publishing(job, 0, "tshirt"), publishing(job, 0, "mug")])
    assert await product_statuses(pool, job.job_id) == {"tshirt": "publishing", "mug": "publishing"}
    row = await job_row(pool, job.job_id)
    assert row["status"] == "processing" and row["products_done"] == 2
    assert row["publications_done"] == 0

    await fold_all(pool, [published(job, 0, "tshirt")])
    assert (await job_row(pool, job.job_id))["status"] == "processing"
    refused = failed(job, "publisher", 0, "mug")
    await fold_all(pool, [refused])
    assert await product_statuses(pool, job.job_id) == {
        "tshirt": "published",
        "mug": "publish_failed",
    }
    row = await job_row(pool, job.job_id)
    assert row["status"] == "partial"
    assert "1 of 2 publications failed" in row["error"] and "publisher said no" in row["error"]


async def test_news_of_the_channel_folded_before_publishing_is_not_undone(
    pool: AsyncConnectionPool,
) -> None:
    # Confirmation (published topic) and refusal (DLQ) may be read before "publishing".
    job = new_job(count=1, types=("tshirt", "mug"))
    events: list[Event] = [job, image(job, 0), product(job, 0, "tshirt"), product(job, 0, "mug")]
    events += [published(job, 0, "tshirt"), failed(job, "publisher", 0, "mug")]
    events += [publishing(job, 0, "tshirt"), publishing(job, 0, "mug")]
    await fold_all(pool, events)
    assert await product_statuses(pool, job.job_id) == {
        "tshirt": "published",
        "mug": "publish_failed",
    }
    assert (await job_row(pool, job.job_id))["status"] == "partial"


async def test_a_failure_of_a_part_the_job_never_asked_for_is_not_the_jobs(
    pool: AsyncConnectionPool,
) -> None:
    """A stage that fails on a forged input (image 999, a type the job did not ask for) neither
    fails the job it names nor shows it retrying; the job completes from its own outputs."""
    job = new_job(count=1, types=("mug",), auto=False)
    retry = job.derive(
        StageFailed,
        StageFailedPayload(
            stage="printify",
            error_class="RetryableError",
            message="image not readable",
            retryable=True,
            attempt=1,
            image_index=999,
            product_type="mug",
        ),
        producer="monitor",
        key="retry:999",
    )
    forged = [failed(job, "printify", 999, "mug"), failed(job, "printify", 0, "hoodie"), retry]
    await fold_all(pool, [job, *forged])
    row = await job_row(pool, job.job_id)
    assert (row["status"], row["products_failed"], row["error"]) == ("queued", 0, None)
    assert row["retrying_since"] is None
    await fold_all(pool, [image(job, 0), product(job, 0, "mug")])
    row = await job_row(pool, job.job_id)
    assert (row["status"], row["products_failed"]) == ("completed", 0)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT type FROM job_events WHERE job_id = %s ORDER BY seq", (job.job_id,)
        )
        assert [t for (t,) in await cur.fetchall()] == [
            "job.requested",
            "image.generated",
            "product.created",
        ]
