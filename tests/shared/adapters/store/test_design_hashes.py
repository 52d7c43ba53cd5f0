"""``shared.adapters.store.design_hashes`` on a real PostgreSQL: the lookup of near designs is
an indexed query that answers what a scan of every hash would, and recording is idempotent."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg import AsyncConnection

from shared.adapters.store import design_hashes
from shared.domain.screening.phash import from_signed, hamming
from shared.platform.db import open_pool
from tests.shared.adapters.store.conftest import DatabaseBefore

# Every migration up to and including 0035 (design_hashes).
_AFTER = 36
_ROWS = 100_000

# 100k random 64-bit hashes, generation 0 of their own job each; the chunks from the hash's
# bits as the table's check wants them.
_LOAD = """
INSERT INTO design_hashes (job_id, image_index, generation, phash, chunk0, chunk1, chunk2, chunk3)
SELECT 'bulk-' || i, 0, 0, h, ((h >> 48) & 65535)::int, ((h >> 32) & 65535)::int,
       ((h >> 16) & 65535)::int, (h & 65535)::int
  FROM (SELECT i, (floor(random() * 4294967296)::bigint << 32)
                  | floor(random() * 4294967296)::bigint AS h
          FROM generate_series(1, %(rows)s) AS i) AS g
"""


@pytest.fixture
async def conn(database_before: DatabaseBefore) -> AsyncIterator[AsyncConnection[Any]]:
    """A database of its own (the 100k hashes stay out of the other tests' way)."""
    async with await AsyncConnection.connect(database_before(_AFTER), autocommit=True) as c:
        yield c


def near(h: int, bits: int, rng: random.Random) -> int:
    """``h`` with exactly ``bits`` of its bits flipped, anywhere."""
    for bit in rng.sample(range(64), bits):
        h ^= 1 << bit
    return h


def spread(h: int, bits: int, rng: random.Random) -> int:
    """``h`` with exactly ``bits`` of its bits flipped, as evenly over its four 16-bit chunks
    as they go: the nearest chunk is then as far as the pigeonhole allows (``bits // 4``), the
    case a too small search radius misses."""
    for chunk in range(4):
        count = bits // 4 + (1 if chunk < bits % 4 else 0)
        for bit in rng.sample(range(16), count):
            h ^= 1 << (chunk * 16 + bit)
    return h


async def _all(conn: AsyncConnection[Any]) -> list[tuple[str, int]]:
    cur = await conn.execute("SELECT job_id, phash FROM design_hashes")
    return [(job, from_signed(h)) for job, h in await cur.fetchall()]


async def test_the_lookup_answers_as_a_scan_would_from_the_chunk_indexes(
    conn: AsyncConnection[Any],
) -> None:
    await conn.execute(_LOAD, {"rows": _ROWS})
    await conn.execute("ANALYZE design_hashes")
    stored = await _all(conn)
    assert len(stored) == _ROWS
    rng = random.Random(29)
    for max_distance in (0, 3, 4, 8, 12, 15):
        params = {
            **design_hashes.candidates([stored[0][1]], max_distance),
            "probes": [0],
            "job": "new",
            "index": 0,
            "max": max_distance,
            "limit": 5,
        }
        cur = await conn.execute("EXPLAIN (FORMAT JSON) " + design_hashes._SIMILAR, params)
        row = await cur.fetchone()
        assert row is not None
        plan = json.dumps(row[0])
        for column in range(4):
            assert f'"Index Name": "design_hashes_chunk{column}"' in plan, (max_distance, plan)
        assert '"Node Type": "Seq Scan"' not in plan, (max_distance, plan)

        # Probes at exactly the distance and one past it from stored hashes, and random ones.
        probes = []
        for _ in range(4):
            _, base = rng.choice(stored)
            probes += [near(base, max_distance, rng), near(base, max_distance + 1, rng)]
            probes += [spread(base, max_distance, rng), spread(base, max_distance + 1, rng)]
        probes += [rng.getrandbits(64) for _ in range(2)]
        for probe in probes:
            found = await design_hashes.similar(
                conn, probe, max_distance, exclude=("new", 0), limit=10_000
            )
            expected = sorted(
                (hamming(probe, h), job) for job, h in stored if hamming(probe, h) <= max_distance
            )
            assert [(r.distance, r.job_id) for r in found] == expected, (max_distance, probe)
        # A stored design at exactly the distance is among the nearest five.
        job, base = rng.choice(stored)
        at = await design_hashes.similar(
            conn, spread(base, max_distance, rng), max_distance, exclude=("new", 0)
        )
        assert (job, max_distance) in [(r.job_id, r.distance) for r in at]


async def test_recording_is_idempotent_and_the_first_hash_stays(
    conn: AsyncConnection[Any],
) -> None:
    job = f"dup-{uuid.uuid4().hex[:8]}"
    h = 0xF0F0_1234_ABCD_8001  # top bit set: stored as a negative bigint
    assert await design_hashes.record(conn, job, 0, 0, h)
    assert not await design_hashes.record(conn, job, 0, 0, h)
    assert not await design_hashes.record(conn, job, 0, 0, h ^ 0xFF)
    cur = await conn.execute("SELECT phash FROM design_hashes WHERE job_id = %s", (job,))
    rows = await cur.fetchall()
    assert [from_signed(r[0]) for r in rows] == [h] and rows[0][0] < 0
    found = await design_hashes.similar(conn, h ^ 0b111, 8, exclude=("other", 0))
    assert [(r.job_id, r.image_index, r.generation, r.distance) for r in found] == [(job, 0, 0, 3)]


async def test_a_design_never_resembles_its_own_image_and_only_newest_generations_count(
    conn: AsyncConnection[Any],
) -> None:
    h = 0x0123_4567_89AB_CDEF
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    await design_hashes.record(conn, a, 0, 0, h)
    await design_hashes.record(conn, a, 1, 0, h ^ 1)
    # Job b's image 0 was regenerated into something else: generation 0 no longer counts.
    await design_hashes.record(conn, b, 0, 0, h ^ 0b11)
    await design_hashes.record(conn, b, 0, 1, ~h & (2**64 - 1))

    found = await design_hashes.similar(conn, h, 8, exclude=(a, 0))
    assert [(r.job_id, r.image_index, r.distance) for r in found] == [(a, 1, 1)]
    found = await design_hashes.similar(conn, h, 8, exclude=("new", 0))
    assert [(r.job_id, r.image_index, r.distance) for r in found] == [(a, 0, 0), (a, 1, 1)]
    # Its mirror image's hash is looked up too.
    assert await design_hashes.similar(conn, 0, 8, exclude=("new", 0)) == []
    mirrored = await design_hashes.similar(conn, 0, 8, exclude=("new", 0), mirrored=h ^ 0b101)
    assert [(r.job_id, r.image_index, r.distance) for r in mirrored] == [(a, 1, 1), (a, 0, 2)]


async def test_forgotten_designs_no_longer_count(conn: AsyncConnection[Any]) -> None:
    h = 0x7777_0000_FFFF_1111
    job = f"f-{uuid.uuid4().hex[:8]}"
    for index in range(3):
        await design_hashes.record(conn, job, index, 0, h ^ (1 << index))
    assert await design_hashes.forget(conn, job, 1) == 1
    found = await design_hashes.similar(conn, h, 4, exclude=("new", 0))
    assert [r.image_index for r in found] == [0, 2]
    assert await design_hashes.forget(conn, job) == 2
    assert await design_hashes.similar(conn, h, 15, exclude=("new", 0)) == []


async def test_a_distance_past_the_indexable_range_is_refused(conn: AsyncConnection[Any]) -> None:
    with pytest.raises(ValueError, match="max_distance must be 0-15"):
        await design_hashes.similar(conn, 1, 16, exclude=("new", 0))


async def test_of_two_near_duplicates_screened_at_once_at_least_one_is_flagged(
    database_before: DatabaseBefore,
) -> None:
    pool = await open_pool(database_before(_AFTER), max_size=8)
    try:
        store = design_hashes.PgDesignHashes(pool)
        h = 0x1234_5678_9ABC_DEF0
        for round_ in range(10):
            jobs = [f"race{round_}-{n}" for n in range(4)]
            found = await asyncio.gather(
                *(
                    store.record_and_match(
                        job_id=job, image_index=0, generation=0, phash=h ^ n, max_distance=4
                    )
                    for n, job in enumerate(jobs)
                )
            )
            # The last to look sees every other one: no pair of them both unflagged.
            assert max(len(f) for f in found) == 3, found
            for job, refs in zip(jobs, found, strict=True):
                assert job not in [r.job_id for r in refs]
            last, h = h, (h * 3 + 1) & (2**64 - 1)
        # A redelivery records nothing new and answers with what is there now.
        again = await store.record_and_match(
            job_id="race9-0", image_index=0, generation=0, phash=last, max_distance=4
        )
        assert sorted(r.job_id for r in again) == ["race9-1", "race9-2", "race9-3"]
    finally:
        await pool.close()
