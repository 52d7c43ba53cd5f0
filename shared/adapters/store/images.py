"""The ``images`` table: one row per generated image of a job (the monitor writes it from
``image.generated``; the API lists it with the job), with what screening decided of it
(migration 0036)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from shared.contract.events import ImageGenerated
from shared.domain.screening import explain

# A later generation (the seller asked for the image again) replaces the row's image, and its
# screening with it.
_RECORD = """
INSERT INTO images (job_id, image_index, sha256, uri, width, height, prompt, title, description,
                    tags, created_at, generation, screening, screening_decision,
                    screening_summary)
VALUES (%(job)s, %(index)s, %(sha256)s, %(uri)s, %(width)s, %(height)s, %(prompt)s, %(title)s,
        %(description)s, %(tags)s, %(at)s, %(generation)s, %(screening)s, %(decision)s,
        %(summary)s)
ON CONFLICT (job_id, image_index) DO UPDATE SET
    sha256 = EXCLUDED.sha256, uri = EXCLUDED.uri, width = EXCLUDED.width,
    height = EXCLUDED.height, prompt = EXCLUDED.prompt, title = EXCLUDED.title,
    description = EXCLUDED.description, tags = EXCLUDED.tags, generation = EXCLUDED.generation,
    screening = EXCLUDED.screening, screening_decision = EXCLUDED.screening_decision,
    screening_summary = EXCLUDED.screening_summary
WHERE images.generation < EXCLUDED.generation
"""

_EXISTING = """
SELECT i.job_id, i.image_index FROM images i
JOIN unnest(%(jobs)s::text[], %(indexes)s::int[]) AS w(job_id, image_index)
    ON i.job_id = w.job_id AND i.image_index = w.image_index
"""


async def existing(
    conn: AsyncConnection[Any], wanted: list[tuple[str, int]]
) -> set[tuple[str, int]]:
    """Which of the (job id, image index) pairs have been folded (one statement)."""
    if not wanted:
        return set()
    cur = await conn.execute(
        _EXISTING, {"jobs": [j for j, _ in wanted], "indexes": [i for _, i in wanted]}
    )
    return {(str(j), int(i)) for j, i in await cur.fetchall()}


async def record(conn: AsyncConnection[Any], event: ImageGenerated) -> None:
    """Add the image; the first event of an index and generation wins (a redelivered duplicate
    is the same), a later generation replaces it (its screening too)."""
    p = event.payload
    s = p.screening
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
            "generation": p.generation,
            "screening": None if s is None else Jsonb(s.model_dump(mode="json")),
            "decision": None if s is None else s.decision.value,
            "summary": None if s is None else explain.summary(s),
        },
    )
