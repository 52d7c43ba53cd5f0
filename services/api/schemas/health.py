"""``/health``: the seed's health answer and the probes."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    Field,
)


class SeedWorkerHealth(BaseModel):
    """One instance in ``GET /health``'s ``workers`` (the seed's shape): ``index`` counts the
    instances of its ``service``; ``health`` holds ``healthy``, ``worker`` (its heartbeat is
    fresh), ``queue`` (Kafka), ``database`` and ``orchestrator`` (ComfyUI)."""

    id: str
    index: int
    service: str
    healthy: bool
    health: dict[str, bool]


class HealthView(BaseModel):
    """``GET /health`` answer: overall status and one short word per dependency; and the
    seed's ``healthy`` and ``workers``."""

    status: Literal["healthy", "unhealthy"]
    checks: dict[str, str]
    healthy: bool
    workers: list[SeedWorkerHealth] = Field(default_factory=list)


class ProbeView(BaseModel):
    """``GET /health/live`` and ``/health/ready`` answers."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
