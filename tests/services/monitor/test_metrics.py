"""Metrics against the real PostgreSQL (and Kafka for the lag): counters, histograms, gauges.

Each test's events happen at a random minute of a past year, so its rollup rows (keyed by
name, labels and minute) belong to it alone although the database is shared by the session.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.monitor.handler import MonitorHandler
from services.monitor.metrics import (
    LagProbe,
    bucket_of,
    sample_gauges,
    set_gauge,
)
from shared.adapters.store import retention
from shared.contract.events import (
    Event,
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    JobRouting,
    PriceSummary,
    ProductCreated,
    ProductCreatedPayload,
    ProductPublished,
    ProductPublishedPayload,
    StageFailed,
    StageFailedPayload,
)
from shared.contract.topics import IMAGES_GENERATED, STAGES, Stage
from shared.pipeline.runner import MessageContext
from tests.support.events import image as image_of
from tests.support.infra import unique


def past_minute() -> datetime:
    """The start of a random minute between 1990 and 2010: no other test writes there."""
    base = datetime(1990, 1, 1, tzinfo=UTC)
    return base + timedelta(minutes=random.randrange(20 * 365 * 24 * 60))


def at(event: Event, when: datetime) -> Any:
    return event.model_copy(update={"occurred_at": when})


def job_request(t0: datetime, *, auto: bool = True) -> JobRequested:
    return JobRequested(
        job_id=unique("metrics"),
        producer="api",
        occurred_at=t0,
        payload=JobRequestedPayload(
            theme="t", style="s", niche="n", product_types=["tshirt"], count=1, auto_publish=auto
        ),
    )


def image(job: JobRequested, when: datetime) -> ImageGenerated:
    return at(image_of(job), when)


def product(job: JobRequested, when: datetime) -> ProductCreated:
    return at(
        job.derive(
            ProductCreated,
            ProductCreatedPayload(
                image_index=0,
                product_type="tshirt",
                product_id="prod-0",
                shop_id="1",
                blueprint_id=6,
                print_provider_id=99,
                variant_count=4,
                title="x",
                routing=JobRouting(product_types=["tshirt"], auto_publish=job.payload.auto_publish),
                prices=PriceSummary(price_min_cents=1999),
            ),
            producer="printify",
            key="product",
        ),
        when,
    )


def published(job: JobRequested, when: datetime) -> ProductPublished:
    return at(
        job.derive(
            ProductPublished,
            ProductPublishedPayload(
                image_index=0, product_type="tshirt", product_id="prod-0", shop_id="1"
            ),
            producer="publisher",
            key="published",
        ),
        when,
    )


def stage_failed(job: JobRequested, when: datetime, *, retryable: bool) -> StageFailed:
    return at(
        job.derive(
            StageFailed,
            StageFailedPayload(
                stage="printify",
                error_class="VendorError" if retryable else "PermanentError",
                message="printify said no",
                retryable=retryable,
                attempt=1 if retryable else 0,
                image_index=0,
                product_type="tshirt",
            ),
            producer="printify",
            key=f"failed:{retryable}",
        ),
        when,
    )


async def handle(handler: MonitorHandler, events: list[Event]) -> None:
    for n, event in enumerate(events):
        ctx = MessageContext(topic="t", partition=0, offset=n, attempt=0, instance_id="test")
        assert await handler(event, ctx) == []


async def rollup(
    pool: AsyncConnectionPool, name: str, labels: dict[str, str], minute: datetime
) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, count, sum, min, max, last, buckets FROM metrics_minute"
            " WHERE name = %s AND labels = %s AND minute = %s",
            (name, Jsonb(labels), minute),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        assert cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


def test_buckets() -> None:
    assert bucket_of(0) == "1"
    assert bucket_of(1) == "1"
    assert bucket_of(1.5) == "5"
    assert bucket_of(3600) == "3600"
    assert bucket_of(3601) == "+Inf"


async def test_a_completed_job_counts_once_with_its_durations(pool: AsyncConnectionPool) -> None:
    t0 = past_minute()
    job = job_request(t0)
    events: list[Event] = [
        job,
        image(job, t0 + timedelta(seconds=10)),
        product(job, t0 + timedelta(seconds=30)),
        published(job, t0 + timedelta(seconds=45)),
    ]
    handler = MonitorHandler(pool)
    await handle(handler, events)

    submitted = await rollup(pool, "jobs_submitted", {"priority": "normal"}, t0)
    assert submitted is not None and (submitted["kind"], submitted["count"]) == ("counter", 1)
    completed = await rollup(pool, "jobs_completed", {}, t0)
    assert completed is not None and completed["count"] == 1
    assert await rollup(pool, "jobs_failed", {"status": "failed"}, t0) is None

    duration = await rollup(pool, "job_duration", {}, t0)
    assert duration is not None
    assert duration["kind"] == "histogram"
    assert (duration["count"], duration["sum"], duration["min"], duration["max"]) == (1, 45, 45, 45)
    assert duration["buckets"] == {"60": 1}
    expected = {"generation": (10, "15"), "product": (20, "60"), "publish": (15, "15")}
    for stage, (seconds, bucket) in expected.items():
        row = await rollup(pool, "stage_duration", {"stage": stage}, t0)
        assert row is not None, stage
        assert (row["count"], row["sum"], row["buckets"]) == (1, seconds, {bucket: 1}), stage

    # Redelivery / replay of the whole topic: the fold says "seen", the metrics stay put.
    await handle(MonitorHandler(pool), events)
    assert (await rollup(pool, "jobs_submitted", {"priority": "normal"}, t0)) == submitted
    assert (await rollup(pool, "jobs_completed", {}, t0)) == completed
    assert (await rollup(pool, "job_duration", {}, t0)) == duration


async def test_histograms_merge_within_a_minute(pool: AsyncConnectionPool) -> None:
    t0 = past_minute()
    handler = MonitorHandler(pool)
    for finish_after in (3, 40, 50):
        job = job_request(t0, auto=False)
        await handle(
            handler,
            [
                job,
                image(job, t0 + timedelta(seconds=1)),
                product(job, t0 + timedelta(seconds=finish_after)),
            ],
        )
    duration = await rollup(pool, "job_duration", {}, t0)
    assert duration is not None
    assert (duration["count"], duration["sum"]) == (3, 93)
    assert (duration["min"], duration["max"]) == (3, 50)
    assert duration["buckets"] == {"5": 1, "60": 2}
    completed = await rollup(pool, "jobs_completed", {}, t0)
    assert completed is not None and completed["count"] == 3


async def test_failed_and_retried_jobs(pool: AsyncConnectionPool) -> None:
    t0 = past_minute()
    job = job_request(t0, auto=False)
    events: list[Event] = [
        job,
        image(job, t0 + timedelta(seconds=5)),
        stage_failed(job, t0 + timedelta(seconds=6), retryable=True),
        stage_failed(job, t0 + timedelta(seconds=20), retryable=False),
    ]
    await handle(MonitorHandler(pool), events)
    retried = await rollup(pool, "jobs_retried", {"stage": "printify"}, t0)
    assert retried is not None and retried["count"] == 1
    failed = await rollup(pool, "jobs_failed", {"status": "failed"}, t0)
    assert failed is not None and failed["count"] == 1
    assert await rollup(pool, "jobs_completed", {}, t0) is None
    duration = await rollup(pool, "job_duration", {}, t0)
    assert duration is not None and (duration["count"], duration["sum"]) == (1, 20)
    # A later event of the finished job (e.g. a replayed failure) does not count it again.
    late = at(
        job.derive(
            StageFailed,
            StageFailedPayload(stage="printify", error_class="X", message="again"),
            producer="printify",
            key="late",
        ),
        t0 + timedelta(seconds=30),
    )
    await handle(MonitorHandler(pool), [late])
    assert (await rollup(pool, "jobs_failed", {"status": "failed"}, t0)) == failed


async def test_gauges_sampled(pool: AsyncConnectionPool) -> None:
    now = past_minute() + timedelta(seconds=30)
    service = unique("svc")
    async with pool.connection() as conn:
        for suffix, status, age in (
            ("live", "running", 2),
            ("dead", "running", 100),
            ("gone", "stopped", 100),
            ("forgotten", "running", 7200),
        ):
            await conn.execute(
                "INSERT INTO workers (instance_id, service, host, pid, status, started_at,"
                " last_heartbeat) VALUES (%s, %s, 'h', 1, %s, %s, %s)",
                (
                    f"{service}-{suffix}",
                    service,
                    status,
                    now - timedelta(hours=3),
                    now - timedelta(seconds=age),
                ),
            )
    stage = unique("stage")
    samples = await sample_gauges(
        pool, now=now, live_s=15, forget_s=3600, services=[service], lag={stage: 1234}
    )
    assert samples[("workers_running", service)] == 1
    assert samples[("workers_error", service)] == 1
    assert ("dlq_size", "printify") in samples
    minute = now.replace(second=0)
    running = await rollup(pool, "workers_running", {"service": service}, minute)
    assert running is not None and (running["kind"], running["last"]) == ("gauge", 1)
    lag = await rollup(pool, "consumer_lag", {"stage": stage}, minute)
    assert lag is not None and lag["last"] == 1234
    # A second sample in the same minute: the gauge reads as the latest one.
    await sample_gauges(pool, now=now, live_s=15, forget_s=3600, services=[], lag={stage: 7})
    lag = await rollup(pool, "consumer_lag", {"stage": stage}, minute)
    assert lag is not None and (lag["last"], lag["count"], lag["max"]) == (7, 2, 1234)


async def test_retention_drops_whole_days_of_minutes(pool: AsyncConnectionPool) -> None:
    """A day's partition goes once all of it is past the retention; a minute with no partition
    (kept in the DEFAULT one) goes once it is past; the rest stays."""
    now = past_minute()
    name = f"retention_{uuid.uuid4().hex[:8]}"
    async with pool.connection() as conn:
        for age_h in (0, 30, 80):
            at = now - timedelta(hours=age_h)
            await conn.execute("SELECT pod_ensure_partitions('metrics_minute', %s, %s)", (at, at))
            await set_gauge(conn, name, {}, age_h, at)
        await set_gauge(conn, name, {}, 100, now - timedelta(hours=100))  # no partition of its own
        before = now - timedelta(hours=48)
        gone = await retention.drop_expired(conn, "metrics_minute", before, 10.0)
        deleted = await retention.delete_default_expired(conn, "metrics_minute", before, 1)
        cur = await conn.execute(
            "SELECT last FROM metrics_minute WHERE name = %s ORDER BY last", (name,)
        )
        left = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT upper_bound FROM pod_partitions('metrics_minute') WHERE NOT is_default"
        )
        bounds = [r[0] for r in await cur.fetchall()]
    assert left == [0, 30]
    assert f"metrics_minute_p{now - timedelta(hours=80):%Y%m%d}" in gone.dropped
    assert deleted >= 1
    assert all(b > before for b in bounds)  # every expired day went
    assert any(b > now for b in bounds)  # the current one stays


def test_consumer_lag_from_kafka(pipeline_topics: str) -> None:
    """Lag = end offsets minus the group's commits (from the start when it never committed)."""
    config = {"bootstrap.servers": pipeline_topics}
    stage = Stage("printify", (IMAGES_GENERATED,), IMAGES_GENERATED)
    prefix = unique("lagtest")
    probe = LagProbe(config, group_prefix=prefix, stages=[stage], timeout_s=60)
    before = probe.measure()["printify"]

    producer = Producer(config)
    for n in range(3):
        producer.produce(IMAGES_GENERATED, value=b"{}", key=f"lag-{n}".encode())
    assert producer.flush(30) == 0
    assert probe.measure()["printify"] == before + 3

    # The group commits everything: nothing is behind.
    consumer = Consumer({**config, "group.id": f"{prefix}.printify"})
    try:
        ends = []
        for topic in (IMAGES_GENERATED, *stage.retry_topics):
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in metadata.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                ends.append(TopicPartition(topic, p, high))
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()
    assert probe.measure() == {"printify": 0}
    probe.close()


def test_stages_reading_one_topic_lag_by_their_own_commits(pipeline_topics: str) -> None:
    """Offsets are read once for every stage, commits per group: two groups on one topic (as
    each channel's publisher reads products.created) lag apart."""
    config = {"bootstrap.servers": pipeline_topics}
    ahead = Stage("ahead", (IMAGES_GENERATED,), IMAGES_GENERATED)
    behind = Stage("behind", (IMAGES_GENERATED,), IMAGES_GENERATED)
    prefix = unique("lagshared")
    probe = LagProbe(config, group_prefix=prefix, stages=[ahead, behind], timeout_s=60)
    try:
        producer = Producer(config)
        for n in range(4):
            producer.produce(IMAGES_GENERATED, value=b"{}", key=f"shared-{n}".encode())
        assert producer.flush(30) == 0
        everything = probe.measure()
        assert everything["ahead"] == everything["behind"] >= 4

        consumer = Consumer({**config, "group.id": f"{prefix}.ahead"})
        try:
            parts = consumer.list_topics(IMAGES_GENERATED, timeout=10).topics[IMAGES_GENERATED]
            ends = [
                TopicPartition(
                    IMAGES_GENERATED,
                    p,
                    consumer.get_watermark_offsets(TopicPartition(IMAGES_GENERATED, p), 10)[1],
                )
                for p in parts.partitions
            ]
            consumer.commit(offsets=ends, asynchronous=False)
        finally:
            consumer.close()
        after = probe.measure()
        assert after["ahead"] == 0
        assert after["behind"] >= everything["behind"]
    finally:
        probe.close()


async def test_hostile_label_values_make_no_new_series(pool: AsyncConnectionPool) -> None:
    """A producer that names a new stage in every failure, and forged heartbeats that name a
    new service each: the series stay the known ones plus `other`, however many events."""
    t0 = past_minute()
    n = 200
    job = job_request(t0, auto=False)
    forged: list[Event] = [job, image(job, t0 + timedelta(seconds=1))]
    for i in range(n):
        failure = stage_failed(job, t0 + timedelta(seconds=2), retryable=True)
        payload = failure.payload.model_copy(update={"stage": f"bogus-{i}-" + "x" * i})
        forged.append(failure.model_copy(update={"payload": payload, "event_id": uuid.uuid4()}))
    await handle(MonitorHandler(pool), forged)
    prefix = unique("forged-svc")
    now = t0 + timedelta(seconds=30)
    async with pool.connection() as conn:
        for i in range(n):
            await conn.execute(
                "INSERT INTO workers (instance_id, service, host, pid, status, started_at,"
                " last_heartbeat) VALUES (%s, %s, 'h', 1, 'running', %s, %s)",
                (f"{prefix}-{i}", f"{prefix}-{i}", now - timedelta(hours=1), now),
            )
    try:
        samples = await sample_gauges(pool, now=now, live_s=15, forget_s=3600)
    finally:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM workers WHERE instance_id LIKE %s", (f"{prefix}-%",))
    assert samples[("workers_running", "other")] >= n
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, array_agg(DISTINCT labels::text) FROM metrics_minute"
            " WHERE minute = %s AND name IN ('jobs_retried', 'workers_running') GROUP BY name",
            (t0.replace(second=0),),
        )
        series: dict[str, list[str]] = dict(await cur.fetchall())
        cur = await conn.execute(
            "SELECT count(*) FROM metric_totals WHERE labels ->> 'stage' LIKE 'bogus-%'"
        )
        totals_bogus = await cur.fetchone()
    assert series["jobs_retried"] == ['{"stage": "other"}']
    known = {f'{{"service": "{s}"}}' for s in STAGES} | {'{"service": "other"}'}
    assert set(series["workers_running"]) <= known
    assert totals_bogus == (0,)
    retried = await rollup(pool, "jobs_retried", {"stage": "other"}, t0)
    assert retried is not None and retried["count"] == n
