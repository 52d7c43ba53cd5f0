"""Producing: the idempotent producer every stage (and the API) uses, and acked sends."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shared.platform.settings import KafkaSettings

logger = logging.getLogger(__name__)


def make_producer(settings: KafkaSettings, *, client_id: str) -> Producer:
    """An idempotent producer (acks=all) tuned for low latency; shared by runner and API."""
    return Producer(
        {
            **settings.client_config(),
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": settings.kafka_linger_ms,
            "compression.type": "lz4",
            "delivery.timeout.ms": 120_000,
            "error_cb": lambda err: logger.warning("kafka producer error error=%s", err),
        }
    )


def close_producer(producer: Producer, undelivered: int) -> None:
    """Destroy a producer whose flush has returned. Left to the garbage collector it would keep
    reconnecting to an unreachable broker for as long as the process lives; what is still
    undelivered is dropped first, since close() would otherwise wait for it."""
    if undelivered:
        producer.purge()
        producer.flush(0)
    producer.close()


async def produce_async(
    producer: Producer,
    loop: asyncio.AbstractEventLoop,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> asyncio.Future[Message]:
    """Enqueue one message; the returned future resolves when the broker acknowledged it.

    Someone must call ``producer.poll()`` for the delivery callback to fire (the runner has a
    thread for it). Waits, rather than fails, while the local queue is full.
    """
    fut: asyncio.Future[Message] = loop.create_future()

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            loop.call_soon_threadsafe(_set_exception, fut, KafkaException(err))
        else:
            loop.call_soon_threadsafe(_set_result, fut, msg)

    while True:
        try:
            producer.produce(topic, value, key=key, headers=headers, on_delivery=on_delivery)
            return fut
        except BufferError:
            await asyncio.sleep(0.01)


def _set_result(fut: asyncio.Future[Message], msg: Message) -> None:
    if not fut.done():
        fut.set_result(msg)


def _set_exception(fut: asyncio.Future[Message], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


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

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: str,
        timeout: float,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Produce one message and return once the broker acknowledged it (acks=all).

        Raises BrokerUnavailable when no ack came within ``timeout`` seconds or the delivery
        failed. After a timeout the message may still be delivered later; callers say so.
        """
        loop = asyncio.get_running_loop()
        try:
            fut = await asyncio.wait_for(
                produce_async(
                    self._producer, loop, topic, value, key=key.encode(), headers=headers
                ),
                timeout,
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
