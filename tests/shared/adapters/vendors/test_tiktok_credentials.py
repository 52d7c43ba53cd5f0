"""The TikTok seller's token (renewed before it expires and after TikTok refuses it, kept and
shared in PostgreSQL) and the app's QPS limit (waited out; shared by every client of the app
on one database), against the TikTok simulator's app in process."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from shared.adapters.credentials import GrantRevoked, StaticToken, TokenSet
from shared.adapters.vendors.tiktok import TikTokClient, TikTokSettings, tiktok_client
from shared.adapters.vendors.tiktok.settings import TikTokRefreshGrant
from shared.platform.db import open_pool
from shared.platform.errors import PermanentError, RateLimited, RetryableError
from simulators import tiktok as tiktok_sim
from simulators.tiktok.settings import APP_KEY, APP_SECRET


def settings(**over: Any) -> TikTokSettings:
    values: dict[str, Any] = {
        "tiktok_api_url": "http://tiktok",
        "tiktok_app_key": APP_KEY,
        "tiktok_app_secret": APP_SECRET,
        "tiktok_refresh_token": f"rt-{uuid.uuid4().hex}",
        "tiktok_shop_cipher": "ROW_sim-tiktok-cipher-1",
    }
    return TikTokSettings(**{**values, **over})


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def app_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> FastAPI:
    for key, value in env.items():
        monkeypatch.setenv(f"SIM_TIKTOK_{key.upper()}", value)
    return tiktok_sim.create_app()


async def books(app: FastAPI) -> dict[str, Any]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tiktok"
    ) as http:
        return dict((await http.get("/_sim/books")).json())


async def hook(app: FastAPI, path: str, body: object | None = None) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tiktok"
    ) as http:
        (await http.post(path, json=body or {})).raise_for_status()


def client_of(app: FastAPI, s: TikTokSettings, **kw: Any) -> TikTokClient:
    return tiktok_client(s, transport=httpx.ASGITransport(app=app), **kw)


# --- tokens ----------------------------------------------------------------------------------


async def test_an_expired_access_token_is_renewed_and_the_call_sent_once_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_with(monkeypatch)
    client = client_of(app, settings())
    await client.get_warehouses()
    assert (await books(app))["tokens_issued"] == 1
    await hook(app, "/_sim/tokens/expire")  # TikTok ends the token early (105002 next)

    found = await client.get_warehouses()

    assert found.warehouses
    b = await books(app)
    assert b["tokens_issued"] == 2
    assert b["refused"] == {"105002": 1}  # refused once, then sent again with the new token
    await client.aclose()


async def test_the_token_is_renewed_before_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    # TikTok's answer says when the token ends (access_token_expire_in, a unix time): one that
    # ends within the margin is renewed before the call, which TikTok never refuses.
    app = app_with(monkeypatch, access_ttl_s="60")
    client = client_of(app, settings(tiktok_token_margin_s=120))
    await client.get_warehouses()
    await client.get_warehouses()
    b = await books(app)
    assert b["tokens_issued"] == 2 and b["refused"] == {}
    await client.aclose()
    patient = client_of(app, settings(tiktok_token_margin_s=30))
    await patient.get_warehouses()
    await patient.get_warehouses()
    assert (await books(app))["tokens_issued"] == 3  # one for the second client, kept
    await patient.aclose()


async def test_an_access_token_alone_stops_when_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_with(monkeypatch)
    s = settings(tiktok_refresh_token=None, tiktok_access_token="seller-access-token")
    client = client_of(app, s)
    assert isinstance(client._token, StaticToken)
    await client.get_warehouses()
    await hook(app, "/_sim/tokens/expire")
    with pytest.raises(PermanentError) as caught:
        await client.get_warehouses()
    assert caught.value.code == "105002" and "seller-access-token" not in str(caught.value)
    await client.aclose()


@pytest.fixture
async def pools(migrated_db: str) -> AsyncIterator[list[AsyncConnectionPool]]:
    """Two pools: two publisher processes, as far as PostgreSQL can tell."""
    ps = [await open_pool(migrated_db, max_size=2) for _ in range(2)]
    yield ps
    for p in ps:
        await p.close()


async def test_two_publishers_on_one_database_share_the_rotating_refresh_token(
    monkeypatch: pytest.MonkeyPatch, pools: list[AsyncConnectionPool]
) -> None:
    """Both start on the same seed, which must be renewed before use: through the shared row
    one of them spends the refresh token (TikTok's rotates) and the other takes its result.
    Kept apart, the second would present the spent token and TikTok would refuse it."""
    app = app_with(monkeypatch, accept_unknown_tokens="true")
    s = settings(credentials_key=_key())
    account = s.account()
    try:
        clients = [client_of(app, s, pool=pool) for pool in pools]
        await asyncio.gather(*(c.get_warehouses() for c in clients))
        await asyncio.gather(*(c.get_warehouses() for c in clients))
        b = await books(app)
        assert b["tokens_issued"] == 1 and b["refreshes_refused"] == 0
        # A third publisher, started later, takes the kept token: no refresh at all.
        late = client_of(app, s, pool=pools[0])
        await late.get_warehouses()
        assert (await books(app))["tokens_issued"] == 1
        for c in [*clients, late]:
            await c.aclose()
    finally:
        async with pools[0].connection() as conn:
            await conn.execute("DELETE FROM vendor_credentials WHERE account = %s", (account,))
            await conn.execute("DELETE FROM rate_budgets WHERE name LIKE 'tiktok:%%'")


# --- the QPS limit -----------------------------------------------------------------------------


async def test_the_qps_limit_is_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_with(monkeypatch, qps="2")
    # A client that believes in more than TikTok allows: TikTok's 429 (36009004) tells it.
    client = client_of(app, settings(tiktok_requests_per_second=10))
    results = await asyncio.gather(*(client.get_warehouses() for _ in range(5)))
    assert all(r.warehouses for r in results)
    b = await books(app)
    assert b["rate_limited"] >= 1 and b["refused"].get("36009004", 0) == b["rate_limited"]
    await client.aclose()


async def test_publishers_of_one_app_share_its_qps_budget(
    monkeypatch: pytest.MonkeyPatch, pools: list[AsyncConnectionPool]
) -> None:
    app = app_with(monkeypatch, qps="3")
    s = settings(credentials_key=_key(), tiktok_requests_per_second=3)
    try:
        clients = [client_of(app, s, pool=pool) for pool in pools]
        await asyncio.gather(*(c.get_warehouses() for c in clients))  # tokens first
        await asyncio.sleep(1.1)
        await asyncio.gather(*(c.get_warehouses() for c in clients for _ in range(4)))
        assert (await books(app))["rate_limited"] == 0
        for c in clients:
            await c.aclose()
    finally:
        async with pools[0].connection() as conn:
            await conn.execute("DELETE FROM vendor_credentials WHERE account = %s", (s.account(),))
            await conn.execute("DELETE FROM rate_budgets WHERE name LIKE 'tiktok:%%'")


async def test_server_errors_are_retryable_and_a_get_is_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_with(monkeypatch)
    client = client_of(app, settings())
    await client.get_warehouses()  # the token first
    await hook(app, "/_sim/config", {"failure_rate": 1, "fault_statuses": [503]})
    with pytest.raises(RetryableError) as caught:
        await client.get_warehouses()
    assert caught.value.status == 503 and caught.value.code == "36009003"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tiktok"
    ) as http:
        faults = (await http.get("/_sim/faults")).json()
    assert faults == {"503": 3}  # sent, then sent again twice (a read lists nothing twice)
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(429, 36009004, RateLimited), (200, 36009004, RateLimited), (503, 36009003, RetryableError)],
)
async def test_a_busy_token_endpoint_is_tried_again_never_taken_for_a_revoked_grant(
    status: int, code: int, error: type[Exception]
) -> None:
    """TikTok's QPS limit or a server error at the token endpoint says nothing of the refresh
    token: the renewal is retried later. (The five-channel chaos run took a 429 there for a
    revoked grant, and TikTok's publications waited for a new authorisation forever.)"""

    def answer(request: httpx.Request) -> httpx.Response:
        body = {"code": code, "message": "Too many requests. Please retry later.", "data": None}
        return httpx.Response(status, json={**body, "request_id": "r"})

    grant = TikTokRefreshGrant(
        app_key=APP_KEY, app_secret=APP_SECRET, transport=httpx.MockTransport(answer)
    )
    current = TokenSet("old-access", "refresh-1", None)
    with pytest.raises(error) as raised:
        await grant(current)
    assert not isinstance(raised.value, GrantRevoked)
    assert "refresh-1" not in str(raised.value) and APP_SECRET not in str(raised.value)


async def test_a_refused_refresh_token_is_a_revoked_grant() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"code": 105003, "message": "refresh token expired", "data": None}
        return httpx.Response(200, json={**body, "request_id": "r"})

    grant = TikTokRefreshGrant(
        app_key=APP_KEY, app_secret=APP_SECRET, transport=httpx.MockTransport(answer)
    )
    with pytest.raises(GrantRevoked, match="authorise the app again"):
        await grant(TokenSet("old-access", "refresh-1", None))
