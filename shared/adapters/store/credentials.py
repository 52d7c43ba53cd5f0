"""The ``vendor_credentials`` table: one row per vendor account whose credential has a lifecycle
(an OAuth grant), its tokens sealed by :class:`shared.adapters.credentials.SecretBox` before they
reach the database. :mod:`shared.adapters.credentials` drives it; the monitor's alerts read the
revoked rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

_COLUMNS = (
    "account, vendor, key_id, access_token, refresh_token, expires_at, revoked_at, revoked_reason"
)
_GET = f"SELECT {_COLUMNS} FROM vendor_credentials WHERE account = %(account)s"  # noqa: S608

_LOCK = f"SELECT {_COLUMNS} FROM vendor_credentials WHERE account = %(account)s FOR UPDATE"  # noqa: S608

# A seed replaces the row only when it is new to it (another authorisation): the same seed at
# every restart must never overwrite the refresh token that rotated since.
_SEED = """
INSERT INTO vendor_credentials (account, vendor, key_id, access_token, refresh_token,
                                expires_at, seed_fingerprint, updated_at)
VALUES (%(account)s, %(vendor)s, %(key_id)s, %(access_token)s, %(refresh_token)s,
        %(expires_at)s, %(fingerprint)s, now())
ON CONFLICT (account) DO UPDATE SET key_id = EXCLUDED.key_id,
    access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token,
    expires_at = EXCLUDED.expires_at, seed_fingerprint = EXCLUDED.seed_fingerprint,
    revoked_at = NULL, revoked_reason = NULL, updated_at = now()
WHERE vendor_credentials.seed_fingerprint IS DISTINCT FROM EXCLUDED.seed_fingerprint
RETURNING account
"""

_SAVE = """
UPDATE vendor_credentials SET key_id = %(key_id)s, access_token = %(access_token)s,
    refresh_token = %(refresh_token)s, expires_at = %(expires_at)s, revoked_at = NULL,
    revoked_reason = NULL, refreshed_at = now(), refreshes = refreshes + 1, updated_at = now()
WHERE account = %(account)s
"""

_REVOKE = """
UPDATE vendor_credentials SET revoked_at = now(), revoked_reason = %(reason)s, updated_at = now()
WHERE account = %(account)s AND revoked_at IS NULL
"""

_REVOKED = """
SELECT account, vendor, revoked_at, revoked_reason FROM vendor_credentials
WHERE revoked_at IS NOT NULL ORDER BY revoked_at
"""


class _Stored(TypedDict):
    """A row as :data:`_COLUMNS` reads it (BYTEA comes back as bytes or a memoryview)."""

    account: str
    vendor: str
    key_id: str
    access_token: bytes | memoryview
    refresh_token: bytes | memoryview | None
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None


@dataclass(frozen=True)
class SealedRow:
    """A row as stored: the tokens still sealed."""

    account: str
    vendor: str
    key_id: str
    access_token: bytes
    refresh_token: bytes | None
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None

    @classmethod
    def of(cls, row: _Stored) -> SealedRow:
        refresh = row["refresh_token"]
        return cls(
            account=row["account"],
            vendor=row["vendor"],
            key_id=row["key_id"],
            access_token=bytes(row["access_token"]),
            refresh_token=None if refresh is None else bytes(refresh),
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            revoked_reason=row["revoked_reason"],
        )


@dataclass(frozen=True)
class RevokedCredential:
    """An account whose grant the vendor refused: the engine waits for a new one."""

    account: str
    vendor: str
    revoked_at: datetime
    reason: str | None


async def get(pool: AsyncConnectionPool, account: str) -> SealedRow | None:
    """The account's row, None before it was seeded."""
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=class_row(_Stored)).execute(_GET, {"account": account})
        row = await cur.fetchone()
    return None if row is None else SealedRow.of(row)


async def lock(conn: AsyncConnection[Any], account: str) -> SealedRow | None:
    """The account's row, locked until ``conn``'s transaction ends (one refresher at a time)."""
    cur = await conn.cursor(row_factory=class_row(_Stored)).execute(_LOCK, {"account": account})
    row = await cur.fetchone()
    return None if row is None else SealedRow.of(row)


async def seed(
    pool: AsyncConnectionPool,
    *,
    account: str,
    vendor: str,
    key_id: str,
    access_token: bytes,
    refresh_token: bytes | None,
    expires_at: datetime | None,
    fingerprint: str,
) -> bool:
    """Store the configured credential unless the row was seeded with it already; True when
    the row was (re)written."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _SEED,
            {
                "account": account,
                "vendor": vendor,
                "key_id": key_id,
                "access_token": access_token,
                "refresh_token": refresh_token,
                "expires_at": expires_at,
                "fingerprint": fingerprint,
            },
        )
        return await cur.fetchone() is not None


async def save(
    conn: AsyncConnection[Any],
    *,
    account: str,
    key_id: str,
    access_token: bytes,
    refresh_token: bytes | None,
    expires_at: datetime | None,
) -> None:
    """The tokens a refresh returned (inside the transaction that locked the row)."""
    await conn.execute(
        _SAVE,
        {
            "account": account,
            "key_id": key_id,
            "access_token": access_token,
            "refresh_token": refresh_token,
            "expires_at": expires_at,
        },
    )


async def revoke(conn: AsyncConnection[Any], account: str, reason: str) -> None:
    """The vendor refused the grant for good: nobody refreshes it again until a new seed."""
    await conn.execute(_REVOKE, {"account": account, "reason": reason[:500]})


async def revoked(pool: AsyncConnectionPool) -> list[RevokedCredential]:
    """Every account whose grant is revoked, oldest first (the monitor's alert)."""
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(_REVOKED)
        rows = await cur.fetchall()
    return [
        RevokedCredential(r["account"], r["vendor"], r["revoked_at"], r["revoked_reason"])
        for r in rows
    ]
