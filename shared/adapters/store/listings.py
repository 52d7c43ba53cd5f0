"""The ``listings`` table: one row per (job, image, product type, channel), the publication of
a product on one sales channel (the monitor writes it; the API shows it per product).

Events about one listing come from different topics, so each statement only moves a row
forward: ``publishing`` and ``retrying`` (the channel's publisher will try again) follow each
other by time and never undo an outcome, ``published`` wins over anything (a replay that
listed it after a refusal) but a later ``withdrawn`` (the seller took it down), and a refusal
never undoes a listing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from shared.contract.events import ProductPublished, ProductPublishing, ProductWithdrawn

_PUBLISHING = """
INSERT INTO listings (job_id, image_index, product_type, channel, status, sales_channel,
                      updated_at)
VALUES (%(job)s, %(index)s, %(type)s, %(channel)s, 'publishing', %(sales_channel)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type, channel) DO UPDATE SET
    status = 'publishing', sales_channel = EXCLUDED.sales_channel, error = NULL,
    updated_at = EXCLUDED.updated_at
WHERE listings.status = 'retrying' AND listings.updated_at <= EXCLUDED.updated_at
"""

_RETRYING = """
INSERT INTO listings (job_id, image_index, product_type, channel, status, error, updated_at)
VALUES (%(job)s, %(index)s, %(type)s, %(channel)s, 'retrying', %(error)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type, channel) DO UPDATE SET
    status = 'retrying', error = EXCLUDED.error, updated_at = EXCLUDED.updated_at
WHERE listings.status IN ('publishing', 'retrying') AND listings.updated_at <= EXCLUDED.updated_at
"""

_PUBLISHED = """
INSERT INTO listings (job_id, image_index, product_type, channel, status, external_id, url,
                      updated_at, published_at)
VALUES (%(job)s, %(index)s, %(type)s, %(channel)s, 'published', %(external_id)s, %(url)s,
        %(at)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type, channel) DO UPDATE SET
    status = 'published', external_id = EXCLUDED.external_id, url = EXCLUDED.url,
    updated_at = EXCLUDED.updated_at, published_at = EXCLUDED.published_at, error = NULL
WHERE listings.status <> 'withdrawn' OR listings.updated_at <= EXCLUDED.updated_at
"""

_FAILED = """
INSERT INTO listings (job_id, image_index, product_type, channel, status, error, updated_at)
VALUES (%(job)s, %(index)s, %(type)s, %(channel)s, 'publish_failed', %(error)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type, channel) DO UPDATE SET
    status = 'publish_failed', error = EXCLUDED.error, updated_at = EXCLUDED.updated_at
WHERE listings.status <> 'published'
"""


async def record_publishing(conn: AsyncConnection[Any], event: ProductPublishing) -> None:
    """Sent to the channel, which has not listed it yet."""
    p = event.payload
    await conn.execute(
        _PUBLISHING,
        {
            "job": event.job_id,
            "index": p.image_index,
            "type": p.product_type.value,
            "channel": p.channel,
            "sales_channel": p.sales_channel,
            "at": event.occurred_at,
        },
    )


async def record_published(conn: AsyncConnection[Any], event: ProductPublished) -> None:
    """Listed on the channel, with the listing's id and URL."""
    p = event.payload
    await conn.execute(
        _PUBLISHED,
        {
            "job": event.job_id,
            "index": p.image_index,
            "type": p.product_type.value,
            "channel": p.channel,
            "external_id": p.external_id,
            "url": p.handle,
            "at": event.occurred_at,
        },
    )


async def record_failed(
    conn: AsyncConnection[Any],
    *,
    job_id: str,
    image_index: int,
    product_type: str,
    channel: str,
    error: str,
    at: datetime,
    retrying: bool = False,
) -> None:
    """The channel will not list it (or the publisher gave up); with ``retrying``, the channel's
    publisher failed and will try again. ``error`` says why."""
    await conn.execute(
        _RETRYING if retrying else _FAILED,
        {
            "job": job_id,
            "index": image_index,
            "type": product_type,
            "channel": channel,
            "error": error,
            "at": at,
        },
    )


# A listing taken down stays a row (the job's history): 'withdrawn', with why.
_WITHDRAWN = """
INSERT INTO listings (job_id, image_index, product_type, channel, status, withdrawn_reason,
                      updated_at)
VALUES (%(job)s, %(index)s, %(type)s, %(channel)s, 'withdrawn', %(reason)s, %(at)s)
ON CONFLICT (job_id, image_index, product_type, channel) DO UPDATE SET
    status = 'withdrawn', withdrawn_reason = EXCLUDED.withdrawn_reason,
    updated_at = EXCLUDED.updated_at
WHERE listings.updated_at <= EXCLUDED.updated_at
"""


async def record_withdrawn(conn: AsyncConnection[Any], event: ProductWithdrawn) -> None:
    """The channel's listing was taken down (unpublished or deleted), or never made before the
    job's cancel."""
    p = event.payload
    await conn.execute(
        _WITHDRAWN,
        {
            "job": event.job_id,
            "index": p.image_index,
            "type": p.product_type.value,
            "channel": p.channel,
            "reason": f"{p.outcome} ({p.reason})",
            "at": event.occurred_at,
        },
    )
