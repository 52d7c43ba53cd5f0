"""The ``alerts`` table: one open alert per condition key (a partial unique index), opened,
refreshed and resolved by the monitor's evaluation, stamped when its notice went out, and
listed by the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


class AlertRecord(TypedDict):
    """A row of ``alerts`` as every query here returns it (``SELECT *``/``RETURNING *``)."""

    id: int
    condition_key: str
    type: str
    severity: str
    message: str
    details: dict[str, object]  # the firing condition's numbers, stored and shown whole
    status: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    notified_at: datetime | None


_ANY_OPEN = """
SELECT condition_key FROM alerts WHERE status = 'open' AND starts_with(condition_key, %(prefix)s)
"""

_OPEN_KEYS = """
SELECT condition_key, id FROM alerts
WHERE status = 'open' AND starts_with(condition_key, %(prefix)s)
FOR UPDATE
"""

# The partial unique index on open alerts decides between monitor instances opening one at once.
_OPEN = """
INSERT INTO alerts (condition_key, type, severity, message, details, status, created_at,
                    updated_at)
VALUES (%(key)s, %(type)s, %(severity)s, %(message)s, %(details)s, 'open', %(now)s, %(now)s)
ON CONFLICT (condition_key) WHERE status = 'open' DO NOTHING
RETURNING *
"""

_REFRESH = """
UPDATE alerts SET message = %(message)s, details = %(details)s, updated_at = %(now)s
WHERE id = %(id)s
"""

_RESOLVE = """
UPDATE alerts SET status = 'resolved', resolved_at = %(now)s, updated_at = %(now)s
WHERE id = ANY(%(ids)s) AND status = 'open'
RETURNING *
"""

_MARK_NOTIFIED = "UPDATE alerts SET notified_at = now() WHERE id = %(id)s"

# {where}: the filters asked for (from _LIST_ALERTS_FILTERS), or nothing.
_LIST_ALERTS = """
SELECT * FROM alerts {where}
ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""
_LIST_ALERTS_FILTERS = {
    "severity": "severity = %(severity)s",
    "status": "status = %(status)s",
    "since": "created_at >= %(since)s",
}

_RECENT = """
SELECT * FROM alerts WHERE created_at >= %(since)s
ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""


async def any_open(conn: AsyncConnection[Any], prefix: str) -> set[str]:
    """The condition keys of the open alerts that start with ``prefix`` (a plain read)."""
    cur = await conn.execute(_ANY_OPEN, {"prefix": prefix})
    return {row[0] for row in await cur.fetchall()}


async def open_keys(conn: AsyncConnection[Any], prefix: str) -> dict[str, int]:
    """The open alerts whose condition key starts with ``prefix`` (locked for the caller's
    transaction): key -> id."""
    cur = await conn.execute(_OPEN_KEYS, {"prefix": prefix})
    return {row[0]: row[1] for row in await cur.fetchall()}


async def open_alert(
    conn: AsyncConnection[Any],
    key: str,
    kind: str,
    severity: str,
    message: str,
    details: dict[str, object],
    now: datetime,
) -> AlertRecord | None:
    """Open an alert for ``key``; None when another monitor instance opened it meanwhile (the
    index says who won)."""
    async with conn.cursor(row_factory=class_row(AlertRecord)) as cur:
        await cur.execute(
            _OPEN,
            {
                "key": key,
                "type": kind,
                "severity": severity,
                "message": message,
                "details": Jsonb(details),
                "now": now,
            },
        )
        return await cur.fetchone()


async def refresh(
    conn: AsyncConnection[Any],
    alert_id: int,
    message: str,
    details: dict[str, object],
    now: datetime,
) -> None:
    """Keep a still-firing alert's message and numbers current."""
    await conn.execute(
        _REFRESH, {"id": alert_id, "message": message, "details": Jsonb(details), "now": now}
    )


async def resolve(
    conn: AsyncConnection[Any], alert_ids: list[int], now: datetime
) -> list[AlertRecord]:
    """Resolve the open ones among ``alert_ids``; returns their rows."""
    async with conn.cursor(row_factory=class_row(AlertRecord)) as cur:
        await cur.execute(_RESOLVE, {"ids": alert_ids, "now": now})
        return await cur.fetchall()


async def mark_notified(pool: AsyncConnectionPool, alert_id: int) -> None:
    """The alert's notice was delivered."""
    async with pool.connection() as conn:
        await conn.execute(_MARK_NOTIFIED, {"id": alert_id})


async def list_alerts(
    pool: AsyncConnectionPool,
    *,
    severity: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
) -> list[AlertRecord]:
    """Alerts newest first, optionally of one severity/status, created at or after ``since``."""
    params: dict[str, object] = {
        "severity": severity,
        "status": status,
        "since": since,
        "limit": limit,
    }
    where = [clause for name, clause in _LIST_ALERTS_FILTERS.items() if params[name] is not None]
    sql = _LIST_ALERTS.format(where=f"WHERE {' AND '.join(where)}" if where else "")
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(AlertRecord)) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def recent(conn: AsyncConnection[Any], since: datetime, limit: int) -> list[AlertRecord]:
    """Alerts created at or after ``since``, newest first."""
    async with conn.cursor(row_factory=class_row(AlertRecord)) as cur:
        await cur.execute(_RECENT, {"since": since, "limit": limit})
        return await cur.fetchall()
