"""The seed's configuration file layout (``config.example.json``), read from ``CONFIG_PATH``.

The original design configured everything in one nested JSON file: ``orchestrator`` (comfyui,
claude, storage, platforms), ``engine``, ``database``, ``workerPool`` and ``api``. Such a file is
translated here into the flat settings (``api.port`` -> ``api_port``, ``workerPool.restartDelay``
in milliseconds -> ``restart_delay_s``), so a seed deployment's file works unchanged beside the
flat keys. A key this table does not know is reported with a warning, never silently dropped; a
value the settings refuse stops the start naming the key's path (:func:`origin_of`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

SECTIONS = ("orchestrator", "engine", "database", "workerPool", "api")


def _same(value: Any) -> Any:
    return value


def _ms(value: Any) -> Any:
    # The seed counts time in milliseconds; a value that is no number is left for the
    # settings to refuse, naming the key.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / 1000
    return value


def _listed(value: Any) -> Any:
    # Key lists and origins: a JSON list, or already one comma-separated string.
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return value


# seed path -> (flat setting, conversion)
SEED_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "orchestrator.comfyui.url": ("comfyui_api_url", _listed),
    "orchestrator.comfyui.apiUrl": ("comfyui_api_url", _listed),
    "orchestrator.comfyui.timeout": ("comfyui_timeout_s", _ms),
    "orchestrator.comfyui.workflowPath": ("comfyui_workflow_path", _same),
    "orchestrator.claude.apiKey": ("claude_api_key", _same),
    "orchestrator.claude.model": ("claude_model", _same),
    "orchestrator.claude.baseUrl": ("anthropic_base_url", _same),
    "orchestrator.claude.timeout": ("claude_timeout_s", _ms),
    "orchestrator.storage.path": ("image_storage_dir", _same),
    "orchestrator.storage.outputDir": ("image_storage_dir", _same),
    "orchestrator.storage.url": ("image_storage_url", _same),
    "orchestrator.platforms.enabledPlatforms": ("publish_channels", _listed),
    "orchestrator.platforms.printify.apiKey": ("printify_api_key", _same),
    "orchestrator.platforms.printify.apiUrl": ("printify_api_url", _same),
    "orchestrator.platforms.printify.shopId": ("printify_shop_id", _same),
    "engine.maxConcurrentJobs": ("max_in_flight", _same),
    "engine.maxRetries": ("retry_attempts", _same),
    "engine.retryDelay": ("retry_base_delay_s", _ms),
    "engine.maxImagesPerJob": ("max_images_per_job", _same),
    "database.url": ("database_url", _same),
    "database.connectionString": ("database_url", _same),
    "workerPool.count": ("worker_count", _same),
    "workerPool.maxConcurrentJobs": ("max_in_flight", _same),
    "workerPool.maxRestarts": ("max_restarts", _same),
    "workerPool.restartDelay": ("restart_delay_s", _ms),
    "api.port": ("api_port", _same),
    "api.host": ("api_host", _same),
    "api.auth.apiKeys": ("api_keys", _listed),
    "api.auth.adminApiKeys": ("admin_api_keys", _listed),
    "api.cors.origins": ("cors_origins", _listed),
    "api.cors.origin": ("cors_origins", _listed),
}
# Switches whose meaning is another key's value (handled in translate()).
_SWITCHES = {"workerPool.autoRestart", "api.auth.enabled", "api.cors.enabled"}


def is_seed_layout(data: dict[str, object]) -> bool:
    """Whether a config file is laid out in the seed's sections (rather than flat keys)."""
    return any(isinstance(data.get(s), dict) for s in SECTIONS)


def _leaves(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        # A known leaf holds a list or an object as a value (a key list); a section recurses.
        if isinstance(value, dict) and path not in SEED_KEYS:
            out.update(_leaves(value, f"{path}."))
        else:
            out[path] = value
    return out


def translate(
    data: dict[str, object], source: str, *, warn: bool = True
) -> tuple[dict[str, object], dict[str, str]]:
    """(flat settings, flat setting -> the seed path it came from) of a seed-layout file.

    Keys outside the seed's sections are kept as flat keys (a file may mix both).
    """
    flat: dict[str, object] = {k.lower(): v for k, v in data.items() if k not in SECTIONS}
    origins: dict[str, str] = {}
    leaves = _leaves({k: v for k, v in data.items() if k in SECTIONS})
    for path, value in leaves.items():
        if path in SEED_KEYS:
            name, convert = SEED_KEYS[path]
            flat[name] = convert(value)
            origins[name] = path
        elif path not in _SWITCHES and warn:
            logger.warning("unknown configuration key ignored key=%s file=%s", path, source)
    # Switched off: the seed kept the values but did not use them.
    if leaves.get("workerPool.autoRestart") is False:
        flat["max_restarts"] = 0
        origins["max_restarts"] = "workerPool.autoRestart"
    if leaves.get("api.auth.enabled") is False:
        for name in ("api_keys", "admin_api_keys"):
            flat.pop(name, None)
    if leaves.get("api.cors.enabled") is False:
        flat.pop("cors_origins", None)
    return flat, origins
