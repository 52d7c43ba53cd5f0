"""The ``metrics_minute`` table: per-minute rollups of counters and histograms, and gauge
samples; and ``metric_totals``: each counter's and histogram's running total. The monitor adds
to both in one transaction (:mod:`services.monitor.metrics`) and expires minutes only (a day's
partition at a time: :mod:`shared.adapters.store.retention`); the API
reads minutes for ``GET /metrics?name=`` and ``/stats``' lag, and totals for the Prometheus
exposition, whose counters must never fall when old minutes expire (Prometheus would read a
reset).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)

# Upper bounds (seconds) of the duration histograms' buckets; the last one catches the rest.
DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 3600, math.inf)
# A gauge not sampled for this long is not reported (the monitor is away: its values are stale).
GAUGE_FRESH_S = 300.0

_UPSERT = """
INSERT INTO metrics_minute AS m (name, labels, minute, kind, count, sum, min, max, last, buckets)
VALUES (%(name)s, %(labels)s, date_trunc('minute', %(at)s::timestamptz), %(kind)s, %(count)s,
        %(sum)s, %(min)s, %(max)s, %(last)s, %(buckets)s)
ON CONFLICT (name, labels, minute) DO UPDATE SET
    count = m.count + EXCLUDED.count,
    sum = m.sum + EXCLUDED.sum,
    min = LEAST(m.min, EXCLUDED.min),
    max = GREATEST(m.max, EXCLUDED.max),
    last = EXCLUDED.last,
    buckets = CASE
        WHEN m.buckets IS NULL THEN EXCLUDED.buckets
        WHEN EXCLUDED.buckets IS NULL THEN m.buckets
        ELSE (SELECT jsonb_object_agg(
                  k, COALESCE((m.buckets ->> k)::bigint, 0)
                     + COALESCE((EXCLUDED.buckets ->> k)::bigint, 0))
              FROM jsonb_object_keys(m.buckets || EXCLUDED.buckets) AS k)
    END,
    updated_at = now()
"""

# The fields of add_rows' tuples, in order.
_UPSERT_FIELDS = ("name", "labels", "at", "kind", "count", "sum", "min", "max", "last", "buckets")

_ADD_TOTAL = """
INSERT INTO metric_totals AS t (name, labels, kind, count, sum, buckets)
VALUES (%(name)s, %(labels)s, %(kind)s, %(count)s, %(sum)s, %(buckets)s)
ON CONFLICT (name, labels) DO UPDATE SET
    count = t.count + EXCLUDED.count,
    sum = t.sum + EXCLUDED.sum,
    buckets = CASE
        WHEN t.buckets IS NULL THEN EXCLUDED.buckets
        WHEN EXCLUDED.buckets IS NULL THEN t.buckets
        ELSE (SELECT jsonb_object_agg(
                  k, COALESCE((t.buckets ->> k)::bigint, 0)
                     + COALESCE((EXCLUDED.buckets ->> k)::bigint, 0))
              FROM jsonb_object_keys(t.buckets || EXCLUDED.buckets) AS k)
    END,
    updated_at = now()
"""

_METRIC_POINTS = """
SELECT name, labels, minute AS timestamp, kind, count,
       CASE kind WHEN 'counter' THEN count::double precision
                 WHEN 'histogram' THEN sum / NULLIF(count, 0)
                 ELSE last END AS value
FROM metrics_minute WHERE name = %(name)s
ORDER BY minute DESC, labels::text LIMIT %(limit)s
"""

_EXPOSITION_TOTALS = """
SELECT name, kind, labels, labels::text AS key, count, sum, buckets FROM metric_totals
"""

_EXPOSITION_GAUGES = """
SELECT DISTINCT ON (name, labels) name, labels, labels::text AS key, last
FROM metrics_minute
WHERE kind = 'gauge' AND minute >= now() - make_interval(secs => %(fresh_s)s)
ORDER BY name, labels, minute DESC
"""

_LATEST_LAG = """
SELECT DISTINCT ON (labels) labels ->> 'stage' AS stage, last
FROM metrics_minute
WHERE name = 'consumer_lag' AND minute >= now() - make_interval(secs => %(fresh_s)s)
ORDER BY labels, minute DESC
"""

_COUNTS_SINCE = """
SELECT name, sum(count)::bigint AS n FROM metrics_minute
WHERE minute >= %(since)s AND kind <> 'gauge'
GROUP BY name ORDER BY name
"""


def bucket_label(bound: float) -> str:
    """The ``le`` label of a bucket bound: ``"5"``, ``"0.5"``, ``"+Inf"``."""
    if math.isinf(bound):
        return "+Inf"
    return f"{bound:g}"


def bucket_of(value: float, bounds: Sequence[float] = DURATION_BUCKETS) -> str:
    """The label of the first bucket whose upper bound holds ``value``."""
    for bound in bounds:
        if value <= bound:
            return bucket_label(bound)
    return "+Inf"


async def set_gauge(
    conn: AsyncConnection[Any],
    name: str,
    labels: Mapping[str, str],
    value: float,
    at: datetime,
) -> None:
    """Record one sample of a gauge; the minute's ``last`` is the value it reads as."""
    await set_gauges(conn, [(name, labels, value)], at)


async def set_gauges(
    conn: AsyncConnection[Any], samples: list[tuple[str, Mapping[str, str], float]], at: datetime
) -> None:
    """Record one sample of each gauge ``(name, labels, value)`` in one round trip (sorted, so
    two monitor instances lock the same minutes in the same order)."""
    rows = sorted(
        (
            (name, Jsonb(dict(labels)), at, "gauge", 1, value, value, value, value, None)
            for name, labels, value in samples
        ),
        key=lambda r: (r[0], sorted(r[1].obj.items())),
    )
    await add_rows(conn, rows)


class _Total(TypedDict):
    """A running total's row to add to (:data:`_ADD_TOTAL`'s parameters)."""

    name: str
    labels: Jsonb
    kind: str
    count: int
    sum: float
    buckets: Jsonb | None


async def add_rows(conn: AsyncConnection[Any], rows: list[tuple[Any, ...]]) -> None:
    """Add rows ``(name, labels, at, kind, count, sum, min, max, last, buckets)`` to their
    minutes, and the counters' and histograms' among them to their running totals, in the
    caller's transaction: a total is then added to exactly when, and as often as, its minutes
    are. Locks come in one order: minutes as the caller sorted them, then totals sorted here
    (the caller adds once per transaction)."""
    params = [dict(zip(_UPSERT_FIELDS, row, strict=True)) for row in rows]
    totals: dict[tuple[str, str], _Total] = {}
    for p in params:
        if p["kind"] == "gauge":
            continue
        labels = p["labels"].obj if isinstance(p["labels"], Jsonb) else p["labels"]
        key = (p["name"], json.dumps(labels, sort_keys=True))
        total = totals.setdefault(
            key,
            _Total(name=p["name"], labels=Jsonb(labels), kind=p["kind"], count=0, sum=0.0,
                   buckets=None),
        )  # fmt: skip
        total["count"] += p["count"]
        total["sum"] += p["sum"]
        buckets = p["buckets"].obj if isinstance(p["buckets"], Jsonb) else p["buckets"]
        if buckets:
            merged = dict(total["buckets"].obj) if total["buckets"] is not None else {}
            for le, n in buckets.items():
                merged[le] = merged.get(le, 0) + int(n)
            total["buckets"] = Jsonb(merged)
    async with conn.cursor() as cur:
        await cur.executemany(_UPSERT, params)
        if totals:
            await cur.executemany(_ADD_TOTAL, [totals[k] for k in sorted(totals)])


class MetricPointRecord(TypedDict):
    """One metric's one minute (:data:`_METRIC_POINTS`)."""

    name: str
    labels: dict[str, str]
    timestamp: datetime
    kind: str
    count: int
    value: float | None  # count, average or latest sample; None: a histogram that saw none


async def metric_points(
    pool: AsyncConnectionPool, name: str, limit: int
) -> list[MetricPointRecord]:
    """A metric's latest ``limit`` per-minute rows (every label set), newest first."""
    rows = class_row(MetricPointRecord)
    async with pool.connection() as conn, conn.cursor(row_factory=rows) as cur:
        await cur.execute(_METRIC_POINTS, {"name": name, "limit": limit})
        return await cur.fetchall()


@dataclass
class Series:
    """One metric's one label set: its running total (gauges: latest sample)."""

    name: str
    kind: str
    labels: dict[str, str]
    count: int = 0
    sum: float = 0.0
    value: float = 0.0
    buckets: dict[str, int] = field(default_factory=dict)


async def exposition_series(pool: AsyncConnectionPool) -> list[Series]:
    """Every series to expose, ordered by name and labels."""
    out: dict[tuple[str, str], Series] = {}
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_EXPOSITION_TOTALS)
        for r in await cur.fetchall():
            out[(r["name"], r["key"])] = Series(
                r["name"],
                r["kind"],
                r["labels"],
                int(r["count"]),
                float(r["sum"]),
                buckets={le: int(n) for le, n in (r["buckets"] or {}).items()},
            )
        await cur.execute(_EXPOSITION_GAUGES, {"fresh_s": GAUGE_FRESH_S})
        for r in await cur.fetchall():
            out[(r["name"], r["key"])] = Series(
                r["name"], "gauge", r["labels"], value=float(r["last"] or 0)
            )
    return [out[k] for k in sorted(out)]


async def latest_lag(conn: AsyncConnection[Any]) -> dict[str, int]:
    """The latest fresh ``consumer_lag`` sample per stage."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_LATEST_LAG, {"fresh_s": GAUGE_FRESH_S})
        return {r["stage"]: int(r["last"]) for r in await cur.fetchall() if r["last"] is not None}


async def counts_since(conn: AsyncConnection[Any], since: datetime) -> dict[str, int]:
    """How many times each counter counted, and each histogram observed, since ``since``."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_COUNTS_SINCE, {"since": since})
        return {r["name"]: int(r["n"]) for r in await cur.fetchall()}


# From the hourly counts (migration 0038): %(since)s is a whole hour.
_COUNTS_SINCE_HOUR = """
SELECT name, sum(count)::bigint AS n FROM metric_hours
WHERE hour >= %(since)s
GROUP BY name ORDER BY name
"""


async def counts_since_hour(conn: AsyncConnection[Any], since: datetime) -> dict[str, int]:
    """As :func:`counts_since` from a whole hour ``since``, read from the hourly counts: a few
    rows per counter and hour instead of one per minute."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_COUNTS_SINCE_HOUR, {"since": since})
        return {r["name"]: int(r["n"]) for r in await cur.fetchall()}
