"""``pod doctor``'s Etsy checks against the Etsy simulator (a real server, taking only the tokens
it issued), configured right and then wrong in turn: each failure names the check, what was
found and the fix, and no check carries a credential."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from shared.adapters.vendors.etsy import EtsySettings
from shared.tools.doctor import Check
from shared.tools.doctor.etsy import checks
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

KEYSTRING, SECRET = "doctor-ks-51e0", "doctor-ss-a9d4"
SHOP, ME = 51234567, 777
CREDENTIALS_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
ETSY_NAMES = (
    "ETSY_API_KEY",
    "ETSY_SHARED_SECRET",
    "ETSY_REFRESH_TOKEN",
    "ETSY_ACCESS_TOKEN",
    "ETSY_SHOP_ID",
    "ETSY_SHIPPING_PROFILE_ID",
    "ETSY_READINESS_STATE_ID",
    "ETSY_RETURN_POLICY_ID",
    "ETSY_TAXONOMY_IDS",
    "ETSY_TOKEN_URL",
    "DATABASE_URL",
    "CREDENTIALS_KEY",
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    env = {
        "SIM_ETSY_API_KEYS": f"{KEYSTRING}:{SECRET}",
        "SIM_ETSY_STRICT_TOKENS": "1",
        "SIM_ETSY_QPS": "100",
    }
    with SimulatorProcess("etsy", free_port(), env=env) as proc:
        yield proc


class Shop:
    """The simulator as the seller's shop: its hooks, and the tokens handed out (none may
    appear in a check)."""

    def __init__(self, sim: SimulatorProcess) -> None:
        self.url = sim.url
        self.secrets: list[str] = [SECRET]

    def hook(self, path: str, **body: Any) -> dict[str, Any]:
        resp = httpx.post(f"{self.url}{path}", json=body, timeout=5, trust_env=False)
        resp.raise_for_status()
        return dict(resp.json())

    def authorize(self, **body: Any) -> dict[str, Any]:
        tokens = self.hook("/_sim/oauth/authorize", user_id=ME, client_id=KEYSTRING, **body)
        self.secrets += [tokens["access_token"], tokens["refresh_token"]]
        return tokens


@pytest.fixture
async def shop(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, migrated_db: str
) -> AsyncIterator[Shop]:
    """A shop the engine sells on with a refresh token kept in the publishers' database,
    configured right."""
    for name in ETSY_NAMES:
        monkeypatch.delenv(name, raising=False)
    s = Shop(sim)
    s.hook(f"/_sim/users/{ME}", shop_id=SHOP)
    tokens = s.authorize()
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify,etsy")
    monkeypatch.setenv("ETSY_API_URL", sim.url)
    monkeypatch.setenv("ETSY_API_KEY", KEYSTRING)
    monkeypatch.setenv("ETSY_SHARED_SECRET", SECRET)
    monkeypatch.setenv("ETSY_REFRESH_TOKEN", tokens["refresh_token"])
    monkeypatch.setenv("ETSY_SHOP_ID", str(SHOP))
    monkeypatch.setenv("ETSY_SHIPPING_PROFILE_ID", "9001")
    monkeypatch.setenv("DATABASE_URL", migrated_db)
    monkeypatch.setenv("CREDENTIALS_KEY", CREDENTIALS_KEY)
    yield s
    httpx.post(f"{sim.url}/_sim/reset", timeout=5, trust_env=False).raise_for_status()
    account = EtsySettings(
        etsy_api_key=KEYSTRING, etsy_shop_id=SHOP, etsy_refresh_token="1.x"
    ).account()
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        await conn.execute("DELETE FROM vendor_credentials WHERE account = %s", (account,))


async def run(shop: Shop) -> dict[str, Check]:
    found = await checks()
    for check in found:
        text = f"{check.name} {check.detail} {check.fix or ''}"
        assert not any(secret in text for secret in shop.secrets), check
    return {c.name: c for c in found}


def failed(found: dict[str, Check], name: str) -> Check:
    check = found[name]
    assert check.status == "fail", check
    assert check.fix
    return check


ALL = [
    "etsy.key",
    "etsy.token",
    "etsy.shop",
    "etsy.scopes",
    "etsy.shipping_profile",
    "etsy.processing_profile",
    "etsy.taxonomy",
    "etsy.return_policy",
]


async def test_a_shop_configured_right_passes(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETSY_RETURN_POLICY_ID", str(SHOP * 10 + 5))
    found = await run(shop)
    assert list(found) == ALL
    assert {c.status for c in found.values()} == {"pass"}, found
    assert "renewed it through the database" in found["etsy.token"].detail
    assert found["etsy.shop"].detail.startswith(f"PodSimShop{SHOP} ({SHOP})")
    assert "listings_d, listings_r, listings_w, shops_r" in found["etsy.scopes"].detail
    assert "made_to_order" in found["etsy.processing_profile"].detail
    assert "tshirt -> 482 (T-shirts)" in found["etsy.taxonomy"].detail
    # A second run finds the token the first one stored: nothing spent.
    again = await run(shop)
    assert "still valid" in again["etsy.token"].detail
    oauth = httpx.get(f"{shop.url}/_sim/oauth", timeout=5, trust_env=False).json()
    assert oauth["refreshed"] == 1


async def test_skipped_unless_etsy_is_sold_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify")
    assert [(c.name, c.status) for c in await checks()] == [("etsy.configured", "skip")]


async def test_no_shared_secret(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETSY_SHARED_SECRET")
    found = await run(shop)
    check = failed(found, "etsy.settings")
    assert check.detail.startswith("ETSY_SHARED_SECRET: required")
    assert check.fix and "ETSY_SHARED_SECRET" in check.fix and "your-apps" in check.fix
    assert list(found) == ["etsy.settings"]


async def test_a_bad_key(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETSY_SHARED_SECRET", "doctor-ss-typo")
    shop.secrets.append("doctor-ss-typo")
    found = await run(shop)
    check = failed(found, "etsy.key")
    assert "Etsy refused the app's key (403" in check.detail
    assert check.fix and "ETSY_SHARED_SECRET" in check.fix and "ETSY_API_KEY" in check.fix
    assert {found[n].status for n in ALL[1:]} == {"skip"}


async def test_a_revoked_grant(shop: Shop) -> None:
    shop.hook("/_sim/oauth/revoke", user_id=ME)  # the seller removed the app
    found = await run(shop)
    check = failed(found, "etsy.token")
    assert "Etsy refused the shop owner's grant" in check.detail
    assert "invalid_grant" in check.detail
    assert check.fix and "ETSY_REFRESH_TOKEN" in check.fix and "PKCE" in check.fix
    assert {found[n].status for n in ALL[2:]} == {"skip"}


async def test_an_expired_access_token_without_the_publishers_store(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    tokens = shop.authorize()
    monkeypatch.setenv("ETSY_ACCESS_TOKEN", tokens["access_token"])
    valid = (await run(shop))["etsy.token"]  # still valid: checked as it is
    assert valid.status == "pass" and "ETSY_REFRESH_TOKEN was not tried" in valid.detail
    shop.hook("/_sim/oauth/expire", user_id=ME)
    found = await run(shop)
    check = failed(found, "etsy.token")
    assert "Etsy refused ETSY_ACCESS_TOKEN" in check.detail and "expired" in check.detail
    assert "the refresh token was not tried" in check.detail
    assert check.fix and "DATABASE_URL and CREDENTIALS_KEY" in check.fix
    # Nothing was spent: the refresh token was never sent.
    oauth = httpx.get(f"{shop.url}/_sim/oauth", timeout=5, trust_env=False).json()
    assert oauth["refreshed"] == 0 and oauth["refused"] == {}


async def test_no_store_and_no_access_token_says_the_refresh_was_not_checked(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    found = await run(shop)
    assert found["etsy.token"].status == "skip"
    assert "the refresh could not be checked" in found["etsy.token"].detail
    assert found["etsy.key"].status == "pass"


async def test_an_access_token_alone_stops_within_the_hour(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETSY_REFRESH_TOKEN", "")
    monkeypatch.setenv("ETSY_ACCESS_TOKEN", shop.authorize()["access_token"])
    found = await run(shop)
    check = failed(found, "etsy.token")
    assert "stops working within the hour" in check.detail
    assert check.fix and check.fix.startswith("set ETSY_REFRESH_TOKEN")
    assert found["etsy.shop"].status == "pass"


async def test_a_wrong_shop_id(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETSY_SHOP_ID", "98765")
    found = await run(shop)
    check = failed(found, "etsy.shop")
    assert check.detail == (
        f"the token is Etsy user {ME}'s, who owns shop {SHOP}; ETSY_SHOP_ID is 98765"
    )
    assert check.fix == f"set ETSY_SHOP_ID to {SHOP}"


async def test_scopes_the_engine_needs_but_the_seller_did_not_grant(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "ETSY_REFRESH_TOKEN", shop.authorize(scopes=["listings_r", "shops_r"])["refresh_token"]
    )
    found = await run(shop)
    check = failed(found, "etsy.scopes")
    assert check.detail.startswith("the token lacks listings_w (for createDraftListing")
    # A seller's delete decision deletes the listing on Etsy (deleteListing).
    assert "listings_d (for deleteListing)" in check.detail
    assert check.fix and "scope=listings_d%20listings_r%20listings_w%20shops_r" in check.fix


async def test_a_missing_shipping_profile(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETSY_SHIPPING_PROFILE_ID", "424242")
    found = await run(shop)
    check = failed(found, "etsy.shipping_profile")
    assert check.detail == (
        f"ETSY_SHIPPING_PROFILE_ID=424242 is not a shipping profile of shop {SHOP} "
        "(the shop has: 9001 (Standard shipping))"
    )
    assert check.fix == "set ETSY_SHIPPING_PROFILE_ID to one of those ids"
    monkeypatch.delenv("ETSY_SHIPPING_PROFILE_ID")
    unset = failed(await run(shop), "etsy.shipping_profile")
    assert unset.detail.startswith("ETSY_SHIPPING_PROFILE_ID is unset")


async def test_a_missing_processing_profile(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.hook(f"/_sim/shops/{SHOP}", processing_profiles=["ready_to_ship"])
    found = await run(shop)
    check = failed(found, "etsy.processing_profile")
    assert check.detail.startswith(f"shop {SHOP} has no made_to_order processing profile")
    assert f"{SHOP * 10 + 2} (ready_to_ship, 1-1 days)" in check.detail
    assert check.fix and "made to order processing profile" in check.fix
    monkeypatch.setenv("ETSY_READINESS_STATE_ID", str(SHOP * 10 + 1))
    named = failed(await run(shop), "etsy.processing_profile")
    assert named.detail.startswith(
        f"ETSY_READINESS_STATE_ID={SHOP * 10 + 1} is not a processing profile of shop {SHOP}"
    )


async def test_an_unknown_taxonomy_id(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETSY_TAXONOMY_IDS", json.dumps({"mug": 999999}))
    found = await run(shop)
    check = failed(found, "etsy.taxonomy")
    assert check.detail == "not nodes of Etsy's seller taxonomy: mug -> 999999"
    assert check.fix and "ETSY_TAXONOMY_IDS" in check.fix


async def test_a_wrong_return_policy(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETSY_RETURN_POLICY_ID", "31")
    check = failed(await run(shop), "etsy.return_policy")
    assert check.detail == (
        f"ETSY_RETURN_POLICY_ID=31 is not a return policy of shop {SHOP} (it has: {SHOP * 10 + 5})"
    )


async def test_credentials_key_is_required_with_the_publishers_database(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_KEY")
    check = failed(await run(shop), "etsy.settings")
    assert check.detail.startswith("CREDENTIALS_KEY: required")
    assert check.fix and check.fix.startswith("set CREDENTIALS_KEY")
