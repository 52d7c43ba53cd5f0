"""Wire models of the worker endpoints (camelCase, like the rest of the API)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from services.api.schemas.common import _Wire
from services.api.schemas.ops import WorkerView
from shared.contract.topics import StageName

__all__ = ["WorkerView"]


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
