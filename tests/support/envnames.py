"""Every environment name the project's processes read: the settings' fields and aliases, and
the few names read straight from the environment."""

from __future__ import annotations

import importlib
import pkgutil

from pydantic import AliasChoices, AliasPath

import services
import shared
from shared.platform.settings import PodSettings

# Read with os.environ, not through a settings class.
PROCESS_ENV = {
    "LOG_LEVEL",
    "CHANNEL",
    "CONFIG_PATH",
    "POD_PARENT_PID",
    "POD_API_URL",
    "POD_API_KEY",
}


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    sub: type
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def known_env_names() -> set[str]:
    """Upper-case names (settings are case-insensitive)."""
    # Every module that may define a settings class, imported so that it is a subclass now.
    for package in (shared, services):
        for mod in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if mod.name.endswith(".settings") or mod.name.startswith("shared.adapters.vendors."):
                importlib.import_module(mod.name)
    importlib.import_module("shared.domain.catalog")
    names = set(PROCESS_ENV)
    for cls in _subclasses(PodSettings):
        for field, info in cls.model_fields.items():  # type: ignore[attr-defined]
            names.add(field.upper())
            alias = info.validation_alias
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            for choice in choices:
                if isinstance(choice, str):
                    names.add(choice.upper())
                elif isinstance(choice, AliasPath) and isinstance(choice.path[0], str):
                    names.add(choice.path[0].upper())
    return names
