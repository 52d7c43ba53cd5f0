"""The side-effect ledger against the real PostgreSQL: claims, leases, once and concurrency.

Concurrent attempts of one key are serialised by a claim with a lease: one attempt holds it
across the side effect and the ``done`` record, a racing attempt waits (holding no connection)
until the row is done or the lease runs out. ``begin(..., lease_s=0)`` stands for an attempt
that crashed: its claim ends at once and leaves the row ``started``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from shared.domain.ledger import EffectKey, EffectState, Ledger, Result
from shared.platform.db import open_pool
from shared.platform.errors import PermanentError, RetryableError


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await open_pool(migrated_db, max_size=8)
    yield p
    await p.close()


@pytest.fixture
def ledger(pool: AsyncConnectionPool) -> Ledger:
    return Ledger(pool)


def new_key(step: str = "create", product_type: str = "tshirt") -> EffectKey:
    return EffectKey(f"ledger-{uuid.uuid4().hex[:12]}", 0, product_type, step)


class Effect:
    """A fake vendor call that counts how often it ran."""

    def __init__(self, result: Result, delay_s: float = 0.0) -> None:
        self.result = result
        self.delay_s = delay_s
        self.calls = 0

    async def __call__(self) -> Result:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return dict(self.result)


async def never_reconcile() -> Result | None:
    raise AssertionError("reconcile must not run for a new effect")


async def test_begin_tells_new_then_started_then_done(ledger: Ledger) -> None:
    key = new_key()
    first = await ledger.begin(key, lease_s=0)
    assert (first.state, first.result, first.attempts) == (EffectState.NEW, None, 1)
    again = await ledger.begin(key, lease_s=0)
    assert (again.state, again.result, again.attempts) == (EffectState.STARTED, None, 2)
    await ledger.complete(key, {"product_id": "p1"})
    done = await ledger.begin(key)
    assert (done.state, done.result, done.attempts) == (EffectState.DONE, {"product_id": "p1"}, 2)


async def test_a_live_claim_makes_others_wait_without_counting(ledger: Ledger) -> None:
    key = new_key()
    assert (await ledger.begin(key, owner="a", lease_s=60)).state is EffectState.NEW
    busy = await ledger.begin(key, owner="b")
    assert (busy.state, busy.attempts) == (EffectState.BUSY, 1)


async def test_keys_differ_by_every_part(ledger: Ledger) -> None:
    key = new_key()
    await ledger.complete(key, {"n": 1})
    for other in (
        EffectKey(key.job_id, 1, key.product_type, key.step),
        EffectKey(key.job_id, key.image_index, "hoodie", key.step),
        EffectKey(key.job_id, key.image_index, key.product_type, "publish"),
        EffectKey(key.job_id, key.image_index, "", "upload"),
    ):
        assert (await ledger.begin(other)).state is EffectState.NEW


async def test_complete_keeps_the_first_result_and_works_without_begin(ledger: Ledger) -> None:
    key = new_key()
    await ledger.complete(key, {"product_id": "first"})
    await ledger.complete(key, {"product_id": "second"})
    entry = await ledger.get(key)
    assert entry is not None
    assert (entry.state, entry.result) == (EffectState.DONE, {"product_id": "first"})
    assert await ledger.get(new_key()) is None


async def test_once_runs_the_effect_once_and_reuses_its_result(ledger: Ledger) -> None:
    key = new_key()
    effect = Effect({"product_id": "p-1", "variant_count": 3})
    first = await ledger.once(key, effect, never_reconcile)
    second = await ledger.once(key, effect, never_reconcile)
    assert first == second == {"product_id": "p-1", "variant_count": 3}
    assert effect.calls == 1


async def test_started_effect_found_by_reconcile_is_not_redone(ledger: Ledger) -> None:
    key = new_key()
    await ledger.begin(key, lease_s=0)  # an attempt that crashed after calling the vendor

    async def reconcile() -> Result | None:
        return {"product_id": "found"}

    effect = Effect({"product_id": "new"})
    assert await ledger.once(key, effect, reconcile) == {"product_id": "found"}
    assert effect.calls == 0
    entry = await ledger.get(key)
    assert entry is not None and entry.result == {"product_id": "found"}


async def test_started_effect_not_found_by_reconcile_is_done_again(ledger: Ledger) -> None:
    key = new_key()
    await ledger.begin(key, lease_s=0)  # an attempt that crashed before the vendor saw the call

    async def reconcile() -> Result | None:
        return None

    effect = Effect({"product_id": "new"})
    assert await ledger.once(key, effect, reconcile) == {"product_id": "new"}
    assert effect.calls == 1


async def test_started_effect_without_reconcile_is_done_again(ledger: Ledger) -> None:
    key = new_key("upload", "")
    await ledger.begin(key, lease_s=0)
    effect = Effect({"image_id": "u-1"})
    assert await ledger.once(key, effect) == {"image_id": "u-1"}
    assert effect.calls == 1


async def test_failed_effect_stays_started_and_the_next_attempt_reconciles(
    ledger: Ledger,
) -> None:
    key = new_key()

    async def failing() -> Result:
        raise PermanentError("rejected", vendor="printify", status=400)

    with pytest.raises(PermanentError):  # the handler's error class is kept, not wrapped
        await ledger.once(key, failing, never_reconcile)
    entry = await ledger.get(key)
    assert entry is not None and entry.state is EffectState.STARTED

    reconciled: list[bool] = []

    async def reconcile() -> Result | None:
        reconciled.append(True)
        return None

    effect = Effect({"product_id": "p"})
    assert await ledger.once(key, effect, reconcile) == {"product_id": "p"}
    assert reconciled == [True] and effect.calls == 1


@pytest.mark.parametrize("with_reconcile", [True, False])
async def test_concurrent_attempts_run_the_effect_once(
    ledger: Ledger, with_reconcile: bool
) -> None:
    key = new_key()
    # Slow enough that every attempt begins while the first one is still in the vendor call.
    effect = Effect({"product_id": "only-one"}, delay_s=0.3)

    async def reconcile() -> Result | None:
        # The vendor lookup of a racing attempt: it only sees what completed.
        return {"product_id": "only-one"} if effect.calls else None

    results = await asyncio.gather(
        *(ledger.once(key, effect, reconcile if with_reconcile else None) for _ in range(5))
    )
    assert effect.calls == 1
    assert all(r == {"product_id": "only-one"} for r in results)
    entry = await ledger.get(key)
    # One claim: the others waited for it and found the result.
    assert entry is not None and entry.state is EffectState.DONE and entry.attempts == 1


async def test_different_keys_do_not_wait_for_each_other(ledger: Ledger) -> None:
    both_in_flight = asyncio.Barrier(2)

    async def effect() -> Result:
        # Deadlocks (and times out) if the second key waited for the first key's lock.
        await asyncio.wait_for(both_in_flight.wait(), timeout=5)
        return {"ok": True}

    results = await asyncio.gather(ledger.once(new_key(), effect), ledger.once(new_key(), effect))
    assert list(results) == [{"ok": True}, {"ok": True}]  # typed a tuple, a list at run time


async def test_a_claim_held_too_long_gives_a_retryable_error(pool: AsyncConnectionPool) -> None:
    key = new_key()
    ledger = Ledger(pool, wait_timeout_s=0.2)
    await ledger.begin(key, owner="stuck-in-a-vendor-call", lease_s=60)
    effect = Effect({"x": 1})
    with pytest.raises(RetryableError, match="still claimed by another attempt"):
        await ledger.once(key, effect)
    assert effect.calls == 0


async def test_the_claim_of_a_crashed_attempt_runs_out_and_is_reconciled(ledger: Ledger) -> None:
    key = new_key()
    await ledger.begin(key, owner="crashed", lease_s=0.3)

    async def reconcile() -> Result | None:
        return {"product_id": "made-by-the-crashed-one"}

    effect = Effect({"product_id": "new"})
    result = await asyncio.wait_for(ledger.once(key, effect, reconcile), 10)
    assert result == {"product_id": "made-by-the-crashed-one"} and effect.calls == 0


async def test_a_long_call_keeps_its_claim(pool: AsyncConnectionPool) -> None:
    """The lease is renewed while the call runs: a racing attempt that comes after the
    first lease would have run out still waits, and reuses the result."""
    ledger = Ledger(pool, lease_s=0.3)
    key = new_key()
    effect = Effect({"product_id": "slow"}, delay_s=1.0)

    async def late() -> Result:
        await asyncio.sleep(0.6)
        return await ledger.once(key, effect, never_reconcile)

    results = await asyncio.gather(ledger.once(key, effect, never_reconcile), late())
    assert list(results) == [{"product_id": "slow"}] * 2
    assert effect.calls == 1


async def test_every_claim_held_at_once_is_kept_by_the_one_renewal(
    pool: AsyncConnectionPool,
) -> None:
    """A block of steps and a single call, each with its own owner, both outlive several
    leases: another process (a second ledger) finds every key still claimed, and after the
    renewals stop (the block and the call ended) nothing stays claimed."""
    ledger = Ledger(pool, lease_s=0.3)
    other = Ledger(pool, lease_s=0.3)
    block_keys = [new_key(), new_key()]
    single = new_key()
    release = asyncio.Event()

    async def slow() -> Result:
        await asyncio.wait_for(release.wait(), timeout=10)
        return {"ok": True}

    async def block() -> None:
        async with ledger.steps(block_keys) as steps:
            await steps.once(block_keys[0], slow)

    running = [asyncio.create_task(block()), asyncio.create_task(ledger.once(single, slow))]
    await asyncio.sleep(1.0)  # more than three leases: only the renewals can keep the claims
    for key in [*block_keys, single]:
        entry = await other.begin(key, owner="another-process", lease_s=0)
        assert entry.state is EffectState.BUSY, key
    release.set()
    await asyncio.wait_for(asyncio.gather(*running), timeout=10)
    # The unused step's claim was released and the used ones are done: none is busy.
    for key in [*block_keys, single]:
        entry = await other.begin(key, owner="another-process", lease_s=0)
        assert entry.state is not EffectState.BUSY, key


async def test_no_connection_is_held_during_the_call(migrated_db: str) -> None:
    """One pooled connection, two effects in their vendor calls at once."""
    small = await open_pool(migrated_db, max_size=1)
    try:
        ledger = Ledger(small, connection_timeout_s=2)
        both_in_flight = asyncio.Barrier(2)

        async def effect() -> Result:
            await asyncio.wait_for(both_in_flight.wait(), timeout=5)
            return {"ok": True}

        results = await asyncio.gather(
            ledger.once(new_key(), effect), ledger.once(new_key(), effect)
        )
        assert list(results) == [{"ok": True}] * 2
    finally:
        await small.close()


async def test_an_unreachable_database_gives_a_retryable_error() -> None:
    pool = AsyncConnectionPool(
        "postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, open=False
    )
    await pool.open(wait=False)
    try:
        ledger = Ledger(pool, connection_timeout_s=0.5)
        with pytest.raises(RetryableError):
            await ledger.begin(new_key())
    finally:
        await pool.close()


# ------------------------------------------------------------------ steps (claimed together)


def keys_of_one_image() -> list[EffectKey]:
    job = f"ledger-{uuid.uuid4().hex[:12]}"
    return [
        EffectKey(job, 0, "", "upload"),
        EffectKey(job, 0, "tshirt", "create"),
        EffectKey(job, 0, "tshirt", "price"),
    ]


async def test_steps_are_claimed_together_and_recorded_together(ledger: Ledger) -> None:
    upload, create, price = keys_of_one_image()
    effects = [Effect({"n": i}) for i in range(3)]
    async with ledger.steps([upload, create, price]) as steps:
        for key in (upload, create, price):
            # Claimed by the block before any call: another attempt would wait.
            assert (await ledger.begin(key, owner="someone-else")).state is EffectState.BUSY
        results = [
            await steps.once(k, e) for k, e in zip((upload, create, price), effects, strict=True)
        ]
        # Not recorded yet: a crash here leaves every step started, settled by the next try.
        assert (await ledger.get(create)).state is EffectState.STARTED  # type: ignore[union-attr]
    assert results == [{"n": 0}, {"n": 1}, {"n": 2}]
    for key, effect in zip((upload, create, price), effects, strict=True):
        entry = await ledger.get(key)
        assert entry is not None and entry.state is EffectState.DONE
        assert entry.result == effect.result
    # A redelivery calls nothing again.
    async with ledger.steps([upload, create, price]) as again:
        assert await again.once(create, never_called) == {"n": 1}
    assert [e.calls for e in effects] == [1, 1, 1]


async def never_called() -> Result:
    raise AssertionError("a recorded step must not run again")


async def test_a_failing_step_keeps_the_steps_before_and_frees_the_rest(ledger: Ledger) -> None:
    upload, create, price = keys_of_one_image()
    done = Effect({"image_id": "i1"})

    async def refused() -> Result:
        raise PermanentError("Printify said no")

    with pytest.raises(PermanentError):
        async with ledger.steps([upload, create, price]) as steps:
            await steps.once(upload, done)
            await steps.once(create, refused)
    up, cr, pr = [await ledger.get(k) for k in (upload, create, price)]
    assert up is not None and up.state is EffectState.DONE and up.result == {"image_id": "i1"}
    assert cr is not None and cr.state is EffectState.STARTED  # outcome unknown: reconcile next
    assert pr is not None and pr.state is EffectState.STARTED
    # Nothing is left claimed: the next attempt starts at once, without waiting for a lease.
    for key in (create, price):
        assert (await ledger.begin(key, owner="next")).state is EffectState.STARTED


async def test_a_block_waits_for_another_attempt_holding_its_steps(ledger: Ledger) -> None:
    upload, create, price = keys_of_one_image()
    slow = [Effect({"n": i}, delay_s=0.3) for i in range(3)]
    fast = [Effect({"n": 10 + i}) for i in range(3)]

    async def attempt(effects: list[Effect]) -> list[Result]:
        async with ledger.steps([upload, create, price]) as steps:
            return [
                await steps.once(k, e)
                for k, e in zip((upload, create, price), effects, strict=True)
            ]

    first = asyncio.create_task(attempt(slow))
    await asyncio.sleep(0.05)  # the first block holds its claims
    second = await attempt(fast)
    assert await first == second == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [e.calls for e in slow] == [1, 1, 1] and [e.calls for e in fast] == [0, 0, 0]


async def test_a_block_that_cannot_claim_every_step_holds_none_while_it_waits(
    pool: AsyncConnectionPool,
) -> None:
    # Another attempt holds `create` and, to finish it, needs `upload`: a block that kept
    # `upload` claimed (its record deferred) while waiting for `create` would wait in a circle.
    ledger = Ledger(pool, wait_timeout_s=5)
    upload, create, _ = keys_of_one_image()
    assert (await ledger.begin(create, owner="other")).state is EffectState.NEW
    uploaded = Effect({"image_id": "i1"})
    block_create = Effect({"product_id": "mine"})

    async def block() -> list[Result]:
        async with ledger.steps([upload, create]) as steps:
            return [await steps.once(upload, uploaded), await steps.once(create, block_create)]

    task = asyncio.create_task(block())
    for _ in range(100):  # until the block's upload ran
        if uploaded.calls:
            break
        await asyncio.sleep(0.02)
    # The other attempt gets `upload` (recorded already), then records its `create`.
    assert await ledger.once(upload, never_called) == {"image_id": "i1"}
    await ledger.complete(create, {"product_id": "theirs"})
    assert await task == [{"image_id": "i1"}, {"product_id": "theirs"}]
    assert (uploaded.calls, block_create.calls) == (1, 0)


class Made(BaseModel):
    """A result model, as a stage records it."""

    product_id: str
    variant_count: int


async def test_a_typed_result_is_recorded_as_json_and_read_back_as_its_model(
    ledger: Ledger,
) -> None:
    key = new_key()
    calls = 0

    async def make() -> Made:
        nonlocal calls
        calls += 1
        return Made(product_id="p1", variant_count=3)

    first = await ledger.once(key, make, model=Made)
    again = await ledger.once(key, make, model=Made)
    assert first == again == Made(product_id="p1", variant_count=3) and calls == 1
    entry = await ledger.get(key)
    assert entry is not None and entry.result == {"product_id": "p1", "variant_count": 3}
    async with ledger.steps([key]) as steps:
        assert await steps.once(key, make, model=Made) == first
    assert calls == 1


async def test_a_recorded_result_its_model_cannot_read_is_a_permanent_error(
    ledger: Ledger,
) -> None:
    key = new_key()
    await ledger.complete(key, {"product_id": "p1"})  # an older version's record

    async def make() -> Made:
        raise AssertionError("a done effect is not made again")

    with pytest.raises(PermanentError, match=r"Made cannot read.*step=create"):
        await ledger.once(key, make, model=Made)


async def test_settled_waits_out_an_effect_in_flight_without_claiming_it(ledger: Ledger) -> None:
    key = new_key("publish")
    assert await ledger.settled(key) is None  # never begun
    release = asyncio.Event()

    async def slow() -> Result:
        await release.wait()
        return {"listing": "L-1"}

    running = asyncio.create_task(ledger.once(key, slow))
    while await ledger.get(key) is None:  # the claim is committed before the call
        await asyncio.sleep(0.01)
    waiting = asyncio.create_task(ledger.settled(key))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the call still holds its claim
    release.set()
    seen = await asyncio.wait_for(waiting, 10)
    assert seen is not None and (seen.state, seen.result) == (EffectState.DONE, {"listing": "L-1"})
    assert await running == {"listing": "L-1"}

    # An attempt that failed lets its claim go: settled answers at once, as started.
    failed = new_key("publish", "mug")

    async def refuse() -> Result:
        raise PermanentError("no")

    with pytest.raises(PermanentError):
        await ledger.once(failed, refuse)
    after = await asyncio.wait_for(ledger.settled(failed), 2)
    assert after is not None and after.state is EffectState.STARTED
