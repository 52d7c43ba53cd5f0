"""Screening's preflight: the policy as configured, the deny list with the seller's file (a
malformed one fails here), and the unsafe-image classifier (installed here for the tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.tools.doctor.screening import checks

ENV = (
    "SCREENING_ENABLED",
    "SCREENING_CHECKS_OFF",
    "SCREENING_POLICY",
    "SCREENING_DENY_TERMS_FILE",
    "CONFIG_PATH",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


async def test_every_part_passes_by_default() -> None:
    found = {c.name: c for c in await checks()}
    assert [c.status for c in found.values()] == ["pass", "pass", "pass"], found
    assert "deny_list: block" in found["screening.policy"].detail
    assert "near_duplicate: review" in found["screening.policy"].detail
    assert "protected terms (no seller's file)" in found["screening.deny_list"].detail
    assert "320n.onnx" in found["screening.unsafe_image"].detail


async def test_a_malformed_seller_file_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = tmp_path / "my-marks.json"
    mine.write_text(json.dumps({"entries": [{"term": ""}]}))
    monkeypatch.setenv("SCREENING_DENY_TERMS_FILE", str(mine))
    found = {c.name: c for c in await checks()}
    deny = found["screening.deny_list"]
    assert deny.status == "fail" and "my-marks.json" in deny.detail, deny


async def test_checks_turned_off_are_said_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCREENING_CHECKS_OFF", '["unsafe_image", "deny_list", "rendered_text"]')
    monkeypatch.setenv("SCREENING_POLICY", '{"near_duplicate": "block"}')
    found = {c.name: c for c in await checks()}
    assert "unsafe_image: off" in found["screening.policy"].detail
    assert "near_duplicate: block" in found["screening.policy"].detail
    assert found["screening.deny_list"].status == "skip"
    assert found["screening.unsafe_image"].status == "skip"
    monkeypatch.setenv("SCREENING_ENABLED", "false")
    [off] = await checks()
    assert off.status == "skip" and "off" in off.detail
