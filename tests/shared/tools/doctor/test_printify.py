"""``pod doctor``'s Printify checks against the Printify simulator, misconfigured in turn."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared.tools.doctor import Check, all_passed
from shared.tools.doctor.printify import checks
from simulators.printify import SHOP_ID
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

TOKEN = "tok-doctor-good"
ETSY_SHOP = SHOP_ID + 1


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    """An account Printify knows by one token, with an API shop and an Etsy shop."""
    env = {"SIM_PRINTIFY_TOKENS": TOKEN, "SIM_PRINTIFY_SHOPS": "custom_integration,etsy"}
    with SimulatorProcess("printify", free_port(), env=env) as proc:
        yield proc


@pytest.fixture
def env(sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A correct configuration: the token, the API shop, the default catalog."""
    for key in ("CONFIG_PATH", "PRODUCT_CATALOG", "PUBLISH_CHANNELS", "PRINT_DPI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PRINTIFY_API_KEY", TOKEN)
    monkeypatch.setenv("PRINTIFY_API_URL", sim.url)
    monkeypatch.setenv("PRINTIFY_SHOP_ID", str(SHOP_ID))
    return monkeypatch


def by_name(found: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in found}


def failed(found: list[Check]) -> list[Check]:
    return [c for c in found if c.status == "fail"]


async def test_a_correct_account_passes_every_check(env: pytest.MonkeyPatch) -> None:
    found = await checks()
    assert all_passed(found), failed(found)
    named = by_name(found)
    assert "shop 12345678 (POD Engine Shop)" in named["printify.shop"].detail
    assert "custom_integration" in named["printify.sales_channel"].detail
    for t in ("tshirt", "hoodie", "mug"):
        for what in ("blueprint", "provider", "variants", "print_areas"):
            assert named[f"printify.{t}.{what}"].status == "pass"
    # The tee's front: 4500 x 5100 px at 300 DPI, 15 x 17 in.
    assert "front 4500 x 5100 px (15.0 x 17.0 in)" in named["printify.tshirt.print_areas"].detail
    assert "at PRINT_DPI 300" in named["printify.tshirt.print_areas"].detail
    # One list of blueprints, then a providers and a variants call per type: 1 + 3 + 3.
    assert named["printify.catalog_calls"].detail.startswith("7 catalog call(s)")


async def test_print_dpi_sizes_the_art_in_the_detail(env: pytest.MonkeyPatch) -> None:
    env.setenv("PRINT_DPI", "150")
    detail = by_name(await checks())["printify.tshirt.print_areas"].detail
    assert "art 2250 x 2550 px at PRINT_DPI 150" in detail


async def test_skipped_without_a_key(env: pytest.MonkeyPatch) -> None:
    env.delenv("PRINTIFY_API_KEY")
    found = await checks()
    assert [(c.name, c.status) for c in found] == [("printify.credentials", "skip")]
    assert "simulator" in found[0].detail


async def test_a_bad_key_fails_naming_the_setting(env: pytest.MonkeyPatch) -> None:
    env.setenv("PRINTIFY_API_KEY", "tok-revoked-or-mistyped")
    found = await checks()
    assert [c.name for c in found] == ["printify.credentials"]
    check = found[0]
    assert check.status == "fail" and "401" in check.detail and "PRINTIFY_API_KEY" in check.detail
    assert check.fix is not None and "personal access token" in check.fix
    assert "tok-revoked" not in json.dumps([c.as_dict() for c in found])


async def test_two_shops_and_none_chosen_fails_listing_them(env: pytest.MonkeyPatch) -> None:
    env.delenv("PRINTIFY_SHOP_ID")
    check = by_name(await checks())["printify.shop"]
    assert check.status == "fail"
    assert "2 shops" in check.detail
    assert f"{SHOP_ID} (POD Engine Shop, custom_integration)" in check.detail
    assert f"{ETSY_SHOP} (Etsy Shop, etsy)" in check.detail
    assert check.fix is not None and "PRINTIFY_SHOP_ID" in check.fix


async def test_a_shop_that_is_not_the_accounts_fails(env: pytest.MonkeyPatch) -> None:
    env.setenv("PRINTIFY_SHOP_ID", "999")
    check = by_name(await checks())["printify.shop"]
    assert check.status == "fail"
    assert "PRINTIFY_SHOP_ID: 999 is not a shop of this account" in check.detail
    assert str(SHOP_ID) in check.detail
    assert check.fix is not None and "PRINTIFY_SHOP_ID" in check.fix


async def test_a_shop_of_another_sales_channel_fails_saying_what_follows(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("PRINTIFY_SHOP_ID", str(ETSY_SHOP))
    env.setenv("PUBLISH_CHANNELS", "printify,shopify")
    check = by_name(await checks())["printify.sales_channel"]
    assert check.status == "fail"
    assert "connected to etsy, not custom_integration" in check.detail
    assert "Printify publishes its products to etsy itself" in check.detail
    assert "also lists them on shopify" in check.detail
    assert check.fix is not None and "PRINTIFY_SALES_CHANNEL=etsy" in check.fix
    # Meant: Printify publishes to the Etsy shop.
    env.setenv("PRINTIFY_SALES_CHANNEL", "etsy")
    assert by_name(await checks())["printify.sales_channel"].status == "pass"


def catalog(env: pytest.MonkeyPatch, **entries: dict[str, object]) -> None:
    env.setenv("PRODUCT_CATALOG", json.dumps(entries))


async def test_a_blueprint_that_does_not_exist_fails(env: pytest.MonkeyPatch) -> None:
    catalog(env, tshirt={"blueprint_id": 99999, "print_provider_id": 99, "price_cents": 1999})
    found = await checks()
    check = by_name(found)["printify.tshirt.blueprint"]
    assert check.status == "fail"
    assert "PRODUCT_CATALOG tshirt: blueprint 99999 is not in Printify's catalog" in check.detail
    assert check.fix is not None and "blueprint_id" in check.fix
    assert "printify.tshirt.provider" not in by_name(found)
    assert by_name(found)["printify.mug.print_areas"].status == "pass"  # the others still run


async def test_a_provider_that_does_not_offer_the_blueprint_fails(env: pytest.MonkeyPatch) -> None:
    catalog(env, tshirt={"blueprint_id": 6, "print_provider_id": 1, "price_cents": 1999})
    check = by_name(await checks())["printify.tshirt.provider"]
    assert check.status == "fail"
    assert "print provider 1 does not offer blueprint 6" in check.detail
    assert "99 (Printify Choice)" in check.detail and "29 (Monster Digital)" in check.detail
    assert check.fix is not None and "print_provider_id" in check.fix


async def test_a_position_that_is_not_a_print_area_fails(env: pytest.MonkeyPatch) -> None:
    catalog(
        env,
        mug={
            "blueprint_id": 68,
            "print_provider_id": 1,
            "price_cents": 1499,
            "positions": ["back"],
        },
    )
    check = by_name(await checks())["printify.mug.print_areas"]
    assert check.status == "fail"
    assert "position(s) back are not print areas of these variants; they have front" in check.detail
    assert check.fix is not None and "positions" in check.fix and "front" in check.fix


async def test_colours_no_variant_has_fail(env: pytest.MonkeyPatch) -> None:
    catalog(
        env,
        hoodie={
            "blueprint_id": 77,
            "print_provider_id": 29,
            "price_cents": 3499,
            "colours": ["Red"],
        },
    )
    check = by_name(await checks())["printify.hoodie.variants"]
    assert check.status == "fail" and "no available variant of the colours Red" in check.detail
