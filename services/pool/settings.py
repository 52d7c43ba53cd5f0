"""Settings of the worker-pool manager."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, create_model

from shared.contract.topics import STAGES, ChannelSettings
from shared.pipeline.acls import PrincipalPasswordSettings
from shared.platform.settings import KafkaSettings, PodSettings, StateSettings

if TYPE_CHECKING:
    _PerStage = PodSettings
else:
    # WORKER_COUNT_GENERATOR, ...: one optional override per stage of the registry.
    _PerStage = create_model(
        "_PerStage",
        __base__=PodSettings,
        **{
            f"worker_count_{stage}": (int | None, Field(default=None, ge=0, le=64))
            for stage in STAGES
        },
    )


class WorkerCountSettings(_PerStage):
    """How many instances of each stage: WORKER_COUNT, overridden per stage by
    WORKER_COUNT_<STAGE>."""

    worker_count: int = Field(default=1, ge=0, le=64)

    def workers_for(self, stage: str) -> int:
        """Instances of ``stage`` to start: its override, else WORKER_COUNT."""
        if stage not in STAGES:
            raise KeyError(stage)
        override = getattr(self, f"worker_count_{stage}", None)
        return self.worker_count if override is None else int(override)


class PoolSettings(
    KafkaSettings, StateSettings, WorkerCountSettings, ChannelSettings, PrincipalPasswordSettings
):
    """How many instances of each stage to run and how to restart them (the seed's
    ``workerPool``: WORKER_COUNT, restart after RESTART_DELAY_S at most MAX_RESTARTS times)."""

    restart_delay_s: float = Field(default=5.0, ge=0)
    max_restarts: int = Field(default=3, ge=0)
    pool_id: str | None = Field(default=None, description="Its name in /workers; unset = host")
    heartbeat_interval_s: float = Field(default=10.0, gt=0)  # as the stages' (RunnerSettings)
    stop_timeout_s: float = Field(default=40.0, gt=0)
    # When the manager stops because its own supervisor is gone (`make up` killed hard), the
    # broker and the database it started are going too: a stage draining against them would
    # only wait out its timeouts (a minute measured), so it gets this long before SIGKILL. Its
    # unfinished messages are uncommitted and redone by the next stack.
    orphan_stop_timeout_s: float = Field(default=5.0, gt=0)
    pool_log_dir: Path | None = Field(
        default=None, description="One log file per instance here; unset = inherit stdout"
    )

    @property
    def pool_dir(self) -> Path:
        """Where the manager keeps its pid records and status file."""
        return self.pod_state_dir / "pool"
