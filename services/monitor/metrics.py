"""Metrics as per-minute rollups in ``metrics_minute``.

Three kinds, all rolled up per (name, labels, minute):

- counters (``jobs_submitted``, ``jobs_completed``, ``jobs_failed``, ``jobs_retried``, and
  ``claude_tokens`` by ``kind``: input, output, cache_read, cache_write): recorded
  by :class:`MetricsRecorder` from events the fold saw for the first time, so replaying a topic
  never counts twice;
- histograms (``job_duration``, ``stage_duration``, in seconds, :data:`DURATION_BUCKETS`);
- gauges (``workers_running``, ``workers_error``, ``dlq_size``, ``consumer_lag``): sampled
  periodically by :func:`sample_gauges`; a minute keeps its latest sample in ``last``.

Label values are bounded (:func:`bounded_labels`): each label takes its values from the
registry or an enum, anything else (a stage named by a hostile producer, a forged heartbeat's
service) is counted under ``other``, so no producer can grow the metric tables or ``/metrics``.

Each write is an upsert that adds to its minute (count, sum, min, max, bucket counts), so
several monitor instances can record into the same minute; counters and histograms also add to
their running total in ``metric_totals``, in the same transaction, which retention never deletes:
the Prometheus exposition reads those, so its counters never fall.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.monitor.folders import GENERATION, PRODUCT, PUBLISH, StageQuery, folder_of
from shared.adapters.store import jobs
from shared.adapters.store import metrics as metric_store
from shared.adapters.store.metrics import (
    DURATION_BUCKETS,
    bucket_label,
    bucket_of,
    set_gauge,
)
from shared.contract.events import Event, Priority, TokenCounts
from shared.contract.topics import PIPELINE_STAGES, STAGES, Stage

__all__ = ["DURATION_BUCKETS", "bucket_label", "bucket_of", "set_gauge"]

logger = logging.getLogger(__name__)

# The stages whose dead letters are counted (``dlq_size``); always reported, zero included.
DLQ_STAGES = PIPELINE_STAGES
TERMINAL = ("completed", "partial", "failed", "cancelled")

# What an unknown label value is counted as, and the longest value kept.
OTHER = "other"
LABEL_VALUE_MAX = 64
# Every label a metric here carries, with the values it may take: the registry's stages (and
# the job's measured stages), its services, the enums. A label not listed takes only OTHER.
LABEL_VALUES: dict[str, frozenset[str]] = {
    "stage": frozenset(STAGES) | {GENERATION, PRODUCT, PUBLISH},
    "service": frozenset(STAGES) | {s.service for s in STAGES.values() if s.service},
    "priority": frozenset(p.value for p in Priority),
    "kind": frozenset(TokenCounts.model_fields),
    "status": frozenset(TERMINAL),
}


def bounded_value(label: str, value: object, also: Iterable[str] = ()) -> str:
    """``value`` if it is one ``label`` may take (or one of ``also``, values the caller's
    settings vouch for), else :data:`OTHER`."""
    text = str(value)
    if len(text) <= LABEL_VALUE_MAX and (text in LABEL_VALUES.get(label, ()) or text in also):
        return text
    return OTHER


def bounded_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """Each label's value bounded to its known set (:func:`bounded_value`)."""
    return {key: bounded_value(key, value) for key, value in labels.items()}


@dataclass
class _Minute:
    """One (name, labels, minute, kind) row of a batch, as added up so far."""

    labels: dict[str, str]
    min: float
    max: float
    last: float
    count: int = 0
    sum: float = 0.0
    buckets: dict[str, int] | None = None


class MetricBatch:
    """Counter additions and observations of one transaction, summed per (name, labels,
    minute) and written with one upsert each by :meth:`flush`.

    The monitor folds events in batches: a batch's hundreds of events share a handful of
    minutes and metrics, so this turns hundreds of upserts into a few (and their row locks
    into a few, taken in one order).
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, datetime, str], _Minute] = {}

    def add(self, name: str, labels: Mapping[str, str], at: datetime, n: int = 1) -> None:
        """Add ``n`` to a counter's minute."""
        self._merge(name, labels, at, "counter", n, float(n), None)

    def observe(self, name: str, labels: Mapping[str, str], value: float, at: datetime) -> None:
        """One observation (non-negative seconds) of a histogram."""
        value = max(0.0, value)
        self._merge(name, labels, at, "histogram", 1, value, bucket_of(value))

    def _merge(
        self,
        name: str,
        labels: Mapping[str, str],
        at: datetime,
        kind: str,
        count: int,
        value: float,
        bucket: str | None,
    ) -> None:
        minute = at.replace(second=0, microsecond=0)
        # Bounded before they key anything: unknown values share one row.
        labels = bounded_labels(labels)
        key = (name, json.dumps(labels, sort_keys=True), minute, kind)
        row = self._rows.get(key)
        if row is None:
            buckets: dict[str, int] | None = {} if bucket else None
            row = self._rows[key] = _Minute(
                labels=dict(labels), min=value, max=value, last=value, buckets=buckets
            )
        row.count += count
        row.sum += value
        row.min = min(row.min, value)
        row.max = max(row.max, value)
        row.last = value
        if bucket and row.buckets is not None:
            row.buckets[bucket] = row.buckets.get(bucket, 0) + 1

    async def flush(self, conn: AsyncConnection[Any]) -> None:
        """Write what was added, in key order, and start empty again."""
        params = [
            (
                name,
                Jsonb(row.labels),
                minute,
                kind,
                row.count,
                row.sum,
                row.min,
                row.max,
                row.last,
                Jsonb(row.buckets) if row.buckets is not None else None,
            )
            for (name, _, minute, kind), row in sorted(self._rows.items(), key=lambda kv: kv[0])
        ]
        self._rows.clear()
        if params:
            await metric_store.add_rows(conn, params)


# For the stage durations: when the stage each asked event ends started, one statement for a
# batch (the CASE names GENERATION, PRODUCT and PUBLISH). Generation starts at the job's
# request, product at its image, publish at the product's creation in the job's log
# (products.created_at is the publication's time when that was folded first). NULL: unknown.
_STAGE_STARTS = """
SELECT CASE q.stage
    WHEN 'generation' THEN (
        SELECT min(occurred_at) FROM job_events
        WHERE job_id = q.job AND type = 'job.requested')
    WHEN 'product' THEN (
        SELECT created_at FROM images WHERE job_id = q.job AND image_index = q.image)
    WHEN 'publish' THEN (
        SELECT min(occurred_at) FROM job_events
        WHERE job_id = q.job AND type = 'product.created'
          AND (data ->> 'image_index')::int = q.image AND data ->> 'product_type' = q.type)
    END
FROM unnest(%(stage)s::text[], %(job)s::text[], %(image)s::int[], %(type)s::text[])
    WITH ORDINALITY AS q(stage, job, image, type, n)
ORDER BY q.n
"""


class MetricsRecorder:
    """Turns events the fold saw for the first time into counters and durations."""

    async def record_in(
        self, conn: AsyncConnection[Any], events: list[Event], batch: MetricBatch
    ) -> dict[str, datetime]:
        """Add what ``events`` tell to ``batch``, inside the caller's transaction (the fold's: an
        event's counters are then written exactly when, and as often as, the event is folded).

        Returns the jobs these events may have ended, each with its latest such event's time:
        the caller passes them to :meth:`record_terminal` once the jobs are refreshed, then
        flushes the batch. The stage starts are all asked in one statement.
        """
        ended_at: dict[str, datetime] = {}
        asked: list[tuple[Event, StageQuery]] = []
        for event in events:
            measure = folder_of(event).measure(event)
            at = event.occurred_at
            for name, labels, n in measure.counts:
                batch.add(name, labels, at, n)
            if not measure.progress:
                continue
            ended_at[event.job_id] = max(at, ended_at.get(event.job_id, at))
            if measure.stage is not None:
                asked.append((event, measure.stage))
        for (event, (stage, *_)), started in zip(
            asked, await _stage_starts(conn, [q for _, q in asked]), strict=True
        ):
            if started is not None:
                seconds = (event.occurred_at - started).total_seconds()
                batch.observe("stage_duration", {"stage": stage}, seconds, event.occurred_at)
        return ended_at

    async def record_terminal(
        self,
        conn: AsyncConnection[Any],
        ended_at: dict[str, datetime],
        statuses: dict[str, str],
        batch: MetricBatch,
    ) -> None:
        """Count the end of each job in ``ended_at`` whose (refreshed) status in ``statuses``
        is final and that was not counted yet; its time is that of the event that ended it."""
        ending = [job for job in ended_at if statuses.get(job) in TERMINAL]
        if not ending:
            return
        # The stamp makes this once per job, whichever event ended it and however often the
        # events are re-read; the job rows are locked by the UPDATE, so concurrent hooks agree.
        for job_id, (status, created_at) in sorted(
            (await jobs.stamp_metrics(conn, ending, list(TERMINAL))).items()
        ):
            at = ended_at[job_id]
            if status == "completed":
                batch.add("jobs_completed", {}, at)
            else:
                batch.add("jobs_failed", {"status": status}, at)
            # The event that ended the job is its finish time (not the fold's clock: a monitor
            # catching up on a backlog would otherwise stretch every duration).
            batch.observe("job_duration", {}, (at - created_at).total_seconds(), at)


async def _stage_starts(
    conn: AsyncConnection[Any], asked: list[StageQuery]
) -> list[datetime | None]:
    """When each asked stage started (None when unknown), in the order asked."""
    if not asked:
        return []
    stages, job_ids, images, types = (list(column) for column in zip(*asked, strict=True))
    cur = await conn.execute(
        _STAGE_STARTS, {"stage": stages, "job": job_ids, "image": images, "type": types}
    )
    return [row[0] for row in await cur.fetchall()]


# Per service: its instances running (a heartbeat since %(live)s) and silent, not forgotten.
_INSTANCES_BY_SERVICE = """
SELECT service,
    count(*) FILTER (WHERE status = 'running' AND last_heartbeat >= %(live)s),
    count(*) FILTER (WHERE status = 'running' AND last_heartbeat < %(live)s)
FROM workers WHERE last_heartbeat >= %(forget)s AND last_heartbeat <= %(now)s
GROUP BY service
"""
_DEAD_LETTERS_BY_STAGE = """
SELECT stage, count(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY stage
"""


async def sample_gauges(
    pool: AsyncConnectionPool,
    *,
    now: datetime,
    live_s: float,
    forget_s: float,
    services: Iterable[str] = tuple(STAGES),
    lag: Mapping[str, int] | None = None,
) -> dict[tuple[str, str], float]:
    """Sample every gauge at ``now``; return ``{(name, stage or service): value}``.

    ``workers_running``: instances that sent a heartbeat within ``live_s`` and are not
    stopping; ``workers_error``: instances silent longer than that without having said they
    stop (and not yet forgotten, ``forget_s``); ``dlq_size``: dead letters not replayed, per
    stage; ``consumer_lag``: as measured by :class:`LagProbe` (skipped when unknown).
    """
    services = tuple(services)
    samples: dict[tuple[str, str], float] = {}
    for service in services:
        samples[("workers_running", service)] = 0
        samples[("workers_error", service)] = 0
    for stage in DLQ_STAGES:
        samples[("dlq_size", stage)] = 0
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            _INSTANCES_BY_SERVICE,
            {
                "live": now - timedelta(seconds=live_s),
                "forget": now - timedelta(seconds=forget_s),
                "now": now,
            },
        )
        # Services and stages as the rows name them, which heartbeats and dead letters set:
        # bounded to the registry's and the configured ones, the rest summed under OTHER.
        for service, running, errored in await cur.fetchall():
            service = bounded_value("service", service, services)
            for name, n in (("workers_running", running), ("workers_error", errored)):
                key = (name, service)
                samples[key] = (samples[key] if service == OTHER and key in samples else 0) + n
        cur = await conn.execute(_DEAD_LETTERS_BY_STAGE)
        for stage, size in await cur.fetchall():
            key = ("dlq_size", bounded_value("stage", stage))
            samples[key] = (samples[key] if key[1] == OTHER and key in samples else 0) + size
        for stage, behind in (lag or {}).items():
            samples[("consumer_lag", stage)] = behind
        await metric_store.set_gauges(
            conn,
            [
                (name, {"stage" if name in ("dlq_size", "consumer_lag") else "service": subject}, v)
                for (name, subject), v in samples.items()
            ],
            now,
        )
    return samples


# What ListOffsets answers while a partition's leader is being elected or has just moved.
_LEADER_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class LagProbe:
    """Consumer lag per stage: input topics' end offsets minus the stage group's commits.

    Blocking (Kafka calls): run :meth:`measure` on the probe's own single thread (see
    :meth:`measure_async`). It reads with one plain consumer per stage that never joins its
    group (it only fetches the group's committed offsets), because the AdminClient offsets
    calls crashed the monitor process (SIGSEGV) when run from worker threads under load.
    A partition the group never committed counts from its start offset.
    """

    def __init__(
        self,
        client_config: Mapping[str, Any],
        *,
        group_prefix: str = "pod",
        stages: Iterable[Stage] = tuple(STAGES.values()),
        timeout_s: float = 10.0,
    ) -> None:
        self.client_config = dict(client_config)
        self.group_prefix = group_prefix
        self.stages = tuple(stages)
        self.timeout_s = timeout_s
        self._consumers: dict[str, Consumer] = {}
        # One thread owns every client of the probe: no librdkafka handle crosses threads.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="lag-probe")

    def _consumer(self, stage: Stage) -> Consumer:
        consumer = self._consumers.get(stage.name)
        if consumer is None:
            consumer = Consumer(
                {
                    **self.client_config,
                    "group.id": f"{self.group_prefix}.{stage.name}",
                    "enable.auto.commit": False,
                    "client.id": f"lag-probe-{stage.name}",
                }
            )
            self._consumers[stage.name] = consumer
        return consumer

    async def measure_async(self) -> dict[str, int]:
        """:meth:`measure` on the probe's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.measure)

    def measure(self) -> dict[str, int]:
        """``{stage: lag}`` for every stage; raises KafkaException when the broker is away.

        The metadata and the start and end offsets are read once for all stages (one request
        each, whatever the number of partitions); only the commits are read per group. At rest
        this probe was a good share of the broker's requests: every 10 s, four per stage."""
        if not self.stages:
            return {}
        first = self._consumer(self.stages[0])
        metadata = first.list_topics(timeout=self.timeout_s)
        by_stage = {
            stage.name: [
                TopicPartition(t, p)
                for t in (*stage.inputs, *stage.retry_topics)
                if t in metadata.topics and metadata.topics[t].error is None
                for p in metadata.topics[t].partitions
            ]
            for stage in self.stages
        }
        every = list(
            {(tp.topic, tp.partition): tp for tps in by_stage.values() for tp in tps}.values()
        )
        if not every:
            return {stage.name: 0 for stage in self.stages}
        low = self._offsets(first, every, OFFSET_BEGINNING)
        high = self._offsets(first, every, OFFSET_END)
        lags: dict[str, int] = {}
        for stage in self.stages:
            partitions = by_stage[stage.name]
            if not partitions:
                lags[stage.name] = 0
                continue
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in self._consumer(stage).committed(partitions, timeout=self.timeout_s)
            }
            lag = 0
            for tp in partitions:
                key = (tp.topic, tp.partition)
                position = committed.get(key, -1)
                if position < 0:  # never committed: OFFSET_INVALID
                    position = low.get(key, 0)
                lag += max(0, high.get(key, position) - position)
            lags[stage.name] = lag
        return lags

    def _offsets(
        self, consumer: Consumer, partitions: list[TopicPartition], which: int
    ) -> dict[tuple[str, int], int]:
        """The beginning or end offset of each partition (a ListOffsets by logical time)."""
        asked = [TopicPartition(tp.topic, tp.partition, which) for tp in partitions]
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                found = consumer.offsets_for_times(asked, timeout=self.timeout_s)
                break
            except KafkaException as exc:
                # A leader moving (a new topic, a broker restart) is over in moments.
                error = exc.args[0] if exc.args else None
                code = error.code() if isinstance(error, KafkaError) else None
                if code not in _LEADER_MOVING or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def close(self) -> None:
        """Close the consumers on the probe's thread, then the thread."""

        def _close() -> None:
            for consumer in self._consumers.values():
                consumer.close()
            self._consumers.clear()

        self._thread.submit(_close).result(30)
        self._thread.shutdown(wait=True)
