"""The monitor's fold of a reviewed job and of the seller's decisions (decision §41), against the
real PostgreSQL: when an image waits, what each decision leaves, when the job ends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.monitor.alerts import AlertEvaluator
from services.monitor.settings import MonitorSettings
from shared.contract.events import (
    DecisionAction,
    Event,
    JobRequested,
    JobRequestedPayload,
    ProductApproved,
    ProductApprovedPayload,
    ProductPublished,
    ProductPublishedPayload,
    ProductWithdrawn,
    ProductWithdrawnPayload,
    SellerDecision,
    SellerDecisionPayload,
)
from tests.services.monitor.test_fold import fold_all, job_row
from tests.support.events import image, product
from tests.support.infra import unique

TYPES = ("tshirt", "mug")


def reviewed_job(count: int = 2, channels: list[str] | None = None) -> JobRequested:
    return JobRequested(
        job_id=f"review-{uuid.uuid4().hex[:8]}",
        producer="api",
        payload=JobRequestedPayload(
            theme="t",
            style="s",
            niche="n",
            product_types=list(TYPES),
            count=count,
            review=True,
            channels=channels or ["printify"],
        ),
    )


def decision(
    job: JobRequested, action: str, index: int | None = None, generation: int = 0, **extra: Any
) -> SellerDecision:
    return SellerDecision(
        job_id=job.job_id,
        producer="api",
        payload=SellerDecisionPayload(
            decision_id=uuid.uuid4(),
            action=DecisionAction(action),
            image_index=index,
            generation=generation,
            decided_by="alice",
            **extra,
        ),
    )


def made(job: JobRequested, generation: int = 0, images: range | None = None) -> list[Event]:
    events: list[Event] = []
    for i in images if images is not None else range(job.payload.count):
        events.append(image(job, i, generation))
        events += [product(job, i, t, generation) for t in TYPES]
    return events


def approved(job: JobRequested, d: SellerDecision, i: int, t: str) -> ProductApproved:
    created = product(job, i, t).payload
    return d.derive(
        ProductApproved,
        ProductApprovedPayload(
            **created.model_dump(), decision_id=d.payload.decision_id, decided_by="alice"
        ),
        producer="printify",
        key=f"approved:{i}:{t}",
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


def deleted(job: JobRequested, i: int, t: str, reason: str, generation: int = 0) -> Event:
    suffix = f"@g{generation}" if generation else ""
    return job.derive(
        ProductWithdrawn,
        ProductWithdrawnPayload(
            image_index=i,
            product_type=t,
            product_id=f"prod-{i}-{t}{suffix}",
            shop_id="1",
            generation=generation,
            outcome="deleted",
            reason=reason,
        ),
        producer="printify",
        key=f"deleted:{i}:{t}:{generation}",
    )


async def reviews(pool: AsyncConnectionPool, job_id: str) -> dict[int, tuple[str, int]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT image_index, state, generation FROM image_reviews WHERE job_id = %s",
            (job_id,),
        )
        return {i: (state, g) for i, state, g in await cur.fetchall()}


async def test_an_image_waits_once_all_its_products_are_made_and_the_job_awaits_review(
    pool: AsyncConnectionPool,
) -> None:
    job = reviewed_job()
    events = made(job)
    # Image 0 and one of its two products: nothing to review yet.
    await fold_all(pool, [job, *events[:2]])
    assert await reviews(pool, job.job_id) == {}
    assert (await job_row(pool, job.job_id))["status"] == "processing"
    await fold_all(pool, events[2:])
    assert await reviews(pool, job.job_id) == {0: ("awaiting", 0), 1: ("awaiting", 0)}
    row = await job_row(pool, job.job_id)
    assert row["status"] == "awaiting_review" and row["finished_at"] is None


async def test_approved_images_are_published_rejected_ones_deleted_then_the_job_completes(
    pool: AsyncConnectionPool,
) -> None:
    job = reviewed_job()
    await fold_all(pool, [job, *made(job)])
    approve = decision(job, "approve", 0)
    reject = decision(job, "reject", 1)
    await fold_all(pool, [approve, reject])
    assert await reviews(pool, job.job_id) == {0: ("approved", 0), 1: ("rejected", 0)}
    # Image 0's two products are still to be listed: not the end yet.
    await fold_all(pool, [approved(job, approve, 0, t) for t in TYPES])
    await fold_all(pool, [deleted(job, 1, t, "rejected") for t in TYPES])
    row = await job_row(pool, job.job_id)
    assert row["status"] == "processing"
    await fold_all(pool, [published(job, 0, t) for t in TYPES])
    row = await job_row(pool, job.job_id)
    assert (row["status"], row["error"], row["publications_done"]) == ("completed", None, 2)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT image_index, status FROM products WHERE job_id = %s ORDER BY 1, 2",
            (job.job_id,),
        )
        statuses = await cur.fetchall()
    assert statuses == [(0, "published"), (0, "published"), (1, "deleted"), (1, "deleted")]


async def test_a_regenerated_image_waits_again_under_its_new_generation(
    pool: AsyncConnectionPool,
) -> None:
    job = reviewed_job(count=1)
    await fold_all(pool, [job, *made(job)])
    # The API claimed the regenerate (a CAS on the row) before it produced the decision.
    regenerate = decision(job, "regenerate", 0, prompt="a new prompt")
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE image_reviews SET state = 'regenerating', decision_id = %s "
            "WHERE job_id = %s AND image_index = 0",
            (regenerate.payload.decision_id, job.job_id),
        )
    await fold_all(pool, [regenerate])
    assert (await job_row(pool, job.job_id))["status"] == "processing"
    assert await reviews(pool, job.job_id) == {0: ("regenerating", 0)}
    # The old products go, the new image and its products come.
    await fold_all(pool, [deleted(job, 0, t, "regenerated") for t in TYPES])
    await fold_all(pool, made(job, generation=1))
    assert await reviews(pool, job.job_id) == {0: ("awaiting", 1)}
    row = await job_row(pool, job.job_id)
    assert row["status"] == "awaiting_review"
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT product_id, status, generation FROM products WHERE job_id = %s ORDER BY 1",
            (job.job_id,),
        )
        rows = await cur.fetchall()
        cur = await conn.execute("SELECT generation FROM images WHERE job_id = %s", (job.job_id,))
        assert await cur.fetchall() == [(1,)]
    # The regenerated products replaced the old ones; the old one's deletion did not touch them.
    assert rows == [("prod-0-mug@g1", "created", 1), ("prod-0-tshirt@g1", "created", 1)]


async def test_a_decision_about_a_generation_that_is_gone_changes_nothing(
    pool: AsyncConnectionPool,
) -> None:
    job = reviewed_job(count=1)
    await fold_all(pool, [job, *made(job), *made(job, generation=1)])
    assert await reviews(pool, job.job_id) == {0: ("awaiting", 1)}
    # Not claimed by the API (a replayed topic, or a forger on it): about generation 0.
    await fold_all(pool, [decision(job, "approve", 0, generation=0)])
    assert await reviews(pool, job.job_id) == {0: ("awaiting", 1)}


async def test_a_cancelled_job_ends_cancelled_and_its_reviews_close(
    pool: AsyncConnectionPool,
) -> None:
    job = reviewed_job()
    await fold_all(pool, [job, *made(job, images=range(1))])
    await fold_all(pool, [decision(job, "cancel")])
    row = await job_row(pool, job.job_id)
    assert (row["status"], row["cancelled_by"]) == ("cancelled", "alice")
    assert row["finished_at"] is not None
    assert await reviews(pool, job.job_id) == {0: ("cancelled", 0)}
    # Image 1's products arrive after the cancel (they were in flight): nothing waits.
    await fold_all(pool, made(job, images=range(1, 2)))
    assert await reviews(pool, job.job_id) == {0: ("cancelled", 0)}
    assert (await job_row(pool, job.job_id))["status"] == "cancelled"


async def test_a_decision_for_an_image_outside_the_job_is_refused(
    pool: AsyncConnectionPool,
) -> None:
    job = reviewed_job(count=1)
    await fold_all(pool, [job, *made(job)])
    try:
        await fold_all(pool, [decision(job, "approve", 7)])
    except Exception as exc:
        assert "image_index" in str(exc)
    else:
        raise AssertionError("an approve of image 7 of a one-image job was folded")
    assert await reviews(pool, job.job_id) == {0: ("awaiting", 0)}


async def test_a_review_waiting_too_long_raises_an_alert_until_the_seller_decides(
    pool: AsyncConnectionPool, migrated_db: str
) -> None:
    settings = MonitorSettings(database_url=migrated_db, review_alert_after_s=3600)
    namespace = unique("reviews") + "/"
    evaluator = AlertEvaluator(pool, settings, namespace=namespace, services=[])
    job = reviewed_job(count=1)
    await fold_all(pool, [job, *made(job)])
    key = f"{namespace}review_waiting:{job.job_id}"

    async def open_keys(at: datetime) -> set[str]:
        await evaluator.evaluate(at)
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT condition_key FROM alerts WHERE starts_with(condition_key, %s) "
                "AND status = 'open'",
                (namespace,),
            )
            return {r[0] for r in await cur.fetchall()}

    now = datetime.now(UTC)
    assert key not in await open_keys(now + timedelta(minutes=30))
    assert key in await open_keys(now + timedelta(hours=2))
    await fold_all(pool, [decision(job, "approve", 0)])
    assert key not in await open_keys(now + timedelta(hours=2))


async def test_a_deletion_folded_before_its_products_creation_stays_a_deletion(
    pool: AsyncConnectionPool,
) -> None:
    # The monitor retries a product whose image it has not folded yet, while the product's
    # deletion (the next record of the topic) is folded at once.
    job = reviewed_job(count=1)
    await fold_all(pool, [job, image(job, 0), deleted(job, 0, "mug", "cancelled")])
    await fold_all(pool, [product(job, 0, "mug"), product(job, 0, "tshirt")])
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT product_type, status FROM products WHERE job_id = %s ORDER BY 1",
            (job.job_id,),
        )
        assert await cur.fetchall() == [("mug", "deleted"), ("tshirt", "created")]
