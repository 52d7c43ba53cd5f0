"""The seed's nested config file (config.example.json) read from CONFIG_PATH."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import StackSettings
from services.api.settings import ApiSettings
from services.generator.settings import GeneratorSettings
from services.printify.settings import PrintifySettings
from shared.platform.errors import ConfigError
from shared.platform.settings import REPO_ROOT, load_settings

EXAMPLE = REPO_ROOT / "config.example.json"


def use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(data))
    monkeypatch.setenv("CONFIG_PATH", str(cfg))
    for name in ("API_PORT", "WORKER_COUNT", "DATABASE_URL", "CORS_ORIGINS", "API_KEYS"):
        monkeypatch.delenv(name, raising=False)


def example() -> dict[str, Any]:
    return dict(json.loads(EXAMPLE.read_text()))


def test_the_shipped_example_configures_every_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = example()
    data["api"]["cors"]["enabled"] = True
    data["workerPool"].update(count=3, restartDelay=2500)
    use(tmp_path, monkeypatch, data)
    stack = load_settings(StackSettings)
    assert (stack.worker_count, stack.max_restarts, stack.restart_delay_s) == (3, 3, 2.5)
    assert stack.api_port == 3000 and stack.publish_channels == ["printify"]
    api = load_settings(ApiSettings)
    assert api.cors_origin_list() == ["http://localhost:5173"]
    assert api.key_list() == []  # auth.enabled false: the keys are not used
    assert api.url == "postgresql://pod:pod@127.0.0.1:5432/pod"
    gen = load_settings(GeneratorSettings)
    assert gen.claude_api_key.get_secret_value() == "sk-ant-..."
    assert (gen.comfyui_timeout_s, gen.claude_timeout_s) == (600.0, 60.0)  # from milliseconds
    assert gen.max_in_flight == 64 and gen.retry_attempts == 3
    assert gen.retry_base_delay_s == 60.0
    printify = load_settings(PrintifySettings)
    assert printify.printify_shop_id == "12345678"
    assert printify.printify_api_key.get_secret_value() == "your-printify-token"


def test_the_environment_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(tmp_path, monkeypatch, example())
    monkeypatch.setenv("API_PORT", "3100")
    assert load_settings(ApiSettings).api_port == 3100


def test_switches_and_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = example()
    data["workerPool"]["autoRestart"] = False
    data["api"]["auth"] = {"enabled": True, "apiKeys": ["k1", "k2"], "adminApiKeys": ["a1"]}
    use(tmp_path, monkeypatch, data)
    assert load_settings(StackSettings).max_restarts == 0  # no restarts at all
    api = load_settings(ApiSettings)
    assert api.key_list() == ["k1", "k2"] and api.admin_key_list() == ["a1"]


def test_an_invalid_value_names_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = example()
    data["api"]["port"] = 70000
    use(tmp_path, monkeypatch, data)
    with pytest.raises(ConfigError, match=r"api\.port \(CONFIG_PATH\): Input should be less"):
        load_settings(ApiSettings)
    data = example()
    data["orchestrator"]["platforms"]["enabledPlatforms"] = ["printify", "gumroad"]
    use(tmp_path, monkeypatch, data)
    with pytest.raises(
        ConfigError, match=r"orchestrator\.platforms\.enabledPlatforms \(CONFIG_PATH\).*gumroad"
    ):
        load_settings(StackSettings)


def test_unknown_keys_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = example()
    data["workerPool"]["healthCheckInterval"] = 30000
    data["api"]["rateLimit"] = {"max": 100}
    use(tmp_path, monkeypatch, data)
    with caplog.at_level(logging.WARNING):
        load_settings(ApiSettings)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "key=workerPool.healthCheckInterval" in warned
    assert "key=api.rateLimit.max" in warned
    assert "sk-ant" not in warned  # values are never logged
