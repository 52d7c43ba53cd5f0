"""Handing back at shutdown, wait by wait: every way a message waits for permission to make a
vendor call can be handed back while it has sent nothing, and gives back what it held; a message
that has sent something is never handed back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from shared.adapters.credentials import StaticToken
from shared.adapters.vendors.etsy import EtsyThrottle
from shared.adapters.vendors.gpu import BackendSlots, GpuScheduler
from shared.adapters.vendors.shopify import ShopifyClient
from shared.adapters.vendors.shopify.models import ThrottleStatus
from shared.domain.budget import LocalRateBudget, SharedRateBudget
from shared.platform import handback
from shared.platform.db import open_pool
from shared.platform.http import async_client
from tests.support.infra import free_port, unique


class Message:
    """One message's task, started as the runner starts it, with a stop switch."""

    def __init__(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self.stopping = False
        self.task, self.delivery = handback.start(work(), stopping=lambda: self.stopping)

    async def waiting(self) -> None:
        """Until the message is inside a wait for permission."""
        for _ in range(200):
            if self.delivery.waiting:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the message never waited for permission")

    async def stop_and_hand_back(self) -> None:
        """What the runner does on SIGTERM; the message must end at once, cancelled."""
        self.stopping = True
        assert self.delivery.hand_back()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 1.0)
        assert self.task.cancelled()


async def test_a_local_budget_wait_is_handed_back_and_its_slot_never_taken() -> None:
    budget = LocalRateBudget(1, 600.0)
    await budget.acquire()  # the one slot, held by a request in flight

    async def call() -> None:
        async with budget.slot():
            handback.mark_sent()

    message = Message(call)
    await message.waiting()
    await message.stop_and_hand_back()
    assert not message.delivery.sent
    assert budget._in_flight == 1  # only the holder's


async def test_a_shared_budget_wait_is_handed_back_without_a_grant(migrated_db: str) -> None:
    pool = await open_pool(migrated_db, max_size=2)
    name = unique("handback-budget")
    budget = SharedRateBudget(pool, name, limit=5, window_s=60.0)
    try:
        await budget.block(600)  # a 429's Retry-After: nobody sends for ten minutes

        async def call() -> None:
            async with budget.slot():
                handback.mark_sent()

        message = Message(call)
        await message.waiting()
        await asyncio.sleep(0.2)  # a few rounds of asking the database
        await message.stop_and_hand_back()
        await budget.aclose()
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM rate_grants WHERE name = %s", (name,))
            assert await cur.fetchone() == (0,)
    finally:
        await budget.aclose()
        await pool.close()


async def test_etsys_throttle_wait_is_handed_back() -> None:
    throttle = EtsyThrottle()
    throttle.pause(600)  # a spent second, or a 429's Retry-After

    message = Message(throttle.acquire)
    await message.waiting()
    await message.stop_and_hand_back()
    assert throttle._in_flight == 0 and not throttle._lock.locked()


async def test_shopifys_bucket_wait_is_handed_back_and_its_lock_let_go() -> None:
    # Nothing listens there: a request sent would fail the test's "nothing sent" check.
    client = ShopifyClient(
        shop_domain="pod.myshopify.com",
        token=StaticToken("shpat_test"),
        base_url=f"http://127.0.0.1:{free_port()}",
    )
    try:
        # The bucket as Shopify last reported it: empty, refilling at 1 point a second, and
        # this operation costs 100.
        client.throttle.update(
            ThrottleStatus.model_validate(
                {"currentlyAvailable": 0, "maximumAvailable": 1000, "restoreRate": 1}
            ),
            time.monotonic(),
        )
        client._costs["PodPublications"] = 100

        async def first() -> Any:
            return await client.graphql("PodPublications", "query { shop { id } }", {})

        async def second() -> Any:  # queued behind the first, for the client's lock
            return await client.graphql("PodPublications", "query { shop { id } }", {})

        a, b = Message(first), Message(second)
        await a.waiting()
        await b.waiting()
        await a.stop_and_hand_back()
        await b.stop_and_hand_back()
        assert not client._lock.locked()
        assert not (a.delivery.sent or b.delivery.sent)
    finally:
        await client.aclose()


async def test_a_gpu_queue_wait_is_handed_back_and_leaves_the_queue() -> None:
    backend = BackendSlots("http://comfyui", parallelism=1, depth=1)
    scheduler = GpuScheduler([backend])
    await scheduler.acquire(1)  # the backend is full

    message = Message(lambda: scheduler.acquire(1))
    await message.waiting()
    assert scheduler.waiting == 1
    await message.stop_and_hand_back()
    assert scheduler.waiting == 0 and backend.in_flight == 1


async def test_a_message_that_sent_something_is_not_handed_back() -> None:
    budget = LocalRateBudget(1, 600.0)
    await budget.acquire()

    second = asyncio.Event()

    async def two_calls() -> None:
        handback.mark_sent()  # the first call went out
        second.set()
        async with budget.slot():  # the second waits for budget
            pass

    message = Message(two_calls)
    await asyncio.wait_for(second.wait(), 1.0)
    await asyncio.sleep(0.05)
    message.stopping = True
    assert not message.delivery.hand_back()
    await asyncio.sleep(0.1)
    assert not message.task.done()
    message.task.cancel()  # what the grace's end does
    with pytest.raises(asyncio.CancelledError):
        await message.task


async def test_a_wait_entered_while_stopping_is_handed_back_even_with_room() -> None:
    budget = LocalRateBudget(10, 1.0)
    calls = 0

    async def call() -> None:
        nonlocal calls
        async with budget.slot():
            calls += 1

    message = Message(call)
    message.stopping = True  # stopping before it reached its first call
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(message.task, 1.0)
    assert message.delivery.handed_back and calls == 0 and budget._in_flight == 0


async def test_a_child_task_waiting_is_handed_back_with_its_message() -> None:
    """The generator renders a job's images in child tasks: one of them waiting for the GPU
    queue hands the whole message back."""
    backend = BackendSlots("http://comfyui", parallelism=1, depth=1)
    scheduler = GpuScheduler([backend])
    await scheduler.acquire(1)

    async def job() -> None:
        await asyncio.gather(scheduler.acquire(1), scheduler.acquire(1))

    message = Message(job)
    await message.waiting()
    await message.stop_and_hand_back()
    await asyncio.sleep(0)
    assert scheduler.waiting == 0


async def test_no_delivery_no_handback() -> None:
    """Outside a runner (a script, the API, start-up calls) permission() changes nothing."""
    assert handback.current() is None
    async with handback.permission():
        pass


async def test_a_request_marks_its_message_sent_even_when_it_fails() -> None:
    """Marked by the transport every vendor client sends through, as the request leaves: a
    refused connection still counts (the safe side: finish rather than hand back)."""

    async def call() -> None:
        async with async_client(base_url=f"http://127.0.0.1:{free_port()}") as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/")

    task, delivery = handback.start(call(), stopping=lambda: False)
    await task
    assert delivery.sent
