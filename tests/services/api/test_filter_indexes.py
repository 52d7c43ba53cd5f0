"""Every filter of the read routes is served by an index: ``/jobs?q=`` (the id's start, words of
the text) and ``/events?type=`` / ``?level=``. Shown by the planner on a database with enough
rows that a sequential scan would be its choice if no index applied."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from services.api.queries import (
    BITMAPS_ONLY,
    MAX_PREFIX_WORDS,
    MAX_SEARCH_MATCHES,
    SEARCH_RECENT,
    Listing,
    SearchTooBroad,
    list_jobs,
    search_of,
)
from services.monitor.alerts import _FAILED_JOBS, _JOB_OUTCOMES
from shared.adapters.store import job_events
from tests.services.api.conftest import serve
from tests.support.infra import migrated_database

JOBS = 40_000
EVENTS = 200_000


@pytest.fixture(scope="module")
def big_db(database_url: str) -> Iterator[str]:
    """A database of its own (migrated) with many jobs and events, analysed."""
    with migrated_database(database_url, "pod_filters") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO jobs (job_id, theme, style, niche, prompt, product_types,"
                " image_count, expected_products, expected_publications, created_at,"
                " finished_at, status)"
                " SELECT 'job-' || lpad(i::text, 6, '0'), 'theme ' || (i %% 500), 'flat',"
                " 'niche' || (i %% 97), 'a prompt about thing' || i"
                # A word on every job older than the newest 20,000: common long ago, never since.
                " || CASE WHEN i > 20000 THEN ' vintage' ELSE '' END, ARRAY['tshirt'], 1, 1, 0,"
                # A job a minute: 28 days, so that the search looks back over its windows.
                " now() - i * interval '1 minute',"
                # The newest hundred queued, the others finished, one every 30 s as in a busy
                # shop (the alerts' 15-minute window holds ~30), one in 25 failed.
                " CASE WHEN i > 100 THEN now() - i * interval '30 seconds' END,"
                " CASE WHEN i <= 100 THEN 'queued' WHEN i %% 25 = 0 THEN 'failed'"
                " ELSE 'completed' END"
                " FROM generate_series(1, %s) AS i",
                (JOBS,),
            )
            conn.execute(
                "INSERT INTO job_events (event_id, job_id, type, level, message, producer,"
                " occurred_at) SELECT gen_random_uuid(), 'job-' || lpad((i %% %s + 1)::text,"
                " 6, '0'),"
                " (ARRAY['image.generated', 'product.created', 'stage.progress'])[i %% 3 + 1],"
                " CASE WHEN i %% 1000 = 0 THEN 'error' ELSE 'info' END, 'm', 'test', now()"
                " FROM generate_series(1, %s) AS i",
                (JOBS, EVENTS),
            )
            conn.execute(
                "INSERT INTO job_events (event_id, job_id, type, level, message, producer,"
                " occurred_at) VALUES (gen_random_uuid(), 'job-000001', 'rare.type', 'warning',"
                " 'm', 'test', now())"
            )
            conn.execute("ANALYZE jobs")
            conn.execute("ANALYZE job_events")
        yield url


def _plan(url: str, sql: str, params: dict[str, Any], *, bitmaps_only: bool = False) -> str:
    with psycopg.connect(url) as conn:
        if bitmaps_only:
            conn.execute(BITMAPS_ONLY)
        rows = conn.execute("EXPLAIN " + sql, params).fetchall()
    return "\n".join(str(r[0]) for r in rows)


async def _statements(url: str, q: str) -> list[tuple[str, dict[str, Any]]]:
    """The search's statements: step 1 (the newest jobs), where it stopped, step 2 (older)."""
    listing = Listing(None, 21, None)
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.cursor() as cur:
        search = await search_of(cur, q)
        await cur.execute(*search.boundary(listing))
        boundary = await cur.fetchone()
        assert boundary is not None
        older = search.older(listing, (boundary[0], boundary[1]), 21)
        return [search.recent(listing), search.boundary(listing), older]


def _found(url: str, q: str, status: str | None = None, limit: int = 21) -> list[str]:
    async def run() -> list[str]:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            rows = await list_jobs(pool, status=status, limit=limit, after=None, q=q)
            return [r.job_id for r in rows]

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("q", "index"),
    [
        ("job-0123", "jobs_id_prefix_idx"),  # an id's start
        ("thing1234", "jobs_search_doc_idx"),  # a word of the prompt
        ("thing4", "jobs_search_doc_idx"),  # a prefix of more words than are listed
        ("nothing-matches-this", "jobs_search_doc_idx"),
        ("%_", "jobs_id_prefix_idx"),  # no word at all: the id's start only
    ],
)
def test_the_job_search_uses_its_indexes(big_db: str, q: str, index: str) -> None:
    recent, boundary, older = asyncio.run(_statements(big_db, q))
    for sql, params in (recent, boundary):  # the newest jobs, newest first
        plan = _plan(big_db, sql, params)
        assert "jobs_keyset_idx" in plan, plan
        assert "Seq Scan" not in plan, plan
    plan = _plan(big_db, *older, bitmaps_only=True)
    assert index in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "jobs_keyset_idx" not in plan, plan


def test_the_job_search_finds_by_word_start_and_id_start(big_db: str) -> None:
    assert SEARCH_RECENT < 12340  # so that both steps are exercised
    assert _found(big_db, "thing12345") == ["job-012345"]
    # Every word a prefix (newest first: the smaller i, the newer the job): 1234 among the
    # newest jobs, the others older.
    assert _found(big_db, "THING1234") == [f"job-{i:06d}" for i in [1234, *range(12340, 12350)]]
    assert _found(big_db, "job-00000") == [f"job-{i:06d}" for i in range(1, 10)]
    # A prefix of more words than the search lists (thing4, thing40..., thing4000...).
    fours = [i for i in range(1, JOBS + 1) if str(i).startswith("4")]
    assert len(fours) > MAX_PREFIX_WORDS
    assert _found(big_db, "thing4") == [f"job-{i:06d}" for i in fours[:21]]
    # Across the newest jobs (i <= SEARCH_RECENT), the week before them and what is older,
    # newest first, and never more than asked for.
    fifteens = [i for i in range(1, JOBS + 1) if str(i).startswith("15")]
    assert fifteens[199] > SEARCH_RECENT + 7 * 24 * 60  # the page ends past the first week
    assert _found(big_db, "thing15", limit=200) == [f"job-{i:06d}" for i in fifteens[:200]]
    # Several words: all of them, in any of the fields.
    both = [
        i for i in range(1, JOBS + 1) if str(i % 97).startswith("5") and str(i).startswith("40")
    ]
    assert _found(big_db, "niche5 thing40") == [f"job-{i:06d}" for i in both[:21]]
    assert _found(big_db, "nothing-matches-this") == []
    # With a status: the newest hundred jobs are queued, one in 25 of the others failed.
    assert _found(big_db, "thing1234", status="queued") == []
    assert _found(big_db, "thing1234", status="completed", limit=3) == [
        f"job-{i:06d}" for i in [1234, 12340, 12341]
    ]
    assert _found(big_db, "thing125", status="failed") == [
        f"job-{i:06d}" for i in [125, 1250, 12500, 12525, 12550, 12575]
    ]
    assert _found(big_db, "thing", status="queued", limit=200) == [
        f"job-{i:06d}" for i in range(1, 101)
    ]


def test_a_new_word_is_found_from_the_transaction_that_wrote_it(big_db: str) -> None:
    """The words each prefix stands for (search_words) follow the jobs: a job's new word, at
    its insert or when its prompt is written, is found by its start at once."""
    with psycopg.connect(big_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, theme, style, niche, product_types, image_count,"
            " expected_products, expected_publications, created_at) VALUES ('job-new-1',"
            " 'quokkas', 'flat', 'zoo', ARRAY['tshirt'], 1, 1, 0, now() - interval '1 year')"
        )
        try:
            assert _found(big_db, "quokk") == ["job-new-1"]
            conn.execute("UPDATE jobs SET prompt = 'a narwhalesque sea' WHERE job_id = 'job-new-1'")
            assert _found(big_db, "narwhal") == ["job-new-1"]
        finally:
            conn.execute("DELETE FROM jobs WHERE job_id = 'job-new-1'")


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"types": ["rare.type"]}, "job_events_type_xid_seq_idx"),
        ({"level": "warning"}, "job_events_level_xid_seq_idx"),
    ],
)
def test_event_filters_use_their_indexes(big_db: str, filters: dict[str, Any], index: str) -> None:
    """The stream's own query (shared.adapters.store.job_events.final_after): the index's scan
    counter moves, and the rare row is found from the start of the log."""

    async def run() -> tuple[int, list[job_events.LogRow]]:
        async with await psycopg.AsyncConnection.connect(big_db, autocommit=True) as conn:
            # Counters read fresh each time, not from a snapshot taken at the first read.
            await conn.execute("SET stats_fetch_consistency = none")
            before = await _scans(conn, index)
            page = await job_events.final_after(conn, job_events.START, **filters)
            return (await _scans(conn, index)) - before, page.rows

    scans, rows = asyncio.run(run())
    assert [r["job_id"] for r in rows] == ["job-000001"]
    assert scans >= 1, f"{index} not used"


async def _scans(conn: psycopg.AsyncConnection[Any], index: str) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    # A partitioned table's index (job_events, migration 0039) counts its scans in its
    # partitions' indexes.
    cur = await conn.execute(
        "SELECT sum(idx_scan) FROM pg_stat_user_indexes"
        " WHERE indexrelid IN (SELECT relid FROM pg_partition_tree(%s::regclass))",
        (index,),
    )
    row = await cur.fetchone()
    assert row is not None and row[0] is not None, index
    return int(row[0])


def test_the_scratch_database_is_not_the_sessions(big_db: str, database_url: str) -> None:
    assert conninfo_to_dict(big_db)["dbname"] != conninfo_to_dict(database_url).get("dbname")


def test_a_search_matching_too_many_jobs_is_refused_with_the_reason(
    big_db: str, pipeline_topics: str
) -> None:
    # A word on every job is answered from the newest ones ...
    assert _found(big_db, "theme") == [f"job-{i:06d}" for i in range(1, 22)]
    # ... one on none of the newest and more than the cap of the older ones is refused.
    with pytest.raises(SearchTooBroad):
        _found(big_db, "vintage")
    with serve(kafka_bootstrap_servers=pipeline_topics, database_url=big_db) as api:
        resp = api.get("/jobs", params={"q": "vintag"})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] == "search_too_broad"
        assert resp.json()["detail"][0]["field"] == "q"
        assert f"more than {MAX_SEARCH_MATCHES}" in resp.json()["detail"][0]["message"]
        # Narrowed by another word, it is answered (after the newest jobs, from the index).
        narrowed = api.get("/jobs", params={"q": "vintage thing2000", "limit": 3})
        assert narrowed.status_code == 200, narrowed.text
        assert [j["jobId"] for j in narrowed.json()["jobs"]] == [
            f"job-{i:06d}" for i in (20001, 20002, 20003)
        ]
        page = api.get("/jobs", params={"q": "thing1234", "limit": 5})
        assert page.status_code == 200, page.text
        assert [j["jobId"] for j in page.json()["jobs"]] == [
            f"job-{i:06d}" for i in [1234, 12340, 12341, 12342, 12343]
        ]
        rest = api.get("/jobs", params={"q": "thing1234", "cursor": page.json()["nextCursor"]})
        assert [j["jobId"] for j in rest.json()["jobs"]] == [
            f"job-{i:06d}" for i in range(12344, 12350)
        ]


@pytest.mark.parametrize("sql", [_FAILED_JOBS, _JOB_OUTCOMES], ids=["failed jobs", "outcomes"])
def test_the_alerts_read_the_jobs_finished_in_their_window_by_index(big_db: str, sql: str) -> None:
    """The monitor asks these every ALERT_INTERVAL_S: without jobs_finished_idx each read all
    of `jobs` (410 ms at a million jobs)."""
    with psycopg.connect(big_db) as conn:
        now = conn.execute("SELECT now()").fetchone()
        assert now is not None
        params = {"since": now[0] - timedelta(minutes=15), "now": now[0], "limit": 50}
    plan = _plan(big_db, sql, params)
    assert "jobs_finished_idx" in plan, plan
    assert "Seq Scan" not in plan, plan
