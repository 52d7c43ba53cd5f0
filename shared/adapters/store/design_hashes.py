"""The ``design_hashes`` table: the perceptual hash of every design screened, per (job, image,
generation), and the lookup of the designs near a new one (near-duplicate screening).

The lookup is an indexed query, not a scan (multi-index hashing): the 64 bits are split into
four 16-bit chunks, each an indexed column. Two hashes within distance ``d`` differ in at most
``d`` bits, spread over four chunks, so at least one chunk differs in at most ``d // 4`` bits
(pigeonhole): the query asks each chunk's index for the values within that radius of the new
hash's chunk (1, 17, 137 or 697 values for radius 0-3) and computes the exact distance
(``bit_count`` of the XOR) on those candidates only.

What counts: the newest generation of every other (job, image). A regenerate replaces the
image before it (its products are deleted), so an older generation no longer counts, and a
design never resembles another generation of its own (job, image). ``forget`` removes a
design the seller rejected or deleted: a design that was never listed is not one a marketplace
would see a copy of.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from shared.contract.events import DesignRef
from shared.domain.screening.phash import chunk_neighbours, chunks, to_signed

_RECORD = """
INSERT INTO design_hashes (job_id, image_index, generation, phash, chunk0, chunk1, chunk2, chunk3)
VALUES (%(job)s, %(index)s, %(generation)s, %(phash)s, %(c0)s, %(c1)s, %(c2)s, %(c3)s)
ON CONFLICT (job_id, image_index, generation) DO NOTHING
"""

# The distance to the nearest probe (the new design's hash, and its mirror image's when given).
# The superseded generations and the new design's own (job, image) are left out in the same
# pass; the newest generation is found on the primary key (one index probe per candidate).
_SIMILAR = """
SELECT job_id, image_index, generation, distance FROM (
    SELECT d.job_id, d.image_index, d.generation, d.created_at,
           (SELECT min(bit_count((d.phash # p)::bit(64)))
              FROM unnest(%(probes)s::bigint[]) AS p)::integer AS distance
      FROM design_hashes AS d
     WHERE (d.chunk0 = ANY(%(c0)s::integer[]) OR d.chunk1 = ANY(%(c1)s::integer[])
            OR d.chunk2 = ANY(%(c2)s::integer[]) OR d.chunk3 = ANY(%(c3)s::integer[]))
       AND NOT (d.job_id = %(job)s AND d.image_index = %(index)s)
       AND d.generation = (SELECT max(n.generation) FROM design_hashes AS n
                            WHERE n.job_id = d.job_id AND n.image_index = d.image_index)
) AS near
WHERE distance <= %(max)s
ORDER BY distance, created_at, job_id, image_index
LIMIT %(limit)s
"""

_FORGET_JOB = "DELETE FROM design_hashes WHERE job_id = %(job)s"
_FORGET_IMAGE = "DELETE FROM design_hashes WHERE job_id = %(job)s AND image_index = %(index)s"

MAX_DISTANCE = 15  # radius 3 per chunk: 697 index values per chunk, still a few index pages


async def record(
    conn: AsyncConnection[Any], job_id: str, image_index: int, generation: int, phash: int
) -> bool:
    """Record a design's hash; False when this (job, image, generation) already has one (a
    redelivery writes nothing new, and the first hash recorded stays)."""
    c0, c1, c2, c3 = chunks(phash)
    cur = await conn.execute(
        _RECORD,
        {
            "job": job_id,
            "index": image_index,
            "generation": generation,
            "phash": to_signed(phash),
            "c0": c0,
            "c1": c1,
            "c2": c2,
            "c3": c3,
        },
    )
    return cur.rowcount == 1


def candidates(probes: list[int], max_distance: int) -> dict[str, list[int]]:
    """Per chunk column, the values a design within ``max_distance`` of a probe has in at least
    one of them."""
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be 0-{MAX_DISTANCE}, not {max_distance}")
    radius = max_distance // 4
    per_column: list[set[int]] = [set(), set(), set(), set()]
    for probe in probes:
        for column, chunk in zip(per_column, chunks(probe), strict=True):
            column.update(chunk_neighbours(chunk, radius))
    return {f"c{i}": sorted(values) for i, values in enumerate(per_column)}


async def similar(
    conn: AsyncConnection[Any],
    phash: int,
    max_distance: int,
    *,
    exclude: tuple[str, int],
    mirrored: int | None = None,
    limit: int = 5,
) -> list[DesignRef]:
    """The designs within ``max_distance`` bits of ``phash`` (or of ``mirrored``, the mirror
    image's hash, when given), nearest first (then the earliest); ``exclude`` is the new
    design's own (job, image), whose other generations it replaces."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    probes = [phash] if mirrored is None else [phash, mirrored]
    params: dict[str, Any] = {
        **candidates(probes, max_distance),
        "probes": [to_signed(p) for p in probes],
        "job": exclude[0],
        "index": exclude[1],
        "max": max_distance,
        "limit": limit,
    }
    cur = await conn.execute(_SIMILAR, params)
    return [
        DesignRef(job_id=job, image_index=index, generation=generation, distance=distance)
        for job, index, generation, distance in await cur.fetchall()
    ]


async def forget(conn: AsyncConnection[Any], job_id: str, image_index: int | None = None) -> int:
    """Forget a job's designs (or one image's, every generation): they no longer make a new
    design a near-duplicate. Returns how many hashes were removed."""
    if image_index is None:
        cur = await conn.execute(_FORGET_JOB, {"job": job_id})
    else:
        cur = await conn.execute(_FORGET_IMAGE, {"job": job_id, "index": image_index})
    return cur.rowcount


class PgDesignHashes:
    """The screener's store of hashes (``services.generator.screening.DesignHashes``) on the
    shared database."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record_and_match(
        self,
        *,
        job_id: str,
        image_index: int,
        generation: int,
        phash: int,
        max_distance: int,
        mirrored: int | None = None,
        limit: int = 5,
    ) -> list[DesignRef]:
        """Record the design's hash, then the designs within ``max_distance`` of it (or of its
        mirror image's hash), nearest first, its own (job, image) left out.

        Recorded first and committed on its own (the pool's connections are autocommit, see
        ``shared.platform.db.open_pool``): of two near-duplicates screened at the same
        moment on two instances, the one that looks second sees the other (matching first,
        both could miss each other). A redelivery records nothing new and answers the same,
        plus any design recorded since."""
        async with self._pool.connection() as conn:
            await record(conn, job_id, image_index, generation, phash)
            return await similar(
                conn,
                phash,
                max_distance,
                exclude=(job_id, image_index),
                mirrored=mirrored,
                limit=limit,
            )
