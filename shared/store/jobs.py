"""The ``jobs`` table's rows as they are opened: by the API when it accepts a job, by the
monitor when it folds the request (or, first, one of its images).

Whoever comes first writes the row; the API's insert and the monitor's fold of the same
JobRequested write it alike (created_at = the event's time, request = the payload), so the row
reads the same whichever came first. Counters and status are the monitor's
(:mod:`services.monitor.fold`, rules in :mod:`services.monitor.status`).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from shared.events import ImageGenerated, JobRequested

_INSERT_REQUESTED = """
INSERT INTO jobs (job_id, status, priority, priority_level, theme, style, niche, prompt,
                  product_types, image_count, auto_publish, expected_products,
                  expected_publications, submitted_by, request, created_at)
VALUES (%(job)s, 'queued', %(priority)s, %(level)s, %(theme)s, %(style)s, %(niche)s, %(prompt)s,
        %(types)s, %(count)s, %(auto)s, %(expected)s, %(publications)s, %(by)s, %(request)s,
        %(at)s)
"""
_OPEN_REQUESTED = _INSERT_REQUESTED + "ON CONFLICT (job_id) DO NOTHING"
# The request's own fields win over a row an image opened first (it had only the image's).
_OPEN_OR_FILL_REQUESTED = (
    _INSERT_REQUESTED
    + """ON CONFLICT (job_id) DO UPDATE SET
    theme = EXCLUDED.theme, style = EXCLUDED.style, niche = EXCLUDED.niche,
    prompt = EXCLUDED.prompt, priority = EXCLUDED.priority,
    priority_level = EXCLUDED.priority_level, submitted_by = EXCLUDED.submitted_by,
    request = EXCLUDED.request"""
)

_OPEN_FROM_IMAGE = """
INSERT INTO jobs (job_id, status, priority, theme, style, niche, product_types, image_count,
                  auto_publish, expected_products, expected_publications, created_at)
VALUES (%(job)s, 'processing', %(priority)s, '', '', '', %(types)s, %(count)s, %(auto)s,
        %(expected)s, %(publications)s, %(at)s)
ON CONFLICT (job_id) DO NOTHING
"""


def _requested(event: JobRequested) -> dict[str, Any]:
    p = event.payload
    expected = p.count * len(p.product_types)
    return {
        "job": event.job_id,
        "priority": p.priority.value,
        "level": p.priority_level,
        "theme": p.theme,
        "style": p.style,
        "niche": p.niche,
        "prompt": p.prompt,
        "types": [t.value for t in p.product_types],
        "count": p.count,
        "auto": p.auto_publish,
        "expected": expected,
        "publications": expected if p.auto_publish else 0,
        "by": p.submitted_by,
        "request": Jsonb(p.model_dump(mode="json")),
        "at": event.occurred_at,
    }


async def open_requested(conn: AsyncConnection[Any], event: JobRequested) -> bool:
    """Open the job's row as ``queued`` from its request; False if a row was there already."""
    cur = await conn.execute(_OPEN_REQUESTED, _requested(event))
    return cur.rowcount == 1


async def open_or_fill_requested(conn: AsyncConnection[Any], event: JobRequested) -> None:
    """Open the job's row from its request, or give a row opened earlier (from an image, or by
    the API) the request's fields."""
    await conn.execute(_OPEN_OR_FILL_REQUESTED, _requested(event))


async def open_from_image(conn: AsyncConnection[Any], event: ImageGenerated) -> None:
    """Open the job's row from one of its images, read before the request (another topic):
    the image carries enough to count; the request fills in the rest when it is folded."""
    p = event.payload
    expected = p.image_count * len(p.product_types)
    await conn.execute(
        _OPEN_FROM_IMAGE,
        {
            "job": event.job_id,
            "priority": p.priority.value,
            "types": [t.value for t in p.product_types],
            "count": p.image_count,
            "auto": p.auto_publish,
            "expected": expected,
            "publications": expected if p.auto_publish else 0,
            "at": event.occurred_at,
        },
    )
