"""The side-effect ledger: each external call of a (job, image, product type, step) happens once.

Delivery is at-least-once (DESIGN §5), so a handler may run twice for one message. Before an
external call the ledger records the step as ``started`` (committed at once, so it survives a
crash); after the vendor answers it records ``done`` with the answer. A later attempt then

- finds ``done``: reuses the recorded result, no call;
- finds ``started``: an earlier attempt's outcome is unknown (it crashed or timed out between
  the call and the record), so it *reconciles* with the vendor first (looks for the effect) and
  calls again only when nothing is found;
- finds nothing: calls.

Concurrent attempts of one key (two consumers after a rebalance, a retry racing a slow original)
are serialised by a row lock: :meth:`Ledger.once` takes ``SELECT ... FOR UPDATE`` on the row and
holds it, in a transaction, across the vendor call and the ``done`` record. A racing attempt
waits on that lock (in its own ``FOR UPDATE``, or already in its ``begin`` upsert, which needs
the same lock) and then sees ``done``. The insert conflict alone cannot serialise: the
``started`` row is committed *before* the locking transaction, because a row inserted inside it
would vanish with a crash and the next attempt could not know that a call may have happened.
The lock holds one pooled connection per in-flight side effect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.errors import RetryableError

logger = logging.getLogger(__name__)

Step = Literal["upload", "create", "publish"]
Result = dict[str, Any]

_BEGIN = """
INSERT INTO side_effects (job_id, image_index, product_type, step)
VALUES (%s, %s, %s, %s)
ON CONFLICT (job_id, image_index, product_type, step)
DO UPDATE SET attempts = side_effects.attempts + 1, updated_at = now()
RETURNING state, result, attempts
"""

# Upsert so that `complete` works without `begin`; a `done` row keeps its first result, so a
# late duplicate answer can never replace the one already handed downstream.
_COMPLETE = """
INSERT INTO side_effects (job_id, image_index, product_type, step, state, result)
VALUES (%s, %s, %s, %s, 'done', %s)
ON CONFLICT (job_id, image_index, product_type, step)
DO UPDATE SET state = 'done', result = EXCLUDED.result, updated_at = now()
WHERE side_effects.state <> 'done'
"""

_LOCK = """
SELECT state, result, attempts FROM side_effects
WHERE job_id = %s AND image_index = %s AND product_type = %s AND step = %s
FOR UPDATE
"""

_GET = """
SELECT state, result, attempts FROM side_effects
WHERE job_id = %s AND image_index = %s AND product_type = %s AND step = %s
"""


@dataclass(frozen=True)
class EffectKey:
    """What must happen once: ``product_type`` is ``""`` for a step not done per type."""

    job_id: str
    image_index: int
    product_type: str
    step: Step

    def params(self) -> tuple[str, int, str, str]:
        """The key as SQL parameters, in primary-key order."""
        return (self.job_id, self.image_index, self.product_type, self.step)


class EffectState(StrEnum):
    """Where a side effect stands, as :meth:`Ledger.begin` saw it."""

    NEW = "new"  # no earlier attempt: call
    STARTED = "started"  # an earlier attempt's outcome is unknown: reconcile, then maybe call
    DONE = "done"  # recorded: reuse the result


@dataclass(frozen=True)
class LedgerEntry:
    """A ledger row as seen by one attempt; ``attempts`` counts every ``begin``."""

    state: EffectState
    result: Result | None
    attempts: int


def _entry(row: tuple[str, Result | None, int], *, fresh: bool) -> LedgerEntry:
    state, result, attempts = row
    if state == "done":
        return LedgerEntry(EffectState.DONE, result, attempts)
    return LedgerEntry(EffectState.NEW if fresh else EffectState.STARTED, None, attempts)


class Ledger:
    """The ``side_effects`` table behind an async pool (autocommit connections)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        lock_timeout_s: float = 300.0,
        connection_timeout_s: float = 120.0,
    ) -> None:
        """``lock_timeout_s`` bounds the wait for a concurrent attempt of the same key and
        ``connection_timeout_s`` the wait for a pooled connection (:meth:`once` holds one
        across the vendor call); past either the caller gets a RetryableError."""
        self.pool = pool
        self.lock_timeout_ms = max(1, int(lock_timeout_s * 1000))
        self.connection_timeout_s = connection_timeout_s

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        # A database outage must retry the message, never dead-letter it.
        try:
            async with self.pool.connection(timeout=self.connection_timeout_s) as conn:
                yield conn
        except psycopg.Error as exc:
            raise RetryableError(f"side-effect ledger unavailable: {exc}") from exc

    @asynccontextmanager
    async def _transaction(self, conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
        # The row lock of a concurrent attempt in its vendor call blocks every write of the
        # row (the upsert of `begin` too): wait for it, but not forever.
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('lock_timeout', %s, true)", (f"{self.lock_timeout_ms}ms",)
            )
            yield

    async def begin(self, key: EffectKey) -> LedgerEntry:
        """Record an attempt of ``key``; say whether it is new, started earlier, or done.

        The row is committed before this returns, so a crash right after leaves ``started``.
        """
        async with self._connection() as conn:
            return await self._begin(conn, key)

    async def complete(self, key: EffectKey, result: Result) -> None:
        """Record ``key`` as done with the vendor's ``result`` (a done row keeps its first)."""
        async with self._connection() as conn, self._transaction(conn):
            await conn.execute(_COMPLETE, (*key.params(), Jsonb(result)))

    async def get(self, key: EffectKey) -> LedgerEntry | None:
        """The row of ``key`` without recording an attempt (None when never begun)."""
        async with self._connection() as conn:
            cur = await conn.execute(_GET, key.params())
            row = await cur.fetchone()
        return None if row is None else _entry(row, fresh=False)

    async def once(
        self,
        key: EffectKey,
        do: Callable[[], Awaitable[Result]],
        reconcile: Callable[[], Awaitable[Result | None]] | None = None,
    ) -> Result:
        """Run the side effect ``do`` at most once for ``key``; return its (recorded) result.

        ``reconcile`` looks at the vendor for an effect an earlier attempt may have caused and
        returns its result, or None when there is none; without it, an unknown outcome is
        resolved by calling ``do`` again (for effects whose duplicate is harmless). Exceptions
        of ``do`` and ``reconcile`` propagate unchanged and leave the row ``started``.
        """
        async with self._connection() as conn:
            entry = await self._begin(conn, key)
            if entry.state is EffectState.DONE:
                assert entry.result is not None  # the table's CHECK: done rows have a result
                logger.info(
                    "side effect reused job_id=%s image_index=%d product_type=%s step=%s",
                    *key.params(),
                )
                return entry.result
            # One transaction from the lock to the `done` record: a concurrent attempt waits
            # here (or in its `begin`) until this one committed, then finds `done`.
            async with self._transaction(conn):
                cur = await conn.execute(_LOCK, key.params())
                row = await cur.fetchone()
                assert row is not None  # begun above and rows are never deleted here
                state, result, attempts = row
                if state == "done":
                    # A concurrent attempt finished it while this one waited for the lock.
                    logger.info(
                        "side effect done concurrently job_id=%s image_index=%d "
                        "product_type=%s step=%s",
                        *key.params(),
                    )
                    return dict(result)
                # Every attempt that may have called the vendor began first, so one begin only
                # (ours) means no call can have happened; more means the outcome is unknown.
                if attempts > 1 and reconcile is not None:
                    found = await reconcile()
                    if found is not None:
                        await conn.execute(_COMPLETE, (*key.params(), Jsonb(found)))
                        logger.warning(
                            "side effect reconciled job_id=%s image_index=%d product_type=%s "
                            "step=%s attempts=%d",
                            *key.params(),
                            attempts,
                        )
                        return found
                result = await do()
                await conn.execute(_COMPLETE, (*key.params(), Jsonb(result)))
                logger.info(
                    "side effect done job_id=%s image_index=%d product_type=%s step=%s attempts=%d",
                    *key.params(),
                    attempts,
                )
                return result

    async def _begin(self, conn: psycopg.AsyncConnection[Any], key: EffectKey) -> LedgerEntry:
        # Its own short transaction, committed at once: `started` must outlive a crash.
        async with self._transaction(conn):
            cur = await conn.execute(_BEGIN, key.params())
            row = await cur.fetchone()
        assert row is not None  # INSERT ... ON CONFLICT DO UPDATE always returns the row
        # attempts == 1 exactly when this statement inserted the row.
        return _entry(row, fresh=row[2] == 1)
