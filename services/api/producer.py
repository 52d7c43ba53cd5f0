"""The API's Kafka side: the shared acked producer plus a broker probe."""

from __future__ import annotations

import asyncio
import uuid

from confluent_kafka import KafkaException

from shared.contract.topics import JOBS_BY_PRIORITY
from shared.pipeline.runner import BrokerUnavailable, EventProducer
from shared.platform.settings import KafkaSettings

__all__ = ["BrokerUnavailable", "JobProducer"]


class JobProducer(EventProducer):
    """The API's producer: job requests and control commands, and a readiness probe."""

    def __init__(self, settings: KafkaSettings, *, client_id: str | None = None) -> None:
        super().__init__(settings, client_id=client_id or f"api-{uuid.uuid4().hex[:8]}")

    async def check(self, timeout: float) -> str:
        """``ok`` when the broker answers and the job topics exist, else a short reason."""
        try:
            metadata = await asyncio.to_thread(self._producer.list_topics, None, timeout)
        except KafkaException as exc:
            return f"unreachable ({exc.args[0].name()})"
        missing = [t for t in JOBS_BY_PRIORITY if t not in metadata.topics]
        if missing:
            return "missing topics: " + ",".join(missing)
        return "ok"
