"""``/dlq`` against the real broker and database: listing, filters, pages, and replays.

Dead letters are seeded the way production records them: DLQ records parsed by the monitor's
``parse_record`` and folded by its ``Folder``. Replayed copies are read back from Kafka.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import Message
from psycopg_pool import AsyncConnectionPool

from services.monitor.dlq import parse_record
from services.monitor.fold import Folder
from shared.contract.events import (
    EVENT_TYPES,
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    JobRouting,
    PriceSummary,
    Priority,
    ProductCreated,
    ProductCreatedPayload,
    ProductType,
    StageFailed,
    StageFailedPayload,
)
from shared.contract.topics import CONTROL, GENERATOR, PRINTIFY, PUBLISHER
from shared.platform.db import open_pool
from tests.support.events import image
from tests.support.infra import read_topic, unique
from tests.support.kafka import end_offsets

NORMAL = "jobs.requested.normal"

Headers = list[tuple[str, str | bytes | None]]
# Synthetic DLQ records get offsets nothing else in the session uses.
_offsets = iter(range(random.randrange(3 * 10**12, 4 * 10**12), 5 * 10**12))
_T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

VIEW_FIELDS = {
    "id",
    "stage",
    "jobId",
    "errorClass",
    "message",
    "retryable",
    "topic",
    "partition",
    "offset",
    "originalTopic",
    "replayTo",
    "failedAt",
    "replayedAt",
    "replayCount",
}


class Seeder:
    """Folds jobs and DLQ records into the database as the monitor would."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.folder = Folder(pool)

    async def job(self, priority: Priority = Priority.NORMAL) -> JobRequested:
        job = JobRequested(
            job_id=unique("dlqapi"),
            producer="api",
            attempt=2,
            payload=JobRequestedPayload(
                theme="t",
                style="s",
                niche="n",
                product_types=["tshirt", "hoodie"],
                count=1,
                priority=priority,
            ),
        )
        await self.folder.fold(job, f"jobs.requested.{priority.value}", 0, 0)
        return job

    async def letter(
        self,
        dlq: str,
        value: bytes,
        *,
        key: str | None,
        headers: Headers | None = None,
    ) -> int:
        """Fold one DLQ record; return its dead letter's id."""
        msg = Message(
            topic=dlq,
            partition=0,
            offset=next(_offsets),
            key=key.encode() if key else None,
            value=value,
            headers=headers or [],
            timestamp=(1, 1_800_000_000_000),
        )
        await self.folder.fold(parse_record(msg, EVENT_TYPES), dlq, 0, msg.offset() or 0)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM dead_letters WHERE topic = %s AND kafka_partition = 0"
                " AND kafka_offset = %s",
                (dlq, msg.offset()),
            )
            row = await cur.fetchone()
        assert row is not None, "the fold did not record the dead letter"
        return int(row[0])

    async def raw(
        self,
        dlq: str,
        value: bytes,
        *,
        key: str | None,
        stage: str,
        source: str,
        error: str = "PermanentError",
        failed_at: datetime = _T0,
    ) -> int:
        """A record as the runner dead-letters it: the original value, the reason in headers."""
        headers: Headers = [
            ("pod.error.class", error.encode()),
            ("pod.error.message", f"{stage} gave up".encode()),
            ("pod.error.retryable", b"false"),
            ("pod.original.topic", source.encode()),
            ("pod.original.partition", b"0"),
            ("pod.original.offset", b"12"),
            ("pod.stage", stage.encode()),
            ("pod.failed.at", failed_at.isoformat().encode()),
        ]
        return await self.letter(dlq, value, key=key, headers=headers)

    async def report(self, job: JobRequested, product_type: str) -> tuple[int, ImageGenerated]:
        """What the printify stage puts on its DLQ for one failed type; (id, narrowed input)."""
        image = image_of(job)
        narrowed = image.model_copy(
            update={
                "attempt": 1,
                "payload": image.payload.model_copy(
                    update={
                        "routing": image.payload.routing.model_copy(
                            update={"product_types": [ProductType(product_type)]}
                        )
                    }
                ),
            }
        )
        report = image.derive(
            StageFailed,
            StageFailedPayload(
                stage="printify",
                error_class="PermanentError",
                message="no such blueprint",
                image_index=0,
                product_type=ProductType(product_type),
                input_topic="images.generated.retry.1",
                input_event=narrowed.model_dump(mode="json"),
            ),
            producer="printify",
            key=f"failed:{product_type}",
        )
        dead_id = await self.letter(PRINTIFY.dlq, report.to_json(), key=job.job_id)
        return dead_id, narrowed


def image_of(job: JobRequested) -> ImageGenerated:
    return image(job).model_copy(update={"attempt": 2})


def product_of(job: JobRequested, product_type: str) -> ProductCreated:
    return job.derive(
        ProductCreated,
        ProductCreatedPayload(
            image_index=0,
            product_type=ProductType(product_type),
            product_id=f"p-{product_type}",
            shop_id="1",
            blueprint_id=5,
            print_provider_id=1,
            variant_count=3,
            title="T",
            routing=JobRouting(product_types=[ProductType(product_type)]),
            prices=PriceSummary(price_min_cents=1999),
        ),
        producer="printify",
        key=f"product:{product_type}",
    )


@pytest.fixture
async def seed(migrated_db: str) -> AsyncIterator[Seeder]:
    pool = await open_pool(migrated_db, max_size=4)
    yield Seeder(pool)
    await pool.close()


def header(msg: Message, name: str) -> str | None:
    pairs: list[tuple[str, bytes | None]] = list(msg.headers() or [])  # type: ignore[arg-type]
    for key, value in pairs:
        if key == name:
            return value.decode() if value else ""
    return None


def copies(bootstrap: str, topic: str, coordinates: str, count: int = 1) -> list[Message]:
    """The replayed copies of one dead letter on ``topic`` (fails unless ``count`` arrive)."""

    def mine(msgs: list[Message]) -> list[Message]:
        return [m for m in msgs if header(m, "pod.replay.of") == coordinates]

    found = read_topic(bootstrap, topic, until=lambda msgs: len(mine(msgs)) >= count)
    return mine(found)


def letters(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    resp = api.get("/dlq", params={"limit": 100, **params})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["nextCursor"] is None, "expected a single page"
    return list(body["deadLetters"])


def coordinates_of(view: dict[str, Any]) -> str:
    return f"{view['topic']}:{view['partition']}:{view['offset']}"


def problems(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "validation_failed"
    return {p["field"]: p["message"] for p in body["detail"]}


# ---------------------------------------------------------------------------------- listing


async def test_list_filters_and_pages(api: httpx.Client, seed: Seeder) -> None:
    job = await seed.job()
    rare, other = unique("RareError"), unique("OtherError")
    value = image_of(job).to_json()
    ids = [
        await seed.raw(
            PRINTIFY.dlq,
            value,
            key=job.job_id,
            stage="printify",
            source="images.generated",
            error=rare if i < 2 else other,
            failed_at=_T0 + timedelta(minutes=i),
        )
        for i in range(5)
    ]
    gen_id = await seed.raw(
        GENERATOR.dlq,
        job.to_json(),
        key=job.job_id,
        stage="generator",
        source="jobs.requested.normal",
        failed_at=_T0 - timedelta(hours=1),
    )
    newest_first = [*reversed(ids), gen_id]

    # Pages of two, newest first, until nextCursor runs out.
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"jobId": job.job_id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = api.get("/dlq", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages += 1
        assert len(body["deadLetters"]) <= 2
        seen += [d["id"] for d in body["deadLetters"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == newest_first and pages == 3

    [gen] = letters(api, jobId=job.job_id, stage="generator")
    assert set(gen) == VIEW_FIELDS
    assert gen["id"] == gen_id
    assert (gen["stage"], gen["jobId"], gen["errorClass"]) == (
        "generator",
        job.job_id,
        "PermanentError",
    )
    assert (gen["message"], gen["retryable"], gen["topic"]) == (
        "generator gave up",
        False,
        GENERATOR.dlq,
    )
    assert gen["originalTopic"] == "jobs.requested.normal"
    assert gen["replayTo"] == "jobs.requested.normal"
    assert gen["replayedAt"] is None and gen["replayCount"] == 0
    assert datetime.fromisoformat(gen["failedAt"]) == _T0 - timedelta(hours=1)

    assert [d["id"] for d in letters(api, errorClass=rare)] == [ids[1], ids[0]]
    printify = letters(api, stage="printify", jobId=job.job_id)
    assert [d["id"] for d in printify] == list(reversed(ids))
    assert all(d["stage"] == "printify" for d in letters(api, stage="printify"))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stage": "api"}, "stage"),
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"jobId": ""}, "jobId"),
        ({"errorClass": ""}, "errorClass"),
    ],
)
def test_list_rejects_bad_filters(api: httpx.Client, params: dict[str, Any], field: str) -> None:
    assert field in problems(api.get("/dlq", params=params))


async def test_list_rejects_a_cursor_of_another_kind(api: httpx.Client, seed: Seeder) -> None:
    await seed.job(), await seed.job()
    # A well-formed cursor of GET /jobs (its position is a job id, not a dead letter id).
    jobs_cursor = api.get("/jobs", params={"limit": 1}).json()["nextCursor"]
    assert jobs_cursor is not None
    problems_found = problems(api.get("/dlq", params={"cursor": jobs_cursor}))
    assert problems_found == {"cursor": "is not a valid page cursor"}


# ---------------------------------------------------------------------------------- replay


async def test_replay_one_letter(api: httpx.Client, seed: Seeder, pipeline_topics: str) -> None:
    job = await seed.job(Priority.HIGH)
    dead_id = await seed.raw(
        GENERATOR.dlq,
        job.to_json(),
        key=job.job_id,
        stage="generator",
        source="jobs.requested.retry.2",
    )
    resp = api.post("/dlq/replay", json={"id": dead_id})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    targets = body.pop("targets")
    assert body == {"replayed": 1, "ids": [dead_id], "skipped": []}

    [view] = letters(api, jobId=job.job_id)
    assert targets == [
        {
            "id": dead_id,
            "jobId": job.job_id,
            "deadLetter": coordinates_of(view),
            "replayTo": "jobs.requested.high",
        }
    ]
    assert view["replayCount"] == 1 and view["replayedAt"] is not None
    # A retry topic is not a replay target: the job goes back onto its priority's topic.
    [copy] = copies(pipeline_topics, "jobs.requested.high", coordinates_of(view))
    assert copy.key() == job.job_id.encode()
    assert header(copy, "pod.replay") == "true"
    sent = json.loads(copy.value() or b"")
    assert sent["attempt"] == 0 and job.attempt == 2
    assert sent["event_id"] == str(job.event_id)
    assert sent["payload"] == job.payload.model_dump(mode="json")

    # Replayed already: without includeReplayed nothing happens.
    again = api.post("/dlq/replay", json={"id": dead_id})
    assert again.status_code == 202, again.text
    assert again.json() == {"replayed": 0, "ids": [], "skipped": [], "targets": []}
    assert letters(api, jobId=job.job_id)[0]["replayCount"] == 1

    forced = api.post("/dlq/replay", json={"id": dead_id, "includeReplayed": True})
    assert forced.status_code == 202, forced.text
    assert forced.json()["ids"] == [dead_id]
    assert letters(api, jobId=job.job_id)[0]["replayCount"] == 2
    assert len(copies(pipeline_topics, "jobs.requested.high", coordinates_of(view), 2)) == 2

    # The job's log shows each replay.
    detail = api.get(f"/jobs/{job.job_id}")
    assert detail.status_code == 200, detail.text
    markers = [e for e in detail.json()["logs"] if e["type"] == "dlq.replayed"]
    assert [m["message"] for m in markers] == [
        f"replayed from {GENERATOR.dlq} (dead letter {dead_id})"
    ] * 2
    assert all(m["level"] == "info" for m in markers)
    assert [m["data"]["replay_count"] for m in markers] == [1, 2]


async def test_replay_a_job(api: httpx.Client, seed: Seeder, pipeline_topics: str) -> None:
    job = await seed.job()
    hoodie_id, hoodie_input = await seed.report(job, "hoodie")
    tshirt_id, _ = await seed.report(job, "tshirt")
    junk_id = await seed.raw(
        PRINTIFY.dlq, b"{oops", key=job.job_id, stage="printify", source="images.generated"
    )
    other = await seed.job()
    other_id, _ = await seed.report(other, "hoodie")

    resp = api.post("/dlq/replay", json={"jobId": job.job_id})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["replayed"] == 2
    assert sorted(body["ids"]) == sorted([hoodie_id, tshirt_id])
    assert body["skipped"] == [junk_id]  # malformed JSON: nothing to replay

    views = {v["id"]: v for v in letters(api, jobId=job.job_id)}
    assert views[junk_id]["replayedAt"] is None
    # The other job's letter is untouched.
    assert letters(api, jobId=other.job_id)[0]["id"] == other_id
    assert letters(api, jobId=other.job_id)[0]["replayedAt"] is None

    # The copy is the input narrowed to the failed type, onto the stage's main input.
    [copy] = copies(pipeline_topics, "images.generated", coordinates_of(views[hoodie_id]))
    sent = json.loads(copy.value() or b"")
    assert sent["attempt"] == 0 and hoodie_input.attempt == 1
    assert sent["event_id"] == str(hoodie_input.event_id)
    assert sent["payload"]["routing"]["product_types"] == ["hoodie"]
    assert copy.key() == job.job_id.encode()

    again = api.post("/dlq/replay", json={"jobId": job.job_id})
    assert again.status_code == 202, again.text
    assert again.json() == {"replayed": 0, "ids": [], "skipped": [junk_id], "targets": []}


async def test_replay_a_stage(api: httpx.Client, seed: Seeder, pipeline_topics: str) -> None:
    jobs = [await seed.job(), await seed.job()]
    ids = [
        await seed.raw(
            PUBLISHER.dlq,
            product_of(job, "mug").to_json(),
            key=job.job_id,
            stage="publisher",
            source="products.created.retry.3",
        )
        for job in jobs
    ]
    resp = api.post("/dlq/replay", json={"stage": "publisher"})
    assert resp.status_code == 202, resp.text
    assert set(ids) <= set(resp.json()["ids"])
    for job, dead_id in zip(jobs, ids, strict=True):
        [view] = letters(api, jobId=job.job_id, stage="publisher")
        assert view["id"] == dead_id and view["replayCount"] == 1
        [copy] = copies(pipeline_topics, "products.created", coordinates_of(view))
        assert json.loads(copy.value() or b"")["job_id"] == job.job_id
    assert api.post("/dlq/replay", json={"stage": "publisher"}).json()["replayed"] == 0


async def test_replay_of_a_letter_with_nothing_replayable(api: httpx.Client, seed: Seeder) -> None:
    job = await seed.job()
    junk_id = await seed.raw(
        PUBLISHER.dlq, b"\xff\xfe", key=job.job_id, stage="publisher", source="products.created"
    )
    assert "id" in problems(api.post("/dlq/replay", json={"id": junk_id}))
    assert letters(api, jobId=job.job_id)[0]["replayedAt"] is None


async def test_a_letter_aimed_at_another_topic_is_never_replayed_there(
    api: httpx.Client, seed: Seeder, pipeline_topics: str
) -> None:
    # A row an older monitor recorded from a producer's pod.original.topic=pod.control.
    job = await seed.job()
    dead_id = await seed.raw(
        GENERATOR.dlq, job.to_json(), key=job.job_id, stage="generator", source=NORMAL
    )
    async with seed.pool.connection() as conn:
        await conn.execute(
            "UPDATE dead_letters SET replay_topic = %s WHERE id = %s", (CONTROL, dead_id)
        )
    [view] = letters(api, jobId=job.job_id)
    assert view["replayTo"] is None
    control_before = end_offsets(pipeline_topics, CONTROL)

    assert "id" in problems(api.post("/dlq/replay", json={"id": dead_id}))
    resp = api.post("/dlq/replay", json={"jobId": job.job_id})
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"replayed": 0, "ids": [], "skipped": [dead_id], "targets": []}
    assert letters(api, jobId=job.job_id)[0]["replayedAt"] is None
    assert end_offsets(pipeline_topics, CONTROL) == control_before


async def test_a_dry_run_says_where_each_letter_goes_and_sends_nothing(
    api: httpx.Client, seed: Seeder, pipeline_topics: str
) -> None:
    job = await seed.job(Priority.LOW)
    dead_id = await seed.raw(
        GENERATOR.dlq,
        job.to_json(),
        key=job.job_id,
        stage="generator",
        source="jobs.requested.retry.1",
    )
    before = end_offsets(pipeline_topics, "jobs.requested.low")
    resp = api.post("/dlq/replay", json={"jobId": job.job_id, "dryRun": True})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert (body["replayed"], body["ids"]) == (0, [])
    assert [(t["id"], t["replayTo"]) for t in body["targets"]] == [(dead_id, "jobs.requested.low")]
    assert letters(api, jobId=job.job_id)[0]["replayedAt"] is None
    assert end_offsets(pipeline_topics, "jobs.requested.low") == before


def test_replay_of_an_unknown_letter(api: httpx.Client) -> None:
    resp = api.post("/dlq/replay", json={"id": 9_000_000_000_000})
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"id": 1, "jobId": "x"}, "body"),
        ({"jobId": "x", "stage": "printify"}, "body"),
        ({"stage": "api"}, "stage"),
        ({"id": "1"}, "id"),
        ({"id": 0}, "id"),
        ({"id": True}, "id"),
        ({"jobId": ""}, "jobId"),
        ({"jobId": "x" * 101}, "jobId"),
        ({"jobId": "x", "includeReplayed": "yes"}, "includeReplayed"),
        ({"jobId": "x", "force": True}, "force"),
        ([{"id": 1}], "body"),
    ],
)
def test_replay_rejects_bad_bodies(api: httpx.Client, body: Any, field: str) -> None:
    found = problems(api.post("/dlq/replay", json=body))
    assert field in found, found
    assert all(found.values())


def test_dlq_needs_the_key_when_auth_is_on(api_auth: httpx.Client) -> None:
    assert api_auth.get("/dlq").status_code == 401
    assert api_auth.post("/dlq/replay", json={"id": 1}).status_code == 401
