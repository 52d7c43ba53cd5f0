"""``pod doctor``'s Meta checks against the Meta simulator (a real server), configured right and
then wrong in turn: each failure names the check and the fix, and no check carries a secret."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from shared.tools.doctor import Check
from shared.tools.doctor.meta import checks
from simulators import meta as meta_sim
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

NAMES = (
    "META_ACCESS_TOKEN",
    "META_APP_SECRET",
    "META_CATALOG_ID",
    "META_BUSINESS_ID",
    "META_GRAPH_URL",
    "PUBLISH_CHANNELS",
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("meta", free_port()) as proc:
        yield proc


@pytest.fixture
def configured(sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify,meta")
    monkeypatch.setenv("META_GRAPH_URL", sim.url)
    monkeypatch.setenv("META_ACCESS_TOKEN", meta_sim.DEFAULT_TOKEN)
    monkeypatch.setenv("META_APP_SECRET", meta_sim.DEFAULT_APP_SECRET)
    monkeypatch.setenv("META_CATALOG_ID", meta_sim.DEFAULT_CATALOG)
    monkeypatch.setenv("META_BUSINESS_ID", meta_sim.DEFAULT_BUSINESS)
    yield sim.url
    httpx.post(f"{sim.url}/_sim/reset", trust_env=False).raise_for_status()


def by_name(found: list[Check]) -> dict[str, Check]:
    text = json.dumps([c.as_dict() for c in found])
    assert meta_sim.DEFAULT_TOKEN not in text and meta_sim.DEFAULT_APP_SECRET not in text
    return {c.name: c for c in found}


async def test_a_right_configuration_passes_every_check(configured: str) -> None:
    found = by_name(await checks())
    assert {n: c.status for n, c in found.items()} == {
        "meta.settings": "pass",
        "meta.token": "pass",
        "meta.catalog": "pass",
        "meta.business": "pass",
    }


async def test_a_token_meta_does_not_know_fails_with_how_to_get_a_new_one(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("META_ACCESS_TOKEN", "EAAG-not-a-token")
    found = by_name(await checks())
    assert found["meta.token"].status == "fail"
    assert "System users" in (found["meta.token"].fix or "")
    assert "EAAG-not-a-token" not in json.dumps([c.as_dict() for c in found.values()])
    assert found["meta.catalog"].status == "skip"


async def test_a_wrong_app_secret_names_meta_app_secret(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("META_APP_SECRET", "another-apps-secret")
    found = by_name(await checks())
    assert found["meta.token"].status == "fail"
    assert "META_APP_SECRET" in (found["meta.token"].fix or "")


async def test_an_unknown_catalog_and_another_business_fail(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("META_CATALOG_ID", "42")
    assert by_name(await checks())["meta.catalog"].status == "fail"
    monkeypatch.setenv("META_CATALOG_ID", meta_sim.DEFAULT_CATALOG)
    monkeypatch.setenv("META_BUSINESS_ID", "1111")
    assert by_name(await checks())["meta.business"].status == "fail"


async def test_skipped_when_meta_is_not_a_channel(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISH_CHANNELS", "printify")
    assert [c.status for c in await checks()] == ["skip"]
