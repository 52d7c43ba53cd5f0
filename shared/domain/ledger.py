"""The side-effect ledger: each external call of a (job, image, product type, step) happens once.

Delivery is at-least-once, so a handler may run twice for one message, sometimes at the same
time (two consumers around a rebalance). Before an external call an attempt *claims* the step's
row: the row is recorded ``started`` (committed at once, so it survives a crash) with a lease in
the attempt's name. After the vendor answers, the row becomes ``done`` with the answer. Another
attempt then

- finds ``done``: reuses the recorded result, no call;
- finds a live claim: waits (without holding a connection) until it is done or its lease runs
  out, then looks again;
- claims a ``started`` row whose earlier claim ended without ``done`` (crash, timeout, error):
  that attempt's outcome is unknown, so it *reconciles* with the vendor first (looks for the
  effect) and calls again only when nothing is found;
- claims a new row: calls.

Claiming and completing are one statement each; the lease is renewed while a long call runs, and
released at once when the call fails. Nothing is locked while the vendor, or a rate budget in
front of it, is awaited.

A handler that makes several calls for one message (upload, create, price) takes them as one
:meth:`Ledger.steps`: every step is claimed in one round trip before the first call and every
result recorded in one round trip after the last. A crash in between leaves the steps
``started``, which the next attempt settles as above (reconcile, or call again where a duplicate
is harmless): the same guarantee as step by step, for two round trips instead of two per step.
A block claims all of its steps or none: when another attempt holds one of them, it lets the
rest go and runs step by step, so no attempt ever waits for a claim while holding another.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar, overload

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError

from shared.platform.errors import PermanentError, RetryableError

logger = logging.getLogger(__name__)

# upload, create, price, publish (through Printify) or, for a channel the engine lists on itself,
# publish:<channel> (shared.adapters.vendors.direct): a string, so that a new channel adds no step
# here. The side_effects table checks the form (migrations 0016, 0029):
# ``<verb>[:<channel>][@<tag>]``.
Step = str


def step_name(verb: str, *, channel: str | None = None, generation: int = 0, tag: str = "") -> Step:
    """A step's name: ``verb`` (upload, create, price, publish, delete, unpublish, reprice,
    approve), a channel's own (``publish:etsy``), of an image's later generation (``create@g2``:
    a regenerated image's products are new ones) or of one decision (``reprice@<tag>``: every
    reprice of a product happens once, and a later one happens again). Generation 0 and no tag
    give the names steps had before generations."""
    name = f"{verb}:{channel}" if channel else verb
    suffix = tag or (f"g{generation}" if generation else "")
    if tag and generation:
        suffix = f"g{generation}-{tag}"
    return f"{name}@{suffix}" if suffix else name


# A result as the row holds it (JSON). A caller that names its result's model (``model=``) gets
# that model back instead: dumped to JSON on the way in, validated again on the way out.
Result = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


def _stored(result: BaseModel | Result) -> Result:
    """A result as the row holds it."""
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


def _typed(key: EffectKey, model: type[M] | None, stored: Result) -> M | Result:
    """A recorded result as ``model`` (as it is without one); a row the model cannot read
    (recorded by an incompatible version) is a permanent error naming the key."""
    if model is None:
        return stored
    try:
        return model.model_validate(stored)
    except ValidationError as exc:
        raise PermanentError(
            f"side effect recorded as something {model.__name__} cannot read: "
            f"{key.describe()}: {exc.error_count()} error(s)"
        ) from None


# Claim the row unless it is done or claimed by a live lease; either way return the row and
# whether this statement claimed it. (The second SELECT sees the row as it was before the
# statement, which is what matters when the claim did not happen.)
_CLAIM = """
WITH claim AS (
    INSERT INTO side_effects AS s
        (job_id, image_index, product_type, step, claimed_by, claimed_until)
    VALUES (%(job)s, %(image)s, %(type)s, %(step)s, %(owner)s,
            clock_timestamp() + make_interval(secs => %(lease)s))
    ON CONFLICT (job_id, image_index, product_type, step) DO UPDATE
    SET attempts = s.attempts + 1, claimed_by = EXCLUDED.claimed_by,
        claimed_until = EXCLUDED.claimed_until, updated_at = now()
    WHERE s.state <> 'done'
      AND (s.claimed_until IS NULL OR s.claimed_until <= clock_timestamp()
           OR s.claimed_by = EXCLUDED.claimed_by)
    RETURNING s.state, s.result, s.attempts, true AS claimed
)
SELECT state, result, attempts, claimed FROM claim
UNION ALL
SELECT state, result, attempts, false FROM side_effects
WHERE job_id = %(job)s AND image_index = %(image)s
  AND product_type = %(type)s AND step = %(step)s
  AND NOT EXISTS (SELECT 1 FROM claim)
"""

# Record the answer; a `done` row keeps its first result (returned either way), so a late
# duplicate answer can never replace the one already handed downstream.
_COMPLETE = """
WITH up AS (
    INSERT INTO side_effects AS s (job_id, image_index, product_type, step, state, result)
    VALUES (%(job)s, %(image)s, %(type)s, %(step)s, 'done', %(result)s)
    ON CONFLICT (job_id, image_index, product_type, step) DO UPDATE
    SET state = 'done', result = EXCLUDED.result, claimed_by = NULL, claimed_until = NULL,
        updated_at = now()
    WHERE s.state <> 'done'
    RETURNING s.result
)
SELECT result FROM up
UNION ALL
SELECT result FROM side_effects
WHERE job_id = %(job)s AND image_index = %(image)s
  AND product_type = %(type)s AND step = %(step)s
  AND NOT EXISTS (SELECT 1 FROM up)
"""

# The same for several keys at once (a block of steps): one statement each, keys as arrays.
_CLAIM_MANY = """
WITH k AS (
    SELECT * FROM unnest(%(jobs)s::text[], %(images)s::int[], %(types)s::text[],
                         %(steps)s::text[])
        WITH ORDINALITY AS k(job_id, image_index, product_type, step, n)
),
claim AS (
    INSERT INTO side_effects AS s
        (job_id, image_index, product_type, step, claimed_by, claimed_until)
    SELECT job_id, image_index, product_type, step, %(owner)s,
           clock_timestamp() + make_interval(secs => %(lease)s)
    FROM k ORDER BY job_id, image_index, product_type, step
    ON CONFLICT (job_id, image_index, product_type, step) DO UPDATE
    SET attempts = s.attempts + 1, claimed_by = EXCLUDED.claimed_by,
        claimed_until = EXCLUDED.claimed_until, updated_at = now()
    WHERE s.state <> 'done'
      AND (s.claimed_until IS NULL OR s.claimed_until <= clock_timestamp()
           OR s.claimed_by = EXCLUDED.claimed_by)
    RETURNING s.job_id, s.image_index, s.product_type, s.step, s.state, s.result, s.attempts,
              true AS claimed
)
SELECT * FROM claim
UNION ALL
SELECT job_id, image_index, product_type, step, s.state, s.result, s.attempts, false
FROM k JOIN side_effects s USING (job_id, image_index, product_type, step)
WHERE NOT EXISTS (SELECT 1 FROM claim c
                  WHERE (c.job_id, c.image_index, c.product_type, c.step)
                      = (k.job_id, k.image_index, k.product_type, k.step))
"""

# Results as a JSON array in the keys' order (one jsonb value, not an array of them).
_COMPLETE_MANY = """
WITH k AS (
    SELECT k.*, r.result
    FROM unnest(%(jobs)s::text[], %(images)s::int[], %(types)s::text[], %(steps)s::text[])
        WITH ORDINALITY AS k(job_id, image_index, product_type, step, n)
    JOIN jsonb_array_elements(%(results)s) WITH ORDINALITY AS r(result, n)
      ON r.n = k.n
),
up AS (
    INSERT INTO side_effects AS s (job_id, image_index, product_type, step, state, result)
    SELECT job_id, image_index, product_type, step, 'done', result
    FROM k ORDER BY job_id, image_index, product_type, step
    ON CONFLICT (job_id, image_index, product_type, step) DO UPDATE
    SET state = 'done', result = EXCLUDED.result, claimed_by = NULL, claimed_until = NULL,
        updated_at = now()
    WHERE s.state <> 'done'
    RETURNING s.job_id, s.image_index, s.product_type, s.step, s.result
)
SELECT * FROM up
UNION ALL
SELECT job_id, image_index, product_type, step, s.result
FROM k JOIN side_effects s USING (job_id, image_index, product_type, step)
WHERE NOT EXISTS (SELECT 1 FROM up u
                  WHERE (u.job_id, u.image_index, u.product_type, u.step)
                      = (k.job_id, k.image_index, k.product_type, k.step))
"""

_RENEW_MANY = """
UPDATE side_effects s SET claimed_until = clock_timestamp() + make_interval(secs => %(lease)s)
FROM unnest(%(jobs)s::text[], %(images)s::int[], %(types)s::text[], %(steps)s::text[],
    %(owners)s::text[]) AS k(job_id, image_index, product_type, step, owner)
WHERE (s.job_id, s.image_index, s.product_type, s.step)
    = (k.job_id, k.image_index, k.product_type, k.step)
  AND s.claimed_by = k.owner AND s.state <> 'done'
"""

_RELEASE_MANY = """
UPDATE side_effects s SET claimed_until = NULL, claimed_by = NULL
FROM unnest(%(jobs)s::text[], %(images)s::int[], %(types)s::text[], %(steps)s::text[])
    AS k(job_id, image_index, product_type, step)
WHERE (s.job_id, s.image_index, s.product_type, s.step)
    = (k.job_id, k.image_index, k.product_type, k.step)
  AND s.claimed_by = %(owner)s AND s.state <> 'done'
"""

_STARTED_AT = """
SELECT started_at FROM side_effects
WHERE job_id = %(job)s AND image_index = %(image)s
  AND product_type = %(type)s AND step = %(step)s
"""

_GET = """
SELECT state, result, attempts FROM side_effects
WHERE job_id = %(job)s AND image_index = %(image)s
  AND product_type = %(type)s AND step = %(step)s
"""

# A row and whether an attempt holds a live claim on it (for a caller that waits it out).
_HELD = """
SELECT state, result, attempts,
       state <> 'done' AND claimed_until IS NOT NULL AND claimed_until > clock_timestamp()
FROM side_effects
WHERE job_id = %(job)s AND image_index = %(image)s
  AND product_type = %(type)s AND step = %(step)s
"""

_FORGET = """
DELETE FROM side_effects
WHERE job_id = %(job)s AND image_index = %(image)s
  AND product_type = %(type)s AND step = %(step)s
"""


@dataclass(frozen=True)
class EffectKey:
    """What must happen once: ``product_type`` is ``""`` for a step not done per type."""

    job_id: str
    image_index: int
    product_type: str
    step: Step

    def params(self) -> dict[str, object]:
        """The key as named SQL parameters."""
        return {
            "job": self.job_id,
            "image": self.image_index,
            "type": self.product_type,
            "step": self.step,
        }

    def describe(self) -> str:
        return (
            f"job_id={self.job_id} image_index={self.image_index} "
            f"product_type={self.product_type or '-'} step={self.step}"
        )


class EffectState(StrEnum):
    """Where a side effect stands, as :meth:`Ledger.begin` saw it."""

    NEW = "new"  # claimed, no earlier attempt: call
    STARTED = "started"  # claimed, an earlier attempt's outcome is unknown: reconcile, then call
    DONE = "done"  # recorded: reuse the result
    BUSY = "busy"  # another attempt holds a live claim: wait for it


@dataclass(frozen=True)
class LedgerEntry:
    """A ledger row as seen by one attempt; ``attempts`` counts every claim."""

    state: EffectState
    result: Result | None
    attempts: int


def _entry(row: tuple[str, Result | None, int, bool]) -> LedgerEntry:
    state, result, attempts, claimed = row
    if state == "done":
        return LedgerEntry(EffectState.DONE, result, attempts)
    if not claimed:
        return LedgerEntry(EffectState.BUSY, None, attempts)
    # Claims are exclusive, so a first claim means no call can have happened before ours.
    return LedgerEntry(EffectState.NEW if attempts == 1 else EffectState.STARTED, None, attempts)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Steps:
    """The steps of one :meth:`Ledger.steps` block (claimed together, recorded together)."""

    def __init__(
        self, ledger: Ledger, owner: str, claimed: dict[EffectKey, LedgerEntry] | None
    ) -> None:
        """``claimed``: the block's claims, each used by one step; None when the block could
        not claim every key, and each step then runs as :meth:`Ledger.once` does."""
        self.ledger = ledger
        self.owner = owner
        self.claimed = claimed
        self.keys = set(claimed or ())  # the keys whose claims the block renews
        self.results: dict[EffectKey, Result] = {}  # run here, to record on exit

    @overload
    async def once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[M]],
        reconcile: Callable[[], Awaitable[M | None]] | None = None,
        *,
        model: type[M],
    ) -> M: ...

    @overload
    async def once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[Result]],
        reconcile: Callable[[], Awaitable[Result | None]] | None = None,
    ) -> Result: ...

    async def once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[Any]],
        reconcile: Callable[[], Awaitable[Any]] | None = None,
        *,
        model: type[M] | None = None,
    ) -> M | Result:
        """:meth:`Ledger.once` for one of the block's keys; its result is recorded on exit."""
        if self.claimed is None or key not in self.claimed:
            stored = await self.ledger._once(key, _storing(do), _storing(reconcile))
        else:
            stored = await self._once(key, _storing(do), _storing(reconcile))
        return _typed(key, model, stored)

    async def _once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[Result | None]],
        reconcile: Callable[[], Awaitable[Result | None]] | None,
    ) -> Result:
        assert self.claimed is not None  # the caller checked the key is the block's
        entry = self.claimed.pop(key)
        if entry.state is EffectState.DONE:
            assert entry.result is not None
            return entry.result
        try:
            if entry.state is EffectState.STARTED and reconcile is not None:
                found = await reconcile()
                if found is not None:
                    logger.warning(
                        "side effect reconciled %s attempts=%d", key.describe(), entry.attempts
                    )
                    self.results[key] = found
                    return found
            result = await do()
            assert result is not None  # an effect answers; only a reconcile finds nothing
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.ledger._release([key], self.owner))
            raise
        self.results[key] = result
        return result

    async def settle(self) -> None:
        """Record every result (one round trip) and release the claims no step used.

        A result another attempt recorded first (only possible once our lease ran out) wins:
        ours was already handed on, so this raises RetryableError and the next attempt
        reuses the recorded ones.
        """
        keys = list(self.results)
        unused = [k for k, e in (self.claimed or {}).items() if e.state is not EffectState.DONE]
        recorded: dict[tuple[Any, ...], Any] = {}
        if keys:
            params = {**_arrays(keys), "results": Jsonb([self.results[k] for k in keys])}
            rows = await self.ledger._fetch_all(_COMPLETE_MANY, params)
            recorded = {tuple(row[:4]): row[4] for row in rows}
        if unused:
            await self.ledger._release(unused, self.owner)
        for key in keys:
            ours = json.loads(json.dumps(self.results[key]))  # as the row holds it
            theirs = recorded.get(_row_key(key))
            if theirs is not None and theirs != ours:
                raise RetryableError(
                    f"side effect recorded by another attempt meanwhile: {key.describe()}"
                )
            logger.info("side effect done %s", key.describe())


@overload
def _storing(
    call: Callable[[], Awaitable[BaseModel | Result | None]],
) -> Callable[[], Awaitable[Result | None]]: ...


@overload
def _storing(call: None) -> None: ...


def _storing(
    call: Callable[[], Awaitable[BaseModel | Result | None]] | None,
) -> Callable[[], Awaitable[Result | None]] | None:
    """``call`` answering in the form the row holds (a model's JSON)."""
    if call is None:
        return None

    async def stored() -> Result | None:
        result = await call()
        return None if result is None else _stored(result)

    return stored


def _arrays(keys: list[EffectKey]) -> dict[str, list[Any]]:
    """Keys as the array parameters of the statements for several keys."""
    return {
        "jobs": [k.job_id for k in keys],
        "images": [k.image_index for k in keys],
        "types": [k.product_type for k in keys],
        "steps": [k.step for k in keys],
    }


def _row_key(key: EffectKey) -> tuple[Any, ...]:
    return (key.job_id, key.image_index, key.product_type, key.step)


class Ledger:
    """The ``side_effects`` table behind an async pool (autocommit connections)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        lease_s: float = 15.0,
        wait_timeout_s: float = 300.0,
        connection_timeout_s: float = 30.0,
    ) -> None:
        """``lease_s`` is how long a claim lasts unless renewed (it is, every third of it,
        while the call runs), so also how long the next attempt waits after a crash.
        ``wait_timeout_s`` bounds the wait for a concurrent attempt of the same key and
        ``connection_timeout_s`` the wait for a pooled connection; past either the caller gets
        a RetryableError."""
        self.pool = pool
        self.lease_s = lease_s
        self.wait_timeout_s = wait_timeout_s
        self.connection_timeout_s = connection_timeout_s
        # The claims held right now, {hold: (owner, keys)}, renewed together by one task: a
        # backlog of blocks waiting on a vendor's budget cost a statement and a task each.
        self._held: dict[int, tuple[str, Collection[EffectKey]]] = {}
        self._holds = itertools.count()
        self._renewer: asyncio.Task[None] | None = None

    async def _fetch(self, sql: str, params: Mapping[str, object]) -> tuple[Any, ...] | None:
        # Each statement is idempotent or conditional, so a connection that broke (a restarted
        # server) is simply retried once on a fresh one; an outage must retry the message,
        # never dead-letter it.
        for attempt in (1, 2):
            try:
                async with self.pool.connection(timeout=self.connection_timeout_s) as conn:
                    cur = await conn.execute(sql, params)
                    return await cur.fetchone() if cur.description else None
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise RetryableError(f"side-effect ledger unavailable: {exc}") from exc
            except psycopg.Error as exc:
                raise RetryableError(f"side-effect ledger unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    async def begin(
        self, key: EffectKey, *, owner: str | None = None, lease_s: float | None = None
    ) -> LedgerEntry:
        """Claim ``key`` for an attempt (``owner``); say whether it is new, started earlier,
        done, or busy (claimed by another live attempt, so not claimed now).

        The claim is committed before this returns, so a crash right after leaves ``started``
        (and its lease runs out). ``lease_s=0`` records an attempt that ends at once, as a
        crashed one does.
        """
        params = {
            **key.params(),
            "owner": owner or _owner(),
            "lease": self.lease_s if lease_s is None else lease_s,
        }
        row = await self._fetch(_CLAIM, params)
        if row is None:
            # A concurrent first claim committed while this statement waited for it: its row
            # is newer than this statement's snapshot. A fresh read sees it.
            row = await self._fetch(_GET, key.params())
            assert row is not None  # inserted by the attempt we waited for
            return _entry((*row, False))
        return _entry(row)

    async def started_at(self, key: EffectKey) -> datetime | None:
        """When ``key`` was first claimed (its first attempt), None when never."""
        row = await self._fetch(_STARTED_AT, key.params())
        return None if row is None else row[0]

    async def complete(self, key: EffectKey, result: Result) -> Result:
        """Record ``key`` as done with the vendor's ``result``; returns the recorded result
        (the first one, should another attempt have completed it meanwhile)."""
        row = await self._fetch(_COMPLETE, {**key.params(), "result": Jsonb(result)})
        if row is None or row[0] is None:
            # Another attempt completed it while this statement waited: read what it recorded.
            row = await self._fetch(_GET, key.params())
            assert row is not None and row[1] is not None
            return dict(row[1])
        return dict(row[0])

    async def get(self, key: EffectKey) -> LedgerEntry | None:
        """The row of ``key`` without claiming it (None when never begun)."""
        row = await self._fetch(_GET, key.params())
        if row is None:
            return None
        state, result, attempts = row
        done = state == "done"
        return LedgerEntry(EffectState.DONE if done else EffectState.STARTED, result, attempts)

    async def settled(self, key: EffectKey) -> LedgerEntry | None:
        """The row of ``key`` once no attempt holds a live claim on it (an effect in flight is
        waited for, up to ``wait_timeout_s``, then RetryableError), without claiming it: for
        an undo that must come after the effect it undoes (a cancel during a publish). None
        when never begun."""
        deadline = time.monotonic() + self.wait_timeout_s
        delay = 0.02
        while True:
            row = await self._fetch(_HELD, key.params())
            if row is None:
                return None
            state, result, attempts, held = row
            if not held:
                done = state == "done"
                return LedgerEntry(
                    EffectState.DONE if done else EffectState.STARTED, result, attempts
                )
            if time.monotonic() > deadline:
                raise RetryableError(
                    f"side effect still claimed by another attempt after "
                    f"{self.wait_timeout_s:g}s: {key.describe()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def forget(self, key: EffectKey) -> None:
        """Drop the record of ``key``, so the next attempt calls the vendor again: for an
        effect the vendor later undid (a publication the sales channel refused)."""
        await self._fetch(_FORGET, key.params())

    @overload
    async def once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[M]],
        reconcile: Callable[[], Awaitable[M | None]] | None = None,
        *,
        model: type[M],
    ) -> M: ...

    @overload
    async def once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[Result]],
        reconcile: Callable[[], Awaitable[Result | None]] | None = None,
    ) -> Result: ...

    async def once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[Any]],
        reconcile: Callable[[], Awaitable[Any]] | None = None,
        *,
        model: type[M] | None = None,
    ) -> M | Result:
        """Run the side effect ``do`` at most once for ``key``; return its (recorded) result.

        ``reconcile`` looks at the vendor for an effect an earlier attempt may have caused and
        returns its result, or None when there is none; without it, an unknown outcome is
        resolved by calling ``do`` again (for effects whose duplicate is harmless). Exceptions
        of ``do`` and ``reconcile`` propagate unchanged and leave the row ``started``, with the
        claim released so the next attempt need not wait for the lease. With ``model`` the effect
        returns that model, recorded as its JSON and read back through it.
        """
        stored = await self._once(key, _storing(do), _storing(reconcile))
        return _typed(key, model, stored)

    async def _once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[Result | None]],
        reconcile: Callable[[], Awaitable[Result | None]] | None,
    ) -> Result:
        owner = _owner()
        entry = await self._claim(key, owner)
        if entry.state is EffectState.DONE:
            assert entry.result is not None  # the table's CHECK: done rows have a result
            logger.info("side effect reused %s", key.describe())
            return entry.result
        with self._holding(owner, (key,)):
            try:
                if entry.state is EffectState.STARTED and reconcile is not None:
                    found = await reconcile()
                    if found is not None:
                        recorded = await self.complete(key, found)
                        logger.warning(
                            "side effect reconciled %s attempts=%d",
                            key.describe(),
                            entry.attempts,
                        )
                        return recorded
                result = await do()
                assert result is not None  # an effect answers; only reconcile finds nothing
                recorded = await self.complete(key, result)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release([key], owner))
                raise
        logger.info("side effect done %s attempts=%d", key.describe(), entry.attempts)
        return recorded

    @contextlib.asynccontextmanager
    async def steps(self, keys: list[EffectKey]) -> AsyncIterator[Steps]:
        """Claim ``keys`` together (one statement); on exit record the results of the steps run
        through :meth:`Steps.once` together (one more) and release the claims of steps not
        run."""
        owner = _owner()
        keys = list(dict.fromkeys(keys))
        params = {**_arrays(keys), "owner": owner, "lease": self.lease_s}
        rows = {tuple(r[:4]): r[4:] for r in await self._fetch_all(_CLAIM_MANY, params)}
        # No row: a concurrent first claim won the key (its row is newer than our snapshot).
        entries = {k: _entry(rows[_row_key(k)]) for k in keys if _row_key(k) in rows}
        if len(entries) == len(keys) and all(
            e.state is not EffectState.BUSY for e in entries.values()
        ):
            steps = Steps(self, owner, entries)
        else:
            # Another attempt holds one of them. Holding the others while waiting for it could
            # wait in a circle (it may wait for one of ours): let ours go and run step by step,
            # holding one claim at a time, as once() does.
            mine = [
                k for k, e in entries.items() if e.state in (EffectState.NEW, EffectState.STARTED)
            ]
            if mine:
                await self._release(mine, owner)
            logger.info("side effects claimed elsewhere, one at a time keys=%d", len(keys))
            steps = Steps(self, owner, None)
        try:
            with self._holding(owner, steps.keys):
                yield steps
        finally:
            await asyncio.shield(steps.settle())

    async def _fetch_all(self, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        """Every row of ``sql`` (none for a statement without rows); retried as :meth:`_fetch`."""
        for attempt in (1, 2):
            try:
                async with self.pool.connection(timeout=self.connection_timeout_s) as conn:
                    cur = await conn.execute(sql, params)
                    return await cur.fetchall() if cur.description else []
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise RetryableError(f"side-effect ledger unavailable: {exc}") from exc
            except psycopg.Error as exc:
                raise RetryableError(f"side-effect ledger unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    async def _release(self, keys: list[EffectKey], owner: str) -> None:
        """Let ``owner``'s claims on ``keys`` go (a step done or not ours is left alone)."""
        await self._fetch_all(_RELEASE_MANY, {**_arrays(keys), "owner": owner})

    @contextlib.contextmanager
    def _holding(self, owner: str, keys: Collection[EffectKey]) -> Iterator[None]:
        """Keep ``owner``'s claims on ``keys`` (read at each renewal) renewed while inside."""
        hold = next(self._holds)
        self._held[hold] = (owner, keys)
        loop = asyncio.get_running_loop()
        if self._renewer is None or self._renewer.done() or self._renewer.get_loop() is not loop:
            self._renewer = loop.create_task(self._renew_held(), name="ledger-renew")
        try:
            yield
        finally:
            del self._held[hold]

    async def _renew_held(self) -> None:
        # A call that outlives a third of the lease keeps its claim (every claim held, in one
        # statement); a crash lets it run out. Ends when nothing is held.
        while self._held:
            await asyncio.sleep(self.lease_s / 3)
            pairs = [(k, owner) for owner, keys in list(self._held.values()) for k in list(keys)]
            if pairs:
                await self._extend([k for k, _ in pairs], [o for _, o in pairs])

    async def _extend(self, keys: list[EffectKey], owners: list[str]) -> None:
        """Renew each key's lease held by its owner; a failure leaves them to run out."""
        params = {**_arrays(keys), "owners": owners, "lease": self.lease_s}
        with contextlib.suppress(RetryableError):
            await self._fetch_all(_RENEW_MANY, params)

    async def _claim(self, key: EffectKey, owner: str) -> LedgerEntry:
        """Claim ``key``, waiting (with no connection held) while another attempt has it."""
        deadline = time.monotonic() + self.wait_timeout_s
        delay = 0.02
        while True:
            entry = await self.begin(key, owner=owner)
            if entry.state is not EffectState.BUSY:
                return entry
            if delay == 0.02:
                logger.info("side effect claimed elsewhere, waiting %s", key.describe())
            if time.monotonic() > deadline:
                raise RetryableError(
                    f"side effect still claimed by another attempt after "
                    f"{self.wait_timeout_s:g}s: {key.describe()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
