"""PostgreSQL access: connection pools and the versioned, re-runnable migrations."""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

logger = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only serialises concurrent starts of several services.
_MIGRATION_LOCK = 0x504F44

_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
"""
_LOCK = "SELECT pg_advisory_lock(%(key)s)"
_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"
_APPLIED = "SELECT version FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)"


def migrations() -> list[tuple[int, str, str]]:
    """The bundled migrations as (version, name, sql), in order."""
    found = []
    for entry in resources.files("shared.adapters.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def migrate(url: str) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction; return their names.

    Safe to run concurrently from several processes (an advisory lock serialises them) and any
    number of times (applied versions are recorded in ``schema_migrations``).
    """
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_CREATE_MIGRATIONS)
        conn.execute(_LOCK, {"key": _MIGRATION_LOCK})
        try:
            done = {row[0] for row in conn.execute(_APPLIED)}
            for version, name, sql in migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute(_RECORD, {"version": version, "name": name})
                applied_now.append(name)
                logger.info("migration applied name=%s", name)
        finally:
            conn.execute(_UNLOCK, {"key": _MIGRATION_LOCK})
    return applied_now


async def open_pool(
    url: str,
    *,
    max_size: int = 10,
    name: str = "pod",
    check: bool = True,
    acquire_timeout: float = 30.0,
    statement_timeout_s: float | None = None,
) -> AsyncConnectionPool:
    """An opened async pool of autocommit connections.

    With ``check`` every connection is tested (a round trip) before it is lent, so callers
    never see one that a PostgreSQL restart broke. Hot paths pass ``check=False`` and retry an
    ``OperationalError`` once instead (the pool drops a connection that failed): the same
    outcome without a round trip per use.

    ``acquire_timeout`` bounds the wait for a connection (then ``PoolTimeout``, an
    ``OperationalError``); ``statement_timeout_s`` makes the server cancel any statement that
    runs longer (``QueryCanceled``), for callers that must answer within a bound.
    """
    kwargs: dict[str, object] = {"autocommit": True}
    if statement_timeout_s is not None:
        # Set at connection start-up, so it holds for every statement without a round trip.
        kwargs["options"] = f"-c statement_timeout={max(1, round(statement_timeout_s * 1000))}"
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        name=name,
        open=False,
        check=AsyncConnectionPool.check_connection if check else None,
        kwargs=kwargs,
        timeout=acquire_timeout,
    )
    await pool.open(wait=True, timeout=30)
    return pool


# SQLSTATEs of a server that is going away or not taking connections (not of a bad statement).
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300"}


def db_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached right now (down, restarting, out of
    connections, pool exhausted) rather than that a statement is wrong.

    Waiting is the answer to the first kind; the second must fail the one event that caused it.
    """
    if isinstance(exc, PoolTimeout | psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        # No SQLSTATE: the client lost or never had a connection.
        return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES
    return False
