"""bench/scale.py's builder on a small database: real jobs of every shape run through a stack,
cloned into 2,000 jobs over a year, and every clone well-formed (its log, images, products and
publications as many as its counters say, its status and times consistent); the API answers
every read route on it; the fold bench's replay is folded whole by the real monitor."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from bench.scale import SHAPES, STACK_ENV, Recorded, fold_rate, read_cases, run_templates
from bench.scale_build import BuildReport, build
from devstack.stack import Stack
from tests.services.conftest import e2e_stack

JOBS = 2_000


@pytest.fixture(scope="module")
def built() -> Iterator[tuple[Stack, Recorded, BuildReport]]:
    with e2e_stack("scale", env=STACK_ENV) as stack:
        # Fewer shapes than the bench's (a 4-image job takes minutes on a busy machine).
        shapes = [s for s in SHAPES if s[0] <= 2 and len(s[1]) != 2]
        recorded = run_templates(stack, rounds=1, shapes=shapes)
        report = build(stack.database_url, recorded.job_ids, JOBS, batch=700)
        yield stack, recorded, report


def _one(conn: psycopg.Connection, query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_every_clone_is_a_whole_job(built: tuple[Stack, Recorded, BuildReport]) -> None:
    stack, recorded, report = built
    templates = recorded.job_ids
    assert report.rows["jobs"] == JOBS + len(templates)
    with psycopg.connect(stack.database_url) as conn:
        # Each clone's log is its template's (the one of its shape), entry for entry.
        shapes = conn.execute(
            "SELECT image_count, product_types, auto_publish,"
            " (SELECT count(*) FROM job_events e WHERE e.job_id = j.job_id),"
            " job_id = ANY(%s) FROM jobs j",
            (templates,),
        ).fetchall()
        log_of = {(c, tuple(t), p): n for c, t, p, n, template in shapes if template}
        assert len(log_of) == len(templates)
        clones = [(c, tuple(t), p, n) for c, t, p, n, template in shapes if not template]
        assert len(clones) == JOBS
        assert [n for *_, n in clones] == [log_of[c, t, p] for c, t, p, _ in clones]
        clones_sql = "SELECT * FROM jobs WHERE NOT job_id = ANY(%s)"
        # Images, products and publications: as many rows as the job's counters say.
        mismatched = conn.execute(
            f"""
            WITH c AS ({clones_sql})
            SELECT c.job_id, c.image_count, c.images_done,
                   (SELECT count(*) FROM images i WHERE i.job_id = c.job_id),
                   c.products_done + c.products_failed,
                   (SELECT count(*) FROM products p WHERE p.job_id = c.job_id),
                   c.publications_done,
                   (SELECT count(*) FROM publications p WHERE p.job_id = c.job_id
                                                        AND p.state = 'published')
            FROM c
            """.replace("%s", "%(t)s"),
            {"t": templates},
        ).fetchall()
        assert len(mismatched) == JOBS
        for job_id, count, done, images, products, product_rows, published, pub_rows in mismatched:
            assert count == done == images, job_id
            assert products == product_rows, job_id
            assert published == pub_rows, job_id
            assert images >= 1 and products >= 1, job_id
        # Statuses and times consistent: only the newest are in flight, the rest finished.
        bad = conn.execute(
            f"""
            WITH c AS ({clones_sql})
            SELECT count(*) FILTER (WHERE status IN ('queued', 'processing', 'retrying')
                                    AND finished_at IS NOT NULL),
                   count(*) FILTER (WHERE status NOT IN ('queued', 'processing', 'retrying')
                                    AND finished_at IS NULL),
                   count(*) FILTER (WHERE status IN ('failed', 'partial') AND error IS NULL),
                   count(*) FILTER (WHERE finished_at < created_at),
                   count(*) FILTER (WHERE created_at > now())
            FROM c
            """.replace("%s", "%(t)s"),
            {"t": templates},
        ).fetchone()
        assert bad == (0, 0, 0, 0, 0)
        mix: dict[str, int] = dict(
            conn.execute(
                f"WITH c AS ({clones_sql}) SELECT status, count(*) FROM c GROUP BY 1".replace(
                    "%s", "%(t)s"
                ),
                {"t": templates},
            ).fetchall()
        )
        assert mix["completed"] > JOBS * 0.8
        assert mix.get("failed", 0) + mix.get("partial", 0) > 0
        # Spread over the year, the log's times inside each job's life.
        span = _one(conn, "SELECT extract(day FROM max(created_at) - min(created_at)) FROM jobs")
        assert 360 <= float(str(span)) <= 366
        outside = _one(
            conn,
            "SELECT count(*) FROM job_events e JOIN jobs j USING (job_id)"
            " WHERE e.occurred_at < j.created_at - interval '1 minute'",
        )
        assert outside == 0
        # Dead letters (some replayed), alerts, metrics minutes, screening flags.
        assert _one(conn, "SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL") > 0  # type: ignore[operator]
        # The stack's own monitor may have raised a few more.
        assert _one(conn, "SELECT count(*) FROM alerts") >= JOBS // 300  # type: ignore[operator]
        assert _one(conn, "SELECT count(DISTINCT minute) FROM metrics_minute") > 7 * 24 * 60 - 120  # type: ignore[operator]
        assert _one(conn, "SELECT count(*) FROM screening_flags") > 0  # type: ignore[operator]


def test_the_indexes_come_back_whole(built: tuple[Stack, Recorded, BuildReport]) -> None:
    """The builder drops the secondary indexes for the copy: each must come back valid, on
    every partition too (a partitioned index rebuilt "ON ONLY" covers none of them)."""
    stack, _, _ = built
    with psycopg.connect(stack.database_url) as conn:
        invalid = conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
        ).fetchall()
        bare = conn.execute(
            """
            SELECT p.relname || ':' || i.relname
            FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhrelid
            JOIN pg_class t ON t.oid = h.inhparent AND t.relname = 'job_events'
            CROSS JOIN LATERAL (SELECT c.relname FROM pg_index x JOIN pg_class c
                                ON c.oid = x.indexrelid WHERE x.indrelid = t.oid) AS i
            WHERE NOT EXISTS (
                SELECT 1 FROM pg_inherits ih JOIN pg_index px ON px.indexrelid = ih.inhrelid
                WHERE ih.inhparent = (SELECT oid FROM pg_class WHERE relname = i.relname)
                  AND px.indrelid = p.oid)
            """
        ).fetchall()
    assert invalid == [] and bare == []


def test_the_api_answers_every_read_route(built: tuple[Stack, Recorded, BuildReport]) -> None:
    stack, _, _ = built
    base = f"http://127.0.0.1:{stack.settings.api_port}"
    with httpx.Client(base_url=base, timeout=60) as client:
        for case in read_cases(stack):
            resp = client.get(case.path, headers=case.headers)
            assert resp.status_code == 200, (case.label, resp.text[:300])


def test_the_fold_replay_is_folded_whole(built: tuple[Stack, Recorded, BuildReport]) -> None:
    stack, recorded, _ = built
    seconds, entries = fold_rate(stack, recorded, 3)
    assert entries >= 3 * 3  # a request, an image and a product each at least
    assert seconds > 0
