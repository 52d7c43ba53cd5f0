"""Claude's preflight against the Anthropic simulator, misconfigured in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.launch.ports import free_port
from shared.tools.doctor import Check
from shared.tools.doctor.claude import checks
from simulators.process import SimulatorProcess

KEY = "sk-ant-doctor-test-4a7c"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("anthropic", free_port(), env={"SIM_ANTHROPIC_KEYS": KEY}) as proc:
        yield proc


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, sim: SimulatorProcess) -> pytest.MonkeyPatch:
    monkeypatch.setenv("CLAUDE_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sim.url)
    monkeypatch.delenv("CLAUDE_MODEL", raising=False)
    return monkeypatch


def by_name(found: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in found}


async def test_a_valid_key_and_model_pass(env: pytest.MonkeyPatch) -> None:
    found = by_name(await checks())
    assert found["claude.key"].status == "pass"
    assert found["claude.model"].status == "pass"
    assert "claude-sonnet-4-6" in found["claude.model"].detail


async def test_a_refused_key_fails_without_showing_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("CLAUDE_API_KEY", "sk-ant-wrong-key-9f1e")
    found = by_name(await checks())
    assert found["claude.key"].status == "fail" and "401" in found["claude.key"].detail
    assert "CLAUDE_API_KEY" in (found["claude.key"].fix or "")
    assert "sk-ant-wrong-key-9f1e" not in repr(found)


async def test_an_unknown_model_fails_listing_the_ones_the_key_may_use(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("CLAUDE_MODEL", "claude-imaginary-1")
    found = by_name(await checks())
    model = found["claude.model"]
    assert model.status == "fail" and "claude-imaginary-1" in model.detail
    assert "claude-sonnet-4-6" in model.detail


async def test_an_unreachable_api_fails(env: pytest.MonkeyPatch) -> None:
    env.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{free_port()}")
    key = by_name(await checks())["claude.key"]
    assert key.status == "fail" and "cannot reach" in key.detail


async def test_without_a_key_it_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_API_KEY", raising=False)
    assert [c.status for c in await checks()] == ["skip"]
