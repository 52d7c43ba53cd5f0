"""Live streams under many clients (real API, real PostgreSQL): caps per key and in total, no
pooled connection held by an idle stream and no query made by one, woken by the commit itself,
and uvicorn's concurrency limit."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.api.state import ApiState
from tests.services.api.conftest import API_KEY, OTHER_KEY, serve_app
from tests.services.api.test_events import Db, read
from tests.support.infra import wait_for


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def db(migrated_db: str) -> Db:
    return Db(migrated_db)


class Streams:
    """Streams held open (headers received, body unread) until closed or the block ends."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self._open: list[contextlib.AbstractContextManager[httpx.Response]] = []

    def open(self, path: str, **kwargs: Any) -> httpx.Response:
        cm = self.api.stream("GET", path, timeout=15, **kwargs)
        resp = cm.__enter__()
        if resp.status_code == 200:
            self._open.append(cm)
        else:
            resp.read()
            cm.__exit__(None, None, None)
        return resp

    def close_one(self) -> None:
        self._open.pop().__exit__(None, None, None)

    def close(self) -> None:
        while self._open:
            self.close_one()


@contextlib.contextmanager
def held(api: httpx.Client) -> Iterator[Streams]:
    streams = Streams(api)
    try:
        yield streams
    finally:
        streams.close()


def _state(app: Any) -> ApiState:
    state: ApiState = app.state.api
    return state


def test_streams_are_capped_per_key_and_in_total(pipeline_topics: str, migrated_db: str) -> None:
    with (
        serve_app(
            kafka_bootstrap_servers=pipeline_topics,
            database_url=migrated_db,
            api_keys=f"{API_KEY},{OTHER_KEY}",
            sse_max_streams=3,
            sse_max_streams_per_caller=2,
        ) as (api, app),
        held(api) as streams,
    ):
        assert streams.open("/events", headers=bearer(API_KEY)).status_code == 200
        assert streams.open("/events", headers=bearer(API_KEY)).status_code == 200
        mine = streams.open("/events", headers=bearer(API_KEY))
        assert mine.status_code == 429
        assert int(mine.headers["Retry-After"]) > 0
        assert mine.json()["error"] == "too_many_streams"
        assert "per caller" in mine.json()["detail"]

        assert streams.open("/events", headers=bearer(OTHER_KEY)).status_code == 200
        everyone = streams.open("/jobs/any/events", headers=bearer(OTHER_KEY))
        assert everyone.status_code == 429  # the process's cap, before the job is looked up
        assert "SSE_MAX_STREAMS" in everyone.json()["detail"]
        # An unknown key learns nothing about the caps.
        assert streams.open("/events", headers=bearer("nope")).status_code == 401
        assert _state(app).streams.open == 3

        # A stream that ends gives its slot back.
        streams.close_one()
        wait_for(lambda: _state(app).streams.open == 2, 10, "the closed stream's slot back")
        assert streams.open("/events", headers=bearer(OTHER_KEY)).status_code == 200


def test_idle_streams_hold_no_connection_and_make_no_query(
    pipeline_topics: str, migrated_db: str, db: Db
) -> None:
    """Twelve streams on a pool of two: they wait on the feed, not on the table."""
    job_id = db.job()
    with (
        serve_app(
            kafka_bootstrap_servers=pipeline_topics,
            database_url=migrated_db,
            db_pool_max=2,
            db_acquire_timeout_s=2,
        ) as (api, app),
        held(api) as streams,
    ):
        state = _state(app)
        for _ in range(8):
            assert streams.open("/events").status_code == 200
        for _ in range(4):
            assert streams.open(f"/jobs/{job_id}/events").status_code == 200
        wait_for(lambda: state.feed.listening, 10, "the feed to listen")
        wait_for(lambda: state.feed.waiting == 12, 10, "every stream waiting on the feed")

        before = state.pool.get_stats()["requests_num"]
        window_s = 2.0  # four polls' worth at the old EVENTS_POLL_S of 0.5 s
        time.sleep(window_s)
        idle_requests = state.pool.get_stats()["requests_num"] - before
        assert idle_requests == 0, f"{idle_requests} pool requests by idle streams"

        # An exhausted pool would answer 503 after DB_ACQUIRE_TIMEOUT_S.
        answer = api.get(f"/jobs/{job_id}")
        assert answer.status_code == 200, answer.text


def test_a_commit_wakes_the_streams_without_polling(
    pipeline_topics: str, migrated_db: str, db: Db
) -> None:
    """With polls minutes apart, an entry and the job's end still arrive at once."""
    job_id = db.job()
    with serve_app(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        events_poll_s=60,
        events_recheck_s=600,
    ) as (api, app):
        state = _state(app)
        wait_for(lambda: state.feed.listening, 10, "the feed to listen")
        live: list[dict[str, Any]] = []
        everyone: list[dict[str, Any]] = []
        readers = [
            threading.Thread(
                target=lambda: read(api, f"/jobs/{job_id}/events", 10, live), daemon=True
            ),
            threading.Thread(target=lambda: read(api, "/events", 1, everyone), daemon=True),
        ]
        for reader in readers:
            reader.start()
        wait_for(lambda: state.feed.waiting == 2, 10, "both streams waiting")
        started = time.monotonic()
        db.log(job_id, "image.generated")
        wait_for(lambda: live and everyone, 5, "the entry on both streams")
        db.end(job_id)
        for reader in readers:
            reader.join(5)
            assert not reader.is_alive(), "the job's end did not reach its stream"
        took = time.monotonic() - started
        assert [e["event"] for e in live] == ["image.generated", "end"]
        assert everyone[0]["data"]["jobId"] == job_id
        assert took < 5, f"{took:.1f}s"


def test_the_feed_comes_back_after_its_connection_is_cut(
    pipeline_topics: str, migrated_db: str, db: Db
) -> None:
    job_id = db.job()
    with serve_app(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        events_recheck_s=600,
    ) as (api, app):
        state = _state(app)
        wait_for(lambda: state.feed.listening, 10, "the feed to listen")

        async def cut(conn: Any) -> Any:
            cur = await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN pod_job_events%%'"
            )
            return await cur.fetchall()

        assert db.run(cut), "no listening backend found"
        live: list[dict[str, Any]] = []
        reader = threading.Thread(
            target=lambda: read(api, f"/jobs/{job_id}/events", 10, live), daemon=True
        )
        reader.start()
        db.log(job_id, "image.generated")
        wait_for(lambda: state.feed.listening, 10, "the feed to listen again")
        db.end(job_id)
        reader.join(15)
        assert not reader.is_alive()
        assert [e["event"] for e in live] == ["image.generated", "end"]


def test_past_the_concurrency_limit_new_requests_get_503(
    pipeline_topics: str, migrated_db: str
) -> None:
    with (
        serve_app(
            kafka_bootstrap_servers=pipeline_topics,
            database_url=migrated_db,
            sse_max_streams=3,
            sse_max_streams_per_caller=3,
            api_limit_concurrency=5,
        ) as (api, _),
        held(api) as streams,
    ):
        for _ in range(3):
            assert streams.open("/events").status_code == 200
        # Three streams and this client's keep-alive connection: one more gets in ...
        assert api.get("/health/live").status_code == 200
        # ... and the sixth connection is turned away at once.
        with httpx.Client(base_url=str(api.base_url), timeout=5) as other:
            refused = other.get("/health/live")
        assert refused.status_code == 503
