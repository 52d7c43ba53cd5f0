"""The Shopify channel's publisher as its process runs it (the real runner, Kafka, PostgreSQL,
the Shopify simulator made slow): a reviewed job's product is held, listed when the printify
stage reports it approved, and a cancel from seller.decisions that lands while the listing is
still being made waits for it and takes it down: product.withdrawn on ``published`` and nothing
live in the store's books."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from services.publisher.handler import accepts, direct_publisher
from services.publisher.publications import Publications
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify import ShopifyChannel
from shared.contract.events import (
    DecisionAction,
    Event,
    ProductPublished,
    ProductWithdrawn,
    parse_event,
)
from shared.contract.topics import (
    PRODUCTS_CREATED,
    PUBLISHED,
    PUBLISHERS,
    SELLER_DECISIONS,
    TOPIC_EVENTS,
)
from shared.domain.ledger import Ledger
from shared.pipeline.runner import MessageContext, Output, RunnerSettings, StageRunner
from tests.services.publisher.support import (
    Store,
    approved,
    decision,
    product_of,
    until,
)
from tests.support.kafka import end_offsets, produce


class Published:
    """The ``published`` topic from where it ended when the test began: one job's events."""

    def __init__(self, bootstrap: str, job_id: str) -> None:
        self.job_id = job_id
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"}
        )
        start = end_offsets(bootstrap, PUBLISHED)
        self.consumer.assign([TopicPartition(PUBLISHED, p, o) for p, o in start.items()])
        self.seen: list[Event] = []

    def read(self) -> list[Event]:
        carried = TOPIC_EVENTS[PUBLISHED]
        for msg in self.consumer.consume(100, 0.2):
            if msg.error() is None:
                event = parse_event(msg.value(), carried)
                if event.job_id == self.job_id:
                    self.seen.append(event)
        return self.seen


def only_job(
    job_id: str, handler: Callable[[Any, MessageContext], Awaitable[list[Output]]]
) -> Callable[[Any, MessageContext], Awaitable[list[Output]]]:
    """The handler for this test's job alone: the session's other tests' products on the same
    topics are theirs to publish."""

    async def handle(event: Any, ctx: MessageContext) -> list[Output]:
        return await handler(event, ctx) if event.job_id == job_id else []

    return handle


async def test_a_cancel_from_the_topic_wins_over_a_slow_listing_from_the_topic(
    client: PrintifyClient, ledger: Ledger, pipeline_topics: str
) -> None:
    store = Store(latency_ms=500)
    created = await product_of(client, review=True)
    job = created.job_id
    handler = direct_publisher(
        name="shopify",
        channel=ShopifyChannel(store.client, client),
        ledger=ledger,
        publications=Publications(ledger.pool, "shopify"),
    )
    settings = RunnerSettings(
        kafka_bootstrap_servers=pipeline_topics,
        group_id_prefix=f"t-{uuid.uuid4().hex[:8]}",
        commit_interval_ms=100,
        heartbeat_interval_s=5.0,
        fetch_wait_max_ms=100,
        shutdown_grace_s=5,
    )
    runner: StageRunner[Any] = StageRunner(
        stage=PUBLISHERS["shopify"],
        handler=only_job(job, handler),
        settings=settings,
        accept=accepts("shopify"),
    )
    published = Published(pipeline_topics, job)
    task = asyncio.create_task(runner.run())
    try:
        produce(pipeline_topics, PRODUCTS_CREATED, [created, approved(created)])

        async def being_listed() -> bool:
            return bool(await store.products())  # productSet made it; not yet on the store

        await until(being_listed, timeout=60, what="the listing being made")
        [making] = await store.products()
        assert making["published"] is False  # the publish is still in flight
        produce(pipeline_topics, SELLER_DECISIONS, [decision(job, DecisionAction.CANCEL)])

        async def withdrawn() -> list[Event]:
            return [e for e in published.read() if isinstance(e, ProductWithdrawn)]

        await until(withdrawn, timeout=60, what="product.withdrawn on published")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            isinstance(e, ProductPublished) for e in published.read()
        ):
            await asyncio.sleep(0.1)
    finally:
        runner.request_stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        books = await store.products()
        await store.aclose()
        published.consumer.close()

    [gone] = [e for e in published.seen if isinstance(e, ProductWithdrawn)]
    assert (gone.payload.channel, gone.payload.reason, gone.payload.was_listed) == (
        "shopify",
        "cancelled",
        True,
    )
    # Listed once (the publish in flight was let finish), then taken down: nothing live.
    assert sorted(e.type for e in published.seen) == ["product.published", "product.withdrawn"]
    assert books == []
