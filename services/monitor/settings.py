"""Settings of the monitor."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.contract.topics import ChannelSettings
from shared.pipeline.runner import RunnerSettings
from shared.platform.settings import DatabaseSettings, WorkerLivenessSettings


class MonitorSettings(RunnerSettings, DatabaseSettings, WorkerLivenessSettings, ChannelSettings):
    """Kafka, PostgreSQL, how patiently to wait for a job's first event, metrics and alerts."""

    # A product event can be read before its job's first event (different topics), and the
    # database may be briefly away: retry soon and often rather than dead-letter.
    retry_attempts: int = Field(default=10, ge=0, le=50)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=30.0, ge=0)

    # A batch of events is folded in one transaction of a few round trips; while events trickle
    # in, the fold waits this long to gather more (a job's status shows that much later).
    fold_linger_ms: float = Field(default=25.0, ge=0, le=1000)

    # Metrics: per-minute rollups kept this long (a day's partition goes once all of it is older).
    metrics_retention_hours: float = Field(default=168, gt=0)

    # Retention (services/monitor/retention.py; the disk each implies is in the README). The
    # log of a job older than this is dropped a month's partition at a time (its summary stays).
    job_events_retention_days: float = Field(default=30, gt=0)
    # Dead letters replayed this long ago (pending ones are kept until replayed).
    dead_letters_retention_days: float = Field(default=30, gt=0)
    # Idempotency-Key rows of POST /jobs: a retry with the same key after this is a new job.
    idempotency_retention_days: float = Field(default=30, gt=0)
    # Finished side-effect ledger rows: a replay of the job's events after this would call the
    # vendor again, so it outlives Kafka's topic retention (7 days) with a wide margin; a job
    # with a dead letter not yet replayed keeps its rows.
    ledger_retention_days: float = Field(default=90, gt=0)
    # Partitions made ahead of time (periods: months of job_events, days of metrics_minute).
    partitions_ahead: int = Field(default=2, ge=1, le=24)
    # How often retention runs, rows per DELETE, and how long dropping a partition may wait for
    # its lock (others queue behind it meanwhile: it gives up and tries again next round).
    retention_interval_s: float = Field(default=300, gt=0)
    retention_batch_rows: int = Field(default=5000, ge=1, le=100_000)
    retention_lock_timeout_s: float = Field(default=2.0, gt=0, le=60)

    # Alerts (and gauge sampling) are evaluated this often.
    alert_interval_s: float = Field(default=10.0, gt=0)
    job_alert_ttl_s: float = Field(default=3600.0, gt=0)
    # A reviewed job's image waiting for the seller this long raises an alert (review_waiting).
    review_alert_after_s: float = Field(default=24 * 3600.0, gt=0)
    # A death or a scale the pool manager reported stays an open alert this long.
    worker_event_window_s: float = Field(default=300.0, gt=0)
    error_rate_window_s: float = Field(default=300.0, gt=0)
    error_rate_threshold: float = Field(default=0.2, ge=0, le=1)
    error_rate_min_jobs: int = Field(default=5, ge=1)
    dlq_growth_threshold: int = Field(default=10, ge=1)
    dlq_growth_window_s: float = Field(default=300.0, gt=0)
    lag_threshold: int = Field(default=1000, ge=1)
    # Slack-compatible incoming webhook; its URL holds a token, so it is never logged.
    alert_webhook_url: SecretStr | None = None
    alert_webhook_attempts: int = Field(default=3, ge=1, le=10)
    alert_webhook_backoff_s: float = Field(default=1.0, ge=0)
    alert_webhook_timeout_s: float = Field(default=5.0, gt=0)
