"""``pod doctor``'s Shopify checks against the Shopify simulator (a real server), configured
right and then wrong in turn: each failure names the check, what was found and the fix, and no
check carries a credential."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator

import httpx
import pytest

from shared.adapters.vendors.shopify_contract import API_VERSION
from shared.tools.doctor import Check
from shared.tools.doctor.shopify import checks
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

SHOP = "doctor-test.myshopify.com"
ADMIN_TOKEN = "shpat_doctor_3e1f0a9b"
CLIENT_ID, CLIENT_SECRET = "doctor-app", "shpss_doctor_77c0ffee"
SECRETS = (ADMIN_TOKEN, CLIENT_SECRET)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    env = {
        "SIM_SHOPIFY_SHOP": SHOP,
        "SIM_SHOPIFY_TOKENS": ADMIN_TOKEN,
        "SIM_SHOPIFY_CLIENT_ID": CLIENT_ID,
        "SIM_SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
        # Shopify's calendar that day: 2026-01 to 2026-10 supported.
        "SIM_SHOPIFY_TODAY": "2026-12-06",
    }
    with SimulatorProcess("shopify", free_port(), env=env) as proc:
        yield proc


@pytest.fixture
def store(sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorProcess]:
    """A store the engine sells on through a Dev Dashboard app, configured right."""
    for name in ("SHOPIFY_ACCESS_TOKEN", "SHOPIFY_PUBLICATION_ID", "SHOPIFY_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify,shopify")
    monkeypatch.setenv("SHOPIFY_SHOP_DOMAIN", SHOP)
    monkeypatch.setenv("SHOPIFY_API_URL", sim.url)
    monkeypatch.setenv("SHOPIFY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SHOPIFY_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv(
        "CREDENTIALS_KEY", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    )
    yield sim
    httpx.post(f"{sim.url}/_sim/reset", timeout=5).raise_for_status()


def admin_token(monkeypatch: pytest.MonkeyPatch, token: str = ADMIN_TOKEN) -> None:
    monkeypatch.delenv("SHOPIFY_CLIENT_ID")
    monkeypatch.delenv("SHOPIFY_CLIENT_SECRET")
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", token)


async def run() -> dict[str, Check]:
    found = await checks()
    for check in found:
        text = f"{check.detail} {check.fix or ''}"
        assert not any(secret in text for secret in SECRETS), check
    return {c.name: c for c in found}


def failed(found: dict[str, Check], name: str) -> Check:
    check = found[name]
    assert check.status == "fail", check
    assert check.fix
    return check


@pytest.mark.parametrize("credential", ["client-credentials", "admin-token"])
async def test_a_store_configured_right_passes(
    store: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, credential: str
) -> None:
    if credential == "admin-token":
        admin_token(monkeypatch)
    found = await run()
    assert list(found) == [
        "shopify.credentials",
        "shopify.api_version",
        "shopify.scopes",
        "shopify.publication",
    ]
    assert {c.status for c in found.values()} == {"pass"}, found
    assert API_VERSION in found["shopify.api_version"].detail
    assert "Online Store" in found["shopify.publication"].detail


async def test_skipped_unless_shopify_is_sold_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify")
    assert [(c.name, c.status) for c in await checks()] == [("shopify.configured", "skip")]


async def test_a_bad_admin_token(store: SimulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    admin_token(monkeypatch, "shpat_revoked_0000")
    found = await run()
    check = failed(found, "shopify.credentials")
    assert "refused the admin token (401)" in check.detail
    assert check.fix and "SHOPIFY_ACCESS_TOKEN" in check.fix
    assert {found[n].status for n in ("shopify.scopes", "shopify.publication")} == {"skip"}


async def test_a_bad_client_secret(
    store: SimulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_CLIENT_SECRET", "shpss_typo")
    found = await run()
    check = failed(found, "shopify.credentials")
    assert "refused the app's client credentials (invalid_client)" in check.detail
    assert check.fix and "SHOPIFY_CLIENT_SECRET" in check.fix and "install" in check.fix
    assert "shpss_typo" not in f"{check.detail} {check.fix}"


async def test_an_uninstalled_app(store: SimulatorProcess) -> None:
    httpx.post(f"{store.url}/_sim/app/uninstall", timeout=5).raise_for_status()
    check = failed(await run(), "shopify.credentials")
    assert (
        "invalid_client" in check.detail and check.fix and f"install the app on {SHOP}" in check.fix
    )


async def test_a_missing_scope(store: SimulatorProcess) -> None:
    httpx.post(
        f"{store.url}/_sim/app", json={"scopes": "write_products,read_publications"}, timeout=5
    ).raise_for_status()
    check = failed(await run(), "shopify.scopes")
    assert "lacks write_publications (for PodPublish)" in check.detail
    assert check.fix and check.fix.startswith("grant the app write_publications")


async def test_no_online_store(store: SimulatorProcess) -> None:
    pos = {"id": "gid://shopify/Publication/2", "name": "Point of Sale"}
    httpx.post(
        f"{store.url}/_sim/publications", json={"shop": SHOP, "publications": [pos]}, timeout=5
    ).raise_for_status()
    check = failed(await run(), "shopify.publication")
    assert "has no Online Store publication (it has: Point of Sale (gid" in check.detail
    assert check.fix and "SHOPIFY_PUBLICATION_ID" in check.fix


async def test_a_wrong_publication_id(
    store: SimulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_PUBLICATION_ID", "gid://shopify/Publication/404")
    check = failed(await run(), "shopify.publication")
    assert "SHOPIFY_PUBLICATION_ID=gid://shopify/Publication/404 is not a publication" in (
        check.detail
    )
    assert "Online Store (gid://shopify/Publication/1)" in check.detail
    monkeypatch.setenv("SHOPIFY_PUBLICATION_ID", "gid://shopify/Publication/2")
    found = await run()
    assert found["shopify.publication"].status == "pass"
    assert "Point of Sale" in found["shopify.publication"].detail


@pytest.mark.parametrize(
    ("version", "said"),
    [
        ("2025-10", "no longer supports Admin API version 2025-10: it answers with 2026-01"),
        ("2027-04", "does not serve Admin API version 2027-04 (404)"),
    ],
)
async def test_an_api_version_shopify_does_not_serve(
    store: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, version: str, said: str
) -> None:
    monkeypatch.setenv("SHOPIFY_API_VERSION", version)
    check = failed(await run(), "shopify.api_version")
    assert said in check.detail
    assert check.fix and f"SHOPIFY_API_VERSION to {API_VERSION}" in check.fix


async def test_both_credentials_set(
    store: SimulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", ADMIN_TOKEN)
    found = await run()
    check = failed(found, "shopify.settings")
    assert "SHOPIFY_ACCESS_TOKEN and SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET" in check.detail
    assert list(found) == ["shopify.settings"]


async def test_an_app_without_credentials_key(
    store: SimulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_KEY")
    check = failed(await run(), "shopify.settings")
    assert check.detail.startswith("CREDENTIALS_KEY: required")
    assert "secrets.token_bytes(32)" in check.detail
    assert check.fix and check.fix.startswith("set CREDENTIALS_KEY")
