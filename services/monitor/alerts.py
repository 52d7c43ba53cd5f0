"""Alert evaluation: conditions evaluated periodically, one open alert per condition.

Each condition yields the subjects it fires for right now (an instance, a stage, a job, ...).
Its alert's ``condition_key`` is ``<namespace><kind>:<subject>``; a partial unique index keeps
one open alert per key. A firing subject without an open alert opens one; an open alert whose
subject no longer fires is resolved. A condition that cannot be evaluated (e.g. Kafka away for
the lag) leaves its alerts as they are.

Opened and resolved alerts go to an optional ``notify`` callback (the webhook delivery of
:mod:`services.monitor.notify`); :mod:`services.monitor.ops` runs the evaluation periodically.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.monitor.settings import MonitorSettings
from shared.adapters.store import alerts as alert_store
from shared.adapters.store import credentials as credential_store
from shared.contract.topics import STAGES

logger = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
Action = Literal["opened", "resolved"]

WORKER_DOWN = "worker_down"
STAGE_DOWN = "stage_down"
JOB_FAILED = "job_failed"
ERROR_RATE = "error_rate"
DLQ_GROWTH = "dlq_growth"
CONSUMER_LAG = "consumer_lag"
WORKER_ERRORS = "worker_errors"
# The seed's worker alerts, from the pool manager's reports and the heartbeats.
WORKER_ERROR = "worker_error"
NO_WORKERS_RUNNING = "no_workers_running"
HIGH_WORKER_ERRORS = "high_worker_errors"
POOL_SCALED = "pool_scaled"
# A vendor refused an account's OAuth grant: its work waits until the seller authorises again.
CREDENTIAL_REVOKED = "credential_revoked"
# A reviewed job's images have waited for the seller longer than REVIEW_ALERT_AFTER_S.
REVIEW_WAITING = "review_waiting"
KINDS = (
    WORKER_DOWN,
    STAGE_DOWN,
    JOB_FAILED,
    ERROR_RATE,
    DLQ_GROWTH,
    CONSUMER_LAG,
    WORKER_ERRORS,
    WORKER_ERROR,
    NO_WORKERS_RUNNING,
    HIGH_WORKER_ERRORS,
    POOL_SCALED,
    CREDENTIAL_REVOKED,
    REVIEW_WAITING,
)

# Alerts for failed jobs are per job: a burst of failures should not write thousands of rows
# per evaluation (the error-rate alert covers a burst).
MAX_JOB_ALERTS = 200

# What the conditions read. %(now)s is the evaluation's time; %(stale)s the heartbeat before
# which an instance is silent, %(forget)s the one before which it is forgotten; %(since)s the
# start of a condition's window.

# Instances silent, but not yet forgotten.
_SILENT_INSTANCES = """
SELECT instance_id, service, host, pid, last_heartbeat FROM workers
WHERE status = 'running' AND last_heartbeat < %(stale)s AND last_heartbeat >= %(forget)s
"""

# The stages among %(services)s with a live instance.
_LIVE_SERVICES = """
SELECT DISTINCT service FROM workers WHERE status = 'running'
    AND last_heartbeat >= %(stale)s AND last_heartbeat <= %(now)s AND service = ANY(%(services)s)
"""

# The stage instances not forgotten, each with whether it is live.
_INSTANCES = """
SELECT instance_id, service, last_heartbeat >= %(stale)s AS live FROM workers
WHERE status = 'running' AND last_heartbeat >= %(forget)s AND last_heartbeat <= %(now)s
    AND service = ANY(%(services)s)
"""

# Each instance's latest death the pool manager reported within the window.
_LATEST_EXITS = """
SELECT DISTINCT ON (instance_id) instance_id, service, data, occurred_at
FROM worker_events WHERE kind = 'exited' AND occurred_at > %(since)s AND occurred_at <= %(now)s
ORDER BY instance_id, occurred_at DESC
"""

# Each stage's latest scale the pool manager reported within the window.
_LATEST_SCALES = """
SELECT DISTINCT ON (service) service, data, occurred_at FROM worker_events
WHERE kind = 'scaled' AND occurred_at > %(since)s AND occurred_at <= %(now)s
ORDER BY service, occurred_at DESC
"""

# The instances that died within the window.
_EXITED = """
SELECT DISTINCT instance_id FROM worker_events WHERE kind = 'exited'
    AND occurred_at > %(since)s AND occurred_at <= %(now)s
"""

# The running instances' heartbeat counters of failed messages.
_FAILED_COUNTERS = """
SELECT instance_id, service, failed FROM workers WHERE status = 'running'
    AND last_heartbeat >= %(forget)s AND last_heartbeat <= %(now)s
"""

_FAILED_JOBS = """
SELECT job_id, status, error, finished_at FROM jobs
WHERE status IN ('failed', 'partial') AND finished_at > %(since)s AND finished_at <= %(now)s
ORDER BY finished_at DESC LIMIT %(limit)s
"""

_JOB_OUTCOMES = """
SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status IN ('failed', 'partial')) AS failed
FROM jobs WHERE status IN ('completed', 'failed', 'partial')
    AND finished_at > %(since)s AND finished_at <= %(now)s
"""

# Jobs whose images have waited for the seller's review since before %(since)s (one alert per
# job, the oldest waits first); a job cancelled or decided drops out.
_REVIEWS_WAITING = """
SELECT r.job_id, count(*) AS images, min(r.awaiting_since) AS since FROM image_reviews r
JOIN jobs j ON j.job_id = r.job_id AND j.cancelled_at IS NULL
WHERE r.state = 'awaiting' AND r.awaiting_since < %(since)s
GROUP BY r.job_id ORDER BY min(r.awaiting_since) LIMIT %(limit)s
"""

# Dead letters not replayed, per stage, where at least %(threshold)s came within the window.
_DLQ_GROWTH = """
SELECT stage, count(*) AS grown FROM dead_letters WHERE replayed_at IS NULL
    AND failed_at > %(since)s AND failed_at <= %(now)s
GROUP BY stage HAVING count(*) >= %(threshold)s
"""


@dataclass(frozen=True)
class Firing:
    """A condition firing for one subject now."""

    subject: str
    severity: Severity
    message: str
    details: dict[str, object] = field(default_factory=dict)


class AlertRow(TypedDict):
    """An alert as its row holds it: what an evaluation opened or resolved, and notifies."""

    id: int
    condition_key: str
    type: str
    severity: str
    message: str
    details: dict[str, object]
    status: str
    created_at: NotRequired[datetime]
    updated_at: NotRequired[datetime]
    resolved_at: NotRequired[datetime | None]
    notified_at: NotRequired[datetime | None]


def alert_row(row: Mapping[str, Any]) -> AlertRow:
    """The row ``shared.adapters.store.alerts`` returned, as an :class:`AlertRow`."""
    return AlertRow(
        id=row["id"],
        condition_key=row["condition_key"],
        type=row["type"],
        severity=row["severity"],
        message=row["message"],
        details=dict(row["details"]),
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
        notified_at=row["notified_at"],
    )


@dataclass
class Changes:
    """What one evaluation opened and resolved."""

    opened: list[AlertRow] = field(default_factory=list)
    resolved: list[AlertRow] = field(default_factory=list)


Notify = Callable[[AlertRow, Action], None]


class _Conditions:
    """The reads behind a group of conditions: the database and the settings' windows."""

    def __init__(
        self, pool: AsyncConnectionPool, settings: MonitorSettings, services: tuple[str, ...]
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.services = services

    def _event_window(self, now: datetime) -> dict[str, datetime]:
        """The pool manager's reports a condition looks at: within the window up to ``now``."""
        return {"since": now - timedelta(seconds=self.settings.worker_event_window_s), "now": now}

    async def _fetch(self, sql: str, params: Mapping[str, object]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()


class WorkerConditions(_Conditions):
    """Conditions on the stage instances: their heartbeats, the deaths and scales the pool
    manager reports, their counters of failed messages."""

    def __init__(
        self, pool: AsyncConnectionPool, settings: MonitorSettings, services: tuple[str, ...]
    ) -> None:
        super().__init__(pool, settings, services)
        # instance -> (last failed counter seen, when it last grew)
        self._failed_seen: dict[str, tuple[int, datetime | None]] = {}

    async def workers_down(self, now: datetime) -> dict[str, Firing]:
        s = self.settings
        rows = await self._fetch(
            _SILENT_INSTANCES,
            {
                "stale": now - timedelta(seconds=s.worker_stale_s),
                "forget": now - timedelta(seconds=s.worker_forget_s),
            },
        )
        return {
            r["instance_id"]: Firing(
                r["instance_id"],
                "critical",
                f"{r['service']} instance {r['instance_id']} on {r['host']} stopped sending "
                f"heartbeats (last {r['last_heartbeat'].isoformat()})",
                {
                    "instanceId": r["instance_id"],
                    "service": r["service"],
                    "host": r["host"],
                    "pid": r["pid"],
                    "lastHeartbeat": r["last_heartbeat"].isoformat(),
                },
            )
            for r in rows
        }

    async def stages_down(self, now: datetime) -> dict[str, Firing]:
        rows = await self._fetch(
            _LIVE_SERVICES,
            {
                "stale": now - timedelta(seconds=self.settings.worker_stale_s),
                "now": now,
                "services": list(self.services),
            },
        )
        live = {r["service"] for r in rows}
        return {
            service: Firing(
                service,
                "critical",
                f"no live {service} instance: its work is not being processed",
                {"stage": service},
            )
            for service in self.services
            if service not in live
        }

    async def worker_exits(self, now: datetime) -> dict[str, Firing]:
        """An instance the pool manager saw die within the window (its latest death)."""
        rows = await self._fetch(_LATEST_EXITS, self._event_window(now))
        firing = {}
        for r in rows:
            d = r["data"]
            if d.get("restarting", True):
                after = f"restarted (restart {d['restarts'] + 1} of {d['max_restarts']})"
            else:
                after = f"not restarted: it died {d['restarts'] + 1} times"
            firing[r["instance_id"]] = Firing(
                r["instance_id"],
                "warning" if d.get("restarting", True) else "critical",
                f"{r['service']} instance {r['instance_id']} died ({d['exit']}); {after}",
                {
                    "instanceId": r["instance_id"],
                    "service": r["service"],
                    "exit": d["exit"],
                    "exitCode": d.get("exit_code"),
                    "restarts": d["restarts"],
                    "restarting": d.get("restarting", True),
                    "at": r["occurred_at"].isoformat(),
                },
            )
        return firing

    async def pool_scales(self, now: datetime) -> dict[str, Firing]:
        """A stage the pool manager scaled within the window (its latest scale), for the
        record (info)."""
        rows = await self._fetch(_LATEST_SCALES, self._event_window(now))
        return {
            r["service"]: Firing(
                r["service"],
                "info",
                f"{r['service']} scaled from {r['data']['from_count']} to "
                f"{r['data']['to_count']} instances",
                {
                    "service": r["service"],
                    "from": r["data"]["from_count"],
                    "to": r["data"]["to_count"],
                    "at": r["occurred_at"].isoformat(),
                },
            )
            for r in rows
        }

    async def _instances(self, now: datetime) -> list[dict[str, Any]]:
        """The stage instances heard from within the forget window, each with ``live``."""
        s = self.settings
        return await self._fetch(
            _INSTANCES,
            {
                "stale": now - timedelta(seconds=s.worker_stale_s),
                "forget": now - timedelta(seconds=s.worker_forget_s),
                "now": now,
                "services": list(self.services),
            },
        )

    async def no_workers(self, now: datetime) -> dict[str, Firing]:
        """Not one stage instance is alive: nothing is being processed at all."""
        if not self.services or any(r["live"] for r in await self._instances(now)):
            return {}
        return {
            "pool": Firing(
                "pool",
                "critical",
                "no worker is running: no stage instance sent a heartbeat within "
                f"{self.settings.worker_stale_s:g}s",
                {"services": list(self.services)},
            )
        }

    async def high_worker_errors(self, now: datetime) -> dict[str, Firing]:
        """More than half of the instances are in error: silent, or died within the window."""
        instances = await self._instances(now)
        died = {r["instance_id"] for r in await self._fetch(_EXITED, self._event_window(now))}
        names = {r["instance_id"] for r in instances} | died
        errors = {r["instance_id"] for r in instances if not r["live"]} | died
        if not names or 2 * len(errors) <= len(names):
            return {}
        return {
            "pool": Firing(
                "pool",
                "critical",
                f"{len(errors)} of {len(names)} worker instances are in error "
                "(silent or died recently)",
                {"errors": sorted(errors), "instances": len(names)},
            )
        }

    async def worker_errors(self, now: datetime) -> dict[str, Firing]:
        # The heartbeat's `failed` counter only grows within an instance's life; an increase
        # means the runner gave up on messages (unhandled errors). The first sighting of an
        # instance only sets the baseline: when its earlier failures happened is unknown.
        s = self.settings
        rows = await self._fetch(
            _FAILED_COUNTERS, {"forget": now - timedelta(seconds=s.worker_forget_s), "now": now}
        )
        window = timedelta(seconds=s.error_rate_window_s)
        firing: dict[str, Firing] = {}
        seen_now = set()
        for r in rows:
            instance, failed = r["instance_id"], int(r["failed"])
            seen_now.add(instance)
            previous = self._failed_seen.get(instance)
            grew_at = previous[1] if previous else None
            if previous is not None and failed > previous[0]:
                grew_at = now
                logger.warning(
                    "worker failures grew instance=%s service=%s failed=%d before=%d",
                    instance,
                    r["service"],
                    failed,
                    previous[0],
                )
            self._failed_seen[instance] = (failed, grew_at)
            if grew_at is not None and now - grew_at < window:
                firing[instance] = Firing(
                    instance,
                    "warning",
                    f"{r['service']} instance {instance} reports failed messages "
                    f"({failed} in total)",
                    {"instanceId": instance, "service": r["service"], "failed": failed},
                )
        for gone in set(self._failed_seen) - seen_now:
            del self._failed_seen[gone]
        return firing


class PipelineConditions(_Conditions):
    """Conditions on the jobs' pipeline: failed jobs, the error rate, dead letters, consumer
    lag, and vendor grants refused."""

    async def credentials_revoked(self, now: datetime) -> dict[str, Firing]:
        """An account whose grant the vendor refused: every call to it waits (nothing is
        dead-lettered), so only the seller's new authorisation moves that work again."""
        return {
            r.account: Firing(
                r.account,
                "critical",
                f"{r.vendor} refused the engine's authorisation ({r.reason or 'revoked'}): "
                f"its work waits until the seller authorises the app again and configures the "
                f"new grant",
                {
                    "account": r.account,
                    "vendor": r.vendor,
                    "reason": r.reason,
                    "revokedAt": r.revoked_at.isoformat(),
                },
            )
            for r in await credential_store.revoked(self.pool)
        }

    async def reviews_waiting(self, now: datetime) -> dict[str, Firing]:
        """Reviewed jobs whose images wait for the seller longer than REVIEW_ALERT_AFTER_S:
        nothing of them is listed until the seller decides."""
        after = timedelta(seconds=self.settings.review_alert_after_s)
        rows = await self._fetch(_REVIEWS_WAITING, {"since": now - after, "limit": MAX_JOB_ALERTS})
        return {
            r["job_id"]: Firing(
                r["job_id"],
                "warning",
                f"job {r['job_id']}: {r['images']} image(s) have waited for review since "
                f"{r['since']:%Y-%m-%d %H:%M} UTC (more than {after}); nothing of them is listed "
                "until they are approved",
                {"jobId": r["job_id"], "images": r["images"], "since": r["since"].isoformat()},
            )
            for r in rows
        }

    async def job_failures(self, now: datetime) -> dict[str, Firing]:
        rows = await self._fetch(
            _FAILED_JOBS,
            {
                "since": now - timedelta(seconds=self.settings.job_alert_ttl_s),
                "now": now,
                "limit": MAX_JOB_ALERTS,
            },
        )
        return {
            r["job_id"]: Firing(
                r["job_id"],
                "warning",
                f"job {r['job_id']} ended {r['status']}: {r['error'] or 'no error recorded'}",
                {"jobId": r["job_id"], "status": r["status"]},
            )
            for r in rows
        }

    async def error_rate(self, now: datetime) -> dict[str, Firing]:
        s = self.settings
        rows = await self._fetch(
            _JOB_OUTCOMES, {"since": now - timedelta(seconds=s.error_rate_window_s), "now": now}
        )
        completed, failed = rows[0]["completed"], rows[0]["failed"]
        total = completed + failed
        if total < s.error_rate_min_jobs or failed / total <= s.error_rate_threshold:
            return {}
        rate = failed / total
        return {
            "all": Firing(
                "all",
                "critical",
                f"{rate:.0%} of jobs failed in the last {s.error_rate_window_s:g}s "
                f"({failed} of {total}; threshold {s.error_rate_threshold:.0%})",
                {"rate": round(rate, 4), "failed": failed, "completed": completed},
            )
        }

    async def dlq_growth(self, now: datetime) -> dict[str, Firing]:
        s = self.settings
        rows = await self._fetch(
            _DLQ_GROWTH,
            {
                "since": now - timedelta(seconds=s.dlq_growth_window_s),
                "now": now,
                "threshold": s.dlq_growth_threshold,
            },
        )
        return {
            r["stage"]: Firing(
                r["stage"],
                "warning",
                f"{r['grown']} new dead letters from {r['stage']} in the last "
                f"{s.dlq_growth_window_s:g}s (threshold {s.dlq_growth_threshold})",
                {"stage": r["stage"], "grown": r["grown"]},
            )
            for r in rows
        }

    def lag(self, lag: Mapping[str, int]) -> dict[str, Firing]:
        threshold = self.settings.lag_threshold
        return {
            stage: Firing(
                stage,
                "warning",
                f"{stage} is {value} messages behind (threshold {threshold})",
                {"stage": stage, "lag": value},
            )
            for stage, value in lag.items()
            if value > threshold
        }


class AlertEvaluator:
    """Evaluates every condition and keeps the ``alerts`` table in step with them.

    ``namespace`` prefixes every condition key this evaluator owns (tests use it to stay out of
    each other's way); ``services`` are the stages that must each have a live instance.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        settings: MonitorSettings,
        *,
        namespace: str = "",
        services: Iterable[str] = tuple(STAGES),
        notify: Notify | None = None,
        started_at: datetime | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.namespace = namespace
        self.services = tuple(services)
        self.notify = notify
        # Right after a start, instances have not sent a heartbeat yet: no liveness alerts.
        self.started_at = started_at
        self.workers = WorkerConditions(pool, settings, self.services)
        self.pipeline = PipelineConditions(pool, settings, self.services)

    async def evaluate(
        self, now: datetime | None = None, *, lag: Mapping[str, int] | None = None
    ) -> Changes:
        """Evaluate every condition at ``now``; ``lag`` per stage, or None when unknown."""
        now = now or datetime.now(UTC)
        s = self.settings
        conditions: list[tuple[str, Callable[[datetime], Awaitable[dict[str, Firing] | None]]]]
        conditions = [
            (JOB_FAILED, self.pipeline.job_failures),
            (ERROR_RATE, self.pipeline.error_rate),
            (DLQ_GROWTH, self.pipeline.dlq_growth),
            (WORKER_ERRORS, self.workers.worker_errors),
            (WORKER_ERROR, self.workers.worker_exits),
            (POOL_SCALED, self.workers.pool_scales),
            (CREDENTIAL_REVOKED, self.pipeline.credentials_revoked),
            (REVIEW_WAITING, self.pipeline.reviews_waiting),
        ]
        in_grace = (
            self.started_at is not None
            and (now - self.started_at).total_seconds() < s.worker_stale_s
        )
        if not in_grace:
            conditions += [
                (WORKER_DOWN, self.workers.workers_down),
                (STAGE_DOWN, self.workers.stages_down),
                (NO_WORKERS_RUNNING, self.workers.no_workers),
                (HIGH_WORKER_ERRORS, self.workers.high_worker_errors),
            ]
        changes = Changes()
        # One read of what is open: a condition neither firing nor open needs no transaction
        # (at rest that is every one of them: 33 round trips every tick saved).
        async with self.pool.connection() as conn:
            open_now = await alert_store.any_open(conn, self.namespace)
        for kind, condition in conditions:
            firing = await condition(now)
            if firing is not None:
                await self._reconcile(kind, firing, now, changes, open_now)
        if lag is not None:
            await self._reconcile(CONSUMER_LAG, self.pipeline.lag(lag), now, changes, open_now)
        return changes

    async def _reconcile(
        self,
        kind: str,
        firing: dict[str, Firing],
        now: datetime,
        changes: Changes,
        open_now: set[str],
    ) -> None:
        prefix = f"{self.namespace}{kind}:"
        if not firing and not any(k.startswith(prefix) for k in open_now):
            return  # nothing to open, nothing to resolve (another instance's opens: next tick)
        opened: list[AlertRow] = []
        resolved: list[AlertRow] = []
        async with self.pool.connection() as conn, conn.transaction():
            open_keys = await alert_store.open_keys(conn, prefix)
            for subject, fire in firing.items():
                key = prefix + subject
                if key in open_keys:
                    # Still firing: keep the message and numbers current, nothing to notify.
                    await alert_store.refresh(conn, open_keys[key], fire.message, fire.details, now)
                    continue
                new = await alert_store.open_alert(
                    conn, key, kind, fire.severity, fire.message, fire.details, now
                )
                if new is not None:
                    opened.append(alert_row(new))
            stale = [i for k, i in open_keys.items() if k.removeprefix(prefix) not in firing]
            if stale:
                resolved = [alert_row(r) for r in await alert_store.resolve(conn, stale, now)]
        for row in opened:
            logger.warning(
                "alert opened id=%d key=%s severity=%s message=%s",
                row["id"],
                row["condition_key"],
                row["severity"],
                row["message"],
            )
        for row in resolved:
            logger.info("alert resolved id=%d key=%s", row["id"], row["condition_key"])
        if self.notify is not None:
            for row in opened:
                self.notify(row, "opened")
            for row in resolved:
                self.notify(row, "resolved")
        changes.opened += opened
        changes.resolved += resolved
