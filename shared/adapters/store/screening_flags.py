"""Screening as it happened (migration 0036): ``image_screenings``, one row per screened image
generation (its decision and the Claude tokens its risk review cost), and ``screening_flags``,
one row per (job, image, generation, check) that found something. The monitor's fold writes both
from ``image.generated`` (the first event of a generation wins, so a redelivery adds nothing);
the job's cost and the dashboard read them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from shared.contract.events import ImageGenerated
from shared.domain.screening import explain

_SCREENED = """
INSERT INTO image_screenings (job_id, image_index, generation, decision, screened_at,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
VALUES (%(job)s, %(index)s, %(generation)s, %(decision)s, %(at)s, %(input)s, %(output)s,
    %(cache_read)s, %(cache_write)s)
ON CONFLICT (job_id, image_index, generation) DO NOTHING
"""

_FLAGS = """
INSERT INTO screening_flags (job_id, image_index, generation, "check", outcome, flagged_at)
SELECT %(job)s, %(index)s, %(generation)s, f.check, f.outcome, %(at)s
FROM unnest(%(checks)s::text[], %(outcomes)s::text[]) AS f("check", outcome)
ON CONFLICT (job_id, image_index, generation, "check") DO NOTHING
"""

# A range of the index on flagged_at; days in UTC. The per-day counts as JSON built by
# PostgreSQL: a year is up to 366 x 5 checks x 3 outcomes rows, and making a Python object of
# each cost 20-70 ms where the query takes 7 (issue 30).
_PER_DAY = """
WITH c AS (
    SELECT (flagged_at AT TIME ZONE 'UTC')::date AS day, "check", outcome,
        count(*)::int AS flagged
    FROM screening_flags
    WHERE flagged_at >= %(since)s::date AT TIME ZONE 'UTC'
    GROUP BY 1, 2, 3
)
SELECT
    COALESCE((SELECT json_agg(json_build_object('day', day, 'check', "check",
        'outcome', outcome, 'flagged', flagged) ORDER BY day DESC, "check", outcome)
        FROM c), '[]'::json)::text,
    COALESCE((SELECT json_object_agg("check", n ORDER BY "check")
        FROM (SELECT "check", sum(flagged)::int AS n FROM c GROUP BY 1) b), '{}'::json)::text
"""

_TOKENS = """
SELECT COALESCE(sum(input_tokens), 0)::bigint, COALESCE(sum(output_tokens), 0)::bigint,
    COALESCE(sum(cache_read_tokens), 0)::bigint, COALESCE(sum(cache_write_tokens), 0)::bigint,
    count(*)::int
FROM image_screenings WHERE job_id = %(job)s
"""


@dataclass(frozen=True)
class FlaggedDays:
    """Images flagged per day (UTC), check and outcome, as JSON: ``flags`` a list of
    ``{day, check, outcome, flagged}``, the newest day first; ``by_check`` an object of each
    check's total over those days."""

    flags: str
    by_check: str


@dataclass(frozen=True)
class ScreeningTokens:
    """What a job's risk reviews cost in Claude tokens, over every image generation screened."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    screened: int


async def record(conn: AsyncConnection[Any], event: ImageGenerated) -> None:
    """(The fold) The image's screening, and each check that flagged it; nothing for an image
    from before screening. A redelivered event of a generation changes nothing."""
    p = event.payload
    s = p.screening
    if s is None:
        return
    key = {"job": event.job_id, "index": p.image_index, "generation": p.generation}
    t = s.tokens
    await conn.execute(
        _SCREENED,
        {
            **key,
            "decision": s.decision.value,
            "at": event.occurred_at,
            "input": t.input if t else 0,
            "output": t.output if t else 0,
            "cache_read": t.cache_read if t else 0,
            "cache_write": t.cache_write if t else 0,
        },
    )
    flags = explain.flagged(s)
    if flags:
        await conn.execute(
            _FLAGS,
            {
                **key,
                "at": event.occurred_at,
                "checks": [c.value for c in flags],
                "outcomes": [o.value for o in flags.values()],
            },
        )


async def per_day(pool: AsyncConnectionPool, since: date) -> FlaggedDays:
    """Images flagged per day (UTC) since ``since``, per check and outcome."""
    async with pool.connection() as conn:
        cur = await conn.execute(_PER_DAY, {"since": since})
        row = await cur.fetchone()
    assert row is not None  # aggregates without GROUP BY always have their row
    return FlaggedDays(flags=str(row[0]), by_check=str(row[1]))


async def tokens_of_job(conn: AsyncConnection[Any], job_id: str) -> ScreeningTokens:
    """The Claude tokens of every screening of the job's images."""
    cur = await conn.execute(_TOKENS, {"job": job_id})
    row = await cur.fetchone()
    assert row is not None  # an aggregate without GROUP BY always has its row
    return ScreeningTokens(*(int(v) for v in row))
