"""``pod doctor``'s TikTok Shop checks against the TikTok simulator (a real server taking only
the refresh tokens it issued), configured right and then wrong in turn: each failure names the
check, what was found and the fix, and no check carries a credential."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest

from shared.adapters.vendors.tiktok import TikTokSettings
from shared.tools.doctor import Check
from shared.tools.doctor.tiktok import checks
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

APP_KEY, APP_SECRET = "doctor-app-7c1e", "doctor-secret-0b9f"
REFRESH = "doctor-refresh-42aa"
CREDENTIALS_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
NAMES = (
    "TIKTOK_API_URL",
    "TIKTOK_APP_KEY",
    "TIKTOK_APP_SECRET",
    "TIKTOK_REFRESH_TOKEN",
    "TIKTOK_ACCESS_TOKEN",
    "TIKTOK_SHOP_CIPHER",
    "TIKTOK_SHOP_ID",
    "TIKTOK_WAREHOUSE_ID",
    "TIKTOK_CATEGORY_IDS",
    "DATABASE_URL",
    "CREDENTIALS_KEY",
)
SECRETS = [APP_SECRET, REFRESH]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    env = {
        "SIM_TIKTOK_APPS": f"{APP_KEY}:{APP_SECRET}",
        "SIM_TIKTOK_REFRESH_TOKENS": REFRESH,
        "SIM_TIKTOK_ACCEPT_UNKNOWN_TOKENS": "false",
    }
    with SimulatorProcess("tiktok", free_port(), env=env) as proc:
        yield proc


@pytest.fixture
async def seller(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, migrated_db: str
) -> AsyncIterator[str]:
    """A shop the engine sells on with the refresh token kept in the publishers' database."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    httpx.post(f"{sim.url}/_sim/reset", timeout=5, trust_env=False).raise_for_status()
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify,tiktok")
    monkeypatch.setenv("TIKTOK_API_URL", sim.url)
    monkeypatch.setenv("TIKTOK_APP_KEY", APP_KEY)
    monkeypatch.setenv("TIKTOK_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("TIKTOK_REFRESH_TOKEN", REFRESH)
    monkeypatch.setenv("DATABASE_URL", migrated_db)
    monkeypatch.setenv("CREDENTIALS_KEY", CREDENTIALS_KEY)
    yield sim.url
    account = TikTokSettings(tiktok_app_key=APP_KEY, tiktok_app_secret="x").account()
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        await conn.execute("DELETE FROM vendor_credentials WHERE account = %s", (account,))


async def run() -> dict[str, Check]:
    found = await checks()
    for check in found:
        text = f"{check.name} {check.detail} {check.fix or ''}"
        assert not any(secret in text for secret in SECRETS), check
    return {c.name: c for c in found}


def failed(found: dict[str, Check], name: str) -> Check:
    check = found[name]
    assert check.status == "fail", check
    assert check.fix
    return check


ALL = ["tiktok.settings", "tiktok.token", "tiktok.shop", "tiktok.warehouse", "tiktok.category"]


async def test_a_shop_configured_right_passes(seller: str) -> None:
    found = await run()
    assert list(found) == ALL
    assert {c.status for c in found.values()} == {"pass"}, found
    assert "renewed it through the database" in found["tiktok.token"].detail
    assert "7494049642642441621" in found["tiktok.shop"].detail
    assert "default sales warehouse" in found["tiktok.warehouse"].detail
    # A second run finds the token the first one stored: the rotated refresh token is not lost.
    again = await run()
    assert "still valid" in again["tiktok.token"].detail


async def test_not_selling_on_tiktok_skips(seller: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify")
    [check] = await checks()
    assert (check.name, check.status) == ("tiktok.configured", "skip")


async def test_no_credential_fails_the_settings(
    seller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOK_REFRESH_TOKEN")
    found = await run()
    assert "TIKTOK_REFRESH_TOKEN" in failed(found, "tiktok.settings").detail


async def test_a_wrong_app_secret_fails_the_shop_check(
    seller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOK_ACCESS_TOKEN", "some-access-token")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("TIKTOK_APP_SECRET", "not-the-secret")
    found = await run()
    assert "TIKTOK_APP_SECRET" in failed(found, "tiktok.shop").fix  # type: ignore[operator]
    assert found["tiktok.warehouse"].status == "skip"


async def test_a_refused_refresh_token_fails_the_token_check(
    seller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOK_REFRESH_TOKEN", "never-issued")
    found = await run()
    assert "TIKTOK_REFRESH_TOKEN" in failed(found, "tiktok.token").fix  # type: ignore[operator]
    assert {found[f"tiktok.{n}"].status for n in ("shop", "warehouse", "category")} == {"skip"}


async def test_a_wrong_warehouse_cipher_or_category_fails_its_check(
    seller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOK_WAREHOUSE_ID", "123")
    monkeypatch.setenv("TIKTOK_CATEGORY_IDS", '{"tshirt": "601226", "mug": "600001"}')
    found = await run()
    assert "123" in failed(found, "tiktok.warehouse").detail
    assert "mug -> 600001" in failed(found, "tiktok.category").detail
    monkeypatch.setenv("TIKTOK_SHOP_CIPHER", "ROW_not-this-shop")
    assert "0 of the shops" in failed(await run(), "tiktok.shop").detail
