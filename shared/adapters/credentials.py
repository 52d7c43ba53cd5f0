"""Vendor credentials with a lifecycle: access tokens that expire, refresh tokens that rotate.

A vendor client asks an :class:`AccessToken` for the token to send (``await token.get()``) and
tells it when the vendor refused one (``token.rejected(value)``). :class:`StaticToken` is a
token that never changes (a Shopify ``shpat_`` token, Printify's personal token).
:class:`ManagedToken` runs a grant: it refreshes the token ``margin_s`` before it expires, or
at once after the vendor refused it, through a :class:`Grant` (Etsy's ``refresh_token`` grant,
Shopify's ``client_credentials``), and keeps the result in a :class:`TokenStore`.

With a database the store is :class:`PgTokenStore`: one row per account in
``vendor_credentials``, shared by every process of the deployment, the tokens sealed with
AES-GCM under ``CREDENTIALS_KEY``. A refresh locks the row (``SELECT … FOR UPDATE``) and
reads it again first, so when two instances find the token expiring at once, one spends the
refresh token and the other takes its result: a rotating refresh token is never spent twice,
and the newest one survives restarts. The settings' credential only *seeds* the row: the same
seed at the next start leaves the rotated tokens alone; a different one (the seller authorised
again) replaces them.

When the vendor refuses the grant itself (``invalid_grant``: the seller revoked the app, the
refresh token expired), the grant raises :class:`GrantRevoked`; the account is marked revoked
(the monitor raises an alert from that row), and :meth:`ManagedToken.get` waits, reading the
row again every ``revoked_poll_s``, until a new grant is seeded. Work that needs the account
waits instead of failing: nothing is dead-lettered for a credential the seller can restore.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg_pool import AsyncConnectionPool
from pydantic import Field, SecretStr, field_validator

from shared.adapters.store import credentials as store
from shared.platform import handback
from shared.platform.errors import ConfigError, PermanentError, PodError
from shared.platform.settings import PodSettings, empty_is_unset
from shared.platform.waits import waiting

logger = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
GENERATE_KEY = (
    'python -c "import base64, secrets; '
    'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"'
)


class CredentialSettings(PodSettings):
    """The key that seals vendor tokens in the database (``CREDENTIALS_KEY``)."""

    credentials_key: SecretStr | None = Field(
        default=None,
        description="32 random bytes, base64: seals OAuth tokens kept in PostgreSQL",
    )

    @field_validator("credentials_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)

    def box(self) -> SecretBox:
        """The key as a :class:`SecretBox`; ConfigError when unset or malformed."""
        if self.credentials_key is None:
            raise ConfigError(
                "CREDENTIALS_KEY: required to keep OAuth tokens in the database; make one "
                f"with: {GENERATE_KEY}"
            )
        return SecretBox.from_setting(self.credentials_key.get_secret_value())


class SecretBox:
    """AES-GCM under one key. Each sealed value carries its own random nonce and is bound to
    the account it belongs to (associated data), so a token copied into another row does not
    open."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        # Names the key without revealing it: a row sealed under another key says so.
        self.key_id = hashlib.sha256(b"pod-credentials-key:" + key).hexdigest()[:16]

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """The key from its base64 text (standard or URL-safe alphabet)."""
        raw = value.strip()
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=False)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigError(
                f"CREDENTIALS_KEY: must be {KEY_BYTES} random bytes in base64; make one with: "
                f"{GENERATE_KEY}"
            )
        return cls(key)

    def seal(self, plaintext: str, account: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), account.encode())

    def open(self, sealed: bytes, account: str) -> str:
        try:
            return self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], account.encode()
            ).decode()
        except (InvalidTag, ValueError):
            raise ConfigError(
                f"the stored credential of {account} does not open with CREDENTIALS_KEY"
            ) from None


@dataclass(frozen=True)
class TokenSet:
    """What a grant returns: the token to send, the one to renew it with, and when it ends."""

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None

    def expiring(self, margin_s: float, now: datetime | None = None) -> bool:
        """True when it ends within ``margin_s`` (never, without an expiry)."""
        if self.expires_at is None:
            return False
        now = now or datetime.now(UTC)
        return self.expires_at - now <= timedelta(seconds=margin_s)

    def fingerprint(self) -> str:
        """A digest of what renews it (its refresh token, else the token itself)."""
        basis = self.refresh_token or self.access_token
        return hashlib.sha256(basis.encode()).hexdigest()

    def __repr__(self) -> str:  # never a token in a log line or a traceback
        return f"TokenSet(expires_at={self.expires_at!r})"


def expires_in(seconds: float | None, now: float | None = None) -> datetime | None:
    """The end of a token the vendor says lives ``seconds`` (``expires_in``) from now."""
    if seconds is None:
        return None
    return datetime.fromtimestamp((now if now is not None else time.time()) + seconds, UTC)


class GrantRevoked(PermanentError):
    """The vendor refused the grant itself (``invalid_grant``): only the seller can restore it."""


class CredentialRevoked(PermanentError):
    """The account's grant was refused and no new one was seeded yet."""


class CredentialMissing(PermanentError):
    """The account has no credential: nothing was configured to seed it."""


class Grant(Protocol):
    """The vendor's token endpoint: a new :class:`TokenSet` from the current one."""

    async def __call__(self, current: TokenSet) -> TokenSet: ...


class AccessToken(Protocol):
    """What a vendor client needs of its credential."""

    async def get(self) -> str:
        """The token to send now (renewed first when it is about to end)."""
        ...

    def rejected(self, token: str) -> None:
        """The vendor refused ``token`` (401): the next :meth:`get` renews it."""
        ...


class StaticToken:
    """A token that never changes (a long-lived personal or admin token)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the token is empty")
        self._token = token

    async def get(self) -> str:
        return self._token

    def rejected(self, token: str) -> None:
        """Nothing to renew: the vendor's refusal stands."""


Stale = Callable[[TokenSet], bool]


class TokenStore(Protocol):
    """Where an account's tokens live between refreshes."""

    async def seed(self, account: str, vendor: str, tokens: TokenSet) -> bool:
        """Store the configured credential unless it was stored already; True when written."""
        ...

    async def read(self, account: str) -> TokenSet:
        """The account's tokens; CredentialRevoked / CredentialMissing when there are none."""
        ...

    async def refresh(self, account: str, stale: Stale, grant: Grant) -> TokenSet:
        """One refresher at a time: the stored tokens when another refresher made them fresh
        meanwhile (``stale`` says no), else the grant's, stored. GrantRevoked marks the account
        revoked and raises CredentialRevoked."""
        ...


class MemoryTokenStore:
    """Tokens kept in this process only (no database: a single process, tests)."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenSet] = {}
        self._seeds: dict[str, str] = {}
        self._revoked: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def seed(self, account: str, vendor: str, tokens: TokenSet) -> bool:
        if self._seeds.get(account) == tokens.fingerprint():
            return False
        self._seeds[account] = tokens.fingerprint()
        self._tokens[account] = tokens
        self._revoked.pop(account, None)
        return True

    async def read(self, account: str) -> TokenSet:
        if account in self._revoked:
            raise CredentialRevoked(f"{account}: {self._revoked[account]}")
        if account not in self._tokens:
            raise CredentialMissing(f"{account}: no credential was configured")
        return self._tokens[account]

    async def refresh(self, account: str, stale: Stale, grant: Grant) -> TokenSet:
        async with self._lock:
            current = await self.read(account)
            if not stale(current):
                return current
            try:
                fresh = await grant(current)
            except GrantRevoked as exc:
                self._revoked[account] = exc.message
                raise CredentialRevoked(f"{account}: {exc.message}") from None
            self._tokens[account] = fresh
            return fresh


class PgTokenStore:
    """Tokens in ``vendor_credentials``, sealed, shared by every process of the deployment."""

    def __init__(
        self, pool: AsyncConnectionPool, box: SecretBox, *, lock_timeout_s: float = 60.0
    ) -> None:
        self.pool = pool
        self.box = box
        self.lock_timeout_s = lock_timeout_s

    def _sealed(self, account: str, tokens: TokenSet) -> tuple[bytes, bytes | None]:
        refresh = tokens.refresh_token
        return (
            self.box.seal(tokens.access_token, account),
            None if refresh is None else self.box.seal(refresh, account),
        )

    def _open(self, row: store.SealedRow) -> TokenSet:
        if row.key_id != self.box.key_id:
            raise ConfigError(
                f"the stored credential of {row.account} was sealed with another "
                "CREDENTIALS_KEY: set the key it was sealed with, or configure the grant again"
            )
        refresh = row.refresh_token
        return TokenSet(
            access_token=self.box.open(row.access_token, row.account),
            refresh_token=None if refresh is None else self.box.open(refresh, row.account),
            expires_at=row.expires_at,
        )

    async def seed(self, account: str, vendor: str, tokens: TokenSet) -> bool:
        access, refresh = self._sealed(account, tokens)
        return await store.seed(
            self.pool,
            account=account,
            vendor=vendor,
            key_id=self.box.key_id,
            access_token=access,
            refresh_token=refresh,
            expires_at=tokens.expires_at,
            fingerprint=tokens.fingerprint(),
        )

    def _usable(self, account: str, row: store.SealedRow | None) -> store.SealedRow:
        if row is None:
            raise CredentialMissing(f"{account}: no credential was configured")
        if row.revoked_at is not None:
            raise CredentialRevoked(f"{account}: {row.revoked_reason or 'revoked'}")
        return row

    async def read(self, account: str) -> TokenSet:
        return self._open(self._usable(account, await store.get(self.pool, account)))

    async def refresh(self, account: str, stale: Stale, grant: Grant) -> TokenSet:
        revoked: GrantRevoked | None = None
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{int(self.lock_timeout_s * 1000)}ms'")
            current = self._open(self._usable(account, await store.lock(conn, account)))
            if not stale(current):
                return current  # another process refreshed it while we waited for the lock
            try:
                fresh = await grant(current)
            except GrantRevoked as exc:
                # Recorded in this transaction, which must commit: raised once it has.
                await store.revoke(conn, account, exc.message)
                revoked = exc
            else:
                access, refresh = self._sealed(account, fresh)
                await store.save(
                    conn,
                    account=account,
                    key_id=self.box.key_id,
                    access_token=access,
                    refresh_token=refresh,
                    expires_at=fresh.expires_at,
                )
                return fresh
        raise CredentialRevoked(f"{account}: {revoked.message}")


def token_store(
    settings: CredentialSettings, pool: AsyncConnectionPool | None, *, why: str
) -> TokenStore:
    """Where a grant's tokens live: with a database, in ``vendor_credentials`` for every
    process (sealed with CREDENTIALS_KEY, whose absence is a ConfigError saying ``why`` the
    grant needs it); without one, in this process only."""
    if pool is None:
        return MemoryTokenStore()
    try:
        box = settings.box()
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} ({why})") from None
    return PgTokenStore(pool, box)


class ManagedToken:
    """An account's token, renewed through ``grant`` before it ends, kept in ``store``.

    ``seed`` is the credential the settings give (stored once, see :class:`TokenStore`);
    ``margin_s`` how long before its end a token is renewed. While the grant is revoked,
    :meth:`get` waits for a new seed, reading the store every ``revoked_poll_s``; with
    ``regrant_revoked`` (a grant that spends nothing, like a client credentials grant, where
    the seller restores access by installing the app again, not by authorising anew) it also
    asks the grant again each time, and a token it gives is seeded.
    """

    def __init__(
        self,
        store: TokenStore,
        account: str,
        grant: Grant,
        *,
        vendor: str,
        seed: TokenSet | None = None,
        margin_s: float = 300.0,
        revoked_poll_s: float = 30.0,
        regrant_revoked: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.account = account
        self.vendor = vendor
        self._grant = grant
        self._seed = seed
        self._seeded = seed is None
        self.margin_s = margin_s
        self.revoked_poll_s = revoked_poll_s
        self.regrant_revoked = regrant_revoked
        self._clock = clock
        self._current: TokenSet | None = None
        self._rejected: set[str] = set()
        self._lock = asyncio.Lock()
        # Set while the grant is revoked: what the vendor said (for "why does this job wait").
        self.revoked: str | None = None

    def _stale(self, tokens: TokenSet) -> bool:
        return tokens.access_token in self._rejected or tokens.expiring(
            self.margin_s, self._clock()
        )

    async def _ensure_seeded(self) -> None:
        if not self._seeded and self._seed is not None:
            if await self.store.seed(self.account, self.vendor, self._seed):
                logger.info("credential seeded from the settings account=%s", self.account)
            self._seeded = True

    async def current(self) -> TokenSet:
        """A fresh token set, without waiting out a revoked grant (raises CredentialRevoked)."""
        async with self._lock:
            await self._ensure_seeded()
            if self._current is None or self._stale(self._current):
                stored = await self.store.read(self.account)
                if self._stale(stored):
                    stored = await self.store.refresh(self.account, self._stale, self._grant)
                    logger.info(
                        "credential renewed account=%s expires_at=%s",
                        self.account,
                        stored.expires_at.isoformat() if stored.expires_at else None,
                    )
                self._current = stored
            return self._current

    async def get(self) -> str:
        try:
            return (await self.current()).access_token
        except CredentialRevoked as exc:
            return await self._wait_for_new_grant(exc)

    async def _wait_for_new_grant(self, refused: CredentialRevoked) -> str:
        """Wait until the seller authorises again (a new seed, or a re-asked grant that is no
        longer refused). The wait stays registered for the job the whole time, not only while
        sleeping between polls: a poll (a database read, a call to the token endpoint) can take
        longer than the sleep on a loaded machine, and the job showed no wait meanwhile."""
        waited_since = time.monotonic()
        logger.error(
            "credential revoked, waiting for a new grant account=%s reason=%s",
            self.account,
            refused.message,
        )
        with waiting(
            "credential",
            f"{self.vendor} authorisation: the seller must authorise the app again",
        ):
            while True:
                self.revoked = refused.message
                # Only the sleep may be handed back to a stopping stage: a poll can be a token
                # refresh under way, whose rotated token must not be lost mid-call.
                async with handback.permission():
                    await asyncio.sleep(self.revoked_poll_s)
                if self.regrant_revoked:
                    await self._regrant()
                try:
                    tokens = await self.current()
                except CredentialRevoked as exc:
                    refused = exc
                    continue
                break
        logger.info(
            "credential restored account=%s waited_s=%.0f",
            self.account,
            time.monotonic() - waited_since,
        )
        self.revoked = None
        return tokens.access_token

    async def _regrant(self) -> None:
        """Ask a revoked grant again; what it gives replaces the revoked row (a new seed)."""
        try:
            fresh = await self._grant(self._seed or TokenSet(""))
        except PermanentError as exc:
            logger.info("grant still refused account=%s reason=%s", self.account, exc.message)
            return
        except PodError as exc:
            logger.info("grant not reached account=%s error=%s", self.account, exc.describe())
            return
        async with self._lock:
            await self.store.seed(self.account, self.vendor, fresh)
            self._current = None

    def rejected(self, token: str) -> None:
        self._rejected.add(token)
