"""The ``images`` table: one row per generated image of a job (the monitor writes it from
``image.generated``; the API lists it with the job)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from shared.events import ImageGenerated

_RECORD = """
INSERT INTO images (job_id, image_index, sha256, uri, width, height, prompt, title, description,
                    tags, created_at)
VALUES (%(job)s, %(index)s, %(sha256)s, %(uri)s, %(width)s, %(height)s, %(prompt)s, %(title)s,
        %(description)s, %(tags)s, %(at)s)
ON CONFLICT (job_id, image_index) DO NOTHING
"""

_EXISTS = "SELECT 1 FROM images WHERE job_id = %(job)s AND image_index = %(index)s"


async def exists(conn: AsyncConnection[Any], job_id: str, image_index: int) -> bool:
    """Whether the job's image ``image_index`` has been folded."""
    cur = await conn.execute(_EXISTS, {"job": job_id, "index": image_index})
    return await cur.fetchone() is not None


async def record(conn: AsyncConnection[Any], event: ImageGenerated) -> None:
    """Add the image; the first event of an index wins (a regenerated duplicate is the same)."""
    p = event.payload
    await conn.execute(
        _RECORD,
        {
            "job": event.job_id,
            "index": p.image_index,
            "sha256": p.sha256,
            "uri": p.uri,
            "width": p.width,
            "height": p.height,
            "prompt": p.prompt,
            "title": p.title,
            "description": p.description,
            "tags": p.tags,
            "at": event.occurred_at,
        },
    )
