"""A Kafka producer for code outside the stage runner: acked sends and its poll thread."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from confluent_kafka import KafkaException, Message, Producer

from shared.runner import close_producer, make_producer, produce_async
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge a message in time (or refused it)."""


class EventProducer:
    """Produces messages and waits for the broker's ack; owns the thread serving callbacks."""

    def __init__(self, settings: KafkaSettings, *, client_id: str | None = None) -> None:
        self._producer: Producer = make_producer(
            settings, client_id=client_id or f"producer-{uuid.uuid4().hex[:8]}"
        )
        self._stop = threading.Event()
        # Delivery callbacks fire inside poll(); without this thread no ack ever arrives.
        self._thread = threading.Thread(target=self._pump, name="event-producer", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(1.0)

    async def enqueue(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> asyncio.Future[Message]:
        """Hand one message to the producer; the future resolves on the broker's ack."""
        loop = asyncio.get_running_loop()
        return await produce_async(self._producer, loop, topic, value, key=key, headers=headers)

    async def send(self, topic: str, value: bytes, *, key: str, timeout: float) -> None:
        """Produce one message and return once the broker acknowledged it (acks=all).

        Raises BrokerUnavailable when no ack came within ``timeout`` seconds or the delivery
        failed. After a timeout the message may still be delivered later; callers say so.
        """
        loop = asyncio.get_running_loop()
        try:
            fut = await asyncio.wait_for(
                produce_async(self._producer, loop, topic, value, key=key.encode()), timeout
            )
            await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"no acknowledgement from Kafka within {timeout:g}s") from exc
        except KafkaException as exc:
            raise BrokerUnavailable(f"Kafka refused the message: {exc.args[0].name()}") from exc

    def close(self, flush_timeout: float) -> None:
        """Flush what is queued (bounded), then stop the poll thread."""
        remaining = self._producer.flush(flush_timeout)
        self._stop.set()
        self._thread.join(5)
        close_producer(self._producer, remaining)
        if remaining:
            logger.warning("producer closed with undelivered messages count=%d", remaining)
        else:
            logger.info("producer closed")
