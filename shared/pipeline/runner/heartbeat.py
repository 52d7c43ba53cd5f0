"""Heartbeats: what an instance tells the monitor (and so /workers and the alerts) about itself."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.contract.events import JobWait, WorkerHeartbeat, WorkerHeartbeatPayload
from shared.platform import waits


@dataclass
class RunnerStats:
    """Counters reported in heartbeats."""

    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    handed_back: int = (
        0  # left uncommitted at shutdown, having sent nothing (shared.platform.handback)
    )
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def heartbeat_event(
    *,
    service: str,
    instance_id: str,
    partitions: list[str],
    in_flight: int,
    stats: RunnerStats,
    stopping: bool = False,
) -> WorkerHeartbeat:
    """One heartbeat of an instance: who and where it is, what it owns and how it is doing."""
    payload = WorkerHeartbeatPayload(
        service=service,
        instance_id=instance_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        partitions=partitions,
        in_flight=in_flight,
        processed=stats.processed,
        failed=stats.failed,
        started_at=stats.started_at,
        stopping=stopping,
        waits=[
            JobWait(job_id=w.job_id, kind=w.kind, what=w.what, since=w.since, until=w.until)
            for w in waits.snapshot()
        ],
    )
    return WorkerHeartbeat(job_id=instance_id, producer=instance_id, payload=payload)
