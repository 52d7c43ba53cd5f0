"""Per-channel publications in the fold (real PostgreSQL): a job publishing to several channels
completes when every (product, channel) listing is in, and shows each channel's outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.monitor.fold import Folder
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
from shared.contract.topics import PUBLISHERS
from tests.support.events import image, product

CHANNELS = ["printify", "shopify", "etsy"]


def job(channels: list[str] | None = CHANNELS) -> JobRequested:
    return JobRequested(
        job_id=f"chan-{uuid.uuid4().hex[:8]}",
        producer="api",
        payload=JobRequestedPayload(
            theme="t",
            style="s",
            niche="n",
            product_types=["tshirt"],
            count=2,
            auto_publish=True,
            channels=channels,
        ),
    )


def listed(j: JobRequested, i: int, channel: str) -> ProductPublished:
    return j.derive(
        ProductPublished,
        ProductPublishedPayload(
            image_index=i,
            product_type="tshirt",
            product_id=f"prod-{i}",
            shop_id="1",
            external_id=f"{channel}-{i}",
            handle=f"https://{channel}.test/{i}",
            channel=channel,
        ),
        producer="publisher",
        key=f"published:{channel}:{i}",
    )


def refused(j: JobRequested, i: int, channel: str, *, retryable: bool = False) -> StageFailed:
    stage = PUBLISHERS[channel].name
    return j.derive(
        StageFailed,
        StageFailedPayload(
            stage=stage,
            error_class="RetryableError" if retryable else "PermanentError",
            message=f"{channel} answered 503" if retryable else f"{channel} said no",
            image_index=i,
            product_type="tshirt",
            retryable=retryable,
            attempt=1 if retryable else 0,
            next_attempt_at=datetime.now(UTC) + timedelta(seconds=5) if retryable else None,
        ),
        producer=stage,
        key=f"failed:{channel}:{i}:{uuid.uuid4().hex[:6]}",
    )


def sent(j: JobRequested, i: int, channel: str) -> ProductPublishing:
    return j.derive(
        ProductPublishing,
        ProductPublishingPayload(
            image_index=i,
            product_type="tshirt",
            product_id=f"prod-{i}",
            shop_id="1",
            sales_channel=channel,
            channel=channel,
            confirm_by=datetime.now(UTC) + timedelta(hours=1),
        ),
        producer="publisher",
        key=f"publishing:{channel}:{i}",
    )


def made(j: JobRequested) -> list[Event]:
    """The job, its two images and a tshirt of each."""
    return [j, image(j, 0), image(j, 1), *(product(j, i, "tshirt") for i in (0, 1))]


async def fold(pool: AsyncConnectionPool, events: list[Event]) -> None:
    folder = Folder(pool)
    for n, e in enumerate(events):
        await folder.fold(e, "t", 0, n)


async def state(pool: AsyncConnectionPool, job_id: str) -> tuple[dict[str, Any], list[Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, expected_publications, publications_done, publications_failed,"
            " error, channels FROM jobs WHERE job_id = %s",
            (job_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        cur = await conn.execute(
            "SELECT image_index, channel, status FROM listings WHERE job_id = %s"
            " ORDER BY image_index, channel",
            (job_id,),
        )
        keys = ("status", "expected", "done", "failed", "error", "channels")
        return dict(zip(keys, row, strict=True)), list(await cur.fetchall())


async def test_the_job_completes_when_every_channel_listed_every_product(
    pool: AsyncConnectionPool,
) -> None:
    j = job()
    await fold(pool, made(j) + [listed(j, i, c) for i in (0, 1) for c in ("printify", "shopify")])
    row, _ = await state(pool, j.job_id)
    # Etsy has listed nothing yet: four of six publications in, the job is still open.
    assert (row["status"], row["expected"], row["done"]) == ("processing", 6, 4)
    assert row["channels"] == CHANNELS

    await fold(pool, [listed(j, i, "etsy") for i in (0, 1)])
    row, rows = await state(pool, j.job_id)
    assert (row["status"], row["done"], row["failed"]) == ("completed", 6, 0)
    assert rows == [(i, c, "published") for i in (0, 1) for c in sorted(CHANNELS)]


async def test_one_channel_refusing_makes_a_partial_job_with_the_others_listed(
    pool: AsyncConnectionPool,
) -> None:
    j = job()
    events = made(j)
    events += [listed(j, i, c) for i in (0, 1) for c in ("printify", "etsy")]
    events += [refused(j, i, "shopify") for i in (0, 1)]
    await fold(pool, events)
    row, rows = await state(pool, j.job_id)
    assert (row["status"], row["done"], row["failed"]) == ("partial", 4, 2)
    assert "2 of 6 publications failed" in row["error"]
    assert {(i, c): s for i, c, s in rows} == {
        **{(i, c): "published" for i in (0, 1) for c in ("printify", "etsy")},
        **{(i, "shopify"): "publish_failed" for i in (0, 1)},
    }


async def test_a_refusal_never_undoes_a_listing_whatever_the_order(
    pool: AsyncConnectionPool,
) -> None:
    j = job(["shopify"])
    await fold(pool, made(j))
    # Listed (after a replay) and the earlier refusal read later, from another topic.
    await fold(pool, [listed(j, 0, "shopify"), refused(j, 0, "shopify"), listed(j, 1, "shopify")])
    row, rows = await state(pool, j.job_id)
    assert row["status"] == "completed"
    assert [s for _, _, s in rows] == ["published", "published"]


async def test_a_job_from_before_channels_publishes_to_printify_alone(
    pool: AsyncConnectionPool,
) -> None:
    j = job(None)
    events = made(j)
    await fold(pool, [*events, listed(j, 0, "printify"), listed(j, 1, "printify")])
    row, _ = await state(pool, j.job_id)
    assert (row["status"], row["expected"], row["channels"]) == ("completed", 2, ["printify"])


async def test_a_waiting_channel_shows_retrying_per_product_until_it_lists_or_gives_up(
    pool: AsyncConnectionPool,
) -> None:
    j = job()
    events = made(j)
    events += [listed(j, i, c) for i in (0, 1) for c in ("printify", "etsy")]
    events += [refused(j, i, "shopify", retryable=True) for i in (0, 1)]
    await fold(pool, events)
    row, rows = await state(pool, j.job_id)
    # Shopify waits alone: the others are listed, the job is open, not failed.
    assert (row["status"], row["done"], row["failed"]) == ("retrying", 4, 0)
    assert {(i, c): s for i, c, s in rows} == {
        **{(i, c): "published" for i in (0, 1) for c in ("printify", "etsy")},
        **{(i, "shopify"): "retrying" for i in (0, 1)},
    }

    # Sent again (a channel that confirms later), then listed; the other one gives up.
    await fold(pool, [sent(j, 0, "shopify"), refused(j, 1, "shopify")])
    _, rows = await state(pool, j.job_id)
    assert {(i, c): s for i, c, s in rows if c == "shopify"} == {
        (0, "shopify"): "publishing",
        (1, "shopify"): "publish_failed",
    }
    await fold(pool, [listed(j, 0, "shopify")])
    row, rows = await state(pool, j.job_id)
    assert (row["status"], row["done"], row["failed"]) == ("partial", 5, 1)


async def test_a_late_retry_notice_never_undoes_an_outcome(pool: AsyncConnectionPool) -> None:
    j = job(["shopify"])
    await fold(pool, made(j))
    early = [refused(j, i, "shopify", retryable=True) for i in (0, 1)]
    # The outcomes are folded first, the retry notices that came before them later (another
    # topic, another partition).
    await fold(pool, [listed(j, 0, "shopify"), refused(j, 1, "shopify"), *early])
    _, rows = await state(pool, j.job_id)
    assert [s for _, _, s in rows] == ["published", "publish_failed"]
