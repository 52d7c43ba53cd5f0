"""Shopify's two credentials against the simulator (in process): a legacy admin token that never
expires, and a Dev Dashboard app's client credentials, whose tokens the simulator expires as
Shopify does (24 h there, a second or two here). The app's tokens are renewed before they end
and after a 401, shared by every process through PostgreSQL, and a grant Shopify refuses (the
app uninstalled) makes the work wait and raises an alert instead of failing it."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.alerts import CREDENTIAL_REVOKED, AlertEvaluator
from services.monitor.settings import MonitorSettings
from shared.adapters.credentials import (
    GrantRevoked,
    MemoryTokenStore,
    PgTokenStore,
    SecretBox,
    StaticToken,
    TokenSet,
)
from shared.adapters.vendors.channels import ProductRef
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.shopify import (
    ClientCredentialsGrant,
    ShopifyChannel,
    ShopifyClient,
    ShopifySettings,
    shopify_client,
    shopify_token,
)
from shared.platform.db import open_pool
from shared.platform.errors import ConfigError, PermanentError
from simulators.printify import SHOP_ID
from simulators.printify import create_app as printify_app
from simulators.shopify import create_app as shopify_app
from tests.support.printify import TITLE, create_product, in_process

CLIENT_ID, CLIENT_SECRET = "sim-shopify-client", "shpss_5f0c2e9a71b84d3e"
SIM_ENV = {"SIM_SHOPIFY_CLIENT_ID": CLIENT_ID, "SIM_SHOPIFY_CLIENT_SECRET": CLIENT_SECRET}


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


class Sim:
    """The simulator app in process (one store of its own per test), its hooks and books."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.shop = f"s{uuid.uuid4().hex[:10]}.myshopify.com"
        self.hooks = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{self.shop}"
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.app)

    async def grants(self) -> int:
        books = (await self.hooks.get("/_sim/books")).json()
        return int(books["grants"].get(f"{CLIENT_ID}@{self.shop}", 0))

    async def post(self, path: str, **body: Any) -> None:
        (await self.hooks.post(path, json=body)).raise_for_status()


@pytest.fixture
def sim_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    for key, value in {**SIM_ENV, **getattr(request, "param", {})}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
async def sim(sim_env: None) -> AsyncIterator[Sim]:
    s = Sim(shopify_app())
    yield s
    await s.hooks.aclose()


@pytest.fixture
async def printify() -> AsyncIterator[PrintifyClient]:
    async with in_process(printify_app()) as client:
        yield client


def settings(shop: str = "cats.myshopify.com", **overrides: Any) -> ShopifySettings:
    fields: dict[str, Any] = {
        "shopify_shop_domain": shop,
        "shopify_client_id": CLIENT_ID,
        "shopify_client_secret": CLIENT_SECRET,
        "shopify_api_url": f"http://{shop}",
        "shopify_token_margin_s": 0.2,
        "credentials_key": _key(),
        **overrides,
    }
    return ShopifySettings(**fields)


def app_client(sim: Sim, **kwargs: Any) -> ShopifyClient:
    return shopify_client(settings(sim.shop), sim.transport(), **kwargs)


def grant_of(sim: Sim, secret: str = CLIENT_SECRET) -> ClientCredentialsGrant:
    return ClientCredentialsGrant(
        shop_domain=sim.shop,
        client_id=CLIENT_ID,
        client_secret=secret,
        base_url=f"http://{sim.shop}",
        transport=sim.transport(),
    )


async def a_product(printify: PrintifyClient) -> ProductRef:
    made = await create_product(
        printify, str(SHOP_ID), variant_count=2, price_cents=1999, sku_prefix="pod-cc"
    )
    return ProductRef(str(SHOP_ID), str(made.id), TITLE)


SHOP_QUERY = "query PodShop { shop { name } }"
UNISSUED = TokenSet("", None, datetime(1970, 1, 1, tzinfo=UTC))


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"shopify_access_token": "shpat_1"}, "SHOPIFY_ACCESS_TOKEN and SHOPIFY_CLIENT_ID and"),
        ({"shopify_client_id": None, "shopify_client_secret": None}, "no Shopify credential"),
        ({"shopify_client_secret": None}, "SHOPIFY_CLIENT_SECRET is not set"),
        ({"shopify_client_id": ""}, "SHOPIFY_CLIENT_ID is not set"),
    ],
)
def test_one_credential_or_a_clear_error_naming_the_settings(
    given: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        shopify_client(settings(**given))
    assert CLIENT_SECRET not in str(caught.value)


def test_the_database_needs_credentials_key_only_for_the_apps_tokens() -> None:
    pool: Any = object()  # never reached: the key is checked first
    with pytest.raises(ConfigError, match=r"CREDENTIALS_KEY: required.*SHOPIFY_CLIENT_ID"):
        shopify_client(settings(credentials_key=None), pool=pool)
    admin = settings(
        shopify_access_token="shpat_1",
        shopify_client_id=None,
        shopify_client_secret=None,
        credentials_key=None,
    )
    token, grant = shopify_token(admin, pool=pool)
    assert isinstance(token, StaticToken) and grant is None
    token, grant = shopify_token(settings(credentials_key=None))  # no database: in memory
    assert grant is not None


# ------------------------------------------------------------------------- expiring tokens


@pytest.mark.parametrize("sim_env", [{"SIM_SHOPIFY_TOKEN_TTL_S": "1.5"}], indirect=True)
@pytest.mark.parametrize("managed", [True, False], ids=["client-credentials", "static-control"])
async def test_a_publisher_whose_token_expires_mid_run_keeps_publishing(
    sim: Sim, printify: PrintifyClient, managed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The app's token lives 1.5 s: publishing across its end renews it first. The control sends
    the first token it got as a fixed one, as SHOPIFY_ACCESS_TOKEN did before: Shopify (the
    simulator) refuses it once it expired, and the publication fails for good."""
    caplog.set_level(logging.DEBUG)
    sent = Recording(sim.transport())
    client = shopify_client(settings(sim.shop), sent)
    if not managed:
        grant = grant_of(sim)
        first = await grant(UNISSUED)
        await grant.aclose()
        await client.aclose()
        client = ShopifyClient(
            shop_domain=sim.shop,
            token=StaticToken(first.access_token),
            base_url=f"http://{sim.shop}",
            transport=sent,
        )
    channel = ShopifyChannel(client, printify)
    refs = [await a_product(printify) for _ in range(2)]
    assert (await channel.publish(refs[0])).listing is not None
    await asyncio.sleep(1.6)  # the token's 1.5 s are over
    if managed:
        assert (await channel.publish(refs[1])).listing is not None
        assert await sim.grants() == 2 and len(sent.tokens) == 2
    else:
        with pytest.raises(PermanentError) as caught:
            await channel.publish(refs[1])
        assert caught.value.status == 401
        assert first.access_token not in str(caught.value)
    # Neither the secret nor a token ever reaches a log line.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert sent.tokens and not any(t in logged for t in (*sent.tokens, CLIENT_SECRET))
    await channel.aclose()


class Recording(httpx.AsyncBaseTransport):
    """The transport to the simulator, noting each token sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.tokens: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("x-shopify-access-token")
        if token:
            self.tokens.add(token)
        return await self.inner.handle_async_request(request)


# Only the tokens it issued (and this admin token) are taken: a token it forgot is unknown.
STRICT = {"SIM_SHOPIFY_TOKEN_TTL_S": "3600", "SIM_SHOPIFY_TOKENS": "shpat_other"}


@pytest.mark.parametrize("sim_env", [STRICT], indirect=True)
async def test_a_refused_token_is_renewed_once_and_the_call_sent_again(sim: Sim) -> None:
    """A token Shopify stopped taking before its end (here: the simulator restarted and forgot
    it) is answered 401: the client renews it and sends the call once more."""
    client = app_client(sim)
    assert (await client.graphql("PodShop", SHOP_QUERY, {}))["shop"]["name"]
    await sim.post("/_sim/reset")
    assert (await client.graphql("PodShop", SHOP_QUERY, {}))["shop"]["name"]
    assert await sim.grants() == 1  # the reset cleared the count: the renewal's
    await client.aclose()


@pytest.fixture
async def pools(migrated_db: str) -> AsyncIterator[list[AsyncConnectionPool]]:
    """Two pools: two publisher processes, as far as PostgreSQL can tell."""
    ps = [await open_pool(migrated_db, max_size=2) for _ in range(2)]
    yield ps
    for p in ps:
        await p.close()


@pytest.fixture
async def account(sim: Sim, pools: list[AsyncConnectionPool]) -> AsyncIterator[str]:
    """The account the test store's app tokens are kept under; its row removed afterwards
    (other tests' alert evaluations read every row)."""
    name = settings(sim.shop).account()
    yield name
    async with pools[0].connection() as conn:
        await conn.execute("DELETE FROM vendor_credentials WHERE account = %s", (name,))


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "per-process-control"])
async def test_two_publishers_sharing_the_database_request_one_token(
    sim: Sim, pools: list[AsyncConnectionPool], account: str, shared: bool
) -> None:
    key = _key()
    clients = []
    for pool in pools:
        store = None if shared else MemoryTokenStore()
        s = settings(sim.shop, credentials_key=key)
        clients.append(shopify_client(s, sim.transport(), pool=pool, store=store))
    answers = await asyncio.gather(*(c.graphql("PodShop", SHOP_QUERY, {}) for c in clients))
    assert all(a["shop"]["name"] for a in answers)
    assert await sim.grants() == (1 if shared else 2)
    if shared:
        row = await PgTokenStore(pools[0], SecretBox.from_setting(key)).read(account)
        assert row.access_token and row.expires_at is not None
    for c in clients:
        await c.aclose()


async def test_an_uninstalled_app_waits_alerts_and_resumes_when_installed_again(
    sim: Sim, pools: list[AsyncConnectionPool], account: str, printify: PrintifyClient
) -> None:
    key = _key()
    token, grant = shopify_token(
        settings(sim.shop, credentials_key=key),
        pool=pools[0],
        transport=sim.transport(),
        revoked_poll_s=0.05,
    )
    assert grant is not None
    client = ShopifyClient(
        shop_domain=sim.shop,
        token=token,
        base_url=f"http://{sim.shop}",
        transport=sim.transport(),
        grant=grant,
    )
    channel = ShopifyChannel(client, printify)
    await sim.post("/_sim/app/uninstall")  # before the first token: the grant itself is refused
    publishing = asyncio.create_task(channel.publish(await a_product(printify)))
    await asyncio.sleep(0.5)
    assert not publishing.done(), "a refused grant must wait, not fail the publication"
    assert token.revoked and "invalid_client" in token.revoked  # type: ignore[attr-defined]

    evaluator = AlertEvaluator(pools[0], MonitorSettings(), namespace=f"t{uuid.uuid4().hex}:")
    opened = [a for a in (await evaluator.evaluate()).opened if a["type"] == CREDENTIAL_REVOKED]
    assert [a["details"]["account"] for a in opened] == [account]
    assert CLIENT_SECRET not in str(opened)

    await sim.post("/_sim/app/install")  # the merchant installs the app again
    state = await asyncio.wait_for(publishing, 10)
    assert state.listing is not None
    changes = await evaluator.evaluate()
    assert [a["details"]["account"] for a in changes.resolved] == [account]
    await channel.aclose()


async def test_a_wrong_secret_is_a_revoked_grant_without_the_secret(sim: Sim) -> None:
    grant = grant_of(sim, secret="shpss_wrong_0000")
    with pytest.raises(GrantRevoked) as caught:
        await grant(UNISSUED)
    assert caught.value.code == "invalid_client" and "shpss_wrong_0000" not in str(caught.value)
    await grant.aclose()


@pytest.mark.parametrize("sim_env", [{"SIM_SHOPIFY_TOKENS": "shpat_legacy_1a2b3c"}], indirect=True)
async def test_a_legacy_admin_token_still_works(sim: Sim, printify: PrintifyClient) -> None:
    admin = settings(
        sim.shop,
        shopify_access_token="shpat_legacy_1a2b3c",
        shopify_client_id=None,
        shopify_client_secret=None,
        credentials_key=None,
    )
    channel = ShopifyChannel(shopify_client(admin, sim.transport()), printify)
    assert (await channel.publish(await a_product(printify))).listing is not None
    assert await sim.grants() == 0
    await channel.aclose()
