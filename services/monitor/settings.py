"""Settings of the monitor."""

from __future__ import annotations

from pydantic import Field

from shared.runner import RunnerSettings
from shared.settings import DatabaseSettings


class MonitorSettings(RunnerSettings, DatabaseSettings):
    """Kafka, PostgreSQL and how patiently to wait for a job's first event."""

    # A product event can be read before its job's first event (different topics): wait and
    # retry rather than dead-letter it.
    handler_attempts: int = Field(default=30, ge=1, le=100)
    retry_base_delay_s: float = Field(default=0.2, ge=0)
    retry_max_delay_s: float = Field(default=5.0, ge=0)
