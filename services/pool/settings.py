"""Settings of the worker-pool manager."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import KafkaSettings, StateSettings
from shared.topics import STAGES


class PoolSettings(KafkaSettings, StateSettings):
    """How many instances of each stage to run and how to restart them (the seed's
    ``workerPool``: WORKER_COUNT, restart after RESTART_DELAY_S at most MAX_RESTARTS times)."""

    worker_count: int = Field(default=1, ge=0, le=64)
    # Per-stage overrides of WORKER_COUNT (WORKER_COUNT_GENERATOR, ...).
    worker_count_generator: int | None = Field(default=None, ge=0, le=64)
    worker_count_printify: int | None = Field(default=None, ge=0, le=64)
    worker_count_publisher: int | None = Field(default=None, ge=0, le=64)
    worker_count_monitor: int | None = Field(default=None, ge=0, le=64)
    restart_delay_s: float = Field(default=5.0, ge=0)
    max_restarts: int = Field(default=3, ge=0)
    pool_id: str | None = Field(default=None, description="Its name in /workers; unset = host")
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    stop_timeout_s: float = Field(default=40.0, gt=0)
    pool_log_dir: Path | None = Field(
        default=None, description="One log file per instance here; unset = inherit stdout"
    )

    def workers_for(self, stage: str) -> int:
        """Instances of ``stage`` to start: its override, else WORKER_COUNT."""
        if stage not in STAGES:
            raise KeyError(stage)
        override = getattr(self, f"worker_count_{stage}", None)
        return self.worker_count if override is None else int(override)

    @property
    def pool_dir(self) -> Path:
        """Where the manager keeps its pid records and status file."""
        return self.pod_state_dir / "pool"
