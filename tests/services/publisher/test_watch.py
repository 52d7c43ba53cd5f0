"""The publication watcher against the Printify simulator's asynchronous Etsy shop and a real
PostgreSQL: confirmed, refused, never confirmed, and shared between instances."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.publisher.handler import ShopPublisher
from services.publisher.publications import Publications
from services.publisher.watch import (
    PublicationWatcher,
    publish_key,
    published_event,
    watching,
)
from shared.adapters.vendors.printify import PrintifyClient
from shared.contract.events import Event, ProductPublished, ProductPublishing, StageFailed
from shared.contract.topics import PUBLISHED, PUBLISHER
from shared.domain.ledger import Ledger
from simulators.process import SimulatorProcess
from tests.services.publisher.support import (
    CTX,
    channels_of,
    make_product,
    publish_calls,
    publisher,
)


class Emitted:
    """What a watcher produced, by topic (an in-process stand-in for the broker)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []

    async def __call__(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))

    def on(self, topic: str) -> list[Event]:
        return [e for t, e in self.events if t == topic]


@pytest.fixture
def channels(printify_sim: SimulatorProcess) -> Iterator[Any]:
    """Set the simulated channels' behaviour for one test; restored afterwards."""
    url = f"{printify_sim.url}/_sim/channels"
    before = httpx.get(url, timeout=5).json()

    def set_(**values: float) -> None:
        httpx.post(url, json=values, timeout=5).raise_for_status()

    yield set_
    httpx.post(url, json=before, timeout=5).raise_for_status()


@pytest.fixture
async def publications(ledger: Ledger) -> AsyncIterator[Publications]:
    pubs = Publications(ledger.pool)
    # Each test drives only its own rows: earlier tests' publications are settled first.
    async with ledger.pool.connection() as conn:
        await conn.execute("UPDATE publications SET state = 'failed' WHERE state = 'pending'")
    yield pubs


def watcher_for(
    client: PrintifyClient,
    ledger: Ledger,
    publications: Publications,
    emitted: Emitted,
    **kwargs: Any,
) -> PublicationWatcher:
    return PublicationWatcher(
        publications=publications,
        channels=channels_of(client),
        ledger=ledger,
        emit=emitted,
        check_min_s=0.05,
        check_max_s=0.2,
        **kwargs,
    )


async def drive(watcher: PublicationWatcher, done: Any, timeout: float, what: str) -> None:
    """Run the watcher's rounds until ``done()``, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if await watcher.run_once() == 0:
            await asyncio.sleep(0.02)


async def publish_to_etsy(
    handler: ShopPublisher,
    client: PrintifyClient,
) -> tuple[Any, ProductPublishing]:
    event = await make_product(client, auto_publish=True, channel="etsy")
    outputs = await handler(event, CTX)
    assert isinstance(outputs[0].event, ProductPublishing)
    return event, outputs[0].event


async def test_a_listing_the_channel_made_is_confirmed(
    client: PrintifyClient,
    ledger: Ledger,
    publications: Publications,
    printify_sim: SimulatorProcess,
) -> None:
    emitted = Emitted()
    watcher = watcher_for(client, ledger, publications, emitted)
    event, _ = await publish_to_etsy(publisher(client, ledger, first_check_s=0), client)
    p = event.payload
    # Etsy lists it 0.2 s later: until then the product is locked and nothing is confirmed.
    await watcher.run_once()
    assert emitted.on(PUBLISHED) == []

    await drive(watcher, lambda: emitted.on(PUBLISHED), 10, "the confirmation")

    external = (await client.get_product(p.shop_id, p.product_id)).external
    [confirmed] = emitted.on(PUBLISHED)
    assert isinstance(confirmed, ProductPublished) and external is not None
    assert confirmed.payload.external_id == external.id
    assert confirmed.payload.handle == external.handle
    assert (confirmed.payload.handle or "").startswith("https://www.etsy.com/listing/")
    # The same event id as any other path would give it: the monitor counts it once.
    same = published_event(event, external_id="x", handle=None)
    assert confirmed.event_id == same.event_id
    assert emitted.on(PUBLISHER.dlq) == []
    assert publish_calls(printify_sim, p.product_id) == 1
    assert publish_calls(printify_sim, p.product_id, "channel_listed") == 1

    # Settled: no more checks; a redelivered ProductCreated now answers "published".
    assert await watcher.run_once() == 0
    again = await publisher(client, ledger)(event, CTX)
    assert (again[0].event.event_id, again[0].event.payload) == (
        confirmed.event_id,
        confirmed.payload,
    )


async def test_a_listing_the_channel_refused_fails_with_the_reason_and_can_be_replayed(
    client: PrintifyClient,
    ledger: Ledger,
    publications: Publications,
    printify_sim: SimulatorProcess,
    channels: Any,
) -> None:
    channels(failure_rate=1.0)
    emitted = Emitted()
    watcher = watcher_for(client, ledger, publications, emitted)
    handler = publisher(client, ledger, first_check_s=0)
    event, _ = await publish_to_etsy(handler, client)
    p = event.payload

    await drive(watcher, lambda: emitted.on(PUBLISHER.dlq), 10, "the failure")

    assert emitted.on(PUBLISHED) == []
    [failed] = emitted.on(PUBLISHER.dlq)
    assert isinstance(failed, StageFailed)
    f = failed.payload
    assert f.stage == "publisher" and not f.retryable
    assert f.error_class == "PublicationRefused"
    assert "without a listing on etsy" in f.message
    assert (f.image_index, f.product_type) == (p.image_index, p.product_type)
    # What a replay re-produces: the ProductCreated, onto the publisher's input.
    assert f.input_event == event.model_dump(mode="json")
    assert (f.input_topic, f.input_offset) == (CTX.topic, CTX.offset)
    # The publish call is forgotten: the replay (the channel accepting now) publishes anew.
    assert await ledger.get(publish_key(event)) is None
    channels(failure_rate=0.0)
    replayed = await handler(event, CTX)
    assert isinstance(replayed[0].event, ProductPublishing)
    assert publish_calls(printify_sim, p.product_id) == 2
    await drive(watcher, lambda: emitted.on(PUBLISHED), 10, "the replay's confirmation")
    assert publish_calls(printify_sim, p.product_id, "channel_refused") == 1


async def test_a_publication_never_confirmed_fails_at_its_deadline(
    client: PrintifyClient,
    ledger: Ledger,
    publications: Publications,
    channels: Any,
) -> None:
    channels(publish_ms=600_000)  # the channel is stuck
    emitted = Emitted()
    watcher = watcher_for(client, ledger, publications, emitted)
    handler = publisher(client, ledger, confirm_timeout_s=1.0, first_check_s=0)
    await publish_to_etsy(handler, client)
    started = time.monotonic()

    await drive(watcher, lambda: emitted.on(PUBLISHER.dlq), 10, "the deadline")

    assert time.monotonic() - started >= 0.5  # not before the deadline
    [failed] = emitted.on(PUBLISHER.dlq)
    assert isinstance(failed, StageFailed)
    assert "etsy did not confirm the publication within 1s" in failed.payload.message
    assert emitted.on(PUBLISHED) == []


async def test_instances_share_the_publications_each_checked_by_one_at_a_time(
    client: PrintifyClient,
    ledger: Ledger,
    publications: Publications,
    channels: Any,
) -> None:
    channels(publish_ms=600_000)
    handler = publisher(client, ledger, first_check_s=0)
    events = [(await publish_to_etsy(handler, client))[0] for _ in range(6)]
    ours = {e.job_id for e in events}
    claims = await asyncio.gather(*(publications.claim_due(limit=3, lease_s=30) for _ in range(3)))
    claimed = [pub.job_id for batch in claims for pub in batch if pub.job_id in ours]
    assert sorted(claimed) == sorted(ours)  # every one claimed, none twice
    # Leased: nobody else checks them until the lease runs out (a crashed instance's are then
    # taken over).
    assert await publications.claim_due(limit=10, lease_s=30) == []


async def test_a_sleeping_watcher_wakes_for_a_publication_recorded_here(
    client: PrintifyClient,
    ledger: Ledger,
    publications: Publications,
) -> None:
    """Nothing is pending, so the running watcher sleeps for up to ``idle_max_s`` (10 min).
    A publication recorded by this process wakes it; it then sleeps only until that row's
    first check is due and confirms it, minutes before the sleep would have ended."""
    emitted = Emitted()
    watcher = watcher_for(client, ledger, publications, emitted, idle_max_s=600)
    # The same Publications as the watcher's: recording a row is what wakes it.
    handler = publisher(client, ledger, publications=publications, first_check_s=0.3)
    async with watching(watcher):
        await asyncio.sleep(0.5)  # its first round found nothing: it sleeps
        event, _ = await publish_to_etsy(handler, client)
        # Confirmed, then settled: the watcher emits before it marks the row, so the row is
        # still leased for a moment after the event is out.
        deadline = time.monotonic() + 30
        while not emitted.on(PUBLISHED) or await publications.next_due_in() is not None:
            assert time.monotonic() < deadline, "the watcher slept through a new publication"
            await asyncio.sleep(0.05)
    [confirmed] = emitted.on(PUBLISHED)
    assert confirmed.job_id == event.job_id


async def test_a_row_that_cannot_be_read_is_settled_failed_and_never_stops_the_others(
    client: PrintifyClient,
    ledger: Ledger,
    publications: Publications,
    printify_sim: SimulatorProcess,
) -> None:
    """A publication whose recorded event this version cannot read (an older shape, a row
    written by hand) is settled as failed with the reason; the watcher goes on confirming the
    rest (before, every claim raised on it and nothing was ever confirmed again)."""
    async with ledger.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO publications (job_id, image_index, product_type, product_id, shop_id,"
            " sales_channel, event, confirm_by, next_check_at)"
            " VALUES ('unreadable-1', 0, 'mug', 'p-old', 's1', 'etsy', '{\"v\": 0}',"
            " now() + interval '1 hour', now())"
        )
    emitted = Emitted()
    watcher = watcher_for(client, ledger, publications, emitted)
    await publish_to_etsy(publisher(client, ledger, first_check_s=0), client)

    await drive(watcher, lambda: emitted.on(PUBLISHED), 10, "the readable one's confirmation")

    async with ledger.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT state, error FROM publications WHERE job_id = 'unreadable-1'"
        )
        state, error = (await cur.fetchone()) or (None, None)
    assert state == "failed"
    assert "cannot be read" in (error or "")
