"""The API's SQL: the job row it writes at submission, the idempotency ledger, and reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from shared.events import JobRequested
from shared.store import jobs

_JOB_COLUMNS = """
    job_id, status, priority, priority_level, theme, style, niche, prompt, product_types,
    image_count AS count, auto_publish, expected_products, expected_publications,
    images_done, images_failed, products_done, products_failed, publications_done,
    publications_failed, error, retry_attempt, next_retry_at, last_error,
    created_at, updated_at, started_at, finished_at, claude_input_tokens,
    claude_output_tokens, claude_cache_read_tokens, claude_cache_write_tokens
"""


async def insert_queued_job(pool: AsyncConnectionPool, event: JobRequested) -> bool:
    """Record an accepted job as ``queued``; False if a row existed (the monitor was first)."""
    async with pool.connection() as conn:
        return await jobs.open_requested(conn, event)


@dataclass(frozen=True)
class IdempotencyRecord:
    """One ledger row: which job a key stands for and whether its event reached Kafka."""

    job_id: str
    request_hash: str
    produced: bool
    created: bool  # True when this call inserted the row


async def claim_idempotency_key(
    pool: AsyncConnectionPool, key: str, request_hash: str, job_id: str
) -> IdempotencyRecord:
    """Insert ``key`` for ``job_id`` unless present; return the row as it now stands."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            INSERT INTO api_idempotency (key, request_hash, job_id) VALUES (%s, %s, %s)
            ON CONFLICT (key) DO NOTHING
            RETURNING job_id
            """,
            (key, request_hash, job_id),
        )
        if await cur.fetchone() is not None:
            return IdempotencyRecord(job_id, request_hash, produced=False, created=True)
        cur = await conn.execute(
            "SELECT job_id, request_hash, produced FROM api_idempotency WHERE key = %s", (key,)
        )
        row = await cur.fetchone()
    if row is None:  # only if someone deleted the key between our two statements
        raise RuntimeError("idempotency key vanished while being claimed")
    return IdempotencyRecord(str(row[0]), str(row[1]), bool(row[2]), created=False)


async def mark_produced(pool: AsyncConnectionPool, key: str) -> None:
    """The key's event is acknowledged by the broker: later replays must not produce again."""
    async with pool.connection() as conn:
        await conn.execute("UPDATE api_idempotency SET produced = TRUE WHERE key = %s", (key,))


async def get_job(pool: AsyncConnectionPool, job_id: str) -> dict[str, Any] | None:
    """The job row (API field names), or None."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = %s", (job_id,))  # noqa: S608
        return await cur.fetchone()


async def get_job_children(
    pool: AsyncConnectionPool, job_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A job's images, products and event log, each in its natural order."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """
            SELECT image_index, sha256, uri, width, height, prompt, title, description, tags,
                   created_at
            FROM images WHERE job_id = %s ORDER BY image_index
            """,
            (job_id,),
        )
        images = await cur.fetchall()
        await cur.execute(
            """
            SELECT image_index, product_type, status, product_id, shop_id, price_cents,
                   price_max_cents, cost_min_cents, cost_max_cents, profit_min_cents,
                   margin_min_percent, print_dpi, mockups, title, external_id, error,
                   created_at, published_at
            FROM products WHERE job_id = %s ORDER BY image_index, product_type
            """,
            (job_id,),
        )
        products = await cur.fetchall()
        await cur.execute(
            """
            SELECT type, level, message, data, occurred_at
            FROM job_events WHERE job_id = %s ORDER BY occurred_at, recorded_at
            """,
            (job_id,),
        )
        logs = await cur.fetchall()
    return images, products, logs


async def list_jobs(
    pool: AsyncConnectionPool,
    *,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` jobs, newest first, strictly after the keyset position ``after``."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        # `completed` is what the status field shows, so it takes the partial jobs too
        # (their detailedStatus tells them apart; `partial` asks for those alone).
        where.append("status = ANY(%s)")
        params.append(["completed", "partial"] if status == "completed" else [status])
    if after is not None:
        # Row comparison = keyset pagination on (created_at DESC, job_id DESC): stable under
        # concurrent inserts, no OFFSET scan.
        where.append("(created_at, job_id) < (%s, %s)")
        params.extend(after)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    params.append(limit)
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs {clause} "  # noqa: S608  # fixed fragments only
            "ORDER BY created_at DESC, job_id DESC LIMIT %s",
            params,
        )
        return await cur.fetchall()


async def ping(pool: AsyncConnectionPool, timeout: float) -> None:
    """Raise unless PostgreSQL answers a trivial query within ``timeout`` seconds."""
    async with pool.connection(timeout=timeout) as conn:
        await conn.execute("SELECT 1")
