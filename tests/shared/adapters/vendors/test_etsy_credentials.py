"""Etsy's credentials against the Etsy simulator (in process), which expires access tokens as
Etsy does (an hour there, a second or two here) and takes each refresh token once. The shop
owner's tokens are renewed before they end and after a 401, shared by every publisher through
PostgreSQL (one refresh token is never spent twice), kept across a restart, and a grant the
seller revoked makes the work wait and raises an alert instead of failing it. The app's key is
sent with its shared secret, or the engine does not start."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from services.monitor.alerts import CREDENTIAL_REVOKED, AlertEvaluator
from services.monitor.settings import MonitorSettings
from shared.adapters.credentials import (
    GENERATE_KEY,
    GrantRevoked,
    MemoryTokenStore,
    PgTokenStore,
    SecretBox,
    TokenSet,
)
from shared.adapters.vendors.channels import ProductRef
from shared.adapters.vendors.etsy import (
    ETSY_TOKEN_URL,
    EtsyChannel,
    EtsyClient,
    EtsyRefreshGrant,
    EtsySettings,
    etsy_channel,
    etsy_client,
    etsy_token,
)
from shared.adapters.vendors.printify import PrintifyClient
from shared.platform import waits
from shared.platform.db import open_pool
from shared.platform.errors import ConfigError, PermanentError, RetryableError, VendorTimeout
from simulators import etsy as etsy_sim
from simulators import printify as printify_sim
from tests.support.printify import create_product, in_process, png

SHOP = 51234567
KEYSTRING, SECRET = "ks-cred-7f3a", "ss-cred-9b1c"
ME = 4242  # the shop owner (Etsy's tokens start with the user's id)


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait until ``predicate()`` is truthy (its value), or fail naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


class Sim:
    """The Etsy simulator's app in process, its OAuth hooks and books."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.hooks = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e")
        self.sent: list[str] = []  # every bearer token the engine sent

    def transport(self) -> httpx.AsyncBaseTransport:
        sent = self.sent
        inner = httpx.ASGITransport(app=self.app)

        class Recording(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                auth = request.headers.get("authorization", "")
                if auth.startswith("Bearer "):
                    sent.append(auth.removeprefix("Bearer "))
                return await inner.handle_async_request(request)

        return Recording()

    async def authorize(self, **body: Any) -> dict[str, Any]:
        """The seller authorises the app: the grant's first tokens."""
        resp = await self.hooks.post(
            "/_sim/oauth/authorize", json={"user_id": ME, "client_id": KEYSTRING, **body}
        )
        resp.raise_for_status()
        return dict(resp.json())

    async def post(self, path: str, **body: Any) -> dict[str, Any]:
        resp = await self.hooks.post(path, json=body)
        resp.raise_for_status()
        return dict(resp.json())

    async def oauth(self) -> dict[str, Any]:
        return dict((await self.hooks.get("/_sim/oauth")).json())

    async def listings(self) -> list[dict[str, Any]]:
        books = (await self.hooks.get("/_sim/books")).json()
        return list(books["shops"].get(str(SHOP), {"listings": []})["listings"])


@pytest.fixture
def sim_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    env = {"SIM_ETSY_QPS": "200", "SIM_ETSY_STRICT_TOKENS": "1", **getattr(request, "param", {})}
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
async def sim(sim_env: None) -> AsyncIterator[Sim]:
    s = Sim(etsy_sim.create_app())
    yield s
    await s.hooks.aclose()


@pytest.fixture
async def source() -> AsyncIterator[PrintifyClient]:
    async with in_process(printify_sim.create_app()) as client:
        yield client


def settings(refresh_token: str | None = None, **overrides: Any) -> EtsySettings:
    fields: dict[str, Any] = {
        "etsy_api_url": "http://etsy",
        "etsy_api_key": KEYSTRING,
        "etsy_shared_secret": SECRET,
        "etsy_refresh_token": refresh_token,
        "etsy_shop_id": SHOP,
        "etsy_shipping_profile_id": 9001,
        "etsy_max_images": 1,
        "etsy_token_margin_s": 0.2,
        "credentials_key": _key(),
        **overrides,
    }
    return EtsySettings(**fields)


async def mockup(_url: str) -> bytes:
    return png(32, 32)


async def a_product(source: PrintifyClient) -> ProductRef:
    made = await create_product(
        source,
        str(printify_sim.SHOP_ID),
        variant_count=2,
        price_cents=2499,
        sku_prefix=f"pod-{uuid.uuid4().hex[:16]}",
    )
    return ProductRef(str(printify_sim.SHOP_ID), str(made.id), "Moon Cat")


def channel(sim: Sim, source: PrintifyClient, s: EtsySettings, **kw: Any) -> EtsyChannel:
    return EtsyChannel(
        etsy_client(s, transport=sim.transport(), **kw), source, s, fetch_image=mockup
    )


# ----------------------------------------------------------------------------- settings


def test_a_credential_is_required_and_the_refresh_token_is_preferred() -> None:
    with pytest.raises(ConfigError, match="no Etsy credential: set ETSY_REFRESH_TOKEN"):
        etsy_client(settings())
    assert settings("1.r").renews_tokens()
    assert not settings(etsy_access_token="1.a").renews_tokens()
    # compose passes NAME= for what nobody configured.
    assert settings("", etsy_access_token="1.a", etsy_token_url="").etsy_refresh_token is None


def test_the_token_endpoint_is_etsys_or_the_simulators() -> None:
    assert settings("1.r", etsy_api_url="https://openapi.etsy.com").token_url() == ETSY_TOKEN_URL
    assert ETSY_TOKEN_URL == "https://api.etsy.com/v3/public/oauth/token"
    assert settings("1.r").token_url() == "http://etsy/v3/public/oauth/token"
    assert settings("1.r", etsy_token_url="https://t/x").token_url() == "https://t/x"


def test_the_shared_secret_is_required_to_start() -> None:
    """Etsy refuses the bare keystring (403) since February 2026: the engine does not start
    with one (today's code sent it, and every call failed)."""
    with pytest.raises(ConfigError) as caught:
        etsy_client(settings("1.r", etsy_shared_secret=None))
    assert caught.value.message.startswith("ETSY_SHARED_SECRET: required")
    assert "your-apps" in caught.value.message and KEYSTRING not in caught.value.message
    with pytest.raises(ConfigError, match="ETSY_SHARED_SECRET"):
        EtsyClient(api_key=KEYSTRING, access_token="1.a")
    # The key given whole (keystring:secret, as Etsy shows it) needs no other setting.
    whole = settings("1.r", etsy_api_key=f"{KEYSTRING}:{SECRET}", etsy_shared_secret=None)
    assert whole.api_key_header() == f"{KEYSTRING}:{SECRET}"
    assert settings("1.r").api_key_header() == f"{KEYSTRING}:{SECRET}"


def test_the_database_needs_credentials_key_with_a_refresh_token() -> None:
    pool: Any = object()  # never reached: the key is checked first
    with pytest.raises(ConfigError) as caught:
        etsy_client(settings("1.r", credentials_key=None), pool=pool)
    message = caught.value.message
    assert message.startswith("CREDENTIALS_KEY: required") and GENERATE_KEY in message
    assert "ETSY_REFRESH_TOKEN" in message and "1.r" not in message
    # An access token alone needs no key (nothing is kept), nor does a process without one.
    etsy_token(settings(None, etsy_access_token="1.a", credentials_key=None), pool=pool)
    etsy_token(settings("1.r", credentials_key=None))


def test_an_access_token_alone_is_said_to_stop_within_the_hour(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    etsy_token(settings(None, etsy_access_token="1.a-static"))
    [record] = [r for r in caplog.records if r.name == "shared.adapters.vendors.etsy"]
    assert "access tokens live one hour" in record.getMessage()
    assert "ETSY_REFRESH_TOKEN" in record.getMessage() and "1.a-static" not in record.getMessage()


# ------------------------------------------------------------------------- expiring tokens


@pytest.mark.parametrize("sim_env", [{"SIM_ETSY_TOKEN_TTL_S": "1.5"}], indirect=True)
@pytest.mark.parametrize("managed", [True, False], ids=["refresh-token", "static-control"])
async def test_a_publisher_keeps_publishing_across_the_tokens_end(
    sim: Sim, source: PrintifyClient, managed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Access tokens live 1.5 s: publishing across the end renews it first. The control sends
    one access token as ETSY_ACCESS_TOKEN did before: refused once it ended (401), and the
    publication fails for good, as every publication did an hour into a real run."""
    caplog.set_level(logging.DEBUG)
    grant = await sim.authorize()
    s = (
        settings(grant["refresh_token"])
        if managed
        else settings(None, etsy_access_token=grant["access_token"])
    )
    etsy = channel(sim, source, s)
    refs = [await a_product(source) for _ in range(2)]
    assert (await etsy.publish(refs[0])).listing is not None
    await asyncio.sleep(1.6)  # the first token's 1.5 s are over
    if managed:
        assert (await etsy.publish(refs[1])).listing is not None
        assert (await sim.oauth())["refreshed"] >= 2  # the seed's (at once), then the end's
        assert [lst["state"] for lst in await sim.listings()] == ["active", "active"]
    else:
        with pytest.raises(PermanentError) as caught:
            await etsy.publish(refs[1])
        assert caught.value.status == 401 and "access token is expired" in caught.value.message
        assert grant["access_token"] not in str(caught.value)
    # No token, key or secret ever reaches a log line.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert sim.sent
    for secret in (*sim.sent, grant["refresh_token"], SECRET):
        assert secret not in logged
    await etsy.aclose()


async def test_a_token_refused_before_its_end_is_renewed_once_and_the_call_sent_again(
    sim: Sim, source: PrintifyClient
) -> None:
    grant = await sim.authorize()
    etsy = channel(sim, source, settings(grant["refresh_token"]))
    first = await etsy.publish(await a_product(source))
    assert first.listing is not None
    refreshed = (await sim.oauth())["refreshed"]
    # Etsy stops taking the token before the hour it said (the seller changed their password).
    assert (await sim.post("/_sim/oauth/expire", user_id=ME))["expired"] >= 1
    second = await etsy.publish(await a_product(source))
    assert second.listing is not None
    books = await sim.oauth()
    assert books["refreshed"] == refreshed + 1 and books["expired_access"] == 1
    await etsy.aclose()


# ----------------------------------------------------------------------- shared, persisted


@pytest.fixture
async def pools(migrated_db: str) -> AsyncIterator[list[AsyncConnectionPool]]:
    """Two pools: two publisher processes, as far as PostgreSQL can tell."""
    ps = [await open_pool(migrated_db, max_size=2) for _ in range(2)]
    yield ps
    for p in ps:
        await p.close()


@pytest.fixture
async def account(pools: list[AsyncConnectionPool]) -> AsyncIterator[str]:
    """The account the test shop's tokens are kept under (removed before and after: other
    tests' alert evaluations read every row)."""
    name = settings("1.r").account()

    async def clear() -> None:
        async with pools[0].connection() as conn:
            await conn.execute("DELETE FROM vendor_credentials WHERE account = %s", (name,))

    await clear()
    yield name
    await clear()


def test_the_account_is_named_without_a_secret() -> None:
    name = settings("1.r").account()
    assert name.startswith("etsy:") and name.endswith(f":{SHOP}")
    assert KEYSTRING not in name and SECRET not in name


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "per-process-control"])
async def test_two_publishers_of_one_app_never_spend_one_refresh_token_twice(
    sim: Sim, pools: list[AsyncConnectionPool], account: str, shared: bool
) -> None:
    """Both start on the same seed, whose access token must be renewed before use: through
    the shared row one of them spends the refresh token and the other takes its result. The
    control keeps each publisher's tokens in its own process: both spend the seed, Etsy (the
    simulator) sees the reuse and revokes the grant, and the shop has no working token."""
    grant = await sim.authorize()
    key = _key()
    clients = [
        etsy_client(
            settings(grant["refresh_token"], credentials_key=key),
            pool=pool,
            transport=sim.transport(),
            store=None if shared else MemoryTokenStore(),
        )
        for pool in pools
    ]
    calls = [
        asyncio.create_task(c.get_listings_by_shop(SHOP, state="draft", limit=1)) for c in clients
    ]
    done, pending = await asyncio.wait(calls, timeout=5)
    books = await sim.oauth()
    if shared:
        assert not pending and all(t.exception() is None for t in done)
        assert (books["refreshed"], books["reuse_detected"]) == (1, 0)
        stored = await PgTokenStore(pools[0], SecretBox.from_setting(key)).read(account)
        assert stored.refresh_token not in (None, grant["refresh_token"])
    else:
        assert books["reuse_detected"] == 1 and books["revoked_grants"] == 1
        assert pending, "one publisher is left waiting for a new grant"
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for c in clients:
        await c.aclose()


@pytest.mark.parametrize("persisted", [True, False], ids=["database", "memory-control"])
async def test_the_newest_refresh_token_survives_a_restart(
    sim: Sim, pools: list[AsyncConnectionPool], account: str, persisted: bool
) -> None:
    """A publisher renews (the seed's refresh token is spent, the new one kept), stops; the
    next one starts with the same settings. From the database it renews with the newest refresh
    token; the control, which forgets on restart, spends the seed again and is refused."""
    grant = await sim.authorize()
    key = _key()
    s = settings(grant["refresh_token"], credentials_key=key)

    def start(pool: AsyncConnectionPool) -> EtsyClient:
        store = None if persisted else MemoryTokenStore()
        return etsy_client(s, pool=pool, transport=sim.transport(), store=store)

    first = start(pools[0])
    await first.get_listings_by_shop(SHOP, limit=1)
    await first.aclose()
    await sim.post("/_sim/oauth/expire", user_id=ME)  # the restart took past the token's end
    restarted = start(pools[1])
    call = asyncio.create_task(restarted.get_listings_by_shop(SHOP, limit=1))
    done, pending = await asyncio.wait([call], timeout=3)
    books = await sim.oauth()
    if persisted:
        assert done and call.exception() is None
        assert (books["refreshed"], books["refused"]) == (2, {})
    else:
        assert pending and books["refused"] == {"invalid_grant": 1}
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    await restarted.aclose()


async def test_a_revoked_grant_waits_alerts_and_resumes_on_a_new_seed(
    sim: Sim, pools: list[AsyncConnectionPool], account: str, source: PrintifyClient
) -> None:
    grant = await sim.authorize()
    key = _key()
    s = settings(grant["refresh_token"], credentials_key=key)
    token, refresher = etsy_token(s, pool=pools[0], transport=sim.transport(), revoked_poll_s=0.05)
    etsy = EtsyChannel(
        etsy_client(s, pool=pools[0], transport=sim.transport(), token=token),
        source,
        s,
        fetch_image=mockup,
    )
    assert (await etsy.publish(await a_product(source))).listing is not None
    await sim.post("/_sim/oauth/revoke", user_id=ME)  # the seller removed the app

    async def publish(ref: ProductRef) -> Any:
        waits.working_for("job-etsy-revoked")  # as the runner does for a message
        return await etsy.publish(ref)

    publishing = asyncio.create_task(publish(await a_product(source)))
    revoked = await until(lambda: getattr(token, "revoked", None), 10, "the grant's refusal")
    assert "invalid_grant" in revoked
    await asyncio.sleep(0.2)  # polled a few times more: still waiting
    assert not publishing.done(), "a revoked grant must wait, not fail the publication"
    assert ("job-etsy-revoked", "credential") in [(w.job_id, w.kind) for w in waits.snapshot()]

    evaluator = AlertEvaluator(pools[0], MonitorSettings(), namespace=f"t{uuid.uuid4().hex}:")
    opened = [a for a in (await evaluator.evaluate()).opened if a["type"] == CREDENTIAL_REVOKED]
    assert [a["details"]["account"] for a in opened] == [account]
    assert grant["refresh_token"] not in str(opened)

    # The seller authorises again; a publisher restarted with the new ETSY_REFRESH_TOKEN seeds
    # it, and the waiting one carries on.
    again = await sim.authorize()
    restarted = etsy_client(
        settings(again["refresh_token"], credentials_key=key),
        pool=pools[1],
        transport=sim.transport(),
    )
    await restarted.get_listings_by_shop(SHOP, limit=1)
    state = await asyncio.wait_for(publishing, 10)
    assert state.listing is not None
    changes = await evaluator.evaluate()
    assert [a["details"]["account"] for a in changes.resolved] == [account]
    await restarted.aclose()
    await etsy.aclose()
    if refresher is not None:
        await refresher.aclose()


# ----------------------------------------------------------------------------- the grant


async def test_the_grant_maps_etsys_refusals_and_never_shows_a_token(sim: Sim) -> None:
    grant = EtsyRefreshGrant(
        keystring=KEYSTRING,
        api_key=f"{KEYSTRING}:{SECRET}",
        token_url="http://etsy/v3/public/oauth/token",
        transport=sim.transport(),
    )
    tokens = await sim.authorize()
    fresh = await grant(TokenSet(tokens["access_token"], tokens["refresh_token"]))
    assert fresh.refresh_token != tokens["refresh_token"] and fresh.expires_at is not None
    with pytest.raises(GrantRevoked) as caught:
        await grant(TokenSet("", tokens["refresh_token"]))  # spent
    assert caught.value.code == "invalid_grant" and caught.value.status == 400
    for secret in (tokens["refresh_token"], fresh.refresh_token or "", SECRET):
        assert secret not in str(caught.value)
    await grant.aclose()

    def down(request: httpx.Request) -> httpx.Response:
        echoed = request.content.decode()
        return httpx.Response(503, json={"error": f"unavailable {echoed}"})

    def hangs(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler, kind in ((down, RetryableError), (hangs, VendorTimeout)):
        failing = EtsyRefreshGrant(
            keystring=KEYSTRING,
            api_key=f"{KEYSTRING}:{SECRET}",
            transport=httpx.MockTransport(handler),
        )
        with pytest.raises(kind) as retry:
            await failing(TokenSet("", "4242.r-secret-refresh"))
        assert "4242.r-secret-refresh" not in str(retry.value)
        assert KEYSTRING not in str(retry.value)
        await failing.aclose()


async def test_etsy_channel_builds_with_a_refresh_token(sim: Sim, source: PrintifyClient) -> None:
    grant = await sim.authorize()
    built = etsy_channel(
        settings(grant["refresh_token"]),
        source,
        fetch_image=mockup,
        transport=sim.transport(),
    )
    assert (await built.publish(await a_product(source))).listing is not None
    await built.aclose()
