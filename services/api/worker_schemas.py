"""Wire models of the worker endpoints (camelCase, like the rest of the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from services.api.schemas import _Wire

StageName = Literal["generator", "printify", "publisher", "monitor"]


class WorkerView(_Wire):
    """One service instance as its heartbeats describe it."""

    id: str
    service: str
    host: str
    pid: int
    partitions: list[str]
    status: Literal["running", "stale", "stopped"]
    last_heartbeat: datetime
    started_at: datetime
    in_flight: int
    processed: int
    failed: int


class WorkerList(_Wire):
    workers: list[WorkerView]


class ScaleRequest(_Wire):
    """``POST /scale``: how many instances of one stage (or of every stage)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    service: StageName | None = None
    # Strict: JSON `false` is not 0 workers.
    worker_count: int = Field(strict=True, ge=0, le=64)


class CommandAccepted(_Wire):
    """The command is on the control topic; the worker-pool manager carries it out."""

    status: Literal["accepted"] = "accepted"
    command_id: str
    action: str
