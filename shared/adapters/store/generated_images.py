"""The ``generated_images`` table: what the generator made, per (job, image, generation).

The generator's own record of each image it handed on: the brief it rendered, the seed, the
stored image and the job's request as it read it. A seller's regenerate names only the job, the
image and the generation the seller saw; everything else it needs comes from here. The first row
of a (job, image, generation) wins: a second writer (a redelivery, a concurrent decision) reads
the row that won.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from shared.contract.events import JobRequestedPayload, Screening

_COLUMNS = (
    "job_id", "image_index", "generation", "decision_id", "seed", "prompt", "negative_prompt",
    "title", "description", "tags", "sha256", "uri", "width", "height", "request",
    "requested_at", "screening",
)  # fmt: skip
_LIST = ", ".join(_COLUMNS)

_RECORD = f"""
INSERT INTO generated_images ({_LIST})
SELECT {_LIST} FROM jsonb_populate_recordset(NULL::generated_images, %(rows)s)
ON CONFLICT (job_id, image_index, generation) DO NOTHING
"""  # noqa: S608  # column names from this module, no input

_NEWEST = f"""
SELECT {_LIST} FROM generated_images
WHERE job_id = %(job)s AND image_index = %(index)s
ORDER BY generation DESC LIMIT 1
"""  # noqa: S608

_OF_DECISION = f"""
SELECT {_LIST} FROM generated_images
WHERE job_id = %(job)s AND image_index = %(index)s AND decision_id = %(decision)s
"""  # noqa: S608

_OF_GENERATION = f"""
SELECT {_LIST} FROM generated_images
WHERE job_id = %(job)s AND image_index = %(index)s AND generation = %(generation)s
"""  # noqa: S608


class GeneratedImage(BaseModel):
    """One image the generator made (a row of ``generated_images``)."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    image_index: int
    generation: int
    # The regenerate decision that asked for it (None: the job's own render).
    decision_id: uuid.UUID | None = None
    seed: int
    prompt: str
    negative_prompt: str
    title: str
    description: str
    tags: list[str]
    sha256: str
    uri: str
    width: int
    height: int
    request: JobRequestedPayload
    requested_at: datetime
    # What screening found and decided (None: not screened, screening off or a row from
    # before it).
    screening: Screening | None = None


def _row(image: GeneratedImage) -> dict[str, Any]:
    return image.model_dump(mode="json")


async def record(conn: AsyncConnection[Any], images: list[GeneratedImage]) -> None:
    """Record the images; a (job, image, generation) already recorded keeps its first row."""
    if images:
        await conn.execute(_RECORD, {"rows": Jsonb([_row(i) for i in images])})


async def _one(
    conn: AsyncConnection[Any], sql: str, params: dict[str, Any]
) -> GeneratedImage | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
    return None if row is None else GeneratedImage.model_validate(row)


async def newest(
    conn: AsyncConnection[Any], job_id: str, image_index: int
) -> GeneratedImage | None:
    """The image's latest generation, if the generator made it."""
    return await _one(conn, _NEWEST, {"job": job_id, "index": image_index})


async def of_decision(
    conn: AsyncConnection[Any], job_id: str, image_index: int, decision_id: uuid.UUID
) -> GeneratedImage | None:
    """The generation a regenerate decision made, if it made one."""
    return await _one(
        conn, _OF_DECISION, {"job": job_id, "index": image_index, "decision": decision_id}
    )


async def of_generation(
    conn: AsyncConnection[Any], job_id: str, image_index: int, generation: int
) -> GeneratedImage | None:
    """One generation of the image, if made."""
    return await _one(
        conn, _OF_GENERATION, {"job": job_id, "index": image_index, "generation": generation}
    )
