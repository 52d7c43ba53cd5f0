"""What a stage's handler sees of the runner: its outputs, its input's context, its settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import Field

from shared.contract.events import Event
from shared.platform.settings import KafkaSettings

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Output:
    """One event a handler wants produced, and the topic it goes to."""

    topic: str
    event: Event


@dataclass(frozen=True)
class MessageContext:
    """Where the input came from; handlers use it for logs and idempotency keys."""

    topic: str
    partition: int
    offset: int
    attempt: int
    instance_id: str


Handler = Callable[[E, MessageContext], Awaitable[Sequence[Output]]]


class RunnerSettings(KafkaSettings):
    """Knobs of the shared runner (each service's settings extend this)."""

    max_in_flight: int = Field(
        default=64, ge=1, le=10_000, description="Messages worked on at once, per input band"
    )
    buffer_per_band: int = Field(
        default=0, ge=0, description="Fetched messages held per band; 0 = max(512, 4 x in-flight)"
    )
    # Non-blocking retries through the stage's delay topics (the seed's 3 retries, 60 s base).
    retry_attempts: int = Field(default=3, ge=0, le=50)
    retry_base_delay_s: float = Field(default=60.0, ge=0)
    retry_max_delay_s: float = Field(default=3600.0, ge=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    # Every beat is a produce, a fetch and a fold in the monitor: at 5 s, a tenth of the idle
    # stack's CPU (bench/idle.py: 4.7 % of a core in all, 4.3 % at 10 s).
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    commit_interval_ms: int = Field(default=500, ge=50)
    # A long poll returns as soon as data arrives: a longer wait costs no pickup latency, only
    # fewer empty fetches (idle CPU of the stage and the broker: five idle consumers cost the
    # broker 2.3 % of a core at 1 s, 2.0 % at 5 s). What it delays is a partition resumed while
    # a fetch is out: never a band resumed after backpressure (it resumes with half its buffer
    # still to work through), nor a due retry (its message is held, not refetched), only the
    # messages behind a retry in its delay topic, by one wait at most.
    fetch_wait_max_ms: int = Field(default=5000, ge=1, le=10_000)
    poll_timeout_s: float = Field(default=1.0, gt=0, le=30)
    busy_poll_s: float = Field(default=0.05, gt=0, le=5)
    instance_id: str | None = None
    group_id_prefix: str = "pod"
    # The KIP-848 protocol (`consumer`) rebalances incrementally; `classic` for older brokers.
    group_protocol: str = Field(default="consumer", pattern="^(consumer|classic)$")
    # Per-topic ranges: every instance gets partitions of every topic (each priority band and
    # each delay topic). KIP-848's default `uniform` may hand one instance whole topics.
    group_assignor: str = Field(default="range", pattern="^(range|uniform)$")
