"""``make up``'s CREDENTIALS_KEY: the deployment's own when set, else one made once in the state
folder and reused (tokens sealed with it stay readable across restarts)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from devstack.stack import Stack, isolated_settings
from shared.adapters.credentials import SecretBox


def test_a_key_is_made_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_KEY", raising=False)
    monkeypatch.delenv("CONFIG_PATH", raising=False)
    first = Stack(isolated_settings(tmp_path)).credentials_key_env()
    key = first["CREDENTIALS_KEY"]
    SecretBox.from_setting(key)  # a valid key
    made = tmp_path / "credentials.key"
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert Stack(isolated_settings(tmp_path)).credentials_key_env() == first  # a restart


def test_the_deployments_own_key_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_KEY", "the-sellers-own")
    assert Stack(isolated_settings(tmp_path)).credentials_key_env() == {}
    assert not (tmp_path / "credentials.key").exists()
