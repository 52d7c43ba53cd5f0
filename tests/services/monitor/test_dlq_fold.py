"""Dead letters folded by the monitor: recorded once, with the right replay topic and bytes."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
from confluent_kafka import Message, Producer
from psycopg_pool import AsyncConnectionPool

from services.monitor.dlq import (
    UNKNOWN_JOB,
    DeadLetterFailed,
    parse_record,
    replay_topic,
)
from services.monitor.fold import Folder
from shared.contract.events import (
    EVENT_TYPES,
    JobRequested,
    JobRequestedPayload,
    Priority,
    ProductType,
    StageFailed,
    StageFailedPayload,
)
from shared.contract.topics import GENERATOR, MONITOR, PRINTIFY, PUBLISHER
from tests.support.events import image as image_of
from tests.support.infra import read_topic

Headers = list[tuple[str, str | bytes | None]]
# Synthetic records get offsets no other test (nor a real broker in this session) uses.
_offsets = iter(range(random.randrange(10**12, 2 * 10**12), 3 * 10**12))


def new_job(priority: Priority = Priority.NORMAL) -> JobRequested:
    return JobRequested(
        job_id=f"dlq-{uuid.uuid4().hex[:10]}",
        producer="api",
        payload=JobRequestedPayload(
            theme="t",
            style="s",
            niche="n",
            product_types=["tshirt", "hoodie"],
            count=1,
            priority=priority,
        ),
    )


def runner_headers(
    stage: str, original_topic: str, *, error: str = "PermanentError", retryable: bool = False
) -> Headers:
    """Headers as FailureRouter.dead_letter writes them (plus the retry engineer's extras)."""
    return [
        ("pod.error.class", error.encode()),
        ("pod.error.message", b"vendor said no"),
        ("pod.error.retryable", b"true" if retryable else b"false"),
        ("pod.original.topic", original_topic.encode()),
        ("pod.original.partition", b"2"),
        ("pod.original.offset", b"41"),
        ("pod.stage", stage.encode()),
        ("pod.failed.at", b"2026-11-28T12:00:00+00:00"),
        ("pod.attempt", b"3"),
    ]


def record(
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None,
    headers: Headers | None = None,
    offset: int | None = None,
) -> Message:
    return Message(
        topic=topic,
        partition=1,
        offset=next(_offsets) if offset is None else offset,
        key=key,
        value=value,
        headers=headers or [],
        timestamp=(1, 1_800_000_000_000),
    )


async def dead_letters(pool: AsyncConnectionPool, where: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT * FROM dead_letters WHERE {where} ORDER BY id", params)
        assert cur.description is not None
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def fold(pool: AsyncConnectionPool, msg: Message) -> bool:
    event = parse_record(msg, EVENT_TYPES)
    return await Folder(pool).fold(
        event, msg.topic() or "", msg.partition() or 0, msg.offset() or 0
    )


@pytest.mark.parametrize(
    ("dlq", "source", "event", "expected"),
    [
        # A stage input is replayed onto itself.
        (PRINTIFY.dlq, "images.generated", None, "images.generated"),
        (GENERATOR.dlq, "jobs.requested.low", None, "jobs.requested.low"),
        # A retry topic maps back to its family's main input...
        (PRINTIFY.dlq, "images.generated.retry.2", None, "images.generated"),
        (PUBLISHER.dlq, "products.created.retry.3", None, "products.created"),
        # ...except a Printify webhook call: the publisher's second input.
        (
            PUBLISHER.dlq,
            "products.created.retry.1",
            {"type": "printify.webhook", "payload": {}},
            "printify.webhooks",
        ),
        (PUBLISHER.dlq, "printify.webhooks", {"type": "printify.webhook"}, "printify.webhooks"),
        # ...the generator's to the priority topic of the event, normal by default.
        (
            GENERATOR.dlq,
            "jobs.requested.retry.1",
            {"payload": {"priority": "high"}},
            "jobs.requested.high",
        ),
        (GENERATOR.dlq, "jobs.requested.retry.1", {"payload": {}}, "jobs.requested.normal"),
        (
            GENERATOR.dlq,
            "jobs.requested.retry.1",
            {"payload": {"priority": "x"}},
            "jobs.requested.normal",
        ),
        (GENERATOR.dlq, "jobs.requested.retry.1", None, "jobs.requested.normal"),
        # ...and a seller's decision back to the decisions (whatever its retry family).
        (
            GENERATOR.dlq,
            "jobs.requested.retry.2",
            {"type": "seller.decision", "payload": {}},
            "seller.decisions",
        ),
        (PRINTIFY.dlq, "images.generated.retry.1", {"type": "seller.decision"}, "seller.decisions"),
        # No source header: the DLQ's own family decides.
        (PUBLISHER.dlq, None, None, "products.created"),
        (GENERATOR.dlq, None, {"payload": {"priority": "low"}}, "jobs.requested.low"),
        # A DLQ that is no stage's: nowhere, whatever its header says.
        ("other.dlq", "other.retry.1", None, None),
        ("other.dlq", None, None, None),
        # A header naming a topic that is not an input of the DLQ's stage is ignored: the
        # replay goes to the stage's own input (a forged pod.original.topic=pod.control must
        # not aim a replay at the control topic).
        (GENERATOR.dlq, "pod.control", {"payload": {"priority": "high"}}, "jobs.requested.high"),
        (GENERATOR.dlq, "images.generated", None, "jobs.requested.normal"),
        (PRINTIFY.dlq, "pod.control", None, "images.generated"),
        (PRINTIFY.dlq, "jobs.requested.retry.1", None, "images.generated"),
        (PUBLISHER.dlq, "workers.heartbeat", None, "products.created"),
        (MONITOR.dlq, "pod.control", None, MONITOR.retry_topic(1)),
    ],
)
def test_replay_topic_rules(
    dlq: str, source: str | None, event: dict[str, Any] | None, expected: str | None
) -> None:
    assert replay_topic(dlq, source, event) == expected


async def test_raw_dead_letter_is_recorded_once(pool: AsyncConnectionPool) -> None:
    job = new_job()
    await Folder(pool).fold(job, "jobs.requested.normal", 0, 0)
    image = image_of(job)
    value = image.to_json()
    msg = record(
        PRINTIFY.dlq,
        value,
        key=job.job_id.encode(),
        headers=runner_headers("printify", "images.generated.retry.2", retryable=True),
    )
    assert await fold(pool, msg) is True
    assert await fold(pool, msg) is False  # the same record read again

    rows = await dead_letters(pool, "job_id = %s", job.job_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["topic"], row["kafka_partition"], row["kafka_offset"]) == (
        PRINTIFY.dlq,
        1,
        msg.offset(),
    )
    assert row["stage"] == "printify"
    assert (row["error_class"], row["message"], row["retryable"]) == (
        "PermanentError",
        "vendor said no",
        True,
    )
    assert row["original_topic"] == "images.generated.retry.2"
    assert row["replay_topic"] == "images.generated"
    assert bytes(row["replay_value"]) == value
    assert row["headers"]["pod.attempt"] == "3"
    assert row["failed_at"].isoformat() == "2026-11-28T12:00:00+00:00"
    assert row["replayed_at"] is None and row["replay_count"] == 0

    # The failure is folded into the job as before: the image's products failed.
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT product_type, status FROM products WHERE job_id = %s ORDER BY product_type",
            (job.job_id,),
        )
        assert await cur.fetchall() == [("hoodie", "failed"), ("tshirt", "failed")]


async def test_raw_dead_letter_event_is_given_up(pool: AsyncConnectionPool) -> None:
    job = new_job()
    msg = record(
        PRINTIFY.dlq,
        image_of(job).to_json(),
        key=job.job_id.encode(),
        headers=runner_headers("printify", "images.generated", retryable=True),
    )
    event = parse_record(msg, EVENT_TYPES)
    assert isinstance(event, DeadLetterFailed)
    # On the DLQ nothing waits for another attempt, whatever the error's class was.
    assert event.payload.retryable is False and event.payload.attempt == 3
    assert event.dead_letter.retryable is True
    # The dead letter rides along for the fold only; the event's JSON is the contract's.
    assert "dead_letter" not in json.loads(event.to_json())


async def test_generator_letter_from_a_retry_topic_goes_back_to_its_priority(
    pool: AsyncConnectionPool,
) -> None:
    job = new_job(Priority.HIGH)
    await Folder(pool).fold(job, "jobs.requested.high", 0, 0)
    msg = record(
        GENERATOR.dlq,
        job.to_json(),
        key=job.job_id.encode(),
        headers=runner_headers("generator", "jobs.requested.retry.1"),
    )
    assert await fold(pool, msg) is True
    [row] = await dead_letters(pool, "job_id = %s", job.job_id)
    assert row["replay_topic"] == "jobs.requested.high"
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status FROM jobs WHERE job_id = %s", (job.job_id,))
        assert await cur.fetchone() == ("failed",)


def stage_failed(job: JobRequested, product_type: str = "hoodie") -> StageFailed:
    """What the printify stage puts on its DLQ for one failed product type."""
    image = image_of(job)
    narrowed = image.model_copy(
        update={
            "attempt": 2,
            "payload": image.payload.model_copy(
                update={
                    "routing": image.payload.routing.model_copy(
                        update={"product_types": [ProductType(product_type)]}
                    )
                }
            ),
        }
    )
    return image.derive(
        StageFailed,
        StageFailedPayload(
            stage="printify",
            error_class="PermanentError",
            message="blueprint gone",
            image_index=0,
            product_type=ProductType(product_type),
            input_topic="images.generated",
            input_partition=0,
            input_offset=7,
            input_event=narrowed.model_dump(mode="json"),
        ),
        producer="printify",
        key=f"failed:{product_type}",
    )


async def test_stage_failed_report_replays_its_input_event(pool: AsyncConnectionPool) -> None:
    job = new_job()
    await Folder(pool).fold(job, "jobs.requested.normal", 0, 0)
    report = stage_failed(job)
    msg = record(PRINTIFY.dlq, report.to_json(), key=job.job_id.encode())
    assert await fold(pool, msg) is True
    [row] = await dead_letters(pool, "job_id = %s", job.job_id)
    assert row["replay_topic"] == "images.generated"
    replay = json.loads(bytes(row["replay_value"]))
    assert replay == report.payload.input_event
    assert replay["payload"]["routing"]["product_types"] == ["hoodie"]
    assert (row["stage"], row["error_class"], row["message"]) == (
        "printify",
        "PermanentError",
        "blueprint gone",
    )
    assert row["failed_at"] == report.occurred_at

    # After a replay the same input fails again: the stage's report has the same event id,
    # at a new offset. The job log already has it; the new dead letter is still recorded.
    again = record(PRINTIFY.dlq, report.to_json(), key=job.job_id.encode())
    assert await fold(pool, again) is True
    assert await fold(pool, again) is False
    rows = await dead_letters(pool, "job_id = %s", job.job_id)
    assert [r["kafka_offset"] for r in rows] == [msg.offset(), again.offset()]
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM job_events WHERE job_id = %s AND type = 'stage.failed'",
            (job.job_id,),
        )
        assert await cur.fetchone() == (1,)


async def test_retrying_notice_is_not_a_dead_letter(pool: AsyncConnectionPool) -> None:
    job = new_job()
    report = stage_failed(job)
    notice = report.model_copy(
        update={"payload": report.payload.model_copy(update={"retryable": True})}
    )
    event = parse_record(record(PRINTIFY.dlq, notice.to_json(), key=None), EVENT_TYPES)
    assert type(event) is StageFailed


@pytest.mark.parametrize("due", [b"9" * 5000, b"99999999999999999999", b"-5", b"soon"])
async def test_a_hostile_retry_due_still_reads_as_a_retry_notice(due: bytes) -> None:
    job = new_job()
    headers = [*runner_headers("printify", "images.generated"), ("pod.retry.due", due)]
    msg = record("images.generated.retry.1", image_of(job).to_json(), key=None, headers=headers)
    event = parse_record(msg, EVENT_TYPES)
    assert isinstance(event, StageFailed) and event.payload.retryable
    assert event.payload.next_attempt_at is None


async def test_malformed_record_without_job_is_recorded(pool: AsyncConnectionPool) -> None:
    headers = runner_headers("publisher", "products.created", error="InvalidEventError")
    msg = record(PUBLISHER.dlq, b"{not json", key=None, headers=headers)
    event = parse_record(msg, EVENT_TYPES)
    assert event.job_id == UNKNOWN_JOB
    assert await fold(pool, msg) is True
    assert await fold(pool, msg) is False
    rows = await dead_letters(pool, "topic = %s AND kafka_offset = %s", PUBLISHER.dlq, msg.offset())
    assert len(rows) == 1
    row = rows[0]
    assert row["job_id"] is None
    assert row["error_class"] == "InvalidEventError"
    assert row["replay_topic"] == "products.created"
    assert bytes(row["replay_value"]) == b"{not json"


async def test_malformed_record_of_an_unknown_job_does_not_wait(pool: AsyncConnectionPool) -> None:
    # A key names a job the monitor never saw, the value is junk: waiting for the job would
    # not help, so the letter is recorded at once instead of retried until it is lost.
    job_id = f"dlq-{uuid.uuid4().hex[:10]}"
    msg = record(
        GENERATOR.dlq,
        b"\x00\xff",
        key=job_id.encode(),
        headers=[("pod.error.class", b"InvalidEventError"), ("pod.stage", b"generator\x00")],
    )
    assert await fold(pool, msg) is True
    [row] = await dead_letters(pool, "job_id = %s", job_id)
    assert row["stage"] == "generator"  # the NUL PostgreSQL refuses is dropped
    assert row["message"] == "no reason recorded"
    assert row["original_topic"] is None
    assert row["replay_topic"] == "jobs.requested.normal"
    assert row["failed_at"].timestamp() == 1_800_000_000  # the record's own timestamp


async def test_real_dlq_record_round_trip(pool: AsyncConnectionPool, pipeline_topics: str) -> None:
    """A record produced to a real DLQ topic is recorded under its real coordinates."""
    job = new_job()
    await Folder(pool).fold(job, "jobs.requested.normal", 0, 0)
    producer = Producer({"bootstrap.servers": pipeline_topics, "enable.idempotence": True})
    producer.produce(
        PUBLISHER.dlq,
        b"[]",
        key=job.job_id.encode(),
        headers=runner_headers("publisher", "products.created.retry.1"),
    )
    assert producer.flush(30) == 0
    found = read_topic(
        pipeline_topics,
        PUBLISHER.dlq,
        until=lambda msgs: any(m.key() == job.job_id.encode() for m in msgs),
    )
    msg = next(m for m in found if m.key() == job.job_id.encode())
    assert await fold(pool, msg) is True
    [row] = await dead_letters(pool, "job_id = %s", job.job_id)
    assert (row["topic"], row["kafka_partition"], row["kafka_offset"]) == (
        PUBLISHER.dlq,
        msg.partition(),
        msg.offset(),
    )
    assert row["replay_topic"] == "products.created"


async def test_the_monitors_own_dead_letter_is_listed_and_goes_back_to_the_monitor(
    pool: AsyncConnectionPool,
) -> None:
    job = new_job()
    await Folder(pool).fold(job, "jobs.requested.normal", 0, 0)
    value = image_of(job).to_json()
    msg = record(
        MONITOR.dlq,
        value,
        key=job.job_id.encode(),
        headers=runner_headers("monitor", "images.generated", error="JobNotYetKnown"),
    )
    assert await fold(pool, msg) is True
    [row] = await dead_letters(pool, "topic = %s AND job_id = %s", MONITOR.dlq, job.job_id)
    assert row["stage"] == "monitor"
    # Replayed to the monitor alone: the printify stage must not make the products again.
    assert row["replay_topic"] == MONITOR.retry_topic(1)
    assert bytes(row["replay_value"]) == value
    # The monitor failing to record an image is no failure of the job's products.
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM products WHERE job_id = %s", (job.job_id,))
        assert await cur.fetchone() == (0,)
        cur = await conn.execute("SELECT status FROM jobs WHERE job_id = %s", (job.job_id,))
        assert await cur.fetchone() == ("queued",)


async def job_row(pool: AsyncConnectionPool, job_id: str) -> tuple[Any, ...] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, error, retry_attempt FROM jobs WHERE job_id = %s", (job_id,)
        )
        return await cur.fetchone()


def forged_failure(victim: JobRequested, *, retryable: bool = False) -> bytes:
    return StageFailed(
        job_id=victim.job_id,
        producer="forger",
        payload=StageFailedPayload(
            stage="generator", error_class="Forged", message="gotcha", retryable=retryable
        ),
    ).to_json()


@pytest.mark.parametrize(
    ("dlq", "stage", "source"),
    [
        # The generator refused it on its input, the monitor on the same topic.
        (GENERATOR.dlq, "generator", "jobs.requested.normal"),
        (MONITOR.dlq, "monitor", "jobs.requested.normal"),
        # Printify reports on its DLQ, but a copy of a failed input is not a report.
        (PRINTIFY.dlq, "printify", "images.generated"),
    ],
)
@pytest.mark.parametrize("retryable", [False, True])
async def test_a_forged_stage_failed_dead_lettered_by_a_stage_leaves_its_victim_alone(
    pool: AsyncConnectionPool, dlq: str, stage: str, source: str, retryable: bool
) -> None:
    victim = new_job()
    await Folder(pool).fold(victim, "jobs.requested.normal", 0, 0)
    before = await job_row(pool, victim.job_id)
    carried = "image.generated" if source == "images.generated" else "job.requested"
    reason = f"unexpected event type 'stage.failed' on {source} (accepts: {carried})"
    headers = [
        (k, reason.encode() if k == "pod.error.message" else v)
        for k, v in runner_headers(stage, source, error="InvalidEventError")
    ]
    msg = record(
        dlq, forged_failure(victim, retryable=retryable), key=victim.job_id.encode(),
        headers=headers,
    )  # fmt: skip
    event = parse_record(msg, EVENT_TYPES)
    assert isinstance(event, DeadLetterFailed) and event.misplaced
    assert await fold(pool, msg) is True
    # Listed as a dead letter of the victim's id, with the reason ...
    [row] = await dead_letters(pool, "topic = %s AND kafka_offset = %s", dlq, msg.offset())
    assert row["message"] == reason
    # ... and never folded into the job: not failed, not retrying, no error.
    assert await job_row(pool, victim.job_id) == before
    assert before is not None and before[0] not in ("failed", "retrying")


async def test_a_stage_failed_on_the_dlq_of_a_stage_that_never_reports_there_is_no_report(
    pool: AsyncConnectionPool,
) -> None:
    # Only printify and the publisher put stage.failed reports of their own on their DLQs.
    victim = new_job()
    await Folder(pool).fold(victim, "jobs.requested.normal", 0, 0)
    before = await job_row(pool, victim.job_id)
    msg = record(GENERATOR.dlq, forged_failure(victim), key=victim.job_id.encode())
    assert await fold(pool, msg) is True
    assert await job_row(pool, victim.job_id) == before


@pytest.mark.parametrize("value", [b"{not json", b"\x00\xff", b'{"type": "job.requested"}'])
async def test_a_malformed_record_under_a_known_jobs_id_leaves_that_job_alone(
    pool: AsyncConnectionPool, value: bytes
) -> None:
    # The key is the producer's word: one bad record produced under another job's id (anyone
    # allowed to submit can) must not fail that job nor reach its log, only the DLQ listing.
    victim = new_job()
    await Folder(pool).fold(victim, "jobs.requested.normal", 0, 0)
    before = await job_row(pool, victim.job_id)
    msg = record(
        GENERATOR.dlq,
        value,
        key=victim.job_id.encode(),
        headers=runner_headers("generator", "jobs.requested.normal", error="InvalidEventError"),
    )
    assert await fold(pool, msg) is True
    [row] = await dead_letters(
        pool, "topic = %s AND kafka_offset = %s", GENERATOR.dlq, msg.offset()
    )
    assert row["error_class"] == "InvalidEventError"
    assert await job_row(pool, victim.job_id) == before
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT type FROM job_events WHERE job_id = %s ORDER BY seq", (victim.job_id,)
        )
        assert [r[0] for r in await cur.fetchall()] == ["job.requested"]
