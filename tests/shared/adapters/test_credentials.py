"""Credentials with a lifecycle: sealed at rest, renewed before they end, a rotating refresh
token never spent twice by two processes, a revoked grant waited out (and alerted on), never
turned into failures."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.alerts import CREDENTIAL_REVOKED, AlertEvaluator
from services.monitor.settings import MonitorSettings
from shared.adapters.credentials import (
    CredentialRevoked,
    CredentialSettings,
    GrantRevoked,
    ManagedToken,
    MemoryTokenStore,
    PgTokenStore,
    SecretBox,
    TokenSet,
    TokenStore,
)
from shared.platform import waits
from shared.platform.db import open_pool
from shared.platform.errors import ConfigError, RetryableError


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


class RotatingGrant:
    """An OAuth server's refresh grant as Etsy runs it: each refresh token is good once, and a
    spent one presented again revokes the whole grant (refresh-token reuse detection)."""

    def __init__(self, lifetime_s: float = 3600.0, delay_s: float = 0.05) -> None:
        self.valid: set[str] = set()
        self.spent: set[str] = set()
        self.revoked = False
        self.calls = 0
        self.lifetime_s = lifetime_s
        self.delay_s = delay_s

    def issue(self) -> TokenSet:
        refresh = f"r-{uuid.uuid4().hex}"
        self.valid.add(refresh)
        return TokenSet(
            f"a-{uuid.uuid4().hex}",
            refresh,
            datetime.now(UTC) + timedelta(seconds=self.lifetime_s),
        )

    async def __call__(self, current: TokenSet) -> TokenSet:
        self.calls += 1
        await asyncio.sleep(self.delay_s)  # the token endpoint's round trip
        token = current.refresh_token or ""
        if self.revoked or token in self.spent or token not in self.valid:
            self.revoked = True
            raise GrantRevoked("invalid_grant: refresh token reused or revoked")
        self.valid.discard(token)
        self.spent.add(token)
        return self.issue()


@pytest.fixture
async def pools(migrated_db: str) -> AsyncIterator[list[AsyncConnectionPool]]:
    """Two pools: two processes, as far as PostgreSQL can tell."""
    ps = [await open_pool(migrated_db, max_size=2) for _ in range(2)]
    yield ps
    for p in ps:
        await p.close()


@pytest.fixture
async def account(pools: list[AsyncConnectionPool]) -> AsyncIterator[str]:
    name = f"test:{uuid.uuid4().hex}"
    yield name
    async with pools[0].connection() as conn:  # other tests' alert evaluations read every row
        await conn.execute("DELETE FROM vendor_credentials WHERE account = %s", (name,))


def test_a_sealed_token_opens_only_with_its_key_and_its_account() -> None:
    box = SecretBox.from_setting(_key())
    sealed = box.seal("s3cret-token", "etsy:one")
    assert b"s3cret-token" not in sealed
    assert box.open(sealed, "etsy:one") == "s3cret-token"
    with pytest.raises(ConfigError):
        box.open(sealed, "etsy:two")  # a token copied into another account's row
    with pytest.raises(ConfigError):
        SecretBox.from_setting(_key()).open(sealed, "etsy:one")


@pytest.mark.parametrize("value", ["", "c2hvcnQ=", "not base64 at all!!"])
def test_a_malformed_key_is_refused_with_how_to_make_one(value: str) -> None:
    with pytest.raises(ConfigError, match=r"CREDENTIALS_KEY.*secrets\.token_bytes"):
        SecretBox.from_setting(value)


def test_no_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_KEY", raising=False)
    with pytest.raises(ConfigError, match="CREDENTIALS_KEY: required"):
        CredentialSettings().box()


def test_a_token_set_never_shows_its_tokens() -> None:
    tokens = TokenSet("access-xyz", "refresh-xyz", None)
    assert "xyz" not in repr(tokens) and "xyz" not in str(tokens)


async def test_a_token_is_renewed_before_it_ends_not_after() -> None:
    grant = RotatingGrant()
    seed = grant.issue()
    seed = TokenSet(seed.access_token, seed.refresh_token, datetime.now(UTC) + timedelta(hours=1))
    token = ManagedToken(MemoryTokenStore(), "a", grant, vendor="etsy", seed=seed, margin_s=300)
    assert await token.get() == seed.access_token
    assert grant.calls == 0
    later = datetime.now(UTC) + timedelta(minutes=56)  # 4 minutes left: inside the margin
    token._clock = lambda: later
    renewed = await token.get()
    assert renewed != seed.access_token and grant.calls == 1


async def test_a_rejected_token_is_renewed_once() -> None:
    grant = RotatingGrant()
    seed = grant.issue()
    token = ManagedToken(MemoryTokenStore(), "a", grant, vendor="etsy", seed=seed)
    first = await token.get()
    token.rejected(first)
    second = await token.get()
    assert second != first and grant.calls == 1
    assert await token.get() == second and grant.calls == 1


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "per-process-control"])
async def test_two_processes_never_spend_one_refresh_token(
    pools: list[AsyncConnectionPool], account: str, shared: bool
) -> None:
    """Two instances find the token expired at once. Through the database the refresh token is
    spent once and both send the new token; each keeping its own tokens (the control) spends
    it twice, and the server revokes the grant, which is what the store is for."""
    grant = RotatingGrant()
    issued = grant.issue()
    expired = TokenSet(issued.access_token, issued.refresh_token, datetime.now(UTC))
    box = SecretBox.from_setting(_key())
    stores: list[TokenStore] = (
        [PgTokenStore(p, box) for p in pools] if shared else [MemoryTokenStore() for _ in pools]
    )
    tokens = [
        ManagedToken(s, account, grant, vendor="etsy", seed=expired, revoked_poll_s=0.05)
        for s in stores
    ]
    results = await asyncio.gather(*(t.current() for t in tokens), return_exceptions=True)
    if shared:
        assert grant.calls == 1 and not grant.revoked
        assert [r.access_token for r in results if isinstance(r, TokenSet)] == [
            results[0].access_token  # type: ignore[union-attr]
        ] * 2
    else:
        assert grant.revoked
        assert any(isinstance(r, CredentialRevoked) for r in results)


async def test_the_newest_refresh_token_survives_a_restart(
    pools: list[AsyncConnectionPool], account: str
) -> None:
    """A restarted process seeds with the same (now spent) refresh token from its settings:
    the rotated one in the database stands, and the next refresh works."""
    grant = RotatingGrant()
    issued = grant.issue()
    seed = TokenSet(issued.access_token, issued.refresh_token, datetime.now(UTC))
    box = SecretBox.from_setting(_key())
    first = ManagedToken(PgTokenStore(pools[0], box), account, grant, vendor="etsy", seed=seed)
    rotated = await first.get()
    assert grant.calls == 1

    restarted = ManagedToken(PgTokenStore(pools[1], box), account, grant, vendor="etsy", seed=seed)
    assert await restarted.get() == rotated  # the settings' seed did not overwrite it
    async with pools[0].connection() as conn:
        cur = await conn.execute(
            "SELECT access_token, refresh_token FROM vendor_credentials WHERE account = %s",
            (account,),
        )
        row = await cur.fetchone()
    assert row is not None and rotated.encode() not in bytes(row[0])  # sealed at rest
    restarted._clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    assert await restarted.get() != rotated
    assert grant.calls == 2 and not grant.revoked


async def test_a_revoked_grant_waits_raises_an_alert_and_resumes_on_a_new_seed(
    pools: list[AsyncConnectionPool], account: str
) -> None:
    grant = RotatingGrant()
    issued = grant.issue()
    grant.revoked = True  # the seller removed the app's access
    box = SecretBox.from_setting(_key())
    seed = TokenSet(issued.access_token, issued.refresh_token, datetime.now(UTC))
    token = ManagedToken(
        PgTokenStore(pools[0], box), account, grant, vendor="etsy", seed=seed, revoked_poll_s=0.05
    )

    async def publish() -> str:
        waits.working_for("job-waiting-for-etsy")  # as the runner does for a message
        return await token.get()

    waiting = asyncio.create_task(publish())
    await asyncio.sleep(0.5)
    assert not waiting.done(), "a revoked grant must wait, not fail the work"
    assert token.revoked and "invalid_grant" in token.revoked
    assert [(w.job_id, w.kind) for w in waits.snapshot()] == [
        ("job-waiting-for-etsy", "credential")
    ]

    evaluator = AlertEvaluator(pools[0], MonitorSettings(), namespace=f"t{uuid.uuid4().hex}:")
    changes = await evaluator.evaluate()
    opened = [a for a in changes.opened if a["type"] == CREDENTIAL_REVOKED]
    assert [a["details"]["account"] for a in opened] == [account]
    assert opened[0]["severity"] == "critical"

    # The seller authorises again; a process started with the new grant seeds it.
    grant.revoked = False
    fresh = grant.issue()
    other = ManagedToken(PgTokenStore(pools[1], box), account, grant, vendor="etsy", seed=fresh)
    assert await other.get() == fresh.access_token
    assert await asyncio.wait_for(waiting, 5) == fresh.access_token
    assert token.revoked is None
    changes = await evaluator.evaluate()
    assert [a["details"]["account"] for a in changes.resolved] == [account]


class SlowStore(MemoryTokenStore):
    """A store whose reads take longer than the revoked poll's sleep, as a loaded database
    does: what the job shows between two sleeps is then what it shows most of the time."""

    async def read(self, account: str) -> TokenSet:
        await asyncio.sleep(0.2)
        return await super().read(account)


async def test_a_revoked_grant_is_shown_as_the_jobs_wait_the_whole_time() -> None:
    grant = RotatingGrant()
    expired = grant.issue()
    expired = TokenSet(expired.access_token, expired.refresh_token, datetime.now(UTC))
    grant.revoked = True
    token = ManagedToken(SlowStore(), "a", grant, vendor="etsy", seed=expired, revoked_poll_s=0.05)

    async def work() -> str:
        waits.working_for("job-slow-store")  # as the runner does for a message
        return await token.get()

    waiting = asyncio.create_task(work())
    try:
        while token.revoked is None:
            assert not waiting.done(), "a revoked grant must wait, not fail the work"
            await asyncio.sleep(0.01)
        seen = []
        for _ in range(40):  # 0.8 s: several polls, each mostly a slow read
            seen.append([(w.job_id, w.kind) for w in waits.snapshot()])
            await asyncio.sleep(0.02)
        assert all(s == [("job-slow-store", "credential")] for s in seen), seen
    finally:
        waiting.cancel()


async def test_a_failing_token_endpoint_is_retryable_and_changes_nothing(
    pools: list[AsyncConnectionPool], account: str
) -> None:
    calls = 0

    async def down(current: TokenSet) -> TokenSet:
        nonlocal calls
        calls += 1
        raise RetryableError("token endpoint: 503")

    box = SecretBox.from_setting(_key())
    seed = TokenSet("a-1", "r-1", datetime.now(UTC))
    token = ManagedToken(PgTokenStore(pools[0], box), account, down, vendor="etsy", seed=seed)
    with pytest.raises(RetryableError):
        await token.get()
    assert (await PgTokenStore(pools[0], box).read(account)).refresh_token == "r-1"


async def test_another_key_is_a_clear_error(pools: list[AsyncConnectionPool], account: str) -> None:
    seed = TokenSet("a-1", "r-1", datetime.now(UTC) + timedelta(hours=1))
    await PgTokenStore(pools[0], SecretBox.from_setting(_key())).seed(account, "etsy", seed)
    with pytest.raises(ConfigError, match="another CREDENTIALS_KEY"):
        await PgTokenStore(pools[0], SecretBox.from_setting(_key())).read(account)
