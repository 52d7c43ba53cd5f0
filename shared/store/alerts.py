"""The ``alerts`` table: one open alert per condition key (a partial unique index), opened,
refreshed and resolved by the monitor's evaluation, stamped when its notice went out, and
listed by the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


async def open_keys(conn: AsyncConnection[Any], prefix: str) -> dict[str, int]:
    """The open alerts whose condition key starts with ``prefix`` (locked for the caller's
    transaction): key -> id."""
    cur = await conn.execute(
        "SELECT condition_key, id FROM alerts WHERE status = 'open'"
        " AND starts_with(condition_key, %s) FOR UPDATE",
        (prefix,),
    )
    return {row[0]: row[1] for row in await cur.fetchall()}


async def open_alert(
    conn: AsyncConnection[Any],
    key: str,
    kind: str,
    severity: str,
    message: str,
    details: dict[str, Any],
    now: datetime,
) -> dict[str, Any] | None:
    """Open an alert for ``key``; None when another monitor instance opened it meanwhile (the
    index says who won)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO alerts (condition_key, type, severity, message, details, status,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 'open', %s, %s)"
            " ON CONFLICT (condition_key) WHERE status = 'open' DO NOTHING"
            " RETURNING *",
            (key, kind, severity, message, Jsonb(details), now, now),
        )
        return await cur.fetchone()


async def refresh(
    conn: AsyncConnection[Any], alert_id: int, message: str, details: dict[str, Any], now: datetime
) -> None:
    """Keep a still-firing alert's message and numbers current."""
    await conn.execute(
        "UPDATE alerts SET message = %s, details = %s, updated_at = %s WHERE id = %s",
        (message, Jsonb(details), now, alert_id),
    )


async def resolve(
    conn: AsyncConnection[Any], alert_ids: list[int], now: datetime
) -> list[dict[str, Any]]:
    """Resolve the open ones among ``alert_ids``; returns their rows."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = %s, updated_at = %s"
            " WHERE id = ANY(%s) AND status = 'open' RETURNING *",
            (now, now, alert_ids),
        )
        return await cur.fetchall()


async def mark_notified(pool: AsyncConnectionPool, alert_id: int) -> None:
    """The alert's notice was delivered."""
    async with pool.connection() as conn:
        await conn.execute("UPDATE alerts SET notified_at = now() WHERE id = %s", (alert_id,))


async def list_alerts(
    pool: AsyncConnectionPool,
    *,
    severity: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Alerts newest first, optionally of one severity/status, created at or after ``since``."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("severity = %s", severity),
        ("status = %s", status),
        ("created_at >= %s", since),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql_where = f"WHERE {' AND '.join(where)}" if where else ""
    params.append(limit)
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT * FROM alerts {sql_where} "  # noqa: S608  # fixed fragments only
            "ORDER BY created_at DESC, id DESC LIMIT %s",
            params,
        )
        return await cur.fetchall()


async def recent(conn: AsyncConnection[Any], since: datetime, limit: int) -> list[dict[str, Any]]:
    """Alerts created at or after ``since``, newest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM alerts WHERE created_at >= %s ORDER BY created_at DESC, id DESC"
            " LIMIT %s",
            (since, limit),
        )
        return await cur.fetchall()
