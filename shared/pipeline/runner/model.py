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
    # A long poll returns as soon as data arrives on a partition it asked for, so its length
    # is no pickup latency. But librdkafka keeps one fetch out per broker: a partition resumed
    # (after backpressure, behind a held retry) joins only the next one, so it waits out the
    # fetch already out whenever the partitions in that one are idle. At 5 s a stage working
    # through a one-band backlog stalled up to 5 s at each resume (the monitor's fold of 200
    # replayed jobs: 1.7-2.4 s, or 5-6.4 s in half the rounds; at 500 ms never over 2.4 s).
    # 500 ms is librdkafka's and Kafka's own default; the price is idle fetches (five idle
    # consumers cost the broker 2.0 % of a core at 5 s, 2.3 % at 1 s).
    fetch_wait_max_ms: int = Field(default=500, ge=1, le=10_000)
    poll_timeout_s: float = Field(default=1.0, gt=0, le=30)
    busy_poll_s: float = Field(default=0.05, gt=0, le=5)
    instance_id: str | None = None
    group_id_prefix: str = "pod"
    # The KIP-848 protocol (`consumer`) rebalances incrementally; `classic` for older brokers.
    group_protocol: str = Field(default="consumer", pattern="^(consumer|classic)$")
    # Per-topic ranges: every instance gets partitions of every topic (each priority band and
    # each delay topic). KIP-848's default `uniform` may hand one instance whole topics.
    group_assignor: str = Field(default="range", pattern="^(range|uniform)$")
