"""Settings of the monitor."""

from __future__ import annotations

from pydantic import Field

from shared.runner import RunnerSettings
from shared.settings import DatabaseSettings


class MonitorSettings(RunnerSettings, DatabaseSettings):
    """Kafka, PostgreSQL and how patiently to wait for a job's first event."""

    # A product event can be read before its job's first event (different topics), and the
    # database may be briefly away: retry soon and often rather than dead-letter.
    retry_attempts: int = Field(default=10, ge=0, le=50)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=30.0, ge=0)
