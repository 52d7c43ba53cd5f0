"""The screening tables' reads (migration 0036), on a database of their own: flags counted per
day, check and outcome from a range of their index (never every image's JSON, never the whole
table), the days in UTC."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from shared.adapters.store import screening_flags
from shared.platform.db import open_pool
from tests.shared.adapters.store.conftest import DatabaseBefore

FLAGS = 200_000


@pytest.fixture
def screening_db(database_before: DatabaseBefore) -> str:
    return database_before(37)


async def test_flags_are_counted_per_utc_day_check_and_outcome(screening_db: str) -> None:
    day = date(2026, 11, 20)
    at = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    with psycopg.connect(screening_db, autocommit=True) as conn:
        for job, index, check, outcome, when in (
            ("a", 0, "deny_list", "block", at),
            ("a", 1, "deny_list", "block", at),
            ("a", 1, "near_duplicate", "review", at),
            ("b", 0, "deny_list", "review", at + timedelta(hours=1)),  # the next UTC day
            ("c", 0, "unsafe_image", "review", at - timedelta(days=30)),  # before the window
        ):
            conn.execute(
                'INSERT INTO screening_flags (job_id, image_index, generation, "check",'
                " outcome, flagged_at) VALUES (%s, %s, 0, %s, %s, %s)",
                (job, index, check, outcome, when),
            )
    pool = await open_pool(screening_db, max_size=1)
    try:
        counted = await screening_flags.per_day(pool, day - timedelta(days=6))
    finally:
        await pool.close()
    assert [
        (r["day"], r["check"], r["outcome"], r["flagged"]) for r in json.loads(counted.flags)
    ] == [
        ((day + timedelta(days=1)).isoformat(), "deny_list", "review", 1),
        (day.isoformat(), "deny_list", "block", 2),
        (day.isoformat(), "near_duplicate", "review", 1),
    ]
    assert json.loads(counted.by_check) == {"deny_list": 3, "near_duplicate": 1}


def test_a_weeks_flags_are_read_by_their_index(screening_db: str) -> None:
    with psycopg.connect(screening_db, autocommit=True) as conn:
        # Two years of flags, a few hundred a day.
        conn.execute(
            'INSERT INTO screening_flags (job_id, image_index, generation, "check", outcome,'
            " flagged_at) SELECT 'job-' || i, 0, 0,"
            " (ARRAY['deny_list', 'risk_review', 'rendered_text', 'near_duplicate',"
            " 'unsafe_image'])[i %% 5 + 1], (ARRAY['block', 'review', 'allow'])[i %% 3 + 1],"
            " now() - (i %% 730) * interval '1 day' FROM generate_series(1, %s) AS i",
            (FLAGS,),
        )
        conn.execute("ANALYZE screening_flags")
        since = datetime.now(UTC).date() - timedelta(days=6)
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "EXPLAIN " + screening_flags._PER_DAY, {"since": since}
            ).fetchall()
        )
    assert "screening_flags_day_idx" in plan, plan
    assert "Seq Scan" not in plan, plan
